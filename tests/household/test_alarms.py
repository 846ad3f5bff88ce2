"""Tests for household.alarms: the alarm list parsed (the captured sample included) and the
watcher that reads it once per new AlarmListVersion."""

from __future__ import annotations

from typing import Any
from xml.sax import saxutils

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sonosd.household.alarms import AlarmWatcher, parse_alarm_list, recurrence_days
from sonosd.household.state import HouseholdState, SpeakerRef
from tests.paths import SAMPLES
from tests.supervisor_fakes import FakeSoap

KITCHEN = SpeakerRef("RINCON_B8E9375A170401400", "Kitchen", "127.0.0.2")


def _sample_document() -> str:
    text = (SAMPLES / "soap" / "outarg_fragment_alarm-service.ListAlarms.xml").read_text()
    inner = text.split("<CurrentAlarmList>")[1].split("</CurrentAlarmList>")[0]
    return (
        inner.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    )


def test_parse_the_captured_list() -> None:
    """The captured ListAlarms answer parses: ids, times, rooms, Spotify programme titles."""
    names = {KITCHEN.uid: "Kitchen"}
    alarms = parse_alarm_list(_sample_document(), names.get)
    assert [a["id"] for a in alarms] == [1712, 1715]
    first, second = alarms
    assert (first["time"], first["duration"], first["recurrence"]) == (
        "08:15:00",
        "00:08:00",
        "WEEKDAYS",
    )
    assert first["days"] == ["mon", "tue", "wed", "thu", "fri"]
    assert (first["enabled"], second["enabled"]) == (False, True)
    assert first["room"] == {"uid": "RINCON_B8E9378A0DDC01400", "name": None}
    assert second["room"] == {"uid": KITCHEN.uid, "name": "Kitchen"}
    assert (first["program"]["title"], second["program"]["title"]) == (
        "Easy On Sunday",
        "Chill Hits",
    )
    assert (first["volume"], first["play_mode"], first["include_linked_zones"]) == (
        8,
        "SHUFFLE",
        False,
    )


def test_parse_edges() -> None:
    """The buzzer is a chime, an empty duration is null, ON_ days are named; junk is refused."""
    document = (
        '<Alarms><Alarm ID="3" StartTime="06:00:00" Duration="" Recurrence="ON_06" '
        'Enabled="1" RoomUUID="R" ProgramURI="x-rincon-buzzer:0" ProgramMetaData="" '
        'PlayMode="NORMAL" Volume="20" IncludeLinkedZones="1"/></Alarms>'
    )
    (alarm,) = parse_alarm_list(document)
    assert (alarm["duration"], alarm["days"], alarm["program"]["title"]) == (
        None,
        ["sun", "sat"],
        "Chime",
    )
    assert alarm["include_linked_zones"] is True
    assert recurrence_days("ONCE") == [] and recurrence_days("DAILY")[0] == "sun"
    assert recurrence_days("WEEKENDS") == ["sun", "sat"]
    # A programme whose metadata says nothing has no title (docs/messages.md: null).
    (unknown,) = parse_alarm_list(
        document.replace("x-rincon-buzzer:0", "x-file-cifs://nas/a.mp3").replace(
            'Duration=""', 'Duration="01:00:00"'
        )
    )
    assert (unknown["program"], unknown["duration"]) == (
        {"uri": "x-file-cifs://nas/a.mp3", "title": None},
        "01:00:00",
    )
    for bad in ("<not xml", "<Other/>"):
        with pytest.raises(ValueError, match="not an alarm list"):
            parse_alarm_list(bad)


_ATTRIBUTE = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cn")), max_size=12
) | st.sampled_from(["\u00b2", "\u0661", "9" * 5000, "ON_\u00b2", "ON_9", "-1"])


@given(alarm_id=_ATTRIBUTE, volume=_ATTRIBUTE, recurrence=_ATTRIBUTE)
def test_any_attributes_parse(alarm_id: str, volume: str, recurrence: str) -> None:
    """Whatever a speaker puts in an alarm's ID, Volume and Recurrence (superscript digits,
    5,000 digits), the list parses: numbers are ASCII digits or null, days are sun..sat."""
    quoted = [saxutils.quoteattr(value) for value in (alarm_id, volume, recurrence)]
    document = (
        f"<Alarms><Alarm ID={quoted[0]} Volume={quoted[1]} Recurrence={quoted[2]} "
        'StartTime="06:00:00" Enabled="1" RoomUUID="R" ProgramURI="" ProgramMetaData=""/>'
        "</Alarms>"
    )
    (alarm,) = parse_alarm_list(document)
    assert alarm["volume"] is None or 0 <= alarm["volume"] < 10**10
    assert isinstance(alarm["id"], int) or alarm["id"] == alarm_id
    assert set(alarm["days"]) <= {"sun", "mon", "tue", "wed", "thu", "fri", "sat"}


