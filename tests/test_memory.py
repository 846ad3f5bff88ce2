"""Tests for L{sonosd.memory}."""

from __future__ import annotations

import json
import subprocess
import sys
from unittest import mock

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sonosd import memory
from sonosd.memory import M_ARENA_MAX, MemoryTrimmer, freeze_startup_heap, limit_arenas, trim


class Recorder:
    """A fake C function: records its arguments and returns ``result``."""

    def __init__(self, result: int = 1) -> None:
        self.calls: list[tuple[int, ...]] = []
        self.result = result

    def __call__(self, *args: int) -> int:
        self.calls.append(args)
        return self.result


class TrimTests(SynchronousTestCase):
    """``trim`` calls ``malloc_trim(0)`` where the C library has it, and nothing elsewhere."""

    def test_calls_malloc_trim_with_no_padding(self) -> None:
        """The whole free top of the heap is released: ``malloc_trim(0)``."""
        fn = Recorder(result=1)
        assert trim(fn) is True
        assert fn.calls == [(0,)]

    def test_nothing_released(self) -> None:
        """``malloc_trim`` returning 0 (nothing to give back) is ``False``."""
        assert trim(Recorder(result=0)) is False

    def test_no_such_function(self) -> None:
        """Without ``malloc_trim`` (musl, macOS) it does nothing and says so."""
        with mock.patch.object(memory, "_libc", lambda: object()):
            assert trim() is False

    def test_no_c_library(self) -> None:
        """Where ctypes cannot load the process's symbols (Windows) it does nothing."""

        def refuse(name: object) -> object:
            raise TypeError("no process handle")

        with mock.patch.object(memory.ctypes, "CDLL", refuse):
            assert memory._libc() is None
            assert trim() is False

    def test_real_call_does_not_fail(self) -> None:
        """On this platform the real call runs without error (glibc or not)."""
        assert trim() in (True, False)


class LimitArenasTests(SynchronousTestCase):
    """``limit_arenas`` sets ``M_ARENA_MAX`` unless the user chose a value."""

    def test_sets_the_limit(self) -> None:
        """``mallopt(M_ARENA_MAX, count)`` is called."""
        fn = Recorder()
        assert limit_arenas(3, environ={}, mallopt=fn) is True
        assert fn.calls == [(M_ARENA_MAX, 3)]

    def test_the_daemon_limits_itself_to_two_arenas(self) -> None:
        """Called as ``twistd sonosd`` calls it (no count), it sets ``M_ARENA_MAX`` to 2."""
        fn = Recorder()
        assert limit_arenas(environ={}, mallopt=fn) is True
        assert fn.calls == [(M_ARENA_MAX, 2)]

    def test_user_setting_wins(self) -> None:
        """With ``MALLOC_ARENA_MAX`` in the environment nothing is changed."""
        fn = Recorder()
        assert limit_arenas(2, environ={"MALLOC_ARENA_MAX": "4"}, mallopt=fn) is False
        assert fn.calls == []

    def test_refused(self) -> None:
        """``mallopt`` returning 0 (an error) is ``False``."""
        assert limit_arenas(2, environ={}, mallopt=Recorder(result=0)) is False

    def test_no_such_function(self) -> None:
        """Without ``mallopt`` it does nothing."""
        with mock.patch.object(memory, "_libc", lambda: None):
            assert limit_arenas(2, environ={}) is False


