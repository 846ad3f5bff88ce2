# -*- test-case-name: tests.api.test_site -*-
"""The HTTP API: one twisted.web site on a Twisted endpoint string, as an ``IService``.

Routes (all under ``/api/v1``; reference in ``docs/openapi.yaml`` and ``docs/api.md``):
``health`` and ``access`` (open), ``metrics``, ``snapshot``, ``events`` (SSE), ``ws`` (WebSocket),
``speakers``, ``speakers/{id}``, ``groups``, ``art`` (``read`` scope), and ``POST
speakers/{id}/{command}`` (``control`` scope; built by the command hook). The dashboard
(:mod:`~sonosd.api.dashboard`) answers at ``/`` and ``/dashboard/``.

``V1Resource`` is the one gate every request passes: DNS-rebinding and cross-origin guards,
CORS, the token check and the scope check (``read`` for GET/HEAD, ``control`` for any other
method), so the resources behind it hold no security logic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote_to_bytes
from weakref import WeakSet

import attrs
from prometheus_client import CollectorRegistry
from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel, combinedLogFormatter
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site

from sonosd.api import views
from sonosd.api.art import ArtProxy, ArtResource
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
from sonosd.api.dashboard import SiteRoot
from sonosd.api.deadline import REQUEST_TIMEOUT, RequestDeadline
from sonosd.api.resources import (
    AccessResource,
    DiagnosticsResource,
    ErrorResource,
    GroupsResource,
    HealthResource,
    MetricsResource,
    ReadyResource,
    SnapshotResource,
    SpeakersResource,
    not_found,
)
from sonosd.api.responses import JsonMethods, json_error
from sonosd.api.sse import EventsResource
from sonosd.config import ApiConfig
from sonosd.control.commandargs import COMMANDS
from sonosd.control.dispatch import ControllerLike
from sonosd.delivery.channel import error_body
from sonosd.delivery.drain import drained
from sonosd.delivery.endpoint import listen
from sonosd.delivery.hub import Hub, encode
from sonosd.delivery.metrics import ApiMetrics
from sonosd.peerlog import PeerLog

if TYPE_CHECKING:
    from sonosd.api.ws import ApiWebSocketFactory

log = Logger()

T = TypeVar("T")
access_log = Logger(namespace="sonosd.api.access")

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
        self.open_children: set[bytes] = {b"health", b"access"}
        self.metrics: ApiMetrics | None = None

    def set_origins(self, cors_origins: tuple[str, ...]) -> None:
        """Allow ``cors_origins`` from now on (a reload)."""
        self._cors = cors_origins

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        """The child for ``path`` if the request may reach it, else a JSON error."""
        origin = request.getHeader("origin")
        host = request.getHeader("host")
        if origin is not None and self._cors and origin_allowed(origin, None, self._cors):
            request.setHeader(b"access-control-allow-origin", origin.encode("latin-1"))
            request.setHeader(b"vary", b"Origin")
        if not self._auth.required and not host_allowed(host, _hosts(self._cors)):
            return ErrorResource(
                403,
                "forbidden",
                f"unexpected Host header {_shown(host)}: an API open without tokens takes "
                "an address, localhost or the host of an api.cors_origins entry",
            )
        if request.method == b"OPTIONS":
            return _Preflight(allowed=origin_allowed(origin, host, self._cors))
        if request.method not in _SAFE_METHODS and not origin_allowed(origin, host, self._cors):
            return _cross_origin("request", origin, host)
        if path == b"ws" and not origin_allowed(origin, host, self._cors):
            return _cross_origin("WebSocket", origin, host)
        child = self.children.get(path)
        if child is None or (child.isLeaf and any(request.postpath or ())):
            # A path below a leaf route is no route either (docs/api.md: unknown paths 404).
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


class ApiRoot(Resource):
    """``/api``: its only child is ``v1``; anything else is a JSON 404, never HTML."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        """An unknown child of ``/api``."""
        return not_found(f"no such API: /api/{path.decode('utf-8', 'replace')} (try /api/v1)")

    def render(self, request: Request) -> bytes:
        """``/api`` itself."""
        return not_found("no such resource (the API is under /api/v1)").render(request)


def _shown(value: str | None) -> str:
    """A header value as an error message repeats it: quoted, at most 100 characters."""
    return json.dumps((value or "")[:100])


def _cross_origin(what: str, origin: str | None, host: str | None) -> ErrorResource:
    """The 403 of a browser request from another origin, naming what was compared: behind a
    reverse proxy that does not pass the browser's ``Host`` on, the two differ."""
    return ErrorResource(
        403,
        "forbidden",
        f"cross-origin {what} refused: Origin {_shown(origin)} is neither this API's "
        f"Host {_shown(host)} nor listed in api.cors_origins (behind a reverse proxy, "
        "pass the browser's Host header on)",
    )


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


