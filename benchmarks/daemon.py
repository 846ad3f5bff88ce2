"""Benchmark 7: the real ``twistd sonosd`` process under NOTIFY load, end to end.

Unlike benchmarks 1-3 and 5 (the event path assembled from sonosd's modules in a receiver
process), everything here is the product as a user runs it:

- ``twistd sonos-sim`` (a process of its own) plays 100 speakers; ``twistd sonosd`` (another)
  follows them with the default configuration except the speakers (``devices``), the
  services (RenderingControl and AVTransport) and loopback addresses: default text logging
  at info (one line per message, to a file), the default replay ring (10,000 messages),
  the merged state, the API;
- once the daemon has subscribed, every subscription's SID, its last SEQ, the daemon's
  callback port and each speaker's address are read from the simulator's admin API;
- ``benchmarks.loadgen --contiguous`` then plays the speakers: NOTIFYs with varied bodies
  (RenderingControl volume changes and full AVTransport events in the proportions of the
  mixed payload), each on a connection of its own from its speaker's address, SEQ
  contiguous per subscription and one NOTIFY in flight per subscription, 64 in flight;
- one Server-Sent Events client (``benchmarks.sseclient``, a process of its own) counts every
  message the daemon sends and checks that ids follow one another;
- in each round the daemon's load is interleaved with the same load on a bare twisted.web
  receiver and on ``soco.events_twisted`` (``benchmarks.receivers``, fresh processes, the
  same SIDs and sources);
- CPU per event comes from ``/proc/<pid>/stat`` of each receiver process; the daemon's
  resident memory from ``/proc/<pid>/status``, sampled twice a second: once subscribed,
  during the load, when it stops and ``settle`` seconds later.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.common import Child, FakeSubscription, children, cpu_seconds, rss_mb, to_json
from benchmarks.scale import Admin, free_port, process, stop, twistd
from sonosd.sim.addresses import free_loopback_base

#: The services the daemon follows, and the kinds of body each round sends (the mixed
#: payload's RenderingControl and AVTransport parts, in its proportions: 2 to 1).
SERVICES: tuple[str, ...] = ("RenderingControl", "AVTransport")
KINDS: tuple[str, ...] = ("rc_volume", "avt_full")
CONTENDERS: tuple[str, ...] = ("bare", "soco_twisted")


def daemon_config(hosts: Sequence[str], api_port: int) -> str:
    """The daemon's configuration: the defaults, but these speakers, the two services and
    loopback addresses (JSON is YAML)."""
    return json.dumps(
        {
            "devices": [{"host": host} for host in hosts],
            "services": list(SERVICES),
            "listener": {"interface": "127.0.0.1", "port": 0},
            "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1"},
        },
        indent=1,
    )


class RssWatch:
    """Samples a process's resident memory every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic(), rss_mb(self.pid)))
            except OSError:
                return
            self._stop.wait(self.interval)

    def max_between(self, start: float, end: float) -> float:
        """The largest sample taken between ``start`` and ``end`` (monotonic seconds)."""
        return max((v for t, v in self.samples if start <= t <= end), default=0.0)

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(5)


def subscribed(admin: Admin, speakers: int, services: int) -> bool:
    """Whether every speaker holds ``services`` subscriptions and sent each its initial NOTIFY."""
    for index in range(speakers):
        gena = admin.get(f"/speakers/{index}/gena")
        if len(gena["subscriptions"]) < services or gena["stats"]["sent"] < services:
            return False
    return True


def household_from_sim(admin: Admin, speakers: int) -> tuple[list[FakeSubscription], str]:
    """Every subscription the simulator granted (SID, speaker uid and address, service, last
    SEQ) and the ``host:port`` its NOTIFYs go to (the daemon's listener)."""
    subs: list[FakeSubscription] = []
    targets: set[str] = set()
    for index in range(speakers):
        speaker = admin.get(f"/speakers/{index}")
        for item in admin.get(f"/speakers/{index}/gena")["subscriptions"]:
            subs.append(
                FakeSubscription(
                    item["sid"], speaker["uid"], speaker["address"], item["service"], item["seq"]
                )
            )
            targets.add(item["callback"].split("//", 1)[1].rstrip("/"))
    if len(targets) != 1:
        raise RuntimeError(f"expected one callback address, got {sorted(targets)}")
    return subs, targets.pop()


def _write_household(path: str, subs: Sequence[FakeSubscription]) -> None:
    with open(path, "w") as handle:
        handle.write(to_json(subs))


def _advance(subs: list[FakeSubscription], last_seq: dict[str, int]) -> list[FakeSubscription]:
    """The household with each SID's SEQ where the last load left it."""
    return [
        FakeSubscription(s.sid, s.uid, s.host, s.service, last_seq.get(s.sid, s.seq)) for s in subs
    ]


