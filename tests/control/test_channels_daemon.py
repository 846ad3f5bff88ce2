"""Every new command on every channel: REST, the WebSocket, MQTT and sonosctl each run the
favourite, playlist, library, share-link, queue, alarm, announcement, input and sound
commands against the simulated household; each scenario checks the simulator's state and
that the message the change causes arrives on that channel (SSE for REST and sonosctl)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from twisted.trial.unittest import TestCase

from tests.control.daemon_commands import (
    Channel,
    CtlChannel,
    MqttChannel,
    alarms_changed,
    mqtt_daemon,
    start,
    wav_command,
    ws_channel,
)
from tests.control.test_controller_daemon import Daemon, event_of
from tests.daemon_helpers import until

Scenario = Callable[[TestCase, Daemon, Channel], Awaitable[None]]


def _ok(case: TestCase, answer: tuple[int, dict[str, Any]]) -> dict[str, Any]:
    status, body = answer
    case.assertEqual(status, 200, body)
    result: dict[str, Any] = body["result"]
    return result


async def favorites(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    result = _ok(case, await channel.send("Kitchen", "favorites", {}, ["favorites"]))
    case.assertEqual(
        [f["title"] for f in result["favorites"]], [f.title for f in daemon.household.favorites]
    )


async def play_favorite(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    kitchen = daemon.speaker(0)
    favorite = next(f for f in daemon.household.favorites if f.kind == "sonos_playlist")
    tracks = daemon.household.saved_queues.find(favorite.uri).tracks
    mark = len(channel.messages())
    words = ["play-favorite", *favorite.title.split()]
    _ok(case, await channel.send("Kitchen", "play_favorite", {"name": favorite.title}, words))
    case.assertEqual(kitchen.transport.queue, tracks)
    await channel.expect(
        mark, event_of(kitchen, "AVTransport", number_of_tracks=len(tracks)), "the playlist queued"
    )


async def playlists(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    title = f"From {channel.name}"
    mark = len(channel.messages())
    _ok(
        case,
        await channel.send(
            "Kitchen", "playlists", {"action": "save", "title": title}, ["playlist", "save", title]
        ),
    )
    case.assertIsNotNone(daemon.household.saved_queues.by_title(title))
    await channel.expect(
        mark,
        lambda m: (
            m.get("service") == "ContentDirectory"
            and "saved_queues_update_id" in (m.get("variables") or {})
        ),
        "SavedQueuesUpdateID",
    )
    _ok(
        case,
        await channel.send(
            "Kitchen",
            "playlists",
            {"action": "delete", "name": title},
            ["playlist", "delete", title],
        ),
    )
    case.assertIsNone(daemon.household.saved_queues.by_title(title))


async def library(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    office = daemon.speaker(1)
    song = daemon.household.library.songs[5]
    found = _ok(
        case,
        await channel.send(
            "Office",
            "library",
            {"action": "search", "category": "tracks", "term": song.title},
            ["search", "tracks", song.title],
        ),
    )
    item_id = found["items"][0]["id"]
    mark = len(channel.messages())
    _ok(case, await channel.send("Office", "library", {"action": "add", "id": item_id}))
    case.assertEqual(office.transport.queue[-1], song)
    await channel.expect(
        mark,
        lambda m: m.get("service") == "Queue" and (m.get("speaker") or {}).get("uid") == office.uid,
        "the queue event",
    )


async def share_link(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    office = daemon.speaker(1)
    before = len(office.transport.queue)
    url = "https://open.spotify.com/album/6wiUBliPe76YAVpNEdidpY"
    mark = len(channel.messages())
    result = _ok(
        case,
        await channel.send(
            "Office", "share_link", {"url": url, "play": False}, ["share-link", url, "queue"]
        ),
    )
    case.assertEqual(len(office.transport.queue), before + result["queued"])
    await channel.expect(
        mark,
        lambda m: m.get("service") == "Queue" and (m.get("speaker") or {}).get("uid") == office.uid,
        "the queue event",
    )


async def queue(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    office = daemon.speaker(1)
    second = office.transport.queue[1]
    mark = len(channel.messages())
    _ok(
        case,
        await channel.send(
            "Office", "queue", {"action": "remove", "track": 1}, ["queue", "remove", "1"]
        ),
    )
    case.assertEqual(office.transport.queue[0], second)
    await channel.expect(
        mark,
        lambda m: m.get("service") == "Queue" and (m.get("speaker") or {}).get("uid") == office.uid,
        "the queue event",
    )


async def alarms(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    mark = len(channel.messages())
    created = _ok(
        case,
        await channel.send(
            "Kitchen", "alarms", {"action": "create", "time": "05:30"}, ["alarm", "add", "05:30"]
        ),
    )
    alarm_id = created["alarm"]["id"]
    case.assertIn(alarm_id, [a.alarm_id for a in daemon.household.alarms])
    await channel.expect(
        mark,
        alarms_changed(lambda listed: any(a["id"] == alarm_id and a["enabled"] for a in listed)),
        "alarms.changed with the alarm",
    )
    mark = len(channel.messages())
    _ok(
        case,
        await channel.send(
            "Kitchen",
            "alarms",
            {"action": "disable", "id": alarm_id},
            ["alarm", "off", str(alarm_id)],
        ),
    )
    case.assertFalse(next(a for a in daemon.household.alarms if a.alarm_id == alarm_id).enabled)
    await channel.expect(
        mark,
        alarms_changed(
            lambda listed: any(a["id"] == alarm_id and not a["enabled"] for a in listed)
        ),
        "alarms.changed with the alarm off",
    )
    if isinstance(channel, MqttChannel):
        # The household's alarm list is retained on the broker too.
        topic = f"sonos/bridge/alarms/{daemon.household.household_id}"

        def retained_off() -> bool:
            payloads = channel.sub.payloads(topic)
            listed = json.loads(payloads[-1])["alarms"] if payloads else []
            return any(a["id"] == alarm_id and not a["enabled"] for a in listed)

        await until(retained_off, f"{topic} with the alarm off")
    _ok(
        case,
        await channel.send(
            "Kitchen",
            "alarms",
            {"action": "enable", "id": alarm_id},
            ["alarm", "on", str(alarm_id)],
        ),
    )
    skipped = _ok(
        case,
        await channel.send(
            "Kitchen",
            "alarms",
            {"action": "skip", "id": alarm_id},
            ["alarm", "skip", str(alarm_id)],
        ),
    )
    case.assertEqual(skipped["skipped"][11:16], "05:30")
    case.assertIsNotNone(skipped["resumes"])
    case.assertFalse(next(a for a in daemon.household.alarms if a.alarm_id == alarm_id).enabled)
    pending = daemon.service.controller.alarms.skips
    case.assertIn((daemon.household.household_id, alarm_id), pending)
    _ok(
        case,
        await channel.send(
            "Kitchen",
            "alarms",
            {"action": "delete", "id": alarm_id},
            ["alarm", "delete", str(alarm_id)],
        ),
    )
    case.assertNotIn((daemon.household.household_id, alarm_id), pending)


async def say(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    kitchen = daemon.speaker(0)
    fetcher = daemon.service.simulator.fetcher  # type: ignore[union-attr]
    fetched = len(fetcher.fetched)
    mark = len(channel.messages())
    words = ["say", "hello", "from", channel.name]
    result = _ok(
        case, await channel.send("Kitchen", "say", {"text": f"hello from {channel.name}"}, words)
    )
    case.assertEqual(result["ended"], "finished")
    case.assertEqual(fetcher.fetched[fetched:], [result["uri"]])
    await channel.expect(
        mark, event_of(kitchen, "AVTransport", current_track_uri=result["uri"]), "the clip"
    )


async def line_in(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    office = daemon.speaker(1)
    uri = f"x-rincon-stream:{office.uid}"
    mark = len(channel.messages())
    _ok(case, await channel.send("Office", "line_in", {}, ["line-in"]))
    case.assertEqual(office.transport.uri, uri)
    await channel.expect(mark, event_of(office, "AVTransport", av_transport_uri=uri), "line-in")


async def tv(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    amp = daemon.speaker(2)
    uri = f"x-sonos-htastream:{amp.uid}:spdif"
    mark = len(channel.messages())
    _ok(case, await channel.send("Living Room", "tv", {}, ["tv"]))
    case.assertEqual(amp.transport.uri, uri)
    await channel.expect(mark, event_of(amp, "AVTransport", av_transport_uri=uri), "TV")


async def sound(case: TestCase, daemon: Daemon, channel: Channel) -> None:
    amp = daemon.speaker(2)
    gain = -3 if channel.name == "rest" else 5
    mark = len(channel.messages())
    _ok(case, await channel.send("Living Room", "sub", {"gain": gain}, ["sub", str(gain)]))
    case.assertEqual(amp.rendering.sub_gain, gain)
    await channel.expect(mark, event_of(amp, "RenderingControl", sub_gain=gain), "sub gain")
    mark = len(channel.messages())
    _ok(
        case,
        await channel.send("Living Room", "surround", {"tv_level": gain}, ["surround", str(gain)]),
    )
    case.assertEqual(amp.rendering.surround_level, gain)
    await channel.expect(
        mark, event_of(amp, "RenderingControl", surround_level=gain), "surround level"
    )
    flag = not amp.rendering.dialog_level
    mark = len(channel.messages())
    word = "on" if flag else "off"
    _ok(
        case,
        await channel.send(
            "Living Room",
            "speech_enhancement",
            {"speech_enhancement": flag},
            ["speech-enhancement", word],
        ),
    )
    case.assertEqual(amp.rendering.dialog_level, flag)
    await channel.expect(
        mark, event_of(amp, "RenderingControl", dialog_level="1" if flag else "0"), "speech"
    )


SCENARIOS: tuple[Scenario, ...] = (
    favorites,
    play_favorite,
    playlists,
    library,
    share_link,
    queue,
    alarms,
    say,
    line_in,
    tv,
    sound,
)


#: The announcements speak a half-second silent clip: what is said is not these tests' subject
#: (the default espeak-ng command is tested in test_announce.py), every channel's say is.
ANNOUNCE = {"tts_command": wav_command(0.5)}


class ChannelTests(TestCase):
    timeout = 300

    async def run_all(self, daemon: Daemon, channel: Channel) -> None:
        for scenario in SCENARIOS:
            try:
                await scenario(self, daemon, channel)
            except Exception as error:
                raise AssertionError(f"{channel.name}: {scenario.__name__}: {error}") from error

    async def test_rest(self) -> None:
        """Every new command over REST (messages over SSE)."""
        daemon, client = await start(self, announce=ANNOUNCE)
        await self.run_all(daemon, Channel(daemon, client))

    async def test_websocket(self) -> None:
        """Every new command over the WebSocket (messages on the same socket)."""
        daemon, client = await start(self, announce=ANNOUNCE)
        await self.run_all(daemon, await ws_channel(self, daemon, client))

    async def test_mqtt(self) -> None:
        """Every new command published to MQTT (results and messages from the broker)."""
        daemon, _, channel = await mqtt_daemon(self, announce=ANNOUNCE)
        await self.run_all(daemon, channel)

    async def test_sonosctl(self) -> None:
        """Every new command with sonosctl's shorthand words (messages over SSE)."""
        daemon, client = await start(self, announce=ANNOUNCE)
        await self.run_all(daemon, CtlChannel(daemon, client))
