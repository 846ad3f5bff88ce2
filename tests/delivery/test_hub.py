"""Tests for L{sonosd.delivery.hub}."""

from __future__ import annotations

import json
import re
import secrets
from datetime import UTC, datetime

from twisted.internet.task import Clock
from zope.interface import implementer

from sonosd.delivery.hub import MAX_RUN, Cursor, Hub, ISink, Message, parse_cursor


@implementer(ISink)
class RecordingSink:
    """A sink that keeps what it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.messages.append(message)


@implementer(ISink)
class BrokenSink:
    """A sink that raises on every message."""

    def deliver(self, message: Message) -> None:
        raise RuntimeError("boom")


def make_hub(replay: int = 100) -> tuple[Hub, Clock]:
    clock = Clock()
    clock.advance(1_764_000_000.25)
    return Hub(clock, replay=replay), clock


def test_publish_stamps_monotonic_ids_and_time() -> None:
    """Each message gets the next id and the clock's time in UTC with milliseconds."""
    hub, clock = make_hub()
    first = hub.publish("speaker.online", {})
    clock.advance(1)
    second = hub.publish("speaker.offline", {"reason": "timeout"})
    assert (first.id, second.id) == (1, 2)
    assert hub.last_id == 2
    assert first.body["time"].endswith(".250Z")
    assert second.body["reason"] == "timeout"


def test_raw_is_the_body_serialised_once() -> None:
    """The raw bytes are the compact JSON of the body, including speaker and service."""
    hub, _ = make_hub()
    speaker = {"uid": "RINCON_1", "name": "Küche", "host": "127.0.0.2"}
    message = hub.publish("event", {"seq": 3}, speaker=speaker, service="AVTransport")
    assert json.loads(message.raw) == message.body
    assert message.body["speaker"] == speaker
    assert (message.speaker_uid, message.room, message.service) == (
        "RINCON_1",
        "Küche",
        "AVTransport",
    )
    assert "Küche".encode() in message.raw


def test_every_sink_gets_every_message_even_when_one_fails() -> None:
    """A sink that raises is counted and the sinks after it still receive the message."""
    hub, _ = make_hub()
    good = RecordingSink()
    hub.add_sink(BrokenSink())
    hub.add_sink(good)
    hub.publish("event", {})
    assert [m.id for m in good.messages] == [1]
    assert hub.sink_errors == 1


def test_removed_sink_receives_nothing_more() -> None:
    """A removed sink stops receiving; removing an unknown sink is harmless."""
    hub, _ = make_hub()
    sink = RecordingSink()
    hub.add_sink(sink)
    hub.publish("event", {})
    hub.remove_sink(sink)
    hub.remove_sink(RecordingSink())
    hub.publish("event", {})
    assert [m.id for m in sink.messages] == [1]


def test_since_replays_from_the_ring() -> None:
    """since() returns exactly the messages after the given id while the ring has them."""
    hub, _ = make_hub(replay=3)
    for _ in range(5):
        hub.publish("event", {})
    assert [m.id for m in hub.since(2) or []] == [3, 4, 5]
    assert list(hub.since(5) or [0]) == []
    assert hub.since(1) is None
    assert hub.since(9) is None
    assert hub.since(-1) is None


def test_snapshot_is_stamped_with_last_id() -> None:
    """The snapshot carries the provider's state and the id of the last message it includes."""
    hub, _ = make_hub()
    hub.set_snapshot_provider(lambda: {"speakers": {"RINCON_1": {}}})
    hub.publish("event", {})
    snap = hub.snapshot()
    assert snap["type"] == "snapshot"
    assert snap["last_id"] == 1
    assert snap["speakers"] == {"RINCON_1": {}}


def test_time_is_rounded_as_datetime_rounds_it() -> None:
    """Message times match ``datetime.fromtimestamp``'s rounding, across a second's edge."""
    for seconds in (1_764_000_000.9999996, 1_764_000_001.0004, -0.0006, 1_764_000_001.5):
        clock = Clock()
        clock.advance(seconds)
        stamp = datetime.fromtimestamp(seconds, UTC)
        expected = stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"
        assert Hub(clock).publish("speaker.online", {}).body["time"] == expected


