"""What the benchmark processes share: the fake household, child processes, /proc readings.

Every benchmark runs its parts in separate processes (receiver, load generator, WebSocket
clients) that talk to the orchestrator with one JSON object per line on stdout; a child runs
until its stdin closes (or its own bounded duration ends), then prints its result line and
exits. Timestamps are ``time.monotonic()``, one clock for every process of the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import attrs

from benchmarks.payloads import KINDS

#: SEQ carries the send time: ``seq = (monotonic - t0) * SEQ_PER_SECOND`` (10 µs units; 2^32
#: of them are 11.9 hours), so that a client can compute latency from the message alone.
SEQ_PER_SECOND = 100_000

SERVICES: tuple[str, ...] = tuple(sorted({service for service, _ in KINDS.values()}))


@attrs.frozen
class FakeSubscription:
    """One subscription of the fake household: a SID of one service of one speaker."""

    sid: str
    uid: str
    host: str
    service: str
    #: The SEQ of the subscription's last NOTIFY (the load generator's ``--contiguous``
    #: continues from it).
    seq: int = 0


def household(base: str, speakers: int) -> list[FakeSubscription]:
    """Subscriptions of ``speakers`` speakers on ``base`` (``127.A.B.2``), +1, +2, ...

    Each speaker has one subscription per service in ``SERVICES`` and sends its NOTIFYs from
    its own address, as the listener checks.
    """
    prefix, _, first = base.rpartition(".")
    result = []
    for index in range(speakers):
        uid = f"RINCON_B0BE{index:08X}01400"
        host = f"{prefix}.{int(first) + index}"
        for number, service in enumerate(SERVICES, start=1):
            sid = f"uuid:{uid}_sub{number:010d}"
            result.append(FakeSubscription(sid, uid, host, service))
    return result


def to_json(subscriptions: Sequence[FakeSubscription]) -> str:
    """The household as JSON (an argument of the child processes)."""
    return json.dumps([attrs.asdict(sub) for sub in subscriptions])


def from_json(text: str) -> list[FakeSubscription]:
    """The household from ``to_json``."""
    return [FakeSubscription(**item) for item in json.loads(text)]


def emit(obj: dict[str, Any]) -> None:
    """Write one JSON line to stdout (a child's message to the orchestrator)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


class Child:
    """A child process speaking JSON lines: ``read()`` the next line, ``finish()`` the last."""

    def __init__(self, module: str, *args: str) -> None:
        self.argv = [sys.executable, "-m", module, *args]
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def read(self) -> dict[str, Any]:
        """The next JSON line of the child; ``RuntimeError`` when it exited instead."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(10)
            raise RuntimeError(f"{' '.join(self.argv[2:4])} exited with status {code}")
        result: dict[str, Any] = json.loads(line)
        return result

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Close the child's stdin (its signal to stop) and read its result line."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        result = self.read()
        self.process.wait(timeout)
        return result

    def kill(self) -> None:
        """End the child if it is still running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def children() -> Iterator[list[Child]]:
    """A list to put children in; every one still running is killed on the way out."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in started:
            child.kill()


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid`` in MB (from /proc)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The ``fraction`` percentile (nearest rank) of already sorted values; 0 when empty."""
    if not sorted_values:
        return 0.0
    rank = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[rank]


def wait_until(check: Any, timeout: float, step: float = 0.05) -> bool:
    """Poll ``check()`` until true or ``timeout`` seconds passed; return the last result."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(step)
    return True
