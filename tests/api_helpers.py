"""Real clients for the API tests: an SSE reader, a WebSocket collector, a stalled socket.

Everything here talks to a real ``ApiService`` listening on a loopback port; waits are
bounded by ``WAIT`` seconds so that a broken server fails a test instead of hanging it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.api.site import ApiService
from sonosd.config import ApiConfig, Token
from sonosd.delivery.flow import SEND_BUFFER
from sonosd.delivery.hub import Hub
from sonosd.household.state import HouseholdState, SpeakerRef

WAIT = 10.0

READER = Token(name="reader", secret="read-secret", scopes=frozenset({"read"}))
ADMIN = Token(name="admin", secret="admin-secret", scopes=frozenset({"read", "control"}))

KITCHEN = SpeakerRef(uid="RINCON_000E58A0000101400", name="Kitchen", host="127.0.0.2")
OFFICE = SpeakerRef(uid="RINCON_000E58A0000201400", name="Office", host="127.0.0.3")


def household() -> HouseholdState:
    """Two speakers, the kitchen online and playing, the office offline."""
    state = HouseholdState()
    for ref in (KITCHEN, OFFICE):
        state.ensure(ref)
    state.merge(KITCHEN.uid, "AVTransport", {"transport_state": "PLAYING"}, seq=0, time=1.0)
    state.set_availability(KITCHEN.uid, "online", "subscribed", time=1.0)
    state.set_availability(OFFICE.uid, "offline", "no answer", time=1.0)
    return state


def publish(hub: Hub, n: int = 1, ref: SpeakerRef = KITCHEN, pad: int = 0) -> list[int]:
    """Publish ``n`` events about ``ref``; return their ids."""
    ids = []
    for _ in range(n):
        message = hub.publish(
            "event",
            {"seq": hub.last_id, "variables": {"volume": {"Master": 10}}, "pad": "x" * pad},
            speaker=ref.to_json(),
            service="RenderingControl",
        )
        ids.append(message.id)
    return ids


def kept_send_buffer() -> int:
    """What ``SO_SNDBUF`` reads on a streaming client's socket once sonosd set it to
    ``SEND_BUFFER``: Linux caps the value at ``net.core.wmem_max`` and reports twice it."""
    with open("/proc/sys/net/core/wmem_max", encoding="ascii") as limit:
        return 2 * min(SEND_BUFFER, int(limit.read()))


async def flood(hub: Hub, until: Callable[[], bool], most: int = 3000) -> list[int]:
    """Publish 64 KiB messages, one per reactor turn, until ``until()`` holds (a client that
    stopped reading is disconnected as too slow) or ``most`` are out; return their ids."""
    sent: list[int] = []
    while not until() and len(sent) < most:
        sent += publish(hub, 1, pad=65536)
        turn: Deferred[None] = Deferred()
        reactor.callLater(0, turn.callback, None)
        await turn
    return sent


def pump(case: TestCase, hub: Hub) -> Callable[[], None]:
    """Publish one message every reactor turn until the returned function is called (or the
    test ends)."""
    running = [True]

    def publish_one() -> None:
        if running[0]:
            publish(hub, 1)
            reactor.callLater(0, publish_one)

    def stop() -> None:
        running[0] = False

    publish_one()
    case.addCleanup(stop)
    return stop


def wait(
    until: Callable[[], bool], what: str = "condition", deadline: float = WAIT
) -> Deferred[None]:
    """Fire once ``until()`` holds (checked every few milliseconds), fail after ``deadline``
    seconds (``WAIT`` unless a wait is known to be longer)."""
    done: Deferred[None] = Deferred()
    give_up = reactor.seconds() + deadline

    def check() -> None:
        if until():
            done.callback(None)
        elif reactor.seconds() > give_up:
            done.errback(Failure(AssertionError(f"timed out waiting for {what}")))
        else:
            reactor.callLater(0.005, check)

    check()
    return done


async def start_api(
    case: TestCase,
    hub: Hub,
    state: HouseholdState,
    controller: Any = None,
    **settings: Any,
) -> tuple[ApiService, str, int]:
    """Start an ApiService on a free loopback port; stop it at cleanup."""
    settings.setdefault("listen", "tcp:0:interface=127.0.0.1")
    config = ApiConfig(**settings)
    service = ApiService(reactor, config, hub, state, controller, grace=1.0)
    service.startService()
    port = await service.listening
    case.addCleanup(service.stopService)
    address = port.getHost()
    return service, address.host, address.port


class RawClient(Protocol):
    """A raw TCP client: sends ``request``, records everything it receives."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(None)

    def close(self) -> None:
        transport: Any = self.transport
        if transport is not None and transport.connected:
            transport.abortConnection()


