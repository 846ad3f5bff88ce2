# -*- test-case-name: tests.delivery.test_drain -*-
"""Bounded waiting for sinks to drain at shutdown."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime


def drained(waits: Iterable[Deferred[Any]], seconds: float, clock: IReactorTime) -> Deferred[bool]:
    """Fire with ``True`` once every Deferred of ``waits`` has fired, ``False`` after ``seconds``.

    The waits are never cancelled: whoever fires them later may still do so safely.
    """
    done: Deferred[bool] = Deferred()

    def finish(result: bool) -> None:
        if not done.called:
            done.callback(result)

    gatherResults(list(waits), consumeErrors=True).addBoth(lambda _: finish(True))
    if not done.called:
        timer = clock.callLater(seconds, finish, False)

        def cancel_timer(result: bool) -> bool:
            if timer.active():
                timer.cancel()
            return result

        done.addCallback(cancel_timer)
    return done
