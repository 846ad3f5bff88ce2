# -*- test-case-name: tests.test_logs -*-
"""The daemon's log: readable text or JSON lines, and SoCo's stdlib logging routed into it.

Everything in sonosd logs through ``twisted.logger.Logger`` with named fields. This module
turns those events into output:

- ``text``: one readable line per event,
  ``2026-11-24T17:30:00.123Z info [sonosd.household.supervisor] renewed Kitchen AVTransport``
  (a traceback, when there is one, follows on indented lines);
- ``json``: one JSON object per line for log shippers (Loki, Vector, journald's JSON
  readers): ``time``, ``level``, ``namespace``, ``message``, every named field, and
  ``traceback`` when there is one. Unlike twisted's ``jsonFileLogObserver`` no record
  separator byte precedes the objects.

twistd builds its log observer before the application runs, from a zero-argument factory
named by its ``--logger`` option. ``sonosd.tap.Options`` records the configured format and
level with ``use_for_daemon`` and names ``daemon_observer`` as that factory, unless the user
chose ``--logger`` or ``--syslog`` themselves.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

import attrs
from twisted.logger import (
    FileLogObserver,
    FilteringLogObserver,
    ILogFilterPredicate,
    ILogObserver,
    LogEvent,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    formatEvent,
    globalLogPublisher,
)
from twisted.python.failure import Failure
from zope.interface import implementer

LEVELS: Mapping[str, LogLevel] = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}

_STDLIB_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Keys of legacy (twisted.python.log) events that are not the caller's named fields.
_LEGACY_KEYS = frozenset({"message", "isError", "system", "time", "format", "why", "failure"})
_RESERVED = frozenset({"time", "level", "namespace", "message", "traceback"})


_last_second: list[Any] = [None, ""]
_MILLISECONDS = tuple(f"{ms:03d}Z" for ms in range(1000))


def isotime(seconds: float) -> str:
    """``seconds`` since the epoch as the daemon writes times everywhere (log lines, message
    and state times): ``2024-01-31T12:00:00.123Z``, UTC, rounded as
    ``datetime.fromtimestamp`` rounds it (to the microsecond, half to even), then truncated to
    the millisecond."""
    fraction, whole = math.modf(seconds)
    micros = round(fraction * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    # Formatting the date and time is most of the cost, and log lines and messages come many
    # a second: it is done once per second.
    if _last_second[0] != whole:
        stamp = datetime.fromtimestamp(whole, UTC)
        _last_second[:] = [whole, stamp.strftime("%Y-%m-%dT%H:%M:%S.")]
    return _last_second[1] + _MILLISECONDS[micros // 1000]


def _timestamp(event: LogEvent) -> str:
    when = event.get("log_time")
    return isotime(time.time() if when is None else when)


def _format(event: LogEvent) -> str:
    """The event's message: ``formatEvent(event)``, with ``str.format_map`` for a format that
    only names fields (a tenth of the cost of the ``string.Formatter`` Twisted uses; every
    event takes this path, one per message at info).

    Twisted's extra syntax (``{f()}`` calls ``f``), flattened events and anything that fails
    go to ``formatEvent``, which also turns a failure into its own message.
    """
    fmt = event.get("log_format")
    if type(fmt) is str and "()" not in fmt and "log_flattened" not in event:
        try:
            return fmt.format_map(event)
        except Exception:  # a missing field, a broken __format__: formatEvent says so
            pass
    return formatEvent(event)


def _level(event: LogEvent) -> str:
    name = getattr(event.get("log_level"), "name", None)
    return name if isinstance(name, str) and name in LEVELS else "info"


def _namespace(event: LogEvent) -> str:
    namespace = event.get("log_namespace") or "-"
    system = event.get("log_system")
    if namespace == "log_legacy":  # twisted.python.log: its "system", or "-" as twistd shows
        return str(system or "-")
    return str(namespace)


def _traceback(event: LogEvent) -> str | None:
    failure = event.get("log_failure")
    if not isinstance(failure, Failure):
        return None
    try:
        return failure.getTraceback().rstrip("\n")
    except Exception:  # a failure that cannot be rendered must not lose the event
        return f"{failure.type!r}: {failure.value!r}"


def format_text(event: LogEvent) -> str:
    """One event as a readable line (plus indented traceback lines), ending in a newline."""
    text = _format(event)
    if "log_failure" in event:
        traceback = _traceback(event)
        if traceback:
            text = f"{text}\n{traceback}"
    if "\n" in text:
        text = text.replace("\r\n", "\n").replace("\n", "\n    ")
    return f"{_timestamp(event)} {_level(event)} [{_namespace(event)}] {text}\n"


def format_json(event: LogEvent) -> str:
    """One event as a single line of JSON, ending in a newline."""
    record: dict[str, Any] = {
        "time": _timestamp(event),
        "level": _level(event),
        "namespace": _namespace(event),
        "message": _format(event),
    }
    legacy = "isError" in event or event.get("log_namespace") == "log_legacy"
    for key, value in event.items():
        if key.startswith("log_") or (legacy and key in _LEGACY_KEYS):
            continue
        record[f"{key}_" if key in _RESERVED else key] = value
    traceback = _traceback(event)
    if traceback:
        record["traceback"] = traceback
    try:
        line = json.dumps(record, default=str, ensure_ascii=False, allow_nan=False)
    except Exception:  # NaN, circular values, a __str__ that raises ...
        line = json.dumps(_plain(record), ensure_ascii=False)
    return line + "\n"


def _plain(value: object, depth: int = 0) -> object:
    """``value`` made of JSON types only: finite numbers, string keys, str() for the rest."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth < 10 and isinstance(value, dict):
        return {_text(key): _plain(item, depth + 1) for key, item in value.items()}
    if depth < 10 and isinstance(value, list | tuple):
        return [_plain(item, depth + 1) for item in value]
    return _text(value)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # a broken __str__ must not lose the event
        return object.__repr__(value)


