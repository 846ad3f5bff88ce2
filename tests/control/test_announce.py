"""Tests for control.announce: spoken and URL announcements to a room, a group or every room,
through the whole daemon against the simulated household."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import treq
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.config import AnnounceConfig
from sonosd.control.announce import clip_metadata, wav_seconds
from tests.audio_helpers import serve_audio, wav_bytes
from tests.control.daemon_commands import grouped, start, wav_command, ws_channel
from tests.control.test_controller_daemon import arrives, event_of
from tests.daemon_helpers import reactor, until

SONOSCTL = Path(sys.executable).parent / "sonosctl"


def test_wav_seconds_and_metadata() -> None:
    """A WAV's length is read from its header; the clip's DIDL names it a track."""
    assert wav_seconds(wav_bytes(1.5)) == 1.5
    assert wav_seconds(b"not a wav") is None
    meta = clip_metadata("http://h/a.wav", "Hi & bye", 1.2, "audio/wav")
    assert 'duration="0:00:02"' in meta and "Hi &amp; bye" in meta
    assert 'protocolInfo="http-get:*:audio/wav:*"' in meta


class _Run(ProcessProtocol):
    def __init__(self) -> None:
        self.out = b""
        self.err = b""
        self.done: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(getattr(reason.value, "exitCode", 0) or 0)


async def sonosctl(url: str, *words: str) -> tuple[int, str, str]:
    """Run the installed ``sonosctl`` in a process; its exit status and output."""
    run = _Run()
    environment = {"SONOSD_URL": url, "PATH": "/usr/bin:/bin"}
    reactor.spawnProcess(run, str(SONOSCTL), [str(SONOSCTL), *words], env=environment)
    status = await run.done.addTimeout(120, reactor)
    return status, run.out.decode(), run.err.decode()


class SayTests(TestCase):
    timeout = 120

    async def test_sonosctl_say_speaks_in_the_kitchen(self) -> None:
        """``sonosctl kitchen say "dinner is ready"``: the daemon speaks the text with
        espeak-ng, the simulated kitchen is given the daemon's URL, fetches the WAV from the
        daemon and plays it, and afterwards plays what it played before."""
        daemon, client = await start(self)
        kitchen = daemon.speaker(0)
        kitchen.transport.play()
        await kitchen.transport.settled()
        before = (kitchen.transport.uri, kitchen.transport.track_no, kitchen.transport.state)
        fetcher = daemon.service.simulator.fetcher  # type: ignore[union-attr]
        mark = len(client.messages())
        url = f"http://{daemon.host}:{daemon.port}"
        status, out, err = await sonosctl(url, "kitchen", "say", "dinner is ready")
        self.assertEqual(status, 0, err)
        self.assertIn("ended finished", out)
        spoken = [uri for uri in fetcher.fetched if "/media/" in uri]
        self.assertEqual(len(spoken), 1)
        listener = daemon.service.listener
        self.assertTrue(spoken[0].startswith(listener.callback_url(kitchen.address)))
        await client_event(
            client, mark, event_of(kitchen, "AVTransport", current_track_uri=spoken[0])
        )
        await until(lambda: kitchen.transport.state == before[2], "playback to resume")
        self.assertEqual((kitchen.transport.uri, kitchen.transport.track_no), before[:2])
        self.assertEqual(len(daemon.service.media), 0)
        self.assertEqual(daemon.service.controller.snapshots, {})

    async def test_text_volume_and_tts_url(self) -> None:
        """say sets the volume for the clip and restores it; with announce.tts_url the
        speaker fetches the template's URL with the text encoded."""
        server = serve_audio(self, {"/tts": (wav_bytes(0.5), "audio/wav")})
        template = server.url("/tts") + "?q={text}"
        daemon, client = await start(self, announce={"tts_url": template})
        kitchen = daemon.speaker(0)
        kitchen.set_volume(12)
        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "say", {"text": "hello there", "volume": 40})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["uri"], server.url("/tts") + "?q=hello%20there")
        self.assertEqual(server.requests, ["/tts"])
        await client_event(client, mark, event_of(kitchen, "RenderingControl", volume=40))
        self.assertEqual(kitchen.rendering.volume, 12)


