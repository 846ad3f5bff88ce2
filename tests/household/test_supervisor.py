"""Unit tests of household.supervisor's timing: every schedule driven by a Clock.

Behaviour against real speakers is tested end to end in ``test_supervisor_sim.py``; here the
collaborators are small recording fakes so that delays can be checked to the second.
"""

from __future__ import annotations

import socket
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from sonosd.config import Device
from sonosd.household.discovery import Sighting
from sonosd.household.keepalive import ServiceState
from sonosd.household.probe import Description, UpnpDisabled
from sonosd.household.readiness import health_reasons, summary_line
from sonosd.household.supervisor import (
    CONFIRM_DELAY,
    GENA_CONCURRENCY,
    HouseholdSupervisor,
    SpeakerSupervisor,
    build_household,
    followable,
    gena_subscriptions,
)
from sonosd.household.topology import Topology, parse_zone_group_state
from tests.supervisor_fakes import (
    ALL_SERVICES,
    HOST,
    UID,
    FakeSubscription,
    Harness,
    HttpError,
    started,
)


def zgs(*members: tuple[str, str, str], vanished: tuple[tuple[str, str], ...] = ()) -> Topology:
    """A household topology: one group per ``(uid, host, flags)`` member (``flags``:
    ``invisible``, or ``""``), and vanished ``(uid, reason)`` devices."""
    groups = "".join(
        f'<ZoneGroup Coordinator="{uid}" ID="{uid}:1"><ZoneGroupMember UUID="{uid}" '
        f'ZoneName="Room {uid[-6:]}" BootSeq="5" '
        f'Location="http://{host}:1400/xml/device_description.xml"'
        f"{' Invisible=' + chr(34) + '1' + chr(34) if flags == 'invisible' else ''}/></ZoneGroup>"
        for uid, host, flags in members
    )
    gone = "".join(
        f'<Device UUID="{uid}" ZoneName="Portable" Reason="{reason}" LastKnownIP="127.0.0.8"/>'
        for uid, reason in vanished
    )
    document = (
        f"<ZoneGroupState><ZoneGroups>{groups}</ZoneGroups>"
        f"<VanishedDevices>{gone}</VanishedDevices></ZoneGroupState>"
    )
    return parse_zone_group_state(document).tagged("Sonos_test")


def reasons(speaker: SpeakerSupervisor) -> tuple[str, ...]:
    """The health reasons one speaker's status gives."""
    return health_reasons({"speakers": [speaker.status()]})


def log_lines(events: list[dict[str, Any]], words: str) -> list[dict[str, Any]]:
    return [e for e in events if words in e.get("log_format", "")]


class IdentifyTests(SynchronousTestCase):
    def test_identified_from_description(self) -> None:
        """The speaker is identified by its description and household id (never a thread for
        an address, never GetZoneGroupState); SoCo is told its uid and household."""
        h = Harness()
        speaker = started(h)
        self.assertEqual(h.household.described, [(HOST, 1400, 10.0)])
        self.assertEqual(h.runner.calls, [])
        self.assertEqual((speaker.uid, speaker.household_id), (UID, "Sonos_test"))
        assert speaker.ref is not None
        self.assertEqual(
            (speaker.ref.name, speaker.ref.host, speaker.ref.household),
            ("Kitchen", HOST, "Sonos_test"),
        )

    def test_host_name_resolved_in_pool(self) -> None:
        """A host name is resolved in the thread pool, keyed by the name."""
        h = Harness()
        ctx = attrs.evolve(h.ctx, resolve=lambda host: HOST)
        speaker = SpeakerSupervisor(Device(host="kitchen.lan"), ctx)
        speaker.startService()
        self.assertEqual([key for _, _, key, _ in h.runner.calls], ["kitchen.lan"])
        self.assertEqual(h.household.described[0][0], HOST)

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
        warnings = log_lines(events, "not {expected!r}")
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["actual"], "Kitchen")

    def test_unreachable_configured_host_backs_off_and_says_it_once(self) -> None:
        """A configured host that cannot be identified is retried with growing delays, up to
        asleep_interval, with one log line while the reason stays the same."""
        h = Harness(backoff_initial=2.0, backoff_max=300.0, asleep_interval=8.0)
        h.jitter = 0.999999
        h.household.unreachable.add(HOST)
        with capturedLogs() as events:
            speaker = started(h)
            for expected, step in ((2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)):
                h.clock.advance(step - 0.01)
                self.assertEqual(len(h.household.described), expected - 1)
                h.clock.advance(0.01)
                self.assertEqual(len(h.household.described), expected)
        [said] = log_lines(events, "cannot identify speaker")
        # The line docs/supervisor.md shows.
        self.assertEqual(
            formatEvent(said),
            f"cannot identify speaker {HOST}: connection refused; trying again until it answers",
        )
        self.assertEqual(speaker.reason, "connection refused")
        self.assertEqual(reasons(speaker), ("127.0.0.2 cannot be identified (connection refused)",))
        h.household.unreachable.clear()
        h.clock.advance(8.0)
        self.assertTrue(speaker.online)
        self.assertEqual(h.processor.types(), ["speaker.online"])

    def test_identify_timeout_bounded(self) -> None:
        """An identification that never answers times out and is retried."""
        h = Harness(request_timeout=3.0, backoff_initial=1.0)
        h.household.hold = True
        speaker = started(h)
        h.clock.advance(4.0)
        self.assertEqual(speaker.reason, "timeout")
        h.clock.advance(1.0)
        self.assertEqual(len(h.household.described), 2)


