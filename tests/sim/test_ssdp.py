"""Tests for sonosd.sim.ssdp: searches, answers, announcements; SoCo and sonosd find it."""

from __future__ import annotations

import random
from typing import Any

import soco
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.config import SimulateConfig
from sonosd.household.discovery import Sighting, SsdpDiscovery, parse_ssdp
from sonosd.sim.household import Household
from sonosd.sim.service import HouseholdService
from sonosd.sim.ssdp import (
    MEDIA_RENDERER,
    SSDP_GROUP,
    ZONE_PLAYER,
    Search,
    SsdpResponder,
    advert_of,
    matching_targets,
    notify_alive,
    notify_byebye,
    parse_msearch,
    search_response,
)
from sonosd.sim.tap import Options
from tests.conftest import free_loopback_base
from tests.daemon_helpers import reactor, until
from tests.paths import SAMPLES as ALL_SAMPLES
from tests.sim_fakes import FakePresence, RecordingManager

SAMPLES = ALL_SAMPLES / "ssdp"
SEARCHER = ("127.0.0.1", 40000)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def header_names(datagram: bytes) -> list[str]:
    """The header names of a datagram, in order (the start line left out)."""
    lines = datagram.decode().replace("\r\n", "\n").split("\n")[1:]
    return [line.partition(":")[0] for line in lines if line.strip()]


def headers_of(datagram: bytes) -> dict[str, str]:
    lines = datagram.decode().split("\r\n")[1:]
    pairs = [line.partition(":") for line in lines if line]
    return {name: value.strip() for name, _, value in pairs}


class FakeUdpPort:
    """A UDP port that records what it is told and sends."""

    def __init__(
        self, protocol: DatagramProtocol, port: int, interface: str, multiple: bool
    ) -> None:
        self.protocol = protocol
        self.port = port or 50000
        self.interface = interface
        self.multiple = multiple
        self.sent: list[tuple[bytes, Any]] = []
        self.groups: list[tuple[str, str]] = []
        self.ttl: int | None = None
        self.loopback: int | None = None
        self.outgoing: str | None = None
        self.closed = False

    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", self.interface, self.port)

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def joinGroup(self, group: str, interface: str = "") -> Deferred[None]:
        self.groups.append((group, interface))
        return succeed(None)

    def setTTL(self, ttl: int) -> None:
        self.ttl = ttl

    def setLoopbackMode(self, mode: int) -> None:
        self.loopback = mode

    def setOutgoingInterface(self, interface: str) -> Deferred[int]:
        self.outgoing = interface
        return succeed(1)

    def stopListening(self) -> None:
        self.closed = True


class FakeReactor(MemoryReactorClock):
    """A memory reactor with a clock that also hands out recording multicast ports."""

    def __init__(self) -> None:
        super().__init__()
        self.multicast: list[FakeUdpPort] = []

    def listenMulticast(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        maxPacketSize: int = 8192,
        listenMultiple: bool = False,
    ) -> FakeUdpPort:
        fake = FakeUdpPort(protocol, port, interface, listenMultiple)
        self.multicast.append(fake)
        return fake

    def socket_of(self, address: str) -> FakeUdpPort:
        """The open speaker socket bound to ``address``."""
        return next(p for p in self.multicast if p.interface == address and not p.closed)


def msearch(target: str = ZONE_PLAYER, mx: int = 1) -> bytes:
    return (
        f'M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: "ssdp:discover"\r\n'
        f"MX: {mx}\r\nST: {target}\r\n\r\n"
    ).encode()


def started(speakers: int = 3, announce: bool = True) -> tuple[FakeReactor, SsdpResponder]:
    """A running responder for a seeded household on 127.9.9.2.., with a fake reactor."""
    fake = FakeReactor()
    household = Household(fake, speakers=speakers, base_address="127.9.9.2", seed=7)
    responder = SsdpResponder(fake, household, port=1900, announce=announce, rng=random.Random(3))
    responder.startService()
    return fake, responder


