"""Run the benchmark suite and write the report (``make bench``).

    python -m benchmarks.run [--out docs/benchmarks.md] [--smoke] [--only NAME ...]

``--smoke`` runs every benchmark with tiny sizes (the test suite does this so the harness
cannot rot); its figures mean nothing. Every figure of the report is a ratio or a percentile
measured within the same run; the machine is shared, absolute numbers vary between runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import availability, cost, daemon, footprint, pipeline, scale
from sonosd.backoff import FIRST_RENEW_SPREAD, RENEW_JITTER

FULL: dict[str, dict[str, Any]] = {
    "throughput": {"rounds": 3, "duration": 4.0, "concurrency": 64},
    "latency": {"rates": (200.0, 1000.0), "client_counts": (1, 100), "duration": 4.0},
    "fanout": {"clients": 1000, "rate": 100.0, "duration": 5.0, "client_procs": 4},
    "isolation": {"rate": 1000.0, "calls": 50, "rounds": 5, "duration": 4.0},
    "cost": {"pool": 600, "rounds": 3, "profile_events": 3000},
    "scale": {"speakers": 200, "cycles": 5.5, "timeout": 60, "renew_fraction": 0.5},
    "scale_rss": {"speakers": 200, "settle": 15.0},
    "daemon": {"speakers": 100, "rounds": 3, "count": 34_000, "settle": 60.0},
    "availability": {},
    "footprint": {"settle": 20.0},
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
    "scale": {"speakers": 5, "duration": 1.0, "subscribe_deadline": 30.0},
    "scale_rss": {
        "speakers": 3,
        "settle": 0.5,
        "variants": {},
        "subscribe_deadline": 30.0,
    },
    "daemon": {
        "speakers": 3,
        "rounds": 1,
        "count": 300,
        "duration": 30.0,
        "contender_duration": 0.5,
        "concurrency": 8,
        "settle": 1.0,
        "subscribed_settle": 1.0,
        "subscribe_deadline": 30.0,
    },
    "availability": {
        "subscription": {
            "silence_timeout": 0.5,
            "ping_timeout": 0.5,
            "availability_interval": 0.25,
            "request_timeout": 2.0,
        },
        "reboot_downtime": 0.5,
        "outage": 0.25,
        "deadline": 30.0,
    },
    "footprint": {"settle": 0.5, "variants": ("idle",)},
}
#: What each benchmark does and what its contenders are (the report's "What is measured").
METHOD: tuple[str, ...] = (
    "## What is measured",
    "",
    "- **NOTIFYs** come from `benchmarks.loadgen`, a process of its own: real NOTIFY requests "
    "(headers as modern speakers write them), each on a TCP connection of its own, sent from "
    "the loopback address of the speaker that owns the SID (the listener checks sources), "
    "bodies drawn from a pool of 4,096 distinct bodies built from captured ones (mixed "
    "payload: 50 % volume changes, 25 % full AVTransport with DIDL, 8 % ContentDirectory, "
    "7 % Queue, 5 % DeviceProperties, 5 % ZoneGroupTopology), so no parser cache helps. "
    "SEQ carries the send time, so a client computes latency from the message alone. The "
    "generator stands in for speakers, devices of their own, yet shares the machine with the "
    "receiver, so it is kept cheap: no Twisted, non-blocking sockets on one `epoll`, woken when "
    "a receiver closes and, in the open loop, once per start (its CPU per NOTIFY: "
    "`benchmarks/analysis.md`).",
    "- **1. Throughput**: 64 NOTIFYs kept in flight for 4 s, the five receivers interleaved "
    "in each of 3 rounds; ratios are medians of per-round ratios. The receivers, each a "
    "process of its own:",
    "  - `bare`: a bare twisted.web resource that reads the body and answers 200 (HTTP "
    "only: no parse, no access log); the ceiling.",
    "  - `lean`: sonosd's own NOTIFY protocol and port (`sonosd.gena.notifyproto`, "
    "`notifyport`) answering 200 to every request: what HTTP alone costs sonosd, so that "
    "`sonosd` minus `lean` is its event work (reported, no target).",
    "  - `sonosd`: the daemon's event path assembled from its modules: `NotifyListener` (SID "
    "registry, source check, `sonosd.gena.eventxml` parse) → a subscription per SID → "
    "`EventProcessor` (JSON variables, merged state, topology) → `Hub` → the API site, with "
    "one autobahn WebSocket client that must receive every event (its rate is the smaller "
    "of NOTIFYs answered and events delivered per second). Once built it freezes its "
    "start-up heap, as `twistd sonosd` does (`sonosd.memory`).",
    "  - `soco_twisted`: `soco.events_twisted`'s own `Site(EventNotifyHandler())` with a "
    "fake subscription per SID in its `subscriptions_map`: SoCo's `parse_event_xml` runs on "
    "every body and the `Event` goes to a no-op counting callback (no state, no JSON, no "
    "clients).",
    "  - `soco_threaded`: `soco.events`' threaded `EventServer` (a thread per request), the "
    "same no-op callback.",
    "- **2. Latency**: the `sonosd` path above, open loop at a fixed rate (200 or 1,000 "
    "NOTIFYs/s) for 4 s, with 1 or 100 WebSocket clients (minimal RFC 6455 clients written "
    "in C, `benchmarks/wsclients.c`, all in one process on one `epoll`: they stand in for "
    "dashboards on other machines yet share the two cores with the daemon, so they are kept "
    "cheap: half to two thirds of the CPU the same clients took in Python, the rest being the "
    "kernel's receive path); latency is receive time "
    "minus the send time in SEQ (one monotonic clock for every process), the clock read once "
    "per read of a socket.",
    "- **3. Fan-out**: the same with 1,000 such clients in 4 processes at 100 events/s for 5 s.",
    "- **5. Control isolation**: the `sonosd` path at 1,000 events/s with one client, event "
    "p99 with 50 control calls kept in flight through `SocoRunner` (10 threads, one key per "
    "speaker; each call waits 50 ms, as a socket read does, then parses a real SOAP answer "
    "with SoCo's XML) against none; 5 rounds of 4 s each, interleaved, the median of the "
    "per-round ratios (with p99 near 1 ms, 3 rounds of 3 s gave ratios from 1.14x to 1.49x "
    "for the same code).",
    "- **6. CPU per event**: in one process, no sockets: each kind of body through the "
    "daemon's work after HTTP, and through both parsers; CPU time, best of 3 rounds.",
    "- **4. Scale**: the real daemon (`twistd sonosd`) against the simulator (`twistd "
    "sonos-sim`) with 200 speakers, both as processes of their own; see section 4.",
    "- **7. The real daemon**: everything as a user runs it, each a process of its own: "
    "`twistd sonos-sim` plays 100 speakers, `twistd sonosd` follows their RenderingControl "
    "and AVTransport with the default configuration but the speakers, the services and "
    "loopback addresses (the per-message log line, the replay ring and the state as a user "
    "gets them), one Server-Sent Events client (`benchmarks.sseclient`) counts every "
    "message. Each subscription's SID and SEQ, the daemon's callback port and the speakers' "
    "addresses are read from the simulator's admin API; once the daemon's diagnostics show "
    "it has every subscription's initial event, `benchmarks.loadgen --contiguous` "
    "plays the speakers (bodies from the mixed payload's volume changes and full AVTransport "
    "events, 2 to 1; each NOTIFY from its speaker's address on a connection of its own; SEQ "
    "contiguous per subscription, one in flight per subscription, 64 in flight). Each round "
    "sends 34,000 NOTIFYs to the daemon (102,000 in all) between two runs of the same load "
    "for 4 s on a bare twisted.web receiver and on `soco.events_twisted` (fresh processes, "
    "same SIDs and sources), and is compared with the mean of the two. CPU per event from "
    "`/proc/<pid>/stat` (the daemon's includes what the NOTIFYs cause: position reads, SSE, "
    "the log line), RSS from `/proc/<pid>/status` twice a second: "
    "once subscribed, during the load, at its end and 60 s later. Figures 1-3, 5 and 6 come "
    "from the event path assembled from sonosd's modules in one process (`pipeline`); 4, 7 "
    "and 8 from the real process.",
    "- **8. Availability**: the real daemon configured with one speaker of a simulated "
    "household of 7, default availability timers; each fault (refused, hung, rebooted, moved, "
    "powered off, asleep) hits its own speaker right after it was heard (the worst case for "
    "the silence check), timed from the fault to the status the API shows.",
    "- **9. Footprint**: the real daemon following one simulated speaker (default "
    "configuration, 8 services), left idle 20 s after subscribing; RSS and its anonymous "
    "and file-backed parts from `/proc`; again with the API on an `ssl:` endpoint and with "
    "one WebSocket client, which load pyOpenSSL and autobahn on demand.",
    "",
)

#: Hand-written account of the daemon's memory (issue 17), included in the report.
MEMORY = os.path.join(os.path.dirname(__file__), "memory.md")

#: Hand-written analysis of the targets not met, included in the report when present.
ANALYSIS = os.path.join(os.path.dirname(__file__), "analysis.md")

BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "throughput": pipeline.throughput,
    "latency": pipeline.latency,
    "fanout": pipeline.fanout,
    "isolation": pipeline.isolation,
    "cost": cost.cost,
    "scale": scale.scale,
    "scale_rss": scale.rss_breakdown,
    "daemon": daemon.daemon,
    "availability": availability.availability,
    "footprint": footprint.footprint,
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


def _cpu_decomposition(cpu: dict[str, float]) -> list[str]:
    """Where each contender's CPU per event goes, and what 2x soco.events_twisted needs."""
    needed = ("bare", "lean", "sonosd", "soco_twisted")
    if not all(name in cpu for name in needed):
        return []
    bare, lean, sonosd, soco = (cpu[name] for name in needed)
    return [
        "CPU per event, from the table: sonosd = its HTTP (`lean`) "
        f"{lean:.0f} µs + its event work {sonosd - lean:.0f} µs (parse, JSON, merged state, "
        f"hub, WebSocket delivery); soco_twisted = twisted.web (`bare`) {bare:.0f} µs + SoCo's "
        f"parse and `Event` {soco - bare:.0f} µs. Both are CPU-bound here, so 2x "
        f"soco_twisted's rate needs sonosd at {soco / 2:.0f} µs per event: event work of "
        f"{soco / 2 - lean:.0f} µs at most.",
        "",
    ]


