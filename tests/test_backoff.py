"""Tests for sonosd.backoff: renewal timing, retry backoff and failure reasons."""

from __future__ import annotations

import math
import random
import socket
from collections import Counter
from http.client import BadStatusLine, RemoteDisconnected

import requests
from hypothesis import given
from hypothesis import strategies as st
from soco.exceptions import SoCoUPnPException
from twisted.internet import defer, error
from twisted.python.failure import Failure
from twisted.web._newclient import ParseError, ResponseFailed, ResponseNeverReceived
from urllib3.exceptions import ProtocolError

from sonosd.backoff import (
    FIRST_RENEW_SPREAD,
    MIN_RENEW_DELAY,
    RENEW_JITTER,
    FailureKind,
    SlowAnswer,
    backoff_delay,
    describe_failure,
    renew_delay,
)
from sonosd.blocking import CallTimeout
from sonosd.gena.subscription import GenaError, GenaTimeout, SubscriptionGone

unit = st.floats(min_value=0.0, max_value=0.999999)


@given(granted=st.integers(min_value=10, max_value=86400), fraction=st.floats(0.1, 0.9), r=unit)
def test_renew_delay_within_jitter_window(granted: int, fraction: float, r: float) -> None:
    """The renewal comes at most RENEW_JITTER before the target fraction, never after."""
    delay = renew_delay(granted, fraction, lambda: r)
    target = granted * fraction
    assert delay <= max(target, MIN_RENEW_DELAY)
    assert delay >= min(target * (1 - RENEW_JITTER), target) - 1e-9 or delay == MIN_RENEW_DELAY


@given(granted=st.integers(min_value=10, max_value=86400), fraction=st.floats(0.1, 0.9), r=unit)
def test_first_renew_delay_within_spread(granted: int, fraction: float, r: float) -> None:
    """The first renewal comes in the last FIRST_RENEW_SPREAD of the target, never after."""
    delay = renew_delay(granted, fraction, lambda: r, first=True)
    target = granted * fraction
    assert delay <= max(target, MIN_RENEW_DELAY)
    assert delay >= target * (1 - FIRST_RENEW_SPREAD) - 1e-9 or delay == MIN_RENEW_DELAY


def test_first_renew_delay_uniform() -> None:
    """The random source maps linearly onto the first renewal's window: 0 is the target."""
    assert renew_delay(1800, 0.5, lambda: 0.0, first=True) == 900
    assert renew_delay(1800, 0.5, lambda: 0.5, first=True) == 900 * (1 - FIRST_RENEW_SPREAD / 2)
    assert renew_delay(1800, 0.5, lambda: 1.0, first=True) == 900 * (1 - FIRST_RENEW_SPREAD)


def test_renew_delay_floor() -> None:
    """A tiny grant still waits MIN_RENEW_DELAY before renewing, the first renewal too."""
    assert renew_delay(0, 0.5, lambda: 0.0) == MIN_RENEW_DELAY
    assert renew_delay(2, 0.5, lambda: 0.999, first=True) == MIN_RENEW_DELAY


def renewal_load(start: float, cycles: int, seed: int) -> Counter[int]:
    """Renewals per 1/30 of the target, over one target-long window ``start`` targets in.

    1,600 subscriptions (200 speakers x 8 services) granted 60 s at the same instant, renewed
    at 0.5 x 60 = 30 s, so each bin is one second as in benchmark 4 (docs/benchmarks.md).
    """
    rng = random.Random(seed)
    target = 30.0
    low, high = start * target, (start + 1) * target
    bins: Counter[int] = Counter()
    for _ in range(1600):
        t = renew_delay(60, 0.5, rng.random, first=True)
        for _cycle in range(cycles):
            if t >= high:
                break
            if t >= low:
                bins[math.floor(t - low)] += 1
            t += renew_delay(60, 0.5, rng.random)
    return bins


def test_simultaneous_subscriptions_renew_spread_out() -> None:
    """Subscriptions made at one instant renew spread over the interval from the first cycle on."""
    first_cycle = renewal_load(0.25, 2, seed=7)
    mean = sum(first_cycle.values()) / 30
    assert mean > 40
    assert max(first_cycle.values()) <= 2 * mean


def test_renewals_stay_spread() -> None:
    """The renewal phases drift apart, never gather again, and fill the whole interval.

    900 targets in are about 950 renewals: ten days with the default 900 s target. Each phase
    is a random walk of independent steps, so the spread can only even out further.
    """
    later = renewal_load(900.0, 1000, seed=11)
    mean = sum(later.values()) / 30
    assert mean > 40
    assert max(later.values()) <= 1.6 * mean
    assert min(later.values()) >= 0.5 * mean


def test_backoff_doubles_and_caps() -> None:
    """Without jitter the delays double from initial and stop at the maximum."""
    delays = [backoff_delay(n, 1.0, 30.0, lambda: 0.999999999) for n in range(1, 9)]
    assert [round(d) for d in delays] == [1, 2, 4, 8, 16, 30, 30, 30]


@given(failures=st.integers(min_value=-3, max_value=10_000), r=unit)
def test_backoff_bounds(failures: int, r: float) -> None:
    """Every delay lies between half the capped base and the cap."""
    delay = backoff_delay(failures, 2.0, 300.0, lambda: r)
    assert 1.0 <= delay <= 300.0


