"""Tests for sim.library: the music library tree, searches and what containers hold."""

from __future__ import annotations

import pytest

from sonosd.sim import catalog
from sonosd.sim.library import ALL_CLASS, SHARE, Library, escape_name, song_id

UID = "RINCON_000E58A0123401400"


def test_artist_tree_lists_all_then_albums_then_tracks() -> None:
    """An artist lists an "All" container (<id>/) before its albums; below, its tracks."""
    library = Library()
    artist = catalog.SONGS[0].artist
    artist_id = f"A:ALBUMARTIST/{escape_name(artist)}"
    children = library.children(artist_id, UID)
    assert children[0].object_id == f"{artist_id}/" and children[0].upnp_class == ALL_CLASS
    assert [n.title for n in children[1:]] == library.albums(artist)
    everything = library.children(f"{artist_id}/", UID)
    assert [n.track for n in everything] == library.songs_of(artist=artist)
    assert all(n.parent_id == f"{artist_id}/" for n in everything)


def test_genres_nest_artists_and_albums() -> None:
    """A genre lists its artists, an artist in a genre its albums, an album its songs."""
    library = Library()
    genre = library.genres()[0]
    genre_id = f"A:GENRE/{escape_name(genre)}"
    artists = [n for n in library.children(genre_id, UID) if n.upnp_class != ALL_CLASS]
    assert artists
    albums = [n for n in library.children(artists[0].object_id, UID) if n.upnp_class != ALL_CLASS]
    songs = library.children(albums[0].object_id, UID)
    assert songs and all(n.track is not None for n in songs)
    assert library.tracks(genre_id) == library.songs_of(genre=genre)


def test_search_filters_children_by_title() -> None:
    """``<id>:<term>`` keeps the children whose title contains the term, any case."""
    library = Library()
    song = catalog.SONGS[2]
    found = library.children(f"A:TRACKS:{song.title.split()[0].upper()}", UID)
    assert song in [n.track for n in found]
    assert len(found) < len(library.children("A:TRACKS", UID))


def test_share_tree_and_song_ids() -> None:
    """S: lists the share; its folders end in songs whose id is the share path."""
    library = Library()
    (share,) = library.children("S:", UID)
    assert share.title == SHARE
    artist_folder = library.children(share.object_id, UID)[0]
    album_folder = library.children(artist_folder.object_id, UID)[0]
    song = library.children(album_folder.object_id, UID)[0]
    assert song.track is not None and song.object_id == song_id(song.track)
    assert library.song(song.object_id) == song.track


def test_metadata_and_unknown_objects() -> None:
    """BrowseMetadata finds an object under its parent; an unknown id is KeyError (701)."""
    library = Library()
    album = library.albums()[0]
    node = library.metadata(f"A:ALBUM/{escape_name(album)}", UID)
    assert node.title == album and node.parent_id == "A:ALBUM"
    assert library.metadata("A:", UID).object_id == "A:"
    assert library.metadata("R:0/0/0", UID).track is not None
    for bad in ("A:NOPE", "A:ALBUM/Not There", "S://other/share", "X:1"):
        with pytest.raises(KeyError):
            library.children(bad, UID)
    with pytest.raises(KeyError):
        library.metadata("A:ARTIST/Nobody", UID)


def test_didl_of_a_container() -> None:
    """A container's DIDL carries its resource, creator and art, escaped."""
    library = Library()
    node = library.children("A:ALBUM", UID)[0]
    didl = node.didl()
    assert f"x-rincon-playlist:{UID}#{node.object_id}" in didl
    assert "<dc:creator>" in didl and "<upnp:albumArtURI>" in didl