def table(results: dict[str, Any]) -> list[str]:
    """The summary table: each target, the measured value, met or not."""
    rows = ["| # | benchmark | target | measured | verdict |", "|---|---|---|---|---|"]
    t = results.get("throughput")
    if t:
        ratios = t["ratios"]
        bare = ratios.get("sonosd/bare", 0.0)
        soco = ratios.get("sonosd/soco_twisted", 0.0)
        rows.append(
            f"| 1 | pipeline: throughput, mixed payload, sonosd end to end vs bare twisted.web "
            f"| ≥ 0.6x "
            f"| {bare:.2f}x ({t['rates']['sonosd']:,.0f} vs {t['rates']['bare']:,.0f} /s) "
            f"| {_verdict(bare >= 0.6)} |"
        )
        rows.append(
            f"| 1 | pipeline: throughput, sonosd vs soco.events_twisted | ≥ 2x | {soco:.2f}x "
            f"({t['rates']['soco_twisted']:,.0f} /s) | {_verdict(soco >= 2.0)} |"
        )
        threaded = ratios.get("sonosd/soco_threaded")
        if threaded is not None:
            rows.append(
                f"| 1 | pipeline: throughput, sonosd vs soco.events (threaded) | (reported) | "
                f"{threaded:.2f}x ({t['rates']['soco_threaded']:,.0f} /s) | - |"
            )
    lat = results.get("latency")
    if lat:
        for key, value in lat.items():
            if not isinstance(value, dict):
                continue
            target = value["rate"] >= 1000 and value["clients"] >= 100
            rows.append(
                f"| 2 | pipeline: latency {key} clients: p50 / p99 / max | "
                f"{'p99 ≤ 5 ms' if target else '(reported)'} | {value['p50']:.2f} / "
                f"{value['p99']:.2f} / {value['max']:.1f} ms "
                f"({value['received']:,} of {value['expected']:,} received) | "
                f"{_verdict(value['p99'] <= 5.0) if target else '-'} |"
            )
    f = results.get("fanout")
    if f:
        rows.append(
            f"| 3 | pipeline: fan-out {f['clients']} clients at {f['rate']:g} events/s: "
            "p50 / p99 / max "
            f"| p99 ≤ 50 ms | {f['p50']:.1f} / {f['p99']:.1f} / {f['max']:.1f} ms "
            f"({f['received']:,} of {f['expected']:,}); {f['cpu_us_per_message']:.1f} µs CPU "
            f"per message | {_verdict(f['p99'] <= 50.0)} |"
        )
    rows += scale_rows(results.get("scale"), results.get("scale_rss"))
    b = results.get("scale_rss")
    if b:
        parts = [(name, v) for name, v in b.items() if isinstance(v, dict)]
        rows.append(
            f"| 4 | real daemon: RSS {b['settle']:g} s after subscribing, by configuration "
            f"({b['speakers']} speakers unless said) | (reported) | "
            + "; ".join(f"{name}: {v['rss_mb']:.0f} MB" for name, v in parts)
            + " | - |"
        )
    i = results.get("isolation")
    if i:
        rows.append(
            f"| 5 | pipeline: event p99 with {i['calls']} control calls in flight vs none "
            f"({i['rate']:g} events/s) | ≤ 1.2x | {i['ratio']:.2f}x ({i['p99_busy']:.2f} vs "
            f"{i['p99_quiet']:.2f} ms) | {_verdict(i['ratio'] <= 1.2)} |"
        )
    d = results.get("daemon")
    if d:
        rows += daemon.rows(d)
    c = results.get("cost")
    if c:
        mixed = sum(c["per_kind"][kind]["daemon"] * weight for kind, weight in c["mix"].items())
        rows.append(
            "| 6 | one process: CPU per event after HTTP, mixed payload | (reported) | "
            f"{mixed:.0f} µs | - |"
        )
    a = results.get("availability")
    if a:
        rows += availability.rows(a)
    f = results.get("footprint")
    if f:
        rows += footprint.rows(f)
    return rows


