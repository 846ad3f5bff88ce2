"""Tests for delivery.endpoint: listening on an endpoint string for the API and the stream."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactor, RaisingMemoryReactor
from twisted.logger import LogEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from sonosd.delivery.endpoint import listen


class ListenTests(SynchronousTestCase):
    def test_ready_then_listening(self) -> None:
        """The port is handed to ``ready`` before ``listening`` fires with it."""
        reactor = MemoryReactor()
        listening: Deferred[IListeningPort] = Deferred()
        seen: list[object] = []
        listening.addCallback(lambda port: seen.append(("listening", port)))
        listen(
            reactor,
            "tcp:8080:interface=127.0.0.1",
            Factory.forProtocol(Protocol),
            listening,
            "api",
            lambda port: seen.append(("ready", port)),
        )
        (tcp,) = reactor.tcpServers
        self.assertEqual((tcp[0], tcp[3]), (8080, "127.0.0.1"))
        port = seen[0][1]
        self.assertEqual(seen, [("ready", port), ("listening", port)])

    def test_failure_is_logged_and_fails_listening_once(self) -> None:
        """A port that cannot be bound is logged with the endpoint and fails ``listening``."""
        reactor = RaisingMemoryReactor(listenException=CannotListenError("", 80, OSError()))
        logs: list[LogEvent] = []
        globalLogPublisher.addObserver(logs.append)
        self.addCleanup(globalLogPublisher.removeObserver, logs.append)
        listening: Deferred[IListeningPort] = Deferred()
        failures: list[object] = []
        listening.addErrback(failures.append)
        ready: list[IListeningPort] = []
        listen(reactor, "tcp:80", Factory.forProtocol(Protocol), listening, "stream", ready.append)
        self.assertEqual(ready, [])
        self.assertEqual(len(failures), 1)
        (event,) = [
            e for e in logs if e.get("log_format", "").endswith("cannot listen on {endpoint}")
        ]
        self.assertEqual((event["what"], event["endpoint"]), ("stream", "tcp:80"))
        self.flushLoggedErrors(CannotListenError)
