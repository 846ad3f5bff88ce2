"""End-to-end: the daemon with ``discovery: true`` and no devices finds a simulated household.

The household runs on its own (a ``HouseholdService`` in the same reactor, not the daemon's
``simulate:`` section, which would hand the daemon its speakers as devices) and answers SSDP on
a private port of the SSDP group, on loopback only.
"""

from __future__ import annotations

import json
from typing import Any, cast

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig, parse_config
from sonosd.household.discovery import SSDP_GROUP
from sonosd.service import SonosdService
from sonosd.sim.service import HouseholdService
from sonosd.sim.ssdp import ZONE_PLAYER, advert_of, notify_alive
from tests.conftest import free_loopback_base
from tests.daemon_helpers import FAST_SUBSCRIPTION, ROOMS, Recorder, reactor, start_recorded, until


def discovery_yaml(ssdp_port: int) -> str:
    """A daemon configuration with discovery on, no devices and no simulated household."""
    document: dict[str, Any] = {
        "listener": {"interface": "127.0.0.1", "port": 0},
        "api": {"listen": "tcp:0:interface=127.0.0.1"},
        "discovery": True,
        "ssdp": {"port": ssdp_port},
        "subscription": FAST_SUBSCRIPTION,
        "soco": {"threads": 4, "call_timeout": 5.0},
        "log": {"level": "info"},
    }
    return json.dumps(document, indent=2)


