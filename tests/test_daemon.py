"""End-to-end tests: the whole daemon (``SonosdService``) against its simulated household.

Everything is real and runs in this process on the real reactor: the simulator's speakers on
their own 127.A.B.x addresses, SoCo in the thread pool, GENA, the NOTIFY listener, the hub, the
API site with real SSE, WebSocket and HTTP clients, and the configured Python callbacks.
"""

from __future__ import annotations

import io
import json
import re
import sys
import threading
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import soco.events_base
import soco.services
import treq
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from sonosd.config import ConfigError, SimulateConfig, Token, parse_config
from sonosd.delivery.hub import Message
from sonosd.delivery.ring import BLOCK_MESSAGES
from sonosd.service import SonosdService
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import SseClient, WsClient, connect_raw, connect_ws, sse_request
from tests.conftest import free_loopback_base
from tests.daemon_helpers import (
    CALLBACK_CALLS,
    ROOMS,
    Recorder,
    callback_calls,
    check_schema,
    daemon_yaml,
    free_tcp_port,
    http_agent,
    is_volume_event,
    reactor,
    until,
)
from tests.paths import ROOT

CALLBACK = "tests.daemon_helpers:record_callback"


class RecordingHousehold(HouseholdService):
    """The simulated household, noting which subscriptions it still held when told to stop.

    The daemon stops its simulator after its supervisor, so what is left at that moment is
    what the daemon failed to UNSUBSCRIBE (stopping the simulator forgets everything anyway).
    """

    def __init__(self, reactor: Any, config: SimulateConfig) -> None:
        super().__init__(reactor, config)
        self.left_at_stop: dict[str, list[str]] | None = None

    def stopService(self) -> Deferred[Any]:
        self.left_at_stop = {
            speaker.uid: [
                sub["service"]
                for sub in speaker.manager.subscriptions()  # type: ignore[union-attr]
            ]
            for speaker in self.household.speakers
        }
        return super().stopService()


@attrs.define
class Daemon:
    """A running daemon and the ways the tests look at it."""

    service: SonosdService
    sim: RecordingHousehold
    recorder: Recorder
    host: str
    port: int

    @property
    def speakers(self) -> list[Speaker]:
        return list(self.sim.household.speakers)

    @property
    def services(self) -> tuple[str, ...]:
        return self.service.config.services

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def sim_subscriptions(self, speaker: Speaker) -> list[dict[str, Any]]:
        manager: Any = speaker.manager
        return list(manager.subscriptions())

    def settled(self) -> bool:
        """Whether every service of every speaker delivered its initial (SEQ 0) event."""
        return all(
            self.recorder.initial_events(speaker.uid, service)
            for speaker in self.speakers
            for service in self.services
        )

    def volume_events(self, speaker: Speaker, volume: int) -> list[Message]:
        return [
            m
            for m in self.recorder.of("event", speaker.uid, "RenderingControl")
            if is_volume_event(m.body, speaker.uid, volume)
        ]


def message_ids(messages: list[dict[str, Any]]) -> list[int]:
    """The ids of the hub messages among what a client received (not snapshots or resets)."""
    return [m["id"] for m in messages if isinstance(m.get("id"), int)]


def new_volume(speaker: Speaker, *avoid: int) -> int:
    """A volume different from the speaker's current one and from ``avoid``."""
    current = speaker.rendering.volume
    return next(v for v in range(11, 90, 7) if v != current and v not in avoid)