def test_ring_keeps_only_the_bytes_and_is_bounded_by_size() -> None:
    """Replayed messages carry the JSON and filter fields only; once the ring's compressed
    bytes exceed its bound, the oldest messages are gone and a client resuming before them
    is told so."""
    speaker = {"uid": "RINCON_1", "name": "Kitchen", "host": "127.0.0.2"}
    hub = Hub(Clock(), replay=10_000, replay_bytes=50_000)
    first = hub.publish("event", {"pad": "x" * 300}, speaker=speaker, service="Queue", event=1)
    assert first.event == 1 and first.body["pad"]
    # Random text compresses little: 200 of these are far over 50,000 bytes.
    published = [
        hub.publish("event", {"pad": secrets.token_hex(300)}, speaker=speaker, service="Queue")
        for _ in range(200)
    ]
    assert hub.since(0) is None
    assert 0 < hub.ring.stored_bytes <= 50_000
    oldest = hub.ring.oldest
    assert oldest is not None and 1 < oldest < 201
    kept = list(hub.since(oldest - 1) or [])
    assert [m.raw for m in kept] == [m.raw for m in published[oldest - 2 :]]
    replayed = kept[0]
    assert (replayed.event, dict(replayed.body)) == (None, {})
    assert (replayed.speaker_uid, replayed.room, replayed.service) == (
        "RINCON_1",
        "Kitchen",
        "Queue",
    )
    assert json.loads(replayed.raw)["id"] == oldest


def test_ring_keeps_large_messages_compressed_and_replays_them_whole() -> None:
    """Large messages count against the ring's byte bound compressed, and are replayed with
    exactly the JSON that was published."""
    speaker = {"uid": "RINCON_1", "name": "Kitchen", "host": "127.0.0.2"}
    pad = "topology " * 2000
    hub = Hub(Clock(), replay=100, replay_bytes=20_000)
    published = [
        hub.publish("event", {"pad": pad}, speaker=speaker, service="ZoneGroupTopology")
        for _ in range(5)
    ]
    small = hub.publish("event", {"pad": "x"}, speaker=speaker, service="Queue")
    # Uncompressed, two of these would not fit in 20,000 bytes.
    assert all(len(m.raw) > 10_000 for m in published)
    replayed = list(hub.since(0) or [])
    assert [m.raw for m in replayed] == [m.raw for m in [*published, small]]
    assert all(type(m) is Message for m in replayed)
    assert (replayed[0].speaker_uid, replayed[0].service) == ("RINCON_1", "ZoneGroupTopology")


def test_every_message_and_the_snapshot_carry_the_run() -> None:
    """The run identifier (12 hex digits) sits next to id in every message and in the
    snapshot; each hub (each start of the daemon) draws a different one."""
    hub = Hub(Clock())
    message = hub.publish("event", {})
    assert list(message.body)[:2] == ["id", "run"]
    assert message.body["run"] == hub.run == hub.snapshot()["run"]
    assert json.loads(message.raw)["run"] == hub.run
    assert len({Hub(Clock()).run for _ in range(20)}) == 20
    assert re.fullmatch("[0-9a-f]{12}", hub.run)


def test_parse_cursor() -> None:
    """A resume point parses from N or R:N (bytes or text), a separate run filling in for
    the plain form; garbage means none."""
    assert parse_cursor(b" 42 ") == Cursor(None, 42)
    assert parse_cursor("42", "abc") == Cursor("abc", 42)
    assert parse_cursor("abc:42", "other") == Cursor("abc", 42)
    assert parse_cursor("0", b"") == Cursor(None, 0)
    assert str(Cursor("abc", 4)) == "abc:4"
    assert parse_cursor("7", "x" * 100) == Cursor("x" * MAX_RUN, 7)
    for garbage in (
        None,
        "",
        "-1",
        "4x",
        "9" * 30,
        "abc:",
        "a:b:c",
        "\u00b2",
        "r:\u00b2",
        "\u0661",
    ):
        assert parse_cursor(garbage) is None


def test_resume_needs_this_run() -> None:
    """resume() replays after an id of this run, and gives a reason to reset otherwise."""
    hub = Hub(Clock(), run="r1")
    for _ in range(3):
        hub.publish("event", {})
    replay = hub.resume(Cursor("r1", 1))
    assert not isinstance(replay, str)
    assert [m.id for m in replay] == [2, 3]
    assert "another run" in str(hub.resume(Cursor("r0", 1)))
    assert "without the run" in str(hub.resume(Cursor(None, 1)))
    assert "replay buffer" in str(hub.resume(Cursor("r1", 9)))