class RebootTests(SynchronousTestCase):
    def make(self) -> tuple[Harness, SpeakerSupervisor]:
        h = Harness(services=ALL_SERVICES, timeout=100)
        h.gena.granted = 100
        speaker = started(h)
        for service in ALL_SERVICES:
            h.gena.current(service).notify(0)
        return h, speaker

    def test_412_on_renewal_resubscribes_every_service_once(self) -> None:
        """A 412 on one renewal replaces all of the speaker's subscriptions, each exactly once,
        without UNSUBSCRIBEs (the speaker forgot them)."""
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
        h.clock.advance(0)
        self.assertEqual(h.unsubscriber.sent, [])

    def test_boot_seq_after_412_is_absorbed(self) -> None:
        """The BootSeq increase that follows a 412 does not resubscribe a second time."""
        h, speaker = self.make()
        speaker.observe_boot_seq(5, "topology")
        h.gena.answers["renew"] = HttpError(412)
        h.clock.advance(50)
        h.gena.answers.clear()
        subscribes = h.gena.count("subscribe")
        speaker.observe_boot_seq(6, "topology")
        self.assertEqual(h.gena.count("subscribe"), subscribes)
        self.assertEqual(speaker.boot_seq, 6)
        speaker.observe_boot_seq(7, "topology")
        self.assertEqual(h.gena.count("subscribe"), subscribes + len(ALL_SERVICES))

    def reboot_after_outage(self, answer: HttpError) -> tuple[Harness, SpeakerSupervisor]:
        """A speaker back from an outage for 20 s, then a BootSeq increase (in the window
        where the outage's own reboot is expected) whose checking renewal gets ``answer``:
        one renewal is made, and every service is subscribed afresh."""
        h, speaker = self.make()
        speaker.observe_boot_seq(5, "topology")
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        speaker.check_now("test")
        h.clock.advance(0)
        self.assertEqual(speaker.availability, "offline")
        device.down = None
        speaker.check_now("test")
        h.clock.advance(0)
        self.assertTrue(speaker.online)
        h.clock.advance(20)
        subscribes, renewals = h.gena.count("subscribe"), h.gena.count("renew")
        h.gena.answers["renew"] = answer
        speaker.observe_boot_seq(6, "topology")
        h.clock.advance(0)
        h.gena.answers.clear()
        self.assertEqual(h.gena.count("renew"), renewals + 1)
        self.assertEqual(h.gena.count("subscribe"), subscribes + len(ALL_SERVICES))
        self.assertTrue(speaker.online)
        return h, speaker

    def test_reboot_soon_after_an_outage_is_not_absorbed(self) -> None:
        """A reboot a few seconds after the speaker came back from an outage (its fresh
        subscriptions then forgotten) is not taken for the outage's own reboot: the renewal
        made at once gets 412 and every service is subscribed afresh."""
        h, _ = self.reboot_after_outage(HttpError(412))
        self.assertEqual(h.processor.of("subscription.lost")[-1][1]["reason"], "reboot")

    def test_reboot_soon_after_an_outage_refused_renewal(self) -> None:
        """A reboot soon after an outage whose checking renewal is refused with something
        other than 412 (a speaker that cannot accept one: 503) still subscribes every
        service afresh: the others may be as forgotten as the one renewed."""
        h, speaker = self.reboot_after_outage(HttpError(503))
        # A later renewal refused in the same way is that service's alone.
        h.clock.advance(5)
        subscribes = h.gena.count("subscribe")
        h.gena.answers["renew"] = HttpError(503)
        self.assertTrue(speaker.services["AVTransport"].renew_now())
        h.clock.advance(0)
        h.gena.answers.clear()
        h.clock.advance(5)
        self.assertEqual(h.gena.count("subscribe"), subscribes + 1)

    def test_boot_seq_increase_resubscribes_fresh(self) -> None:
        """A higher BootSeq replaces every subscription (SUBSCRIBE, not renewal)."""
        h, speaker = self.make()
        speaker.observe_boot_seq(5, "topology")
        self.assertEqual(h.gena.count("subscribe"), len(ALL_SERVICES))
        speaker.observe_boot_seq(6, "topology")
        self.assertEqual(h.gena.count("subscribe"), 2 * len(ALL_SERVICES))
        self.assertEqual(h.gena.count("renew"), 0)
        self.assertEqual(h.gena.count("unsubscribe"), 0)
        h.clock.advance(0)
        self.assertEqual(h.unsubscriber.sent, [])

    def test_old_renewal_answer_after_reboot_ignored(self) -> None:
        """A renewal in flight when the reboot is noticed is abandoned, not acted upon."""
        h, speaker = self.make()
        speaker.observe_boot_seq(5, "topology")
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
        speaker.observe_boot_seq(5, "topology")
        old = h.gena.current("AVTransport")
        callback = old.callback
        speaker.observe_boot_seq(6, "topology")
        self.assertIsNone(old.callback)
        before = len(h.processor.events)
        assert callback is not None
        callback(type("E", (), {"sid": old.sid, "seq": "1", "variables": {}})())
        self.assertEqual(len(h.processor.events), before)


