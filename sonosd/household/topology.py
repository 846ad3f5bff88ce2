# -*- test-case-name: tests.household.test_topology -*-
"""The household topology: a ZoneGroupState document parsed into frozen, comparable objects.

Every speaker of a household sends the same ZoneGroupState (in ZoneGroupTopology events and
as the out-argument of GetZoneGroupState): groups, each with a coordinator and members
(home-theatre satellites nested in their member), and the devices that vanished. Two parses of
the same household compare equal whatever the order of the document, so a change of grouping
is a change of value. ``SpeakerViews`` keeps each speaker's own latest document while a change
settles (docs/supervisor.md, "Topology while a change settles"). Pure, no I/O.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import attrs

from sonosd.gena.xmlguard import UnsafeXml, check_document, check_text


class TopologyError(ValueError):
    """A document that is not a ZoneGroupState."""


ChannelMap = tuple[tuple[str, str], ...]


# Every speaker sends the same values with every change of topology: parsing each once is
# enough (the results are immutable).
@functools.lru_cache(maxsize=1024)
def parse_channel_map(value: str | None) -> ChannelMap:
    """Parse ``ChannelMapSet``/``HTSatChanMapSet`` (``uid:LF,LF;uid:RF,RF``) into pairs.

    @return: ``((uid, channels), ...)`` in document order; an empty or missing value gives
        ``()``; a part without ``:`` is kept with empty channels.
    """
    if not value:
        return ()
    pairs = []
    for part in value.split(";"):
        part = part.strip()
        if part:
            uid, _, channels = part.partition(":")
            pairs.append((uid.strip(), channels.strip()))
    return tuple(pairs)


@attrs.frozen
class Member:
    """One speaker (a ``ZoneGroupMember`` or a home-theatre ``Satellite``).

    @ivar uid: ``RINCON_...``.
    @ivar name: The room name (``ZoneName``); satellites and stereo pairs share their room's.
    @ivar location: Its description URL; ``host`` and ``port`` come from it (``None`` if
        absent or without a port).
    @ivar boot_seq: ``BootSeq``, which grows with every reboot.
    @ivar invisible: Hidden from users (the right speaker of a pair, satellites, bridges).
    @ivar is_zone_bridge: A Bridge/Boost, which plays nothing.
    @ivar channel_map: ``ChannelMapSet`` (stereo pair, sub) as ``((uid, channels), ...)``.
    @ivar ht_channel_map: ``HTSatChanMapSet`` (home theatre), same shape.
    @ivar satellites: The home-theatre satellites bonded to this member.
    """

    uid: str
    name: str
    location: str | None = None
    host: str | None = None
    port: int | None = None
    boot_seq: int | None = None
    invisible: bool = False
    is_zone_bridge: bool = False
    software_version: str | None = None
    channel_map: ChannelMap = ()
    ht_channel_map: ChannelMap = ()
    satellites: tuple[Member, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The member as plain JSON (``satellites`` nested, channel maps as objects)."""
        return {
            "uid": self.uid,
            "name": self.name,
            "host": self.host,
            "port": self.port,
            "location": self.location,
            "boot_seq": self.boot_seq,
            "invisible": self.invisible,
            "is_zone_bridge": self.is_zone_bridge,
            "software_version": self.software_version,
            "channel_map": dict(self.channel_map),
            "ht_channel_map": dict(self.ht_channel_map),
            "satellites": [satellite.to_json() for satellite in self.satellites],
        }


