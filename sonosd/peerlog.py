# -*- test-case-name: tests.test_peerlog -*-
"""Log lines that remote peers can trigger, throttled: one per source and reason per interval.

Anything a speaker, an API client, an MQTT publisher or any host on the network can provoke
(a malformed NOTIFY, an unknown SID, a refused body, a bad command payload) is logged through a
:class:`PeerLog`: the first occurrence of each ``(source, reason)`` in an interval is logged
at once, in full; later ones in the same interval are only counted, and when the interval
ends one line per ``(source, reason)`` says how many more there were and what the last one
was. 10,000 bad requests a second from one host cost two lines a minute, not 10,000. A
timer runs only while something waits to be summed up.

Memory is bounded too: at most ``max_keys`` distinct ``(source, reason)`` pairs are tracked
per interval; beyond, new sources share the source ``"(other sources)"``.

Every occurrence, logged or not, is counted by reason in :attr:`PeerLog.counts` (exported as
metrics by whoever owns the log).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Final

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel, formatEvent

DEFAULT_INTERVAL: Final = 60.0
"""Seconds during which one ``(source, reason)`` is logged at most once."""

MAX_KEYS: Final = 256
"""The most ``(source, reason)`` pairs tracked in one interval."""

OTHER_SOURCES: Final = "(other sources)"


@attrs.define
class _Window:
    """One ``(source, reason)`` in the current interval: how many more, and the last one."""

    level: LogLevel
    suppressed: int = 0
    last_format: str = ""
    last_fields: dict[str, Any] = attrs.Factory(dict)


class PeerLog:
    """Throttled logging for what remote peers trigger.

    @param log: Where lines go (its namespace names the component).
    @param clock: Times the intervals.
    @param interval: Seconds per interval.
    @param max_keys: The most ``(source, reason)`` pairs tracked per interval.

    @ivar counts: Every occurrence so far, by reason.
    @ivar suppressed: Occurrences counted but not logged on their own line, so far.
    """

    def __init__(
        self,
        log: Logger,
        clock: IReactorTime,
        interval: float = DEFAULT_INTERVAL,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._log = log
        self._clock = clock
        self.interval = interval
        self._max_keys = max_keys
        self._windows: dict[tuple[str, str], _Window] = {}
        self._flush: IDelayedCall | None = None
        self._started = 0.0
        self.counts: Counter[str] = Counter()
        self.suppressed = 0

    def emit(
        self,
        source: str | None,
        reason: str,
        format: str,
        level: LogLevel = LogLevel.warn,
        **fields: Any,
    ) -> None:
        """Count one occurrence; log it unless ``(source, reason)`` was logged this interval.

        @param source: Who caused it (an address, a client id); ``None`` when unknown.
        @param reason: What it was (a short, fixed word: ``malformed``, ``unknown_sid``).
        @param format: The line, with ``{named}`` fields (``source`` and ``reason`` are
            available to it).
        """
        self.counts[reason] += 1
        now = self._clock.seconds()
        if self._windows and now - self._started >= self.interval:
            self._end_interval()
        if not self._windows:
            self._started = now
        key = (source or "-", reason)
        window = self._windows.get(key)
        if window is None and len(self._windows) >= self._max_keys:
            key = (OTHER_SOURCES, reason)
            window = self._windows.get(key)
        if window is not None:
            window.suppressed += 1
            window.last_format = format
            window.last_fields = fields
            self.suppressed += 1
            if self._flush is None:
                # Something to sum up: say it when the interval ends, even if nothing follows.
                delay = max(0.0, self._started + self.interval - now)
                self._flush = self._clock.callLater(delay, self._end_interval)
            return
        self._windows[key] = _Window(level)
        self._log.emit(level, format, source=key[0], reason=reason, **fields)

    def _end_interval(self) -> None:
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
        windows, self._windows = self._windows, {}
        for (source, reason), window in windows.items():
            if not window.suppressed:
                continue
            last = formatEvent(
                {"log_format": window.last_format, "source": source, "reason": reason}
                | window.last_fields
            )
            self._log.emit(
                window.level,
                "{count} more like this from {source} ({reason}) in the last {interval:.0f} s; "
                "the last: {last}",
                count=window.suppressed,
                source=source,
                reason=reason,
                interval=self.interval,
                last=last,
            )

    def stop(self) -> None:
        """Log what is pending now and stop timing (the owner is stopping)."""
        self._end_interval()
