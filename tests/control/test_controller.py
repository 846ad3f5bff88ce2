"""Tests for control.controller: commands against the simulator through real SoCo, and errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import requests
import soco
from soco.exceptions import NotSupportedException, SoCoUPnPException
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd import lazysoco
from sonosd.blocking import CallTimeout, SocoRunner
from sonosd.config import SimulateConfig
from sonosd.control.controller import ControlError, Controller, _on_device
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import parse_zone_group_state
from sonosd.sim.service import HouseholdService, default_manager_factory
from tests.audio_helpers import serve_audio
from tests.conftest import free_loopback_base


class SimulatorControlTests(TestCase):
    """Commands on a three-speaker household (S18, S14 soundbar, S18) through real SoCo.

    Topology events reach ``HouseholdState`` as the daemon's pipeline would deliver them:
    each ZoneGroupState a simulated speaker events is parsed and set, a moment later.
    """

    def setUp(self) -> None:
        base = free_loopback_base(count=4)
        self.state = HouseholdState()
        self._pending: list[Any] = []
        self.addCleanup(lambda: [call.cancel() for call in self._pending if call.active()])
        self.sim = HouseholdService(
            reactor,
            SimulateConfig(speakers=3, base_address=base),
            models=("S18", "S14", "S18"),
            transition_delay=0.01,
            manager_factory=self._manager,
        )
        self.household = self.sim.household
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.runner = SocoRunner(reactor, threads=6, timeout=10.0)
        self.runner.startService()
        self.addCleanup(self.runner.stopService)
        self.controller = Controller(
            self.runner,
            self.state,
            reactor,
            timeout=5.0,
            confirm_timeout=3.0,
            poll_interval=0.05,
        )
        for speaker in self.household.speakers:
            self.state.ensure(SpeakerRef(speaker.uid, speaker.name, speaker.address))
            self.state.set_availability(speaker.uid, "online", "test", time=0.0)
        self.state.set_topology(parse_zone_group_state(self.household.zone_group_state()))

    def _manager(self, *args: Any) -> Any:
        manager = default_manager_factory(*args)
        notify = manager.notify

        def forward(service: str, changed: Mapping[str, Any]) -> object:
            document = changed.get("ZoneGroupState")
            if service == "ZoneGroupTopology" and isinstance(document, str):
                self._pending.append(reactor.callLater(0.01, self._topology_event, document))
            return notify(service, changed)

        manager.notify = forward  # type: ignore[method-assign]
        return manager

    def _topology_event(self, document: str) -> None:
        self.state.set_topology(parse_zone_group_state(document))

    async def grouped(self, member: int, coordinator: int) -> None:
        """Join speaker ``member`` to ``coordinator`` in the simulator; wait for the event."""
        self.household.join(self.speaker(member), self.speaker(coordinator))
        expected = parse_zone_group_state(self.household.zone_group_state())
        for _ in range(200):
            if self.state.topology == expected:
                return
            await deferLater(reactor, 0.01, lambda: None)
        raise AssertionError("the topology event never arrived")

    def speaker(self, index: int) -> Any:
        return self.household.speakers[index]

    async def cmd(self, index: int, command: str, **args: Any) -> dict[str, Any]:
        """Run ``command`` on speaker ``index`` (by room name); its result."""
        result: dict[str, Any] = await self.controller.execute(
            self.speaker(index).name.upper(), command, args
        )
        return result

    async def error(self, index: int | str, command: str, **args: Any) -> ControlError:
        """The ControlError ``command`` fails with."""
        speaker = index if isinstance(index, str) else self.speaker(index).uid
        try:
            await self.controller.execute(speaker, command, args)
        except ControlError as error:
            return error
        raise AssertionError(f"{command} did not fail")

    async def test_soco_objects_are_built_in_the_pool(self) -> None:
        """A command's SoCo object is built in a thread of the pool, not the reactor's (the
        first one imports SoCo, which the reactor must not wait for)."""
        threads: list[str] = []
        factory = self.controller.soco_factory

        def recording(*args: Any) -> Any:
            threads.append(threading.current_thread().name)
            return factory(*args)

        controller = Controller(
            self.runner, self.state, reactor, timeout=5.0, soco_factory=recording
        )
        result = await controller.execute(self.speaker(0).name, "volume", {"volume": 12})
        self.assertEqual(result, {"volume": 12})
        self.assertEqual(self.speaker(0).rendering.volume, 12)
        self.assertTrue(threads)
        self.assertNotIn(threading.main_thread().name, threads)

    async def test_transport_commands(self) -> None:
        """play, pause, toggle, next, previous and stop change the simulated transport."""
        transport = self.speaker(0).transport
        result = await self.cmd(0, "play")
        self.assertEqual(result, {"coordinator": self.speaker(0).uid})
        await transport.settled()
        self.assertEqual(transport.state, "PLAYING")
        await self.cmd(0, "pause")
        self.assertEqual(transport.state, "PAUSED_PLAYBACK")
        self.assertEqual((await self.cmd(0, "toggle"))["action"], "play")
        await transport.settled()
        self.assertEqual((await self.cmd(0, "toggle"))["action"], "pause")
        await self.cmd(0, "next")
        self.assertEqual(transport.track_no, 2)
        await self.cmd(0, "previous")
        self.assertEqual(transport.track_no, 1)
        await self.cmd(0, "stop")
        self.assertEqual(transport.state, "STOPPED")

    async def test_transport_goes_to_coordinator(self) -> None:
        """A transport command on a group member plays its coordinator."""
        await self.grouped(2, 0)
        result = await self.cmd(2, "play")
        self.assertEqual(result["coordinator"], self.speaker(0).uid)
        await self.speaker(0).transport.settled()
        self.assertEqual(self.speaker(0).transport.state, "PLAYING")

    async def test_seek(self) -> None:
        """seek moves to a track number or a position in the track."""
        transport = self.speaker(0).transport
        await self.cmd(0, "seek", track=3)
        self.assertEqual(transport.track_no, 3)
        result = await self.cmd(0, "seek", position=65)
        self.assertEqual(result["position"], "0:01:05")
        self.assertEqual(transport.position(), 65)

    async def test_play_mode(self) -> None:
        """play_mode combines shuffle and repeat into Sonos's play mode, and sets crossfade."""
        result = await self.cmd(0, "play_mode", shuffle=True, repeat="all")
        self.assertEqual(result["play_mode"], "SHUFFLE")
        self.assertEqual(self.speaker(0).transport.play_mode, "SHUFFLE")
        result = await self.cmd(0, "play_mode", shuffle=False, crossfade=True)
        self.assertEqual(
            result,
            {"play_mode": "REPEAT_ALL", "shuffle": False, "repeat": "all", "crossfade": True},
        )
        self.assertTrue(self.speaker(0).transport.crossfade)

    async def test_volume_and_rendering(self) -> None:
        """volume (absolute and relative), mute, bass, treble and loudness change the speaker."""
        rendering = self.speaker(0).rendering
        self.assertEqual(await self.cmd(0, "volume", volume=30), {"volume": 30})
        self.assertEqual(await self.cmd(0, "volume", delta=-5), {"volume": 25})
        self.assertEqual(rendering.volume, 25)
        self.assertEqual(await self.cmd(0, "mute"), {"mute": True})
        self.assertTrue(rendering.mute)
        await self.cmd(0, "mute", mute=False)
        self.assertFalse(rendering.mute)
        await self.cmd(0, "bass", bass=-4)
        await self.cmd(0, "treble", treble=6)
        await self.cmd(0, "loudness", loudness=False)
        self.assertEqual((rendering.bass, rendering.treble, rendering.loudness), (-4, 6, False))

    async def test_soundbar_modes(self) -> None:
        """night_mode and dialog_mode work on a soundbar and are 409 not_supported elsewhere."""
        await self.cmd(1, "night_mode", night_mode=True)
        await self.cmd(1, "dialog_mode", dialog_mode=True)
        rendering = self.speaker(1).rendering
        self.assertEqual((rendering.night_mode, rendering.dialog_level), (True, True))
        error = await self.error(0, "night_mode", night_mode=True)
        self.assertEqual((error.code, error.status), ("not_supported", 409))

    async def test_group_volume_and_mute(self) -> None:
        """group_volume and group_mute act on the whole group through its coordinator."""
        await self.grouped(2, 0)
        self.speaker(0).set_volume(20)
        self.speaker(2).set_volume(40)
        result = await self.cmd(2, "group_volume", volume=50)
        self.assertEqual(result["group_volume"], 50)
        self.assertEqual(
            (self.speaker(0).rendering.volume, self.speaker(2).rendering.volume), (40, 60)
        )
        self.assertEqual((await self.cmd(0, "group_volume", delta=-10))["group_volume"], 40)
        self.assertEqual((await self.cmd(0, "group_mute"))["group_mute"], True)
        self.assertTrue(self.speaker(0).rendering.mute and self.speaker(2).rendering.mute)

    async def test_join_and_leave(self) -> None:
        """join and leave answer the resulting group once topology events confirm it."""
        result = await self.cmd(2, "join", coordinator=self.speaker(0).name.lower())
        self.assertEqual(self.speaker(2).group.coordinator, self.speaker(0).uid)
        self.assertEqual((result["confirmed"], result["source"]), (True, "event"))
        members = {member["uid"] for member in result["group"]["members"]}
        self.assertEqual(members, {self.speaker(0).uid, self.speaker(2).uid})
        result = await self.cmd(2, "leave")
        self.assertTrue(self.speaker(2).is_coordinator)
        self.assertEqual([m["uid"] for m in result["group"]["members"]], [self.speaker(2).uid])
        self.assertTrue(result["confirmed"])

    async def test_join_without_events(self) -> None:
        """Without any topology in the state, join confirms by reading the topology."""
        controller = Controller(self.runner, HouseholdState(), reactor, timeout=5.0)
        state = controller._state
        for speaker in self.household.speakers:
            state.ensure(SpeakerRef(speaker.uid, speaker.name, speaker.address))
        result = await controller.execute(
            self.speaker(1).uid, "join", {"coordinator": "Living Room"}
        )
        self.assertEqual((result["confirmed"], result["source"]), (True, "read"))
        self.assertEqual(self.speaker(1).group.coordinator, self.speaker(0).uid)

    async def test_join_own_group(self) -> None:
        """Joining one's own group is a bad coordinator argument."""
        error = await self.error(0, "join", coordinator=self.speaker(0).uid)
        self.assertEqual((error.code, error.argument), ("bad_argument", "coordinator"))

    async def test_party(self) -> None:
        """party puts every visible speaker in the speaker's group."""
        result = await self.cmd(1, "party")
        self.assertTrue(result["confirmed"])
        self.assertEqual(len(result["group"]["members"]), 3)
        self.assertEqual(len(self.household.groups), 1)

    async def test_play_uri_and_favorite(self) -> None:
        """play_uri plays a URL; play_favorite plays a Sonos favorite found by name."""
        await self.cmd(0, "play_uri", uri="http://127.0.0.1/song.mp3", title="Song")
        transport = self.speaker(0).transport
        self.assertEqual(transport.uri, "http://127.0.0.1/song.mp3")
        favorite = self.household.favorites[0]
        result = await self.cmd(0, "play_favorite", name=favorite.title.upper())
        self.assertEqual(result["favorite"], favorite.title)
        self.assertEqual(transport.uri, favorite.uri)
        error = await self.error(0, "play_favorite", name="No Such Thing")
        self.assertEqual((error.code, error.status), ("unknown_favorite", 404))

    async def test_queue(self) -> None:
        """queue lists, adds to, plays from and clears the coordinator's queue."""
        transport = self.speaker(0).transport
        listed = await self.cmd(0, "queue", action="list", count=3)
        self.assertEqual(listed["total"], len(transport.queue))
        self.assertEqual([item["position"] for item in listed["items"]], [1, 2, 3])
        self.assertEqual(listed["items"][0]["title"], transport.queue[0].title)
        added = await self.cmd(0, "queue", action="add", uri="http://127.0.0.1/extra.mp3")
        self.assertEqual(added["position"], len(transport.queue))
        await self.cmd(0, "queue", action="play", track=2)
        self.assertEqual(transport.track_no, 2)
        await self.cmd(0, "queue", action="clear")
        self.assertEqual(transport.queue, [])

    async def test_sleep_timer(self) -> None:
        """sleep_timer sets, reads and cancels the coordinator's sleep timer."""
        result = await self.cmd(0, "sleep_timer", minutes=10)
        self.assertEqual(result["remaining"], 600)
        self.assertEqual((await self.cmd(0, "sleep_timer"))["remaining"], 600)
        self.assertIsNone((await self.cmd(0, "sleep_timer", action="cancel"))["remaining"])
        self.assertIsNone(self.speaker(0).transport.remaining_sleep())

    async def test_snapshot_restore_regroups(self) -> None:
        """restore brings back the saved grouping and each member's volume."""
        await self.grouped(2, 0)
        self.speaker(2).set_volume(33)
        saved = await self.cmd(0, "snapshot", name="evening")
        self.assertEqual(set(saved["members"]), {self.speaker(0).uid, self.speaker(2).uid})
        await self.cmd(2, "leave")
        await self.cmd(2, "volume", volume=70)
        restored = await self.cmd(1, "restore", name="evening")
        self.assertTrue(restored["regrouped"])
        self.assertEqual(self.speaker(2).group.coordinator, self.speaker(0).uid)
        self.assertEqual(self.speaker(2).rendering.volume, 33)
        error = await self.error(0, "restore", name="morning")
        self.assertEqual((error.code, error.status), ("unknown_snapshot", 404))

    async def test_announce(self) -> None:
        """announce plays a clip at a volume until it ends, then restores what played before."""
        transport = self.speaker(0).transport
        before_uri = transport.uri
        self.speaker(0).set_volume(12)
        volumes: list[int] = []
        original = self.speaker(0).set_volume

        def record(volume: int, channel: str = "Master") -> int:
            volumes.append(int(volume))
            return original(volume, channel)

        self.speaker(0).set_volume = record
        server = serve_audio(self)
        clip = server.url("/clip.wav")
        result = await self.cmd(0, "announce", uri=clip, volume=45, timeout=10)
        self.assertEqual(result["ended"], "finished")
        self.assertEqual(server.requests, ["/clip.wav"])
        self.assertEqual(volumes[0], 45)
        self.assertEqual(self.speaker(0).rendering.volume, 12)
        self.assertEqual(transport.uri, before_uri)
        self.assertEqual(self.controller.snapshots, {})

    async def test_announce_bounded(self) -> None:
        """An announcement that does not end by itself is cut at its timeout and restored."""
        result = await self.cmd(
            0, "announce", uri="x-rincon-mp3radio://127.0.0.1/live", timeout=0.3
        )
        self.assertEqual(result["ended"], "timeout")
        self.assertNotEqual(self.speaker(0).transport.uri, "x-rincon-mp3radio://127.0.0.1/live")

    async def test_speaker_error(self) -> None:
        """A UPnP fault is 502 speaker_error with the UPnP error code."""
        self.speaker(0).transport.clear_queue()
        error = await self.error(0, "play")
        self.assertEqual((error.code, error.status, error.upnp_error), ("speaker_error", 502, 701))

    async def test_speaker_error_names_the_coordinator(self) -> None:
        """A transport fault on a group member's command names the coordinator that refused."""
        await self.cmd(2, "join", coordinator=self.speaker(0).uid)
        self.speaker(0).transport.clear_queue()
        error = await self.error(2, "play")
        self.assertEqual(error.upnp_error, 701)
        self.assertIn(self.speaker(0).name, error.message)
        self.assertNotIn(self.speaker(2).name, error.message)

    async def test_unknown_speaker_and_offline(self) -> None:
        """An unknown speaker is 404; one the state marks offline is 503 with the reason."""
        error = await self.error("Attic", "play")
        self.assertEqual((error.code, error.status), ("unknown_speaker", 404))
        self.state.set_availability(self.speaker(1).uid, "offline", "no answer", time=1.0)
        error = await self.error(1, "volume", volume=3)
        self.assertEqual((error.code, error.status), ("offline", 503))
        self.assertIn("no answer", error.message)

    async def test_refused_connection(self) -> None:
        """A speaker that refuses connections (not yet marked offline) is 503 offline."""
        await self.speaker(1).go_offline("refuse")
        error = await self.error(1, "volume", volume=3)
        self.assertEqual((error.code, error.status), ("offline", 503))

    async def test_hung_speaker_times_out(self) -> None:
        """A hung speaker's command is 504 timeout while another speaker keeps answering."""
        self.controller.timeout = 0.5
        await self.speaker(1).go_offline("hang")
        hung = self.error(1, "volume", volume=3)
        self.assertEqual(await self.cmd(0, "volume", volume=41), {"volume": 41})
        error = await hung
        self.assertEqual((error.code, error.status), ("timeout", 504))
        self.assertEqual(self.speaker(0).rendering.volume, 41)


