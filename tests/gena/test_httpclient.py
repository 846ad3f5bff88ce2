"""Tests for L{sonosd.gena.httpclient}."""

from __future__ import annotations

from typing import Any, cast

import pytest
import treq
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ResponseFailed, ResponseNeverReceived
from twisted.web.client import URI, Agent, ResponseDone
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import UNKNOWN_LENGTH

from sonosd.backoff import FailureKind, describe_failure
from sonosd.gena.core import build_http_client
from sonosd.gena.httpclient import (
    MAX_HEAD,
    HeadTooLarge,
    SpeakerEndpoints,
    add_timeout,
    quiet_pool,
    read_bounded,
)


def test_pool_factories_are_quiet() -> None:
    """Connections made through the pool use a factory that does not log start and stop."""
    pool = quiet_pool(MemoryReactorClock(), persistent=True)
    assert pool.persistent is True
    assert pool._factory.noisy is False


def test_connections_go_straight_to_the_address() -> None:
    """Addresses are connected to directly (no name resolution), names through
    HostnameEndpoint, https wrapped in TLS when a TLS creator is given."""
    reactor = MemoryReactorClock()
    plain = SpeakerEndpoints(reactor)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://127.0.0.2:1400/x"))
    assert isinstance(endpoint, TCP4ClientEndpoint)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://[fe80::1]:1400/x"))
    assert isinstance(endpoint, TCP6ClientEndpoint)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://kitchen.lan:1400/x"))
    assert isinstance(endpoint, HostnameEndpoint)
    secure = SpeakerEndpoints(reactor, tls=object())
    endpoint = secure.endpointForURI(URI.fromBytes(b"https://127.0.0.2:1443/x"))
    assert not isinstance(endpoint, TCP4ClientEndpoint)


def test_gena_requests_connect_without_resolving() -> None:
    """A GENA request to a speaker's address connects to it at once: no getaddrinfo in the
    reactor's thread pool (a queue behind ten threads while a large household starts)."""
    reactor = MemoryReactorClock()
    http = build_http_client(reactor)
    http.request("SUBSCRIBE", "http://127.0.0.5:1400/MediaRenderer/AVTransport/Event")
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("127.0.0.5", 1400)]


def test_https_without_a_tls_creator_is_refused() -> None:
    """An https URL through endpoints without a TLS creator fails with SchemeNotSupported
    instead of speaking plain HTTP to a TLS port."""
    endpoints = SpeakerEndpoints(MemoryReactorClock())
    with pytest.raises(SchemeNotSupported, match=r"https://127\.0\.0\.2:1443/x"):
        endpoints.endpointForURI(URI.fromBytes(b"https://127.0.0.2:1443/x"))


reactor: Any = global_reactor


