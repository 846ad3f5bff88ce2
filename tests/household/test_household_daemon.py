"""End to end: the whole daemon (``SonosdService``) following real households from one
configured speaker each, through the simulator on loopback.

One speaker brings its household (state, topology, speakers, commands), two households stay
apart everywhere, health tells the truth during outages and reboots, and the playing group's
position is read from its coordinator.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import attrs
import treq
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from sonosd.config import SimulateConfig, parse_config
from sonosd.service import SonosdService
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.daemon_helpers import Recorder, daemon_yaml, http_agent, reactor, until

SERVICES = ("AVTransport", "RenderingControl", "ZoneGroupTopology", "DeviceProperties")


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
        return [speaker for sim in self.sims for speaker in sim.household.speakers]

    async def get(self, path: str) -> Any:
        response = await self.http.get(self.base + path)
        return await response.json()

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


async def start(
    case: TestCase,
    households: tuple[int, ...] = (3,),
    configured: int = 1,
    subscription: Mapping[str, Any] | None = None,
) -> Daemon:
    """Simulated households of the given sizes, and a daemon configured with the first
    ``configured`` speakers of each; waits until every speaker is followed."""
    sims = []
    for size in households:
        sim = HouseholdService(
            reactor, SimulateConfig(speakers=size, base_address=free_loopback_base())
        )
        sim.startService()
        case.addCleanup(sim.stopService)
        sims.append(sim)
    devices = tuple(address for sim in sims for address in sim.addresses[:configured])
    document = json.loads(daemon_yaml(sims[0].config.base_address, simulate=False, devices=devices))
    document["services"] = list(SERVICES)
    document["subscription"].update(subscription or {})
    config = parse_config(json.dumps(document), "household-test.yaml")
    service = SonosdService(config, reactor)
    recorder = Recorder()
    service.hub.add_sink(recorder)
    service.startService()
    case.addCleanup(lambda: service.stopService() if service.running else None)
    port = await service.api.listening
    address: Any = port.getHost()
    daemon = Daemon(
        service,
        sims,
        recorder,
        treq.client.HTTPClient(http_agent(case)),
        f"http://{address.host}:{address.port}",
    )
    await until(lambda: all(daemon.initial(s) for s in daemon.speakers), "every speaker followed")
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

    async def test_health_and_commands_agree_through_a_reboot(self) -> None:
        """A command to a rebooting speaker is refused, and from then on status, health and
        commands agree it is offline; once it is back, it is online, every service restored
        once, and health is ok."""
        daemon = await start(self, subscription={"availability_interval": 0.5})
        speaker = daemon.speakers[1]
        await speaker.reboot(downtime=2.0)
        status, body = await daemon.post(speaker.name, "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        await until(lambda: daemon.status(speaker) == "offline", "offline")
        health = await daemon.get("/api/v1/health")
        self.assertEqual(health["status"], "degraded")
        self.assertIn(f"{speaker.name} ({speaker.address}) is offline", health["reasons"][0])
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


class PositionTests(TestCase):
    timeout = 90

    def positions(self, daemon: Daemon, speaker: Speaker) -> list[dict[str, Any]]:
        return [
            m.body["variables"]
            for m in daemon.recorder.of("event", speaker.uid, "AVTransport")
            if m.body["source"] == "position"
        ]

    async def test_position_of_the_playing_group(self) -> None:
        """A playing group's coordinator has its position read, with the time it was read,
        on play, at position_interval while playing, and after a seek; its group members'
        are never read."""
        daemon = await start(self, households=(2,), subscription={"position_interval": 0.5})
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
        status, _ = await daemon.post(coordinator.name, "pause")
        await until(lambda: coordinator.transport.state == "PAUSED_PLAYBACK", "paused")
        await deferLater(reactor, 0.5)
        paused = len(self.positions(daemon, coordinator))
        await deferLater(reactor, 1.5)
        self.assertEqual(len(self.positions(daemon, coordinator)), paused)
