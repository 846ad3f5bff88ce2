# -*- test-case-name: tests.delivery.test_endpoint -*-
"""Listening on a Twisted endpoint string: what the API site and the local stream share.

Both listen when their service starts and expose a ``listening`` Deferred that the daemon
waits on: it fires with the port, or fails (then the daemon logs one line and exits 1, see
``docs/design.md``; the traceback is logged here at debug level only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

log = Logger()


def listen(
    reactor: Any,
    description: str,
    factory: IProtocolFactory,
    listening: Deferred[IListeningPort],
    what: str,
    ready: Callable[[IListeningPort], None],
) -> None:
    """Listen on the endpoint ``description``; call ``ready(port)``, then fire ``listening``.

    @param reactor: Provides the endpoint.
    @param description: A server endpoint string (``tcp:8080``, ``unix:/path``).
    @param factory: Builds the protocol of each connection.
    @param listening: Fired with the port; failed (once, and the failure consumed then, as
        whoever cared has its errback on it already) when listening fails.
    @param what: Names the service in the log line of a failure (``api``, ``stream``).
    @param ready: Takes the port before anyone waiting on ``listening`` hears of it.
    """

    async def run() -> None:
        port = await serverFromString(reactor, description).listen(factory)
        ready(port)
        listening.callback(port)

    def failed(failure: Failure) -> None:
        # The daemon says it in one line (and exits); the traceback is for debugging only.
        log.failure(
            "{what}: cannot listen on {endpoint}",
            failure,
            what=what,
            endpoint=description,
            level=LogLevel.debug,
        )
        if not listening.called:
            listening.errback(failure)
            listening.addErrback(lambda _: None)

    Deferred.fromCoroutine(run()).addErrback(failed)
