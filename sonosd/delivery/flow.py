# -*- test-case-name: tests.delivery.test_flow -*-
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

Several frames offered together (``offer_many``: the messages a channel collected in one
reactor turn) are written with one call of ``send_many`` (one ``transport.writeSequence``, one
chunk of a chunked HTTP response) instead of one write each: that per-write cost, paid for
every client, is most of what fan-out costs (issue 7).

``TransportWriter`` goes one step lower for plain TCP and UNIX connections: while the transport
has nothing buffered, bytes go straight into the socket with one ``send``, instead of into the
transport's buffer and out through the reactor's next write event (which costs two
``epoll_ctl`` calls and a dispatch per client and message when messages arrive one per reactor
turn). Whatever the socket does not take, and everything while the transport still holds data,
goes through ``transport.write`` as before, so order, the transport's producer signals (and so
the queue's limit) and error handling are unchanged.
"""

from __future__ import annotations

import contextlib
import socket
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from twisted.internet import tcp, unix
from twisted.internet.interfaces import IPushProducer, ITransport
from zope.interface import implementer

T = TypeVar("T")

_END = object()

#: Most frames written with one ``send_many`` while draining the queue after a pause.
DRAIN_BATCH = 32

#: Transports whose socket ``TransportWriter`` may write to directly (TLS is checked apart).
_DIRECT = (tcp.Server, unix.Server)


SEND_BUFFER = 262_144
"""The kernel send buffer (bytes) of a streaming client's socket. Left alone, Linux grows it
up to ``net.ipv4.tcp_wmem``'s maximum (4 MiB by default): a client that stops reading would
hold megabytes of kernel memory, and thousands of messages would pass before its queue
(``api.client_buffer``) even started to fill."""


class TransportWriter:
    """Writes bytes to ``transport``, straight into its socket while nothing is buffered.

    Also bounds the socket's kernel send buffer to ``SEND_BUFFER`` (a streaming client's
    connection: what it has not read yet is then bounded by that and its queue), and turns
    Nagle's algorithm off on a TCP connection: a message must not wait for the client's
    (delayed, up to 40-200 ms) acknowledgement of the one before it. twisted.web's
    ``HTTPChannel`` does so for the WebSocket and SSE connections already; the local stream
    on a ``tcp:`` endpoint had it on.

    @param transport: The connection's transport; anything but a plain (not TLS) TCP or UNIX
        server connection is always written with ``transport.write``.
    """

    def __init__(self, transport: ITransport) -> None:
        self._transport: Any = transport
        self._direct = type(transport) in _DIRECT and all(
            hasattr(transport, name)
            for name in ("socket", "TLS", "dataBuffer", "_tempDataBuffer", "disconnecting")
        )
        handle = getattr(transport, "getHandle", None)
        sock = handle() if handle is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        """Write ``data`` (in order after everything written before)."""
        transport = self._transport
        if (
            self._direct
            and transport.connected
            and not transport.dataBuffer
            and not transport._tempDataBuffer
            and not transport.TLS
            and not transport.disconnecting
        ):
            try:
                sent = transport.socket.send(data)
            except OSError:
                # Full (EAGAIN), interrupted, or broken: the transport retries the write, and
                # reports a broken connection through connectionLost as usual.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        transport.write(data)

    def write_many(self, chunks: Sequence[bytes]) -> None:
        """Write ``chunks`` in order, with one ``send`` if the socket takes them all."""
        self.write(b"".join(chunks))


@implementer(IPushProducer)
class ClientQueue(Generic[T]):
    """A bounded frame queue between a channel and one client's transport.

    @param limit: How many frames may wait while the transport is paused.
    @param send: Writes one frame to the transport (may call ``pauseProducing`` at once).
    @param on_overflow: Called once, with the number of frames dropped, when ``limit`` is
        exceeded; the queue is closed by then.
    @param send_many: Writes several frames at once, in order (``transport.writeSequence``);
        ``None``: ``send`` is called for each.
    """

    def __init__(
        self,
        limit: int,
        send: Callable[[T], None],
        on_overflow: Callable[[int], None],
        send_many: Callable[[Sequence[T]], None] | None = None,
    ) -> None:
        self._limit = max(1, limit)
        self._send = send
        self._send_many = send_many
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

    def replace(self, frames: Iterable[T]) -> None:
        """Drop every frame still waiting and send ``frames`` next, pulled lazily like
        ``prime``'s (a stream client that resumes: what waited is covered by its replay)."""
        if self.closed:
            return
        self._pending.clear()
        self.prime(frames)

    def offer(self, frame: T) -> None:
        """Write ``frame`` now, or queue it while the transport is paused."""
        if self.closed:
            return
        if self.paused or self._pending or self._backlog is not None:
            self._pending.append(frame)
            self._check_limit()
            return
        self.sent += 1
        self._send(frame)

    def offer_many(self, frames: Sequence[T]) -> None:
        """Write ``frames`` now with one ``send_many``, or queue them while paused.

        Each frame counts against ``limit`` as if offered alone.
        """
        if self.closed or not frames:
            return
        if self.paused or self._pending or self._backlog is not None:
            self._pending.extend(frames)
            self._check_limit()
            return
        if len(frames) == 1:
            # The usual case (one message per turn): what offer() would do, one call less.
            self.sent += 1
            self._send(frames[0])
            return
        if self._send_many is None:
            for frame in frames:
                self.offer(frame)
            return
        self.sent += len(frames)
        self._send_many(frames)

    def _check_limit(self) -> None:
        if len(self._pending) > self._limit:
            dropped = len(self._pending)
            self.close()
            self._on_overflow(dropped)

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
        pending = self._pending
        send_many = self._send_many
        while pending and not self.paused and not self.closed:
            if send_many is None or len(pending) == 1:
                self._write(pending.popleft())
                continue
            # A few frames per write: fewer calls, and the transport's buffer overshoots its
            # high-water mark by at most DRAIN_BATCH frames before it pauses us again.
            frames = [pending.popleft() for _ in range(min(DRAIN_BATCH, len(pending)))]
            self.sent += len(frames)
            send_many(frames)

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.close()
