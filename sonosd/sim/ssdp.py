# -*- test-case-name: tests.sim.test_ssdp -*-
"""SSDP for the simulated household: answer M-SEARCH, announce ``ssdp:alive`` and ``ssdp:byebye``.

``SsdpResponder`` listens on the SSDP group and port (239.255.255.250:1900 by default; tests
use a private port), joined on the loopback interface only. It answers an M-SEARCH for a
target a speaker offers (``ZonePlayer:1``, ``ssdp:all``, ``upnp:rootdevice``, ``uuid:<udn>``,
the embedded MediaRenderer and MediaServer) after a random delay of at most ``MX`` seconds, by
unicast **from the speaker's own address**: SoCo builds ``SoCo(addr[0])`` from the source
address of the answer and ignores ``LOCATION`` (sonos-protocol.md §6.2).

When ``announce`` is on, every reachable speaker multicasts ``ssdp:alive`` when the responder
starts, after a reboot (with the new BootSeq), when it comes back online and when its address
changes; a speaker that goes offline multicasts ``ssdp:byebye`` with ``X-RINCON-REASON``.

Multicast never leaves loopback: the outgoing interface is ``interface`` (127.0.0.1), the TTL
is 1, and only searchers on 127.0.0.0/8 are answered. Parsing and formatting are pure and
live apart from the sockets.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Sequence
from email.utils import formatdate
from typing import Any

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from sonosd.sim.household import Household, Speaker

log = Logger()

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
ZONE_PLAYER = "urn:schemas-upnp-org:device:ZonePlayer:1"
MEDIA_RENDERER = "urn:schemas-upnp-org:device:MediaRenderer:1"
MEDIA_SERVER = "urn:schemas-upnp-org:device:MediaServer:1"
#: UPnP caps MX at 5 seconds; a larger value is taken as 5.
MAX_MX = 5
#: SoCo reads the first 1024 bytes of an answer only.
MAX_RESPONSE = 1024
#: Real firmware announces ``max-age = 1800``.
MAX_AGE = 1800
OFFLINE_REASON = "powered off"


@attrs.frozen
class Search:
    """One M-SEARCH, reduced to what the responder uses.

    @ivar target: ``ST`` (stripped; case kept).
    @ivar mx: ``MX`` in seconds (0 when absent or not a number; capped at ``MAX_MX``).
    """

    target: str
    mx: int


@attrs.frozen
class Advert:
    """What one speaker says about itself in every SSDP datagram."""

    uid: str
    location: str
    server: str
    household: str
    boot_seq: int


def advert_of(speaker: Speaker) -> Advert:
    """The ``Advert`` of a simulated speaker, as it is now (address, BootSeq)."""
    return Advert(
        uid=speaker.uid,
        location=speaker.location,
        server=speaker.model.server_header,
        household=speaker.household.household_id,
        boot_seq=speaker.boot_seq,
    )


def parse_msearch(data: bytes) -> Search | None:
    """An M-SEARCH request, or ``None`` for anything else (answers, NOTIFYs, junk).

    Lenient like real speakers: LF or CRLF, with or without the final blank line, header
    names in any case, ``MAN`` quoted or not (it must still say ``ssdp:discover``).
    """
    text = data.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[0].split()[:2] != ["M-SEARCH", "*"]:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if sep:
            headers.setdefault(name.strip().lower(), value.strip())
    if headers.get("man", "").strip("\"' ").lower() != "ssdp:discover":
        return None
    target = headers.get("st", "")
    if not target:
        return None
    try:
        mx = int(headers.get("mx", "0"))
    except ValueError:
        mx = 0
    return Search(target=target, mx=max(0, min(mx, MAX_MX)))


def all_targets(uid: str) -> list[tuple[str, str]]:
    """Every ``(NT, USN)`` pair a speaker announces: root, uuids, its three device types."""
    return [
        ("upnp:rootdevice", f"uuid:{uid}::upnp:rootdevice"),
        (f"uuid:{uid}", f"uuid:{uid}"),
        (ZONE_PLAYER, f"uuid:{uid}::{ZONE_PLAYER}"),
        (f"uuid:{uid}_MR", f"uuid:{uid}_MR"),
        (MEDIA_RENDERER, f"uuid:{uid}_MR::{MEDIA_RENDERER}"),
        (f"uuid:{uid}_MS", f"uuid:{uid}_MS"),
        (MEDIA_SERVER, f"uuid:{uid}_MS::{MEDIA_SERVER}"),
    ]


def matching_targets(search_target: str, uid: str) -> list[tuple[str, str]]:
    """The ``(ST, USN)`` pairs a speaker answers ``search_target`` with (``[]``: none).

    ``ssdp:all`` gets every device the speaker has; anything else the one it names
    (compared without regard to case, as lenient clients send it).
    """
    wanted = search_target.strip().lower()
    targets = all_targets(uid)
    if wanted == "ssdp:all":
        return targets
    return [(nt, usn) for nt, usn in targets if nt.lower() == wanted]


def _common(advert: Advert) -> list[str]:
    return [
        f"X-RINCON-HOUSEHOLD: {advert.household}",
        f"X-RINCON-BOOTSEQ: {advert.boot_seq}",
        f"BOOTID.UPNP.ORG: {advert.boot_seq}",
        "X-RINCON-WIFIMODE: 0",
        "X-RINCON-VARIANT: 2",
    ]


def _datagram(lines: Sequence[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def search_response(advert: Advert, target: str, usn: str, now: float) -> bytes:
    """The answer to an M-SEARCH, header for header as firmware 85 sends it (samples/ssdp)."""
    return _datagram(
        [
            "HTTP/1.1 200 OK",
            f"CACHE-CONTROL: max-age = {MAX_AGE}",
            f"DATE: {formatdate(now, usegmt=True)}",
            "EXT:",
            f"LOCATION: {advert.location}",
            f"SERVER: {advert.server}",
            f"ST: {target}",
            f"USN: {usn}",
            *_common(advert),
        ]
    )


def notify_alive(advert: Advert, target: str, usn: str, host: str) -> bytes:
    """An ``ssdp:alive`` announcement (``host`` is the ``HOST`` header: group:port)."""
    return _datagram(
        [
            "NOTIFY * HTTP/1.1",
            f"HOST: {host}",
            f"CACHE-CONTROL: max-age = {MAX_AGE}",
            f"LOCATION: {advert.location}",
            f"NT: {target}",
            "NTS: ssdp:alive",
            f"SERVER: {advert.server}",
            f"USN: {usn}",
            *_common(advert),
        ]
    )


def notify_byebye(advert: Advert, target: str, usn: str, host: str, reason: str) -> bytes:
    """An ``ssdp:byebye`` announcement with the ``X-RINCON-REASON`` Sonos adds."""
    return _datagram(
        [
            "NOTIFY * HTTP/1.1",
            f"HOST: {host}",
            f"NT: {target}",
            "NTS: ssdp:byebye",
            f"USN: {usn}",
            f"X-RINCON-HOUSEHOLD: {advert.household}",
            f"X-RINCON-BOOTSEQ: {advert.boot_seq}",
            f"BOOTID.UPNP.ORG: {advert.boot_seq}",
            f"X-RINCON-REASON: {reason}",
        ]
    )


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _GroupListener(DatagramProtocol):
    """The socket joined to the SSDP group: hands every datagram to the responder."""

    def __init__(self, responder: SsdpResponder) -> None:
        self.responder = responder

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.responder.received(datagram, addr)


class _SpeakerSocket(DatagramProtocol):
    """A speaker's own UDP socket (bound to its address); it only sends."""

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        """Nothing is expected here; whatever arrives is dropped."""