class DiscoveryDaemonTests(TestCase):
    """The daemon learns its speakers from SSDP alone."""

    timeout = 60

    async def test_finds_and_subscribes_every_speaker(self) -> None:
        """Every simulated speaker is discovered (uid, host) and every service subscribed."""
        base = free_loopback_base(port=1400, count=len(ROOMS))
        sim = HouseholdService(
            reactor,
            SimulateConfig(speakers=len(ROOMS), base_address=base, rooms=ROOMS),
            ssdp_port=0,
        )
        sim.startService()
        self.addCleanup(sim.stopService)
        assert sim.ssdp is not None and sim.ssdp.port is not None

        config = parse_config(discovery_yaml(sim.ssdp.port), "discovery-test.yaml")
        self.assertEqual(config.devices, ())
        service = SonosdService(config, reactor)
        discovery: Any = service.household.discovery
        self.assertEqual(discovery.target, (SSDP_GROUP, sim.ssdp.port))
        recorder = Recorder()
        service.hub.add_sink(recorder)
        service.startService()

        def stop() -> Deferred[Any] | None:
            return service.stopService() if service.running else None

        self.addCleanup(stop)
        speakers = sim.household.speakers
        services = config.services

        def subscribed() -> bool:
            return all(
                recorder.initial_events(speaker.uid, name)
                for speaker in speakers
                for name in services
            )

        await until(subscribed, "every service of every speaker subscribed", timeout=30)
        supervised = {s.uid: s.ref.host for s in service.household.speakers() if s.ref is not None}
        self.assertEqual(supervised, {s.uid: s.address for s in speakers})
        for speaker in speakers:
            manager: Any = speaker.manager
            self.assertEqual({sub["service"] for sub in manager.subscriptions()}, set(services))

    async def test_searches_again_every_ssdp_interval(self) -> None:
        """``ssdp.interval`` is the time between searches: with 0.5 s the simulated household
        receives search after search (with the default 300 s, one search's copies only)."""
        base = free_loopback_base(port=1400, count=1)
        sim = HouseholdService(reactor, SimulateConfig(speakers=1, base_address=base), ssdp_port=0)
        sim.startService()
        self.addCleanup(sim.stopService)
        assert sim.ssdp is not None and sim.ssdp.port is not None
        responder = sim.ssdp
        document = json.loads(discovery_yaml(sim.ssdp.port))
        document["ssdp"]["interval"] = 0.5
        service = SonosdService(parse_config(json.dumps(document), "discovery-test.yaml"), reactor)
        start_recorded(self, service)
        await until(lambda: responder.searches, "the first search")
        first = responder.searches
        await until(lambda: responder.searches >= 3 * first, "two more searches")

    async def test_portable_going_to_sleep_is_asleep_not_offline(self) -> None:
        """A portable's ssdp:byebye says it goes to sleep: the daemon (listening for
        announcements) has it asleep without ever calling it offline."""
        base = free_loopback_base(port=1400, count=2)
        sim = HouseholdService(
            reactor,
            SimulateConfig(speakers=2, base_address=base, models=("S18", "S27")),
            ssdp_port=0,
        )
        sim.startService()
        self.addCleanup(sim.stopService)
        assert sim.ssdp is not None and sim.ssdp.port is not None
        document = json.loads(discovery_yaml(sim.ssdp.port))
        document["ssdp"]["announcements"] = True
        config = parse_config(json.dumps(document), "discovery-test.yaml")
        service = SonosdService(config, reactor)
        recorder = start_recorded(self, service)
        roam = sim.household.speakers[1]
        await until(lambda: service.state.availability(roam.uid).status == "online", "the portable")
        await roam.sleep()
        await until(lambda: service.state.availability(roam.uid).status == "asleep", "asleep")
        self.assertEqual(recorder.of("speaker.offline", roam.uid), [])

    def announcing(
        self, spare: int = 0, services: list[str] | None = None
    ) -> tuple[HouseholdService, SonosdService, Recorder]:
        """Two simulated speakers (and ``spare`` free addresses after them) announcing
        themselves over SSDP, and a running daemon listening for the announcements (with
        ``services``, or the default ones): the simulator, the daemon, its recorder."""
        base = free_loopback_base(port=1400, count=2 + spare)
        sim = HouseholdService(reactor, SimulateConfig(speakers=2, base_address=base), ssdp_port=0)
        sim.startService()
        self.addCleanup(sim.stopService)
        assert sim.ssdp is not None and sim.ssdp.port is not None
        document = json.loads(discovery_yaml(sim.ssdp.port))
        document["ssdp"]["announcements"] = True
        if services is not None:
            document["services"] = services
        service = SonosdService(parse_config(json.dumps(document), "discovery-test.yaml"), reactor)
        return sim, service, start_recorded(self, service)

    async def test_forged_announcement_of_a_new_address_is_not_followed(self) -> None:
        """An ``ssdp:alive`` forged on the LAN that puts a followed speaker at another
        speaker's address is checked there (the uid answering is not its own) and not
        followed: the speaker keeps its address, its subscriptions and its commands."""
        sim, service, recorder = self.announcing()
        kitchen, bedroom = sim.household.speakers
        services = service.config.services
        await until(
            lambda: all(
                recorder.initial_events(s.uid, n) for s in (kitchen, bedroom) for n in services
            ),
            "both speakers followed",
        )
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        forged = attrs.evolve(advert_of(kitchen), location=bedroom.location)
        datagram = notify_alive(
            forged, ZONE_PLAYER, f"uuid:{kitchen.uid}::{ZONE_PLAYER}", f"{SSDP_GROUP}:1900"
        )
        attacker = reactor.listenMulticast(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(attacker.stopListening)
        attacker.setTTL(1)
        attacker.setLoopbackMode(1)
        await attacker.setOutgoingInterface("127.0.0.1")
        attacker.write(datagram, (SSDP_GROUP, sim.ssdp.port))
        followed = service.household.speaker(kitchen.uid)
        assert followed is not None

        def decided() -> bool:
            refused = any(
                "not following" in str(e.get("log_format")) and e.get("other") == bedroom.uid
                for e in events
            )
            return refused or followed.ref is None or followed.ref.host != kitchen.address

        await until(decided, "the new address checked")
        assert followed.ref is not None
        self.assertEqual(followed.ref.host, kitchen.address)
        self.assertEqual(recorder.of("subscription.lost", kitchen.uid), [])
        manager: Any = kitchen.manager
        self.assertEqual({sub["service"] for sub in manager.subscriptions()}, set(services))
        await service.controller.execute(kitchen.uid, "volume", {"volume": 33})
        self.assertEqual(kitchen.rendering.volume, 33)
        self.assertNotEqual(bedroom.rendering.volume, 33)

    async def test_reboot_and_move_seen_through_ssdp_alone(self) -> None:
        """With no ZoneGroupTopology subscribed (no topology tells the daemon anything), an
        ``ssdp:alive`` is what shows a speaker's reboot and its move (docs/supervisor.md, SSDP
        discovery): a higher ``X-RINCON-BOOTSEQ`` than known resubscribes every service
        (reason ``reboot``), and a different ``LOCATION`` host is followed there (reason
        ``address changed``), its commands going to the new address."""
        services = ["RenderingControl", "AVTransport"]
        sim, service, recorder = self.announcing(spare=1, services=services)
        kitchen = sim.household.speakers[0]
        manager: Any = kitchen.manager

        def followed(count: int) -> bool:
            return all(len(recorder.initial_events(kitchen.uid, n)) == count for n in services)

        await until(lambda: followed(1), "the speaker followed")
        supervised = service.household.speaker(kitchen.uid)
        assert supervised is not None
        await kitchen.reboot(downtime=0.2)
        await kitchen.when_up()
        await until(lambda: followed(2), "every service subscribed afresh after the reboot")
        self.assertEqual(supervised.boot_seq, kitchen.boot_seq)
        lost = recorder.of("subscription.lost", kitchen.uid)
        self.assertEqual([m.body["reason"] for m in lost], ["reboot"] * len(services))
        self.assertEqual(len(manager.subscriptions()), len(services))
        prefix, _, last = sim.config.base_address.rpartition(".")
        moved = f"{prefix}.{int(last) + 2}"
        await kitchen.change_address(moved)
        await until(lambda: followed(3), "every service subscribed at the new address")
        assert supervised.ref is not None
        self.assertEqual(supervised.ref.host, moved)
        lost = recorder.of("subscription.lost", kitchen.uid)[len(services) :]
        self.assertEqual([m.body["reason"] for m in lost], ["address changed"] * len(services))
        await service.controller.execute(kitchen.uid, "volume", {"volume": 23})
        self.assertEqual(kitchen.rendering.volume, 23)
