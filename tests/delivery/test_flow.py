"""Tests for sonosd.delivery.flow: the bounded per-client queue driven by producer signals."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from sonosd.delivery.flow import DRAIN_BATCH, SEND_BUFFER, ClientQueue, TransportWriter
from tests.api_helpers import wait


class Recorder:
    """Collects written frames and overflow reports."""

    def __init__(self) -> None:
        self.written: list[str] = []
        self.overflows: list[int] = []

    def queue(self, limit: int) -> ClientQueue[str]:
        return ClientQueue(limit, self.written.append, self.overflows.append)


def test_is_a_push_producer() -> None:
    """The queue provides IPushProducer, so a transport can pause it."""
    assert verifyObject(IPushProducer, Recorder().queue(3))


def test_writes_at_once_while_not_paused() -> None:
    """Frames are written immediately while the transport accepts data."""
    recorder = Recorder()
    queue = recorder.queue(2)
    queue.offer("a")
    queue.offer("b")
    assert recorder.written == ["a", "b"]
    assert len(queue) == 0
    assert queue.sent == 2


def test_queues_while_paused_and_drains_in_order() -> None:
    """Paused frames wait and are written in order on resume."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.pauseProducing()
    queue.offer("a")
    queue.offer("b")
    assert recorder.written == []
    queue.resumeProducing()
    queue.offer("c")
    assert recorder.written == ["a", "b", "c"]


def test_overflow_closes_and_reports_once() -> None:
    """More than limit waiting frames closes the queue, drops them and reports once."""
    recorder = Recorder()
    queue = recorder.queue(2)
    queue.pauseProducing()
    for frame in "abcde":
        queue.offer(frame)
    assert recorder.overflows == [3]
    assert queue.closed
    assert len(queue) == 0
    queue.resumeProducing()
    assert recorder.written == []


def test_send_that_pauses_stops_the_drain() -> None:
    """A write that makes the transport pause keeps the rest queued."""
    written: list[str] = []
    queue: ClientQueue[str] = ClientQueue(
        10, lambda frame: (written.append(frame), queue.pauseProducing()), lambda n: None
    )
    queue.pauseProducing()
    queue.offer("a")
    queue.offer("b")
    queue.resumeProducing()
    assert written == ["a"]
    assert len(queue) == 1


def test_prime_goes_first_and_is_not_limited() -> None:
    """Primed frames precede later offers and do not count against the limit."""
    recorder = Recorder()
    queue = recorder.queue(1)
    queue.pauseProducing()
    queue.prime(iter(["s1", "s2", "s3", "s4"]))
    queue.offer("live")
    assert recorder.overflows == []
    queue.resumeProducing()
    assert recorder.written == ["s1", "s2", "s3", "s4", "live"]


def test_prime_is_pulled_lazily() -> None:
    """A primed iterable is consumed only as the transport accepts data."""
    pulled: list[int] = []

    def frames() -> object:
        for index in range(5):
            pulled.append(index)
            yield str(index)

    written: list[str] = []
    queue: ClientQueue[str] = ClientQueue(
        5, lambda frame: (written.append(frame), queue.pauseProducing()), lambda n: None
    )
    queue.prime(frames())  # type: ignore[arg-type]
    assert written == ["0"]
    assert pulled == [0]


def test_stop_producing_closes() -> None:
    """stopProducing (the connection is gone) drops everything."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.pauseProducing()
    queue.offer("a")
    queue.stopProducing()
    queue.offer("b")
    queue.resumeProducing()
    assert recorder.written == []


class Batches:
    """Records single writes and batched writes apart."""

    def __init__(self) -> None:
        self.single: list[str] = []
        self.batches: list[list[str]] = []

    def queue(self, limit: int) -> ClientQueue[str]:
        return ClientQueue(
            limit,
            self.single.append,
            lambda n: None,
            lambda frames: self.batches.append(list(frames)),
        )


def test_offer_many_writes_once() -> None:
    """Several frames offered together go out in one send_many call."""
    batches = Batches()
    queue = batches.queue(3)
    queue.offer_many(["a", "b", "c"])
    queue.offer_many(["d"])
    queue.offer_many([])
    assert batches.batches == [["a", "b", "c"]]
    assert batches.single == ["d"]
    assert queue.sent == 4


def test_offer_many_without_send_many() -> None:
    """Without send_many, offer_many writes each frame with send."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.offer_many(["a", "b"])
    assert recorder.written == ["a", "b"]


def test_offer_many_counts_each_frame_against_the_limit() -> None:
    """While paused, a batch waits frame by frame and overflows like single offers."""
    recorder = Recorder()
    queue = recorder.queue(3)
    queue.pauseProducing()
    queue.offer_many(["a", "b"])
    assert len(queue) == 2
    queue.offer_many(["c", "d"])
    assert recorder.overflows == [4]
    assert queue.closed
    queue.offer_many(["e", "f"])
    assert recorder.written == []


