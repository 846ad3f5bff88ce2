# -*- test-case-name: tests.api.test_site -*-
"""JSON responses of the REST routes: one content type, one error shape."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
