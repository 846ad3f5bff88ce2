"""Tests for sim.content: what a URI stands for when it is queued or set."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sonosd.sim import catalog
from sonosd.sim.content import input_track, queue_tracks, single_track
from sonosd.sim.household import Household
from sonosd.sim.soap import UPnPError

SPOTIFY_TRACK = (
    '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
    'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"><item id="00032020x" parentID="-1" '
    'restricted="true"><dc:title>Song</dc:title><desc id="cdudn" '
    'nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">SA_RINCON2311_X_#Svc2311-0-Token'
    "</desc></item></DIDL-Lite>"
)


def household() -> Household:
    return Household(Clock(), speakers=2, models=("S18", "S6"))


def test_containers_expand() -> None:
    """Playlists, library containers and library songs queue their tracks."""
    home = household()
    playlist = next(iter(home.saved_queues))
    assert queue_tracks(home, playlist.uri, "") == playlist.tracks
    uid = home.speakers[0].uid
    album = catalog.SONGS[0].album
    tracks = queue_tracks(home, f"x-rincon-playlist:{uid}#A:ALBUM/{album.replace(' ', '%20')}", "")
    assert tracks == [s for s in catalog.SONGS if s.album == album]
    song_uri = f"x-rincon-playlist:{uid}#S:" + catalog.SONGS[3].uri.removeprefix("x-file-cifs:")
    assert queue_tracks(home, song_uri, "") == [catalog.SONGS[3]]
    with pytest.raises(UPnPError) as raised:
        queue_tracks(home, f"x-rincon-playlist:{uid}#A:ALBUM/Nothing", "")
    assert raised.value.code == 701


def test_music_service_items_need_an_account() -> None:
    """A share-link track of a service with an account is one track; without one, 800."""
    home = household()
    (track,) = queue_tracks(home, "spotify%3atrack%3aabc", SPOTIFY_TRACK)
    assert track.title == "Song" and track.uri.startswith("x-sonos-spotify:")
    home.accounts.clear()
    with pytest.raises(UPnPError) as raised:
        queue_tracks(home, "spotify%3atrack%3aabc", SPOTIFY_TRACK)
    assert raised.value.code == 800


def test_single_items() -> None:
    """SetAVTransportURI takes single items and refuses containers and unknown schemes."""
    home = household()
    assert single_track(home, catalog.STATIONS[0].uri, "") == catalog.STATIONS[0]
    for uri, code in (
        ("file:///jffs/settings/savedqueues.rsq#1", 714),
        ("x-rincon-cpcontainer:1006206cabc?sid=9", 714),
        ("gopher://x/y", 714),
        ("http://x/picture.jpg", 714),
    ):
        with pytest.raises(UPnPError) as raised:
            single_track(home, uri, "")
        assert raised.value.code == code, uri


def test_inputs() -> None:
    """Line-in of a speaker that has one is a stream; of one without, 714; unknown, 402."""
    home = household()
    one, play5 = home.speakers
    line_in = input_track(home, f"x-rincon-stream:{play5.uid}")
    assert line_in is not None and line_in.is_stream and line_in.title == "Line-In"
    assert input_track(home, "x-file-cifs://a") is None
    for uri, code in (
        (f"x-rincon-stream:{one.uid}", 714),
        (f"x-sonos-htastream:{one.uid}:spdif", 714),
        ("x-rincon-stream:RINCON_NOBODY", 402),
    ):
        with pytest.raises(UPnPError) as raised:
            input_track(home, uri)
        assert raised.value.code == code