class MemoryTrimmerTests(SynchronousTestCase):
    """The trimmer trims every interval while running, and stops with its service."""

    def test_trims_every_interval(self) -> None:
        """No trim at start; one per interval after that."""
        clock = Clock()
        calls = Recorder()
        trimmer = MemoryTrimmer(clock, interval=30.0, trimmer=lambda: bool(calls()))
        trimmer.startService()
        assert calls.calls == []
        clock.advance(30)
        clock.advance(30)
        assert len(calls.calls) == 2
        assert trimmer.trims == 2

    def test_trims_every_10_seconds_by_default(self) -> None:
        """Built as the daemon builds it (no interval), the trimmer trims 10 s after the
        start and every 10 s after that, not sooner."""
        clock = Clock()
        calls = Recorder()
        trimmer = MemoryTrimmer(clock, trimmer=lambda: bool(calls()))
        trimmer.startService()
        self.addCleanup(trimmer.stopService)
        clock.advance(9.9)
        assert calls.calls == []
        clock.advance(0.1)
        assert len(calls.calls) == 1
        clock.advance(9.9)
        assert len(calls.calls) == 1
        clock.advance(0.1)
        assert len(calls.calls) == 2

    def test_stops(self) -> None:
        """After stopService no call is scheduled."""
        clock = Clock()
        trimmer = MemoryTrimmer(clock, interval=30.0, trimmer=lambda: True)
        trimmer.startService()
        trimmer.stopService()
        assert clock.getDelayedCalls() == []
        trimmer.stopService()  # stopping twice is harmless
        assert trimmer.trims == 0

    def test_failure_is_logged_and_trimming_goes_on(self) -> None:
        """A trimmer that raises is logged; the next interval trims again."""
        clock = Clock()
        attempts: list[int] = []

        def broken() -> bool:
            attempts.append(1)
            raise OSError("no")

        trimmer = MemoryTrimmer(clock, interval=10.0, trimmer=broken)
        trimmer.startService()
        clock.advance(10)
        clock.advance(10)
        assert len(attempts) == 2
        assert len(self.flushLoggedErrors(OSError)) == 2


def python_output(code: str) -> str:
    """What ``code`` prints, run by a Python process of its own."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout


def test_unconfigured_sinks_are_not_imported() -> None:
    """Building the daemon's service without MQTT nor webhooks imports neither module."""
    code = (
        "import sys\n"
        "from twisted.internet import reactor\n"
        "from sonosd.config import parse_config\n"
        "from sonosd.service import SonosdService\n"
        "SonosdService(parse_config('devices: [{host: 127.0.0.1}]'), reactor)\n"
        "print(sorted(m for m in ('sonosd.sinks.mqtt', 'sonosd.sinks.webhooks', 'paho')"
        " if m in sys.modules))\n"
    )
    assert python_output(code).strip() == "[]"


def test_daemon_service_trims() -> None:
    """The daemon's top service runs a MemoryTrimmer among its children."""
    from twisted.internet.testing import MemoryReactorClock

    from sonosd.config import parse_config
    from sonosd.service import SonosdService

    service = SonosdService(parse_config("devices: [{host: 127.0.0.1}]"), MemoryReactorClock())
    assert [child for child in service if isinstance(child, MemoryTrimmer)]


class FreezeStartupHeapTests(SynchronousTestCase):
    """``freeze_startup_heap`` collects once, then freezes, and says how many it froze."""

    def test_collects_then_freezes(self) -> None:
        """The start-up's garbage is collected first, so that it is not frozen with the rest."""
        calls: list[str] = []

        class Collector:
            def collect(self) -> int:
                calls.append("collect")
                return 0

            def freeze(self) -> None:
                calls.append("freeze")

            def get_freeze_count(self) -> int:
                return 1234 if calls == ["collect", "freeze"] else 0

        assert freeze_startup_heap(Collector()) == 1234
        assert calls == ["collect", "freeze"]


def test_a_frozen_heap_is_left_out_of_collections_and_cycles_made_after_are_not() -> None:
    """In a process of its own (the test runner must not be frozen): the objects alive at the
    freeze are no longer walked by any collection, and a cycle made afterwards is still
    collected."""
    code = (
        "import gc, json\n"
        "import twisted.internet.reactor, twisted.web.server\n"
        "from sonosd.memory import freeze_startup_heap\n"
        "def cycles(n):\n"
        "    made = [[] for _ in range(n)]\n"
        "    for each in made: each.append(each)\n"
        "    return made\n"
        "early = cycles(30)\n"
        "before = len(gc.get_objects())\n"
        "frozen = freeze_startup_heap()\n"
        "walked = len(gc.get_objects())\n"
        "del early\n"
        "late = cycles(20)\n"
        "del late\n"
        "print(json.dumps({'before': before, 'frozen': frozen, 'walked': walked,\n"
        "                  'count': gc.get_freeze_count(), 'collected': gc.collect()}))\n"
    )
    result = json.loads(python_output(code))
    assert result["frozen"] > 20_000, result
    # A frozen object is still freed when its last reference goes: the list that held the
    # early cycles.
    assert result["count"] == result["frozen"] - 1, result
    assert result["frozen"] > 0.9 * result["before"], result
    # Only what was made after the freeze is left to the collector.
    assert result["walked"] < 100, result
    # The 20 lists made after the freeze (each in a cycle of its own) are collected, the 30
    # made before it are not.
    assert result["collected"] == 20, result
