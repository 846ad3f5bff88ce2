"""Tests for sonosd.logs: text and JSON-lines observers, twistd's factory, stdlib routing."""

from __future__ import annotations

import io
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.logger import (
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    LogPublisher,
)
from twisted.python.failure import Failure
from zope.interface import implementer

from sonosd import logs

# 2026-11-24T17:30:00.123Z
WHEN = 1795541400.123


def event(**fields: Any) -> LogEvent:
    """A twisted.logger event as ``Logger.emit`` would build it."""
    base: dict[str, Any] = {
        "log_time": WHEN,
        "log_level": LogLevel.info,
        "log_namespace": "sonosd.household.supervisor",
        "log_format": "renewed {speaker} {service}",
        "speaker": "Kitchen",
        "service": "AVTransport",
    }
    base.update(fields)
    return base


def failure() -> Failure:
    try:
        raise ValueError("boom")
    except ValueError:
        return Failure()


def test_text_line() -> None:
    """A text event is one line: UTC time, level, namespace, message."""
    assert logs.format_text(event()) == (
        "2026-11-24T17:30:00.123Z info [sonosd.household.supervisor] renewed Kitchen AVTransport\n"
    )


def test_text_levels_and_legacy_events() -> None:
    """Levels are named; legacy events show their system instead of log_legacy."""
    line = logs.format_text(
        event(log_level=LogLevel.warn, log_namespace="log_legacy", log_system="HTTPChannel,3")
    )
    assert line.startswith("2026-11-24T17:30:00.123Z warn [HTTPChannel,3] renewed")
    legacy = logs.format_text(event(log_namespace="log_legacy", log_system="-"))
    assert " [-] " in legacy


def test_text_without_level_or_namespace() -> None:
    """An event missing its level and namespace still makes a line."""
    line = logs.format_text({"log_time": WHEN, "log_format": "hello"})
    assert line == "2026-11-24T17:30:00.123Z info [-] hello\n"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"log_format": "{n:>4} {x!r} {d[k]}", "n": 7, "x": "a", "d": {"k": 1}}, "   7 'a' 1"),
        ({"log_format": "called {f()}", "f": lambda: "yes"}, "called yes"),
        ({"log_format": b"bytes {speaker}"}, "bytes Kitchen"),
        ({"log_format": None}, ""),
    ],
)
def test_messages_are_formatted_as_twisted_formats_them(
    fields: dict[str, Any], message: str
) -> None:
    """Formats of plain fields (the fast path), Twisted's call syntax, bytes and no format give
    what ``twisted.logger.formatEvent`` gives."""
    from twisted.logger import formatEvent

    assert formatEvent(event(**fields)) == message
    assert logs.format_text(event(**fields)).endswith(f"] {message}\n")


def test_a_message_that_cannot_be_formatted_says_so() -> None:
    """A missing field gives Twisted's "Unable to format event" line, not an exception."""
    line = logs.format_text(event(log_format="renewed {nobody}"))
    assert "Unable to format event" in line and line.endswith("\n")


def test_times_are_rounded_as_datetime_rounds_them() -> None:
    """The per-second cache of ``isotime`` gives datetime's rounding at every boundary."""
    from datetime import UTC, datetime

    for seconds in (WHEN, 1795541400.0, 1795541400.9999996, 1795541401.0004999, -0.0000004):
        moment = datetime.fromtimestamp(seconds, UTC)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
        assert logs.isotime(seconds) == expected


def test_text_traceback_is_indented() -> None:
    """A failure's traceback follows the line, indented, so that the event stays one block."""
    text = logs.format_text(event(log_failure=failure(), log_level=LogLevel.error))
    first, *rest = text.rstrip("\n").split("\n")
    assert first.endswith("renewed Kitchen AVTransport")
    assert rest and all(line.startswith("    ") for line in rest)
    assert "ValueError: boom" in text


