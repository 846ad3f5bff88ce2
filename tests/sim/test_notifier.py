"""Tests for sonosd.sim.notifier: callback parsing, request bytes and the raw NOTIFY client."""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from sonosd.sim.notifier import (
    CallbackURL,
    INotifier,
    Notifier,
    NotifyError,
    NotifyHead,
    NotifyTimeout,
    parse_callback,
    sonos_service_type,
)
from tests.conftest import free_loopback_base

MODERN_CAPTURE_HEAD = (
    b"NOTIFY / HTTP/1.1\r\n"
    b"HOST: 192.168.1.22:1234\r\n"
    b"CONNECTION: close\r\n"
    b"CONTENT-TYPE: text/xml\r\n"
    b"CONTENT-LENGTH: 438\r\n"
    b"NT: upnp:event\r\n"
    b"NTS: upnp:propchange\r\n"
    b"SID: uuid:RINCON_48A6B888B19601400_sub0000000413\r\n"
    b"SEQ: 3\r\n"
    b"X-SONOS-SERVICETYPE: RenderingControl\r\n"
    b"\r\n"
)


class ParseCallbackTests(SynchronousTestCase):
    """CALLBACK headers as subscribers send them."""

    def test_soco_callback_has_no_path(self) -> None:
        """SoCo's callback without a path means NOTIFY /."""
        callback = parse_callback("<http://127.0.0.1:1400>")
        self.assertEqual(callback, CallbackURL("http://127.0.0.1:1400", "127.0.0.1", 1400, b"/"))

    def test_first_url_and_path_kept_verbatim(self) -> None:
        """The first URL wins and its path, spaces included, is kept."""
        callback = parse_callback("<http://h.lan:3500/Zone Group><http://other:1/>")
        assert callback is not None
        self.assertEqual(
            (callback.host, callback.port, callback.path), ("h.lan", 3500, b"/Zone Group")
        )
        self.assertEqual(callback.host_header, b"h.lan:3500")

    def test_default_port_and_ipv6(self) -> None:
        """Port 80 is the default; IPv6 literals keep brackets in HOST, not for connecting."""
        callback = parse_callback("<http://[::1]/x>")
        assert callback is not None
        self.assertEqual(
            (callback.connect_host, callback.port, callback.host_header), ("::1", 80, b"[::1]:80")
        )

    def test_unusable_callbacks(self) -> None:
        """Missing, non-http, portless-garbage and out-of-range callbacks are refused."""
        for header in [
            None,
            "",
            "http://no-brackets:1/",
            "<https://h:1/>",
            "<http://>",
            "<http://h:0/>",
            "<http://h:70000/>",
            "<http://h:x/>",
            "<ftp://h/>",
            "<http://h:1/\u00e9>",
        ]:
            self.assertIsNone(parse_callback(header), header)


@given(st.text(max_size=60))
def test_parse_callback_never_raises(header: str) -> None:
    """Arbitrary header text gives a CallbackURL or None, never an exception."""
    result = parse_callback(header)
    assert result is None or result.path.startswith(b"/")


def test_service_type_names() -> None:
    """Both ConnectionManagers announce themselves as ConnectionManager."""
    assert sonos_service_type("MR_ConnectionManager") == "ConnectionManager"
    assert sonos_service_type("MS_ConnectionManager") == "ConnectionManager"
    assert sonos_service_type("AVTransport") == "AVTransport"


def test_request_matches_the_modern_capture() -> None:
    """The request head is byte-identical to the modern capture's header block."""
    callback = parse_callback("<http://192.168.1.22:1234>")
    assert callback is not None
    head = NotifyHead.for_subscription(
        callback, "uuid:RINCON_48A6B888B19601400_sub0000000413", "RenderingControl"
    )
    body = b"x" * 438
    assert head.request(3, body) == MODERN_CAPTURE_HEAD + body


def test_request_without_service_type_header() -> None:
    """Old-firmware style requests (no X-SONOS-SERVICETYPE) end after SEQ."""
    callback = parse_callback("<http://h:1/p>")
    assert callback is not None
    request = NotifyHead.for_subscription(callback, "uuid:X_sub0000000001", None).request(0, b"")
    assert request.endswith(b"SEQ: 0\r\n\r\n")
    assert request.startswith(b"NOTIFY /p HTTP/1.1\r\n")


@attrs.frozen
class _Connection:
    """One in-memory connection of the client under test."""

    factory: Any
    protocol: Protocol
    transport: StringTransport