def _closing_answer(status: bytes, code: str, message: str) -> bytes:
    """A whole HTTP answer carrying the API's JSON error, for the channel to write itself
    (before, or instead of, any request and resource) and then close."""
    body = encode(error_body(code, message))
    return (
        b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
        b"Cache-Control: no-store\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (status, len(body), body)
    )


_TOO_LARGE = _closing_answer(
    b"413 Payload Too Large",
    "too_large",
    f"the request body is over {MAX_BODY} bytes, the most any route takes",
)
"""The answer to a body over ``MAX_BODY``: the API's JSON error (``too_large``), written by the
channel itself before any resource runs."""

_LINE_TOO_LONG = _closing_answer(
    b"400 Bad Request",
    "bad_request",
    f"a line of the request head is over {HTTPChannel.MAX_LENGTH} bytes",
)
_MALFORMED = _closing_answer(
    b"400 Bad Request",
    "bad_request",
    "the request is malformed (its request line, a header, its length or its form body), or "
    f"its head is over {HTTPChannel.totalHeadersSize} bytes or {HTTPChannel.maxHeaders} "
    "headers",
)
"""twisted.web's own refusals (a line over its ``MAX_LENGTH``, which it would only close on,
and everything it answers with a bare ``400 Bad Request``), as the API's JSON error; the
answers below say which of them it is, where the channel knows."""


def _bad_request(message: str) -> bytes:
    return _closing_answer(
        b"400 Bad Request", "bad_request", f"the request is malformed: {message}"
    )


_HEAD_TOO_LARGE = _bad_request(f"its head is over {HTTPChannel.totalHeadersSize} bytes")
_BAD_REQUEST_LINE = _bad_request(
    "its request line is not a method, a target of ASCII characters and an HTTP version"
)
_BAD_HEADER = _bad_request(
    "a header line is not a name (a token), a colon and a value without NUL, CR or LF"
)
_TOO_MANY_HEADERS = _bad_request(f"it has more than {HTTPChannel.maxHeaders} headers")
_BAD_LENGTH = _bad_request("its Content-Length or Transfer-Encoding is not valid")
_BAD_CHUNKS = _bad_request("its chunked body is not well formed")
_BAD_FORM = _bad_request("its form body cannot be read")


#: What ``_TrackedChannel`` uses of ``HTTPChannel`` that Twisted does not promise: the
#: attributes it reads (with a default) and the methods it overrides (never called if
#: renamed). Without them the API still answers, with twisted.web's bare ``400 Bad Request``
#: instead of a JSON error naming what is wrong; tests/api check that the installed Twisted
#: has them all.
TWISTED_INTERNALS = (
    "_receivedHeaderSize",
    "_receivedHeaderCount",
    "_maybeChooseTransferDecoder",
    "_respondToBadRequestAndDisconnect",
)


