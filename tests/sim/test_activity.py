"""Tests for the autonomous activity generator (sonosd.sim.activity)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sonosd.sim.activity import ActivityGenerator
from sonosd.sim.household import Household
from tests.sim_fakes import RecordingManager


def run(seed: int) -> tuple[list[str], int]:
    clock = Clock()
    household = Household(clock, speakers=4, seed=1, transition_delay=0)
    managers = []
    for speaker in household.speakers:
        speaker.manager = manager = RecordingManager(clock, speaker.uid, "", None, "")
        managers.append(manager)
    activity = ActivityGenerator(clock, household, rate=5.0, seed=seed)
    steps = [activity.step() for _ in range(50)]
    activity.start()
    for _ in range(200):
        clock.advance(0.1)
    activity.stop()
    return steps, sum(len(m.notifications) for m in managers)


def test_same_seed_same_changes() -> None:
    """Two generators with one seed make the same changes."""
    assert run(3)[0] == run(3)[0]
    assert run(3)[0] != run(4)[0]


def test_changes_are_evented() -> None:
    """Changes go through the household, so managers receive NOTIFYs."""
    _, notified = run(3)
    assert notified > 50


def test_rate_and_stop() -> None:
    """At rate 0 nothing runs; a negative rate is refused; stop cancels the timer."""
    clock = Clock()
    household = Household(clock, speakers=1, seed=1)
    activity = ActivityGenerator(clock, household, rate=0.0)
    activity.start()
    assert not activity.running and not clock.getDelayedCalls()
    with pytest.raises(ValueError):
        activity.set_rate(-1)
    activity.set_rate(1)
    assert activity.running
    activity.stop()
    assert not clock.getDelayedCalls()