class ParseTests(SynchronousTestCase):
    def test_soco_sample(self) -> None:
        """SoCo's own M-SEARCH (LF endings, no final blank line) is understood."""
        self.assertEqual(
            parse_msearch(sample("msearch_request_as_sent_by_soco.txt")),
            Search(target=ZONE_PLAYER, mx=1),
        )

    def test_lenient(self) -> None:
        """Header case, CRLF and an unquoted MAN do not matter."""
        data = b"M-SEARCH * HTTP/1.1\r\nman: ssdp:discover\r\nst: ssdp:all\r\nmx: 3\r\n\r\n"
        self.assertEqual(parse_msearch(data), Search(target="ssdp:all", mx=3))

    def test_mx_bounds(self) -> None:
        """MX is capped at 5; a missing or bad MX means answer at once."""
        self.assertEqual(parse_msearch(msearch(mx=120)), Search(ZONE_PLAYER, 5))
        data = b'M-SEARCH * HTTP/1.1\nMAN: "ssdp:discover"\nST: upnp:rootdevice\nMX: soon\n'
        self.assertEqual(parse_msearch(data), Search("upnp:rootdevice", 0))

    def test_not_searches(self) -> None:
        """Answers, NOTIFYs, searches without MAN or ST, and junk are not searches."""
        self.assertIsNone(parse_msearch(sample("notify_alive_rootdevice_fw85.0_mimic.txt")))
        self.assertIsNone(parse_msearch(sample("msearch_response_ZonePlayer_fw85.0.txt")))
        self.assertIsNone(parse_msearch(b"M-SEARCH * HTTP/1.1\nST: ssdp:all\nMX: 1\n"))
        self.assertIsNone(parse_msearch(b'M-SEARCH * HTTP/1.1\nMAN: "ssdp:discover"\n'))
        self.assertIsNone(parse_msearch(b""))

    @given(st.binary(max_size=400))
    def test_never_raises(self, data: bytes) -> None:
        """Any datagram gives a search or None, never an exception."""
        result = parse_msearch(data)
        self.assertTrue(result is None or isinstance(result, Search))


class TargetTests(SynchronousTestCase):
    uid = "RINCON_000E58A0123401400"

    def test_zone_player(self) -> None:
        """A ZonePlayer search gets one answer with the ZonePlayer USN."""
        self.assertEqual(
            matching_targets(ZONE_PLAYER, self.uid),
            [(ZONE_PLAYER, f"uuid:{self.uid}::{ZONE_PLAYER}")],
        )

    def test_uuids_and_embedded_devices(self) -> None:
        """uuid:<udn> (root or embedded) and the embedded device types each get their answer."""
        self.assertEqual(
            matching_targets(f"uuid:{self.uid}", self.uid), [(f"uuid:{self.uid}",) * 2]
        )
        self.assertEqual(
            matching_targets(MEDIA_RENDERER.upper(), self.uid),
            [(MEDIA_RENDERER, f"uuid:{self.uid}_MR::{MEDIA_RENDERER}")],
        )
        self.assertEqual(len(matching_targets(f"uuid:{self.uid}_MS", self.uid)), 1)
        self.assertEqual(
            matching_targets("upnp:rootdevice", self.uid),
            [("upnp:rootdevice", f"uuid:{self.uid}::upnp:rootdevice")],
        )

    def test_all_and_others(self) -> None:
        """ssdp:all gets every device; other targets and other uids get nothing."""
        self.assertEqual(len(matching_targets("ssdp:all", self.uid)), 7)
        self.assertEqual(matching_targets("urn:schemas-upnp-org:device:Printer:1", self.uid), [])
        self.assertEqual(matching_targets("uuid:RINCON_OTHER01400", self.uid), [])


class FormatTests(SynchronousTestCase):
    def setUp(self) -> None:
        household = Household(FakeReactor(), speakers=1, base_address="127.9.9.2", seed=7)
        self.speaker = household.speakers[0]
        self.advert = advert_of(self.speaker)

    def test_response_like_firmware(self) -> None:
        """The answer carries the fw 85 headers in their order, and stays under 1024 bytes."""
        usn = f"uuid:{self.speaker.uid}::{ZONE_PLAYER}"
        data = search_response(self.advert, ZONE_PLAYER, usn, 1777450925.0)
        real = header_names(sample("msearch_response_ZonePlayer_fw85.0.txt"))
        ours = header_names(data)
        self.assertEqual(ours, [name for name in real if name in ours])
        for name in ("LOCATION", "SERVER", "ST", "USN", "X-RINCON-HOUSEHOLD", "X-RINCON-BOOTSEQ"):
            self.assertIn(name, ours)
        self.assertIn(b"CACHE-CONTROL: max-age = 1800\r\nDATE: Wed, 29 Apr 2026 08:22:05 GMT", data)
        self.assertIn(b"Sonos", data)
        self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\n"))
        self.assertLess(len(data), 1024)

    def test_response_parses_in_sonosd(self) -> None:
        """sonosd's own parser reads uid, host, BootSeq and household from the answer."""
        usn = f"uuid:{self.speaker.uid}::{ZONE_PLAYER}"
        message = parse_ssdp(search_response(self.advert, ZONE_PLAYER, usn, 0.0))
        assert message is not None
        self.assertEqual(
            (message.kind, message.uid, message.host, message.boot_seq, message.household),
            (
                "response",
                self.speaker.uid,
                "127.9.9.2",
                self.speaker.boot_seq,
                self.speaker.household.household_id,
            ),
        )

    def test_announcements_like_firmware(self) -> None:
        """alive follows the captured NOTIFY's header order; byebye says why."""
        alive = notify_alive(self.advert, "upnp:rootdevice", "uuid:x", "239.255.255.250:1900")
        real = header_names(sample("notify_alive_rootdevice_fw85.0_mimic.txt"))
        ours = header_names(alive)
        self.assertEqual(ours, [name for name in real if name in ours])
        self.assertEqual(len(ours), 12)
        bye = notify_byebye(self.advert, "upnp:rootdevice", "uuid:x", "h", "powered off")
        self.assertEqual(headers_of(bye)["NTS"], "ssdp:byebye")
        self.assertEqual(headers_of(bye)["X-RINCON-REASON"], "powered off")


