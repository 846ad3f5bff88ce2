# -*- test-case-name: tests.sim.test_alarms -*-
"""AlarmClock actions: ``ListAlarms``, ``CreateAlarm``, ``UpdateAlarm``, ``DestroyAlarm``.

The list lives in the household (``sonosd.sim.alarms.AlarmList``); every change raises the
``AlarmListVersion`` by one and events it on every speaker, as a household does (clients
such as Home Assistant re-read the list when that version changes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonosd.sim.actions import Args, Out, action
from sonosd.sim.alarms import alarm_list_xml, parse_alarm
from sonosd.sim.soapargs import integer

if TYPE_CHECKING:
    from sonosd.sim.household import Speaker


@action("AlarmClock", "ListAlarms")
def _list_alarms(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    return {
        "CurrentAlarmList": alarm_list_xml(household.alarms),
        "CurrentAlarmListVersion": household.alarm_list_version(),
    }


@action("AlarmClock", "CreateAlarm")
def _create_alarm(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    alarm = parse_alarm(args, 0, lambda uid: uid in household.by_uid)
    alarm_id = household.alarm_list.create(alarm)
    household.alarms_changed()
    return {"AssignedID": str(alarm_id)}


@action("AlarmClock", "UpdateAlarm")
def _update_alarm(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    alarm = parse_alarm(args, integer(args, "ID"), lambda uid: uid in household.by_uid)
    household.alarm_list.update(alarm)
    household.alarms_changed()
    return {}


@action("AlarmClock", "DestroyAlarm")
def _destroy_alarm(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    household.alarm_list.destroy(integer(args, "ID"))
    household.alarms_changed()
    return {}
