"""Tests for sonosd.household.discovery: SSDP parsing, searching, and a loopback responder."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as global_reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.household.discovery import (
    SSDP_GROUP,
    ZONE_PLAYER,
    Sighting,
    SsdpDiscovery,
    SsdpMessage,
    host_of_location,
    msearch,
    parse_ssdp,
)
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.paths import SAMPLES as ALL_SAMPLES

SAMPLES = ALL_SAMPLES / "ssdp"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def response(uid: str, host: str, boot_seq: int) -> bytes:
    """A modern ZonePlayer answer (as in samples/ssdp) for ``uid`` at ``host``."""
    lines = [
        "HTTP/1.1 200 OK",
        "CACHE-CONTROL: max-age = 1800",
        "EXT:",
        f"LOCATION: http://{host}:1400/xml/device_description.xml",
        "SERVER: Linux UPnP/1.0 Sonos/85.0-64200 (ZPS29)",
        f"ST: {ZONE_PLAYER}",
        f"USN: uuid:{uid}::{ZONE_PLAYER}",
        "X-RINCON-HOUSEHOLD: Sonos_J9hfdYcBvSBCyHLo5tPwpI9Cm3",
        f"X-RINCON-BOOTSEQ: {boot_seq}",
        f"BOOTID.UPNP.ORG: {boot_seq}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


class ParseTests(SynchronousTestCase):
    def test_alive_sample(self) -> None:
        """The captured ssdp:alive announcement gives uid, host, BootSeq and household."""
        message = parse_ssdp(sample("notify_alive_rootdevice_fw85.0_mimic.txt"))
        self.assertEqual(
            message,
            SsdpMessage(
                kind="alive",
                uid="RINCON_347E5C08876401400",
                location="http://192.168.1.120:80/xml/device_description.xml",
                host="192.168.1.120",
                boot_seq=138,
                household="Sonos_BcSIIoVehzL5k64XqHiPV2k0zT",
            ),
        )

    def test_old_response_sample_lf(self) -> None:
        """The LF-only fw 26.1 answer parses (its redacted uid still starts with RINCON_)."""
        message = parse_ssdp(sample("msearch_response_ZonePlayer_fw26.1_soco_comment.txt"))
        assert message is not None
        self.assertEqual((message.kind, message.boot_seq), ("response", 3))
        self.assertTrue(message.uid.startswith("RINCON_"))

    def test_non_rincon_usn_ignored(self) -> None:
        """An answer whose USN is not a RINCON uid (the anonymised fw 85 sample) is ignored."""
        self.assertIsNone(parse_ssdp(sample("msearch_response_ZonePlayer_fw85.0.txt")))

    def test_built_response(self) -> None:
        """A CRLF answer gives the uid, LOCATION host and BootSeq."""
        message = parse_ssdp(response("RINCON_000E58A0123401400", "10.0.0.7", 12))
        assert message is not None
        self.assertEqual(
            (message.kind, message.uid, message.host, message.boot_seq),
            ("response", "RINCON_000E58A0123401400", "10.0.0.7", 12),
        )

    def test_embedded_device_usn(self) -> None:
        """An answer for the MediaRenderer (uid_MR) names the speaker's uid."""
        data = response("RINCON_000E58A0123401400_MR", "10.0.0.7", 1)
        message = parse_ssdp(data)
        assert message is not None
        self.assertEqual(message.uid, "RINCON_000E58A0123401400")

    def test_byebye(self) -> None:
        """A byebye carries its X-RINCON-REASON."""
        data = (
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n"
            b"NTS: ssdp:byebye\r\nUSN: uuid:RINCON_347E5C08876401400::upnp:rootdevice\r\n"
            b"X-RINCON-REASON: powered off\r\n\r\n"
        )
        message = parse_ssdp(data)
        assert message is not None
        self.assertEqual((message.kind, message.reason), ("byebye", "powered off"))

    def test_searches_and_errors_ignored(self) -> None:
        """M-SEARCH requests, error answers and junk are not speakers."""
        self.assertIsNone(parse_ssdp(msearch()))
        self.assertIsNone(parse_ssdp(sample("msearch_request_as_sent_by_soco.txt")))
        self.assertIsNone(parse_ssdp(b"HTTP/1.1 500 Oops\r\nUSN: uuid:RINCON_1\r\n\r\n"))
        self.assertIsNone(parse_ssdp(b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:update\r\n\r\n"))
        self.assertIsNone(parse_ssdp(b""))

    def test_msearch_format(self) -> None:
        """The M-SEARCH names the ZonePlayer target, is CRLF-terminated, and quotes MAN."""
        request = msearch(mx=2)
        self.assertTrue(request.startswith(b"M-SEARCH * HTTP/1.1\r\n"))
        self.assertIn(b'MAN: "ssdp:discover"\r\n', request)
        self.assertIn(b"ST: urn:schemas-upnp-org:device:ZonePlayer:1\r\n", request)
        self.assertIn(b"MX: 2\r\n", request)
        self.assertTrue(request.endswith(b"\r\n\r\n"))

    @given(st.binary(max_size=600))
    def test_never_raises(self, data: bytes) -> None:
        """Any datagram parses to a message or None, never an exception."""
        result = parse_ssdp(data)
        self.assertTrue(result is None or isinstance(result, SsdpMessage))

    @given(
        uid=st.from_regex(r"RINCON_[0-9A-F]{12}01400", fullmatch=True),
        boot_seq=st.integers(0, 10**6),
        crlf=st.booleans(),
    )
    def test_round_trip(self, uid: str, boot_seq: int, crlf: bool) -> None:
        """Built answers parse back to their uid and BootSeq, with CRLF or LF."""
        data = response(uid, "10.1.2.3", boot_seq)
        if not crlf:
            data = data.replace(b"\r\n", b"\n")
        message = parse_ssdp(data)
        assert message is not None
        self.assertEqual((message.uid, message.boot_seq), (uid, boot_seq))


class FakePort:
    def __init__(self, protocol: DatagramProtocol, interface: str, multicast: bool) -> None:
        self.protocol = protocol
        self.interface = interface
        self.multicast = multicast
        self.sent: list[tuple[bytes, Any]] = []
        self.ttl: int | None = None
        self.outgoing: str | None = None
        self.groups: list[tuple[str, str]] = []
        self.closed = False

    def write(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))

    def setTTL(self, ttl: int) -> None:
        self.ttl = ttl

    def setOutgoingInterface(self, interface: str) -> None:
        self.outgoing = interface

    def joinGroup(self, group: str, interface: str) -> None:
        self.groups.append((group, interface))

    def stopListening(self) -> None:
        self.closed = True


class FakeUdpReactor(Clock):
    def __init__(self) -> None:
        super().__init__()
        self.ports: list[FakePort] = []

    def listenUDP(
        self, port: int, protocol: DatagramProtocol, interface: str = "", maxPacketSize: int = 8192
    ) -> FakePort:
        fake = FakePort(protocol, interface, multicast=False)
        self.ports.append(fake)
        return fake

    def listenMulticast(
        self,
        port: int,
        protocol: DatagramProtocol,
        interface: str = "",
        listenMultiple: bool = False,
    ) -> FakePort:
        fake = FakePort(protocol, interface, multicast=True)
        self.ports.append(fake)
        return fake


class SearchTests(SynchronousTestCase):
    def test_searches_every_interval(self) -> None:
        """Searches go out at start and every interval, `repeats` copies per socket."""
        reactor = FakeUdpReactor()
        discovery = SsdpDiscovery(
            reactor, lambda s: None, interfaces=("10.0.0.2", "10.0.1.2"), interval=60, repeats=2
        )
        discovery.startService()
        self.assertEqual(len(reactor.ports), 2)
        for port in reactor.ports:
            self.assertTrue(port.multicast)
            self.assertEqual(port.ttl, 4)
            self.assertEqual(port.outgoing, port.interface)
            self.assertEqual([addr for _, addr in port.sent], [(SSDP_GROUP, 1900)] * 2)
        reactor.advance(60)
        self.assertEqual(len(reactor.ports[0].sent), 4)
        discovery.stopService()
        self.assertTrue(all(port.closed for port in reactor.ports))
        reactor.advance(60)
        self.assertEqual(len(reactor.ports[0].sent), 4)

    def test_answers_become_sightings(self) -> None:
        """Answers and alives call on_sighting; byebyes call on_byebye; junk is counted."""
        reactor = FakeUdpReactor()
        seen: list[Sighting] = []
        gone: list[tuple[str, str | None]] = []
        discovery = SsdpDiscovery(
            reactor,
            seen.append,
            lambda uid, reason: gone.append((uid, reason)),
            target=("127.0.0.9", 1900),
        )
        discovery.startService()
        self.assertFalse(reactor.ports[0].multicast)
        protocol = reactor.ports[0].protocol
        protocol.datagramReceived(response("RINCON_AAA01400", "10.0.0.7", 4), ("10.0.0.7", 1900))
        protocol.datagramReceived(sample("notify_alive_rootdevice_fw85.0_mimic.txt"), ("x", 1))
        protocol.datagramReceived(
            b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:byebye\r\nUSN: uuid:RINCON_AAA01400\r\n"
            b"X-RINCON-REASON: upgrade\r\n\r\n",
            ("10.0.0.7", 1900),
        )
        protocol.datagramReceived(b"garbage", ("10.0.0.8", 1900))
        self.assertEqual(
            seen,
            [
                Sighting(uid="RINCON_AAA01400", host="10.0.0.7", boot_seq=4),
                Sighting(uid="RINCON_347E5C08876401400", host="192.168.1.120", boot_seq=138),
            ],
        )
        self.assertEqual(gone, [("RINCON_AAA01400", "upgrade")])
        self.assertEqual((discovery.answers, discovery.ignored), (3, 1))
        discovery.stopService()

    def test_notify_listener_joins_group(self) -> None:
        """With notify_port the discovery also joins the SSDP group for announcements."""
        reactor = FakeUdpReactor()
        discovery = SsdpDiscovery(
            reactor, lambda s: None, interfaces=("127.0.0.1",), notify_port=1900
        )
        discovery.startService()
        self.assertEqual(reactor.ports[-1].groups, [(SSDP_GROUP, "127.0.0.1")])
        discovery.stopService()


class Responder(DatagramProtocol):
    """A fake Sonos speaker answering M-SEARCH by unicast, from its own loopback address
    (after the ``first`` datagrams, answered before its own)."""

    def __init__(self, uid: str, host: str, boot_seq: int, first: tuple[bytes, ...] = ()) -> None:
        self.uid = uid
        self.host = host
        self.boot_seq = boot_seq
        self.first = first
        self.searches: list[bytes] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.searches.append(datagram)
        if datagram.startswith(b"M-SEARCH") and ZONE_PLAYER.encode() in datagram:
            assert self.transport is not None
            for answer in self.first:
                self.transport.write(answer, addr)
            self.transport.write(response(self.uid, self.host, self.boot_seq), addr)


class LoopbackTests(TestCase):
    async def test_discovers_responder(self) -> None:
        """A search sent by unicast to a loopback responder finds it by uid, host and BootSeq."""
        host = free_loopback_base(port=1400, count=1)
        responder = Responder("RINCON_B8E93712345601400", host, 7)
        port = global_reactor.listenUDP(0, responder, interface=host)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        found: Deferred[Sighting] = Deferred()
        discovery = SsdpDiscovery(
            global_reactor,
            lambda s: None if found.called else found.callback(s),
            interfaces=("127.0.0.1",),
            target=(host, port.getHost().port),
            interval=0.2,
        )
        discovery.startService()
        self.addCleanup(discovery.stopService)
        found.addTimeout(5, global_reactor)
        sighting = await found
        self.assertEqual(sighting, Sighting(uid="RINCON_B8E93712345601400", host=host, boot_seq=7))
        self.assertTrue(responder.searches[0].startswith(b"M-SEARCH * HTTP/1.1"))

    async def test_unreadable_locations_are_ignored(self) -> None:
        """Answers whose LOCATION urlparse cannot read (``http://[::1``, ``http://[zz]/``) are
        taken at their sender's address, as one without a LOCATION, never an exception in the
        UDP read loop (a traceback per forged datagram); the speaker's own answer follows."""
        host = free_loopback_base(port=1400, count=1)
        uid = "RINCON_B8E93712345601400"
        forged = tuple(
            response(uid, host, 7).replace(f"http://{host}:1400".encode(), bad)
            for bad in (b"http://[::1", b"http://[zz]:1400")
        )
        self.assertTrue(all(b"LOCATION: http://[" in answer for answer in forged))
        responder = Responder(uid, host, 7, first=forged)
        port = global_reactor.listenUDP(0, responder, interface=host)  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        events: list[Any] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        seen: list[Sighting] = []
        discovery = SsdpDiscovery(
            global_reactor,
            seen.append,
            interfaces=("127.0.0.1",),
            target=(host, port.getHost().port),
            interval=0.2,
        )
        discovery.startService()
        self.addCleanup(discovery.stopService)
        await until(lambda: len(seen) >= 3, "the two forged answers and the speaker's own")
        self.assertEqual(seen[:3], [Sighting(uid=uid, host=host, boot_seq=7)] * 3)
        self.assertEqual(discovery.ignored, 0)
        self.assertEqual([e for e in events if "log_failure" in e], [])


def test_host_of_location() -> None:
    """host_of_location() takes the host of a description URL."""
    assert host_of_location("http://10.0.0.5:1400/xml/x.xml") == "10.0.0.5"
    assert host_of_location(None) is None


@settings(max_examples=200, derandomize=True)
@given(
    st.binary(max_size=2000)
    | st.builds(
        lambda head, value: head + value,
        st.sampled_from(
            [
                b"HTTP/1.1 200 OK\r\nUSN: uuid:RINCON_1::x\r\nLOCATION: ",
                b"NOTIFY * HTTP/1.1\r\nNTS: ssdp:alive\r\nUSN: uuid:RINCON_2\r\nX-RINCON-BOOTSEQ: ",
            ]
        ),
        st.binary(max_size=5000),
    )
)
@example(b"HTTP/1.1 200 OK\r\nUSN: uuid:RINCON_1::x\r\nLOCATION: http://[::1\r\n")
def test_any_datagram_parses_to_none_or_a_speaker(data: bytes) -> None:
    """Any datagram (up to the sizes UDP carries) gives None or a message about a RINCON uid
    with bounded fields; nothing raises, whatever the headers hold."""
    message = parse_ssdp(data)
    if message is not None:
        assert message.uid.startswith("RINCON_")
        assert len(message.uid) <= len(data)
        assert message.boot_seq is None or isinstance(message.boot_seq, int)
