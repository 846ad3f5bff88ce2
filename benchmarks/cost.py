"""Benchmark 6: CPU microseconds per event for each kind of body, and where the time goes.

In one process, without sockets: for each kind (``benchmarks.payloads.KINDS``) a pool of
distinct bodies goes through the daemon's per-event work after HTTP (``sonosd.gena.eventxml``
parse, ``Event``, ``EventProcessor.on_event``: JSON variables, merged state, topology, hub
serialisation and the WebSocket frame prepared once), and, for comparison, through SoCo's
``parse_event_xml`` without its cache. CPU time (``time.process_time``), best of ``rounds``.
A cProfile of the mixed payload gives the top functions.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Callable
from typing import Any

from soco.events_base import Event
from soco.events_base import parse_event_xml as soco_parse_cached
from zope.interface import implementer

from benchmarks.payloads import KINDS, MIX, BodyMaker, service_of
from sonosd.delivery.hub import ISink

soco_parse = soco_parse_cached.__wrapped__


@implementer(ISink)
class _FrameSink:
    """A hub sink that prepares one autobahn frame per message, as the WebSocket channel does."""

    def __init__(self) -> None:
        from autobahn.twisted.websocket import WebSocketServerFactory

        self.factory = WebSocketServerFactory()
        self.frames = 0

    def deliver(self, message: Any) -> None:
        self.factory.prepareMessage(message.raw)
        self.frames += 1


def daemon_path() -> Callable[[str, bytes, int], Any]:
    """``handle(kind, body, seq)``: the daemon's work on one NOTIFY body after HTTP."""
    from sonosd.delivery.hub import Hub
    from sonosd.gena.eventxml import parse_event_xml
    from sonosd.household.events import EventProcessor
    from sonosd.household.state import HouseholdState, SpeakerRef

    class _Clock:
        def seconds(self) -> float:
            return time.time()

    hub = Hub(_Clock(), replay=10_000)  # type: ignore[arg-type]
    hub.add_sink(_FrameSink())
    processor = EventProcessor(hub, HouseholdState(), _Clock())  # type: ignore[arg-type]
    ref = SpeakerRef(uid="RINCON_B0BE0000000001400", name="Kitchen", host="127.0.0.2")

    def handle(kind: str, body: bytes, seq: int) -> Any:
        variables = parse_event_xml(body)
        event = Event("uuid:sid", str(seq), None, 0.0, variables)
        return processor.on_event(ref, service_of(kind), event)

    return handle


def _time_per_call(fn: Callable[[int], Any], n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for i in range(n):
            fn(i)
        best = min(best, time.process_time() - start)
    return 1e6 * best / n


def _kind_costs(
    kind: str,
    bodies: list[bytes],
    handle: Callable[[str, bytes, int], Any],
    parse: Callable[[bytes], Any],
    pool: int,
    rounds: int,
) -> dict[str, float]:
    position = [0]

    def next_body() -> bytes:
        position[0] += 1
        return bodies[position[0] % len(bodies)]

    def daemon(i: int) -> Any:
        return handle(kind, next_body(), i)

    def ours(i: int) -> Any:
        return parse(next_body())

    def theirs(i: int) -> Any:
        return soco_parse(next_body())

    return {
        "bytes": sum(map(len, bodies)) / len(bodies),
        "daemon": _time_per_call(daemon, pool, rounds),
        "sonosd_parse": _time_per_call(ours, pool, rounds),
        "soco_parse": _time_per_call(theirs, pool, rounds),
    }


def cost(pool: int = 600, rounds: int = 3, profile_events: int = 3000) -> dict[str, Any]:
    """µs per event per kind (daemon path, SoCo parse, sonosd parse) and a profile summary."""
    from sonosd.gena.eventxml import parse_event_xml

    handle = daemon_path()
    maker = BodyMaker(seed=11)
    per_kind: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        # Distinct bodies for each round, so no cache sees one twice.
        bodies = [maker.body(kind) for _ in range(pool * rounds)]
        per_kind[kind] = _kind_costs(kind, bodies, handle, parse_event_xml, pool, rounds)
    mixed = [maker.make() for _ in range(profile_events)]
    profiler = cProfile.Profile()
    profiler.enable()
    for seq, (kind, body) in enumerate(mixed):
        handle(kind, body, seq)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(15)
    return {"per_kind": per_kind, "profile": _trim(out.getvalue()), "mix": dict(MIX)}


def _trim(text: str) -> str:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(
        line.replace("/work/main/.venv/lib/python3.11/site-packages/", "").replace(
            "/work/main/", ""
        )
        for line in lines[start:]
        if line.strip()
    )
