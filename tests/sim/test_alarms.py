"""Tests for sim.alarms and sim.alarmactions: the alarm list, its version and its checks."""

from __future__ import annotations

import pytest

from sonosd.sim.alarms import AlarmList, alarm_list_xml, parse_alarm
from sonosd.sim.soap import UPnPError
from sonosd.sim.speakerstate import Alarm

ROOM = "RINCON_000E58A0123401400"
ARGS = {
    "StartLocalTime": "7:05:00",
    "Duration": "01:00:00",
    "Recurrence": "ON_12345",
    "Enabled": "1",
    "RoomUUID": ROOM,
    "ProgramURI": "",
    "ProgramMetaData": "",
    "PlayMode": "SHUFFLE",
    "Volume": "30",
    "IncludeLinkedZones": "0",
}


def known(uid: str) -> bool:
    return uid == ROOM


def test_parse_normalises() -> None:
    """CreateAlarm arguments become an alarm: times zero-padded, the buzzer by default."""
    alarm = parse_alarm(ARGS, 0, known)
    assert (alarm.start_time, alarm.duration, alarm.program_uri) == (
        "07:05:00",
        "01:00:00",
        "x-rincon-buzzer:0",
    )
    assert alarm.enabled and alarm.volume == 30 and alarm.play_mode == "SHUFFLE"
    assert parse_alarm({**ARGS, "Duration": ""}, 0, known).duration == ""


@pytest.mark.parametrize(
    "change",
    [
        {"StartLocalTime": "25:00:00"},
        {"Recurrence": "SOMETIMES"},
        {"Recurrence": "ON_7"},
        {"RoomUUID": "RINCON_UNKNOWN"},
        {"PlayMode": "LOUD"},
        {"Volume": "101"},
        {"Enabled": "perhaps"},
    ],
)
def test_parse_refuses(change: dict[str, str]) -> None:
    """Bad times, recurrences, rooms, play modes, volumes and flags are 402."""
    with pytest.raises(UPnPError) as raised:
        parse_alarm({**ARGS, **change}, 0, known)
    assert raised.value.code == 402


def test_versions_and_ids() -> None:
    """Each change raises the version by one; a new alarm's id is the version it makes."""
    alarms = AlarmList(owner=ROOM, alarms=[Alarm(4, "06:00:00", "", "DAILY", True, ROOM)])
    assert alarms.list_version == f"{ROOM}:4"
    new_id = alarms.create(parse_alarm(ARGS, 0, known))
    assert new_id == 5 and alarms.list_version.endswith(":5")
    alarms.update(parse_alarm({**ARGS, "Enabled": "0"}, new_id, known))
    assert not alarms.find(new_id).enabled and alarms.version == 6
    alarms.destroy(4)
    assert alarms.version == 7 and [a.alarm_id for a in alarms.alarms] == [5]


def test_duplicates_and_unknown_ids() -> None:
    """The same room, time and recurrence twice is 801; an unknown id is 701."""
    alarms = AlarmList(owner=ROOM)
    alarms.create(parse_alarm(ARGS, 0, known))
    with pytest.raises(UPnPError) as raised:
        alarms.create(parse_alarm(ARGS, 0, known))
    assert raised.value.code == 801
    for action in (lambda: alarms.destroy(99), lambda: alarms.find(99)):
        with pytest.raises(UPnPError) as raised:
            action()
        assert raised.value.code == 701


def test_list_document_escapes_metadata() -> None:
    """ListAlarms writes every attribute, metadata escaped in double quotes."""
    alarm = parse_alarm({**ARGS, "ProgramMetaData": '<DIDL-Lite a="b">&</DIDL-Lite>'}, 0, known)
    document = alarm_list_xml([alarm])
    assert 'ProgramMetaData="&lt;DIDL-Lite a=&quot;b&quot;&gt;&amp;&lt;/DIDL-Lite&gt;"' in document
    assert document.startswith("<Alarms><Alarm ID=")
