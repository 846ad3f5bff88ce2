# -*- test-case-name: tests.control.test_alarms -*-
"""The ``alarms`` command: list, create, update, enable, disable, delete and skip alarms.

Alarms belong to the household: any speaker answers for all of them, and an alarm rings in
one room (``room``, by default the speaker named in the command). Every change is a SOAP
call on AlarmClock (``CreateAlarm``, ``UpdateAlarm`` with every field, ``DestroyAlarm``) and is
followed by a fresh ``ListAlarms`` so that the answer shows the alarm as the household now
has it; the speakers then event the new ``AlarmListVersion`` and the daemon publishes
``alarms.changed`` (``sonosd.household.alarms``).

``skip`` has no UPnP action: the daemon disables the alarm and enables it again a minute after
the occurrence it skips (by the daemon's clock, which must be the speakers' time zone). The
pending skip is kept in ``state_dir`` (``sonosd.control.skips``): a daemon that restarts
finishes it, at once if the moment passed while it was down. Without a state directory a
restart before that moment leaves the alarm off.

Another controller (the Sonos app) may change the alarm meanwhile. Every list the daemon reads
after an ``AlarmListVersion`` event comes to ``list_read``: once a list has shown the skipped
alarm off, a later one showing it on, or without it, ends the skip there and then (the alarm
is left as the app made it, whatever the app does to it next). A list read before the skip's
own switch-off (a read still under way) shows it on and is no such sign, hence the wait for
the alarm seen off first. When the moment comes the alarm is read again: one on is left on,
one gone is forgotten (the case of a change no list showed, such as one made while the daemon
was down).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any, ClassVar
from xml.etree import ElementTree

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from sonosd.control.commandargs import ControlError, Params
from sonosd.control.context import ControlContext, call_meaning
from sonosd.control.skips import Skip, SkipFile
from sonosd.household.alarms import RECURRENCE_DAYS, alarm_number, parse_alarm_list, read_alarms
from sonosd.household.state import SpeakerRef

log = Logger()

#: Seconds between attempts to switch a skipped alarm on again when no speaker of its
#: household can be asked (not identified yet after a start, offline, asleep) or it failed.
RESUME_RETRY = 10.0

#: What AlarmClock's UPnP errors mean for these commands.
ALARM_ERRORS = {
    801: ("alarm_exists", 409, "an alarm of that room already rings at that time"),
    701: ("unknown_alarm", 404, "no such alarm"),
    402: ("bad_argument", 400, "the speaker refused the alarm's settings"),
}
_ORDER = (
    "StartLocalTime",
    "Duration",
    "Recurrence",
    "Enabled",
    "RoomUUID",
    "ProgramURI",
    "ProgramMetaData",
    "PlayMode",
    "Volume",
    "IncludeLinkedZones",
)
_DEFAULTS = {
    "Duration": "01:00:00",
    "Recurrence": "DAILY",
    "Enabled": "1",
    "ProgramURI": "x-rincon-buzzer:0",
    "ProgramMetaData": "",
    "PlayMode": "SHUFFLE_NOREPEAT",
    "Volume": "20",
    "IncludeLinkedZones": "0",
}


def raw_alarms(device: Any) -> tuple[str, dict[int, dict[str, str]], str]:
    """``ListAlarms`` (blocking): the version, each alarm's attributes by id, the document."""
    document, version = read_alarms(device)
    found = {}
    for element in ElementTree.fromstring(document).findall("Alarm"):
        alarm_id = alarm_number(element.get("ID", ""))
        if alarm_id is not None:
            found[alarm_id] = dict(element.attrib)
    return version, found, document


def _favorite_program(device: Any, name: str) -> tuple[str, str]:
    for favorite in device.music_library.get_sonos_favorites(complete_result=True):
        if str(favorite.title).casefold() == name.casefold():
            return favorite.get_uri(), getattr(favorite, "resource_meta_data", "") or ""
    raise ControlError("unknown_favorite", 404, f"no favorite named {name!r}")


