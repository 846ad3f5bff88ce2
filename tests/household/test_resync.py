"""Tests for household.resync: state read by control calls equals the state a SEQ 0 event gives."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from soco.utils import camel_to_underscore as soco_name
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.backoff import FailureKind, describe_failure
from sonosd.config import SimulateConfig
from sonosd.gena.eventxml import LazyDidl, parse_event_xml, variables_to_json
from sonosd.household.resync import (
    CHECKS,
    READS,
    VARIABLES,
    StateReader,
    UnreadableService,
    ZoneGroupStateUnavailable,
    camel_to_underscore,
    comparable,
)
from sonosd.household.soap import SoapClient, UpnpFault
from sonosd.household.state import SpeakerRef
from sonosd.sim.propertyset import build_propertyset
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.control.daemon_commands import start
from tests.daemon_helpers import until
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

    async def test_large_household_read_fails_with_the_rest_of_the_topology(self) -> None:
        """A household too large for GetZoneGroupState (the simulator answers UPnP 501) fails
        the ZoneGroupTopology read with ZoneGroupStateUnavailable, error code "501", holding
        every other variable as its event has it."""
        self.household.set_modes(large_household=True, large_household_players=2)
        with self.assertRaises(ZoneGroupStateUnavailable) as raised:
            await self.reader.read(self.device(1), "ZoneGroupTopology")
        self.assertEqual(raised.exception.error_code, "501")
        variables = raised.exception.variables
        self.assertEqual(set(variables), VARIABLES["ZoneGroupTopology"] - {"zone_group_state"})
        assert_within(
            self, variables, seq0_variables(self.household.speakers[1], "ZoneGroupTopology")
        )

    async def consistency(self, index: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The consistency check's AVTransport read of speaker ``index`` and its SEQ 0 event,
        as JSON."""
        speaker = self.household.speakers[index]
        read = await self.reader.check(self.device(index), ["AVTransport"])
        event = variables_to_json("AVTransport", seq0_variables(speaker, "AVTransport"))
        return variables_to_json("AVTransport", read["AVTransport"]), event

    async def test_check_of_a_queue_agrees_with_its_event(self) -> None:
        """A speaker playing its queue: the check reads the transport state, track URI and play
        mode its event has, and compares all three."""
        transport = self.household.speakers[0].transport
        transport.set_play_mode("REPEAT_ALL")
        transport.play()
        await transport.settled()
        read, event = await self.consistency(0)
        self.assertEqual(set(read), {"transport_state", "current_track_uri", "current_play_mode"})
        kept = comparable("AVTransport", event, read)
        self.assertEqual(kept, read)
        self.assertEqual(kept, {name: event[name] for name in kept})

    async def test_check_of_a_group_member_agrees_with_its_event(self) -> None:
        """A group member reads its coordinator's play mode (its event says NORMAL): only what
        both give alike (the x-rincon: track URI, the transport state) is compared."""
        household = self.household
        household.speakers[0].transport.set_play_mode("SHUFFLE")
        household.join(household.speakers[2], household.speakers[0])
        read, event = await self.consistency(2)
        self.assertNotEqual(read["current_play_mode"], event["current_play_mode"])
        kept = comparable("AVTransport", event, read)
        self.assertEqual(set(kept), {"transport_state", "current_track_uri"})
        self.assertEqual(kept, {name: event[name] for name in kept})
        self.assertTrue(kept["current_track_uri"].startswith("x-rincon:"))

    async def test_plain_services(self) -> None:
        """DeviceProperties, AlarmClock, ContentDirectory and Queue match their events."""
        for service in ("DeviceProperties", "AlarmClock", "ContentDirectory", "Queue"):
            read = await self.check(0, service)
            self.assertTrue(read, service)
        read = await self.check(0, "DeviceProperties")
        self.assertEqual(read["zone_name"], self.household.speakers[0].name)