def text_observer(stream: IO[str]) -> ILogObserver:
    """An observer writing ``format_text`` lines to ``stream``."""
    return FileLogObserver(stream, format_text)


def json_observer(stream: IO[str]) -> ILogObserver:
    """An observer writing ``format_json`` lines to ``stream``."""
    return FileLogObserver(stream, format_json)


#: What Twisted says about every port and client connection at info level: "Site starting
#: on 8080", "(TCP Port 8080 Closed)", "Starting factory <...>", "Stopping factory <...>".
#: A daemon that renews hundreds of subscriptions and posts webhooks would log two lines per
#: connection; they are written only at debug level.
_NOISE_FORMATS = frozenset(
    {
        "Starting factory {factory!r}",
        "Stopping factory {factory!r}",
        "Starting protocol {protocol!r}",
        "Stopping protocol {protocol!r}",
    }
)
_NOISE_TEXT = re.compile(r"\A(?:\S.* starting on .+|\(\S+ Port \S+ Closed\))\Z")


def is_twisted_noise(event: LogEvent) -> bool:
    """Whether ``event`` is one of Twisted's per-port or per-connection announcements."""
    if event.get("log_format") in _NOISE_FORMATS:
        return True
    if event.get("log_namespace") != "log_legacy":
        return False
    message = event.get("message") or ()
    text = " ".join(str(part) for part in message) if isinstance(message, tuple) else ""
    if not text:
        text = str(event.get("format") or "") % event if "format" in event else ""
    return bool(_NOISE_TEXT.match(text))


@implementer(ILogFilterPredicate)
class QuietTwisted:
    """Drops Twisted's connection announcements (``is_twisted_noise``) unless the level
    filter ``levels`` lets debug through."""

    def __init__(self, levels: LogLevelFilterPredicate) -> None:
        self._levels = levels

    def __call__(self, event: LogEvent) -> PredicateResult:
        if self._levels.defaultLogLevel > LogLevel.debug and is_twisted_noise(event):
            return PredicateResult.no
        return PredicateResult.maybe


def make_observer(
    log_format: str, level: str, stream: IO[str], predicate: LogLevelFilterPredicate | None = None
) -> ILogObserver:
    """The daemon's observer: ``log_format`` (text or json) lines of ``level`` and above.

    @param predicate: The level filter to use (its level can be changed later).
    """
    observer = json_observer(stream) if log_format == "json" else text_observer(stream)
    if predicate is None:
        predicate = LogLevelFilterPredicate(defaultLogLevel=LEVELS[level])
    else:
        _set_predicate_level(predicate, level)
    return FilteringLogObserver(observer, [QuietTwisted(predicate), predicate])


