# -*- test-case-name: tests.api.test_auth -*-
"""API authentication: bearer tokens with scopes, compared in constant time.

A request presents a token as ``Authorization: Bearer <token>`` or, for clients that cannot
set headers (browser ``EventSource`` and ``WebSocket``), as the ``access_token`` query
parameter. Scopes: ``read`` (snapshot, state, events, metrics) and ``control`` (commands).

Whether tokens are required: ``api.require_auth`` when set; otherwise required unless the API
listens on loopback (or a unix socket) *and* no token is configured. Health is always open
and tells nothing secret. Everything here is pure: no I/O, no reactor.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping, Sequence

import attrs

from sonosd.config import Token

READ = "read"
CONTROL = "control"
ALL_SCOPES: frozenset[str] = frozenset({READ, CONTROL})

#: Host names a browser may use for a loopback API (DNS rebinding guard, see ``host_allowed``).
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@attrs.frozen
class Grant:
    """What a request may do: the token's name (``None`` when open) and its scopes."""

    name: str | None
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        """Whether this grant includes ``scope``."""
        return scope in self.scopes


OPEN = Grant(name=None, scopes=ALL_SCOPES)


@attrs.frozen
class Denied:
    """Why a request was refused: HTTP status, a machine code and a message for the client."""

    status: int
    code: str
    message: str
    challenge: str

    def body(self) -> dict[str, dict[str, str]]:
        """The JSON error object sent to the client (no detail about the tokens)."""
        return {"error": {"code": self.code, "message": self.message}}


UNAUTHORIZED = Denied(
    401,
    "unauthorized",
    "a valid bearer token is required",
    'Bearer realm="sonosd"',
)
INVALID = Denied(
    401,
    "unauthorized",
    "a valid bearer token is required",
    'Bearer realm="sonosd", error="invalid_token"',
)


def forbidden(scope: str) -> Denied:
    """The 403 for a valid token that lacks ``scope``."""
    return Denied(
        403,
        "forbidden",
        f"this token lacks the {scope} scope",
        f'Bearer realm="sonosd", error="insufficient_scope", scope="{scope}"',
    )


def is_local_address(host: str | None) -> bool:
    """Whether a bound address is only reachable from this machine.

    ``None`` stands for a unix socket (local by construction, guarded by file permissions).
    An empty host or a wildcard (``0.0.0.0``, ``::``) is not local.
    """
    if host is None:
        return True
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host.lower() in _LOCAL_NAMES
    return address.is_loopback


def auth_required(require_auth: bool | None, tokens: Sequence[Token], local: bool) -> bool:
    """The effective ``require_auth``: explicit when configured, else ``not local or tokens``."""
    if require_auth is not None:
        return require_auth
    return not local or bool(tokens)


def bearer_token(authorization: bytes | str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, else ``None``."""
    if authorization is None:
        return None
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class Authenticator:
    """Decides what a request may do from its token.

    @param tokens: The configured tokens.
    @param required: Whether a token is needed at all (see ``auth_required``); settable, as
        the service learns the bound address only when it listens.
    """

    def __init__(self, tokens: Iterable[Token], required: bool = True) -> None:
        self.set_tokens(tokens)
        self.required = required

    def set_tokens(self, tokens: Iterable[Token]) -> None:
        """Check requests against ``tokens`` from now on (a reload)."""
        # Digests, so that every comparison is of 32 bytes: compare_digest only hides the
        # content of equal-length values, not their length.
        self._tokens = tuple((_digest(token.secret), token) for token in tokens if token.secret)

    def check(
        self, authorization: bytes | str | None, query_token: bytes | str | None
    ) -> Grant | Denied:
        """The grant for a request's credentials, or why it is refused.

        The header wins over the query parameter. Every configured token is compared (in
        constant time) whatever the outcome, so timing does not tell which one matched or how
        many characters were right.
        """
        if not self.required:
            return OPEN
        presented = bearer_token(authorization)
        if presented is None and query_token:
            presented = (
                query_token.decode("utf-8", "replace")
                if isinstance(query_token, bytes)
                else query_token
            )
        if presented is None:
            return UNAUTHORIZED
        candidate = _digest(presented)
        found: Token | None = None
        for secret, token in self._tokens:
            if hmac.compare_digest(secret, candidate) and found is None:
                found = token
        if found is None:
            return INVALID
        return Grant(name=found.name, scopes=frozenset(found.scopes))


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()


def host_allowed(host_header: bytes | str | None, extra: Iterable[str] = ()) -> bool:
    """Whether a ``Host`` header is acceptable for an API open without tokens.

    An open loopback API must not answer pages that reached it through DNS rebinding
    (``evil.example`` resolving to 127.0.0.1): only IP literals, ``localhost`` and the
    configured CORS origins' host names are accepted.
    """
    if host_header is None:
        return True
    if isinstance(host_header, bytes):
        host_header = host_header.decode("latin-1")
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in _LOCAL_NAMES or host in {name.lower() for name in extra}:
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin_allowed(
    origin: bytes | str | None, host_header: bytes | str | None, allowed: Sequence[str]
) -> bool:
    """Whether a browser ``Origin`` may use the API (WebSocket, commands).

    Requests without ``Origin`` (curl, scripts, Home Assistant) are allowed; a browser page is
    allowed when it is served by the API itself (the origin's host and port are the ``Host``
    header; not its scheme, so that a proxy ending TLS in front of the API works) or listed
    in ``api.cors_origins`` (``*`` allows every origin). This stops cross-site WebSocket
    hijacking and cross-site command POSTs.
    """
    if origin is None:
        return True
    if isinstance(origin, bytes):
        origin = origin.decode("latin-1")
    if isinstance(host_header, bytes):
        host_header = host_header.decode("latin-1")
    origin = origin.strip()
    if "*" in allowed or origin in allowed:
        return True
    _, _, authority = origin.partition("://")
    return bool(host_header) and authority.lower() == (host_header or "").strip().lower()


def query_first(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> bytes | None:
    """The first value of query parameter ``name`` in ``request.args``, else ``None``."""
    values = args.get(name)
    return values[0] if values else None
