"""Benchmark 4: a large household: 200 speakers x 8 services, memory and renewal spread.

The simulator (``twistd sonos-sim``) and the daemon (``twistd sonosd``) run as two separate
processes, as they would in production, on a loopback /24 of their own. The figures all come
from outside the daemon:

- **time to subscribe everything**: from the moment the daemon process is spawned to the moment
  the simulator granted the last of the ``speakers x 8`` subscriptions. The simulator's admin
  API lists each subscription with its granted ``timeout`` and ``expires_in``, so the moment it
  was last granted (subscribed or renewed) is ``now - (timeout - expires_in)``, to the
  millisecond, however seldom the API is polled;
- **RSS** of the daemon, read from ``/proc/<pid>/status`` every second for several renewal
  cycles;
- **renewals**: the same admin API, swept every ``poll`` seconds (shorter than a renewal
  interval, so no renewal is missed), gives the moment of every renewal at the simulator: a
  histogram per second, and the spread of the k-th renewal of every subscription.
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import IO, Any

import attrs

from benchmarks.common import cpu_seconds, rss_mb
from sonosd.backoff import FIRST_RENEW_SPREAD
from sonosd.config import DEFAULT_SERVICES
from sonosd.sim.addresses import free_loopback_base

#: The daemon runs ``rss_breakdown`` compares, to tell what the RSS is made of: keys added to
#: its configuration (``config``) and to its environment (``env``).
VARIANTS: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    "default": {},
    "api.replay_buffer: 0": {"config": {"api": {"replay_buffer": 0}}},
    "without ZoneGroupTopology": {
        "config": {"services": [name for name in DEFAULT_SERVICES if name != "ZoneGroupTopology"]}
    },
    "RenderingControl only": {"config": {"services": ["RenderingControl"]}},
    # glibc gives each thread (the SoCo pool's 10) its own malloc arena; one arena shows how
    # much of the RSS is fragmentation rather than live objects.
    "MALLOC_ARENA_MAX=1": {"env": {"MALLOC_ARENA_MAX": "1"}},
}

#: The RSS is "flat" (no leak) when its least-squares slope after the first renewal cycle is at
#: most this (MB per minute; a falling RSS is memory given back after the start-up burst); below
#: it a two-minute run cannot tell a slow leak from allocator noise.
FLAT_MB_PER_MIN = 0.5

#: Two grant times of one SID closer than this are the same grant seen twice (the admin API
#: rounds ``expires_in`` to the millisecond, and the answer takes a moment to arrive).
SAME_GRANT = 1.0


def twistd() -> str:
    """The ``twistd`` script of the running interpreter's environment."""
    path = os.path.join(os.path.dirname(sys.executable), "twistd")
    return path if os.path.exists(path) else shutil.which("twistd") or "twistd"


def sim_argv(speakers: int, base: str, admin_port: int, *options: str) -> list[str]:
    """The command line of ``twistd sonos-sim``: ``speakers`` from ``base``, its admin API on
    ``admin_port`` of 127.0.0.1, then ``options``."""
    return [
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
        *options,
    ]


def daemon_argv(config_path: str) -> list[str]:
    """The command line of ``twistd sonosd`` with the configuration at ``config_path``."""
    return [twistd(), "-n", "--pidfile=", "sonosd", "-c", config_path]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def daemon_config(
    hosts: Sequence[str],
    api_port: int,
    timeout: int,
    renew_fraction: float,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """The daemon's YAML configuration (JSON is YAML): ``hosts`` as devices, loopback only.

    @param extra: Sections to add, or keys to set inside the sections above
        (``{"api": {"replay_buffer": 0}}``).
    """
    config: dict[str, Any] = {
        "devices": [{"host": host} for host in hosts],
        "listener": {"interface": "127.0.0.1", "port": 0, "advertise": "127.0.0.1"},
        "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1"},
        "subscription": {"timeout": timeout, "renew_fraction": renew_fraction},
        "log": {"format": "json", "level": "info"},
    }
    for section, value in (extra or {}).items():
        if isinstance(value, Mapping) and isinstance(config.get(section), dict):
            config[section].update(value)
        else:
            config[section] = value
    return json.dumps(config, indent=1)