def _seconds(value: float) -> str:
    return "never" if math.isnan(value) else f"{value:.1f} s"


def scale_rows(r: dict[str, Any] | None, rss: dict[str, Any] | None = None) -> list[str]:
    """The rows of benchmark 4 (scale) in the summary table."""
    if not r:
        return [
            "| 4 | real daemon: speakers x 8 services subscribed, RSS, renewal spread "
            "| all in 10 s, RSS ≤ 150 MB flat | not run | **NOT RUN** |"
        ]
    n, expected = r["speakers"], r["subscriptions_expected"]
    subscribed = r["all_subscribed_s"]
    slope = r["rss_slope_mb_per_min"]
    # Only growth is a leak: memory given back after the start-up burst makes the slope fall.
    flat = slope <= scale.FLAT_MB_PER_MIN
    trend = "growing" if not flat else "flat" if slope >= -scale.FLAT_MB_PER_MIN else "falling"
    steady = r.get("rss_steady_max_mb", r["rss_max_mb"])
    rss_ok = steady <= 150.0 and flat
    cycles = sum(1 for c in r["renewal_cycles"] if c["count"] >= r["subscriptions"])
    widths = ", ".join(f"{c['p10_p90']:.1f}" for c in r["renewal_cycles"]) or "none"
    again = (rss or {}).get("default")
    repeat = f"; again: {_seconds(again['all_subscribed_s'])}" if again else ""
    # Met only if every run subscribed everything in time (NaN: never, compares False).
    worst = [subscribed] + ([again["all_subscribed_s"]] if again else [])
    return [
        f"| 4 | real daemon: {n} speakers, daemon spawned → all {expected:,} subscriptions granted "
        f"at the simulator | ≤ 10 s | {_seconds(subscribed)} ({r['subscriptions']:,} "
        f"granted{repeat}); initial NOTIFYs: {r['notifies_answered']:,} answered, "
        f"{r['notifies_failed']:,} failed, all answered: {_seconds(r['all_notified_s'])} "
        f"| {_verdict(all(t <= 10.0 for t in worst))} |",
        f"| 4 | real daemon: RSS over {cycles} full renewal cycles: max after the first "
        f"cycle; slope after it (start / max / end of the whole watch) | ≤ 150 MB, flat "
        f"(≤ {scale.FLAT_MB_PER_MIN:g} MB/min) | {steady:.1f} MB; {slope:+.2f} MB/min "
        f"({trend}) ({r['rss_start_mb']:.0f} / {r['rss_max_mb']:.0f} / "
        f"{r['rss_end_mb']:.0f} MB) "
        f"| {_verdict(rss_ok)} |",
        f"| 4 | real daemon: renewals per second at the simulator, max / mean | not synchronised "
        f"(reported) | {r['renewals_per_second_max']:,} / {r['renewals_per_second_mean']:.0f} "
        f"/s ({r['renewals']:,} renewals in {r['renewal_seconds_with_any']} distinct seconds); "
        f"p10-p90 width of each cycle: {widths} s | - |",
    ]


