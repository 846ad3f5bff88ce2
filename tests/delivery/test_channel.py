"""Tests for sonosd.delivery.channel: snapshot-then-live with no gap and no duplicate."""

from __future__ import annotations

import secrets
import tracemalloc
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sonosd.delivery.channel import (
    BadOperation,
    Channel,
    QueuedClient,
    json_line,
    read_operation,
)
from sonosd.delivery.filters import Filter
from sonosd.delivery.flow import ClientQueue
from sonosd.delivery.hub import Cursor, Hub, Message
from sonosd.delivery.metrics import ApiMetrics


class Recorder:
    """A client that records frames."""

    def __init__(self, filter: Filter | None = None) -> None:
        self.filter = filter or Filter()
        self.frames: list[Any] = []
        self.shut = False

    def offer(self, frame: Any) -> None:
        self.frames.append(frame)

    def shutdown(self) -> None:
        self.shut = True


def publish(hub: Hub, room: str = "Kitchen") -> Message:
    return hub.publish("event", {}, speaker={"uid": "U-" + room, "name": room, "host": "h"})


class ChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.hub = Hub(Clock(), replay=5, run="r1")
        self.hub.set_snapshot_provider(lambda: {"speakers": []})
        self.framed: list[int] = []
        self.channel: Channel[bytes] = Channel(self.hub, "test", self.frame)
        self.channel.start()

    def frame(self, message: Message) -> bytes:
        self.framed.append(message.id)
        return message.raw

    def test_snapshot_then_every_later_message(self) -> None:
        """A fresh client's snapshot covers up to last_id; every later message follows."""
        publish(self.hub)
        client = Recorder()
        start = self.channel.join(client, None)
        assert start.snapshot is not None
        self.assertEqual(start.snapshot["last_id"], 1)
        later = [publish(self.hub).raw for _ in range(3)]
        self.assertEqual(client.frames, later)

    def test_joining_and_leaving_tell_the_hubs_client_observers(self) -> None:
        """A client joining, and a client leaving (once, however often it is said), tell the
        hub's client observers, which see the channel's clients as they are then."""
        seen: list[int] = []
        self.hub.add_clients_observer(lambda: seen.append(len(self.channel.clients)))
        first, second = Recorder(), Recorder()
        self.channel.join(first, None)
        self.channel.join(second, None)
        self.channel.leave(first)
        self.channel.leave(first)
        self.channel.too_slow(second, 3)
        self.assertEqual(seen, [1, 2, 1, 0])

    def test_resume_replays_exactly_the_gap(self) -> None:
        """A client resuming from an id gets the later ring messages, filtered, then live."""
        publish(self.hub, "Kitchen")
        office = publish(self.hub, "Office")
        publish(self.hub, "Kitchen")
        client = Recorder(Filter(rooms=["office"]))
        start = self.channel.join(client, Cursor("r1", 1))
        self.assertEqual((start.snapshot, start.reset), (None, None))
        self.assertEqual([(m.id, m.raw) for m in start.replay], [(office.id, office.raw)])
        live = publish(self.hub, "Office")
        self.assertEqual(client.frames, [live.raw])

    def test_resume_too_old_or_future(self) -> None:
        """An id gone from the ring or from the future resets with a snapshot."""
        for _ in range(8):
            publish(self.hub)
        for last_id in (1, 99):
            start = self.channel.join(Recorder(), Cursor("r1", last_id))
            self.assertIsNotNone(start.snapshot)
            self.assertIn(str(last_id), start.reset or "")

    def test_resume_from_another_run_or_without_run_resets(self) -> None:
        """An id of another run of the daemon, or one without its run, resets with a snapshot
        even when that id is in this run's ring."""
        for _ in range(3):
            publish(self.hub)
        for cursor, words in ((Cursor("r0", 2), "another run"), (Cursor(None, 2), "without")):
            start = self.channel.join(Recorder(), cursor)
            assert start.snapshot is not None
            self.assertEqual((start.snapshot["run"], start.snapshot["last_id"]), ("r1", 3))
            self.assertIn(words, start.reset or "")
            self.assertEqual(list(start.replay), [])

    def test_frames_once_per_message(self) -> None:
        """A message is framed once however many clients receive it, and not at all if none."""
        clients = [Recorder() for _ in range(5)]
        for client in clients:
            self.channel.join(client, None)
        message = publish(self.hub)
        self.assertEqual(self.framed, [message.id])
        self.assertTrue(all(c.frames[0] is clients[0].frames[0] for c in clients))
        for client in clients:
            self.channel.refilter(client, Filter(rooms=["Nowhere"]))
        publish(self.hub)
        self.assertEqual(self.framed, [message.id])

    def test_too_slow_counts(self) -> None:
        """A slow client leaves the channel and is counted with its dropped frames."""
        metrics = ApiMetrics(self.hub, lambda: 0.0, lambda: {})
        channel: Channel[bytes] = Channel(self.hub, "sse", self.frame, metrics)
        client = Recorder()
        channel.join(client, None)
        channel.too_slow(client, 7)
        self.assertEqual(channel.clients, [])
        self.assertEqual(metrics.dropped.labels("sse")._value.get(), 7)
        self.assertIn(b'sonosd_api_clients{channel="sse"} 0.0', metrics.render())

    def test_stop_shuts_clients_and_leaves_hub(self) -> None:
        """stop() shuts every client down and unregisters the sink."""
        client = Recorder()
        self.channel.join(client, None)
        self.channel.stop()
        self.assertTrue(client.shut)
        self.assertNotIn(self.channel, self.hub.sinks)
        publish(self.hub)
        self.assertEqual(client.frames, [])

    def test_json_line(self) -> None:
        """A JSON line is compact and newline-terminated."""
        self.assertEqual(json_line({"a": 1}), b'{"a":1}\n')


