"""Tests for control.queue: the queue listed, edited and played through the whole daemon."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from sonosd.control.queue import current_track
from tests.control.daemon_commands import start
from tests.control.test_controller_daemon import arrives


def _queue_event(uid: str, update_id: int):  # type: ignore[no-untyped-def]
    return lambda m: (
        m.get("type") == "event"
        and (m.get("speaker") or {}).get("uid") == uid
        and m.get("service") == "Queue"
        and (m.get("variables") or {}).get("update_id") == update_id
    )


class QueueTests(TestCase):
    timeout = 120

    async def test_remove_move_play_clear(self) -> None:
        """queue removes a range, moves a track, plays from a position and clears; every
        change is on the simulated queue and its Queue event arrives."""
        daemon, client = await start(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        titles = [t.title for t in transport.queue]
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "remove", "track": 2, "count": 2}
        )
        self.assertEqual((status, body["result"]["removed"]), (200, 2), body)
        del titles[1:3]
        self.assertEqual([t.title for t in transport.queue], titles)
        await arrives(
            client.messages, mark, _queue_event(kitchen.uid, transport.queue_update_id), "removal"
        )
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "move", "track": 1, "to": 3}
        )
        self.assertEqual(status, 200, body)
        titles.insert(2, titles.pop(0))
        self.assertEqual([t.title for t in transport.queue], titles)
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "move", "track": 4, "to": 1, "count": 2}
        )
        titles = titles[3:5] + titles[0:3] + titles[5:]
        self.assertEqual([t.title for t in transport.queue], titles)
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "list", "start": 1, "count": 2}
        )
        self.assertEqual([i["title"] for i in body["result"]["items"]], titles[1:3])
        self.assertEqual([i["position"] for i in body["result"]["items"]], [2, 3])
        status, body = await daemon.post("Kitchen", "queue", {"action": "play", "track": 3})
        self.assertEqual(status, 200, body)
        await transport.settled()
        self.assertEqual((transport.track_no, transport.state), (3, "PLAYING"))
        status, body = await daemon.post("Kitchen", "queue", {"action": "clear"})
        self.assertEqual((body["result"]["total"], transport.queue), (0, []))

    async def test_out_of_range(self) -> None:
        """Ranges and positions past the queue are 400 bad_argument; nothing changes."""
        daemon, _ = await start(self)
        queue = list(daemon.speaker(0).transport.queue)
        for args in (
            {"action": "remove", "track": 8, "count": 2},
            {"action": "move", "track": 1, "to": 9},
            {"action": "move", "track": 7, "to": 1, "count": 3},
            {"action": "play", "track": 99},
            {"action": "shuffle"},
        ):
            status, body = await daemon.post("Kitchen", "queue", args)
            self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"), args)
        self.assertEqual(daemon.speaker(0).transport.queue, queue)

    async def test_add_at_a_position_and_as_next(self) -> None:
        """queue add puts a URI at the position asked, or after the current track with
        as_next; a position past the queue, or a list of more than 1000, is 400."""
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        length = len(transport.queue)
        on = {"coordinator": kitchen.uid}
        first, after = "http://127.0.0.1/first.mp3", "http://127.0.0.1/after.mp3"
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "add", "uri": first, "position": 1, "title": "First"}
        )
        self.assertEqual(
            (status, body["result"]), (200, {**on, "position": 1, "total": length + 1})
        )
        self.assertEqual((transport.queue[0].uri, transport.queue[0].title), (first, "First"))
        status, body = await daemon.post("Kitchen", "queue", {"action": "play", "track": 3})
        self.assertEqual(status, 200, body)
        status, body = await daemon.post(
            "Kitchen", "queue", {"action": "add", "uri": after, "as_next": True}
        )
        self.assertEqual(
            (status, body["result"]), (200, {**on, "position": 4, "total": length + 2})
        )
        self.assertEqual(transport.queue[3].uri, after)
        queue = list(transport.queue)
        for args, name in (
            ({"action": "add", "uri": after, "position": length + 4}, "position: "),
            ({"action": "list", "count": 1001}, "count: "),
        ):
            status, body = await daemon.post("Kitchen", "queue", args)
            self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"), args)
            self.assertTrue(body["error"]["message"].startswith(name), body)
        self.assertEqual(transport.queue, queue)

    async def test_next_after_a_track_number_of_odd_digits_goes_last(self) -> None:
        """play_favorite mode next while the speaker gives its current Track as "²" or 5,000
        digits queues the album at the end (no current track), not a 500."""
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        self.addCleanup(kitchen.soap_faults.reset)
        album = next(f for f in daemon.household.favorites if f.kind == "album")
        status, body = await daemon.post("Kitchen", "play_favorite", {"name": album.title})
        self.assertEqual(status, 200, body)
        self.assertTrue(transport.on_queue)
        kitchen.soap_faults.rewrite_action = "GetPositionInfo"
        kitchen.soap_faults.rewrite_name = "Track"
        for odd in ("\u00b2", "9" * 5000):
            kitchen.soap_faults.rewrite_value = odd
            before = len(transport.queue)
            status, body = await daemon.post(
                "Kitchen", "play_favorite", {"name": album.title, "mode": "next", "play": False}
            )
            self.assertEqual(status, 200, body)
            self.assertEqual(body["result"]["position"], before + 1, odd[:5])
            self.assertEqual(len(transport.queue), before + body["result"]["queued"])


def test_current_track_of_odd_digits_is_none() -> None:
    """A Track a speaker gives as no ASCII number ("²", 5,000 digits) is no current track (0),
    never int()'s ValueError."""

    class AvTransport:
        track = "3"

        def GetPositionInfo(self, arguments: object) -> dict[str, str]:
            return {"Track": self.track}

    class Device:
        avTransport = AvTransport()

    device = Device()
    assert current_track(device) == 3
    for odd in ("\u00b2", "9" * 5000, ""):
        device.avTransport.track = odd
        assert current_track(device) == 0
