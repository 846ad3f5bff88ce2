"""Benchmark 9: the resident memory of an idle ``twistd sonosd`` following one speaker.

``twistd sonos-sim --speakers 1`` and ``twistd sonosd`` (the default configuration but the one
speaker as ``devices`` and loopback addresses) run as processes of their own; once the
simulator has granted every subscription and sent each its initial NOTIFY, the daemon is left
alone for ``settle`` seconds (the first ``malloc_trim`` comes 10 s after the start), then its
``VmRSS`` and ``VmHWM`` (``/proc/<pid>/status``) and the anonymous and file-backed parts of
its RSS (``/proc/<pid>/smaps_rollup``: the Python heap against the mapped libraries) are read.

The same is measured for what loads optional stacks on demand (``sonosd.tlsgate``, the
WebSocket channel): the API on an ``ssl:`` endpoint (pyOpenSSL and cryptography loaded at
start) and one WebSocket client connected (autobahn, which imports cryptography too).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from benchmarks.common import rss_mb
from benchmarks.daemon import _until
from benchmarks.scale import Admin, daemon_argv, free_port, process, sim_argv, stop
from sonosd.config import DEFAULT_SERVICES
from sonosd.sim.addresses import free_loopback_base

#: The idle one-speaker daemon's resident memory target (issue 17), in MB.
TARGET_MB = 50.0

#: The runs: what each adds to the default configuration.
VARIANTS: tuple[str, ...] = ("idle", "API over TLS (ssl: endpoint)", "one WebSocket client")


def status_kb(pid: int, field: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def smaps_kb(pid: int) -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup``'s ``kB`` figures by name (``Anonymous``, ``Rss``...)."""
    figures: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if len(parts) == 3 and parts[2] == "kB":
                figures[parts[0].rstrip(":")] = int(parts[1])
    return figures


@contextmanager
def websocket_client(port: int) -> Iterator[socket.socket]:
    """A WebSocket connection to ``/api/v1/ws`` held open (handshake only, nothing read)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sock.sendall(
            f"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = sock.recv(4096)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"no WebSocket upgrade: {head[:80]!r}")
        yield sock
    finally:
        sock.close()


def _config(host: str, api_port: int, variant: str, workdir: str) -> str:
    listen = f"tcp:{api_port}:interface=127.0.0.1"
    if variant.startswith("API over TLS"):
        from sonosd.sim.tls import self_signed_pem

        pem = os.path.join(workdir, "api.pem")
        with open(pem, "wb") as handle:
            handle.write(self_signed_pem())
        listen = f"ssl:{api_port}:interface=127.0.0.1:privateKey={pem}"
    return json.dumps(
        {
            "devices": [{"host": host}],
            "listener": {"interface": "127.0.0.1", "port": 0},
            "api": {"listen": listen},
        }
    )


def _subscribed(admin: Admin, services: int) -> bool:
    gena = admin.get("/speakers/0/gena")
    return len(gena["subscriptions"]) >= services and gena["stats"]["sent"] >= services


def _measure(pid: int) -> dict[str, float]:
    rollup = smaps_kb(pid)
    return {
        "rss_mb": rss_mb(pid),
        "peak_mb": status_kb(pid, "VmHWM") / 1024,
        "anonymous_mb": rollup.get("Anonymous", 0) / 1024,
        "file_mb": (rollup.get("Rss", 0) - rollup.get("Anonymous", 0)) / 1024,
    }


def footprint(
    settle: float = 20.0,
    variants: tuple[str, ...] = VARIANTS,
    subscribe_deadline: float = 30.0,
) -> dict[str, Any]:
    """Benchmark 9 (see the module docstring): one simulator, a fresh daemon per variant."""
    base = free_loopback_base(count=1)
    admin_port = free_port()
    workdir = tempfile.mkdtemp(prefix="sonosd-footprint-")
    admin = Admin(admin_port)
    result: dict[str, Any] = {
        "settle": settle,
        "services": len(DEFAULT_SERVICES),
        "load_average": os.getloadavg()[0],
    }
    sim_command = sim_argv(1, base, admin_port)
    with (
        open(os.path.join(workdir, "sim.log"), "wb") as sim_log,
        process(sim_command, sim_log, os.getcwd()) as sim,
    ):
        if not _until(admin.ready, 30.0, lambda: sim.poll() is None):
            raise RuntimeError(f"the simulator did not start (see {workdir})")
        for variant in variants:
            result[variant] = _variant(admin, base, variant, workdir, settle, subscribe_deadline)
    admin.close()
    shutil.rmtree(workdir, ignore_errors=True)
    return result


def _variant(
    admin: Admin, host: str, variant: str, workdir: str, settle: float, deadline: float
) -> dict[str, float]:
    api_port = free_port()
    name = variant.split()[0].lower()
    config_path = os.path.join(workdir, f"{name}.yaml")
    with open(config_path, "w") as handle:
        handle.write(_config(host, api_port, variant, workdir))
    argv = daemon_argv(config_path)
    with (
        open(os.path.join(workdir, f"{name}.log"), "wb") as log,
        process(argv, log, os.getcwd()) as daemon,
    ):
        spawned = time.monotonic()
        if not _until(
            lambda: _subscribed(admin, len(DEFAULT_SERVICES)),
            deadline,
            lambda: daemon.poll() is None,
        ):
            raise RuntimeError(f"the daemon did not subscribe ({variant}; see {workdir})")
        subscribed = time.monotonic() - spawned
        if variant == "one WebSocket client":
            with websocket_client(api_port):
                time.sleep(settle)
                figures = _measure(daemon.pid)
        else:
            time.sleep(settle)
            figures = _measure(daemon.pid)
        stop(daemon, grace=15.0)
    return {**figures, "subscribed_s": subscribed}


def rows(r: Mapping[str, Any]) -> list[str]:
    """The benchmark's rows of the summary table."""
    idle = r["idle"]
    out = [
        f"| 9 | idle daemon following one speaker ({r['services']} services), default "
        f"configuration: RSS {r['settle']:g} s after subscribing | ≤ {TARGET_MB:g} MB | "
        f"{idle['rss_mb']:.1f} MB | {'met' if idle['rss_mb'] <= TARGET_MB else '**NOT MET**'} |"
    ]
    others = [(name, v) for name, v in r.items() if isinstance(v, dict) and name != "idle"]
    if others:
        out.append(
            "| 9 | the same with what loads on demand | (reported) | "
            + "; ".join(f"{name}: {v['rss_mb']:.1f} MB" for name, v in others)
            + " | - |"
        )
    return out


def section(r: Mapping[str, Any]) -> list[str]:
    """The report's section: each variant's figures."""
    lines = [
        "`twistd sonos-sim --speakers 1` and `twistd sonosd` with that speaker as `devices` "
        f"and the default configuration otherwise ({r['services']} services, text log at "
        f"info); figures {r['settle']:g} s after every subscription was granted and its "
        f"initial NOTIFY answered. Load average at start: {r['load_average']:.2f}.",
        "",
        "| daemon | RSS MB | peak MB | anonymous MB | file-backed MB | subscribed after |",
        "|---|---|---|---|---|---|",
    ]
    for name, v in r.items():
        if isinstance(v, dict):
            lines.append(
                f"| {name} | {v['rss_mb']:.1f} | {v['peak_mb']:.1f} | {v['anonymous_mb']:.1f} "
                f"| {v['file_mb']:.1f} | {v['subscribed_s']:.1f} s |"
            )
    return lines


if __name__ == "__main__":
    print(json.dumps(footprint(), indent=1))
