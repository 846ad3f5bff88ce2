"""Tests for household.resync: state read by control calls equals the state a SEQ 0 event gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import soco
from soco.exceptions import SoCoUPnPException
from twisted.internet import reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.blocking import SocoRunner
from sonosd.config import SimulateConfig
from sonosd.gena.eventxml import LazyDidl, parse_event_xml
from sonosd.household.resync import (
    READS,
    VARIABLES,
    StateReader,
    UnreadableService,
    ZoneGroupStateUnavailable,
    speaker_key,
)
from sonosd.sim.propertyset import build_propertyset
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base


def seq0_variables(speaker: Any, service: str) -> dict[str, Any]:
    """The variables of the simulator's SEQ 0 event for ``service``, as the daemon parses it."""
    return parse_event_xml(build_propertyset(service, speaker.full_state(service)))


def assert_within(case: Any, read: Mapping[str, Any], event: Mapping[str, Any]) -> None:
    """Every variable read is in the event with the same value (channel by channel)."""
    for name, value in read.items():
        case.assertIn(name, event)
        if isinstance(value, dict) and not isinstance(value, LazyDidl):
            for channel, item in value.items():
                case.assertEqual(item, event[name][channel], f"{name}[{channel}]")
        else:
            case.assertEqual(value, event[name], name)


class SimulatorReadTests(TestCase):
    """Reads against a three-speaker household (S18, S14 soundbar, S18) on loopback."""

    def setUp(self) -> None:
        base = free_loopback_base(count=4)
        config = SimulateConfig(speakers=3, base_address=base)
        self.sim = HouseholdService(
            reactor, config, models=("S18", "S14", "S18"), transition_delay=0.01
        )
        self.household = self.sim.household
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.runner = SocoRunner(reactor, threads=4, timeout=10.0)
        self.runner.startService()
        self.addCleanup(self.runner.stopService)
        self.reader = StateReader(self.runner)

    def device(self, index: int) -> soco.SoCo:
        return soco.SoCo(self.household.speakers[index].address)

    async def check(self, index: int, service: str) -> dict[str, Any]:
        read = await self.reader.read(self.device(index), service)
        assert_within(self, read, seq0_variables(self.household.speakers[index], service))
        return read

    async def test_avtransport_playing_queue(self) -> None:
        """AVTransport read while playing from the queue matches the SEQ 0 event, DIDL included."""
        transport = self.household.speakers[0].transport
        transport.play()
        await transport.settled()
        read = await self.check(0, "AVTransport")
        self.assertEqual(set(read), VARIABLES["AVTransport"])
        self.assertIsInstance(read["current_track_meta_data"], LazyDidl)
        self.assertTrue(read["current_track_meta_data"].title)

    async def test_avtransport_group_member(self) -> None:
        """A group member's AVTransport read reports its coordinator's source, as its event."""
        household = self.household
        household.join(household.speakers[2], household.speakers[0])
        read = await self.check(2, "AVTransport")
        self.assertTrue(read["current_track_uri"].startswith("x-rincon:"))

    async def test_avtransport_empty(self) -> None:
        """A speaker with nothing to play reads an empty duration, as its event says."""
        self.household.speakers[1].transport.clear_queue()
        read = await self.check(1, "AVTransport")
        self.assertEqual(read["current_track_duration"], "")

    async def test_rendering_control(self) -> None:
        """RenderingControl reads the Master channel values of the event (no EQ on an S18)."""
        self.household.speakers[0].set_volume(37)
        read = await self.check(0, "RenderingControl")
        self.assertEqual(read["volume"], {"Master": "37"})
        self.assertEqual(set(read), {"volume", "mute", "bass", "treble", "loudness"})

    async def test_rendering_control_soundbar(self) -> None:
        """A soundbar's read includes night mode and dialog level."""
        self.household.speakers[1].set_eq("NightMode", 1)
        read = await self.check(1, "RenderingControl")
        self.assertEqual(read["night_mode"], "1")
        self.assertEqual(read["dialog_level"], "0")

    async def test_unsupported_optional_not_retried(self) -> None:
        """An optional action a speaker refused is not sent again to that speaker."""
        device = self.device(0)
        await self.reader.read(device, "RenderingControl")
        self.assertTrue(self.reader._unsupported)
        calls_before = self.runner.calls
        await self.check(0, "RenderingControl")
        self.assertEqual(self.runner.calls, calls_before + 1)

    async def test_group_rendering_control(self) -> None:
        """The coordinator reads the group's volume and mute; a member reads nothing."""
        household = self.household
        household.join(household.speakers[2], household.speakers[0])
        read = await self.check(0, "GroupRenderingControl")
        self.assertEqual(set(read), {"group_volume", "group_mute"})
        self.assertEqual(await self.reader.read(self.device(2), "GroupRenderingControl"), {})

    async def test_zone_group_topology(self) -> None:
        """ZoneGroupTopology reads the ZoneGroupState document and the group attributes."""
        read = await self.check(1, "ZoneGroupTopology")
        self.assertEqual(set(read), VARIABLES["ZoneGroupTopology"])
        self.assertIn("<ZoneGroupState>", read["zone_group_state"])

    async def test_plain_services(self) -> None:
        """DeviceProperties, AlarmClock, ContentDirectory and Queue match their events."""
        for service in ("DeviceProperties", "AlarmClock", "ContentDirectory", "Queue"):
            read = await self.check(0, service)
            self.assertTrue(read, service)
        read = await self.check(0, "DeviceProperties")
        self.assertEqual(read["zone_name"], self.household.speakers[0].name)

    async def test_unknown_service(self) -> None:
        """A service no control call reads fails with UnreadableService."""
        with self.assertRaises(UnreadableService):
            await self.reader.read(self.device(0), "GroupManagement")


