# -*- test-case-name: tests.household.test_position -*-
"""The track position of each playing group: read from its coordinator, never evented.

Sonos speakers do not event the position (``RelTime``): a "now playing" client needs it read.
``PositionTracker`` reads ``GetPositionInfo`` from a group's coordinator only (the members
follow it), when something moved it:

- an AVTransport event (or poll) of a coordinator that changes the transport state or the
  track (``transport_state``, ``current_track``, ``current_track_uri``,
  ``current_track_meta_data``, ``av_transport_uri``): play, pause, stop, next, a new source;
- a seek or another transport command made through sonosd (``refresh``), since a seek may
  change nothing that is evented;
- every ``position_interval`` seconds while the group plays (0: only on the above), to
  correct the drift of clients that extrapolate.

Speakers resend the transport state and track with every AVTransport event: only a value
that differs from the last one seen moves the position. Reads of one speaker start at least
``MIN_SPACING`` seconds apart: the first read of a quiet spell goes at once, what triggers
reads during the next ``MIN_SPACING`` seconds makes one read at its end (a speaker's NOTIFYs,
or someone skipping tracks, cannot make the daemon send that speaker a request for each).

Each read becomes the coordinator's AVTransport variables ``position`` (``H:MM:SS``) and
``position_time`` (when it was read), published as an ``event`` message with ``source``
``position``; with ``transport_state`` a client extrapolates while ``PLAYING``. Reads of one
speaker are coalesced, and sent by the reactor (``household.soap``: no SoCo, no thread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from sonosd.backoff import describe_failure
from sonosd.gena.eventxml import LazyDidl
from sonosd.household.soap import SoapCaller
from sonosd.household.state import SpeakerRef, isotime

log = Logger()

SOURCE = "position"
"""The ``source`` of the ``event`` messages that carry a position read."""

#: AVTransport variables whose change moves the position (or stops it moving).
TRIGGERS = frozenset(
    {
        "transport_state",
        "current_track",
        "current_track_uri",
        "current_track_meta_data",
        "av_transport_uri",
    }
)

PLAYING = frozenset({"PLAYING", "TRANSITIONING"})

MIN_SPACING = 2.0
"""Seconds between the starts of two position reads of one speaker, at least."""


#: What a read asks: ``GetPositionInfo`` of the coordinator's AVTransport.
READ = ("AVTransport", "GetPositionInfo", (("InstanceID", 0),))


def position_of(answer: Mapping[str, str]) -> dict[str, str]:
    """The variables a ``GetPositionInfo`` answer gives: ``{"position": "H:MM:SS"}``."""
    return {"position": str(answer.get("RelTime", ""))}


class PositionTracker:
    """Reads the position of playing groups' coordinators; see the module docstring.

    @param clock: Schedules the periodic reads.
    @param soap: Sends the reads (``household.soap.SoapClient``).
    @param processor: Where reads are published (``EventProcessor.on_state``).
    @param interval: Seconds between reads while a group plays (0: none but the triggered).
    @param timeout: Seconds one read may take.
    @param is_coordinator: Whether a uid coordinates its group (members are never read).
    @param min_spacing: Seconds between the starts of two reads of one speaker, at least.
    """

    def __init__(
        self,
        clock: IReactorTime,
        soap: SoapCaller,
        processor: Any,
        interval: float,
        timeout: float,
        is_coordinator: Callable[[str], bool],
        min_spacing: float = MIN_SPACING,
    ) -> None:
        self._clock = clock
        self._soap = soap
        self._processor = processor
        self.interval = interval
        self.timeout = timeout
        self._is_coordinator = is_coordinator
        self.min_spacing = min_spacing
        self._speakers: dict[str, SpeakerRef] = {}
        self._playing: dict[str, bool] = {}
        self._timers: dict[str, IDelayedCall] = {}
        self._reading: dict[str, Deferred[Any]] = {}
        self._again: set[str] = set()
        self._seen: dict[str, dict[str, Any]] = {}
        self._started: dict[str, float] = {}
        self.reads = 0

    def transport_event(self, ref: SpeakerRef, variables: Mapping[str, Any]) -> None:
        """An AVTransport event or read of ``ref``: read the position if it moved it (a
        variable of ``TRIGGERS`` with another value than the last one seen)."""
        state = variables.get("transport_state")
        if isinstance(state, str):
            self._playing[ref.uid] = state in PLAYING
        seen = self._seen.get(ref.uid)
        if seen is None:
            seen = self._seen[ref.uid] = {}
        moved = False
        for name in TRIGGERS.intersection(variables):
            value = variables[name]
            if type(value) is LazyDidl:
                value = value.didl  # compared as sent: parsing it would cost more than a read
            if name not in seen or seen[name] != value:
                seen[name] = value
                moved = True
        if moved and self._is_coordinator(ref.uid):
            self.refresh(ref)

    def refresh(self, ref: SpeakerRef) -> None:
        """Read ``ref``'s position now, or once the read in flight is done, or at the end of
        ``min_spacing`` after the last read began."""
        uid = ref.uid
        self._speakers[uid] = ref
        if uid in self._reading:
            self._again.add(uid)
            return
        due = self._started.get(uid, float("-inf")) + self.min_spacing
        now = self._clock.seconds()
        if now < due:
            timer = self._timers.get(uid)
            if timer is None or not timer.active() or timer.getTime() > due:
                self._cancel(uid)
                self._timers[uid] = self._clock.callLater(due - now, self._due, uid)
            return
        self._cancel(uid)
        self._started[uid] = now
        reading = Deferred.fromCoroutine(self._read(uid))
        if not reading.called:
            self._reading[uid] = reading

    def pending(self, uid: str) -> bool:
        """Whether a read of ``uid`` is in flight or due (timed, or asked again)."""
        timer = self._timers.get(uid)
        return uid in self._reading or uid in self._again or (timer is not None and timer.active())

    def _due(self, uid: str) -> None:
        self._timers.pop(uid, None)
        known = self._speakers.get(uid)
        if known is not None:
            self.refresh(known)

    def forget(self, uid: str) -> None:
        """Stop reading ``uid`` (it went away, or the daemon stops)."""
        self._cancel(uid)
        self._speakers.pop(uid, None)
        self._playing.pop(uid, None)
        self._seen.pop(uid, None)
        self._started.pop(uid, None)
        self._again.discard(uid)
        reading = self._reading.pop(uid, None)
        if reading is not None:
            reading.cancel()

    def stop(self) -> None:
        """Forget every speaker."""
        for uid in list(self._speakers):
            self.forget(uid)

    async def _read(self, uid: str) -> None:
        ref = self._speakers.get(uid)
        if ref is None:
            return
        service, action, arguments = READ
        try:
            answer = await self._soap.call(
                ref.host, ref.port, service, action, arguments, timeout=self.timeout
            )
        except Exception as error:
            self._reading.pop(uid, None)
            log.debug(
                "position of {speaker} not read: {reason}",
                speaker=ref.name,
                reason=describe_failure(error)[1],
            )
            self._next(uid)
            return
        read = position_of(answer)
        self._reading.pop(uid, None)
        if uid not in self._speakers:
            return
        self.reads += 1
        read["position_time"] = isotime(self._clock.seconds())
        try:
            self._processor.on_state(ref, "AVTransport", read, source=SOURCE)
        except Exception:
            log.failure("position of {speaker} not published", speaker=ref.name)
        self._next(uid)

    def _next(self, uid: str) -> None:
        known = self._speakers.get(uid)
        if known is None:
            return
        if uid in self._again:
            self._again.discard(uid)
            self.refresh(known)
            return
        if self.interval > 0 and self._playing.get(uid) and self._is_coordinator(uid):
            self._timers[uid] = self._clock.callLater(self.interval, self.refresh, known)

    def _cancel(self, uid: str) -> None:
        timer = self._timers.pop(uid, None)
        if timer is not None and timer.active():
            timer.cancel()
