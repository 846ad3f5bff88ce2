# -*- test-case-name: tests.control.test_library -*-
"""What people play: Sonos favourites, Sonos playlists, the music library, share links.

Every command plays on the speaker's group coordinator, the way the Sonos app does: a radio
station as a stream (``SetAVTransportURI`` with the favourite's metadata), anything else
through the queue (``sonosd.control.queue.enqueue``: ``replace``, ``next`` or ``end``), then
the queue plays from the item's first track.

- ``favorites`` lists the favourites with their kind; ``play_favorite`` plays one by title.
- ``playlists``: list, tracks, play, add (to the queue), save (the queue as a playlist),
  delete.
- ``library``: browse a category or an item, search, play or add an item.
- ``share_link``: a Spotify, Apple Music, TIDAL or Deezer link through SoCo's
  ``ShareLinkPlugin``; a service the household has no account for is refused by the speaker
  (UPnP 800), which becomes ``409 service_unavailable`` and leaves the queue as it was.

The functions at the top run in the SoCo pool (blocking).
"""

from __future__ import annotations

from typing import Any, ClassVar

from sonosd.control.commandargs import ControlError, Params, bad_argument
from sonosd.control.context import ControlContext, call_meaning
from sonosd.control.queue import enqueue, next_position, play_from, queue_item
from sonosd.household.state import SpeakerRef

#: ``library`` categories and the object ids they browse.
CATEGORY_IDS = {
    "artists": "A:ARTIST",
    "album_artists": "A:ALBUMARTIST",
    "albums": "A:ALBUM",
    "genres": "A:GENRE",
    "composers": "A:COMPOSER",
    "tracks": "A:TRACKS",
    "playlists": "A:PLAYLISTS",
    "shares": "S:",
    "stations": "R:0/0",
    "shows": "R:0/1",
}

_STREAMS = ("x-sonosapi-stream:", "x-rincon-mp3radio:")

#: Share-link services by SoCo share class name.
_SERVICE_NAMES = {
    "SpotifyShare": "Spotify",
    "SpotifyUSShare": "Spotify",
    "TIDALShare": "TIDAL",
    "DeezerShare": "Deezer",
    "AppleMusicShare": "Apple Music",
}


def kind_of(item: Any) -> str:
    """What a DIDL object is, in one word (``track``, ``album``, ``station``...)."""
    item_class = str(getattr(item, "item_class", ""))
    uri = item.get_uri() if getattr(item, "resources", None) else ""
    if "audioBroadcast" in item_class or uri.startswith(
        ("x-sonosapi-stream:", "x-rincon-mp3radio:")
    ):
        return "station"
    if "sameArtist" in item_class:
        return "all"
    for fragment, kind in (
        ("musicTrack", "track"),
        ("musicAlbum", "album"),
        ("musicArtist", "artist"),
        ("person.composer", "composer"),
        ("musicGenre", "genre"),
        ("radioShow", "show"),
        ("playlistContainer", "playlist"),
        ("audioItem", "item"),
    ):
        if fragment in item_class:
            return kind
    return "container" if item_class.startswith("object.container") else "item"


def favorite_kind(favorite: Any) -> str:
    """A favourite's kind: ``track``, ``station``, ``playlist`` (a Sonos playlist),
    ``album``, ``container`` (a music-service playlist or other container) or ``item``."""
    uri = favorite.get_uri()
    if "savedqueues.rsq#" in uri:
        return "playlist"
    try:
        reference = favorite.reference
    except Exception:
        reference = favorite
    kind = kind_of(reference)
    if kind in ("track", "station", "album"):
        return kind
    if str(getattr(reference, "item_class", "")).startswith("object.container"):
        return "container"
    return "item" if kind != "playlist" else "container"


def item_json(item: Any) -> dict[str, Any]:
    """A library item (or container) as JSON."""
    resources = getattr(item, "resources", None) or []
    return {
        "id": getattr(item, "item_id", None),
        "title": getattr(item, "title", None),
        "kind": kind_of(item),
        "artist": getattr(item, "creator", None),
        "album": getattr(item, "album", None),
        "uri": resources[0].uri if resources else None,
        "album_art": getattr(item, "album_art_uri", None) or None,
        "container": str(getattr(item, "item_class", "")).startswith("object.container"),
    }


# -- favourites --------------------------------------------------------------------------------


def _favorites(device: Any) -> list[Any]:
    return list(device.music_library.get_sonos_favorites(complete_result=True))


def _favorite_json(favorite: Any) -> dict[str, Any]:
    return {
        "title": favorite.title,
        "kind": favorite_kind(favorite),
        "uri": favorite.get_uri(),
        "description": getattr(favorite, "description", None) or None,
        "album_art": getattr(favorite, "album_art_uri", None) or None,
    }


