# -*- test-case-name: tests.household.test_discovery -*-
"""Optional SSDP discovery: find Sonos speakers, and notice their reboots and departures.

``SsdpDiscovery`` sends ``M-SEARCH`` for ``urn:schemas-upnp-org:device:ZonePlayer:1`` every
``interval`` seconds from one UDP socket per configured interface, and turns each answer into
a ``Sighting`` (uid from ``USN``, host from ``LOCATION``, ``X-RINCON-BOOTSEQ``) for
``HouseholdSupervisor.on_sighting``: new speakers are added, a higher BootSeq is a reboot, a new
``LOCATION`` host is followed. Optionally it also listens for the speakers' ``NOTIFY *``
announcements (``ssdp:alive`` and ``ssdp:byebye`` with ``X-RINCON-REASON``).

The search target (multicast group and port) and the interfaces are parameters, so tests send
their searches by unicast to a fake responder on a loopback address. Parsing is pure
(``parse_ssdp``) and lives apart from the protocol.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import attrs
from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime, IReactorUDP, IUDPTransport
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger()

SSDP_GROUP = "239.255.255.250"
SSDP_PORT = 1900
ZONE_PLAYER = "urn:schemas-upnp-org:device:ZonePlayer:1"
MAX_DATAGRAM = 8192


@attrs.frozen
class Sighting:
    """A speaker seen by discovery (or anything else that learns a uid's address)."""

    uid: str
    host: str
    boot_seq: int | None = None
    source: str = "ssdp"


def host_of_location(location: str | None) -> str | None:
    """The host of a ``Location`` URL (``http://10.0.0.5:1400/xml/...`` → ``10.0.0.5``);
    ``None`` for one ``urlparse`` cannot read (``http://[::1``, ``http://[zz]/``)."""
    if not location:
        return None
    try:
        return urlparse(location).hostname
    except ValueError:
        return None


@attrs.frozen
class SsdpMessage:
    """One SSDP datagram from a Sonos speaker, reduced to what sonosd uses.

    @ivar kind: ``response`` (to an M-SEARCH), ``alive`` or ``byebye`` (NOTIFY announcements).
    @ivar uid: The speaker's uid (``RINCON_...``), from ``USN``.
    @ivar location: The device description URL (``None`` in a byebye).
    @ivar host: The host of ``location``.
    @ivar boot_seq: ``X-RINCON-BOOTSEQ``.
    @ivar household: ``X-RINCON-HOUSEHOLD``.
    @ivar reason: ``X-RINCON-REASON`` of a byebye.
    """

    kind: str
    uid: str
    location: str | None = None
    host: str | None = None
    boot_seq: int | None = None
    household: str | None = None
    reason: str | None = None


def msearch(target: str = ZONE_PLAYER, mx: int = 1, host: str = SSDP_GROUP) -> bytes:
    """An M-SEARCH request for ``target`` (CRLF line endings, ending with a blank line)."""
    lines = [
        "M-SEARCH * HTTP/1.1",
        f"HOST: {host}:{SSDP_PORT}",
        'MAN: "ssdp:discover"',
        f"MX: {mx}",
        f"ST: {target}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _headers(data: bytes) -> tuple[str, dict[str, str]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break
        name, sep, value = line.partition(":")
        if not sep:
            continue
        headers.setdefault(name.strip().lower(), value.strip())
    return start, headers


def _uid_of(usn: str | None) -> str | None:
    if not usn:
        return None
    udn = usn.split("::", 1)[0].strip()
    if udn.lower().startswith("uuid:"):
        udn = udn[5:]
    # Embedded devices answer as RINCON_..._MR / _MS; the speaker is the root device.
    for suffix in ("_MR", "_MS"):
        if udn.endswith(suffix):
            udn = udn[: -len(suffix)]
    if not udn.startswith("RINCON_"):
        return None
    return udn


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None


def parse_ssdp(data: bytes) -> SsdpMessage | None:
    """Parse an SSDP datagram; ``None`` unless it is a Sonos speaker's answer or announcement.

    Lenient like real clients: LF or CRLF, header names in any case, unknown headers ignored.
    M-SEARCH requests (other clients searching) and non-Sonos devices give ``None``.
    """
    start, headers = _headers(data)
    upper = start.upper()
    if upper.startswith("HTTP/"):
        parts = start.split()
        if len(parts) < 2 or parts[1] != "200":
            return None
        kind = "response"
    elif upper.startswith("NOTIFY "):
        nts = headers.get("nts", "").lower()
        if nts == "ssdp:alive":
            kind = "alive"
        elif nts == "ssdp:byebye":
            kind = "byebye"
        else:
            return None
    else:
        return None
    uid = _uid_of(headers.get("usn"))
    if uid is None:
        return None
    location = headers.get("location") or None
    return SsdpMessage(
        kind=kind,
        uid=uid,
        location=location,
        host=host_of_location(location),
        boot_seq=_int(headers.get("x-rincon-bootseq")),
        household=headers.get("x-rincon-household") or None,
        reason=headers.get("x-rincon-reason") or None,
    )


class _SsdpProtocol(DatagramProtocol):
    """One UDP socket: sends searches, hands every datagram to the discovery."""

    def __init__(self, discovery: SsdpDiscovery, interface: str) -> None:
        self.discovery = discovery
        self.interface = interface

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.discovery.received(datagram, addr)


def _is_multicast(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_multicast
    except ValueError:
        return False


class SsdpDiscovery(Service):
    """Searches for Sonos speakers periodically and reports what it sees.

    @param reactor: Provides UDP and the timers.
    @param on_sighting: Called with a ``Sighting`` for every answer or ``ssdp:alive``.
    @param on_byebye: Called with ``(uid, reason)`` for every ``ssdp:byebye``.
    @param interfaces: Local IPv4 addresses to search from (one socket each); ``0.0.0.0``
        lets the system choose.
    @param target: Where searches go: the SSDP group and port, or a unicast address (tests).
    @param interval: Seconds between searches.
    @param repeats: Copies of each M-SEARCH sent (UDP may drop one).
    @param mx: The ``MX`` of the searches (seconds speakers may wait before answering).
    @param notify_port: When set, also listen on this port (joined to the SSDP group on the
        interfaces) for ``NOTIFY *`` announcements; usually 1900.
    """

    def __init__(
        self,
        reactor: Any,
        on_sighting: Callable[[Sighting], None],
        on_byebye: Callable[[str, str | None], None] | None = None,
        *,
        interfaces: Sequence[str] = ("0.0.0.0",),
        target: tuple[str, int] = (SSDP_GROUP, SSDP_PORT),
        interval: float = 300.0,
        repeats: int = 2,
        mx: int = 1,
        notify_port: int | None = None,
    ) -> None:
        self._reactor = reactor
        self._udp: IReactorUDP = reactor
        self._clock: IReactorTime = reactor
        self._on_sighting = on_sighting
        self._on_byebye = on_byebye
        self.interfaces = tuple(interfaces)
        self.target = target
        self.interval = interval
        self.repeats = repeats
        self.mx = mx
        self.notify_port = notify_port
        self.ports: list[Any] = []
        self._search_ports: list[Any] = []
        self._loop: LoopingCall | None = None
        self.searches = 0
        self.answers = 0
        self.ignored = 0

    def startService(self) -> None:
        """Open the sockets and search now, then every ``interval`` seconds."""
        super().startService()
        multicast = _is_multicast(self.target[0])
        for interface in self.interfaces:
            protocol = _SsdpProtocol(self, interface)
            if multicast:
                port = self._reactor.listenMulticast(0, protocol, interface=interface)
                port.setTTL(4)
                if interface != "0.0.0.0":
                    port.setOutgoingInterface(interface)
            else:
                port = self._udp.listenUDP(
                    0, protocol, interface=interface, maxPacketSize=MAX_DATAGRAM
                )
            self.ports.append(port)
            self._search_ports.append(port)
        if self.notify_port is not None:
            self._listen_notify(self.notify_port)
        self._loop = LoopingCall(self.search)
        self._loop.clock = self._clock
        self._loop.start(self.interval, now=True).addErrback(
            lambda failure: log.failure("SSDP search loop failed", failure)
        )

    def _listen_notify(self, port_number: int) -> None:
        protocol = _SsdpProtocol(self, "notify")
        port = self._reactor.listenMulticast(port_number, protocol, listenMultiple=True)
        for interface in self.interfaces:
            port.joinGroup(SSDP_GROUP, interface if interface != "0.0.0.0" else "0.0.0.0")
        self.ports.append(port)

    def stopService(self) -> Any:
        """Stop searching and close the sockets."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        ports, self.ports = self.ports, []
        self._search_ports = []
        for port in ports:
            port.stopListening()
        return None

    def search(self) -> None:
        """Send the M-SEARCH from every socket now."""
        self.searches += 1
        request = msearch(mx=self.mx)
        for port in self._search_ports:
            transport: IUDPTransport = port
            for _ in range(self.repeats):
                try:
                    transport.write(request, self.target)
                except OSError as error:
                    log.warn(
                        "SSDP search to {target} failed: {error}", target=self.target, error=error
                    )
                    break

    def received(self, datagram: bytes, addr: Any) -> None:
        """Take one datagram: report Sonos answers and announcements, ignore the rest."""
        message = parse_ssdp(datagram[:MAX_DATAGRAM])
        if message is None:
            self.ignored += 1
            return
        self.answers += 1
        if message.kind == "byebye":
            if self._on_byebye is not None:
                self._on_byebye(message.uid, message.reason)
            return
        host = message.host or (addr[0] if addr else None)
        if host is None:
            return
        self._on_sighting(Sighting(uid=message.uid, host=host, boot_seq=message.boot_seq))
