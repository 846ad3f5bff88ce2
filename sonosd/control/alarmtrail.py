# -*- test-case-name: tests.control.test_alarmtrail -*-
"""What successive alarm lists of a household show, and what they hide.

A household raises its ``AlarmListVersion`` (``<uid>:<n>``) by one per change (SoCo's
``Alarm.save()`` counts on it), and every speaker events it; the daemon then reads the list,
which the speaker answers as it is *now*. Two quick changes (the Sonos app switching an alarm on
and off again) make two versions and one read showing neither: the list looks unchanged, but
its version went up by two. ``AlarmTrail`` keeps, per household, the latest list known and
counts such changes no list showed, so that a pending skip can tell that the app may have
touched its alarm (``sonosd.control.alarms``).

Pure bookkeeping: no I/O, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class ListVersion:
    """An ``AlarmListVersion``: the uid that keeps the list and the change count."""

    owner: str
    number: int

    @classmethod
    def parse(cls, text: str | None) -> ListVersion | None:
        """``<owner>:<n>``, ``n`` 1 to 10 ASCII digits; ``None`` for anything else (a version
        the daemon cannot order is never taken as newer or older than another)."""
        if not text:
            return None
        owner, colon, number = text.rpartition(":")
        if not colon or not 0 < len(number) <= 10 or not number.isascii() or not number.isdigit():
            return None
        return cls(owner, int(number))

    def after(self, other: ListVersion) -> int | None:
        """How many changes this version is after ``other`` (negative: before it); ``None``
        when the two cannot be compared (another speaker keeps the list)."""
        return self.number - other.number if self.owner == other.owner else None


def _contents(alarms: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Each alarm by id as text, without the room's name (the daemon's name, not the
    household's: two readers may name a room differently)."""
    contents = {}
    for alarm in alarms:
        shown = dict(alarm)
        room = shown.get("room")
        if isinstance(room, Mapping):
            shown["room"] = room.get("uid")
        contents[str(alarm.get("id"))] = json.dumps(shown, sort_keys=True, default=str)
    return contents


def _differing(before: Mapping[str, str], after: Mapping[str, str]) -> int:
    """How many alarms were created, deleted or changed from ``before`` to ``after`` (each
    took one change at least)."""
    return sum(1 for key in before.keys() | after.keys() if before.get(key) != after.get(key))


class AlarmTrail:
    """The latest alarm list known of each household, and the daemon's own changes not seen
    in one yet; see the module docstring."""

    def __init__(self) -> None:
        self._latest: dict[str | None, tuple[ListVersion, dict[str, str]]] = {}
        self._own: dict[str | None, int] = {}

    def own_change(self, household: str | None, count: int = 1) -> None:
        """The daemon is about to change ``household``'s alarms (one version more that is
        its own doing, seen or not); ``count`` -1: a change it tried failed."""
        self._own[household] = max(0, self._own.get(household, 0) + count)

    def known(self, household: str | None, version: str, alarms: list[dict[str, Any]]) -> None:
        """A list the daemon read itself right after a change of its own: the latest known
        if it is newer (what it may hide is not told: the daemon's own change is among it)."""
        parsed = ListVersion.parse(version)
        latest = self._latest.get(household)
        steps = None if parsed is None or latest is None else parsed.after(latest[0])
        if parsed is None or (latest is not None and (steps is None or steps <= 0)):
            return
        self._latest[household] = (parsed, _contents(alarms))
        self._spend_own(household, steps or 0)

    def read(self, household: str | None, version: str, alarms: list[dict[str, Any]]) -> int | None:
        """A list read after an ``AlarmListVersion`` event: how many changes since the latest
        list known it hides (its version went up by more than the changes it shows and the
        daemon's own); ``None`` for a list older than the latest known (a read that was under
        way), which is then ignored."""
        parsed = ListVersion.parse(version)
        latest = self._latest.get(household)
        contents = _contents(alarms)
        if parsed is None:
            return 0
        steps = None if latest is None else parsed.after(latest[0])
        if steps is not None and steps < 0:
            return None
        self._latest[household] = (parsed, contents)
        if latest is None or steps is None:
            return 0
        own = self._spend_own(household, steps)
        return max(0, steps - _differing(latest[1], contents) - own)

    def _spend_own(self, household: str | None, steps: int) -> int:
        """Count up to ``steps`` of the daemon's own changes as seen; how many were."""
        own = min(self._own.get(household, 0), steps)
        self._own[household] = self._own.get(household, 0) - own
        return own
