# -*- test-case-name: tests.sim.test_didl -*-
"""Album art and icons: small solid-colour PNG images, made on the fly.

A real speaker serves album art at ``/getaa?s=1&u=<track URI>``; the simulator answers every
such URL with a 16x16 PNG whose colour is derived from the URI, so different albums look
different and the same album always looks the same.
"""

from __future__ import annotations

import functools
import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


@functools.lru_cache(maxsize=256)
def solid_png(red: int, green: int, blue: int, size: int = 16) -> bytes:
    """A ``size`` x ``size`` PNG image of one colour."""
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    row = b"\x00" + bytes((red, green, blue)) * size
    pixels = zlib.compress(row * size, 9)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", pixels)
        + _chunk(b"IEND", b"")
    )


def art_for(key: str) -> bytes:
    """The album art image for ``key`` (a track URI): a colour picked from its hash."""
    digest = zlib.crc32(key.encode("utf-8"))
    return solid_png((digest >> 16) & 0xFF, (digest >> 8) & 0xFF, digest & 0xFF)
