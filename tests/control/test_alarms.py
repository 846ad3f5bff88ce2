"""Tests for control.alarms: alarms listed, created, changed, switched off, deleted and skipped
through the whole daemon against the simulated household; the next-occurrence arithmetic."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from typing import Any

import pytest
import treq
from soco import SoCo
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.http_headers import Headers

from sonosd.config import SimulateConfig, parse_config
from sonosd.control.alarms import (
    RESUME_RETRY,
    AlarmCommands,
    _arguments,
    change_alarm,
    next_occurrence,
    raw_alarms,
)
from sonosd.control.commandargs import ControlError
from sonosd.control.skips import FILE_NAME, Skip, SkipFile
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.service import SonosdService
from sonosd.sim.service import HouseholdService
from sonosd.sim.speakerstate import Alarm
from tests.conftest import free_loopback_base
from tests.control.daemon_commands import alarms_changed, grouped, start
from tests.control.test_controller_daemon import Daemon, arrives
from tests.daemon_helpers import daemon_yaml, http_agent, reactor, start_recorded, until
from tests.soco_helpers import in_thread

# 2026-11-23 is a Monday.
MONDAY_NOON = dt.datetime(2026, 11, 23, 12, 0, 0)


@pytest.mark.parametrize(
    ("time", "recurrence", "expected"),
    [
        ("13:00:00", "DAILY", dt.datetime(2026, 11, 23, 13, 0)),
        ("07:00:00", "DAILY", dt.datetime(2026, 11, 24, 7, 0)),
        ("07:00:00", "WEEKENDS", dt.datetime(2026, 11, 28, 7, 0)),
        ("07:00:00", "WEEKDAYS", dt.datetime(2026, 11, 24, 7, 0)),
        ("11:00:00", "ON_1", dt.datetime(2026, 11, 30, 11, 0)),
        ("12:30:00", "ONCE", dt.datetime(2026, 11, 23, 12, 30)),
        ("06:00:00", "ON_0", dt.datetime(2026, 11, 29, 6, 0)),
        # No day a speaker could mean ("²" is a digit to str.isdigit): every day, as DAILY.
        ("07:00:00", "ON_\u00b2", dt.datetime(2026, 11, 24, 7, 0)),
    ],
)
def test_next_occurrence(time: str, recurrence: str, expected: dt.datetime) -> None:
    """The next ring after Monday noon, Sonos counting days from Sunday = 0."""
    assert next_occurrence(time, recurrence, MONDAY_NOON) == expected


def test_raw_alarms_keeps_only_ascii_ids() -> None:
    """Alarms whose ID is no ASCII number ("²", 5,000 digits) are left out of the raw list
    instead of failing the command with int()'s ValueError."""
    document = "".join(
        f'<Alarm ID="{alarm_id}" StartTime="07:00:00"/>' for alarm_id in ("\u00b2", "9" * 5000, "4")
    )

    class AlarmClock:
        def ListAlarms(self, arguments: object) -> dict[str, str]:
            return {
                "CurrentAlarmList": f"<Alarms>{document}</Alarms>",
                "CurrentAlarmListVersion": "v",
            }

    class Device:
        alarmClock = AlarmClock()

    version, found, _ = raw_alarms(Device())
    assert (version, list(found)) == ("v", [4])


def test_update_keeps_unnamed_fields() -> None:
    """UpdateAlarm sends every field: the alarm's own, overridden by those given."""
    current = {
        "StartTime": "07:00:00",
        "Duration": "00:30:00",
        "Recurrence": "WEEKDAYS",
        "Enabled": "1",
        "RoomUUID": "RINCON_A",
        "ProgramURI": "x-rincon-buzzer:0",
        "ProgramMetaData": "",
        "PlayMode": "NORMAL",
        "Volume": "15",
        "IncludeLinkedZones": "0",
    }
    arguments = dict(_arguments({"volume": 40, "enabled": False}, None, current))
    assert arguments["StartLocalTime"] == "07:00:00" and arguments["Duration"] == "00:30:00"
    assert (arguments["Volume"], arguments["Enabled"], arguments["RoomUUID"]) == (
        "40",
        "0",
        "RINCON_A",
    )
    created = dict(_arguments({"time": "06:15:00"}, "RINCON_B", {}))
    assert (created["StartLocalTime"], created["Recurrence"], created["RoomUUID"]) == (
        "06:15:00",
        "DAILY",
        "RINCON_B",
    )


def _alarm(alarms: list[dict[str, Any]], alarm_id: int) -> dict[str, Any] | None:
    return next((alarm for alarm in alarms if alarm["id"] == alarm_id), None)


