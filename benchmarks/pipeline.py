"""Benchmarks 1-3 and 5: throughput, latency, fan-out and control isolation of the event path.

Every run starts its receiver, its WebSocket clients and its load generator as separate
processes (``benchmarks.receivers``, ``benchmarks.wsclients``, ``benchmarks.loadgen``), waits
for each to be ready, and stops them all; contenders are interleaved and repeated, and the
figures are medians of ratios measured in the same run.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from benchmarks.common import Child, children, cpu_seconds, household, rss_mb, to_json
from benchmarks.wsclients import BUCKETS_PER_SECOND

RECEIVERS = ("bare", "lean", "sonosd", "soco_twisted", "soco_threaded")


def loopback_block() -> str:
    """A random ``127.A.B.2``: the speakers' (source) addresses of one run."""
    rng = random.SystemRandom()
    return f"127.{rng.randint(1, 254)}.{rng.randint(0, 254)}.2"


@contextmanager
def household_file(speakers: int) -> Iterator[str]:
    """A fake household of ``speakers`` speakers in a temporary file, removed afterwards."""
    with tempfile.NamedTemporaryFile("w", prefix="sonosd-bench-", suffix=".json") as handle:
        handle.write(to_json(household(loopback_block(), speakers)))
        handle.flush()
        yield handle.name


@attrs.frozen
class Latency:
    """Latency percentiles in milliseconds, from the clients' merged histograms."""

    count: int
    p50: float
    p99: float
    max: float

    @classmethod
    def merge(cls, results: Sequence[dict[str, Any]]) -> Latency:
        """Merge the histograms of several ``wsclients`` results."""
        hist: Counter[int] = Counter()
        for result in results:
            hist.update({int(k): v for k, v in result["hist"].items()})
        total = sum(hist.values())
        top = max((result["max"] for result in results), default=0.0)

        def at(fraction: float) -> float:
            target = fraction * total
            seen = 0
            for bucket in sorted(hist):
                seen += hist[bucket]
                if seen >= target:
                    return (bucket + 0.5) * 1000 / BUCKETS_PER_SECOND
            return 0.0

        return cls(total, at(0.50), at(0.99), top * 1000)


@attrs.frozen
class Run:
    """One receiver under one load."""

    receiver: str
    sent: int
    ok: int
    rate: float
    delivered: int
    cpu: float
    rss: float
    latency: Latency | None
    generator: dict[str, Any]


def run_once(
    receiver: str,
    household_path: str,
    *,
    concurrency: int = 0,
    rate: float = 0.0,
    count: int = 10**9,
    duration: float = 5.0,
    clients: int = 0,
    client_procs: int = 1,
    impl: str = "c",
    kind: str | None = None,
    during: Any = None,
    receiver_args: Sequence[str] = (),
) -> Run:
    """Start ``receiver``, ``clients`` WebSocket clients (sonosd only) and the generator.

    @param during: Called with the receiver's ``ready`` line once clients are connected and
        before the load starts (control isolation starts its calls there); may return a
        callable that is called when the load has ended.
    """
    t0 = time.monotonic()
    with children() as started:
        receiver_proc = Child(
            "benchmarks.receivers", receiver, "--household", household_path, *receiver_args
        )
        started.append(receiver_proc)
        ready = receiver_proc.read()
        client_children = []
        if clients and ready.get("api"):
            per = [
                clients // client_procs + (i < clients % client_procs) for i in range(client_procs)
            ]
            for n in per:
                child = Child(
                    "benchmarks.wsclients",
                    "--url",
                    f"ws://127.0.0.1:{ready['api']}/api/v1/ws",
                    "--clients",
                    str(n),
                    "--t0",
                    repr(t0),
                    "--impl",
                    impl,
                    "--max-duration",
                    str(duration + 120),
                )
                started.append(child)
                client_children.append(child)
            for child in client_children:
                child.read()
        after = during(ready) if during is not None else None
        cpu0 = cpu_seconds(receiver_proc.pid)
        args = [
            "--target",
            f"127.0.0.1:{ready['port']}",
            "--household",
            household_path,
            "--t0",
            repr(t0),
            "--count",
            str(count),
            "--duration",
            str(duration),
        ]
        if concurrency:
            args += ["--concurrency", str(concurrency)]
        else:
            args += ["--rate", str(rate)]
        if kind:
            args += ["--kind", kind]
        generator = Child("benchmarks.loadgen", *args)
        started.append(generator)
        generator.read()
        gen = generator.read()
        cpu = cpu_seconds(receiver_proc.pid) - cpu0
        if after is not None:
            after()
        expected = gen["ok"]
        client_results = []
        if client_children:
            time.sleep(0.5)  # let the clients drain what is still in flight
            client_results = [child.finish() for child in client_children]
        rss = rss_mb(receiver_proc.pid)
        receiver_proc.finish()
    latency = Latency.merge(client_results) if client_results else None
    delivered = sum(result["events"] for result in client_results)
    rate_e2e = gen["rate"]
    if client_results and clients:
        last = max(result["last"] for result in client_results)
        per_client = delivered / clients
        rate_e2e = min(rate_e2e, per_client / max(last - gen["first"], 1e-9))
    return Run(
        receiver=receiver,
        sent=gen["started"],
        ok=expected,
        rate=rate_e2e,
        delivered=delivered,
        cpu=cpu,
        rss=rss,
        latency=latency,
        generator=gen,
    )