@attrs.frozen
class Group:
    """One group: a coordinator and its members (a standalone speaker is a group of one).

    @ivar id: The group ID (``<coordinator uid>:<n>``).
    @ivar coordinator: The coordinator's uid (not necessarily the first member).
    @ivar members: The members, ordered by uid.
    @ivar household: The household it belongs to (``Sonos_...``), once known.
    """

    id: str
    coordinator: str
    members: tuple[Member, ...]
    household: str | None = None

    @property
    def name(self) -> str:
        """The coordinator's room name (the first member's if the coordinator is absent)."""
        for member in self.members:
            if member.uid == self.coordinator:
                return member.name
        return self.members[0].name if self.members else ""

    def to_json(self) -> dict[str, Any]:
        """The group as plain JSON."""
        return {
            "id": self.id,
            "household": self.household,
            "coordinator": self.coordinator,
            "name": self.name,
            "members": [member.to_json() for member in self.members],
        }


@attrs.frozen
class VanishedDevice:
    """A device the household lost (``VanishedDevices/Device``), with the speaker's reason
    (``powered off``, ``sleeping``, ``switch to bluetooth``, ``upgrade``, ``UNKNOWN``...)
    and its last known address (``LastKnownIP``, when given)."""

    uid: str
    name: str
    reason: str | None = None
    host: str | None = None
    household: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The device as plain JSON."""
        return {
            "uid": self.uid,
            "name": self.name,
            "reason": self.reason,
            "host": self.host,
            "household": self.household,
        }


#: ``VanishedDevices`` reasons of a speaker that is asleep rather than gone: a portable that
#: sleeps to save its battery, or one switched to Bluetooth (its Wi-Fi side sleeps).
ASLEEP_REASONS = frozenset({"sleeping", "switch to bluetooth"})


@attrs.frozen
class Topology:
    """A whole household: groups ordered by coordinator and ID, vanished devices by uid.

    @ivar household: The household id (``Sonos_...``) it describes, once known (the document
        does not say; ``tagged`` sets it on the topology, its groups and vanished devices).
    """

    groups: tuple[Group, ...] = ()
    vanished: tuple[VanishedDevice, ...] = ()
    household: str | None = None

    def tagged(self, household: str | None) -> Topology:
        """This topology as the one of ``household``."""
        if household == self.household:
            return self
        return Topology(
            groups=tuple(attrs.evolve(group, household=household) for group in self.groups),
            vanished=tuple(attrs.evolve(device, household=household) for device in self.vanished),
            household=household,
        )

    def vanished_device(self, uid: str) -> VanishedDevice | None:
        """The vanished device ``uid``, if the household lists it."""
        for device in self.vanished:
            if device.uid == uid:
                return device
        return None

    def changed_from(self, old: Topology | None) -> bool:
        """Whether this topology differs from ``old`` in what ``topology.changed`` reports:
        the groups (coordinators, members, room names, visibility) and the vanished devices
        (and why). A BootSeq, an address or a software version alone is no change."""
        if old is None:
            return True
        return old.grouping() != self.grouping() or _vanished_key(old) != _vanished_key(self)

    def members(self) -> Iterator[Member]:
        """Every member of every group, satellites included."""
        for group in self.groups:
            for member in group.members:
                yield member
                yield from member.satellites

    def member(self, uid: str) -> Member | None:
        """The member (or satellite) with ``uid``, if the household has it."""
        for member in self.members():
            if member.uid == uid:
                return member
        return None

    def group_of(self, uid: str) -> Group | None:
        """The group ``uid`` belongs to (directly or as a satellite)."""
        for group in self.groups:
            for member in group.members:
                if member.uid == uid or any(sat.uid == uid for sat in member.satellites):
                    return group
        return None

    def coordinator_of(self, uid: str) -> str | None:
        """The uid of the coordinator of ``uid``'s group."""
        group = self.group_of(uid)
        return None if group is None else group.coordinator

    def grouping(self) -> frozenset[tuple[str, frozenset[tuple[str, str, bool]]]]:
        """What users call "the groups": coordinators and their members' uid, name and
        visibility. Reboots (``boot_seq``), address or version changes leave it unchanged;
        ``topology.changed`` is published when it changes."""
        return frozenset(
            (
                group.coordinator,
                frozenset((member.uid, member.name, member.invisible) for member in group.members),
            )
            for group in self.groups
        )

    def to_json(self) -> dict[str, Any]:
        """The topology as plain JSON: ``{"household", "groups": [...], "vanished": [...]}``."""
        return {
            "household": self.household,
            "groups": [group.to_json() for group in self.groups],
            "vanished": [device.to_json() for device in self.vanished],
        }


