# -*- test-case-name: tests.sim.test_transport -*-
"""The playback state of one simulated speaker: queue, source, transport state and position.

A ``Transport`` belongs to a speaker and is what that speaker plays while it coordinates a
group. Time comes from the clock it is given: the position advances while playing, a song
that ends advances to the next one (per the play mode), the sleep timer fires. ``Play`` passes
through ``TRANSITIONING`` before ``PLAYING``, as real speakers do. Every change calls
``on_change("transport")`` or ``on_change("queue")`` so the speaker can event it.

Errors are the UPnP codes real speakers answer (``UPnPError``): 701 transition not available,
711 illegal seek target, 712 play mode not supported, 402 invalid arguments.

A track the speaker must fetch itself (``http``/``https``) is handed to ``prepare`` when it
starts: the transport stays in ``TRANSITIONING`` until the fetch tells whether it plays (then
for the audio's real duration) or not (then ``STOPPED`` with ``status`` ``ERROR_NO_CONTENT``
and the reason, and ``Play`` answers 701 for that track until the source changes).
"""

from __future__ import annotations

import copy as _copy
import math
import random
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import attrs
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import Clock

from sonosd.sim.didl import Track
from sonosd.sim.soap import UPnPError

STOPPED = "STOPPED"
PLAYING = "PLAYING"
PAUSED = "PAUSED_PLAYBACK"
TRANSITIONING = "TRANSITIONING"

PLAY_MODES = frozenset(
    {"NORMAL", "REPEAT_ALL", "REPEAT_ONE", "SHUFFLE_NOREPEAT", "SHUFFLE", "SHUFFLE_REPEAT_ONE"}
)
_SHUFFLE = frozenset({"SHUFFLE_NOREPEAT", "SHUFFLE", "SHUFFLE_REPEAT_ONE"})
_REPEAT_ALL = frozenset({"REPEAT_ALL", "SHUFFLE"})
_REPEAT_ONE = frozenset({"REPEAT_ONE", "SHUFFLE_REPEAT_ONE"})

#: Longest sleep timer Sonos accepts (23:59:59).
MAX_SLEEP = 86399

#: ``TransportStatus`` after a track that could not be fetched (a value real firmware sends
#: when a source gives nothing to play; janbar/noson-app issue #78).
NO_CONTENT = "ERROR_NO_CONTENT"


class Prepared(Protocol):
    """What ``prepare`` tells about a track (``sonosd.sim.fetcher.Probe``)."""

    @property
    def ok(self) -> bool: ...

    @property
    def duration(self) -> float | None: ...

    @property
    def reason(self) -> str: ...


#: Fetches a URI; fires with a ``Prepared`` (``sonosd.sim.fetcher.Fetcher.probe``).
Prepare = Callable[[str], Deferred[Any]]


def _ignore(kind: str) -> None:
    """What a rehearsal tells of its changes: nothing."""


def _never_prepared(uri: str) -> Deferred[Any]:
    """A rehearsal's fetch: it never answers."""
    return Deferred()


def needs_fetch(uri: str) -> bool:
    """Whether a speaker fetches ``uri`` itself when it plays it."""
    return uri.lower().startswith(("http://", "https://"))


