"""Unit tests for household.supervisor: every schedule driven by a Clock, collaborators faked."""

from __future__ import annotations

from typing import Any

from twisted.internet.error import ConnectionRefusedError
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from sonosd.config import Device
from sonosd.household.discovery import Sighting
from sonosd.household.keepalive import ServiceState
from sonosd.household.supervisor import (
    CONFIRM_DELAY,
    GENA_CONCURRENCY,
    HouseholdSupervisor,
    MemberInfo,
    SpeakerSupervisor,
    build_household,
    gena_subscriptions,
    identify,
    ping,
    topology_members,
)
from tests.supervisor_fakes import ALL_SERVICES, HOST, UID, FakeSoCo, Harness, HttpError, started


class IdentifyTests(SynchronousTestCase):
    def test_identity_read_in_runner(self) -> None:
        """The speaker is identified by a call through the runner, keyed by its host."""
        h = Harness()
        speaker = started(h)
        fn, _args, key, _ = h.runner.calls[0]
        self.assertIs(fn, identify)
        self.assertEqual(key, HOST)
        self.assertEqual(speaker.uid, UID)
        self.assertEqual(speaker.household_id, "Sonos_test")
        self.assertEqual(speaker.boot_seq, 5)
        assert speaker.ref is not None
        self.assertEqual((speaker.ref.name, speaker.ref.host), ("Kitchen", HOST))

    def test_identify_function_reads_properties(self) -> None:
        """identify() resolves the host, builds the SoCo object and reads uid, name, household."""
        built: list[str] = []

        def factory(address: str) -> FakeSoCo:
            built.append(address)
            return FakeSoCo(address, "RINCON_X", "Den", boot_seq=9)

        identity = identify(factory, lambda host: "10.0.0.9", "den.lan")
        self.assertEqual(built, ["10.0.0.9"])
        self.assertEqual(
            (identity.uid, identity.name, identity.household_id, identity.boot_seq),
            ("RINCON_X", "Den", "Sonos_test", 9),
        )

    def test_online_then_every_service_subscribed(self) -> None:
        """Once identified the speaker is announced online and every service is subscribed."""
        h = Harness(services=ALL_SERVICES)
        started(h)
        self.assertEqual(h.processor.types(), ["speaker.online"])
        self.assertEqual(h.processor.messages[0][2], {"uid": UID, "name": "Kitchen", "host": HOST})
        self.assertEqual(sorted(s.service for s in h.gena.made), sorted(ALL_SERVICES))
        self.assertEqual(set(h.gena.requested), {(1800, False)})

    def test_name_mismatch_warns(self) -> None:
        """A configured room name that differs from the speaker's is logged as a warning."""
        h = Harness()
        with capturedLogs() as events:
            started(h, name="Bathroom")
        warnings = [e for e in events if "not {expected!r}" in e.get("log_format", "")]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["actual"], "Kitchen")

    def test_unreachable_at_start_retried_with_backoff(self) -> None:
        """A speaker that cannot be identified is retried with growing delays."""
        h = Harness(backoff_initial=2.0, backoff_max=8.0)
        h.jitter = 0.999999
        h.household.unreachable.add(HOST)
        speaker = started(h)
        self.assertEqual(len(h.runner.calls), 1)
        for expected_calls, step in ((2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)):
            h.clock.advance(step - 0.01)
            self.assertEqual(len(h.runner.calls), expected_calls - 1)
            h.clock.advance(0.01)
            self.assertEqual(len(h.runner.calls), expected_calls)
        self.assertEqual(speaker.offline_reason, "connection refused")
        h.household.unreachable.clear()
        h.clock.advance(8.0)
        self.assertTrue(speaker.online)
        self.assertEqual(h.processor.types(), ["speaker.online"])

    def test_identify_timeout_bounded(self) -> None:
        """An identification that never answers times out and is retried."""
        h = Harness(request_timeout=3.0, backoff_initial=1.0)
        h.runner.hold = True
        speaker = started(h)
        h.clock.advance(4.0)
        self.assertEqual(speaker.offline_reason, "timeout")
        h.clock.advance(1.0)
        self.assertEqual(len(h.runner.calls), 2)

    def test_ping_calls_get_volume(self) -> None:
        """The availability ping is renderingControl.GetVolume on the speaker."""
        device = FakeSoCo(HOST, UID)
        self.assertEqual(ping(device), {"CurrentVolume": "12"})
        self.assertEqual(device.pings, 1)


