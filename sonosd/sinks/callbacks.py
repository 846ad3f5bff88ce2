# -*- test-case-name: tests.sinks.test_callbacks -*-
"""Python callbacks: user functions called with every message, each in its own thread.

The configuration names callables as ``package.module:function`` (or
``package.module:Class.method``); an embedding program adds its own with
``CallbackSink.add(fn)``. Each callable is called as ``fn(body, event)`` where ``body`` is a
fresh ``dict`` of the message JSON (decoded in the callback's thread, so a callback may keep
or change it without touching what other sinks see) and ``event`` is the SoCo ``Event``
behind an ``event`` message, or ``None``. The daemon's own events carry no SoCo (an idle
daemon does not load it, issue 17): SoCo's ``Event`` is made from it in the callback's thread
(``sonosd.household.speaker.soco_event``), so the first such call loads SoCo there.

Each callable has one worker thread and a bounded queue kept in the reactor thread: messages
reach it in order, one at a time; a callable that raises is logged with its name and gets the
next message; a slow one only fills its own queue, whose oldest messages are then dropped,
counted and logged. Nothing a callback does can block the reactor or another callback.
"""

from __future__ import annotations

import importlib
import json
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from sonosd.delivery.drain import drained
from sonosd.delivery.hub import ISink, Message
from sonosd.household.speaker import soco_event

log = Logger()

Callback = Callable[[dict[str, Any], Any], object]


class CallbackLoadError(ValueError):
    """A configured callable cannot be imported; ``str()`` is one line naming it."""


class CallbackReactor(IReactorTime, IReactorFromThreads):
    """What the callback sink needs from a reactor: a clock and ``callFromThread``."""


