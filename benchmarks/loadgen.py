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
``--duration`` seconds, whichever is first, then prints one JSON result line.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from benchmarks.common import SEQ_PER_SECOND, FakeSubscription, emit, from_json
from benchmarks.payloads import KINDS, MIX, BodyMaker, notify_request

POOL = 4096
REQUEST_TIMEOUT = 10.0


class _Notify(Protocol):
    def __init__(self, factory: _Attempt) -> None:
        self.factory = factory
        self.status: int | None = None
        self.buffer = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.factory.request)

    def dataReceived(self, data: bytes) -> None:
        if self.status is None:
            self.buffer += data
            line, sep, _ = self.buffer.partition(b"\r\n")
            if sep:
                parts = line.split(b" ", 2)
                self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.factory.done(self.status)


class _Attempt(ClientFactory):
    def __init__(self, generator: Generator, request: bytes, sub: FakeSubscription) -> None:
        self.generator = generator
        self.request = request
        self.sub = sub
        self.finished = False
        self.timer: Any = None

    def buildProtocol(self, addr: Any) -> _Notify:
        return _Notify(self)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.done(None)

    def done(self, status: int | None) -> None:
        if self.finished:
            return
        self.finished = True
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.generator.answered(status, self.sub)


class Generator:
    """Sends NOTIFYs to ``target`` for ``subscriptions`` (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        target: tuple[str, int],
        subscriptions: list[FakeSubscription],
        t0: float,
        kinds: tuple[tuple[str, float], ...] = MIX,
        seed: int = 3,
        contiguous: bool = False,
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.t0 = t0
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
        self.on_answer: Callable[[], None] | None = None

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
        request = notify_request(self.target[0], self.target[1], sub.sid, seq, sub.service, body)
        attempt = _Attempt(self, request, sub)
        self.started += 1
        self.in_flight += 1
        connector = self.reactor.connectTCP(
            self.target[0],
            self.target[1],
            attempt,
            timeout=REQUEST_TIMEOUT,
            bindAddress=(sub.host, 0),
        )
        attempt.timer = self.reactor.callLater(REQUEST_TIMEOUT, self._expire, attempt, connector)
        return True

    def _expire(self, attempt: _Attempt, connector: Any) -> None:
        connector.disconnect()
        attempt.done(None)

    def answered(self, status: int | None, sub: FakeSubscription) -> None:
        """One request ended (``None``: no answer)."""
        self.in_flight -= 1
        if self.contiguous:
            self.idle[sub.service].append(sub)
        self.last = time.monotonic()
        self.statuses["failed" if status is None else str(status)] += 1
        if self.on_answer is not None:
            self.on_answer()

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

    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    host, _, port = args.target.rpartition(":")
    with open(args.household) as file:
        subscriptions = from_json(file.read())
    kinds = ((args.kind, 1.0),) if args.kind else MIX
    if args.kinds:
        kept = args.kinds.split(",")
        kinds = tuple((kind, weight) for kind, weight in MIX if kind in kept)
    gen = Generator(
        reactor, (host, int(port)), subscriptions, args.t0, kinds, contiguous=args.contiguous
    )
    deadline = time.monotonic() + args.duration
    max_in_flight = args.concurrency or 2000

    stopped: list[bool] = []

    def stop() -> None:
        if not stopped:
            stopped.append(True)
            emit(gen.result())
            reactor.stop()

    def refill() -> None:
        if gen.in_flight == 0 and (gen.started >= args.count or time.monotonic() >= deadline):
            stop()

    def closed_loop() -> None:
        while (
            gen.in_flight < args.concurrency
            and gen.started < args.count
            and time.monotonic() < deadline
        ):
            if not gen.send_one():
                break
        refill()

    def open_loop() -> None:
        now = time.monotonic()
        if now >= deadline or gen.started >= args.count:
            refill()
            return
        due = int((now - start) * args.rate) - gen.started - gen.skipped
        for _ in range(max(0, due)):
            if gen.in_flight >= max_in_flight or not gen.send_one():
                gen.skipped += 1

    start = time.monotonic()
    if args.concurrency:
        gen.on_answer = closed_loop
    tick = LoopingCall(closed_loop if args.concurrency else open_loop)
    tick.start(0.0005 if args.concurrency else 0.001)
    # Bounded: whatever happens, stop after the duration plus the request timeout.
    reactor.callLater(args.duration + REQUEST_TIMEOUT + 1, stop)
    emit({"started": True})
    reactor.run()


if __name__ == "__main__":
    main()
