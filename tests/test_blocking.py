"""Tests for L{sonosd.blocking}."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sonosd.blocking import CallTimeout, SocoRunner
from tests.daemon_helpers import until


class SocoRunnerTests(TestCase):
    """A real pool on the real reactor: the calls cross threads for real."""

    def setUp(self) -> None:
        self.runner = SocoRunner(reactor, threads=4, timeout=5.0)
        self.runner.startService()
        self.release = threading.Event()
        self.addCleanup(self.release.set)
        self.addCleanup(self.runner.stopService)

    async def test_result_comes_back(self) -> None:
        """A call's return value fires the Deferred, and the call ran off the reactor thread."""
        main = threading.get_ident()
        ident = await self.runner.run(threading.get_ident)
        self.assertNotEqual(ident, main)
        self.assertEqual(self.runner.calls, 1)

    async def test_exception_comes_back(self) -> None:
        """An exception raised in the thread fails the Deferred with that exception."""

        def fail() -> None:
            raise ValueError("no such speaker")

        with self.assertRaises(ValueError):
            await self.runner.run(fail)
        self.assertEqual(self.runner.failures, 1)

    async def test_threads_start_as_calls_need_them_up_to_the_size(self) -> None:
        """No thread runs before the first call; calls at once start threads up to the
        pool's size, named after it and never keeping the process alive."""
        self.assertEqual(self.runner.pool.threads, [])
        await self.runner.run(int)
        self.assertEqual(len(self.runner.pool.threads), 1)
        arrived: list[threading.Thread] = []
        everyone = threading.Event()
        lock = threading.Lock()

        def meet() -> threading.Thread:
            with lock:
                arrived.append(threading.current_thread())
                if len(arrived) == 4:
                    everyone.set()
            everyone.wait(10)
            return threading.current_thread()

        names = await gatherResults([self.runner.run(meet) for _ in range(6)])
        self.assertTrue(everyone.is_set())
        threads = self.runner.pool.threads
        self.assertEqual(len(threads), 4)
        self.assertEqual(set(names), set(threads))
        self.assertEqual(
            sorted(thread.name for thread in threads), [f"sonosd-soco-{n}" for n in range(4)]
        )
        self.assertTrue(all(thread.daemon for thread in threads))

    async def test_the_default_pool_runs_10_calls_at_once(self) -> None:
        """A pool built with its defaults runs at most 10 calls at once, in threads named
        ``sonosd-soco-0`` to ``-9``; the 11th and 12th wait for a free thread."""
        runner = SocoRunner(reactor)
        runner.startService()
        release = threading.Event()
        self.addCleanup(runner.stopService)
        self.addCleanup(release.set)
        lock = threading.Lock()
        running: list[str] = []

        def hold() -> None:
            with lock:
                running.append(threading.current_thread().name)
            release.wait(10)

        calls = [runner.run(hold) for _ in range(12)]
        await until(lambda: len(running) == 10, "10 calls running")
        await deferLater(reactor, 0.2)
        self.assertEqual(len(running), 10)
        self.assertEqual(sorted(running), sorted(f"sonosd-soco-{n}" for n in range(10)))
        release.set()
        await gatherResults(calls)
        self.assertEqual(len(running), 12)
        self.assertEqual(len(runner.pool.threads), 10)

    async def test_a_stopped_pool_refuses_calls(self) -> None:
        """A call made once the pool has stopped fails with an error naming the pool, and
        its threads are gone."""
        await self.runner.run(int)
        await self.runner.stopService()
        self.assertFalse(any(thread.is_alive() for thread in self.runner.pool.threads))
        with self.assertRaisesRegex(RuntimeError, "sonosd-soco pool is stopped"):
            await self.runner.run(int)

    async def test_same_key_runs_in_order_one_at_a_time(self) -> None:
        """Calls that share a key never overlap and run in the order they were made."""
        active = []
        order = []
        lock = threading.Lock()

        def work(n: int) -> int:
            with lock:
                active.append(n)
                overlap = len(active)
            self.release.wait(0.01)
            with lock:
                active.remove(n)
            order.append(n)
            return overlap

        results = await gatherResults([self.runner.run(work, n, key="RINCON_1") for n in range(6)])
        self.assertEqual(order, list(range(6)))
        self.assertEqual(set(results), {1})

    async def test_hung_call_times_out_and_others_go_on(self) -> None:
        """A hung call fails with CallTimeout while a call for another key still completes;
        timed out, it still counts as in flight until its thread returns."""
        hung = self.runner.run(self.release.wait, 30, key="hung", timeout=0.2)
        ok = await self.runner.run(lambda: "fine", key="other")
        self.assertEqual(ok, "fine")
        with self.assertRaises(CallTimeout):
            await hung
        self.assertEqual(self.runner.timeouts, 1)
        self.assertEqual(self.runner.in_flight, 1)
        self.release.set()
        await until(lambda: self.runner.in_flight == 0, "the hung thread back")

    async def test_queued_call_behind_a_hung_one_times_out_without_running(self) -> None:
        """A call waiting behind a hung call of the same key times out and never starts."""
        ran: list[int] = []
        self.runner.run(self.release.wait, 30, key="hung", timeout=5)
        queued = self.runner.run(ran.append, 1, key="hung", timeout=0.1)
        with self.assertRaises(CallTimeout):
            await queued
        self.release.set()
        await self.runner.run(lambda: None, key="hung")
        self.assertEqual(ran, [])


