"""Where a ``twistd sonosd`` process's memory is: a probe for memory investigations.

    python -m benchmarks.memprobe OUT.jsonl [--events N]

runs benchmark 7 (``benchmarks.daemon``, one round, no contenders, 60 s settle) with the
daemon started through this module, which installs a ``SIGUSR2`` handler before running
``twistd``; the benchmark's three RSS readings (once subscribed, at the end of the load, 60 s
later) each send the signal first. Each signal appends one JSON line to ``OUT.jsonl``:
``/proc/self/smaps_rollup`` (RSS, anonymous), glibc's ``mallinfo2`` (heap in use and free,
kB), CPython's small-object arenas (``sys._debugmallocstats``), the objects the garbage
collector tracks by type, and the daemon's own holdings found among them: the hub's replay
ring, the SoCo runner's waiting calls, each client's queue, the merged state as JSON.
``benchmarks/memory.md`` was written from these lines. Not part of ``make bench``.
"""

from __future__ import annotations

import collections
import ctypes
import gc
import json
import os
import signal
import sys
import tempfile
import threading
import time
from types import FrameType
from typing import Any


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _pymalloc() -> dict[str, int]:
    """CPython's arena figures, from ``sys._debugmallocstats`` (which writes to fd 2)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    figures: dict[str, int] = {}
    for line in text.splitlines():
        for name in (
            "arenas allocated current",
            "arenas highwater mark",
            "bytes in allocated blocks",
            "bytes in available blocks",
        ):
            if line.startswith("# " + name):
                figures[name] = int(line.split("=")[1].strip().replace(",", ""))
    return figures


def _holdings(objects: list[Any]) -> dict[str, Any]:
    """What the daemon's own objects hold, found by their class names."""
    found: dict[str, Any] = {"client_queues": []}
    for obj in objects:
        name = type(obj).__name__
        if name == "Hub" and hasattr(obj, "ring"):
            found["ring_messages"] = len(obj.ring)
            found["ring_kb"] = obj.ring.stored_bytes // 1024
            found["ring_json_kb"] = obj.ring.json_bytes // 1024
        elif name == "SocoRunner":
            found["runner_waiting"] = len(getattr(obj, "_pending", ()))
        elif name == "ClientQueue":
            found["client_queues"].append(len(getattr(obj, "_pending", ())))
        elif name == "HouseholdState":
            import orjson

            found["state_kb"] = len(orjson.dumps(obj.snapshot(), default=str)) // 1024
    return found


def probe(path: str) -> dict[str, Any]:
    """One reading of this process's memory, appended to ``path`` as a JSON line."""
    reading: dict[str, Any] = {"time": time.time()}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if parts[0] in ("Rss:", "Anonymous:"):
                reading[parts[0][:-1].lower() + "_kb"] = int(parts[1])
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _Mallinfo2
    info = libc.mallinfo2()
    reading["glibc_heap_kb"] = info.arena // 1024
    reading["glibc_in_use_kb"] = info.uordblks // 1024
    reading["glibc_free_kb"] = info.fordblks // 1024
    reading["glibc_mmap_kb"] = info.hblkhd // 1024
    reading["pymalloc"] = _pymalloc()
    objects = gc.get_objects()
    reading["gc_objects"] = len(objects)
    reading["types"] = collections.Counter(type(o).__name__ for o in objects).most_common(12)
    reading.update(_holdings(objects))
    reading["threads"] = threading.active_count()
    del objects
    with open(path, "a") as out:
        out.write(json.dumps(reading) + "\n")
    return reading


def twistd_main(path: str, argv: list[str]) -> None:
    """Run ``twistd argv`` with the probe on ``SIGUSR2``."""

    def on_signal(number: int, frame: FrameType | None) -> None:
        probe(path)

    signal.signal(signal.SIGUSR2, on_signal)
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", *argv]
    run()


def main() -> None:
    """``python -m benchmarks.memprobe OUT.jsonl [--events N]`` (see the module docstring);
    ``MEMPROBE_OUT`` set: run ``twistd`` with the probe (how the benchmark starts it)."""
    out = os.environ.get("MEMPROBE_OUT")
    if out is not None:
        twistd_main(out, sys.argv[1:])
        return
    import benchmarks.daemon as bench
    from benchmarks.common import rss_mb
    from benchmarks.scale import daemon_argv

    path = os.path.abspath(sys.argv[1])
    events = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--events" else 100_000
    os.environ["MEMPROBE_OUT"] = path

    def signalled_rss(pid: int) -> float:
        if threading.current_thread() is threading.main_thread():
            os.kill(pid, signal.SIGUSR2)
            time.sleep(3.0)
        return rss_mb(pid)

    wrapper = os.path.join(os.path.dirname(path), "memprobe-twistd")
    with open(wrapper, "w") as script:
        script.write(f'#!/bin/sh\nexec {sys.executable} -m benchmarks.memprobe "$@"\n')
    os.chmod(wrapper, 0o755)
    # Only the daemon runs under the wrapper (the simulator keeps plain twistd).
    bench.daemon_argv = lambda config_path: [wrapper, *daemon_argv(config_path)[1:]]
    bench.rss_mb = signalled_rss
    result = bench.daemon(
        rounds=1, count=events, duration=max(60.0, events / 500), contenders=(), settle=60.0
    )
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
