# -*- test-case-name: tests.api.test_site -*-
"""The REST resources of ``/api/v1``: health, access, metrics, snapshot, speakers, groups.

All of them answer GET only (nothing changes state over GET) with JSON, except metrics
(Prometheus text). Authorisation is checked by ``V1Resource`` before a request reaches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from sonosd.api import views
from sonosd.api.auth import UNAUTHORIZED, Authenticator, Denied, query_first
from sonosd.api.commands import CommandFactory
from sonosd.api.responses import json_error, json_response
from sonosd.delivery.hub import Hub
from sonosd.delivery.metrics import CONTENT_TYPE, ApiMetrics


class ErrorResource(Resource):
    """Answers every method with one JSON error (and optional headers)."""

    isLeaf = True

    def __init__(
        self, status: int, code: str, message: str, headers: dict[bytes, bytes] | None = None
    ) -> None:
        super().__init__()
        self._status = status
        self._code = code
        self._message = message
        self._headers = headers or {}

    def render(self, request: Request) -> bytes:
        """The error, whatever the method."""
        for name, value in self._headers.items():
            request.setHeader(name, value)
        return json_error(request, self._status, self._code, self._message)


def not_found(what: str = "no such resource") -> ErrorResource:
    """A JSON 404."""
    return ErrorResource(404, "not_found", what)


class _JsonGet(Resource):
    """A leaf answering GET (and HEAD) only; other methods get a JSON 405."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return json_error(request, 405, "method_not_allowed", "only GET is allowed here")
        return self.render_json(request)

    def render_json(self, request: Request) -> bytes:
        raise NotImplementedError


class HealthResource(_JsonGet):
    """``GET /api/v1/health``: status (with the reasons it is degraded), speakers by
    availability, uptime. No token needed.

    @param problems: Why the household is degraded (the household supervisor's), if known.
    """

    def __init__(
        self,
        state: views.StateView,
        uptime: Callable[[], float],
        version: str,
        problems: Callable[[], list[str]] | None = None,
    ) -> None:
        super().__init__()
        self._state = state
        self._uptime = uptime
        self._version = version
        self._problems = problems

    def render_json(self, request: Request) -> bytes:
        problems = () if self._problems is None else self._problems()
        return json_response(
            request,
            views.health(
                self._state.availability_counts(), self._uptime(), self._version, problems
            ),
        )


class AccessResource(_JsonGet):
    """``GET /api/v1/access``: what the presented token (or none) may do here. No token needed.

    Always ``200``, so that a browser page learns whether to ask for a token without a
    failed request: ``{"auth_required", "granted", "token", "scopes"}``, and once granted
    the ``endpoints`` under ``/api/v1`` and the ``commands`` this daemon serves (clients
    detect features with them).

    @param auth: The token checker of the gate.
    @param endpoints: The names of ``/api/v1``'s children, at request time.
    @param commands: The command names (empty without a controller).
    """

    def __init__(
        self,
        auth: Authenticator,
        endpoints: Callable[[], Iterable[str]],
        commands: Sequence[str],
    ) -> None:
        super().__init__()
        self._auth = auth
        self._endpoints = endpoints
        self._commands = list(commands)

    def render_json(self, request: Request) -> bytes:
        checked = self._auth.check(
            request.getHeader("authorization"), query_first(request.args or {}, b"access_token")
        )
        body: dict[str, object] = {"auth_required": self._auth.required}
        if isinstance(checked, Denied):
            body.update(granted=False, token=None, scopes=[], reason=checked.message)
            if checked is not UNAUTHORIZED:
                body["reason"] = "the token is not valid here"
        else:
            body.update(
                granted=True,
                token=checked.name,
                scopes=sorted(checked.scopes),
                endpoints=sorted(self._endpoints()),
                commands=self._commands,
            )
        return json_response(request, body)


