# -*- test-case-name: tests.sim.test_notifier -*-
"""The simulated speaker's NOTIFY client: a minimal raw HTTP/1.1 client, built for rate.

A speaker sends each NOTIFY on a new connection (``CONNECTION: close``), from its own address,
and only needs the status line of the answer. :class:`Notifier` does exactly that: connect with
``bindAddress=(speaker address, 0)``, write the pre-built request bytes, read the status line,
then let the subscriber close the connection (so the TIME_WAIT state stays on the subscriber's
side and a busy simulated speaker does not run out of ephemeral ports). Every attempt has a
timeout covering connect, answer and close.

``twisted.web.client.Agent`` would cost several times more CPU per request; the simulator is
the load generator of the daemon's benchmarks (``benchmarks/sim_notify_rate.py``).

The pure helpers (:func:`parse_callback`, :class:`NotifyHead`) build the request bytes; a
subscription builds its :class:`NotifyHead` once and only the length and SEQ change per NOTIFY.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Final

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import NotConnectingError
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IReactorTCP,
    IReactorTime,
)
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

log = Logger()


class INotifier(Interface):
    """Sends pre-built NOTIFY requests (what :class:`SubscriptionManager` needs)."""

    in_flight: int

    def send(host: str, port: int, request: bytes, bind_address: str | None) -> Deferred[int]:
        """Send ``request`` to ``host:port`` from ``bind_address``; fire with the status."""

    def abort_all() -> Deferred[None]:
        """Abort every connection; fire once all are closed."""


class NotifyError(Exception):
    """The subscriber closed the connection without a valid HTTP status line."""


class NotifyTimeout(NotifyError):
    """The subscriber did not answer a NOTIFY in time (connect, status line or close)."""


_CALLBACK_RE: Final = re.compile(r"\s*<([^>]*)>")
_HOST_PORT_RE: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:/\[\]]+)(?::(\d{1,5}))?\Z")
_STATUS_RE: Final = re.compile(rb"HTTP/1\.[01] (\d{3})(?:[ \t]|\r?\n|$)")
_MAX_STATUS_LINE: Final = 8192


@attrs.frozen
class CallbackURL:
    """Where a subscriber wants its NOTIFYs: the first URL of a GENA ``CALLBACK`` header."""

    url: str
    host: str
    port: int
    path: bytes
    """The request-line path, exactly as given (``/`` when the URL has none)."""

    @property
    def host_header(self) -> bytes:
        """The ``HOST`` header value: ``host:port``."""
        return f"{self.host}:{self.port}".encode("ascii")

    @property
    def connect_host(self) -> str:
        """The host to connect to (IPv6 literals without brackets)."""
        return self.host.strip("[]")


def parse_callback(header: str | None) -> CallbackURL | None:
    """Parse a ``CALLBACK`` header (``<http://host:port/path>...``); ``None`` if unusable.

    Only the first URL is used (as Sonos does); it must be ``http://`` with a host, and a port
    in 1..65535 when one is given (80 otherwise). The path is kept verbatim, spaces included:
    old firmware echoed such paths in the NOTIFY request line.
    """
    if not header:
        return None
    match = _CALLBACK_RE.match(header)
    if match is None:
        return None
    url = match.group(1).strip()
    if url[:7].lower() != "http://":
        return None
    rest = url[7:]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    host_port = _HOST_PORT_RE.match(authority)
    if host_port is None:
        return None
    port = int(host_port.group(2)) if host_port.group(2) else 80
    if not 0 < port < 65536:
        return None
    try:
        raw_path = path.encode("ascii")
    except UnicodeEncodeError:
        return None
    if b"\r" in raw_path or b"\n" in raw_path:
        return None
    return CallbackURL(url=url, host=host_port.group(1), port=port, path=raw_path)


def sonos_service_type(service: str) -> str:
    """The ``X-SONOS-SERVICETYPE`` value of a SoCo-style service name.

    ``MS_ConnectionManager`` and ``MR_ConnectionManager`` are both ``ConnectionManager``.
    """
    if service.startswith(("MS_", "MR_")):
        return service[3:]
    return service


@attrs.frozen
class NotifyHead:
    """The constant parts of one subscription's NOTIFY requests, encoded once.

    Header order and case follow the modern capture (``sonos-protocol.md`` §3.4), with
    ``X-SONOS-SERVICETYPE`` last.
    """

    before_length: bytes
    before_seq: bytes
    after_seq: bytes

    @classmethod
    def for_subscription(
        cls, callback: CallbackURL, sid: str, service_type: str | None
    ) -> NotifyHead:
        """Build the head of every NOTIFY to ``callback`` for the subscription ``sid``."""
        before_length = (
            b"NOTIFY " + callback.path + b" HTTP/1.1\r\n"
            b"HOST: " + callback.host_header + b"\r\n"
            b"CONNECTION: close\r\n"
            b"CONTENT-TYPE: text/xml\r\n"
            b"CONTENT-LENGTH: "
        )
        before_seq = (
            b"\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\nSID: " + sid.encode("ascii") + b"\r\n"
            b"SEQ: "
        )
        after_seq = b"\r\n"
        if service_type is not None:
            after_seq += b"X-SONOS-SERVICETYPE: " + service_type.encode("ascii") + b"\r\n"
        return cls(before_length, before_seq, after_seq + b"\r\n")

    def request(self, seq: int, body: bytes) -> bytes:
        """The complete NOTIFY request carrying ``body`` with ``SEQ: seq``."""
        return b"".join(
            (
                self.before_length,
                b"%d" % len(body),
                self.before_seq,
                b"%d" % seq,
                self.after_seq,
                body,
            )
        )


@implementer(INotifier)
class Notifier:
    """Send NOTIFY requests on fresh connections and report the subscriber's HTTP status.

    :param reactor: provides ``connectTCP`` and ``callLater``.
    :param timeout: seconds allowed for one attempt: connect, status line, and the
        subscriber's close (UPnP gives a subscriber 30 s).
    """

    def __init__(self, reactor: IReactorTCP, timeout: float = 30.0) -> None:
        self._reactor = reactor
        self.timeout = timeout
        self._attempts: set[_Attempt] = set()
        self._idle_waiters: list[Deferred[None]] = []

    @property
    def in_flight(self) -> int:
        """How many connections are open or being opened."""
        return len(self._attempts)

    def send(
        self, host: str, port: int, request: bytes, bind_address: str | None = None
    ) -> Deferred[int]:
        """Connect to ``host:port`` (from ``bind_address``), write ``request``, read the status.

        :return: a Deferred firing with the status code as soon as the status line is read,
            or failing with ``ConnectionRefusedError`` (and other connect errors),
            :class:`NotifyTimeout` or :class:`NotifyError`.
        """
        attempt = _Attempt(self, request)
        self._attempts.add(attempt)
        time: IReactorTime = self._reactor  # type: ignore[assignment]
        attempt.timer = time.callLater(self.timeout, attempt.time_out)
        bind = None if bind_address is None else (bind_address, 0)
        attempt.connector = self._reactor.connectTCP(
            host, port, attempt, timeout=self.timeout, bindAddress=bind
        )
        return attempt.result

    def abort_all(self) -> Deferred[None]:
        """Abort every connection; the Deferred fires once all of them are closed."""
        for attempt in list(self._attempts):
            attempt.abort(NotifyError("notifier stopped"))
        return self.when_idle()

    def when_idle(self) -> Deferred[None]:
        """A Deferred that fires once no connection is open."""
        if not self._attempts:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    def _finished(self, attempt: _Attempt) -> None:
        self._attempts.discard(attempt)
        if not self._attempts and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)


class _Attempt(ClientFactory):
    """One NOTIFY attempt: the factory of its single connection, and its state."""

    noisy = False

    def __init__(self, notifier: Notifier, request: bytes) -> None:
        self.notifier = notifier
        self.request = request
        self.result: Deferred[int] = Deferred()
        self.connector: IConnector | None = None
        self.timer: IDelayedCall | None = None
        self.protocol_instance: _NotifyProtocol | None = None
        self._closed = False

    def buildProtocol(self, addr: IAddress | None) -> _NotifyProtocol:
        self.protocol_instance = _NotifyProtocol(self)
        return self.protocol_instance

    def clientConnectionFailed(self, connector: IConnector, reason: Failure) -> None:
        self.fail(reason)
        self.closed()

    def clientConnectionLost(self, connector: IConnector, reason: Failure) -> None:
        self.fail(NotifyError("connection closed before a status line"))
        self.closed()

    def answered(self, status: int) -> None:
        if not self.result.called:
            self.result.callback(status)

    def fail(self, reason: Failure | Exception) -> None:
        if not self.result.called:
            self.result.errback(reason)

    def time_out(self) -> None:
        self.timer = None
        self.abort(NotifyTimeout(f"no answer within {self.notifier.timeout} s"))

    def abort(self, reason: Exception) -> None:
        self.fail(reason)
        protocol = self.protocol_instance
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abortConnection()  # type: ignore[attr-defined]
        elif self.connector is not None:
            with suppress(NotConnectingError):
                self.connector.stopConnecting()

    def closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None
        self.notifier._finished(self)


class _NotifyProtocol(Protocol):
    """Write the request, parse the status line, wait for the subscriber to close."""

    def __init__(self, attempt: _Attempt) -> None:
        self.attempt = attempt
        self.buffer = b""
        self.status: int | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.attempt.request)

    def dataReceived(self, data: bytes) -> None:
        if self.status is not None:
            return
        self.buffer += data
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > _MAX_STATUS_LINE:
                self.attempt.abort(NotifyError("status line too long"))
            return
        match = _STATUS_RE.match(self.buffer[: end + 1])
        if match is None:
            self.attempt.abort(NotifyError(f"bad status line {self.buffer[:end]!r}"))
            return
        self.status = int(match.group(1))
        self.buffer = b""
        self.attempt.answered(self.status)