class AlarmDaemonTests(TestCase):
    timeout = 120

    async def test_create_and_switch_off(self) -> None:
        """An alarm is created in the kitchen and switched off: the simulated household holds
        it each time, and alarms.changed carries the list each time."""
        daemon, client = await start(self)
        kitchen = daemon.speaker(0)
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen",
            "alarms",
            {"action": "create", "time": "6:45", "days": ["mon", "wed"], "volume": 18},
        )
        self.assertEqual(status, 200, body)
        alarm = body["result"]["alarm"]
        alarm_id = alarm["id"]
        self.assertEqual(
            (alarm["time"], alarm["recurrence"], alarm["days"], alarm["enabled"]),
            ("06:45:00", "ON_13", ["mon", "wed"], True),
        )
        self.assertEqual(alarm["room"], {"uid": kitchen.uid, "name": "Kitchen"})
        held = next(a for a in daemon.household.alarms if a.alarm_id == alarm_id)
        self.assertEqual(
            (held.start_time, held.room_uid, held.volume), ("06:45:00", kitchen.uid, 18)
        )
        created = await arrives(
            client.messages,
            mark,
            alarms_changed(lambda alarms: _alarm(alarms, alarm_id) is not None),
            "alarms.changed with the new alarm",
        )
        status, body = await daemon.post("Office", "alarms", {"action": "disable", "id": alarm_id})
        self.assertEqual(status, 200, body)
        self.assertFalse(body["result"]["alarm"]["enabled"])
        self.assertFalse(next(a for a in daemon.household.alarms if a.alarm_id == alarm_id).enabled)
        await arrives(
            client.messages,
            created + 1,
            alarms_changed(lambda alarms: (_alarm(alarms, alarm_id) or {}).get("enabled") is False),
            "alarms.changed with the alarm off",
        )
        snapshot = daemon.service.state.snapshot()["alarms"]
        self.assertFalse(_alarm(snapshot["alarms"], alarm_id)["enabled"])  # type: ignore[index]

    async def test_any_speaker_answers_alarms(self) -> None:
        """Alarms belong to the household: a speaker that is not the alarm's room, a group
        member and a speaker whose room holds no alarm (and one of its invisible satellites)
        each list, create, change, skip and delete the same alarms."""
        daemon, _ = await start(self)
        kitchen, office, amp = daemon.speaker(0), daemon.speaker(1), daemon.speaker(2)
        surround = daemon.speaker(5)
        await grouped(daemon, office, kitchen)
        for alarm in [a for a in daemon.household.alarms if a.room_uid == amp.uid]:
            daemon.household.alarms.remove(alarm)
        self.assertNotIn(amp.uid, {a.room_uid for a in daemon.household.alarms})
        self.assertNotIn(surround.uid, {a.room_uid for a in daemon.household.alarms})

        def held(alarm_id: int) -> Any:
            return next((a for a in daemon.household.alarms if a.alarm_id == alarm_id), None)

        # Created through the Living Room, for the kitchen.
        status, body = await daemon.post(
            "Living Room", "alarms", {"action": "create", "time": "06:30", "room": "Kitchen"}
        )
        self.assertEqual(status, 200, body)
        alarm_id = body["result"]["alarm"]["id"]
        self.assertEqual(body["result"]["alarm"]["room"], {"uid": kitchen.uid, "name": "Kitchen"})
        self.assertEqual(held(alarm_id).room_uid, kitchen.uid)
        # Listed by a group member, the room without alarms and a satellite alike.
        lists = []
        for speaker in ("Office", "Living Room", surround.uid):
            status, body = await daemon.post(speaker, "alarms", {"action": "list"})
            self.assertEqual(status, 200, (speaker, body))
            lists.append(body["result"])
        version = daemon.household.alarm_list_version()
        expected = sorted(a.alarm_id for a in daemon.household.alarms)
        for listed in lists:
            self.assertEqual(listed["version"], version)
            self.assertEqual(sorted(a["id"] for a in listed["alarms"]), expected)
        # Changed by the group member, skipped and deleted by the room without alarms.
        status, body = await daemon.post(
            "Office", "alarms", {"action": "update", "id": alarm_id, "volume": 31}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual((held(alarm_id).volume, held(alarm_id).room_uid), (31, kitchen.uid))
        status, body = await daemon.post(
            "Living Room", "alarms", {"action": "skip", "id": alarm_id}
        )
        self.assertEqual(status, 200, body)
        self.assertFalse(held(alarm_id).enabled)
        status, body = await daemon.post(
            surround.uid, "alarms", {"action": "enable", "id": alarm_id}
        )
        self.assertEqual(status, 200, body)
        self.assertTrue(held(alarm_id).enabled)
        status, body = await daemon.post(
            "Living Room", "alarms", {"action": "delete", "id": alarm_id}
        )
        self.assertEqual((status, body["result"]["deleted"]), (200, alarm_id))
        self.assertIsNone(held(alarm_id))

    async def test_create_defaults_and_another_room(self) -> None:
        """An alarm given only a time rings daily for an hour at volume 20 with the chime in
        the room named; room and a null duration (until stopped) are taken when given."""
        daemon, _ = await start(self)
        kitchen, office = daemon.speaker(0), daemon.speaker(1)

        def held(alarm_id: int) -> Any:
            return next(a for a in daemon.household.alarms if a.alarm_id == alarm_id)

        status, body = await daemon.post("Office", "alarms", {"action": "create", "time": "07:00"})
        self.assertEqual(status, 200, body)
        alarm = held(body["result"]["alarm"]["id"])
        self.assertEqual(
            (alarm.recurrence, alarm.duration, alarm.volume, alarm.enabled, alarm.room_uid),
            ("DAILY", "01:00:00", 20, True, office.uid),
        )
        self.assertEqual(alarm.program_uri, "x-rincon-buzzer:0")
        status, body = await daemon.post(
            "Office",
            "alarms",
            {"action": "create", "time": "07:30", "room": "kitchen", "duration": None},
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["alarm"]["room"], {"uid": kitchen.uid, "name": "Kitchen"})
        alarm = held(body["result"]["alarm"]["id"])
        self.assertEqual((alarm.room_uid, alarm.duration), (kitchen.uid, ""))

    async def test_update_enable_list_delete(self) -> None:
        """update changes only the fields given; enable switches on; list reads the list;
        delete removes it."""
        daemon, client = await start(self)
        existing = daemon.household.alarms[1]
        status, body = await daemon.post(
            "Kitchen",
            "alarms",
            {"action": "update", "id": existing.alarm_id, "volume": 33, "play_mode": "shuffle"},
        )
        self.assertEqual(status, 200, body)
        updated = next(a for a in daemon.household.alarms if a.alarm_id == existing.alarm_id)
        self.assertEqual((updated.volume, updated.play_mode), (33, "SHUFFLE"))
        self.assertEqual(updated.start_time, existing.start_time)
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "enable", "id": existing.alarm_id}
        )
        self.assertTrue(body["result"]["alarm"]["enabled"])
        status, body = await daemon.post("Kitchen", "alarms", {})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["version"], daemon.household.alarm_list_version())
        self.assertEqual(len(body["result"]["alarms"]), len(daemon.household.alarms))
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "delete", "id": existing.alarm_id}
        )
        self.assertEqual((status, body["result"]["deleted"]), (200, existing.alarm_id))
        self.assertNotIn(existing.alarm_id, [a.alarm_id for a in daemon.household.alarms])
        await arrives(
            client.messages,
            mark,
            alarms_changed(lambda alarms: _alarm(alarms, existing.alarm_id) is None),
            "alarms.changed without the alarm",
        )

    async def test_update_days_and_linked_zones(self) -> None:
        """update with days and include_linked_zones sets the alarm's recurrence (ON_<days>)
        and its linked-zones flag in the household, keeps its time, and answers and events
        the changed alarm."""
        daemon, client = await start(self)
        existing = daemon.household.alarms[1]
        linked, start_time = not existing.include_linked_zones, existing.start_time
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen",
            "alarms",
            {
                "action": "update",
                "id": existing.alarm_id,
                "days": ["sat", "tue"],
                "include_linked_zones": linked,
            },
        )
        self.assertEqual(status, 200, body)
        alarm = body["result"]["alarm"]
        self.assertEqual(
            (alarm["recurrence"], alarm["days"], alarm["include_linked_zones"]),
            ("ON_26", ["tue", "sat"], linked),
        )
        held = next(a for a in daemon.household.alarms if a.alarm_id == existing.alarm_id)
        self.assertEqual(
            (held.recurrence, held.include_linked_zones, held.start_time),
            ("ON_26", linked, start_time),
        )

        def changed(alarms: list[dict[str, Any]]) -> bool:
            listed = _alarm(alarms, existing.alarm_id) or {}
            return (listed.get("recurrence"), listed.get("include_linked_zones")) == (
                "ON_26",
                linked,
            )

        await arrives(
            client.messages,
            mark,
            alarms_changed(changed),
            "alarms.changed with the new days and linked zones",
        )

    async def test_program_from_a_favorite(self) -> None:
        """An alarm can play a favourite: its URI and metadata become the programme."""
        daemon, _ = await start(self)
        favorite = daemon.household.favorites[2]
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "create", "time": "08:10", "favorite": favorite.title}
        )
        self.assertEqual(status, 200, body)
        program = body["result"]["alarm"]["program"]
        self.assertEqual(program, {"uri": favorite.uri, "title": favorite.title})
        # Or a URI with its DIDL-Lite metadata (docs/control.md: ``uri`` + ``meta``).
        uri = "x-rincon-mp3radio://127.0.0.1/morning.mp3"
        meta = (
            '<DIDL-Lite xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/">'
            '<item id="-1" parentID="-1"><dc:title>Morning</dc:title></item></DIDL-Lite>'
        )
        status, body = await daemon.post(
            "Kitchen",
            "alarms",
            {
                "action": "create",
                "time": "08:20",
                "recurrence": "WEEKENDS",
                "uri": uri,
                "meta": meta,
            },
        )
        self.assertEqual(status, 200, body)
        created = body["result"]["alarm"]
        held = next(a for a in daemon.household.alarms if a.alarm_id == created["id"])
        self.assertEqual(
            (held.program_uri, held.program_metadata, held.recurrence),
            (uri, meta, "WEEKENDS"),
        )
        self.assertEqual(created["program"]["uri"], uri)

    async def test_skip_disables_until_after_the_next_ring(self) -> None:
        """skip switches the alarm off and schedules it on again a minute after the ring it
        skips (by the daemon's clock); an update that leaves on/off alone keeps the skip,
        enable ends it."""
        daemon, _ = await start(self)
        alarms = daemon.service.controller.alarms
        alarms._now = lambda: MONDAY_NOON
        weekday = daemon.household.alarms[0]
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "skip", "id": weekday.alarm_id}
        )
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual(
            (result["skipped"], result["resumes"]), ("2026-11-24T07:00:00", "2026-11-24T07:01:00")
        )
        self.assertFalse(result["alarm"]["enabled"])
        call, _ = alarms.skips[(daemon.household.household_id, weekday.alarm_id)]
        delay = call.getTime() - daemon.service.reactor.seconds()
        self.assertLess(abs(delay - (19 * 3600 + 60)), 5)
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "skip", "id": weekday.alarm_id}
        )
        self.assertEqual((status, body["error"]["code"]), (409, "alarm_disabled"))
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "update", "id": weekday.alarm_id, "volume": 12}
        )
        self.assertEqual(status, 200, body)
        self.assertIn((daemon.household.household_id, weekday.alarm_id), alarms.skips)
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "enable", "id": weekday.alarm_id}
        )
        self.assertEqual(status, 200, body)
        self.assertEqual(alarms.skips, {})

    async def test_disable_delete_or_update_of_enabled_cancels_a_skip(self) -> None:
        """disable, an update that sets enabled, and delete each end a pending skip: the
        alarm is not switched on again behind the command's back."""
        daemon, _ = await start(self)
        alarms = daemon.service.controller.alarms
        alarms._now = lambda: MONDAY_NOON
        alarm_id = daemon.household.alarms[0].alarm_id
        key = (daemon.household.household_id, alarm_id)
        for command in (
            {"action": "disable", "id": alarm_id},
            {"action": "update", "id": alarm_id, "enabled": False, "volume": 14},
            {"action": "delete", "id": alarm_id},
        ):
            status, body = await daemon.post(
                "Kitchen", "alarms", {"action": "enable", "id": alarm_id}
            )
            self.assertEqual(status, 200, body)
            status, body = await daemon.post(
                "Kitchen", "alarms", {"action": "skip", "id": alarm_id}
            )
            self.assertEqual(status, 200, body)
            self.assertIn(key, alarms.skips)
            status, body = await daemon.post("Kitchen", "alarms", command)
            self.assertEqual(status, 200, body)
            self.assertNotIn(key, alarms.skips, command)
            if command["action"] == "delete":
                break

    async def test_skip_of_a_once_alarm_leaves_it_off(self) -> None:
        """Skipping a ONCE alarm answers resumes null and switches it off for good: no
        skip is pending."""
        daemon, _ = await start(self)
        alarms = daemon.service.controller.alarms
        alarms._now = lambda: MONDAY_NOON
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "create", "time": "06:45", "recurrence": "ONCE"}
        )
        self.assertEqual(status, 200, body)
        alarm_id = body["result"]["alarm"]["id"]
        status, body = await daemon.post("Kitchen", "alarms", {"action": "skip", "id": alarm_id})
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual((result["skipped"], result["resumes"]), ("2026-11-24T06:45:00", None))
        self.assertFalse(result["alarm"]["enabled"])
        self.assertEqual(alarms.skips, {})
        held = [alarm for alarm in daemon.household.alarms if alarm.alarm_id == alarm_id]
        self.assertEqual([alarm.enabled for alarm in held], [False])

    async def test_errors(self) -> None:
        """Unknown ids are 404, a duplicate alarm 409 with UPnP 801, bad times 400."""
        daemon, _ = await start(self)
        existing = daemon.household.alarms[0]
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({"action": "disable", "id": 999}, 404, "unknown_alarm"),
            ({"action": "skip", "id": 999}, 404, "unknown_alarm"),
            ({"action": "create", "time": "25:00"}, 400, "bad_argument"),
            ({"action": "create"}, 400, "bad_argument"),
            ({"action": "update", "id": 1}, 400, "bad_argument"),
            ({"action": "create", "time": "7:00", "recurrence": "SOMETIMES"}, 400, "bad_argument"),
            (
                {
                    "action": "create",
                    "time": existing.start_time,
                    "recurrence": existing.recurrence,
                    "room": "Kitchen",
                },
                409,
                "alarm_exists",
            ),
        ]
        kitchen = daemon.speaker(0).name
        for args, status_expected, code in cases:
            speaker = kitchen if existing.room_uid == daemon.speaker(0).uid else "Living Room"
            status, body = await daemon.post(speaker, "alarms", args)
            self.assertEqual((status, body["error"]["code"]), (status_expected, code), args)
        status, body = await daemon.post("Kitchen", "alarms", cases[-1][0])
        self.assertEqual(body["error"]["upnp_error"], 801)

    def hostile(self, daemon: Daemon, name: str, value: str) -> None:
        """Every simulated speaker answers ListAlarms with ``value`` as the first alarm's
        attribute ``name``."""
        for index in range(len(daemon.household.speakers)):
            faults = daemon.speaker(index).soap_faults
            faults.rewrite_action, faults.rewrite_name, faults.rewrite_value = (
                "ListAlarms",
                name,
                value,
            )
            self.addCleanup(faults.reset)

    async def test_odd_digits_in_one_alarm_keep_the_list(self) -> None:
        """A speaker listing one alarm with an ID, Volume or Recurrence of odd digits ("²",
        5,000 digits) still gets every alarm listed, that one with the value as text or none;
        a character XML cannot carry in the answer is dropped ("7\\x013" is volume 73)."""
        daemon, _ = await start(self)
        first = daemon.household.alarms[0]
        for name, value, field, expected in (
            ("ID", "\u00b2", "id", "\u00b2"),
            ("ID", "9" * 5000, "id", "9" * 5000),
            ("Volume", "\u00b2", "volume", None),
            ("Volume", "9" * 5000, "volume", None),
            ("Recurrence", "ON_\u00b2", "days", []),
            # A character XML cannot carry (as some firmware sends in metadata) is dropped.
            ("Volume", "7\x013", "volume", 73),
        ):
            self.hostile(daemon, name, value)
            status, body = await daemon.post("Kitchen", "alarms", {})
            self.assertEqual(status, 200, body)
            alarms = body["result"]["alarms"]
            self.assertEqual(len(alarms), len(daemon.household.alarms), name)
            listed = [alarm[field] for alarm in alarms]
            self.assertIn(expected, listed, name)
            if field != "id":
                self.assertIsNotNone(_alarm(alarms, first.alarm_id), name)
        # The rewritten alarm is still the household's: an untouched list has it as it is.
        for index in range(len(daemon.household.speakers)):
            daemon.speaker(index).soap_faults.reset()
        status, body = await daemon.post("Kitchen", "alarms", {})
        self.assertEqual(_alarm(body["result"]["alarms"], first.alarm_id)["volume"], first.volume)  # type: ignore[index]

    async def test_odd_digits_in_one_alarm_keep_the_evented_list(self) -> None:
        """When the alarm list changes while a speaker lists one alarm with a Volume of 5,000
        digits, alarms.changed and the state still carry every alarm, that one without a
        volume."""
        daemon, client = await start(self)
        first = daemon.household.alarms[0]
        self.hostile(daemon, "Volume", "9" * 5000)
        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "alarms", {"action": "create", "time": "05:55"})
        self.assertEqual(status, 200, body)
        created = body["result"]["alarm"]["id"]

        def complete(alarms: list[dict[str, Any]]) -> bool:
            return (
                _alarm(alarms, created) is not None
                and len(alarms) == len(daemon.household.alarms)
                and (_alarm(alarms, first.alarm_id) or {}).get("volume", 0) is None
            )

        await arrives(client.messages, mark, alarms_changed(complete), "alarms.changed, whole")
        snapshot = daemon.service.state.snapshot()["alarms"]
        self.assertTrue(complete(snapshot["alarms"]))  # type: ignore[index]

    async def test_skip_of_an_alarm_whose_start_time_is_no_time_is_a_502(self) -> None:
        """Skipping an alarm whose StartTime a speaker lists as no clock time is a 502 naming
        it, and leaves the alarm switched on."""
        daemon, _ = await start(self)
        first = daemon.household.alarms[0]
        self.assertTrue(first.enabled)
        self.hostile(daemon, "StartTime", "25:99:\u00b2")
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "skip", "id": first.alarm_id}
        )
        self.assertEqual((status, body["error"]["code"]), (502, "speaker_error"), body)
        self.assertIn("StartTime '25:99:\u00b2' is not a time", body["error"]["message"])
        self.assertTrue(daemon.household.alarms[0].enabled)
        self.assertEqual(daemon.service.controller.alarms.skips, {})


