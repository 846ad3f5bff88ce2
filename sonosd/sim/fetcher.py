# -*- test-case-name: tests.sim.test_fetcher -*-
"""What a simulated speaker does with an ``http``/``https`` URI it is told to play: fetch it.

A real speaker opens the URL itself when it starts playing: if it cannot connect, the name
does not resolve, the server answers an error or something that is not audio, nothing plays
(the controller app shows "unable to play ... the file cannot be found" or "the connection
... was lost"; SoCo issue #365, node-red-contrib-sonos-plus issues #275 and #314). When it
can, it plays the audio for as long as the audio lasts.

``Fetcher.probe(uri)`` does the same on loopback: it connects (only to 127.0.0.0/8 and
``localhost``: the simulator never leaves the machine, so any other host is "unknown host"
at once), reads the answer (at most ``max_bytes``; a longer answer is a stream that never
ends on its own), and measures the audio's duration (WAV, MP3, FLAC, Ogg, AAC/MP4 through
``mutagen``). Every fetch has a timeout.
"""

from __future__ import annotations

import io
from typing import Any, cast
from urllib.parse import urlsplit

import attrs
import mutagen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IResponse

from sonosd.sim.addresses import loopback_host

#: MIME types a speaker plays (besides ``audio/*``).
_AUDIO_TYPES = frozenset({"application/octet-stream", "application/ogg", "video/mp4"})


@attrs.frozen
class Probe:
    """What fetching a URI showed.

    @ivar ok: The speaker can play it.
    @ivar duration: Seconds of audio, or ``None`` when unknown (a stream, an unreadable file).
    @ivar reason: Why it cannot be played (``""`` when it can).
    @ivar mime: The content type the server gave.
    """

    ok: bool
    duration: float | None = None
    reason: str = ""
    mime: str = ""


def audio_duration(data: bytes) -> float | None:
    """The duration of the audio in ``data`` in seconds, or ``None`` if unknown."""
    try:
        audio: Any = mutagen.File(io.BytesIO(data))
    except Exception:
        return None
    length = getattr(getattr(audio, "info", None), "length", None)
    if isinstance(length, int | float) and length > 0:
        return float(length)
    return None


class _Collect(Protocol):
    def __init__(self, done: Deferred[tuple[bytes, bool]], limit: int) -> None:
        self._done = done
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > self._limit and self.transport is not None:
            cast(Any, self.transport).stopProducing()

    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        if self._done.called:
            return
        complete = reason.check(ResponseDone) is not None and self._size <= self._limit
        self._done.callback((b"".join(self._chunks)[: self._limit], complete))


class Fetcher:
    """Fetches what speakers are told to play; see the module docstring.

    @param reactor: Connects and times out.
    @param timeout: Seconds for the whole fetch.
    @param max_bytes: The most read; a longer answer counts as an endless stream.
    """

    def __init__(self, reactor: Any, timeout: float = 10.0, max_bytes: int = 32 << 20) -> None:
        self._reactor = reactor
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._pool = HTTPConnectionPool(reactor, persistent=False)
        self._agent = Agent(reactor, connectTimeout=timeout, pool=self._pool)
        self.fetched: list[str] = []
        self._pending: set[Deferred[Probe]] = set()

    def probe(self, uri: str) -> Deferred[Probe]:
        """Fetch ``uri`` as a speaker would; never fails (a failure is a ``Probe``)."""
        parts = urlsplit(uri)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https"):
            return succeed(Probe(True))
        if not loopback_host(host):
            return succeed(Probe(False, reason=f"unknown host {host or '(none)'}"))
        self.fetched.append(uri)
        request = self._agent.request(
            b"GET", uri.encode("ascii", "replace"), Headers({b"user-agent": [b"Sonos/1.0"]})
        )
        request.addTimeout(self.timeout, self._reactor)
        probed: Deferred[Probe] = request.addCallback(self._read).addErrback(_failed)
        self._pending.add(probed)

        def forget(result: Probe) -> Probe:
            self._pending.discard(probed)
            return result

        return probed.addBoth(forget)

    async def _read_body(self, response: IResponse) -> tuple[bytes, bool]:
        done: Deferred[tuple[bytes, bool]] = Deferred()
        response.deliverBody(_Collect(done, self.max_bytes))
        done.addTimeout(self.timeout, self._reactor)
        return await done

    def _read(self, response: IResponse) -> Deferred[Probe]:
        return Deferred.fromCoroutine(self._inspect(response))

    async def _inspect(self, response: IResponse) -> Probe:
        mime = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode(
            "latin-1", "replace"
        )
        mime = mime.split(";", 1)[0].strip().lower()
        if response.code >= 400:
            response.deliverBody(_Discard())
            return Probe(False, reason=f"HTTP {response.code}", mime=mime)
        if mime and not (mime.startswith("audio/") or mime in _AUDIO_TYPES):
            response.deliverBody(_Discard())
            return Probe(False, reason=f"not audio ({mime})", mime=mime)
        data, complete = await self._read_body(response)
        if not complete:
            return Probe(True, None, mime=mime)
        duration = audio_duration(data)
        if duration is None and not data:
            return Probe(False, reason="empty answer", mime=mime)
        return Probe(True, duration, mime=mime)

    def close(self) -> Deferred[None]:
        """Cancel the fetches under way and close idle connections."""
        for pending in list(self._pending):
            pending.cancel()
        closed: Deferred[None] = self._pool.closeCachedConnections()
        return closed


class _Discard(Protocol):
    def connectionLost(self, reason: Failure = ResponseDone) -> None:  # type: ignore[assignment]
        pass


def _failed(failure: Failure) -> Probe:
    error = failure.value
    name = type(error).__name__
    if "Refused" in name:
        return Probe(False, reason="connection refused")
    if "Timeout" in name or "TimedOut" in name or "Cancelled" in name:
        return Probe(False, reason="timed out")
    return Probe(False, reason=f"cannot connect ({name})")
