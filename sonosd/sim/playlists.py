# -*- test-case-name: tests.sim.test_playlists -*-
"""Sonos playlists (saved queues, ``SQ:``): the household's store and how Browse shows it.

``SavedQueues`` holds every playlist by number; each has its own update id (what Browse of
``SQ:<n>`` answers as ``UpdateID``, and what ``ReorderTracksInSavedQueue`` returns), and the
store has one (``SavedQueuesUpdateID`` / ``ContainerUpdateIDs SQ:,<n>`` in ContentDirectory
events). Errors are the UPnP codes speakers answer: 701 no such object, 402 bad arguments.

A playlist container is ``<container id="SQ:<n>" parentID="SQ:">`` of class
``object.container.playlistContainer`` with ``res`` ``file:///jffs/settings/savedqueues.rsq#<n>``
(protocol ``file:*:audio/mpegurl:*``); its tracks are items ``SQ:<n>/<i>`` (1-based), as SoCo
and node-sonos-ts read them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from xml.sax.saxutils import escape

import attrs

from sonosd.sim.didl import Track, track_item
from sonosd.sim.soap import UPnPError

SAVED_QUEUES = "file:///jffs/settings/savedqueues.rsq#"
PLAYLIST_CLASS = "object.container.playlistContainer"


@attrs.define
class SavedQueue:
    """One Sonos playlist."""

    number: int
    title: str
    tracks: list[Track]
    update_id: int = 1

    @property
    def object_id(self) -> str:
        """``SQ:<n>``."""
        return f"SQ:{self.number}"

    @property
    def uri(self) -> str:
        """``file:///jffs/settings/savedqueues.rsq#<n>``."""
        return f"{SAVED_QUEUES}{self.number}"

    def container(self) -> str:
        """Its ``<container>`` element (``SQ:`` children)."""
        art = next((track.album_art for track in self.tracks if track.album_art), "")
        return (
            f'<container id="{self.object_id}" parentID="SQ:" restricted="true">'
            f"<dc:title>{escape(self.title)}</dc:title>"
            f"<upnp:class>{PLAYLIST_CLASS}</upnp:class>"
            f'<res protocolInfo="file:*:audio/mpegurl:*">{self.uri}</res>'
            + (f"<upnp:albumArtURI>{escape(art)}</upnp:albumArtURI>" if art else "")
            + "</container>"
        )

    def items(self) -> list[str]:
        """Its tracks as ``<item id="SQ:<n>/<i>">`` elements."""
        return [
            track_item(track, f"{self.object_id}/{index}", self.object_id)
            for index, track in enumerate(self.tracks, start=1)
        ]


class SavedQueues:
    """Every Sonos playlist of a household; see the module docstring."""

    def __init__(self) -> None:
        self.playlists: dict[int, SavedQueue] = {}
        self.update_id = 1
        self._next = 1

    def __iter__(self) -> Iterator[SavedQueue]:
        return iter(sorted(self.playlists.values(), key=lambda p: p.number))

    def find(self, object_id: str) -> SavedQueue:
        """The playlist ``SQ:<n>`` (or ``file:///...savedqueues.rsq#<n>``); 701 if none."""
        text = object_id.strip()
        for prefix in ("SQ:", SAVED_QUEUES):
            if text.startswith(prefix):
                text = text.removeprefix(prefix)
                break
        else:
            raise UPnPError(701, f"no such object {object_id}")
        if not text.isdigit() or int(text) not in self.playlists:
            raise UPnPError(701, f"no such object {object_id}")
        return self.playlists[int(text)]

    def by_title(self, title: str) -> SavedQueue | None:
        """The first playlist titled ``title``."""
        return next((p for p in self if p.title == title), None)

    def create(self, title: str, tracks: Sequence[Track] = ()) -> SavedQueue:
        """A new playlist with the next free number."""
        playlist = SavedQueue(self._next, title, list(tracks))
        self.playlists[playlist.number] = playlist
        self._next += 1
        self.update_id += 1
        return playlist

    def replace(self, playlist: SavedQueue, title: str, tracks: Sequence[Track]) -> None:
        """``SaveQueue`` over an existing playlist: new title and tracks."""
        playlist.title = title
        playlist.tracks = list(tracks)
        self._changed(playlist)

    def add(self, playlist: SavedQueue, tracks: Sequence[Track], at: int) -> None:
        """``AddURIToSavedQueue``: insert at 0-based ``at`` (past the end: append)."""
        index = len(playlist.tracks) if at < 0 or at > len(playlist.tracks) else at
        playlist.tracks[index:index] = list(tracks)
        self._changed(playlist)

    def reorder(self, playlist: SavedQueue, track_list: str, position_list: str) -> int:
        """``ReorderTracksInSavedQueue``: move (or, with an empty position, remove) tracks.

        Both lists are comma-separated 0-based indices of the playlist as it was; the tracks
        named move to their new positions at once, the others keep their order around them.
        @return: The change in length (0 or negative).
        """
        tracks = [_index(part, "TrackList") for part in track_list.split(",")]
        positions = [part.strip() for part in position_list.split(",")]
        if len(positions) != len(tracks):
            raise UPnPError(402, "TrackList and NewPositionList differ in length")
        count = len(playlist.tracks)
        if any(not 0 <= t < count for t in tracks) or len(set(tracks)) != len(tracks):
            raise UPnPError(402, "TrackList names a track the playlist does not have")
        removed = {t for t, p in zip(tracks, positions, strict=True) if p == ""}
        moves = {
            t: _index(p, "NewPositionList")
            for t, p in zip(tracks, positions, strict=True)
            if t not in removed
        }
        length = count - len(removed)
        targets = list(moves.values())
        if any(not 0 <= p < length for p in targets) or len(set(targets)) != len(targets):
            raise UPnPError(402, "NewPositionList is out of range")
        result: list[Track | None] = [None] * length
        for track, position in moves.items():
            result[position] = playlist.tracks[track]
        rest = iter(playlist.tracks[t] for t in range(count) if t not in removed and t not in moves)
        playlist.tracks = [slot if slot is not None else next(rest) for slot in result]
        self._changed(playlist)
        return -len(removed)

    def destroy(self, object_id: str) -> None:
        """``DestroyObject`` of ``SQ:<n>``; 701 if there is none."""
        playlist = self.find(object_id)
        del self.playlists[playlist.number]
        self.update_id += 1

    def _changed(self, playlist: SavedQueue) -> None:
        playlist.update_id += 1
        self.update_id += 1


def _index(text: str, name: str) -> int:
    value = text.strip()
    if not value.isdigit():
        raise UPnPError(402, f"{name} holds {text!r}, not an index")
    return int(value)