#: Where the daemon logs about alarms and their skips.
ALARM_NAMESPACES = ("sonosd.control.alarms", "sonosd.control.skips", "sonosd.household.alarms")


def alarm_trouble(events: list[Any]) -> list[str]:
    """Any traceback logged, and what the alarm modules logged at warn level or above (other
    warnings, a slow renewal on a loaded machine, are no concern of these tests)."""
    return [
        event["log_format"]
        for event in events
        if "log_failure" in event
        or (event["log_level"] >= LogLevel.warn and event.get("log_namespace") in ALARM_NAMESPACES)
    ]


def app_update(address: str, alarm: Alarm, enabled: bool) -> None:
    """What the Sonos app sends to switch ``alarm`` on or off through the speaker at
    ``address`` (blocking): UpdateAlarm with every field as the app read it."""
    SoCo(address).alarmClock.UpdateAlarm(
        [
            ("ID", alarm.alarm_id),
            ("StartLocalTime", alarm.start_time),
            ("Duration", alarm.duration),
            ("Recurrence", alarm.recurrence),
            ("Enabled", "1" if enabled else "0"),
            ("RoomUUID", alarm.room_uid),
            ("ProgramURI", alarm.program_uri),
            ("ProgramMetaData", alarm.program_metadata),
            ("PlayMode", alarm.play_mode),
            ("Volume", alarm.volume),
            ("IncludeLinkedZones", "1" if alarm.include_linked_zones else "0"),
        ]
    )


