"""Tests for control.alarms: alarms listed, created, changed, switched off, deleted and skipped
through the whole daemon against the simulated household; the next-occurrence arithmetic."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from twisted.trial.unittest import TestCase

from sonosd.control.alarms import _arguments, next_occurrence
from tests.control.daemon_commands import alarms_changed, start
from tests.control.test_controller_daemon import arrives

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
    ],
)
def test_next_occurrence(time: str, recurrence: str, expected: dt.datetime) -> None:
    """The next ring after Monday noon, Sonos counting days from Sunday = 0."""
    assert next_occurrence(time, recurrence, MONDAY_NOON) == expected


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

    async def test_skip_disables_until_after_the_next_ring(self) -> None:
        """skip switches the alarm off and schedules it on again a minute after the ring it
        skips (by the daemon's clock)."""
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
        call, _ = alarms.skips[weekday.alarm_id]
        delay = call.getTime() - daemon.service.reactor.seconds()
        self.assertLess(abs(delay - (19 * 3600 + 60)), 5)
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "skip", "id": weekday.alarm_id}
        )
        self.assertEqual((status, body["error"]["code"]), (409, "alarm_disabled"))
        status, body = await daemon.post(
            "Kitchen", "alarms", {"action": "enable", "id": weekday.alarm_id}
        )
        self.assertEqual(status, 200, body)
        self.assertNotIn(weekday.alarm_id, alarms.skips)

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
