# -*- test-case-name: tests.sim.test_musicservices -*-
"""Music services: which exist (``ListAvailableServices``), which the household has an account
for (``/status/accounts``), and what a music-service item holds when it is queued.

A service has an id; its *type* is ``id * 256 + 7`` (Spotify 9 → 2311, TIDAL 174 → 44551,
Deezer 2 → 519, Apple Music 204 → 52231, TuneIn 254 → 65031), the number in DIDL descriptors
(``SA_RINCON2311_X_#Svc2311-0-Token``) and in ``/status/accounts``. A speaker accepts a
music-service item (``x-rincon-cpcontainer:...``, ``x-sonos-spotify:...``, or the bare
share-link forms SoCo's ``ShareLinkPlugin`` sends such as ``spotify%3atrack%3a...``) only for a
service the household can play: one that is available and, unless it is anonymous (TuneIn),
has an account. Anything else is refused with UPnP 800, as speakers do (SoCo issue #969,
node-sonos-ts issue #209: a Spotify item with the wrong service type fails with 800).

The simulated services have no real catalogue: a queued container expands into a few
tracks whose ids, titles and durations derive from the container's key, so the same link
always gives the same tracks.
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import attrs

from sonosd.sim.didl import NS_DC, NS_DIDL, Track
from sonosd.sim.soap import UPnPError

_DESC = re.compile(r"SA_RINCON(\d+)_")
_B62 = string.digits + string.ascii_letters


@attrs.frozen
class MusicService:
    """One music service as ``ListAvailableServices`` describes it."""

    service_id: int
    name: str
    auth: str

    @property
    def service_type(self) -> int:
        """``id * 256 + 7``: the number descriptors and accounts use."""
        return self.service_id * 256 + 7

    @property
    def anonymous(self) -> bool:
        """Whether it plays without an account (radio directories)."""
        return self.auth == "Anonymous"

    def descriptor(self) -> str:
        """Its ``<Service>`` element."""
        host = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        base = f"https://{host}.sim.invalid/smapi"
        return (
            f'<Service Id="{self.service_id}" Name={quoteattr(self.name)} Version="1.1" '
            f'Uri="{base}" SecureUri="{base}" ContainerType="MService" Capabilities="2563" '
            f'MaxMessagingChars="0"><Policy Auth="{self.auth}" PollInterval="30"/>'
            f'<Presentation><Strings Version="1" Uri="{base}/strings.xml"/>'
            f'<PresentationMap Version="1" Uri="{base}/pmap.xml"/></Presentation></Service>'
        )


#: The services of the simulated country.
SERVICES: tuple[MusicService, ...] = (
    MusicService(2, "Deezer", "DeviceLink"),
    MusicService(9, "Spotify", "AppLink"),
    MusicService(174, "TIDAL", "DeviceLink"),
    MusicService(204, "Apple Music", "AppLink"),
    MusicService(254, "TuneIn", "Anonymous"),
    MusicService(303, "Sonos Radio", "Anonymous"),
)

#: The service types the demo household has accounts for: Spotify and TIDAL.
DEFAULT_ACCOUNTS: tuple[int, ...] = (2311, 44551)


def by_type(service_type: int) -> MusicService | None:
    """The available service with that type."""
    return next((s for s in SERVICES if s.service_type == service_type), None)


def descriptor_list() -> str:
    """``AvailableServiceDescriptorList``: a ``<Services>`` document."""
    return (
        '<?xml version="1.0"?><Services SchemaVersion="1">'
        + "".join(service.descriptor() for service in SERVICES)
        + "</Services>"
    )


def type_list() -> str:
    """``AvailableServiceTypeList``: the types, comma-separated."""
    return ",".join(str(service.service_type) for service in SERVICES)


def accounts_xml(owner: str, accounts: Mapping[int, int]) -> bytes:
    """``/status/accounts`` as SoCo's ``Account.get_accounts`` reads it.

    @param accounts: ``{service type: serial number}``.
    """
    parts = [
        '<?xml version="1.0" ?><ZPSupportInfo type="User">',
        f'<Accounts LastUpdateDevice="{owner}" Version="{len(accounts) + 1}" '
        f'NextSerialNum="{max(accounts.values(), default=0) + 1}">',
    ]
    for service_type, serial in sorted(accounts.items()):
        service = by_type(service_type)
        nickname = service.name if service is not None else str(service_type)
        parts.append(
            f'<Account Type="{service_type}" SerialNum="{serial}"><UN>sim-user-{serial}</UN>'
            f"<MD>1</MD><NN>{escape(nickname)}</NN><OADevID></OADevID><Key></Key></Account>"
        )
    parts.append("</Accounts></ZPSupportInfo>")
    return "".join(parts).encode()


def service_type_of(uri: str, metadata: str) -> int | None:
    """The service type a URI and its DIDL name (descriptor, else ``sid=``), or ``None``
    for anything that is not a music-service item."""
    match = _DESC.search(metadata)
    if match is not None:
        return int(match.group(1))
    query = parse_qs(urlsplit(uri).query) if "?" in uri else {}
    sid = query.get("sid", [""])[0]
    if sid.isdigit() and uri.startswith(("x-rincon-cpcontainer:", "x-sonos-", "x-sonosapi-")):
        return int(sid) * 256 + 7
    return None


def check_playable(service_type: int, accounts: Iterable[int]) -> MusicService:
    """The service, if the household can play it; else UPnP 800 naming why."""
    service = by_type(service_type)
    if service is None:
        raise UPnPError(800, f"music service type {service_type} is not available")
    if not service.anonymous and service_type not in set(accounts):
        raise UPnPError(800, f"no {service.name} account (service type {service_type})")
    return service


def expand(uri: str, metadata: str, service: MusicService, serial: int) -> list[Track]:
    """The tracks a music-service item holds: a container a few, a track itself."""
    key = _key(uri)
    title = _didl_title(metadata)
    if uri.startswith("x-rincon-cpcontainer:"):
        count = 3 + _number(key, 3)
        return [
            _track(service, serial, f"{key}/{n}", f"{title or service.name} #{n}")
            for n in range(1, count + 1)
        ]
    return [_track(service, serial, key, title or f"{service.name} track")]


def _track(service: MusicService, serial: int, key: str, title: str) -> Track:
    track_id = _b62(key, 22)
    flags = f"sid={service.service_id}&flags=8224&sn={serial}"
    if service.name == "Spotify":
        uri = f"x-sonos-spotify:spotify%3atrack%3a{track_id}?{flags}"
        protocol = "sonos.com-spotify:*:audio/x-spotify:*"
    else:
        uri = f"x-sonos-http:track%3a{track_id}.mp4?{flags}"
        protocol = "sonos.com-http:*:audio/mp4:*"
    return Track(
        uri=uri,
        title=title,
        artist=f"{service.name} Artist",
        album=f"{service.name} Album",
        duration=150 + _number(key, 150),
        protocol_info=protocol,
    )


def _key(uri: str) -> str:
    """The service's object key of a URI (prefixes and query dropped)."""
    body = uri.split("?", 1)[0]
    for prefix in ("x-rincon-cpcontainer:", "x-sonos-spotify:", "x-sonos-http:"):
        if body.startswith(prefix):
            body = body.removeprefix(prefix)
            if prefix == "x-rincon-cpcontainer:" and re.match(r"^[0-9a-f]{8}", body):
                body = body[8:]
            break
    return body


def _didl_title(metadata: str) -> str:
    try:
        root = ElementTree.fromstring(metadata)
    except ElementTree.ParseError:
        return ""
    for tag in ("item", "container"):
        element = root.find(f"{{{NS_DIDL}}}{tag}")
        if element is not None:
            return (element.findtext(f"{{{NS_DC}}}title") or "").strip()
    return ""


def _number(key: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:4], "big") % modulo


def _b62(key: str, length: int) -> str:
    value = int.from_bytes(hashlib.sha1(key.encode()).digest(), "big")
    digits = []
    for _ in range(length):
        value, digit = divmod(value, 62)
        digits.append(_B62[digit])
    return "".join(digits)
