"""Tests for sim.ramp: RampToVolume steps on the clock at each type's rate."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sonosd.sim.ramp import Ramp
from sonosd.sim.soap import UPnPError


def ramp() -> tuple[Clock, Ramp, list[int]]:
    clock = Clock()
    volumes: list[int] = []
    return clock, Ramp(clock, volumes.append), volumes


def test_sleep_timer_ramp_is_linear() -> None:
    """SLEEP_TIMER_RAMP_TYPE moves from the current volume at 1.25 steps a second."""
    clock, moving, volumes = ramp()
    assert moving.start(50, 45, "SLEEP_TIMER_RAMP_TYPE") == 4
    assert moving.active and moving.target == 45
    clock.advance(0.8)
    assert volumes == [49]
    clock.pump([0.8] * 10)
    assert volumes == [49, 48, 47, 46, 45] and not moving.active


def test_alarm_and_autoplay_start_from_zero() -> None:
    """ALARM_RAMP_TYPE resets to 0 and waits 30 s; AUTOPLAY_RAMP_TYPE rises fast."""
    clock, moving, volumes = ramp()
    assert moving.start(40, 5, "ALARM_RAMP_TYPE") == 2
    assert volumes == [0]
    clock.advance(29)
    assert volumes == [0]
    clock.pump([0.5] * 10)
    assert volumes == [0, 1, 2, 3, 4, 5]
    clock, moving, volumes = ramp()
    assert moving.start(0, 50, "AUTOPLAY_RAMP_TYPE") == 1
    clock.pump([0.02] * 60)
    assert volumes[-1] == 50


def test_cancel_and_unknown_type() -> None:
    """A cancelled ramp stops where it is; an unknown ramp type is 402."""
    clock, moving, volumes = ramp()
    moving.start(10, 20, "SLEEP_TIMER_RAMP_TYPE")
    clock.advance(0.8)
    moving.cancel()
    clock.advance(10)
    assert volumes == [11] and moving.target is None
    with pytest.raises(UPnPError) as raised:
        moving.start(10, 20, "FAST")
    assert raised.value.code == 402