class NotifierMemoryTests(SynchronousTestCase):
    """The client protocol driven in memory."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.notifier = Notifier(self.reactor, timeout=30.0)
        self.results: list[Any] = []

    def send(self) -> Deferred[int]:
        d = self.notifier.send("127.0.0.1", 4000, b"REQUEST", "127.9.9.2")
        d.addBoth(self.results.append)
        return d

    def connect(self) -> _Connection:
        factory = self.reactor.tcpClients[-1][2]
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        return _Connection(factory, protocol, transport)

    def test_provides_interface(self) -> None:
        """Notifier provides INotifier."""
        self.assertTrue(verifyObject(INotifier, self.notifier))

    def test_connects_from_bind_address_and_reads_status(self) -> None:
        """It connects from the given address, writes the request and fires with the status."""
        self.send()
        host, port, _factory, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port, timeout, bind), ("127.0.0.1", 4000, 30.0, ("127.9.9.2", 0)))
        conn = self.connect()
        self.assertEqual(conn.transport.value(), b"REQUEST")
        conn.protocol.dataReceived(b"HTTP/1.1 2")
        self.assertEqual(self.results, [])
        conn.protocol.dataReceived(b"00 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(self.results, [200])
        self.assertFalse(conn.transport.disconnecting)
        self.assertEqual(self.notifier.in_flight, 1)
        conn.factory.clientConnectionLost(None, Failure(ConnectionDone()))
        self.assertEqual(self.notifier.in_flight, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_non_200_status_is_reported(self) -> None:
        """A 412 answer fires with 412 (the caller decides what it means)."""
        self.send()
        conn = self.connect()
        conn.protocol.dataReceived(b"HTTP/1.0 412 Precondition Failed\n")
        self.assertEqual(self.results, [412])

    def test_bad_status_line_fails_and_aborts(self) -> None:
        """Garbage instead of a status line fails with NotifyError and aborts the connection."""
        self.send()
        conn = self.connect()
        conn.protocol.dataReceived(b"SSH-2.0-OpenSSH\r\n")
        self.assertIsInstance(self.results[0], Failure)
        self.results[0].trap(NotifyError)
        self.assertTrue(conn.transport.disconnected)

    def test_overlong_status_line_fails(self) -> None:
        """A status line that never ends fails instead of buffering forever."""
        self.send()
        conn = self.connect()
        conn.protocol.dataReceived(b"H" * 9000)
        self.results[0].trap(NotifyError)

    def test_close_before_status_fails(self) -> None:
        """A subscriber closing without answering fails the NOTIFY."""
        self.send()
        conn = self.connect()
        conn.factory.clientConnectionLost(None, Failure(ConnectionDone()))
        self.results[0].trap(NotifyError)
        self.assertEqual(self.notifier.in_flight, 0)

    def test_refused(self) -> None:
        """A refused connection fails with the connect error."""
        self.send()
        factory = self.reactor.tcpClients[0][2]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
        self.results[0].trap(ConnectionRefusedError)
        self.assertEqual(self.notifier.in_flight, 0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_timeout_while_connected_aborts(self) -> None:
        """No status line within the timeout fails with NotifyTimeout and aborts."""
        self.send()
        conn = self.connect()
        self.reactor.advance(30)
        self.results[0].trap(NotifyTimeout)
        self.assertTrue(conn.transport.disconnected)

    def test_timeout_while_connecting_stops_connecting(self) -> None:
        """A connect that takes too long is stopped."""
        self.send()
        connector = self.reactor.connectors[0]
        self.reactor.advance(30)
        self.results[0].trap(NotifyTimeout)
        self.assertTrue(connector.stoppedConnecting)

    def test_subscriber_that_never_closes_is_aborted(self) -> None:
        """After the status, a connection the subscriber keeps open is aborted at the timeout."""
        self.send()
        conn = self.connect()
        conn.protocol.dataReceived(b"HTTP/1.1 200 OK\r\n")
        self.reactor.advance(30)
        self.assertEqual(self.results, [200])
        self.assertTrue(conn.transport.disconnected)

    def test_abort_all_waits_for_close(self) -> None:
        """abort_all aborts every connection and fires once they are all closed."""
        self.send()
        conn = self.connect()
        idle = self.notifier.abort_all()
        self.assertTrue(conn.transport.disconnected)
        self.assertNoResult(idle)
        conn.factory.clientConnectionLost(None, Failure(ConnectionDone()))
        self.successResultOf(idle)
        self.successResultOf(self.notifier.abort_all())


class _Answer(Protocol):
    """A subscriber that records the peer and request, answers 200 and closes."""

    def __init__(self, seen: list[tuple[str, bytes]], done: Deferred[None]) -> None:
        self.seen = seen
        self.done = done
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data:
            assert self.transport is not None
            self.seen.append((self.transport.getPeer().host, self.data))
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = ConnectionDone) -> None:  # type: ignore[assignment]
        self.done.callback(None)


class NotifierLoopbackTests(TestCase):
    """The client against a real loopback subscriber."""

    async def test_sends_from_the_speaker_address(self) -> None:
        """A NOTIFY over real TCP comes from the bind address and reports the status."""
        from twisted.internet import reactor

        seen: list[tuple[str, bytes]] = []
        closed: Deferred[None] = Deferred()
        factory = Factory.forProtocol(lambda: _Answer(seen, closed))
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        speaker = free_loopback_base()
        notifier = Notifier(reactor, timeout=10.0)
        status = await notifier.send(
            "127.0.0.1", port.getHost().port, b"NOTIFY / HTTP/1.1\r\n\r\n", speaker
        )
        self.assertEqual(status, 200)
        await closed
        await notifier.when_idle()
        self.assertEqual(seen, [(speaker, b"NOTIFY / HTTP/1.1\r\n\r\n")])

    async def test_refused_on_loopback(self) -> None:
        """Nobody listening: the NOTIFY fails with ConnectionRefusedError."""
        from twisted.internet import reactor

        port = reactor.listenTCP(0, Factory.forProtocol(Protocol), interface="127.0.0.1")
        number = port.getHost().port
        await port.stopListening()
        notifier = Notifier(reactor, timeout=10.0)
        with self.assertRaises(ConnectionRefusedError):
            await notifier.send("127.0.0.1", number, b"NOTIFY / HTTP/1.1\r\n\r\n")
        await notifier.when_idle()