def listed(document: str, version: str) -> dict[str, str]:
    """A ListAlarms answer's out-arguments."""
    return {"CurrentAlarmList": document, "CurrentAlarmListVersion": version}


class Publisher:
    def __init__(self, state: HouseholdState) -> None:
        self.state = state
        self.published: list[tuple[str, list[dict[str, Any]]]] = []

    def alarms_changed(
        self, version: str, alarms: list[dict[str, Any]], household: str | None = None
    ) -> None:
        self.state.set_alarms(version, alarms, household)
        self.published.append((version, alarms))


class WatcherTests(SynchronousTestCase):
    def watcher(self, soap: FakeSoap) -> tuple[AlarmWatcher, Publisher]:
        state = HouseholdState()
        state.ensure(KITCHEN)
        publisher = Publisher(state)
        return AlarmWatcher(soap, state, publisher, 7.0), publisher

    def test_each_version_is_read_once(self) -> None:
        """Every speaker events the same version: the list is read once and published."""
        soap = FakeSoap(lambda call: listed(_sample_document(), "RINCON_X:9"))
        watcher, publisher = self.watcher(soap)
        for _ in range(3):
            watcher.on_variables(KITCHEN, "AlarmClock", {"alarm_list_version": "RINCON_X:9"})
        watcher.on_variables(KITCHEN, "RenderingControl", {"alarm_list_version": "RINCON_X:10"})
        assert soap.calls == [("127.0.0.2", 1400, "AlarmClock", "ListAlarms", (), 7.0)]
        assert [version for version, _ in publisher.published] == ["RINCON_X:9"]
        assert publisher.published[0][1][1]["room"]["name"] == "Kitchen"

    def test_a_newer_version_during_a_read_is_read_after(self) -> None:
        """A version evented while a read is under way is read when that read ends."""
        soap = FakeSoap(lambda call: {})
        soap.hold = True
        watcher, publisher = self.watcher(soap)
        watcher.on_version(KITCHEN, "RINCON_X:1")
        watcher.on_version(KITCHEN, "RINCON_X:2")
        assert len(soap.calls) == 1
        soap.pending[0].callback(listed(_sample_document(), "RINCON_X:1"))
        assert len(soap.calls) == 2
        soap.pending[1].callback(listed(_sample_document(), "RINCON_X:2"))
        assert [version for version, _ in publisher.published] == ["RINCON_X:1", "RINCON_X:2"]

    def test_a_failed_read_is_logged_and_retried_on_the_next_event(self) -> None:
        """A read that fails publishes nothing; the next event of that version reads again."""
        soap = FakeSoap(lambda call: listed("<broken", "RINCON_X:5"))
        watcher, publisher = self.watcher(soap)
        watcher.on_version(KITCHEN, "RINCON_X:5")
        assert publisher.published == [] and len(self.flushLoggedErrors()) == 0
        soap.answer = lambda call: listed(_sample_document(), "RINCON_X:5")
        watcher.on_version(KITCHEN, "RINCON_X:5")
        assert len(publisher.published) == 1

    def test_observers_get_each_list_published(self) -> None:
        """Each list published is handed to the observers with its household, after the
        publisher has it; a failed read hands them nothing."""
        soap = FakeSoap(lambda call: listed("<broken", "RINCON_X:5"))
        watcher, publisher = self.watcher(soap)
        seen: list[tuple[str | None, list[dict[str, Any]], int]] = []
        watcher.observers.append(
            lambda household, alarms: seen.append((household, alarms, len(publisher.published)))
        )
        watcher.on_version(KITCHEN, "RINCON_X:5")
        assert seen == []
        soap.answer = lambda call: listed(_sample_document(), "RINCON_X:6")
        watcher.on_version(attrs.evolve(KITCHEN, household="Sonos_9"), "RINCON_X:6")
        assert seen == [("Sonos_9", publisher.published[0][1], 1)]
