# -*- test-case-name: tests.api.test_site -*-
"""JSON responses of the REST routes: one content type, one error shape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from twisted.web.error import UnsupportedMethod
from twisted.web.resource import IResource
from twisted.web.server import Request

from sonosd.delivery.channel import error_body
from sonosd.delivery.hub import encode

JSON = b"application/json"


def json_response(request: Request, body: Mapping[str, Any], status: int = 200) -> bytes:
    """Set the status and content type; return ``body`` as compact UTF-8 JSON."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON)
    request.setHeader(b"cache-control", b"no-store")
    return encode(body)


def json_error(request: Request, status: int, code: str, message: str, **extra: Any) -> bytes:
    """An error response: ``status`` and ``{"error": {"code", "message"}}``."""
    return json_response(request, error_body(code, message, **extra), status)


def not_modified(request: Request, etag: bytes) -> bool:
    """Whether the request's ``If-None-Match`` names ``etag`` (weak tags compare equal)."""
    header = request.getHeader(b"if-none-match")
    if not header:
        return False
    tags = [tag.strip().removeprefix(b"W/") for tag in header.split(b",")]
    return etag in tags or b"*" in tags


class JsonMethods:
    """Wraps the resource a request renders so that a method it does not support is answered
    with a JSON ``405`` and an ``Allow`` header, not twisted.web's HTML ``405``/``501`` page.

    A ``HEAD`` on a resource that answers ``GET`` is left to twisted.web, which renders the
    ``GET`` without its body.
    """

    def __init__(self, resource: IResource) -> None:
        self._resource = resource

    def render(self, request: Request) -> bytes | int:
        """Render the wrapped resource; an unsupported method is a JSON 405."""
        try:
            return cast("bytes | int", self._resource.render(request))
        except UnsupportedMethod as unsupported:
            methods: Iterable[bytes] = unsupported.allowedMethods or ()
            allowed = [bytes(name) for name in methods]
            if request.method == b"HEAD" and b"GET" in allowed:
                raise
            request.setHeader(b"allow", b", ".join(sorted(set(allowed))))
            method = request.method.decode("latin-1")[:20]
            return json_error(request, 405, "method_not_allowed", f"{method} is not allowed here")