class SpeakerViews:
    """The ZoneGroupState each speaker of one household showed last, and whether they agree.

    Real players learn a change of topology a little apart and each events its own view
    meanwhile (docs/simulator.md, "Topology settle"); a speaker's own events are ordered by
    its subscription's SEQ, but nothing orders two speakers' documents. Each document is kept
    once however many speakers show it.
    """

    def __init__(self) -> None:
        self._by_speaker: dict[str, str] = {}
        self._held: Counter[str] = Counter()
        self._documents: dict[str, str] = {}

    def report(self, uid: str, document: str) -> None:
        """``uid`` shows ``document`` now (its latest event or read)."""
        self.forget(uid)
        document = self._documents.setdefault(document, document)
        self._by_speaker[uid] = document
        self._held[document] += 1

    def forget(self, uid: str) -> bool:
        """``uid`` no longer reports (offline, removed, its subscription lost).

        @return: Whether it had a view.
        """
        document = self._by_speaker.pop(uid, None)
        if document is None:
            return False
        self._held[document] -= 1
        if not self._held[document]:
            del self._held[document]
            del self._documents[document]
        return True

    def agreed(self) -> str | None:
        """The document every reporting speaker shows, if they all show the same one."""
        if len(self._held) == 1:
            return next(iter(self._held))
        return None

    def most_held(self) -> str | None:
        """The document most speakers show; of equally held ones, the one shown last."""
        best: tuple[int, int] | None = None
        chosen = None
        for position, document in enumerate(self._by_speaker.values()):
            key = (self._held[document], position)
            if best is None or key > best:
                best, chosen = key, document
        return chosen

    def view_of(self, uid: str) -> str | None:
        """The document ``uid`` showed last, if it reports."""
        return self._by_speaker.get(uid)

    def documents(self) -> int:
        """How many different documents the speakers show."""
        return len(self._held)

    def __contains__(self, document: object) -> bool:
        return document in self._held

    def __len__(self) -> int:
        return len(self._by_speaker)


def merged(topologies: Iterable[Topology]) -> Topology:
    """Several households' topologies as one (each group keeps its ``household``), for
    lookups by uid across households; its own ``household`` is ``None``."""
    parts = list(topologies)
    if len(parts) == 1:
        return parts[0]
    groups = sorted(
        (group for part in parts for group in part.groups),
        key=lambda group: (group.coordinator, group.id),
    )
    vanished = sorted((device for part in parts for device in part.vanished), key=_uid)
    return Topology(groups=tuple(groups), vanished=tuple(vanished))


def _uid(device: VanishedDevice) -> str:
    return device.uid


def _vanished_key(topology: Topology) -> frozenset[tuple[str, str | None]]:
    return frozenset((device.uid, device.reason) for device in topology.vanished)


