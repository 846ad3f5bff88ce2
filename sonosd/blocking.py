# -*- test-case-name: tests.test_blocking -*-
"""The one named thread pool that runs SoCo's blocking calls.

Every SoCo property and method does blocking ``requests`` I/O. sonosd runs them all here,
never in the reactor thread and never in the reactor's default pool (which also resolves
host names). Calls for one speaker run one at a time, in order, so that SoCo's unlocked
caches are not raced; every call has a timeout that covers both its wait and its run.
"""

from __future__ import annotations

import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredLock, fail
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

T = TypeVar("T")

#: The interpreter's thread switch interval while the pool runs (seconds).
SWITCH_INTERVAL = 0.0001


class CallTimeout(Exception):
    """A blocking call did not finish within its timeout."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__(f"{name} did not finish within {seconds:g} s")
        self.name = name
        self.seconds = seconds


class Runner(Protocol):
    """What callers need of L{SocoRunner}: its ``run`` (tests pass a recording fake)."""

    def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        key: object | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Deferred[T]:
        """See L{SocoRunner.run}."""


class _Workers:
    """The pool's threads: at most ``size``, started as calls need them, fed by one queue.

    Daemon threads: a SoCo call can hang in the network for as long as its ``requests``
    timeout, and the daemon must still exit promptly on SIGTERM. Each result goes back to the
    reactor with one ``callFromThread``. (Twisted's ``ThreadPool`` costs about 50 µs more per
    call, in its team coordinator and context propagation, of the GIL the reactor needs:
    benchmark 5.)

    @ivar threads: The threads started so far.
    @ivar busy: Calls given to the threads and not back yet (changed in the reactor thread).
    """

    def __init__(self, reactor: IReactorFromThreads, size: int, name: str) -> None:
        self._reactor = reactor
        self._size = max(1, size)
        self._name = name
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.busy = 0
        self._stopped = False
        # Held while a thread is started and while stopping: every thread started gets its
        # end mark.
        self._starting = threading.Lock()

    def call(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Deferred[T]:
        """Run ``fn(*args, **kwargs)`` in a thread; fire with its result or failure."""
        result: Deferred[T] = Deferred()
        with self._starting:
            if self._stopped:
                return fail(RuntimeError(f"the {self._name} pool is stopped"))
            self.busy += 1
            if self.busy > len(self.threads) and len(self.threads) < self._size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self.threads)}", daemon=True
                )
                self.threads.append(thread)
                thread.start()
        self._queue.put((result, fn, args, kwargs))
        return result

    def stop(self) -> None:
        """Have every thread end once its call returns, and wait for them (from a thread of
        its own: a hung call keeps this waiting)."""
        with self._starting:
            self._stopped = True
            threads = list(self.threads)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()

    def _back(self, result: Deferred[Any], outcome: object) -> None:
        self.busy -= 1
        if isinstance(outcome, Failure):
            result.errback(outcome)
        else:
            result.callback(outcome)

    def _work(self) -> None:
        take = self._queue.get
        back = self._reactor.callFromThread
        while (task := take()) is not None:
            result, fn, args, kwargs = task
            outcome: object
            try:
                outcome = fn(*args, **kwargs)
            except BaseException:
                outcome = Failure()
            back(self._back, result, outcome)
            del task, result, outcome


#: A call waiting for a thread: the Deferred its result fires, the callable, its arguments.
_Task = tuple[Deferred[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any]]


class SocoRunner(Service):
    """Runs blocking callables in a dedicated pool, with timeouts and per-key ordering.

    @param reactor: Schedules timeouts and receives results from the threads.
    @param threads: The most calls that run at once.
    @param name: The pool's name (its threads are named after it).
    @param timeout: The default timeout of a call, in seconds.
    @param grace: How long ``stopService`` waits for the threads to finish.
    """

    def __init__(
        self,
        reactor: Any,
        threads: int = 10,
        name: str = "sonosd-soco",
        timeout: float = 20.0,
        grace: float = 2.0,
    ) -> None:
        self._reactor: IReactorTime = reactor
        self._threads: IReactorFromThreads = reactor
        self.timeout = timeout
        self.grace = grace
        self._switch_interval = sys.getswitchinterval()
        self.pool = _Workers(reactor, threads, name)
        self._locks: dict[object, DeferredLock] = {}
        self.calls = 0
        self.timeouts = 0
        self.failures = 0
        #: Calls not settled yet, with their timeout timers (ended when the pool stops).
        self._pending: dict[Deferred[Any], IDelayedCall] = {}

    @property
    def in_flight(self) -> int:
        """Calls running in the pool's threads now (their results not back yet)."""
        return self.pool.busy

    def startService(self) -> None:
        """Start the pool's threads on demand, and keep them from holding up the reactor.

        A thread busy in Python code (SoCo parsing a SOAP answer) keeps the GIL for up to the
        interpreter's switch interval, 5 ms by default, while the reactor thread waits with
        events to deliver. While the pool runs the interval is ``SWITCH_INTERVAL``; the old
        value comes back in ``stopService``. (Measured, benchmark 5: with 50 calls in flight,
        event p99 about 20 % lower at 0.5 ms than at 5 ms, and once the benchmark's own load
        generator stopped competing for the CPU, 1.25-1.41 ms at 0.1 ms against 1.23-1.99 ms
        at 0.5 ms, alternated; ``benchmarks/analysis.md``.)
        """
        super().startService()
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL))

    def stopService(self) -> Deferred[None]:
        """Stop the pool; fire once its threads are gone, or after ``grace`` seconds.

        Threads still stuck in a hung call are daemon threads: they never delay the exit.
        """
        super().stopService()
        sys.setswitchinterval(self._switch_interval)
        done: Deferred[None] = Deferred()

        def fire() -> None:
            # Calls still waiting for their turn will never run: end them (and their timers).
            for outer, timer in list(self._pending.items()):
                if timer.active():
                    timer.cancel()
                if not outer.called:
                    outer.cancel()
            self._pending.clear()
            if not done.called:
                done.callback(None)

        def stop() -> None:
            self.pool.stop()
            self._threads.callFromThread(fire)

        if self.in_flight:
            log.warn("stopping with {n} SoCo calls in flight", n=self.in_flight)
        threading.Thread(target=stop, name="sonosd-soco-stop", daemon=True).start()
        timer = self._reactor.callLater(self.grace, fire)
        return done.addBoth(lambda result: timer.cancel() if timer.active() else None)

    def run(
        self,
        fn: Callable[..., T],
        *args: Any,
        key: object | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Deferred[T]:
        """Run ``fn(*args, **kwargs)`` in the pool; fire with its result or failure.

        @param key: Calls with the same key (a speaker's uid or host) run one at a time, in
            the order they were made. A call that times out keeps its key until its thread
            really finishes, so a hung speaker never gets two calls at once.
        @param timeout: Seconds for waiting plus running; ``CallTimeout`` after that.
        """
        seconds = self.timeout if timeout is None else timeout
        name = getattr(fn, "__qualname__", repr(fn))
        outer: Deferred[T] = Deferred()
        self.calls += 1

        def expire() -> None:
            self._pending.pop(outer, None)
            if not outer.called:
                self.timeouts += 1
                log.warn("SoCo call {name} timed out after {seconds} s", name=name, seconds=seconds)
                outer.errback(CallTimeout(name, seconds))

        timer = self._reactor.callLater(seconds, expire)
        self._pending[outer] = timer

        def settle(result: T | Failure) -> None:
            self._pending.pop(outer, None)
            if timer.active():
                timer.cancel()
            if isinstance(result, Failure):
                self.failures += 1
            if not outer.called:
                outer.callback(result)

        self._submit(fn, args, kwargs, key, outer).addBoth(settle)
        return outer

    def _submit(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        key: object | None,
        outer: Deferred[T],
    ) -> Deferred[T]:
        def in_thread() -> Deferred[T]:
            return self.pool.call(fn, args, kwargs)

        if key is None:
            return in_thread()
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = DeferredLock()

        def acquired(_: object) -> Deferred[T] | None:
            if outer.called:
                # It timed out while queued: don't start it at all.
                return None
            return in_thread()

        def release(result: T | Failure) -> T | Failure:
            assert lock is not None
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)
            return result

        waiting: Deferred[Any] = lock.acquire()
        return cast("Deferred[T]", waiting.addCallback(acquired).addBoth(release))
