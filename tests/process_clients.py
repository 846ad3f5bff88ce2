"""Blocking clients of a daemon running in another process: SSE, WebSocket and the stream.

Each connects with a plain socket, reads in a background thread and keeps every message it
receives (the parsed JSON), so that a test can check that a client stayed connected and saw
every message id, in order, across something the daemon did (a reload). ``forward_callback``
is the other way round: a ``sinks.callbacks`` callable the daemon runs, which hands each
message to a receiver of the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import struct
import threading
import time
import urllib.request
from typing import Any

#: The URL ``forward_callback`` POSTs to, read in the daemon's process.
FORWARD_TO = "SONOSD_TEST_FORWARD_TO"


def forward_callback(body: dict[str, Any], event: Any) -> None:
    """A ``sinks.callbacks`` callable (``tests.process_clients:forward_callback``) that POSTs
    ``body`` as JSON to ``$SONOSD_TEST_FORWARD_TO`` and returns once it is answered."""
    del event
    request = urllib.request.Request(
        os.environ[FORWARD_TO], data=json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    request.add_header("X-Sonosd-Attempt", "1")
    urllib.request.urlopen(request, timeout=60).close()


class Collector:
    """Reads messages from ``sock`` in a thread; ``messages`` holds them in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.messages: list[dict[str, Any]] = []
        self.closed = False
        self._buffer = b""
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self._buffer += data
                for message in self.parse():
                    with self._lock:
                        self.messages.append(message)
        except OSError:
            pass
        finally:
            self.closed = True

    def parse(self) -> list[dict[str, Any]]:
        """The complete messages at the front of ``self._buffer`` (consumed)."""
        raise NotImplementedError

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the messages received so far."""
        with self._lock:
            return list(self.messages)

    def ids(self) -> list[int]:
        """The ``id`` of every message received after the first snapshot, the snapshot's
        ``last_id`` first."""
        ids: list[int] = []
        for message in self.snapshot():
            if message.get("type") == "snapshot" and not ids:
                ids.append(int(message["last_id"]))
            elif isinstance(message.get("id"), int):
                ids.append(message["id"])
        return ids

    def wait(self, check: Any, what: str, timeout: float = 30.0) -> None:
        """Wait until ``check(messages)`` is true."""
        deadline = time.monotonic() + timeout
        while not check(self.snapshot()):
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}: {self.snapshot()[-5:]}")
            if self.closed:
                raise AssertionError(f"the connection closed while waiting for {what}")
            time.sleep(0.05)

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class SseClient(Collector):
    """``GET /api/v1/events`` over a raw socket: every ``data:`` line as a message."""

    def __init__(self, port: int, query: str = "", prefix: str = "", headers: str = "") -> None:
        sock = connect("127.0.0.1", port)
        sock.sendall(
            f"GET {prefix}/api/v1/events{query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\n{headers}\r\n".encode()
        )
        #: The answer's status line and headers, once they arrived.
        self.head = b""
        self._headers_done = False
        super().__init__(sock)

    def parse(self) -> list[dict[str, Any]]:
        found = []
        if not self._headers_done:
            self.head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return []
            self._headers_done = True
            self._buffer = rest
        # Chunked transfer coding: the chunk size lines are not SSE lines; drop them.
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            text = line.decode("utf-8", "replace").rstrip("\r")
            if text.startswith("data: "):
                found.append(json.loads(text[len("data: ") :]))
        return found


class StreamClient(Collector):
    """The local stream on a unix socket: one JSON message per line."""

    def __init__(self, path: str) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        super().__init__(sock)

    def parse(self) -> list[dict[str, Any]]:
        found = []
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            if line.strip():
                found.append(json.loads(line))
        return found


class WebSocketClient(Collector):
    """``/api/v1/ws`` with a hand-made RFC 6455 handshake; text frames as messages (pings
    are answered, so the connection stays up however long the test takes). With ``tls``
    it is ``wss://``: the connection is TLS, checked with that context."""

    def __init__(
        self,
        port: int,
        prefix: str = "",
        headers: str = "",
        source: str = "",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = connect("127.0.0.1", port, source, tls)
        sock.sendall(
            f"GET {prefix}/api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{headers}\r\n".encode()
        )
        self._headers_done = False
        super().__init__(sock)

    def parse(self) -> list[dict[str, Any]]:
        found = []
        if not self._headers_done:
            head, sep, rest = self._buffer.partition(b"\r\n\r\n")
            if not sep:
                return []
            assert head.startswith(b"HTTP/1.1 101"), head
            self._headers_done = True
            self._buffer = rest
        while len(self._buffer) >= 2:
            opcode = self._buffer[0] & 0x0F
            length = self._buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self._buffer) < 4:
                    break
                (length,) = struct.unpack("!H", self._buffer[2:4])
                offset = 4
            elif length == 127:
                if len(self._buffer) < 10:
                    break
                (length,) = struct.unpack("!Q", self._buffer[2:10])
                offset = 10
            if len(self._buffer) < offset + length:
                break
            payload = self._buffer[offset : offset + length]
            self._buffer = self._buffer[offset + length :]
            if opcode == 1:
                found.append(json.loads(payload))
            elif opcode == 9:
                self._send(0xA, payload)
        return found

    def send(self, operation: dict[str, Any]) -> None:
        """Send ``operation`` as a text frame."""
        self._send(1, json.dumps(operation).encode())

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        if len(payload) < 126:
            header = bytes([0x80 | opcode, 0x80 | len(payload)])
        else:
            header = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
        self.sock.sendall(header + mask + masked)


def connect(
    host: str, port: int, source: str = "", tls: ssl.SSLContext | None = None
) -> socket.socket:
    """A blocking connection to ``host:port`` (10 s to connect, no timeout after), from the
    address ``source`` when given, over TLS checked with ``tls`` when given."""
    sock = socket.create_connection(
        (host, port), timeout=10, source_address=(source, 0) if source else None
    )
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=host)
    sock.settimeout(None)
    return sock
