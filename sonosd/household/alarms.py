# -*- test-case-name: tests.household.test_alarms -*-
"""The household's alarms as the daemon knows them: parsed, kept in the state, announced.

``parse_alarm_list`` turns a ``ListAlarms`` answer (the ``CurrentAlarmList`` document) into
plain JSON, one object per alarm (docs/messages.md, ``alarms.changed``). ``AlarmWatcher``
follows the ``AlarmListVersion`` every speaker events on AlarmClock: when a version the daemon
has not read yet arrives (a change made by any controller, the daemon's own commands
included), it reads the list once from the speaker that evented it, keeps it in the
``HouseholdState`` (so it is part of the snapshot) and publishes ``alarms.changed`` with the
whole parsed list, then hands it to its ``observers`` (the pending alarm skips of
``sonosd.control.alarms``). Every speaker events the same version: it is read once. The read
is sent by the reactor (``household.soap``: no SoCo, no thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol
from xml.etree import ElementTree

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from sonosd.household.soap import SoapCaller
from sonosd.household.state import HouseholdState, SpeakerRef

log = Logger()

#: Sonos recurrence keywords and the days they mean (Sonos counts Sunday as 0).
RECURRENCE_DAYS: Mapping[str, str] = {
    "DAILY": "0123456",
    "WEEKDAYS": "12345",
    "WEEKENDS": "06",
    "ONCE": "",
}
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NS_DC = "{http://purl.org/dc/elements/1.1/}"
_NS_DIDL = "{urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/}"


def recurrence_days(recurrence: str) -> list[str]:
    """The day names a recurrence rings on (``ONCE``: none; ``ON_135``: mon, wed, fri)."""
    digits = RECURRENCE_DAYS.get(recurrence)
    if digits is None:
        digits = recurrence.removeprefix("ON_") if recurrence.startswith("ON_") else ""
    return [DAY_NAMES[int(d)] for d in sorted(set(digits)) if d in "0123456"]


def alarm_number(text: str) -> int | None:
    """An attribute of 1 to 10 ASCII digits as an integer; anything else a speaker sends (a
    superscript, thousands of digits) is not a number, never an exception that would lose the
    whole list."""
    if 0 < len(text) <= 10 and text.isascii() and text.isdigit():
        return int(text)
    return None


def _program_title(uri: str, metadata: str) -> str | None:
    if uri.startswith("x-rincon-buzzer:"):
        return "Chime"
    if not metadata.strip():
        return None
    try:
        root = ElementTree.fromstring(metadata)
    except ElementTree.ParseError:
        return None
    for tag in ("item", "container"):
        element = root.find(f"{_NS_DIDL}{tag}")
        if element is not None:
            return element.findtext(f"{_NS_DC}title")
    return None


def parse_alarm_list(
    document: str, room_name: Callable[[str], str | None] = lambda uid: None
) -> list[dict[str, Any]]:
    """Every alarm of a ``CurrentAlarmList`` document as JSON, by id.

    @param room_name: The room name of a speaker uid (``None`` when unknown).
    @raise ValueError: The document is not an alarm list.
    """
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as error:
        raise ValueError(f"not an alarm list: {error}") from None
    if root.tag != "Alarms":
        raise ValueError(f"not an alarm list: <{root.tag}>")
    alarms = []
    for element in root.findall("Alarm"):
        get = element.attrib.get
        uid = get("RoomUUID", "")
        uri = get("ProgramURI", "")
        recurrence = get("Recurrence", "")
        alarm_id = get("ID", "")
        number = alarm_number(alarm_id)
        volume = get("Volume", "")
        alarms.append(
            {
                "id": alarm_id if number is None else number,
                "time": get("StartTime", ""),
                "duration": get("Duration") or None,
                "recurrence": recurrence,
                "days": recurrence_days(recurrence),
                "enabled": get("Enabled") == "1",
                "room": {"uid": uid, "name": room_name(uid)},
                "volume": alarm_number(volume),
                "play_mode": get("PlayMode", ""),
                "program": {
                    "uri": uri,
                    "title": _program_title(uri, get("ProgramMetaData", "")),
                },
                "include_linked_zones": get("IncludeLinkedZones") == "1",
            }
        )
    return sorted(alarms, key=lambda alarm: str(alarm["id"]).zfill(12))


class Publisher(Protocol):
    """What the watcher publishes through (``EventProcessor.alarms_changed``)."""

    def alarms_changed(
        self, version: str, alarms: list[dict[str, Any]], household: str | None = None
    ) -> object:
        """Keep the list in the state and publish ``alarms.changed``."""


def alarm_list(answer: Mapping[str, Any]) -> tuple[str, str]:
    """A ``ListAlarms`` answer's ``(document, version)``.

    @raise KeyError: The answer lacks either.
    """
    return str(answer["CurrentAlarmList"]), str(answer["CurrentAlarmListVersion"])


def read_alarms(device: Any) -> tuple[str, str]:
    """``ListAlarms`` on a SoCo device (blocking, for commands): ``(document, version)``."""
    return alarm_list(device.alarmClock.ListAlarms([]))


class AlarmWatcher:
    """Reads the alarm list when a new ``AlarmListVersion`` is evented; see the module docstring.

    @param soap: Sends the ``ListAlarms`` call (``household.soap.SoapClient``).
    @param state: Knows the rooms and keeps the list.
    @param publisher: Publishes ``alarms.changed``.
    @param timeout: Seconds for the read.
    """

    def __init__(
        self,
        soap: SoapCaller,
        state: HouseholdState,
        publisher: Publisher,
        timeout: float = 20.0,
    ) -> None:
        self._soap = soap
        self._state = state
        self._publisher = publisher
        self.timeout = timeout
        # Per household (alarms are kept apart): the version being read, and the next one.
        self._reading: dict[str | None, str] = {}
        self._pending: dict[str | None, tuple[SpeakerRef, str]] = {}
        self.reads = 0
        #: Called with each list read, once published: ``(household, alarms)``.
        self.observers: list[Callable[[str | None, list[dict[str, Any]]], object]] = []

    def on_variables(self, speaker: SpeakerRef, service: str, variables: Mapping[str, Any]) -> None:
        """Look at a service's variables as they arrive (event, poll or resync)."""
        if service != "AlarmClock":
            return
        version = variables.get("alarm_list_version")
        if isinstance(version, str) and version:
            self.on_version(speaker, version)

    def on_version(self, speaker: SpeakerRef, version: str) -> None:
        """``speaker`` evented ``version``: read its household's list unless it is known or
        being read."""
        household = speaker.household
        current = self._state.alarms_of(household)
        reading = self._reading.get(household)
        if (current is not None and current.get("version") == version) or version == reading:
            return
        if reading is not None:
            self._pending[household] = (speaker, version)
            return
        self._reading[household] = version
        Deferred.fromCoroutine(self._read(speaker, version))

    async def _read(self, speaker: SpeakerRef, version: str) -> None:
        try:
            answer = await self._soap.call(
                speaker.host, speaker.port, "AlarmClock", "ListAlarms", timeout=self.timeout
            )
            document, read_version = alarm_list(answer)
            self.reads += 1
            alarms = parse_alarm_list(document, self._room_name)
            self._publisher.alarms_changed(read_version or version, alarms, speaker.household)
        except Exception as error:
            log.warn(
                "cannot read the alarms from {speaker}: {error}",
                speaker=speaker.name or speaker.uid,
                error=error,
            )
        else:
            for observer in self.observers:
                observer(speaker.household, alarms)
        finally:
            self._reading.pop(speaker.household, None)
            pending = self._pending.pop(speaker.household, None)
            if pending is not None:
                self.on_version(*pending)

    def _room_name(self, uid: str) -> str | None:
        ref = self._state.by_uid(uid)
        if ref is not None:
            return ref.name
        topology = self._state.topology
        member = topology.member(uid) if topology is not None else None
        return member.name if member is not None else None