def list_favorites(device: Any) -> dict[str, Any]:
    """``favorites`` (blocking)."""
    return {"favorites": [_favorite_json(f) for f in _favorites(device)]}


def play_item(device: Any, item: Any, mode: str, play: bool) -> dict[str, Any]:
    """Play (or queue) ``item`` the way the Sonos app does; what was done."""
    if kind_of(item) == "station" or item.get_uri().startswith("x-sonosapi-stream:"):
        meta = getattr(item, "resource_meta_data", "") or ""
        device.play_uri(item.get_uri(), meta=meta, title=item.title, start=play)
        return {"queued": None, "position": None}
    before = int(device.queue_size) if mode != "replace" else 0
    first = enqueue(device, item, mode)
    added = int(device.queue_size) - before
    if play:
        play_from(device, first)
    return {"queued": added, "position": first}


def play_favorite(device: Any, name: str, mode: str, play: bool) -> dict[str, Any]:
    """``play_favorite`` (blocking): by title, any case."""
    favorites = _favorites(device)
    wanted = name.casefold()
    for favorite in favorites:
        if str(favorite.title).casefold() != wanted:
            continue
        kind = favorite_kind(favorite)
        if kind == "station":
            meta = getattr(favorite, "resource_meta_data", "") or ""
            device.play_uri(favorite.get_uri(), meta=meta, title=favorite.title, start=play)
            done: dict[str, Any] = {"queued": None, "position": None}
        else:
            done = play_item(device, favorite.reference, mode, play)
        return {"favorite": favorite.title, "kind": kind, "uri": favorite.get_uri(), **done}
    known = ", ".join(str(favorite.title) for favorite in favorites) or "none"
    raise ControlError("unknown_favorite", 404, f"no favorite named {name!r}; known: {known}")


# -- Sonos playlists ---------------------------------------------------------------------------


def _find_playlist(device: Any, name: str | None, object_id: str | None) -> Any:
    playlists = list(device.get_sonos_playlists(complete_result=True))
    for playlist in playlists:
        if (object_id is not None and playlist.item_id == object_id) or (
            name is not None and str(playlist.title).casefold() == name.casefold()
        ):
            return playlist
    known = ", ".join(f"{p.title} ({p.item_id})" for p in playlists) or "none"
    raise ControlError(
        "unknown_playlist", 404, f"no Sonos playlist {name or object_id!r}; known: {known}"
    )


def _playlist_json(device: Any, playlist: Any) -> dict[str, Any]:
    tracks = device.music_library.browse(playlist, max_items=1)
    return {
        "id": playlist.item_id,
        "title": playlist.title,
        "uri": playlist.get_uri(),
        "tracks": int(tracks.total_matches),
    }


def playlists(device: Any, params: Params) -> dict[str, Any]:
    """``playlists`` (blocking)."""
    action = params["action"]
    if action == "list":
        found = device.get_sonos_playlists(complete_result=True)
        return {"playlists": [_playlist_json(device, p) for p in found]}
    if action == "save":
        existing = [
            p
            for p in device.get_sonos_playlists(complete_result=True)
            if str(p.title).casefold() == params["title"].casefold()
        ]
        if existing and not params["replace"]:
            raise ControlError(
                "playlist_exists",
                409,
                f"a Sonos playlist {params['title']!r} exists ({existing[0].item_id}); "
                "give replace: true to overwrite it",
            )
        object_id = existing[0].item_id if existing else ""
        answer = device.avTransport.SaveQueue(
            [("InstanceID", 0), ("Title", params["title"]), ("ObjectID", object_id)]
        )
        saved = _find_playlist(device, None, str(answer["AssignedObjectID"]))
        return {"playlist": _playlist_json(device, saved), "replaced": bool(existing)}
    playlist = _find_playlist(device, params["name"], params["id"])
    if action == "tracks":
        tracks = device.music_library.browse(
            playlist, start=params["start"], max_items=params["count"]
        )
        items = [queue_item(params["start"] + n + 1, t) for n, t in enumerate(tracks)]
        return {
            "playlist": {"id": playlist.item_id, "title": playlist.title},
            "start": params["start"],
            "total": int(tracks.total_matches),
            "items": items,
        }
    if action == "delete":
        device.remove_sonos_playlist(playlist.item_id)
        return {"deleted": {"id": playlist.item_id, "title": playlist.title}}
    done = play_item(device, playlist, params["mode"], action == "play")
    return {"playlist": {"id": playlist.item_id, "title": playlist.title}, **done}


# -- the music library -------------------------------------------------------------------------


