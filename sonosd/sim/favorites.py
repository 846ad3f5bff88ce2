# -*- test-case-name: tests.sim.test_favorites -*-
"""Sonos favourites (``FV:2``) of every kind, as a speaker lists them and a controller plays them.

A ``Favorite`` is what the "My Sonos" list holds: a title, the resource (``res``) and, in
``r:resMD``, the DIDL-Lite of the object it refers to. Kinds, with the URIs real speakers use
(SoCo's favourite samples, captured ``ListAlarms`` programme metadata, Home Assistant's and
node-sonos-ts's favourite handling):

- ``track``: a library song (``x-file-cifs:``), played with ``SetAVTransportURI`` or queued;
- ``station``: a radio stream (``x-sonosapi-stream:`` with TuneIn's ``SA_RINCON65031_``
  descriptor, or ``x-rincon-mp3radio:``), played with ``SetAVTransportURI``;
- ``sonos_playlist``: ``file:///jffs/settings/savedqueues.rsq#<n>`` (``SQ:<n>``);
- ``album``: a library album, ``x-rincon-playlist:<uid>#A:ALBUMARTIST/<artist>/<album>``;
- ``service_playlist``: a music-service container, ``x-rincon-cpcontainer:1006206c...`` with
  the service's ``SA_RINCON<type>_X_#Svc<type>-0-Token`` descriptor.

Containers (the last three) are played through the queue (``AddURIToQueue``); a speaker
refuses them in ``SetAVTransportURI`` (UPnP 714).
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

import attrs

from sonosd.sim import catalog
from sonosd.sim.didl import BROADCAST, DIDL_CLOSE, DIDL_OPEN, Track, track_didl
from sonosd.sim.library import ALBUM_CLASS, RADIO_STATIONS, TUNEIN_DESC, escape_name

TRACK = "track"
STATION = "station"
SONOS_PLAYLIST = "sonos_playlist"
ALBUM = "album"
SERVICE_PLAYLIST = "service_playlist"
KINDS = (TRACK, STATION, SONOS_PLAYLIST, ALBUM, SERVICE_PLAYLIST)

PLAYLIST_CLASS = "object.container.playlistContainer"
SAVED_QUEUES = "file:///jffs/settings/savedqueues.rsq#"
_DESC_NS = "urn:schemas-rinconnetworks-com:metadata-1-0/"
_FAVORITE_CLASS = "object.itemobject.item.sonos-favorite"


@attrs.frozen
class Favorite:
    """One Sonos favourite; ``uri`` and ``protocol_info`` are its ``res``."""

    kind: str
    title: str
    uri: str
    protocol_info: str
    meta: str
    description: str = ""
    album_art: str = ""

    @property
    def is_container(self) -> bool:
        """Whether it is played through the queue."""
        return self.kind in (SONOS_PLAYLIST, ALBUM, SERVICE_PLAYLIST)


def _container_meta(item_id: str, parent_id: str, title: str, upnp_class: str, desc: str) -> str:
    return (
        f'{DIDL_OPEN}<item id="{escape(item_id)}" parentID="{escape(parent_id)}" '
        f'restricted="true"><dc:title>{escape(title)}</dc:title>'
        f"<upnp:class>{upnp_class}</upnp:class>"
        f'<desc id="cdudn" nameSpace="{_DESC_NS}">{escape(desc)}</desc></item>{DIDL_CLOSE}'
    )


def track_favorite(track: Track) -> Favorite:
    """A song (or any single item) as a favourite."""
    return Favorite(
        TRACK,
        track.title,
        track.uri,
        track.protocol_info,
        track_didl(track),
        description=track.artist,
        album_art=track.album_art,
    )


def station_favorite(track: Track) -> Favorite:
    """A radio stream as a favourite (TuneIn's descriptor for ``x-sonosapi-stream:``)."""
    if track.uri.startswith("x-sonosapi-stream:"):
        station = track.uri.split(":", 1)[1].split("?", 1)[0]
        meta = _container_meta(f"F00092020{station}", "L", track.title, BROADCAST, TUNEIN_DESC)
        protocol = "x-sonosapi-stream:*:*:*"
    else:
        meta = track_didl(track)
        protocol = track.protocol_info
    return Favorite(STATION, track.title, track.uri, protocol, meta, description="Radio")


def sonos_playlist_favorite(number: int, title: str) -> Favorite:
    """The Sonos playlist ``SQ:<number>`` as a favourite."""
    meta = _container_meta(f"SQ:{number}", "SQ:", title, PLAYLIST_CLASS, "RINCON_AssociatedZPUDN")
    return Favorite(
        SONOS_PLAYLIST,
        title,
        f"{SAVED_QUEUES}{number}",
        "file:*:audio/mpegurl:*",
        meta,
        description="Sonos Playlist",
    )


def album_favorite(uid: str, artist: str, album: str, album_art: str = "") -> Favorite:
    """A library album as a favourite (``x-rincon-playlist:<uid>#A:ALBUMARTIST/...``)."""
    object_id = f"A:ALBUMARTIST/{escape_name(artist)}/{escape_name(album)}"
    meta = _container_meta(
        object_id,
        f"A:ALBUMARTIST/{escape_name(artist)}",
        album,
        ALBUM_CLASS,
        "RINCON_AssociatedZPUDN",
    )
    return Favorite(
        ALBUM,
        album,
        f"x-rincon-playlist:{uid}#{object_id}",
        "x-rincon-playlist:*:*:*",
        meta,
        description=artist,
        album_art=album_art,
    )


def service_playlist_favorite(
    title: str, key: str, service_type: int, service_id: int, serial: int = 1
) -> Favorite:
    """A music-service playlist (``x-rincon-cpcontainer:1006206c<key>``) as a favourite.

    @param key: The service's escaped object key (``spotify%3aplaylist%3a...``).
    @param service_type: ``<id> * 256 + 7`` (Spotify 2311).
    """
    item_id = f"1006206c{key}"
    desc = f"SA_RINCON{service_type}_X_#Svc{service_type}-0-Token"
    meta = _container_meta(item_id, "10082664playlists", title, PLAYLIST_CLASS, desc)
    return Favorite(
        SERVICE_PLAYLIST,
        title,
        f"x-rincon-cpcontainer:{item_id}?sid={service_id}&flags=8300&sn={serial}",
        "x-rincon-cpcontainer:*:*:*",
        meta,
        description="Playlist",
    )


def favorite_items(favorites: Sequence[Favorite]) -> list[str]:
    """``FV:2`` browse items: each favourite with its referenced object's DIDL in ``r:resMD``."""
    items = []
    for index, favorite in enumerate(favorites, start=1):
        art = (
            f"<upnp:albumArtURI>{escape(favorite.album_art)}</upnp:albumArtURI>"
            if favorite.album_art
            else ""
        )
        items.append(
            f'<item id="FV:2/{index}" parentID="FV:2" restricted="false">'
            f"<dc:title>{escape(favorite.title)}</dc:title>"
            f"<upnp:class>{_FAVORITE_CLASS}</upnp:class>"
            f"<r:ordinal>{index}</r:ordinal>"
            f'<res protocolInfo="{escape(favorite.protocol_info)}">{escape(favorite.uri)}</res>'
            f"{art}<r:type>instantPlay</r:type>"
            f"<r:description>{escape(favorite.description)}</r:description>"
            f"<r:resMD>{escape(favorite.meta)}</r:resMD></item>"
        )
    return items


def default_favorites(uid: str, playlist: tuple[int, str]) -> tuple[Favorite, ...]:
    """The demo household's favourites: one of each kind (two stations).

    @param uid: The uid library containers name (``x-rincon-playlist:<uid>#...``).
    @param playlist: The number and title of the Sonos playlist to list.
    """
    album_song = catalog.SONGS[4]
    title, station = RADIO_STATIONS[0]
    tunein = Track(
        uri=f"x-sonosapi-stream:{station}?sid=254&flags=32&sn=0",
        title=title,
        protocol_info="x-rincon-mp3radio:*:*:*",
        upnp_class=BROADCAST,
    )
    return (
        station_favorite(catalog.STATIONS[0]),
        track_favorite(catalog.SONGS[0]),
        sonos_playlist_favorite(*playlist),
        album_favorite(uid, album_song.artist, album_song.album, album_song.album_art),
        service_playlist_favorite(
            "Deep Focus Sim", "spotify%3aplaylist%3a37i9dQZF1DWZeKCadgRdKQ", 2311, 9
        ),
        station_favorite(tunein),
    )
