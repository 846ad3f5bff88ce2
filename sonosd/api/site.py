# -*- test-case-name: tests.api.test_site -*-
"""The HTTP API: one twisted.web site on a Twisted endpoint string, as an ``IService``.

Routes (all under ``/api/v1``; reference in ``docs/openapi.yaml`` and ``docs/api.md``):
``health`` (open), ``metrics``, ``snapshot``, ``events`` (SSE), ``ws`` (WebSocket),
``speakers``, ``speakers/{id}``, ``groups`` (``read`` scope), and ``POST
speakers/{id}/{command}`` (``control`` scope; built by the command hook).

``V1Resource`` is the one gate every request passes: DNS-rebinding and cross-origin guards,
CORS, the token check and the scope check (``read`` for GET/HEAD, ``control`` for any other
method), so the resources behind it hold no security logic.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes
from weakref import WeakSet

from prometheus_client import CollectorRegistry
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel, combinedLogFormatter
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from sonosd.api import views
from sonosd.api.auth import (
    CONTROL,
    READ,
    Authenticator,
    Denied,
    auth_required,
    forbidden,
    host_allowed,
    is_local_address,
    origin_allowed,
    query_first,
)
from sonosd.api.commands import MAX_BODY, CommandFactory, default_commands
from sonosd.api.deadline import REQUEST_TIMEOUT, RequestDeadline
from sonosd.api.resources import (
    ErrorResource,
    GroupsResource,
    HealthResource,
    MetricsResource,
    SnapshotResource,
    SpeakersResource,
    not_found,
)
from sonosd.api.sse import EventsResource
from sonosd.api.ws import ApiWebSocketFactory
from sonosd.config import ApiConfig
from sonosd.control.dispatch import ControllerLike
from sonosd.delivery.drain import drained
from sonosd.delivery.endpoint import listen
from sonosd.delivery.hub import Hub
from sonosd.delivery.metrics import ApiMetrics
from sonosd.peerlog import PeerLog

log = Logger()

VERSION = "0.1.0"
_SAFE_METHODS = (b"GET", b"HEAD")
_TOKEN = b"access_token"


def redact(uri: bytes) -> bytes:
    """``uri`` with the value of any ``access_token`` parameter replaced (for access logs).

    A parameter is recognised as ``twisted.web`` reads it (``&`` or ``;`` separators, the name
    percent- and plus-decoded), so that every spelling the gate accepts is also hidden.
    """
    path, mark, query = uri.partition(b"?")
    if not mark:
        return uri
    query, hash_mark, fragment = query.partition(b"#")
    return path + mark + _redact_query(query) + hash_mark + fragment


def _redact_query(query: bytes) -> bytes:
    pairs = re.split(rb"([&;])", query)
    for index in range(0, len(pairs), 2):
        name, equals, _ = pairs[index].partition(b"=")
        if equals and unquote_to_bytes(name.replace(b"+", b" ")) == _TOKEN:
            pairs[index] = name + b"=REDACTED"
    return b"".join(pairs)


class _Redacted:
    """A request seen by the access log formatter: no token in its URI or its ``Referer``."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.uri = redact(request.uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    def getHeader(self, name: bytes) -> bytes | None:
        """The request's header ``name``, a referring URI redacted."""
        value = self._request.getHeader(name)
        if value is not None and name.lower() == b"referer":
            return redact(value)
        return value


def access_log_line(timestamp: str, request: Request) -> str:
    """The combined log format line of a request, without its ``access_token``."""
    return str(combinedLogFormatter(timestamp, _Redacted(request)))


class V1Resource(Resource):
    """``/api/v1``: routes to the children through the security gate.

    @param auth: The token checker.
    @param cors_origins: ``api.cors_origins``.
    @param open_children: Children reachable without a token (``health``).
    """

    def __init__(self, auth: Authenticator, cors_origins: tuple[str, ...]) -> None:
        super().__init__()
        self._auth = auth
        self._cors = cors_origins
        self.open_children: set[bytes] = {b"health"}
        self.metrics: ApiMetrics | None = None

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """The child for ``path`` if the request may reach it, else a JSON error."""
        origin = request.getHeader("origin")
        host = request.getHeader("host")
        if origin is not None and self._cors and origin_allowed(origin, None, self._cors):
            request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
            request.setHeader(b"vary", b"Origin")
        if not self._auth.required and not host_allowed(host, _hosts(self._cors)):
            return ErrorResource(403, "forbidden", "unexpected Host header")
        if request.method == b"OPTIONS":
            return _Preflight(allowed=origin_allowed(origin, host, self._cors))
        if request.method not in _SAFE_METHODS and not origin_allowed(origin, host, self._cors):
            return ErrorResource(403, "forbidden", "cross-origin request refused")
        if path == b"ws" and not origin_allowed(origin, host, self._cors):
            return ErrorResource(403, "forbidden", "cross-origin WebSocket refused")
        child = self.children.get(path)
        if child is None:
            return not_found()
        if path in self.open_children:
            return child
        checked = self._auth.check(
            request.getHeader("authorization"), query_first(request.args or {}, b"access_token")
        )
        if isinstance(checked, Denied):
            return self._denied(checked)
        scope = READ if request.method in _SAFE_METHODS else CONTROL
        if not checked.allows(scope):
            return self._denied(forbidden(scope))
        return child

    def _denied(self, denied: Denied) -> IResource:
        if self.metrics is not None:
            self.metrics.auth_failures.labels(str(denied.status)).inc()
        return ErrorResource(
            denied.status,
            denied.code,
            denied.message,
            {b"www-authenticate": denied.challenge.encode("ascii")},
        )

    def render(self, request: Request) -> bytes:
        """``/api/v1`` itself: not a resource."""
        return not_found().render(request)