def test_reasons() -> None:
    """Failures get short, stable reasons and the right kind."""
    cases = [
        (SubscriptionGone(412, "x"), FailureKind.GONE, "412 precondition failed"),
        (GenaError(503), FailureKind.ERROR, "HTTP 503"),
        (SubscriptionGone(None, "expired"), FailureKind.GONE, "subscription expired"),
        (GenaTimeout(None, "slow"), FailureKind.UNREACHABLE, "timeout"),
        (CallTimeout("ping", 2.0), FailureKind.UNREACHABLE, "timeout"),
        (defer.TimeoutError(), FailureKind.UNREACHABLE, "timeout"),
        (defer.CancelledError(), FailureKind.UNREACHABLE, "timeout"),
        (error.ConnectionRefusedError(), FailureKind.UNREACHABLE, "connection refused"),
        (error.NoRouteError(), FailureKind.UNREACHABLE, "no route to host"),
        (error.DNSLookupError(), FailureKind.UNREACHABLE, "host not found"),
        (
            socket.gaierror(-2, "Name or service not known"),
            FailureKind.UNREACHABLE,
            "host not found",
        ),
        (ResponseNeverReceived([]), FailureKind.UNREACHABLE, "connection lost"),
        (ConnectionRefusedError(111, "refused"), FailureKind.UNREACHABLE, "connection refused"),
        (
            requests.exceptions.ConnectionError("Max retries: [Errno 111] Connection refused"),
            FailureKind.UNREACHABLE,
            "connection refused",
        ),
        (requests.exceptions.ReadTimeout("read timed out"), FailureKind.UNREACHABLE, "timeout"),
        # An answer that is not HTTP: the peer answered, wrongly (not "connection lost").
        (
            ResponseFailed([Failure(ParseError("wrong number of parts", b"garbage"))]),
            FailureKind.ERROR,
            "not an HTTP answer: 'garbage'",
        ),
        (
            requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", BadStatusLine("garbage\r\n"))
            ),
            FailureKind.ERROR,
            "not an HTTP answer: 'garbage'",
        ),
        (
            requests.exceptions.ConnectionError(
                ProtocolError("Connection aborted.", RemoteDisconnected("closed"))
            ),
            FailureKind.UNREACHABLE,
            "connection failed",
        ),
        (
            ResponseFailed([Failure(ParseError("bad", b"x" * 5000))]),
            FailureKind.ERROR,
            "not an HTTP answer: '" + "x" * 80 + "'",
        ),
        (SoCoUPnPException("boom", "701", "<xml/>"), FailureKind.ERROR, "UPnP error 701"),
        (ValueError("bad"), FailureKind.ERROR, "ValueError: bad"),
        (ValueError(), FailureKind.ERROR, "ValueError"),
    ]
    for exc, kind, reason in cases:
        assert describe_failure(exc) == (kind, reason), exc
    assert describe_failure(Failure(GenaError(500))) == (FailureKind.ERROR, "HTTP 500")


def test_wrapped_cause_classified() -> None:
    """A GenaError raised from a refused connection is classified by its cause."""
    try:
        try:
            raise error.ConnectionRefusedError()
        except error.ConnectionRefusedError as cause:
            raise GenaError(None, "SUBSCRIBE http://x: refused") from cause
    except GenaError as wrapped:
        assert describe_failure(wrapped) == (FailureKind.UNREACHABLE, "connection refused")


def test_gena_answers_that_are_wrong_say_what_was_wrong() -> None:
    """A GenaError raised from an answer that is not HTTP says so, and a 200 that lacked what
    GENA needs (a SID) says that, not ``HTTP 200``."""
    garbled = ResponseFailed([Failure(ParseError("wrong number of parts", b"garbage"))])
    try:
        try:
            raise garbled
        except ResponseFailed as cause:
            raise GenaError(None, f"SUBSCRIBE http://x: {cause}") from cause
    except GenaError as wrapped:
        assert describe_failure(wrapped) == (FailureKind.ERROR, "not an HTTP answer: 'garbage'")
    missing = GenaError(200, "SUBSCRIBE: response has no SID")
    assert describe_failure(missing) == (
        FailureKind.ERROR,
        "GenaError: SUBSCRIBE: response has no SID",
    )


def test_a_slow_answer_says_which_answer_and_its_bound() -> None:
    """An answer that did not arrive within its bound (``SlowAnswer``) is unreachable, as any
    timeout, but keeps its own words: which answer, from where, within how long; any other
    timeout, the GENA client's included, is plain ``timeout``."""
    slow = SlowAnswer.unsubscribe(5)
    assert describe_failure(Failure(slow)) == (
        FailureKind.UNREACHABLE,
        "the answer to UNSUBSCRIBE did not arrive within 5 s",
    )
    assert isinstance(slow, TimeoutError)
    for other in (TimeoutError("x"), GenaTimeout(None, "SUBSCRIBE http://h: no answer within 2 s")):
        assert describe_failure(other) == (FailureKind.UNREACHABLE, "timeout")
