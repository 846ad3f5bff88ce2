# -*- test-case-name: tests.sim.test_alarms -*-
"""The household's alarms: ``CreateAlarm``/``UpdateAlarm``/``DestroyAlarm`` and ``ListAlarms``.

``AlarmList`` holds the alarms and the list version (``AlarmListVersion`` ``<uid>:<n>``),
which goes up by exactly one per change; a new alarm's id is the version its creation makes
(SoCo's ``Alarm.save()`` counts on both: after ``CreateAlarm`` it takes ``<uid>:<new id>`` as
the list version when the list was at ``<new id> - 1``, so as not to re-read it).

Arguments are checked as speakers check them: UPnP 402 (invalid args), 801 (an alarm of
that room at that time and recurrence exists: the AlarmClock error sonos-api-docs lists),
701 for an unknown alarm id (no such object).

``alarm_list_xml`` is the ``CurrentAlarmList`` document, attribute for attribute as real
firmware writes it (``samples/soap/outarg_fragment_alarm-service.ListAlarms.xml``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from xml.sax.saxutils import escape

import attrs

from sonosd.sim.soap import UPnPError
from sonosd.sim.soapargs import boolean, flag, integer, required
from sonosd.sim.speakerstate import Alarm

RECURRENCE_WORDS = frozenset({"DAILY", "ONCE", "WEEKDAYS", "WEEKENDS"})
_RECURRENCE = re.compile(r"^ON_[0-6]{1,7}$")
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d):([0-5]\d)$")
ALARM_PLAY_MODES = frozenset(
    {"NORMAL", "REPEAT_ALL", "REPEAT_ONE", "SHUFFLE", "SHUFFLE_NOREPEAT", "SHUFFLE_REPEAT_ONE"}
)


def _clock_time(args: Mapping[str, str], name: str, empty: bool = False) -> str:
    value = required(args, name).strip()
    if empty and not value:
        return ""
    match = _TIME.match(value)
    if match is None:
        raise UPnPError(402, f"{name} {value!r} is not HH:MM:SS")
    hours, minutes, seconds = match.groups()
    return f"{int(hours):02d}:{minutes}:{seconds}"


def parse_alarm(args: Mapping[str, str], alarm_id: int, room_known: Callable[[str], bool]) -> Alarm:
    """The alarm described by ``CreateAlarm``/``UpdateAlarm`` arguments; 402 if invalid."""
    recurrence = required(args, "Recurrence").strip()
    if recurrence not in RECURRENCE_WORDS and not _RECURRENCE.match(recurrence):
        raise UPnPError(402, f"bad recurrence {recurrence!r}")
    room = required(args, "RoomUUID").strip()
    if not room_known(room):
        raise UPnPError(402, f"unknown room {room!r}")
    play_mode = args.get("PlayMode", "NORMAL").strip() or "NORMAL"
    if play_mode not in ALARM_PLAY_MODES:
        raise UPnPError(402, f"bad play mode {play_mode!r}")
    volume = integer(args, "Volume", 20)
    if not 0 <= volume <= 100:
        raise UPnPError(402, "volume out of range")
    return Alarm(
        alarm_id=alarm_id,
        start_time=_clock_time(args, "StartLocalTime"),
        duration=_clock_time(args, "Duration", empty=True),
        recurrence=recurrence,
        enabled=boolean(args, "Enabled"),
        room_uid=room,
        program_uri=args.get("ProgramURI", "").strip() or "x-rincon-buzzer:0",
        program_metadata=args.get("ProgramMetaData", ""),
        play_mode=play_mode,
        volume=volume,
        include_linked_zones=boolean(args, "IncludeLinkedZones")
        if "IncludeLinkedZones" in args
        else False,
    )


@attrs.define
class AlarmList:
    """Every alarm of the household and its list version; see the module docstring.

    @ivar owner: The uid in ``AlarmListVersion`` (the speaker that keeps the list).
    """

    owner: str
    alarms: list[Alarm] = attrs.field(factory=list)
    version: int = 1

    @property
    def list_version(self) -> str:
        """``AlarmListVersion``: ``<owner uid>:<n>``."""
        return f"{self.owner}:{self.version}"

    def find(self, alarm_id: int) -> Alarm:
        """The alarm with that id; 701 if there is none."""
        for alarm in self.alarms:
            if alarm.alarm_id == alarm_id:
                return alarm
        raise UPnPError(701, f"no alarm {alarm_id}")

    def __attrs_post_init__(self) -> None:
        self.version = max([self.version, *(a.alarm_id for a in self.alarms)])

    def create(self, alarm: Alarm) -> int:
        """Add ``alarm`` (its own id is ignored); its id is the new list version."""
        alarm = attrs.evolve(alarm, alarm_id=self.version + 1)
        self._check_duplicate(alarm)
        self.alarms.append(alarm)
        self.version = alarm.alarm_id
        return alarm.alarm_id

    def update(self, alarm: Alarm) -> None:
        """Replace the alarm with ``alarm``'s id; 701 if there is none."""
        old = self.find(alarm.alarm_id)
        self._check_duplicate(alarm)
        self.alarms[self.alarms.index(old)] = alarm
        self.version += 1

    def destroy(self, alarm_id: int) -> None:
        """Remove the alarm; 701 if there is none."""
        self.alarms.remove(self.find(alarm_id))
        self.version += 1

    def _check_duplicate(self, alarm: Alarm) -> None:
        for other in self.alarms:
            if other.alarm_id != alarm.alarm_id and (
                other.room_uid,
                other.start_time,
                other.recurrence,
            ) == (alarm.room_uid, alarm.start_time, alarm.recurrence):
                raise UPnPError(801, "duplicate alarm time")


def alarm_list_xml(alarms: Iterable[Alarm]) -> str:
    """``CurrentAlarmList``: an ``<Alarms>`` document (the SOAP layer escapes it once more)."""
    parts = ["<Alarms>"]
    for alarm in alarms:
        parts.append(
            f'<Alarm ID="{alarm.alarm_id}" StartTime="{alarm.start_time}" '
            f'Duration="{alarm.duration}" Recurrence="{alarm.recurrence}" '
            f'Enabled="{flag(alarm.enabled)}" RoomUUID="{alarm.room_uid}" '
            f"ProgramURI={_attr(alarm.program_uri)} "
            f"ProgramMetaData={_attr(alarm.program_metadata)} "
            f'PlayMode="{alarm.play_mode}" Volume="{alarm.volume}" '
            f'IncludeLinkedZones="{flag(alarm.include_linked_zones)}"/>'
        )
    parts.append("</Alarms>")
    return "".join(parts)


def _attr(value: str) -> str:
    """A double-quoted attribute value, as firmware writes them."""
    return '"' + escape(value, {'"': "&quot;"}) + '"'
