# -*- test-case-name: tests.household.test_state -*-
"""The household as the daemon knows it: each speaker's merged variables, its availability,
and the topology.

``HouseholdState`` is plain data kept in the reactor thread: the event processor merges every
event into it, the supervisor sets availability, and the API serves ``snapshot()`` (the hub
stamps it with the last message id so that a client can resume from there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.logger import Logger

from sonosd.household.topology import Topology, merged
from sonosd.logs import isotime

log = Logger()

TopologyObserver = Callable[[Topology | None, Topology], None]


@attrs.frozen
class SpeakerRef:
    """Who a speaker is and where: what every message about it names.

    @ivar uid: ``RINCON_...``, stable across reboots and address changes.
    @ivar name: The room name.
    @ivar host: Its address (or host name).
    @ivar port: Its HTTP port (1400 on real speakers).
    @ivar household: Its household id (``Sonos_...``), once known; not part of a message's
        ``speaker`` object (the snapshot carries it).
    """

    uid: str
    name: str
    host: str
    port: int = 1400
    household: str | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port``, for making the speaker's relative URLs absolute."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def to_json(self) -> dict[str, str]:
        """The ``speaker`` object of a message: ``{"uid", "name", "host"}``."""
        return {"uid": self.uid, "name": self.name, "host": self.host}


#: A speaker's availability: ``online``; ``offline`` (with a reason); ``asleep`` (a portable
#: sleeping or switched to Bluetooth: not an error); ``upnp_disabled`` (UPnP switched off in the
#: Sonos app); ``unknown`` (not decided yet).
STATUSES = ("online", "offline", "asleep", "upnp_disabled", "unknown")


@attrs.frozen
class Availability:
    """Whether the daemon can reach a speaker: ``status`` (one of ``STATUSES``) with the
    reason and the time of the last change of status."""

    status: str = "unknown"
    reason: str | None = None
    since: float | None = None

    @property
    def online(self) -> bool | None:
        """``True`` online, ``None`` unknown, ``False`` anything else (not reachable now)."""
        if self.status == "unknown":
            return None
        return self.status == "online"

    def to_json(self) -> dict[str, Any]:
        """``{"status", "reason", "since"}``."""
        return {
            "status": self.status,
            "reason": self.reason,
            "since": None if self.since is None else isotime(self.since),
        }


@attrs.frozen
class ServiceMark:
    """The last update of one service of one speaker: its SEQ (``None`` for state read by
    control calls), when, and from where (``notify``, ``poll``, ``resync``)."""

    seq: int | None
    time: float
    source: str


@attrs.define
class _Speaker:
    ref: SpeakerRef
    availability: Availability = attrs.field(factory=Availability)
    variables: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    marks: dict[str, ServiceMark] = attrs.field(factory=dict)


def merge_variables(current: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``update`` into ``current`` in place; return what changed.

    A channel dict (``{"Master": 40, "LF": 100}``) merges channel by channel and the change
    lists only the channels whose value changed; any other value, DIDL metadata objects
    (``*_meta_data``) included, replaces the old one.

    ``current`` keeps its own copy of what it may later change in place (channel dicts); other
    values are kept and returned as given, not copied, so callers must not change them
    afterwards (the event processor builds new ones for every event).
    """
    changed: dict[str, Any] = {}
    for name, value in update.items():
        old = current.get(name)
        kind = type(value)
        if kind in _SCALARS:
            if old != value or name not in current:
                current[name] = changed[name] = value
        elif (
            (kind is dict or isinstance(value, Mapping))
            and type(old) is dict
            and _is_channels(name, value)
        ):
            diff = {channel: item for channel, item in value.items() if old.get(channel) != item}
            if diff:
                old.update(diff)
                changed[name] = diff
        elif name not in current or old != value:
            current[name] = value if name.endswith("meta_data") else _copy(value)
            changed[name] = value
    return changed


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _is_channels(name: str, value: Mapping[str, Any]) -> bool:
    if name.endswith("meta_data"):
        return False
    for item in value.values():
        if type(item) not in _SCALARS and isinstance(item, Mapping | list):
            return False
    return True