class ResponderTests(SynchronousTestCase):
    def test_listens_on_loopback_only(self) -> None:
        """The group socket is bound to the group (shared), joined on 127.0.0.1 only."""
        fake, responder = started()
        group = fake.multicast[0]
        self.assertEqual((group.interface, group.port, group.multiple), (SSDP_GROUP, 1900, True))
        self.assertEqual(group.groups, [(SSDP_GROUP, "127.0.0.1")])
        self.assertEqual(responder.port, 1900)
        self.assertRaises(
            ValueError, SsdpResponder, fake, responder.household, interface="10.0.0.2"
        )
        self.assertRaises(ValueError, SsdpResponder, fake, responder.household, interface="lo")

    def test_alive_at_start_from_each_speaker(self) -> None:
        """At start every speaker multicasts 7 alives from its own address, TTL 1, on loopback."""
        fake, responder = started()
        for speaker in responder.household.speakers:
            port = fake.socket_of(speaker.address)
            self.assertEqual((port.ttl, port.loopback, port.outgoing), (1, 1, "127.0.0.1"))
            self.assertEqual({addr for _, addr in port.sent}, {(SSDP_GROUP, 1900)})
            self.assertEqual(len(port.sent), 7)
            alive = headers_of(port.sent[0][0])
            self.assertEqual(alive["NTS"], "ssdp:alive")
            self.assertEqual(alive["X-RINCON-BOOTSEQ"], str(speaker.boot_seq))

    def test_answers_after_random_delay_from_own_address(self) -> None:
        """Each speaker answers once, within MX seconds, by unicast from its own socket."""
        fake, responder = started(announce=False)
        fake.multicast[0].protocol.datagramReceived(msearch(mx=2), SEARCHER)
        speakers = responder.household.speakers
        self.assertEqual(len(fake.multicast), 1)
        fake.advance(2)
        for speaker in speakers:
            ((answer, addr),) = fake.socket_of(speaker.address).sent
            self.assertEqual(addr, SEARCHER)
            self.assertEqual(headers_of(answer)["USN"], f"uuid:{speaker.uid}::{ZONE_PLAYER}")
        self.assertEqual((responder.searches, responder.answers), (1, 3))

    def test_delays_are_spread(self) -> None:
        """The seeded delays differ per speaker and none exceeds MX."""
        fake, _ = started(speakers=5, announce=False)
        fake.multicast[0].protocol.datagramReceived(msearch(mx=3), SEARCHER)
        delays = sorted(call.getTime() for call in fake.getDelayedCalls())
        self.assertEqual(len(set(delays)), 5)
        self.assertTrue(all(0 <= delay <= 3 for delay in delays))

    def test_ignores_foreign_searches(self) -> None:
        """Searches from off loopback, for other targets, or that are not searches get nothing."""
        fake, responder = started(announce=False)
        protocol = fake.multicast[0].protocol
        protocol.datagramReceived(msearch(), ("192.168.1.5", 1900))
        protocol.datagramReceived(msearch("urn:schemas-upnp-org:device:Printer:1"), SEARCHER)
        protocol.datagramReceived(sample("notify_alive_rootdevice_fw85.0_mimic.txt"), SEARCHER)
        fake.advance(5)
        self.assertEqual(fake.getDelayedCalls(), [])
        self.assertEqual(responder.answers, 0)

    def test_unreachable_speakers_stay_silent(self) -> None:
        """A speaker that is down when its answer is due does not answer."""
        fake, responder = started(announce=False)
        first = responder.household.speakers[0]
        first.network = FakePresence()
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        first.go_offline("hang")
        fake.advance(0)
        self.assertEqual(responder.answers, 2)

    def test_reboot_offline_online_move(self) -> None:
        """Byebye when going offline, alive on return, after a reboot (BootSeq+1) and a move."""
        fake, responder = started()
        speaker = responder.household.speakers[1]
        speaker.network = FakePresence()
        port = fake.socket_of(speaker.address)
        port.sent.clear()

        speaker.go_offline("refuse")
        self.assertEqual(
            {(headers_of(d)["NTS"], headers_of(d)["X-RINCON-REASON"]) for d, _ in port.sent},
            {("ssdp:byebye", "powered off")},
        )
        port.sent.clear()
        speaker.come_online()
        self.assertEqual({headers_of(d)["NTS"] for d, _ in port.sent}, {"ssdp:alive"})

        port.sent.clear()
        before = speaker.boot_seq
        speaker.reboot(downtime=1)
        self.assertEqual(port.sent, [])
        fake.advance(1)
        self.assertEqual(headers_of(port.sent[0][0])["X-RINCON-BOOTSEQ"], str(before + 1))

        speaker.change_address("127.9.9.50")
        self.assertTrue(port.closed)
        moved = fake.socket_of("127.9.9.50")
        self.assertIn("127.9.9.50:1400", headers_of(moved.sent[0][0])["LOCATION"])

    def test_send_errors_are_logged(self) -> None:
        """A datagram the system refuses is logged and not counted as an answer."""
        fake, responder = started(speakers=1)
        port = fake.socket_of(responder.household.speakers[0].address)

        def refuse(data: bytes, addr: Any) -> None:
            raise OSError("network unreachable")

        port.write = refuse  # type: ignore[method-assign]
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        fake.advance(0)
        self.assertEqual(responder.answers, 0)

    def test_stop_cancels_and_closes(self) -> None:
        """Stopping cancels due answers, closes every socket and stops announcing."""
        fake, responder = started()
        fake.multicast[0].protocol.datagramReceived(msearch(mx=1), SEARCHER)
        responder.stopService()
        self.assertEqual(fake.getDelayedCalls(), [])
        self.assertTrue(all(port.closed for port in fake.multicast))
        self.assertIsNone(responder.household.announcer)
        responder.household.speakers[0].come_online()
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        self.assertEqual(fake.getDelayedCalls(), [])