def test_text_multiline_message_is_indented() -> None:
    """A message with newlines cannot forge a new log line."""
    text = logs.format_text(event(speaker="Kitchen\n2026-01-01T00:00:00.000Z critical [x] y"))
    assert text.count("\n") == 2
    assert text.split("\n")[1].startswith("    2026-01-01")


def test_json_line() -> None:
    """A JSON event is one object on one line, with the named fields at the top level."""
    line = logs.format_json(event())
    assert line.endswith("\n") and line.count("\n") == 1
    assert not line.startswith("\x1e")
    assert json.loads(line) == {
        "time": "2026-11-24T17:30:00.123Z",
        "level": "info",
        "namespace": "sonosd.household.supervisor",
        "message": "renewed Kitchen AVTransport",
        "speaker": "Kitchen",
        "service": "AVTransport",
    }


def test_json_reserved_and_odd_fields() -> None:
    """Fields named like the record's own keys are renamed; odd values become strings."""
    line = logs.format_json(
        event(log_format="x", time=5, level="mine", obj=object(), path=Path("/a"))
    )
    record = json.loads(line)
    assert record["time"] == "2026-11-24T17:30:00.123Z"
    assert record["time_"] == 5
    assert record["level_"] == "mine"
    assert record["obj"].startswith("<object object at")
    assert record["path"] == "/a"


def test_json_nan_and_bad_keys() -> None:
    """Values JSON cannot hold (NaN, non-string keys) still give valid JSON."""
    line = logs.format_json(
        event(log_format="x", ratio=math.nan, table={1: "a", "b": [math.inf, (1, 2)]})
    )
    record = json.loads(line)
    assert record["ratio"] == "nan"
    assert record["table"] == {"1": "a", "b": ["inf", [1, 2]]}


def test_json_values_that_cannot_be_shown() -> None:
    """A field whose str() raises, or a circular one, still gives a valid line."""

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    circular: list[object] = []
    circular.append(circular)
    record = json.loads(logs.format_json(event(log_format="x", broken=Broken(), loop=circular)))
    assert record["broken"].startswith("<")
    assert record["loop"]


def test_json_failure() -> None:
    """A failure's traceback is a field of the same object."""
    record = json.loads(logs.format_json(event(log_failure=failure())))
    assert "ValueError: boom" in record["traceback"]
    assert "log_failure" not in record


def test_json_drops_legacy_keys() -> None:
    """twisted.python.log's own keys are not repeated as fields."""
    legacy = event(
        log_format="{log_text}",
        log_text="hello",
        message=("hello",),
        isError=0,
        system="-",
        time=WHEN,
        format=None,
    )
    del legacy["speaker"], legacy["service"]
    legacy["log_namespace"] = "log_legacy"
    record = json.loads(logs.format_json(legacy))
    assert set(record) == {"time", "level", "namespace", "message"}


def test_unrenderable_failure_does_not_lose_the_event() -> None:
    """A failure whose traceback cannot be rendered still logs its type and value."""

    class Broken(Failure):
        def getTraceback(self, *args: Any, **kwargs: Any) -> str:
            raise RuntimeError("no traceback")

    broken = Broken(ValueError("v"))
    assert "ValueError" in logs.format_text(event(log_failure=broken))


@given(st.text(), st.dictionaries(st.text(min_size=1), st.text() | st.integers() | st.floats()))
def test_json_is_always_one_line(message: str, fields: dict[str, Any]) -> None:
    """Whatever the message and fields, a JSON record is exactly one parseable line."""
    fields = {key: value for key, value in fields.items() if not key.startswith("log_")}
    line = logs.format_json({**fields, "log_format": "{m}", "m": message, "log_time": WHEN})
    assert line.count("\n") == 1 and line.endswith("\n")
    assert json.loads(line)["message"] == message


def test_observer_filters_by_level() -> None:
    """The daemon's observer drops events below the configured level."""
    stream = io.StringIO()
    observer = logs.make_observer("text", "warn", stream)
    observer(event(log_level=LogLevel.info))
    observer(event(log_level=LogLevel.error, speaker="Office"))
    assert stream.getvalue().splitlines() == [
        "2026-11-24T17:30:00.123Z error [sonosd.household.supervisor] renewed Office AVTransport"
    ]


