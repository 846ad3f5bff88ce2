"""Tests for sonosd.control.alarmtrail: alarm list versions, and the changes lists hide."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.control.alarmtrail import AlarmTrail, ListVersion


def alarm(number: int, enabled: bool, room: str = "Kitchen") -> dict[str, Any]:
    """An alarm as ``parse_alarm_list`` gives it (the fields that matter here)."""
    return {"id": number, "enabled": enabled, "room": {"uid": "RINCON_A", "name": room}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("RINCON_A01400:5", ListVersion("RINCON_A01400", 5)),
        ("a:b:12", ListVersion("a:b", 12)),
        (":0", ListVersion("", 0)),
        ("RINCON_A:9999999999", ListVersion("RINCON_A", 9999999999)),
    ],
)
def test_versions_are_parsed(text: str, expected: ListVersion) -> None:
    """A version is the owner before its last colon and the change count after it."""
    assert ListVersion.parse(text) == expected


@pytest.mark.parametrize(
    "text", [None, "", "RINCON_A", "RINCON_A:", "RINCON_A:-1", "R:\u00b2", "R:" + "1" * 11]
)
def test_versions_that_cannot_be_ordered(text: str | None) -> None:
    """Anything but 1 to 10 ASCII digits after a colon is no version the daemon can order."""
    assert ListVersion.parse(text) is None


@given(st.text(max_size=40))
def test_any_text_parses_or_is_none(text: str) -> None:
    """Whatever a speaker sends as a version, parsing never raises."""
    parsed = ListVersion.parse(text)
    assert parsed is None or (parsed.number >= 0 and text.endswith(str(parsed.number)))


def test_versions_compare_only_with_the_same_owner() -> None:
    """How many changes lie between two versions is known only when one speaker keeps both."""
    five, seven = ListVersion("R", 5), ListVersion("R", 7)
    assert (seven.after(five), five.after(seven), seven.after(ListVersion("S", 1))) == (
        2,
        -2,
        None,
    )


def test_changes_shown_hide_nothing() -> None:
    """A list whose version went up by as many changes as it shows (an alarm switched, one
    created, one deleted) hides nothing; room names, the daemon's own, are no change."""
    trail = AlarmTrail()
    assert trail.read("H", "R:3", [alarm(1, True), alarm(2, False)]) == 0
    assert trail.read("H", "R:4", [alarm(1, False), alarm(2, False, room="Den")]) == 0
    assert trail.read("H", "R:6", [alarm(1, False), alarm(7, True)]) == 0
    assert trail.read("H", "R:6", [alarm(1, False), alarm(7, True)]) == 0


def test_changes_no_list_showed_are_counted() -> None:
    """A list whose version went up by more than the changes it shows hides the rest (an
    alarm switched on and off again between two reads: two)."""
    trail = AlarmTrail()
    trail.read("H", "R:3", [alarm(1, False)])
    assert trail.read("H", "R:5", [alarm(1, False)]) == 2
    assert trail.read("H", "R:7", [alarm(1, True)]) == 1
    assert trail.read("Other", "R:9", [alarm(1, True)]) == 0  # its first list


def test_an_older_list_is_ignored() -> None:
    """A list older than the latest known (a read under way before a change) is reported as
    such and does not become the latest."""
    trail = AlarmTrail()
    trail.read("H", "R:5", [alarm(1, False)])
    assert trail.read("H", "R:4", [alarm(1, True)]) is None
    assert trail.read("H", "R:6", [alarm(1, True)]) == 0


def test_another_owner_starts_again_and_no_version_is_passed_over() -> None:
    """After a version of another owner counting starts again from that list; a list with no
    version the daemon can order hides nothing and is passed over."""
    trail = AlarmTrail()
    trail.read("H", "R:5", [alarm(1, False)])
    assert trail.read("H", "S:9", [alarm(1, False)]) == 0
    assert trail.read("H", "S:12", [alarm(1, False)]) == 3
    assert trail.read("H", "garbage", [alarm(1, True)]) == 0
    assert trail.read("H", "S:13", [alarm(1, True)]) == 0
    assert trail.read("H", "S:15", [alarm(1, True)]) == 2


def test_the_daemons_own_changes_are_not_hidden_ones() -> None:
    """A change the daemon made itself that no list shows (an update to the same values) is
    not counted as hidden, whether its version comes in a list or in the daemon's own read,
    and each is counted once."""
    trail = AlarmTrail()
    trail.read("H", "R:3", [alarm(1, True)])
    trail.own_change("H")
    assert trail.read("H", "R:4", [alarm(1, True)]) == 0
    assert trail.read("H", "R:5", [alarm(1, True)]) == 1
    trail.own_change("H")
    trail.known("H", "R:6", [alarm(1, False)])
    assert trail.read("H", "R:6", [alarm(1, False)]) == 0
    assert trail.read("H", "R:8", [alarm(1, False)]) == 2


def test_the_daemons_own_read_never_goes_back() -> None:
    """The daemon's own read becomes the latest list only when it is newer and can be
    ordered; the first one starts the count."""
    trail = AlarmTrail()
    trail.known("H", "R:5", [alarm(1, False)])
    trail.known("H", "R:4", [alarm(1, True)])
    trail.known("H", "S:9", [alarm(1, True)])
    trail.known("H", "nothing", [alarm(1, True)])
    assert trail.read("H", "R:5", [alarm(1, False)]) == 0


def test_a_failed_change_of_the_daemons_is_not_counted() -> None:
    """A change the daemon tried and that failed made no version: it does not hide one."""
    trail = AlarmTrail()
    trail.read("H", "R:3", [alarm(1, False)])
    trail.own_change("H", -1)  # never below none
    trail.own_change("H")
    trail.own_change("H", -1)
    assert trail.read("H", "R:5", [alarm(1, False)]) == 2
