# -*- test-case-name: tests.control.test_announce -*-
"""Announcements: ``announce`` (a URL or text) and ``say`` (text), to a room, a group or
every room, with what was playing restored afterwards.

What plays:

- ``uri``: the speakers fetch it themselves;
- ``text`` with ``announce.tts_url`` configured: the URL template, the text URL-encoded;
- ``text`` otherwise: the local text-to-speech command (``sonosd.control.tts``) makes a WAV,
  which the daemon serves itself at a short-lived, unguessable URL on the NOTIFY listener's
  advertised address (``sonosd.gena.media``), removed when the announcement ends.

Where (``target``): ``group`` (default) plays on the speaker's group; ``room`` plays on that
speaker alone (taken out of its group for the announcement, then put back); ``all`` plays on
every group at once, each as ``group``.

How, for each group: snapshot the group (``snapshot``), set each visible member's volume
(``volume``, else ``announce.volume``), play the clip on the coordinator, poll the transport
every ``poll_interval`` until the clip stops or something else plays (at most ``timeout``: the
clip's length plus 5 s when known, else ``announce.timeout``), restore the snapshot even if a
step failed. Announcements to the same group wait for each other (in order); different groups
play at once. A clip the speaker cannot play (it reports a ``TransportStatus`` other than
``OK``) ends the announcement at once: ``502 playback_failed``.
"""

from __future__ import annotations

import io
import itertools
import wave
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import quote
from xml.sax.saxutils import escape

from twisted.internet.defer import Deferred, DeferredList, DeferredLock, ensureDeferred
from twisted.internet.task import deferLater
from twisted.logger import Logger

from sonosd.config import AnnounceConfig
from sonosd.control.commandargs import ControlError, Params
from sonosd.control.context import ControlContext, Grouping, GroupSnapshot
from sonosd.control.tts import TextToSpeech, TtsError
from sonosd.gena.media import MediaStore
from sonosd.household.state import SpeakerRef
from sonosd.household.topology import Topology

log = Logger()

_PLAYING = frozenset({"PLAYING", "TRANSITIONING"})
#: Seconds added to a clip's known length before the announcement stops waiting for it.
MARGIN = 5.0

MediaUrl = Callable[[str, str], str]


def wav_seconds(data: bytes) -> float | None:
    """The length of a WAV clip, or ``None`` when it is not one."""
    try:
        with wave.open(io.BytesIO(data)) as clip:
            rate = clip.getframerate()
            return clip.getnframes() / rate if rate else None
    except (wave.Error, EOFError):
        return None


def clip_metadata(uri: str, title: str, seconds: float | None, mime: str) -> str:
    """DIDL-Lite describing the clip as a track (so controllers show its title)."""
    duration = ""
    if seconds is not None:
        total = int(seconds + 0.999)
        duration = f' duration="{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"'
    return (
        '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
        'xmlns:r="urn:schemas-rinconnetworks-com:metadata-1-0/" '
        'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/">'
        '<item id="announcement" parentID="-1" restricted="true">'
        f'<res protocolInfo="http-get:*:{escape(mime)}:*"{duration}>{escape(uri)}</res>'
        f"<dc:title>{escape(title)}</dc:title>"
        "<upnp:class>object.item.audioItem.musicTrack</upnp:class></item></DIDL-Lite>"
    )


def _play_clip(device: Any, uri: str, meta: str, title: str) -> None:
    device.play_uri(uri, meta=meta, title=title, start=True)


def _volume(device: Any, volume: int) -> None:
    device.volume = volume


def _transport(device: Any) -> tuple[str, str, str]:
    info = device.get_current_transport_info()
    uri = device.avTransport.GetMediaInfo([("InstanceID", 0)])["CurrentURI"]
    return (
        str(info["current_transport_state"]),
        str(uri),
        str(info.get("current_transport_status") or "OK"),
    )