def _hosts(origins: tuple[str, ...]) -> list[str]:
    return [
        origin.partition("://")[2].rpartition(":")[0] or origin.partition("://")[2]
        for origin in origins
    ]


class _Preflight(Resource):
    """A CORS preflight: 204, with the allowed methods and headers when the origin is."""

    isLeaf = True

    def __init__(self, allowed: bool) -> None:
        super().__init__()
        self._allowed = allowed

    def render(self, request: Request) -> bytes:
        request.setResponseCode(204)
        if self._allowed and request.responseHeaders.hasHeader(b"access-control-allow-origin"):
            request.setHeader(b"access-control-allow-methods", b"GET, POST, OPTIONS")
            request.setHeader(
                b"access-control-allow-headers", b"Authorization, Content-Type, Last-Event-ID"
            )
            request.setHeader(b"access-control-max-age", b"600")
        return b""


_TOO_LARGE = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _TrackedChannel(RequestDeadline, HTTPChannel):
    """An HTTP connection the site can close on shutdown; ``lost`` fires when it is gone.

    A request body larger than any route accepts (``MAX_BODY``) is refused with 413 as soon
    as its length is known, before the auth gate runs and before twisted.web buffers it (in a
    temporary file above 100 KB): no one, token or not, makes the daemon store a large body.
    """

    site: ApiSite
    _refused = False
    _received = 0

    def connectionMade(self) -> None:
        super().connectionMade()
        self.lost: Deferred[None] = Deferred()
        self.site.channels.add(self)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.site.channels.discard(self)
        super().connectionLost(reason)
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        if not self._refused:
            super().dataReceived(data)

    def allHeadersReceived(self) -> None:
        self._received = 0
        if self.length is not None and self.length > MAX_BODY:
            self.refuse_too_large()
            return
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        # Chunked bodies announce no length: count what arrives.
        self._received += len(data)
        if self._received > MAX_BODY + 4096:
            self.refuse_too_large()
            return
        super().rawDataReceived(data)

    def refuse_too_large(self) -> None:
        """Answer 413 and close; whatever else arrives on this connection is ignored."""
        self._refused = True
        transport = self.transport
        assert transport is not None
        transport.write(_TOO_LARGE)
        transport.loseConnection()


class ApiSite(Site):
    """The API's ``Site``: tracks its connections, redacts tokens from its access log."""

    protocol = _TrackedChannel  # type: ignore[assignment]
    noisy = False
    request_timeout = REQUEST_TIMEOUT

    def __init__(self, resource: IResource, reactor: Any) -> None:
        super().__init__(resource, logFormatter=access_log_line, reactor=reactor)
        self.channels: WeakSet[_TrackedChannel] = WeakSet()
        self.metrics: ApiMetrics | None = None
        self.peer_log = PeerLog(log, reactor)

    def too_slow(self, host: str | None) -> None:
        """A request did not arrive within ``request_timeout``: count it, log it (throttled)."""
        if self.metrics is not None:
            self.metrics.client_errors["rest", "too_slow"] += 1
        self.peer_log.emit(
            host,
            "too_slow",
            "api: a request from {source} did not arrive within {timeout:g} s: 408, closed",
            timeout=self.request_timeout,
        )

    def close_connections(self) -> list[_TrackedChannel]:
        """Ask every plain HTTP connection to close; return those still open."""
        still: list[_TrackedChannel] = []
        for channel in list(self.channels):
            transport = channel.transport
            if transport is None:
                # Taken over by a WebSocket, which closes itself.
                self.channels.discard(channel)
                continue
            transport.loseConnection()
            still.append(channel)
        return still


