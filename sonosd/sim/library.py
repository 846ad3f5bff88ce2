# -*- test-case-name: tests.sim.test_library -*-
"""The simulated music library as ContentDirectory shows it: ``A:`` (artists, album artists,
albums, genres, composers, tracks, imported playlists), ``S:`` (the share) and the radio
containers ``R:0/0`` (stations) and ``R:0/1`` (shows).

Pure: ``Library.children(object_id, uid)`` and ``Library.metadata(object_id, uid)`` answer a
Browse (``BrowseDirectChildren`` / ``BrowseMetadata``) with ``Node`` objects that format
themselves as DIDL-Lite; ``Library.tracks(object_id)`` is what a container holds when it is
queued (``x-rincon-playlist:<uid>#A:ALBUM/...``). An unknown object raises ``KeyError``
(the speaker's 701, "no such object").

The shapes follow what real speakers answer (SoCo's captured DIDL samples and its
``music_library`` calls): containers carry ``res`` ``x-rincon-playlist:<uid>#<id>``; names in
ids are escaped as SoCo's ``url_escape_path`` does (``%20``, ``/`` as ``%2F``); an artist
lists an "All" container (``<id>/``) before its albums; library tracks are items whose id is
the share path (``S://host/share/...``). A search is the object id followed by ``:term``
(``A:ARTIST:lan``, ``A:ALBUMARTIST/Artist/Album:tide``): the children whose title contains the
term, ignoring case.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import quote, unquote
from xml.sax.saxutils import escape

import attrs

from sonosd.sim import catalog
from sonosd.sim.didl import BROADCAST, DIDL_CLOSE, DIDL_OPEN, Track, track_item

PLAYLIST_PROTOCOL = "x-rincon-playlist:*:*:*"
ALBUM_CLASS = "object.container.album.musicAlbum"
ARTIST_CLASS = "object.container.person.musicArtist"
GENRE_CLASS = "object.container.genre.musicGenre"
ALL_CLASS = "object.container.playlistContainer.sameArtist"

#: The pretend NAS share every library song lives on.
SHARE = "//sim-nas/Music"

#: The genre of each catalogue album (invented, as the music is).
GENRES: dict[str, str] = {
    "Harbour Lights": "Folk",
    "Small Hours": "Soul",
    "Telemetry": "Electronic",
    "Andén 9": "Latin",
    "Off by One": "Rock",
}

#: The categories of ``A:`` in the order speakers list them, with their titles.
CATEGORIES: tuple[tuple[str, str], ...] = (
    ("ARTIST", "Artists"),
    ("ALBUMARTIST", "Album Artists"),
    ("ALBUM", "Albums"),
    ("GENRE", "Genres"),
    ("COMPOSER", "Composers"),
    ("TRACKS", "Tracks"),
    ("PLAYLISTS", "Playlists"),
)

#: TuneIn-style stations of "My Radio Stations" (``R:0/0``): title, station id.
RADIO_STATIONS: tuple[tuple[str, str], ...] = (
    ("Harbour Radio 98.1", "s20101"),
    ("Telemetry FM", "s20102"),
    ("Radio Andén", "s20103"),
)
#: Radio shows (``R:0/1``): title, show id.
RADIO_SHOWS: tuple[tuple[str, str], ...] = (("The Night Shift", "p30201"),)

#: ``SA_RINCON65031_``: TuneIn's service descriptor, as in radio DIDL metadata.
TUNEIN_DESC = "SA_RINCON65031_"


def escape_name(name: str) -> str:
    """A name as it appears in an object id (SoCo's ``url_escape_path``)."""
    return quote(name, safe="")


@attrs.frozen
class Node:
    """One object of the library: a container, or an item (``track`` set)."""

    object_id: str
    parent_id: str
    title: str
    upnp_class: str
    uri: str = ""
    protocol_info: str = PLAYLIST_PROTOCOL
    creator: str = ""
    album_art: str = ""
    track: Track | None = None
    restricted: bool = True

    @property
    def is_container(self) -> bool:
        """Whether this is a ``<container>`` (else an ``<item>``)."""
        return self.track is None

    def didl(self) -> str:
        """The ``<container>`` or ``<item>`` element."""
        if self.track is not None:
            return track_item(self.track, self.object_id, self.parent_id)
        restricted = "true" if self.restricted else "false"
        parts = [
            f'<container id="{escape(self.object_id)}" parentID="{escape(self.parent_id)}" '
            f'restricted="{restricted}">',
            f"<dc:title>{escape(self.title)}</dc:title>",
            f"<upnp:class>{self.upnp_class}</upnp:class>",
        ]
        if self.uri:
            parts.append(
                f'<res protocolInfo="{escape(self.protocol_info)}">{escape(self.uri)}</res>'
            )
        if self.creator:
            parts.append(f"<dc:creator>{escape(self.creator)}</dc:creator>")
        if self.album_art:
            parts.append(f"<upnp:albumArtURI>{escape(self.album_art)}</upnp:albumArtURI>")
        parts.append("</container>")
        return "".join(parts)


def song_id(track: Track) -> str:
    """A library song's object id: its share path (``S://sim-nas/Music/...``)."""
    return "S:" + track.uri.removeprefix("x-file-cifs:")


def radio_station(title: str, station: str) -> Track:
    """A TuneIn-style station (a stream) as the speaker plays it."""
    return Track(
        uri=f"x-sonosapi-stream:{station}?sid=254&flags=32&sn=0",
        title=title,
        protocol_info="x-rincon-mp3radio:*:*:*",
        upnp_class=BROADCAST,
    )


def radio_metadata(track: Track, object_id: str, parent_id: str) -> str:
    """The DIDL-Lite a controller sends with a radio station (TuneIn descriptor included)."""
    return (
        f'{DIDL_OPEN}<item id="{escape(object_id)}" parentID="{escape(parent_id)}" '
        f'restricted="true"><dc:title>{escape(track.title)}</dc:title>'
        f"<upnp:class>{track.upnp_class}</upnp:class>"
        '<desc id="cdudn" nameSpace="urn:schemas-rinconnetworks-com:metadata-1-0/">'
        f"{TUNEIN_DESC}</desc></item>{DIDL_CLOSE}"
    )


class Library:
    """The library tree over ``songs`` (by default the catalogue's); see the module docstring."""

    def __init__(self, songs: Sequence[Track] = catalog.SONGS) -> None:
        self.songs: tuple[Track, ...] = tuple(songs)
        self.stations: tuple[Node, ...] = tuple(
            Node(
                f"R:0/0/{n}",
                "R:0/0",
                title,
                BROADCAST,
                uri=f"x-sonosapi-stream:{station}?sid=254&flags=32&sn=0",
                protocol_info="x-rincon-mp3radio:*:*:*",
                track=radio_station(title, station),
                restricted=False,
            )
            for n, (title, station) in enumerate(RADIO_STATIONS)
        )
        self.shows: tuple[Node, ...] = tuple(
            Node(
                f"R:0/1/{n}",
                "R:0/1",
                title,
                "object.container.radioShow",
                uri=f"x-sonosapi-show:{show}%3afavorite",
                protocol_info="x-sonosapi-show:*:*:*",
                restricted=False,
            )
            for n, (title, show) in enumerate(RADIO_SHOWS)
        )

    # -- the catalogue, grouped ------------------------------------------------------------

    def artists(self) -> list[str]:
        """Every artist, sorted as speakers sort them (case-insensitive)."""
        return sorted({song.artist for song in self.songs}, key=str.casefold)

    def albums(self, artist: str | None = None, genre: str | None = None) -> list[str]:
        """Album titles (of ``artist`` and/or in ``genre``), sorted."""
        return sorted(
            {
                song.album
                for song in self.songs
                if (artist is None or song.artist == artist)
                and (genre is None or GENRES.get(song.album) == genre)
            },
            key=str.casefold,
        )

    def genres(self) -> list[str]:
        """Every genre of the library, sorted."""
        return sorted({GENRES.get(song.album, "Unknown") for song in self.songs}, key=str.casefold)

    def songs_of(
        self, artist: str | None = None, album: str | None = None, genre: str | None = None
    ) -> list[Track]:
        """Songs matching every given field, in library order (album by album)."""
        return [
            song
            for song in self.songs
            if (artist is None or song.artist == artist)
            and (album is None or song.album == album)
            and (genre is None or GENRES.get(song.album, "Unknown") == genre)
        ]

    def album_art(self, album: str) -> str:
        """The album art of ``album``: its first song's."""
        return next((song.album_art for song in self.songs if song.album == album), "")

    def creator_of(self, album: str) -> str:
        """The artist of ``album``."""
        return next((song.artist for song in self.songs if song.album == album), "")

    # -- Browse ----------------------------------------------------------------------------

    def handles(self, object_id: str) -> bool:
        """Whether ``object_id`` belongs to the library (``A:``, ``S:``, ``R:``)."""
        return object_id.startswith(("A:", "S:", "R:0"))

    def children(self, object_id: str, uid: str) -> list[Node]:
        """The children of ``object_id`` (a search when it ends in ``:term``).

        @param uid: The answering speaker's uid (in ``x-rincon-playlist:`` resources).
        @raise KeyError: No such object.
        """
        if object_id in ("R:0/0", "R:0/1"):
            return list(self.stations if object_id == "R:0/0" else self.shows)
        if object_id.startswith("S:"):
            return self._share_children(object_id, uid)
        if not object_id.startswith("A:"):
            raise KeyError(object_id)
        path, term = _split_search(object_id.removeprefix("A:"))
        nodes = self._a_children(path, uid)
        if term is None:
            return nodes
        wanted = term.casefold()
        return [
            node
            for node in nodes
            if node.upnp_class != ALL_CLASS and wanted in node.title.casefold()
        ]

    def metadata(self, object_id: str, uid: str) -> Node:
        """The object ``object_id`` itself (``BrowseMetadata``).

        @raise KeyError: No such object.
        """
        if object_id in ("A:", "S:", "R:0/0", "R:0/1"):
            titles = {"A:": "Attributes", "S:": "Music Shares", "R:0/0": "Radio", "R:0/1": "Shows"}
            return Node(object_id, object_id[:-2] or "0", titles[object_id], "object.container")
        for node in (*self.stations, *self.shows):
            if node.object_id == object_id:
                return node
        parent = _parent_id(object_id)
        for node in self.children(parent, uid):
            if node.object_id == object_id:
                return node
        raise KeyError(object_id)

    def tracks(self, object_id: str) -> list[Track]:
        """The songs a library container holds, in play order (an item: itself).

        @raise KeyError: No such object.
        """
        collected: list[Track] = []
        for node in self.children(object_id, ""):
            if node.track is not None:
                collected.append(node.track)
            elif node.upnp_class != ALL_CLASS:
                collected.extend(self.tracks(node.object_id))
        return collected

    def song(self, object_id: str) -> Track | None:
        """The library song whose object id is ``object_id`` (``S://...``), if any."""
        return next((song for song in self.songs if song_id(song) == object_id), None)

    # -- A: --------------------------------------------------------------------------------

    def _a_children(self, path: list[str], uid: str) -> list[Node]:
        if path == [""]:
            return [
                Node(f"A:{key}", "A:", title, "object.container", uri=_res(uid, f"A:{key}"))
                for key, title in CATEGORIES
            ]
        category, names = path[0], path[1:]
        if category in ("ARTIST", "ALBUMARTIST"):
            return self._artist_tree(f"A:{category}", names, None, uid)
        if category == "ALBUM":
            if not names:
                return [self._album_node("A:ALBUM", album, uid) for album in self.albums()]
            if len(names) == 1 and names[0] in self.albums():
                return self._track_nodes(f"A:ALBUM/{escape_name(names[0])}", album=names[0])
        elif category == "GENRE":
            if not names:
                return [
                    Node(
                        f"A:GENRE/{escape_name(genre)}",
                        "A:GENRE",
                        genre,
                        GENRE_CLASS,
                        uri=_res(uid, f"A:GENRE/{escape_name(genre)}"),
                    )
                    for genre in self.genres()
                ]
            if names[0] in self.genres():
                base = f"A:GENRE/{escape_name(names[0])}"
                return self._artist_tree(base, names[1:], names[0], uid)
        elif category == "TRACKS" and not names:
            return self._track_nodes("A:TRACKS")
        elif category in ("COMPOSER", "PLAYLISTS") and not names:
            return []
        raise KeyError("A:" + "/".join(path))

    def _artist_tree(self, base: str, names: list[str], genre: str | None, uid: str) -> list[Node]:
        """``base`` lists artists; an artist lists "All" then albums; below that, tracks."""
        artists = [a for a in self.artists() if self.songs_of(artist=a, genre=genre)]
        if not names:
            return [
                Node(
                    f"{base}/{escape_name(artist)}",
                    base,
                    artist,
                    ARTIST_CLASS,
                    uri=_res(uid, f"{base}/{escape_name(artist)}"),
                )
                for artist in artists
            ]
        artist = names[0]
        if artist not in artists:
            raise KeyError(f"{base}/{artist}")
        artist_id = f"{base}/{escape_name(artist)}"
        if len(names) == 1:
            everything = Node(
                f"{artist_id}/", artist_id, "All", ALL_CLASS, uri=_res(uid, f"{artist_id}/")
            )
            albums = self.albums(artist=artist, genre=genre)
            return [everything, *(self._album_node(artist_id, album, uid) for album in albums)]
        if len(names) == 2 and names[1] == "":
            return self._track_nodes(f"{artist_id}/", artist=artist, genre=genre)
        if len(names) == 2 and names[1] in self.albums(artist=artist, genre=genre):
            album_id = f"{artist_id}/{escape_name(names[1])}"
            return self._track_nodes(album_id, artist=artist, album=names[1])
        raise KeyError(f"{artist_id}/{'/'.join(names[1:])}")

    def _album_node(self, parent: str, album: str, uid: str) -> Node:
        object_id = f"{parent}/{escape_name(album)}"
        return Node(
            object_id,
            parent,
            album,
            ALBUM_CLASS,
            uri=_res(uid, object_id),
            creator=self.creator_of(album),
            album_art=self.album_art(album),
        )

    def _track_nodes(
        self,
        parent: str,
        artist: str | None = None,
        album: str | None = None,
        genre: str | None = None,
    ) -> list[Node]:
        return [
            Node(song_id(song), parent, song.title, song.upnp_class, track=song)
            for song in self.songs_of(artist=artist, album=album, genre=genre)
        ]

    # -- S: --------------------------------------------------------------------------------

    def _share_children(self, object_id: str, uid: str) -> list[Node]:
        share_id = "S:" + SHARE
        if object_id == "S:":
            return [Node(share_id, "S:", SHARE, "object.container", uri=_res(uid, share_id))]
        if object_id == share_id:
            return [self._folder(share_id, artist, uid) for artist in self.artists()]
        relative = object_id.removeprefix(share_id + "/")
        if relative == object_id:
            raise KeyError(object_id)
        parts = [unquote(part) for part in relative.split("/")]
        if len(parts) == 1 and parts[0] in self.artists():
            return [self._folder(object_id, album, uid) for album in self.albums(parts[0])]
        if len(parts) == 2 and parts[1] in self.albums(parts[0]):
            return self._track_nodes(object_id, artist=parts[0], album=parts[1])
        raise KeyError(object_id)

    @staticmethod
    def _folder(parent: str, name: str, uid: str) -> Node:
        object_id = f"{parent}/{name.replace(' ', '%20')}"
        return Node(object_id, parent, name, "object.container", uri=_res(uid, object_id))


def _res(uid: str, object_id: str) -> str:
    return f"x-rincon-playlist:{uid}#{object_id}"


def _split_search(path: str) -> tuple[list[str], str | None]:
    """``ARTIST/The%20Lanterns:fog`` → (``["ARTIST", "The Lanterns"]``, ``"fog"``)."""
    term: str | None = None
    if ":" in path:
        path, raw = path.split(":", 1)
        term = unquote(raw)
    return [unquote(part) for part in path.split("/")], term


def _parent_id(object_id: str) -> str:
    """The id of the container holding ``object_id`` (``A:ARTIST/x`` → ``A:ARTIST``)."""
    if object_id.startswith("A:") and "/" not in object_id:
        return "A:"
    if object_id == "S:" + SHARE:
        return "S:"
    if object_id.endswith("/"):
        return object_id[:-1]
    return object_id.rsplit("/", 1)[0]


def page(nodes: Iterable[Node], start: int, count: int) -> tuple[list[Node], int]:
    """``count`` nodes from ``start`` (0: all) and the total, as Browse pages them."""
    every = list(nodes)
    end = len(every) if count == 0 else start + count
    return every[start:end], len(every)