def test_json_observer_through_a_logger() -> None:
    """A Logger's events reach the JSON observer as one object per line."""
    stream = io.StringIO()
    publisher = LogPublisher(logs.make_observer("json", "debug", stream))
    log = Logger(namespace="sonosd.test", observer=publisher)
    log.debug("one {n}", n=1)
    log.info("two {n}", n=2)
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["message"], r["n"]) for r in records] == [
        ("debug", "one 1", 1),
        ("info", "two 2", 2),
    ]


def test_daemon_observer_writes_to_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    """twistd's factory writes the recorded format to standard output by default."""
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(logs, "_daemon", logs.DaemonLogging())
    logs.use_for_daemon(logs.DaemonLogging(format="json", level="info"))
    observer = logs.daemon_observer()
    observer(event(log_level=LogLevel.debug))
    observer(event())
    assert [json.loads(line)["speaker"] for line in stdout.getvalue().splitlines()] == ["Kitchen"]


def test_daemon_observer_writes_to_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With twistd's --logfile, the factory writes the configured format to that file."""
    path = tmp_path / "sonosd.log"
    monkeypatch.setattr(logs, "_daemon", logs.DaemonLogging("text", "info", str(path)))
    observer = logs.daemon_observer()
    observer(event())
    assert path.read_text().endswith("renewed Kitchen AVTransport\n")


@implementer(ILogObserver)
class Recorder(list[LogEvent]):
    """An observer that keeps every event."""

    def __call__(self, event: LogEvent) -> None:
        self.append(event)


def recording_handler(level: str = "debug") -> tuple[logging.Logger, Recorder]:
    """A private stdlib logger routed into a recording twisted observer."""
    events = Recorder()
    stdlib = logging.getLogger(f"sonosd-test-{id(events)}")
    stdlib.propagate = False
    handler = logs.route_stdlib_logging(level, stdlib, observer=events)
    assert handler in stdlib.handlers
    return stdlib, events


def test_stdlib_records_become_twisted_events() -> None:
    """A stdlib record (as SoCo logs) becomes an event with its name, level and text."""
    stdlib, events = recording_handler()
    stdlib.getChild("soco.services").warning("renewal of %s {failed}", "sid-1")
    (only,) = events
    assert only["log_namespace"] == f"{stdlib.name}.soco.services"
    assert only["log_level"] == LogLevel.warn
    assert logs.format_text(only).endswith("renewal of sid-1 {failed}\n")


def test_stdlib_exceptions_carry_their_traceback() -> None:
    """logger.exception() records keep their traceback as the event's failure."""
    stdlib, events = recording_handler()
    try:
        raise KeyError("timeout")
    except KeyError:
        stdlib.exception("auto-renew failed")
    (only,) = events
    assert only["log_level"] == LogLevel.error
    assert isinstance(only["log_failure"], Failure)
    assert "KeyError: 'timeout'" in logs.format_json(only)


def test_stdlib_bad_format_arguments() -> None:
    """A stdlib call whose arguments do not fit its format is still logged."""
    stdlib, events = recording_handler()
    stdlib.info("%d items", "many")
    assert "'%d items'" in logs.format_text(events[0])


def test_stdlib_records_are_cut() -> None:
    """A stdlib record of a megabyte (SoCo logging a speaker's whole answer) is cut at
    MAX_RECORD characters, saying how many were left out."""
    stdlib, events = recording_handler()
    stdlib.error("Error parsing UPnP error response from %s: %s", "127.0.0.2", "x" * 1_000_000)
    text = logs.format_text(events[0])
    assert len(text) < logs.MAX_RECORD + 200
    prefix = len("Error parsing UPnP error response from 127.0.0.2: ")
    assert text.endswith(f"... ({1_000_000 + prefix - logs.MAX_RECORD} more characters)\n")


