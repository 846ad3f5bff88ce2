# -*- test-case-name: tests.test_backoff -*-
"""Retry timing and failure reasons for the supervisor: pure functions, no clock, no I/O.

Renewals are spread so that the subscriptions of a large household, made at the same moment
(start-up, the network back), do not renew together for months; retries back off
exponentially with jitter up to a cap; and every failure gets a short, stable reason for
``speaker.offline`` and ``subscription.lost`` messages (``connection refused``, ``timeout``,
``412``, ``HTTP 503``...).
"""

from __future__ import annotations

import enum
import errno
import http.client
import socket
from collections.abc import Callable
from typing import Self

from twisted.internet import defer, error
from twisted.python.failure import Failure

RENEW_JITTER = 0.1
"""Renewals happen up to this fraction earlier than ``renew_fraction`` of the granted time."""

FIRST_RENEW_SPREAD = 0.75
"""The first renewal of a new subscription happens up to this fraction earlier than
``renew_fraction`` of the granted time: anywhere in the last three quarters of the interval."""

MIN_RENEW_DELAY = 1.0
"""Never renew sooner than this many seconds after a (re)subscription or renewal."""


def renew_delay(
    granted: float, fraction: float, random: Callable[[], float], *, first: bool = False
) -> float:
    """Seconds until a subscription granted for ``granted`` seconds is renewed.

    The renewal comes at ``fraction`` of the granted time (the target), never later, so a
    slow renewal still has time for one retry. The first renewal after a SUBSCRIBE is drawn
    uniformly from the last ``FIRST_RENEW_SPREAD`` of the target, the later ones at most
    ``RENEW_JITTER`` before it: subscriptions made together (200 speakers at start-up, or back
    after a network outage) take spread-out phases, and keep them, drifting slowly apart,
    instead of renewing in the same few seconds every cycle (issue #7). The first spread
    stops at a quarter of the target so that no renewal lands in the burst of SUBSCRIBEs and
    initial NOTIFYs that made the subscriptions.

    @param granted: The timeout the speaker granted, in seconds.
    @param fraction: ``renew_fraction`` of the configuration.
    @param random: Returns a float in [0, 1); the jitter source (``random.random``). 0 gives
        the target itself.
    @param first: Whether this is the first renewal of a new subscription.
    """
    target = max(0.0, granted) * fraction
    spread = FIRST_RENEW_SPREAD if first else RENEW_JITTER
    return max(MIN_RENEW_DELAY, target * (1.0 - spread * random()))


def backoff_delay(
    failures: int, initial: float, maximum: float, random: Callable[[], float]
) -> float:
    """Seconds to wait before retrying after ``failures`` failures in a row (1 = the first).

    The base doubles from ``initial`` and is capped at ``maximum``; the delay is drawn between
    half the base and the base ("equal jitter"), so retries of many speakers spread out but a
    retry never comes sooner than half the base.
    """
    exponent = min(max(failures, 1) - 1, 64)
    base = min(maximum, initial * (2.0**exponent))
    return base * (0.5 + 0.5 * random())


class FailureKind(enum.Enum):
    """How a failed request reflects on the speaker."""

    GONE = "gone"
    """412 Precondition Failed: the speaker does not know the subscription (it rebooted)."""
    UNREACHABLE = "unreachable"
    """No answer: connection refused, timed out, lost, no route, unknown host."""
    ERROR = "error"
    """The speaker answered, with an error (5xx, a UPnP fault, a malformed response)."""


GONE_412 = "412 precondition failed"
"""The reason of a 412: the speaker forgot the subscription (a reboot, when renewing)."""

_TIMEOUT_NAMES = frozenset({"GenaTimeout", "CallTimeout", "ReadTimeout", "ConnectTimeout"})
_LOST_NAMES = frozenset({"ResponseNeverReceived", "ResponseFailed", "RequestTransmissionFailed"})


class SlowAnswer(TimeoutError):
    """An answer that did not arrive within its bound, saying which answer, from where when
    the log line does not say it, and the bound (``the answer to UNSUBSCRIBE did not arrive
    within 5 s``): a reason of its own, where any other timeout is plain ``timeout``."""

    @classmethod
    def began(cls, what: str, host: str | None, seconds: float) -> Self:
        """An answer that began within its bound but did not end in it (a dripping peer):
        ``what`` (``the answer to GetVolume``), from ``host``, the bound in ``seconds``."""
        return cls(
            f"{what} from {host} did not arrive within {seconds:g} s "
            "(it began, then came too slowly)"
        )

    @classmethod
    def unsubscribe(cls, seconds: float) -> Self:
        """An UNSUBSCRIBE whose answer did not come within ``seconds`` (hung, dripping, or
        cut by a stop's bound)."""
        return cls(f"the answer to UNSUBSCRIBE did not arrive within {seconds:g} s")


