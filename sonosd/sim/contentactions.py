# -*- test-case-name: tests.sim.test_contentactions -*-
"""ContentDirectory, Queue and MusicServices actions: browsing what a household holds.

``Browse`` answers every object real clients ask for: the queue (``Q:0``), Sonos favourites
(``FV:2``), Sonos playlists (``SQ:``, ``SQ:<n>``), the music library (``A:...``, with searches
as ``<id>:<term>``), the share (``S:...``) and the radio containers (``R:0/0``, ``R:0/1``), in
pages, with ``BrowseMetadata`` for each; an unknown object is UPnP 701 (no such object), as
SoCo's ``music_library`` expects (it turns 701 into an empty result). ``DestroyObject`` deletes
a Sonos playlist. ``ListAvailableServices`` lists the music services (``sonosd.sim.musicservices``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from sonosd.sim import musicservices, variables
from sonosd.sim.actions import Args, Out, action
from sonosd.sim.didl import items_didl, track_item
from sonosd.sim.favorites import favorite_items
from sonosd.sim.soap import UPnPError
from sonosd.sim.soapargs import integer, required

if TYPE_CHECKING:
    from sonosd.sim.household import Speaker

#: The top of the object tree (``Browse`` of ``0``).
_ROOTS = (
    ("A:", "Attributes"),
    ("S:", "Music Shares"),
    ("Q:", "Queues"),
    ("SQ:", "Saved Queues"),
    ("R:", "Internet Radio"),
    ("FV:", "Favorites"),
)


def page(items: list[str], start: int, count: int) -> tuple[list[str], int]:
    """``count`` items from ``start`` (0: all) and the total; 402 for negative numbers."""
    if start < 0 or count < 0:
        raise UPnPError(402, "negative index or count")
    end = len(items) if count == 0 else start + count
    return items[start:end], len(items)


def queue_items(speaker: Speaker) -> list[str]:
    """The speaker's queue as ``Q:0/<n>`` items."""
    return [
        track_item(track, f"Q:0/{n}", "Q:0")
        for n, track in enumerate(speaker.transport.queue, start=1)
    ]


def _container(object_id: str, parent: str, title: str, extra: str = "") -> str:
    return (
        f'<container id="{escape(object_id)}" parentID="{escape(parent)}" restricted="true"'
        f"{extra}><dc:title>{escape(title)}</dc:title>"
        "<upnp:class>object.container</upnp:class></container>"
    )


def _browse_object(speaker: Speaker, object_id: str, children: bool) -> tuple[list[str], int]:
    """The DIDL elements of ``object_id`` (its children, or itself) and the update id."""
    household = speaker.household
    transport = speaker.transport
    if object_id == "0":
        if not children:
            return [_container("0", "-1", "Root")], household.system_update_id
        return [_container(oid, "0", title) for oid, title in _ROOTS], household.system_update_id
    if object_id == "Q:0":
        if children:
            return queue_items(speaker), transport.queue_update_id
        count = escape(str(len(transport.queue)))
        container = (
            f'<container id="Q:0" parentID="Q:" restricted="true" childCount="{count}">'
            "<dc:title>Queue</dc:title>"
            "<upnp:class>object.container.playlistContainer</upnp:class></container>"
        )
        return [container], transport.queue_update_id
    if object_id == "FV:2":
        if children:
            return favorite_items(household.favorites), household.favorites_update_id
        return [_container("FV:2", "FV:", "Favorites")], household.favorites_update_id
    queues = household.saved_queues
    if object_id == "SQ:":
        if children:
            return [playlist.container() for playlist in queues], queues.update_id
        return [_container("SQ:", "0", "Saved Queues")], queues.update_id
    if object_id.startswith("SQ:"):
        number, _, item = object_id.removeprefix("SQ:").partition("/")
        playlist = queues.find(f"SQ:{number}")
        if not item:
            elements = playlist.items() if children else [playlist.container()]
            return elements, playlist.update_id
        if children or not item.isdigit() or not 1 <= int(item) <= len(playlist.tracks):
            raise UPnPError(701, f"no such object {object_id}")
        return [playlist.items()[int(item) - 1]], playlist.update_id
    library = household.library
    if library.handles(object_id):
        try:
            if children:
                nodes = library.children(object_id, speaker.uid)
            else:
                nodes = [library.metadata(object_id, speaker.uid)]
        except KeyError:
            raise UPnPError(701, f"no such object {object_id}") from None
        return [node.didl() for node in nodes], household.system_update_id
    raise UPnPError(701, f"no such object {object_id}")


