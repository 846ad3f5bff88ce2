"""Tests for household.resync: state read by control calls equals the state a SEQ 0 event gives."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from soco.utils import camel_to_underscore as soco_name
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.config import SimulateConfig
from sonosd.gena.eventxml import LazyDidl, parse_event_xml
from sonosd.household.resync import (
    READS,
    VARIABLES,
    StateReader,
    UnreadableService,
    ZoneGroupStateUnavailable,
    camel_to_underscore,
)
from sonosd.household.soap import SoapClient, UpnpFault
from sonosd.household.state import SpeakerRef
from sonosd.sim.propertyset import build_propertyset
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.supervisor_fakes import FakeSoap, SoapCall


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
        self.soap = SoapClient(reactor, 10.0)
        self.reader = StateReader(self.soap, reactor, 10.0)

    def device(self, index: int) -> SpeakerRef:
        speaker = self.household.speakers[index]
        return SpeakerRef(speaker.uid, speaker.name, speaker.address)

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
        calls_before = self.soap.calls
        await self.check(0, "RenderingControl")
        self.assertEqual(self.soap.calls, calls_before + len(READS["RenderingControl"]) - 2)

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


class ReaderUnitTests(SynchronousTestCase):
    """Reads against a recording SOAP caller: error handling without a network."""

    def reader(self, answers: Mapping[str, Any], timeout: float | None = None) -> StateReader:
        def answer(call: SoapCall) -> Any:
            return answers[call[3]]

        self.soap = FakeSoap(answer)
        self.clock = Clock()
        return StateReader(self.soap, self.clock, timeout)

    def test_large_household(self) -> None:
        """UPnP 501 on GetZoneGroupState fails with a clear error holding the other variables."""
        reader = self.reader(
            {
                "GetZoneGroupAttributes": {"CurrentZoneGroupName": "Kitchen"},
                "GetZoneGroupState": UpnpFault("GetZoneGroupState", "127.9.9.9", "501"),
            }
        )
        failure = self.failureResultOf(
            reader.read(REF, "ZoneGroupTopology"), ZoneGroupStateUnavailable
        )
        self.assertEqual(failure.value.error_code, "501")
        self.assertEqual(failure.value.variables, {"zone_group_name": "Kitchen"})
        self.assertIn("large household", str(failure.value))

    def test_required_error_propagates(self) -> None:
        """A UPnP error of a required action fails the read."""
        reader = self.reader({"GetZoneAttributes": UpnpFault("GetZoneAttributes", "h", "714")})
        failure = self.failureResultOf(reader.read(REF, "DeviceProperties"), UpnpFault)
        self.assertEqual(failure.value.error_code, "714")

    def test_group_member_reads_nothing(self) -> None:
        """UPnP 701 on a GroupRenderingControl read (a group member) gives no variables."""
        reader = self.reader({"GetGroupVolume": UpnpFault("GetGroupVolume", "h", "701")})
        self.assertEqual(self.successResultOf(reader.read(REF, "GroupRenderingControl")), {})

    def test_calls_go_to_the_speaker(self) -> None:
        """Each action goes to the speaker's address and port, in order, with its arguments;
        the Queue is read with Browse."""
        reader = self.reader({"Browse": {"UpdateID": "7", "Result": "x"}})
        self.assertEqual(self.successResultOf(reader.read(REF, "Queue")), {"update_id": "7"})
        self.assertEqual(
            self.soap.calls,
            [
                (
                    "127.9.9.9",
                    1400,
                    "Queue",
                    "Browse",
                    (("QueueID", 0), ("StartingIndex", 0), ("RequestedCount", 1)),
                    None,
                )
            ],
        )

    def test_whole_read_within_the_timeout(self) -> None:
        """A read whose answers do not come within the reader's timeout fails (timeout)."""
        reader = self.reader({}, timeout=3.0)
        self.soap.hold = True
        reading = reader.read(REF, "RenderingControl")
        self.clock.advance(3.0)
        self.failureResultOf(reading)
        self.assertTrue(self.soap.pending[0].called)

    def test_names_are_socos(self) -> None:
        """Every variable name a read gives is SoCo's name of the evented variable."""
        for reads in READS.values():
            for read in reads:
                for _, wire, _ in read.outputs:
                    self.assertEqual(camel_to_underscore(wire), soco_name(wire))

    def test_unknown_service(self) -> None:
        """A service no control call reads fails with UnreadableService."""
        self.failureResultOf(self.reader({}).read(REF, "GroupManagement"), UnreadableService)

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


REF = SpeakerRef("RINCON_9", "Den", "127.9.9.9")