class AvailabilityTests(SynchronousTestCase):
    def make(self, host: str = HOST, **config: Any) -> tuple[Harness, SpeakerSupervisor]:
        settings: dict[str, Any] = {
            "availability_interval": 3.0,
            "silence_timeout": 20.0,
            "ping_timeout": 5.0,
            "asleep_interval": 60.0,
            "backoff_initial": 1.0,
            "backoff_max": 8.0,
            "timeout": 3600,
        }
        settings.update(config)
        h = Harness(**settings)
        h.gena.granted = 3600
        h.jitter = 0.999999
        speaker = started(h, host)
        h.gena.current("RenderingControl").notify(0)
        return h, speaker

    def test_silent_speaker_pinged_after_silence_timeout(self) -> None:
        """A speaker is pinged exactly silence_timeout after it was last heard, then again
        silence_timeout after each answer."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        h.clock.advance(19.9)
        self.assertEqual(device.pings, 0)
        h.clock.advance(0.1)
        self.assertEqual(device.pings, 1)
        h.clock.advance(19.9)
        self.assertEqual(device.pings, 1)
        h.clock.advance(0.1)
        self.assertEqual(device.pings, 2)
        self.assertTrue(speaker.online)

    def test_two_timers_per_speaker_besides_the_renewals(self) -> None:
        """An online speaker has one timer per subscription (its renewal) and two of its own:
        the availability timer, re-armed for whatever the status calls for (here the silence
        check), and the consistency check's (docs/supervisor.md, Timers); silence checks and
        events re-arm the one, never add another."""
        h = Harness(services=ALL_SERVICES, check_interval=60.0)
        speaker = started(h)
        for service in ALL_SERVICES:
            h.gena.current(service).notify(0)

        def timers() -> list[str]:
            return sorted(
                getattr(call.func, "__name__", type(call.func).__name__)
                for call in h.clock.getDelayedCalls()
            )

        expected = sorted(["_begin_renew"] * len(ALL_SERVICES) + ["_silence_due", "LoopingCall"])
        self.assertEqual(timers(), expected)
        for seq in range(1, 4):
            h.clock.advance(20.0)
            h.gena.current("RenderingControl").notify(seq)
            self.assertEqual(timers(), expected)
        self.assertGreaterEqual(h.household.devices[HOST].pings, 1)
        self.assertTrue(speaker.online)

    def test_events_keep_speaker_from_ping(self) -> None:
        """Regular events count as activity: no ping."""
        h, _speaker = self.make()
        sub = h.gena.current("RenderingControl")
        for seq in range(1, 11):
            h.clock.advance(15)
            sub.notify(seq)
        self.assertEqual(h.household.devices[HOST].pings, 0)

    def test_refused_offline_then_pinged_every_interval_until_back(self) -> None:
        """A refused ping marks the speaker offline at once (one log line), suspends its
        subscriptions, then pings every availability_interval; the first answer brings it
        back online with fresh subscriptions (one more log line)."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        with capturedLogs() as events:
            h.clock.advance(20)
            self.assertEqual(speaker.availability, "offline")
            offline = h.processor.of("speaker.offline")
            self.assertEqual([m[1]["reason"] for m in offline], ["connection refused"])
            self.assertEqual(
                [m[1]["reason"] for m in h.processor.of("subscription.lost")],
                ["speaker offline: connection refused"],
            )
            self.assertEqual(speaker.services["RenderingControl"].state, ServiceState.SUSPENDED)
            pings = device.pings
            for n in range(1, 6):
                h.clock.advance(3.0)
                self.assertEqual(device.pings, pings + n)
            subscribes = h.gena.count("subscribe")
            device.down = None
            h.clock.advance(3.0)
        self.assertTrue(speaker.online)
        self.assertEqual(h.processor.types()[-2:], ["speaker.online", "subscription.restored"])
        self.assertEqual(h.gena.count("subscribe"), subscribes + 1)
        self.assertEqual(len(log_lines(events, "speaker {speaker} is {status}")), 2)

    def test_offline_speaker_listed_by_name_is_looked_for_where_its_name_points(self) -> None:
        """While a speaker listed by host name is offline, each failed ping resolves the name
        again: a name that does not resolve, or gives the same address, changes nothing; a new
        address is where the speaker is looked for (and found) next."""
        names = {"kitchen.lan": HOST}

        def resolve(name: str) -> str:
            if name not in names:
                raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return names[name]

        h, speaker = self.make("kitchen.lan", resolve=resolve)
        self.assertTrue(speaker.online)
        h.household.unreachable.add(HOST)
        h.clock.advance(20)
        self.assertEqual((speaker.availability, speaker.reason), ("offline", "connection refused"))
        del names["kitchen.lan"]
        h.clock.advance(3.0)
        assert speaker.ref is not None
        self.assertEqual((speaker.availability, speaker.ref.host), ("offline", HOST))
        moved = "127.0.0.77"
        h.household.uids[moved] = UID
        names["kitchen.lan"] = moved
        with capturedLogs() as events:
            h.clock.advance(3.0)
            h.clock.advance(3.0)
        self.assertEqual((speaker.availability, speaker.ref.host), ("online", moved))
        [line] = log_lines(events, "moved from {old} to {new}")
        self.assertEqual(line["source"], "kitchen.lan resolved again")
        resolved = [key for fn, _, key, _ in h.runner.calls if key == "kitchen.lan"]
        self.assertGreaterEqual(len(resolved), 4)

    def test_hung_ping_times_out(self) -> None:
        """A ping that never answers fails after ping_timeout (and a second's slack)."""
        h, speaker = self.make()
        h.household.hold = True
        h.clock.advance(20)
        self.assertTrue(speaker.online)
        h.clock.advance(5.9)
        self.assertTrue(speaker.online)
        h.clock.advance(0.1)
        self.assertEqual((speaker.availability, speaker.reason), ("offline", "timeout"))

    def test_defaults_make_a_refusing_or_hanging_speaker_offline_within_30_s(self) -> None:
        """With the default settings a speaker that stops answering, refusing or hanging, is
        offline within 30 s of its last event (README: ``offline`` within 30 s)."""
        for failure in ("refuses", "hangs"):
            self.offline_with_the_defaults(failure)

    def offline_with_the_defaults(self, failure: str) -> tuple[Harness, SpeakerSupervisor]:
        """A speaker followed with the default settings, evented, that then ``refuses`` or
        ``hangs``: offline within 30 s of its last event."""
        h = Harness()
        h.gena.granted = h.config.timeout
        speaker = started(h)
        h.gena.current("RenderingControl").notify(0)
        if failure == "refuses":
            h.household.devices[HOST].down = ConnectionRefusedError()
        else:
            h.household.hold = True
        # In small steps: each timer starts its own timers at the time it is due.
        h.clock.pump([0.1] * 300)
        self.assertEqual(speaker.availability, "offline", failure)
        return h, speaker

    def test_defaults_bring_a_speaker_back_online_within_10_s(self) -> None:
        """With the default settings a speaker offline (refusing, or hanging) that answers
        again right after a ping went out is online within 10 s (docs/supervisor.md's
        target; for a hung one, the ping in flight stays unanswered)."""
        for failure in ("refuses", "hangs"):
            h, speaker = self.offline_with_the_defaults(failure)
            device = h.household.devices[HOST]
            pings = device.pings
            while device.pings == pings:
                h.clock.advance(0.1)
            device.down = None
            h.household.hold = False
            h.clock.pump([0.1] * 100)
            self.assertEqual(speaker.availability, "online", failure)

    def test_unreachable_renewal_pings_once(self) -> None:
        """Several services failing with connection errors cause a single ping."""
        h = Harness(services=ALL_SERVICES, timeout=100, backoff_initial=1.0)
        h.gena.granted = 100
        speaker = started(h)
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        h.gena.answers["renew"] = ConnectionRefusedError()
        h.clock.advance(50)
        self.assertEqual(device.pings, 1)
        self.assertFalse(speaker.online)
        self.assertEqual(len(h.processor.of("speaker.offline")), 1)
        self.assertEqual(len(h.processor.of("subscription.lost")), len(ALL_SERVICES))

    def test_command_failure_checks_at_once(self) -> None:
        """A command that got no answer makes the speaker be pinged at once."""
        h, speaker = self.make()
        household = HouseholdSupervisor(h.ctx)
        household._by_uid[UID] = speaker
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        household.command_failed(UID, "timeout")
        household.command_failed("RINCON_NOBODY", "timeout")
        self.assertEqual((device.pings, speaker.availability), (1, "offline"))

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

    def test_asleep_from_topology_checked_slowly(self) -> None:
        """A vanished device with reason sleeping is asleep at once (not offline, not a
        problem), checked only every asleep_interval without a log line per check, and
        checked at once when the topology lists it again."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        with capturedLogs() as events:
            speaker.observe_vanished(zgs(vanished=((UID, "sleeping"),)).vanished[0])
            self.assertEqual((speaker.availability, speaker.reason), ("asleep", "sleeping"))
            self.assertEqual(reasons(speaker), ())
            self.assertEqual(
                h.processor.of("subscription.lost")[0][1]["reason"], "speaker asleep: sleeping"
            )
            device.down = ConnectionRefusedError()
            h.clock.advance(59)
            self.assertEqual(device.pings, 0)
            h.clock.advance(1)
            self.assertEqual((device.pings, speaker.availability), (1, "asleep"))
            h.clock.advance(60)
            self.assertEqual((device.pings, speaker.availability), (2, "asleep"))
            device.down = None
            (member,) = zgs((UID, HOST, "")).members()
            speaker.observe_member(member)
        self.assertTrue(speaker.online)
        self.assertEqual(device.pings, 3)
        self.assertEqual(len(log_lines(events, "speaker {speaker} is {status}")), 2)

    def test_vanished_powered_off_is_offline(self) -> None:
        """A vanished device with another reason is offline with that reason."""
        _h, speaker = self.make()
        speaker.observe_vanished(zgs(vanished=((UID, "powered off"),)).vanished[0])
        self.assertEqual((speaker.availability, speaker.reason), ("offline", "powered off"))
        self.assertEqual(reasons(speaker), ("Kitchen (127.0.0.2) is offline (powered off)",))

    def test_upnp_disabled_checked_slowly(self) -> None:
        """A speaker answering 403 has UPnP switched off: its status says how to switch it
        on, it is checked every asleep_interval, and it is online again once it answers."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        device.down = UpnpDisabled("403", 403)
        h.clock.advance(20)
        self.assertEqual(speaker.availability, "upnp_disabled")
        self.assertIn("Privacy & Security", speaker.reason or "")
        self.assertEqual(h.processor.types()[-2:], ["speaker.upnp_disabled", "subscription.lost"])
        self.assertIn("has UPnP switched off: UPnP is switched off", reasons(speaker)[0])
        pings = device.pings
        h.clock.advance(59)
        self.assertEqual(device.pings, pings)
        device.down = None
        h.clock.advance(1)
        self.assertTrue(speaker.online)

    def test_every_change_of_what_the_status_line_counts_is_told(self) -> None:
        """The context's ``status_changed`` is called whenever what systemd's status line
        counts changes (the daemon refreshes the line then): the line read at its last call
        is the line now, through subscribing, the first NOTIFY, the speaker going offline,
        coming back, and its removal."""
        h = Harness(
            availability_interval=3.0,
            silence_timeout=20.0,
            backoff_initial=1.0,
            timeout=3600,
        )
        h.gena.granted = 3600
        said: list[str] = []
        household: HouseholdSupervisor | None = None

        def told() -> None:
            if household is not None:
                said.append(summary_line(household.status(), 0))

        household = HouseholdSupervisor(
            attrs.evolve(h.ctx, status_changed=told), [Device(HOST)], follow_household=False
        )
        household.startService()

        def line_now() -> str:
            assert household is not None
            return summary_line(household.status(), 0)

        lines = []
        for step in (
            lambda: None,
            lambda: h.gena.current("RenderingControl").notify(0),
            lambda: setattr(h.household.devices[HOST], "down", ConnectionRefusedError()),
            lambda: h.clock.advance(20),
            lambda: setattr(h.household.devices[HOST], "down", None),
            lambda: h.clock.advance(3),
            lambda: h.gena.current("RenderingControl").notify(0),
            lambda: household.remove_device(HOST) if household is not None else None,
        ):
            step()
            self.assertEqual(said[-1], line_now())
            lines.append(line_now())
        self.assertEqual(
            [line.split(";")[0] for line in dict.fromkeys(lines)],
            [
                "1 speaker: 0 evented, 0 polling, 1 online",
                "1 speaker: 1 evented, 0 polling, 1 online",
                "1 speaker: 0 evented, 0 polling, 0 online",
                "0 speakers: 0 evented, 0 polling, 0 online",
            ],
        )
        self.assertEqual(lines[5], lines[0])


