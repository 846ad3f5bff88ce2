# -*- test-case-name: tests.sim.test_content -*-
"""What a URI a controller sends stands for: one playable track, or what a container holds.

``queue_tracks`` answers ``AddURIToQueue`` (and the saved-queue additions): a container is
expanded into its tracks (a Sonos playlist ``file:///jffs/settings/savedqueues.rsq#<n>``, a
library container ``x-rincon-playlist:<uid>#A:...``/``#S:...``, a music-service container
``x-rincon-cpcontainer:...``), anything else is one track. ``single_track`` answers
``SetAVTransportURI``, which takes only single items: a container there is UPnP 714 (the error
speakers give, sonos-api-docs issue #42).

Refusals are the speakers': 714 illegal MIME type (an unknown scheme, a web page or picture,
non-audio DIDL), 800 for a music-service item the household has no account for (see
``sonosd.sim.musicservices``), 701 for a container that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import attrs

from sonosd.sim import catalog, musicservices
from sonosd.sim.didl import Track, parse_didl, protocol_mime
from sonosd.sim.library import Library
from sonosd.sim.models import Model
from sonosd.sim.playlists import SAVED_QUEUES, SavedQueues
from sonosd.sim.soap import UPnPError

KNOWN_SCHEMES = frozenset(
    {
        "http",
        "https",
        "aac",
        "hls-radio",
        "x-file-cifs",
        "x-rincon",
        "x-rincon-mp3radio",
        "x-rincon-playlist",
        "x-rincon-cpcontainer",
        "x-rincon-queue",
        "x-rincon-stream",
        "x-rincon-buzzer",
        "x-sonos-htastream",
        "x-sonos-http",
        "x-sonos-spotify",
        "x-sonos-vli",
        "x-sonosapi-stream",
        "x-sonosapi-radio",
        "x-sonosapi-hls",
        "x-sonosapi-hls-static",
        "x-sonosprog-http",
    }
)
_NOT_AUDIO_EXTENSIONS = frozenset(
    {".html", ".htm", ".txt", ".jpg", ".jpeg", ".png", ".gif", ".pdf", ".json", ".xml", ".zip"}
)
_AUDIO_EXTENSIONS = frozenset({".mp3", ".flac", ".m4a", ".aac", ".ogg", ".wav", ".wma", ".aiff"})
_DEFAULT_FILE_DURATION = 180

#: URI prefixes of containers: played only through the queue.
CONTAINER_PREFIXES = ("x-rincon-cpcontainer:", "x-rincon-playlist:", SAVED_QUEUES)


class Speaker(Protocol):
    """What input selection reads of a speaker."""

    name: str
    model: Model


class Household(Protocol):
    """What resolving reads of the household (``sonosd.sim.household.Household``)."""

    @property
    def by_uid(self) -> Mapping[str, Speaker]: ...

    @property
    def library(self) -> Library: ...

    @property
    def saved_queues(self) -> SavedQueues: ...

    @property
    def accounts(self) -> Mapping[int, int]: ...


def check_playable(uri: str, metadata: str) -> None:
    """Refuse with 714 what a speaker cannot play (unknown scheme, not audio)."""
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    if scheme not in KNOWN_SCHEMES:
        raise UPnPError(714, f"illegal MIME type for {uri!r}")
    if scheme in ("http", "https"):
        path = urlsplit(uri).path.lower()
        if any(path.endswith(ext) for ext in _NOT_AUDIO_EXTENSIONS):
            raise UPnPError(714, f"{uri!r} is not audio")
    if metadata.strip():
        mime = protocol_mime(parse_didl(uri, metadata).protocol_info).lower()
        if mime.startswith(("text/", "image/", "video/")):
            raise UPnPError(714, f"illegal MIME type {mime}")


def resolve_track(uri: str, metadata: str) -> Track:
    """The track behind ``uri``: the library's own when known, else what the DIDL says."""
    for song in (*catalog.SONGS, *catalog.STATIONS):
        if song.uri == uri:
            return song
    track = parse_didl(uri, metadata)
    path = urlsplit(uri).path.lower()
    if track.duration == 0 and any(path.endswith(ext) for ext in _AUDIO_EXTENSIONS):
        track = attrs.evolve(track, duration=_DEFAULT_FILE_DURATION)
    return track


def _service(household: Household, uri: str, metadata: str) -> musicservices.MusicService | None:
    """The music service of a music-service item (``None``: not one); 800 if the household
    cannot play it."""
    service_type = musicservices.service_type_of(uri, metadata)
    if service_type is None:
        return None
    return musicservices.check_playable(service_type, household.accounts)


def queue_tracks(household: Household, uri: str, metadata: str) -> list[Track]:
    """What ``AddURIToQueue`` of ``uri`` adds: a container's tracks, else the one track."""
    if uri.startswith(SAVED_QUEUES):
        return list(household.saved_queues.find(uri).tracks)
    if uri.startswith("x-rincon-playlist:"):
        object_id = uri.split("#", 1)[1] if "#" in uri else ""
        song = household.library.song(object_id)
        if song is not None:
            return [song]
        try:
            return household.library.tracks(object_id)
        except KeyError:
            raise UPnPError(701, f"no such object {object_id}") from None
    service = _service(household, uri, metadata)
    if service is not None and not uri.startswith("x-sonosapi-"):
        serial = household.accounts.get(service.service_type, 0)
        return musicservices.expand(uri, metadata, service, serial)
    if service is None:
        check_playable(uri, metadata)
    return [resolve_track(uri, metadata)]


def single_track(household: Household, uri: str, metadata: str) -> Track:
    """What ``SetAVTransportURI`` of ``uri`` plays; 714 for a container."""
    if uri.startswith(CONTAINER_PREFIXES):
        raise UPnPError(714, f"{uri!r} is a container: queue it instead")
    if _service(household, uri, metadata) is None:
        check_playable(uri, metadata)
    return resolve_track(uri, metadata)


def many_tracks(household: Household, uris: Sequence[str], metadata: Sequence[str]) -> list[Track]:
    """``AddMultipleURIsToQueue``: the tracks of every URI, in order."""
    tracks: list[Track] = []
    for index, uri in enumerate(uris):
        meta = metadata[index] if index < len(metadata) else ""
        tracks.extend(queue_tracks(household, uri, meta))
    return tracks


def input_track(household: Household, uri: str) -> Track | None:
    """Line-in (``x-rincon-stream:<uid>``) or TV (``x-sonos-htastream:<uid>:spdif``) of a
    speaker that has that input: a stream named after it. ``None`` for any other URI; 714 for
    an input the named speaker lacks, 402 for an unknown speaker."""
    if uri.startswith("x-rincon-stream:"):
        uid, kind = uri.removeprefix("x-rincon-stream:"), "line_in"
    elif uri.startswith("x-sonos-htastream:"):
        uid, kind = uri.removeprefix("x-sonos-htastream:").split(":", 1)[0], "home_theater"
    else:
        return None
    source = household.by_uid.get(uid)
    if source is None:
        raise UPnPError(402, f"unknown player {uid}")
    if not getattr(source.model, kind):
        raise UPnPError(
            714, f"{source.name} has no {'line-in' if kind == 'line_in' else 'TV'} input"
        )
    title = "Line-In" if kind == "line_in" else "TV"
    return Track(
        uri=uri,
        title=title,
        protocol_info=f"{uri.split(':', 1)[0]}:*:*:*",
        upnp_class="object.item.audioItem.linein" if kind == "line_in" else "object.item.audioItem",
    )