class _TrackedChannel(RequestDeadline, HTTPChannel):
    """An HTTP connection the site can close on shutdown; ``lost`` fires when it is gone.

    A request body larger than any route accepts (``MAX_BODY``) is refused with 413 as soon
    as its length is known, before the auth gate runs and before twisted.web buffers it (in a
    temporary file above 100 KB): no one, token or not, makes the daemon store a large body.
    """

    site: ApiSite
    _refused = False
    _received = 0
    #: Whether the request line of the request being read has been seen.
    _in_head = False
    #: The answer to a refusal by twisted.web now (set around each step it may refuse in).
    _why: bytes | None = None

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

    def lineReceived(self, line: bytes) -> None:
        # twisted.web's private counters (``TWISTED_INTERNALS``): read with a default, so
        # that a Twisted without them answers its own bare 400s instead of failing here.
        received = getattr(self, "_receivedHeaderSize", 0)
        if received + len(line) > self.totalHeadersSize:
            why: bytes | None = _HEAD_TOO_LARGE
        elif not self._in_head and line:
            why, self._in_head = _BAD_REQUEST_LINE, True
        else:
            why = None  # a header line: headerReceived says what is wrong with it
        self._during(why, super().lineReceived, line)

    def headerReceived(self, line: bytes) -> bool:
        if getattr(self, "_receivedHeaderCount", 0) >= self.maxHeaders:
            return self._during(_TOO_MANY_HEADERS, super().headerReceived, line)
        return self._during(_BAD_HEADER, super().headerReceived, line)

    def _maybeChooseTransferDecoder(self, header: bytes, data: bytes) -> bool:
        return self._during(_BAD_LENGTH, super()._maybeChooseTransferDecoder, header, data)

    def allContentReceived(self) -> None:
        self._during(_BAD_FORM, super().allContentReceived)

    def _during(self, why: bytes | None, step: Callable[..., T], *args: Any) -> T:
        """Run one of twisted.web's parsing steps, a refusal in it answered with ``why``."""
        outer, self._why = self._why, why
        try:
            return step(*args)
        finally:
            self._why = outer

    def allHeadersReceived(self) -> None:
        self._in_head = False
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
        self._during(_BAD_CHUNKS, super().rawDataReceived, data)

    def refuse_too_large(self) -> None:
        """Answer 413 and close; whatever else arrives on this connection is ignored."""
        self._refuse(_TOO_LARGE, "too_large")

    def lineLengthExceeded(self, line: bytes) -> None:
        """A line of the head over 16 KiB: a JSON 400 (``LineReceiver`` would close without
        a word)."""
        self._refuse(_LINE_TOO_LONG, "malformed")

    def _respondToBadRequestAndDisconnect(self) -> None:
        # twisted.web's one step for every request it cannot read (a bad request line,
        # header, length, chunk or form body; a head over its bounds): a JSON 400 saying which.
        self._refuse(self._why or _MALFORMED, "malformed")

    def _refuse(self, answer: bytes, reason: str) -> None:
        """Write ``answer`` and close; whatever else arrives on this connection is ignored."""
        self._refused = True
        if self.site.metrics is not None:
            self.site.metrics.client_errors["rest", reason] += 1
        transport = self.transport
        assert transport is not None
        transport.write(answer)
        transport.loseConnection()


class ApiRequest(Request):
    """A request whose unhandled exception is answered with a JSON 500 under ``/api`` (and
    logged once, with its traceback), not with twisted.web's HTML page; an unsupported
    method there is a JSON 405 (``JsonMethods``)."""

    def render(self, resrc: IResource) -> None:
        """Render ``resrc``; under ``/api`` an unsupported method is answered in JSON."""
        path = self.path or b""
        if path == b"/api" or path.startswith(b"/api/"):
            resrc = JsonMethods(resrc)  # type: ignore[assignment]
        super().render(resrc)

    def processingFailed(self, reason: Failure) -> Failure:
        """Log the failure once and answer a JSON 500 (HTML outside ``/api``)."""
        path = self.path or b""
        if not (path == b"/api" or path.startswith(b"/api/")):
            return super().processingFailed(reason)
        log.failure(
            "unhandled error answering {method} {path}",
            reason,
            method=self.method.decode("latin-1"),
            path=path.decode("latin-1"),
        )
        if self.startedWriting or self.finished:
            # Too late for a status: the client sees the response break off.
            if self.channel is not None and self.channel.transport is not None:
                self.channel.transport.loseConnection()
            return reason
        body = json_error(self, 500, "internal", "the request failed; see the daemon's log")
        self.setHeader(b"content-length", b"%d" % len(body))
        self.write(body)
        self.finish()
        return reason


