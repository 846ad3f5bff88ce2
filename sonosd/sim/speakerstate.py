# -*- test-case-name: tests.sim.test_household -*-
"""The plain parts of a simulated speaker's state beside its transport: rendering, group, alarms.

Value objects only: :mod:`sonosd.sim.household` changes them, :mod:`sonosd.sim.variables`
reads them to build events.
"""

from __future__ import annotations

import attrs


@attrs.define
class Rendering:
    """RenderingControl state of one speaker."""

    volume: int = 20
    mute: bool = False
    bass: int = 0
    treble: int = 0
    loudness: bool = True
    balance_lf: int = 100
    balance_rf: int = 100
    night_mode: bool = False
    dialog_level: bool = False
    sub_enabled: bool = True
    sub_gain: int = 0
    surround_enabled: bool = True
    surround_level: int = 0
    music_surround_level: int = 0
    surround_mode: int = 0


@attrs.define
class Group:
    """A zone group: its ID, coordinator and members (coordinator included), in order."""

    group_id: str
    coordinator: str
    members: list[str]


@attrs.frozen
class Alarm:
    """One household alarm as ``ListAlarms`` reports it."""

    alarm_id: int
    start_time: str
    duration: str
    recurrence: str
    enabled: bool
    room_uid: str
    program_uri: str = "x-rincon-buzzer:0"
    program_metadata: str = ""
    play_mode: str = "SHUFFLE_NOREPEAT"
    volume: int = 25
    include_linked_zones: bool = False