class _Clip:
    """What an announcement plays."""

    def __init__(self, title: str, seconds: float | None, mime: str, meta: str = "") -> None:
        self.title = title
        self.seconds = seconds
        self.mime = mime
        #: The client's DIDL-Lite for the clip (``meta``), or ``""``: the daemon's own.
        self.meta = meta
        self.uri: str | None = None
        self.path: str | None = None

    def url_for(self, host: str, media_url: MediaUrl | None) -> str:
        if self.path is not None:
            assert media_url is not None
            return media_url(host, self.path)
        assert self.uri is not None
        return self.uri


class AnnounceCommands:
    """``announce`` and ``say``: see the module docstring and docs/control.md.

    @param ctx: The controller.
    @param grouping: Snapshots and regrouping (the controller).
    @param config: The ``announce`` configuration section.
    @param media: Where spoken clips are served (``None``: only URLs can be announced).
    @param media_url: The URL of a served clip for a speaker's host.
    @param tts: Speaks text (default: ``config.tts_command``).
    @param poll_interval: Seconds between transport reads while a clip plays.
    """

    COMMANDS: ClassVar[tuple[str, ...]] = ("announce", "say")

    def __init__(
        self,
        ctx: ControlContext,
        grouping: Grouping,
        config: AnnounceConfig,
        media: MediaStore | None = None,
        media_url: MediaUrl | None = None,
        tts: TextToSpeech | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self._ctx = ctx
        self._grouping = grouping
        self.config = config
        self._media = media
        self._media_url = media_url
        self._tts = tts or TextToSpeech(ctx.reactor, config.tts_command, config.tts_timeout)
        self.poll_interval = poll_interval
        self._locks: dict[str, DeferredLock] = {}
        self._numbers = itertools.count(1)

    def reconfigure(self, config: AnnounceConfig) -> None:
        """Use ``config`` from the next announcement on (a reload); the text-to-speech
        command follows it."""
        self.config = config
        self._tts = TextToSpeech(self._ctx.reactor, config.tts_command, config.tts_timeout)

    async def do_say(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """``say``: ``announce`` of text."""
        return await self.do_announce(ref, params)

    async def do_announce(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Make the clip, play it where asked, restore, clean up."""
        clip = await self._clip(params)
        try:
            if params["target"] == "all":
                return await self._everywhere(ref, clip, params)
            return await self._serialised(ref, clip, params, room=params["target"] == "room")
        finally:
            if clip.path is not None and self._media is not None:
                self._media.remove(clip.path)

    async def _clip(self, params: Params) -> _Clip:
        text = params["text"]
        title = params["title"] or (text[:60] if text else "Announcement")
        if text is None:
            clip = _Clip(title, None, "audio/mpeg", params["meta"])
            clip.uri = params["uri"]
            return clip
        if self.config.tts_url is not None:
            clip = _Clip(title, None, "audio/mpeg", params["meta"])
            clip.uri = self.config.tts_url.replace("{text}", quote(text, safe=""))
            return clip
        if self._media is None or self._media_url is None:
            raise ControlError("tts_failed", 503, "this daemon serves no clips (no listener)")
        try:
            audio = await self._tts.speak(text)
        except TtsError as error:
            raise ControlError("tts_failed", 503, f"cannot speak the text: {error}") from error
        clip = _Clip(title, wav_seconds(audio), "audio/wav", params["meta"])
        clip.path = self._media.add(audio, "audio/wav", self.config.media_ttl)
        return clip

    def _timeout(self, clip: _Clip, params: Params) -> float:
        if params["timeout"] is not None:
            return float(params["timeout"])
        if clip.seconds is not None:
            return clip.seconds + MARGIN
        return self.config.timeout

    async def _everywhere(self, ref: SpeakerRef, clip: _Clip, params: Params) -> dict[str, Any]:
        topology = await self._ctx.topology(ref)
        coordinators = [
            coordinator
            for coordinator in _coordinators(topology)
            if self._ctx.state.availability(coordinator).online is not False
        ]
        refs = [self._ctx.state.by_uid(uid) for uid in coordinators]
        calls = [self._serialised_d(found, clip, params) for found in refs if found is not None]
        outcomes = await DeferredList(calls, consumeErrors=True)
        groups: list[dict[str, Any]] = []
        errors: list[ControlError] = []
        for ok, value in outcomes:
            if ok:
                groups.append(value)
            else:
                error = value.value
                errors.append(
                    error
                    if isinstance(error, ControlError)
                    else ControlError(
                        "internal", 500, "the announcement failed; see the daemon's log"
                    )
                )
                groups.append({"error": errors[-1].to_json()})
        if errors and len(errors) == len(groups):
            raise errors[0]
        return {"target": "all", "groups": groups}

    def _serialised_d(self, ref: SpeakerRef, clip: _Clip, params: Params) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._serialised(ref, clip, params, room=False))

    async def _serialised(
        self, ref: SpeakerRef, clip: _Clip, params: Params, room: bool
    ) -> dict[str, Any]:
        key = self._ctx.coordinator(ref).uid
        lock = self._locks.setdefault(key, DeferredLock())
        await lock.acquire()
        try:
            return await self._announce(ref, clip, params, room)
        finally:
            lock.release()
            if not lock.locked and not lock.waiting:
                self._locks.pop(key, None)

    async def _announce(
        self, ref: SpeakerRef, clip: _Clip, params: Params, room: bool
    ) -> dict[str, Any]:
        name = f"announce:{next(self._numbers)}"
        saved = await self._grouping.take_snapshot(name, ref)
        player = self._ctx.coordinator(ref)
        started = self._ctx.reactor.seconds()
        volume = params["volume"] if params["volume"] is not None else self.config.volume
        ended = "finished"
        status = "OK"
        uri = clip.url_for(player.host, self._media_url)
        try:
            if room and len(saved.members) > 1:
                await self._grouping.leave(ref)
                player = ref
                uri = clip.url_for(player.host, self._media_url)
            if volume is not None:
                members = (ref.uid,) if room else saved.members
                await self._all(
                    self._ctx.call(saved.refs.get(uid) or ref, _volume, volume) for uid in members
                )
            meta = clip.meta or clip_metadata(uri, clip.title, clip.seconds, clip.mime)
            await self._ctx.call(player, _play_clip, uri, meta, clip.title)
            ended, status = await self._wait(player, uri, self._timeout(clip, params))
        finally:
            try:
                await self._grouping.restore_snapshot(saved, False)
            finally:
                self._grouping.forget_snapshot(name)
        if ended == "failed":
            raise ControlError(
                "playback_failed",
                502,
                f"{player.name or player.uid} could not play the announcement ({status})",
            )
        return {
            "coordinator": player.uid,
            "uri": uri,
            "ended": ended,
            "seconds": round(self._ctx.reactor.seconds() - started, 2),
            "target": "room" if room else "group",
            "members": list((ref.uid,) if room else saved.members),
        }

    async def _all(self, calls: Any) -> None:
        outcomes = await DeferredList([_deferred(call) for call in calls], consumeErrors=True)
        for ok, value in outcomes:
            if not ok:
                value.raiseException()

    async def _wait(self, player: SpeakerRef, uri: str, seconds: float) -> tuple[str, str]:
        """Poll the transport until the clip stops or is replaced: ``finished``, ``failed``
        (a status other than OK), or ``timeout`` after ``seconds``."""
        reactor = self._ctx.reactor
        deadline = reactor.seconds() + seconds
        while True:
            remaining = deadline - reactor.seconds()
            if remaining <= 0:
                return "timeout", "OK"
            await deferLater(reactor, min(self.poll_interval, remaining), lambda: None)
            state, current, status = await self._ctx.call(player, _transport)
            if status != "OK":
                return "failed", status
            if state not in _PLAYING or current != uri:
                return "finished", status


def _coordinators(topology: Topology) -> list[str]:
    return [
        group.coordinator
        for group in topology.groups
        if not any(m.uid == group.coordinator and m.invisible for m in group.members)
    ]


def _deferred(awaitable: Any) -> Deferred[Any]:
    if isinstance(awaitable, Deferred):
        return awaitable
    return ensureDeferred(awaitable)


__all__ = ["AnnounceCommands", "GroupSnapshot", "clip_metadata", "wav_seconds"]
