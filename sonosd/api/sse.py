# -*- test-case-name: tests.api.test_sse -*-
"""Server-Sent Events at ``/api/v1/events``.

Each message is one SSE block: ``id:`` the message id, ``event:`` its type, ``data:`` the JSON
the hub serialised (``message.raw``, one line). A first connection gets a ``snapshot`` event
first (its ``id:`` is the last message id it includes, so the browser's automatic reconnect
resumes from it); a reconnection with ``Last-Event-ID`` (or ``?last_id=``) gets the missed
messages from the hub's ring, or a ``reset`` event and a fresh snapshot when they are gone.
A comment line is sent every ``heartbeat`` seconds to keep proxies and NATs from closing the
idle connection. A client that stops reading is sent ``: disconnected: too slow`` and closed.

A message's block is built once and shared by every client; the blocks of one reactor turn go
to a client in one HTTP chunk instead of one each, and once the response has started, HTTP/1.x
chunks are written straight to the connection (``TransportWriter``) rather than through
``Request.write`` and the reactor's next write event (issue 7).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sonosd.api.auth import query_first
from sonosd.api.responses import json_error
from sonosd.delivery.channel import (
    QUERY_PARAMETERS,
    Channel,
    QueuedClient,
    Start,
    reset_body,
)
from sonosd.delivery.filters import Filter, FilterError
from sonosd.delivery.flow import ClientQueue, TransportWriter
from sonosd.delivery.hub import Hub, Message, encode, parse_cursor
from sonosd.delivery.metrics import ApiMetrics

log = Logger()

#: Milliseconds a browser waits before reconnecting (sent once per connection).
RETRY_MS = 2000
HEARTBEAT = b": keepalive\n\n"
TOO_SLOW = b": disconnected: too slow\n\n"
SHUTDOWN = b": server shutting down\n\n"


def sse_block(event: str, data: bytes, event_id: str | None = None) -> bytes:
    """One SSE block; ``data`` must be a single line (compact JSON is)."""
    if event_id is None:
        return b"event: %s\ndata: %s\n\n" % (event.encode("utf-8"), data)
    # One formatting operation: the block is built for every message (concatenating its
    # parts copied the JSON four times).
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event_id.encode("ascii"),
        event.encode("utf-8"),
        data,
    )


def message_block(run: str, message: Message) -> bytes:
    """The SSE block of a hub message (its serialised JSON reused, not re-encoded); its
    ``id:`` is ``<run>:<id>``, so that a browser resuming after a restart is recognised."""
    return sse_block(message.type, message.raw, f"{run}:{message.id}")


def start_blocks(run: str, start: Start) -> Iterator[bytes]:
    """The blocks a joining client is sent before live messages (made as they are sent)."""
    yield b"retry: %d\n\n" % RETRY_MS
    if start.reset is not None:
        yield sse_block("reset", encode(reset_body(start.reset)))
    if start.snapshot is not None:
        snapshot = start.snapshot
        yield sse_block("snapshot", encode(snapshot), f"{snapshot['run']}:{snapshot['last_id']}")
    for message in start.replay:
        yield message_block(run, message)


class SseClient(QueuedClient):
    """One EventSource connection: its filter, its bounded queue, its request.

    @param grace: Seconds a closing connection may take to flush before it is aborted.
    """

    def __init__(
        self,
        channel: Channel[bytes],
        request: Request,
        filter: Filter,
        limit: int,
        clock: IReactorTime,
        grace: float = 5.0,
    ) -> None:
        self.filter = filter
        self._channel = channel
        self._request = request
        self._clock = clock
        self._grace = grace
        self.closed = False
        self._abort: Any = None
        self._writer: TransportWriter | None = None
        connection = request.channel
        if isinstance(connection, HTTPChannel) and connection.transport is not None:
            # HTTP/1.x on its own connection (HTTP/2 streams go through Request.write).
            self._writer = TransportWriter(connection.transport)
        self.queue: ClientQueue[bytes] = ClientQueue(
            limit, self._write, self._too_slow, self._write_many
        )

    def _write(self, data: bytes) -> None:
        request = self._request
        writer = self._writer
        if writer is None or not request.startedWriting or request.finished or self.closed:
            # The first write sends the headers (and decides on chunking).
            request.write(data)
            return
        # What Request.write does once the headers are out, minus its per-call overhead.
        request.sentLength += len(data)
        if request.chunked:
            writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        else:
            writer.write(data)

    def _write_many(self, frames: Sequence[bytes]) -> None:
        self._write(b"".join(frames))

    def heartbeat(self) -> None:
        """Send a keepalive comment, unless the client is behind anyway."""
        if not self.queue.paused and not len(self.queue) and not self.closed:
            self._channel.flush()
            self.queue.offer(HEARTBEAT)

    def lost(self, reason: Failure | None = None) -> None:
        """The client went away."""
        self.closed = True
        self.queue.close()
        self._channel.leave(self)
        self._cancel_abort(None)

    def _too_slow(self, dropped: int) -> None:
        self._channel.too_slow(self, dropped)
        self._close(TOO_SLOW)

    def shutdown(self) -> None:
        """The server stops: say so and close."""
        self._close(SHUTDOWN)

    def _close(self, last_words: bytes) -> None:
        if self.closed:
            return
        self.closed = True
        self.queue.close()
        request = self._request
        channel = request.channel
        try:
            request.write(last_words)
            request.unregisterProducer()
            request.finish()
        except RuntimeError:
            # The connection went away in the meantime; nothing left to close.
            return
        if channel is not None and channel.transport is not None:
            transport = channel.transport
            transport.loseConnection()
            self._abort = self._clock.callLater(self._grace, _abort_if_connected, transport)
            gone = getattr(channel, "lost", None)
            if isinstance(gone, Deferred):
                gone.addCallback(self._cancel_abort)

    def _cancel_abort(self, result: object) -> object:
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        return result


def _abort_if_connected(transport: Any) -> None:
    if getattr(transport, "connected", False):
        transport.abortConnection()


def _stream_headers(request: Request) -> None:
    """The headers of the stream (and of a HEAD for it): an event stream no cache keeps,
    and ``X-Accel-Buffering: no``, with which nginx passes each event on as it comes even
    where its configuration buffers proxied answers (its default)."""
    request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
    request.setHeader(b"cache-control", b"no-cache")
    request.setHeader(b"x-accel-buffering", b"no")


class EventsResource(Resource):
    """``GET /api/v1/events``: the SSE stream (authorisation is checked by the site).

    @param hub: The hub.
    @param clock: For heartbeats and close grace periods.
    @param limit: ``api.client_buffer``.
    @param heartbeat: Seconds between keepalive comments (0 disables them).
    @param grace: Seconds a client closed as too slow (or at shutdown) has to read its last
        words before its connection is aborted.
    """

    isLeaf = True

    def __init__(
        self,
        hub: Hub,
        clock: IReactorTime,
        limit: int,
        heartbeat: float,
        metrics: ApiMetrics | None = None,
        grace: float = 5.0,
    ) -> None:
        super().__init__()
        self._hub = hub
        self.channel: Channel[bytes] = Channel(
            hub, "sse", functools.partial(message_block, hub.run), metrics, clock=clock
        )
        self._clock = clock
        self._limit = limit
        self._heartbeat = heartbeat
        self._grace = grace
        self._beat: LoopingCall | None = None

    def start(self) -> None:
        """Receive messages and start the heartbeat."""
        self.channel.start()
        if self._heartbeat > 0:
            self._beat = LoopingCall(self._beat_all)
            self._beat.clock = self._clock
            self._beat.start(self._heartbeat, now=False)

    def stop(self) -> None:
        """Stop the heartbeat and close every client."""
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        self.channel.stop()

    def _beat_all(self) -> None:
        for client in tuple(self.channel.clients):
            if isinstance(client, SseClient):
                client.heartbeat()

    def render_HEAD(self, request: Request) -> bytes:
        """The stream's headers only (a HEAD must not open a stream)."""
        _stream_headers(request)
        return b""

    def render_GET(self, request: Request) -> bytes | int:
        """Open the stream: headers, first blocks, then live messages."""
        try:
            filter = Filter.from_query(request.args or {}, strict=True, allowed=QUERY_PARAMETERS)
        except FilterError as error:
            return json_error(request, 400, "bad_filter", str(error))
        header = request.getHeader("last-event-id")
        args: dict[bytes, list[bytes]] = request.args or {}
        cursor = parse_cursor(
            header if header else query_first(args, b"last_id"), query_first(args, b"run")
        )
        _stream_headers(request)
        client = SseClient(self.channel, request, filter, self._limit, self._clock, self._grace)
        start = self.channel.join(client, cursor)
        request.registerProducer(client.queue, True)
        request.notifyFinish().addBoth(client.lost)
        client.queue.prime(start_blocks(self._hub.run, start))
        return NOT_DONE_YET
