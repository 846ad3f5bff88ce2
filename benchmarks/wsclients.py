"""WebSocket clients of the daemon's API (a process of its own): count messages, measure latency.

    python -m benchmarks.wsclients --url ws://127.0.0.1:PORT/api/v1/ws --clients N --t0 T
        [--impl c|raw|autobahn] [--max-duration S]

Each ``event`` message's latency is "now" minus the send time the load generator put in its
SEQ (``common.SEQ_PER_SECOND`` units since ``--t0``; ``time.monotonic()`` is one clock for
every process of the machine). ``autobahn`` clients are the real thing; ``raw`` clients speak
just enough RFC 6455 (handshake, unmasked server frames) to count hundreds of clients in one
process without the client side becoming the bottleneck: they run without a reactor, on one
``epoll``. ``c`` clients are the raw clients written in C (``benchmarks/wsclients.c``, built
with gcc on first use and cached): they stand in for dashboards on other machines, yet share
the two cores with the daemon, and take a fraction of the raw clients' CPU (the latency and
fan-out benchmarks use them; ``benchmarks/analysis.md``).

A raw client reads the clock once per read of its socket (every frame of one read arrived at
that moment) and finds the type and SEQ in the frame without parsing its JSON.

Prints ``{"ready": N}`` once every client has its snapshot, runs until stdin closes (or
``--max-duration``), then prints the counts and a latency histogram (20 µs buckets).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from twisted.internet.protocol import Protocol

from benchmarks.common import SEQ_PER_SECOND, emit

BUCKETS_PER_SECOND = 50_000  # 20 µs


class Tally:
    """What all clients of this process saw."""

    def __init__(self, t0: float, clients: int) -> None:
        self.t0 = t0
        self.clients = clients
        self.ready = 0
        self.events = 0
        self.per_client: list[int] = []
        self.hist: Counter[int] = Counter()
        self.max = 0.0
        self.first = 0.0
        self.last = 0.0
        self.closed = 0
        self.on_ready: Any = None

    def opened(self) -> int:
        """A client got its first message (the snapshot); returns its index."""
        self.ready += 1
        self.per_client.append(0)
        if self.ready == self.clients and self.on_ready is not None:
            self.on_ready()
        return len(self.per_client) - 1

    def message(self, index: int, payload: bytes, now: float) -> None:
        """One message arrived at client ``index`` at ``now``."""
        start = payload.find(b'"seq":')
        if start < 0 or b'"type":"event"' not in payload:
            return
        end = payload.find(b",", start)
        latency = now - self.t0 - int(payload[start + 6 : end]) / SEQ_PER_SECOND
        if latency < 0.0:
            latency = 0.0
        self.hist[int(latency * BUCKETS_PER_SECOND)] += 1
        if latency > self.max:
            self.max = latency
        if not self.events:
            self.first = now
        self.last = now
        self.events += 1
        self.per_client[index] += 1

    def result(self) -> dict[str, Any]:
        """The counts and the histogram (keys: bucket numbers, 20 µs each)."""
        return {
            "ready": self.ready,
            "events": self.events,
            "per_client_min": min(self.per_client, default=0),
            "per_client_max": max(self.per_client, default=0),
            "hist": {str(k): v for k, v in self.hist.items()},
            "max": self.max,
            "first": self.first,
            "last": self.last,
            "closed": self.closed,
            "cpu": time.process_time(),
        }


class RawClient(Protocol):
    """A minimal WebSocket client: handshake, then text frames (servers do not mask)."""

    def __init__(self, tally: Tally, host: str, path: str) -> None:
        self.tally = tally
        self.host = host
        self.path = path
        self.buffer = b""
        self.upgraded = False
        self.index = -1

    def connectionMade(self) -> None:
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert self.transport is not None
        self.transport.write(request.encode())

    def dataReceived(self, data: bytes) -> None:
        # Every frame of one read arrived at the same moment: one clock read per read.
        now = time.monotonic()
        buffer = self.buffer + data if self.buffer else data
        if not self.upgraded:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if not sep:
                self.buffer = buffer
                return
            if b" 101 " not in head.split(b"\r\n", 1)[0]:
                raise RuntimeError(f"handshake refused: {head[:80]!r}")
            self.upgraded = True
            buffer = rest
        size = len(buffer)
        offset = 0
        while size - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            header = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
                header = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
                header = 10
            end = offset + header + length
            if end > size:
                break
            payload = buffer[offset + header : end]
            offset = end
            if opcode == 1 and self.index >= 0:
                self.tally.message(self.index, payload, now)
            else:
                self._frame(opcode, payload)
        self.buffer = buffer[offset:] if offset < size else b""

    def _frame(self, opcode: int, payload: bytes) -> None:
        if opcode == 1:  # the first text message (the snapshot); the others go to message()
            self.index = self.tally.opened()
        elif opcode == 9:  # ping: answer a masked pong
            assert self.transport is not None
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
        elif opcode == 8:
            self.tally.closed += 1

    def connectionLost(self, reason: Any = None) -> None:
        if self.upgraded:
            self.tally.closed += 1


class _SocketTransport:
    """What a ``RawClient`` writes to: its socket (handshake and pongs are a few bytes)."""

    def __init__(self, sock: socket.socket) -> None:
        self.write = sock.sendall


def run_raw(url: str, tally: Tally, clients: int, max_duration: float) -> None:
    """Open ``clients`` raw WebSocket connections to ``url`` (one every 2 ms, so the daemon's
    accept queue does not overflow) and read them until stdin closes or ``max_duration``
    passes; then print the result line.

    No reactor: one level-triggered ``epoll``, one ``recv`` per readable socket, so a read
    costs a system call and the frame parsing, not an event loop's dispatch as well.
    """
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    epoll = select.epoll()
    stdin = sys.stdin.fileno()
    with contextlib.suppress(PermissionError):  # a regular file cannot be watched: no stop
        epoll.register(stdin, select.EPOLLIN)
    open_clients: dict[int, tuple[socket.socket, RawClient]] = {}
    start = time.monotonic()
    deadline = start + max_duration
    connected = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        while connected < clients and now >= start + connected * 0.002:
            connected += 1
            try:
                sock = socket.create_connection((host, port), timeout=10)
            except OSError:
                continue  # as a Twisted client whose connection failed: never ready
            client = RawClient(tally, f"{host}:{port}", path)
            client.makeConnection(_SocketTransport(sock))
            sock.setblocking(False)
            open_clients[sock.fileno()] = (sock, client)
            epoll.register(sock, select.EPOLLIN)
        wake = deadline if connected >= clients else start + connected * 0.002
        events = epoll.poll(max(0.0, wake - now))
        for fd, _ in events:
            if fd == stdin:
                if not os.read(stdin, 4096):  # stdin closed: the orchestrator says stop
                    emit(tally.result())
                    return
                continue
            sock, client = open_clients[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                client.dataReceived(data)
            else:
                del open_clients[fd]
                epoll.unregister(fd)
                sock.close()
                client.connectionLost()
    emit(tally.result())


C_SOURCE = Path(__file__).with_name("wsclients.c")


def c_clients() -> Path:
    """The C clients' executable, built from ``C_SOURCE`` with gcc unless built already (one
    executable per version of the source, in the temporary directory)."""
    source = C_SOURCE.read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:16]
    binary = Path(tempfile.gettempdir()) / f"sonosd-wsclients-{digest}"
    if binary.exists():
        return binary
    partial = binary.with_name(f"{binary.name}.{os.getpid()}")
    try:
        subprocess.run(
            ["gcc", "-O2", "-Wall", "-o", str(partial), str(C_SOURCE)],
            check=True,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        raise SystemExit("benchmarks.wsclients --impl c needs gcc (make installs it)") from None
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"building {C_SOURCE} failed:\n{error.stderr}") from None
    partial.replace(binary)
    return binary


def run_c(url: str, clients: int, t0: float, max_duration: float) -> None:
    """Replace this process with the C clients (same arguments, same output lines)."""
    parsed = urlparse(url)
    path = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    binary = str(c_clients())
    sys.stdout.flush()
    os.execv(
        binary,
        [
            binary,
            parsed.hostname or "127.0.0.1",
            str(parsed.port or 80),
            path,
            str(clients),
            repr(t0),
            repr(max_duration),
            str(SEQ_PER_SECOND),
        ],
    )


def connect_autobahn(reactor: Any, url: str, tally: Tally, clients: int) -> None:
    """Open ``clients`` autobahn WebSocket connections to ``url``."""
    from autobahn.twisted.websocket import (
        WebSocketClientFactory,
        WebSocketClientProtocol,
        connectWS,
    )

    class Client(WebSocketClientProtocol):
        index = -1

        def onMessage(self, payload: bytes, isBinary: bool) -> None:
            if self.index < 0:
                self.index = tally.opened()
            else:
                tally.message(self.index, payload, time.monotonic())

        def onClose(self, wasClean: bool, code: Any, reason: Any) -> None:
            tally.closed += 1

    factory = WebSocketClientFactory(url, reactor=reactor)
    factory.protocol = Client
    for index in range(clients):
        reactor.callLater(index * 0.002, connectWS, factory)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--t0", type=float, required=True)
    parser.add_argument("--impl", choices=("c", "raw", "autobahn"), default="raw")
    parser.add_argument("--max-duration", type=float, default=120.0)
    args = parser.parse_args()

    if args.impl == "c":
        run_c(args.url, args.clients, args.t0, args.max_duration)
    tally = Tally(args.t0, args.clients)
    tally.on_ready = lambda: emit({"ready": tally.ready})
    if args.impl == "raw":
        run_raw(args.url, tally, args.clients, args.max_duration)
        return

    from twisted.internet import reactor as global_reactor
    from twisted.internet import stdio

    reactor: Any = global_reactor

    stopped: list[bool] = []

    def finish() -> None:
        if not stopped:
            stopped.append(True)
            emit(tally.result())
            reactor.stop()

    class _Watch(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            finish()

    stdio.StandardIO(_Watch())
    connect_autobahn(reactor, args.url, tally, args.clients)
    reactor.callLater(args.max_duration, finish)
    reactor.run()


if __name__ == "__main__":
    main()