class BatchRecorder(Recorder):
    """A client that records each offer_many call as one batch."""

    def __init__(self, filter: Filter | None = None) -> None:
        super().__init__(filter)
        self.batches: list[list[Any]] = []

    def offer_many(self, frames: Any) -> None:
        self.batches.append(list(frames))


class CountingFilter:
    """A filter that counts its evaluations."""

    def __init__(self) -> None:
        self.calls = 0

    def matches(self, message: Message) -> bool:
        self.calls += 1
        return True


class BatchedChannelTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock, replay=10)
        self.hub.set_snapshot_provider(lambda: {"speakers": []})
        self.channel: Channel[bytes] = Channel(self.hub, "test", lambda m: m.raw, clock=self.clock)
        self.channel.start()

    def test_one_batch_per_client_per_turn(self) -> None:
        """The messages of one reactor turn reach each client in one offer_many, in order."""
        kitchen, office = BatchRecorder(), BatchRecorder(Filter(rooms=["office"]))
        self.channel.join(kitchen, None)
        self.channel.join(office, None)
        messages = [publish(self.hub, room) for room in ("Kitchen", "Office", "Kitchen")]
        self.assertEqual(kitchen.batches, [])
        self.clock.advance(0)
        self.assertEqual(kitchen.batches, [[m.raw for m in messages]])
        self.assertEqual(office.batches, [[messages[1].raw]])
        later = publish(self.hub)
        self.clock.advance(0)
        self.assertEqual(kitchen.batches[-1], [later.raw])

    def test_join_mid_turn_gets_each_message_once(self) -> None:
        """A client joining while a turn's frames wait gets their messages in its replay, not
        twice: the waiting frames go to the clients already there as it joins."""
        first = BatchRecorder()
        self.channel.join(first, None)
        one = publish(self.hub)
        late = BatchRecorder()
        start = self.channel.join(late, Cursor(self.hub.run, 0))
        self.assertEqual([m.id for m in start.replay], [1])
        self.assertEqual(first.batches, [[one.raw]])
        two = publish(self.hub)
        self.clock.advance(0)
        self.assertEqual(first.batches, [[one.raw], [two.raw]])
        self.assertEqual(late.batches, [[two.raw]])

    def test_filter_change_mid_turn(self) -> None:
        """A client changing its filter while frames wait gets them under its old filter, and
        the turn's later messages under its new one."""
        client, other = BatchRecorder(), BatchRecorder()
        self.channel.join(client, None)
        self.channel.join(other, None)
        kitchen = publish(self.hub, "Kitchen")
        self.channel.refilter(client, Filter(rooms=["office"]))
        self.assertEqual(client.batches, [[kitchen.raw]])
        self.assertEqual(other.batches, [[kitchen.raw]])
        later = [publish(self.hub, room) for room in ("Kitchen", "Office")]
        self.clock.advance(0)
        self.assertEqual(client.batches, [[kitchen.raw], [later[1].raw]])
        self.assertEqual(other.batches, [[kitchen.raw], [m.raw for m in later]])
        self.assertIs(client.filter, self.channel.intern(Filter(rooms=["Office"])))

    def test_groups_follow_the_clients(self) -> None:
        """Clients with many distinct filters coming and going leave no group behind, and a
        client that leaves mid-turn is not written to while its group's others are."""
        for index in range(50):
            client = BatchRecorder(Filter(rooms=[f"room {index}"]))
            self.channel.join(client, None)
            self.channel.leave(client)
        self.assertEqual(self.channel._groups, {})
        first, second = BatchRecorder(), BatchRecorder()
        self.channel.join(first, None)
        self.channel.join(second, None)
        self.assertEqual(len(self.channel._groups), 1)
        message = publish(self.hub)
        self.channel.leave(first)
        self.clock.advance(0)
        self.assertEqual((first.batches, second.batches), ([], [[message.raw]]))

    def test_leave_drops_the_pending_batch(self) -> None:
        """A client that leaves before the end of the turn is not written to."""
        client = BatchRecorder()
        self.channel.join(client, None)
        publish(self.hub)
        self.channel.leave(client)
        self.clock.advance(0)
        self.assertEqual(client.batches, [])

    def test_flush_now_and_stop(self) -> None:
        """flush() hands the batch over at once (before a reply); stop() flushes first."""
        client = BatchRecorder()
        self.channel.join(client, None)
        publish(self.hub)
        self.channel.flush()
        self.assertEqual(len(client.batches), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        publish(self.hub)
        self.channel.stop()
        self.assertEqual(len(client.batches), 2)
        self.assertTrue(client.shut)

    def test_failing_client_does_not_stop_the_others(self) -> None:
        """A client that raises while being written to is logged; the others still get theirs."""
        broken, fine = BatchRecorder(), BatchRecorder()
        broken.offer_many = lambda frames: 1 / 0  # type: ignore[method-assign]
        self.channel.join(broken, None)
        self.channel.join(fine, None)
        publish(self.hub)
        self.clock.advance(0)
        self.assertEqual(len(fine.batches), 1)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_filter_evaluated_once_per_distinct_filter(self) -> None:
        """Clients sharing one filter object cost one evaluation per message."""
        shared = CountingFilter()
        clients = [BatchRecorder() for _ in range(4)]
        for client in clients:
            self.channel.join(client, None)
            self.channel.refilter(client, shared)  # type: ignore[arg-type]
        publish(self.hub)
        self.assertEqual(shared.calls, 1)

    def test_join_interns_equal_filters(self) -> None:
        """Equal filters of different clients become one object; unused ones are forgotten."""
        a, b = Recorder(Filter(rooms=["Kitchen"])), Recorder(Filter(rooms=["kitchen"]))
        self.channel.join(a, None)
        self.channel.join(b, None)
        self.assertIs(a.filter, b.filter)
        for index in range(40):
            self.channel.intern(Filter(rooms=[f"room {index}"]))
        self.assertIs(self.channel.intern(Filter(rooms=["KITCHEN"])), a.filter)
        self.assertLessEqual(len(self.channel._filters), 2 * 2 + 16 + 1)


class OperationTests(SynchronousTestCase):
    def test_read_operation(self) -> None:
        """An operation is a JSON object; anything else is refused with the client's message."""
        self.assertEqual(read_operation(b'{"op": "filter", "id": 1}'), {"op": "filter", "id": 1})
        for payload, message, reason in (
            (b"{nope", "not JSON: unexpected character", "not_json"),
            (b"\xff", "not UTF-8 (byte 0)", "not_json"),
            (b"[1]", "expected a JSON object", "not_json"),
            (b"[" * 40 + b"]" * 40, "JSON nested 40 levels deep", "too_deep"),
            (b" " * 70_000 + b"{}", "JSON of 70002 bytes", "too_large"),
        ):
            with self.assertRaises(BadOperation) as raised:
                read_operation(payload)
            self.assertTrue(str(raised.exception).startswith(message), str(raised.exception))
            self.assertEqual(raised.exception.reason, reason)

    def test_set_filter(self) -> None:
        """A filter operation replaces the client's filter (interned) or leaves it on error."""
        channel: Channel[bytes] = Channel(Hub(Clock()), "test", lambda m: m.raw)
        client, other = Recorder(), Recorder(Filter(rooms=["Office"]))
        channel.join(other, None)
        reply = channel.set_filter(client, {"op": "filter", "id": 7, "rooms": ["office"]})
        self.assertEqual(reply, {"type": "filter", "id": 7, "filter": {"rooms": ["office"]}})
        self.assertIs(client.filter, other.filter)
        reply = channel.set_filter(client, {"op": "filter", "id": 8, "colour": "red"})
        self.assertEqual(
            (reply["type"], reply["id"], reply["error"]["code"]), ("error", 8, "bad_filter")
        )
        self.assertIs(client.filter, other.filter)

    def test_queued_client(self) -> None:
        """A queued client drops frames before its queue exists, then writes through it."""
        written: list[bytes] = []
        client = QueuedClient()
        client.offer(b"early")
        client.offer_many([b"early"])
        client.queue = ClientQueue(10, written.append, lambda n: None, lambda f: written.extend(f))
        client.offer(b"a")
        client.offer_many([b"b", b"c"])
        self.assertEqual(written, [b"a", b"b", b"c"])


def test_a_long_replay_is_never_in_memory_at_once() -> None:
    """Resuming from 10,000 messages back costs no burst of memory (docs/api.md): joining
    and taking the first frames allocate a block's worth, not the replay's megabytes."""
    hub = Hub(Clock(), replay=10_000, run="r1")
    channel: Channel[bytes] = Channel(hub, "test", lambda m: m.raw)
    published = [
        publish_padded(hub, secrets.token_hex(400), room=f"Room {n % 7}") for n in range(10_000)
    ]
    replay_json = sum(len(m.raw) for m in published)
    assert replay_json > 8_000_000
    client = Recorder(Filter(rooms=["room 3"]))
    tracemalloc.start()
    try:
        replay = iter(channel.join(client, Cursor("r1", 0)).replay)
        first = [next(replay) for _ in range(100)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 500_000, peak
    wanted = [m.raw for m in published if m.room == "Room 3"]
    assert [m.raw for m in first] + [m.raw for m in replay] == wanted


def publish_padded(hub: Hub, pad: str, room: str) -> Message:
    speaker = {"uid": "U-" + room, "name": room, "host": "h"}
    return hub.publish("event", {"pad": pad}, speaker=speaker, service="Queue")