async def client_event(client: Any, mark: int, predicate: Any) -> None:
    """Wait for a message matching ``predicate`` after ``mark`` on an SSE client."""
    await arrives(client.messages, mark, predicate, "the message")


class TargetTests(TestCase):
    timeout = 120

    async def test_room_in_a_group_plays_alone_and_rejoins(self) -> None:
        """target room takes a grouped speaker out of its group for the clip and puts it back."""
        daemon, _client = await start(self)
        kitchen, living = daemon.speaker(0), daemon.speaker(2)
        await grouped(daemon, living, kitchen)
        server = serve_audio(self)
        status, body = await daemon.post(
            "Living Room", "announce", {"uri": server.url("/clip.wav"), "target": "room"}
        )
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual((result["coordinator"], result["members"]), (living.uid, [living.uid]))
        await until(lambda: living.group.coordinator == kitchen.uid, "the group again")

    async def test_all_groups_at_once_same_group_in_turn(self) -> None:
        """target all plays on every group at the same time; two announcements to one group
        play one after the other."""
        daemon, _client = await start(self)
        server = serve_audio(self, {"/one.wav": (wav_bytes(1.0), "audio/wav")})
        uri = server.url("/one.wav")
        started = reactor.seconds()
        status, body = await daemon.post("Kitchen", "announce", {"uri": uri, "target": "all"})
        took = reactor.seconds() - started
        self.assertEqual(status, 200, body)
        groups = body["result"]["groups"]
        self.assertEqual(len(groups), 3)
        self.assertTrue(all(group["ended"] == "finished" for group in groups))
        self.assertEqual(len(server.requests), 3)
        first = daemon.posting("Office", "announce", {"uri": uri})
        second = daemon.posting("Office", "announce", {"uri": uri})
        both = await DeferredList([first, second], consumeErrors=True)
        results = [value[1]["result"] for ok, value in both if ok]
        self.assertEqual(len(results), 2)
        # Each clip lasts a second: in turn, the second waited for the first.
        self.assertGreater(max(r["seconds"] for r in results), 1.0)
        self.assertLess(took, 2 * max(r["seconds"] for r in results) + 5)

    async def test_announcements_to_one_group_play_in_the_order_asked(self) -> None:
        """Three announcements to one group sent together (one WebSocket, no waiting for an
        answer) each play in full, one after the other, in the order they were asked."""
        daemon, client = await start(self)
        paths = ["/first.wav", "/second.wav", "/third.wav"]
        server = serve_audio(self, {path: (wav_bytes(1.0), "audio/wav") for path in paths})
        office = daemon.speaker(1)
        fetcher = daemon.service.simulator.fetcher  # type: ignore[union-attr]
        channel = await ws_channel(self, daemon, client)
        events = len(client.messages())
        mark = len(channel.ws.messages)
        for index, path in enumerate(paths):
            channel.ws.send(
                {
                    "op": "command",
                    "id": f"say{index}",
                    "speaker": "Office",
                    "command": "announce",
                    "args": {"uri": server.url(path)},
                }
            )

        def answer_to(index: int) -> Callable[[Mapping[str, Any]], bool]:
            return lambda m: m.get("id") == f"say{index}" and m.get("type") in ("result", "error")

        for index in range(len(paths)):
            found = await arrives(channel.messages, mark, answer_to(index), f"answer {index}")
            answer = channel.ws.messages[found]
            self.assertEqual(answer["type"], "result", answer)
            self.assertEqual(answer["result"]["ended"], "finished", answer)
        clips = [server.url(path) for path in paths]
        # The simulated speaker fetched each clip when it began to play it...
        self.assertEqual([uri for uri in fetcher.fetched if uri in clips], clips)
        # ... and evented each as its track, in that order.
        await arrives(
            client.messages,
            events,
            event_of(office, "AVTransport", current_track_uri=clips[-1]),
            "the last clip's event",
        )
        tracks: list[str] = []
        for body in client.messages()[events:]:
            variables = body.get("variables") or {}
            track = variables.get("current_track_uri")
            if (
                (body.get("speaker") or {}).get("uid") == office.uid
                and body.get("service") == "AVTransport"
                and track in clips
                and (not tracks or tracks[-1] != track)
            ):
                tracks.append(track)
        self.assertEqual(tracks, clips)

    async def test_all_plays_on_every_group_at_the_same_time(self) -> None:
        """target all: every group's coordinator plays the clip at the same moment (not one
        group after the other)."""
        daemon, _client = await start(self)
        # A 2 s clip: played one group after the other, no two groups would play at once.
        server = serve_audio(self, {"/two.wav": (wav_bytes(2.0), "audio/wav")})
        uri = server.url("/two.wav")
        coordinators = [daemon.speaker(index) for index in range(3)]
        posting = daemon.posting("Kitchen", "announce", {"uri": uri, "target": "all"})

        def playing() -> int:
            return sum(
                1
                for speaker in coordinators
                if speaker.transport.uri == uri and speaker.transport.state == "PLAYING"
            )

        await until(lambda: playing() >= 3 or posting.called, "three groups playing")
        self.assertEqual(playing(), 3)
        status, body = await posting
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["result"]["groups"]), 3)