class SupersededSidTests(SynchronousTestCase):
    def make(self) -> tuple[Harness, SpeakerSupervisor]:
        h = Harness(services=("RenderingControl", "AVTransport"))
        speaker = started(h)
        return h, speaker

    def away(self, h: Harness, speaker: SpeakerSupervisor) -> set[str | None]:
        """Take the speaker away (it refuses); the SIDs it held."""
        old = {s.sid for s in h.gena.made}
        h.household.devices[HOST].down = ConnectionRefusedError()
        speaker.check_now("test")
        h.clock.advance(0)
        return old

    def back(self, h: Harness, speaker: SpeakerSupervisor) -> None:
        """The speaker answers again."""
        h.household.devices[HOST].down = None
        speaker.check_now("test")

    def test_replaced_sids_unsubscribed_when_back_online(self) -> None:
        """SIDs dropped during an outage are UNSUBSCRIBEd once the speaker answers again."""
        h, speaker = self.make()
        old = self.away(h, speaker)
        self.assertEqual(h.unsubscriber.sent, [])
        self.back(h, speaker)
        h.clock.advance(0)
        self.assertEqual({sent[3] for sent in h.unsubscriber.sent}, old)
        self.assertEqual({sent[0] for sent in h.unsubscriber.sent}, {HOST})
        self.assertEqual(
            {sent[2] for sent in h.unsubscriber.sent},
            {"/RenderingControl/Event", "/AVTransport/Event"},
        )

    def test_sid_ended_by_an_unreachable_renewal_is_unsubscribed(self) -> None:
        """A subscription ended here because its renewal could not reach the speaker is still
        the speaker's until it expires: UNSUBSCRIBEd once the speaker answers again."""
        h = Harness(services=("RenderingControl",), timeout=100, backoff_initial=1.0)
        h.gena.granted = 100
        speaker = started(h)
        first = h.gena.current("RenderingControl")
        first.expires = h.clock.seconds() + 100
        h.household.devices[HOST].down = ConnectionRefusedError()
        h.gena.answers["renew"] = ConnectionRefusedError()
        h.clock.advance(50)
        self.assertFalse(speaker.online)
        self.assertEqual(h.unsubscriber.sent, [])
        del h.gena.answers["renew"]
        h.household.devices[HOST].down = None
        speaker.check_now("test")
        h.clock.advance(1)
        self.assertEqual([sent[3] for sent in h.unsubscriber.sent], [first.sid])

    def test_unsubscribe_refused_as_the_speaker_goes_is_sent_again_when_it_is_back(self) -> None:
        """A replaced SID whose UNSUBSCRIBE the speaker refused (it was going away just then)
        is UNSUBSCRIBEd again once the speaker answers, not left to be NOTIFYed until it
        expires; one from before a reboot seen meanwhile is not (the speaker forgot it, and a
        new subscription may hold that SID)."""
        for reboot in (False, True):
            h = Harness(services=("RenderingControl",), timeout=100, backoff_initial=1.0)
            h.gena.granted = 100
            speaker = started(h)
            first = h.gena.current("RenderingControl")
            first.expires = h.clock.seconds() + 100
            h.unsubscriber.failure = ConnectionRefusedError()
            # The renewal fails as the speaker goes: the SID is replaced while it is still
            # online, and the UNSUBSCRIBE is refused.
            h.gena.answers["renew"] = ConnectionRefusedError()
            h.clock.advance(86)
            self.assertEqual([sent[3] for sent in h.unsubscriber.sent], [first.sid], reboot)
            if reboot:
                # A reboot seen while it is still online (412 on another renewal).
                speaker.rebooted("412 on renewal of AVTransport")
            h.household.devices[HOST].down = ConnectionRefusedError()
            speaker.check_now("test")
            h.clock.advance(0)
            self.assertFalse(speaker.online)
            del h.gena.answers["renew"]
            h.unsubscriber.failure = None
            h.household.devices[HOST].down = None
            speaker.check_now("test")
            h.clock.advance(1)
            again = [sent[3] for sent in h.unsubscriber.sent[1:]]
            self.assertEqual(again.count(first.sid), 0 if reboot else 1, (reboot, again))

    def test_sid_reused_after_a_reboot_is_not_unsubscribed(self) -> None:
        """A speaker that rebooted while away numbers its SIDs from 1 again: a superseded SID
        that a new subscription now holds is not UNSUBSCRIBEd (it would end that one)."""
        h, speaker = self.make()
        old = self.away(h, speaker)
        FakeSubscription.counter -= len(old)
        self.back(h, speaker)
        h.clock.advance(1)
        held = {sup.subscription.sid for sup in speaker.services.values() if sup.subscription}
        self.assertEqual(held, old)
        self.assertEqual(h.unsubscriber.sent, [])

    def test_no_unsubscribe_while_subscribing(self) -> None:
        """Superseded SIDs wait until no SUBSCRIBE is in flight (its answer may reuse one),
        then go."""
        h, speaker = self.make()
        old = self.away(h, speaker)
        h.gena.answers["subscribe"] = "hang"
        self.back(h, speaker)
        h.clock.advance(1)
        self.assertEqual(h.unsubscriber.sent, [])
        del h.gena.answers["subscribe"]
        for _ in range(100):
            h.clock.advance(0.5)
        self.assertEqual({sent[3] for sent in h.unsubscriber.sent}, old)

    def test_superseded_sids_bounded(self) -> None:
        """At most two superseded SIDs per service are kept for a speaker that stays away."""
        h, speaker = self.make()
        h.household.devices[HOST].down = ConnectionRefusedError()
        for _ in range(5):
            speaker._go_online("test")
            speaker.check_now("test")
            h.clock.advance(0)
        self.assertLessEqual(speaker.status()["superseded_sids"], 4)

    def test_superseded_sids_bounded_per_service(self) -> None:
        """The bound is per service: a service replaced three times while the speaker is
        away keeps its two newest SIDs, and another service's SID is kept beside them."""
        h, speaker = self.make()
        old = self.away(h, speaker)
        first = h.gena.current("RenderingControl")
        replaced = []
        for _ in range(2):
            again = FakeSubscription(h.gena, first.device, "RenderingControl")
            FakeSubscription.counter += 1
            again.sid = f"uuid:{first.device.uid}_sub{FakeSubscription.counter:010d}"
            again.is_subscribed, again.time_left = True, 100.0
            speaker.supersede(again)
            replaced.append(again.sid)
        self.back(h, speaker)
        h.clock.advance(1)
        sent = {
            entry[3] for entry in h.unsubscriber.sent if entry[3] in old or entry[3] in replaced
        }
        self.assertEqual(sent, (old - {first.sid}) | set(replaced))

    def test_expired_sids_not_sent(self) -> None:
        """A superseded SID that expired at the speaker meanwhile is not UNSUBSCRIBEd."""
        h, speaker = self.make()
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        speaker.check_now("test")
        h.clock.advance(3600)
        device.down = None
        speaker.check_now("test")
        h.clock.advance(0)
        self.assertEqual(h.unsubscriber.sent, [])


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

    def test_a_speaker_still_stopping_past_the_bound_is_named(self) -> None:
        """Should a speaker's stop outlast the household's bound (shutdown_timeout + 0.5 s),
        the household stops anyway, and one warning names the speakers still stopping."""
        h = Harness(shutdown_timeout=5.0)
        household = HouseholdSupervisor(h.ctx, [Device(HOST), Device("127.0.0.3")])
        household.startService()
        late, done = household.speakers()

        def never_stops() -> Deferred[None]:
            late.stopping = True
            return Deferred()

        late.stopService = never_stops  # type: ignore[method-assign]
        with capturedLogs() as events:
            d = household.stopService()
            h.clock.advance(5.4)
            self.assertNoResult(d)
            h.clock.advance(0.1)
            self.assertIsNone(self.successResultOf(d))
        [warning] = [e for e in events if "still stopping" in e.get("log_format", "")]
        self.assertEqual((warning["count"], warning["speakers"]), (1, late.label))
        self.assertNotIn(done.label, warning["speakers"])
        # The line docs/supervisor.md shows (Shutdown).
        self.assertEqual(warning["log_level"].name, "warn")
        self.assertEqual(
            formatEvent(warning),
            f"1 speaker(s) still stopping after 5.5 s ({late.label}); stopping anyway",
        )

    def test_stop_during_identify(self) -> None:
        """Stopping while the speaker is being identified leaves no timers behind."""
        h = Harness()
        h.household.hold = True
        speaker = started(h)
        self.successResultOf(speaker.stopService())
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


