"""What building one NOTIFY body costs the simulator (docs/simulator-gena.md, Performance).

Run: ``.venv/bin/python benchmarks/sim_body_cost.py [--count N] [--rounds R]``

Prints the microseconds per ``build_propertyset`` call (the best of ``--rounds`` rounds of
``--count`` calls; the machine is shared) for:

- ``volume_change_us``: a RenderingControl volume change (three channels);
- ``track_change_us``: an AVTransport track change with a DIDL not built before (~2 KB,
  escaped twice), the changes ``sim_notify_rate.py`` feeds;
- ``zone_group_state_us``: the same long ZoneGroupState sent again (its escaped form cached).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.sim_notify_rate import _avt_change, _rc_change
from sonosd.sim.propertyset import EventValue, build_propertyset


def per_call_us(changes: list[tuple[str, Mapping[str, EventValue]]], rounds: int) -> float:
    """Microseconds per body over ``changes``, the best of ``rounds``."""
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for service, variables in changes:
            build_propertyset(service, variables)
        best = min(best, time.perf_counter() - start)
    return best / len(changes) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    state = "<ZoneGroupState>" + "<ZoneGroup/>" * 500 + "</ZoneGroupState>"
    kinds: dict[str, Callable[[int], tuple[str, Mapping[str, EventValue]]]] = {
        "volume_change_us": lambda n: ("RenderingControl", _rc_change(rng)),
        "track_change_us": lambda n: ("AVTransport", _avt_change(rng)),
        "zone_group_state_us": lambda n: ("ZoneGroupTopology", {"ZoneGroupState": state}),
    }
    for name, make in kinds.items():
        changes = [make(n) for n in range(args.count)]
        # One round of track changes: a second would meet DIDLs already escaped.
        rounds = 1 if name == "track_change_us" else args.rounds
        print(f"{name}: {per_call_us(changes, rounds):.2f}")


if __name__ == "__main__":
    main()