def _arguments(fields: Params, room_uid: str | None, current: Mapping[str, str]) -> list[Any]:
    """The ten arguments of Create/UpdateAlarm: ``current`` overridden by ``fields``."""
    values = {
        name: current.get("StartTime" if name == "StartLocalTime" else name, _DEFAULTS.get(name))
        for name in _ORDER
    }
    if room_uid is not None:
        values["RoomUUID"] = room_uid
    for field, name in (
        ("time", "StartLocalTime"),
        ("duration", "Duration"),
        ("recurrence", "Recurrence"),
        ("play_mode", "PlayMode"),
        ("uri", "ProgramURI"),
        ("meta", "ProgramMetaData"),
    ):
        if field in fields:
            values[name] = fields[field]
    for field, name in (("enabled", "Enabled"), ("include_linked_zones", "IncludeLinkedZones")):
        if field in fields:
            values[name] = "1" if fields[field] else "0"
    if "volume" in fields:
        values["Volume"] = str(fields["volume"])
    return [(name, values[name] or "") for name in _ORDER]


def change_alarm(
    device: Any, action: str, alarm_id: int | None, fields: Params, room_uid: str | None
) -> int:
    """Create (``alarm_id`` None), update or destroy an alarm (blocking); the alarm's id."""
    if "favorite" in fields:
        uri, meta = _favorite_program(device, fields["favorite"])
        fields = {**fields, "uri": uri, "meta": meta}
    if action == "create":
        answer = device.alarmClock.CreateAlarm(_arguments(fields, room_uid, {}))
        return int(answer["AssignedID"])
    assert alarm_id is not None
    _, alarms, _ = raw_alarms(device)
    if alarm_id not in alarms:
        raise ControlError("unknown_alarm", 404, f"no alarm {alarm_id}; known: {sorted(alarms)}")
    if action == "delete":
        device.alarmClock.DestroyAlarm([("ID", alarm_id)])
    else:
        arguments = _arguments(fields, room_uid, alarms[alarm_id])
        device.alarmClock.UpdateAlarm([("ID", alarm_id), *arguments])
    return alarm_id


def next_occurrence(time: str, recurrence: str, now: dt.datetime) -> dt.datetime:
    """When an alarm at ``time`` (``HH:MM:SS``) with ``recurrence`` next rings after ``now``
    (``ONCE``: the next time that clock time comes)."""
    clock = dt.time.fromisoformat(time)
    digits = RECURRENCE_DAYS.get(recurrence)
    if digits is None:
        digits = recurrence.removeprefix("ON_")
    days = {int(d) for d in digits if d in "0123456"} or set(range(7))
    for offset in range(8):
        day = now.date() + dt.timedelta(days=offset)
        when = dt.datetime.combine(day, clock)
        sonos_day = (day.weekday() + 1) % 7  # Sonos counts from Sunday = 0
        if when > now and sonos_day in days:
            return when
    raise ValueError(f"no occurrence of {recurrence}")  # pragma: no cover - 7 days cover all


