"""One Server-Sent Events client of the daemon's API (a process of its own): counts every message.

    python -m benchmarks.sseclient --url http://127.0.0.1:PORT/api/v1/events [--token T]

Reads the stream with a plain socket (HTTP/1.1, chunked), splits it into SSE blocks and
counts them by ``event:`` type; checks that message ids follow one another (the hub numbers
every message from 1: a missing id is a message lost between the hub and this client). Each
``event`` message is also counted by its ``source``, and the SEQ of those from NOTIFYs must
follow one another per subscription (speaker and service): a NOTIFY the daemon answered but
did not publish, or published out of order, is a SEQ gap. ``events.gap`` messages are counted
by their ``reason``.

Prints ``{"ready": true, "last_id": N}`` once the snapshot arrived. Each line ``count`` on
stdin prints the counts so far; when stdin closes it prints them once more and exits.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlparse

import orjson

from benchmarks.common import emit


class Dechunker:
    """Turns an HTTP/1.1 chunked body, fed in pieces, back into its bytes."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        """The body bytes that ``data`` completes (possibly none yet)."""
        buffer = self._buffer + data
        out: list[bytes] = []
        position = 0
        while position < len(buffer) and not self.ended:
            if self._left:
                take = min(self._left, len(buffer) - position)
                out.append(buffer[position : position + take])
                position += take
                self._left -= take
                continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            line = buffer[position:end].split(b";", 1)[0].strip()
            if not line:  # the CRLF that ends a chunk's data
                position = end + 2
                continue
            size = int(line, 16)
            position = end + 2
            if size == 0:
                self.ended = True
            self._left = size
        self._buffer = buffer[position:]
        return b"".join(out)


class Tally:
    """What the stream carried so far."""

    def __init__(self) -> None:
        self.types: Counter[str] = Counter()
        self.first_id = 0
        self.last_id = 0
        self.id_gaps = 0
        self.missing = 0
        self.bytes = 0
        self.first = 0.0
        self.last = 0.0
        self.snapshot = False
        self.sources: Counter[str] = Counter()
        self.seq: dict[tuple[str, str], int] = {}
        self.seq_gaps = 0
        self.gap_reasons: Counter[str] = Counter()
        self._rest = b""

    def feed(self, data: bytes) -> None:
        """Count the complete blocks ``data`` ends."""
        self.bytes += len(data)
        blocks = (self._rest + data).split(b"\n\n")
        self._rest = blocks.pop()
        now = time.monotonic()
        for block in blocks:
            kind = ""
            ident = None
            data = b""
            for line in block.split(b"\n"):
                if line.startswith(b"event: "):
                    kind = line[7:].decode()
                elif line.startswith(b"id: "):
                    # ``<run>:<id>`` (the run is drawn at each start of the daemon).
                    ident = int(line[4:].rpartition(b":")[2])
                elif line.startswith(b"data: "):
                    data = line[6:]
            if not kind:
                continue  # retry:, comments (heartbeats)
            self.types[kind] += 1
            if kind == "event":
                self._event(orjson.loads(data))
            elif kind == "events.gap":
                self.gap_reasons[str(orjson.loads(data).get("reason"))] += 1
            if kind == "snapshot":
                self.snapshot = True
                self.last_id = ident or 0
                continue
            if ident is None:
                continue
            if not self.first_id:
                self.first_id = ident
                self.first = now
            elif ident != self.last_id + 1:
                self.id_gaps += 1
                self.missing += max(0, ident - self.last_id - 1)
            self.last_id = ident
            self.last = now

    def _event(self, message: dict[str, Any]) -> None:
        source = str(message.get("source"))
        self.sources[source] += 1
        if source != "notify":
            return
        key = (message["speaker"]["uid"], message["service"])
        seq = int(message["seq"])
        last = self.seq.get(key)
        if last is not None and seq != last + 1:
            self.seq_gaps += 1
        self.seq[key] = seq

    def result(self) -> dict[str, Any]:
        """The counts as one JSON object."""
        return {
            "types": dict(self.types),
            "events": self.types.get("event", 0),
            "sources": dict(self.sources),
            "notify_events": self.sources.get("notify", 0),
            "seq_gaps": self.seq_gaps,
            "subscriptions": len(self.seq),
            "gap_reasons": dict(self.gap_reasons),
            "first_id": self.first_id,
            "last_id": self.last_id,
            "id_gaps": self.id_gaps,
            "missing": self.missing,
            "bytes": self.bytes,
            "first": self.first,
            "last": self.last,
        }


def connect(url: str, token: str | None) -> tuple[socket.socket, bytes]:
    """Open the stream; return the socket and the body bytes read with the headers."""
    parts = urlparse(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 30)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = (
        f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\n"
        f"Host: {parts.netloc}\r\nAccept: text/event-stream\r\n{auth}\r\n"
    )
    sock.sendall(request.encode("latin-1"))
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("the stream closed before its headers")
        head += data
    head, _, body = head.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        raise RuntimeError(f"the stream answered {status.decode('latin-1')}")
    if b"transfer-encoding: chunked" not in head.lower():
        raise RuntimeError("expected a chunked stream")
    return sock, body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=None)
    args = parser.parse_args()
    sock, body = connect(args.url, args.token)
    sock.setblocking(False)
    chunks = Dechunker()
    tally = Tally()
    tally.feed(chunks.feed(body))
    announced = False
    stdin = sys.stdin.fileno()
    watching = [sock, stdin]
    while True:
        if not announced and tally.snapshot:
            announced = True
            emit({"ready": True, "last_id": tally.last_id})
        readable, _, _ = select.select(watching, [], [], 1.0)
        if sock in readable:
            try:
                data = sock.recv(1 << 20)
            except BlockingIOError:
                data = None
            if data == b"":
                watching.remove(sock)
            elif data:
                tally.feed(chunks.feed(data))
        if stdin in readable:
            line = sys.stdin.readline()
            if not line:
                break
            emit(tally.result())
    # Whatever is still in the socket's buffer is counted before the last answer.
    sock.setblocking(True)
    sock.settimeout(0.2)
    try:
        while data := sock.recv(1 << 20):
            tally.feed(chunks.feed(data))
    except OSError:
        pass
    emit(tally.result())


if __name__ == "__main__":
    main()
