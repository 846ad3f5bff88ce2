"""Tests for playback on a simulated speaker (sonosd.sim.transport), driven by a Clock."""

from __future__ import annotations

import random
from typing import Any

import attrs
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from sonosd.sim.catalog import SONGS, STATIONS
from sonosd.sim.soap import UPnPError
from sonosd.sim.transport import Transport


def make(tracks: int = 3) -> tuple[Clock, Transport, list[str]]:
    clock = Clock()
    changes: list[str] = []
    transport = Transport(clock, "RINCON_X01400", random.Random(1), changes.append, 0.5)
    transport.queue.extend(SONGS[:tracks])
    transport.set_uri(transport.queue_uri, "", None)
    changes.clear()
    return clock, transport, changes


def playing(clock: Clock, transport: Transport) -> None:
    transport.play()
    clock.advance(0.5)
    assert transport.state == "PLAYING"


def code(call: object) -> int:
    with pytest.raises(UPnPError) as error:
        call()  # type: ignore[operator]
    return error.value.code


def test_position_advances_only_while_playing() -> None:
    """The position moves with the clock while playing and stops while paused."""
    clock, transport, _ = make()
    playing(clock, transport)
    clock.advance(30)
    assert transport.position() == 30
    transport.pause()
    clock.advance(100)
    assert transport.position() == 30


def test_tracks_end_and_advance_then_stop() -> None:
    """A song that ends starts the next; the last one ends in STOPPED at track 1."""
    clock, transport, _ = make(tracks=2)
    playing(clock, transport)
    clock.advance(SONGS[0].duration)
    assert (transport.track_no, transport.state, transport.position()) == (2, "PLAYING", 0)
    clock.advance(SONGS[1].duration)
    assert (transport.track_no, transport.state) == (1, "STOPPED")


def test_repeat_all_wraps_and_repeat_one_repeats() -> None:
    """REPEAT_ALL wraps to the first track; REPEAT_ONE plays the same track again."""
    clock, transport, _ = make(tracks=2)
    transport.set_play_mode("REPEAT_ALL")
    transport.seek_track(2)
    playing(clock, transport)
    clock.advance(SONGS[1].duration)
    assert transport.track_no == 1 and transport.state == "PLAYING"
    transport.set_play_mode("REPEAT_ONE")
    clock.advance(SONGS[0].duration)
    assert transport.track_no == 1


def test_errors() -> None:
    """Next past the end is 701, bad seeks 711, unknown play modes 712, pause when stopped 701."""
    _, transport, _ = make(tracks=1)
    assert code(transport.next) == 701
    assert code(transport.pause) == 701
    assert code(lambda: transport.seek_time(SONGS[0].duration + 1)) == 711
    assert code(lambda: transport.seek_time(None)) == 711
    assert code(lambda: transport.seek_track(5)) == 711
    assert code(lambda: transport.set_play_mode("LOUD")) == 712


def test_streams_never_end_and_cannot_seek() -> None:
    """A radio stream plays on without ending; seeking in it is 701."""
    clock, transport, _ = make()
    transport.set_uri(STATIONS[0].uri, "", STATIONS[0])
    playing(clock, transport)
    clock.advance(10_000)
    assert transport.state == "PLAYING"
    assert code(lambda: transport.seek_time(5)) == 701
    assert code(transport.next) == 701


def test_play_mode_needs_the_queue() -> None:
    """Off the queue (a stream) every SetPlayMode is 712 and the mode stays; on it, it is set."""
    _, transport, changes = make()
    transport.set_uri(STATIONS[0].uri, "", STATIONS[0])
    before = list(changes)
    assert code(lambda: transport.set_play_mode("SHUFFLE")) == 712
    assert (transport.play_mode, changes) == ("NORMAL", before)
    transport.set_uri(transport.queue_uri, "", None)
    transport.set_play_mode("REPEAT_ALL")
    assert transport.play_mode == "REPEAT_ALL"


def test_crossfade_needs_content_that_crossfades() -> None:
    """Off the queue (a stream) SetCrossfadeMode is 800 and crossfade stays off; with no source
    yet, or on the queue, it is set."""
    clock = Clock()
    fresh = Transport(clock, "RINCON_Y01400", random.Random(1), lambda kind: None, 0.5)
    fresh.set_crossfade(True)
    assert fresh.crossfade is True
    _, transport, changes = make()
    transport.set_uri(STATIONS[0].uri, "", STATIONS[0])
    before = list(changes)
    assert code(lambda: transport.set_crossfade(True)) == 800
    assert (transport.crossfade, changes) == (False, before)
    transport.set_uri(transport.queue_uri, "", None)
    transport.set_crossfade(True)
    assert transport.crossfade is True


def test_sleep_timer_pauses() -> None:
    """The sleep timer counts down and pauses playback when it fires."""
    clock, transport, _ = make()
    playing(clock, transport)
    transport.configure_sleep(60)
    clock.advance(20)
    assert transport.remaining_sleep() == 40
    clock.advance(40)
    assert transport.state == "PAUSED_PLAYBACK"
    assert transport.remaining_sleep() is None
    assert code(lambda: transport.configure_sleep(90_000)) == 402


def test_queue_edits() -> None:
    """Adding before the current track shifts it; clearing the queue stops playback."""
    clock, transport, changes = make()
    transport.seek_track(2)
    first = transport.add_to_queue([SONGS[5]], position=1)
    assert (first, transport.track_no, transport.queue_update_id) == (1, 3, 1)
    assert "queue" in changes
    playing(clock, transport)
    transport.clear_queue()
    assert (transport.state, transport.track_no, transport.current()) == ("STOPPED", 0, None)


def test_settled_fires_after_transitioning() -> None:
    """settled() fires once TRANSITIONING is over."""
    clock, transport, _ = make()
    transport.play()
    waiter = transport.settled()
    assert not waiter.called
    clock.advance(0.5)
    assert waiter.called


def test_a_rehearsal_refuses_the_same_and_touches_nothing() -> None:
    """A rehearsal refuses what the transport would, and what it does (play with a fetch,
    shuffled next tracks, a sleep timer, a seek) reaches neither the transport, nor its
    clock's timers, nor its random choices, nor its fetcher, nor its subscribers."""
    clock, transport, changes = make(tracks=5)
    fetched: list[str] = []

    def prepare(uri: str) -> Deferred[Any]:
        fetched.append(uri)
        return Deferred()

    transport.prepare = prepare
    transport.queue[2] = attrs.evolve(SONGS[2], uri="http://127.0.0.1:9/a.mp3")
    playing(clock, transport)
    transport.set_play_mode("SHUFFLE")
    changes.clear()
    rng_state = transport._rng.getstate()
    timers = clock.getDelayedCalls()
    trial = transport.rehearsal()
    assert code(lambda: trial.seek_track(6)) == code(lambda: transport.seek_track(6)) == 711
    trial.seek_track(3)
    assert (trial.state, transport.state, trial.track_no, transport.track_no) == (
        "TRANSITIONING",
        "PLAYING",
        3,
        1,
    )
    trial.next()
    trial.configure_sleep(60)
    trial.clear_queue()
    assert code(trial.play) == 701
    assert (len(transport.queue), transport.track_no, transport.state) == (5, 1, "PLAYING")
    assert (fetched, changes, transport.remaining_sleep()) == ([], [], None)
    assert clock.getDelayedCalls() == timers
    assert transport._rng.getstate() == rng_state
