# -*- test-case-name: tests.sim.test_activity -*-
"""Autonomous activity: a household that changes on its own, for the demo and load tests.

``ActivityGenerator`` makes ``rate`` changes per second on average (Poisson arrivals) across
the household (every household of a neighbourhood): track changes, volume moves, play/pause,
mute. It draws from its own seeded
``random.Random`` so the same seed gives the same sequence of changes, and it acts through the
household's methods so every change is evented like one made through SoCo.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sonosd.sim.household import Speaker
from sonosd.sim.soap import UPnPError
from sonosd.sim.transport import PLAYING

log = Logger()


class Speakers(Protocol):
    """Where the changes happen: a ``Household`` or a ``Neighbourhood`` of several."""

    @property
    def speakers(self) -> Sequence[Speaker]:
        """Every speaker."""


class ActivityGenerator:
    """Random changes at ``rate`` per second; ``start()`` / ``stop()``; ``changes`` counts."""

    def __init__(
        self, clock: IReactorTime, household: Speakers, rate: float, seed: int | None = None
    ) -> None:
        if rate < 0:
            raise ValueError("the activity rate cannot be negative")
        self._clock = clock
        self._household = household
        self.rate = rate
        self._rng = random.Random(seed)
        self._call: IDelayedCall | None = None
        self.changes = 0
        self._actions: list[tuple[float, Callable[[Speaker], str]]] = [
            (4.0, self._volume),
            (2.0, self._next_track),
            (1.5, self._play_pause),
            (0.5, self._mute),
        ]

    @property
    def running(self) -> bool:
        """Whether changes are being made."""
        return self._call is not None

    def start(self) -> None:
        """Start making changes (nothing happens at rate 0)."""
        if self._call is None and self.rate > 0:
            self._schedule()

    def stop(self) -> None:
        """Stop making changes."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def set_rate(self, rate: float) -> None:
        """Change the rate (0 stops)."""
        if rate < 0:
            raise ValueError("the activity rate cannot be negative")
        self.stop()
        self.rate = rate
        self.start()

    def step(self) -> str:
        """Make one random change now; returns what it did (``"volume Kitchen 23"``...)."""
        candidates = [
            s for s in self._household.speakers if s.reachable and not s.invisible
        ] or self._household.speakers
        speaker = self._rng.choice(candidates)
        weights = [weight for weight, _ in self._actions]
        act = self._rng.choices([fn for _, fn in self._actions], weights)[0]
        try:
            what = act(speaker)
        except UPnPError:
            what = self._volume(speaker)
        self.changes += 1
        return what

    def _schedule(self) -> None:
        self._call = self._clock.callLater(self._rng.expovariate(self.rate), self._tick)

    def _tick(self) -> None:
        self._call = None
        self.step()
        self._schedule()

    def _volume(self, speaker: Speaker) -> str:
        step = self._rng.choice((-5, -3, -2, -1, 1, 2, 3, 5))
        volume = speaker.set_volume(speaker.rendering.volume + step)
        return f"volume {speaker.name} {volume}"

    def _next_track(self, speaker: Speaker) -> str:
        coordinator = speaker.coordinator
        coordinator.transport.next()
        return f"next {coordinator.name} {coordinator.transport.track_no}"

    def _play_pause(self, speaker: Speaker) -> str:
        transport = speaker.coordinator.transport
        if transport.state == PLAYING:
            transport.pause()
            return f"pause {speaker.coordinator.name}"
        transport.play()
        return f"play {speaker.coordinator.name}"

    def _mute(self, speaker: Speaker) -> str:
        speaker.set_mute(not speaker.rendering.mute)
        return f"mute {speaker.name} {speaker.rendering.mute}"