def test_stop_does_not_wait_for_hung_calls() -> None:
    """stopService fires after the grace period even when a call never returns."""
    from twisted.internet.task import Clock

    clock = Clock()

    class Reactor:
        def callLater(self, *a: Any, **kw: Any) -> Any:
            return clock.callLater(*a, **kw)

        def callFromThread(self, f: Any, *a: Any) -> None:
            pass

    runner = SocoRunner(Reactor(), threads=1, grace=2.0)
    runner.startService()
    fired: list[object] = []
    d: Deferred[None] = runner.stopService()
    d.addCallback(fired.append)
    clock.advance(2.0)
    assert fired == [None]


def test_switch_interval_lowered_while_running() -> None:
    """While the pool runs, threads hand the GIL back quickly; stopping restores the setting."""
    import sys

    from twisted.internet.task import Clock

    from sonosd.blocking import SWITCH_INTERVAL

    before = sys.getswitchinterval()
    clock = Clock()

    class Reactor:
        def callLater(self, *a: object, **kw: object) -> object:
            return clock.callLater(*a, **kw)  # type: ignore[arg-type]

        def callFromThread(self, f: object, *a: object) -> None:
            pass

    runner = SocoRunner(Reactor(), threads=1)
    runner.startService()
    try:
        # The interpreter keeps the interval in whole microseconds.
        assert sys.getswitchinterval() == pytest.approx(min(before, SWITCH_INTERVAL), abs=1e-6)
    finally:
        runner.stopService()
        clock.advance(runner.grace)
    assert sys.getswitchinterval() == before

    async def test_stop_ends_calls_still_waiting(self) -> None:
        """Calls queued behind a busy key when the pool stops fail at once and leave no timer."""
        from twisted.internet.defer import CancelledError

        running = threading.Event()

        def busy() -> None:
            running.set()
            self.release.wait(10)

        first = self.runner.run(busy, key="RINCON_1")
        waiting = [self.runner.run(int, key="RINCON_1") for _ in range(3)]
        failures: list[Any] = []
        for d in waiting:
            d.addErrback(failures.append)
        first.addErrback(lambda _: None)
        stopped = self.runner.stopService()
        self.release.set()
        await stopped
        self.assertEqual(len(failures), 3)
        self.assertTrue(all(f.check(CancelledError) for f in failures))
        self.assertFalse([c for c in reactor.getDelayedCalls() if "expire" in repr(c.func)])
