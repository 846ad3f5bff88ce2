# -*- test-case-name: tests.api.test_deadline -*-
"""The API's whole-request deadline: a request must arrive complete within a bound.

twisted.web closes a connection that stays *silent* for its idle timeout, but every byte
restarts that timer: a client that drips one byte every few seconds holds its connection
(and its buffers) for as long as it likes. :class:`RequestDeadline` bounds the whole request
instead: from its first byte, the request line, the headers and the body must all arrive
within the site's ``request_timeout`` seconds (``api.request_timeout``, 15 by default), or the
connection is answered ``408`` (a JSON error) and closed. Once a request is complete the
deadline no longer applies: a Server-Sent Events stream or an upgraded WebSocket lives as long
as it is read.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from sonosd.delivery.channel import error_body
from sonosd.delivery.hub import encode

REQUEST_TIMEOUT = 15.0
"""Seconds a request may take to arrive whole (default)."""

ABORT_AFTER = 5.0
"""Seconds after the 408 by which the connection is aborted if it has not closed."""


def timeout_response(seconds: float) -> bytes:
    """The whole ``408`` answer: a JSON error, then the connection closes."""
    body = encode(error_body("request_timeout", f"the request did not arrive within {seconds:g} s"))
    head = (
        b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    )
    return head + body


class DeadlineSite(Protocol):
    """What the deadline needs of the site: the bound, and whom to tell about a slow client."""

    request_timeout: float

    def too_slow(self, host: str | None) -> None:
        """Count (and log) one connection closed at its deadline."""


class RequestDeadline:
    """Mixin for ``twisted.web.http.HTTPChannel`` (listed before it): the request deadline.

    The channel's ``site`` is a :class:`DeadlineSite`; ``callLater`` is the one twisted.web
    sets on every channel.
    """

    site: Any
    callLater: Any
    transport: Any
    _deadline: IDelayedCall | None = None
    _abort: IDelayedCall | None = None
    _timed_out = False

    def dataReceived(self, data: bytes) -> None:
        """Start the deadline at the first byte of a request; after a 408, ignore the rest."""
        if self._timed_out:
            return
        if self._deadline is None:
            timeout = getattr(self.site, "request_timeout", REQUEST_TIMEOUT)
            if timeout > 0 and self.transport is not None:
                self._deadline = self.callLater(timeout, self._too_slow, timeout)
        super().dataReceived(data)  # type: ignore[misc]

    def allContentReceived(self) -> None:
        """The request is complete: the deadline is met."""
        self._cancel_deadline()
        super().allContentReceived()  # type: ignore[misc]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Forget the deadline."""
        self._cancel_deadline()
        super().connectionLost(reason)  # type: ignore[misc]

    def _cancel_deadline(self) -> None:
        for name in ("_deadline", "_abort"):
            call = getattr(self, name, None)
            setattr(self, name, None)
            if call is not None and call.active():
                call.cancel()

    def _too_slow(self, timeout: float) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or getattr(transport, "disconnecting", False):
            # Already answered and closing (a refused body, say).
            return
        self._timed_out = True
        peer = getattr(transport.getPeer(), "host", None)
        too_slow = getattr(self.site, "too_slow", None)
        if too_slow is not None:
            too_slow(peer if isinstance(peer, str) else None)
        transport.write(timeout_response(timeout))
        transport.loseConnection()
        # A client that does not even read its answer is cut off.
        self._abort = self.callLater(ABORT_AFTER, transport.abortConnection)