class SkipMeanwhileTests(TestCase):
    """What the Sonos app does to a skipped alarm before it is due (docs/control.md: "an
    alarm switched on in the Sonos app meanwhile is left on, one deleted is forgotten"),
    through the whole daemon (with a state directory) and the simulated household: the app's
    UpdateAlarm or DestroyAlarm goes to another speaker than the skip's."""

    timeout = 120

    async def skipped(self) -> tuple[Daemon, Any, Alarm, str]:
        """A daemon whose first alarm (on, weekdays at 07:00) is skipped on Monday noon
        through the kitchen, and whose clients have the alarm off: the daemon, its SSE
        client, the alarm as the household held it before, the state directory."""
        state_dir = tempfile.mkdtemp(prefix="sonosd-state-")
        self.addCleanup(shutil.rmtree, state_dir, True)
        daemon, client = await start(self, state_dir=state_dir)
        daemon.service.controller.alarms._now = lambda: MONDAY_NOON
        alarm = daemon.household.alarms[0]
        self.assertTrue(alarm.enabled)
        mark = len(client.messages())
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "skip", "id": alarm.alarm_id}
        )
        self.assertEqual(status, 200, body)
        self.assertFalse(daemon.household.alarm_list.find(alarm.alarm_id).enabled)
        self.assertEqual([s.alarm for s in SkipFile(state_dir).load()], [alarm.alarm_id])
        await arrives(
            client.messages,
            mark,
            alarms_changed(lambda alarms: self.enabled(alarms, alarm) is False),
            "alarms.changed with the skipped alarm off",
        )
        return daemon, client, alarm, state_dir

    @staticmethod
    def enabled(alarms: list[dict[str, Any]], alarm: Alarm) -> bool | None:
        """Whether a listed ``alarm`` is on (``None``: not listed)."""
        listed = _alarm(alarms, alarm.alarm_id)
        return None if listed is None else bool(listed["enabled"])

    async def app(self, daemon: Daemon, client: Any, what: str, call: Any, check: Any) -> str:
        """The app's ``call`` (blocking SoCo) in a thread, then the alarms.changed that
        follows it (its list passing ``check``); the household's alarm list version after it."""
        mark = len(client.messages())
        await in_thread(call)
        await arrives(client.messages, mark, alarms_changed(check), f"alarms.changed: {what}")
        return daemon.household.alarm_list_version()

    async def switch(self, daemon: Daemon, client: Any, alarm: Alarm, on: bool) -> str:
        """The app switches ``alarm`` on or off through the office; the list version after."""
        office = daemon.speaker(1)
        return await self.app(
            daemon,
            client,
            f"the alarm switched {'on' if on else 'off'} by the app",
            lambda: app_update(office.address, alarm, enabled=on),
            lambda alarms: self.enabled(alarms, alarm) is on,
        )

    async def skip_ended(self, daemon: Daemon, alarm: Alarm, state_dir: str) -> None:
        """The skip is over for good: nothing pending, no timer that would touch the alarm
        when the skipped ring passes, nothing left in the state directory."""
        alarms = daemon.service.controller.alarms
        key = (daemon.household.household_id, alarm.alarm_id)
        await until(lambda: key not in alarms.skips, "the skip's end")
        self.assertEqual(alarms.skips, {})
        timers = [c for c in reactor.getDelayedCalls() if c.func == alarms._resume]
        self.assertEqual(timers, [])
        self.assertFalse(os.path.exists(os.path.join(state_dir, FILE_NAME)))

    async def test_switched_on_in_the_app_is_left_on(self) -> None:
        """An alarm the app switches on while its skip is pending ends the skip: the alarm
        stays on, the daemon sends no UpdateAlarm (the household's alarm list version stays
        where the app's change left it) and warns of nothing; the skip is gone from the state
        directory; clients got the app's change as alarms.changed."""
        daemon, client, alarm, state_dir = await self.skipped()
        with capturedLogs() as events:
            version = await self.switch(daemon, client, alarm, True)
            await self.skip_ended(daemon, alarm, state_dir)
        self.assertEqual(alarm_trouble(events), [])
        self.assertTrue(daemon.household.alarm_list.find(alarm.alarm_id).enabled)
        self.assertEqual(daemon.household.alarm_list_version(), version)
        held = daemon.service.state.snapshot()["alarms"]
        self.assertEqual(held["version"], version)  # type: ignore[index]
        self.assertTrue(self.enabled(held["alarms"], alarm))  # type: ignore[index]

    async def test_switched_on_then_off_in_the_app_stays_off(self) -> None:
        """The app switching the alarm on ends the skip even if it switches the alarm off
        again before the skipped ring: the daemon does not switch it on behind the app's
        back (the list version stays the app's)."""
        daemon, client, alarm, state_dir = await self.skipped()
        await self.switch(daemon, client, alarm, True)
        version = await self.switch(daemon, client, alarm, False)
        await self.skip_ended(daemon, alarm, state_dir)
        self.assertFalse(daemon.household.alarm_list.find(alarm.alarm_id).enabled)
        self.assertEqual(daemon.household.alarm_list_version(), version)

    async def test_deleted_in_the_app_is_forgotten(self) -> None:
        """An alarm the app deletes while its skip is pending is forgotten: no error,
        nothing re-created or changed (the alarm list version stays where the app's
        DestroyAlarm left it), the skip gone from the state directory; clients got
        alarms.changed without the alarm."""
        daemon, client, alarm, state_dir = await self.skipped()
        office = daemon.speaker(1)
        with capturedLogs() as events:
            version = await self.app(
                daemon,
                client,
                "the alarm deleted by the app",
                lambda: SoCo(office.address).alarmClock.DestroyAlarm([("ID", alarm.alarm_id)]),
                lambda alarms: self.enabled(alarms, alarm) is None,
            )
            ids = sorted(a.alarm_id for a in daemon.household.alarms)
            self.assertNotIn(alarm.alarm_id, ids)
            await self.skip_ended(daemon, alarm, state_dir)
        self.assertEqual(alarm_trouble(events), [])
        self.assertEqual(sorted(a.alarm_id for a in daemon.household.alarms), ids)
        self.assertEqual(daemon.household.alarm_list_version(), version)
        held = daemon.service.state.snapshot()["alarms"]
        self.assertEqual(held["version"], version)  # type: ignore[index]
        self.assertIsNone(self.enabled(held["alarms"], alarm))  # type: ignore[index]