class DripClient(Protocol):
    """Sends ``data`` at once, or a piece every ``drip`` seconds; records the answer.

    @ivar sent: Pieces written so far.
    @ivar done: Fires with everything received once the connection closes.
    @ivar lost: Why the connection closed (``ConnectionDone`` for a clean close).
    """

    def __init__(self, data: bytes | list[bytes], drip: float | None = None) -> None:
        if isinstance(data, bytes):
            data = [data] if drip is None else [data[i : i + 1] for i in range(len(data))]
        self.pieces = list(data)
        self.drip = drip
        self.sent = 0
        self.received = b""
        self.done: Deferred[bytes] = Deferred()
        self.lost: Failure | None = None
        self._call: Any = None

    @property
    def everything_sent(self) -> bool:
        return self.sent == len(self.pieces)

    def connectionMade(self) -> None:
        self._next()

    def _next(self) -> None:
        self._call = None
        while self.sent < len(self.pieces) and not self.done.called:
            self.transport.write(self.pieces[self.sent])  # type: ignore[union-attr]
            self.sent += 1
            if self.drip is not None:
                self._call = reactor.callLater(self.drip, self._next)
                return

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.lost = reason
        if self._call is not None and self._call.active():
            self._call.cancel()
        if not self.done.called:
            self.done.callback(self.received)

    def close(self) -> None:
        transport: Any = self.transport
        if transport is not None and transport.connected:
            transport.abortConnection()


class SseClient(RawClient):
    """An HTTP/1.0 EventSource client (no chunking: the body is the raw event stream)."""

    @property
    def status(self) -> int:
        return int(self.data.split(b" ", 2)[1]) if b"\r\n" in self.data else 0

    @property
    def head(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]

    def events(self) -> list[dict[str, Any]]:
        """The complete SSE blocks received: their fields, ``data`` parsed as JSON."""
        blocks = self.body.split(b"\n\n")[:-1]
        parsed = []
        for block in blocks:
            fields: dict[str, Any] = {}
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                value = value[1:] if value.startswith(b" ") else value
                if name == b"":
                    fields.setdefault("comments", []).append(value.decode())
                elif name == b"data":
                    fields["data"] = json.loads(value)
                else:
                    fields[name.decode()] = value.decode()
            parsed.append(fields)
        return parsed

    def messages(self) -> list[dict[str, Any]]:
        """The ``data`` objects of the events received, in order."""
        return [event["data"] for event in self.events() if "data" in event]


async def connect_raw(host: str, port: int, client: RawClient, case: TestCase) -> RawClient:
    """Connect ``client``; abort it at cleanup."""
    await connectProtocol(TCP4ClientEndpoint(reactor, host, port), client)
    case.addCleanup(client.close)
    return client


def sse_request(path: str, headers: Mapping[str, str] | None = None) -> bytes:
    """An HTTP/1.0 GET request."""
    lines = [f"GET {path} HTTP/1.0", "Host: 127.0.0.1"]
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class WsClient(WebSocketClientProtocol):
    """A WebSocket client that records every JSON message and how the connection closed."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.pings = 0
        self.opened: Deferred[WsClient] = Deferred()
        self.closed: Deferred[tuple[int | None, str | None]] = Deferred()

    def onOpen(self) -> None:
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.append(json.loads(payload))

    def onPing(self, payload: bytes) -> None:
        self.pings += 1
        super().onPing(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(Failure(ConnectionError(f"closed: {code} {reason}")))
        if not self.closed.called:
            self.closed.callback((code, reason))

    def send(self, body: Mapping[str, Any]) -> None:
        self.sendMessage(json.dumps(body).encode())

    def events(self) -> list[dict[str, Any]]:
        """The hub messages received (no snapshot, reset, result...)."""
        return [m for m in self.messages if m.get("type") == "event"]


async def connect_ws(
    case: TestCase,
    host: str,
    port: int,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    protocol: type[WsClient] = WsClient,
) -> WsClient:
    """Open a WebSocket to ``/api/v1/ws?query`` with a ``protocol`` client; close it at
    cleanup."""
    url = f"ws://{host}:{port}/api/v1/ws" + (f"?{query}" if query else "")
    factory = WebSocketClientFactory(url, headers=dict(headers or {}), reactor=reactor)
    factory.protocol = protocol
    client: WsClient = await connectProtocol(
        TCP4ClientEndpoint(reactor, host, port), _with_factory(factory)
    )
    await client.opened

    def close() -> Deferred[Any] | None:
        if client.closed.called:
            return None
        client.dropConnection(abort=True)
        return client.closed

    case.addCleanup(close)
    return client


def _with_factory(factory: WebSocketClientFactory) -> WsClient:
    protocol = factory.buildProtocol(None)
    assert isinstance(protocol, WsClient)
    return protocol