class ApiService(Service):
    """The API site on ``config.listen``.

    @param reactor: Provides the endpoint, the clock and the timers.
    @param config: ``config.api``.
    @param hub: The message hub.
    @param state: ``HouseholdState`` (read for speakers, groups and health).
    @param controller: Runs commands (REST and WebSocket), or ``None``.
    @param commands: The command hook: builds the resource for ``POST
        /api/v1/speakers/{id}/{command}`` (default: ``CommandResource`` on ``controller``).
    @param registry: The Prometheus registry to export (default: a new one, see
        ``self.metrics.registry``).
    @param grace: Seconds stopService waits for clients to close before aborting them.
    """

    def __init__(
        self,
        reactor: Any,
        config: ApiConfig,
        hub: Hub,
        state: views.StateView,
        controller: ControllerLike | None = None,
        *,
        commands: CommandFactory | None = None,
        registry: CollectorRegistry | None = None,
        grace: float = 3.0,
    ) -> None:
        self.reactor = reactor
        self.config = config
        self.hub = hub
        self.state = state
        self.grace = grace
        self.port: IListeningPort | None = None
        self._started_at = reactor.seconds()
        self.auth = Authenticator(config.tokens, required=True)
        self.metrics = ApiMetrics(
            hub,
            uptime=self.uptime,
            speakers=state.availability_counts,
            registry=registry,
        )
        self.events = EventsResource(
            hub, reactor, config.client_buffer, config.heartbeat, self.metrics
        )
        self.websocket = ApiWebSocketFactory(
            reactor,
            hub,
            self.auth,
            config.client_buffer,
            config.heartbeat,
            controller,
            self.metrics,
        )
        self.v1 = V1Resource(self.auth, tuple(config.cors_origins))
        self.v1.metrics = self.metrics
        children: dict[bytes, IResource] = {
            b"health": HealthResource(state, self.uptime, VERSION),
            b"metrics": MetricsResource(self.metrics),
            b"snapshot": SnapshotResource(hub),
            b"events": self.events,
            b"ws": self.websocket.web_resource(),
            b"speakers": SpeakersResource(
                state, commands or default_commands(controller, self.metrics)
            ),
            b"groups": GroupsResource(state),
        }
        for name, child in children.items():
            self.v1.putChild(name, child)
        api = Resource()
        api.putChild(b"v1", self.v1)
        #: The site's root: other parts (the dashboard) may ``putChild`` here.
        self.root = Resource()
        self.root.putChild(b"api", api)
        self.site = ApiSite(self.root, reactor)
        self.site.request_timeout = config.request_timeout
        self.site.metrics = self.metrics
        self.listening: Deferred[IListeningPort] = Deferred()

    def uptime(self) -> float:
        """Seconds since the service was built."""
        return float(self.reactor.seconds() - self._started_at)

    def mount(self, path: bytes, resource: IResource) -> None:
        """Serve ``resource`` at ``/api/v1/<path>`` behind the gate (``read`` scope for GET,
        ``control`` for other methods)."""
        self.v1.putChild(path, resource)

    def startService(self) -> None:
        """Listen, learn whether the bound address is local, start the channels."""
        super().startService()
        self.events.start()
        self.websocket.channel.start()
        listen(self.reactor, self.config.listen, self.site, self.listening, "api", self._listened)

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        host = port.getHost()
        bound = getattr(host, "host", None)
        local = is_local_address(bound if isinstance(bound, str) else None)
        self.auth.required = auth_required(self.config.require_auth, self.config.tokens, local)
        if self.auth.required and not self.config.tokens:
            log.warn("api: tokens are required but none is configured: every request gets 401")
        if not self.auth.required and not local:
            log.warn("api: listening on {address} without tokens", address=str(host))
        log.info(
            "api listening on {address} (tokens {required})",
            address=f"{getattr(host, 'host', host)}:{getattr(host, 'port', '')}".rstrip(":"),
            required="required" if self.auth.required else "not required",
        )

    def stopService(self) -> Deferred[None]:
        """Stop listening and close every client within the grace period."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await maybeDeferred(port.stopListening)
        sockets: list[Any] = list(self.websocket.channel.clients)
        self.events.stop()
        self.websocket.channel.stop()
        channels = self.site.close_connections()
        waiting: list[Deferred[Any]] = [ws.lost for ws in sockets]
        waiting.extend(channel.lost for channel in channels)
        # ``drained`` never cancels the waits: a cancelled ``lost`` would look called.
        await drained(waiting, self.grace, self.reactor)
        for channel in self.site.close_connections():
            transport: Any = channel.transport
            transport.abortConnection()
        for ws in sockets:
            if ws.transport is not None and not ws.lost.called:
                ws.transport.abortConnection()
