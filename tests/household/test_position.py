"""Unit tests of household.position's timing (a Clock, a recording SOAP caller); the reads
against the simulator are tested end to end in ``test_household_daemon.py``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sonosd.gena.eventxml import LazyDidl
from sonosd.household.position import MIN_SPACING, SOURCE, PositionTracker, position_of
from sonosd.household.state import SpeakerRef
from tests.supervisor_fakes import FakeSoap

REF = SpeakerRef("RINCON_C", "Kitchen", "127.0.0.2")


class Processor:
    def __init__(self) -> None:
        self.states: list[tuple[str, Mapping[str, Any], str]] = []

    def on_state(
        self, speaker: SpeakerRef, service: str, variables: Mapping[str, Any], source: str = ""
    ) -> None:
        self.states.append((speaker.uid, dict(variables), source))


class TrackerTests(SynchronousTestCase):
    def make(self, interval: float = 30.0, coordinator: bool = True) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.runner = FakeSoap(
            lambda call: {"RelTime": f"0:00:{len(self.runner.calls):02d}", "TrackDuration": "x"}
        )
        self.processor = Processor()
        self.tracker = PositionTracker(
            self.clock, self.runner, self.processor, interval, 5.0, lambda uid: coordinator
        )

    def test_read_on_transport_change_then_every_interval_while_playing(self) -> None:
        """A change of transport state reads the position at once (with the time it was read),
        then every interval while playing, once more after a pause (MIN_SPACING after the
        last read), and no more then."""
        self.make()
        self.tracker.transport_event(REF, {"transport_state": "PLAYING"})
        self.assertEqual(
            self.processor.states,
            [
                (
                    "RINCON_C",
                    {"position": "0:00:01", "position_time": "2023-11-14T22:13:20.000Z"},
                    SOURCE,
                )
            ],
        )
        self.assertEqual(
            self.runner.calls[0],
            ("127.0.0.2", 1400, "AVTransport", "GetPositionInfo", (("InstanceID", 0),), 5.0),
        )
        self.clock.advance(29.9)
        self.assertEqual(len(self.processor.states), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.processor.states), 2)
        self.tracker.transport_event(REF, {"transport_state": "PAUSED_PLAYBACK"})
        self.clock.advance(MIN_SPACING)
        self.assertEqual(len(self.processor.states), 3)
        self.clock.advance(120)
        self.assertEqual(len(self.processor.states), 3)

    def test_other_variables_and_members_not_read(self) -> None:
        """Variables that do not move the position, and group members, cause no read."""
        self.make()
        self.tracker.transport_event(REF, {"current_crossfade_mode": "1"})
        self.assertEqual(self.processor.states, [])
        self.make(coordinator=False)
        self.tracker.transport_event(REF, {"transport_state": "PLAYING"})
        self.assertEqual(self.processor.states, [])

    def test_reads_coalesced(self) -> None:
        """A refresh while a read is under way makes one more read after it (MIN_SPACING after
        the first began), not two."""
        self.make(interval=0)
        self.runner.hold = True
        self.assertFalse(self.tracker.pending(REF.uid))
        self.tracker.refresh(REF)
        self.tracker.refresh(REF)
        self.tracker.refresh(REF)
        self.assertEqual(len(self.runner.calls), 1)
        self.clock.advance(0.5)
        self.runner.pending[0].callback({"RelTime": "0:00:05"})
        self.assertEqual(len(self.runner.calls), 1)
        self.assertTrue(self.tracker.pending(REF.uid))  # the second read is due
        self.clock.advance(MIN_SPACING - 0.5)
        self.assertEqual(len(self.runner.calls), 2)
        self.assertTrue(self.tracker.pending(REF.uid))  # in flight
        self.runner.pending[1].callback({"RelTime": "0:00:06"})
        self.assertEqual([s[1]["position"] for s in self.processor.states], ["0:00:05", "0:00:06"])
        self.assertFalse(self.tracker.pending(REF.uid))
        self.clock.advance(600)
        self.assertEqual(len(self.runner.calls), 2)

    def test_unchanged_resend_not_read(self) -> None:
        """An event that repeats the transport state and track already seen (speakers resend
        them with every AVTransport change) reads nothing; a new track does."""
        self.make(interval=0)
        playing = {"transport_state": "PLAYING", "current_track": "3", "current_play_mode": "x"}
        self.tracker.transport_event(REF, playing)
        self.assertEqual(len(self.processor.states), 1)
        self.clock.advance(10)
        self.tracker.transport_event(REF, {**playing, "current_play_mode": "y"})
        self.assertEqual(len(self.processor.states), 1)
        self.tracker.transport_event(REF, {**playing, "current_track": "4"})
        self.assertEqual(len(self.processor.states), 2)
        self.tracker.forget(REF.uid)
        self.tracker.transport_event(REF, {**playing, "current_track": "4"})
        self.assertEqual(len(self.processor.states), 3)

    def test_metadata_compared_unparsed(self) -> None:
        """Track metadata (a LazyDidl) is compared as sent, never parsed for it; other
        metadata is a new track."""
        self.make(interval=0)
        didl = (
            '<DIDL-Lite xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"><item id="1" '
            'parentID="0"><upnp:class xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/">'
            "object.item.audioItem.musicTrack</upnp:class></item></DIDL-Lite>"
        )
        first, again = LazyDidl(didl, "CurrentTrackMetaData"), LazyDidl(didl, "x")
        self.tracker.transport_event(REF, {"current_track_meta_data": first})
        self.clock.advance(10)
        self.tracker.transport_event(REF, {"current_track_meta_data": again})
        self.assertEqual(len(self.processor.states), 1)
        other = LazyDidl(didl.replace('id="1"', 'id="2"'), "x")
        self.tracker.transport_event(REF, {"current_track_meta_data": other})
        self.assertEqual(len(self.processor.states), 2)
        for value in (first, again, other):
            self.assertIsNone(object.__getattribute__(value, "_value"))

    def test_reads_spaced(self) -> None:
        """Track changes in quick succession make one read at once and one read MIN_SPACING
        after it, whatever their number; a quiet speaker's next change reads at once."""
        self.make(interval=0)
        for track in range(1, 17):
            self.tracker.transport_event(REF, {"current_track": str(track)})
            self.clock.advance(0.0625)
        self.assertEqual(len(self.processor.states), 1)
        self.clock.advance(MIN_SPACING - 1.0)
        self.assertEqual(len(self.processor.states), 2)
        self.clock.advance(MIN_SPACING * 5)
        self.assertEqual(len(self.processor.states), 2)
        self.tracker.transport_event(REF, {"current_track": "99"})
        self.assertEqual(len(self.processor.states), 3)

    def test_two_reads_of_one_speaker_are_at_least_2_seconds_apart(self) -> None:
        """A track change 1 s after a read is read 2 s after that read, not sooner."""
        self.make(interval=0)
        self.tracker.transport_event(REF, {"current_track": "1"})
        self.assertEqual(len(self.processor.states), 1)
        self.clock.advance(1.0)
        self.tracker.transport_event(REF, {"current_track": "2"})
        self.clock.advance(0.99)
        self.assertEqual(len(self.processor.states), 1)
        self.clock.advance(0.01)
        self.assertEqual(len(self.processor.states), 2)

    def test_failed_read_and_forget(self) -> None:
        """A failed read publishes nothing and the next one still comes; forget stops it."""
        self.make(interval=10.0)
        self.runner.hold = True
        self.tracker.transport_event(REF, {"transport_state": "PLAYING"})
        self.runner.pending[0].errback(OSError("refused"))
        self.assertEqual(self.processor.states, [])
        self.clock.advance(10)
        self.assertEqual(len(self.runner.calls), 2)
        self.tracker.forget("RINCON_C")
        self.assertTrue(self.runner.pending[1].called)
        self.clock.advance(100)
        self.assertEqual(len(self.runner.calls), 2)
        self.tracker.stop()

    def test_position_of(self) -> None:
        """A GetPositionInfo answer gives its RelTime as the position."""
        self.assertEqual(position_of({"RelTime": "0:01:02", "Track": "3"}), {"position": "0:01:02"})
        self.assertEqual(position_of({}), {"position": ""})