_SHOWN = 80
"""Characters of what a peer sent instead of a status line that a reason repeats."""


def not_http(exc: BaseException) -> str | None:
    """The reason for an answer that is not HTTP (a garbage status line, a header line too
    long), from Twisted's client (``ResponseFailed`` holding a ``ParseError``) or from
    ``requests`` (``ConnectionError`` holding ``http.client.BadStatusLine``); ``None`` for any
    other error (a peer that closed without answering is not one: ``connection lost``)."""
    found: list[object] = []

    def visit(value: object, depth: int) -> None:
        if depth > 4:
            return
        if isinstance(value, Failure):
            value = value.value
        if isinstance(value, http.client.HTTPException) and not isinstance(
            value, http.client.RemoteDisconnected
        ):
            found.append(value.args[0] if value.args else type(value).__name__)
            return
        if any(
            kind.__name__ == "ParseError" and kind.__module__.startswith("twisted.web")
            for kind in type(value).__mro__
        ):
            args = getattr(value, "args", ())
            found.append(args[-1] if args else "")
            return
        for inner in getattr(value, "reasons", None) or ():
            visit(inner, depth + 1)
        if isinstance(value, BaseException):
            # sonosd.gena's GenaError holds the client's error as its cause.
            for inner in (*value.args, value.__cause__):
                if isinstance(inner, BaseException):
                    visit(inner, depth + 1)

    visit(exc, 0)
    if not found:
        return None
    line = found[0]
    text = line.decode("latin-1") if isinstance(line, bytes) else str(line)
    return f"not an HTTP answer: {text.strip()[:_SHOWN]!r}"


def describe_failure(reason: Failure | BaseException) -> tuple[FailureKind, str]:
    """Classify a failure and give it a short reason for log lines and messages."""
    exc = reason.value if isinstance(reason, Failure) else reason
    garbled = not_http(exc)
    if garbled is not None:
        # It answered: with something that is not HTTP.
        return FailureKind.ERROR, garbled
    name = type(exc).__name__
    status = getattr(exc, "status", None)
    if isinstance(status, bytes):
        status = status.decode("ascii", "replace")
    if status is not None and str(status).isdigit() and not 200 <= int(status) < 300:
        # A 2xx that failed (a GENA answer without its SID) is told by its message, below.
        code = int(status)
        if code == 412:
            return FailureKind.GONE, GONE_412
        return FailureKind.ERROR, f"HTTP {code}"
    if name == "SubscriptionGone":
        # Without a status: it expired before it could be renewed (the host slept, the
        # reactor stalled); nothing says the speaker rebooted.
        return FailureKind.GONE, "subscription expired"
    if isinstance(exc, error.ConnectionRefusedError):
        return FailureKind.UNREACHABLE, "connection refused"
    if isinstance(exc, SlowAnswer):
        return FailureKind.UNREACHABLE, str(exc)
    if isinstance(exc, (defer.TimeoutError, error.TimeoutError, socket.timeout, TimeoutError)):
        return FailureKind.UNREACHABLE, "timeout"
    if isinstance(exc, defer.CancelledError) or name in _TIMEOUT_NAMES:
        return FailureKind.UNREACHABLE, "timeout"
    if isinstance(exc, error.NoRouteError):
        return FailureKind.UNREACHABLE, "no route to host"
    if isinstance(exc, (error.DNSLookupError, socket.gaierror)):
        return FailureKind.UNREACHABLE, "host not found"
    if isinstance(exc, (error.ConnectionLost, error.ConnectionDone)) or name in _LOST_NAMES:
        return FailureKind.UNREACHABLE, "connection lost"
    if isinstance(exc, error.ConnectError):
        return FailureKind.UNREACHABLE, "connection failed"
    if isinstance(exc, ConnectionRefusedError):
        return FailureKind.UNREACHABLE, "connection refused"
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return FailureKind.UNREACHABLE, "no route to host"
    if name == "ConnectionError" and type(exc).__module__.startswith("requests"):
        # requests wraps refused/unreachable connections; its message names the cause.
        text = str(exc)
        if "refused" in text.lower():
            return FailureKind.UNREACHABLE, "connection refused"
        return FailureKind.UNREACHABLE, "connection failed"
    if isinstance(exc, OSError):
        return FailureKind.UNREACHABLE, f"network error: {exc.strerror or exc}"
    cause = exc.__cause__
    if cause is not None:
        # sonosd.gena wraps connection failures in GenaError(None) "from" the real error.
        kind, text = describe_failure(cause)
        if kind is not FailureKind.ERROR:
            return kind, text
    upnp_code = getattr(exc, "error_code", None)
    if upnp_code is not None:
        return FailureKind.ERROR, f"UPnP error {upnp_code}"
    text = str(exc).strip()
    return FailureKind.ERROR, f"{name}: {text}" if text else name