def parse_zone_group_state(document: str | bytes, unwrap: bool = True) -> Topology:
    """Parse a ZoneGroupState document.

    Accepts the modern ``<ZoneGroupState><ZoneGroups>...<VanishedDevices>`` form, the old
    ``<ZoneGroups>`` root, and a GetZoneGroupState out-argument element whose text is the
    escaped document (once: ``unwrap`` is false for that inner document).

    @raise TopologyError: If the document is not XML or has another root.
    """
    root = _parse_xml(document)
    if root.tag == "ZoneGroupState" and len(root) == 0 and (root.text or "").strip():
        if not unwrap:
            raise TopologyError("a ZoneGroupState escaped in a ZoneGroupState escaped in one")
        return parse_zone_group_state(root.text.strip(), unwrap=False)
    if root.tag == "ZoneGroups":
        zone_groups: Any = root
    elif root.tag == "ZoneGroupState":
        zone_groups = root.find("ZoneGroups")
    else:
        raise TopologyError(f"expected a ZoneGroupState document, got <{root.tag}>")
    groups = () if zone_groups is None else _groups(zone_groups.iterfind("ZoneGroup"))
    vanished = tuple(
        sorted(
            (
                VanishedDevice(
                    uid=device.get("UUID", "").strip(),
                    name=device.get("ZoneName", ""),
                    reason=device.get("Reason"),
                    host=(device.get("LastKnownIP") or "").strip() or None,
                )
                for device in root.iterfind("VanishedDevices/Device")
            ),
            key=lambda device: device.uid,
        )
    )
    return Topology(groups=groups, vanished=vanished)


def _parse_xml(document: str | bytes) -> Any:
    """The root element; a strict parse first, then libxml2's recovering parser (as SoCo's
    own ZoneGroupState handling does), because real captures have unbalanced end tags.

    A document with a DTD is refused first (``sonosd.gena.xmlguard``): neither parser expands
    entities then."""
    try:
        if isinstance(document, str):
            check_text(document)
        else:
            check_document(document)
    except UnsafeXml as unsafe:
        raise TopologyError(f"ZoneGroupState refused: {unsafe}") from None
    try:
        return ElementTree.fromstring(document)
    except ElementTree.ParseError as exc:
        # lxml (4 MB resident) only for the documents that need it (issue 17).
        from lxml import etree  # type: ignore[import-untyped]

        data = document.encode("utf-8") if isinstance(document, str) else document
        try:
            root = etree.fromstring(data, parser=etree.XMLParser(recover=True))
        except etree.Error:
            root = None
        if root is None:
            raise TopologyError(f"ZoneGroupState is not XML: {exc}") from exc
        return root


def _groups(elements: Iterable[Any]) -> tuple[Group, ...]:
    groups = []
    for element in elements:
        members = tuple(
            sorted(
                (_member(child) for child in element.iterfind("ZoneGroupMember")),
                key=lambda member: member.uid,
            )
        )
        groups.append(
            Group(
                id=element.get("ID", "").strip(),
                coordinator=element.get("Coordinator", "").strip(),
                members=members,
            )
        )
    groups.sort(key=lambda group: (group.coordinator, group.id))
    return tuple(groups)


def _flag(value: str | None) -> bool:
    return value is not None and value.strip() in ("1", "true", "True")


@functools.lru_cache(maxsize=1024)
def _host_port(location: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(location.strip())
        return parts.hostname, parts.port
    except ValueError:
        return None, None


def _member(element: Any, satellite: bool = False) -> Member:
    """A member and its satellites; a satellite's own ``Satellite`` children (never sent by
    a speaker) are not read, so a document nested thousands deep costs no recursion."""
    location = element.get("Location")
    host, port = _host_port(location) if location else (None, None)
    boot_seq: int | None
    try:
        boot_seq = int(element.get("BootSeq", ""))
    except ValueError:
        boot_seq = None
    satellites = tuple(
        sorted(
            (
                _member(child, satellite=True)
                for child in (() if satellite else element.iterfind("Satellite"))
            ),
            key=lambda member: member.uid,
        )
    )
    return Member(
        uid=element.get("UUID", "").strip(),
        name=element.get("ZoneName", ""),
        location=location,
        host=host,
        port=port,
        boot_seq=boot_seq,
        invisible=_flag(element.get("Invisible")),
        is_zone_bridge=_flag(element.get("IsZoneBridge")),
        software_version=element.get("SoftwareVersion"),
        channel_map=parse_channel_map(element.get("ChannelMapSet")),
        ht_channel_map=parse_channel_map(element.get("HTSatChanMapSet")),
        satellites=satellites,
    )
