# -*- test-case-name: tests.sim.test_didl -*-
"""Tracks and their DIDL-Lite metadata, as speakers put them in events and SOAP answers.

``Track`` is the simulator's value object for anything playable (a song with a duration, or a
stream without one). ``track_didl`` formats the metadata real firmware sends in
``CurrentTrackMetaData`` and queue browses; ``parse_didl`` reads what clients send with
``SetAVTransportURI`` and ``AddURIToQueue`` (leniently: anything missing is left empty).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs

NS_DIDL = "urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_UPNP = "urn:schemas-upnp-org:metadata-1-0/upnp/"
NS_R = "urn:schemas-rinconnetworks-com:metadata-1-0/"

DIDL_OPEN = (
    f'<DIDL-Lite xmlns:dc="{NS_DC}" xmlns:upnp="{NS_UPNP}" xmlns:r="{NS_R}" xmlns="{NS_DIDL}">'
)
DIDL_CLOSE = "</DIDL-Lite>"

MUSIC_TRACK = "object.item.audioItem.musicTrack"
BROADCAST = "object.item.audioItem.audioBroadcast"


def format_duration(seconds: int) -> str:
    """``H:MM:SS`` as Sonos writes durations and positions (``0:03:22``)."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def parse_duration(text: str) -> int | None:
    """Seconds in ``H:MM:SS`` (fractions ignored), or ``None`` when it is not a duration."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        return None
    try:
        hours, minutes = int(parts[0]), int(parts[1])
        seconds = int(float(parts[2]))
    except ValueError:
        return None
    if hours < 0 or not 0 <= minutes < 60 or not 0 <= seconds < 60:
        return None
    return hours * 3600 + minutes * 60 + seconds


def album_art_path(uri: str) -> str:
    """The speaker-relative album art URL of ``uri`` (``/getaa?s=1&u=...``)."""
    return "/getaa?s=1&u=" + quote(uri, safe="")


@attrs.frozen
class Track:
    """Something playable: a song (``duration`` > 0) or a stream (``duration`` 0)."""

    uri: str
    title: str
    artist: str = ""
    album: str = ""
    duration: int = 0
    album_art: str = ""
    protocol_info: str = "http-get:*:audio/mpeg:*"
    upnp_class: str = MUSIC_TRACK
    #: What a radio stream says is playing (``r:streamContent``, "Artist - Title").
    stream_content: str = ""

    @property
    def is_stream(self) -> bool:
        """A stream has no duration and never ends on its own."""
        return self.duration <= 0


def track_didl(
    track: Track, item_id: str = "-1", parent_id: str = "-1", *, playing: bool = False
) -> str:
    """The DIDL-Lite document (unescaped) describing one track; ``playing``: as the speaker
    playing it describes it (``CurrentTrackMetaData``: a stream says what it plays)."""
    return DIDL_OPEN + track_item(track, item_id, parent_id, playing=playing) + DIDL_CLOSE


def track_item(track: Track, item_id: str, parent_id: str, *, playing: bool = False) -> str:
    """One ``<item>`` element of a DIDL-Lite document (``playing``: see ``track_didl``)."""
    duration = f' duration="{format_duration(track.duration)}"' if track.duration else ""
    parts = [
        f'<item id="{escape(item_id)}" parentID="{escape(parent_id)}" restricted="true">',
        f'<res protocolInfo="{escape(track.protocol_info)}"{duration}>{escape(track.uri)}</res>',
    ]
    if playing and track.stream_content:
        parts.append(f"<r:streamContent>{escape(track.stream_content)}</r:streamContent>")
    if track.album_art:
        parts.append(f"<upnp:albumArtURI>{escape(track.album_art)}</upnp:albumArtURI>")
    parts.append(f"<dc:title>{escape(track.title)}</dc:title>")
    parts.append(f"<upnp:class>{track.upnp_class}</upnp:class>")
    if track.artist:
        parts.append(f"<dc:creator>{escape(track.artist)}</dc:creator>")
    if track.album:
        parts.append(f"<upnp:album>{escape(track.album)}</upnp:album>")
    parts.append("</item>")
    return "".join(parts)


def items_didl(items: Iterable[str]) -> str:
    """A DIDL-Lite document wrapping already formatted ``<item>``/``<container>`` elements."""
    return DIDL_OPEN + "".join(items) + DIDL_CLOSE


def parse_didl(uri: str, metadata: str) -> Track:
    """The track a client describes with ``uri`` and DIDL ``metadata`` (may be empty).

    Missing values fall back to something sensible: the title is the last path segment of
    the URI, the duration 0 (a stream) unless the ``res`` carries one.
    """
    fallback_title = urlsplit(uri).path.rsplit("/", 1)[-1] or uri
    if not metadata.strip():
        return Track(uri=uri, title=fallback_title, protocol_info=_guess_protocol(uri))
    try:
        root = ElementTree.fromstring(metadata)
    except ElementTree.ParseError:
        return Track(uri=uri, title=fallback_title, protocol_info=_guess_protocol(uri))
    item = root.find(f"{{{NS_DIDL}}}item")
    if item is None:
        item = root.find(f"{{{NS_DIDL}}}container")
    if item is None:
        return Track(uri=uri, title=fallback_title, protocol_info=_guess_protocol(uri))
    res = item.find(f"{{{NS_DIDL}}}res")
    duration = parse_duration(res.get("duration", "")) if res is not None else None
    protocol = res.get("protocolInfo") if res is not None else None
    return Track(
        uri=uri,
        title=item.findtext(f"{{{NS_DC}}}title") or fallback_title,
        artist=item.findtext(f"{{{NS_DC}}}creator") or "",
        album=item.findtext(f"{{{NS_UPNP}}}album") or "",
        duration=duration or 0,
        album_art=item.findtext(f"{{{NS_UPNP}}}albumArtURI") or "",
        protocol_info=protocol or _guess_protocol(uri),
        upnp_class=item.findtext(f"{{{NS_UPNP}}}class") or MUSIC_TRACK,
    )


def protocol_mime(protocol_info: str) -> str:
    """The MIME type (third field) of a UPnP ``protocolInfo`` string, or ``""``."""
    fields = protocol_info.split(":")
    return fields[2] if len(fields) >= 3 else ""


def _guess_protocol(uri: str) -> str:
    scheme = uri.split(":", 1)[0]
    if scheme in ("http", "https"):
        return "http-get:*:audio/mpeg:*"
    return f"{scheme}:*:*:*"
