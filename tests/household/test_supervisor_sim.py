"""Integration tests: the supervisor against the simulated household, on loopback.

Real parts throughout (SoCo in the thread pool, the GENA client, the NOTIFY listener, the
event processor, the hub, the simulator's speakers on their own 127.A.B.x addresses), with
short timeouts in the configuration to compress hours into seconds.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
from treq.client import HTTPClient
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from sonosd.blocking import SocoRunner
from sonosd.config import DEFAULT_SERVICES, Config, Device, SimulateConfig, SubscriptionConfig
from sonosd.delivery.hub import Hub, Message
from sonosd.gena.listener import NotifyListener
from sonosd.household.events import EventProcessor
from sonosd.household.keepalive import ServiceSupervisor
from sonosd.household.readiness import health_reasons
from sonosd.household.state import HouseholdState
from sonosd.household.supervisor import HouseholdSupervisor, build_household
from sonosd.sim.gena import MAX_SEQ
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import DripClient
from tests.conftest import free_loopback_base
from tests.daemon_helpers import Recorder, check_schema
from tests.gena_wire import notify_request, status_of
from tests.paths import ROOT

reactor: Any = global_reactor

T = TypeVar("T")

FAST = SubscriptionConfig(
    timeout=3600,
    request_timeout=2.0,
    backoff_initial=0.2,
    backoff_max=0.5,
    no_event_grace=3.0,
    poll_interval=1.0,
    availability_interval=0.25,
    silence_timeout=600.0,
    shutdown_timeout=2.0,
)


class RecordingReader:
    """A ``StateReader`` stand-in that records what it was asked to read."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, str]] = []

    def read(self, speaker: Any, service: str) -> Deferred[dict[str, Any]]:
        self.reads.append((speaker.host, service))
        return succeed({})


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    """Wait (polling every 20 ms) until ``check()`` holds; fail after ``timeout`` seconds."""
    deadline = reactor.seconds() + timeout
    while not check():
        if reactor.seconds() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await deferLater(reactor, 0.02)


async def until_read(
    read: Callable[[], Awaitable[T]], check: Callable[[T], bool], what: str, timeout: float = 15.0
) -> T:
    """Read (every 50 ms) until ``check`` holds of what ``read()`` gives, and return that;
    fail after ``timeout`` seconds, naming the last reading."""
    deadline = reactor.seconds() + timeout
    while True:
        reading = await read()
        if check(reading):
            return reading
        if reactor.seconds() > deadline:
            raise AssertionError(f"gave up waiting for {what}: {reading!r}")
        await deferLater(reactor, 0.05)


@attrs.define
class Rig:
    sim: HouseholdService
    household: HouseholdSupervisor
    recorder: Recorder
    reader: RecordingReader
    state: HouseholdState
    listener: NotifyListener

    @property
    def speakers(self) -> list[Speaker]:
        return list(self.sim.household.speakers)

    def sim_subscriptions(self, speaker: Speaker) -> list[dict[str, Any]]:
        manager: Any = speaker.manager
        return list(manager.subscriptions())

    def faults(self, speaker: Speaker) -> Any:
        manager: Any = speaker.manager
        return manager.faults

    def service_supervisor(self, speaker: Speaker, service: str) -> ServiceSupervisor:
        """The daemon's supervisor of ``speaker``'s ``service`` subscription."""
        supervised = self.household.speaker(speaker.uid)
        assert supervised is not None
        return supervised.services[service]

    def initial_events(self, uid: str, service: str) -> list[Message]:
        return [m for m in self.recorder.of("event", uid, service) if m.body.get("seq") == 0]

    async def admin(self, method: str, path: str, body: object = None) -> Any:
        """Call the simulator's admin API (a rig made with ``admin=True``): its JSON answer."""
        http = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
        data = None if body is None else json.dumps(body).encode()
        response = await http.request(method, f"{self.sim.admin_url}{path}", data=data)
        answer = json.loads(await response.content())
        assert response.code == 200, (method, path, response.code, answer)
        return answer

    def live_sids(self, speaker: Speaker) -> set[str]:
        """The SIDs the daemon's current subscriptions to ``speaker`` hold."""
        supervised = self.household.speaker(speaker.uid)
        assert supervised is not None
        return {
            sup.subscription.sid
            for sup in supervised.services.values()
            if sup.subscription is not None and sup.subscription.sid
        }


def follow_only(
    rig: Rig,
    speaker: Speaker,
    services: Sequence[str] = DEFAULT_SERVICES,
    config: SubscriptionConfig = FAST,
) -> None:
    """Reload ``rig``'s household to follow ``speaker`` alone (``follow_household: false``),
    subscribed to ``services``."""
    rig.household.apply(
        Config(
            path="test.yaml",
            devices=(Device(host=speaker.address),),
            follow_household=False,
            services=tuple(services),
            subscription=config,
        )
    )


