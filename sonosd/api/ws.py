# -*- test-case-name: tests.api.test_ws -*-
"""The WebSocket channel at ``/api/v1/ws`` (autobahn, on the API's twisted.web site).

On open a client gets a ``snapshot`` message (every speaker's state and the topology, with
``last_id`` the id of the last message it includes), then every later message its filter
accepts, once and in order. ``?last_id=N`` resumes from the hub's ring instead (or sends
``reset`` then a snapshot when ``N`` is gone). Text frames from the client are JSON
operations: ``{"op": "filter", ...}`` replaces the filter, ``{"op": "command", "id", "speaker",
"command", "args"}`` runs a command (``control`` scope). Every message to a client, replies
included, goes through its bounded ``ClientQueue``; a client that falls behind is closed with
code 1008 and a reason. The protocol is documented in ``docs/api.md``.

Frames are built here, not by autobahn: a server's text frame is unmasked and, without
permessage-deflate (which this factory never accepts), the same bytes for every client, so each
message is framed once (``text_frame``) and the bytes are written straight to each open
client's transport, several messages of a reactor turn in one ``writeSequence``. autobahn's
``sendPreparedMessage`` does the same framing but costs several microseconds per client and
message in its debug logging (issue 7). autobahn still owns the connection: its handshake,
pings, pongs and close handshake are untouched, nothing is written once it has left the open
state, and anything it queued itself goes out first.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator, Sequence
from typing import Any

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.error import UnsupportedMethod
from twisted.web.server import Request

from sonosd.api.auth import CONTROL, Authenticator, Denied, Grant
from sonosd.api.responses import json_error
from sonosd.control.dispatch import ControllerLike, execute, failure_fields
from sonosd.delivery.channel import (
    QUERY_PARAMETERS,
    BadOperation,
    Channel,
    QueuedClient,
    Start,
    error_reply,
    read_operation,
    reset_body,
)
from sonosd.delivery.filters import Filter, FilterError
from sonosd.delivery.flow import ClientQueue, TransportWriter
from sonosd.delivery.hub import Cursor, Hub, Message, encode, parse_cursor
from sonosd.delivery.metrics import ApiMetrics
from sonosd.peerlog import PeerLog

log = Logger()

#: Close codes (RFC 6455 §7.4.1): policy violation (too slow), going away (shutdown).
CLOSE_TOO_SLOW = 1008
CLOSE_GOING_AWAY = 1001

#: Shortest ping interval (and pong timeout) in seconds.
MIN_PING_INTERVAL = 1.0

#: Largest message a client may send (operations are small).
MAX_INCOMING = 65_536


def text_frame(payload: bytes) -> bytes:
    """An unmasked, final, text WebSocket frame holding ``payload`` (RFC 6455 §5.2)."""
    length = len(payload)
    if length < 126:
        return bytes((0x81, length)) + payload
    if length < 0x10000:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def _first(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    return values[0] if values else None


# autobahn's own bases disagree on two attributes; mypy checks that again in any subclass
# with a second base.
class ApiWebSocketProtocol(QueuedClient, WebSocketServerProtocol):  # type: ignore[misc]
    """One WebSocket client."""

    factory: ApiWebSocketFactory

    def __init__(self) -> None:
        super().__init__()
        self.filter = Filter()
        self.grant: Grant | None = None
        self.queue: ClientQueue[bytes] | None = None
        self._writer: TransportWriter | None = None
        self._cursor: Cursor | None = None
        self.lost: Deferred[None] = Deferred()

    def onConnect(self, request: ConnectionRequest) -> None:
        """Check the token (again: the site already did) and read the filter and ``last_id``."""
        checked = self.factory.auth.check(
            request.headers.get("authorization"), _first(request.params, "access_token")
        )
        if isinstance(checked, Denied):
            raise ConnectionDeny(checked.status, checked.message)
        self.grant = checked
        try:
            self.filter = Filter.from_query(request.params, strict=True, allowed=QUERY_PARAMETERS)
        except FilterError as error:
            raise ConnectionDeny(ConnectionDeny.BAD_REQUEST, str(error)) from None
        self._cursor = parse_cursor(
            _first(request.params, "last_id"), _first(request.params, "run")
        )

    def onOpen(self) -> None:
        """Become the transport's producer, join the channel, send the snapshot or replay."""
        factory = self.factory
        self.queue = ClientQueue(factory.limit, self._write, self._too_slow, self._write_many)
        transport: Any = self.transport
        if transport is not None:
            self._writer = TransportWriter(transport)
            # The HTTP channel that accepted the upgrade is still registered as the producer.
            transport.unregisterProducer()
            transport.registerProducer(self.queue, True)
        start = factory.channel.join(self, self._cursor)
        self.queue.prime(self._start_frames(start))

    def _start_frames(self, start: Start) -> Iterator[bytes]:
        if start.reset is not None:
            yield text_frame(encode(reset_body(start.reset)))
        if start.snapshot is not None:
            yield text_frame(encode(start.snapshot))
        for message in start.replay:
            yield self.factory.channel.frame(message)

    def _write(self, frame: bytes) -> None:
        if self.state != self.STATE_OPEN or self._writer is None:
            # Closing or closed: no data frame may follow our (or the peer's) close frame.
            return
        if self.send_queue:
            # autobahn has delayed writes of its own queued: keep the order.
            self.sendData(frame)
            return
        self._writer.write(frame)

    def _write_many(self, frames: Sequence[bytes]) -> None:
        self._write(b"".join(frames))

    def reply(self, body: dict[str, Any]) -> None:
        """Send this client a message of its own (result, error, filter acknowledgement).

        The messages delivered before it go out first.
        """
        self.factory.channel.flush()
        self.offer(text_frame(encode(body)))

    def _too_slow(self, dropped: int) -> None:
        self.factory.channel.too_slow(self, dropped)
        self.sendCloseFrame(
            code=CLOSE_TOO_SLOW,
            reasonUtf8=f"too slow: more than {self.factory.limit} messages behind".encode(),
        )

    def shutdown(self) -> None:
        """The server stops."""
        if self.queue is not None:
            self.queue.close()
        self.sendCloseFrame(code=CLOSE_GOING_AWAY, reasonUtf8=b"server shutting down")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        """Leave the channel and release the queue."""
        if self.queue is not None:
            self.queue.close()
        self.factory.channel.leave(self)
        if not self.lost.called:
            self.lost.callback(None)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Handle one JSON operation; whatever it holds, answer it and never raise (an
        exception here would end the connection without a close frame)."""
        try:
            self._operation(payload)
        except Exception:
            log.failure("websocket operation failed")
            self._error(None, "internal", "the operation failed; see the daemon's log")

    def _operation(self, payload: bytes) -> None:
        try:
            request = read_operation(payload)
        except BadOperation as error:
            self.factory.refused(self._source(), error.reason, str(error))
            self.reply(error_reply(None, "bad_request", str(error)))
            return
        request_id = request.get("id")
        op = request.get("op")
        if op == "filter":
            self.reply(self.factory.channel.set_filter(self, request))
        elif op == "command":
            self._command(request_id, request)
        else:
            self.factory.refused(self._source(), "unknown_op", f"unknown op {str(op)[:40]!r}")
            self._error(request_id, "bad_request", f"unknown op {op!r}"[:200])

    def _source(self) -> str | None:
        """The client's address, as the throttled log counts sources (autobahn's ``peer``
        names the port too: each connection of one host would be a source of its own)."""
        transport = self.transport
        host = getattr(transport.getPeer(), "host", None) if transport is not None else None
        return host if isinstance(host, str) else None

    def _error(self, request_id: Any, code: str, message: str) -> None:
        self.reply(error_reply(request_id, code, message))

    def _command(self, request_id: Any, request: dict[str, Any]) -> None:
        if self.grant is None or not self.grant.allows(CONTROL):
            self._error(request_id, "forbidden", "this token lacks the control scope")
            return
        controller = self.factory.controller
        if controller is None:
            self._error(request_id, "not_available", "commands are not available")
            return
        speaker, command = request.get("speaker"), request.get("command")
        args = request.get("args", {})
        if not isinstance(speaker, str) or not isinstance(command, str):
            self._error(request_id, "bad_request", "speaker and command must be strings")
            return
        if not isinstance(args, dict):
            self._error(request_id, "bad_request", "args must be an object")
            return

        def answered(result: dict[str, Any]) -> None:
            self.reply({"type": "result", "id": request_id, "result": result})

        def failed(failure: Failure) -> None:
            _, error = failure_fields(failure)
            self.reply({"type": "error", "id": request_id, "error": error})

        execute(controller, speaker, command, args).addCallbacks(answered, failed)


class ApiWebSocketFactory(WebSocketServerFactory):
    """The WebSocket channel: the hub sink, the per-client settings, the open clients.

    @param reactor: The reactor (autobahn's timers and pings run on it).
    @param hub: The hub.
    @param auth: Checks each client's token.
    @param limit: ``api.client_buffer``.
    @param heartbeat: Seconds between pings (``api.heartbeat``, at least 1); a client that
        does not answer within the same time again is dropped. 0 disables pings.
    @param controller: Runs commands, or ``None``.
    """

    protocol = ApiWebSocketProtocol  # type: ignore[assignment]

    def __init__(
        self,
        reactor: Any,
        hub: Hub,
        auth: Authenticator,
        limit: int,
        heartbeat: float,
        controller: ControllerLike | None = None,
        metrics: ApiMetrics | None = None,
    ) -> None:
        super().__init__(reactor=reactor)
        self.auth = auth
        self.limit = limit
        self.controller = controller
        self.metrics = metrics
        self.peer_log = PeerLog(log, reactor)
        self.channel: Channel[bytes] = Channel(
            hub, "websocket", self._frame, metrics, clock=reactor
        )
        options: dict[str, Any] = {
            "openHandshakeTimeout": 10,
            "closeHandshakeTimeout": 5,
            "maxFramePayloadSize": MAX_INCOMING,
            "maxMessagePayloadSize": MAX_INCOMING,
            # A client that breaks a bound or the protocol is told why in a close frame (1009
            # for a frame over MAX_INCOMING, docs/api.md), not dropped without a word;
            # closeHandshakeTimeout bounds how long it may take to answer.
            "failByDrop": False,
            # Frames are built once for every client (text_frame): no per-client compression.
            "perMessageCompressionAccept": lambda offers: None,
        }
        if heartbeat > 0:
            # autobahn batches its timers in 0.2 s buckets; shorter intervals misfire.
            interval = max(heartbeat, MIN_PING_INTERVAL)
            options.update(autoPingInterval=interval, autoPingTimeout=interval)
        self.setProtocolOptions(**options)

    def _frame(self, message: Message) -> bytes:
        return text_frame(message.raw)

    def refused(self, peer: str | None, reason: str, detail: str) -> None:
        """Count and log (throttled) one operation refused from ``peer``."""
        if self.metrics is not None:
            self.metrics.client_errors["websocket", reason] += 1
        self.peer_log.emit(peer, reason, "websocket client {source}: {detail}", detail=detail)

    def web_resource(self) -> WebSocketResource:
        """The twisted.web resource that upgrades requests to this channel."""
        return _UpgradeOnly(self)


class _UpgradeOnly(WebSocketResource):
    """autobahn's resource, except that a request that is no WebSocket upgrade gets a JSON
    ``426`` (autobahn answers it with an HTML page and status 200), and an upgrade with a
    query parameter that is no filter key a JSON ``400 bad_filter``, as on the SSE route
    (autobahn's refusal would put the message in the status line, with no body)."""

    def render(self, request: Request) -> Any:
        if request.method != b"GET":
            raise UnsupportedMethod([b"GET"])
        upgrade = request.getHeader("upgrade") or ""
        if upgrade.strip().lower() != "websocket":
            request.setHeader(b"upgrade", b"websocket")
            return json_error(request, 426, "upgrade_required", "connect with a WebSocket client")
        refused = self._handshake_error(request)
        if refused is not None:
            return json_error(request, 400, "bad_request", refused)
        try:
            Filter.from_query(request.args or {}, strict=True, allowed=QUERY_PARAMETERS)
        except FilterError as error:
            return json_error(request, 400, "bad_filter", str(error))
        return super().render(request)

    def _handshake_error(self, request: Request) -> str | None:
        """Why the upgrade's WebSocket headers are refused (RFC 6455 section 4.2.1), or
        ``None``: autobahn would refuse them with a bare status line, not JSON."""
        spoken = sorted(getattr(self._factory, "versions", (13,)), reverse=True)
        versions = [str(number) for number in spoken]
        version = (request.getHeader("sec-websocket-version") or "").strip()
        if version not in versions:
            request.setHeader(b"sec-websocket-version", ",".join(versions).encode())
            return f"Sec-WebSocket-Version must be one of {', '.join(versions)}, got {version!r}"
        keys = request.requestHeaders.getRawHeaders(b"sec-websocket-key") or []
        try:
            valid = len(keys) == 1 and len(base64.b64decode(keys[0].strip(), validate=True)) == 16
        except ValueError:
            valid = False
        if not valid:
            return "Sec-WebSocket-Key must be one header of 16 bytes in base64"
        return None