@attrs.frozen
class DaemonLogging:
    """How twistd should log this daemon: format, level and file (``None``: stdout)."""

    format: str = "text"
    level: str = "info"
    path: str | None = None


_daemon = DaemonLogging()

#: The level filter of the daemon's observer: ``set_level`` changes it (a reload).
_daemon_predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)


def use_for_daemon(settings: DaemonLogging) -> None:
    """Record the settings ``daemon_observer`` uses (called from ``Options.postOptions``)."""
    global _daemon
    _daemon = settings


def daemon_observer() -> ILogObserver:
    """twistd's log observer factory (``--logger sonosd.logs.daemon_observer``)."""
    settings = _daemon
    stream: IO[str]
    if settings.path is None:
        stream = sys.stdout
    else:
        from twisted.python.logfile import LogFile

        stream = LogFile.fromFullPath(settings.path)
    return make_observer(settings.format, settings.level, stream, _daemon_predicate)


def set_level(level: str, stdlib: logging.Logger | None = None) -> None:
    """Write ``level`` and above from now on (the daemon's observer and stdlib logging)."""
    _set_predicate_level(_daemon_predicate, level)
    (logging.getLogger() if stdlib is None else stdlib).setLevel(_STDLIB_LEVELS[level])


def _set_predicate_level(predicate: LogLevelFilterPredicate, level: str) -> None:
    # The predicate copies its default into its table of namespaces: reset both.
    predicate.defaultLogLevel = LEVELS[level]
    predicate.clearLogLevels()


def current_level() -> str:
    """The level the daemon's observer writes from."""
    for name, level in LEVELS.items():
        if level == _daemon_predicate.defaultLogLevel:
            return name
    return "info"


def twisted_level(levelno: int) -> LogLevel:
    """The twisted.logger level of a stdlib level number (custom levels round down)."""
    for threshold, level in (
        (logging.CRITICAL, LogLevel.critical),
        (logging.ERROR, LogLevel.error),
        (logging.WARNING, LogLevel.warn),
        (logging.INFO, LogLevel.info),
    ):
        if levelno >= threshold:
            return level
    return LogLevel.debug


#: The most characters of one stdlib record kept: SoCo logs a speaker's whole answer (up to
#: 4 MiB) when it cannot read its UPnP fault.
MAX_RECORD = 2000


class StdlibHandler(logging.Handler):
    """A ``logging.Handler`` that re-emits stdlib records (SoCo's) as twisted.logger events.

    The record's logger name becomes the event's namespace, its level the event's level, and
    its exception (if any) the event's failure; its text is cut at ``MAX_RECORD`` characters.
    """

    def __init__(self, observer: ILogObserver | None = None) -> None:
        """@param observer: where events go (default: twisted's global log publisher)."""
        super().__init__()
        self.observer: ILogObserver = globalLogPublisher if observer is None else observer

    def emit(self, record: logging.LogRecord) -> None:
        """Publish ``record`` to the observer as a twisted.logger event."""
        try:
            text = record.getMessage()
        except Exception:  # a bad %-format in someone else's log call
            text = f"{record.msg!r} % {record.args!r}"
        if len(text) > MAX_RECORD:
            text = f"{text[:MAX_RECORD]}... ({len(text) - MAX_RECORD} more characters)"
        level = twisted_level(record.levelno)
        fields: dict[str, Any] = {}
        if record.exc_info and record.exc_info[1] is not None:
            _, value, tb = record.exc_info
            fields["log_failure"] = Failure(value, type(value), tb)
        logger = Logger(namespace=record.name, observer=self.observer)
        logger.emit(level, text.replace("{", "{{").replace("}", "}}"), **fields)


def route_stdlib_logging(
    level: str, target: logging.Logger | None = None, observer: ILogObserver | None = None
) -> StdlibHandler:
    """Send stdlib logging (``target``, default the root logger) into twisted.logger.

    Replaces any ``StdlibHandler`` installed before, so calling it twice is harmless, and sets
    the stdlib level so that records below ``level`` are not even built.
    """
    logger = logging.getLogger() if target is None else target
    for handler in list(logger.handlers):
        if isinstance(handler, StdlibHandler):
            logger.removeHandler(handler)
    handler = StdlibHandler(observer)
    logger.addHandler(handler)
    logger.setLevel(_STDLIB_LEVELS[level])
    return handler