def _metadata(device: Any, object_id: str) -> Any:
    """The DIDL object ``object_id`` (BrowseMetadata); 404 when the speaker has none."""
    try:
        answer = device.contentDirectory.Browse(
            [
                ("ObjectID", object_id),
                ("BrowseFlag", "BrowseMetadata"),
                ("Filter", "*"),
                ("StartingIndex", 0),
                ("RequestedCount", 1),
                ("SortCriteria", ""),
            ]
        )
        from soco.data_structures_entry import from_didl_string

        items = from_didl_string(answer["Result"])
    except Exception as error:
        if getattr(error, "error_code", None) == "701":
            raise ControlError("unknown_item", 404, f"no library item {object_id!r}") from None
        raise
    if not items:
        raise ControlError("unknown_item", 404, f"no library item {object_id!r}")
    return items[0]


def library(device: Any, params: Params) -> dict[str, Any]:
    """``library`` (blocking)."""
    action = params["action"]
    music = device.music_library
    if action in ("play", "add"):
        item = _metadata(device, params["id"])
        if not getattr(item, "resources", None):
            raise bad_argument("id", f"{params['id']!r} cannot be played")
        done = play_item(device, item, params["mode"], action == "play")
        return {"item": item_json(item), **done}
    if action == "search":
        object_id = f"{CATEGORY_IDS[params['category']]}:"
        found = music.get_music_library_information(
            params["category"],
            start=params["start"],
            max_items=params["count"],
            search_term=params["term"],
        )
        object_id += params["term"]
    else:
        object_id = params["id"] or CATEGORY_IDS[params["category"]]
        from soco.data_structures import DidlObject

        shell = DidlObject(resources=[], title="", parent_id="", item_id=object_id)
        found = music.browse(shell, start=params["start"], max_items=params["count"])
        if params["id"] is not None and int(found.total_matches) == 0:
            _metadata(device, object_id)
    return {
        "id": object_id,
        "start": params["start"],
        "total": int(found.total_matches),
        "items": [item_json(item) for item in found],
    }


# -- share links -------------------------------------------------------------------------------


def share_link(device: Any, url: str, mode: str, play: bool) -> dict[str, Any]:
    """``share_link`` (blocking): queue the link's item per ``mode``, then play it."""
    from soco.plugins.sharelink import ShareLinkPlugin

    plugin = ShareLinkPlugin(device)
    service = next((s for s in plugin.services if s.canonical_uri(url)), None)
    if service is None:
        raise bad_argument("url", "not a Spotify, Apple Music, TIDAL or Deezer share link")
    name = _SERVICE_NAMES.get(type(service).__name__, type(service).__name__)
    before = int(device.queue_size)
    position = next_position(device) if mode == "next" and before else 0
    try:
        first = int(plugin.add_share_link_to_queue(url, position=position))
    except Exception as error:
        if getattr(error, "error_code", None) == "800":
            raise ControlError(
                "service_unavailable",
                409,
                f"the household cannot play {name}: no {name} account is set up "
                "(the speaker refused the link: UPnP 800)",
                upnp_error=800,
            ) from None
        raise
    added = int(device.queue_size) - before
    if mode == "replace" and before:
        # Queued at the end first, so that a refused link leaves the queue as it was.
        device.remove_range_from_queue(0, before)
        first = 1
    if play:
        play_from(device, first)
    return {"service": name, "queued": added, "position": first}


class LibraryCommands:
    """``favorites``, ``play_favorite``, ``playlists``, ``library``, ``share_link``."""

    COMMANDS: ClassVar[tuple[str, ...]] = (
        "favorites",
        "play_favorite",
        "playlists",
        "library",
        "share_link",
    )

    def __init__(self, ctx: ControlContext) -> None:
        self._ctx = ctx

    async def do_favorites(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """List the household's favourites (read from the speaker)."""
        return await self._ctx.call(ref, list_favorites)

    async def do_play_favorite(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Play a favourite on the coordinator."""
        coordinator = self._ctx.coordinator(ref)
        result = await self._ctx.call(
            coordinator, play_favorite, params["name"], params["mode"], params["play"]
        )
        return {"coordinator": coordinator.uid, **result}

    async def do_playlists(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Sonos playlists: list, tracks, play, add, save, delete."""
        coordinator = self._ctx.coordinator(ref)
        meanings = {701: ("unknown_playlist", 404, "no such Sonos playlist")}
        result = await call_meaning(self._ctx, coordinator, meanings, playlists, params)
        return {"coordinator": coordinator.uid, **result}

    async def do_library(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """The music library: browse, search, play, add."""
        target = ref if params["action"] in ("browse", "search") else self._ctx.coordinator(ref)
        result = await self._ctx.call(target, library, params)
        if params["action"] in ("play", "add"):
            return {"coordinator": target.uid, **result}
        return result

    async def do_share_link(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """A music-service share link: queue it, and play it unless asked not to."""
        coordinator = self._ctx.coordinator(ref)
        result = await self._ctx.call(
            coordinator, share_link, params["url"], params["mode"], params["play"]
        )
        return {"coordinator": coordinator.uid, **result}