class SkipAcrossRestartsTests(TestCase):
    """A skip outlives the daemon that made it (``state_dir``)."""

    timeout = 120

    async def daemon(self, sim: HouseholdService, state_dir: str) -> tuple[SonosdService, str]:
        """A daemon following ``sim`` from its first speaker, with ``state_dir``; its API URL."""
        document = json.loads(
            daemon_yaml(sim.config.base_address, simulate=False, devices=(sim.addresses[0],))
        )
        document["state_dir"] = state_dir
        service = SonosdService(parse_config(json.dumps(document), "skips.yaml"), reactor)
        start_recorded(self, service)
        port: Any = (await service.api.listening).getHost()
        await until(lambda: service.state.alarms is not None, "the alarm list")
        return service, f"http://{port.host}:{port.port}"

    def household(self) -> tuple[HouseholdService, str]:
        """A running simulated household of two speakers (its first alarm on weekdays, its
        second at weekends, off) and an empty state directory."""
        sim = HouseholdService(
            reactor, SimulateConfig(speakers=2, base_address=free_loopback_base(count=2))
        )
        sim.startService()
        self.addCleanup(sim.stopService)
        state_dir = tempfile.mkdtemp(prefix="sonosd-state-")
        self.addCleanup(shutil.rmtree, state_dir, True)
        return sim, state_dir

    async def post(self, base: str, args: dict[str, Any]) -> dict[str, Any]:
        """An ``alarms`` command to the first speaker; its result (the status must be 200)."""
        response = await treq.client.HTTPClient(http_agent(self)).post(
            f"{base}/api/v1/speakers/Living%20Room/alarms",
            data=json.dumps(args).encode(),
            headers=Headers({b"Content-Type": [b"application/json"]}),
        )
        body: dict[str, Any] = await response.json()
        self.assertEqual(response.code, 200, body)
        return body["result"]

    async def test_skip_survives_a_restart(self) -> None:
        """Skips made through one daemon are finished by the next one started with the same
        state_dir: an alarm whose moment passed while no daemon ran is switched on at once,
        one still ahead is kept for its moment."""
        sim, state_dir = self.household()
        household = sim.household
        weekday, weekend = household.alarms[0], household.alarms[1]
        first, base = await self.daemon(sim, state_dir)
        # A week ago, the weekday alarm's next ring (and a minute after it) was days ago.
        first.controller.alarms._now = lambda: dt.datetime.now() - dt.timedelta(days=8)
        past = await self.post(base, {"action": "skip", "id": weekday.alarm_id})
        first.controller.alarms._now = dt.datetime.now
        await self.post(base, {"action": "enable", "id": weekend.alarm_id})
        ahead = await self.post(base, {"action": "skip", "id": weekend.alarm_id})

        def on(alarm_id: int) -> bool:
            return household.alarm_list.find(alarm_id).enabled

        self.assertFalse(on(weekday.alarm_id) or on(weekend.alarm_id))
        kept = SkipFile(state_dir).load()
        self.assertEqual({s.alarm for s in kept}, {weekday.alarm_id, weekend.alarm_id})
        self.assertEqual({s.household for s in kept}, {household.household_id})
        await first.stopService()
        self.assertFalse(on(weekday.alarm_id))

        second, second_base = await self.daemon(sim, state_dir)
        await until(
            lambda: on(weekday.alarm_id),
            f"alarm {weekday.alarm_id}, due at {past['resumes']}, switched on",
            40,
        )
        self.assertFalse(on(weekend.alarm_id))
        # The speaker switched the alarm on before the daemon read its answer: wait for the
        # daemon to drop the finished skip.
        await until(
            lambda: (
                list(second.controller.alarms.skips) == [(household.household_id, weekend.alarm_id)]
            ),
            "only the weekend alarm's skip pending",
            10,
        )
        pending = second.controller.alarms.skips
        call, skip = pending[(household.household_id, weekend.alarm_id)]
        self.assertEqual(skip.resumes.isoformat(), ahead["resumes"])
        wanted = (skip.resumes - dt.datetime.now()).total_seconds()
        self.assertLess(abs(call.getTime() - reactor.seconds() - wanted), 5)
        await until(
            lambda: [s.alarm for s in SkipFile(state_dir).load()] == [weekend.alarm_id],
            "the file without the finished skip",
        )
        await self.post(second_base, {"action": "enable", "id": weekend.alarm_id})
        self.assertFalse(os.path.exists(os.path.join(state_dir, FILE_NAME)))

    async def test_changed_in_the_app_while_no_daemon_ran(self) -> None:
        """Skipped alarms the app switches on or deletes while no daemon runs are left as the
        app made them by the next daemon when their moment comes: the one switched on stays
        on, the deleted one is forgotten (no error, nothing re-created: the alarm list
        version stays the app's), and the state directory is emptied."""
        sim, state_dir = self.household()
        household = sim.household
        weekday, weekend = household.alarms[0], household.alarms[1]
        first, base = await self.daemon(sim, state_dir)
        # Skipped by the real clock: both rings are ahead for the next daemon too.
        await self.post(base, {"action": "enable", "id": weekend.alarm_id})
        for alarm in (weekday, weekend):
            await self.post(base, {"action": "skip", "id": alarm.alarm_id})
        await first.stopService()
        self.assertEqual(len(SkipFile(state_dir).load()), 2)
        # The app, through the other speaker, while no daemon runs.
        other = household.speakers[1].address
        await in_thread(lambda: app_update(other, weekday, enabled=True))
        await in_thread(lambda: SoCo(other).alarmClock.DestroyAlarm([("ID", weekend.alarm_id)]))
        version = household.alarm_list_version()

        second, _ = await self.daemon(sim, state_dir)
        alarms = second.controller.alarms
        self.assertEqual(
            {skip.alarm for _, skip in alarms.skips.values()},
            {weekday.alarm_id, weekend.alarm_id},
        )
        self.assertTrue(all(call.active() for call, _ in alarms.skips.values()))
        with capturedLogs() as events:
            # The skipped rings and the minute after them pass.
            alarms._now = lambda: dt.datetime.now() + dt.timedelta(days=8)
            for call, _ in list(alarms.skips.values()):
                call.reset(0)
            await until(lambda: not alarms.skips, "both skips' end")
        self.assertEqual(alarm_trouble(events), [])
        self.assertTrue(household.alarm_list.find(weekday.alarm_id).enabled)
        self.assertNotIn(weekend.alarm_id, [a.alarm_id for a in household.alarms])
        self.assertEqual(household.alarm_list_version(), version)
        self.assertFalse(os.path.exists(os.path.join(state_dir, FILE_NAME)))


