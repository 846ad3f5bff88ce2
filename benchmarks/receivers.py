"""NOTIFY receivers under test, each run as a process of its own.

    python -m benchmarks.receivers KIND --household FILE [--clients-buffer N]

KIND is one of:

- ``bare``: a twisted.web resource that reads the body and answers 200 (the ceiling: HTTP
  handling only, no parse, no access log);
- ``soco_twisted``: ``soco.events_twisted``'s own ``Site(EventNotifyHandler())``, with a
  fake subscription per SID of the household in its ``subscriptions_map`` (so every body is
  really parsed by ``parse_event_xml`` and an ``Event`` handed to a counting callback);
- ``soco_threaded``: ``soco.events``' ``EventServer`` (a thread per request), likewise;
- ``sonosd``: the daemon's event path, assembled from its modules: ``NotifyListener`` (SID
  registry, source check, ``sonosd.gena.eventxml`` parse) → a subscription per SID → the
  ``EventProcessor`` (JSON variables, merged state, topology) → the ``Hub`` → the API site
  (``sonosd.api.site.ApiService``: WebSocket at ``/api/v1/ws``, SSE at ``/api/v1/events``).

Prints ``{"port": P, "api": A}`` once listening, runs until stdin closes, then prints
``{"events": N, ...}`` and exits.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import threading
import time
from pathlib import Path
from typing import Any

from zope.interface import implementer

from benchmarks.common import FakeSubscription, emit, from_json
from sonosd.gena.listener import INotifySubscription


class FakeService:
    """The part of a SoCo ``Service`` an event handler touches (no network, no cache)."""

    def __init__(self, service_id: str) -> None:
        self.service_id = service_id
        self.service_type = service_id

    def _update_cache_on_event(self, event: Any) -> None:
        """SoCo's base ``Service`` does nothing here either."""


class CountingSubscription:
    """A subscription as SoCo's listeners look it up: ``sid``, ``service``, ``send_event``."""

    counter = itertools.count(1)
    events = 0

    def __init__(self, sub: FakeSubscription) -> None:
        self.sid = sub.sid
        self.service = FakeService(sub.service)
        self.speaker_host = sub.host

    def send_event(self, event: Any) -> None:
        """Count the event (the cheapest possible callback)."""
        CountingSubscription.events = next(CountingSubscription.counter)

    def unsubscribe(self) -> None:
        """Nothing to end: the speakers are played by the load generator."""


def _stdin_closed(reactor: Any, then: Any) -> None:
    from twisted.internet import stdio
    from twisted.internet.protocol import Protocol

    class _Watch(Protocol):
        def connectionLost(self, reason: Any = None) -> None:
            then()

    stdio.StandardIO(_Watch())


def _finish(reactor: Any, **extra: Any) -> None:
    emit({"events": CountingSubscription.events, "cpu": time.process_time(), **extra})
    reactor.stop()


def run_bare(household: list[FakeSubscription]) -> None:
    """The ceiling: read the body, answer 200."""
    from twisted.internet import reactor as global_reactor
    from twisted.web import server
    from twisted.web.resource import Resource

    reactor: Any = global_reactor

    class Bare(Resource):
        isLeaf = True

        def render(self, request: server.Request) -> bytes:
            if request.content is not None:
                request.content.read()
            CountingSubscription.events = next(CountingSubscription.counter)
            return b""

    class QuietSite(server.Site):
        def log(self, request: Any) -> None:
            pass

    port = reactor.listenTCP(0, QuietSite(Bare()), interface="127.0.0.1", backlog=1024)
    emit({"port": port.getHost().port, "api": None})
    _stdin_closed(reactor, lambda: _finish(reactor))
    reactor.run()


def run_lean(household: list[FakeSubscription]) -> None:
    """sonosd's own NOTIFY protocol and port answering 200 to every request: its HTTP cost
    alone."""
    from twisted.internet import reactor as global_reactor

    from sonosd.gena.notifyport import listen
    from sonosd.gena.notifyproto import NotifyRequest, NotifyServerFactory

    reactor: Any = global_reactor

    class Count:
        def dispatch(self, request: NotifyRequest) -> int:
            CountingSubscription.events = next(CountingSubscription.counter)
            return 200

        def reject(self, reason: str, host: str | None = None, detail: str = "") -> None:
            """Nothing is refused in a benchmark."""

    factory = NotifyServerFactory(Count(), reactor, max_body=1 << 20, idle_timeout=30.0)
    port: Any = listen(reactor, 0, factory, 1024, "127.0.0.1")
    emit({"port": port.getHost().port, "api": None})
    _stdin_closed(reactor, lambda: _finish(reactor))
    reactor.run()


def run_soco_twisted(household: list[FakeSubscription]) -> None:
    """``soco.events_twisted``: its site and its ``subscriptions_map``."""
    from soco import events_twisted
    from twisted.internet import reactor as global_reactor
    from twisted.web.server import Site

    reactor: Any = global_reactor
    for sub in household:
        events_twisted.subscriptions_map.register(CountingSubscription(sub))
    port = reactor.listenTCP(
        0, Site(events_twisted.EventNotifyHandler()), interface="127.0.0.1", backlog=1024
    )
    emit({"port": port.getHost().port, "api": None})
    _stdin_closed(reactor, lambda: _finish(reactor))
    reactor.run()