class SimTests(TestCase):
    """The issue's checks, end to end."""

    timeout = 60

    async def rig(
        self,
        speakers: int = 2,
        services: Sequence[str] = DEFAULT_SERVICES,
        config: SubscriptionConfig = FAST,
        before_start: Callable[[HouseholdService], object] | None = None,
        advertise: str | None = None,
        configured: Sequence[int] | None = None,
        follow_household: bool = True,
        stereo_pair: bool = False,
        names: Mapping[int, str] | None = None,
        households: int = 1,
        spare: int = 2,
        admin: bool = False,
    ) -> Rig:
        """A simulated household and a supervisor following it.

        @param configured: The indices of the speakers listed under ``devices`` (default:
            every one).
        @param names: The room name listed with a speaker's ``devices`` entry, by its index.
        @param households: The simulated households the speakers are split over (``speakers``
            are the first one's).
        @param spare: Free addresses after the speakers' (for a speaker that moves).
        @param admin: Serve the simulator's admin API (``Rig.admin``).
        """
        base = free_loopback_base(count=max(4, speakers + spare))
        sim = HouseholdService(
            reactor,
            SimulateConfig(
                speakers=speakers,
                base_address=base,
                stereo_pair=stereo_pair,
                households=households,
                admin="tcp:0:interface=127.0.0.1" if admin else None,
            ),
        )
        sim.startService()
        self.addCleanup(sim.stopService)
        if sim.admin_ready is not None:
            await sim.admin_ready
        if before_start is not None:
            prepared = before_start(sim)
            if isinstance(prepared, Deferred):
                await prepared
        runner = SocoRunner(reactor, threads=4, timeout=5.0)
        runner.startService()
        self.addCleanup(runner.stopService)
        listener = NotifyListener(reactor, interface="127.0.0.1", port=0, advertise=advertise)
        listener.startService()
        self.addCleanup(listener.stopService)
        hub = Hub(reactor)
        recorder = Recorder()
        hub.add_sink(recorder)
        state = HouseholdState()
        hub.set_snapshot_provider(state.snapshot)
        self.addCleanup(check_schema, recorder, hub)
        processor = EventProcessor(hub, state, reactor)
        reader = RecordingReader()
        household = build_household(
            reactor,
            Config(
                path="test.yaml",
                devices=tuple(
                    Device(host=address, name=(names or {}).get(index))
                    for index, address in enumerate(sim.addresses)
                    if configured is None or index in configured
                ),
                follow_household=follow_household,
                services=tuple(services),
                subscription=config,
            ),
            runner=runner,
            processor=processor,
            reader=reader,
            listener=listener,
            state=state,
        )
        household.startService()
        self.addCleanup(household.stopService)
        rig = Rig(sim, household, recorder, reader, state, listener)
        return rig

    async def settled(self, rig: Rig, services: Sequence[str] = DEFAULT_SERVICES) -> None:
        """Wait until every speaker's every service delivered its initial event."""
        await until(
            lambda: all(
                rig.initial_events(s.uid, service) for s in rig.speakers for service in services
            ),
            "the initial event of every service",
        )

    async def test_initial_state_for_every_service(self) -> None:
        """Every service of every speaker delivers its initial full state (SEQ 0) once."""
        rig = await self.rig()
        await self.settled(rig)
        for speaker in rig.speakers:
            for service in DEFAULT_SERVICES:
                self.assertEqual(len(rig.initial_events(speaker.uid, service)), 1, service)
            self.assertEqual(len(rig.recorder.of("speaker.online", speaker.uid)), 1)
            self.assertEqual(len(rig.sim_subscriptions(speaker)), len(DEFAULT_SERVICES))
        self.assertEqual(rig.recorder.of("subscription.lost"), [])
        self.assertEqual(rig.reader.reads, [])

    async def test_initial_notifies_ahead_of_their_answers_are_all_kept(self) -> None:
        """When every speaker's SEQ 0 NOTIFYs arrive before its SUBSCRIBE answers (48 at once,
        more than the old hold bound of 32), each is held and delivered: none refused 412."""

        def answer_late(sim: HouseholdService) -> None:
            # Late enough that every initial NOTIFY is in first, even on a loaded machine
            # (0.5 s let 12 of 48 NOTIFYs arrive after their answers once, at load 7).
            for speaker in sim.household.speakers:
                manager: Any = speaker.manager
                manager.faults.answer_delay = 2.0

        config = attrs.evolve(FAST, request_timeout=10.0)
        rig = await self.rig(speakers=6, config=config, before_start=answer_late)
        await self.settled(rig)
        dispatcher = rig.listener.dispatcher
        for speaker in rig.speakers:
            for service in DEFAULT_SERVICES:
                self.assertEqual(len(rig.initial_events(speaker.uid, service)), 1, service)
        self.assertEqual(dispatcher.rejected["unknown_sid"], 0)
        self.assertGreaterEqual(dispatcher.held, 6 * len(DEFAULT_SERVICES))
        for supervised in rig.household.speakers():
            self.assertFalse(any(sup.polling for sup in supervised.services.values()))
        self.assertEqual(rig.reader.reads, [])

    async def test_notifies_held_for_a_subscribe_are_bounded_per_sender(self) -> None:
        """While a SUBSCRIBE to a speaker is unanswered, two unknown-SID NOTIFYs from it are
        held (its initial NOTIFY among them) and a third is answered 412 at once; once the
        answer is read, the initial NOTIFY is delivered and the unclaimed one gets its 412."""

        def answer_late(sim: HouseholdService) -> None:
            manager: Any = sim.household.speakers[0].manager
            manager.faults.answer_delay = 1.0

        rig = await self.rig(speakers=1, services=("RenderingControl",), before_start=answer_late)
        speaker = rig.speakers[0]
        dispatcher = rig.listener.dispatcher
        await until(lambda: dispatcher.held == 1, "the initial NOTIFY held")
        self.assertEqual(rig.initial_events(speaker.uid, "RenderingControl"), [])
        endpoint = TCP4ClientEndpoint(
            reactor, "127.0.0.1", rig.listener.port, timeout=5, bindAddress=(speaker.address, 0)
        )
        clients = []
        for index in range(2):
            client = DripClient(notify_request(f"uuid:guess-{index}", 0, b"<x/>"))
            await connectProtocol(endpoint, client)
            self.addCleanup(client.close)
            clients.append(client)
        held, refused = clients
        self.assertEqual(status_of(await refused.done), 412)
        self.assertFalse(held.done.called)
        self.assertEqual((dispatcher.held, dispatcher.rejected["unknown_sid"]), (2, 1))
        self.assertEqual(status_of(await held.done), 412)
        self.assertEqual(dispatcher.rejected["unknown_sid"], 2)
        await self.settled(rig, ("RenderingControl",))
        self.assertEqual(len(rig.initial_events(speaker.uid, "RenderingControl")), 1)

    async def test_change_reaches_hub(self) -> None:
        """A volume change on a speaker arrives at the hub as a RenderingControl event."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[1]
        speaker.set_volume(37)

        def arrived() -> bool:
            return any(
                m.body["variables"].get("volume", {}).get("Master") == 37
                for m in rig.recorder.of("event", speaker.uid, "RenderingControl")
            )

        await until(arrived, "the volume event")

    async def test_reboot_resubscribes_and_resyncs_once(self) -> None:
        """A reboot is noticed (BootSeq), every service is resubscribed once, state resent."""
        rig = await self.rig()
        await self.settled(rig)
        speaker = rig.speakers[0]
        old_sids = {s["sid"] for s in rig.sim_subscriptions(speaker)}
        await speaker.reboot(downtime=0.3)
        await until(
            lambda: all(
                len(rig.initial_events(speaker.uid, service)) == 2 for service in DEFAULT_SERVICES
            ),
            "a second initial event of every service",
        )
        await until(
            lambda: (
                len(rig.recorder.of("subscription.restored", speaker.uid)) == len(DEFAULT_SERVICES)
            ),
            "every subscription restored",
        )
        # Give any duplicate resubscription time to show itself.
        await deferLater(reactor, 1.0)
        for service in DEFAULT_SERVICES:
            self.assertEqual(len(rig.initial_events(speaker.uid, service)), 2, service)
            lost = rig.recorder.of("subscription.lost", speaker.uid, service)
            self.assertEqual([m.body["reason"] for m in lost], ["reboot"])
            # docs/messages.md: until subscription.restored (reason: the one it was lost
            # for) nothing of that service arrives; then the SEQ 0 NOTIFY carries the state.
            [restored] = rig.recorder.of("subscription.restored", speaker.uid, service)
            self.assertEqual(restored.body["reason"], "reboot")
            events = rig.recorder.of("event", speaker.uid, service)
            self.assertEqual([m for m in events if lost[0].id < m.id < restored.id], [], service)
            [first, *_] = [m.body for m in events if m.id > restored.id]
            self.assertEqual((first["source"], first["seq"]), ("notify", 0), service)
        # The speaker restarted its SID counter: the new SIDs may repeat the old ones, but the
        # speaker holds exactly one subscription per service, the supervisor's.
        live = {s["sid"] for s in rig.sim_subscriptions(speaker)}
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        ours = {sup.subscription.sid for sup in supervised.services.values() if sup.subscription}
        self.assertEqual(len(live), len(DEFAULT_SERVICES))
        self.assertEqual(ours, live)
        self.assertEqual(len(old_sids), len(DEFAULT_SERVICES))
        other = rig.speakers[1]
        self.assertEqual(rig.recorder.of("subscription.lost", other.uid), [])

    async def test_412_on_a_renewal_resubscribes_every_service_once(self) -> None:
        """A speaker that forgot its subscriptions without a BootSeq the daemon could see (no
        ZoneGroupTopology subscribed) answers a renewal 412, and every one of its services is
        subscribed afresh once, lost and restored with the reason reboot."""
        services = ("RenderingControl", "AVTransport")
        rig = await self.rig(services=services, config=attrs.evolve(FAST, timeout=4))
        await self.settled(rig, services)
        speaker, other = rig.speakers
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        subs = [supervised.services[service] for service in services]
        manager: Any = speaker.manager
        await manager.forget_all()
        await until(
            lambda: all(len(rig.initial_events(speaker.uid, s)) == 2 for s in services),
            "a second initial event of every service",
        )
        renewed = [sup.renewals for sup in subs]
        # Renewals of the fresh subscriptions answered: nothing is left to resubscribe.
        await until(
            lambda: all(sup.renewals > count for sup, count in zip(subs, renewed, strict=True)),
            "a renewal of every fresh subscription",
        )
        for service in services:
            lost = rig.recorder.of("subscription.lost", speaker.uid, service)
            restored = rig.recorder.of("subscription.restored", speaker.uid, service)
            self.assertEqual([m.body["reason"] for m in lost], ["reboot"], service)
            self.assertEqual([m.body["reason"] for m in restored], ["reboot"], service)
            self.assertEqual(len(rig.initial_events(speaker.uid, service)), 2, service)
        ours = {sup.subscription.sid for sup in subs if sup.subscription}
        self.assertEqual({s["sid"] for s in rig.sim_subscriptions(speaker)}, ours)
        self.assertEqual(len(ours), len(services))
        self.assertEqual(rig.recorder.of("subscription.lost", other.uid), [])
        self.assertEqual(rig.recorder.of("speaker.offline", speaker.uid), [])

    async def test_offline_then_back(self) -> None:
        """A speaker that stops answering goes offline; when it answers again it is resubscribed."""
        config = attrs.evolve(FAST, silence_timeout=0.5)
        rig = await self.rig(services=("RenderingControl", "AVTransport"), config=config)
        await self.settled(rig, ("RenderingControl", "AVTransport"))
        speaker = rig.speakers[0]
        await speaker.go_offline("refuse")
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "speaker.offline")
        offline = rig.recorder.of("speaker.offline", speaker.uid)
        self.assertEqual(offline[0].body["reason"], "connection refused")
        # "Offline for a minute", compressed: several backed-off pings go unanswered.
        await deferLater(reactor, 1.5)
        await speaker.come_online()
        await until(
            lambda: len(rig.recorder.of("speaker.online", speaker.uid)) == 2, "speaker.online"
        )
        await until(
            lambda: len(rig.recorder.of("subscription.restored", speaker.uid)) == 2,
            "both subscriptions restored",
        )
        live = rig.sim_subscriptions(speaker)
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        sids = {sup.subscription.sid for sup in supervised.services.values() if sup.subscription}
        self.assertTrue(sids <= {s["sid"] for s in live})
        self.assertEqual(len(rig.recorder.of("speaker.offline", speaker.uid)), 1)

    async def test_subscribe_5xx_retried_with_backoff(self) -> None:
        """SUBSCRIBE answered 503 is retried with backoff until it succeeds; its first failure
        (the very first SUBSCRIBE's) is one subscription.lost, said once until restored
        (docs/supervisor.md, Messages)."""
        rig_holder: list[HouseholdService] = []

        def refuse(sim: HouseholdService) -> None:
            rig_holder.append(sim)
            manager: Any = sim.household.speakers[0].manager
            manager.faults.subscribe_status = 503

        rig = await self.rig(services=("RenderingControl",), before_start=refuse)
        speaker = rig.speakers[0]
        supervised = rig.household.speakers()[0]
        await until(lambda: supervised.services["RenderingControl"].failures >= 3, "3 failures")
        lost = rig.recorder.of("subscription.lost", speaker.uid, "RenderingControl")
        self.assertEqual([m.body["reason"] for m in lost], ["HTTP 503"])
        rig.faults(speaker).subscribe_status = None
        await until(
            lambda: rig.recorder.of("subscription.restored", speaker.uid), "subscription.restored"
        )
        await until(lambda: rig.initial_events(speaker.uid, "RenderingControl"), "initial event")

    async def test_renewal_hang_times_out_and_resubscribes(self) -> None:
        """A renewal that never answers times out; a fresh subscription replaces it."""
        config = attrs.evolve(FAST, timeout=4, request_timeout=0.5)
        rig = await self.rig(services=("RenderingControl",), config=config)
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        rig.faults(speaker).renew_hang = True
        await until(
            lambda: rig.recorder.of("subscription.lost", speaker.uid), "subscription.lost", 10
        )
        self.assertEqual(
            rig.recorder.of("subscription.lost", speaker.uid)[0].body["reason"], "timeout"
        )
        await until(
            lambda: rig.recorder.of("subscription.restored", speaker.uid), "subscription.restored"
        )
        self.assertTrue(rig.household.speakers()[0].online)

    async def test_dropped_notify_is_a_gap_and_resynced(self) -> None:
        """A NOTIFY lost on the way publishes events.gap and the state is read again."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        rig.faults(speaker).drop_next = 1
        speaker.set_volume(11)
        # LastChange is moderated: the second change must come after the first NOTIFY.
        await until(lambda: rig.sim_subscriptions(speaker)[0]["seq"] == 1, "the dropped NOTIFY")
        speaker.set_volume(12)
        await until(lambda: rig.recorder.of("events.gap", speaker.uid), "events.gap")
        gap = rig.recorder.of("events.gap", speaker.uid)[0]
        self.assertEqual((gap.body["expected"], gap.body["got"]), (1, 2))
        await until(lambda: rig.reader.reads, "a resync read")
        self.assertEqual(rig.reader.reads, [(speaker.address, "RenderingControl")])

    async def test_older_notify_after_a_newer_one_is_dropped(self) -> None:
        """Two NOTIFYs swapped on the wire: the newer one is a gap and resynced, the older
        one is dropped and counted, so the state keeps the newer value."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        sup = rig.service_supervisor(speaker, "RenderingControl")
        rig.faults(speaker).reorder_next = 1
        speaker.set_volume(21)
        # LastChange is moderated: the second change must come after the first NOTIFY.
        await until(lambda: rig.sim_subscriptions(speaker)[0]["seq"] == 1, "the held NOTIFY")
        speaker.set_volume(22)
        await until(lambda: sup.duplicates == 1, "the older NOTIFY dropped")
        gap = rig.recorder.of("events.gap", speaker.uid)
        self.assertEqual([(m.body["expected"], m.body["got"]) for m in gap], [(1, 2)])
        await until(lambda: sup.resyncs >= 1, "the resync")
        notified = [
            m.body["seq"]
            for m in rig.recorder.of("event", speaker.uid, "RenderingControl")
            if m.body.get("seq") is not None
        ]
        self.assertEqual(notified, [0, 2])
        self.assertEqual(
            rig.state.variables(speaker.uid, "RenderingControl")["volume"]["Master"], 22
        )

    async def test_seq_wraps_from_the_top_to_one(self) -> None:
        """A subscription whose SEQ reached 4294967295 goes on at SEQ 1: that NOTIFY is
        published, neither a gap (no events.gap, no resync) nor a duplicate."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        sup = rig.service_supervisor(speaker, "RenderingControl")

        def published() -> list[tuple[int, Any]]:
            return [
                (m.body["seq"], m.body["variables"].get("volume", {}).get("Master"))
                for m in rig.recorder.of("event", speaker.uid, "RenderingControl")
                if m.body.get("seq")
            ]

        async def change(volume: int, next_seq: int | None = None) -> None:
            rig.faults(speaker).next_seq = next_seq
            speaker.set_volume(volume)
            await until(lambda: [v for _, v in published()[-1:]] == [volume], f"volume {volume}")

        # Years of NOTIFYs compressed into two jumps of half the SEQ ring each (a longer one
        # would be taken for an older NOTIFY): two gaps, each resynced.
        half = MAX_SEQ // 2
        await change(31, next_seq=half)
        await until(lambda: sup.resyncs == 1, "the first resync")
        await change(32, next_seq=MAX_SEQ - 1)
        await until(lambda: sup.resyncs == 2, "the second resync")
        await change(33)
        await change(34)
        self.assertEqual(published(), [(half, 31), (MAX_SEQ - 1, 32), (MAX_SEQ, 33), (1, 34)])
        gaps = rig.recorder.of("events.gap", speaker.uid)
        self.assertEqual(
            [(m.body["expected"], m.body["got"]) for m in gaps],
            [(1, half), (half + 1, MAX_SEQ - 1)],
        )
        self.assertEqual((sup.gaps, sup.duplicates, sup.resyncs), (2, 0, 2))
        self.assertEqual(len(rig.reader.reads), 2)
        self.assertEqual(sup.last_seq, 1)

    async def test_gap_across_the_wrap_counts_what_was_missed(self) -> None:
        """NOTIFYs lost across the wrap of the SEQ (4294967295 and 1 dropped, 2 arriving) are an
        events.gap whose ``missed`` is 2, not 0, and a resync."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        sup = rig.service_supervisor(speaker, "RenderingControl")
        faults = rig.faults(speaker)
        # Two jumps of half the ring each (a longer one would be taken for an older NOTIFY).
        for resyncs, jump in enumerate((MAX_SEQ // 2, MAX_SEQ - 1), start=1):
            faults.next_seq = jump
            speaker.set_volume(30 + resyncs)
            await until(lambda n=resyncs: sup.resyncs == n, f"the resync after SEQ {jump}")
        faults.drop_next = 2
        for volume, seq in ((33, MAX_SEQ), (34, 1), (35, 2)):
            speaker.set_volume(volume)
            # LastChange is moderated: one NOTIFY per change, each after the previous one.
            await until(lambda s=seq: rig.sim_subscriptions(speaker)[0]["seq"] == s, f"SEQ {seq}")
        await until(lambda: sup.resyncs == 3, "the wrap's resync")
        gaps = [m.body for m in rig.recorder.of("events.gap", speaker.uid)]
        self.assertEqual(
            [(g["expected"], g["got"], g["missed"]) for g in gaps][-1:], [(MAX_SEQ, 2, 2)]
        )
        self.assertEqual(sup.last_seq, 2)

    async def test_stop_unsubscribes_everything(self) -> None:
        """stopService leaves no subscription at the simulator, within the bound."""
        rig = await self.rig()
        await self.settled(rig)
        await rig.household.stopService()
        for speaker in rig.speakers:
            self.assertEqual(rig.sim_subscriptions(speaker), [])

    async def test_stop_with_hanging_speaker_is_bounded(self) -> None:
        """stopService fires even when a speaker accepts connections but never answers."""
        rig = await self.rig(services=("RenderingControl", "AVTransport"))
        await self.settled(rig, ("RenderingControl", "AVTransport"))
        await rig.speakers[0].go_offline("hang")
        stopping = rig.household.stopService()
        stopping.addTimeout(FAST.shutdown_timeout + 2.0, reactor)
        await stopping
        self.assertEqual(rig.sim_subscriptions(rig.speakers[1]), [])

    async def test_unreachable_callback_falls_back_to_polling(self) -> None:
        """When NOTIFYs cannot reach sonosd it polls (no subscription.lost: none of them
        ever worked) and says why, once, naming the URL; the subscriptions are kept and
        renewed meanwhile (docs/supervisor.md, the polling fallback)."""
        config = attrs.evolve(FAST, timeout=4, no_event_grace=0.5, poll_interval=0.3)
        nowhere = free_loopback_base(count=1)
        with capturedLogs() as events:
            rig = await self.rig(
                services=("RenderingControl", "AVTransport"), config=config, advertise=nowhere
            )
            await until(lambda: len(rig.reader.reads) >= 8, "several polls")
        url = rig.listener.callback_url(rig.speakers[0].address)
        self.assertIn(nowhere, url)
        lines = [e for e in events if "listener.advertise" in e.get("log_format", "")]
        self.assertEqual(len(lines), 1)
        self.assertEqual(lines[0]["url"], url)
        # The line docs/supervisor.md shows, with this speaker, service, grace and URL.
        doc = (ROOT / "docs" / "supervisor.md").read_text()
        example = doc[doc.index("```\nno NOTIFY from") + 4 :].split("\n```", 1)[0]
        said = lines[0]
        for shown, actual in (
            ("Kitchen", said["room"]),
            ("192.168.1.20", said["host"]),
            ("5.0 s", "0.5 s"),
            ("AVTransport", said["service"]),
            ("http://172.17.0.2:1400/", url),
            ("TCP port 1400", f"TCP port {rig.listener.port}"),
        ):
            example = example.replace(shown, actual)
        self.assertEqual(formatEvent(said), example.replace("\n", " "))
        self.assertEqual(
            {service for _, service in rig.reader.reads}, {"RenderingControl", "AVTransport"}
        )
        for supervised in rig.household.speakers():
            self.assertTrue(all(sup.polling for sup in supervised.services.values()))
        sids = {s.uid: rig.live_sids(s) for s in rig.speakers}
        sups = [sup for spk in rig.household.speakers() for sup in spk.services.values()]
        await until(lambda: all(sup.renewals >= 1 for sup in sups), "every subscription renewed")
        self.assertTrue(all(sup.polling for sup in sups))
        for speaker in rig.speakers:
            self.assertEqual(rig.live_sids(speaker), sids[speaker.uid])
            self.assertEqual({s["sid"] for s in rig.sim_subscriptions(speaker)}, sids[speaker.uid])
        # NOTIFYs that never arrive are no failure: no subscription.lost (docs/supervisor.md,
        # Messages).
        self.assertEqual(rig.recorder.of("subscription.lost"), [])

    async def test_a_reload_applies_poll_interval_to_the_polls_under_way(self) -> None:
        """A reload that changes ``poll_interval`` while a service is polled (its NOTIFYs
        never arrive) has it read at the new interval from then on (docs/configuration.md:
        subscription timings), not at the next tick of the old one, a day away here."""
        config = attrs.evolve(FAST, no_event_grace=0.3, poll_interval=86400.0)
        rig = await self.rig(
            speakers=1,
            services=("RenderingControl",),
            config=config,
            advertise=free_loopback_base(count=1),
        )
        [speaker] = rig.speakers
        await until(lambda: rig.household.speaker(speaker.uid), "the speaker identified")
        sup = rig.service_supervisor(speaker, "RenderingControl")
        await until(lambda: sup.polling and sup.polls == 1, "the first poll")
        polls = len(rig.reader.reads)
        rig.household.apply(
            Config(
                path="test.yaml",
                devices=(Device(host=speaker.address),),
                services=("RenderingControl",),
                subscription=attrs.evolve(config, poll_interval=0.2),
            )
        )
        await until(lambda: len(rig.reader.reads) >= polls + 2, "polls at the new interval")
        self.assertTrue(sup.polling)

    async def test_polling_stops_at_the_first_notify_a_gap(self) -> None:
        """A subscription whose SEQ 0 NOTIFY was lost polls (health degraded) on the same SID
        until its first NOTIFY, numbered 1, arrives: polling stops, said once, and that
        NOTIFY is a gap (expected 0, got 1) with a resync."""
        config = attrs.evolve(FAST, no_event_grace=0.5, poll_interval=0.3)
        services = ("RenderingControl",)

        def lose_initial_notify(sim: HouseholdService) -> None:
            manager: Any = sim.household.speakers[0].manager
            manager.faults.drop_next = 1

        with capturedLogs() as events:
            rig = await self.rig(services=services, config=config, before_start=lose_initial_notify)
            speaker = rig.speakers[0]
            await until(lambda: rig.household.speaker(speaker.uid) is not None, "identified")
            supervised = rig.household.speaker(speaker.uid)
            assert supervised is not None
            sup = supervised.services["RenderingControl"]
            await until(lambda: sup.polling and sup.polls >= 2, "several polls")
            (reason,) = health_reasons(rig.household.status())
            self.assertIn("no NOTIFY arrives", reason)
            assert sup.subscription is not None
            sid = sup.subscription.sid
            self.assertEqual(rig.recorder.of("event", speaker.uid, "RenderingControl"), [])
            speaker.set_volume(35)
            await until(lambda: not sup.polling, "polling stopped")
            await until(lambda: rig.recorder.of("events.gap", speaker.uid), "events.gap")
        gap = rig.recorder.of("events.gap", speaker.uid)[0].body
        self.assertEqual((gap["expected"], gap["got"], gap["missed"]), (0, 1, 1))
        self.assertEqual(
            [m.body["seq"] for m in rig.recorder.of("event", speaker.uid, "RenderingControl")],
            [1],
        )
        await until(lambda: sup.resyncs >= 1, "the resync")
        assert sup.subscription is not None
        self.assertEqual(sup.subscription.sid, sid)
        self.assertEqual([s["sid"] for s in rig.sim_subscriptions(speaker)], [sid])
        self.assertEqual(rig.recorder.of("subscription.lost", speaker.uid), [])
        stopped = [e for e in events if "polling stopped" in e.get("log_format", "")]
        self.assertEqual(len(stopped), 1)
        self.assertEqual(health_reasons(rig.household.status()), ())
        self.assertEqual(rig.recorder.of("events.gap", rig.speakers[1].uid), [])

    async def test_address_change_followed(self) -> None:
        """A speaker that moves to a new address is followed there and resubscribed, and its
        old SIDs are UNSUBSCRIBEd at the new address."""
        rig = await self.rig(services=("RenderingControl", "ZoneGroupTopology"))
        await self.settled(rig, ("RenderingControl", "ZoneGroupTopology"))
        speaker = rig.speakers[0]
        prefix = speaker.address.rsplit(".", 1)[0]
        new_address = f"{prefix}.4"
        await speaker.change_address(new_address)
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        await until(
            lambda: supervised.ref is not None and supervised.ref.host == new_address, "the move"
        )
        await until(
            lambda: len(rig.recorder.of("subscription.restored", speaker.uid)) == 2,
            "both subscriptions restored at the new address",
        )
        lost = rig.recorder.of("subscription.lost", speaker.uid)
        self.assertEqual({m.body["reason"] for m in lost}, {"address changed"})
        # The SIDs made at the old address were UNSUBSCRIBEd at the new one: the speaker
        # holds only the new subscriptions.
        await until(lambda: len(rig.sim_subscriptions(speaker)) == 2, "the old SIDs ended")
        ours = {sup.subscription.sid for sup in supervised.services.values() if sup.subscription}
        self.assertEqual({s["sid"] for s in rig.sim_subscriptions(speaker)}, ours)
        speaker.set_volume(41)

        def arrived() -> bool:
            return any(
                m.body["variables"].get("volume", {}).get("Master") == 41
                and m.body["speaker"]["host"] == new_address
                for m in rig.recorder.of("event", speaker.uid, "RenderingControl")
            )

        await until(arrived, "an event from the new address")

    async def test_duplicate_notify_dropped(self) -> None:
        """A NOTIFY delivered twice reaches the hub once."""
        rig = await self.rig(services=("RenderingControl",))
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[0]
        rig.faults(speaker).duplicate_next = 1
        speaker.set_volume(21)

        def seqs() -> list[Any]:
            return [m.body["seq"] for m in rig.recorder.of("event", speaker.uid)]

        # LastChange is moderated: the second change must come after the first NOTIFY.
        await until(lambda: 1 in seqs(), "the first change")
        speaker.set_volume(22)

        await until(lambda: 2 in seqs(), "the second change")
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        await until(lambda: supervised.services["RenderingControl"].duplicates == 1, "the copy")
        self.assertEqual(seqs(), [0, 1, 2])
        self.assertEqual(rig.recorder.of("events.gap"), [])


def said_by_the_daemon(events: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The lines of ``events`` the daemon (not the simulator) said at info level or above."""
    return [
        e
        for e in events
        if e["log_level"] in (LogLevel.info, LogLevel.warn, LogLevel.error)
        and str(e.get("log_namespace", "")).startswith("sonosd")
        and not str(e.get("log_namespace", "")).startswith("sonosd.sim")
    ]


LIVELY = attrs.evolve(
    FAST, silence_timeout=1.0, ping_timeout=1.0, availability_interval=0.25, asleep_interval=30.0
)
"""Availability timers compressed: a silent speaker is pinged after a second."""


class HouseholdSimTests(TestCase):
    """One speaker brings its household; availability from every signal; SID hygiene."""

    timeout = 60

    rig = SimTests.rig
    settled = SimTests.settled

    def supervised(self, rig: Rig) -> dict[str, Any]:
        return {s.uid: s for s in rig.household.speakers() if s.uid is not None}

    async def test_one_speaker_brings_its_household(self) -> None:
        """With one speaker configured, every visible member of its household is identified,
        subscribed and in the state; the hidden half of a stereo pair is in the topology but
        gets no supervisor and no subscription."""
        rig = await self.rig(speakers=4, stereo_pair=True, configured=(2,))
        left, right, other, last = rig.speakers
        visible = (left, other, last)
        await until(
            lambda: all(
                rig.initial_events(s.uid, svc) for s in visible for svc in DEFAULT_SERVICES
            ),
            "every visible member's initial events",
        )
        self.assertEqual(set(self.supervised(rig)), {s.uid for s in visible})
        for speaker in visible:
            self.assertEqual(len(rig.sim_subscriptions(speaker)), len(DEFAULT_SERVICES))
            self.assertEqual(rig.state.availability(speaker.uid).status, "online")
            self.assertEqual(
                rig.state.by_uid(speaker.uid).household, rig.sim.household.household_id
            )  # type: ignore[union-attr]
        self.assertEqual(rig.sim_subscriptions(right), [])
        self.assertIsNone(rig.state.by_uid(right.uid))
        topology = rig.state.topology
        assert topology is not None
        member = topology.member(right.uid)
        assert member is not None and member.invisible
        self.assertEqual(health_reasons(rig.household.status()), ())

    async def test_reboot_of_a_member_noticed(self) -> None:
        """A speaker learnt from the topology that reboots (BootSeq) has every service
        resubscribed once, like a configured one."""
        services = ("RenderingControl", "ZoneGroupTopology")
        rig = await self.rig(speakers=2, services=services, configured=(0,))
        await self.settled(rig, services)
        member = rig.speakers[1]
        await member.reboot(downtime=0.3)
        await until(
            lambda: len(rig.recorder.of("subscription.restored", member.uid)) == 2,
            "both subscriptions restored",
        )
        await until(lambda: len(rig.sim_subscriptions(member)) == 2, "subscribed again")
        lost = rig.recorder.of("subscription.lost", member.uid)
        self.assertEqual({m.body["reason"] for m in lost}, {"reboot"})

    async def test_reboot_soon_after_an_outage_resubscribes(self) -> None:
        """A speaker that reboots seconds after it came back from an outage (its BootSeq
        increase falls in the window where the outage's own reboot is expected) has every
        service resubscribed: the daemon holds the SIDs the speaker holds, and its next
        change arrives as a NOTIFY."""
        await self.reboot_after_outage(renew_status=None)

    async def test_reboot_soon_after_an_outage_refusing_renewals(self) -> None:
        """The same with a speaker that refuses renewals (503), so that the renewal which
        checks the reboot gets no 412: every service is still resubscribed."""
        await self.reboot_after_outage(renew_status=503)

    async def reboot_after_outage(self, renew_status: int | None) -> None:
        """A speaker's outage, then its reboot soon after, with ``renew_status`` the GENA
        fault answering its renewals: the daemon ends holding the speaker's SIDs, and a
        change arrives as a NOTIFY."""
        services = ("RenderingControl", "ZoneGroupTopology")
        rig = await self.rig(speakers=2, services=services)
        await self.settled(rig, services)
        speaker = rig.speakers[1]
        await speaker.go_offline("refuse")
        rig.household.command_failed(speaker.uid, "connection refused")
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "offline")
        await speaker.come_online()
        await until(
            lambda: len(rig.recorder.of("subscription.restored", speaker.uid)) == 2,
            "both subscriptions restored",
        )
        await until(lambda: len(rig.sim_subscriptions(speaker)) == 2, "old SIDs gone")
        speaker.gena.faults.renew_status = renew_status
        await speaker.reboot(downtime=0.3)
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None

        def held() -> set[str | None]:
            return {
                sup.subscription.sid for sup in supervised.services.values() if sup.subscription
            }

        await until(
            lambda: (
                {s["sid"] for s in rig.sim_subscriptions(speaker)} == held()
                and len(rig.sim_subscriptions(speaker)) == 2
            ),
            "the speaker's SIDs held again",
        )
        volume = 7 if speaker.rendering.volume != 7 else 8
        speaker.set_volume(volume)
        await until(
            lambda: any(
                m.body["variables"].get("volume", {}).get("Master") == volume
                for m in rig.recorder.of("event", speaker.uid, "RenderingControl")
                if m.body.get("seq")
            ),
            "the change as a NOTIFY",
        )

    async def test_unreachable_member_retried_every_availability_interval(self) -> None:
        """A member learnt from the topology that refuses connections is offline and tried
        again every availability_interval (not with the configured hosts' backoff); once it
        answers it is identified, online and subscribed."""
        config = attrs.evolve(
            FAST,
            availability_interval=0.25,
            backoff_initial=60.0,
            backoff_max=60.0,
            asleep_interval=60.0,
        )
        services = ("RenderingControl", "ZoneGroupTopology")

        def unplug(sim: HouseholdService) -> Deferred[None]:
            return sim.household.speakers[1].go_offline("refuse")

        rig = await self.rig(
            speakers=2, services=services, config=config, configured=(0,), before_start=unplug
        )
        member = rig.speakers[1]

        def attempts() -> int:
            supervised = rig.household.speaker(member.uid)
            return 0 if supervised is None else int(supervised.status()["failures"])

        # Identifying it is tried again and again, where a backoff would wait a minute.
        await until(lambda: attempts() >= 4, "four identification attempts")
        self.assertFalse(self.supervised(rig)[member.uid].identified)
        self.assertEqual(rig.state.availability(member.uid).reason, "connection refused")
        (reason,) = health_reasons(rig.household.status())
        self.assertIn("is offline (connection refused)", reason)
        await member.come_online()
        await self.settled(rig, services)
        [online] = rig.recorder.of("speaker.online", member.uid)
        self.assertEqual(online.body["reason"], "identified")
        self.assertEqual(len(rig.recorder.of("speaker.offline", member.uid)), 1)
        self.assertEqual(len(rig.sim_subscriptions(member)), len(services))
        self.assertEqual(health_reasons(rig.household.status()), ())

    async def test_identify_retries_said_once_per_reason(self) -> None:
        """A configured host that cannot be identified is tried again and again, with one
        warning per reason (refused, then timing out), and followed once it answers."""
        config = attrs.evolve(FAST, request_timeout=0.3)

        def unplug(sim: HouseholdService) -> Deferred[None]:
            return sim.household.speakers[0].go_offline("refuse")

        with capturedLogs() as events:
            rig = await self.rig(
                speakers=1, services=("RenderingControl",), config=config, before_start=unplug
            )
            speaker = rig.speakers[0]
            [supervised] = rig.household.speakers()

            def failed(reason: str, attempts: int) -> Callable[[], bool]:
                status = supervised.status
                return lambda: status()["reason"] == reason and status()["failures"] >= attempts

            await until(failed("connection refused", 3), "three refused attempts")
            # Named in /health's reasons (docs/supervisor.md, Lifecycle of a speaker).
            self.assertEqual(
                health_reasons(rig.household.status()),
                (f"{speaker.address} cannot be identified (connection refused)",),
            )
            await speaker.go_offline("hang")
            attempts = supervised.status()["failures"]
            await until(failed("timeout", attempts + 3), "three attempts timing out")
            await speaker.come_online()
            await self.settled(rig, ("RenderingControl",))
        said = [
            event["reason"]
            for event in events
            if "cannot identify speaker" in event.get("log_format", "")
        ]
        self.assertEqual(said, ["connection refused", "timeout"])
        self.assertTrue(supervised.identified)
        self.assertEqual(health_reasons(rig.household.status()), ())

    async def test_listed_speakers_only(self) -> None:
        """follow_household false follows the configured speaker only."""
        rig = await self.rig(speakers=3, configured=(1,), follow_household=False)
        await until(lambda: rig.initial_events(rig.speakers[1].uid, "ZoneGroupTopology"), "ZGT")
        await deferLater(reactor, 0.5)
        self.assertEqual(set(self.supervised(rig)), {rig.speakers[1].uid})
        self.assertEqual(rig.sim_subscriptions(rig.speakers[0]), [])

    async def test_follow_household_switched_off_drops_the_learnt_speakers(self) -> None:
        """A reload that switches follow_household off unsubscribes and drops (with
        speaker.removed) the speakers learnt from the topology, and keeps the listed one."""
        rig = await self.rig(speakers=3, configured=(0,))
        await self.settled(rig)
        listed, *learnt = rig.speakers
        follow_only(rig, listed)
        await until(
            lambda: all(rig.sim_subscriptions(speaker) == [] for speaker in learnt),
            "the learnt speakers' subscriptions cancelled",
        )
        self.assertEqual(set(self.supervised(rig)), {listed.uid})
        self.assertEqual(len(rig.sim_subscriptions(listed)), len(DEFAULT_SERVICES))
        for speaker in learnt:
            [removed] = rig.recorder.of("speaker.removed", speaker.uid)
            self.assertEqual(removed.body["reason"], "follow_household is false")
            self.assertIsNone(rig.state.by_uid(speaker.uid))

    async def test_follow_household_switched_on_follows_the_members_at_once(self) -> None:
        """A reload that switches follow_household on follows every visible member of the
        listed speaker's household at once, from the topology already known (not at its next
        change, which may be days away)."""
        rig = await self.rig(speakers=3, configured=(0,), follow_household=False)
        listed, *members = rig.speakers
        await until(lambda: rig.initial_events(listed.uid, "ZoneGroupTopology"), "the topology")
        self.assertEqual(set(self.supervised(rig)), {listed.uid})
        rig.household.apply(
            Config(path="test.yaml", devices=(Device(host=listed.address),), subscription=FAST)
        )
        await until(
            lambda: all(
                len(rig.sim_subscriptions(speaker)) == len(DEFAULT_SERVICES) for speaker in members
            ),
            "the members subscribed",
        )
        self.assertEqual(set(self.supervised(rig)), {s.uid for s in rig.speakers})

    async def test_a_device_removed_while_subscribing_is_unsubscribed(self) -> None:
        """A reload that removes a listed speaker while its SUBSCRIBEs await their answers
        (granted at the speaker, the SIDs not known yet) leaves no subscription behind: each
        is UNSUBSCRIBEd once its answer arrives."""

        def slow_answers(sim: HouseholdService) -> None:
            manager: Any = sim.household.speakers[1].manager
            manager.faults.answer_delay = 1.0

        rig = await self.rig(speakers=2, follow_household=False, before_start=slow_answers)
        kept, removed = rig.speakers
        await until(
            lambda: len(rig.sim_subscriptions(removed)) == len(DEFAULT_SERVICES),
            "the SUBSCRIBEs granted at the speaker",
        )
        follow_only(rig, kept)
        await until(lambda: rig.sim_subscriptions(removed) == [], "no subscription left")
        self.assertEqual(set(self.supervised(rig)), {kept.uid})

    async def test_subscribes_in_flight_when_the_speaker_goes_offline_are_unsubscribed(
        self,
    ) -> None:
        """A speaker found offline (its ping unanswered in time) while its SUBSCRIBEs await
        their answers (granted at the speaker, the SIDs not known yet) is left holding none of
        them: each is UNSUBSCRIBEd once its answer arrives, and once the speaker is back it
        holds the daemon's live subscriptions and nothing else (the simulator's admin API
        says). Cancelled instead, each was a SID the speaker kept NOTIFYing for its hour."""
        services = ("RenderingControl", "AVTransport")
        config = attrs.evolve(FAST, request_timeout=10.0, silence_timeout=0.2, ping_timeout=0.5)

        def slow_answers(sim: HouseholdService) -> None:
            manager: Any = sim.household.speakers[0].manager
            manager.faults.answer_delay = 4.0

        rig = await self.rig(
            speakers=1, services=services, config=config, before_start=slow_answers, admin=True
        )
        [speaker] = rig.speakers
        gena_path = f"/speakers/{speaker.index}/gena"

        async def held() -> list[dict[str, Any]]:
            answer = await rig.admin("GET", gena_path)
            subscriptions: list[dict[str, Any]] = answer["subscriptions"]
            return subscriptions

        granted = await until_read(
            held, lambda subs: len(subs) == len(services), "the SUBSCRIBEs granted"
        )
        # Its pings now drip for 20 s: past the ping timeout, the speaker is offline.
        await rig.admin(
            "PATCH", f"/speakers/{speaker.index}/soap/faults", {"padding": 20_000, "drip": 1.0}
        )
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "speaker.offline")
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        # Abandoned in flight: none of the SUBSCRIBEs had been answered yet.
        self.assertEqual([sup.subscribes for sup in supervised.services.values()], [0, 0])
        await until_read(held, lambda subs: subs == [], "the granted SIDs UNSUBSCRIBEd")
        await rig.admin("DELETE", f"/speakers/{speaker.index}/soap/faults")
        await rig.admin("DELETE", f"{gena_path}/faults")
        await until(
            lambda: len(rig.recorder.of("subscription.restored", speaker.uid)) == len(services),
            "both subscriptions restored",
        )
        live = rig.live_sids(speaker)
        self.assertEqual(len(live), len(services))
        self.assertEqual({s["sid"] for s in await held()}, live)
        self.assertFalse(live & {s["sid"] for s in granted})

    async def test_a_removed_device_still_in_the_household_is_followed_again(self) -> None:
        """A reload that removes a listed speaker still a member of the followed household
        has it followed again, as a member learnt from the topology, with every service
        subscribed anew."""
        rig = await self.rig(speakers=2)
        await self.settled(rig)
        kept, removed = rig.speakers
        before = {s["sid"] for s in rig.sim_subscriptions(removed)}
        added, gone = rig.household.apply(
            Config(path="test.yaml", devices=(Device(host=kept.address),), subscription=FAST)
        )
        self.assertEqual((added, gone), ([], [removed.address]))

        def followed_again() -> bool:
            supervised = self.supervised(rig).get(removed.uid)
            sids = {s["sid"] for s in rig.sim_subscriptions(removed)}
            return (
                supervised is not None
                and not supervised.configured
                and len(sids) == len(DEFAULT_SERVICES)
                and not sids & before
            )

        await until(followed_again, "the removed speaker followed again as a member")
        self.assertEqual(set(self.supervised(rig)), {kept.uid, removed.uid})
        self.assertEqual(rig.state.availability(removed.uid).status, "online")

    async def test_a_removed_device_alone_in_its_household_is_not_followed_again(self) -> None:
        """A reload that removes the only followed speaker of a household leaves that
        household unfollowed even with follow_household: the speaker is unsubscribed, not
        followed again as a member, and the other household is followed as before."""
        rig = await self.rig(speakers=3, households=2)
        await self.settled(rig)
        (alone,) = rig.sim.households[1].speakers
        await until(
            lambda: len(rig.sim_subscriptions(alone)) == len(DEFAULT_SERVICES),
            "the second household's speaker followed",
        )
        kept = [Device(host=speaker.address) for speaker in rig.speakers]
        added, gone = rig.household.apply(
            Config(path="test.yaml", devices=tuple(kept), follow_household=True, subscription=FAST)
        )
        self.assertEqual((added, gone), ([], [alone.address]))
        self.assertNotIn(alone.uid, self.supervised(rig))
        await until(lambda: not rig.sim_subscriptions(alone), "the removed speaker unsubscribed")
        self.assertEqual(set(self.supervised(rig)), {speaker.uid for speaker in rig.speakers})
        for speaker in rig.speakers:
            self.assertEqual(len(rig.sim_subscriptions(speaker)), len(DEFAULT_SERVICES))

    async def test_a_room_name_changed_by_a_reload_is_the_one_expected(self) -> None:
        """A reload that gives a listed speaker, not identified yet, another room name has it
        expected under that name: the warning at its identification names the new one."""

        def offline(sim: HouseholdService) -> Deferred[None]:
            return sim.household.speakers[0].go_offline("refuse")

        with capturedLogs() as events:
            rig = await self.rig(
                speakers=1, names={0: "Bedroom"}, follow_household=False, before_start=offline
            )
            [speaker] = rig.speakers
            rig.household.apply(
                Config(
                    path="test.yaml",
                    devices=(Device(host=speaker.address, name="Attic"),),
                    follow_household=False,
                    subscription=FAST,
                )
            )
            await speaker.come_online()
            await until(lambda: rig.household.speaker(speaker.uid), "the speaker identified")
        warnings = [
            formatEvent(event)
            for event in events
            if event["log_level"] == LogLevel.warn and event.get("expected") is not None
        ]
        self.assertEqual(
            warnings,
            [f"speaker {speaker.address} is named {speaker.name!r}, not 'Attic' as configured"],
        )

    async def test_a_listed_room_name_the_speaker_does_not_report_is_a_warning(self) -> None:
        """A speaker listed with a room name other than the one it reports is followed all
        the same, with one warning naming both; a listed name it reports gives none."""
        with capturedLogs() as events:
            rig = await self.rig(speakers=2, names={0: "Bedroom", 1: "Kitchen"})
            self.assertEqual(rig.speakers[1].name, "Kitchen")
            await self.settled(rig)
        warnings = [
            formatEvent(event)
            for event in events
            if event["log_level"] == LogLevel.warn and event.get("expected") is not None
        ]
        first = rig.speakers[0]
        self.assertEqual(
            warnings,
            [f"speaker {first.address} is named {first.name!r}, not 'Bedroom' as configured"],
        )
        self.assertEqual(set(self.supervised(rig)), {speaker.uid for speaker in rig.speakers})

    async def refused(self, rig: Any, speaker: Any) -> None:
        """``speaker`` refuses connections from now: once the daemon says it is offline, its
        reason is that."""
        await speaker.go_offline("refuse")
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "offline")
        self.assertEqual(
            rig.state.availability(speaker.uid).to_json()["reason"], "connection refused"
        )

    async def test_refused_then_back(self) -> None:
        """A silent speaker that refuses connections is offline (connection refused) after
        its silence check, its subscriptions suspended; answering again it is online, with
        fresh subscriptions, the old SIDs UNSUBSCRIBEd (the speaker holds only the new ones),
        and the daemon's log has one line for each change and nothing else."""
        services = ("RenderingControl", "AVTransport")
        rig = await self.rig(services=services, config=LIVELY)
        await self.settled(rig, services)
        speaker = rig.speakers[0]
        with capturedLogs() as events:
            await self.refused(rig, speaker)
            (reason,) = health_reasons(rig.household.status())
            self.assertIn("is offline (connection refused)", reason)
            await deferLater(reactor, 1.0)
            await speaker.come_online()
            await until(
                lambda: len(rig.recorder.of("subscription.restored", speaker.uid)) == 2,
                "both subscriptions restored",
            )
            await until(lambda: len(rig.sim_subscriptions(speaker)) == 2, "old SIDs gone")
        supervised = rig.household.speaker(speaker.uid)
        assert supervised is not None
        ours = {sup.subscription.sid for sup in supervised.services.values() if sup.subscription}
        self.assertEqual({s["sid"] for s in rig.sim_subscriptions(speaker)}, ours)
        changes = [e for e in events if "speaker {speaker} is {status}" in e.get("log_format", "")]
        self.assertEqual([e["status"] for e in changes], ["offline", "online"])
        self.assertEqual(len(rig.recorder.of("speaker.offline", speaker.uid)), 1)
        # docs/messages.md: speaker.online's reasons are identified, then answering again.
        back = rig.recorder.of("speaker.online", speaker.uid)
        self.assertEqual(
            [(m.body["reason"], m.body["availability"]["status"]) for m in back],
            [("identified", "online"), ("answering again", "online")],
        )
        said = [e for e in said_by_the_daemon(events) if e not in changes]
        self.assertEqual([e.get("log_format") for e in said], [])

    async def test_a_refused_renewal_is_said_by_the_speakers_line_alone(self) -> None:
        """A renewal refused (the speaker gone, nothing else talking to it) pings the speaker
        at once: it is offline (connection refused) long before its silence check, and the
        log says so in the speaker's one line; each service's own failure is at debug level
        (docs/supervisor.md, Availability: "the speaker is pinged at once (the service's own
        log line is at debug level: the speaker's one line says it)")."""
        services = ("RenderingControl", "AVTransport")
        config = attrs.evolve(FAST, timeout=4, silence_timeout=600.0, check_interval=0.0)
        rig = await self.rig(services=services, config=config)
        await self.settled(rig, services)
        speaker = rig.speakers[0]
        with capturedLogs() as events:
            await self.refused(rig, speaker)
        failed = [e for e in events if "failed: {reason}; retry" in e.get("log_format", "")]
        self.assertGreaterEqual(len(failed), 1)
        self.assertEqual(
            {(e["during"], e["reason"]) for e in failed}, {("renew", "connection refused")}
        )
        self.assertEqual({e["log_level"] for e in failed}, {LogLevel.debug})
        said = [formatEvent(e) for e in said_by_the_daemon(events)]
        self.assertEqual(
            said, [f"speaker {speaker.name} ({speaker.uid}) is offline (connection refused)"]
        )

    async def test_hung_then_back(self) -> None:
        """A speaker that accepts connections and never answers is offline (timeout) after
        its silence check and a ping timeout; it is online again when it answers."""
        rig = await self.rig(services=("RenderingControl",), config=LIVELY)
        await self.settled(rig, ("RenderingControl",))
        speaker = rig.speakers[1]
        await speaker.go_offline("hang")
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "offline")
        # A ping under way when the speaker hung had its connection cut.
        self.assertIn(rig.state.availability(speaker.uid).reason, ("timeout", "connection lost"))
        await speaker.come_online()
        await until(lambda: len(rig.recorder.of("speaker.online", speaker.uid)) == 2, "online")
        await until(lambda: len(rig.sim_subscriptions(speaker)) == 1, "one subscription")

    async def test_vanished_powered_off_is_offline_at_once(self) -> None:
        """A speaker the household lists under VanishedDevices (powered off) is offline as
        soon as the topology says so, without waiting for a ping."""
        config = attrs.evolve(LIVELY, silence_timeout=600.0)
        services = ("RenderingControl", "ZoneGroupTopology")
        rig = await self.rig(services=services, config=config)
        await self.settled(rig, services)
        speaker = rig.speakers[0]
        await speaker.go_offline("refuse", vanish=True)
        await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "offline")
        self.assertEqual(rig.state.availability(speaker.uid).reason, "powered off")
        await speaker.come_online()
        await until(lambda: len(rig.recorder.of("speaker.online", speaker.uid)) == 2, "online")

    async def test_ended_sids_answered_412_and_counted(self) -> None:
        """After an outage, the NOTIFYs the speaker still sends to the SIDs the daemon
        replaced get 412 and are counted, not logged one by one; then the speaker holds only
        the new SIDs."""
        services = ("RenderingControl",)
        config = attrs.evolve(LIVELY, availability_interval=1.0)
        rig = await self.rig(services=services, config=config)
        await self.settled(rig, services)
        speaker = rig.speakers[0]
        old = {s["sid"] for s in rig.sim_subscriptions(speaker)}
        dispatcher = rig.listener.dispatcher
        with capturedLogs() as events:
            await speaker.go_offline("hang")
            await until(lambda: rig.recorder.of("speaker.offline", speaker.uid), "offline")
            await speaker.come_online()
            # The speaker still holds the old SID and notifies it before the daemon notices
            # it is back.
            speaker.set_volume(33)
            await until(lambda: dispatcher.rejected["ended_sid"] >= 1, "the old SID refused")
            await until(lambda: rig.recorder.of("speaker.online", speaker.uid)[1:], "online")
            await until(
                lambda: (
                    {s["sid"] for s in rig.sim_subscriptions(speaker)}.isdisjoint(old)
                    and len(rig.sim_subscriptions(speaker)) == 1
                ),
                "only the new SID at the speaker",
            )
        noisy = [e for e in events if "NOTIFY for unknown" in e.get("log_format", "")]
        self.assertEqual(noisy, [])
        self.assertEqual(dispatcher.rejected["unknown_sid"], 0)