def _load(target: str, household: str, count: int, duration: float, concurrency: int) -> Child:
    return Child(
        "benchmarks.loadgen",
        "--target",
        target,
        "--household",
        household,
        "--t0",
        repr(time.monotonic()),
        "--concurrency",
        str(concurrency),
        "--count",
        str(count),
        "--duration",
        str(duration),
        "--kinds",
        ",".join(KINDS),
        "--contiguous",
    )


def _ask(client: Child) -> dict[str, Any]:
    """The SSE client's counts now."""
    stdin = client.process.stdin
    assert stdin is not None
    stdin.write("count\n")
    stdin.flush()
    return client.read()


def _contender(kind: str, household: str, count: int, duration: float, concurrency: int) -> dict:
    """One run of the load against a fresh ``benchmarks.receivers`` process of ``kind``."""
    with children() as started:
        receiver = Child("benchmarks.receivers", kind, "--household", household)
        started.append(receiver)
        ready = receiver.read()
        cpu0 = cpu_seconds(receiver.pid)
        load = _load(f"127.0.0.1:{ready['port']}", household, count, duration, concurrency)
        started.append(load)
        load.read()
        gen = load.read()
        cpu = cpu_seconds(receiver.pid) - cpu0
        receiver.finish()
    return {
        "rate": gen["rate"],
        "ok": gen["ok"],
        "sent": gen["started"],
        "cpu_us": 1e6 * cpu / max(gen["ok"], 1),
        "last_seq": gen["last_seq"],
    }