class RebootTests(SynchronousTestCase):
    def make(self) -> tuple[Harness, SpeakerSupervisor]:
        h = Harness(services=ALL_SERVICES, timeout=100)
        h.gena.granted = 100
        speaker = started(h)
        for service in ALL_SERVICES:
            h.gena.current(service).notify(0)
        return h, speaker

    def test_412_on_renewal_resubscribes_every_service_once(self) -> None:
        """A 412 on one renewal replaces all of the speaker's subscriptions, each exactly once."""
        h, speaker = self.make()
        h.gena.answers["renew"] = HttpError(412)
        first = {s.service: s for s in h.gena.made}
        h.clock.advance(50)
        h.gena.answers.clear()
        self.assertEqual(h.gena.count("subscribe"), 2 * len(ALL_SERVICES))
        for service in ALL_SERVICES:
            self.assertIsNot(h.gena.current(service), first[service])
        lost = h.processor.of("subscription.lost")
        self.assertEqual(len(lost), len(ALL_SERVICES))
        self.assertEqual({m[1]["reason"] for m in lost}, {"reboot"})
        self.assertEqual(len(h.processor.of("subscription.restored")), len(ALL_SERVICES))
        self.assertTrue(speaker.online)

    def test_boot_seq_after_412_is_absorbed(self) -> None:
        """The BootSeq increase that follows a 412 does not resubscribe a second time."""
        h, speaker = self.make()
        h.gena.answers["renew"] = HttpError(412)
        h.clock.advance(50)
        h.gena.answers.clear()
        subscribes = h.gena.count("subscribe")
        speaker.observe_boot_seq(6, "topology")
        self.assertEqual(h.gena.count("subscribe"), subscribes)
        self.assertEqual(speaker.boot_seq, 6)
        speaker.observe_boot_seq(7, "topology")
        self.assertEqual(h.gena.count("subscribe"), subscribes + len(ALL_SERVICES))

    def test_boot_seq_increase_resubscribes_fresh(self) -> None:
        """A higher BootSeq replaces every subscription (SUBSCRIBE, not renewal)."""
        h, speaker = self.make()
        speaker.observe_boot_seq(5, "topology")
        self.assertEqual(h.gena.count("subscribe"), len(ALL_SERVICES))
        speaker.observe_boot_seq(6, "topology")
        self.assertEqual(h.gena.count("subscribe"), 2 * len(ALL_SERVICES))
        self.assertEqual(h.gena.count("renew"), 0)
        self.assertEqual(h.gena.count("unsubscribe"), 0)

    def test_old_renewal_answer_after_reboot_ignored(self) -> None:
        """A renewal in flight when the reboot is noticed is abandoned, not acted upon."""
        h, speaker = self.make()
        h.gena.answers["renew"] = "hang"
        h.clock.advance(50)
        hanging = [s for s in h.gena.made if s.pending]
        h.gena.answers.clear()
        speaker.observe_boot_seq(6, "ssdp")
        subscribes = h.gena.count("subscribe")
        self.assertEqual(subscribes, 2 * len(ALL_SERVICES))
        for sub in hanging:
            self.assertTrue(all(d.called for d in sub.pending))
        h.clock.advance(20)
        self.assertEqual(h.gena.count("subscribe"), subscribes)
        self.assertEqual(len(h.processor.of("subscription.lost")), len(ALL_SERVICES))

    def test_old_subscription_events_ignored(self) -> None:
        """NOTIFYs of a replaced subscription no longer reach the processor."""
        h, speaker = self.make()
        old = h.gena.current("AVTransport")
        callback = old.callback
        speaker.observe_boot_seq(6, "topology")
        self.assertIsNone(old.callback)
        before = len(h.processor.events)
        assert callback is not None
        callback(type("E", (), {"sid": old.sid, "seq": "1", "variables": {}})())
        self.assertEqual(len(h.processor.events), before)