class Transport:
    """Playback of one speaker; see the module docstring."""

    def __init__(
        self,
        clock: IReactorTime,
        uid: str,
        rng: random.Random,
        on_change: Callable[[str], None],
        transition_delay: float = 0.1,
        prepare: Prepare | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._notify_change = on_change
        self._settle_waiters: list[Deferred[None]] = []
        self.transition_delay = transition_delay
        self.prepare = prepare
        self.status = "OK"
        self.error_description = ""
        self.error_uri = ""
        self._failed_uri: str | None = None
        self._preparing: object | None = None
        self._exact: dict[str, float] = {}
        self.queue_uri = f"x-rincon-queue:{uid}#0"
        self.queue: list[Track] = []
        self.queue_update_id = 0
        self.state = STOPPED
        self.play_mode = "NORMAL"
        self.crossfade = False
        self.uri = ""
        self.uri_metadata = ""
        self.stream: Track | None = None
        self.track_no = 0
        self.sleep_generation = 0
        self._offset = 0.0
        self._since: float | None = None
        self._end_call: IDelayedCall | None = None
        self._transition_call: IDelayedCall | None = None
        self._sleep_call: IDelayedCall | None = None

    def _on_change(self, kind: str) -> None:
        self._notify_change(kind)
        if self.state != TRANSITIONING and self._settle_waiters:
            waiters, self._settle_waiters = self._settle_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    def settled(self) -> Deferred[None]:
        """A Deferred that fires once the state is not ``TRANSITIONING`` (now, if so)."""
        if self.state != TRANSITIONING:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._settle_waiters.append(waiter)
        return waiter

    def rehearsal(self) -> Transport:
        """A detached copy of this transport to try commands on first: it refuses (raises the
        same ``UPnPError``) whatever this one would refuse now, and nothing done to it reaches
        this one, its timers, its random choices or its subscribers. The admin API's state
        PATCH tries every key on one before it applies any (all or nothing)."""
        copy = _copy.copy(self)
        clock = Clock()
        clock.advance(self._clock.seconds())
        copy._clock = clock
        copy._notify_change = _ignore
        copy._settle_waiters = []
        copy._exact = dict(self._exact)
        copy.queue = list(self.queue)
        copy._rng = random.Random()
        copy._rng.setstate(self._rng.getstate())
        # A fetch that never answers: the copy goes through the same states, reaching nothing.
        copy.prepare = None if self.prepare is None else _never_prepared
        copy._preparing = None
        copy._end_call = copy._transition_call = copy._sleep_call = None
        return copy

    # -- reading ---------------------------------------------------------------------------

    @property
    def on_queue(self) -> bool:
        """Whether the source is this speaker's queue."""
        return self.uri == self.queue_uri

    def current(self) -> Track | None:
        """The current track, or ``None`` when nothing is set."""
        if self.on_queue:
            if 1 <= self.track_no <= len(self.queue):
                return self.queue[self.track_no - 1]
            return None
        return self.stream

    def next_track(self) -> Track | None:
        """The track after the current one in the queue (``r:NextTrackURI``), if any."""
        if not self.on_queue or not self.queue or self.play_mode in _SHUFFLE:
            return None
        if self.play_mode in _REPEAT_ONE:
            return self.current()
        if self.track_no < len(self.queue):
            return self.queue[self.track_no]
        if self.play_mode in _REPEAT_ALL:
            return self.queue[0]
        return None

    def position(self) -> int:
        """Seconds into the current track (not evented: only polling sees it move)."""
        position = self._offset
        if self._since is not None:
            position += self._clock.seconds() - self._since
        track = self.current()
        if track is not None and not track.is_stream:
            position = min(position, float(track.duration))
        return int(position)

    def actions(self) -> str:
        """``CurrentTransportActions`` for the current source."""
        if self.current() is None:
            return "Set"
        if self.on_queue:
            return "Set, Play, Stop, Pause, Seek, Next, Previous"
        return "Set, Play, Stop, Pause"

    def remaining_sleep(self) -> int | None:
        """Seconds left on the sleep timer, or ``None`` when none is set."""
        if self._sleep_call is None or not self._sleep_call.active():
            return None
        return max(0, round(self._sleep_call.getTime() - self._clock.seconds()))

    # -- source ----------------------------------------------------------------------------

    def set_uri(self, uri: str, metadata: str, track: Track | None) -> None:
        """``SetAVTransportURI``: the queue (``x-rincon-queue:<uid>#0``) or a single item."""
        self._halt_playback()
        self._offset = 0.0
        self.state = STOPPED
        self._clear_error()
        self.uri = uri
        self.uri_metadata = metadata
        if uri == self.queue_uri:
            self.stream = None
            self.track_no = 1 if self.queue else 0
        else:
            self.stream = track
            self.track_no = 1
        self._on_change("transport")

    def clear_source(self) -> None:
        """Forget the source (the speaker joined a group or was rebooted)."""
        self._halt_playback()
        self._offset = 0.0
        self.state = STOPPED
        self.uri = ""
        self.uri_metadata = ""
        self.stream = None
        self.track_no = 0
        self._on_change("transport")

    # -- transport commands ----------------------------------------------------------------

    def play(self) -> None:
        """``Play``: TRANSITIONING now, PLAYING after ``transition_delay`` seconds."""
        if self.uri == "" and self.queue:
            self.uri = self.queue_uri
            self.track_no = max(self.track_no, 1)
        track = self.current()
        if track is None:
            raise UPnPError(701, "nothing to play")
        if track.uri == self._failed_uri:
            raise UPnPError(701, f"cannot play {track.uri}: {self.error_description}")
        if self.state == PLAYING:
            return
        self.state = TRANSITIONING
        self._clear_error()
        self._on_change("transport")
        self._start_transition()

    def _start_transition(self) -> None:
        """Go to ``PLAYING`` after ``transition_delay``, once the track is fetched if it
        must be."""
        self._cancel(self._transition_call)
        self._transition_call = None
        track = self.current()
        if track is None or self.prepare is None or not needs_fetch(track.uri):
            self._transition_call = self._clock.callLater(self.transition_delay, self._playing)
            return
        token = self._preparing = object()
        started = self._clock.seconds()
        self.prepare(track.uri).addCallback(self._prepared, token, track, started)

    def _prepared(self, result: Prepared, token: object, track: Track, started: float) -> None:
        if token is not self._preparing or self.state != TRANSITIONING:
            return
        self._preparing = None
        if not result.ok:
            self._fail(track, result.reason)
            return
        if result.duration is not None:
            self._exact[track.uri] = result.duration
            self._set_duration(track, math.ceil(result.duration))
        elif not track.is_stream:
            # Unknown length (a live stream): it plays until stopped.
            self._set_duration(track, 0)
        remaining = max(0.0, self.transition_delay - (self._clock.seconds() - started))
        self._transition_call = self._clock.callLater(remaining, self._playing)

    def _fail(self, track: Track, reason: str) -> None:
        """The track cannot be played: back to STOPPED with the error evented."""
        self._freeze()
        self._offset = 0.0
        self.state = STOPPED
        self.status = NO_CONTENT
        self.error_description = reason
        self.error_uri = track.uri
        self._failed_uri = track.uri
        self._on_change("transport")

    def _clear_error(self) -> None:
        self.status = "OK"
        self.error_description = ""
        self.error_uri = ""
        self._failed_uri = None

    def _set_duration(self, track: Track, seconds: int) -> None:
        """Replace ``track`` (the current one) by itself with the duration measured."""
        if track.duration == seconds:
            return
        updated = attrs.evolve(track, duration=seconds)
        if self.on_queue and 1 <= self.track_no <= len(self.queue):
            self.queue[self.track_no - 1] = updated
        elif self.stream is track:
            self.stream = updated

    def _playing(self) -> None:
        self._transition_call = None
        self.state = PLAYING
        self._since = self._clock.seconds()
        self._schedule_end()
        self._on_change("transport")

    def pause(self) -> None:
        """``Pause``: only while playing (else 701, as real speakers answer)."""
        if self.state not in (PLAYING, TRANSITIONING):
            raise UPnPError(701, "not playing")
        self._freeze()
        self.state = PAUSED
        self._on_change("transport")

    def stop(self) -> None:
        """``Stop``: back to the start of the current track."""
        if self.current() is None and self.state == STOPPED:
            return
        self._halt_playback()
        self._offset = 0.0
        self.state = STOPPED
        self._on_change("transport")

    def next(self) -> None:
        """``Next`` in the queue; 701 on a stream or past the end without repeat."""
        target = self._following(manual=True)
        if target is None:
            raise UPnPError(701, "no next track")
        self._go_to(target)

    def previous(self) -> None:
        """``Previous`` in the queue (restart at the first track); 701 on a stream."""
        if not self.on_queue or not self.queue:
            raise UPnPError(701, "no previous track")
        target = self.track_no - 1
        if target < 1:
            target = len(self.queue) if self.play_mode in _REPEAT_ALL else 1
        self._go_to(target)

    def seek_time(self, target: int | None) -> None:
        """``Seek`` with ``REL_TIME``: 711 for a bad or out-of-range target, 701 on streams."""
        track = self.current()
        if track is None or track.is_stream:
            raise UPnPError(701, "cannot seek in a stream")
        if target is None or not 0 <= target <= track.duration:
            raise UPnPError(711, "illegal seek target")
        was = self.state
        self._freeze()
        self._offset = float(target)
        self._continue(was)
        self._on_change("transport")

    def seek_track(self, number: int | None) -> None:
        """``Seek`` with ``TRACK_NR`` (1-based): 711 when out of range, 701 off the queue."""
        if not self.on_queue:
            raise UPnPError(701, "not playing the queue")
        if number is None or not 1 <= number <= len(self.queue):
            raise UPnPError(711, "illegal seek target")
        self._go_to(number)

    def set_play_mode(self, mode: str) -> None:
        """``SetPlayMode``: 712 for a mode Sonos does not know, and for any mode while the
        source is not the queue (a stream, line-in, TV: shuffle and repeat need the queue;
        reference/samples/service_descriptions/documentation.json, SetPlayMode remarks)."""
        if mode not in PLAY_MODES:
            raise UPnPError(712, "play mode not supported")
        if not self.on_queue:
            raise UPnPError(712, "play mode not supported: the queue is not the source")
        if mode != self.play_mode:
            self.play_mode = mode
            self._on_change("transport")

    def set_crossfade(self, enabled: bool) -> None:
        """``SetCrossfadeMode``: 800 while the source is content without crossfade (a stream,
        line-in, TV: Sonos crossfades between queue tracks only; reference/samples/
        service_descriptions/documentation.json, SetCrossfadeMode remarks)."""
        if self.uri and not self.on_queue:
            raise UPnPError(800, "crossfade not supported by the current source")
        if enabled != self.crossfade:
            self.crossfade = enabled
            self._on_change("transport")

    def configure_sleep(self, seconds: int | None) -> None:
        """``ConfigureSleepTimer``: ``None`` cancels; at expiry playback pauses."""
        if seconds is not None and not 0 <= seconds <= MAX_SLEEP:
            raise UPnPError(402, "sleep timer out of range")
        self._cancel(self._sleep_call)
        self._sleep_call = None
        if seconds is not None:
            self._sleep_call = self._clock.callLater(seconds, self._sleep_expired)
        self.sleep_generation += 1
        self._on_change("transport")

    def _sleep_expired(self) -> None:
        self._sleep_call = None
        self.sleep_generation += 1
        if self.state in (PLAYING, TRANSITIONING):
            self._freeze()
            self.state = PAUSED
        self._on_change("transport")

    # -- queue -----------------------------------------------------------------------------

    def add_to_queue(
        self, tracks: Sequence[Track], position: int = 0, as_next: bool = False
    ) -> int:
        """``AddURIToQueue``: insert at 1-based ``position`` (0 = the end); the first number."""
        if as_next and self.on_queue and self.track_no:
            position = self.track_no + 1
        if position <= 0 or position > len(self.queue) + 1:
            position = len(self.queue) + 1
        self.queue[position - 1 : position - 1] = list(tracks)
        if self.on_queue and self.track_no >= position and self.track_no > 0:
            self.track_no += len(tracks)
        if self.on_queue and self.track_no == 0 and self.queue:
            self.track_no = 1
        self._queue_changed()
        return position

    def remove_from_queue(self, number: int) -> None:
        """``RemoveTrackFromQueue`` of the 1-based ``number``."""
        if not 1 <= number <= len(self.queue):
            raise UPnPError(701, "no such track")
        del self.queue[number - 1]
        if self.on_queue:
            if number < self.track_no:
                self.track_no -= 1
            elif number == self.track_no:
                self._halt_playback()
                self._offset = 0.0
                self.state = STOPPED
                self.track_no = min(self.track_no, len(self.queue))
        self._queue_changed()

    def remove_range(self, start: int, count: int) -> None:
        """``RemoveTrackRangeFromQueue``: ``count`` tracks from 1-based ``start``; 402 when
        the range is not inside the queue."""
        if count < 1 or start < 1 or start + count - 1 > len(self.queue):
            raise UPnPError(402, "range outside the queue")
        del self.queue[start - 1 : start - 1 + count]
        if self.on_queue and self.track_no >= start:
            if self.track_no < start + count:
                self._halt_playback()
                self._offset = 0.0
                self.state = STOPPED
                self.track_no = min(start, len(self.queue))
            else:
                self.track_no -= count
        self._queue_changed()

    def reorder(self, start: int, count: int, insert_before: int) -> None:
        """``ReorderTracksInQueue``: move ``count`` tracks from 1-based ``start`` before the
        track that was at ``insert_before`` (past the end: to the end); the current track
        keeps playing where it went."""
        length = len(self.queue)
        if count < 1 or start < 1 or start + count - 1 > length or insert_before < 1:
            raise UPnPError(402, "range outside the queue")
        if start < insert_before < start + count:
            raise UPnPError(402, "cannot insert a block inside itself")
        insert_before = min(insert_before, length + 1)
        order = list(range(1, length + 1))
        block = order[start - 1 : start - 1 + count]
        rest = [n for n in order if n not in block]
        at = sum(1 for n in rest if n < insert_before)
        order = rest[:at] + block + rest[at:]
        self.queue[:] = [self.queue[n - 1] for n in order]
        if self.on_queue and self.track_no:
            self.track_no = order.index(self.track_no) + 1
        self._queue_changed()

    def clear_queue(self) -> None:
        """``RemoveAllTracksFromQueue``: playing from the queue stops."""
        self.queue.clear()
        if self.on_queue:
            self._halt_playback()
            self._offset = 0.0
            self.state = STOPPED
            self.track_no = 0
        self._queue_changed()

    def _queue_changed(self) -> None:
        self.queue_update_id += 1
        self._on_change("queue")
        if self.on_queue:
            self._on_change("transport")

    # -- lifecycle -------------------------------------------------------------------------

    def halt(self) -> None:
        """Stop every timer (shutdown, reboot); the state becomes STOPPED."""
        self._halt_playback()
        self._cancel(self._sleep_call)
        self._sleep_call = None
        if self.state != STOPPED:
            self.state = STOPPED
            self._on_change("transport")

    # -- internals -------------------------------------------------------------------------

    def _following(self, manual: bool) -> int | None:
        if not self.on_queue or not self.queue:
            return None
        if self.play_mode in _REPEAT_ONE and not manual:
            return self.track_no
        if self.play_mode in _SHUFFLE and len(self.queue) > 1:
            choices = [n for n in range(1, len(self.queue) + 1) if n != self.track_no]
            return self._rng.choice(choices)
        if self.track_no < len(self.queue):
            return self.track_no + 1
        if self.play_mode in _REPEAT_ALL or (manual and self.play_mode in _REPEAT_ONE):
            return 1
        return None

    def _go_to(self, number: int) -> None:
        was = self.state
        self._freeze()
        self._offset = 0.0
        self.track_no = number
        self._clear_error()
        track = self.current()
        fetch = track is not None and self.prepare is not None and needs_fetch(track.uri)
        if was in (PLAYING, TRANSITIONING) and fetch:
            self.state = TRANSITIONING
            self._on_change("transport")
            self._start_transition()
            return
        self._continue(was)
        self._on_change("transport")

    def _continue(self, was: str) -> None:
        """Carry on in state ``was`` after a jump (the position timers were stopped)."""
        if was == PLAYING:
            self._since = self._clock.seconds()
            self._schedule_end()
        elif was == TRANSITIONING:
            self._start_transition()

    def _track_ended(self) -> None:
        self._end_call = None
        target = self._following(manual=False)
        self._freeze()
        self._offset = 0.0
        if target is None:
            self.track_no = 1 if self.queue else 0
            self.state = STOPPED
        else:
            self.track_no = target
            track = self.current()
            if track is not None and self.prepare is not None and needs_fetch(track.uri):
                self.state = TRANSITIONING
                self._on_change("transport")
                self._start_transition()
                return
            self._since = self._clock.seconds()
            self._schedule_end()
        self._on_change("transport")

    def _schedule_end(self) -> None:
        self._cancel(self._end_call)
        self._end_call = None
        track = self.current()
        if track is None or track.is_stream:
            return
        remaining = max(0.0, self._exact.get(track.uri, float(track.duration)) - self._offset)
        self._end_call = self._clock.callLater(remaining, self._track_ended)

    def _freeze(self) -> None:
        """Stop the position where it is (pause) and cancel the end-of-track timer."""
        if self._since is not None:
            self._offset = float(self.position())
            self._since = None
        self._cancel(self._end_call)
        self._end_call = None
        self._cancel(self._transition_call)
        self._transition_call = None
        self._preparing = None

    def _halt_playback(self) -> None:
        self._freeze()

    @staticmethod
    def _cancel(call: IDelayedCall | None) -> None:
        if call is not None and call.active():
            call.cancel()