def load_callable(spec: str) -> Callback:
    """Import ``package.module:attribute[.attribute...]`` and return the callable it names.

    @raise CallbackLoadError: with one line naming ``spec`` and what went wrong.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise CallbackLoadError(
            f"callback {spec!r}: expected 'package.module:function', got no ':' separator"
            if not sep
            else f"callback {spec!r}: expected 'package.module:function'"
        )
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as error:
        raise CallbackLoadError(
            f"callback {spec!r}: cannot import {module_name!r}: {type(error).__name__}: {error}"
        ) from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise CallbackLoadError(
                f"callback {spec!r}: {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not callable(target):
        raise CallbackLoadError(f"callback {spec!r}: {type(target).__name__} is not callable")
    return target


def callable_name(fn: Callable[..., object]) -> str:
    """A readable ``module:qualname`` for logs."""
    module = getattr(fn, "__module__", None) or "?"
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}:{name}"


class Worker(Protocol):
    """Runs work items one at a time, in order, off the reactor thread."""

    def do(self, work: Callable[[], None]) -> None:
        """Queue ``work``; return at once."""

    def quit(self) -> None:
        """Run no more work once the current item (if any) returns."""


class ThreadWorker:
    """One daemon thread that runs queued work items in order.

    The thread is a daemon so that a callback stuck forever never keeps the process alive
    after the reactor stops; ``quit`` never waits for it.
    """

    _STOP = object()

    def __init__(self, name: str) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is self._STOP:
                return
            work()  # type: ignore[operator]

    def do(self, work: Callable[[], None]) -> None:
        """Queue ``work`` for the thread."""
        self._queue.put(work)

    def quit(self) -> None:
        """Let the thread end after the item it runs now."""
        self._queue.put(self._STOP)

    @property
    def alive(self) -> bool:
        """Whether the thread still runs."""
        return self._thread.is_alive()


class _Slot:
    """One callable: its worker, its bounded queue (reactor thread only) and its counters."""

    def __init__(
        self,
        fn: Callback,
        name: str,
        worker: Worker,
        reactor: CallbackReactor,
        size: int,
    ) -> None:
        self.fn = fn
        self.name = name
        self.worker = worker
        self.reactor = reactor
        self.pending: deque[tuple[bytes, object]] = deque()
        self.size = max(1, size)
        self.busy = False
        self.closed = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self._dropping = 0
        self._idle: list[Deferred[None]] = []

    def put(self, raw: bytes, event: object) -> None:
        if self.closed:
            return
        if len(self.pending) >= self.size:
            self.pending.popleft()
            self.dropped += 1
            self._dropping += 1
            if self._dropping == 1:
                log.warn(
                    "callback {callable} is too slow: its queue of {size} is full, "
                    "dropping the oldest messages",
                    callable=self.name,
                    size=self.size,
                )
        self.pending.append((raw, event))
        if not self.busy:
            self._next()

    def _next(self) -> None:
        raw, event = self.pending.popleft()
        self.busy = True
        fn = self.fn
        call_from_thread = self.reactor.callFromThread

        def work() -> None:
            try:
                fn(json.loads(raw), soco_event(event))
            except BaseException:
                call_from_thread(self._done, Failure())
            else:
                call_from_thread(self._done, None)

        self.worker.do(work)

    def _done(self, failure: Failure | None) -> None:
        self.busy = False
        if failure is None:
            self.delivered += 1
        else:
            self.failed += 1
            log.failure("callback {callable} raised", failure, callable=self.name)
        if self.pending and not self.closed:
            self._next()
            return
        if self._dropping:
            log.warn(
                "callback {callable} caught up after dropping {count} messages",
                callable=self.name,
                count=self._dropping,
            )
            self._dropping = 0
        waiting, self._idle = self._idle, []
        for d in waiting:
            d.callback(None)

    def when_idle(self) -> Deferred[None]:
        """Fire once the queue is empty and no call runs."""
        if not self.busy and not self.pending:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d


@implementer(ISink)
class CallbackSink(Service):
    """Calls Python callables with every message, each in its own ordered worker.

    @param reactor: Receives results from the worker threads and times the shutdown.
    @param callbacks: Callables, or ``package.module:function`` strings loaded at once.
    @param queue: How many messages wait per callable before the oldest are dropped.
    @param drain_timeout: How long ``stopService`` lets the queues drain.
    @param worker_factory: Makes the worker of one callable from its name (tests pass an
        in-memory worker; the default starts one daemon thread).

    @ivar drain_timeout: The bound ``stopService`` uses (the daemon sets it again when a reload
        changes ``subscription.shutdown_timeout``).
    """

    def __init__(
        self,
        reactor: CallbackReactor,
        callbacks: Iterable[Callback | str] = (),
        *,
        queue: int = 1_000,
        drain_timeout: float = 5.0,
        worker_factory: Callable[[str], Worker] | None = None,
    ) -> None:
        self._reactor = reactor
        self._queue = queue
        self.drain_timeout = drain_timeout
        self._worker_factory: Callable[[str], Worker] = worker_factory or (
            lambda name: ThreadWorker(f"sonosd-callback {name}")
        )
        self._slots: list[_Slot] = []
        for entry in callbacks:
            if isinstance(entry, str):
                self.add(load_callable(entry), name=entry)
            else:
                self.add(entry)

    def add(self, fn: Callback, *, name: str | None = None, queue: int | None = None) -> None:
        """Call ``fn(body, event)`` with every later message, in its own worker.

        @param fn: The callable.
        @param name: Its name in logs (default: ``module:qualname``).
        @param queue: Its queue size (default: the sink's).
        """
        label = name or callable_name(fn)
        self._slots.append(
            _Slot(
                fn,
                label,
                self._worker_factory(label),
                self._reactor,
                self._queue if queue is None else queue,
            )
        )

    def remove(self, fn: Callback) -> None:
        """Stop calling ``fn``: its queued messages are discarded and its worker ends."""
        for slot in [slot for slot in self._slots if slot.fn is fn]:
            self._slots.remove(slot)
            slot.closed = True
            slot.pending.clear()
            slot.worker.quit()

    def deliver(self, message: Message) -> None:
        """Queue ``message`` for every callable; return at once."""
        for slot in self._slots:
            slot.put(message.raw, message.event)

    def stats(self) -> dict[str, dict[str, int]]:
        """Per callable: messages ``delivered``, ``failed`` (raised), ``dropped``, ``queued``."""
        return {
            slot.name: {
                "delivered": slot.delivered,
                "failed": slot.failed,
                "dropped": slot.dropped,
                "queued": len(slot.pending) + int(slot.busy),
            }
            for slot in self._slots
        }

    def status(self) -> list[dict[str, Any]]:
        """Every callable with its counters (``stats``), for diagnostics and metrics."""
        return [{"name": name, **counters} for name, counters in self.stats().items()]

    def stopService(self) -> Deferred[None]:
        """Let the queues drain for at most ``drain_timeout`` seconds, then end the workers."""
        super().stopService()
        return Deferred.fromCoroutine(self._drain())

    async def _drain(self) -> None:
        slots = list(self._slots)
        busy = [slot for slot in slots if slot.busy or slot.pending]
        if busy and not await drained(
            [slot.when_idle() for slot in busy], self.drain_timeout, self._reactor
        ):
            for slot in busy:
                if slot.busy or slot.pending:
                    log.warn(
                        "callback {callable} did not finish within {seconds} s at "
                        "shutdown: {count} messages not delivered",
                        callable=slot.name,
                        seconds=self.drain_timeout,
                        count=len(slot.pending) + int(slot.busy),
                    )
        for slot in slots:
            slot.closed = True
            slot.pending.clear()
            slot.worker.quit()
