# -*- test-case-name: tests.sinks.test_stream -*-
"""The local stream: newline-delimited JSON for scripts, on a Twisted endpoint string.

``sinks.stream: "unix:/run/sonosd/stream.sock:mode=660:lockfile=1"`` (or ``tcp:...``) and
``nc -U /run/sonosd/stream.sock | jq .`` shows the household. A connection gets a ``snapshot``
line at once, then every message as one line (the hub's JSON, reused), in order, with no gap
or duplicate between the two. There is no token: guard the socket with file permissions (or
bind tcp to loopback).

The client may write lines too, each a JSON operation; ``{"op": "filter", "rooms":
["Kitchen"]}`` replaces the connection's filter (acknowledged with a ``filter`` line) and
applies to messages published after the line is read. Nothing has to be sent: a client that
only reads gets everything, which keeps ``nc``, ``socat`` and ``curl``-less scripts simple.

``{"op": "resume", "run": R, "last_id": N}`` (or ``"last_id": "R:N"``) resumes a client that
saw messages up to ``N`` of run ``R``: it is answered with a ``resumed`` line and every message
after ``N``, or with a ``reset`` line and a fresh snapshot (``N`` is from another run of the
daemon, or gone from the replay buffer). What came before the answer (the snapshot every
connection gets first, and live messages) is to be ignored by such a client.

A client that stops reading gets, when its queue exceeds ``limit`` messages, a last line
``{"type": "disconnected", "reason": "too slow ..."}`` and is closed.

The lines of one reactor turn go to a client in one ``writeSequence`` (issue 7).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure

from sonosd.delivery.channel import (
    BadOperation,
    Channel,
    QueuedClient,
    Start,
    error_reply,
    json_line,
    read_operation,
    reset_body,
)
from sonosd.delivery.clientjson import MAX_BYTES
from sonosd.delivery.drain import drained
from sonosd.delivery.endpoint import listen
from sonosd.delivery.filters import Filter
from sonosd.delivery.flow import ClientQueue, TransportWriter
from sonosd.delivery.hub import Hub, Message, parse_cursor
from sonosd.delivery.metrics import ApiMetrics

log = Logger()


def message_line(message: Message) -> bytes:
    """A hub message as one line: its serialised JSON and a newline."""
    return message.raw + b"\n"


def start_lines(start: Start) -> Iterator[bytes]:
    """The lines a new connection gets before live messages."""
    if start.reset is not None:
        yield json_line(reset_body(start.reset))
    if start.snapshot is not None:
        yield json_line(start.snapshot)
    for message in start.replay:
        yield message_line(message)


class StreamProtocol(QueuedClient, LineOnlyReceiver):
    """One stream client."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_BYTES
    factory: StreamFactory

    def __init__(self) -> None:
        self.filter = Filter()
        self.queue: ClientQueue[bytes] | None = None
        self.lost: Deferred[None] = Deferred()
        self._closing = False
        self._skipping = False
        self._abort_call: Any = None

    def connectionMade(self) -> None:
        """Become the transport's producer, join the channel, send the snapshot."""
        transport: Any = self.transport
        writer = TransportWriter(transport)
        self.queue = ClientQueue(
            self.factory.limit, writer.write, self._too_slow, writer.write_many
        )
        transport.registerProducer(self.queue, True)
        start = self.factory.channel.join(self, None)
        self.queue.prime(start_lines(start))

    def _reply(self, body: dict[str, Any]) -> None:
        # After the messages delivered before the operation was read.
        self.factory.channel.flush()
        self.offer(json_line(body))

    def lineReceived(self, line: bytes) -> None:
        """One JSON operation from the client; answered whatever it holds, never raising."""
        if not line.strip():
            return
        try:
            self._operation(line)
        except Exception:
            log.failure("stream operation failed")
            self._error(None, "internal", "the operation failed; see the daemon's log")

    def _operation(self, line: bytes) -> None:
        try:
            request = read_operation(line)
        except BadOperation as error:
            self.factory.refused(error.reason)
            self._error(None, "bad_request", str(error))
            return
        op = request.get("op")
        if op == "filter":
            self._reply(self.factory.channel.set_filter(self, request))
        elif op == "resume":
            self._resume(request)
        else:
            self.factory.refused("unknown_op")
            self._error(request.get("id"), "bad_request", f"unknown op {op!r}"[:200])

    def _resume(self, request: dict[str, Any]) -> None:
        """Answer a ``resume`` operation: the missed messages, or a reset and a snapshot."""
        last_id, run = request.get("last_id"), request.get("run")
        if not isinstance(last_id, int | str) or isinstance(last_id, bool):
            self._error(request.get("id"), "bad_request", "last_id must be an integer or R:N")
            return
        cursor = parse_cursor(str(last_id), run if isinstance(run, str) else None)
        if cursor is None:
            self._error(request.get("id"), "bad_request", f"bad last_id {last_id!r}")
            return
        channel = self.factory.channel
        # What this client was delivered so far is in the replay (or the fresh snapshot): the
        # frames still waiting are dropped, and the answer comes next.
        channel.flush()
        start = channel.opening(self, cursor)
        answer = {"type": "resumed", "id": request.get("id"), "run": cursor.run}
        head = [] if start.reset is not None else [json_line({**answer, "last_id": cursor.id})]
        if self.queue is not None:
            self.queue.replace(itertools.chain(head, start_lines(start)))

    def dataReceived(self, data: bytes) -> None:
        """Split lines; a line longer than ``MAX_LENGTH`` is refused and the rest of it
        dropped as it arrives, never buffered (``LineOnlyReceiver`` would keep growing it)."""
        if self._skipping:
            end = data.find(self.delimiter)
            if end < 0:
                return
            self._skipping = False
            data = data[end + 1 :]
        lines = (self._buffer + data).split(self.delimiter)
        self._buffer = lines.pop()
        transport: Any = self.transport
        for line in lines:
            if transport is None or transport.disconnecting:
                return
            if len(line) > self.MAX_LENGTH:
                self.lineLengthExceeded(line)
            else:
                self.lineReceived(line)
        if len(self._buffer) > self.MAX_LENGTH:
            self._buffer = b""
            self._skipping = True
            self.lineLengthExceeded(b"")

    def lineLengthExceeded(self, line: bytes) -> None:
        """A client line longer than ``MAX_LENGTH``: refuse it; the connection stays open."""
        self.factory.refused("too_large")
        self._error(None, "bad_request", f"line longer than {self.MAX_LENGTH} bytes")

    def _error(self, request_id: Any, code: str, message: str) -> None:
        self._reply(error_reply(request_id, code, message))

    def _too_slow(self, dropped: int) -> None:
        self.factory.channel.too_slow(self, dropped)
        self._close(f"too slow: more than {self.factory.limit} messages behind")

    def shutdown(self) -> None:
        """The server stops."""
        self._close("server shutting down")

    def _close(self, reason: str) -> None:
        if self._closing or self.transport is None:
            return
        self._closing = True
        if self.queue is not None:
            self.queue.close()
        transport: Any = self.transport
        transport.unregisterProducer()
        transport.write(json_line({"type": "disconnected", "reason": reason}))
        transport.loseConnection()
        self._abort_call = self.factory.clock.callLater(self.factory.grace, self._abort)

    def _abort(self) -> None:
        if not self.lost.called and self.transport is not None:
            transport: Any = self.transport
            transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Leave the channel."""
        if self.queue is not None:
            self.queue.close()
        self.factory.channel.leave(self)
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        if not self.lost.called:
            self.lost.callback(None)


class StreamFactory(Factory):
    """Builds stream clients; holds the channel and the settings they share."""

    protocol = StreamProtocol  # type: ignore[assignment]

    def __init__(
        self, hub: Hub, limit: int, clock: Any, grace: float, metrics: ApiMetrics | None = None
    ) -> None:
        self.channel: Channel[bytes] = Channel(hub, "stream", message_line, metrics, clock=clock)
        self.limit = limit
        self.clock = clock
        self.grace = grace
        self.metrics = metrics

    def refused(self, reason: str) -> None:
        """Count one refused operation (the stream is local: no log line)."""
        if self.metrics is not None:
            self.metrics.client_errors["stream", reason] += 1


class StreamService(Service):
    """The local stream on ``endpoint`` (``unix:/path``, ``tcp:port:interface=127.0.0.1``).

    @param reactor: Provides the endpoint and the timers.
    @param endpoint: A Twisted server endpoint string (``sinks.stream``).
    @param hub: The hub.
    @param limit: ``api.client_buffer``: messages a client may fall behind.
    @param grace: Seconds stopService waits for clients to close before aborting them.
    @param metrics: ``ApiService.metrics``, to count this channel's clients, or ``None``.
    """

    def __init__(
        self,
        reactor: Any,
        endpoint: str,
        hub: Hub,
        limit: int = 1_000,
        grace: float = 3.0,
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.reactor = reactor
        self.endpoint = endpoint
        self.factory = StreamFactory(hub, limit, reactor, grace, metrics)
        self.port: IListeningPort | None = None
        self.listening: Deferred[IListeningPort] = Deferred()

    def startService(self) -> None:
        """Start receiving messages and listen."""
        super().startService()
        self.factory.channel.start()
        listen(self.reactor, self.endpoint, self.factory, self.listening, "stream", self._listened)

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        log.info("stream listening on {address}", address=str(port.getHost()))

    def stopService(self) -> Deferred[None]:
        """Stop listening, say goodbye to every client, close within the grace period."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await maybeDeferred(port.stopListening)
        clients: list[Any] = list(self.factory.channel.clients)
        self.factory.channel.stop()
        await drained([client.lost for client in clients], self.factory.grace + 0.5, self.reactor)
