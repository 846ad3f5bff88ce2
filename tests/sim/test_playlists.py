"""Tests for sim.playlists: Sonos playlists, their update ids and edits."""

from __future__ import annotations

import pytest

from sonosd.sim import catalog
from sonosd.sim.playlists import SavedQueues
from sonosd.sim.soap import UPnPError

SONGS = list(catalog.SONGS[:5])


def test_create_find_and_destroy() -> None:
    """Playlists get increasing numbers, are found by id or URI, and vanish when destroyed."""
    queues = SavedQueues()
    first = queues.create("One", SONGS[:2])
    second = queues.create("Two")
    assert (first.object_id, second.object_id) == ("SQ:1", "SQ:2")
    assert queues.find("SQ:1") is first
    assert queues.find("file:///jffs/settings/savedqueues.rsq#2") is second
    assert queues.by_title("Two") is second
    version = queues.update_id
    queues.destroy("SQ:1")
    assert queues.update_id == version + 1 and list(queues) == [second]
    for bad in ("SQ:1", "SQ:x", "Q:0"):
        with pytest.raises(UPnPError) as raised:
            queues.find(bad)
        assert raised.value.code == 701


def test_add_and_items() -> None:
    """Tracks are inserted where asked (past the end: appended); items are SQ:<n>/<i>."""
    queues = SavedQueues()
    playlist = queues.create("P", SONGS[:2])
    queues.add(playlist, [SONGS[4]], 0)
    queues.add(playlist, [SONGS[3]], 99)
    assert playlist.tracks == [SONGS[4], SONGS[0], SONGS[1], SONGS[3]]
    assert playlist.update_id == 3
    assert 'id="SQ:1/4"' in playlist.items()[3]
    assert "savedqueues.rsq#1" in playlist.container()


def test_reorder_moves_at_once_and_removes() -> None:
    """Positions refer to the playlist as it was: a reversal, a swap, removals."""
    queues = SavedQueues()
    playlist = queues.create("P", SONGS[:4])
    assert queues.reorder(playlist, "3,2,1,0", "0,1,2,3") == 0
    assert playlist.tracks == SONGS[:4][::-1]
    playlist.tracks = SONGS[:4]
    queues.reorder(playlist, "0", "1")
    assert playlist.tracks == [SONGS[1], SONGS[0], SONGS[2], SONGS[3]]
    playlist.tracks = SONGS[:4]
    assert queues.reorder(playlist, "2,0", ",") == -2
    assert playlist.tracks == [SONGS[1], SONGS[3]]


@pytest.mark.parametrize(
    ("tracks", "positions"),
    [("0,1", "1"), ("9", "0"), ("0,0", "1,2"), ("0", "7"), ("x", "0"), ("0,1", "1,1")],
)
def test_reorder_refuses_bad_lists(tracks: str, positions: str) -> None:
    """Mismatched lists, unknown tracks, duplicates and positions out of range are 402."""
    queues = SavedQueues()
    playlist = queues.create("P", SONGS[:3])
    with pytest.raises(UPnPError) as raised:
        queues.reorder(playlist, tracks, positions)
    assert raised.value.code == 402
    assert playlist.tracks == SONGS[:3]