class SsdpResponder(Service):
    """Answers SSDP searches for every speaker of ``household``; see the module docstring.

    @param reactor: Provides ``IReactorMulticast`` and ``IReactorTime``.
    @param household: The simulated household, or several on one network (each one's
        ``announcer`` is set while running).
    @param port: The SSDP port to listen on; 0 takes a free one (``.port`` tells which).
    @param group: The multicast group.
    @param interface: The local address of the interface to join the group on and to
        multicast from; it must be a loopback address.
    @param announce: Multicast ``ssdp:alive`` / ``ssdp:byebye`` announcements.
    @param rng: Draws the answer delays (seed it for reproducible tests).
    """

    def __init__(
        self,
        reactor: Any,
        household: Household | Sequence[Household],
        *,
        port: int = SSDP_PORT,
        group: str = SSDP_GROUP,
        interface: str = "127.0.0.1",
        announce: bool = True,
        rng: random.Random | None = None,
    ) -> None:
        if not _is_loopback(interface):
            raise ValueError(f"the simulator's SSDP stays on loopback, not {interface!r}")
        self._reactor = reactor
        self.households = [household] if isinstance(household, Household) else list(household)
        self.household = self.households[0]
        self.requested_port = port
        self.group = group
        self.interface = interface
        self.announce = announce
        self.rng = rng if rng is not None else random.Random()
        self.port: int | None = None
        self.searches = 0
        self.answers = 0
        self._listening: Any = None
        self._sockets: dict[str, Any] = {}
        self._pending: set[IDelayedCall] = set()

    @property
    def host_header(self) -> str:
        """``HOST`` of the announcements: ``group:port``."""
        return f"{self.group}:{self.port if self.port is not None else self.requested_port}"

    def startService(self) -> None:
        """Join the group on ``interface`` and start answering; announce every speaker."""
        self._listening = self._reactor.listenMulticast(
            self.requested_port, _GroupListener(self), interface=self.group, listenMultiple=True
        )
        self.port = self._listening.getHost().port
        self._listening.joinGroup(self.group, self.interface).addErrback(
            lambda failure: log.failure("SSDP: cannot join {group}", failure, group=self.group)
        )
        super().startService()
        for household in self.households:
            household.announcer = self
        log.info(
            "simulated SSDP on {group}:{port} (interface {interface})",
            group=self.group,
            port=self.port,
            interface=self.interface,
        )
        for speaker in self._speakers():
            self.alive(speaker)

    def _speakers(self) -> list[Speaker]:
        return [speaker for household in self.households for speaker in household.speakers]

    def stopService(self) -> Deferred[Any]:
        """Cancel pending answers and close every socket."""
        super().stopService()
        for household in self.households:
            if household.announcer is self:
                household.announcer = None
        for call in self._pending:
            if call.active():
                call.cancel()
        self._pending.clear()
        ports = list(self._sockets.values())
        self._sockets.clear()
        if self._listening is not None:
            ports.append(self._listening)
            self._listening = None
        waits = [port.stopListening() for port in ports]
        return DeferredList([w for w in waits if isinstance(w, Deferred)], consumeErrors=True)

    # -- searches --------------------------------------------------------------------------

    def received(self, datagram: bytes, addr: Any) -> None:
        """Take one datagram from the group: schedule the answers to an M-SEARCH."""
        search = parse_msearch(datagram)
        if search is None or not self.running:
            return
        if not _is_loopback(addr[0]):
            log.debug("SSDP: ignoring a search from {addr}", addr=addr)
            return
        self.searches += 1
        for speaker in self._speakers():
            targets = matching_targets(search.target, speaker.uid)
            if not targets:
                continue
            delay = self.rng.uniform(0, search.mx)
            call = self._reactor.callLater(delay, self._answer, speaker, targets, tuple(addr))
            self._pending.add(call)

    def _answer(self, speaker: Speaker, targets: list[tuple[str, str]], addr: Any) -> None:
        self._pending = {call for call in self._pending if call.active()}
        if not self._answers(speaker):
            return
        advert = advert_of(speaker)
        now = self._reactor.seconds()
        for target, usn in targets:
            if self._send(speaker, search_response(advert, target, usn, now), addr):
                self.answers += 1

    @staticmethod
    def _answers(speaker: Speaker) -> bool:
        """Whether the speaker is on the network now (not rebooting, offline or vanished)
        and its household's SSDP is not silenced (UPnP off, ``upnp_off_ssdp: silent``)."""
        return (
            speaker.reachable
            and speaker.vanished_reason is None
            and not speaker.household.modes.ssdp_silent()
        )

    # -- announcements (``household.announcer``) -------------------------------------------

    def alive(self, speaker: Speaker) -> None:
        """Multicast ``ssdp:alive`` for every target of ``speaker`` (if it is reachable)."""
        if not (self.announce and self.running and self._answers(speaker)):
            return
        advert = advert_of(speaker)
        for target, usn in all_targets(speaker.uid):
            self._send(speaker, notify_alive(advert, target, usn, self.host_header))

    def byebye(self, speaker: Speaker, reason: str = OFFLINE_REASON) -> None:
        """Multicast ``ssdp:byebye`` for every target of ``speaker``."""
        if not (self.announce and self.running):
            return
        advert = advert_of(speaker)
        for target, usn in all_targets(speaker.uid):
            self._send(speaker, notify_byebye(advert, target, usn, self.host_header, reason))

    # -- sockets ---------------------------------------------------------------------------

    def _send(self, speaker: Speaker, datagram: bytes, addr: Any = None) -> bool:
        """Send from the speaker's own address (to the group unless ``addr``)."""
        destination = addr if addr is not None else (self.group, self.port)
        try:
            self._socket_of(speaker).write(datagram, destination)
        except OSError as error:
            log.warn(
                "SSDP: {speaker} cannot send to {destination}: {error}",
                speaker=speaker.name,
                destination=destination,
                error=error,
            )
            return False
        return True

    def _socket_of(self, speaker: Speaker) -> Any:
        """The UDP socket bound to the speaker's current address (reopened when it moved)."""
        port = self._sockets.get(speaker.uid)
        if port is not None and port.getHost().host == speaker.address:
            return port
        if port is not None:
            port.stopListening()
        port = self._reactor.listenMulticast(0, _SpeakerSocket(), interface=speaker.address)
        port.setTTL(1)
        port.setLoopbackMode(1)
        port.setOutgoingInterface(self.interface).addErrback(
            lambda failure: log.failure(
                "SSDP: cannot multicast from {i}", failure, i=self.interface
            )
        )
        self._sockets[speaker.uid] = port
        return port
