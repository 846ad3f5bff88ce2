# -*- test-case-name: tests.control.test_queue -*-
"""The ``queue`` command, and how every source is queued and played.

``queue`` lists (in pages), adds, removes ranges, moves, clears and plays from a position of
the coordinator's queue. ``enqueue`` and ``start`` are what the favourites, playlists, library
and share-link commands share: a container (or any queueable item) goes into the queue as the
Sonos app puts it there, in one of three ``mode``\\ s:

- ``replace``: the queue is cleared and the item becomes the whole queue, played from its
  first track;
- ``next``: the item goes right after the current track (played from there);
- ``end``: the item goes at the end (played from its first track, when playing is asked).

The functions at the top run in the SoCo pool (blocking); ``QueueCommands`` runs them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sonosd.control.commandargs import ControlError, Params, bad_argument
from sonosd.control.context import ControlContext, call_meaning
from sonosd.household.state import SpeakerRef

#: What the queue's UPnP errors mean for these commands.
QUEUE_ERRORS = {402: ("bad_argument", 400, "the queue has no such track or range")}


def queue_item(position: int, item: Any) -> dict[str, Any]:
    """One queue (or playlist, or library) track as JSON."""
    resources = getattr(item, "resources", None) or []
    return {
        "position": position,
        "title": getattr(item, "title", None),
        "artist": getattr(item, "creator", None),
        "album": getattr(item, "album", None),
        "uri": resources[0].uri if resources else None,
        "album_art": getattr(item, "album_art_uri", None) or None,
    }


def current_track(device: Any) -> int:
    """The 1-based number of the current queue track (0 when none)."""
    answer = device.avTransport.GetPositionInfo([("InstanceID", 0), ("Channel", "Master")])
    track = str(answer.get("Track", "0"))
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return int(track) if track.isascii() and track.isdigit() and len(track) <= 9 else 0


def next_position(device: Any) -> int:
    """Where mode ``next`` puts an item: the 1-based position right after the current queue
    track, or 0 (the end) when the queue is not what plays (a stream, line-in) or has no
    current track."""
    now = current_track(device)
    on_queue = str(device.get_current_media_info().get("uri", "")).startswith("x-rincon-queue:")
    return now + 1 if on_queue and now else 0


def enqueue(device: Any, item: Any, mode: str) -> int:
    """Put ``item`` (a queueable DIDL object) into the queue per ``mode``; the number of its
    first track (1-based)."""
    if mode == "replace":
        device.clear_queue()
        return int(device.add_to_queue(item))
    if mode == "next":
        return int(device.add_to_queue(item, position=next_position(device)))
    return int(device.add_to_queue(item))


def play_from(device: Any, position: int) -> None:
    """Play the queue from 1-based ``position``."""
    device.play_from_queue(position - 1)


def _list(device: Any, start: int, count: int) -> dict[str, Any]:
    queue = device.get_queue(start=start, max_items=count)
    items = [queue_item(start + offset + 1, item) for offset, item in enumerate(queue)]
    return {"start": start, "total": int(queue.total_matches), "items": items}


def _add(device: Any, params: Params) -> dict[str, Any]:
    if params["position"] > 0:
        length = int(device.queue_size)
        if params["position"] > length + 1:
            raise bad_argument(
                "position", f"the queue has {length} tracks; a track can go at 1..{length + 1}"
            )
    position = device.add_uri_to_queue(
        params["uri"], position=params["position"], as_next=params["as_next"], title=params["title"]
    )
    return {"position": int(position), "total": int(device.queue_size)}


def _remove(device: Any, track: int, count: int) -> dict[str, Any]:
    length = int(device.queue_size)
    if track + count - 1 > length:
        raise bad_argument("track", f"the queue has {length} tracks; {track}..{track + count - 1}")
    device.remove_range_from_queue(track - 1, count)
    return {"removed": count, "total": length - count}


def _move(device: Any, track: int, to: int, count: int) -> dict[str, Any]:
    length = int(device.queue_size)
    if track + count - 1 > length:
        raise bad_argument("track", f"the queue has {length} tracks; {track}..{track + count - 1}")
    if to + count - 1 > length:
        raise bad_argument("to", f"a block of {count} cannot start at {to} in {length} tracks")
    start = track - 1
    insert_before = to - 1 if to < track else to - 1 + count
    if to != track:
        device.reorder_queue(start, count, insert_before)
    return {"track": to, "count": count, "total": length}


def _clear(device: Any) -> dict[str, Any]:
    device.clear_queue()
    return {"cleared": True, "total": 0}


def _play(device: Any, track: int) -> dict[str, Any]:
    length = int(device.queue_size)
    if track > length:
        raise bad_argument("track", f"the queue has {length} tracks")
    play_from(device, track)
    return {"track": track}


class QueueCommands:
    """``queue``: see the module docstring and docs/control.md."""

    COMMANDS: ClassVar[tuple[str, ...]] = ("queue",)

    def __init__(self, ctx: ControlContext) -> None:
        self._ctx = ctx

    async def do_queue(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Act on the coordinator's queue."""
        coordinator = self._ctx.coordinator(ref)
        action = params["action"]
        if action == "list":
            result = await self._ctx.call(coordinator, _list, params["start"], params["count"])
        elif action == "add":
            result = await self._ctx.call(coordinator, _add, params)
        elif action == "remove":
            result = await call_meaning(
                self._ctx, coordinator, QUEUE_ERRORS, _remove, params["track"], params["count"]
            )
        elif action == "move":
            result = await call_meaning(
                self._ctx,
                coordinator,
                QUEUE_ERRORS,
                _move,
                params["track"],
                params["to"],
                params["count"],
            )
        elif action == "clear":
            result = await self._ctx.call(coordinator, _clear)
        elif action == "play":
            result = await self._ctx.call(coordinator, _play, params["track"])
        else:  # pragma: no cover - commandargs accepts no other action
            raise ControlError("internal", 500, f"unknown queue action {action}")
        return {"coordinator": coordinator.uid, **result}
