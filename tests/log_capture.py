"""Capturing what the daemon logs as an unhandled error, for tests that promise there is none."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher


@contextmanager
def captured_failures() -> Iterator[list[LogEvent]]:
    """Collect every log event that carries a traceback (``log_failure``) or is critical while
    the block runs."""
    bad: list[LogEvent] = []

    def observe(event: LogEvent) -> None:
        if "log_failure" in event or event.get("log_level") is LogLevel.critical:
            bad.append(event)

    observer = cast(ILogObserver, observe)
    globalLogPublisher.addObserver(observer)
    try:
        yield bad
    finally:
        globalLogPublisher.removeObserver(observer)