class ApiSite(Site):
    """The API's ``Site``: tracks its connections, redacts tokens from its access log and
    writes that log at debug level (an info line per request floods a daemon's log)."""

    protocol = _TrackedChannel  # type: ignore[assignment]
    requestFactory = ApiRequest
    noisy = False
    request_timeout = REQUEST_TIMEOUT

    def __init__(self, resource: IResource, reactor: Any) -> None:
        super().__init__(resource, logFormatter=access_log_line, reactor=reactor)
        self.channels: WeakSet[_TrackedChannel] = WeakSet()
        self.metrics: ApiMetrics | None = None
        self.peer_log = PeerLog(log, reactor)

    def getResourceFor(self, request: Request) -> IResource:
        """The resource for ``request``; a JSON 400 naming the header when one is not UTF-8
        (twisted.web decodes a header asked for by a str name strictly: ``Host: \\xff`` would
        raise in the auth gate, a 500 with a traceback)."""
        for name, values in request.requestHeaders.getAllRawHeaders():
            for value in values:
                try:
                    value.decode("utf-8")
                except UnicodeDecodeError:
                    shown = name.decode("latin-1")[:40]
                    return ErrorResource(400, "bad_request", f"the {shown} header is not UTF-8")
        resource: IResource = super().getResourceFor(request)
        return resource

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

    def log(self, request: http.Request) -> None:
        """The access log line of ``request``, at debug level (no token in it)."""
        assert isinstance(request, Request)
        access_log.debug(
            "{line}",
            line=access_log_line(self._logDateTime or "-", request),
            status=request.code,
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


class _WebSocketDoor(Resource):
    """``/api/v1/ws``: hands each request to the WebSocket channel's resource, which it
    builds on the first request (``ApiService.websocket``)."""

    isLeaf = True

    def __init__(self, service: ApiService) -> None:
        super().__init__()
        self._service = service
        self._resource: IResource | None = None

    def render(self, request: Request) -> Any:
        if self._resource is None:
            self._resource = self._service.websocket.web_resource()
        return self._resource.render(request)


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
    @param grace: Seconds stopService waits for clients to close before aborting them, and an
        SSE client closed as too slow has to take its last words.
    @param readiness: Serves ``/api/v1/ready`` (open): returns ``{"ready", "reasons",
        "speakers"}``; without it the route is not there.
    @param diagnostics: Serves ``/api/v1/diagnostics`` (``read`` scope).

    @ivar problems: Returns why the household is degraded, one sentence each (from the
        household supervisor's status, ``sonosd.household.readiness.health_reasons``); read
        by ``/api/v1/health``. ``None``: the speakers' availability counts only.
    """

    problems: Callable[[], list[str]] | None = None

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
        readiness: Callable[[], Mapping[str, Any]] | None = None,
        diagnostics: Callable[[], Mapping[str, Any]] | None = None,
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
            hub, reactor, config.client_buffer, config.heartbeat, self.metrics, grace
        )
        self._controller = controller
        self._websocket: ApiWebSocketFactory | None = None
        self.v1 = V1Resource(self.auth, tuple(config.cors_origins))
        self.v1.metrics = self.metrics
        self.art = ArtProxy(reactor)
        children: dict[bytes, IResource] = {
            b"health": HealthResource(state, self.uptime, VERSION, self._problems),
            b"access": AccessResource(
                self.auth,
                lambda: (name.decode("utf-8") for name in self.v1.children),
                COMMANDS if controller is not None or commands is not None else (),
            ),
            b"metrics": MetricsResource(self.metrics),
            b"snapshot": SnapshotResource(hub),
            b"events": self.events,
            b"ws": _WebSocketDoor(self),
            b"speakers": SpeakersResource(
                state, commands or default_commands(controller, self.metrics)
            ),
            b"groups": GroupsResource(state),
            b"art": ArtResource(state, self.art),
        }
        if readiness is not None:
            children[b"ready"] = ReadyResource(readiness, self.may_read)
            self.v1.open_children.add(b"ready")
        if diagnostics is not None:
            children[b"diagnostics"] = DiagnosticsResource(diagnostics)
        for name, child in children.items():
            self.v1.putChild(name, child)
        api = ApiRoot()
        api.putChild(b"v1", self.v1)
        #: The site's root: the dashboard at ``/`` and ``/dashboard/``; ``/api`` beside it.
        self.root = SiteRoot()
        self.root.putChild(b"api", api)
        self.site = ApiSite(self.root, reactor)
        self.site.request_timeout = config.request_timeout
        self.site.metrics = self.metrics
        self.listening: Deferred[IListeningPort] = Deferred()

    @property
    def websocket(self) -> ApiWebSocketFactory:
        """The WebSocket channel, built (and autobahn imported) when first used: an idle
        daemon, or one whose clients use SSE only, never loads autobahn and the cryptography
        library it imports (issue 17)."""
        if self._websocket is None:
            from sonosd.api.ws import ApiWebSocketFactory

            self._websocket = ApiWebSocketFactory(
                self.reactor,
                self.hub,
                self.auth,
                self.config.client_buffer,
                self.config.heartbeat,
                self._controller,
                self.metrics,
            )
            if self.running:
                self._websocket.channel.start()
        return self._websocket

    def websocket_clients(self) -> int:
        """Open WebSocket clients (none before the first one, without building the channel)."""
        return 0 if self._websocket is None else len(self._websocket.channel.clients)

    def _problems(self) -> list[str]:
        return [] if self.problems is None else list(self.problems())

    def may_read(self, request: Request) -> bool:
        """Whether ``request`` carries what the ``read`` scope needs (nothing, when open)."""
        checked = self.auth.check(
            request.getHeader("authorization"), query_first(request.args or {}, _TOKEN)
        )
        return not isinstance(checked, Denied) and checked.allows(READ)

    def reconfigure(self, config: ApiConfig) -> None:
        """Take new tokens, ``require_auth`` and CORS origins (a reload); connected clients
        stay connected. The listen address and buffers stay as they are until a restart."""
        self.config = attrs.evolve(
            self.config,
            tokens=config.tokens,
            require_auth=config.require_auth,
            cors_origins=config.cors_origins,
            ready_when_polling=config.ready_when_polling,
        )
        self.auth.set_tokens(config.tokens)
        self.v1.set_origins(tuple(config.cors_origins))
        if self.port is not None:
            self._decide_auth(self.port)

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
        if self._websocket is not None:
            self._websocket.channel.start()
        listen(self.reactor, self.config.listen, self.site, self.listening, "api", self._listened)

    def _listened(self, port: IListeningPort) -> None:
        self.port = port
        host = self._decide_auth(port)
        log.info(
            "api listening on {address} (tokens {required})",
            address=f"{getattr(host, 'host', host)}:{getattr(host, 'port', '')}".rstrip(":"),
            required="required" if self.auth.required else "not required",
        )

    def _decide_auth(self, port: IListeningPort) -> Any:
        """Whether tokens are required, from the bound address and the configuration."""
        host = port.getHost()
        bound = getattr(host, "host", None)
        local = is_local_address(bound if isinstance(bound, str) else None)
        self.auth.required = auth_required(self.config.require_auth, self.config.tokens, local)
        if self.auth.required and not self.config.tokens:
            log.warn("api: tokens are required but none is configured: every request gets 401")
        if not self.auth.required and not local:
            log.warn("api: listening on {address} without tokens", address=str(host))
        return host

    def stopService(self) -> Deferred[None]:
        """Stop listening and close every client within the grace period."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if self.port is not None:
            port, self.port = self.port, None
            await maybeDeferred(port.stopListening)
        websocket = self._websocket
        sockets: list[Any] = list(websocket.channel.clients) if websocket is not None else []
        self.events.stop()
        if websocket is not None:
            websocket.channel.stop()
            websocket.peer_log.stop()
        self.site.peer_log.stop()
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
        await self.art.close()
