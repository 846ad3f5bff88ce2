# -*- test-case-name: tests.sim.test_ramp -*-
"""``RampToVolume``: the volume moves one step at a time, on the clock, as speakers ramp it.

The ramp types and rates are those SoCo documents for ``ramp_to_volume`` (taken from Sonos'
behaviour): ``SLEEP_TIMER_RAMP_TYPE`` moves linearly from the current volume at 1.25 steps a
second; ``ALARM_RAMP_TYPE`` resets the volume to 0, waits about 30 s, then rises at 2.5 steps a
second; ``AUTOPLAY_RAMP_TYPE`` resets to 0 and rises at 50 steps a second. The answer
(``RampTime``) is the ramp's length in whole seconds, without the wait. Every step is a
volume change like any other (evented); setting the volume during a ramp stops it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from sonosd.sim.soap import UPnPError


@attrs.frozen
class RampType:
    """How one ramp type moves: start at 0 or not, the wait before, steps per second."""

    from_zero: bool
    wait: float
    rate: float


RAMP_TYPES: dict[str, RampType] = {
    "SLEEP_TIMER_RAMP_TYPE": RampType(from_zero=False, wait=0.0, rate=1.25),
    "ALARM_RAMP_TYPE": RampType(from_zero=True, wait=30.0, rate=2.5),
    "AUTOPLAY_RAMP_TYPE": RampType(from_zero=True, wait=0.0, rate=50.0),
}


class Ramp:
    """The volume ramp of one speaker.

    @param clock: Schedules the steps.
    @param set_volume: Sets the speaker's master volume (each step calls it once).
    """

    def __init__(self, clock: IReactorTime, set_volume: Callable[[int], object]) -> None:
        self._clock = clock
        self._set_volume = set_volume
        self._call: IDelayedCall | None = None
        self._target = 0
        self._interval = 0.0
        self._volume = 0
        self.stepping = False

    @property
    def active(self) -> bool:
        """Whether a ramp is under way."""
        return self._call is not None and self._call.active()

    @property
    def target(self) -> int | None:
        """The volume the ramp moves to (``None`` when none is under way)."""
        return self._target if self.active else None

    def start(self, current: int, target: int, ramp_type: str) -> int:
        """Ramp from ``current`` to ``target``; the ramp time in whole seconds.

        @raise UPnPError: 402 for an unknown ramp type.
        """
        kind = RAMP_TYPES.get(ramp_type)
        if kind is None:
            raise UPnPError(402, f"unknown ramp type {ramp_type!r}")
        self.cancel()
        target = max(0, min(100, target))
        self._target = target
        self._interval = 1.0 / kind.rate
        self._volume = current
        if kind.from_zero:
            self._volume = 0
            self._step_to(0)
        distance = abs(target - self._volume)
        if distance:
            self._call = self._clock.callLater(kind.wait + self._interval, self._step)
        return int(distance / kind.rate)

    def cancel(self) -> None:
        """Stop the ramp where it is."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _step(self) -> None:
        self._call = None
        self._volume += 1 if self._target > self._volume else -1
        self._step_to(self._volume)
        if self._volume != self._target:
            self._call = self._clock.callLater(self._interval, self._step)

    def _step_to(self, volume: int) -> None:
        self.stepping = True
        try:
            self._set_volume(volume)
        finally:
            self.stepping = False