class AbandonedSubscribeTests(SynchronousTestCase):
    """A SUBSCRIBE in flight when its subscription is replaced or dropped for a reason (an
    address change, a reboot, an outage) is not cancelled: the speaker may have granted it,
    and its SID is UNSUBSCRIBEd once the answer tells it (end to end through the simulator:
    test_supervisor_sim's test_subscribes_in_flight_when_the_speaker_goes_offline_...)."""

    def make(self) -> tuple[Harness, HouseholdSupervisor, FakeSubscription]:
        h = Harness(request_timeout=5.0, shutdown_timeout=2.0)
        h.gena.answers["subscribe"] = "hang"
        h.household.uids["127.0.0.9"] = UID
        household = HouseholdSupervisor(h.ctx, [Device(HOST)])
        household.startService()
        return h, household, h.gena.current("RenderingControl")

    def replaced(self, h: Harness, first: FakeSubscription) -> FakeSubscription:
        """The subscription made afresh: ``first`` was neither cancelled nor forgotten."""
        fresh = h.gena.current("RenderingControl")
        self.assertIsNot(fresh, first)
        self.assertFalse(first.cancelled)
        self.assertIsNone(first.callback)
        return fresh

    def test_address_change(self) -> None:
        """Moved while its SUBSCRIBE is in flight: granted later, that SID is UNSUBSCRIBEd,
        and the fresh subscription at the new address is kept."""
        h, household, first = self.make()
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        fresh = self.replaced(h, first)
        self.assertEqual(fresh.device.ip_address, "127.0.0.9")
        first.grant()
        self.assertEqual(first.requests, ["subscribe", "unsubscribe"])
        fresh.grant()
        self.assertEqual(fresh.requests, ["subscribe"])
        [sup] = household.speakers()[0].services.values()
        self.assertIs(sup.subscription, fresh)
        self.assertEqual(sup.state, ServiceState.SUBSCRIBED)

    def test_reboot(self) -> None:
        """A reboot seen while a SUBSCRIBE is in flight: that SUBSCRIBE may have been sent
        after the reboot, so a grant is UNSUBSCRIBEd too (not taken as forgotten)."""
        h, household, first = self.make()
        speaker = household.speakers()[0]
        speaker.observe_boot_seq(5, "topology")
        speaker.observe_boot_seq(6, "topology")
        self.replaced(h, first)
        first.grant()
        self.assertEqual(first.requests, ["subscribe", "unsubscribe"])

    def test_refused_grant(self) -> None:
        """A SUBSCRIBE abandoned and then refused leaves nothing to UNSUBSCRIBE."""
        h, household, first = self.make()
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        self.replaced(h, first)
        first.pending[0].errback(HttpError(503))
        self.assertEqual(first.requests, ["subscribe"])
        self.assertEqual(h.unsubscriber.sent, [])

    def test_unanswered_is_cut_by_its_bound(self) -> None:
        """An abandoned SUBSCRIBE that never answers is cut by its own bound (the request
        timeout and a second from its start), no sooner: nothing is left behind."""
        h, household, first = self.make()
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        self.replaced(h, first)
        h.gena.current("RenderingControl").grant()
        h.clock.advance(5.9)
        self.assertFalse(first.pending[0].called)
        h.clock.advance(0.1)
        self.assertTrue(first.pending[0].called)
        self.assertEqual(first.requests, ["subscribe"])
        # Nothing waits any more: a stop is over at once.
        self.successResultOf(household.stopService())

    def test_late_grant_unsubscribed_within_the_rest(self) -> None:
        """A grant that comes just before the SUBSCRIBE's bound leaves its UNSUBSCRIBE the
        rest of twice the request timeout and a second (11 s from the abandonment)."""
        h, household, first = self.make()
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        self.replaced(h, first)
        h.gena.current("RenderingControl").grant()
        h.clock.advance(5.5)
        h.gena.answers["unsubscribe"] = "hang"
        first.grant()
        self.assertEqual(first.requests, ["subscribe", "unsubscribe"])
        unsubscribing = first.pending[-1]
        h.clock.advance(5.4)
        self.assertFalse(unsubscribing.called)
        h.clock.advance(0.1)
        self.assertTrue(unsubscribing.called)

    def offline_then_back(self, unsubscribe: Exception) -> tuple[Harness, FakeSubscription]:
        """A speaker found offline while its SUBSCRIBE is in flight, that SUBSCRIBE granted
        then and its UNSUBSCRIBE failing with ``unsubscribe``, then the speaker back."""
        h, household, first = self.make()
        speaker = household.speakers()[0]
        device = h.household.devices[HOST]
        device.down = ConnectionRefusedError()
        speaker.check_now("test")
        self.assertEqual(speaker.availability, "offline")
        self.assertFalse(first.cancelled)
        h.gena.answers["unsubscribe"] = unsubscribe
        first.expires = h.clock.seconds() + 100.0
        first.grant()
        self.assertEqual(first.requests, ["subscribe", "unsubscribe"])
        self.assertEqual(h.unsubscriber.sent, [])
        del h.gena.answers["unsubscribe"]
        h.gena.answers["subscribe"] = None
        device.down = None
        h.clock.advance(3.0)
        self.assertEqual(speaker.availability, "online")
        h.clock.advance(0)
        return h, first

    def test_offline_and_unreachable_unsubscribed_when_back(self) -> None:
        """Dropped as the speaker goes offline, a SUBSCRIBE granted then whose UNSUBSCRIBE
        cannot reach the speaker leaves its SID with the speaker supervisor: UNSUBSCRIBEd as
        soon as the speaker answers again."""
        h, first = self.offline_then_back(ConnectionRefusedError())
        self.assertEqual(h.unsubscriber.sent, [(HOST, 1400, first.event_path, first.sid)])

    def test_offline_and_refused_not_sent_again(self) -> None:
        """An UNSUBSCRIBE of an abandoned SID that the speaker answers with an error is not
        sent again (as a replaced SID's): the speaker forgets the SID at its expiry."""
        with capturedLogs() as events:
            h, first = self.offline_then_back(HttpError(500))
        self.assertEqual(h.unsubscriber.sent, [])
        said = [
            (e["log_level"], formatEvent(e))
            for e in events
            if e.get("log_format", "").startswith("UNSUBSCRIBE of abandoned")
        ]
        [(level, line)] = said
        self.assertEqual(level, LogLevel.debug)
        self.assertRegex(line, rf"^UNSUBSCRIBE of abandoned {first.sid} at .*{UID}.*: HTTP 500$")

    def test_stop_bounds_an_earlier_abandoned_subscribe(self) -> None:
        """A stop while an abandoned SUBSCRIBE still waits for its answer fires within
        shutdown_timeout, that SUBSCRIBE cancelled then."""
        h, household, first = self.make()
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        self.replaced(h, first)
        stopped = household.stopService()
        self.assertNoResult(stopped)
        h.clock.advance(2.0)
        self.successResultOf(stopped)
        self.assertTrue(first.pending[0].called)
        self.assertEqual(h.clock.getDelayedCalls(), [])