def latency_section(results: dict[str, Any]) -> list[str]:
    """The details of benchmarks 2, 3 and 5: percentiles with the daemon's CPU share."""
    lat, f, i = results.get("latency"), results.get("fanout"), results.get("isolation")
    if not (lat or f or i):
        return []
    lines = [
        "## 2, 3, 5. Latency (ms, NOTIFY sent → WebSocket message received)",
        "",
        "| run | p50 | p99 | max | received | daemon CPU, share of one core |",
        "|---|---|---|---|---|---|",
    ]
    for key, v in (lat or {}).items():
        if isinstance(v, dict):
            lines.append(
                f"| {key} clients | {v['p50']:.2f} | {v['p99']:.2f} | {v['max']:.1f} | "
                f"{v['received']:,} of {v['expected']:,} | {100 * v['cpu_share']:.0f} % |"
            )
    if f:
        share = f["cpu_share"]
        lines.append(
            f"| fan-out {f['rate']:g}/s x {f['clients']} | {f['p50']:.1f} | {f['p99']:.1f} | "
            f"{f['max']:.1f} | {f['received']:,} of {f['expected']:,} | {100 * share:.0f} % "
            f"({f['cpu_us_per_message']:.1f} µs per message; RSS {f['rss_mb']:.0f} MB) |"
        )
    if i:
        lines.append(
            f"| {i['rate']:g}/s x 1, no control calls (median of rounds) | "
            f"{i['p50_quiet']:.2f} | {i['p99_quiet']:.2f} | - | - | - |"
        )
        lines.append(
            f"| {i['rate']:g}/s x 1, {i['calls']} control calls in flight | "
            f"{i['p50_busy']:.2f} | {i['p99_busy']:.2f} | - | - | - |"
        )
    lines.append("")
    return lines


