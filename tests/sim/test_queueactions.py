"""Tests for sim.queueactions: queue and saved-queue edits and their refusals."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from sonosd.sim import actions, catalog, queueactions  # noqa: F401 - registers the handlers
from sonosd.sim.didl import track_didl
from sonosd.sim.household import Household
from sonosd.sim.soap import UPnPError


def setup() -> tuple[Household, object]:
    home = Household(Clock(), speakers=1, transition_delay=0.0)
    return home, home.speakers[0]


def avt(speaker: object, name: str, **args: str) -> dict[str, str]:
    return actions.run(speaker, "AVTransport", name, {"InstanceID": "0", **args})  # type: ignore[arg-type]


def test_add_multiple_checks_the_count() -> None:
    """AddMultipleURIsToQueue adds every URI; a wrong NumberOfURIs is 402."""
    home, speaker = setup()
    songs = catalog.SONGS[:2]
    uris = " ".join(s.uri for s in songs)
    meta = " ".join(track_didl(s) for s in songs)
    out = avt(
        speaker,
        "AddMultipleURIsToQueue",
        NumberOfURIs="2",
        EnqueuedURIs=uris,
        EnqueuedURIsMetaData=meta,
    )
    assert out["NumTracksAdded"] == "2"
    assert home.speakers[0].transport.queue[-2:] == list(songs)
    with pytest.raises(UPnPError) as raised:
        avt(speaker, "AddMultipleURIsToQueue", NumberOfURIs="3", EnqueuedURIs=uris)
    assert raised.value.code == 402


def test_reorder_keeps_the_current_track() -> None:
    """A track moved while it plays stays the current track at its new place."""
    home, speaker = setup()
    transport = home.speakers[0].transport
    current = transport.queue[0]
    avt(
        speaker,
        "ReorderTracksInQueue",
        StartingIndex="1",
        NumberOfTracks="1",
        InsertBefore="4",
        UpdateID="0",
    )
    assert transport.queue[2] == current and transport.track_no == 3
    for args in (
        {"StartingIndex": "0", "NumberOfTracks": "1", "InsertBefore": "2"},
        {"StartingIndex": "1", "NumberOfTracks": "3", "InsertBefore": "2"},
        {"StartingIndex": "7", "NumberOfTracks": "5", "InsertBefore": "1"},
    ):
        with pytest.raises(UPnPError) as raised:
            avt(speaker, "ReorderTracksInQueue", UpdateID="0", **args)
        assert raised.value.code == 402


def test_range_removal_of_the_current_track_stops() -> None:
    """Removing a range holding the current track stops playback; later tracks move up."""
    home, speaker = setup()
    transport = home.speakers[0].transport
    transport.seek_track(5)
    avt(speaker, "RemoveTrackRangeFromQueue", StartingIndex="1", NumberOfTracks="2", UpdateID="0")
    assert transport.track_no == 3
    avt(speaker, "RemoveTrackRangeFromQueue", StartingIndex="3", NumberOfTracks="2", UpdateID="0")
    assert transport.state == "STOPPED" and transport.track_no == 3


def test_saved_queue_actions() -> None:
    """SaveQueue creates or overwrites; CreateSavedQueue takes a URI; AddURIToSavedQueue
    inserts at an index; empty titles and unknown playlists are refused."""
    home, speaker = setup()
    queue = home.speakers[0].transport.queue
    created = avt(speaker, "SaveQueue", Title="Mine", ObjectID="")["AssignedObjectID"]
    playlist = home.saved_queues.find(created)
    assert playlist.tracks == queue
    avt(speaker, "SaveQueue", Title="Renamed", ObjectID=created)
    assert playlist.title == "Renamed"
    song = catalog.SONGS[7]
    out = avt(
        speaker, "CreateSavedQueue", Title="One", EnqueuedURI=song.uri, EnqueuedURIMetaData=""
    )
    assert out["NumTracksAdded"] == "1"
    one = home.saved_queues.find(out["AssignedObjectID"])
    avt(
        speaker,
        "AddURIToSavedQueue",
        ObjectID=one.object_id,
        UpdateID="0",
        EnqueuedURI=catalog.SONGS[1].uri,
        EnqueuedURIMetaData="",
        AddAtIndex="0",
    )
    assert one.tracks == [catalog.SONGS[1], song]
    for name, args, code in (
        ("SaveQueue", {"Title": " ", "ObjectID": ""}, 402),
        ("CreateSavedQueue", {"Title": ""}, 402),
        ("AddURIToSavedQueue", {"ObjectID": "SQ:77", "EnqueuedURI": song.uri}, 701),
        ("ReorderTracksInSavedQueue", {"ObjectID": "SQ:77", "TrackList": "0"}, 701),
    ):
        with pytest.raises(UPnPError) as raised:
            avt(speaker, name, **args)
        assert raised.value.code == code, name