class AlarmCommands:
    """``alarms``: see the module docstring and docs/control.md.

    @param now: The daemon's local time (``skip``).
    @param skip_file: Where pending skips are kept across restarts (``None``: in memory only).
        The skips it holds are scheduled at once.
    """

    COMMANDS: ClassVar[tuple[str, ...]] = ("alarms",)

    def __init__(
        self,
        ctx: ControlContext,
        now: Callable[[], dt.datetime] = dt.datetime.now,
        skip_file: SkipFile | None = None,
    ) -> None:
        self._ctx = ctx
        self._now = now
        self._file = skip_file or SkipFile(None)
        #: Pending skips by (household, alarm id), each with the timer that ends it.
        self.skips: dict[tuple[str | None, int], tuple[IDelayedCall, Skip]] = {}
        #: Skips due whose household has no speaker to ask (said once each).
        self._waiting: set[tuple[str | None, int]] = set()
        #: Pending skips whose alarm a list read since showed off (``list_read``).
        self._seen_off: set[tuple[str | None, int]] = set()
        self._stopped = False
        for skip in self._file.load():
            self._schedule(skip)

    async def do_alarms(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Run one ``alarms`` action."""
        action = params["action"]
        if action == "list":
            version, _, document = await self._ctx.call(ref, raw_alarms)
            return {"version": version, "alarms": self._parse(document)}
        if action == "skip":
            return await self._skip(ref, params["id"])
        fields = {k: v for k, v in params.items() if k not in ("action", "id", "room")}
        if action == "enable":
            fields["enabled"] = True
        elif action == "disable":
            fields["enabled"] = False
        room = self._ctx.speaker(params["room"], "room").uid if "room" in params else None
        if action == "create" and room is None:
            room = ref.uid
        alarm_id = await call_meaning(
            self._ctx, ref, ALARM_ERRORS, change_alarm, action, params.get("id"), fields, room
        )
        if action in ("enable", "disable", "delete") or "enabled" in fields:
            # The alarm's on/off is now what the command said: no skip switches it back.
            self._cancel_skip((ref.household, alarm_id))
        version, _, document = await self._ctx.call(ref, raw_alarms)
        if action == "delete":
            return {"deleted": alarm_id, "version": version}
        return {"alarm": self._find(document, alarm_id), "version": version}

    async def _skip(self, ref: SpeakerRef, alarm_id: int) -> dict[str, Any]:
        _, alarms, _ = await self._ctx.call(ref, raw_alarms)
        alarm = alarms.get(alarm_id)
        if alarm is None:
            raise ControlError(
                "unknown_alarm", 404, f"no alarm {alarm_id}; known: {sorted(alarms)}"
            )
        if alarm.get("Enabled") != "1":
            raise ControlError(
                "alarm_disabled", 409, f"alarm {alarm_id} is disabled: there is nothing to skip"
            )
        now = self._now()
        start = alarm.get("StartTime", "00:00:00")
        try:
            skipped = next_occurrence(start, alarm.get("Recurrence", ""), now)
        except ValueError:
            raise ControlError(
                "speaker_error",
                502,
                f"alarm {alarm_id}: the speaker's StartTime {start[:40]!r} is not a time",
            ) from None
        once = alarm.get("Recurrence") == "ONCE"
        await call_meaning(
            self._ctx,
            ref,
            ALARM_ERRORS,
            change_alarm,
            "disable",
            alarm_id,
            {"enabled": False},
            None,
        )
        self._cancel_skip((ref.household, alarm_id))
        resumes: dt.datetime | None = None
        if not once:
            resumes = skipped + dt.timedelta(minutes=1)
            self._schedule(Skip(ref.household, alarm_id, ref.uid, skipped, resumes))
            self._save()
        version, _, document = await self._ctx.call(ref, raw_alarms)
        return {
            "alarm": self._find(document, alarm_id),
            "version": version,
            "skipped": skipped.isoformat(timespec="seconds"),
            "resumes": None if resumes is None else resumes.isoformat(timespec="seconds"),
        }

    def _schedule(self, skip: Skip, delay: float | None = None) -> None:
        """Switch ``skip``'s alarm on again at ``skip.resumes`` (or after ``delay``)."""
        if self._stopped:
            return
        if delay is None:
            delay = max(0.0, (skip.resumes - self._now()).total_seconds())
        call = self._ctx.reactor.callLater(delay, self._resume, skip)
        self.skips[skip.key] = (call, skip)

    def _asker(self, skip: Skip) -> SpeakerRef | None:
        """An online speaker of the skip's household: the one the skip was made through
        first."""
        state = self._ctx.state
        first = state.by_uid(skip.speaker)
        others = [ref for ref in state.speakers() if ref.household == skip.household]
        for ref in ([first] if first is not None else []) + others:
            if state.availability(ref.uid).status == "online":
                return ref
        return None

    def _resume(self, skip: Skip) -> None:
        ref = self._asker(skip)
        if ref is None:
            if skip.key not in self._waiting:
                self._waiting.add(skip.key)
                log.info(
                    "alarm {alarm} is due to be enabled again after its skipped occurrence: "
                    "waiting for a speaker of its household to answer",
                    alarm=skip.alarm,
                )
            self._schedule(skip, RESUME_RETRY)
            return
        self._waiting.discard(skip.key)
        # The alarm switched on from here on is the skip's own doing, no sign for list_read.
        self._seen_off.discard(skip.key)
        Deferred.fromCoroutine(self._enable(ref, skip))

    async def _enable(self, ref: SpeakerRef, skip: Skip) -> None:
        try:
            _, alarms, _ = await self._ctx.call(ref, raw_alarms)
            alarm = alarms.get(skip.alarm)
            if alarm is None:
                log.info("skipped alarm {alarm} was deleted meanwhile", alarm=skip.alarm)
            elif alarm.get("Enabled") != "1":
                on = {"enabled": True}
                await self._ctx.call(ref, change_alarm, "enable", skip.alarm, on, None)
                log.info(
                    "alarm {alarm} enabled again after its skipped occurrence", alarm=skip.alarm
                )
        except Exception as error:
            log.warn(
                "cannot enable alarm {alarm} again ({error}): trying again in {seconds} s",
                alarm=skip.alarm,
                error=error,
                seconds=RESUME_RETRY,
            )
            if self._pending(skip):
                self._schedule(skip, RESUME_RETRY)
            return
        if self._pending(skip):
            del self.skips[skip.key]
            self._seen_off.discard(skip.key)
            self._save()

    def list_read(self, household: str | None, alarms: list[dict[str, Any]]) -> None:
        """``household``'s alarm list as the daemon just read it (``alarms.changed``): a
        skipped alarm seen off before and now on, or gone, was switched on or deleted by
        another controller; its skip ends, leaving the alarm as it is. A skip due but
        waiting for a speaker of ``household`` to answer is tried at once (one just did),
        not at its next retry."""
        for key, (_, skip) in list(self.skips.items()):
            if key[0] != household:
                continue
            alarm = next((a for a in alarms if a.get("id") == skip.alarm), None)
            if alarm is not None and alarm.get("enabled") is False:
                self._seen_off.add(key)
            elif key in self._seen_off:
                log.info(
                    "skipped alarm {alarm} was {what} meanwhile: the skip ends",
                    alarm=skip.alarm,
                    what="deleted" if alarm is None else "switched on",
                )
                self._cancel_skip(key)
        for key in [key for key in self._waiting if key[0] == household]:
            entry = self.skips.get(key)
            if entry is None:
                self._waiting.discard(key)
            elif entry[0].active():
                entry[0].cancel()
                self._resume(entry[1])

    def _pending(self, skip: Skip) -> bool:
        """Whether ``skip`` is still pending (no command cancelled or replaced it)."""
        entry = self.skips.get(skip.key)
        return entry is not None and entry[1] is skip

    def _cancel_skip(self, key: tuple[str | None, int]) -> None:
        self._seen_off.discard(key)
        pending = self.skips.pop(key, None)
        if pending is not None:
            if pending[0].active():
                pending[0].cancel()
            self._save()

    def _save(self) -> None:
        self._file.save(skip for _, skip in self.skips.values())

    def stop(self) -> None:
        """Cancel the timers (the daemon stops); the skips stay in the file for the next
        start."""
        self._stopped = True
        for call, _ in self.skips.values():
            if call.active():
                call.cancel()

    def _parse(self, document: str) -> list[dict[str, Any]]:
        def room_name(uid: str) -> str | None:
            ref = self._ctx.state.by_uid(uid)
            return None if ref is None else ref.name

        return parse_alarm_list(document, room_name)

    def _find(self, document: str, alarm_id: int) -> dict[str, Any]:
        for alarm in self._parse(document):
            if alarm["id"] == alarm_id:
                return alarm
        raise ControlError("unknown_alarm", 404, f"alarm {alarm_id} is gone")