class Admin:
    """The simulator's admin API over one keep-alive connection."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.connection: http.client.HTTPConnection | None = None

    def get(self, path: str) -> Any:
        """GET ``path``; the decoded JSON answer (one reconnection is tried)."""
        for attempt in (0, 1):
            if self.connection is None:
                self.connection = http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=self.timeout
                )
            try:
                self.connection.request("GET", path)
                response = self.connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"admin GET {path}: HTTP {response.status}")
            return json.loads(body)
        raise AssertionError("unreachable")

    def ready(self) -> bool:
        """True once the admin API answers."""
        try:
            self.get("/")
        except (OSError, http.client.HTTPException, RuntimeError):
            return False
        return True

    def gena(self, speaker: int) -> tuple[float, dict[str, Any]]:
        """The speaker's GENA state and the (wall clock) time the answer arrived."""
        result = self.get(f"/speakers/{speaker}/gena")
        return time.time(), result

    def close(self) -> None:
        """Drop the connection."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None


@attrs.define
class Grants:
    """Every grant (SUBSCRIBE or renewal) the simulator made, per SID, in wall-clock time.

    Also, per speaker, its NOTIFY counters (``answered`` by the daemon, ``failed``) and when
    each speaker was first seen with every subscription's initial NOTIFY answered.
    """

    per_speaker: int = len(DEFAULT_SERVICES)
    times: dict[str, list[float]] = attrs.Factory(dict)
    service_of: dict[str, str] = attrs.Factory(dict)
    live: dict[int, int] = attrs.Factory(dict)
    answered: dict[int, int] = attrs.Factory(dict)
    failed: dict[int, int] = attrs.Factory(dict)
    notified_at: dict[int, float] = attrs.Factory(dict)

    def record(self, speaker: int, now: float, gena: dict[str, Any]) -> None:
        """Record what one admin answer (``GET /speakers/{speaker}/gena``) shows."""
        subscriptions = gena["subscriptions"]
        for item in subscriptions:
            granted = now - (float(item["timeout"]) - float(item["expires_in"]))
            known = self.times.setdefault(item["sid"], [])
            self.service_of[item["sid"]] = item["service"]
            if not known or granted - known[-1] > SAME_GRANT:
                known.append(granted)
        self.live[speaker] = len(subscriptions)
        self.answered[speaker] = gena["stats"]["sent"]
        self.failed[speaker] = gena["stats"]["failed"]
        if (
            speaker not in self.notified_at
            and len(subscriptions) >= self.per_speaker
            and self.answered[speaker] >= len(subscriptions)
        ):
            self.notified_at[speaker] = now

    def short(self, speaker: int) -> bool:
        """Whether ``speaker`` was last seen with fewer subscriptions than services."""
        return self.live.get(speaker, 0) < self.per_speaker

    def done(self, speaker: int) -> bool:
        """Whether every subscription of ``speaker`` exists and had its initial NOTIFY."""
        return speaker in self.notified_at

    def first(self) -> list[float]:
        """The first grant of every SID (its SUBSCRIBE)."""
        return [times[0] for times in self.times.values()]

    def renewals(self) -> list[float]:
        """Every later grant (the renewals), sorted."""
        return sorted(t for times in self.times.values() for t in times[1:])

    def nth_renewals(self) -> list[list[float]]:
        """``result[k]``: the (k+1)-th renewal of every SID that had one, sorted."""
        result: list[list[float]] = []
        for times in self.times.values():
            for k, t in enumerate(times[1:]):
                if len(result) <= k:
                    result.append([])
                result[k].append(t)
        return [sorted(values) for values in result]


@contextmanager
def process(
    argv: Sequence[str], log: IO[bytes], cwd: str, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (with ``env`` added to the environment) with its output in ``log``; on the
    way out stop it (SIGTERM, then kill)."""
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    try:
        yield proc
    finally:
        stop(proc, grace=15.0)


