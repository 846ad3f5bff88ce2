"""The simulator's scale figures of docs/simulator.md ("What it models", **Scale**).

Builds a household of ``--speakers`` speakers (``HouseholdService``), starts it (one listening
port per speaker address on loopback), then measures, with no subscriber: a topology change
(a join and an unjoin, each one ZoneGroupState built and handed to every speaker) and the
ZoneGroupState's size; and SoCo ``GetVolume`` round trips against the first speaker. Prints
one line per figure. The reactor runs in a thread; SoCo calls come from the main thread.

    .venv/bin/python benchmarks/sim_scale.py --speakers 100 --calls 200

Loopback only: the household takes ``--base-address`` and the following addresses.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import soco
from twisted.internet import reactor as _reactor
from twisted.internet import threads

from sonosd.config import SimulateConfig
from sonosd.sim.service import HouseholdService

#: The global reactor, run in a thread here (typed loosely: it provides every interface).
reactor: Any = _reactor


def rss_kib() -> int:
    """The process's peak resident set size so far, in KiB (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def measure(speakers: int, base_address: str, calls: int) -> dict[str, float]:
    """The figures, in milliseconds and bytes; the reactor must be running in another thread."""
    figures: dict[str, float] = {}
    before = rss_kib()
    started = time.perf_counter()
    service: HouseholdService = threads.blockingCallFromThread(
        reactor,
        HouseholdService,
        reactor,
        SimulateConfig(speakers=speakers, base_address=base_address, large_household=False),
    )
    built = time.perf_counter()
    threads.blockingCallFromThread(reactor, service.startService)
    listening = time.perf_counter()
    figures["build_ms"] = (built - started) * 1000
    figures["listen_ms"] = (listening - built) * 1000
    figures["start_ms"] = (listening - started) * 1000
    figures["rss_growth_kib"] = rss_kib() - before
    household = service.household
    first, second = household.speakers[0], household.speakers[1]

    def regroup() -> float:
        began = time.perf_counter()
        household.join(second, first)
        household.unjoin(second)
        return (time.perf_counter() - began) * 1000 / 2

    changes = [threads.blockingCallFromThread(reactor, regroup) for _ in range(20)]
    figures["topology_change_ms"] = statistics.median(changes)
    figures["zgs_bytes"] = len(household.zone_group_state().encode())
    device = soco.SoCo(first.address)
    device.volume  # noqa: B018 - the first call fetches the SCPDs; not a round trip
    trips = []
    for _ in range(calls):
        began = time.perf_counter()
        device.renderingControl.GetVolume([("InstanceID", 0), ("Channel", "Master")])
        trips.append((time.perf_counter() - began) * 1000)
    figures["get_volume_ms"] = statistics.median(trips)
    threads.blockingCallFromThread(reactor, service.stopService)
    return figures


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=100)
    parser.add_argument("--base-address", default="127.0.70.2")
    parser.add_argument("--calls", type=int, default=200, help="GetVolume round trips")
    args = parser.parse_args(argv)
    thread = threading.Thread(
        target=reactor.run,
        kwargs={"installSignalHandlers": False},
        daemon=True,
    )
    thread.start()
    try:
        figures = measure(args.speakers, args.base_address, args.calls)
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(10)
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    return figures


if __name__ == "__main__":
    main()
