"""End-to-end: the daemon with ``discovery: true`` and no devices finds a simulated household.

The household runs on its own (a ``HouseholdService`` in the same reactor, not the daemon's
``simulate:`` section, which would hand the daemon its speakers as devices) and answers SSDP on
a private port of the SSDP group, on loopback only.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig, parse_config
from sonosd.household.discovery import SSDP_GROUP
from sonosd.service import SonosdService
from sonosd.sim.service import HouseholdService
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