def _copy(value: Any) -> Any:
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {key: _copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy(item) for item in value]
    return value


class HouseholdState:
    """Every known speaker's state and the household topology.

    Speakers are registered by ``ensure`` (the event processor does it for every event);
    variables are the JSON values of ``eventxml.variables_to_json``, merged per service (a
    partial LastChange event updates only its keys). Room names follow the topology and
    DeviceProperties ``zone_name`` events.
    """

    def __init__(self) -> None:
        self._speakers: dict[str, _Speaker] = {}
        self._topologies: dict[str | None, Topology] = {}
        self._merged: Topology | None = None
        self._observers: list[TopologyObserver] = []
        # Per household: {"version", "alarms": [...]} as last read.
        self._alarms: dict[str | None, dict[str, Any]] = {}

    # -- speakers ------------------------------------------------------------------------

    def ensure(self, speaker: SpeakerRef) -> SpeakerRef:
        """Register ``speaker`` if new, else take its address; return the current reference.

        The room name of a known speaker is kept: it follows the topology, which is newer than
        whatever the caller was configured with.
        """
        known = self._speakers.get(speaker.uid)
        if known is None:
            self._speakers[speaker.uid] = _Speaker(ref=speaker)
            return speaker
        ref = known.ref
        if (ref.host, ref.port) != (speaker.host, speaker.port) or (
            speaker.household is not None and ref.household != speaker.household
        ):
            known.ref = attrs.evolve(
                ref,
                host=speaker.host,
                port=speaker.port,
                household=speaker.household or ref.household,
            )
        return known.ref

    def remove(self, uid: str) -> None:
        """Forget a speaker and its state (unknown uids are ignored)."""
        self._speakers.pop(uid, None)

    def speakers(self) -> tuple[SpeakerRef, ...]:
        """Every registered speaker, by room name then uid."""
        refs = (speaker.ref for speaker in self._speakers.values())
        return tuple(sorted(refs, key=lambda ref: (ref.name.casefold(), ref.uid)))

    def by_uid(self, uid: str) -> SpeakerRef | None:
        """The speaker with ``uid``."""
        speaker = self._speakers.get(uid)
        return None if speaker is None else speaker.ref

    def by_name(self, name: str) -> SpeakerRef | None:
        """The speaker in room ``name`` (case-insensitive). In a room with several speakers
        (a stereo pair, a home theatre) the group coordinator or a visible member wins."""
        wanted = name.casefold()
        matches = [s.ref for s in self._speakers.values() if s.ref.name.casefold() == wanted]
        if not matches:
            return None
        return min(matches, key=self._room_rank)

    def _room_rank(self, ref: SpeakerRef) -> tuple[int, str]:
        topology = self.topology
        if topology is None:
            return (1, ref.uid)
        if topology.coordinator_of(ref.uid) == ref.uid:
            return (0, ref.uid)
        member = topology.member(ref.uid)
        return (2 if member is not None and member.invisible else 1, ref.uid)

    def by_host(self, host: str) -> SpeakerRef | None:
        """The speaker at address ``host``."""
        for speaker in self._speakers.values():
            if speaker.ref.host == host:
                return speaker.ref
        return None

    def find(self, key: str) -> SpeakerRef | None:
        """The speaker ``key`` names: a uid, else a room name, else a host."""
        return self.by_uid(key) or self.by_name(key) or self.by_host(key)

    # -- variables -----------------------------------------------------------------------

    def merge(
        self,
        uid: str,
        service: str,
        variables: Mapping[str, Any],
        *,
        seq: int | None,
        time: float,
        source: str = "notify",
        mark: bool = True,
    ) -> dict[str, Any]:
        """Merge a service's JSON variables into a registered speaker's state (see
        ``merge_variables``: values are kept, not copied, so they must not change afterwards).

        @param mark: Record this update as the service's last one (``seq``, ``time``,
            ``source``); a track position read leaves the mark of the last event alone.

        @return: The variables whose value changed (channel dicts: only changed channels).
        @raise KeyError: If ``uid`` is not registered.
        """
        speaker = self._speakers[uid]
        current = speaker.variables.setdefault(service, {})
        changed = merge_variables(current, variables)
        if mark or service not in speaker.marks:
            speaker.marks[service] = ServiceMark(seq=seq, time=time, source=source)
        name = variables.get("zone_name")
        if service == "DeviceProperties" and isinstance(name, str) and name:
            self._rename(uid, name)
        return changed

    def variables(self, uid: str, service: str) -> dict[str, Any]:
        """A copy of a speaker's merged variables for ``service`` (empty if none)."""
        speaker = self._speakers.get(uid)
        if speaker is None:
            return {}
        return _copy(speaker.variables.get(service, {}))

    def mark(self, uid: str, service: str) -> ServiceMark | None:
        """The last update of ``service`` on ``uid``."""
        speaker = self._speakers.get(uid)
        return None if speaker is None else speaker.marks.get(service)

    def clear(self, uid: str, service: str | None = None) -> None:
        """Drop a speaker's merged variables (of one service, or all): after a reboot the
        next full event or resync rebuilds them."""
        speaker = self._speakers.get(uid)
        if speaker is None:
            return
        if service is None:
            speaker.variables.clear()
            speaker.marks.clear()
        else:
            speaker.variables.pop(service, None)
            speaker.marks.pop(service, None)

    # -- availability --------------------------------------------------------------------

    def set_availability(
        self, uid: str, status: str, reason: str | None = None, *, time: float
    ) -> bool:
        """Record a registered speaker's availability ``status`` (one of ``STATUSES``);
        ``True`` if the status changed.

        Only a change of status counts: a new reason for the same status is recorded but
        returns ``False``.

        @raise KeyError: If ``uid`` is not registered.
        @raise ValueError: If ``status`` is not one of ``STATUSES``.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown availability status {status!r}")
        speaker = self._speakers[uid]
        changed = speaker.availability.status != status
        since = time if changed else speaker.availability.since
        speaker.availability = Availability(status=status, reason=reason, since=since)
        return changed

    def availability_counts(self) -> dict[str, int]:
        """How many registered speakers have each status (every status of ``STATUSES``)."""
        counts = dict.fromkeys(STATUSES, 0)
        for speaker in self._speakers.values():
            counts[speaker.availability.status] += 1
        return counts

    def availability(self, uid: str) -> Availability:
        """A speaker's availability (``unknown`` for unregistered uids)."""
        speaker = self._speakers.get(uid)
        return Availability() if speaker is None else speaker.availability

    # -- topology ------------------------------------------------------------------------

    @property
    def topology(self) -> Topology | None:
        """Every household's latest topology as one (``None`` before the first
        ZoneGroupState), for lookups by uid: a uid belongs to one household only."""
        if self._merged is None and self._topologies:
            self._merged = merged(self._topologies.values())
        return self._merged

    def topologies(self) -> dict[str | None, Topology]:
        """The latest topology of each household, by household id."""
        return dict(self._topologies)

    def topology_of(self, household: str | None) -> Topology | None:
        """The latest topology of ``household``."""
        return self._topologies.get(household)

    def topology_for(self, uid: str) -> Topology | None:
        """The topology of the household ``uid`` belongs to (by its speaker's household, else
        by the topology that lists it)."""
        speaker = self._speakers.get(uid)
        if speaker is not None and speaker.ref.household in self._topologies:
            return self._topologies[speaker.ref.household]
        for topology in self._topologies.values():
            if topology.member(uid) is not None or topology.vanished_device(uid) is not None:
                return topology
        return None

    def add_topology_observer(self, observer: TopologyObserver) -> None:
        """Call ``observer(old, new)`` whenever a household's topology changes in any way
        (groups, names, addresses, ``boot_seq``...); ``old`` is that household's previous
        one, ``None`` the first time."""
        self._observers.append(observer)

    def remove_topology_observer(self, observer: TopologyObserver) -> None:
        """Stop calling ``observer``."""
        if observer in self._observers:
            self._observers.remove(observer)

    def set_topology(self, topology: Topology) -> Topology | None:
        """Take a new topology of its household (``topology.household``); rename registered
        speakers after it; notify observers if it differs. Returns that household's previous
        topology. An observer that raises is logged and the others are still called."""
        old = self._topologies.get(topology.household)
        if old == topology:
            return old
        self._topologies[topology.household] = topology
        self._merged = None
        for member in topology.members():
            if member.name and member.uid in self._speakers:
                self._rename(member.uid, member.name)
        for observer in tuple(self._observers):
            try:
                observer(old, topology)
            except Exception:
                log.failure("topology observer {observer!r} failed", observer=observer)
        return old

    def _rename(self, uid: str, name: str) -> None:
        speaker = self._speakers[uid]
        if speaker.ref.name != name:
            speaker.ref = attrs.evolve(speaker.ref, name=name)

    # -- alarms --------------------------------------------------------------------------

    @property
    def alarms(self) -> dict[str, Any] | None:
        """The alarms as last read: ``{"version", "alarms": [...]}``, or ``None`` before the
        first read (``sonosd.household.alarms``). With several households, every household's
        alarms in one list, ``version`` their versions joined by spaces."""
        if not self._alarms:
            return None
        if len(self._alarms) == 1:
            return next(iter(self._alarms.values()))
        lists = [self._alarms[key] for key in sorted(self._alarms, key=str)]
        return {
            "version": " ".join(entry["version"] for entry in lists),
            "alarms": [alarm for entry in lists for alarm in entry["alarms"]],
        }

    def alarms_of(self, household: str | None) -> dict[str, Any] | None:
        """The alarms of ``household`` as last read."""
        return self._alarms.get(household)

    def set_alarms(
        self, version: str, alarms: list[dict[str, Any]], household: str | None = None
    ) -> None:
        """Keep ``household``'s alarm list read at ``version`` (the caller gives up the
        list)."""
        self._alarms[household] = {"version": version, "alarms": alarms}

    # -- snapshot ------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every speaker's state and the topology as JSON (a copy the caller may keep).

        ``{"speakers": [{"uid", "name", "host", "port", "household", "availability": {...},
        "services": {"<Service>": {"seq", "time", "source", "variables": {...}}}}],
        "topology": {"household", "groups": [...], "vanished": [...]} | null}``: the
        topology of every household as one, each group and vanished device naming its
        ``household`` (and ``household`` itself set when there is only one);
        ``"alarms": {"version", "alarms": [...]} | null``.
        """
        topology = self.topology
        return {
            "speakers": [self._speaker_json(ref.uid) for ref in self.speakers()],
            "topology": None if topology is None else topology.to_json(),
            "alarms": _copy(self.alarms),
        }

    def _speaker_json(self, uid: str) -> dict[str, Any]:
        speaker = self._speakers[uid]
        services: dict[str, Any] = {}
        for service, variables in sorted(speaker.variables.items()):
            mark = speaker.marks.get(service)
            services[service] = {
                "seq": None if mark is None else mark.seq,
                "time": None if mark is None else isotime(mark.time),
                "source": None if mark is None else mark.source,
                "variables": _copy(variables),
            }
        return {
            **speaker.ref.to_json(),
            "port": speaker.ref.port,
            "household": speaker.ref.household,
            "availability": speaker.availability.to_json(),
            "services": services,
        }


def speakers_from_topology(topology: Topology) -> Iterable[SpeakerRef]:
    """A reference for every member of ``topology`` that has an address (satellites too)."""
    for member in topology.members():
        if member.host:
            yield SpeakerRef(
                uid=member.uid,
                name=member.name,
                host=member.host,
                port=member.port or 1400,
            )