def run_soco_threaded(household: list[FakeSubscription]) -> None:
    """``soco.events``: its threaded ``EventServer`` and ``subscriptions_map``."""
    from soco import events

    for sub in household:
        events.subscriptions_map.register(CountingSubscription(sub))
    server = events.EventServer(("127.0.0.1", 0), events.EventNotifyHandler)
    server.request_queue_size = 1024
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    emit({"port": server.server_address[1], "api": None})
    sys.stdin.read()
    server.shutdown()
    emit({"events": CountingSubscription.events, "cpu": time.process_time()})


@implementer(INotifySubscription)
class PipelineSubscription:
    """What ``sonosd.gena.Subscription`` does with a NOTIFY once the listener routed it.

    The SID is registered with the listener directly (no SUBSCRIBE: the load generator plays
    the speakers), and each event goes to ``EventProcessor.on_event`` as the supervisor's
    callback passes it.
    """

    def __init__(self, sub: FakeSubscription, processor: Any) -> None:
        from sonosd.household.state import SpeakerRef

        self.sid = sub.sid
        self.speaker_host = sub.host
        self.service = FakeService(sub.service)
        self.name = sub.service
        self.ref = SpeakerRef(uid=sub.uid, name=f"Room {sub.host}", host=sub.host)
        self.processor = processor

    def send_event(self, event: Any) -> None:
        """Publish the event through the processor and the hub."""
        CountingSubscription.events = next(CountingSubscription.counter)
        self.processor.on_event(self.ref, self.name, event)


def build_sonosd(reactor: Any, household: list[FakeSubscription], client_buffer: int) -> Any:
    """The assembled event path (see the module docstring); returns (listener, api, hub)."""
    from sonosd.api.site import ApiService
    from sonosd.config import ApiConfig
    from sonosd.delivery.hub import Hub
    from sonosd.gena.listener import NotifyListener
    from sonosd.household.events import EventProcessor
    from sonosd.household.state import HouseholdState

    hub = Hub(reactor, replay=10_000)
    state = HouseholdState()
    processor = EventProcessor(hub, state, reactor)
    hub.set_snapshot_provider(state.snapshot)
    listener = NotifyListener(reactor, interface="127.0.0.1", port=0)
    listener.startService()
    for sub in household:
        listener.register(PipelineSubscription(sub, processor))
    config = ApiConfig(
        listen="tcp:0:interface=127.0.0.1", client_buffer=client_buffer, heartbeat=0.0
    )
    api = ApiService(reactor, config, hub, state)
    api.startService()
    return listener, api, hub


SOAP_SAMPLE = str(
    Path(__file__).resolve().parents[2]
    / "shared/reference/samples/soap/AVTransport_GetPositionInfo_response_jishi.xml"
)


def slow_control_call(delay: float, response: bytes) -> dict[str, str]:
    """A stand-in for a SoCo control call against a slow speaker: wait, then parse the answer.

    The wait releases the GIL as a socket read does; the parse is SoCo's own SOAP handling.
    """
    from soco.xml import XML

    time.sleep(delay)
    tree = XML.fromstring(response)
    return {element.tag: element.text or "" for element in tree.iter()}


def start_control(reactor: Any, household: list[FakeSubscription], calls: int, delay: float) -> Any:
    """Keep ``calls`` control calls in flight through ``SocoRunner`` (one key per speaker)."""
    from sonosd.blocking import SocoRunner

    runner = SocoRunner(reactor, threads=10, timeout=30.0)
    runner.startService()
    with open(SOAP_SAMPLE, "rb") as file:
        response = file.read()
    hosts = sorted({sub.host for sub in household})
    done = itertools.count(1)
    state = {"done": 0}

    def one(index: int) -> None:
        d = runner.run(slow_control_call, delay, response, key=hosts[index % len(hosts)])

        def again(_: object) -> None:
            state["done"] = next(done)
            if runner.running:
                one(index + calls)

        d.addBoth(again)

    for index in range(calls):
        one(index)
    return runner, state


def run_sonosd(
    household: list[FakeSubscription], client_buffer: int, control: int, delay: float
) -> None:
    """The daemon's event path with its API site (and, optionally, control calls in flight)."""
    from twisted.internet import reactor as global_reactor

    from sonosd.memory import freeze_startup_heap

    reactor: Any = global_reactor
    listener, api, hub = build_sonosd(reactor, household, client_buffer)
    # As the daemon does once its doors are open, before anything is in flight (sonosd.tap).
    freeze_startup_heap()
    runner, control_state = (
        start_control(reactor, household, control, delay) if control else (None, {"done": 0})
    )

    def listening(port: Any) -> None:
        emit({"port": listener.port, "api": port.getHost().port})

    api.listening.addCallback(listening)

    def finish() -> None:
        _finish(
            reactor,
            accepted=listener.accepted,
            rejected=dict(listener.rejected),
            published=hub.published,
            control_calls=control_state["done"],
        )
        if runner is not None:
            runner.stopService()

    _stdin_closed(reactor, finish)
    reactor.run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("bare", "lean", "soco_twisted", "soco_threaded", "sonosd"))
    parser.add_argument("--household", required=True)
    parser.add_argument("--client-buffer", type=int, default=10_000)
    parser.add_argument("--control", type=int, default=0, help="control calls kept in flight")
    parser.add_argument("--control-delay", type=float, default=0.05)
    args = parser.parse_args()
    with open(args.household) as file:
        household = from_json(file.read())
    if args.kind == "bare":
        run_bare(household)
    elif args.kind == "lean":
        run_lean(household)
    elif args.kind == "soco_twisted":
        run_soco_twisted(household)
    elif args.kind == "soco_threaded":
        run_soco_threaded(household)
    else:
        run_sonosd(household, args.client_buffer, args.control, args.control_delay)


if __name__ == "__main__":
    main()
