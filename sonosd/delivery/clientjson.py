# -*- test-case-name: tests.delivery.test_clientjson -*-
"""JSON sent by clients, decoded within a size and a nesting-depth bound.

Every channel that reads JSON from a client (REST command bodies, WebSocket frames, stream
lines, MQTT command payloads) decodes it here, so that one rule holds everywhere
(``docs/security.md``):

- at most ``max_bytes`` bytes (64 KiB by default: commands and operations are small);
- valid UTF-8;
- at most ``max_depth`` nested arrays and objects (32 by default). The depth is measured on
  the text, before decoding, so a deeply nested document never reaches a decoder (CPython's
  ``json`` raised ``RecursionError`` near depth 1,000, which escaped from library loops as a
  dropped MQTT connection or WebSocket, or as an HTML 500; issue 18);
- whatever decodes can be encoded again (the daemon echoes ids back): decoding is orjson's,
  which refuses lone surrogates, ``NaN`` and infinities, and reads integers beyond 64 bits as
  floats.

A violation is a :class:`JsonRefused` (a ``ValueError``) whose ``reason`` names the rule
(``too_large``, ``too_deep``, ``not_json``) and whose message says what is wrong; each channel
turns it into its error answer (a 400, an ``error`` message, an MQTT result) and counts it.
"""

from __future__ import annotations

import operator
import re
from itertools import accumulate, repeat
from typing import Any, Final

import orjson

MAX_BYTES: Final = 65_536
"""The largest JSON document a client may send (bytes)."""

MAX_DEPTH: Final = 32
"""The most arrays and objects a client's JSON may nest."""

# A JSON string, matched possessively (no backtracking) so that its brackets are not counted.
_STRING: Final = re.compile(r'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
# Opening brackets become "\x02", closing ones "\x00", everything else is dropped: the running
# sum of (byte - 1) is then the nesting depth at each bracket.
_BRACKETS: Final = str.maketrans(
    {"[": "\x02", "{": "\x02", "]": "\x00", "}": "\x00"}
    | {chr(code): None for code in range(128) if chr(code) not in "[]{}"}
)


class JsonRefused(ValueError):
    """A client's JSON breaks a bound or is not JSON.

    @ivar reason: ``too_large``, ``too_deep`` or ``not_json`` (for counters).
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in the JSON ``text`` (brackets in strings ignored).

    Linear in the length of ``text``, without recursion, whatever the text holds.
    """
    # Non-ASCII characters are outside strings only in invalid JSON: dropped with the rest.
    marks = _STRING.sub("", text).translate(_BRACKETS).encode("ascii", "ignore")
    return max(0, max(accumulate(map(operator.sub, marks, repeat(1))), default=0))


def check_size(data: bytes | str, max_bytes: int = MAX_BYTES) -> None:
    """Refuse ``data`` over ``max_bytes`` bytes (before anything reads it).

    @raise JsonRefused: ``too_large``.
    """
    size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise JsonRefused("too_large", f"JSON of {size} bytes, over the limit of {max_bytes}")


def decode(data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """Decode a client's JSON document within the bounds.

    @param data: The document (bytes must be UTF-8).
    @raise JsonRefused: Over ``max_bytes`` bytes, nested deeper than ``max_depth``, not UTF-8,
        or not JSON.
    """
    check_size(data, max_bytes)
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise JsonRefused("not_json", f"not UTF-8 (byte {error.start})") from None
    else:
        text = data
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JsonRefused(
            "too_deep", f"JSON nested {depth} levels deep, over the limit of {max_depth}"
        )
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise JsonRefused("not_json", f"not JSON: {error}") from None


def decode_object(
    data: bytes | str, *, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """:func:`decode`, then require a JSON object.

    @raise JsonRefused: As :func:`decode`; ``not_json`` when the document is not an object.
    """
    value = decode(data, max_bytes=max_bytes, max_depth=max_depth)
    if not isinstance(value, dict):
        raise JsonRefused("not_json", "expected a JSON object")
    return value
