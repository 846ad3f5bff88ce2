# -*- test-case-name: tests.sim.test_queueactions -*-
"""AVTransport actions that edit the queue and the Sonos playlists (saved queues).

The queue: ``AddURIToQueue`` (a container adds all its tracks: see ``sonosd.sim.content``),
``AddMultipleURIsToQueue``, ``RemoveTrackFromQueue``, ``RemoveTrackRangeFromQueue``,
``ReorderTracksInQueue``, ``RemoveAllTracksFromQueue``. Sonos playlists: ``SaveQueue`` (the
queue as a new playlist, or over ``ObjectID``), ``CreateSavedQueue`` (empty, or from one URI),
``AddURIToSavedQueue``, ``ReorderTracksInSavedQueue`` (moves and removals). Arguments and
answers are those of the firmware's SCPD and of SoCo's calls; a playlist change events
``SavedQueuesUpdateID`` on every speaker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sonosd.sim import content
from sonosd.sim.actions import Args, Out, action
from sonosd.sim.soap import UPnPError
from sonosd.sim.soapargs import integer, required

if TYPE_CHECKING:
    from sonosd.sim.household import Speaker

#: ``AddAtIndex`` SoCo sends to append (2**32 - 1).
APPEND = 4294967295


def _queue_answer(speaker: Speaker, first: int, added: int) -> Out:
    transport = speaker.transport
    return {
        "FirstTrackNumberEnqueued": str(first),
        "NumTracksAdded": str(added),
        "NewQueueLength": str(len(transport.queue)),
        "NewUpdateID": str(transport.queue_update_id),
    }


@action("AVTransport", "AddURIToQueue")
def _add_uri_to_queue(speaker: Speaker, args: Args) -> Out:
    uri = required(args, "EnqueuedURI").strip()
    metadata = args.get("EnqueuedURIMetaData", "")
    position = integer(args, "DesiredFirstTrackNumberEnqueued", 0)
    as_next = args.get("EnqueueAsNext", "0").strip() in ("1", "true")
    tracks = content.queue_tracks(speaker.household, uri, metadata)
    first = speaker.transport.add_to_queue(tracks, position, as_next)
    return _queue_answer(speaker, first, len(tracks))


@action("AVTransport", "AddMultipleURIsToQueue")
def _add_multiple_uris_to_queue(speaker: Speaker, args: Args) -> Out:
    count = integer(args, "NumberOfURIs")
    uris = required(args, "EnqueuedURIs").split()
    metadata = args.get("EnqueuedURIsMetaData", "").split(" <DIDL-Lite")
    metadata = [metadata[0], *(f"<DIDL-Lite{part}" for part in metadata[1:])]
    if count != len(uris):
        raise UPnPError(402, f"NumberOfURIs is {count} but {len(uris)} URIs were sent")
    tracks = content.many_tracks(speaker.household, uris, metadata)
    position = integer(args, "DesiredFirstTrackNumberEnqueued", 0)
    as_next = args.get("EnqueueAsNext", "0").strip() in ("1", "true")
    first = speaker.transport.add_to_queue(tracks, position, as_next)
    return _queue_answer(speaker, first, len(tracks))


@action("AVTransport", "RemoveAllTracksFromQueue")
def _remove_all_tracks(speaker: Speaker, args: Args) -> Out:
    speaker.transport.clear_queue()
    return {}


@action("AVTransport", "RemoveTrackFromQueue")
def _remove_track(speaker: Speaker, args: Args) -> Out:
    object_id = required(args, "ObjectID")
    prefix, _, number = object_id.partition("/")
    if prefix != "Q:0" or not number.isdigit():
        raise UPnPError(402, f"bad queue object {object_id}")
    speaker.transport.remove_from_queue(int(number))
    return {}


@action("AVTransport", "RemoveTrackRangeFromQueue")
def _remove_track_range(speaker: Speaker, args: Args) -> Out:
    speaker.transport.remove_range(integer(args, "StartingIndex"), integer(args, "NumberOfTracks"))
    return {"NewUpdateID": str(speaker.transport.queue_update_id)}


@action("AVTransport", "ReorderTracksInQueue")
def _reorder_tracks_in_queue(speaker: Speaker, args: Args) -> Out:
    speaker.transport.reorder(
        integer(args, "StartingIndex"),
        integer(args, "NumberOfTracks"),
        integer(args, "InsertBefore"),
    )
    return {}


@action("AVTransport", "SaveQueue")
def _save_queue(speaker: Speaker, args: Args) -> Out:
    title = required(args, "Title").strip()
    if not title:
        raise UPnPError(402, "a playlist needs a title")
    queues = speaker.household.saved_queues
    object_id = args.get("ObjectID", "").strip()
    tracks = list(speaker.transport.queue)
    if object_id:
        playlist = queues.find(object_id)
        queues.replace(playlist, title, tracks)
    else:
        playlist = queues.create(title, tracks)
    speaker.household.playlists_changed()
    return {"AssignedObjectID": playlist.object_id}


@action("AVTransport", "CreateSavedQueue")
def _create_saved_queue(speaker: Speaker, args: Args) -> Out:
    title = required(args, "Title").strip()
    if not title:
        raise UPnPError(402, "a playlist needs a title")
    uri = args.get("EnqueuedURI", "").strip()
    household = speaker.household
    tracks = (
        content.queue_tracks(household, uri, args.get("EnqueuedURIMetaData", "")) if uri else []
    )
    playlist = household.saved_queues.create(title, tracks)
    household.playlists_changed()
    return {
        "NumTracksAdded": str(len(tracks)),
        "NewQueueLength": str(len(playlist.tracks)),
        "AssignedObjectID": playlist.object_id,
        "NewUpdateID": str(playlist.update_id),
    }


@action("AVTransport", "AddURIToSavedQueue")
def _add_uri_to_saved_queue(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    playlist = household.saved_queues.find(required(args, "ObjectID"))
    uri = required(args, "EnqueuedURI").strip()
    tracks = content.queue_tracks(household, uri, args.get("EnqueuedURIMetaData", ""))
    at = integer(args, "AddAtIndex", APPEND)
    household.saved_queues.add(playlist, tracks, -1 if at >= APPEND else at)
    household.playlists_changed()
    return {
        "NumTracksAdded": str(len(tracks)),
        "NewQueueLength": str(len(playlist.tracks)),
        "NewUpdateID": str(playlist.update_id),
    }


@action("AVTransport", "ReorderTracksInSavedQueue")
def _reorder_tracks_in_saved_queue(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    playlist = household.saved_queues.find(required(args, "ObjectID"))
    change = household.saved_queues.reorder(
        playlist, required(args, "TrackList"), args.get("NewPositionList", "")
    )
    household.playlists_changed()
    return {
        "QueueLengthChange": str(change),
        "NewQueueLength": str(len(playlist.tracks)),
        "NewUpdateID": str(playlist.update_id),
    }
