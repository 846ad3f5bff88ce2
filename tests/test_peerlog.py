"""Tests for sonosd.peerlog: one line per source and reason per interval, with a count."""

from __future__ import annotations

from typing import cast

from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, Logger, LogLevel, formatEvent

from sonosd.peerlog import OTHER_SOURCES, PeerLog


def make(interval: float = 60.0, max_keys: int = 256) -> tuple[PeerLog, Clock, list[LogEvent]]:
    events: list[LogEvent] = []
    log = Logger(namespace="test", observer=cast(ILogObserver, events.append))
    clock = Clock()
    return PeerLog(log, clock, interval, max_keys), clock, events


def test_first_occurrence_is_logged_at_once() -> None:
    """The first occurrence of a source and reason is logged in full, with its fields."""
    peer, _, events = make()
    peer.emit("10.0.0.9", "malformed", "bad NOTIFY from {source}: {what}", what="NT")
    [event] = events
    assert formatEvent(event) == "bad NOTIFY from 10.0.0.9: NT"
    assert event["log_level"] is LogLevel.warn
    assert peer.counts["malformed"] == 1


def test_repeats_are_summed_up_once_per_interval() -> None:
    """10,000 repeats within an interval give one summary line, with the count and the last."""
    peer, clock, events = make()
    for index in range(10_000):
        peer.emit("10.0.0.9", "malformed", "bad NOTIFY from {source}: #{n}", n=index)
    assert len(events) == 1
    clock.advance(60)
    assert len(events) == 2
    summary = formatEvent(events[1])
    assert "9999 more like this from 10.0.0.9 (malformed) in the last 60 s" in summary
    assert summary.endswith("the last: bad NOTIFY from 10.0.0.9: #9999")
    assert peer.counts["malformed"] == 10_000
    assert peer.suppressed == 9_999
    assert clock.getDelayedCalls() == []


def test_sources_and_reasons_are_separate() -> None:
    """Each source, and each reason, gets its own first line."""
    peer, _, events = make()
    peer.emit("a", "malformed", "x")
    peer.emit("b", "malformed", "x")
    peer.emit("a", "unknown_sid", "x", level=LogLevel.info)
    peer.emit(None, "malformed", "x")
    assert [(e["source"], e["reason"]) for e in events] == [
        ("a", "malformed"),
        ("b", "malformed"),
        ("a", "unknown_sid"),
        ("-", "malformed"),
    ]


def test_a_new_interval_logs_again_without_a_timer() -> None:
    """Without repeats no timer is left; an occurrence after the interval is logged again."""
    peer, clock, events = make(interval=10.0)
    peer.emit("a", "r", "x")
    assert clock.getDelayedCalls() == []
    clock.advance(11)
    peer.emit("a", "r", "x")
    assert len(events) == 2


def test_many_sources_share_one_key() -> None:
    """Beyond max_keys sources in one interval, new ones are counted as other sources."""
    peer, clock, events = make(max_keys=3)
    for source in "abcdefg":
        peer.emit(source, "r", "x")
    assert [e["source"] for e in events] == ["a", "b", "c", OTHER_SOURCES]
    assert peer.counts["r"] == 7
    clock.advance(60)
    assert f"3 more like this from {OTHER_SOURCES}" in formatEvent(events[-1])


def test_stop_flushes() -> None:
    """stop() logs the pending summary at once and leaves no timer."""
    peer, clock, events = make()
    peer.emit("a", "r", "x")
    peer.emit("a", "r", "x")
    peer.stop()
    assert len(events) == 2
    assert clock.getDelayedCalls() == []


def test_by_default_a_source_and_reason_is_logged_once_a_minute() -> None:
    """Built as the API, the WebSocket channel and the MQTT sink build it (no interval given),
    a peer log writes one line per source and reason per minute: a repeat 59 s after the
    first is only counted, and its summary comes at 60 s."""
    events: list[LogEvent] = []
    clock = Clock()
    peer = PeerLog(Logger(observer=cast(ILogObserver, events.append)), clock)
    peer.emit("10.0.0.9", "malformed", "bad NOTIFY from {source}")
    clock.advance(59)
    peer.emit("10.0.0.9", "malformed", "bad NOTIFY from {source}")
    assert len(events) == 1
    clock.advance(1)
    assert len(events) == 2
    assert "1 more like this from 10.0.0.9 (malformed) in the last 60 s" in formatEvent(events[1])