class VolumeAndTimeoutTests(TestCase):
    timeout = 120

    async def test_group_is_the_default_and_every_member_takes_announce_volume(self) -> None:
        """Without target the whole group of the speaker named plays the clip; without volume
        each member is set to ``announce.volume`` for it, and given back its own afterwards."""
        daemon, client = await start(self, announce={"volume": 25})
        kitchen, living = daemon.speaker(0), daemon.speaker(2)
        await grouped(daemon, living, kitchen)
        kitchen.set_volume(10)
        living.set_volume(15)
        server = serve_audio(self)
        mark = len(client.messages())
        status, body = await daemon.post(
            "Living Room", "announce", {"uri": server.url("/clip.wav")}
        )
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual((result["target"], result["coordinator"]), ("group", kitchen.uid))
        self.assertEqual(set(result["members"]), {kitchen.uid, living.uid})
        for speaker in (kitchen, living):
            await client_event(client, mark, event_of(speaker, "RenderingControl", volume=25))
        self.assertEqual((kitchen.rendering.volume, living.rendering.volume), (10, 15))

    async def test_a_clip_of_unknown_length_stops_after_announce_timeout(self) -> None:
        """A URL clip (its length unknown to the daemon) playing longer than
        ``announce.timeout`` ends the announcement then, as ``timeout``, and restores the
        group."""
        server = serve_audio(self, {"/long.wav": (wav_bytes(60.0), "audio/wav")})
        daemon, _ = await start(self, announce={"timeout": 1})
        kitchen = daemon.speaker(0)
        before = kitchen.transport.uri
        status, body = await daemon.post("Kitchen", "announce", {"uri": server.url("/long.wav")})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["ended"], "timeout")
        self.assertLess(body["result"]["seconds"], 50)
        self.assertEqual(kitchen.transport.uri, before)

    async def test_a_clip_stopped_or_replaced_by_another_controller_ends_it(self) -> None:
        """The announcement ends as soon as its clip stops or something else plays (another
        controller pauses it, or starts the queue), as ``finished``, not at its ``timeout``
        (shorter than the clip: a wait that missed it would end ``timeout``); the group is
        restored. Without ``volume`` and ``announce.volume`` the clip plays at the speaker's
        own volume (left as it is)."""
        server = serve_audio(self, {"/long.wav": (wav_bytes(60.0), "audio/wav")})
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        before = transport.uri
        kitchen.set_volume(13)
        clip = server.url("/long.wav")

        def pause() -> None:
            transport.pause()

        def play_the_queue() -> None:
            transport.set_uri(transport.queue_uri, "", None)
            transport.play()

        for interrupt in (pause, play_the_queue):
            posting = daemon.posting("Kitchen", "announce", {"uri": clip, "timeout": 30})
            await until(
                lambda: transport.uri == clip and transport.state == "PLAYING", "the clip playing"
            )
            self.assertEqual(kitchen.rendering.volume, 13)
            interrupt()
            status, body = await posting
            self.assertEqual(status, 200, body)
            self.assertEqual(body["result"]["ended"], "finished", interrupt.__name__)
            self.assertEqual(transport.uri, before)

    async def test_meta_and_title_describe_the_clip(self) -> None:
        """announce's ``meta`` (DIDL-Lite) is the metadata the clip plays with; without it,
        the daemon's own names the clip by ``title`` (docs/control.md)."""
        server = serve_audio(self, {"/long.wav": (wav_bytes(60.0), "audio/wav")})
        daemon, _ = await start(self)
        transport = daemon.speaker(0).transport
        clip = server.url("/long.wav")
        meta = (
            '<DIDL-Lite xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<item id="bell" parentID="-1" restricted="true"><dc:title>Doorbell</dc:title>'
            "</item></DIDL-Lite>"
        )
        for args, shown in (({"meta": meta}, meta), ({"title": "Front door"}, "Front door")):
            posting = daemon.posting("Kitchen", "announce", {"uri": clip, "timeout": 30, **args})
            await until(
                lambda: transport.uri == clip and transport.state == "PLAYING", "the clip playing"
            )
            if shown == meta:
                self.assertEqual(transport.uri_metadata, meta)
            else:
                self.assertIn(f"<dc:title>{shown}</dc:title>", transport.uri_metadata)
            transport.pause()
            status, body = await posting
            self.assertEqual(status, 200, body)

    async def test_a_spoken_clip_of_known_length_outlasts_announce_timeout(self) -> None:
        """A spoken clip's length is known: it plays to its end (length plus 5 s), however
        short ``announce.timeout`` is; the command's ``timeout`` bounds it all the same."""
        command = wav_command(2)
        daemon, _ = await start(self, announce={"tts_command": command, "timeout": 0.5})
        status, body = await daemon.post("Kitchen", "say", {"text": "two seconds"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["ended"], "finished")
        self.assertGreaterEqual(body["result"]["seconds"], 2.0)
        # The command's own timeout bounds even a clip of known length.
        status, body = await daemon.post("Kitchen", "say", {"text": "cut", "timeout": 0.5})
        self.assertEqual((status, body["result"]["ended"]), (200, "timeout"), body)

    async def test_a_spoken_clip_is_withdrawn_after_media_ttl(self) -> None:
        """A spoken clip is served at most ``announce.media_ttl``: one playing longer is no
        longer served (404) while it plays (the speaker fetched it already), and the
        announcement ends normally."""
        # A 3-second clip: fetched, then 1 s on (past the half-second TTL), it still plays for
        # about 2 s.
        daemon, _ = await start(self, announce={"tts_command": wav_command(3), "media_ttl": 0.5})
        fetcher = daemon.service.simulator.fetcher  # type: ignore[union-attr]
        posting = daemon.posting("Kitchen", "say", {"text": "a long one"})
        await until(lambda: any("/media/" in uri for uri in fetcher.fetched), "the fetch")
        clip = next(uri for uri in fetcher.fetched if "/media/" in uri)
        await deferLater(reactor, 1.0, lambda: None)
        response = await treq.get(clip, persistent=False)
        await response.content()
        self.assertEqual(response.code, 404)
        self.assertFalse(posting.called)
        status, body = await posting
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["ended"], "finished")