def _daemon_round(
    target: str,
    household: str,
    count: int,
    duration: float,
    concurrency: int,
    pid: int,
    sse: Child,
    deliver_timeout: float,
) -> dict[str, Any]:
    """One run of the load against the daemon, measured until the SSE client has every event."""
    before = _ask(sse)
    cpu0 = cpu_seconds(pid)
    start = time.monotonic()
    with children() as started:
        load = _load(target, household, count, duration, concurrency)
        started.append(load)
        load.read()
        gen = load.read()
    deadline = time.monotonic() + deliver_timeout
    while True:
        after = _ask(sse)
        delivered = after["events"] - before["events"]
        if delivered >= gen["ok"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    cpu = cpu_seconds(pid) - cpu0
    span = max(after["last"] - gen["first"], gen["elapsed"], 1e-9)
    types = Counter(after["types"])
    types.subtract(before["types"])
    return {
        "rate": min(gen["rate"], delivered / span),
        "answered_rate": gen["rate"],
        "ok": gen["ok"],
        "sent": gen["started"],
        "statuses": gen["statuses"],
        "delivered": delivered,
        "types": {k: v for k, v in types.items() if v},
        "id_gaps": after["id_gaps"] - before["id_gaps"],
        "missing": after["missing"] - before["missing"],
        "cpu_us": 1e6 * cpu / max(gen["ok"], 1),
        "start": start,
        "end": time.monotonic(),
        "last_seq": gen["last_seq"],
    }


def log_lines(path: str) -> dict[str, int]:
    """The daemon's text log lines by level (``<time> <level> [<namespace>] ...``)."""
    levels: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[2].startswith("["):
                levels[parts[1]] += 1
            elif not line.startswith("    "):
                levels["other"] += 1
    return dict(levels)


def daemon(
    speakers: int = 100,
    rounds: int = 3,
    count: int = 34_000,
    duration: float = 60.0,
    contender_duration: float = 4.0,
    concurrency: int = 64,
    settle: float = 60.0,
    subscribed_settle: float = 12.0,
    subscribe_deadline: float = 60.0,
    contenders: Sequence[str] = CONTENDERS,
    keep: bool = False,
) -> dict[str, Any]:
    """Benchmark 7 (see the module docstring).

    @param rounds: Rounds; each runs the daemon, then each contender.
    @param count: NOTIFYs sent to the daemon in each round (at most ``duration`` seconds).
    @param contender_duration: Seconds of load on each contender per round.
    @param settle: Seconds watched after the last round before the last RSS reading.
    @param subscribed_settle: Seconds waited once everything is subscribed before the
        "subscribed" RSS reading (the first ``malloc_trim`` is 10 s after start).
    """
    base = free_loopback_base(count=speakers)
    prefix, _, first = base.rpartition(".")
    hosts = [f"{prefix}.{int(first) + i}" for i in range(speakers)]
    admin_port, api_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="sonosd-daemon-")
    config_path = os.path.join(workdir, "sonosd.yaml")
    with open(config_path, "w") as handle:
        handle.write(daemon_config(hosts, api_port))
    household = os.path.join(workdir, "household.json")
    daemon_log = os.path.join(workdir, "sonosd.log")
    admin = Admin(admin_port)
    result: dict[str, Any] = {
        "speakers": speakers,
        "services": list(SERVICES),
        "kinds": list(KINDS),
        "concurrency": concurrency,
        "load_average": os.getloadavg()[0],
    }
    sim_argv = [
        twistd(),
        "-n",
        "--pidfile=",
        "sonos-sim",
        "--speakers",
        str(speakers),
        "--base-address",
        base,
        "--admin",
        f"tcp:{admin_port}:interface=127.0.0.1",
    ]
    daemon_argv = [twistd(), "-n", "--pidfile=", "sonosd", "-c", config_path]
    runs: dict[str, list[dict[str, Any]]] = {"sonosd": [], **{name: [] for name in contenders}}
    with (
        open(os.path.join(workdir, "sim.log"), "wb") as sim_log,
        open(daemon_log, "wb") as log,
        process(sim_argv, sim_log, os.getcwd()) as sim,
        children() as started,
    ):
        if not _until(admin.ready, 30.0, lambda: sim.poll() is None):
            raise RuntimeError(f"the simulator did not start (see {workdir})")
        with process(daemon_argv, log, os.getcwd()) as proc:
            watch = RssWatch(proc.pid)
            spawned = time.monotonic()
            if not _until(
                lambda: subscribed(admin, speakers, len(SERVICES)),
                subscribe_deadline,
                lambda: proc.poll() is None,
            ):
                raise RuntimeError(f"the daemon did not subscribe everything (see {workdir})")
            result["subscribed_s"] = time.monotonic() - spawned
            subs, target = household_from_sim(admin, speakers)
            result["subscriptions"] = len(subs)
            sse = Child(
                "benchmarks.sseclient", "--url", f"http://127.0.0.1:{api_port}/api/v1/events"
            )
            started.append(sse)
            sse.read()
            time.sleep(subscribed_settle)
            result["rss_subscribed_mb"] = rss_mb(proc.pid)
            load_start = time.monotonic()
            for _ in range(rounds):
                _write_household(household, subs)
                run = _daemon_round(
                    target, household, count, duration, concurrency, proc.pid, sse, 60.0
                )
                runs["sonosd"].append(run)
                subs = _advance(subs, run["last_seq"])
                for name in contenders:
                    _write_household(household, subs)
                    other = _contender(name, household, 10**9, contender_duration, concurrency)
                    runs[name].append(other)
            load_end = time.monotonic()
            result["rss_end_mb"] = rss_mb(proc.pid)
            result["rss_load_max_mb"] = watch.max_between(load_start, load_end)
            time.sleep(settle)
            result["rss_after_mb"] = rss_mb(proc.pid)
            result["settle_s"] = settle
            watch.stop()
            result["rss_every_5s"] = [round(v, 1) for t, v in watch.samples[::10]]
            final = sse.finish()
            result["daemon_running"] = proc.poll() is None
            result["shutdown_s"] = stop(proc, grace=20.0)
    admin.close()
    result.update(_figures(runs, final))
    result["daemon_log"] = log_lines(daemon_log)
    if keep:
        result["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _until(check: Any, timeout: float, alive: Any) -> bool:
    deadline = time.monotonic() + timeout
    while alive():
        try:
            if check():
                return True
        except (OSError, RuntimeError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return False


def _figures(runs: dict[str, list[dict[str, Any]]], final: dict[str, Any]) -> dict[str, Any]:
    """Medians and per-round ratios of the runs."""
    ours = runs["sonosd"]
    figures: dict[str, Any] = {
        "rates": {name: statistics.median(r["rate"] for r in rs) for name, rs in runs.items()},
        "all_rates": {name: [r["rate"] for r in rs] for name, rs in runs.items()},
        "cpu_us_per_event": {
            name: statistics.median(r["cpu_us"] for r in rs) for name, rs in runs.items()
        },
        "all_cpu_us": {name: [r["cpu_us"] for r in rs] for name, rs in runs.items()},
        "ratios": {},
        "events": sum(r["ok"] for r in ours),
        "sent": sum(r["sent"] for r in ours),
        "delivered": sum(r["delivered"] for r in ours),
        "not_answered_200": sum(r["sent"] - r["ok"] for r in ours),
        "types": dict(sum((Counter(r["types"]) for r in ours), Counter())),
        "id_gaps": final["id_gaps"],
        "missing_ids": final["missing"],
        "sse_last_id": final["last_id"],
        "rounds": len(ours),
    }
    for name in runs:
        if name == "sonosd" or not runs[name]:
            continue
        pairs = list(zip(ours, runs[name], strict=True))
        figures["ratios"][f"rate sonosd/{name}"] = statistics.median(
            s["rate"] / max(o["rate"], 1e-9) for s, o in pairs
        )
        figures["ratios"][f"cpu sonosd/{name}"] = statistics.median(
            s["cpu_us"] / max(o["cpu_us"], 1e-9) for s, o in pairs
        )
    figures["all_delivered"] = (
        figures["delivered"] >= figures["events"]
        and not figures["id_gaps"]
        and not figures["types"].get("events.gap")
    )
    return figures
