"""Tests for tracks and DIDL-Lite metadata (sonosd.sim.didl, catalog, artwork)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from soco.data_structures_entry import from_didl_string

from sonosd.sim.artwork import art_for
from sonosd.sim.catalog import SONGS, STATIONS
from sonosd.sim.didl import (
    Track,
    format_duration,
    items_didl,
    parse_didl,
    parse_duration,
    track_didl,
)


@given(st.integers(min_value=0, max_value=10 * 3600))
def test_duration_round_trip(seconds: int) -> None:
    """format_duration and parse_duration are inverse."""
    assert parse_duration(format_duration(seconds)) == seconds


@given(st.text(max_size=20))
def test_parse_duration_never_crashes(text: str) -> None:
    """Arbitrary text is a duration or None."""
    result = parse_duration(text)
    assert result is None or result >= 0


text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30)


@given(title=text, artist=text, album=text, seconds=st.integers(1, 3600))
def test_track_round_trip(title: str, artist: str, album: str, seconds: int) -> None:
    """A track's DIDL parses back into the same track."""
    track = Track(
        uri="x-file-cifs://nas/a.flac",
        title=title,
        artist=artist,
        album=album,
        duration=seconds,
        album_art="/getaa?s=1&u=x",
        protocol_info="x-file-cifs:*:audio/flac:*",
    )
    assert parse_didl(track.uri, track_didl(track)) == track


def test_soco_reads_queue_items() -> None:
    """SoCo's DIDL parser reads queue items with title, creator, album and art."""
    items = from_didl_string(
        items_didl(
            [
                '<item id="Q:0/1" parentID="Q:0" restricted="true">'
                + track_didl(SONGS[0])
                .split('restricted="true">', 1)[1]
                .removesuffix("</DIDL-Lite>")
            ]
        )
    )
    assert items[0].title == SONGS[0].title
    assert items[0].creator == SONGS[0].artist
    assert items[0].album == SONGS[0].album


def test_a_playing_station_says_what_it_plays() -> None:
    """A station's CurrentTrackMetaData (``playing``) carries what it plays in
    ``r:streamContent``, as SoCo reads it; the same station as a favourite or a queue item
    does not (what plays now is no property of the station)."""
    for station in STATIONS:
        assert station.stream_content
        [playing] = from_didl_string(track_didl(station, playing=True))
        assert playing.stream_content == station.stream_content
        assert "streamContent" not in track_didl(station)


def test_parse_didl_fallbacks() -> None:
    """Missing or broken metadata falls back to the URI's last path segment as title."""
    assert parse_didl("http://h/song.mp3", "").title == "song.mp3"
    assert parse_didl("http://h/song.mp3", "<not-xml").title == "song.mp3"


def test_album_art_is_a_png() -> None:
    """Album art is a PNG image, the same for the same URI."""
    assert art_for("a").startswith(b"\x89PNG\r\n\x1a\n")
    assert art_for("a") == art_for("a") != art_for("b")
