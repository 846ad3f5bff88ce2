"""End to end: the whole daemon (``SonosdService``) following real households from one
configured speaker each, through the simulator on loopback.

One speaker brings its household (state, topology, speakers, commands), two households stay
apart everywhere, health tells the truth during outages and reboots, and the playing group's
position is read from its coordinator.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

import attrs
import treq
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.task import deferLater
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from sonosd.config import SimulateConfig, parse_config
from sonosd.household.position import PositionTracker
from sonosd.service import SonosdService
from sonosd.sim.catalog import STATIONS
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import SseClient, connect_raw, sse_request
from tests.conftest import free_loopback_base
from tests.daemon_helpers import (
    Recorder,
    daemon_yaml,
    http_agent,
    is_volume_event,
    reactor,
    start_recorded,
    until,
    volume_of,
)

SERVICES = ("AVTransport", "RenderingControl", "ZoneGroupTopology", "DeviceProperties")


async def soco_action(speaker: Speaker, action: str, args: list[tuple[str, str]]) -> None:
    """Send DeviceProperties ``action`` to ``speaker`` with unmodified SoCo, as an app does."""
    from soco import SoCo
    from twisted.internet.threads import deferToThread

    def send() -> None:
        getattr(SoCo(speaker.address).deviceProperties, action)(args)

    await deferToThread(send)


async def hold_every_soco_thread(
    case: TestCase, daemon: Any
) -> tuple[threading.Event, list[Deferred[Any]]]:
    """Hold every thread of ``daemon``'s SoCo pool (each waits for the event returned, which
    the test's cleanup sets); the calls holding them."""
    runner = daemon.service.runner
    release = threading.Event()
    busy = [
        runner.run(release.wait, 30, timeout=60) for _ in range(daemon.service.config.soco.threads)
    ]
    case.addCleanup(release.set)
    await until(lambda: runner.in_flight == len(busy), "every thread busy")
    return release, busy