class ResumeContext:
    """What ``AlarmCommands`` needs of the controller, for the timing of resumes: a clock,
    the state, and calls answered from ``alarms`` (``{id: attributes}``), failing while
    ``failures`` is above 0."""

    def __init__(self, alarms: dict[int, dict[str, str]]) -> None:
        self.reactor = Clock()
        self.state = HouseholdState()
        self.alarms = alarms
        self.failures = 0
        self.enabled: list[int] = []

    def add(self, uid: str, status: str = "online") -> SpeakerRef:
        ref = self.state.ensure(SpeakerRef(uid, uid, "127.0.0.9", household="Sonos_1"))
        self.state.set_availability(uid, status, time=0.0)
        return ref

    async def call(self, ref: SpeakerRef, fn: Any, *args: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise ControlError("timeout", 504, f"{ref.name} did not answer")
        if fn is raw_alarms:
            return "RINCON_A:9", self.alarms, ""
        assert fn is change_alarm and args[0] == "enable"
        self.enabled.append(args[1])
        self.alarms[args[1]]["Enabled"] = "1"
        return args[1]


class ResumeTests(SynchronousTestCase):
    """When and whether a skipped alarm is switched on again (a clock; the calls answered
    from a list; the end-to-end behaviour is SkipAcrossRestartsTests')."""

    def commands(
        self, ctx: ResumeContext, skips: list[Skip], state_dir: str | None = None
    ) -> AlarmCommands:
        directory = state_dir or tempfile.mkdtemp(prefix="sonosd-resume-")
        self.addCleanup(shutil.rmtree, directory, True)
        SkipFile(directory).save(skips)
        now = dt.datetime(2026, 11, 23, 12, 0)
        return AlarmCommands(
            ctx,  # type: ignore[arg-type]
            now=lambda: now + dt.timedelta(seconds=ctx.reactor.seconds()),
            skip_file=SkipFile(directory),
        )

    def test_skip_of_an_alarm_whose_start_time_is_no_time_is_a_502(self) -> None:
        """Skipping an alarm whose StartTime the speaker gives as no clock time is a 502
        naming it, not an internal error; nothing is disabled."""
        ctx = ResumeContext(
            {3: {"Enabled": "1", "StartTime": "25:99:\u00b2", "Recurrence": "DAILY"}}
        )
        commands = self.commands(ctx, [])
        failure = self.failureResultOf(
            Deferred.fromCoroutine(
                commands.do_alarms(ctx.add("RINCON_A"), {"action": "skip", "id": 3})
            )
        )
        error = failure.value
        assert isinstance(error, ControlError)
        self.assertEqual((error.status, error.code), (502, "speaker_error"))
        self.assertIn("StartTime '25:99:\u00b2' is not a time", str(error))
        self.assertEqual(commands.skips, {})

    def skip_of(self, alarm: int, minutes: int, speaker: str = "RINCON_A") -> Skip:
        resumes = dt.datetime(2026, 11, 23, 12, 0) + dt.timedelta(minutes=minutes)
        return Skip("Sonos_1", alarm, speaker, resumes - dt.timedelta(minutes=1), resumes)

    def test_due_at_its_time_and_retried_until_a_speaker_answers(self) -> None:
        """A skip loaded from the file waits for its moment; then, with no speaker online, a
        failed call, it is tried every RESUME_RETRY seconds until the alarm is on; the file
        is emptied."""
        ctx = ResumeContext({4: {"Enabled": "0"}})
        commands = self.commands(ctx, [self.skip_of(4, minutes=10)])
        ctx.reactor.advance(599)
        self.assertEqual(ctx.enabled, [])
        ctx.reactor.advance(1)  # due: nobody known yet
        self.assertIn(("Sonos_1", 4), commands.skips)
        ctx.add("RINCON_B", "offline")
        ctx.add("RINCON_C")
        ctx.failures = 2  # two attempts fail
        ctx.reactor.advance(RESUME_RETRY)
        ctx.reactor.advance(RESUME_RETRY)
        self.assertEqual(ctx.enabled, [])
        ctx.reactor.advance(RESUME_RETRY)
        self.assertEqual(ctx.enabled, [4])
        self.assertEqual(commands.skips, {})
        self.assertEqual(commands._file.load(), [])

    def test_a_waiting_skip_is_tried_when_its_households_alarm_list_is_read(self) -> None:
        """A skip due while no speaker of its household answered is tried as soon as the
        household's alarm list is read (a speaker answered), not at its next retry; another
        household's list changes nothing."""
        ctx = ResumeContext({4: {"Enabled": "0"}})
        commands = self.commands(ctx, [self.skip_of(4, minutes=0)])
        ctx.reactor.advance(0)  # due: nobody known yet
        ctx.add("RINCON_A")
        commands.list_read("Sonos_2", [{"id": 4, "enabled": False}])
        self.assertEqual(ctx.enabled, [])
        commands.list_read("Sonos_1", [{"id": 4, "enabled": False}])
        self.assertEqual(ctx.enabled, [4])
        self.assertEqual((commands.skips, commands._file.load()), ({}, []))
        self.assertEqual(ctx.reactor.getDelayedCalls(), [])

    def test_deleted_or_already_on_is_dropped(self) -> None:
        """An alarm deleted meanwhile, or switched on by someone else, is left as it is."""
        ctx = ResumeContext({5: {"Enabled": "1"}})
        ctx.add("RINCON_A")
        commands = self.commands(ctx, [self.skip_of(4, minutes=0), self.skip_of(5, minutes=0)])
        ctx.reactor.advance(0)
        self.assertEqual((ctx.enabled, commands.skips), ([], {}))

    def test_a_list_showing_the_alarm_on_after_off_ends_the_skip(self) -> None:
        """A list read while the skip's own switch-off was under way (the alarm still on)
        leaves the skip; once a list has shown the alarm off, one showing it on ends the
        skip, and one without it (deleted) does too; another household's list is no sign.
        Nothing is switched on and the file is emptied."""
        ctx = ResumeContext({4: {"Enabled": "0"}, 5: {"Enabled": "0"}})
        ctx.add("RINCON_A")
        commands = self.commands(ctx, [self.skip_of(4, minutes=30), self.skip_of(5, minutes=30)])

        def listed(**enabled: bool) -> list[dict[str, Any]]:
            return [{"id": int(name[1:]), "enabled": on} for name, on in enabled.items()]

        commands.list_read("Sonos_1", listed(a4=True, a5=True))  # read before the switch-off
        self.assertEqual(set(commands.skips), {("Sonos_1", 4), ("Sonos_1", 5)})
        commands.list_read("Sonos_1", listed(a4=False, a5=False))
        commands.list_read("Sonos_2", listed(a5=True))
        self.assertEqual(set(commands.skips), {("Sonos_1", 4), ("Sonos_1", 5)})
        commands.list_read("Sonos_1", listed(a4=True, a5=False))
        self.assertEqual(set(commands.skips), {("Sonos_1", 5)})
        commands.list_read("Sonos_1", listed(a4=False))
        self.assertEqual((commands.skips, commands._file.load()), ({}, []))
        ctx.reactor.advance(3600)
        self.assertEqual((ctx.enabled, ctx.reactor.getDelayedCalls()), ([], []))

    def test_cancelled_while_enabling_is_not_retried(self) -> None:
        """A command that ends the skip while its resume is failing stops the retries."""
        ctx = ResumeContext({4: {"Enabled": "0"}})
        ctx.add("RINCON_A")
        ctx.failures = 1
        commands = self.commands(ctx, [self.skip_of(4, minutes=0)])
        ctx.reactor.advance(0)
        self.assertIn(("Sonos_1", 4), commands.skips)
        commands._cancel_skip(("Sonos_1", 4))
        ctx.reactor.advance(RESUME_RETRY * 3)
        self.assertEqual((ctx.enabled, ctx.reactor.getDelayedCalls()), ([], []))

    def test_stop_keeps_the_file(self) -> None:
        """Stopping cancels the timers and leaves the skips for the next start."""
        ctx = ResumeContext({4: {"Enabled": "0"}})
        commands = self.commands(ctx, [self.skip_of(4, minutes=30)])
        commands.stop()
        self.assertEqual(ctx.reactor.getDelayedCalls(), [])
        self.assertEqual([s.alarm for s in commands._file.load()], [4])
