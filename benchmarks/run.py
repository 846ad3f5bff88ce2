"""Run the benchmark suite and write the report (``make bench``).

    python -m benchmarks.run [--out docs/benchmarks.md] [--smoke] [--only NAME ...]

``--smoke`` runs every benchmark with tiny sizes (the test suite does this so the harness
cannot rot); its figures mean nothing. Every figure of the report is a ratio or a percentile
measured within the same run; the machine is shared, absolute numbers vary between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import cost, pipeline

FULL: dict[str, dict[str, Any]] = {
    "throughput": {"rounds": 3, "duration": 4.0, "concurrency": 64},
    "latency": {"rates": (200.0, 1000.0), "client_counts": (1, 100), "duration": 4.0},
    "fanout": {"clients": 1000, "rate": 100.0, "duration": 5.0, "client_procs": 4},
    "isolation": {"rate": 1000.0, "calls": 50, "rounds": 3, "duration": 3.0},
    "cost": {"pool": 600, "rounds": 3, "profile_events": 3000},
}
SMOKE: dict[str, dict[str, Any]] = {
    "throughput": {"rounds": 1, "duration": 0.3, "concurrency": 4, "count": 40, "speakers": 2},
    "latency": {"rates": (50.0,), "client_counts": (2,), "duration": 0.3, "speakers": 2},
    "fanout": {"clients": 3, "rate": 50.0, "duration": 0.3, "client_procs": 2, "speakers": 2},
    "isolation": {
        "rate": 50.0,
        "calls": 3,
        "delay": 0.01,
        "rounds": 1,
        "duration": 0.3,
        "speakers": 2,
    },
    "cost": {"pool": 5, "rounds": 1, "profile_events": 20},
}
BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": pipeline.throughput,
    "latency": pipeline.latency,
    "fanout": pipeline.fanout,
    "isolation": pipeline.isolation,
    "cost": cost.cost,
}


def run(names: list[str], smoke: bool) -> dict[str, Any]:
    """Run the named benchmarks; return their results (and how long each took)."""
    sizes = SMOKE if smoke else FULL
    results: dict[str, Any] = {}
    for name in names:
        start = time.monotonic()
        results[name] = BENCHMARKS[name](**sizes[name])
        results[name]["seconds"] = time.monotonic() - start
    return results


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import soco

    import twisted

    model = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                model,
            )
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "soco": soco.__version__,
        "load average at start": load,
        "commit": commit or "?",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _verdict(ok: bool) -> str:
    return "met" if ok else "**NOT MET**"


def table(results: dict[str, Any]) -> list[str]:
    """The summary table: each target, the measured value, met or not."""
    rows = ["| # | benchmark | target | measured | verdict |", "|---|---|---|---|---|"]
    t = results.get("throughput")
    if t:
        ratios = t["ratios"]
        bare = ratios.get("sonosd/bare", 0.0)
        soco = ratios.get("sonosd/soco_twisted", 0.0)
        rows.append(
            f"| 1 | throughput, mixed payload, sonosd end to end vs bare twisted.web | ≥ 0.6x "
            f"| {bare:.2f}x ({t['rates']['sonosd']:,.0f} vs {t['rates']['bare']:,.0f} /s) "
            f"| {_verdict(bare >= 0.6)} |"
        )
        rows.append(
            f"| 1 | throughput, sonosd vs soco.events_twisted | ≥ 2x | {soco:.2f}x "
            f"({t['rates']['soco_twisted']:,.0f} /s) | {_verdict(soco >= 2.0)} |"
        )
        threaded = ratios.get("sonosd/soco_threaded")
        if threaded is not None:
            rows.append(
                f"| 1 | throughput, sonosd vs soco.events (threaded) | (reported) | "
                f"{threaded:.2f}x ({t['rates']['soco_threaded']:,.0f} /s) | - |"
            )
    lat = results.get("latency")
    if lat:
        for key, value in lat.items():
            if not isinstance(value, dict):
                continue
            target = value["rate"] >= 1000 and value["clients"] >= 100
            rows.append(
                f"| 2 | latency {key} clients: p50 / p99 / max | "
                f"{'p99 ≤ 5 ms' if target else '(reported)'} | {value['p50']:.2f} / "
                f"{value['p99']:.2f} / {value['max']:.1f} ms "
                f"({value['received']:,} of {value['expected']:,} received) | "
                f"{_verdict(value['p99'] <= 5.0) if target else '-'} |"
            )
    f = results.get("fanout")
    if f:
        rows.append(
            f"| 3 | fan-out {f['clients']} clients at {f['rate']:g} events/s: p50 / p99 / max "
            f"| p99 ≤ 50 ms | {f['p50']:.1f} / {f['p99']:.1f} / {f['max']:.1f} ms "
            f"({f['received']:,} of {f['expected']:,}); {f['cpu_us_per_message']:.1f} µs CPU "
            f"per message | {_verdict(f['p99'] <= 50.0)} |"
        )
    rows.append(
        "| 4 | scale: 200 speakers x 8 services subscribed, RSS, renewal spread | all in 10 s, "
        "RSS ≤ 150 MB flat | not measured yet (see below) | **NOT RUN** |"
    )
    i = results.get("isolation")
    if i:
        rows.append(
            f"| 5 | event p99 with {i['calls']} control calls in flight vs none "
            f"({i['rate']:g} events/s) | ≤ 1.2x | {i['ratio']:.2f}x ({i['p99_busy']:.2f} vs "
            f"{i['p99_quiet']:.2f} ms) | {_verdict(i['ratio'] <= 1.2)} |"
        )
    c = results.get("cost")
    if c:
        mixed = sum(c["per_kind"][kind]["daemon"] * weight for kind, weight in c["mix"].items())
        rows.append(
            f"| 6 | CPU per event after HTTP, mixed payload | (reported) | {mixed:.0f} µs | - |"
        )
    return rows


def report(results: dict[str, Any], info: dict[str, str], smoke: bool) -> str:
    """The Markdown report."""
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m benchmarks.run --out docs/benchmarks.md`)."
        + (" **Smoke run: tiny sizes, the figures mean nothing.**" if smoke else ""),
        "Each part runs in its own process (receiver, load generator, WebSocket clients); "
        "contenders are interleaved and repeated, and figures are medians of ratios or "
        "percentiles measured in the same run, on a shared machine.",
        "",
        "## Results",
        "",
        *table(results),
        "",
        "## Machine",
        "",
        *[f"- {key}: {value}" for key, value in info.items()],
        "",
    ]
    t = results.get("throughput")
    if t:
        lines += [
            "## 1. Throughput (NOTIFY/s, saturated, each run)",
            "",
            "| receiver | median /s | runs | CPU µs per event | failed |",
            "|---|---|---|---|---|",
        ]
        for name, rate in t["rates"].items():
            runs = ", ".join(f"{r:,.0f}" for r in t["all_rates"][name])
            lines.append(
                f"| {name} | {rate:,.0f} | {runs} | {t['cpu_us_per_event'][name]:.0f} "
                f"| {t['failures'][name]} |"
            )
        lines += [
            "",
            "sonosd is measured end to end: the rate is the smaller of the NOTIFYs answered "
            "per second and the `event` messages its one autobahn WebSocket client received "
            "per second. Every message was delivered: "
            f"{'yes' if t['delivered_ok'] else 'NO'}. The load generator is one process on the "
            "other core; the bare ceiling is partly its limit.",
            "",
        ]
    c = results.get("cost")
    if c:
        lines += [
            "## 6. CPU per event by kind of body (µs, best of rounds, distinct bodies)",
            "",
            "`daemon`: sonosd's work after HTTP (parse, JSON variables, merged state, hub "
            "serialisation, one WebSocket frame prepared); `sonosd parse` and `soco parse`: "
            "the parsers alone (SoCo's without its lru_cache).",
            "",
            "| kind | bytes | daemon | sonosd parse | soco parse |",
            "|---|---|---|---|---|",
        ]
        for kind, value in c["per_kind"].items():
            lines.append(
                f"| {kind} | {value['bytes']:,.0f} | {value['daemon']:.1f} | "
                f"{value['sonosd_parse']:.1f} | {value['soco_parse']:.1f} |"
            )
        lines += [
            "",
            "Profile of the mixed payload (top functions by own time):",
            "",
            "```",
            c["profile"],
            "```",
            "",
        ]
    lines += [
        "## Raw results",
        "",
        "```json",
        json.dumps({k: v for k, v in results.items() if k != "cost"}, indent=1, default=str),
        "```",
        "",
        "## Reproduce",
        "",
        "```",
        "make bench                                     # the whole suite, ~5 minutes",
        ".venv/bin/python -m benchmarks.run --only throughput --out /tmp/b.md",
        ".venv/bin/python -m benchmarks.run --smoke --out /tmp/smoke.md   # seconds",
        "```",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/benchmarks.md")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args(argv)
    names = args.only or list(BENCHMARKS)
    info = machine()
    results = run(names, args.smoke)
    text = report(results, info, args.smoke)
    with open(args.out, "w") as file:
        file.write(text)
    print("\n".join(table(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