def stop(proc: subprocess.Popen[bytes], grace: float) -> float:
    """SIGTERM ``proc``, wait up to ``grace`` seconds, then kill it; return seconds taken."""
    start = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return time.monotonic() - start


def sweep(admin: Admin, grants: Grants, speakers: Iterable[int]) -> None:
    """Ask each of ``speakers`` for its subscriptions and counters; record them."""
    for index in speakers:
        grants.record(index, *admin.gena(index))


def per_second(times: Sequence[float]) -> Counter[int]:
    """Histogram of ``times`` by whole second."""
    return Counter(math.floor(t) for t in times)


def spread(times: Sequence[float]) -> dict[str, float]:
    """How spread out a (sorted) set of moments is: width overall and of the middle 80 %."""
    if not times:
        return {"count": 0, "width": 0.0, "p10_p90": 0.0, "max_per_second": 0}
    n = len(times)
    return {
        "count": n,
        "width": times[-1] - times[0],
        "p10_p90": times[min(n - 1, int(0.9 * n))] - times[int(0.1 * n)],
        "max_per_second": max(per_second(times).values()),
    }


def slope(samples: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(t, value)`` samples, per second; 0 with fewer than 2."""
    if len(samples) < 2:
        return 0.0
    ts = [t for t, _ in samples]
    vs = [v for _, v in samples]
    mean_t, mean_v = statistics.fmean(ts), statistics.fmean(vs)
    var = sum((t - mean_t) ** 2 for t in ts)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in samples) / var


def log_levels(path: str) -> Counter[str]:
    """Count the daemon's JSON log lines by level (lines that are not JSON count as ``text``)."""
    levels: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                levels[str(json.loads(line).get("level", "?"))] += 1
            except (ValueError, AttributeError):
                levels["text"] += 1
    return levels


def scale(
    speakers: int = 200,
    cycles: float = 5.5,
    timeout: int = 60,
    renew_fraction: float = 0.5,
    poll: float = 5.0,
    subscribe_deadline: float = 60.0,
    duration: float | None = None,
    extra: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Benchmark 4: subscribe ``speakers`` x the services, then watch RSS and renewals.

    @param cycles: How many renewal intervals (``timeout x renew_fraction``) to watch once
        everything is subscribed (``duration`` overrides it, in seconds).
    @param poll: Seconds between sweeps of the simulator's subscription lists while watching;
        must stay below the shortest renewal interval (the first renewal of a subscription
        may come after a quarter of it: ``sonosd.backoff.FIRST_RENEW_SPREAD``).
    @param subscribe_deadline: Give up waiting for every subscription after this many seconds.
    @param extra: Added to the daemon's configuration (see ``daemon_config``).
    @param env: Added to the daemon's environment.
    @param keep: Keep the configuration and both logs (their directory is in the result).
    """
    interval = timeout * renew_fraction
    if poll >= (1 - FIRST_RENEW_SPREAD) * interval - 1:
        raise ValueError(f"poll: {poll:g} s would miss renewals due every {interval:g} s")
    watch = duration if duration is not None else cycles * interval
    services = len((extra or {}).get("services", DEFAULT_SERVICES))
    expected = speakers * services
    base = free_loopback_base(count=speakers)
    prefix, _, first = base.rpartition(".")
    hosts = [f"{prefix}.{int(first) + i}" for i in range(speakers)]
    admin_port, api_port = free_port(), free_port()
    cwd = os.getcwd()
    workdir = tempfile.mkdtemp(prefix="sonosd-scale-")
    config_path = os.path.join(workdir, "sonosd.yaml")
    with open(config_path, "w") as handle:
        handle.write(daemon_config(hosts, api_port, timeout, renew_fraction, extra))
    sim_log_path = os.path.join(workdir, "sim.log")
    daemon_log_path = os.path.join(workdir, "sonosd.log")
    admin = Admin(admin_port)
    grants = Grants(services)
    rss: list[tuple[float, float]] = []
    watch_start = watch_end = math.nan
    sweeps = 0
    result: dict[str, Any] = {
        "speakers": speakers,
        "subscriptions_expected": expected,
        "timeout": timeout,
        "renew_fraction": renew_fraction,
        "base_address": base,
        "load_average": os.getloadavg()[0],
    }
    sim_command = sim_argv(speakers, base, admin_port)
    daemon_command = daemon_argv(config_path)
    with (
        open(sim_log_path, "wb") as sim_log,
        open(daemon_log_path, "wb") as daemon_log,
        process(sim_command, sim_log, cwd) as sim,
    ):
        if not _wait(admin.ready, 30.0, sim):
            raise RuntimeError(f"the simulator did not start; see {sim_log_path}")
        result["zone_group_state_bytes"] = len(admin.get("/household")["zone_group_state"])
        sim_cpu0 = cpu_seconds(sim.pid)
        overflows = listen_overflows()
        spawned = time.time()
        with process(daemon_command, daemon_log, cwd, env) as daemon:
            _subscribe_phase(admin, grants, speakers, subscribe_deadline, daemon, rss)
            if daemon.poll() is not None:
                raise RuntimeError(
                    f"sonosd exited with status {daemon.returncode}: {_tail(daemon_log_path)} "
                    f"(logs kept in {workdir})"
                )
            watch_start = time.time()
            result["listen_overflows_subscribing"] = listen_overflows() - overflows
            cpu0, sim_cpu1 = cpu_seconds(daemon.pid), cpu_seconds(sim.pid)
            result["daemon_cpu_startup_s"] = cpu0
            result["sim_cpu_startup_s"] = sim_cpu1 - sim_cpu0
            sweeps = _watch_phase(admin, grants, speakers, daemon, watch, poll, rss)
            watch_end = time.time()
            result.update(daemon_api_figures(api_port))
            seconds = max(watch_end - watch_start, 1e-9)
            result["daemon_cpu_share"] = (cpu_seconds(daemon.pid) - cpu0) / seconds
            result["sim_cpu_share"] = (cpu_seconds(sim.pid) - sim_cpu1) / seconds
            result["daemon_running"] = daemon.poll() is None
            result["shutdown_s"] = stop(daemon, grace=20.0)
        after = Grants()
        sweep(admin, after, range(speakers))
        admin.close()
    result.update(_figures(grants, rss, spawned, watch_start, watch_end, interval))
    result["sweeps"] = sweeps
    result["left_after_shutdown"] = sum(after.live.values())
    result["daemon_log_levels"] = dict(log_levels(daemon_log_path))
    result["polling_started"] = _count(daemon_log_path, "polling every")
    result["polling_stopped"] = _count(daemon_log_path, "polling stopped")
    result["sim_expired"] = _count(sim_log_path, " expired")
    result["notify_failures"] = notify_failures(sim_log_path, grants.service_of)
    if keep:
        result["workdir"] = workdir
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def _wait(check: Any, timeout: float, proc: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _subscribe_phase(
    admin: Admin,
    grants: Grants,
    speakers: int,
    deadline: float,
    daemon: subprocess.Popen[bytes],
    rss: list[tuple[float, float]],
) -> None:
    """Until every subscription exists (or ``deadline``): sweep the speakers that lack some,
    and read the RSS, about twice a second."""
    end = time.monotonic() + deadline
    while time.monotonic() < end and daemon.poll() is None:
        rss.append((time.time(), rss_mb(daemon.pid)))
        sweep(admin, grants, [i for i in range(speakers) if grants.short(i)])
        if not any(grants.short(i) for i in range(speakers)):
            return
        time.sleep(0.5)


def _watch_phase(
    admin: Admin,
    grants: Grants,
    speakers: int,
    daemon: subprocess.Popen[bytes],
    duration: float,
    poll: float,
    rss: list[tuple[float, float]],
) -> int:
    """For ``duration`` seconds: RSS every second, every speaker's grants every ``poll`` s,
    and in between the speakers whose initial NOTIFYs are not all answered yet."""
    start = time.monotonic()
    end = start + duration
    next_sweep = start
    sweeps = 0
    while daemon.poll() is None:
        now = time.monotonic()
        rss.append((time.time(), rss_mb(daemon.pid)))
        if now >= next_sweep:
            sweep(admin, grants, range(speakers))
            sweeps += 1
            next_sweep = now + poll
        else:
            sweep(admin, grants, [i for i in range(speakers) if not grants.done(i)])
        if now >= end:
            break
        time.sleep(max(0.0, min(1.0 - (time.monotonic() - now), end - time.monotonic())))
    if daemon.poll() is None:
        sweep(admin, grants, range(speakers))
        sweeps += 1
    return sweeps


def _figures(
    grants: Grants,
    rss: Sequence[tuple[float, float]],
    spawned: float,
    start: float,
    end: float,
    interval: float,
) -> dict[str, Any]:
    """The benchmark's figures from what was recorded (times are wall-clock seconds)."""
    firsts = sorted(t for times in grants.times.values() if (t := times[0]) <= start)
    notified = sorted(grants.notified_at.values())
    speakers = len(grants.live)
    renewals = grants.renewals()
    hist = per_second(renewals)
    seconds = max(end - start, 1e-9)
    # The mean rate is taken from the first renewal on: none is due before it.
    span = max(end - renewals[0], 1.0) if renewals else seconds
    watched = [(t, v) for t, v in rss if t >= start] or list(rss)
    # Flatness is judged after the first renewal cycle: the first renewals allocate what the
    # steady state then reuses (connections, timers, buffers).
    steady = [(t, v) for t, v in watched if t >= start + interval] or watched
    values = [v for _, v in watched]
    return {
        "subscriptions": len(firsts),
        "first_subscribed_s": firsts[0] - spawned if firsts else math.nan,
        "all_subscribed_s": firsts[-1] - spawned
        if len(firsts) >= speakers * grants.per_speaker
        else math.nan,
        "all_notified_s": notified[-1] - spawned if len(notified) >= speakers else math.nan,
        "subscribe_spread": spread([t - spawned for t in firsts]),
        "notifies_answered": sum(grants.answered.values()),
        "notifies_failed": sum(grants.failed.values()),
        "new_sids_while_watching": sum(1 for times in grants.times.values() if times[0] > start),
        "renewals": len(renewals),
        "renewals_per_second_mean": len(renewals) / span,
        "renewals_per_second_max": max(hist.values(), default=0),
        "renewal_seconds_with_any": len(hist),
        "renewal_cycles": [spread(times) for times in grants.nth_renewals()],
        "renewal_interval_s": _quantiles(
            sorted(b - a for times in grants.times.values() for a, b in itertools.pairwise(times))
        ),
        "watch_s": seconds,
        "rss_peak_startup_mb": max((v for t, v in rss if t < start), default=0.0),
        "rss_start_mb": values[0] if values else 0.0,
        "rss_max_mb": max(values, default=0.0),
        # The target's figure: the most the daemon holds across renewal cycles, once the
        # start-up burst (1,600 initial NOTIFYs, 200 ZoneGroupState documents) is behind it.
        "rss_steady_max_mb": max((v for _, v in steady), default=0.0),
        "rss_max_at_s": max(watched, key=lambda sample: sample[1])[0] - start if watched else 0.0,
        "rss_end_mb": values[-1] if values else 0.0,
        "rss_slope_mb_per_min": 60 * slope(steady),
        "rss_slope_all_mb_per_min": 60 * slope(watched),
        "rss_every_10s": [round(v, 1) for v in values[::10]],
        "rss_samples": len(values),
    }


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    """Min, median and max of sorted ``values`` (zeros when empty)."""
    if not values:
        return {"min": 0.0, "median": 0.0, "max": 0.0}
    return {"min": values[0], "median": values[len(values) // 2], "max": values[-1]}


def rss_breakdown(
    speakers: int = 200,
    settle: float = 15.0,
    variants: Mapping[str, Mapping[str, Mapping[str, Any]]] = VARIANTS,
    subscribe_deadline: float = 40.0,
) -> dict[str, Any]:
    """The daemon's RSS ``settle`` seconds after every subscription was granted, for each
    configuration of ``variants`` and for a household of one speaker.

    Each is a fresh simulator and daemon; the differences say what the memory is made of.
    """
    result: dict[str, Any] = {"speakers": speakers, "settle": settle}
    for name, variant in {"1 speaker": {}, **variants}.items():
        run = scale(
            speakers=1 if name == "1 speaker" else speakers,
            duration=settle,
            extra=variant.get("config"),
            env=variant.get("env"),
            subscribe_deadline=subscribe_deadline,
        )
        result[name] = {
            "rss_mb": run["rss_end_mb"],
            "rss_peak_mb": max(run["rss_max_mb"], run["rss_peak_startup_mb"]),
            "all_subscribed_s": run["all_subscribed_s"],
            "all_notified_s": run["all_notified_s"],
            "polling_started": run["polling_started"],
            "notify_failures": sum(run["notify_failures"].values()),
        }
    return result


def listen_overflows() -> int:
    """The machine's ``TcpExt ListenOverflows`` counter (connections dropped because a listen
    queue was full; every process counts, not only ours); -1 when unavailable."""
    try:
        with open("/proc/net/netstat") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return -1
    for names, values in itertools.pairwise(lines):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", -1))
    return -1


def daemon_api_figures(port: int) -> dict[str, Any]:
    """What the daemon's own API says: the size of its snapshot (the merged state of every
    speaker, as JSON) and the number of messages its hub published; -1 when unavailable."""
    figures: dict[str, Any] = {"snapshot_bytes": -1, "messages_published": -1}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/api/v1/snapshot")
        response = connection.getresponse()
        body = response.read()
        if response.status == 200:
            figures["snapshot_bytes"] = len(body)
        connection.request("GET", "/api/v1/metrics")
        response = connection.getresponse()
        text = response.read().decode("utf-8", "replace")
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in ("sonosd_messages_published", "sonosd_messages_published_total"):
                figures["messages_published"] = int(float(value))
    except (OSError, http.client.HTTPException, ValueError):
        pass
    finally:
        connection.close()
    return figures


def notify_failures(path: str, service_of: Mapping[str, str]) -> dict[str, int]:
    """Count the simulator's failed NOTIFYs (its warn lines) by service and reason."""
    counts: Counter[str] = Counter()
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if "sonosd.sim.gena#warn" not in line or ": NOTIFY " not in line:
                continue
            sid = line.split(": NOTIFY ", 1)[1].split(" ", 1)[0]
            reason = line.rsplit(" failed: ", 1)[1] if " failed: " in line else "answered"
            if reason == "answered":
                reason = line.rsplit(" answered ", 1)[-1]
            counts[f"{service_of.get(sid, '?')}: {reason.strip()}"] += 1
    return dict(counts.most_common())


def _tail(path: str, lines: int = 3) -> str:
    """The last ``lines`` lines of a log, on one line."""
    with open(path, encoding="utf-8", errors="replace") as log:
        return " | ".join(line.strip() for line in log.readlines()[-lines:])


def _count(path: str, needle: str) -> int:
    with open(path, encoding="utf-8", errors="replace") as lines:
        return sum(1 for line in lines if needle in line)