class BoundedHeadTests(TestCase):
    """Every pool's answers have their head bounded (MAX_HEAD), their body not: against a
    loopback host that answers each connection with fixed bytes."""

    timeout = 30

    def host(self, answer: bytes) -> str:
        """The URL of a loopback port that answers every request with ``answer``, then
        closes the connection."""

        class Answer(Protocol):
            def dataReceived(self, data: bytes) -> None:
                if self.transport is not None and b"\r\n\r\n" in data:
                    self.transport.write(answer)
                    self.transport.loseConnection()

        port = reactor.listenTCP(0, Factory.forProtocol(Answer), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return f"http://127.0.0.1:{port.getHost().port}/"

    async def get(self, answer: bytes) -> bytes:
        agent = Agent(reactor, pool=quiet_pool(reactor))
        response = await agent.request(b"GET", self.host(answer).encode())
        return await treq.content(response)

    async def test_heads_over_the_bound_fail_naming_it(self) -> None:
        """A head of 70 KiB of header lines, or of one header folded over 70 KiB of
        continuation lines, fails the request with HeadTooLarge (reason: its bound); nothing
        reads on."""
        many = b"HTTP/1.1 200 OK\r\n" + b"X-Padding: " + b"x" * 1011 + b"\r\n"
        folded = b"HTTP/1.1 200 OK\r\nX-Folded: a\r\n" + b" " + b"x" * 1021 + b"\r\n"
        for head, line in ((many, b"X-Padding: " + b"x" * 1011 + b"\r\n"), (folded, None)):
            flood = head + (line or head[-1024:]) * 70 + b"Content-Length: 2\r\n\r\nok"
            with self.assertRaises(ResponseFailed) as failed:
                await self.get(flood)
            [reason] = failed.exception.reasons
            self.assertTrue(reason.check(HeadTooLarge))
            self.assertEqual(
                describe_failure(failed.exception),
                (
                    FailureKind.ERROR,
                    f"not an HTTP answer: 'status line and headers over {MAX_HEAD} bytes'",
                ),
            )

    async def test_large_bodies_and_heads_within_the_bound_are_read(self) -> None:
        """A head of 60 KiB and a body of 2 MB sent with it are read whole."""
        head = b"HTTP/1.1 200 OK\r\n" + (b"X-Padding: " + b"x" * 1011 + b"\r\n") * 60
        body = b"y" * 2_000_000
        answer = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        self.assertEqual(await self.get(answer), body)


class _Answer:
    """A response whose body arrives by hand: ``deliverBody`` connects the reader to a
    ``StringTransport`` at once, as Twisted's response does."""

    def __init__(self, length: int | object) -> None:
        self.length = length
        self.transport = StringTransport()
        self.protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol
        protocol.makeConnection(self.transport)


class Refused(Exception):
    pass


class BoundedBodyTests(SynchronousTestCase):
    """``read_bounded``: a whole body within its bound, refused past it."""

    def test_a_body_within_the_bound(self) -> None:
        """The body's parts, joined, once it has ended (a body of exactly the bound too)."""
        answer = _Answer(UNKNOWN_LENGTH)
        reading = read_bounded(cast(Any, answer), 5, Refused)
        answer.protocol.dataReceived(b"ab")
        answer.protocol.dataReceived(b"cde")
        self.assertNoResult(reading)
        answer.protocol.connectionLost(Failure(ResponseDone()))
        self.assertEqual(self.successResultOf(reading), b"abcde")
        self.assertFalse(answer.transport.disconnecting)

    def test_a_body_found_past_the_bound(self) -> None:
        """One byte past the bound fails with the refusal and closes the connection."""
        answer = _Answer(UNKNOWN_LENGTH)
        reading = read_bounded(cast(Any, answer), 4, Refused)
        answer.protocol.dataReceived(b"abc")
        answer.protocol.dataReceived(b"de")
        self.failureResultOf(reading, Refused)
        self.assertTrue(answer.transport.disconnecting)

    def test_a_body_announced_past_the_bound(self) -> None:
        """A Content-Length over the bound is refused before a byte is read."""
        answer = _Answer(5)
        reading = read_bounded(cast(Any, answer), 4, Refused)
        self.failureResultOf(reading, Refused)
        self.assertTrue(answer.transport.disconnecting)

    def test_a_body_cut_short(self) -> None:
        """A body whose connection breaks fails with the break, not a partial body."""
        answer = _Answer(10)
        reading = read_bounded(cast(Any, answer), 10, Refused)
        answer.protocol.dataReceived(b"abc")
        answer.protocol.connectionLost(Failure(ResponseFailed([Failure(ConnectionLost())])))
        self.failureResultOf(reading, ResponseFailed)

    def test_cancelled(self) -> None:
        """Cancelled (a deadline), the connection is closed."""
        answer = _Answer(UNKNOWN_LENGTH)
        reading = read_bounded(cast(Any, answer), 10, Refused)
        answer.protocol.dataReceived(b"abc")
        reading.cancel()
        self.failureResultOf(reading, CancelledError)
        self.assertTrue(answer.transport.disconnecting)


class _Late(Exception):
    """The caller's own timeout error in the ``add_timeout`` tests."""


class AddTimeoutTests(SynchronousTestCase):
    """``add_timeout``: a request cut at its bound fails with the caller's error."""

    def test_cut_request_fails_with_the_callers_error(self) -> None:
        """Cut at its bound, a request that reports the abort as a lost connection fails
        with the caller's error, made from the bound."""
        clock = Clock()
        aborted: list[bool] = []

        def cancel(request: Deferred[str]) -> None:
            aborted.append(True)
            request.errback(ResponseNeverReceived([Failure(ConnectionLost())]))

        request: Deferred[str] = Deferred(cancel)
        bounded = add_timeout(request, 2.5, clock, lambda seconds: _Late(f"{seconds:g} s"))
        clock.advance(2.4)
        self.assertNoResult(bounded)
        clock.advance(0.1)
        self.assertEqual(aborted, [True])
        self.assertEqual(str(self.failureResultOf(bounded, _Late).value), "2.5 s")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_plain_cancellation_is_the_callers_error_too(self) -> None:
        """A request without a canceller of its own (``CancelledError``) also fails with the
        caller's error."""
        clock = Clock()
        bounded: Deferred[str] = add_timeout(Deferred(), 1.0, clock, lambda s: _Late(str(s)))
        clock.advance(1.0)
        self.failureResultOf(bounded, _Late)

    def test_in_time(self) -> None:
        """A request that answers within its bound keeps its result; the timer is gone."""
        clock = Clock()
        request: Deferred[str] = Deferred()
        bounded = add_timeout(request, 1.0, clock, lambda s: _Late(str(s)))
        request.callback("answer")
        self.assertEqual(self.successResultOf(bounded), "answer")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failed_in_time(self) -> None:
        """A request that fails within its bound keeps its own failure."""
        clock = Clock()
        request: Deferred[str] = Deferred()
        bounded = add_timeout(request, 1.0, clock, lambda s: _Late(str(s)))
        request.errback(ConnectionLost())
        self.failureResultOf(bounded, ConnectionLost)
        self.assertEqual(clock.getDelayedCalls(), [])