def test_drain_after_pause_is_batched_and_bounded() -> None:
    """Frames that waited are written in batches of at most DRAIN_BATCH, in order."""
    batches = Batches()
    queue = batches.queue(1000)
    queue.pauseProducing()
    frames = [str(index) for index in range(DRAIN_BATCH * 2 + 1)]
    for frame in frames:
        queue.offer(frame)
    queue.resumeProducing()
    assert [len(batch) for batch in batches.batches] == [DRAIN_BATCH, DRAIN_BATCH]
    assert [f for batch in batches.batches for f in batch] + batches.single == frames
    assert queue.sent == len(frames)


def test_drain_stops_when_a_batch_pauses() -> None:
    """A batch write that pauses the transport keeps the rest queued."""
    written: list[list[str]] = []

    def send_many(frames: Sequence[str]) -> None:
        written.append(list(frames))
        queue.pauseProducing()

    queue: ClientQueue[str] = ClientQueue(100, lambda frame: None, lambda n: None, send_many)
    queue.pauseProducing()
    for frame in "abcdef":
        queue.offer(frame)
    queue.resumeProducing()
    assert written == [list("abcdef")]
    assert len(queue) == 0
    for frame in "gh":
        queue.offer(frame)
    assert len(queue) == 2


def test_transport_writer_falls_back_to_write() -> None:
    """Anything but a plain TCP or UNIX server connection is written with transport.write."""
    transport = StringTransport()
    writer = TransportWriter(transport)
    writer.write(b"one")
    writer.write_many([b"two", b"three"])
    assert transport.value() == b"onetwothree"


class TransportWriterTests(TestCase):
    timeout = 10

    async def connected(self) -> tuple[Any, Collector]:
        """A real loopback connection: the server's transport and the client's collector."""
        accepted: Deferred[Any] = Deferred()

        class Accept(Protocol):
            def connectionMade(self) -> None:
                accepted.callback(self.transport)

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            Factory.forProtocol(Accept)
        )
        self.addCleanup(port.stopListening)
        client = Collector()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port), client)
        transport = await accepted
        self.addCleanup(transport.abortConnection)
        return transport, client

    async def test_writes_into_the_socket_when_nothing_is_buffered(self) -> None:
        """With an empty transport buffer the bytes bypass it and arrive."""
        transport, client = await self.connected()
        writer = TransportWriter(transport)
        writer.write(b"hello ")
        writer.write_many([b"wor", b"ld"])
        self.assertEqual(transport._tempDataBuffer, [])
        await wait(lambda: client.data == b"hello world", "the bytes")

    async def test_bounds_the_kernel_send_buffer(self) -> None:
        """A streaming client's socket keeps at most SEND_BUFFER bytes in the kernel (Linux
        reports twice the value set), so that its queue starts to fill soon after it stops
        reading."""
        transport, _ = await self.connected()
        TransportWriter(transport)
        size = transport.getHandle().getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.assertLessEqual(size, 2 * SEND_BUFFER)

    async def test_turns_nagle_off(self) -> None:
        """A streaming client's TCP connection sends each message at once (TCP_NODELAY), not
        after the client acknowledged the one before."""
        transport, _ = await self.connected()
        sock = transport.getHandle()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        TransportWriter(transport)
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)

    async def test_keeps_order_behind_buffered_data(self) -> None:
        """What the socket does not take, and everything after it, goes through the buffer."""
        transport, client = await self.connected()
        client.transport.pauseProducing()  # the client stops reading: the socket fills up
        writer = TransportWriter(transport)
        big = bytes(range(256)) * 40_000  # ~10 MB, more than the socket buffers hold
        writer.write(b"<")
        writer.write(big)
        self.assertTrue(transport.dataBuffer or transport._tempDataBuffer)
        writer.write(b">")
        transport.write(b"!")
        client.transport.resumeProducing()
        await wait(lambda: len(client.data) == len(big) + 3, "every byte")
        self.assertEqual(client.data, b"<" + big + b">!")

    async def test_full_socket_goes_through_the_transport(self) -> None:
        """When the socket takes nothing (EAGAIN) the bytes wait in the transport, in order."""
        transport, client = await self.connected()
        client.transport.pauseProducing()
        filled = b""
        while True:
            try:
                filled += b"f" * transport.socket.send(b"f" * 65536)
            except BlockingIOError:
                break
        TransportWriter(transport).write(b"tail")
        self.assertEqual(transport._tempDataBuffer, [b"tail"])
        client.transport.resumeProducing()
        await wait(lambda: len(client.data) == len(filled) + 4, "every byte")
        self.assertTrue(client.data.endswith(b"ftail"))

    async def test_tls_is_always_written_through_the_transport(self) -> None:
        """On a connection that has started TLS the bytes go through the transport (which
        encrypts them), never straight into the socket: the client reads them decrypted."""
        from twisted.internet.ssl import CertificateOptions

        from sonosd.sim.tls import server_options

        transport, client = await self.connected()
        transport.startTLS(server_options())
        client.transport.startTLS(CertificateOptions(verify=False))
        writer = TransportWriter(transport)
        writer.write(b"over ")
        writer.write_many([b"T", b"LS"])
        self.assertTrue(transport.TLS)
        await wait(lambda: client.data == b"over TLS", "the decrypted bytes")


class Collector(Protocol):
    """Collects what it receives."""

    def __init__(self) -> None:
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data