class _Recorder:
    """A runner that records each call and answers with ``answer(fn, device)``."""

    def __init__(self, answer: Callable[[Any, Any], Any]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, Any, object]] = []

    def run(self, fn: Any, *args: Any, key: object = None, timeout: Any = None) -> Deferred[Any]:
        if fn is _on_device:
            # What the pool's thread does: build the SoCo object, then make the call.
            build, ref, fn, *rest = args
            args = (build(ref), *rest)
        self.calls.append((fn.__name__, args[0], key))
        return maybeDeferred(self.answer, fn, *args)


KITCHEN = SpeakerRef("RINCON_A", "Kitchen", "127.9.0.2")
DEN = SpeakerRef("RINCON_B", "Den", "127.9.0.3")

ZGS = (
    "<ZoneGroupState><ZoneGroups>"
    '<ZoneGroup Coordinator="RINCON_A" ID="RINCON_A:1">'
    '<ZoneGroupMember UUID="RINCON_A" Location="http://127.9.0.2:1400/xml/device_description.xml" '
    'ZoneName="Kitchen"/>'
    '<ZoneGroupMember UUID="RINCON_B" Location="http://127.9.0.3:1400/xml/device_description.xml" '
    'ZoneName="Den"/>'
    "</ZoneGroup></ZoneGroups></ZoneGroupState>"
)