@attrs.define
class Daemon:
    """A running daemon, the households it follows, and an HTTP client for its API."""

    service: SonosdService
    sims: list[HouseholdService]
    recorder: Recorder
    http: treq.client.HTTPClient
    base: str

    @property
    def speakers(self) -> list[Speaker]:
        return [speaker for sim in self.sims for speaker in sim.neighbourhood.speakers]

    async def get(self, path: str) -> Any:
        response = await self.http.get(self.base + path)
        return await response.json()

    async def speakers_by_uid(self) -> dict[str, Any]:
        """``/api/v1/speakers``, each speaker by its uid."""
        return {s["uid"]: s for s in (await self.get("/api/v1/speakers"))["speakers"]}

    async def groups_by_coordinator(self) -> dict[str, Any]:
        """``/api/v1/groups``, each group by its coordinator's uid."""
        return {g["coordinator"]: g for g in (await self.get("/api/v1/groups"))["groups"]}

    async def speaker_states(self) -> dict[str, float]:
        """The ``sonosd_speakers{state}`` metric, by state."""
        response = await self.http.get(self.base + "/api/v1/metrics")
        text = (await response.text()).splitlines()
        prefix = 'sonosd_speakers{state="'
        return {
            line[len(prefix) :].split('"', 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text
            if line.startswith(prefix)
        }

    async def post(
        self, speaker: str, command: str, args: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        response = await self.http.post(
            f"{self.base}/api/v1/speakers/{quote(speaker)}/{command}",
            data=json.dumps(args or {}).encode(),
            headers=Headers({b"Content-Type": [b"application/json"]}),
        )
        body: dict[str, Any] = await response.json()
        return response.code, body

    def initial(self, speaker: Speaker) -> bool:
        return all(self.recorder.initial_events(speaker.uid, service) for service in SERVICES)

    def status(self, speaker: Speaker) -> str:
        return self.service.state.availability(speaker.uid).status


def spaced_tracker(daemon: Daemon) -> PositionTracker:
    """The daemon's track position reader, its reads 0.5 s apart instead of ``MIN_SPACING``'s
    2 s (each read would wait for it; the spacing itself is tested in test_position.py)."""
    tracker = daemon.service.household.ctx.position
    assert tracker is not None
    tracker.min_spacing = 0.5
    return tracker


def not_read(events: list[LogEvent]) -> list[str]:
    """The log lines of position reads given up."""
    return [
        formatEvent(e)
        for e in events
        if e.get("log_format", "").startswith("position of {speaker} not read")
    ]


async def start(
    case: TestCase,
    households: tuple[int, ...] = (3,),
    configured: int = 1,
    subscription: Mapping[str, Any] | None = None,
    simulate: Mapping[str, Any] | None = None,
    devices: Sequence[int] | None = None,
    followed: Sequence[int] | None = None,
    before: Callable[[list[HouseholdService]], Awaitable[object]] | None = None,
    services: Sequence[str] = SERVICES,
) -> Daemon:
    """Simulated households of the given sizes (each a ``HouseholdService`` with the
    ``simulate`` settings), and a daemon configured with the first ``configured`` speakers
    of each (or the speakers at the indices ``devices`` of the first simulator); waits until
    every speaker (or those at the indices ``followed``) is followed. ``before`` is awaited
    with the simulators before the daemon starts."""
    sims = []
    for size in households:
        settings = {"speakers": size, "base_address": free_loopback_base(count=size)}
        settings.update(simulate or {})
        sim = HouseholdService(reactor, SimulateConfig(**settings))
        sim.startService()
        case.addCleanup(sim.stopService)
        sims.append(sim)
    if before is not None:
        await before(sims)
    if devices is None:
        hosts = tuple(address for sim in sims for address in sim.addresses[:configured])
    else:
        hosts = tuple(sims[0].addresses[index] for index in devices)
    document = json.loads(daemon_yaml(sims[0].config.base_address, simulate=False, devices=hosts))
    document["services"] = list(services)
    document["subscription"].update(subscription or {})
    config = parse_config(json.dumps(document), "household-test.yaml")
    service = SonosdService(config, reactor)
    recorder = start_recorded(case, service)
    port = await service.api.listening
    address: Any = port.getHost()
    daemon = Daemon(
        service,
        sims,
        recorder,
        treq.client.HTTPClient(http_agent(case)),
        f"http://{address.host}:{address.port}",
    )
    wanted = daemon.speakers if followed is None else [daemon.speakers[index] for index in followed]
    await until(lambda: all(daemon.initial(s) for s in wanted), "every speaker followed", 60)
    return daemon


class OneSpeakerTests(TestCase):
    timeout = 90

    async def test_one_speaker_brings_the_household(self) -> None:
        """With one speaker configured, the API lists every speaker of its household with
        its household id, each is controllable by room name, and the topology is right."""
        daemon = await start(self)
        household_id = daemon.sims[0].household.household_id
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual({s["uid"] for s in listed}, {s.uid for s in daemon.speakers})
        self.assertEqual({s["household"] for s in listed}, {household_id})
        self.assertEqual({s["availability"]["status"] for s in listed}, {"online"})
        third = daemon.speakers[2]
        status, body = await daemon.post(third.name, "volume", {"volume": 37})
        self.assertEqual((status, body), (200, {"result": {"volume": 37}}))
        self.assertEqual(third.rendering.volume, 37)
        groups = (await daemon.get("/api/v1/groups"))["groups"]
        self.assertEqual(len(groups), 3)
        self.assertEqual({g["household"] for g in groups}, {household_id})
        first = daemon.speakers[0]
        changes = daemon.recorder.of("topology.changed")
        await daemon.post(first.name, "join", {"coordinator": third.name})
        await until(lambda: first.coordinator is third, "the join")
        await until(lambda: len(daemon.recorder.of("topology.changed")) > len(changes), "change")
        await deferLater(reactor, 0.5)
        # One topology.changed for the join, however many speakers sent the new document.
        self.assertEqual(len(daemon.recorder.of("topology.changed")), len(changes) + 1)
        health = await daemon.get("/api/v1/health")
        self.assertEqual((health["status"], health["reasons"]), ("ok", []))

    async def test_zone_group_state_only_in_the_first_senders_event(self) -> None:
        """Of the ZoneGroupTopology events that carry one new ZoneGroupState, only the first
        has ``zone_group_state``, parsed as in ``topology.changed``; the other speakers'
        events of that change carry their own variables only."""
        daemon = await start(self)
        first, second, third = daemon.speakers
        before = len(daemon.recorder.messages)
        await daemon.post(first.name, "join", {"coordinator": third.name})
        await until(lambda: daemon.recorder.of("topology.changed")[-1:] != [], "the change")
        delivered = self.zgt_delivered(daemon)
        await until(delivered, "every speaker's ZoneGroupTopology NOTIFYs")
        after = daemon.recorder.messages[before:]
        [changed] = [m for m in after if m.type == "topology.changed"]
        events = [m for m in after if m.type == "event" and m.service == "ZoneGroupTopology"]
        self.assertEqual({m.speaker_uid for m in events}, {first.uid, second.uid, third.uid})
        carrying = [m for m in events if "zone_group_state" in m.body["variables"]]
        self.assertEqual(carrying, events[:1], [m.body for m in events])
        parsed = carrying[0].body["variables"]["zone_group_state"]
        self.assertEqual(
            parsed,
            {key: changed.body[key] for key in ("household", "groups", "vanished")},
        )

    def zgt_delivered(self, daemon: Daemon) -> Callable[[], bool]:
        """A condition: the daemon has the last ZoneGroupTopology NOTIFY each speaker sent."""

        def delivered() -> bool:
            for speaker in daemon.speakers:
                manager: Any = speaker.manager
                [sent] = [
                    s["seq"] for s in manager.subscriptions() if s["service"] == "ZoneGroupTopology"
                ]
                supervised = daemon.service.household.speaker(speaker.uid)
                if supervised is None:
                    return False
                if supervised.services["ZoneGroupTopology"].last_seq != sent:
                    return False
            return True

        return delivered

    async def test_members_leave_and_join(self) -> None:
        """A member removed from the household is no longer followed (speaker.removed, its
        subscriptions ended, gone from the API); set up in the household again, it is
        followed again; the configured speaker stays followed throughout."""
        daemon = await start(self)
        # The departed speaker's last view holds the others back until the settle timeout:
        # a shorter one, the same assertions.
        daemon.service.processor.settle_timeout = 2.0
        first, second, third = daemon.speakers
        third.leave_household()
        await until(lambda: daemon.recorder.of("speaker.removed", third.uid), "removed")
        removed = daemon.recorder.of("speaker.removed", third.uid)[0]
        self.assertIn("left household", removed.body["reason"])
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual({s["uid"] for s in listed}, {first.uid, second.uid})
        status, body = await daemon.post(third.uid, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_speaker"))
        self.assertIsNone(daemon.service.household.speaker(third.uid))
        await deferLater(reactor, 0.5)
        self.assertEqual(list(third.manager.subscriptions()), [])  # type: ignore[union-attr]
        third.rejoin_household()
        await until(
            lambda: len(daemon.recorder.initial_events(third.uid, "AVTransport")) == 2,
            "followed again",
        )
        status, _ = await daemon.post(third.uid, "volume", {"volume": 6})
        self.assertEqual(status, 200)
        self.assertIsNotNone(daemon.service.household.speaker(first.uid))

    async def test_the_hidden_half_of_a_new_stereo_pair_is_removed(self) -> None:
        """Two followed speakers paired at runtime: the hidden right one gets speaker.removed
        naming the room it became an invisible member of, its subscriptions are ended and it
        is gone from the API, the visible left one stays, and a command to the room goes to
        the left speaker, whose volume is the room's (the hidden half follows it)."""
        daemon = await start(self)
        first, left, right = daemon.speakers
        left.household.pair(left, right)
        await until(lambda: daemon.recorder.of("speaker.removed", right.uid), "removed")
        [removed] = daemon.recorder.of("speaker.removed", right.uid)
        self.assertEqual(removed.body["reason"], f"now an invisible member of {left.name}")
        self.assertEqual(daemon.recorder.of("speaker.removed", left.uid), [])
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual({s["uid"] for s in listed}, {first.uid, left.uid})
        self.assertIsNone(daemon.service.household.speaker(right.uid))
        manager: Any = right.manager
        await until(lambda: not manager.subscriptions(), "the hidden half unsubscribed")
        self.assertTrue(left.manager.subscriptions())  # type: ignore[union-attr]
        volume = 13 if left.rendering.volume == 12 else 12
        status, body = await daemon.post(left.name, "volume", {"volume": volume})
        self.assertEqual((status, body), (200, {"result": {"volume": volume}}))
        self.assertEqual((left.rendering.volume, right.rendering.volume), (volume, volume))
        status, body = await daemon.post(right.uid, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_speaker"))

    async def test_a_listed_invisible_member_is_followed_anyway(self) -> None:
        """The hidden half of a stereo pair listed under devices (docs/supervisor.md:
        "follows it anyway") is followed like any listed speaker: identified, online and
        subscribed to every service, in the API, never removed, while the topology it sends
        brings the visible members."""
        daemon = await start(self, simulate={"stereo_pair": True}, devices=[1])
        left, right, third = daemon.speakers
        self.assertTrue(right.invisible)
        supervised = daemon.service.household.speaker(right.uid)
        assert supervised is not None
        self.assertEqual(supervised.availability, "online")
        manager: Any = right.manager
        self.assertEqual(len(manager.subscriptions()), len(SERVICES))
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual({s["uid"] for s in listed}, {left.uid, right.uid, third.uid})
        self.assertEqual(daemon.recorder.of("speaker.removed"), [])

    async def test_a_separated_pair_is_two_rooms_again(self) -> None:
        """A pair made and then separated at runtime: the freed right speaker is followed
        again as its own room (online, in the API and the topology, its events delivered
        once each, to an SSE client too, commands to it reach it), while the left speaker's
        events keep coming without a gap or a duplicate throughout."""
        daemon = await start(self)
        host, port = daemon.base.rsplit("/", 1)[1].split(":")
        client = SseClient(sse_request("/api/v1/events"))
        await connect_raw(host, int(port), client, self)
        await until(client.messages, "the SSE snapshot")
        first, left, right = daemon.speakers
        household = left.household
        household.pair(left, right)
        await until(lambda: daemon.recorder.of("speaker.removed", right.uid), "removed")
        manager: Any = right.manager
        await until(lambda: not manager.subscriptions(), "the hidden half unsubscribed")
        before = len(daemon.recorder.messages)

        def since(type: str, uid: str | None = None, service: str | None = None) -> list[Any]:
            return daemon.recorder.of(type, uid, service, since=before)

        household.unpair(left)

        def own_room(message: Any) -> bool:
            groups = {g["coordinator"]: g for g in message.body["groups"]}
            members = {m["uid"]: m for g in groups.values() for m in g["members"]}
            return (
                right.uid in groups
                and [m["uid"] for m in groups[right.uid]["members"]] == [right.uid]
                and not members[right.uid]["invisible"]
                and members[left.uid]["channel_map"] == {}
            )

        await until(
            lambda: any(own_room(m) for m in since("topology.changed")), "the separated topology"
        )
        await until(
            lambda: all(since("event", right.uid, service) for service in SERVICES),
            "the freed speaker followed again",
        )
        await until(lambda: daemon.status(right) == "online", "online")
        [online] = since("speaker.online", right.uid)
        self.assertEqual(
            (online.body["reason"], online.body["availability"]["status"]),
            ("identified", "online"),
        )
        self.assertEqual(since("speaker.removed"), [])
        listed = await daemon.speakers_by_uid()
        self.assertEqual(set(listed), {first.uid, left.uid, right.uid})
        self.assertEqual(listed[right.uid]["name"], left.name)
        self.assertEqual(listed[right.uid]["availability"]["status"], "online")
        groups = await daemon.groups_by_coordinator()
        self.assertEqual([m["uid"] for m in groups[right.uid]["members"]], [right.uid])
        self.assertEqual(groups[right.uid]["name"], left.name)

        right.set_volume(right.rendering.volume % 50 + 7)
        await until(
            lambda: daemon.recorder.has_volume(right, since=before),
            "the freed speaker's volume change",
        )
        await until(
            lambda: any(
                is_volume_event(m, right.uid, right.rendering.volume) for m in client.messages()
            ),
            "the freed speaker's volume change over SSE",
        )
        status, body = await daemon.post(right.uid, "volume", {"volume": 61})
        self.assertEqual((status, body), (200, {"result": {"volume": 61}}))
        self.assertEqual(right.rendering.volume, 61)
        self.assertNotEqual(left.rendering.volume, 61)
        left.set_volume(left.rendering.volume % 50 + 3)
        await until(
            lambda: daemon.recorder.has_volume(left, since=before),
            "the left speaker's volume change",
        )
        self.assertNotEqual(right.rendering.volume, left.rendering.volume)
        await until(lambda: self.caught_up(daemon, (left, right)), "every NOTIFY sent taken")
        for service in SERVICES:
            seqs = [
                m.body["seq"]
                for m in daemon.recorder.of("event", left.uid, service)
                if m.body["source"] == "notify"
            ]
            self.assertEqual(seqs, list(range(len(seqs))), service)
            freed = [
                m.body["seq"]
                for m in since("event", right.uid, service)
                if m.body["source"] == "notify"
            ]
            self.assertEqual(freed, list(range(len(freed))), service)
        self.assertEqual(daemon.recorder.of("events.gap"), [])
        self.assertEqual(daemon.recorder.of("subscription.lost", left.uid), [])

    async def test_a_room_name_two_rooms_share_after_a_separation(self) -> None:
        """After a separation both speakers carry the room name: the name means the one with
        the lowest uid while both coordinate their own group, and the other one once the
        first is a member of another group."""
        daemon = await start(self)
        first, left, right = daemon.speakers
        left.household.pair(left, right)
        await until(lambda: daemon.recorder.of("speaker.removed", right.uid), "removed")
        left.household.unpair(left)
        await until(lambda: daemon.status(right) == "online", "the freed speaker followed")
        low, high = sorted((left, right), key=lambda speaker: speaker.uid)
        low.set_volume(10)
        high.set_volume(11)
        status, body = await daemon.post(left.name.upper(), "volume", {"volume": 33})
        self.assertEqual((status, body), (200, {"result": {"volume": 33}}))
        self.assertEqual((low.rendering.volume, high.rendering.volume), (33, 11))
        status, _ = await daemon.post(low.uid, "join", {"coordinator": first.uid})
        self.assertEqual(status, 200)
        await until(
            lambda: daemon.service.state.topology.coordinator_of(low.uid) == first.uid,
            "the join in the daemon's topology",
        )
        status, body = await daemon.post(left.name, "volume", {"volume": 34})
        self.assertEqual((status, body), (200, {"result": {"volume": 34}}))
        self.assertEqual((high.rendering.volume, low.rendering.volume), (34, 33))

    async def test_satellites_removed_from_a_home_theatre_are_rooms(self) -> None:
        """A Sub and a surround taken out of a home theatre (RemoveHTSatellite, sent by SoCo
        as the apps send it) are each followed as a room of their own (online, in the API
        and the topology with their own names, their events delivered once each, commands
        reach them), while the soundbar's events keep coming without a gap or a duplicate."""
        daemon = await start(
            self, households=(5,), simulate={"home_theatre": True}, followed=(0, 1)
        )
        _, bar, sub, left, _ = daemon.speakers
        before = len(daemon.recorder.messages)

        def since(type: str, uid: str | None = None, service: str | None = None) -> list[Any]:
            return daemon.recorder.of(type, uid, service, since=before)

        for satellite in (sub, left):
            await soco_action(bar, "RemoveHTSatellite", [("SatRoomUUID", satellite.uid)])

        def own_rooms(message: Any) -> bool:
            groups = {g["coordinator"]: g for g in message.body["groups"]}
            [member] = [m for m in groups[bar.uid]["members"] if m["uid"] == bar.uid]
            return all(
                s.uid in groups
                and [(m["uid"], m["name"], m["invisible"]) for m in groups[s.uid]["members"]]
                == [(s.uid, s.name, False)]
                for s in (sub, left)
            ) and [sat["uid"] for sat in member["satellites"]] == [daemon.speakers[4].uid]

        await until(
            lambda: any(own_rooms(m) for m in since("topology.changed")), "the freed satellites"
        )
        for satellite in (sub, left):
            await until(
                lambda s=satellite: all(since("event", s.uid, service) for service in SERVICES),
                "the freed satellite followed",
            )
            await until(lambda s=satellite: daemon.status(s) == "online", "online")
            [online] = since("speaker.online", satellite.uid)
            self.assertEqual(online.body["reason"], "identified")
        self.assertEqual(since("speaker.removed"), [])
        listed = await daemon.speakers_by_uid()
        self.assertEqual(set(listed), {daemon.speakers[0].uid, bar.uid, sub.uid, left.uid})
        self.assertEqual((listed[sub.uid]["name"], listed[left.uid]["name"]), ("Bedroom", "Office"))
        groups = await daemon.groups_by_coordinator()
        for satellite in (sub, left):
            self.assertEqual([m["uid"] for m in groups[satellite.uid]["members"]], [satellite.uid])
            self.assertEqual(groups[satellite.uid]["name"], satellite.name)
        left.set_volume(left.rendering.volume % 50 + 7)
        await until(
            lambda: daemon.recorder.has_volume(left, since=before),
            "the freed surround's volume change",
        )
        for satellite, volume in ((sub, 21), (left, 62)):
            status, body = await daemon.post(satellite.name, "volume", {"volume": volume})
            self.assertEqual((status, body), (200, {"result": {"volume": volume}}))
            self.assertEqual(satellite.rendering.volume, volume)
        bar.set_volume(bar.rendering.volume % 50 + 3)
        await until(
            lambda: daemon.recorder.has_volume(bar, since=before), "the soundbar's volume change"
        )
        await until(lambda: self.caught_up(daemon, (bar, sub, left)), "every NOTIFY sent taken")
        self.assert_whole(daemon, bar, before, (sub, left))

    async def test_a_speaker_added_to_a_soundbar_is_removed(self) -> None:
        """A followed speaker added to a soundbar (AddHTSatellite, sent by SoCo) gets
        speaker.removed naming the room it became an invisible member of, its subscriptions
        are ended and it is gone from the API, while the soundbar's events keep coming
        without a gap or a duplicate; taken out again, it is followed again."""
        daemon = await start(
            self, households=(6,), simulate={"home_theatre": True}, followed=(0, 1, 2)
        )
        _, kitchen, bar, _, _, right = daemon.speakers
        await soco_action(bar, "RemoveHTSatellite", [("SatRoomUUID", right.uid)])
        await until(lambda: daemon.status(right) == "online", "the freed surround followed")
        before = len(daemon.recorder.messages)
        new_map = f"{bar.uid}:LF,RF;{kitchen.uid}:RR"
        await soco_action(bar, "AddHTSatellite", [("HTSatChanMapSet", new_map)])
        await until(lambda: daemon.recorder.of("speaker.removed", kitchen.uid), "removed")
        [removed] = daemon.recorder.of("speaker.removed", kitchen.uid)
        self.assertEqual(removed.body["reason"], f"now an invisible member of {bar.name}")
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertNotIn(kitchen.uid, {s["uid"] for s in listed})
        self.assertIsNone(daemon.service.household.speaker(kitchen.uid))
        manager: Any = kitchen.manager
        await until(lambda: not manager.subscriptions(), "the new satellite unsubscribed")
        status, body = await daemon.post(kitchen.uid, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_speaker"))
        topology = daemon.service.state.topology
        assert topology is not None
        member = topology.member(bar.uid)
        assert member is not None
        self.assertIn(kitchen.uid, {s.uid for s in member.satellites})
        bar.set_volume(bar.rendering.volume % 50 + 3)
        await until(
            lambda: daemon.recorder.has_volume(bar, since=before), "the soundbar's volume change"
        )
        await until(lambda: self.caught_up(daemon, (bar,)), "every NOTIFY sent taken")
        self.assert_whole(daemon, bar, before, ())
        await soco_action(bar, "RemoveHTSatellite", [("SatRoomUUID", kitchen.uid)])
        await until(
            lambda: len(daemon.recorder.initial_events(kitchen.uid, "AVTransport")) == 2,
            "followed again",
        )
        status, _ = await daemon.post(kitchen.uid, "volume", {"volume": 6})
        self.assertEqual((status, kitchen.rendering.volume), (200, 6))

    def assert_whole(
        self, daemon: Daemon, bar: Speaker, before: int, freed: Sequence[Speaker]
    ) -> None:
        """Every service's NOTIFY events of ``bar`` (all of them) and of each ``freed``
        speaker (since message ``before``) are numbered 0, 1, 2... once each, no gap was
        said and the soundbar lost no subscription."""
        for service in SERVICES:
            for speaker, since in ((bar, 0), *((s, before) for s in freed)):
                seqs = [
                    m.body["seq"]
                    for m in daemon.recorder.of("event", speaker.uid, service, since=since)
                    if m.body["source"] == "notify"
                ]
                self.assertEqual(seqs, list(range(len(seqs))), (speaker.name, service))
        self.assertEqual(daemon.recorder.of("events.gap"), [])
        self.assertEqual(daemon.recorder.of("subscription.lost", bar.uid), [])

    def caught_up(self, daemon: Daemon, speakers: Sequence[Speaker]) -> bool:
        """Whether the daemon has taken the last NOTIFY each subscription of ``speakers``
        was sent."""
        for speaker in speakers:
            supervised = daemon.service.household.speaker(speaker.uid)
            manager: Any = speaker.manager
            for sub in manager.subscriptions():
                service = supervised.services.get(sub["service"]) if supervised else None
                if service is None or service.last_seq != sub["seq"]:
                    return False
        return True

    async def test_a_listed_speaker_that_leaves_its_household_is_kept(self) -> None:
        """A speaker listed under devices is never removed: when it leaves its household
        it gets no speaker.removed, stays in the API and still takes commands."""
        daemon = await start(self)
        # The departed speaker's last view holds the others back until the settle timeout:
        # a shorter one, the same assertions.
        daemon.service.processor.settle_timeout = 2.0
        listed, *others = daemon.speakers

        def without_listed(message: Any) -> bool:
            uids = {m["uid"] for g in message.body["groups"] for m in g["members"]}
            return listed.uid not in uids and {s.uid for s in others} <= uids

        listed.leave_household()
        await until(
            lambda: any(without_listed(m) for m in daemon.recorder.of("topology.changed")),
            "a topology without the listed speaker",
        )
        await deferLater(reactor, 0.5)
        self.assertEqual(daemon.recorder.of("speaker.removed"), [])
        speakers = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertIn(listed.uid, {s["uid"] for s in speakers})
        volume = 13 if listed.rendering.volume == 12 else 12
        status, body = await daemon.post(listed.uid, "volume", {"volume": volume})
        self.assertEqual((status, body), (200, {"result": {"volume": volume}}))
        self.assertEqual(listed.rendering.volume, volume)

    async def test_health_and_commands_agree_through_a_reboot(self) -> None:
        """A command to a rebooting speaker is refused, and from then on status, health,
        metrics and commands agree it is offline; once it is back, it is online, every service
        restored once, and health is ok."""
        daemon = await start(self, subscription={"availability_interval": 0.5})
        speaker = daemon.speakers[1]
        await speaker.reboot(downtime=2.0)
        status, body = await daemon.post(speaker.name, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        await until(lambda: daemon.status(speaker) == "offline", "offline")
        health = await daemon.get("/api/v1/health")
        self.assertEqual(health["status"], "degraded")
        self.assertIn(f"{speaker.name} ({speaker.address}) is offline", health["reasons"][0])
        states = await daemon.speaker_states()
        self.assertEqual((states["offline"], states["online"]), (1.0, 2.0))
        status, body = await daemon.post(speaker.name, "volume", {"volume": 6})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        await speaker.when_up()
        await until(lambda: daemon.status(speaker) == "online", "online again")
        await until(
            lambda: len(daemon.recorder.of("subscription.restored", speaker.uid)) == len(SERVICES),
            "every service restored",
        )
        await deferLater(reactor, 1.0)
        self.assertEqual(
            len(daemon.recorder.of("subscription.restored", speaker.uid)), len(SERVICES)
        )
        health = await daemon.get("/api/v1/health")
        self.assertEqual(health["status"], "ok")
        status, _ = await daemon.post(speaker.name, "volume", {"volume": 7})
        self.assertEqual(status, 200)


class QuietTopologyTests(TestCase):
    """docs/messages.md: no ``topology.changed`` when only a ``boot_seq``, an address or a
    software version changes."""

    timeout = 90

    def member(self, daemon: Daemon, speaker: Speaker) -> Any:
        """The daemon's view of ``speaker`` in its household's topology, or ``None``."""
        topology = daemon.service.state.topology_for(speaker.uid)
        return None if topology is None else topology.member(speaker.uid)

    async def test_address_change_publishes_no_topology_change(self) -> None:
        """A speaker that moves to a new address is followed there (its events come from the
        new address, and commands go there: docs/supervisor.md, a speaker's SoCo object
        "follows address changes") without a topology.changed."""
        daemon = await start(self)
        speaker = daemon.speakers[1]
        changes = len(daemon.recorder.of("topology.changed"))
        new_address = speaker.address.rsplit(".", 1)[0] + ".200"
        await speaker.change_address(new_address)
        await until(
            lambda: getattr(self.member(daemon, speaker), "host", None) == new_address,
            "the new Location in the daemon's topology",
        )
        supervised = daemon.service.household.speaker(speaker.uid)
        assert supervised is not None
        await until(
            lambda: supervised.ref is not None and supervised.ref.host == new_address, "the move"
        )
        volume = 31 if speaker.rendering.volume != 31 else 32
        speaker.set_volume(volume)
        await until(
            lambda: any(
                m.body["speaker"]["host"] == new_address and volume_of(m.body) == volume
                for m in daemon.recorder.of("event", speaker.uid, "RenderingControl")
            ),
            "an event from the new address",
        )
        self.assertEqual(len(daemon.recorder.of("topology.changed")), changes)
        assert supervised.device is not None
        self.assertEqual(supervised.device.ip_address, new_address)
        status, _ = await daemon.post(speaker.uid, "volume", {"volume": volume + 1})
        self.assertEqual((status, speaker.rendering.volume), (200, volume + 1))

    async def test_firmware_update_publishes_no_topology_change(self) -> None:
        """A speaker that updates its firmware (a reboot with a new software version and
        BootSeq) is followed again without a topology.changed."""
        daemon = await start(self)
        speaker = daemon.speakers[2]
        changes = len(daemon.recorder.of("topology.changed"))
        restored = len(daemon.recorder.of("subscription.restored", speaker.uid))
        await speaker.update_firmware("80.1-55000", downtime=0.5)
        await speaker.when_up()
        await until(
            lambda: getattr(self.member(daemon, speaker), "software_version", None) == "80.1-55000",
            "the new version in the daemon's topology",
        )
        self.assertEqual(self.member(daemon, speaker).boot_seq, speaker.boot_seq)
        await until(
            lambda: (
                len(daemon.recorder.of("subscription.restored", speaker.uid))
                >= restored + len(SERVICES)
            ),
            "every service followed again",
        )
        self.assertEqual(len(daemon.recorder.of("topology.changed")), changes)


def grouping(topology: Mapping[str, Any]) -> frozenset[tuple[str, frozenset[str]]]:
    """The coordinators and member uids of a ``topology.changed`` body (or a topology's JSON)."""
    return frozenset(
        (group["coordinator"], frozenset(member["uid"] for member in group["members"]))
        for group in topology["groups"]
    )


class SettleTests(TestCase):
    """docs/supervisor.md, "Topology while a change settles": the speakers of a household
    learn a regrouping one after another (the simulator's ``topology_settle``), each eventing
    its own view meanwhile; clients see the final grouping once, never the old one again."""

    timeout = 90

    async def test_clients_never_see_the_old_grouping_after_the_new_one(self) -> None:
        """Two regroupings in quick succession, learnt by four speakers 0.5 s apart (so that a
        lagging speaker events the first one after a leading one evented the second): every
        topology.changed shows a grouping not shown before, the last one is the household's
        final grouping, and every ZoneGroupTopology NOTIFY became exactly one event."""
        daemon = await start(self, households=(4,))
        household = daemon.sims[0].household
        household.set_modes(topology_settle=2.0)
        living, kitchen, bedroom, _ = daemon.speakers
        since = len(daemon.recorder.messages)
        seqs = {s.uid: self.zgt_seq(s) for s in daemon.speakers}
        household.join(kitchen, living)
        await deferLater(reactor, 0.2)
        household.join(bedroom, living)
        final = frozenset(
            (group.coordinator, frozenset(group.members)) for group in household.groups
        )

        def delivered() -> bool:
            return all(
                self.zgt_seq(s) == self.last_event_seq(daemon, s, since) for s in daemon.speakers
            )

        await until(
            lambda: all(s.zgs_view is None for s in daemon.speakers) and delivered(),
            "every speaker's NOTIFYs of the settled topology",
        )
        before = daemon.recorder.messages[:since]
        [apart] = [grouping(m.body) for m in before if m.type == "topology.changed"][-1:]
        after = daemon.recorder.of("topology.changed", since=since)
        shown = [apart] + [grouping(m.body) for m in after]
        self.assertEqual(shown[-1], final)
        self.assertEqual(len(shown), len(set(shown)), shown)
        for speaker in daemon.speakers:
            got = [
                m.body["seq"]
                for m in daemon.recorder.of("event", speaker.uid, "ZoneGroupTopology", since)
            ]
            wanted = list(range(seqs[speaker.uid] + 1, self.zgt_seq(speaker) + 1))
            self.assertEqual(got, wanted, speaker.name)
        topology = daemon.service.state.topology_for(living.uid)
        assert topology is not None
        self.assertEqual(grouping(topology.to_json()), final)

    def zgt_seq(self, speaker: Speaker) -> int:
        """The SEQ of the latest ZoneGroupTopology NOTIFY ``speaker`` made for the daemon."""
        assert speaker.manager is not None
        [subscription] = [
            s for s in speaker.manager.subscriptions() if s["service"] == "ZoneGroupTopology"
        ]
        return int(subscription["seq"])

    def last_event_seq(self, daemon: Daemon, speaker: Speaker, since: int) -> int | None:
        events = daemon.recorder.of("event", speaker.uid, "ZoneGroupTopology", since)
        return int(events[-1].body["seq"]) if events else None


class TwoHouseholdTests(TestCase):
    timeout = 90

    async def test_two_households_kept_apart(self) -> None:
        """Two households, one speaker configured in each: both are followed; groups,
        snapshot and topology.changed name each household; a join across households is
        refused and party mode stays within one household."""
        daemon = await start(self, households=(2, 2))
        one, two = (sim.household for sim in daemon.sims)
        self.assertNotEqual(one.household_id, two.household_id)
        groups = (await daemon.get("/api/v1/groups"))["groups"]
        by_household: dict[str, set[str]] = {}
        for group in groups:
            by_household.setdefault(group["household"], set()).add(group["coordinator"])
        self.assertEqual(
            by_household,
            {
                one.household_id: {s.uid for s in one.speakers},
                two.household_id: {s.uid for s in two.speakers},
            },
        )
        changes = [m.body for m in daemon.recorder.of("topology.changed")]
        self.assertEqual(
            sorted(c["household"] for c in changes), sorted([one.household_id, two.household_id])
        )
        for change in changes:
            wanted = one if change["household"] == one.household_id else two
            self.assertEqual(
                {m["uid"] for g in change["groups"] for m in g["members"]},
                {s.uid for s in wanted.speakers},
            )
        snapshot = await daemon.get("/api/v1/snapshot")
        self.assertEqual(
            {s["household"] for s in snapshot["speakers"]}, {one.household_id, two.household_id}
        )
        # Room names repeat across the two households (docs/api.md): the uid always names one
        # speaker, and a repeated room name still names one of them.
        repeated = one.speakers[0].name
        self.assertEqual(two.speakers[0].name, repeated)
        for sim in (*one.speakers, *two.speakers):
            found = await daemon.get(f"/api/v1/speakers/{sim.uid}")
            self.assertEqual((found["uid"], found["name"]), (sim.uid, sim.name))
        found = await daemon.get(f"/api/v1/speakers/{quote(repeated.upper())}")
        self.assertIn(found["uid"], {one.speakers[0].uid, two.speakers[0].uid})
        status, body = await daemon.post(
            one.speakers[0].uid, "join", {"coordinator": two.speakers[0].uid}
        )
        self.assertEqual((status, body["error"]["code"]), (400, "bad_argument"), body)
        self.assertIn("different households", body["error"]["message"])
        status, body = await daemon.post(one.speakers[0].uid, "party")
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["joined"], [one.speakers[1].uid])
        await until(lambda: one.speakers[1].coordinator is one.speakers[0], "the party")
        self.assertTrue(all(s.coordinator is s for s in two.speakers))

    async def test_two_households_in_one_snapshot(self) -> None:
        """With two households the snapshot holds both as docs/messages.md says: speakers
        ordered by room name, each naming its household; a topology whose own household is
        null and whose every group names its household, ordered by coordinator uid; the
        alarms of both, their versions joined by spaces, each alarm's room naming a speaker
        of its household."""
        daemon = await start(self, households=(3, 3), services=(*SERVICES, "AlarmClock"))
        one, two = (sim.household for sim in daemon.sims)
        households = {one.household_id, two.household_id}
        home = {
            **{s.uid: one.household_id for s in one.speakers},
            **{s.uid: two.household_id for s in two.speakers},
        }

        def each_list() -> bool:
            return {m.body["household"] for m in daemon.recorder.of("alarms.changed")} == households

        await until(each_list, "alarms.changed of each household")
        snapshot = await daemon.get("/api/v1/snapshot")
        names = [s["name"] for s in snapshot["speakers"]]
        self.assertEqual(names, sorted(names, key=str.casefold))
        self.assertEqual({s["uid"]: s["household"] for s in snapshot["speakers"]}, home)
        topology = snapshot["topology"]
        self.assertIsNone(topology["household"])
        for group in topology["groups"]:
            self.assertEqual(group["household"], home[group["coordinator"]])
        self.assertEqual({g["household"] for g in topology["groups"]}, households)
        coordinators = [g["coordinator"] for g in topology["groups"]]
        self.assertEqual(coordinators, sorted(coordinators))
        changed = {m.body["household"]: m.body for m in daemon.recorder.of("alarms.changed")}
        alarms = snapshot["alarms"]
        self.assertEqual(
            sorted(alarms["version"].split(" ")), sorted(m["version"] for m in changed.values())
        )
        self.assertEqual(len(alarms["alarms"]), sum(len(m["alarms"]) for m in changed.values()))
        for household, message in changed.items():
            for alarm in message["alarms"]:
                self.assertEqual(home[alarm["room"]["uid"]], household)
                self.assertIn(alarm, alarms["alarms"])


class PositionTests(TestCase):
    timeout = 90

    def positions(self, daemon: Daemon, speaker: Speaker) -> list[dict[str, Any]]:
        return [
            m.body["variables"]
            for m in daemon.recorder.of("event", speaker.uid, "AVTransport")
            if m.body["source"] == "position"
        ]

    async def test_position_reads_go_on_while_every_soco_thread_is_busy(self) -> None:
        """The daemon's own reads do not use the SoCo pool (docs/design.md, Speed): with every
        pool thread held by a hung call and more calls waiting, the playing coordinator's
        position is still read, and a command still answers once the pool frees up."""
        daemon = await start(self, households=(1,), subscription={"position_interval": 0.5})
        [speaker] = daemon.speakers
        status, _ = await daemon.post(speaker.name, "play")
        self.assertEqual(status, 200)
        await until(lambda: self.positions(daemon, speaker), "a first position read")
        released = threading.Event()
        self.addCleanup(released.set)
        runner = daemon.service.runner
        threads = daemon.service.config.soco.threads
        held = [runner.run(released.wait, 30, timeout=60) for _ in range(threads + 2)]
        await until(lambda: len(runner.pool.threads) == threads, "every pool thread held")
        reads = len(self.positions(daemon, speaker))
        await until(lambda: len(self.positions(daemon, speaker)) >= reads + 2, "more reads")
        self.assertEqual(runner.in_flight, threads + 2)
        self.assertFalse(any(call.called for call in held))
        released.set()
        await DeferredList(held)
        status, body = await daemon.post(speaker.name, "volume", {"volume": 23})
        self.assertEqual((status, body), (200, {"result": {"volume": 23}}))

    async def test_position_reads_leave_the_snapshots_last_update(self) -> None:
        """The snapshot holds the last position read in the coordinator's AVTransport
        variables, while that service's ``seq``, ``time`` and ``source`` stay those of the
        last NOTIFY."""
        daemon = await start(self, households=(1,), subscription={"position_interval": 0.5})
        [speaker] = daemon.speakers
        status, _ = await daemon.post(speaker.name, "play")
        self.assertEqual(status, 200)

        def read_after_notify() -> bool:
            messages = daemon.recorder.of("event", speaker.uid, "AVTransport")
            sources = [m.body["source"] for m in messages]
            return "notify" in sources and sources[-1] == "position" and len(sources) > 2

        await until(read_after_notify, "a position read after the last NOTIFY")
        # Read in the same reactor turn as the messages: nothing can arrive in between.
        [listed] = [
            s for s in daemon.service.state.snapshot()["speakers"] if s["uid"] == speaker.uid
        ]
        avt = listed["services"]["AVTransport"]
        messages = daemon.recorder.of("event", speaker.uid, "AVTransport")
        [*_, notified] = [m for m in messages if m.body["source"] == "notify"]
        [*_, read] = [m for m in messages if m.body["source"] == "position"]
        self.assertEqual(avt["variables"]["position"], read.body["variables"]["position"])
        self.assertEqual((avt["source"], avt["seq"]), ("notify", notified.body["seq"]))
        # Stamped when the NOTIFY was merged, before its message was published (and so before
        # the position read after it): never the read's time.
        merged, published = (
            datetime.fromisoformat(text.replace("Z", "+00:00"))
            for text in (avt["time"], notified.body["time"])
        )
        self.assertLessEqual(merged, published)

    async def test_position_of_the_playing_group(self) -> None:
        """A playing group's coordinator has its position read, with the time it was read,
        on play, at position_interval while playing (reads at least min_spacing apart), after
        a seek, on a track change and on pause (then no more while paused); its group members'
        are never read. The spacing is 0.5 s here, not MIN_SPACING (2 s: each read would wait
        for it; the spacing itself is tested in test_position.py)."""
        daemon = await start(self, households=(2,), subscription={"position_interval": 0.5})
        position_tracker = spaced_tracker(daemon)
        coordinator, member = daemon.speakers
        await daemon.post(member.name, "join", {"coordinator": coordinator.name})
        topology = daemon.service.state

        def grouped() -> bool:
            known = topology.topology
            return known is not None and known.coordinator_of(member.uid) == coordinator.uid

        await until(grouped, "the group in the daemon's topology")
        await deferLater(reactor, 0.5)
        member_reads = len(self.positions(daemon, member))
        status, _ = await daemon.post(coordinator.name, "play")
        self.assertEqual(status, 200)
        await until(lambda: len(self.positions(daemon, coordinator)) >= 3, "position reads")
        read = self.positions(daemon, coordinator)[-1]
        self.assertRegex(read["position_time"], r"^\d{4}-\d\d-\d\dT.*Z$")
        self.assertEqual(len(self.positions(daemon, member)), member_reads)

        def position() -> str:
            state = daemon.service.state.variables(coordinator.uid, "AVTransport")
            return str(state.get("position"))

        self.assertRegex(position(), r"^\d+:\d\d:\d\d$")
        status, _ = await daemon.post(coordinator.name, "seek", {"position": "0:02:00"})
        self.assertEqual(status, 200)
        await until(lambda: position().startswith("0:02:0"), "the position after the seek")
        status, _ = await daemon.post(coordinator.name, "next")
        self.assertEqual(status, 200)
        await until(lambda: position().startswith("0:00:0"), "the position of the next track")
        status, _ = await daemon.post(coordinator.name, "pause")
        await until(lambda: coordinator.transport.state == "PAUSED_PLAYBACK", "paused")

        def read_after_pause() -> bool:
            # The pause itself is read (where the track stopped), after its event.
            messages = daemon.recorder.of("event", coordinator.uid, "AVTransport")
            paused_at = next(
                (
                    i
                    for i, m in enumerate(messages)
                    if m.body["variables"].get("transport_state") == "PAUSED_PLAYBACK"
                ),
                None,
            )
            return paused_at is not None and any(
                m.body["source"] == "position" for m in messages[paused_at + 1 :]
            )

        await until(read_after_pause, "a position read after the pause event")
        # The pause may be read twice (its event, and the pause command's answer, a spacing
        # apart): counted once neither is in flight nor due.
        await until(lambda: not position_tracker.pending(coordinator.uid), "no read due")
        paused = len(self.positions(daemon, coordinator))
        await deferLater(reactor, 1.5)
        self.assertEqual(len(self.positions(daemon, coordinator)), paused)

    async def test_a_reload_applies_the_position_and_check_intervals(self) -> None:
        """``subscription`` timings are applied by a reload (docs/configuration.md): started
        with ``position_interval`` and ``check_interval`` at 0 (neither runs), a reload that
        sets them has the playing coordinator's position read again and again, and a lost last
        NOTIFY found by the consistency check (events.gap, resync)."""
        daemon = await start(
            self, households=(2,), subscription={"position_interval": 0, "check_interval": 0}
        )
        service = daemon.service
        spaced_tracker(daemon)
        timings = attrs.evolve(
            service.config.subscription, position_interval=0.5, check_interval=0.5
        )
        self.assertEqual(service.reload(attrs.evolve(service.config, subscription=timings)), [])
        kitchen, other = daemon.speakers
        kitchen.transport.play()
        await until(lambda: self.positions(daemon, kitchen), "a first position read")
        # Nothing moves the track now: only the interval reads it again.
        reads = len(self.positions(daemon, kitchen))
        await until(lambda: len(self.positions(daemon, kitchen)) >= reads + 2, "more reads")

        await self.lost_volume_is_found(daemon, other)

    async def test_a_reload_applies_the_request_timeout_to_position_reads(self) -> None:
        """Track position reads take ``subscription.request_timeout`` (docs/configuration.md,
        ``soco.call_timeout``), and a reload's new one from the next read: a speaker whose
        SOAP answers drip (about 1 s for a GetPositionInfo answer) is read under the default
        10 s; after a reload to 0.3 s its next reads are given up, each saying so."""
        daemon = await start(
            self, households=(1,), subscription={"position_interval": 0.5, "request_timeout": 10.0}
        )
        service = daemon.service
        position_tracker = spaced_tracker(daemon)
        [speaker] = daemon.speakers
        speaker.soap_faults.drip = 0.4
        status, _ = await daemon.post(speaker.name, "play")
        self.assertEqual(status, 200)
        with capturedLogs() as events:
            await until(lambda: len(self.positions(daemon, speaker)) >= 2, "slow reads")
            self.assertEqual(not_read(events), [])
            timings = attrs.evolve(service.config.subscription, request_timeout=0.3)
            self.assertEqual(service.reload(attrs.evolve(service.config, subscription=timings)), [])
            self.assertEqual(position_tracker.timeout, 0.3)
            await until(lambda: len(not_read(events)) >= 2, "reads given up")
        self.assertIn("0.3 s", not_read(events)[-1])
        speaker.soap_faults.reset()

    async def test_a_reload_that_drops_avtransport_stops_the_position_reads(self) -> None:
        """A reload that removes AVTransport from the services stops reading the playing
        coordinator's track position (an AVTransport read), at once: none is due, and a
        transport command asks for none."""
        daemon = await start(self, households=(1,), subscription={"position_interval": 0.5})
        service = daemon.service
        position_tracker = spaced_tracker(daemon)
        [speaker] = daemon.speakers
        status, _ = await daemon.post(speaker.name, "play")
        self.assertEqual(status, 200)
        await until(lambda: len(self.positions(daemon, speaker)) >= 2, "position reads")
        services = tuple(s for s in service.config.services if s != "AVTransport")
        self.assertEqual(service.reload(attrs.evolve(service.config, services=services)), [])
        self.assertFalse(position_tracker.pending(speaker.uid))
        status, _ = await daemon.post(speaker.name, "pause")
        self.assertEqual(status, 200)
        self.assertFalse(position_tracker.pending(speaker.uid))

    async def lost_volume_is_found(self, daemon: Daemon, speaker: Speaker) -> None:
        """``speaker``'s next RenderingControl NOTIFY is lost; its volume changes: the
        consistency check finds it (events.gap, resync)."""
        manager: Any = speaker.manager
        manager.faults.drop_next = 1
        rendering = resynced_service(daemon, speaker.uid, "RenderingControl")
        speaker.set_volume(50 if speaker.rendering.volume != 50 else 45)
        await until(lambda: rendering.resyncs > 0, "the resync after the consistency check")
        [gap] = daemon.recorder.of("events.gap", speaker.uid, "RenderingControl")
        self.assertIn("consistency check", gap.body["reason"])

    async def test_a_service_a_reload_adds_is_checked_for_consistency(self) -> None:
        """A reload that adds RenderingControl to speakers followed without a service the
        consistency check compares has it checked from then on: a lost last NOTIFY of the
        new service is found (docs/configuration.md: services added on every speaker,
        ``check_interval``)."""
        daemon = await start(
            self,
            households=(1,),
            subscription={"position_interval": 0, "check_interval": 0.5},
            services=("ZoneGroupTopology", "DeviceProperties"),
            followed=(),
        )
        service = daemon.service
        [speaker] = daemon.speakers
        await until(
            lambda: daemon.recorder.initial_events(speaker.uid, "DeviceProperties"),
            "the speaker followed",
        )
        services = (*service.config.services, "RenderingControl")
        self.assertEqual(service.reload(attrs.evolve(service.config, services=services)), [])
        await until(
            lambda: daemon.recorder.initial_events(speaker.uid, "RenderingControl"),
            "the added service's initial event",
        )
        await self.lost_volume_is_found(daemon, speaker)


class ReadPathTests(TestCase):
    """The daemon's own reads (position, consistency check and resync, alarms) of speakers
    that take SOAP over HTTPS only: sent by the reactor over port 1443, no SoCo."""

    timeout = 120

    async def test_reads_of_https_only_speakers(self) -> None:
        """Both speakers refuse SOAP over HTTP: the playing one's position, a lost last
        NOTIFY found by the consistency check and resynced, and a changed alarm list are all
        read over HTTPS; the commands (SoCo) still work."""
        daemon = await self.start_reading(simulate={"https_only": (0, 1)})
        await self.own_reads_arrive(daemon)
        kitchen, other = daemon.speakers
        self.assertEqual(daemon.service.soap.secure, {kitchen.address, other.address})
        status, _ = await daemon.post(kitchen.name, "volume", {"volume": 17})
        self.assertEqual((status, kitchen.rendering.volume), (200, 17))

    async def test_reads_do_not_wait_for_the_pool(self) -> None:
        """With every thread of the SoCo pool busy (slow commands), the daemon's own reads
        still happen (README: the track position, a resync after the consistency check, the
        alarm list): they do not go through the pool."""
        daemon = await self.start_reading()
        runner = daemon.service.runner
        release, busy = await hold_every_soco_thread(self, daemon)
        await self.own_reads_arrive(daemon)
        self.assertEqual(runner.in_flight, len(busy))
        release.set()
        await DeferredList(busy)

    async def test_pings_do_not_wait_for_the_pool(self) -> None:
        """With every thread of the SoCo pool busy (slow commands queued for the speakers),
        a silent speaker is still pinged after each silence_timeout, answers and stays
        online (docs/supervisor.md: pings do not go through the SoCo pool, so a slow control
        call queued for the speaker does not make it look offline)."""
        daemon = await start(
            self,
            households=(1,),
            subscription={"silence_timeout": 0.3, "check_interval": 0, "position_interval": 0},
        )
        [kitchen] = daemon.speakers
        supervised = daemon.service.household.speaker(kitchen.uid)
        assert supervised is not None
        runner = daemon.service.runner
        release, busy = await hold_every_soco_thread(self, daemon)
        # Nothing else talks to the speaker: only answered pings move its last activity.
        for _ in range(3):
            heard = supervised.last_activity
            await until(lambda heard=heard: supervised.last_activity > heard, "a ping answered")
        self.assertEqual((daemon.status(kitchen), runner.in_flight), ("online", len(busy)))
        self.assertEqual(daemon.recorder.of("speaker.offline"), [])
        release.set()
        await DeferredList(busy)

    async def start_reading(self, simulate: Mapping[str, Any] | None = None) -> Daemon:
        """A daemon following two simulated speakers (with these ``simulate`` settings),
        reading positions only when told and checking consistency every second."""
        return await start(
            self,
            households=(2,),
            simulate=simulate,
            subscription={"position_interval": 0, "check_interval": 1.0},
            services=(*SERVICES, "AlarmClock"),
        )

    async def own_reads_arrive(self, daemon: Daemon) -> None:
        """The first speaker plays: its position is read; the second's last NOTIFY is lost:
        the consistency check finds it and a resync reads the volume; the alarm list
        changes: alarms.changed carries it, read again."""
        kitchen, other = daemon.speakers
        recorder = daemon.recorder
        kitchen.transport.play()

        def positions() -> list[Any]:
            return [
                m
                for m in recorder.of("event", kitchen.uid, "AVTransport")
                if m.body["source"] == "position"
            ]

        await until(positions, "a position read")
        self.assertRegex(positions()[-1].body["variables"]["position"], r"^\d+:\d\d:\d\d$")

        manager: Any = other.manager
        manager.faults.drop_next = 1
        volume = 50 if other.rendering.volume != 50 else 45
        rendering = resynced_service(daemon, other.uid, "RenderingControl")
        before = rendering.resyncs
        other.set_volume(volume)

        await until(lambda: rendering.resyncs > before, "the resync after the consistency check")
        await until(lambda: recorder.has_volume(other), "the volume in an event")
        [gap] = recorder.of("events.gap", other.uid, "RenderingControl")
        self.assertIn("consistency check", gap.body["reason"])
        self.assertEqual(
            daemon.service.state.variables(other.uid, "RenderingControl")["volume"]["Master"],
            volume,
        )

        household = daemon.sims[0].household
        alarm = household.alarms[0]
        household.alarm_list.update(attrs.evolve(alarm, enabled=not alarm.enabled))
        household.alarms_changed()

        def listed() -> list[Any]:
            return [
                m
                for m in recorder.of("alarms.changed")
                if any(
                    a["id"] == alarm.alarm_id and a["enabled"] is not alarm.enabled
                    for a in m.body["alarms"]
                )
            ]

        await until(listed, "alarms.changed with the alarm switched")

    async def test_resync_of_a_large_household_topology(self) -> None:
        """A lost ZoneGroupTopology NOTIFY in a household that answers GetZoneGroupState with
        UPnP 501: the resync of what it can read (the group attributes) succeeds, and the
        speaker stays online (before, the 501 came through SoCo; now through the reactor's
        client with the same code)."""
        daemon = await start(
            self,
            households=(3,),
            simulate={"large_household": True, "large_household_players": 2},
        )
        first, second, _ = daemon.speakers
        manager: Any = first.manager
        manager.faults.drop_next = 1
        daemon.sims[0].household.join(second, first)
        await deferLater(reactor, 0.5)
        daemon.sims[0].household.unjoin(second)

        supervisor = daemon.service.household.speaker(first.uid)
        assert supervisor is not None
        topology = supervisor.services["ZoneGroupTopology"]
        await until(lambda: topology.resyncs, "the resync after the gap")
        [gap] = daemon.recorder.of("events.gap", first.uid, "ZoneGroupTopology")
        self.assertEqual(gap.body["got"], 2)
        self.assertEqual(daemon.status(first), "online")

    async def test_consistency_check_of_an_offline_speaker(self) -> None:
        """While a speaker refuses connections the consistency check's reads fail without a
        false gap; once it is back, a lost last NOTIFY is found and resynced."""
        daemon = await start(
            self, households=(2,), subscription={"check_interval": 0.5, "silence_timeout": 1.0}
        )
        _, other = daemon.speakers
        checks = daemon.service.household.speaker(other.uid).checks  # type: ignore[union-attr]
        await other.go_offline("refuse")
        await until(lambda: daemon.status(other) == "offline", "the speaker offline")
        await deferLater(reactor, 1.5)
        self.assertEqual(daemon.recorder.of("events.gap", other.uid), [])
        await other.come_online()
        await until(lambda: daemon.status(other) == "online", "the speaker back", 30)
        supervisor = daemon.service.household.speaker(other.uid)
        assert supervisor is not None
        rendering = supervisor.services["RenderingControl"]
        await until(lambda: rendering.checkable, "its subscriptions back")
        await deferLater(reactor, 1.0)
        manager: Any = other.manager
        manager.faults.drop_next = 1
        before = rendering.resyncs
        other.set_volume(50 if other.rendering.volume != 50 else 45)
        await until(lambda: rendering.resyncs > before, "the resync")
        await until(lambda: daemon.recorder.has_volume(other), "the volume in an event")
        self.assertGreater(daemon.service.household.speaker(other.uid).checks, checks)  # type: ignore[union-attr]


class MessagesDocTests(TestCase):
    """Promises of docs/messages.md, each through a daemon following one simulated speaker."""

    timeout = 60

    async def test_a_stations_stream_content_is_what_it_plays(self) -> None:
        """docs/messages.md: ``stream_content`` of the track metadata is what a radio station
        says is playing (``r:streamContent``), next to the station's ``title``."""
        daemon = await start(self, households=(1,))
        [speaker] = daemon.speakers
        station = STATIONS[1]
        status, body = await daemon.post(speaker.name, "play_uri", {"uri": station.uri})
        self.assertEqual(status, 200, body)

        def tracks() -> list[Any]:
            return [
                m.body["variables"]["current_track_meta_data"]
                for m in daemon.recorder.of("event", speaker.uid, "AVTransport")
                if (m.body["variables"].get("current_track_meta_data") or {}).get("uri")
                == station.uri
            ]

        await until(tracks, "the station's track metadata in an event")
        track = tracks()[-1]
        self.assertEqual(
            (track["title"], track["stream_content"]), (station.title, station.stream_content)
        )
        self.assertTrue(station.stream_content)

    async def test_a_position_read_that_finds_no_move_sends_only_its_time(self) -> None:
        """docs/messages.md: a ``position`` event sends only what changed, so a read that
        finds the track where the last one did carries ``position_time`` alone."""
        daemon = await start(self, households=(1,))
        [speaker] = daemon.speakers
        # Each seek is read.
        spaced_tracker(daemon)

        def reads() -> list[dict[str, Any]]:
            return [
                m.body["variables"]
                for m in daemon.recorder.of("event", speaker.uid, "AVTransport")
                if m.body["source"] == "position"
            ]

        await until(reads, "the read of the first transport state")
        status, body = await daemon.post(speaker.name, "seek", {"position": "0:01:00"})
        self.assertEqual(status, 200, body)
        await until(
            lambda: any(r.get("position") == "0:01:00" for r in reads()), "the read of the seek"
        )
        moved = len(reads())
        first = [r for r in reads() if "position" in r][-1]
        self.assertEqual(first["position"], "0:01:00")
        status, body = await daemon.post(speaker.name, "seek", {"position": "0:01:00"})
        self.assertEqual(status, 200, body)
        await until(lambda: len(reads()) > moved, "the read of the second seek")
        self.assertEqual(speaker.transport.state, "STOPPED")
        # Any read after the first finds the track where it was: its time alone.
        for later in reads()[moved:]:
            self.assertEqual(list(later), ["position_time"])
            self.assertGreaterEqual(later["position_time"], first["position_time"])

    async def test_the_speaker_of_a_message_follows_a_rename(self) -> None:
        """docs/messages.md: a message's ``speaker.name`` is the room name, which follows
        renames (made in the Sonos app: the simulator's)."""
        daemon = await start(self, households=(1,))
        [speaker] = daemon.speakers
        speaker.rename("Den")
        await until(lambda: daemon.service.state.by_name("Den") is not None, "the new name")
        before = len(daemon.recorder.messages)
        speaker.set_volume(50 if speaker.rendering.volume != 50 else 45)
        await until(lambda: daemon.recorder.has_volume(speaker, before), "the volume event")
        [*_, changed] = daemon.recorder.of("event", speaker.uid, "RenderingControl", before)
        self.assertEqual(
            changed.body["speaker"], {"uid": speaker.uid, "name": "Den", "host": speaker.address}
        )

    async def test_a_repeated_notify_is_dropped_and_counted(self) -> None:
        """docs/messages.md: a SEQ that repeats is no gap: that NOTIFY is dropped without a
        message (no event, no events.gap, no resync) and counted in
        ``sonosd_event_duplicates_total``."""
        daemon = await start(self, households=(1,))
        [speaker] = daemon.speakers
        rendering = resynced_service(daemon, speaker.uid, "RenderingControl")
        manager: Any = speaker.manager
        manager.faults.duplicate_next = 1
        before = len(daemon.recorder.messages)
        speaker.set_volume(50 if speaker.rendering.volume != 50 else 45)
        await until(lambda: rendering.duplicates == 1, "the repeated NOTIFY dropped")
        await until(lambda: daemon.recorder.has_volume(speaker, before), "the volume event")
        events = daemon.recorder.of("event", speaker.uid, "RenderingControl", since=before)
        self.assertEqual([(m.body["source"], m.body["seq"]) for m in events], [("notify", 1)])
        self.assertEqual(daemon.recorder.of("events.gap", since=before), [])
        self.assertEqual(rendering.resyncs, 0)
        response = await daemon.http.get(daemon.base + "/api/v1/metrics")
        metrics = (await response.text()).splitlines()
        self.assertIn("sonosd_event_duplicates_total 1.0", metrics)
        self.assertIn("sonosd_event_gaps_total 0.0", metrics)


def resynced_service(daemon: Daemon, uid: str, service: str) -> Any:
    """The supervisor of ``uid``'s ``service``, whose ``resyncs`` counts the state reads after
    a gap: a resync publishes only what differs from the state, and after a gap found by the
    consistency check the fresh subscription's initial NOTIFY may have brought it first."""
    speaker = daemon.service.household.speaker(uid)
    assert speaker is not None
    return speaker.services[service]


class ModeTests(TestCase):
    """The simulator's household and firmware modes, each followed from one speaker."""

    timeout = 180

    async def test_large_household(self) -> None:
        """A 40-speaker household that answers GetZoneGroupState with UPnP 501 is followed
        from one configured speaker: every speaker identified, subscribed and online, the
        topology right (40 groups), health ok."""
        from soco import SoCo
        from soco.exceptions import SoCoUPnPException
        from twisted.internet.threads import deferToThread

        daemon = await start(self, households=(40,), simulate={"large_household": True})
        sim = daemon.sims[0]
        first = daemon.speakers[0]

        def refused() -> str:
            try:
                SoCo(first.address).zoneGroupTopology.GetZoneGroupState()
            except SoCoUPnPException as error:
                return str(error.error_code)
            return "answered"

        self.assertEqual(await deferToThread(refused), "501")
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual(len(listed), 40)
        self.assertEqual({s["availability"]["status"] for s in listed}, {"online"})
        self.assertEqual({s["household"] for s in listed}, {sim.household.household_id})
        groups = (await daemon.get("/api/v1/groups"))["groups"]
        self.assertEqual(len(groups), 40)
        health = await daemon.get("/api/v1/health")
        self.assertEqual((health["status"], health["reasons"]), ("ok", []))
        last = daemon.speakers[-1]
        status, _ = await daemon.post(last.uid, "volume", {"volume": 9})
        self.assertEqual((status, last.rendering.volume), (200, 9))

    async def test_portable_asleep_then_awake(self) -> None:
        """A portable that sleeps is asleep as soon as the household lists it so (no ping, no
        error: health stays ok, one log line), commands say it is asleep; switched to
        Bluetooth likewise; woken, it is online again and subscribed afresh."""
        from twisted.logger import capturedLogs

        daemon = await start(
            self,
            households=(3,),
            simulate={"models": ("S18", "S27", "S18")},
            subscription={"asleep_interval": 600.0, "silence_timeout": 600.0},
        )
        roam = daemon.speakers[1]
        with capturedLogs() as events:
            await roam.sleep()
            await until(lambda: daemon.status(roam) == "asleep", "asleep")
            self.assertEqual(daemon.service.state.availability(roam.uid).reason, "sleeping")
            health = await daemon.get("/api/v1/health")
            self.assertEqual((health["status"], health["speakers"]["asleep"]), ("ok", 1))
            self.assertEqual((await daemon.speaker_states())["asleep"], 1.0)
            ready = await daemon.get("/api/v1/ready")
            self.assertEqual(ready["status"], "ready", ready)
            status, body = await daemon.post(roam.uid, "volume", {"volume": 5})
            self.assertEqual((status, body["error"]["code"]), (503, "asleep"), body)
            await deferLater(reactor, 1.0)
        lines = [
            e for e in events if e.get("log_level") and e["log_level"].name in ("warn", "error")
        ]
        self.assertEqual(lines, [])
        changes = [e for e in events if "speaker {speaker} is {status}" in e.get("log_format", "")]
        self.assertEqual([e["status"] for e in changes], ["asleep"])
        await roam.wake()
        await until(lambda: daemon.status(roam) == "online", "awake")
        await until(
            lambda: len(daemon.recorder.initial_events(roam.uid, "RenderingControl")) == 2,
            "subscribed afresh",
        )
        await roam.switch_to_bluetooth()
        await until(lambda: daemon.status(roam) == "asleep", "asleep on Bluetooth")
        self.assertEqual(daemon.service.state.availability(roam.uid).reason, "switch to bluetooth")

    async def test_portable_asleep_before_the_daemon_starts(self) -> None:
        """A portable already asleep when the daemon learns of its household is in the state
        as asleep at once (followed, not an error), and followed fully when it wakes."""

        async def asleep(sims: list[HouseholdService]) -> None:
            await sims[0].household.speakers[1].sleep()

        daemon = await start(
            self,
            households=(2,),
            simulate={"models": ("S18", "S27")},
            followed=(0,),
            before=asleep,
        )
        roam = daemon.speakers[1]
        await until(lambda: daemon.status(roam) == "asleep", "asleep")
        listed = await daemon.speakers_by_uid()
        self.assertEqual(listed[roam.uid]["availability"]["reason"], "sleeping")
        self.assertEqual((await daemon.get("/api/v1/health"))["status"], "ok")
        await roam.wake()
        await until(lambda: daemon.initial(roam), "followed once awake")
        self.assertEqual(daemon.status(roam), "online")

    async def test_upnp_switched_off_then_on(self) -> None:
        """With UPnP switched off in the household, every speaker is upnp_disabled with a
        reason that says where to switch it on, health is degraded with it and commands say
        it; switched on again, every speaker is online and subscribed again."""
        daemon = await start(
            self,
            households=(2,),
            subscription={"silence_timeout": 1.0, "asleep_interval": 1.0},
        )
        household = daemon.sims[0].household
        household.set_modes(upnp=False)
        for speaker in daemon.speakers:
            await until(lambda s=speaker: daemon.status(s) == "upnp_disabled", "UPnP off")
        reason = daemon.service.state.availability(daemon.speakers[0].uid).reason or ""
        self.assertIn("Privacy & Security", reason)
        health = await daemon.get("/api/v1/health")
        self.assertEqual(health["status"], "degraded")
        self.assertIn("UPnP switched off", health["reasons"][0])
        status, body = await daemon.post(daemon.speakers[0].uid, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (503, "upnp_disabled"), body)
        # docs/control.md: the message says where to switch it on in the Sonos app.
        self.assertIn("Privacy & Security", body["error"]["message"])
        household.set_modes(upnp=True)
        for speaker in daemon.speakers:
            await until(lambda s=speaker: daemon.status(s) == "online", "UPnP on")
            await until(
                lambda s=speaker: len(daemon.recorder.initial_events(s.uid, "AVTransport")) >= 2,
                "subscribed again",
            )

    async def test_configured_speaker_with_upnp_off(self) -> None:
        """A configured speaker of a household with UPnP off cannot be identified: its
        status and health say UPnP is off and where to switch it on."""
        daemon = await start(
            self,
            households=(2,),
            simulate={"upnp": False},
            subscription={"asleep_interval": 1.0},
            followed=(),
        )
        await until(
            lambda: (
                daemon.service.household.status()["speakers"][0]["availability"] == "upnp_disabled"
            ),
            "UPnP off said",
        )
        health = await daemon.get("/api/v1/health")
        self.assertEqual(health["status"], "degraded")
        self.assertIn("Connection Security", health["reasons"][0])
        daemon.sims[0].household.set_modes(upnp=True)
        await until(lambda: all(daemon.initial(s) for s in daemon.speakers), "followed")

    async def test_home_theatre_satellites_not_subscribed(self) -> None:
        """A home theatre's sub and surrounds are in the topology as the soundbar's invisible
        satellites, followed through the soundbar: no supervisor and no subscription."""
        daemon = await start(
            self, households=(5,), simulate={"home_theatre": True}, followed=(0, 1)
        )
        bar, *satellites = daemon.speakers[1:]
        await deferLater(reactor, 1.0)
        followed = {s.uid for s in daemon.service.household.speakers()}
        self.assertEqual(followed, {daemon.speakers[0].uid, bar.uid})
        for satellite in satellites:
            self.assertEqual(list(satellite.manager.subscriptions()), [])  # type: ignore[union-attr]
        topology = daemon.service.state.topology
        assert topology is not None
        member = topology.member(bar.uid)
        assert member is not None
        self.assertEqual({s.uid for s in member.satellites}, {s.uid for s in satellites})

    async def test_two_households_on_one_range(self) -> None:
        """Two households on one loopback range, one speaker of each configured: both are
        followed, each speaker with its own household."""
        daemon = await start(self, households=(4,), simulate={"households": 2}, devices=(0, 2))
        sim = daemon.sims[0]
        one, two = sim.households
        listed = (await daemon.get("/api/v1/speakers"))["speakers"]
        self.assertEqual(
            {s["uid"]: s["household"] for s in listed},
            {
                **{s.uid: one.household_id for s in one.speakers},
                **{s.uid: two.household_id for s in two.speakers},
            },
        )
        self.assertEqual(
            set(daemon.service.state.topologies()), {one.household_id, two.household_id}
        )

    async def test_https_only_speaker_is_not_upnp_disabled(self) -> None:
        """A speaker that refuses SOAP over HTTP but serves its description and events (the
        HTTPS-only variant) is followed and online, in its household, not upnp_disabled."""
        daemon = await start(
            self,
            households=(2,),
            simulate={"https_only": (1,)},
            subscription={"silence_timeout": 1.0},
        )
        strict = daemon.speakers[1]
        await deferLater(reactor, 2.5)
        self.assertEqual(daemon.status(strict), "online")
        household_id = daemon.sims[0].household.household_id
        self.assertEqual(daemon.service.state.by_uid(strict.uid).household, household_id)  # type: ignore[union-attr]
        self.assertEqual(set(daemon.service.state.topologies()), {household_id})