class _Service:
    def __init__(self, answers: Mapping[str, Any]) -> None:
        self._answers = answers

    def __getattr__(self, action: str) -> Any:
        def call(args: list[tuple[str, Any]]) -> Any:
            answer = self._answers[action]
            if isinstance(answer, Exception):
                raise answer
            return answer

        return call


class _Device:
    def __init__(self, **services: _Service) -> None:
        self.ip_address = "127.9.9.9"
        for name, service in services.items():
            setattr(self, name, service)


class _InlineRunner:
    def run(self, fn: Any, *args: Any, key: object = None, timeout: float | None = None) -> Any:
        return maybeDeferred(fn, *args)


class ReaderUnitTests(SynchronousTestCase):
    """Reads against recording fakes: error handling without a network."""

    def test_large_household(self) -> None:
        """UPnP 501 on GetZoneGroupState fails with a clear error holding the other variables."""
        error = SoCoUPnPException("UPnP Error 501", "501", "")
        device = _Device(
            zoneGroupTopology=_Service(
                {
                    "GetZoneGroupAttributes": {"CurrentZoneGroupName": "Kitchen"},
                    "GetZoneGroupState": error,
                }
            )
        )
        failure = self.failureResultOf(
            StateReader(_InlineRunner()).read(device, "ZoneGroupTopology"),
            ZoneGroupStateUnavailable,
        )
        self.assertEqual(failure.value.error_code, "501")
        self.assertEqual(failure.value.variables, {"zone_group_name": "Kitchen"})
        self.assertIn("large household", str(failure.value))

    def test_required_error_propagates(self) -> None:
        """A UPnP error of a required action fails the read."""
        error = SoCoUPnPException("UPnP Error 714", "714", "")
        device = _Device(deviceProperties=_Service({"GetZoneAttributes": error}))
        self.failureResultOf(
            StateReader(_InlineRunner()).read(device, "DeviceProperties"), SoCoUPnPException
        )

    def test_key_prefers_uid(self) -> None:
        """The runner key is the uid SoCo knows, else the address."""
        device = _Device()
        self.assertEqual(speaker_key(device), "127.9.9.9")
        device._uid = "RINCON_1"  # type: ignore[attr-defined]
        self.assertEqual(speaker_key(device), "RINCON_1")

    def test_reads_cover_every_default_service(self) -> None:
        """Every service the daemon subscribes to by default has reads."""
        for service in (
            "AVTransport",
            "RenderingControl",
            "GroupRenderingControl",
            "ZoneGroupTopology",
            "DeviceProperties",
            "AlarmClock",
            "ContentDirectory",
            "Queue",
        ):
            self.assertIn(service, READS)

    def test_read_uses_runner_key(self) -> None:
        """The read runs in the runner under the speaker's key, with the reader's timeout."""
        seen: list[tuple[object, float | None]] = []

        class Recording:
            def run(self, fn: Any, *args: Any, key: object = None, timeout: Any = None) -> Any:
                seen.append((key, timeout))
                return Deferred()

        StateReader(Recording(), timeout=3.0).read(_Device(), "Queue")
        self.assertEqual(seen, [("127.9.9.9", 3.0)])
