# -*- test-case-name: tests.gena.test_httpclient -*-
"""HTTP connection pools that do not log every connection they open, and agents that connect
straight to a speaker's address.

Every pool bounds the head of an answer (``MAX_HEAD``), which Twisted's client does not.

Twisted's client factories announce "Starting factory" and "Stopping factory" at info level
for every connection. A daemon that renews hundreds of subscriptions would fill its log
with them, so every HTTP client of sonosd takes its pool from here.

An ``Agent``'s own endpoint (``HostnameEndpoint``) resolves even an address like
``192.168.1.20`` with ``getaddrinfo`` in the reactor's thread pool, then runs timers to race
address families: about half a millisecond of the daemon's CPU per request, and, while a
large household starts (1,600 SUBSCRIBEs), a queue of resolutions behind the pool's ten
threads (issue 17). :func:`speaker_agent` connects to an address directly and resolves only
host names.

:func:`add_timeout` bounds a request in time and reports the cut as the caller's own timeout
error, whatever error the aborted connection gave.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, TypeVar

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.interfaces import IAddress, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web._newclient import (
    HEADER,
    STATUS,
    HTTP11ClientProtocol,
    HTTPClientParser,
    ParseError,
)
from twisted.web.client import (
    URI,
    Agent,
    HTTPConnectionPool,
    PotentialDataLoss,
    ResponseDone,
    _HTTP11ClientFactory,
)
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

T = TypeVar("T")

MAX_HEAD: Final = 64 * 1024
"""The most bytes of status line and headers an answer may have (a speaker's are under 1 KiB).
Twisted's client bounds each line (16 KiB) but not their number, nor a header folded over
continuation lines: without this, a peer could send headers for as long as a call may take."""


class HeadTooLarge(ParseError):
    """An answer's status line and headers are over ``MAX_HEAD`` bytes."""

    def __init__(self) -> None:
        super().__init__("head too large", f"status line and headers over {MAX_HEAD} bytes")


class _BoundedClientProtocol(HTTP11ClientProtocol):
    """Twisted's HTTP/1.1 client, with an answer's head bounded to ``MAX_HEAD`` bytes."""

    def request(self, request: Any) -> Deferred[IResponse]:
        answer = super().request(request)
        parser = self._parser
        if parser is not None:
            parser.lineReceived = _bounded_lines(parser)  # type: ignore[method-assign]
        return answer


def _bounded_lines(parser: HTTPClientParser) -> Callable[[bytes], None]:
    """``parser``'s ``lineReceived``, raising ``HeadTooLarge`` (which fails the request and
    closes the connection) once its head is over ``MAX_HEAD``."""
    receive = parser.lineReceived
    head = [0]

    def line_received(line: bytes) -> None:
        if parser.state in (STATUS, HEADER):
            head[0] += len(line) + 1
            if head[0] > MAX_HEAD:
                raise HeadTooLarge()
        receive(line)

    return line_received


class _QuietClientFactory(_HTTP11ClientFactory):
    noisy = False

    def buildProtocol(self, addr: IAddress | None) -> HTTP11ClientProtocol:
        return _BoundedClientProtocol(self._quiescentCallback)


def quiet_pool(reactor: Any, persistent: bool = False) -> HTTPConnectionPool:
    """An ``HTTPConnectionPool`` whose connections are not logged one by one, and whose
    answers' heads are bounded (``MAX_HEAD``)."""
    pool = HTTPConnectionPool(reactor, persistent=persistent)
    pool._factory = _QuietClientFactory
    return pool


@implementer(IAgentEndpointFactory)
class SpeakerEndpoints:
    """Where an ``Agent`` connects for a speaker's URL: straight to its address (a host name
    through ``HostnameEndpoint``), over TLS for ``https`` when given ``tls`` (a client
    connection creator); without one an ``https`` URL is refused (``SchemeNotSupported``)."""

    def __init__(self, reactor: Any, tls: Any = None) -> None:
        self._reactor = reactor
        self._tls = tls

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        """The endpoint for ``uri``'s host and port."""
        host = uri.host.decode("ascii")
        endpoint: IStreamClientEndpoint
        if isIPAddress(host):
            endpoint = TCP4ClientEndpoint(self._reactor, host, uri.port)
        elif isIPv6Address(host):
            endpoint = TCP6ClientEndpoint(self._reactor, host, uri.port)
        else:
            endpoint = HostnameEndpoint(self._reactor, uri.host, uri.port)
        if uri.scheme == b"https":
            if self._tls is None:
                # Never plain HTTP to a TLS port: GENA and descriptions are http:// (port
                # 1400); only the SOAP client of household.soap speaks https, with its creator.
                raise SchemeNotSupported(f"no TLS for this client: {uri.toBytes().decode()}")
            from twisted.internet.endpoints import wrapClientTLS

            endpoint = wrapClientTLS(self._tls, endpoint)
        return endpoint


def speaker_agent(reactor: Any, tls: Any = None) -> Agent:
    """An ``Agent`` for speakers: one connection per request (as the speakers close after
    every answer), none of them logged, each straight to the speaker's address
    (``SpeakerEndpoints``)."""
    return Agent.usingEndpointFactory(
        reactor, SpeakerEndpoints(reactor, tls), pool=quiet_pool(reactor)
    )


def read_body(response: IResponse, collect: Callable[[bytes], None]) -> Deferred[None]:
    """Give ``response``'s body to ``collect`` as it arrives; fires once the body has ended.

    ``collect`` may raise to refuse the body (over a bound): the connection is closed and the
    Deferred fails with that exception. Cancelling the Deferred (a deadline) closes the
    connection too, where ``treq.collect`` would leave it open to a body without end.
    """
    reader = _BodyReader(collect)
    response.deliverBody(reader)
    return reader.done


def read_bounded(
    response: IResponse, limit: int, refuse: Callable[[], Exception]
) -> Deferred[bytes]:
    """``response``'s whole body, at most ``limit`` bytes (``read_body``'s cancelling).

    A body announced (``Content-Length``) or found longer fails with ``refuse()`` and its
    connection is closed: announced, before a byte of it is read.
    """
    chunks: list[bytes] = []
    size = 0

    def collect(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit:
            raise refuse()
        chunks.append(data)

    reading = read_body(response, collect)
    if isinstance(response.length, int) and response.length > limit:
        reading.cancel()  # closes the connection
        reading.addErrback(lambda _: None)
        return fail(refuse())
    return reading.addCallback(lambda _: b"".join(chunks))


def add_timeout(
    request: Deferred[T],
    seconds: float,
    clock: IReactorTime,
    timed_out: Callable[[float], Exception],
) -> Deferred[T]:
    """Cancel ``request`` if it has not fired within ``seconds``, and fail it then with
    ``timed_out(seconds)``, whatever the cancelled request failed with.

    Cancelling a request of Twisted's client aborts its connection, which it may report as
    ``ResponseNeverReceived`` (shown as ``connection lost``, as if the peer had closed it)
    rather than ``CancelledError``: the caller's own timeout error is reported instead.

    @param request: The request (or a whole exchange of requests) to bound.
    @param timed_out: Makes the error the request fails with, from the bound in seconds.
    @return: ``request``, bounded.
    """

    def cancelled(result: object, after: float) -> Failure:
        return Failure(timed_out(after))

    return request.addTimeout(seconds, clock, onTimeoutCancel=cancelled)


class _BodyReader(Protocol):
    def __init__(self, collect: Callable[[bytes], None]) -> None:
        self._collect = collect
        self.done: Deferred[None] = Deferred(lambda _: self._close())

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        try:
            self._collect(data)
        except Exception:
            self.done.errback(Failure())
            self._close()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(None)
        else:
            self.done.errback(reason)
