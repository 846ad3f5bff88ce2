"""The NOTIFY load generator (a process of its own): speakers' NOTIFYs, one TCP connection each.

    python -m benchmarks.loadgen --target 127.0.0.1:PORT --household FILE --t0 T
        (--concurrency N | --rate R) [--count N] [--duration S] [--kind KIND | --kinds K,K]
        [--contiguous]

Each request is a real NOTIFY (headers as the modern speakers write them) with a varied body
(``benchmarks.payloads``: a pool of distinct bodies, larger than SoCo's and sonosd's caches),
sent from the address of the speaker that owns the SID, on a connection of its own; the
receiver answers and closes (so TIME_WAIT stays on its side, as with speakers). SEQ is the send
time (``common.SEQ_PER_SECOND`` units since ``--t0``) so clients can measure latency.

``--contiguous`` plays real speakers instead: SEQ counts 1, 2, 3 ... per subscription from the
household's ``seq`` (the last SEQ the speaker sent), and a subscription has at most one NOTIFY
in flight, so a daemon that checks SEQs sees every NOTIFY in order (the result line gives each
SID's last SEQ, for the next run).

``--concurrency N`` keeps N requests in flight (saturation); ``--rate R`` starts R requests per
second whatever the answers (open loop, for latency). Ends after ``--count`` requests or
``--duration`` seconds, whichever is first, then prints one JSON result line. A request
that has no answer (and closed connection) within ``REQUEST_TIMEOUT`` counts as ``failed``.

The generator stands in for speakers, which are devices of their own: whatever CPU it spends
competes with the receiver on the benchmark machine. So it does without Twisted: plain
non-blocking sockets on one ``epoll`` (edge-triggered; Linux, as the rest of the harness) and
one sweep for timeouts instead of a timer per request. Per NOTIFY: ``socket``, ``bind`` to
the speaker's address, ``connect``, ``send`` once connected, ``recv`` until the receiver
closes (the status line gives the status), ``close``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import itertools
import random
import select
import socket
import time
from collections import Counter, deque
from typing import Any

from benchmarks.common import SEQ_PER_SECOND, FakeSubscription, emit, from_json
from benchmarks.payloads import KINDS, MIX, BodyMaker, notify_request

POOL = 4096
REQUEST_TIMEOUT = 10.0
#: Requests the open loop (``--rate``) keeps in flight at most; over it a start is skipped.
MAX_IN_FLIGHT = 2000
#: How soon a closed loop that could not start a request (``--contiguous``: every
#: subscription of the next body's service busy) tries again if no answer comes first.
RETRY = 0.0005

#: Edge-triggered, woken when the receiver closes (its answer is read then, in one go) or
#: the connection fails (``EPOLLERR``/``EPOLLHUP`` always wake), not on each segment.
_CLOSED = select.EPOLLRDHUP | select.EPOLLET
#: The same, and when a request could not be sent whole at once (not connected yet, or a
#: full send buffer).
_CLOSED_OR_WRITABLE = _CLOSED | select.EPOLLOUT
_RECEIVER_DONE = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR


class _Request:
    """One NOTIFY on its own connection: what is left to send, the status once read."""

    __slots__ = ("closed", "expires", "head", "sock", "status", "sub", "unsent")

    def __init__(self, sock: socket.socket, sub: FakeSubscription, data: bytes, expires: float):
        self.sock = sock
        self.sub = sub
        self.unsent = data
        self.head = b""
        self.status: int | None = None
        self.expires = expires
        self.closed = False


class Generator:
    """Sends NOTIFYs to ``target`` for ``subscriptions`` (see the module docstring)."""

    def __init__(
        self,
        target: tuple[str, int],
        subscriptions: list[FakeSubscription],
        t0: float,
        kinds: tuple[tuple[str, float], ...] = MIX,
        seed: int = 3,
        contiguous: bool = False,
        timeout: float = REQUEST_TIMEOUT,
    ) -> None:
        self.target = target
        self.t0 = t0
        self.timeout = timeout
        maker = BodyMaker(kinds, seed)
        self.pool = [maker.make() for _ in range(POOL)]
        self.contiguous = contiguous
        self.idle: dict[str, deque[FakeSubscription]] = {}
        self.seq = {sub.sid: sub.seq for sub in subscriptions}
        rng = random.Random(seed)
        for service in {KINDS[kind][0] for kind, _ in kinds}:
            subs = [sub for sub in subscriptions if sub.service == service]
            rng.shuffle(subs)
            self.idle[service] = deque(subs)
        self.next_body = itertools.cycle(self.pool)
        self.started = 0
        self.in_flight = 0
        self.statuses: Counter[str] = Counter()
        self.first = 0.0
        self.last = 0.0
        self.skipped = 0
        self._epoll = select.epoll()
        #: In flight, by file descriptor.
        self._requests: dict[int, _Request] = {}
        #: Every request in start order (so in order of expiry), answered ones dropped lazily.
        self._pending: deque[_Request] = deque()

    def send_one(self) -> bool:
        """Start one NOTIFY now; ``False`` when every subscription of the next body's service
        has one in flight (``contiguous`` only)."""
        kind, body = next(self.next_body)
        idle = self.idle[KINDS[kind][0]]
        if not idle:
            return False
        sub = idle.popleft()
        if not self.contiguous:
            idle.append(sub)
        now = time.monotonic()
        if not self.started:
            self.first = now
        if self.contiguous:
            seq = self.seq[sub.sid] = self.seq[sub.sid] % 4_294_967_295 + 1
        else:
            seq = int((now - self.t0) * SEQ_PER_SECOND) % 2**32
        host, port = self.target
        request = notify_request(host, port, sub.sid, seq, sub.service, body)
        self.started += 1
        self.in_flight += 1
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError:
            self.answered(None, sub)
            return True
        try:
            sock.bind((sub.host, 0))
            code = sock.connect_ex(self.target)
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, "connect")
            # On loopback the handshake is usually done by now: send at once, and wait for
            # "writable" only when that was too soon (or the send buffer is full).
            with contextlib.suppress(BlockingIOError):
                request = request[sock.send(request) :]
            self._epoll.register(sock, _CLOSED_OR_WRITABLE if request else _CLOSED)
        except OSError:
            sock.close()
            self.answered(None, sub)
            return True
        entry = _Request(sock, sub, request, now + self.timeout)
        self._requests[sock.fileno()] = entry
        self._pending.append(entry)
        return True

    def answered(self, status: int | None, sub: FakeSubscription) -> None:
        """One request ended (``None``: no answer)."""
        self.in_flight -= 1
        if self.contiguous:
            self.idle[sub.service].append(sub)
        self.last = time.monotonic()
        self.statuses["failed" if status is None else str(status)] += 1

    def _end(self, entry: _Request, fd: int) -> None:
        entry.closed = True
        del self._requests[fd]
        entry.sock.close()  # also takes it out of the epoll set
        self.answered(entry.status, entry.sub)

    def _ready(self, fd: int, events: int) -> None:
        entry = self._requests[fd]
        sock = entry.sock
        if events & _RECEIVER_DONE:
            while True:  # edge-triggered: read until there is nothing left
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                except OSError:  # refused, reset
                    self._end(entry, fd)
                    return
                if not data:  # the receiver answered and closed
                    self._end(entry, fd)
                    return
                if entry.status is None:
                    entry.head += data
                    line, sep, _ = entry.head.partition(b"\r\n")
                    if sep:
                        parts = line.split(b" ", 2)
                        entry.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if events & select.EPOLLOUT and entry.unsent:
            try:
                sent = sock.send(entry.unsent)
            except BlockingIOError:
                return
            except OSError:
                self._end(entry, fd)
                return
            entry.unsent = entry.unsent[sent:]

    def _expire(self, now: float) -> None:
        """End every request older than the timeout (``failed``); forget answered ones."""
        pending = self._pending
        while pending and (pending[0].closed or pending[0].expires <= now):
            entry = pending.popleft()
            if not entry.closed:
                entry.status = None
                self._end(entry, entry.sock.fileno())

    def run(
        self,
        *,
        concurrency: int = 0,
        rate: float = 0.0,
        count: int = 10**9,
        duration: float = 5.0,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> dict[str, Any]:
        """Keep ``concurrency`` requests in flight, or start ``rate`` per second, until
        ``count`` started or ``duration`` passed and every request ended; the result."""
        start = time.monotonic()
        deadline = start + duration
        # Bounded: whatever happens, stop after the duration plus the request timeout.
        hard_stop = deadline + self.timeout + 1
        poll = self._epoll.poll
        ready = self._ready
        while True:
            now = time.monotonic()
            starting = now < deadline and self.started < count
            blocked = False
            if starting and concurrency:
                while self.in_flight < concurrency and self.started < count:
                    if not self.send_one():
                        blocked = True
                        break
            elif starting:
                due = int((now - start) * rate) - self.started - self.skipped
                for _ in range(max(0, due)):
                    if self.in_flight >= max_in_flight or not self.send_one():
                        self.skipped += 1
            elif self.in_flight == 0 or now >= hard_stop:
                break
            if self.started >= count:
                starting = False
                if not self.in_flight:  # the last ones failed at once (refused)
                    continue
            wake = hard_stop
            if self._pending:
                wake = min(wake, self._pending[0].expires)
            if starting:
                wake = min(wake, deadline)
                if not concurrency and rate > 0:
                    wake = min(wake, start + (self.started + self.skipped + 1) / rate)
                elif blocked:
                    wake = min(wake, now + RETRY)
            timeout = max(0.0, wake - now)
            if starting and not concurrency:
                # Open loop: starts do not wait for answers, so answers are collected at the
                # next start (one wake-up per start instead of one more per answer).
                time.sleep(timeout)
                timeout = 0.0
            for fd, events in poll(timeout):
                ready(fd, events)
            self._expire(time.monotonic())
        return self.result()

    def result(self) -> dict[str, Any]:
        """The counts and rate of everything sent so far."""
        elapsed = max(self.last - self.first, 1e-9)
        ok = self.statuses.get("200", 0)
        return {
            "started": self.started,
            "statuses": dict(self.statuses),
            "ok": ok,
            "skipped": self.skipped,
            "first": self.first,
            "last": self.last,
            "elapsed": elapsed,
            "rate": ok / elapsed,
            "last_seq": self.seq if self.contiguous else {},
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True)
    parser.add_argument("--household", required=True, help="file written by common.to_json")
    parser.add_argument("--t0", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--count", type=int, default=10**9)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--kind", default=None, help="one kind of body instead of the mix")
    parser.add_argument(
        "--kinds", default=None, help="kinds of the mix to keep (comma-separated), same weights"
    )
    parser.add_argument("--contiguous", action="store_true", help="SEQ 1, 2, 3 ... per SID")
    args = parser.parse_args()

    host, _, port = args.target.rpartition(":")
    with open(args.household) as file:
        subscriptions = from_json(file.read())
    kinds = ((args.kind, 1.0),) if args.kind else MIX
    if args.kinds:
        kept = args.kinds.split(",")
        kinds = tuple((kind, weight) for kind, weight in MIX if kind in kept)
    gen = Generator((host, int(port)), subscriptions, args.t0, kinds, contiguous=args.contiguous)
    emit({"started": True})
    emit(
        gen.run(
            concurrency=args.concurrency,
            rate=args.rate,
            count=args.count,
            duration=args.duration,
            max_in_flight=args.concurrency or MAX_IN_FLIGHT,
        )
    )


if __name__ == "__main__":
    main()