class ControllerUnitTests(SynchronousTestCase):
    """Routing and error mapping with a recording runner: no network."""

    def controller(self, answer: Callable[..., Any]) -> tuple[Controller, _Recorder]:
        state = HouseholdState()
        for ref in (KITCHEN, DEN):
            state.ensure(ref)
        state.set_topology(parse_zone_group_state(ZGS))
        runner = _Recorder(answer)
        controller = Controller(runner, state, Clock(), soco_factory=lambda host: host)
        return controller, runner

    def failed(
        self, answer: Callable[..., Any], command: str = "play", **args: Any
    ) -> ControlError:
        controller, _ = self.controller(answer)
        return self.failureResultOf(controller.execute("den", command, args), ControlError).value

    def test_routes_transport_to_coordinator(self) -> None:
        """A transport command on a member runs on the coordinator, keyed by its uid."""
        controller, runner = self.controller(lambda fn, device, *args: None)
        result = self.successResultOf(controller.execute("Den", "pause", {}))
        self.assertEqual(result, {"coordinator": "RINCON_A"})
        self.assertEqual(runner.calls, [("_invoke", "127.9.0.2", "RINCON_A")])

    def test_rendering_stays_on_speaker(self) -> None:
        """A volume command runs on the speaker named, keyed by its uid."""
        controller, runner = self.controller(lambda fn, device, *args: 7)
        self.assertEqual(
            self.successResultOf(controller.execute("RINCON_B", "volume", {"delta": 1})),
            {"volume": 7},
        )
        self.assertEqual(runner.calls, [("_volume", "127.9.0.3", "RINCON_B")])

    def test_busy_speaker_refuses_more_commands(self) -> None:
        """Past max_pending unanswered calls for one speaker, a command fails at once with
        503 busy; other speakers are unaffected, and the slot frees when a call ends."""
        waiting: list[Deferred[Any]] = []

        def hang(fn: Any, device: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            waiting.append(d)
            return d

        controller, runner = self.controller(hang)
        controller._max_pending = 2
        first = controller.execute("den", "volume", {"volume": 1})
        controller.execute("den", "volume", {"volume": 2})
        busy = self.failureResultOf(
            controller.execute("den", "volume", {"volume": 3}), ControlError
        ).value
        self.assertEqual((busy.code, busy.status), ("busy", 503))
        self.assertEqual(len(runner.calls), 2)
        controller.execute("kitchen", "volume", {"volume": 4})
        self.assertEqual(len(runner.calls), 3)
        waiting[0].callback(1)
        self.successResultOf(first)
        controller.execute("den", "volume", {"volume": 5})
        self.assertEqual(len(runner.calls), 4)

    def test_checks_before_network(self) -> None:
        """Unknown commands and bad arguments fail before any call is made."""
        controller, runner = self.controller(lambda fn, device, *args: None)
        error = self.failureResultOf(controller.execute("Den", "fly", {}), ControlError).value
        self.assertEqual((error.code, error.status), ("unknown_command", 404))
        error = self.failureResultOf(
            controller.execute("Den", "volume", {"volume": -1}), ControlError
        ).value
        self.assertEqual(
            (error.code, error.status, error.argument), ("bad_argument", 400, "volume")
        )
        self.assertEqual(runner.calls, [])

    def test_timeout(self) -> None:
        """A call that times out is 504 timeout."""

        def answer(fn: Any, device: Any, *args: Any) -> Any:
            raise CallTimeout("play", 2.0)

        error = self.failed(answer)
        self.assertEqual((error.code, error.status), ("timeout", 504))
        self.assertIn("2 s", error.message)

    def test_upnp_error(self) -> None:
        """A UPnP fault is 502 speaker_error carrying the code as an integer."""

        def answer(fn: Any, device: Any, *args: Any) -> Any:
            raise SoCoUPnPException("UPnP Error 800", "800", "")

        error = self.failed(answer)
        self.assertEqual((error.code, error.status, error.upnp_error), ("speaker_error", 502, 800))

    def test_not_supported(self) -> None:
        """SoCo's NotSupportedException is 409 not_supported."""

        def answer(fn: Any, device: Any, *args: Any) -> Any:
            raise NotSupportedException("not a soundbar")

        error = self.failed(answer, "night_mode", night_mode=True)
        self.assertEqual((error.code, error.status), ("not_supported", 409))

    def test_connection_errors(self) -> None:
        """A refused connection is 503 offline; SoCo's own request timeout is 504 with the
        same message as the pool's timeout (both are the call timeout: either may fire
        first)."""

        def refused(fn: Any, device: Any, *args: Any) -> Any:
            raise requests.exceptions.ConnectionError("refused")

        def slow(fn: Any, device: Any, *args: Any) -> Any:
            raise requests.exceptions.ReadTimeout("slow")

        def pool(fn: Any, device: Any, *args: Any) -> Any:
            raise CallTimeout("volume", 2.0)

        self.assertEqual(self.failed(refused).code, "offline")
        self.patch(soco.config, "REQUEST_TIMEOUT", 2.0)
        by_soco, by_pool = self.failed(slow), self.failed(pool)
        self.assertEqual((by_soco.code, by_soco.status), ("timeout", 504))
        self.assertEqual(by_soco.message, by_pool.message)

    def test_other_http_errors(self) -> None:
        """An HTTP status SoCo does not map (its raise_for_status) is 502 speaker_error."""

        def not_found(fn: Any, device: Any, *args: Any) -> Any:
            raise requests.exceptions.HTTPError("404 Client Error: Not Found")

        error = self.failed(not_found)
        self.assertEqual((error.code, error.status), ("speaker_error", 502))
        self.assertIn("404", error.message)
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_unexpected_error_hidden(self) -> None:
        """Anything else is 500 internal, logged, with no detail for the client."""

        def broken(fn: Any, device: Any, *args: Any) -> Any:
            raise KeyError("secret detail")

        error = self.failed(broken)
        self.assertEqual((error.code, error.status), ("internal", 500))
        self.assertNotIn("secret", error.message)
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_offline_coordinator(self) -> None:
        """A transport command whose coordinator is offline is 503 offline."""
        controller, runner = self.controller(lambda fn, device, *args: None)
        controller._state.set_availability("RINCON_A", "offline", "rebooting", time=1.0)
        error = self.failureResultOf(controller.execute("Den", "play", {}), ControlError).value
        self.assertEqual((error.code, error.status), ("offline", 503))
        self.assertEqual(runner.calls, [])

    def test_join_waits_for_topology(self) -> None:
        """join answers once a topology event shows the speaker in its new group."""
        clock = Clock()
        state = HouseholdState()
        for ref in (KITCHEN, DEN):
            state.ensure(ref)
        apart = ZGS.replace(
            '<ZoneGroupMember UUID="RINCON_B"',
            '</ZoneGroup><ZoneGroup Coordinator="RINCON_B" ID="RINCON_B:2">'
            '<ZoneGroupMember UUID="RINCON_B"',
        )
        state.set_topology(parse_zone_group_state(apart))
        runner = _Recorder(lambda fn, device, *args: None)
        controller = Controller(runner, state, clock, soco_factory=lambda host: host)
        d = controller.execute("Den", "join", {"coordinator": "Kitchen"})
        self.assertNoResult(d)
        self.assertEqual(runner.calls, [("_join", "127.9.0.3", "RINCON_B")])
        state.set_topology(parse_zone_group_state(ZGS))
        result = self.successResultOf(d)
        self.assertEqual((result["confirmed"], result["source"]), (True, "event"))
        self.assertEqual(result["group"]["coordinator"], "RINCON_A")
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_failed_deferred_from_runner(self) -> None:
        """A runner Deferred that fails asynchronously maps the same way."""
        controller, _ = self.controller(lambda fn, device, *args: fail(CallTimeout("x", 1.0)))
        error = self.failureResultOf(controller.execute("Kitchen", "stop", {}), ControlError).value
        self.assertEqual(error.code, "timeout")

    def test_port_passed_when_not_1400(self) -> None:
        """A speaker on another port gets SoCo(host, port)."""
        made: list[tuple[Any, ...]] = []
        state = HouseholdState()
        state.ensure(SpeakerRef("RINCON_C", "Loft", "127.9.0.9", 1401))
        runner = _Recorder(lambda fn, device, *args: 5)

        def factory(*args: Any) -> Any:
            made.append(args)
            return args[0]

        controller = Controller(runner, state, Clock(), soco_factory=factory)
        self.successResultOf(controller.execute("loft", "volume", {"volume": 5}))
        self.assertEqual(made, [("127.9.0.9", 1401)])


def test_default_factory_is_soco() -> None:
    """The controller builds real SoCo objects by default, SoCo loaded and configured by
    ``sonosd.lazysoco`` with the first one."""
    controller = Controller(_Recorder(lambda *a: None), HouseholdState(), Clock())
    assert controller._soco_factory is lazysoco.speaker
    assert isinstance(controller._soco_factory("127.9.0.9"), soco.SoCo)