class AvailabilityTests(SynchronousTestCase):
    def make(self, **config: Any) -> tuple[Harness, SpeakerSupervisor]:
        settings: dict[str, Any] = {
            "availability_interval": 60.0,
            "silence_timeout": 270.0,
            "backoff_initial": 1.0,
            "backoff_max": 8.0,
            "timeout": 3600,
        }
        settings.update(config)
        h = Harness(**settings)
        h.gena.granted = 3600
        h.jitter = 0.999999
        speaker = started(h)
        h.gena.current("RenderingControl").notify(0)
        return h, speaker

    def test_silent_speaker_pinged(self) -> None:
        """A speaker silent for silence_timeout is pinged at the next availability check."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        h.clock.advance(240)
        self.assertEqual(device.pings, 0)
        h.clock.advance(60)
        self.assertEqual(device.pings, 1)
        self.assertTrue(speaker.online)

    def test_events_keep_speaker_from_ping(self) -> None:
        """Regular events count as activity: no ping."""
        h, _speaker = self.make()
        sub = h.gena.current("RenderingControl")
        for seq in range(1, 11):
            h.clock.advance(60)
            sub.notify(seq)
        self.assertEqual(h.household.devices[HOST].pings, 0)

    def test_offline_then_online(self) -> None:
        """A failed ping marks the speaker offline, suspends its subscriptions, then it returns."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        h.clock.advance(300)
        self.assertFalse(speaker.online)
        offline = h.processor.of("speaker.offline")
        self.assertEqual([m[1]["reason"] for m in offline], ["connection refused"])
        self.assertEqual(
            [m[1]["reason"] for m in h.processor.of("subscription.lost")],
            ["speaker offline: connection refused"],
        )
        self.assertEqual(speaker.services["RenderingControl"].state, ServiceState.SUSPENDED)
        pings = device.pings
        h.clock.advance(1.0)
        self.assertEqual(device.pings, pings + 1)
        h.clock.advance(2.0)
        self.assertEqual(device.pings, pings + 2)
        h.clock.advance(4.0)
        self.assertEqual(device.pings, pings + 3)
        h.clock.advance(8.0)
        self.assertEqual(device.pings, pings + 4)
        h.clock.advance(8.0)
        self.assertEqual(device.pings, pings + 5)
        subscribes = h.gena.count("subscribe")
        device.down = None
        h.clock.advance(8.0)
        self.assertTrue(speaker.online)
        self.assertEqual(h.processor.types()[-2:], ["speaker.online", "subscription.restored"])
        self.assertEqual(h.gena.count("subscribe"), subscribes + 1)

    def test_unreachable_renewal_pings_once(self) -> None:
        """Several services failing with connection errors cause a single ping."""
        h = Harness(services=ALL_SERVICES, timeout=100, backoff_initial=1.0)
        h.gena.granted = 100
        h.runner.hold = False
        speaker = started(h)
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        h.gena.answers["renew"] = ConnectionRefusedError()
        h.clock.advance(50)
        self.assertEqual(device.pings, 1)
        self.assertFalse(speaker.online)
        self.assertEqual(len(h.processor.of("speaker.offline")), 1)
        self.assertEqual(len(h.processor.of("subscription.lost")), len(ALL_SERVICES))

    def test_sign_of_life_rechecks_offline_speaker(self) -> None:
        """A discovery sighting of an offline speaker pings it at once."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        speaker.check_now("test")
        self.assertFalse(speaker.online)
        device.down = None
        speaker.sign_of_life("ssdp")
        self.assertTrue(speaker.online)


class ShutdownTests(SynchronousTestCase):
    def test_unsubscribes_all(self) -> None:
        """stopService UNSUBSCRIBEs every subscription."""
        h = Harness(services=ALL_SERVICES)
        speaker = started(h)
        d = speaker.stopService()
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(h.gena.count("unsubscribe"), len(ALL_SERVICES))
        self.assertTrue(all(not s.is_subscribed for s in h.gena.made))

    def test_hanging_speaker_bounded(self) -> None:
        """When UNSUBSCRIBE hangs, stopService still fires after shutdown_timeout."""
        h = Harness(services=ALL_SERVICES, shutdown_timeout=5.0)
        household = HouseholdSupervisor(h.ctx, [Device(HOST), Device("127.0.0.3")])
        household.startService()
        h.gena.answers["unsubscribe"] = "hang"
        d = household.stopService()
        self.assertNoResult(d)
        h.clock.advance(4.9)
        self.assertNoResult(d)
        h.clock.advance(0.1)
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(h.gena.count("unsubscribe"), 2 * len(ALL_SERVICES))
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_stop_during_identify(self) -> None:
        """Stopping while the speaker is being identified leaves no timers behind."""
        h = Harness()
        h.runner.hold = True
        speaker = started(h)
        self.successResultOf(speaker.stopService())
        h.runner.pending[0].callback(None)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.gena.made, [])

    def test_stop_while_retrying(self) -> None:
        """Stopping during a backoff cancels the retry and sends no UNSUBSCRIBE."""
        h = Harness()
        h.gena.answers["subscribe"] = HttpError(503)
        speaker = started(h)
        self.successResultOf(speaker.stopService())
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.gena.count("unsubscribe"), 0)


class HouseholdTests(SynchronousTestCase):
    def test_duplicate_uid_ignored(self) -> None:
        """Two configured hosts that are the same speaker are supervised once."""
        h = Harness()
        h.household.uids["127.0.0.3"] = UID
        household = HouseholdSupervisor(h.ctx, [Device(HOST), Device("127.0.0.3")])
        household.startService()
        self.assertEqual(len(household.speakers()), 1)
        self.assertEqual(len(h.gena.made), 1)
        self.assertIs(household.speaker(UID), household.speakers()[0])

    def test_sighting_adds_new_speaker(self) -> None:
        """A discovered uid that is not supervised yet is added and subscribed."""
        h = Harness()
        household = HouseholdSupervisor(h.ctx)
        household.startService()
        household.on_sighting(Sighting(uid="RINCON_127004001400", host="127.0.0.4", boot_seq=3))
        self.assertEqual(len(household.speakers()), 1)
        self.assertEqual(len(h.gena.made), 1)
        household.on_sighting(Sighting(uid="RINCON_127004001400", host="127.0.0.4", boot_seq=3))
        self.assertEqual(len(household.speakers()), 1)

    def test_sighting_with_higher_boot_seq_is_reboot(self) -> None:
        """An SSDP answer with a higher X-RINCON-BOOTSEQ resubscribes the speaker."""
        h = Harness()
        household = HouseholdSupervisor(h.ctx, [Device(HOST)])
        household.startService()
        household.on_sighting(Sighting(uid=UID, host=HOST, boot_seq=6))
        self.assertEqual(h.gena.count("subscribe"), 2)
        self.assertEqual(h.processor.of("subscription.lost")[0][1]["reason"], "reboot")

    def test_topology_address_change_followed(self) -> None:
        """A new Location host for the uid moves the speaker and resubscribes there."""
        h = Harness()
        h.household.uids["127.0.0.9"] = UID
        household = HouseholdSupervisor(
            h.ctx, [Device(HOST)], topology_members=lambda topology: topology
        )
        household.startService()
        household.on_topology(None, {UID: MemberInfo(boot_seq=5, host="127.0.0.9")})
        speaker = household.speakers()[0]
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, "127.0.0.9")
        self.assertEqual(h.gena.current("RenderingControl").device.ip_address, "127.0.0.9")
        self.assertEqual(h.processor.of("subscription.lost")[0][1]["reason"], "address changed")
        self.assertEqual(h.gena.count("subscribe"), 2)

    def test_address_of_other_speaker_not_followed(self) -> None:
        """A Location whose speaker has another uid is not followed."""
        h = Harness()
        household = HouseholdSupervisor(
            h.ctx, [Device(HOST)], topology_members=lambda topology: topology
        )
        household.startService()
        household.on_topology(None, {UID: MemberInfo(boot_seq=5, host="127.0.0.9")})
        speaker = household.speakers()[0]
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, HOST)
        self.assertEqual(h.gena.count("subscribe"), 1)

    def test_topology_members_reads_topology(self) -> None:
        """topology_members() maps uids to BootSeq and host from a parsed topology."""
        from sonosd.household.topology import Group, Member, Topology

        member = Member(
            uid=UID,
            name="Kitchen",
            location="http://127.0.0.2:1400/xml/device_description.xml",
            host="127.0.0.2",
            port=1400,
            boot_seq=7,
        )
        topology = Topology(groups=(Group(id=UID + ":1", coordinator=UID, members=(member,)),))
        self.assertEqual(topology_members(topology), {UID: MemberInfo(7, "127.0.0.2")})
        self.assertEqual(topology_members(None), {})

    def test_status_snapshot(self) -> None:
        """status() describes every speaker and service."""
        h = Harness()
        household = HouseholdSupervisor(h.ctx, [Device(HOST)])
        household.startService()
        (status,) = household.status()["speakers"]
        self.assertEqual(status["uid"], UID)
        self.assertEqual(status["availability"], "online")
        self.assertTrue(status["online"])
        self.assertEqual(status["services"]["RenderingControl"]["state"], "subscribed")


class BuildTests(SynchronousTestCase):
    def test_build_household_from_config(self) -> None:
        """build_household() supervises the configured devices and adds SSDP discovery."""
        from sonosd.config import Config, SubscriptionConfig
        from sonosd.household.discovery import SsdpDiscovery
        from sonosd.household.state import HouseholdState

        h = Harness()

        class Listener:
            def callback_url(self, host: str) -> str:
                return "http://127.0.0.1:1400/"

        state = HouseholdState()
        config = Config(
            path="sonosd.yaml",
            devices=(Device(HOST), Device("127.0.0.3", name="Den")),
            discovery=True,
            services=("AVTransport",),
            subscription=SubscriptionConfig(timeout=600),
        )
        household = build_household(
            h.clock,
            config,
            runner=h.runner,
            processor=h.processor,
            reader=h.reader,
            listener=Listener(),
            state=state,
        )
        self.assertEqual([s.config_device.host for s in household.speakers()], [HOST, "127.0.0.3"])
        self.assertIsInstance(household.discovery, SsdpDiscovery)
        self.assertEqual(household.ctx.services, ("AVTransport",))
        self.assertEqual(household.ctx.config.timeout, 600)


class MoreHouseholdTests(SynchronousTestCase):
    def household(self, h: Harness) -> HouseholdSupervisor:
        household = HouseholdSupervisor(
            h.ctx, [Device(HOST)], topology_members=lambda topology: topology
        )
        household.startService()
        return household

    def test_unreachable_new_address_not_followed(self) -> None:
        """A new Location that does not answer leaves the speaker where it was."""
        h = Harness()
        h.household.unreachable.add("127.0.0.9")
        household = self.household(h)
        household.on_topology(None, {UID: MemberInfo(boot_seq=5, host="127.0.0.9")})
        speaker = household.speakers()[0]
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, HOST)
        self.assertEqual(h.processor.of("subscription.lost"), [])

    def test_offline_speaker_moved_then_pinged(self) -> None:
        """An offline speaker seen at a new address is moved there and pinged at once."""
        h = Harness()
        h.household.uids["127.0.0.9"] = UID
        household = self.household(h)
        speaker = household.speakers()[0]
        h.household.devices[HOST].down = ConnectionRefusedError()
        speaker.check_now("test")
        self.assertFalse(speaker.online)
        household.on_topology(None, {UID: MemberInfo(boot_seq=5, host="127.0.0.9")})
        self.assertTrue(speaker.online)
        self.assertEqual(h.household.devices["127.0.0.9"].pings, 1)
        self.assertEqual(h.gena.current("RenderingControl").device.ip_address, "127.0.0.9")

    def test_byebye_pings(self) -> None:
        """An ssdp:byebye makes the speaker be pinged at once; no answer means offline."""
        h = Harness()
        household = self.household(h)
        h.household.devices[HOST].down = ConnectionRefusedError()
        household.on_byebye(UID, "powered off")
        household.on_byebye("RINCON_UNKNOWN", None)
        self.assertFalse(household.speakers()[0].online)
        self.assertEqual(
            [m[1]["reason"] for m in h.processor.of("speaker.offline")], ["connection refused"]
        )

    def test_unknown_uid_in_topology_ignored(self) -> None:
        """Topology members that are not supervised are ignored."""
        h = Harness()
        household = self.household(h)
        household.on_topology(None, {"RINCON_OTHER": MemberInfo(boot_seq=1, host="10.0.0.1")})
        self.assertEqual(h.gena.count("subscribe"), 1)


class SubscriptionFactoryTests(SynchronousTestCase):
    def test_subscriptions_share_one_http_client(self) -> None:
        """Every subscription the daemon's factory makes sends its requests with one HTTP
        client (one agent and pool for the household, not one per subscription), at most
        GENA_CONCURRENCY at once."""
        from soco import SoCo
        from twisted.internet.testing import MemoryReactorClock

        from sonosd.gena.listener import NotifyListener

        reactor = MemoryReactorClock()
        listener = NotifyListener(reactor, interface="127.0.0.1", port=0)
        make = gena_subscriptions(reactor, listener, request_timeout=5.0)
        first: Any = make(SoCo("127.0.0.2"), "RenderingControl")
        second: Any = make(SoCo("127.0.0.3"), "AVTransport")
        self.assertIs(first._http, second._http)
        self.assertIs(first._limiter, second._limiter)
        self.assertEqual(first._limiter.limit, GENA_CONCURRENCY)
        given = object()
        third: Any = gena_subscriptions(reactor, listener, request_timeout=5.0, http=given)(
            SoCo("127.0.0.2"), "Queue"
        )
        self.assertIs(third._http, given)


class ConsistencyCheckTests(SynchronousTestCase):
    """A lost last NOTIFY is found by comparing a cheap read with the state."""

    def make(self, **config: Any) -> tuple[Harness, SpeakerSupervisor]:
        config.setdefault("check_interval", 60.0)
        h = Harness(services=("RenderingControl", "AVTransport"), **config)
        speaker = started(h)
        for service in ("RenderingControl", "AVTransport"):
            h.gena.current(service).notify(0)
        h.processor.known = {"RenderingControl": {"volume": 45}, "AVTransport": {}}
        return h, speaker

    def test_a_lasting_difference_is_a_gap_and_a_resync(self) -> None:
        """A difference still there after the confirmation delay publishes events.gap (its
        reason names the value) and resyncs that service only."""
        h, speaker = self.make()
        h.reader.speaker = {"RenderingControl": {"volume": 50}}
        h.clock.advance(60)
        self.assertEqual(h.reader.checks, [["RenderingControl", "AVTransport"]])
        self.assertEqual(h.processor.of("events.gap"), [])
        h.clock.advance(CONFIRM_DELAY)
        self.assertEqual(h.reader.checks[-1], ["RenderingControl"])
        [(_, fields, _, service)] = h.processor.of("events.gap")
        self.assertEqual(service, "RenderingControl")
        self.assertEqual((fields["expected"], fields["got"]), (1, None))
        self.assertEqual(fields["reason"], "consistency check: volume: 45 here, 50 on the speaker")
        self.assertEqual([service for _, service in h.reader.reads], ["RenderingControl"])
        self.assertEqual(speaker.services["RenderingControl"].gaps, 1)

    def test_an_event_meanwhile_proves_nothing(self) -> None:
        """A NOTIFY arriving before the confirmation means the difference was in flight."""
        h, _ = self.make()
        h.reader.speaker = {"RenderingControl": {"volume": 50}}
        h.clock.advance(60)
        h.gena.current("RenderingControl").notify(1, volume=50)
        h.clock.advance(CONFIRM_DELAY)
        self.assertEqual(h.processor.of("events.gap"), [])
        self.assertEqual(h.reader.reads, [])

    def test_agreement_reads_once(self) -> None:
        """When the read agrees with the state, nothing is confirmed or published."""
        h, speaker = self.make()
        h.reader.speaker = {"RenderingControl": {"volume": 45}}
        h.clock.advance(60 + CONFIRM_DELAY)
        self.assertEqual(len(h.reader.checks), 1)
        self.assertEqual(h.processor.of("events.gap"), [])
        self.assertEqual(speaker.checks, 1)

    def test_polling_services_are_not_checked(self) -> None:
        """A service whose NOTIFYs never came (polling) is left out of the check."""
        h = Harness(services=("RenderingControl", "AVTransport"), check_interval=60.0)
        started(h)
        h.gena.current("AVTransport").notify(0)
        h.clock.advance(60)
        self.assertEqual(h.reader.checks[0], ["AVTransport"])

    def test_failed_read_is_quiet(self) -> None:
        """A read that fails is logged at debug level and the next check still runs."""
        h, speaker = self.make()
        h.reader.error = ConnectionRefusedError()
        with capturedLogs() as events:
            h.clock.advance(60)
        self.assertEqual([e for e in events if e["log_level"].name != "debug"], [])
        h.reader.error = None
        h.clock.advance(60)
        self.assertEqual(speaker.checks, 2)

    def test_zero_disables(self) -> None:
        """check_interval 0 schedules no check."""
        h, _ = self.make(check_interval=0.0)
        h.clock.advance(3600)
        self.assertEqual(h.reader.checks, [])

    def test_stop_cancels(self) -> None:
        """Stopping the speaker stops the check loop."""
        h, speaker = self.make()
        speaker.stopService()
        h.clock.advance(3600)
        self.assertEqual(h.reader.checks, [])


class ReloadTests(SynchronousTestCase):
    """What a configuration reload does to the household."""

    def test_set_services_subscribes_and_unsubscribes(self) -> None:
        """A service added is subscribed at once; one removed is UNSUBSCRIBEd."""
        h = Harness(services=("RenderingControl", "AVTransport"))
        speaker = started(h)
        speaker.set_services(("AVTransport", "Queue"))
        self.assertEqual(list(speaker.services), ["AVTransport", "Queue"])
        self.assertEqual(h.gena.current("Queue").requests, ["subscribe"])
        self.assertEqual(h.gena.current("RenderingControl").requests, ["subscribe", "unsubscribe"])

    def test_apply_adds_removes_and_keeps_counters(self) -> None:
        """apply() follows the new devices and services; the removed ones' counters stay in
        the totals (retired), and discovered speakers are kept."""
        from sonosd.config import Config, SubscriptionConfig

        h = Harness(services=("RenderingControl",))
        household = HouseholdSupervisor(h.ctx, [Device(HOST), Device("127.0.0.3")])
        household.startService()
        household.add_device(Device("127.0.0.9"), discovered=True)
        config = Config(
            path="x.yaml",
            devices=(Device("127.0.0.3"), Device("127.0.0.4")),
            services=("RenderingControl", "Queue"),
            subscription=SubscriptionConfig(poll_interval=3.0),
        )
        added, removed = household.apply(config)
        self.assertEqual((added, removed), (["127.0.0.4"], [HOST]))
        hosts = [s["configured_host"] for s in household.status()["speakers"]]
        self.assertEqual(hosts, ["127.0.0.3", "127.0.0.9", "127.0.0.4"])
        self.assertIsNone(household.speaker(UID))
        self.assertEqual(household.retired["subscribes"], 1)
        for speaker in household.speakers():
            self.assertEqual(list(speaker.services), ["RenderingControl", "Queue"])
            self.assertEqual(speaker.ctx.config.poll_interval, 3.0)
        self.assertEqual(
            h.gena.current("RenderingControl", UID).requests, ["subscribe", "unsubscribe"]
        )
