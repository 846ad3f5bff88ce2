# -*- test-case-name: tests.test_memory -*-
"""Keeping the daemon's resident memory close to what it really uses (issue #7), and its
garbage collector's pauses short (issue 17).

Two glibc behaviours make a long-running daemon look larger than its live data:

- freed memory stays in the process: a burst (a household's 200 ZoneGroupState documents of
  140 KB each at start-up, 1,600 renewals at once) leaves the heap's free pages resident
  until ``malloc_trim`` gives them back. ``MemoryTrimmer`` calls it periodically (measured:
  31 MB of 225 MB at 200 speakers, for 0.3-2.5 ms a call);
- every thread that allocates gets a malloc arena of its own (up to 8 per core), each with its
  own free memory. The SoCo pool's threads run Python, one at a time under the GIL, so they
  gain nothing from separate arenas; ``limit_arenas`` caps them before the threads start.

Both are no-ops where the C library lacks them (musl, macOS, Windows).

CPython's cycle collector walks every object the process holds in a full collection, and
most of the daemon's are its modules, classes and functions (about 58,000 objects once it has
started). With 100 speakers under load, on a 2-core machine, a full collection stopped the
daemon for 60-80 ms. Those objects live as long as the process, so ``freeze_startup_heap``
moves them out of the collector's sight once the daemon has started (``gc.freeze``): the same
collections then took 18-29 ms, most of it freeing the 12,000-15,000 objects that the
start-up's HTTP requests leave in reference cycles (benchmarks/analysis.md).
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

#: glibc's ``mallopt`` parameter for the most malloc arenas (``M_ARENA_MAX``, malloc.h).
M_ARENA_MAX = -8

#: How many malloc arenas the daemon allows: the reactor thread's and one for the pool.
ARENAS = 2

#: Seconds between two ``malloc_trim`` calls.
TRIM_INTERVAL = 10.0


def _libc() -> Any:
    """The C library's symbols, or ``None`` where ctypes cannot load them."""
    try:
        return ctypes.CDLL(None)
    except (OSError, TypeError):  # TypeError: Windows has no "the process itself"
        return None


def _function(name: str) -> Callable[..., int] | None:
    libc = _libc()
    fn: Callable[..., int] | None = getattr(libc, name, None) if libc is not None else None
    return fn


def trim(malloc_trim: Callable[[int], int] | None = None) -> bool:
    """Give the heap's free pages back to the operating system (glibc ``malloc_trim(0)``).

    @param malloc_trim: The C function (tests pass a recording fake; default: glibc's).
    @return: Whether memory was released (``False`` also where there is no such function).
    """
    fn = malloc_trim if malloc_trim is not None else _function("malloc_trim")
    if fn is None:
        return False
    return bool(fn(0))


def limit_arenas(
    count: int = ARENAS,
    environ: Mapping[str, str] | None = None,
    mallopt: Callable[[int, int], int] | None = None,
) -> bool:
    """Allow at most ``count`` malloc arenas in this process, unless ``MALLOC_ARENA_MAX`` is set.

    Call it before the thread pool starts: a thread keeps the arena it got first.

    @param environ: The environment (default: ``os.environ``); a user's ``MALLOC_ARENA_MAX``
        wins (glibc has read it already).
    @param mallopt: The C function (tests pass a recording fake; default: glibc's).
    @return: Whether the limit was set.
    """
    if "MALLOC_ARENA_MAX" in (os.environ if environ is None else environ):
        return False
    fn = mallopt if mallopt is not None else _function("mallopt")
    if fn is None:
        return False
    return bool(fn(M_ARENA_MAX, count))


class MemoryTrimmer(Service):
    """Calls ``trim`` every ``interval`` seconds while running, so that the memory freed after a
    burst of events or renewals goes back to the operating system.

    @param clock: Schedules the calls.
    @param interval: Seconds between two calls.
    @param trimmer: Does the trimming (default: ``trim``; tests pass a recording fake).
    """

    def __init__(
        self,
        clock: IReactorTime,
        interval: float = TRIM_INTERVAL,
        trimmer: Callable[[], bool] = trim,
    ) -> None:
        self.interval = interval
        self.trims = 0
        self._trimmer = trimmer
        self._call = LoopingCall(self._trim)
        self._call.clock = clock

    def startService(self) -> None:
        """Trim every ``interval`` seconds from now (the first call after one interval)."""
        super().startService()
        self._call.start(self.interval, now=False)

    def stopService(self) -> None:
        """Stop trimming."""
        super().stopService()
        if self._call.running:
            self._call.stop()

    def _trim(self) -> None:
        self.trims += 1
        try:
            self._trimmer()
        except Exception:
            log.failure("malloc_trim failed")


def freeze_startup_heap(collector: Any = gc) -> int:
    """Collect once, then keep every object alive now out of all later collections.

    Call it once, when the daemon has started and before it talks to any speaker: what
    exists then (modules, classes, the configuration, the services) lives as long as the
    process. An object frozen here is still freed when its last reference goes; only a
    cycle among such objects would stay, which is why nothing in flight should be frozen.

    @param collector: The ``gc`` module (tests pass a recording fake).
    @return: How many objects are frozen.
    """
    collector.collect()
    collector.freeze()
    frozen: int = collector.get_freeze_count()
    return frozen