def scale_section(r: dict[str, Any] | None, rss: dict[str, Any] | None) -> list[str]:
    """The details of benchmark 4 (scale)."""
    if not r:
        return []
    interval = r["timeout"] * r["renew_fraction"]
    ri = r["renewal_interval_s"]
    lines = [
        "## 4. Scale",
        "",
        f"`twistd sonos-sim --speakers {r['speakers']}` and `twistd sonosd` run as two "
        f"processes; the daemon has the {r['speakers']} addresses as `devices`, the default 8 "
        f"services, `subscription: {{timeout: {r['timeout']}, renew_fraction: "
        f"{r['renew_fraction']:g}}}` (renewals every {0.9 * interval:.0f}-{interval:.0f} s, "
        f"the first one of a subscription after {(1 - FIRST_RENEW_SPREAD) * interval:.1f}-"
        f"{interval:.0f} s, instead of 810-900 s with the defaults, so that several cycles "
        "fit in a run), "
        "JSON logs at info. Every figure is read from outside the daemon: the simulator's "
        "admin API (each subscription's granted `timeout` and `expires_in` give the moment "
        "of its last grant to the millisecond; `stats.sent` counts the NOTIFYs the daemon "
        "answered) and `/proc/<pid>/status` (VmRSS, every second). Times are from the "
        "moment the daemon process was spawned (Python start and imports included).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| load average (1 min) when the benchmark started | {r['load_average']:.2f} |",
        f"| ZoneGroupState document (in every ZoneGroupTopology NOTIFY) | "
        f"{r['zone_group_state_bytes']:,} bytes |",
        f"| first / last subscription granted | {_seconds(r['first_subscribed_s'])} / "
        f"{_seconds(r['all_subscribed_s'])} ({r['subscriptions']:,} of "
        f"{r['subscriptions_expected']:,}) |",
        f"| initial (SEQ 0) NOTIFYs answered / failed; all answered | "
        f"{r['notifies_answered']:,} / {r['notifies_failed']:,}; "
        f"{_seconds(r['all_notified_s'])} (to about 1 s) |",
        f"| failed NOTIFYs by service and reason (simulator log) | "
        f"{'; '.join(f'{k} x{v}' for k, v in r['notify_failures'].items()) or 'none'} |",
        f"| TCP listen queue overflows while subscribing (the whole machine's counter) | "
        f"{r['listen_overflows_subscribing']:,} |",
        f"| polling fallbacks started / stopped (daemon log) | {r['polling_started']} / "
        f"{r['polling_stopped']} |",
        f"| daemon CPU until everything subscribed; share of one core afterwards | "
        f"{r['daemon_cpu_startup_s']:.1f} s; {100 * r['daemon_cpu_share']:.1f} % |",
        f"| simulator CPU share while watching | {100 * r['sim_cpu_share']:.1f} % |",
        f"| renewals seen; new SIDs while watching; expired at the simulator | "
        f"{r['renewals']:,}; {r['new_sids_while_watching']}; {r['sim_expired']} |",
        f"| interval between grants of one SID: min / median / max | {ri['min']:.1f} / "
        f"{ri['median']:.1f} / {ri['max']:.1f} s |",
        f"| renewals per second: max / mean (from the first renewal on) | "
        f"{r['renewals_per_second_max']} / {r['renewals_per_second_mean']:.1f} |",
        f"| RSS: peak while subscribing; start / max (at) / end of the watch; max after the "
        f"first cycle | {r['rss_peak_startup_mb']:.0f}; {r['rss_start_mb']:.0f} / "
        f"{r['rss_max_mb']:.0f} ({r.get('rss_max_at_s', 0.0):.0f} s) / "
        f"{r['rss_end_mb']:.0f} MB; {r.get('rss_steady_max_mb', r['rss_max_mb']):.1f} MB |",
        f"| RSS slope: after the first cycle / whole watch | "
        f"{r['rss_slope_mb_per_min']:+.2f} / {r['rss_slope_all_mb_per_min']:+.2f} MB/min |",
        f"| RSS every 10 s (MB) | {', '.join(f'{v:.0f}' for v in r['rss_every_10s'])} |",
        f"| the daemon's snapshot (merged state, JSON); messages its hub published | "
        f"{r['snapshot_bytes']:,} bytes; {r['messages_published']:,} |",
        f"| daemon log lines by level | "
        f"{', '.join(f'{k} {v}' for k, v in sorted(r['daemon_log_levels'].items()))} |",
        f"| SIGTERM → exit; subscriptions left at the simulator | {r['shutdown_s']:.1f} s; "
        f"{r['left_after_shutdown']} |",
        "",
        "Spread of the renewals, cycle by cycle (the k-th renewal of every subscription; "
        f"the daemon renews by {r['renew_fraction']:g} x the granted time: a subscription's "
        f"first renewal anywhere in the last {FIRST_RENEW_SPREAD:.0%} of that, which sets "
        f"its phase, later ones up to {RENEW_JITTER:.0%} early):",
        "",
        "| cycle | renewals | first to last | p10 to p90 | max in one second |",
        "|---|---|---|---|---|",
    ]
    for k, cycle in enumerate(r["renewal_cycles"], start=1):
        lines.append(
            f"| {k} | {cycle['count']:,} | {cycle['width']:.1f} s | {cycle['p10_p90']:.1f} s "
            f"| {cycle['max_per_second']} |"
        )
    lines.append("")
    if rss:
        lines += [
            f"What the RSS is made of: a fresh simulator and daemon per line, RSS "
            f"{rss['settle']:g} s after the last subscription was granted:",
            "",
            "| daemon | RSS MB | peak MB | all subscribed | initial NOTIFYs all answered "
            "| failed NOTIFYs | polling fallbacks |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, value in rss.items():
            if isinstance(value, dict):
                lines.append(
                    f"| {name} | {value['rss_mb']:.0f} | {value['rss_peak_mb']:.0f} | "
                    f"{_seconds(value['all_subscribed_s'])} | "
                    f"{_seconds(value['all_notified_s'])} | {value['notify_failures']} | "
                    f"{value['polling_started']} |"
                )
        lines.append("")
    return lines


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
        *METHOD,
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
            *_cpu_decomposition(t["cpu_us_per_event"]),
        ]
    lines += latency_section(results)
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
    lines += scale_section(results.get("scale"), results.get("scale_rss"))
    d = results.get("daemon")
    if d:
        lines += [
            "## 7. The real daemon under load (`twistd sonosd`, end to end)",
            "",
            *daemon.section(d),
            "",
        ]
    a = results.get("availability")
    if a:
        lines += [
            "## 8. Availability (seconds from the fault to the status the API shows)",
            "",
            *availability.section(a),
            "",
        ]
    f = results.get("footprint")
    if f:
        lines += [
            "## 9. Footprint: an idle daemon with one speaker",
            "",
            *footprint.section(f),
            "",
        ]
    if os.path.exists(MEMORY):
        with open(MEMORY, encoding="utf-8") as memory:
            lines += [memory.read().rstrip(), ""]
    if os.path.exists(ANALYSIS):
        with open(ANALYSIS, encoding="utf-8") as analysis:
            lines += [analysis.read().rstrip(), ""]
    lines += [
        "## Raw results",
        "",
        "```json",
        json.dumps(
            {k: v for k, v in results.items() if k != "cost"},
            indent=1,
            default=str,
        ),
        "```",
        "",
        "## Reproduce",
        "",
        "```",
        "make bench                                     # the whole suite, ~15 minutes",
        ".venv/bin/python -m benchmarks.run --only throughput --out /tmp/b.md",
        ".venv/bin/python -m benchmarks.run --only scale scale_rss --out /tmp/s.md  # ~6 min",
        ".venv/bin/python -m benchmarks.daemon --events 100000 --settle 60  # 7 alone, JSON",
        ".venv/bin/python -m benchmarks.footprint  # 9 alone (idle RSS, one speaker), JSON",
        ".venv/bin/python -m benchmarks.run --smoke --out /tmp/smoke.md   # under a minute",
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