class ModeTests(SynchronousTestCase):
    def test_upnp_off_keeps_answering_unless_silent(self) -> None:
        """With UPnP off SSDP still answers by default; ``upnp_off_ssdp: silent`` stops it."""
        fake, responder = started(announce=False)
        household = responder.household
        household.set_modes(upnp=False)
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        fake.advance(0)
        self.assertEqual(responder.answers, 3)
        household.set_modes(upnp_off_ssdp="silent")
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        fake.advance(0)
        self.assertEqual(responder.answers, 3)

    def test_upnp_back_on_announces(self) -> None:
        """Switching UPnP back on multicasts ssdp:alive for every speaker."""
        fake, responder = started()
        household = responder.household
        household.set_modes(upnp=False, upnp_off_ssdp="silent")
        port = fake.socket_of(household.speakers[0].address)
        port.sent.clear()
        household.set_modes(upnp=True)
        self.assertEqual({headers_of(d)["NTS"] for d, _ in port.sent}, {"ssdp:alive"})

    def test_sleeping_portable_says_byebye_sleeping(self) -> None:
        """A portable that goes to sleep multicasts byebye with reason ``sleeping``."""
        fake = FakeReactor()
        household = Household(fake, speakers=2, base_address="127.9.9.2", seed=7, models=("S27",))
        responder = SsdpResponder(fake, household, port=1900, rng=random.Random(3))
        responder.startService()
        roam = household.speakers[0]
        roam.network = FakePresence()
        port = fake.socket_of(roam.address)
        port.sent.clear()
        roam.sleep()
        self.assertEqual({headers_of(d)["X-RINCON-REASON"] for d, _ in port.sent}, {"sleeping"})

    def test_one_responder_for_several_households(self) -> None:
        """Two households: one responder answers for all speakers, each with its household."""
        fake = FakeReactor()
        config = SimulateConfig(speakers=4, households=2, base_address="127.9.9.2")
        service = HouseholdService(fake, config, manager_factory=RecordingManager, ssdp_port=1901)
        service.startService()
        assert service.ssdp is not None
        self.assertEqual(len([p for p in fake.multicast if p.groups]), 1)
        fake.multicast[0].protocol.datagramReceived(msearch(mx=0), SEARCHER)
        fake.advance(0)
        self.assertEqual(service.ssdp.answers, 4)
        for household in service.households:
            self.assertIs(household.announcer, service.ssdp)
            for speaker in household.speakers:
                answer = fake.socket_of(speaker.address).sent[-1][0]
                self.assertEqual(headers_of(answer)["X-RINCON-HOUSEHOLD"], household.household_id)
        service.stopService()


