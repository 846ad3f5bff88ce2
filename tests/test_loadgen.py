"""The NOTIFY load generator (``benchmarks.loadgen``) against small receivers on loopback.

The benchmarks trust its counts: these tests check that each NOTIFY arrives whole from its
speaker's address on a connection of its own, that ``--contiguous`` keeps SEQs in order per
subscription, and that a request without an answer is counted as failed.
"""

from __future__ import annotations

import dataclasses
import re
import socket
import socketserver
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from benchmarks import loadgen
from benchmarks.common import Child, FakeSubscription, household, to_json

_HEADER = re.compile(rb"^([A-Za-z-]+): (.*)$", re.MULTILINE)


@dataclasses.dataclass
class Received:
    """One NOTIFY as the receiver saw it."""

    source: str
    sid: str
    seq: int
    whole: bool


@contextmanager
def receiver(status: Callable[[str], int]) -> Iterator[tuple[int, list[Received]]]:
    """A threaded HTTP receiver on 127.0.0.1: records each NOTIFY, answers ``status(sid)``
    and closes (as the daemon's listener does); yields its port and what it received."""
    received: list[Received] = []
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            headers = {k.upper(): v.strip() for k, v in _HEADER.findall(head)}
            length = int(headers[b"CONTENT-LENGTH"])
            while len(body) < length:
                chunk = self.request.recv(65536)
                if not chunk:
                    break
                body += chunk
            sid = headers[b"SID"].decode()
            with lock:
                received.append(
                    Received(
                        self.client_address[0],
                        sid,
                        int(headers[b"SEQ"]),
                        head.startswith(b"NOTIFY / HTTP/1.1") and len(body) == length,
                    )
                )
            code = status(sid)
            self.request.sendall(f"HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n".encode())

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A listening socket that never accepts nor answers; yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def run_cli(port: int, household_path: Path, *args: str) -> dict[str, Any]:
    """Run ``python -m benchmarks.loadgen`` against ``127.0.0.1:port`` to the end; its
    result line."""
    child = Child(
        "benchmarks.loadgen",
        *("--target", f"127.0.0.1:{port}", "--household", str(household_path)),
        *args,
    )
    try:
        assert child.read() == {"started": True}
        result: dict[str, Any] = child.read()
    finally:
        child.kill()
    return result


def test_contiguous_seqs_arrive_in_order_from_each_speakers_address(
    loopback_base: str, tmp_path: Path
) -> None:
    """``--contiguous --concurrency``: every NOTIFY arrives whole from its speaker's address,
    each SID's SEQs count on from the household's in arrival order, and the result line counts
    each answer by status and gives each SID's last SEQ."""
    subs = [attrs.evolve(sub, seq=7) for sub in household(loopback_base, 3)]
    by_sid = {sub.sid: sub for sub in subs}
    refused = next(sub.sid for sub in subs if sub.service == "RenderingControl")
    path = tmp_path / "household.json"
    path.write_text(to_json(subs))
    count = 60
    with receiver(lambda sid: 412 if sid == refused else 200) as (port, received):
        result = run_cli(
            port,
            path,
            *("--t0", repr(time.monotonic()), "--concurrency", "4", "--count", str(count)),
            *("--duration", "60", "--kinds", "rc_volume,avt_full", "--contiguous"),
        )
    assert len(received) == count
    assert all(notify.whole for notify in received)
    assert all(notify.source == by_sid[notify.sid].host for notify in received)
    seqs: dict[str, list[int]] = defaultdict(list)
    for notify in received:
        seqs[notify.sid].append(notify.seq)
    assert len(seqs) > 1
    for sid, sent in seqs.items():
        assert sent == list(range(8, 8 + len(sent))), sid
        assert result["last_seq"][sid] == 7 + len(sent)
    refusals = len(seqs[refused])
    assert refusals > 0
    assert result["statuses"] == {"200": count - refusals, "412": refusals}
    assert result["started"] == count and result["ok"] == count - refusals
    assert result["skipped"] == 0


def test_a_request_without_an_answer_counts_as_failed(loopback_base: str) -> None:
    """A receiver that accepts the connection but never answers: each request is ended at
    the request timeout and counted as failed, and the run ends."""
    subs = household(loopback_base, 1)
    with silent_listener() as port:
        gen = loadgen.Generator(("127.0.0.1", port), subs, time.monotonic(), timeout=0.5)
        result = gen.run(concurrency=3, count=3, duration=30.0)
    assert result["statuses"] == {"failed": 3}
    assert result["started"] == 3 and result["ok"] == 0
    assert gen.in_flight == 0


def test_a_refused_connection_counts_as_failed(loopback_base: str) -> None:
    """A port nobody listens on: every request is counted as failed, none hangs."""
    with silent_listener() as port:
        pass  # closed again: nobody listens on it now
    gen = loadgen.Generator(("127.0.0.1", port), household(loopback_base, 1), time.monotonic())
    result = gen.run(concurrency=2, count=5, duration=30.0)
    assert result["statuses"] == {"failed": 5}
    assert gen.in_flight == 0


def test_open_loop_skips_starts_over_the_limit_in_flight(loopback_base: str) -> None:
    """``--rate``: starts do not wait for answers; with ``max_in_flight`` requests unanswered
    every further start is skipped and counted, and the unanswered ones fail at the timeout."""
    subs: list[FakeSubscription] = household(loopback_base, 2)
    with silent_listener() as port:
        gen = loadgen.Generator(("127.0.0.1", port), subs, time.monotonic(), timeout=2.0)
        result = gen.run(rate=200.0, duration=1.0, max_in_flight=4)
    assert result["started"] == 4
    assert result["skipped"] > 0
    assert result["statuses"] == {"failed": 4}


def test_open_loop_sends_from_every_speaker(loopback_base: str, tmp_path: Path) -> None:
    """``--rate`` through the command line: every answered NOTIFY was received whole, from
    the address of the speaker owning its SID, with SEQ the send time (after ``--t0``)."""
    subs = household(loopback_base, 2)
    by_sid = {sub.sid: sub for sub in subs}
    path = tmp_path / "household.json"
    path.write_text(to_json(subs))
    with receiver(lambda sid: 200) as (port, received):
        result = run_cli(
            port, path, "--t0", repr(time.monotonic() - 1.0), "--rate", "200", "--duration", "0.5"
        )
    assert result["started"] == len(received) == result["ok"] > 0
    assert result["statuses"] == {"200": result["ok"]}
    assert all(notify.whole for notify in received)
    assert {notify.source for notify in received} == {sub.host for sub in subs}
    assert all(notify.source == by_sid[notify.sid].host for notify in received)
    # SEQ is the send time in 10-µs units since --t0, which was a second before the start.
    assert all(notify.seq >= 100_000 for notify in received)
    assert result["last_seq"] == {}