class HouseholdTests(SynchronousTestCase):
    def household(self, h: Harness, follow: bool = True) -> HouseholdSupervisor:
        household = HouseholdSupervisor(h.ctx, [Device(HOST)], follow_household=follow)
        household.startService()
        return household

    def test_duplicate_uid_ignored(self) -> None:
        """Two configured hosts that are the same speaker are supervised once."""
        h = Harness()
        h.household.uids["127.0.0.3"] = UID
        household = HouseholdSupervisor(h.ctx, [Device(HOST), Device("127.0.0.3")])
        household.startService()
        self.assertEqual(len(household.speakers()), 1)
        self.assertEqual(len(h.gena.made), 1)
        self.assertIs(household.speaker(UID), household.speakers()[0])

    def test_members_followed_invisible_ones_not(self) -> None:
        """Visible members of the household's topology are followed (identified, subscribed);
        invisible members and bridges are not; a member that becomes invisible, or leaves the
        household, is dropped with speaker.removed."""
        h = Harness()
        household = self.household(h)
        other, hidden = "RINCON_12700030001400", "RINCON_12700040001400"
        h.household.uids.update({"127.0.0.3": other, "127.0.0.4": hidden})
        first = zgs((UID, HOST, ""), (other, "127.0.0.3", ""), (hidden, "127.0.0.4", "invisible"))
        household.on_topology(None, first)
        self.assertEqual({s.uid for s in household.speakers()}, {UID, other})
        self.assertTrue(household.speaker(other).online)  # type: ignore[union-attr]
        self.assertEqual(len(h.gena.made), 2)
        second = zgs((UID, HOST, ""), (other, "127.0.0.3", "invisible"))
        household.on_topology(first, second)
        self.assertEqual([s.uid for s in household.speakers()], [UID])
        self.assertEqual(
            h.processor.of("speaker.removed")[0][1]["reason"][:23], "now an invisible member"
        )
        household.on_topology(second, zgs((UID, HOST, ""), (other, "127.0.0.3", "")))
        self.assertEqual(len(household.speakers()), 2)
        household.on_topology(first, zgs((UID, HOST, "")))
        self.assertEqual([s.uid for s in household.speakers()], [UID])
        self.assertEqual(
            h.processor.of("speaker.removed")[-1][1]["reason"], "left household Sonos_test"
        )

    def test_configured_speaker_never_dropped(self) -> None:
        """A configured speaker stays followed even when the topology no longer lists it."""
        h = Harness()
        household = self.household(h)
        household.on_topology(zgs((UID, HOST, "")), zgs(("RINCON_X", "127.0.0.9", "")))
        self.assertIn(UID, {s.uid for s in household.speakers()})

    def test_listed_speakers_only(self) -> None:
        """With follow_household false, the topology adds nobody."""
        h = Harness()
        household = self.household(h, follow=False)
        household.on_topology(
            None, zgs((UID, HOST, ""), ("RINCON_12700030001400", "127.0.0.3", ""))
        )
        self.assertEqual(len(household.speakers()), 1)

    def test_vanished_member_followed_asleep(self) -> None:
        """A member already asleep when the daemon learns of it is in the state as asleep,
        contacted when the topology lists it again."""
        h = Harness()
        household = self.household(h)
        portable = "RINCON_12700080001400"
        h.household.uids["127.0.0.8"] = portable
        household.on_topology(None, zgs((UID, HOST, ""), vanished=((portable, "sleeping"),)))
        speaker = household.speaker(portable)
        assert speaker is not None
        self.assertEqual(speaker.availability, "asleep")
        self.assertEqual(h.household.described, [(HOST, 1400, 10.0)])
        household.on_topology(None, zgs((UID, HOST, ""), (portable, "127.0.0.8", "")))
        self.assertTrue(speaker.online)

    def test_followable(self) -> None:
        """Visible members get supervisors; invisible ones do not."""
        visible, invisible = zgs(("RINCON_A", HOST, ""), ("RINCON_B", HOST, "invisible")).members()
        self.assertEqual((followable(visible), followable(invisible)), (True, False))

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
        household = self.household(h)
        household.on_sighting(Sighting(uid=UID, host=HOST, boot_seq=5))
        household.on_sighting(Sighting(uid=UID, host=HOST, boot_seq=6))
        self.assertEqual(h.gena.count("subscribe"), 2)
        self.assertEqual(h.processor.of("subscription.lost")[0][1]["reason"], "reboot")

    def test_the_boot_seq_ssdp_showed_before_identification_is_known(self) -> None:
        """The BootSeq of the sighting that found a speaker, and of those that came while it
        was being identified, is its known one once identification shows the same uid: a
        higher one later is a reboot, with no topology to give the BootSeq (docs/supervisor.md,
        SSDP discovery). A sighting of another uid at that host gives it nothing."""
        found = "RINCON_127004001400"
        for held in (False, True):
            h = Harness()
            h.household.uids["127.0.0.4"] = found
            h.household.hold = held
            household = HouseholdSupervisor(h.ctx)
            household.startService()
            household.on_sighting(Sighting(uid=found, host="127.0.0.4", boot_seq=3))
            if held:
                household.on_sighting(Sighting(uid=found, host="127.0.0.4", boot_seq=4))
                household.on_sighting(Sighting(uid="RINCON_FORGED", host="127.0.0.4", boot_seq=9))
                h.household.hold = False
                [pending] = h.household.pending
                pending.callback(Description(found, "Den", household_id="Sonos_test"))
            [speaker] = household.speakers()
            self.assertEqual((speaker.uid, speaker.boot_seq), (found, None if held else 3))
            if held:
                # The forged sighting came last: it gave nothing; the real one is taken next.
                household.on_sighting(Sighting(uid=found, host="127.0.0.4", boot_seq=4))
            household.on_sighting(Sighting(uid=found, host="127.0.0.4", boot_seq=5))
            self.assertEqual(h.gena.count("subscribe"), 2, held)
            self.assertEqual(h.processor.of("subscription.lost")[0][1]["reason"], "reboot")

    def test_one_reboot_shown_by_many_signs_is_said_once_per_service(self) -> None:
        """A reboot shown by the BootSeq in two speakers' topology events and then by an SSDP
        answer publishes one subscription.lost (reboot) and one subscription.restored per
        service, and subscribes each service afresh once (docs/supervisor.md, Messages)."""
        h = Harness(services=ALL_SERVICES)
        household = self.household(h)
        [speaker] = household.speakers()
        for service in ALL_SERVICES:
            h.gena.current(service).notify(0)
        speaker.observe_boot_seq(5, "topology")
        subscribes = h.gena.count("subscribe")
        speaker.observe_boot_seq(6, "topology")
        speaker.observe_boot_seq(6, "topology")
        household.on_sighting(Sighting(uid=UID, host=HOST, boot_seq=6))
        h.clock.advance(0)
        self.assertEqual(h.gena.count("subscribe"), subscribes + len(ALL_SERVICES))
        lost = h.processor.of("subscription.lost")
        self.assertEqual(sorted(m[3] for m in lost), sorted(ALL_SERVICES))
        self.assertEqual({m[1]["reason"] for m in lost}, {"reboot"})
        restored = h.processor.of("subscription.restored")
        self.assertEqual(sorted(m[3] for m in restored), sorted(ALL_SERVICES))

    def test_topology_address_change_followed(self) -> None:
        """A new Location host for the uid moves the speaker, resubscribes there and
        UNSUBSCRIBEs the old SID at the new address."""
        h = Harness()
        h.household.uids["127.0.0.9"] = UID
        household = self.household(h)
        old = h.gena.current("RenderingControl").sid
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        speaker = household.speakers()[0]
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, "127.0.0.9")
        self.assertEqual(h.gena.current("RenderingControl").device.ip_address, "127.0.0.9")
        self.assertEqual(h.processor.of("subscription.lost")[0][1]["reason"], "address changed")
        self.assertEqual(h.gena.count("subscribe"), 2)
        h.clock.advance(0)
        self.assertEqual(h.unsubscriber.sent, [("127.0.0.9", 1400, "/RenderingControl/Event", old)])

    def test_address_of_other_speaker_not_followed(self) -> None:
        """A Location whose speaker has another uid is not followed."""
        h = Harness()
        household = self.household(h)
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        speaker = household.speakers()[0]
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, HOST)
        self.assertEqual(h.gena.count("subscribe"), 1)

    def test_forged_sightings_start_one_identification_at_a_time(self) -> None:
        """A flood of sightings (forged SSDP) putting a followed speaker at a hundred other
        addresses starts one identification at a time (docs/security.md, SSDP); the speaker
        stays where it is when the address answers with another uid, and a later sighting is
        checked again."""
        h = Harness()
        household = self.household(h)
        speaker = household.speakers()[0]
        described = len(h.household.described)
        h.household.hold = True
        for n in range(10, 110):
            household.on_sighting(Sighting(uid=UID, host=f"127.0.0.{n}"))
        self.assertEqual(h.household.described[described:], [("127.0.0.10", 1400, 10.0)])
        [pending] = h.household.pending
        h.household.hold = False
        pending.callback(Description("RINCON_OTHER01400", "Intruder", household_id="Sonos_test"))
        assert speaker.ref is not None
        self.assertEqual(speaker.ref.host, HOST)
        household.on_sighting(Sighting(uid=UID, host="127.0.0.200"))
        self.assertEqual(len(h.household.described), described + 2)
        self.assertEqual(speaker.ref.host, HOST)

    def test_offline_speaker_moved_then_pinged(self) -> None:
        """An offline speaker seen at a new address is moved there and pinged at once."""
        h = Harness()
        h.household.uids["127.0.0.9"] = UID
        household = self.household(h)
        speaker = household.speakers()[0]
        h.household.devices[HOST].down = ConnectionRefusedError()
        speaker.check_now("test")
        self.assertFalse(speaker.online)
        household.on_topology(None, zgs((UID, "127.0.0.9", "")))
        self.assertTrue(speaker.online)
        self.assertEqual(h.household.devices["127.0.0.9"].pings, 1)
        self.assertEqual(h.gena.current("RenderingControl").device.ip_address, "127.0.0.9")

    def test_byebye_pings(self) -> None:
        """An ssdp:byebye makes the speaker be pinged at once, its X-RINCON-REASON in the
        ping's log line; no answer means offline."""
        h = Harness()
        household = self.household(h)
        h.household.devices[HOST].down = ConnectionRefusedError()
        with capturedLogs() as events:
            household.on_byebye(UID, "powered off")
            household.on_byebye("RINCON_UNKNOWN", None)
        [pinging] = log_lines(events, "pinging {speaker}")
        self.assertEqual(pinging["why"], "ssdp:byebye (powered off)")
        self.assertFalse(household.speakers()[0].online)
        self.assertEqual(
            [m[1]["reason"] for m in h.processor.of("speaker.offline")], ["connection refused"]
        )

    def test_byebye_going_to_sleep_is_asleep(self) -> None:
        """An ssdp:byebye whose reason is sleeping makes the speaker asleep at once, without
        a ping (so never offline on the way)."""
        h = Harness()
        household = self.household(h)
        household.on_byebye(UID, "sleeping")
        (speaker,) = household.speakers()
        self.assertEqual((speaker.availability, h.household.devices[HOST].pings), ("asleep", 0))
        self.assertEqual(h.processor.of("speaker.offline"), [])

    def test_status_and_health_reasons(self) -> None:
        """status() describes every speaker (its availability) and service; the health
        reasons read from it name a service that polls."""
        h = Harness()
        household = self.household(h)
        (status,) = household.status()["speakers"]
        # docs/supervisor.md, Shape: per speaker its uid, name, host, household, whether
        # configured or learnt, availability and reason, BootSeq, superseded SIDs waiting.
        named = ("uid", "name", "host", "household", "configured", "availability", "reason")
        self.assertLessEqual({*named, "boot_seq", "superseded_sids", "services"}, set(status))
        self.assertEqual(
            [status[key] for key in named],
            [UID, "Kitchen", HOST, "Sonos_test", True, "online", "identified"],
        )
        self.assertEqual((status["uid"], status["availability"]), (UID, "online"))
        self.assertTrue(status["online"])
        self.assertEqual(status["services"]["RenderingControl"]["state"], "subscribed")
        self.assertEqual(health_reasons(household.status()), ())
        h.clock.advance(5.0)
        self.assertEqual(
            health_reasons(household.status()),
            (
                "Kitchen (127.0.0.2): RenderingControl: no NOTIFY arrives (polling every few "
                "seconds instead)",
            ),
        )


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
            follow_household=False,
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
        self.assertFalse(household.follow_household)


