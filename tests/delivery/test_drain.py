"""Tests for L{sonosd.delivery.drain}."""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from sonosd.delivery.drain import drained


def test_true_once_everything_fired() -> None:
    """The result is True as soon as the last wait fires, and no timer is left behind."""
    clock = Clock()
    first: Deferred[None] = Deferred()
    second: Deferred[None] = Deferred()
    results: list[bool] = []
    drained([first, second, succeed(None)], 5, clock).addCallback(results.append)
    first.callback(None)
    assert results == []
    second.errback(RuntimeError("a failed wait still counts as finished"))
    assert results == [True]
    assert clock.getDelayedCalls() == []


def test_false_after_the_bound_and_late_waits_are_harmless() -> None:
    """The result is False after the bound; a wait that fires later raises nothing."""
    clock = Clock()
    late: Deferred[None] = Deferred()
    results: list[bool] = []
    drained([late], 5, clock).addCallback(results.append)
    clock.advance(5)
    assert results == [False]
    late.callback(None)
    assert results == [False]


def test_nothing_to_wait_for() -> None:
    """With no waits the result is True at once."""
    results: list[bool] = []
    drained([], 5, Clock()).addCallback(results.append)
    assert results == [True]
