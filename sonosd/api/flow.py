# -*- test-case-name: tests.test_api_flow -*-
"""Per-client backpressure: a bounded queue that follows the transport's producer signals.

Every streaming client (WebSocket, SSE, the local stream) writes through one ``ClientQueue``
registered as the streaming producer of its transport. While the transport accepts data
(its own buffer is below its high-water mark, 64 KiB for TCP) frames are written at once;
when the transport says ``pauseProducing`` frames wait in the queue; when more than ``limit``
frames wait, the client is too slow: the queue empties itself, stops accepting frames and
calls ``on_overflow`` so that the channel disconnects the client with a reason. Memory per
client is therefore bounded by the transport's buffer plus ``limit`` frames, and frames are
shared objects (serialised once), not copies.

What a client is sent on joining (a snapshot, or a replay of up to the whole ring) is given
to ``prime`` as an iterable and pulled only as the transport accepts data: it neither counts
against ``limit`` nor is copied into memory at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

T = TypeVar("T")

_END = object()


@implementer(IPushProducer)
class ClientQueue(Generic[T]):
    """A bounded frame queue between a channel and one client's transport.

    @param limit: How many frames may wait while the transport is paused.
    @param send: Writes one frame to the transport (may call ``pauseProducing`` at once).
    @param on_overflow: Called once, with the number of frames dropped, when ``limit`` is
        exceeded; the queue is closed by then.
    """

    def __init__(
        self, limit: int, send: Callable[[T], None], on_overflow: Callable[[int], None]
    ) -> None:
        self._limit = max(1, limit)
        self._send = send
        self._on_overflow = on_overflow
        self._pending: deque[T] = deque()
        self._backlog: Iterator[T] | None = None
        self.paused = False
        self.closed = False
        self.sent = 0

    def __len__(self) -> int:
        return len(self._pending)

    def prime(self, frames: Iterable[T]) -> None:
        """Send ``frames`` before anything offered later, pulling them as the transport allows.

        Call once, before the first ``offer``.
        """
        self._backlog = iter(frames)
        self.resumeProducing()

    def offer(self, frame: T) -> None:
        """Write ``frame`` now, or queue it while the transport is paused."""
        if self.closed:
            return
        if self.paused or self._pending or self._backlog is not None:
            self._pending.append(frame)
            if len(self._pending) > self._limit:
                dropped = len(self._pending)
                self.close()
                self._on_overflow(dropped)
            return
        self._write(frame)

    def close(self) -> None:
        """Drop waiting frames and accept no more."""
        self.closed = True
        self._pending.clear()
        self._backlog = None

    def _write(self, frame: T) -> None:
        self.sent += 1
        self._send(frame)

    def pauseProducing(self) -> None:
        """The transport's buffer is full: queue frames from now on."""
        self.paused = True

    def resumeProducing(self) -> None:
        """The transport drained: write the waiting frames until it fills again."""
        self.paused = False
        while self._backlog is not None and not self.paused and not self.closed:
            frame = next(self._backlog, _END)
            if frame is _END:
                self._backlog = None
            else:
                self._write(frame)  # type: ignore[arg-type]
        while self._pending and not self.paused and not self.closed:
            self._write(self._pending.popleft())

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.close()