class SubscriptionFactoryTests(SynchronousTestCase):
    def test_listener_holds_an_initial_notify_for_every_subscribe_in_flight(self) -> None:
        """The listener's bound on held unknown-SID NOTIFYs covers its per-SUBSCRIBE share
        for every SUBSCRIBE the household may have in flight at once."""
        from sonosd.gena.listener import HELD_PER_SUBSCRIBE, MAX_HELD

        self.assertEqual(MAX_HELD, HELD_PER_SUBSCRIBE * GENA_CONCURRENCY)

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
        self.assertEqual(first.event_path, "/MediaRenderer/RenderingControl/Event")
        given = object()
        third: Any = gena_subscriptions(reactor, listener, request_timeout=5.0, http=given)(
            SoCo("127.0.0.2"), "Queue"
        )
        self.assertIs(third._http, given)

    def test_at_most_64_gena_requests_in_flight(self) -> None:
        """The daemon's subscriptions have at most 64 GENA requests in flight at once: of 66
        SUBSCRIBEs to speakers that do not answer, 64 go out, and one more each time a
        request ends."""
        from soco import SoCo
        from treq.client import HTTPClient
        from twisted.internet.defer import Deferred
        from twisted.internet.testing import MemoryReactorClock
        from twisted.web.iweb import IAgent
        from zope.interface import implementer

        from tests.gena.test_subscription import RecordingListener

        @implementer(IAgent)
        class SilentAgent:
            """Sends nothing anywhere: each request waits for the test to end it."""

            def __init__(self) -> None:
                self.requests: list[Deferred[Any]] = []

            def request(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
                self.requests.append(Deferred())
                return self.requests[-1]

        reactor = MemoryReactorClock()
        agent = SilentAgent()
        make = gena_subscriptions(
            reactor, RecordingListener(), request_timeout=600.0, http=HTTPClient(agent)
        )
        pending = [make(SoCo(f"127.0.1.{n}"), "RenderingControl").subscribe() for n in range(1, 67)]
        for d in pending:
            d.addErrback(lambda _: None)
        self.assertEqual(len(agent.requests), 64)
        agent.requests[0].errback(ConnectionRefusedError())
        self.assertEqual(len(agent.requests), 65)
        agent.requests[1].errback(ConnectionRefusedError())
        self.assertEqual(len(agent.requests), 66)
        for d in pending:
            d.cancel()


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

    def test_services_resyncing_or_not_subscribed_are_not_checked(self) -> None:
        """Only a service whose state comes from its NOTIFYs now is checked: not one with a
        resync under way, nor one backing off before its next SUBSCRIBE (docs/supervisor.md,
        the consistency check)."""
        h = Harness(
            services=("RenderingControl", "AVTransport"),
            check_interval=20.0,
            backoff_initial=60.0,
            backoff_max=60.0,
        )
        speaker = started(h)
        for service in ("RenderingControl", "AVTransport"):
            h.gena.current(service).notify(0)
        h.reader.hang = True
        h.gena.current("RenderingControl").notify(2)
        self.assertEqual(speaker.services["RenderingControl"].gaps, 1)
        h.clock.advance(20)
        self.assertEqual(h.reader.checks, [["AVTransport"]])
        h.reader.hang = False
        h.clock.advance(15)
        h.gena.answers["renew"] = HttpError(503)
        speaker.services["AVTransport"].renew_now()
        self.assertEqual(speaker.services["AVTransport"].state, ServiceState.RETRYING)
        h.clock.advance(5)
        self.assertEqual(speaker.services["AVTransport"].state, ServiceState.RETRYING)
        self.assertEqual(h.reader.checks[-1], ["RenderingControl"])

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

    def avtransport(self, **known: str) -> tuple[Harness, SpeakerSupervisor]:
        h, speaker = self.make()
        h.processor.known["AVTransport"] = {"transport_state": "STOPPED", **known}
        return h, speaker

    def test_lost_track_change_is_a_gap(self) -> None:
        """Playing the queue, a track URI differing after the confirmation is a lost NOTIFY:
        events.gap names it and AVTransport is resynced."""
        queue = "x-rincon-queue:RINCON_1#0"
        h, speaker = self.avtransport(av_transport_uri=queue, current_track_uri="a")
        read = {"transport_state": "STOPPED", "current_track_uri": "b"}
        h.reader.speaker = {"AVTransport": read}
        h.clock.advance(60)
        h.clock.advance(CONFIRM_DELAY)
        [(_, fields, _, service)] = h.processor.of("events.gap")
        self.assertEqual(service, "AVTransport")
        self.assertEqual(
            fields["reason"], "consistency check: current_track_uri: a here, b on the speaker"
        )
        self.assertEqual([service for _, service in h.reader.reads], ["AVTransport"])
        self.assertEqual(speaker.services["AVTransport"].gaps, 1)

    def test_lost_play_mode_change_is_a_gap(self) -> None:
        """A play mode differing after the confirmation is a lost NOTIFY named in events.gap."""
        h, _ = self.avtransport(current_play_mode="NORMAL")
        h.reader.speaker = {"AVTransport": {"current_play_mode": "SHUFFLE"}}
        h.clock.advance(60)
        h.clock.advance(CONFIRM_DELAY)
        [(_, fields, _, _)] = h.processor.of("events.gap")
        self.assertIn("current_play_mode: NORMAL here, SHUFFLE on the speaker", fields["reason"])

    def test_group_member_and_stream_differ_in_form_only(self) -> None:
        """A member reading its coordinator's play mode, or a radio stream whose track URI
        moved on, is no gap: those values are not compared."""
        member = "x-rincon:RINCON_1"
        radio = "x-sonosapi-stream:s1?sid=254"
        for known, read in (
            (
                {"av_transport_uri": member, "current_track_uri": member},
                {"current_track_uri": member, "current_play_mode": "SHUFFLE"},
            ),
            ({"av_transport_uri": radio, "current_track_uri": "a"}, {"current_track_uri": "b"}),
        ):
            h, speaker = self.avtransport(current_play_mode="NORMAL", **known)
            h.reader.speaker = {"AVTransport": {"transport_state": "STOPPED", **read}}
            h.clock.advance(60)
            h.clock.advance(CONFIRM_DELAY)
            self.assertEqual(h.processor.of("events.gap"), [])
            self.assertEqual((len(h.reader.checks), speaker.checks), (1, 1))

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