class DaemonTests(TestCase):
    """The daemon's promises, checked from outside with real clients."""

    timeout = 120

    async def daemon_with_every_push_sink(self) -> Daemon:
        """A daemon with a callback, a webhook and an MQTT sink (nothing listens for the last
        two)."""
        return await self.daemon(
            callbacks=(CALLBACK,),
            sinks={
                "webhooks": [{"url": f"http://127.0.0.1:{free_tcp_port()}/hook"}],
                "mqtt": {"host": "127.0.0.1", "port": free_tcp_port()},
            },
        )

    async def daemon(
        self,
        callbacks: tuple[str, ...] = (),
        advertise: str | None = None,
        sinks: dict[str, Any] | None = None,
        api: dict[str, Any] | None = None,
        settle: Callable[[SonosdService], object] | None = None,
    ) -> Daemon:
        """Start a daemon with a simulated household of three speakers; stop it at cleanup.

        @param advertise: ``listener.advertise`` (an address the speakers cannot reach makes
            their NOTIFYs fail).
        @param sinks: More of the ``sinks`` section.
        @param api: More of the ``api`` section.
        @param settle: Given to the service as its ``settle``, called with the service.
        """
        base = free_loopback_base()
        document = json.loads(daemon_yaml(base, callbacks=callbacks))
        document.setdefault("sinks", {}).update(sinks or {})
        document["api"].update(api or {})
        config = parse_config(json.dumps(document), "daemon-test.yaml")
        if advertise is not None:
            config = attrs.evolve(
                config, listener=attrs.evolve(config.listener, advertise=advertise)
            )
        households: list[RecordingHousehold] = []

        def household(reactor: Any, simulate: SimulateConfig) -> RecordingHousehold:
            households.append(RecordingHousehold(reactor, simulate))
            return households[0]

        built: list[SonosdService] = []
        service = SonosdService(
            config,
            reactor,
            household_factory=household,
            settle=None if settle is None else lambda: settle(built[0]),
        )
        built.append(service)
        recorder = Recorder()
        service.hub.add_sink(recorder)
        service.startService()

        def stop() -> Deferred[Any] | None:
            return service.stopService() if service.running else None

        self.addCleanup(stop)
        self.addCleanup(check_schema, recorder, service.hub)
        port = await service.api.listening
        address: Any = port.getHost()
        self.assertIs(service.api.port, port)
        return Daemon(service, households[0], recorder, address.host, address.port)

    async def started(self, callbacks: tuple[str, ...] = ()) -> Daemon:
        """A daemon whose every subscription delivered its initial event."""
        daemon = await self.daemon(callbacks)
        await until(daemon.settled, "the initial event of every service of every speaker")
        return daemon

    async def sse(self, daemon: Daemon, headers: dict[str, str] | None = None) -> SseClient:
        client = SseClient(sse_request("/api/v1/events", headers))
        await connect_raw(daemon.host, daemon.port, client, self)
        await until(lambda: client.messages(), "the first SSE message")
        return client

    async def set_office_volume(self, daemon: Daemon) -> int:
        """POST /speakers/Office/volume with a new volume; assert 200; the volume."""
        volume = new_volume(daemon.speakers[2])
        http = treq.client.HTTPClient(http_agent(self))
        response = await http.post(
            daemon.url("/api/v1/speakers/Office/volume"),
            data=json.dumps({"volume": volume}).encode(),
            headers=Headers({b"Content-Type": [b"application/json"]}),
        )
        body = await response.text()
        self.assertEqual(response.code, 200, body)
        return volume

    async def test_initial_state(self) -> None:
        """Every configured service of every speaker delivers SEQ 0 once, into the state too."""
        daemon = await self.started()
        self.assertEqual([s.name for s in daemon.speakers], list(ROOMS))
        for speaker in daemon.speakers:
            for service in daemon.services:
                self.assertEqual(len(daemon.recorder.initial_events(speaker.uid, service)), 1)
                mark = daemon.service.state.mark(speaker.uid, service)
                assert mark is not None, service
                self.assertEqual(mark.seq, 0, service)
            self.assertEqual(len(daemon.sim_subscriptions(speaker)), len(daemon.services))
            self.assertEqual(
                daemon.service.state.availability(speaker.uid).status, "online", speaker.name
            )
        self.assertEqual(daemon.recorder.of("subscription.lost"), [])

    async def test_sse_and_websocket_follow_a_change(self) -> None:
        """SSE and WebSocket clients get the snapshot, then a change made on a speaker."""
        daemon = await self.started()
        kitchen = daemon.speakers[0]
        sse = await self.sse(daemon)
        ws = await connect_ws(self, daemon.host, daemon.port)
        await until(lambda: ws.messages, "the WebSocket snapshot")
        for first in (sse.messages()[0], ws.messages[0]):
            self.assertEqual(first["type"], "snapshot")
            self.assertEqual(
                {s["uid"] for s in first["speakers"]}, {s.uid for s in daemon.speakers}
            )
            self.assertGreaterEqual(first["last_id"], len(daemon.speakers) * len(daemon.services))
        volume = new_volume(kitchen)
        kitchen.set_volume(volume)

        def seen(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [m for m in messages if is_volume_event(m, kitchen.uid, volume)]

        await until(lambda: seen(sse.messages()), "the change over SSE")
        await until(lambda: seen(ws.messages), "the change over the WebSocket")
        published = daemon.volume_events(kitchen, volume)
        self.assertEqual(len(published), 1)
        self.assertEqual(seen(sse.messages()), [published[0].body])
        self.assertEqual(seen(ws.messages), [published[0].body])
        self.assertEqual(seen(sse.messages())[0]["source"], "notify")

    async def test_sse_resumes_with_last_event_id(self) -> None:
        """An SSE client that reconnects with Last-Event-ID gets every missed message once."""
        daemon = await self.started()
        office = daemon.speakers[2]
        first = await self.sse(daemon)
        last_id = first.messages()[0]["last_id"]
        first.close()
        await first.closed
        missed = new_volume(office)
        office.set_volume(missed)
        await until(lambda: daemon.volume_events(office, missed), "the missed change")
        run = daemon.service.hub.run
        second = await self.sse(daemon, {"Last-Event-ID": f"{run}:{last_id}"})
        later = new_volume(office, missed)
        office.set_volume(later)
        await until(
            lambda: any(is_volume_event(m, office.uid, later) for m in second.messages()),
            "the live change after the replay",
        )
        ids = message_ids(second.messages())
        self.assertNotIn("snapshot", [m["type"] for m in second.messages()])
        self.assertEqual(ids, list(range(last_id + 1, last_id + 1 + len(ids))))
        self.assertEqual(ids[-1], daemon.service.hub.last_id)
        self.assertTrue(any(is_volume_event(m, office.uid, missed) for m in second.messages()))

    async def test_sse_resume_across_compressed_blocks_is_exact(self) -> None:
        """A client that missed more messages than a block of the replay ring holds (so its
        replay starts in a compressed block) gets every missed message once, each exactly the
        JSON that was published."""
        daemon = await self.started()
        first = await self.sse(daemon)
        last_id = first.messages()[0]["last_id"]
        first.close()
        await first.closed
        while daemon.service.hub.last_id < last_id + BLOCK_MESSAGES + 10:
            changes = [
                (speaker, volume, len(daemon.volume_events(speaker, volume)))
                for speaker in daemon.speakers
                for volume in [new_volume(speaker)]
            ]
            for speaker, volume, _ in changes:
                speaker.set_volume(volume)

            def arrived(changes: list[tuple[Speaker, int, int]] = changes) -> bool:
                return all(len(daemon.volume_events(s, v)) > n for s, v, n in changes)

            await until(arrived, "the missed changes")
        published = {m.id: json.loads(m.raw) for m in daemon.recorder.messages}
        newest = daemon.service.hub.last_id
        run = daemon.service.hub.run
        second = await self.sse(daemon, {"Last-Event-ID": f"{run}:{last_id}"})
        await until(lambda: newest in message_ids(second.messages()), "the whole replay")
        replayed = [m for m in second.messages() if isinstance(m.get("id"), int)]
        self.assertEqual(message_ids(replayed), list(range(last_id + 1, newest + 1)))
        self.assertEqual(replayed, [published[m["id"]] for m in replayed])

    async def test_websocket_resumes_with_last_id(self) -> None:
        """A WebSocket client that reconnects with last_id gets every missed message once."""
        daemon = await self.started()
        room = daemon.speakers[1]
        first = await connect_ws(self, daemon.host, daemon.port)
        early = new_volume(room)
        room.set_volume(early)
        await until(
            lambda: any(is_volume_event(m, room.uid, early) for m in first.messages),
            "the first change",
        )
        last_id = message_ids(first.messages)[-1]
        first.dropConnection(abort=True)
        await first.closed
        missed = new_volume(room, early)
        room.set_volume(missed)
        await until(lambda: daemon.volume_events(room, missed), "the missed change")
        query = f"last_id={last_id}&run={daemon.service.hub.run}"
        second = await connect_ws(self, daemon.host, daemon.port, query)
        later = new_volume(room, early, missed)
        room.set_volume(later)
        await until(
            lambda: any(is_volume_event(m, room.uid, later) for m in second.messages),
            "the live change after the replay",
        )
        ids = message_ids(second.messages)
        self.assertNotIn("snapshot", [m["type"] for m in second.messages])
        self.assertEqual(ids, list(range(last_id + 1, last_id + 1 + len(ids))))
        self.assertTrue(any(is_volume_event(m, room.uid, missed) for m in second.messages))
        self.assertFalse(set(ids) & set(message_ids(first.messages)))

    async def test_the_configured_replay_buffer_bounds_what_a_client_may_resume(self) -> None:
        """docs/api.md, Resuming without loss: the daemon keeps the last ``api.replay_buffer``
        messages: a WebSocket client resuming from an id among them gets every later one, one
        resuming from an id pushed out of them gets a reset and a fresh snapshot."""
        daemon = await self.daemon(api={"replay_buffer": 20})
        await until(daemon.settled, "the initial event of every service of every speaker")
        room, hub = daemon.speakers[0], daemon.service.hub
        while hub.last_id < 45:
            before = hub.last_id
            room.set_volume(new_volume(room))
            await until(lambda b=before: hub.last_id > b, "the volume change")
        run, last = hub.run, hub.last_id
        gone = await connect_ws(self, daemon.host, daemon.port, f"last_id={last - 21}&run={run}")
        kept = await connect_ws(self, daemon.host, daemon.port, f"last_id={last - 10}&run={run}")
        await until(lambda: len(gone.messages) >= 2, "the reset and the snapshot")
        self.assertEqual([m["type"] for m in gone.messages[:2]], ["reset", "snapshot"])
        self.assertIn("not in the replay buffer", gone.messages[0]["reason"])
        await until(lambda: len(message_ids(kept.messages)) >= 10, "the kept messages")
        self.assertEqual(message_ids(kept.messages)[:10], list(range(last - 9, last + 1)))
        self.assertNotIn("snapshot", [m["type"] for m in kept.messages])

    async def test_the_configured_client_buffer_bounds_every_streaming_client(self) -> None:
        """docs/api.md, Backpressure: every streaming client (WebSocket, SSE, the stream) has
        a queue of ``api.client_buffer`` messages: one that stops reading is disconnected once
        more than that many wait (the WebSocket and the stream say how many; SSE's dropped
        frames count them, one message a turn)."""
        from twisted.internet import reactor
        from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

        from tests.sinks.test_stream import LineClient

        directory = Path(self.mktemp())
        directory.mkdir()
        path = f"{directory}/stream.sock"
        daemon = await self.daemon(api={"client_buffer": 3}, sinks={"stream": f"unix:{path}"})
        await until(daemon.settled, "the initial event of every service of every speaker")
        service = daemon.service
        assert service.stream is not None
        channels = (
            service.api.websocket.channel,
            service.api.events.channel,
            service.stream.factory.channel,
        )
        ws = await connect_ws(self, daemon.host, daemon.port)
        sse = await self.sse(daemon)
        line = LineClient()
        await connectProtocol(UNIXClientEndpoint(reactor, path), line)
        self.addCleanup(lambda: None if line.closed.called else line.transport.abortConnection())
        await until(lambda: all(len(c.clients) == 1 for c in channels), "the three clients")
        clients = (ws, sse, line)
        for client in clients:
            client.transport.pauseProducing()  # type: ignore[union-attr]
        kitchen = daemon.speakers[0]
        speaker = {"uid": kitchen.uid, "name": kitchen.name, "host": kitchen.address}
        for _ in range(3000):
            if not any(c.clients for c in channels):
                break
            service.hub.publish(
                "event",
                {"seq": None, "source": "resync", "variables": {"pad": "x" * 65536}},
                speaker=speaker,
                service="RenderingControl",
            )
            await deferLater(reactor, 0)
        for client in clients:
            client.transport.resumeProducing()  # type: ignore[union-attr]
        self.assertEqual(await ws.closed, (1008, "too slow: more than 3 messages behind"))
        await line.closed
        self.assertEqual(
            line.lines()[-1],
            {"type": "disconnected", "reason": "too slow: more than 3 messages behind"},
        )
        await sse.closed
        self.assertTrue(sse.body.endswith(b": disconnected: too slow\n\n"))
        self.assertEqual(service.api.metrics.dropped.labels("sse")._value.get(), 4)

    async def test_the_configured_heartbeat_keeps_idle_streams_alive(self) -> None:
        """docs/api.md: every ``api.heartbeat`` seconds the server pings a WebSocket client and
        sends an idle SSE stream a keepalive comment (here 1 s, the shortest ping interval)."""
        daemon = await self.daemon(api={"heartbeat": 1})
        await until(daemon.settled, "the initial event of every service of every speaker")
        ws = await connect_ws(self, daemon.host, daemon.port)
        sse = await self.sse(daemon)

        def kept_alive() -> bool:
            comments = [c for e in sse.events() for c in e.get("comments", [])]
            return ws.pings >= 1 and "keepalive" in comments

        await until(kept_alive, "a ping and a keepalive comment")
        self.assertEqual(len(daemon.service.api.websocket.channel.clients), 1)

    async def test_python_callback(self) -> None:
        """A callback named in sinks.callbacks gets each message's JSON and its SoCo Event."""
        del CALLBACK_CALLS[:]
        daemon = await self.started(callbacks=(CALLBACK,))
        kitchen = daemon.speakers[0]
        volume = new_volume(kitchen)
        kitchen.set_volume(volume)
        await until(
            lambda: [b for b, _ in callback_calls() if is_volume_event(b, kitchen.uid, volume)],
            "the change at the callback",
        )
        [(body, event)] = [
            (b, e) for b, e in callback_calls() if is_volume_event(b, kitchen.uid, volume)
        ]
        [message] = daemon.volume_events(kitchen, volume)
        self.assertEqual(body, message.body)
        # The message carries the daemon's SoCo-free event; the callback gets SoCo's, made
        # from it in the callback's thread (sonosd.household.speaker.soco_event).
        self.assertIsInstance(event, soco.events_base.Event)
        self.assertEqual((event.sid, event.seq), (message.event.sid, message.event.seq))
        self.assertIsInstance(event.service, soco.services.RenderingControl)
        self.assertEqual(event.service.soco.ip_address, kitchen.address)
        self.assertEqual(event.service.service_type, "RenderingControl")
        self.assertEqual(event.variables["volume"]["Master"], str(volume))
        self.assertEqual(event.seq, str(body["seq"]))
        online = [(b, e) for b, e in callback_calls() if b["type"] == "speaker.online"]
        self.assertEqual(len(online), len(daemon.speakers))
        # The daemon's own messages come with no SoCo event.
        self.assertEqual({e for _, e in online}, {None})

    async def test_a_blocking_callback_delays_nothing_else(self) -> None:
        """A callable that blocks on its first message (in its own thread) delays neither a
        command through the API, nor the SSE stream, nor another callable; once it returns it
        gets every message, one at a time, in order (docs/callbacks.md)."""
        gate = threading.Event()
        self.addCleanup(gate.set)
        held: list[int] = []

        def hold(body: dict[str, Any], event: Any) -> None:
            held.append(body["id"])
            gate.wait(60)

        module = types.ModuleType("sonosd_test_blocking_callback")
        module.hold = hold  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        del CALLBACK_CALLS[:]
        daemon = await self.started(callbacks=(f"{module.__name__}:hold", CALLBACK))
        client = await self.sse(daemon)
        office = daemon.speakers[2]
        volume = await self.set_office_volume(daemon)
        await until(
            lambda: (
                any(is_volume_event(m, office.uid, volume) for m in client.messages())
                and any(is_volume_event(b, office.uid, volume) for b, _ in callback_calls())
            ),
            "the change on the SSE stream and at the other callable",
        )
        self.assertEqual(held, [1])
        gate.set()
        last = daemon.service.hub.last_id
        await until(lambda: last in held, "the held callable's messages")
        # Later messages (a renewal's event...) may follow: they come after, in order too.
        seen = list(held)
        self.assertEqual(seen, list(range(1, len(seen) + 1)))

    async def test_rest_speakers_and_groups(self) -> None:
        """GET /health, /speakers and /groups show the simulated speakers, each its own group."""
        daemon = await self.started()
        http = treq.client.HTTPClient(http_agent(self))
        response = await http.get(daemon.url("/api/v1/health"))
        self.assertEqual(response.code, 200)
        health = await response.json()
        self.assertEqual(
            health["speakers"],
            {"online": 3, "offline": 0, "asleep": 0, "upnp_disabled": 0, "unknown": 0},
        )
        response = await http.get(daemon.url("/api/v1/speakers"))
        self.assertEqual(response.code, 200)
        listed = (await response.json())["speakers"]
        self.assertEqual(
            sorted((s["uid"], s["name"], s["host"]) for s in listed),
            sorted((s.uid, s.name, s.address) for s in daemon.speakers),
        )
        self.assertEqual({s["availability"]["status"] for s in listed}, {"online"})
        response = await http.get(daemon.url("/api/v1/groups"))
        self.assertEqual(response.code, 200)
        groups = (await response.json())["groups"]
        self.assertEqual(
            sorted(group["coordinator"] for group in groups),
            sorted(s.uid for s in daemon.speakers),
        )
        for group in groups:
            self.assertEqual([m["uid"] for m in group["members"]], [group["coordinator"]])

    async def test_rest_command_changes_the_speaker(self) -> None:
        """POST /speakers/<room>/volume sets the simulated speaker's volume and is evented."""
        daemon = await self.started()
        office = daemon.speakers[2]
        volume = await self.set_office_volume(daemon)
        self.assertEqual(office.rendering.volume, volume)
        await until(lambda: daemon.volume_events(office, volume), "the volume event")

    async def test_reboot_is_followed(self) -> None:
        """A rebooted speaker is resubscribed, its later changes arrive, and no id repeats."""
        daemon = await self.started()
        sse = await self.sse(daemon)
        living = daemon.speakers[1]
        await living.reboot(downtime=0.5)
        await until(
            lambda: (
                len(daemon.recorder.of("subscription.restored", living.uid)) == len(daemon.services)
            ),
            "every subscription of the rebooted speaker restored",
        )
        await until(
            lambda: all(
                len(daemon.recorder.initial_events(living.uid, service)) == 2
                for service in daemon.services
            ),
            "a fresh initial event of every service",
        )
        lost = daemon.recorder.of("subscription.lost", living.uid)
        self.assertEqual(
            sorted((m.service, m.body["reason"]) for m in lost),
            sorted((service, "reboot") for service in daemon.services),
        )
        volume = new_volume(living)
        living.set_volume(volume)
        await until(
            lambda: any(is_volume_event(m, living.uid, volume) for m in sse.messages()),
            "a change after the reboot, over SSE",
        )
        self.assertEqual(len(daemon.sim_subscriptions(living)), len(daemon.services))
        for other in (daemon.speakers[0], daemon.speakers[2]):
            self.assertEqual(daemon.recorder.of("subscription.lost", other.uid), [])
        recorded = [m.id for m in daemon.recorder.messages]
        self.assertEqual(recorded, list(range(1, len(recorded) + 1)))
        received = message_ids(sse.messages())
        self.assertEqual(received, sorted(set(received)))
        self.assertEqual(received, list(range(received[0], received[0] + len(received))))

    async def test_stop_unsubscribes_everything(self) -> None:
        """stopService UNSUBSCRIBEs every subscription before the simulator goes away."""
        daemon = await self.started()
        for speaker in daemon.speakers:
            self.assertEqual(len(daemon.sim_subscriptions(speaker)), len(daemon.services))
        stopped = daemon.service.stopService()
        await until(lambda: daemon.sim.left_at_stop is not None, "the simulator to be stopped")
        await stopped
        self.assertEqual(daemon.sim.left_at_stop, {s.uid: [] for s in daemon.speakers})

    async def test_stop_closes_api_clients(self) -> None:
        """stopService closes streaming API clients: WebSocket with 1001, SSE by closing."""
        daemon = await self.started()
        sse = await self.sse(daemon)
        ws: WsClient = await connect_ws(self, daemon.host, daemon.port)
        await daemon.service.stopService()
        code, _ = await ws.closed
        self.assertEqual(code, 1001)
        await sse.closed

    async def get_json(self, daemon: Daemon, path: str) -> tuple[int, Any]:
        http = treq.client.HTTPClient(http_agent(self))
        response = await http.get(daemon.url(path))
        return response.code, json.loads(await response.content())

    async def test_settle_runs_once_with_the_doors_open_before_the_household(self) -> None:
        """``settle`` (where ``twistd sonosd`` freezes its start-up heap, ``sonosd.memory``)
        is called once, when the API listens and before the household starts: nothing is
        in flight yet."""
        seen: list[tuple[bool, bool]] = []

        def settle(service: SonosdService) -> None:
            seen.append((service.api.port is not None, service.household.running))

        daemon = await self.daemon(settle=settle)
        await daemon.service.ready
        self.assertEqual(seen, [(True, False)])
        self.assertTrue(daemon.service.household.running)

    async def test_ready_and_diagnostics(self) -> None:
        """/ready is 200 once every speaker is evented; /diagnostics shows each subscription
        with its SID, granted timeout, next renewal, last NOTIFY and SEQ; metrics agree."""
        daemon = await self.started()
        await until(lambda: daemon.service.readiness()["ready"], "ready")
        code, ready = await self.get_json(daemon, "/api/v1/ready")
        self.assertEqual(code, 200)
        self.assertEqual(ready["status"], "ready")
        self.assertEqual(ready["speakers"]["evented"], 3)
        code, body = await self.get_json(daemon, "/api/v1/diagnostics")
        self.assertEqual(code, 200)
        self.assertEqual(body["versions"]["sonosd"], "0.1.0")
        self.assertEqual(body["config"]["path"], "daemon-test.yaml")
        self.assertEqual(body["listener"]["port"], daemon.service.listener.port)
        self.assertGreaterEqual(body["listener"]["notify"]["accepted"], 24)
        # docs/api.md: the compiled reader (built by `make`) reads the events.
        self.assertEqual(body["listener"]["reader"], "compiled")
        [kitchen] = [s for s in body["speakers"] if s["name"] == "Kitchen"]
        self.assertEqual(kitchen["availability"], "online")
        self.assertEqual(
            kitchen["callback_url"], f"http://127.0.0.1:{daemon.service.listener.port}/"
        )
        transport = kitchen["services"]["AVTransport"]
        sim = next(s for s in daemon.speakers if s.uid == kitchen["uid"])
        [held] = [s for s in daemon.sim_subscriptions(sim) if s["service"] == "AVTransport"]
        self.assertEqual(transport["sid"], held["sid"])
        self.assertEqual(transport["state"], "subscribed")
        self.assertTrue(transport["evented"])
        self.assertEqual(transport["timeout"], 1800)
        self.assertGreater(transport["next_renewal"], 0)
        self.assertLess(transport["next_renewal"], 1800)
        self.assertGreaterEqual(transport["last_notify_age"], 0)
        self.assertEqual(transport["seq"], 0)
        self.assertEqual(body["sinks"]["clients"], {"websocket": 0, "sse": 0})
        http = treq.client.HTTPClient(http_agent(self))
        metrics = (await (await http.get(daemon.url("/api/v1/metrics"))).text()).splitlines()
        self.assertIn('sonosd_subscriptions{state="subscribed"} 24.0', metrics)
        self.assertIn("sonosd_speakers_evented 3.0", metrics)
        self.assertIn('sonosd_subscribes_total{result="ok"} 24.0', metrics)

    async def test_stream_clients_in_diagnostics_and_metrics(self) -> None:
        """A local stream client (``sinks.stream``) gets a change made on a speaker as a line,
        and is counted as the other channels are: ``sinks.clients.stream`` in the diagnostics,
        ``sonosd_api_clients`` and ``sonosd_api_frames_sent_total`` with channel ``stream``."""
        from twisted.internet import reactor
        from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol

        from tests.sinks.test_stream import LineClient

        directory = Path(self.mktemp())
        directory.mkdir()
        daemon = await self.daemon(sinks={"stream": f"unix:{directory}/stream.sock"})
        await until(daemon.settled, "the initial event of every service of every speaker")
        client = LineClient()
        await connectProtocol(UNIXClientEndpoint(reactor, f"{directory}/stream.sock"), client)
        self.addCleanup(lambda: None if client.closed.called else client.transport.loseConnection())
        await until(lambda: client.lines(), "the snapshot line")
        self.assertEqual(client.lines()[0]["type"], "snapshot")
        kitchen = daemon.speakers[0]
        volume = new_volume(kitchen)
        kitchen.set_volume(volume)
        await until(
            lambda: any(is_volume_event(m, kitchen.uid, volume) for m in client.lines()),
            "the change on the stream",
        )
        http = treq.client.HTTPClient(http_agent(self))
        body = await (await http.get(daemon.url("/api/v1/diagnostics"))).json()
        self.assertEqual(body["sinks"]["clients"], {"websocket": 0, "sse": 0, "stream": 1})
        received = len(client.lines()) - 1  # messages after the snapshot
        metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
        self.assertIn('sonosd_api_clients{channel="stream"} 1.0', metrics.splitlines())
        [sent] = re.findall(
            r'^sonosd_api_frames_sent_total\{channel="stream"\} (\S+)$', metrics, re.MULTILINE
        )
        # Every message it received was counted; at most those published since its snapshot.
        published = daemon.service.hub.last_id - client.lines()[0]["last_id"]
        self.assertTrue(received <= float(sent) <= published, (received, sent, published))

    async def test_access_lists_the_documented_endpoints(self) -> None:
        """/api/v1/access's ``endpoints`` are the children of /api/v1: exactly the paths of
        docs/api.md's table, on a whole daemon; ``commands`` are the controller's."""
        daemon = await self.daemon()
        text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        table = text[: text.index("Nothing changes state over GET")]
        documented = set(re.findall(r"^\| `/api/v1/(\w+)", table, re.MULTILINE))
        http = treq.client.HTTPClient(http_agent(self))
        body = await (await http.get(daemon.url("/api/v1/access"))).json()
        self.assertEqual((body["auth_required"], body["granted"]), (False, True))
        self.assertEqual(body["endpoints"], sorted(documented))
        self.assertIn("volume", body["commands"])

    async def test_command_latency_is_measured(self) -> None:
        """A command shows up in sonosd_command_duration_seconds by command and result."""
        daemon = await self.started()
        http = treq.client.HTTPClient(http_agent(self))
        response = await http.post(
            daemon.url("/api/v1/speakers/Kitchen/volume"),
            json.dumps({"volume": "+5"}).encode(),
            headers=Headers({"Content-Type": ["application/json"]}),
        )
        self.assertEqual(response.code, 200, await response.text())
        await http.post(
            daemon.url("/api/v1/speakers/Nowhere/volume"),
            b'{"volume": 5}',
            headers=Headers({"Content-Type": ["application/json"]}),
        )
        metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
        self.assertIn(
            'sonosd_command_duration_seconds_count{command="volume",result="ok"} 1.0', metrics
        )
        self.assertIn(
            'sonosd_command_duration_seconds_count{command="volume",result="unknown_speaker"} 1.0',
            metrics,
        )

    async def test_every_documented_metric_is_served(self) -> None:
        """With every sink configured, /api/v1/metrics serves exactly the series docs/api.md
        lists (webhook, MQTT and callback series included)."""
        daemon = await self.daemon_with_every_push_sink()
        await until(daemon.settled, "the initial event of every service of every speaker")
        text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        table = text[text.index("## Metrics: `/api/v1/metrics`") : text.index("## TLS")]
        documented = set(re.findall(r"^\| `(sonosd_\w+)|, `(sonosd_\w+)", table, re.MULTILINE))
        names = {name for pair in documented for name in pair if name}
        http = treq.client.HTTPClient(http_agent(self))
        metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
        served = {
            name + ("_total" if kind == "counter" and not name.endswith("_total") else "")
            for name, kind in re.findall(r"^# TYPE (\w+) (\w+)$", metrics, re.MULTILINE)
            # prometheus_client's creation times of its counters.
            if not name.endswith("_created")
        }
        self.assertEqual(served, names)

    async def test_every_documented_label_value_is_served_from_the_start(self) -> None:
        """The states and results docs/api.md's table lists for sonosd_speakers,
        sonosd_subscriptions, sonosd_notifies_total, sonosd_subscribes_total and
        sonosd_renewals_total are each a series from the start (0 while none), so that a
        rate or an alert on one works before the first occurrence."""
        from prometheus_client.parser import text_string_to_metric_families

        daemon = await self.daemon()
        text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        table = text[text.index("## Metrics: `/api/v1/metrics`") : text.index("## TLS")]
        documented: dict[tuple[str, str], set[str]] = {}
        for name in (
            "sonosd_speakers",
            "sonosd_subscriptions",
            "sonosd_notifies_total",
            "sonosd_subscribes_total",
            "sonosd_renewals_total",
        ):
            [(label, meaning)] = re.findall(
                rf"^\| `{name}\{{(\w+)\}}` \| (.*) \|$", table, re.MULTILINE
            )
            documented[name, label] = set(re.findall(r"`(\w+)`", meaning))
        http = treq.client.HTTPClient(http_agent(self))
        metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
        served: dict[tuple[str, str], set[str]] = {}
        for family in text_string_to_metric_families(metrics):
            for sample in family.samples:
                for label, value in sample.labels.items():
                    served.setdefault((sample.name, label), set()).add(value)
        for key, values in documented.items():
            self.assertEqual(served.get(key), values, key)

    async def test_doctor_names_failing_sinks(self) -> None:
        """A webhook target that refuses connections (without retries: each message fails at
        its only attempt) and an MQTT broker that is not there are each a problem the doctor
        names from the daemon's own diagnostics. The webhook is failing in
        ``sonosd_webhook_failing``, ``/api/v1/diagnostics`` and ``sonosctl doctor`` until its
        next delivery (docs/webhooks.md), and no longer after it."""
        from twisted.internet.threads import deferToThread
        from twisted.web.server import Site

        from sonosd.ctl import main as ctl_main
        from sonosd.doctor import PROBLEM, diagnose
        from tests.sinks.test_webhooks import Receiver

        hook, broker = free_tcp_port(), free_tcp_port()
        daemon = await self.daemon(
            sinks={
                "webhooks": [{"url": f"http://127.0.0.1:{hook}/hook", "retries": 0}],
                "mqtt": {"host": "127.0.0.1", "port": broker},
            },
        )

        def problems() -> list[str]:
            findings = diagnose(daemon.service.diagnostics())
            return [f.text for f in findings if f.severity == PROBLEM]

        def named() -> bool:
            texts = problems()
            return any(t.startswith(f"Webhook http://127.0.0.1:{hook}/hook fails") for t in texts)

        await until(named, "the failing webhook named")
        self.assertTrue(
            any(
                t.startswith(f"The MQTT broker 127.0.0.1:{broker} is not connected")
                for t in problems()
            ),
            problems(),
        )
        url = f"http://127.0.0.1:{hook}/hook"
        http = treq.client.HTTPClient(http_agent(self))

        async def reported() -> tuple[bool, str, str]:
            """The target's ``failing`` in the diagnostics, its failing gauge, and what
            ``sonosctl doctor`` says (run in a thread: it blocks)."""
            diagnostics = await (await http.get(daemon.url("/api/v1/diagnostics"))).json()
            [target] = diagnostics["sinks"]["webhooks"]
            metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
            [gauge] = re.findall(
                rf'^sonosd_webhook_failing\{{target="{re.escape(url)}"\}} (\S+)$',
                metrics,
                re.MULTILINE,
            )
            out = io.StringIO()
            await deferToThread(
                ctl_main, ["--url", daemon.url(""), "doctor"], stdout=out, environ={}
            )
            return target["failing"], gauge, out.getvalue()

        failing, gauge, doctor = await reported()
        self.assertEqual((failing, gauge), (True, "1.0"))
        self.assertIn(f"Webhook {url} fails (connection refused)", doctor)
        receiver = Receiver()
        port = reactor.listenTCP(hook, Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        kitchen = daemon.speakers[0]
        kitchen.set_volume(new_volume(kitchen))
        await until(lambda: receiver.requests, "a message at the webhook")
        await until(
            lambda: not daemon.service.sinks["webhooks"].targets[0].failing, "delivering again"
        )
        failing, gauge, doctor = await reported()
        self.assertEqual((failing, gauge), (False, "0.0"))
        self.assertNotIn(f"Webhook {url} fails", doctor)
        self.assertIn(f"Webhook {url} delivers now, but lost", doctor)

    async def test_sinks_flush_within_the_shutdown_timeout(self) -> None:
        """Every push sink is given subscription.shutdown_timeout to flush at shutdown, and the
        new value when a reload changes it (docs/deployment.md, SIGTERM)."""
        daemon = await self.daemon_with_every_push_sink()
        service = daemon.service
        bound = service.config.subscription.shutdown_timeout
        self.assertEqual(
            {name: sink.drain_timeout for name, sink in service.sinks.items()},
            {"callbacks": bound, "webhooks": bound, "mqtt": bound},
        )
        subscription = attrs.evolve(service.config.subscription, shutdown_timeout=bound + 7.5)
        service.reload(attrs.evolve(service.config, subscription=subscription))
        self.assertEqual(
            {name: sink.drain_timeout for name, sink in service.sinks.items()},
            {"callbacks": bound + 7.5, "webhooks": bound + 7.5, "mqtt": bound + 7.5},
        )

    async def test_a_webhook_body_is_the_bytes_sse_and_websocket_send(self) -> None:
        """A webhook request's body is the message JSON byte for byte as the SSE and
        WebSocket channels send it (docs/webhooks.md: it is serialised once)."""
        from twisted.web.server import Site

        from tests.sinks.test_webhooks import Receiver

        raw_frames: list[bytes] = []

        class RawWs(WsClient):
            def onMessage(self, payload: bytes, isBinary: bool) -> None:
                raw_frames.append(payload)
                super().onMessage(payload, isBinary)

        receiver = Receiver()
        port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        daemon = await self.daemon(sinks={"webhooks": [{"url": url}]})
        await until(daemon.settled, "the initial events")
        sse = await self.sse(daemon)
        await connect_ws(self, daemon.host, daemon.port, protocol=RawWs)
        kitchen = daemon.speakers[0]
        volume = new_volume(kitchen)
        kitchen.set_volume(volume)
        await until(lambda: daemon.volume_events(kitchen, volume), "the change at the daemon")
        [message] = daemon.volume_events(kitchen, volume)

        def sse_data() -> list[bytes]:
            return [
                line.partition(b":")[2].removeprefix(b" ")
                for block in sse.body.split(b"\n\n")[:-1]
                for line in block.split(b"\n")
                if line.startswith(b"data:")
            ]

        def sent(frames: list[bytes]) -> list[bytes]:
            return [frame for frame in frames if f'"id":{message.id},'.encode() in frame]

        await until(
            lambda: sent(sse_data()) and sent(raw_frames) and message.id in receiver.ids(),
            "the change on every channel",
        )
        [body] = [body for _, _, body in receiver.requests if json.loads(body)["id"] == message.id]
        self.assertEqual(body, message.raw)
        self.assertEqual(sent(sse_data()), [body])
        self.assertEqual(sent(raw_frames), [body])

    async def test_a_reloaded_webhook_is_replaced_in_one_turn_and_the_old_one_drains(
        self,
    ) -> None:
        """A reload that changes the webhooks replaces the sink at once (docs/design.md,
        SIGHUP): the old one still delivers what it held to the old target, the new one gets
        every later message, and no message is lost or sent to both."""
        from twisted.web.server import Site

        from tests.sinks.test_webhooks import Receiver

        old, new = Receiver(), Receiver()
        old.hold = True
        urls = []
        for receiver in (old, new):
            port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
            self.addCleanup(port.stopListening)
            urls.append(f"http://127.0.0.1:{port.getHost().port}/hook")
        daemon = await self.daemon(sinks={"webhooks": [{"url": urls[0]}]})
        await until(daemon.settled, "the initial events")
        await until(lambda: old.open, "a request held by the old target")
        service = daemon.service
        sinks = attrs.evolve(
            service.config.sinks,
            webhooks=(attrs.evolve(service.config.sinks.webhooks[0], url=urls[1]),),
        )
        service.reload(attrs.evolve(service.config, sinks=sinks))
        last_old = service.hub.last_id
        old.hold = False
        for request in old.open:
            request.write(b"ok")
            request.finish()
        daemon.speakers[0].set_volume(daemon.speakers[0].rendering.volume % 90 + 5)
        await until(lambda: new.ids() and old.ids()[-1:] == [last_old], "both targets")
        self.assertEqual(old.ids(), list(range(1, last_old + 1)))
        self.assertEqual(new.ids()[0], last_old + 1)
        self.assertEqual(new.ids(), list(range(last_old + 1, last_old + 1 + len(new.ids()))))

    async def test_the_outlets_stop_together_after_the_household(self) -> None:
        """At stop the household supervisor stops alone first, then the API, the stream and
        every push sink in one stage (they drain together), then the NOTIFY listener and the
        rest one at a time; the SoCo pool stops last, only the systemd notifier after it
        (docs/design.md)."""
        stream = Path(self.mktemp())
        stream.mkdir()
        daemon = await self.daemon(
            callbacks=(CALLBACK,),
            sinks={
                "webhooks": [{"url": f"http://127.0.0.1:{free_tcp_port()}/hook"}],
                "mqtt": {"host": "127.0.0.1", "port": free_tcp_port()},
                "stream": f"unix:{stream}/stream.sock",
            },
        )
        service = daemon.service
        stages = service.stop_stages()
        self.assertEqual(stages[0], [service.household])
        self.assertIsNotNone(service.stream)
        self.assertEqual(
            {id(child) for child in stages[1]},
            {id(service.api), id(service.stream), *(id(s) for s in service.sinks.values())},
        )
        self.assertEqual(stages[2], [service.listener])
        self.assertEqual([len(stage) for stage in stages[2:]], [1] * len(stages[2:]))
        self.assertEqual(stages[-2:], [[service.runner], [service.systemd]])

    async def test_diagnostics_show_the_configuration_without_a_secret(self) -> None:
        """/api/v1/diagnostics shows the configuration with every secret hidden: tokens by
        name and scopes, the webhook secret and the MQTT password as ``<hidden>``."""
        token, secret, password = "diag-token-0123456789", "hook-secret-42", "mqtt-password-42"
        daemon = await self.daemon(
            api={"tokens": [{"name": "ha", "token": token, "scopes": ["read"]}]},
            sinks={
                "webhooks": [{"url": f"http://127.0.0.1:{free_tcp_port()}/", "secret": secret}],
                "mqtt": {"port": free_tcp_port(), "username": "u", "password": password},
            },
        )
        http = treq.client.HTTPClient(http_agent(self))
        response = await http.get(
            daemon.url("/api/v1/diagnostics"),
            headers=Headers({"Authorization": [f"Bearer {token}"]}),
        )
        text = await response.text()
        self.assertEqual(response.code, 200, text)
        for hidden in (token, secret, password):
            self.assertNotIn(hidden, text)
        config = json.loads(text)["config"]
        [shown] = config["api"]["tokens"]
        self.assertEqual((shown["name"], shown["scopes"]), ("ha", ["read"]))
        self.assertEqual(config["sinks"]["webhooks"][0]["secret"], "<hidden>")
        self.assertEqual(config["sinks"]["mqtt"]["password"], "<hidden>")
        # Where the file wrote its secrets (for the warning) is not a setting.
        self.assertNotIn("inline_secrets", config)

    async def test_reload_changes_services_and_devices(self) -> None:
        """reload() subscribes an added service, unsubscribes a removed one and a removed
        device (with follow_household now false), and forgets the removed speaker in the state
        (speaker.removed); clients stay connected."""
        daemon = await self.started()
        client = await self.sse(daemon)
        service = daemon.service
        first, second, third = daemon.speakers
        http = treq.client.HTTPClient(http_agent(self))

        async def subscribes() -> float:
            metrics = await (await http.get(daemon.url("/api/v1/metrics"))).text()
            [value] = re.findall(r'^sonosd_subscribes_total\{result="ok"\} (\S+)$', metrics, re.M)
            return float(value)

        before = await subscribes()
        text = daemon_yaml(free_loopback_base(), speakers=3)
        document = json.loads(text)
        document.pop("simulate")
        document["devices"] = [{"host": first.address}, {"host": second.address}]
        document["follow_household"] = False
        document["services"] = ["AVTransport", "RenderingControl", "SystemProperties"]
        new = attrs.evolve(
            parse_config(json.dumps(document), "daemon-test.yaml"),
            simulate=service.config.simulate,
            listener=service.config.listener,
            api=service.config.api,
        )
        self.assertEqual(service.reload(new), [])

        def moved() -> bool:
            held = [
                sorted(s["service"] for s in daemon.sim_subscriptions(sp))
                for sp in (first, second, third)
            ]
            wanted = sorted(["AVTransport", "RenderingControl", "SystemProperties"])
            return held == [wanted, wanted, []]

        await until(moved, "subscriptions following the new configuration")
        self.assertIsNone(service.state.by_uid(third.uid))
        removed = daemon.recorder.of("speaker.removed", third.uid)
        self.assertEqual(removed[-1].body["reason"], "removed from the configuration")
        await until(lambda: service.readiness()["ready"], "ready again")
        self.assertEqual(len(service.household.status()["speakers"]), 2)
        self.assertGreater(service.household.retired["subscribes"], 0)
        # The diagnostics' retired keeps the removed subscriptions' counters, so the metrics'
        # counters made from them do not go back (docs/api.md).
        body = await (await http.get(daemon.url("/api/v1/diagnostics"))).json()
        self.assertEqual(body["retired"], dict(service.household.retired))
        self.assertGreaterEqual(await subscribes(), before)
        self.assertFalse(client.closed.called)

    async def test_reload_removing_a_member_of_the_household_follows_it_again(self) -> None:
        """With follow_household, a reload that removes a listed speaker still a member of the
        followed household announces speaker.removed, then follows it again as a member: it is
        back in the state, subscribed, and its changes arrive as events."""
        daemon = await self.started()
        service = daemon.service
        first, second, third = daemon.speakers
        document = json.loads(daemon_yaml(free_loopback_base(), speakers=3))
        document.pop("simulate")
        document["devices"] = [{"host": first.address}, {"host": second.address}]
        new = attrs.evolve(
            parse_config(json.dumps(document), "daemon-test.yaml"),
            simulate=service.config.simulate,
            listener=service.config.listener,
            api=service.config.api,
        )
        before = {s["sid"] for s in daemon.sim_subscriptions(third)}
        self.assertEqual(service.reload(new), [])
        [removed] = daemon.recorder.of("speaker.removed", third.uid)
        self.assertEqual(removed.body["reason"], "removed from the configuration")

        def followed_again() -> bool:
            sids = {s["sid"] for s in daemon.sim_subscriptions(third)}
            return (
                service.state.by_uid(third.uid) is not None
                and len(sids) == len(service.config.services)
                and not sids & before
            )

        await until(followed_again, "the removed speaker followed again")
        volume = new_volume(third)
        third.set_volume(volume)
        await until(lambda: daemon.volume_events(third, volume), "the new volume as an event")
        await until(lambda: service.readiness()["ready"], "ready again")
        self.assertEqual(len(service.household.status()["speakers"]), 3)
        self.assertEqual(daemon.recorder.of("speaker.removed", third.uid), [removed])

    async def test_a_new_state_dir_waits_for_a_restart_at_every_reload(self) -> None:
        """A reload that changes ``state_dir`` keeps the running one and says it needs a
        restart, and says so again when the same file is reloaded (docs/configuration.md)."""
        daemon = await self.started()
        service = daemon.service
        running = service.config.state_dir
        moved = attrs.evolve(service.config, state_dir=self.mktemp())
        self.assertEqual(service.reload(moved), ["state_dir"])
        self.assertEqual(service.config.state_dir, running)
        self.assertEqual(service.reload(moved), ["state_dir"])
        self.assertEqual(service.config.state_dir, running)

    async def test_reload_applies_callbacks_require_auth_and_log_messages(self) -> None:
        """A reload applies ``sinks.callbacks`` (the callable added gets the next messages),
        ``api.require_auth`` (a token is then asked for even on loopback) and
        ``log.messages`` (no more message lines), at once (docs/configuration.md)."""
        del CALLBACK_CALLS[:]
        daemon = await self.started()
        service = daemon.service
        kitchen = daemon.speakers[0]
        http = treq.client.HTTPClient(http_agent(self))

        def lines(volume: int) -> list[Any]:
            """The message lines logged for the change to ``volume``."""
            ids = {m.id for m in daemon.volume_events(kitchen, volume)}
            return [e for e in events if e.get("message_id") in ids]

        async def snapshot(headers: dict[str, list[str]]) -> int:
            response = await http.get(daemon.url("/api/v1/snapshot"), headers=Headers(headers))
            await response.content()
            return int(response.code)

        with capturedLogs() as events:
            before = new_volume(kitchen)
            kitchen.set_volume(before)
            await until(lambda: daemon.volume_events(kitchen, before), "the first change")
            self.assertEqual(len(lines(before)), 1)
            self.assertEqual(await snapshot({}), 200)
            config = service.config
            token = "r" * 24
            reader = Token("reloaded", token, frozenset({"read"}))
            api = attrs.evolve(config.api, tokens=(reader,), require_auth=True)
            reloaded = attrs.evolve(
                config,
                api=api,
                sinks=attrs.evolve(config.sinks, callbacks=(CALLBACK,)),
                log=attrs.evolve(config.log, messages=False),
            )
            self.assertEqual(service.reload(reloaded), [])
            after = new_volume(kitchen, before)
            kitchen.set_volume(after)
            await until(
                lambda: [b for b, _ in callback_calls() if is_volume_event(b, kitchen.uid, after)],
                "the change at the callback added by the reload",
            )
            self.assertEqual(len(daemon.volume_events(kitchen, after)), 1)
            self.assertEqual(lines(after), [])
        self.assertEqual(await snapshot({}), 401)
        self.assertEqual(await snapshot({"Authorization": [f"Bearer {token}"]}), 200)
        # The diagnostics' config is the one the daemon runs after the reload (docs/api.md).
        response = await http.get(
            daemon.url("/api/v1/diagnostics"),
            headers=Headers({"Authorization": [f"Bearer {token}"]}),
        )
        running = (await response.json())["config"]
        self.assertEqual(running["sinks"]["callbacks"], [CALLBACK])
        self.assertIs(running["log"]["messages"], False)
        self.assertIs(running["api"]["require_auth"], True)

    def test_a_reload_leaving_the_api_beyond_loopback_without_a_token_is_refused(self) -> None:
        """The API keeps its address until a restart: a file that moves it to loopback and
        drops every token is refused as a whole (one line, nothing changed), since the API
        would stay where it is, beyond loopback, with no token (refused at a start too);
        writing ``require_auth: false`` is taken. (The service is not started: nothing
        listens beyond loopback.)"""
        text = (
            "api: {listen: 'tcp:8080:interface=192.0.2.10', tokens: [{name: kept, token: %s}]}\n"
            "log: {level: info}\n"
        )
        running = parse_config(text % ("k" * 24), "daemon-test.yaml", environ={})
        service = SonosdService(running, reactor)
        untokened = parse_config(
            "api: {listen: 'tcp:8080:interface=127.0.0.1', ready_when_polling: true}\n"
            "log: {level: info}\n",
            "daemon-test.yaml",
            environ={},
        )
        with self.assertRaises(ConfigError) as raised:
            service.reload(untokened)
        self.assertEqual(
            str(raised.exception),
            "daemon-test.yaml: api.tokens: the API listens beyond loopback "
            "(tcp:8080:interface=192.0.2.10) until a restart and needs a token, but api.tokens "
            "is empty: keep a token until the restart, or write require_auth: false",
        )
        self.assertIs(service.config, running)
        self.assertEqual(service.api.config.tokens, running.api.tokens)
        opened = attrs.evolve(untokened, api=attrs.evolve(untokened.api, require_auth=False))
        self.assertEqual(service.reload(opened), ["api.listen"])
        self.assertEqual(service.config.api.tokens, ())
        self.assertIs(service.api.config.ready_when_polling, True)

    async def test_a_sink_rebuilt_by_a_reload_starts_its_counters_again(self) -> None:
        """docs/api.md: "A sink rebuilt by a reload starts its counters again": the callback
        kept through a reload that adds another has its delivered count start from 0, then
        count the messages it gets from the new sink."""
        module = types.ModuleType("sonosd_test_reload_callback")
        module.ignore = lambda body, event: None  # type: ignore[attr-defined]
        sys.modules[module.__name__] = module
        self.addCleanup(sys.modules.pop, module.__name__)
        del CALLBACK_CALLS[:]
        daemon = await self.started(callbacks=(CALLBACK,))
        service = daemon.service
        kitchen = daemon.speakers[0]
        pattern = re.compile(
            r'^sonosd_callback_calls_total\{callback="(?P<name>[^"]+)",result="delivered"\} '
            r"(?P<value>\S+)$",
            re.M,
        )

        def delivered() -> dict[str, float]:
            text = service.api.metrics.render().decode()
            return {m["name"]: float(m["value"]) for m in pattern.finditer(text)}

        await until(lambda: delivered().get(CALLBACK, 0) > 0, "deliveries counted")
        added = f"{module.__name__}:ignore"
        sinks = attrs.evolve(service.config.sinks, callbacks=(CALLBACK, added))
        self.assertEqual(service.reload(attrs.evolve(service.config, sinks=sinks)), [])
        self.assertEqual(delivered(), {CALLBACK: 0.0, added: 0.0})
        volume = new_volume(kitchen)
        kitchen.set_volume(volume)
        await until(
            lambda: [b for b, _ in callback_calls() if is_volume_event(b, kitchen.uid, volume)],
            "the change at the callback",
        )
        await until(lambda: delivered().get(CALLBACK, 0) >= 1, "the new sink's count")

    async def test_a_changed_simulate_waits_for_a_restart_and_keeps_its_speakers(self) -> None:
        """``simulate`` stays as it is until a restart (docs/configuration.md): a reload of a
        file that lists no devices and simulates fewer speakers, or none, says ``simulate``
        needs a restart and keeps following every simulated speaker that still runs."""
        daemon = await self.started()
        service = daemon.service
        simulate = service.config.simulate
        assert simulate is not None
        fewer = attrs.evolve(
            service.config, devices=(), simulate=attrs.evolve(simulate, speakers=2)
        )
        none = attrs.evolve(service.config, devices=(), simulate=None)
        for changed in (fewer, none):
            self.assertEqual(service.reload(changed), ["simulate"])
            self.assertEqual(service.config.simulate, simulate)
            self.assertEqual(service.diagnostics()["config"]["simulate"]["speakers"], 3)
            self.assertEqual(daemon.recorder.of("speaker.removed"), [])
            for speaker in daemon.speakers:
                self.assertIsNotNone(service.state.by_uid(speaker.uid))
                self.assertEqual(
                    len(daemon.sim_subscriptions(speaker)), len(service.config.services)
                )

    async def test_reload_switching_follow_household_off_drops_the_learnt_speakers(
        self,
    ) -> None:
        """A reload whose only change is ``follow_household: false`` is applied at once: the
        speakers learnt from the topology are unsubscribed and dropped (speaker.removed), the
        listed one is kept."""
        daemon = await self.started()
        service = daemon.service
        first, second, third = daemon.speakers
        document = json.loads(daemon_yaml(free_loopback_base(), speakers=3))
        document.pop("simulate")
        document["devices"] = [{"host": first.address}]

        def reloaded(follow: bool) -> Any:
            document["follow_household"] = follow
            return attrs.evolve(
                parse_config(json.dumps(document), "daemon-test.yaml"),
                simulate=service.config.simulate,
                listener=service.config.listener,
                api=service.config.api,
            )

        # Listed alone, the other two are followed again as members of its household (each
        # service subscribed anew and its initial event in).
        self.assertEqual(service.reload(reloaded(True)), [])

        def followed_as_members() -> bool:
            return all(
                len(daemon.recorder.initial_events(s.uid, name)) == 2
                for s in (second, third)
                for name in daemon.services
            ) and bool(service.readiness()["ready"])

        await until(followed_as_members, "the other two followed as members")
        self.assertEqual(service.reload(reloaded(False)), [])
        await until(
            lambda: all(daemon.sim_subscriptions(s) == [] for s in (second, third)),
            "the learnt speakers unsubscribed",
        )
        for speaker in (second, third):
            self.assertIsNone(service.state.by_uid(speaker.uid))
            removed = daemon.recorder.of("speaker.removed", speaker.uid)
            self.assertEqual(removed[-1].body["reason"], "follow_household is false")
        self.assertEqual(len(daemon.sim_subscriptions(first)), len(service.config.services))
        self.assertFalse(service.config.follow_household)

    async def test_doctor_explains_notifies_that_never_arrive(self) -> None:
        """Speakers told an unreachable callback URL are polled (event messages with source
        poll, no subscription.lost); /ready says so (503, or 200 once
        ``api.ready_when_polling`` accepts polling) and the doctor names the speakers, the
        URL, the advertise setting and the port to open. docs/deployment.md: sonosd "says so
        in its log" (one warning for the callback URL, naming it and the port to open) and
        ``/api/v1/health`` is ``degraded``."""
        with capturedLogs() as events:
            daemon = await self.daemon(advertise="127.0.0.254")
            await self.polled_instead(daemon)
        port = daemon.service.listener.port
        url = f"http://127.0.0.254:{port}/"
        # The daemon's own lines (the simulator, in this process too, logs its failed NOTIFYs).
        said = [
            formatEvent(e)
            for e in events
            if e.get("log_level") == LogLevel.warn
            and e.get("log_namespace", "").startswith("sonosd.household")
            and url in formatEvent(e)
        ]
        [line] = said
        self.assertIn(f"the speaker cannot reach sonosd's callback URL {url}", line)
        self.assertIn(f"polling the state instead. Check that {url} is reachable", line)
        self.assertIn(f"(TCP port {port})", line)

    async def polled_instead(self, daemon: Daemon) -> None:
        """What test_doctor_explains_notifies_that_never_arrive checks while its daemon runs:
        its speakers' NOTIFYs never arrive."""
        from sonosd.doctor import PROBLEM, diagnose

        service = daemon.service

        def polling() -> bool:
            states = [
                s["state"]
                for speaker in service.household.status()["speakers"]
                for s in speaker["services"].values()
            ]
            return bool(states) and set(states) == {"polling"}

        await until(polling, "every subscription polled")
        # Clients get each speaker's state read by polling (source poll); none of these
        # subscriptions ever worked, so none is lost (docs/deployment.md, docs/supervisor.md).
        for speaker in daemon.speakers:
            await until(
                lambda uid=speaker.uid: any(
                    m.body["source"] == "poll"
                    for m in daemon.recorder.of("event", uid, "RenderingControl")
                ),
                f"the polled volume of {speaker.name}",
            )
        # (Position reads of a playing group are events of their own, source position.)
        sources = {m.body["source"] for m in daemon.recorder.of("event")}
        self.assertEqual(sources - {"position"}, {"poll"})
        self.assertEqual(daemon.recorder.of("subscription.lost"), [])
        ready = service.readiness()
        self.assertFalse(ready["ready"])
        self.assertEqual(ready["speakers"]["polling"], 3)
        port = service.listener.port
        problems = [f.text for f in diagnose(service.diagnostics()) if f.severity == PROBLEM]
        [text] = problems
        self.assertIn("No NOTIFY has arrived from Kitchen (", text)
        self.assertIn(f"callback URL http://127.0.0.254:{port}/", text)
        self.assertIn("listener.advertise is 127.0.0.254", text)
        self.assertIn(f"Open TCP port {port}", text)
        metrics = service.api.metrics.render().decode()
        self.assertIn('sonosd_subscriptions{state="polling"} 24.0', metrics)
        code, body = await self.get_json(daemon, "/api/v1/ready")
        self.assertEqual((code, body["speakers"]["polling"]), (503, 3))
        code, body = await self.get_json(daemon, "/api/v1/health")
        self.assertEqual((code, body["status"]), (200, "degraded"), body)
        self.assertTrue(body["reasons"], body)
        self.assertTrue(all("no NOTIFY arrives" in r for r in body["reasons"]), body)
        # api.ready_when_polling accepts polled speakers as ready (applied by a reload).
        accepting = attrs.evolve(
            service.config, api=attrs.evolve(service.config.api, ready_when_polling=True)
        )
        service.reload(accepting)
        code, body = await self.get_json(daemon, "/api/v1/ready")
        self.assertEqual((code, body["status"], body["speakers"]["polling"]), (200, "ready", 3))