def throughput(
    rounds: int = 3,
    duration: float = 4.0,
    concurrency: int = 64,
    speakers: int = 20,
    receivers: Sequence[str] = RECEIVERS,
    count: int = 10**9,
) -> dict[str, Any]:
    """Benchmark 1: saturated NOTIFY/s per receiver, interleaved, ``rounds`` times."""
    with household_file(speakers) as path:
        runs: dict[str, list[Run]] = {name: [] for name in receivers}
        for _ in range(rounds):
            for name in receivers:
                runs[name].append(
                    run_once(
                        name,
                        path,
                        concurrency=concurrency,
                        duration=duration,
                        count=count,
                        clients=1 if name == "sonosd" else 0,
                        impl="autobahn",
                    )
                )
    rates = {name: [run.rate for run in result] for name, result in runs.items()}
    ratios: dict[str, float] = {}
    if "bare" in runs and "sonosd" in runs:
        ratios["sonosd/bare"] = statistics.median(
            s.rate / b.rate for s, b in zip(runs["sonosd"], runs["bare"], strict=True)
        )
    for other in ("soco_twisted", "soco_threaded"):
        if other in runs and "sonosd" in runs:
            ratios[f"sonosd/{other}"] = statistics.median(
                s.rate / o.rate for s, o in zip(runs["sonosd"], runs[other], strict=True)
            )
    return {
        "rates": {name: statistics.median(values) for name, values in rates.items()},
        "all_rates": rates,
        "ratios": ratios,
        "failures": {
            name: sum(run.sent - run.ok for run in result) for name, result in runs.items()
        },
        "delivered_ok": all(run.delivered >= run.ok for run in runs.get("sonosd", [])),
        "cpu_us_per_event": {
            name: statistics.median(1e6 * run.cpu / max(run.ok, 1) for run in result)
            for name, result in runs.items()
        },
    }


def latency(
    rates: Sequence[float] = (200.0, 1000.0),
    client_counts: Sequence[int] = (1, 100),
    duration: float = 4.0,
    speakers: int = 20,
    client_procs: int = 1,
) -> dict[str, Any]:
    """Benchmark 2: NOTIFY sent → message received, at fixed rates, with N clients."""
    with household_file(speakers) as path:
        result: dict[str, Any] = {}
        for clients in client_counts:
            for rate in rates:
                run = run_once(
                    "sonosd",
                    path,
                    rate=rate,
                    duration=duration,
                    clients=clients,
                    client_procs=client_procs,
                )
                assert run.latency is not None
                result[f"{rate:g}/s x {clients}"] = {
                    "rate": rate,
                    "clients": clients,
                    "p50": run.latency.p50,
                    "p99": run.latency.p99,
                    "max": run.latency.max,
                    "received": run.delivered,
                    "expected": run.ok * clients,
                    "cpu_share": run.cpu / duration,
                }
    return result


def fanout(
    clients: int = 1000,
    rate: float = 100.0,
    duration: float = 5.0,
    client_procs: int = 4,
    speakers: int = 20,
) -> dict[str, Any]:
    """Benchmark 3: ``clients`` WebSocket clients (in ``client_procs`` processes) at ``rate``."""
    with household_file(speakers) as path:
        run = run_once(
            "sonosd", path, rate=rate, duration=duration, clients=clients, client_procs=client_procs
        )
    assert run.latency is not None
    return {
        "clients": clients,
        "rate": rate,
        "p50": run.latency.p50,
        "p99": run.latency.p99,
        "max": run.latency.max,
        "received": run.delivered,
        "expected": run.ok * clients,
        "cpu_us_per_message": 1e6 * run.cpu / max(run.delivered, 1),
        "cpu_us_per_event": 1e6 * run.cpu / max(run.ok, 1),
        "cpu_share": run.cpu / duration,
        "rss_mb": run.rss,
    }


def isolation(
    rate: float = 1000.0,
    calls: int = 50,
    delay: float = 0.05,
    rounds: int = 3,
    duration: float = 3.0,
    speakers: int = 20,
) -> dict[str, Any]:
    """Benchmark 5: event latency p99 with ``calls`` control calls in flight vs none."""
    with household_file(speakers) as path:
        quiet: list[Latency] = []
        busy: list[Latency] = []
        for _ in range(rounds):
            for target, extra in (
                (quiet, ()),
                (busy, ("--control", str(calls), "--control-delay", str(delay))),
            ):
                run = run_once(
                    "sonosd", path, rate=rate, duration=duration, clients=1, receiver_args=extra
                )
                assert run.latency is not None
                target.append(run.latency)
    return {
        "rate": rate,
        "calls": calls,
        "delay": delay,
        "p99_quiet": statistics.median(lat.p99 for lat in quiet),
        "p99_busy": statistics.median(lat.p99 for lat in busy),
        "p50_quiet": statistics.median(lat.p50 for lat in quiet),
        "p50_busy": statistics.median(lat.p50 for lat in busy),
        "ratio": statistics.median(
            b.p99 / max(q.p99, 1e-9) for q, b in zip(quiet, busy, strict=True)
        ),
    }