class DaemonReadTests(TestCase):
    timeout = 120

    async def test_a_read_overlaps_a_command_to_the_same_speaker(self) -> None:
        """The daemon's state read of a speaker is answered while a command to that speaker
        still holds its place in the SoCo pool: reads do not queue behind commands."""
        daemon, _ = await start(self)
        kitchen = daemon.speaker(0)
        controller = daemon.service.controller
        ref = controller.state.by_uid(kitchen.uid)
        assert ref is not None
        entered, release = threading.Event(), threading.Event()
        self.addCleanup(release.set)

        def hold(device: object) -> None:
            entered.set()
            release.wait(60)

        holding = Deferred.fromCoroutine(controller.call(ref, hold, slow=True))
        holding.addErrback(lambda failure: None)
        await until(entered.is_set, "the command to hold the speaker")
        supervisor = next(
            found for found in daemon.service.household.speakers() if found.uid == kitchen.uid
        )
        read = await supervisor.ctx.reader.read(ref, "RenderingControl").addTimeout(30, reactor)
        self.assertEqual(read["volume"], {"Master": str(kitchen.rendering.volume)})
        self.assertFalse(holding.called)
        release.set()
        await holding


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
        """A read whose answers do not come within the reader's timeout fails: a plain
        timeout when no answer had begun (a dripping one names itself, see
        test_soap.SimulatorTests.test_dripping_reads_say_so)."""
        reader = self.reader({}, timeout=3.0)
        self.soap.hold = True
        reading = reader.read(REF, "RenderingControl")
        self.clock.advance(3.0)
        failure = self.failureResultOf(reading, defer.TimeoutError)
        self.assertEqual(describe_failure(failure), (FailureKind.UNREACHABLE, "timeout"))
        self.assertTrue(self.soap.pending[0].called)

    def test_check_reads_three_values(self) -> None:
        """The AVTransport check sends three actions and keeps only the transport state, the
        track URI and the play mode of their answers."""
        reader = self.reader(
            {
                "GetTransportInfo": {"CurrentTransportState": "PLAYING", "CurrentSpeed": "1"},
                "GetPositionInfo": {
                    "Track": "3",
                    "TrackURI": "x-file-cifs://nas/a&b.mp3",
                    "TrackDuration": "0:03:00",
                    "RelTime": "0:01:00",
                },
                "GetTransportSettings": {
                    "PlayMode": "SHUFFLE",
                    "RecQualityMode": "NOT_IMPLEMENTED",
                },
            }
        )
        read = self.successResultOf(reader.check(REF, ["AVTransport", "Queue"]))
        self.assertEqual(
            read,
            {
                "AVTransport": {
                    "transport_state": "PLAYING",
                    "current_track_uri": "x-file-cifs://nas/a&b.mp3",
                    "current_play_mode": "SHUFFLE",
                }
            },
        )
        self.assertEqual(
            [call[3] for call in self.soap.calls],
            ["GetTransportInfo", "GetPositionInfo", "GetTransportSettings"],
        )
        self.assertEqual(
            [read.args for read in CHECKS["AVTransport"]],
            [read.args for read in READS["AVTransport"][:4] if read.action != "GetMediaInfo"],
        )

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


QUEUE = "x-rincon-queue:RINCON_9#0"
SPOTIFY = "x-sonos-spotify:spotify%3atrack%3a5qAFqkXoQd2RfjZ2j1ay0w?sid=9&flags=8224&sn=9"


class ComparableTests(SynchronousTestCase):
    """Which values of a consistency check's read are compared with the evented state."""

    def state(self, source: str, track: str, **more: str) -> dict[str, Any]:
        return {
            "av_transport_uri": source,
            "current_track_uri": track,
            "transport_state": "STOPPED",
            "current_play_mode": "NORMAL",
            **more,
        }

    def read(self, track: str, mode: str = "NORMAL", state: str = "STOPPED") -> dict[str, Any]:
        return {"transport_state": state, "current_track_uri": track, "current_play_mode": mode}

    def test_queue_compares_everything(self) -> None:
        """Playing the queue, the track URI and the play mode are compared."""
        read = self.read("x-file-cifs://nas/b.mp3", "SHUFFLE")
        self.assertEqual(comparable("AVTransport", self.state(QUEUE, SPOTIFY), read), read)

    def test_group_member_play_mode_left_out(self) -> None:
        """A member (x-rincon: in the state or the read) has its play mode left out, its track
        URI kept."""
        member = "x-rincon:RINCON_1"
        for state, track in ((self.state(member, member), member), (self.state(QUEUE, ""), member)):
            kept = comparable("AVTransport", state, self.read(track, "SHUFFLE"))
            self.assertNotIn("current_play_mode", kept)
            self.assertEqual(kept["current_track_uri"], track)

    def test_streams_and_unknown_sources_leave_the_track_out(self) -> None:
        """Radio, line-in, TV or an unknown source: the track URI is not compared."""
        for source in (
            "x-sonosapi-stream:s12345?sid=254&flags=8224&sn=0",
            "x-rincon-mp3radio://example.com/stream",
            "x-rincon-stream:RINCON_9",
            "x-sonos-htastream:RINCON_9:spdif",
            "",
        ):
            kept = comparable("AVTransport", self.state(source, "a"), self.read("b"))
            self.assertNotIn("current_track_uri", kept, source)
            self.assertEqual(kept["current_play_mode"], "NORMAL")
        kept = comparable("AVTransport", {"current_track_uri": "a"}, self.read("b"))
        self.assertNotIn("current_track_uri", kept)

    def test_transition_leaves_the_track_out(self) -> None:
        """While either side is TRANSITIONING the track URI is not compared."""
        state = self.state(QUEUE, "a")
        kept = comparable("AVTransport", state, self.read("b", state="TRANSITIONING"))
        self.assertNotIn("current_track_uri", kept)
        state["transport_state"] = "TRANSITIONING"
        self.assertNotIn("current_track_uri", comparable("AVTransport", state, self.read("b")))

    def test_other_services_unchanged(self) -> None:
        """Other services' reads are compared whole."""
        read = {"volume": {"Master": 3}, "mute": {"Master": False}}
        self.assertEqual(comparable("RenderingControl", {}, read), read)