def test_stdlib_level_is_applied() -> None:
    """Records below the configured level are not even built."""
    stdlib, events = recording_handler("warn")
    stdlib.info("hidden")
    stdlib.error("shown")
    assert [logs.format_text(e).split("] ")[1] for e in events] == ["shown\n"]
    assert stdlib.level == logging.WARNING


def test_routing_twice_keeps_one_handler() -> None:
    """Routing again replaces the handler instead of doubling every line (and keeps others)."""
    stdlib, events = recording_handler()
    other = logging.NullHandler()
    stdlib.addHandler(other)
    logs.route_stdlib_logging("info", stdlib, observer=events)
    assert sum(isinstance(h, logs.StdlibHandler) for h in stdlib.handlers) == 1
    assert other in stdlib.handlers
    stdlib.info("once")
    assert len(events) == 1


@pytest.mark.parametrize(
    ("levelno", "level"),
    [
        (logging.DEBUG, LogLevel.debug),
        (5, LogLevel.debug),
        (logging.INFO, LogLevel.info),
        (25, LogLevel.info),
        (logging.WARNING, LogLevel.warn),
        (logging.ERROR, LogLevel.error),
        (logging.CRITICAL, LogLevel.critical),
        (60, LogLevel.critical),
    ],
)
def test_stdlib_level_mapping(levelno: int, level: Any) -> None:
    """Standard and custom stdlib levels map onto twisted's levels, rounding down."""
    assert logs.twisted_level(levelno) == level


def test_default_observer_is_the_global_publisher() -> None:
    """Without an observer, routed records go to twisted's global log publisher."""
    handler = logs.StdlibHandler()
    from twisted.logger import globalLogPublisher

    assert handler.observer is globalLogPublisher


def test_twisted_connection_noise_is_recognised() -> None:
    """Port and factory announcements are noise; twistd's own lines are not."""
    assert logs.is_twisted_noise(
        {"log_namespace": "log_legacy", "message": ("Site (WrappingFactory) starting on 1400",)}
    )
    assert logs.is_twisted_noise(
        {"log_namespace": "log_legacy", "message": ("(TCP Port 8 Closed)",)}
    )
    assert logs.is_twisted_noise({"log_format": "Starting factory {factory!r}"})
    assert logs.is_twisted_noise(
        {"log_namespace": "log_legacy", "format": "%(p)s starting on %(n)s", "p": "X", "n": 1}
    )
    assert not logs.is_twisted_noise(
        {"log_namespace": "log_legacy", "message": ("Server Shut Down.",)}
    )
    assert not logs.is_twisted_noise({"log_namespace": "sonosd", "log_format": "listening on 8"})


def test_noise_shown_only_at_debug() -> None:
    """The daemon's observer drops the noise at info and writes it at debug; set_level
    changes the level of the running observer (a reload)."""
    stream = io.StringIO()
    predicate = LogLevelFilterPredicate()
    observer = logs.make_observer("text", "info", stream, predicate)
    noise = event(log_format="Starting factory {factory!r}", factory="F")
    observer(noise)
    observer(event(log_level=LogLevel.debug))
    assert stream.getvalue() == ""
    logs._set_predicate_level(predicate, "debug")
    observer(noise)
    observer(event(log_level=LogLevel.debug))
    assert stream.getvalue().count("\n") == 2


def test_set_level_changes_the_daemon_observer_and_stdlib(monkeypatch: pytest.MonkeyPatch) -> None:
    """set_level moves the daemon's level and the stdlib root's; current_level tells it."""
    stdlib = logging.getLogger("sonosd-test-set-level")
    monkeypatch.setattr(logs, "_daemon_predicate", LogLevelFilterPredicate())
    logs.set_level("warn", stdlib)
    assert logs.current_level() == "warn"
    assert stdlib.level == logging.WARNING
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(logs, "_daemon", logs.DaemonLogging(level="warn"))
    observer = logs.daemon_observer()
    observer(event())
    assert stream.getvalue() == ""
    logs.set_level("info", stdlib)
    observer(event())
    assert "renewed Kitchen AVTransport" in stream.getvalue()