class ServiceTests(SynchronousTestCase):
    def test_household_service_runs_the_responder(self) -> None:
        """HouseholdService(ssdp_port=...) starts the responder after the speakers, stops it."""
        fake = FakeReactor()
        config = SimulateConfig(speakers=2, base_address="127.9.9.2")
        service = HouseholdService(fake, config, manager_factory=RecordingManager, ssdp_port=1901)
        service.startService()
        assert service.ssdp is not None
        self.assertTrue(service.ssdp.running)
        self.assertEqual(fake.multicast[0].port, 1901)
        service.stopService()
        self.assertFalse(service.ssdp.running)
        self.assertTrue(all(port.closed for port in fake.multicast))

    def test_no_ssdp_by_default(self) -> None:
        """Without ssdp_port the household has no responder and opens no UDP socket."""
        fake = FakeReactor()
        service = HouseholdService(
            fake, SimulateConfig(speakers=1), manager_factory=RecordingManager
        )
        service.startService()
        self.assertIsNone(service.ssdp)
        self.assertEqual(fake.multicast, [])
        service.stopService()

    def test_tap_option(self) -> None:
        """twistd sonos-sim --ssdp-port takes a port number and rejects anything else."""
        options = Options()
        options.parseOptions(["--ssdp-port", "1900"])
        self.assertEqual(options.ssdp_port, 1900)
        default = Options()
        default.parseOptions([])
        self.assertIsNone(default.ssdp_port)
        with self.assertRaises(SystemExit):  # one line on stderr, exit status 1
            Options().parseOptions(["--ssdp-port", "x"])


class LoopbackTests(TestCase):
    """The responder on real sockets (loopback only), found by SoCo and by sonosd."""

    timeout = 30

    def household(self, port: int, speakers: int = 3) -> HouseholdService:
        """A running simulated household on a free loopback block, SSDP on ``port``."""
        base = free_loopback_base(port=1400, count=speakers)
        config = SimulateConfig(speakers=speakers, base_address=base)
        service = HouseholdService(reactor, config, ssdp_port=port)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def test_soco_discover(self) -> None:
        """Unmodified soco.discover(interface_addr="127.0.0.1") finds every simulated speaker.

        SoCo always searches 239.255.255.250:1900; the responder shares the port with any
        other listener (SO_REUSEADDR/SO_REUSEPORT), and asking for this household's ID makes
        SoCo ignore other households answering on the same machine.
        """
        sim = self.household(1900)
        pool = ThreadPool(minthreads=1, maxthreads=1, name="test-soco-discover")
        pool.start()
        self.addCleanup(pool.stop)
        found = await deferToThreadPool(
            reactor,
            pool,
            soco.discover,
            timeout=3,
            interface_addr="127.0.0.1",
            household_id=sim.household.household_id,
        )
        self.assertEqual({zone.ip_address for zone in found or ()}, set(sim.addresses))

    async def test_sonosd_discovery(self) -> None:
        """sonosd's discovery on a private port sees every speaker, a reboot and a byebye."""
        sim = self.household(0)
        assert sim.ssdp is not None and sim.ssdp.port is not None
        seen: list[Sighting] = []
        gone: list[tuple[str, str | None]] = []
        discovery = SsdpDiscovery(
            reactor,
            seen.append,
            lambda uid, reason: gone.append((uid, reason)),
            interfaces=("127.0.0.1",),
            target=(SSDP_GROUP, sim.ssdp.port),
            interval=0.5,
            notify_port=sim.ssdp.port,
        )
        discovery.startService()
        self.addCleanup(discovery.stopService)
        speakers = sim.household.speakers
        expected = {Sighting(s.uid, s.address, s.boot_seq) for s in speakers}
        await until(lambda: expected <= set(seen), "every speaker seen", timeout=10)

        rebooted = speakers[1]
        before = rebooted.boot_seq
        await rebooted.reboot(downtime=0.1)
        await until(
            lambda: Sighting(rebooted.uid, rebooted.address, before + 1) in seen,
            "the new BootSeq",
            timeout=10,
        )
        await speakers[2].go_offline("refuse")
        await until(lambda: (speakers[2].uid, "powered off") in gone, "a byebye", timeout=10)
