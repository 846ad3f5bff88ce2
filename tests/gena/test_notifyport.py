"""Tests for gena.notifyport: requests whole on arrival served at once, the rest handed over."""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

from twisted.internet import reactor as global_reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from sonosd.gena.notifyport import NotifyPort, _FirstRead, listen
from sonosd.gena.notifyproto import RESPONSES, NotifyServerFactory
from tests.gena.test_notifyproto import RecordingHandler, notify

reactor: Any = global_reactor


class Client:
    """A plain blocking socket to the port: what a speaker's NOTIFY looks like on the wire."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.socket = socket.create_connection((host, port), timeout=5)
        self.socket.settimeout(None)  # reads below never wait (MSG_DONTWAIT)
        self.received = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.socket.sendall(data)

    def poll(self) -> bool:
        """Read what has arrived; whether the server closed the connection."""
        while not self.closed:
            try:
                data = self.socket.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return False
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.received += data
        return True

    def close(self) -> None:
        self.socket.close()


class NotifyPortTests(TestCase):
    """A NotifyPort on real loopback sockets."""

    def start(
        self, code: int | None = 200, idle: float = 8.0, interface: str = "127.0.0.1", **kwargs: Any
    ) -> tuple[NotifyPort, RecordingHandler]:
        handler = RecordingHandler(code)
        self.factory = NotifyServerFactory(handler, reactor, 1000, idle, **kwargs)
        port = listen(reactor, 0, self.factory, 50, interface)
        assert isinstance(port, NotifyPort)
        self.addCleanup(port.stopListening)
        self.addCleanup(self.factory.stop)
        return port, handler

    def connect(self, port: NotifyPort, host: str = "127.0.0.1") -> Client:
        client = Client(port.getHost().port, host)
        self.addCleanup(client.close)
        return client

    async def until(self, check: Any, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            await deferLater(reactor, 0.01, lambda: None)

    async def test_whole_request_served_at_once(self) -> None:
        """A NOTIFY sent whole before the port accepts it is answered and closed at once."""
        port, handler = self.start()
        client = self.connect(port)
        client.send(notify(b"<e>x</e>"))
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[200]
        assert [request.body for request in handler.requests] == [b"<e>x</e>"]
        assert handler.requests[0].host == "127.0.0.1"
        assert (port.served_at_once, port.handed_over) == (1, 0)
        assert self.factory.reading == 0

    async def test_ipv6_served_at_once(self) -> None:
        """On an IPv6 port the request is served the same way, the peer's address as sent."""
        port, handler = self.start(interface="::1")
        client = self.connect(port, "::1")
        client.send(notify())
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[200]
        assert handler.requests[0].host == "::1"
        assert port.served_at_once == 1

    async def test_accept_error_left_to_twisted(self) -> None:
        """An accept that fails other than "nothing waiting" goes to Twisted's own accept
        loop, and the connections still waiting are served."""
        port, handler = self.start()
        real = port.socket
        failures = [ConnectionAbortedError(errno.ECONNABORTED, "aborted")]

        class Flaky:
            def accept(self) -> Any:
                if failures:
                    raise failures.pop()
                return real.accept()

            def __getattr__(self, name: str) -> Any:
                return getattr(real, name)

        port.socket = Flaky()
        self.addCleanup(setattr, port, "socket", real)
        client = self.connect(port)
        client.send(notify())
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[200]
        assert failures == [] and len(handler.requests) == 1
        assert port.served_at_once == 0

    async def test_refusal_served_at_once(self) -> None:
        """A request refused on its head (another method) is answered 405 the same way."""
        port, handler = self.start()
        client = self.connect(port)
        client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[405]
        assert handler.rejected == ["method"]
        assert port.served_at_once == 1

    async def test_partial_request_handed_over(self) -> None:
        """A request whose body has not all arrived gets a transport and is answered later."""
        port, handler = self.start()
        client = self.connect(port)
        data = notify(b"<e>" + b"y" * 200 + b"</e>")
        client.send(data[:-50])
        await self.until(lambda: port.handed_over == 1, "the hand-over")
        assert not client.poll()
        client.send(data[-50:])
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[200]
        assert len(handler.requests) == 1 and handler.requests[0].body.endswith(b"y</e>")
        assert port.served_at_once == 0

    async def test_held_request_handed_over(self) -> None:
        """A request the handler holds keeps its connection until the handler answers."""
        port, handler = self.start(code=None)
        client = self.connect(port)
        client.send(notify())
        await self.until(lambda: handler.requests, "the request")
        await deferLater(reactor, 0.05, lambda: None)
        assert not client.poll()
        handler.requests[0].answer(412)
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[412]
        assert port.handed_over == 1

    async def test_refused_body_is_read_and_dropped(self) -> None:
        """A body over the limit is answered 413 at once; the rest of it is read and dropped
        by the transport it was handed to, then the connection closes."""
        port, handler = self.start()
        client = self.connect(port)
        client.send(b"NOTIFY / HTTP/1.1\r\nContent-Length: 3000\r\n\r\n" + b"z" * 1000)
        await self.until(lambda: port.handed_over == 1, "the hand-over")
        client.send(b"z" * 2000)
        await self.until(client.poll, "the answer and the close")
        assert client.received == RESPONSES[413]
        assert handler.rejected == ["too_large"]

    async def test_per_host_bound_applies(self) -> None:
        """A connection beyond max_per_host from one address is closed unanswered."""
        port, handler = self.start(max_per_host=1)
        first = self.connect(port)
        first.send(b"NOTIFY / HTTP/1.1\r\n")
        await self.until(lambda: self.factory.reading == 1, "the first connection")
        second = self.connect(port)
        second.send(notify())
        await self.until(second.poll, "the second connection closed")
        assert second.received == b""
        assert handler.rejected == ["too_many_connections"]

    async def test_deadline_applies_after_hand_over(self) -> None:
        """A request that stops half way is closed at the request deadline."""
        port, handler = self.start(request_timeout=0.5)
        client = self.connect(port)
        client.send(b"NOTIFY / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        await self.until(client.poll, "the connection closed")
        assert client.received == b""
        assert handler.rejected == ["too_slow"]

    async def test_silent_connection_is_closed(self) -> None:
        """A connection that never sends a byte still reaches the port (the kernel hands it
        over after DEFER_ACCEPT seconds) and is closed at the idle timeout."""
        port, handler = self.start(idle=0.4)
        client = self.connect(port)
        await self.until(client.poll, "the connection closed")
        assert client.received == b""
        assert handler.rejected == ["too_slow"]
        assert port.served_at_once == 0


def test_listen_on_a_memory_reactor() -> None:
    """A reactor without real sockets gets listenTCP, with the same backlog and interface."""
    memory = MemoryReactorClock()
    factory = NotifyServerFactory(RecordingHandler(), memory, 1000, 8.0)
    listen(memory, 1400, factory, 1024, "127.0.0.5")
    assert memory.tcpServers == [(1400, factory, 1024, "127.0.0.5")]


def test_first_read_answer() -> None:
    """What the protocol wrote is sent at once only when its last act was to close."""
    first = _FirstRead(socket.socket())
    first.socket.close()
    assert first.answer() is None
    first.write(b"a")
    assert first.answer() is None
    first.writeSequence([b"b", b"c"])
    first.loseConnection()
    assert first.answer() == b"abc"
    first.ops = []
    first.write(b"x")
    first.loseConnection()
    assert first.answer() == b"x"
    first.ops = []
    first.write(b"413")
    first.loseWriteConnection()
    assert first.answer() is None
    first.abortConnection()
    assert first.answer() is None