@action("ContentDirectory", "Browse")
def _browse(speaker: Speaker, args: Args) -> Out:
    object_id = required(args, "ObjectID").strip()
    flag = args.get("BrowseFlag", "BrowseDirectChildren").strip()
    if flag not in ("BrowseDirectChildren", "BrowseMetadata"):
        raise UPnPError(402, f"bad BrowseFlag {flag}")
    elements, update_id = _browse_object(speaker, object_id, flag == "BrowseDirectChildren")
    chosen, total = page(
        elements, integer(args, "StartingIndex", 0), integer(args, "RequestedCount", 0)
    )
    return {
        "Result": items_didl(chosen),
        "NumberReturned": str(len(chosen)),
        "TotalMatches": str(total),
        "UpdateID": str(update_id),
    }


@action("ContentDirectory", "DestroyObject")
def _destroy_object(speaker: Speaker, args: Args) -> Out:
    object_id = required(args, "ObjectID").strip()
    if not object_id.startswith("SQ:"):
        raise UPnPError(701, f"cannot destroy {object_id}")
    speaker.household.saved_queues.destroy(object_id)
    speaker.household.playlists_changed()
    return {}


@action("MusicServices", "ListAvailableServices")
def _list_available_services(speaker: Speaker, args: Args) -> Out:
    return {
        "AvailableServiceDescriptorList": musicservices.descriptor_list(),
        "AvailableServiceTypeList": musicservices.type_list(),
        "AvailableServiceListVersion": str(
            variables.full_state(speaker, "MusicServices")["ServiceListVersion"]
        ),
    }


@action("ContentDirectory", "GetSystemUpdateID")
def _get_system_update_id(speaker: Speaker, args: Args) -> Out:
    return {"Id": str(variables.content_directory(speaker)["SystemUpdateID"])}


@action("ContentDirectory", "GetShareIndexInProgress")
def _get_share_index(speaker: Speaker, args: Args) -> Out:
    return {"IsIndexing": "0"}


@action("ContentDirectory", "GetAlbumArtistDisplayOption")
def _get_album_artist_option(speaker: Speaker, args: Args) -> Out:
    return {"AlbumArtistDisplayOption": "WMP"}


@action("ContentDirectory", "GetSearchCapabilities")
def _get_search_capabilities(speaker: Speaker, args: Args) -> Out:
    return {"SearchCaps": "Artist,Contributor,Composer,Genre,Album,Title"}


@action("ContentDirectory", "GetSortCapabilities")
def _get_sort_capabilities(speaker: Speaker, args: Args) -> Out:
    return {"SortCaps": "Artist,Album,Title"}


@action("ContentDirectory", "GetBrowseable")
def _get_browseable(speaker: Speaker, args: Args) -> Out:
    return {"IsBrowseable": "1"}


@action("Queue", "Browse")
def _queue_browse(speaker: Speaker, args: Args) -> Out:
    if integer(args, "QueueID", 0) != 0:
        raise UPnPError(402, "only queue 0 exists")
    chosen, total = page(
        queue_items(speaker), integer(args, "StartingIndex", 0), integer(args, "RequestedCount", 0)
    )
    return {
        "Result": items_didl(chosen),
        "NumberReturned": str(len(chosen)),
        "TotalMatches": str(total),
        "UpdateID": str(speaker.transport.queue_update_id),
    }


@action("Queue", "RemoveAllTracks")
def _queue_remove_all(speaker: Speaker, args: Args) -> Out:
    speaker.transport.clear_queue()
    return {"NewUpdateID": str(speaker.transport.queue_update_id)}