class FailureTests(TestCase):
    timeout = 120

    async def test_unplayable_clip_is_502_and_restored(self) -> None:
        """A URL the speaker cannot fetch ends the announcement at once with 502
        playback_failed; the speaker plays its queue again."""
        daemon, _client = await start(self)
        kitchen = daemon.speaker(0)
        before = kitchen.transport.uri
        status, body = await daemon.post(
            "Kitchen", "announce", {"uri": "http://127.0.0.1:9/nothing.mp3", "timeout": 20}
        )
        self.assertEqual(status, 502, body)
        self.assertEqual(body["error"]["code"], "playback_failed")
        self.assertIn("ERROR_NO_CONTENT", body["error"]["message"])
        self.assertEqual(kitchen.transport.uri, before)
        # target room: the speaker taken out of its group for the clip is put back.
        living = daemon.speaker(2)
        await grouped(daemon, living, kitchen)
        status, body = await daemon.post(
            "Living Room", "announce", {"uri": "http://127.0.0.1:9/nothing.mp3", "target": "room"}
        )
        self.assertEqual((status, body["error"]["code"]), (502, "playback_failed"), body)
        await until(lambda: living.group.coordinator == kitchen.uid, "the group again")
        self.assertEqual(kitchen.transport.uri, before)

    async def test_missing_tts_command_is_503(self) -> None:
        """A text-to-speech command that is not installed is 503 tts_failed, naming it."""
        daemon, _ = await start(self, announce={"tts_command": ["no-such-tts", "{text}"]})
        status, body = await daemon.post("Kitchen", "say", {"text": "hello"})
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["code"], "tts_failed")
        self.assertIn("no-such-tts", body["error"]["message"])

    async def test_tts_command_slower_than_tts_timeout_is_503(self) -> None:
        """``announce.tts_timeout`` bounds the command: one still running then is killed and
        the announcement is 503 tts_failed saying so; the speaker plays on as before."""
        slow = [sys.executable, "-c", "import time; time.sleep(60)", "{text}"]
        daemon, _ = await start(self, announce={"tts_command": slow, "tts_timeout": 0.5})
        kitchen = daemon.speaker(0)
        before = kitchen.transport.uri
        status, body = await daemon.post("Kitchen", "say", {"text": "hello"})
        self.assertEqual(status, 503, body)
        self.assertEqual(body["error"]["code"], "tts_failed")
        self.assertIn("did not finish within 0.5 s", body["error"]["message"])
        self.assertEqual(kitchen.transport.uri, before)

    async def test_reload_applies_announce_from_the_next_announcement(self) -> None:
        """A reload that changes ``announce`` is used by the next announcement, without a
        restart: a missing command's 503 becomes the new tts_url's clip."""
        daemon, _ = await start(self, announce={"tts_command": ["no-such-tts", "{text}"]})
        status, body = await daemon.post("Kitchen", "say", {"text": "hello"})
        self.assertEqual((status, body["error"]["code"]), (503, "tts_failed"))
        server = serve_audio(self, {"/tts": (wav_bytes(0.5), "audio/wav")})
        service = daemon.service
        reloaded = attrs.evolve(
            service.config, announce=AnnounceConfig(tts_url=server.url("/tts") + "?q={text}")
        )
        self.assertEqual(service.reload(reloaded), [])
        status, body = await daemon.post("Kitchen", "say", {"text": "hello"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["uri"], server.url("/tts") + "?q=hello")
        self.assertEqual(server.requests, ["/tts"])

    async def test_bad_arguments(self) -> None:
        """Neither or both of uri and text, an unknown target, text too long: 400."""
        daemon, _ = await start(self)
        for args in (
            {},
            {"uri": "http://x/a.mp3", "text": "hi"},
            {"text": "hi", "target": "garden"},
            {"text": "x" * 1001},
        ):
            status, body = await daemon.post("Kitchen", "announce", args)
            self.assertEqual(
                (status, body["error"]["code"]), (400, "bad_argument"), json.dumps(args)
            )