class ReadyResource(_JsonGet):
    """``GET /api/v1/ready``: 200 when every followed speaker is evented, else 503 with
    reasons. No token needed (container health checks have none); the reasons, which name
    speakers, are given only to a request that may read (an open API, or a read token).

    @param readiness: Returns ``{"ready": bool, "reasons": [str], "speakers": {counts}}``.
    @param may_read: Whether a request may see the reasons.
    """

    def __init__(
        self,
        readiness: Callable[[], Mapping[str, Any]],
        may_read: Callable[[Request], bool],
    ) -> None:
        super().__init__()
        self._readiness = readiness
        self._may_read = may_read

    def render_json(self, request: Request) -> bytes:
        state = self._readiness()
        ready = bool(state.get("ready"))
        body: dict[str, Any] = {
            "status": "ready" if ready else "not_ready",
            "speakers": dict(state.get("speakers") or {}),
        }
        reasons = list(state.get("reasons") or [])
        if self._may_read(request):
            body["reasons"] = reasons
        else:
            body["reasons"] = (
                [f"{len(reasons)} problem(s); a read token shows them"] if reasons else []
            )
        return json_response(request, body, 200 if ready else 503)


class DiagnosticsResource(_JsonGet):
    """``GET /api/v1/diagnostics`` (``read`` scope): everything needed to tell why events do
    not arrive (the shape is in docs/api.md)."""

    def __init__(self, diagnostics: Callable[[], Mapping[str, Any]]) -> None:
        super().__init__()
        self._diagnostics = diagnostics

    def render_json(self, request: Request) -> bytes:
        return json_response(request, self._diagnostics())


class MetricsResource(_JsonGet):
    """``GET /api/v1/metrics``: Prometheus text exposition."""

    def __init__(self, metrics: ApiMetrics) -> None:
        super().__init__()
        self._metrics = metrics

    def render_json(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE.encode("ascii"))
        return self._metrics.render()


class SnapshotResource(_JsonGet):
    """``GET /api/v1/snapshot``: the hub's snapshot, stamped with ``last_id``."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def render_json(self, request: Request) -> bytes:
        return json_response(request, self._hub.snapshot())


class GroupsResource(_JsonGet):
    """``GET /api/v1/groups``: the household's groups."""

    def __init__(self, state: views.StateView) -> None:
        super().__init__()
        self._state = state

    def render_json(self, request: Request) -> bytes:
        return json_response(request, {"groups": views.groups(self._state.snapshot())})


class SpeakersResource(Resource):
    """``GET /api/v1/speakers`` and the ``/{id}`` (uid or room name) children."""

    def __init__(self, state: views.StateView, commands: CommandFactory) -> None:
        super().__init__()
        self._state = state
        self._commands = commands

    def getChild(self, path: bytes, request: Request) -> IResource:
        """``/speakers/{id}``; an empty segment (trailing slash) is the list."""
        if not path:
            return self
        return SpeakerResource(self._state, path.decode("utf-8", "replace"), self._commands)

    def render(self, request: Request) -> bytes:
        """The list of speakers."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return json_error(request, 405, "method_not_allowed", "only GET is allowed here")
        return json_response(request, {"speakers": views.speakers(self._state.snapshot())})


class SpeakerResource(Resource):
    """``GET /api/v1/speakers/{id}`` (state) and ``POST .../{id}/{command}`` (the hook)."""

    def __init__(self, state: views.StateView, ident: str, commands: CommandFactory) -> None:
        super().__init__()
        self._state = state
        self._ident = ident
        self._commands = commands

    def getChild(self, path: bytes, request: Request) -> IResource:
        """``/{command}``: built by the command hook; a path below it is a JSON 404."""
        if not path:
            return self
        if any(request.postpath or ()):
            return not_found()
        return self._commands(self._ident, path.decode("utf-8", "replace"))

    def render(self, request: Request) -> bytes:
        """The speaker's state, or 404."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return json_error(request, 405, "method_not_allowed", "only GET is allowed here")
        speaker = views.lookup(self._state, self._ident)
        if speaker is None:
            return json_error(request, 404, "unknown_speaker", f"no speaker {self._ident!r}")
        return json_response(request, speaker)
