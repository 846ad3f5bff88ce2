# -*- test-case-name: tests.api.test_art -*-
"""Album art through the daemon: ``GET /api/v1/art?url=...[&speaker=...]`` (``read`` scope).

A browser that cannot reach the speakers (the daemon in Docker, a phone over a VPN) still
shows album art: the daemon fetches it from the speaker and keeps it in a bounded cache.

It is not an open proxy: the only URLs it fetches are ``http://<host>:<port>/...`` where
``host`` and ``port`` are those of a followed speaker (Sonos serves art on port 1400), or a
path (``/getaa?...``) relative to the speaker named by ``speaker`` (uid, room or address).
Redirects are not followed; the answer must be a raster image (JPEG, PNG, GIF, WebP, AVIF,
BMP) of at most ``MAX_IMAGE`` bytes, fetched within ``FETCH_TIMEOUT`` seconds. At most
``MAX_FETCHES`` fetches run at once and ``MAX_WAITING`` wait; beyond, ``503 busy``. The
cache holds at most ``CACHE_ENTRIES`` images and ``CACHE_BYTES`` bytes, the least recently
used going first; requests for an image being fetched share that fetch.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any
from urllib.parse import urlsplit

import attrs
from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import Agent, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sonosd.api import views
from sonosd.api.auth import query_first
from sonosd.api.responses import json_error, not_modified
from sonosd.backoff import describe_failure
from sonosd.gena.httpclient import quiet_pool, read_bounded

log = Logger()

#: Bounds (documented in docs/api.md).
CACHE_ENTRIES = 256
CACHE_BYTES = 16 * 1024 * 1024
MAX_IMAGE = 2 * 1024 * 1024
FETCH_TIMEOUT = 10.0
MAX_FETCHES = 4
MAX_WAITING = 64
MAX_URL = 4096

#: The port speakers serve album art on.
ART_PORT = 1400

IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp"}
)


class ArtRefused(Exception):
    """A request the proxy refuses: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@attrs.frozen
class Image:
    """A fetched image: its type, its bytes and their validator."""

    content_type: str
    body: bytes
    etag: str

    @classmethod
    def of(cls, content_type: str, body: bytes) -> Image:
        """An image with its ETag computed from ``body``."""
        return cls(content_type, body, '"' + hashlib.sha256(body).hexdigest()[:24] + '"')


def art_url(url: str, speaker: str | None, state: views.StateView) -> str:
    """The speaker URL the proxy may fetch for the request's ``url`` and ``speaker``.

    @raise ArtRefused: The URL is malformed (400 ``bad_url``), needs a speaker that is not
        given or unknown (400 / 404), or points elsewhere than at a followed speaker's art
        port (403 ``not_a_speaker``).
    """
    if not url or len(url) > MAX_URL or not url.isascii() or any(c <= " " for c in url):
        raise ArtRefused(400, "bad_url", "url: expected a speaker's album art URL")
    if url.startswith("/") and not url.startswith("//"):
        return _relative(url, speaker, state)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ArtRefused(400, "bad_url", f"url: {error}") from None
    if parts.scheme != "http" or not parts.hostname or "@" in parts.netloc:
        raise ArtRefused(403, "not_a_speaker", "url: only http URLs of followed speakers")
    host = parts.hostname
    port = ART_PORT if port is None else port
    followed = {(ref.host.lower(), ref.port) for ref in state.speakers()}
    if port != ART_PORT or (host, port) not in followed:
        raise ArtRefused(
            403, "not_a_speaker", f"url: {host}:{port} is not a followed speaker's art port"
        )
    return _rebuild(host, port, parts.path or "/", parts.query)


def _relative(path: str, speaker: str | None, state: views.StateView) -> str:
    if not speaker:
        raise ArtRefused(400, "bad_url", "speaker: a relative url needs the speaker it is on")
    ref = state.find(speaker)
    found = None
    if ref is not None:
        found = next((s for s in state.speakers() if s.uid == ref.uid), None)
    if found is None:
        raise ArtRefused(404, "unknown_speaker", f"speaker: no speaker {speaker!r}")
    if found.port != ART_PORT:
        raise ArtRefused(403, "not_a_speaker", "speaker: it does not serve art on port 1400")
    parts = urlsplit(path)
    return _rebuild(found.host, found.port, parts.path, parts.query)


def _rebuild(host: str, port: int, path: str, query: str) -> str:
    # Built from the checked parts: no user info, no fragment, no parser differences.
    authority = f"[{host}]" if ":" in host else host
    return f"http://{authority}:{port}{path}" + (f"?{query}" if query else "")


class ArtCache:
    """Least recently used images, bounded by count and by bytes."""

    def __init__(self, entries: int = CACHE_ENTRIES, size: int = CACHE_BYTES) -> None:
        self._entries = entries
        self._size = size
        self._images: OrderedDict[str, Image] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._images)

    def get(self, url: str) -> Image | None:
        """The image cached for ``url`` (now the most recently used), else ``None``."""
        image = self._images.get(url)
        if image is not None:
            self._images.move_to_end(url)
        return image

    def put(self, url: str, image: Image) -> None:
        """Keep ``image``; drop the least recently used until both bounds hold."""
        old = self._images.pop(url, None)
        if old is not None:
            self.bytes -= len(old.body)
        if len(image.body) > self._size:
            return
        self._images[url] = image
        self.bytes += len(image.body)
        while len(self._images) > self._entries or self.bytes > self._size:
            _, dropped = self._images.popitem(last=False)
            self.bytes -= len(dropped.body)


class ArtProxy:
    """Fetches album art from speakers, shares concurrent fetches, caches the images.

    @param reactor: For the HTTP client and the timeouts.
    @param agent: The HTTP client (default: an ``Agent`` with its own connection pool).
    """

    def __init__(self, reactor: Any, agent: IAgent | None = None) -> None:
        self._clock: IReactorTime = reactor
        pool = None
        if agent is None:
            pool = quiet_pool(reactor, persistent=True)
            agent = Agent(reactor, pool=pool, connectTimeout=5)
        self._agent = agent
        self._pool = pool
        self.cache = ArtCache()
        self._pending: dict[str, list[Deferred[Image]]] = {}
        self._limit = DeferredSemaphore(MAX_FETCHES)

    def close(self) -> Deferred[None]:
        """Close the kept-alive connections to the speakers."""
        if self._pool is None:
            return succeed(None)
        return self._pool.closeCachedConnections()

    def get(self, url: str) -> Deferred[Image]:
        """The image at ``url`` (already checked by ``art_url``): cached, shared or fetched."""
        cached = self.cache.get(url)
        if cached is not None:
            return succeed(cached)
        waiting: Deferred[Image] = Deferred()
        if url in self._pending:
            self._pending[url].append(waiting)
            return waiting
        if len(self._pending) >= MAX_FETCHES + MAX_WAITING:
            raise ArtRefused(503, "busy", "too many album art requests at once")
        self._pending[url] = [waiting]
        fetched = self._limit.run(lambda: Deferred.fromCoroutine(self._fetch(url)))
        fetched.addBoth(self._settle, url)
        return waiting

    def _settle(self, result: Image | Failure, url: str) -> None:
        if isinstance(result, Image):
            self.cache.put(url, result)
        for waiting in self._pending.pop(url, []):
            if isinstance(result, Image):
                waiting.callback(result)
            else:
                waiting.errback(result)

    async def _fetch(self, url: str) -> Image:
        """Fetch ``url`` within ``FETCH_TIMEOUT`` seconds (headers and body together)."""
        waiting: list[Deferred[Any]] = []
        expired = [False]

        def expire() -> None:
            expired[0] = True
            for deferred in waiting:
                deferred.cancel()

        deadline = self._clock.callLater(FETCH_TIMEOUT, expire)
        try:
            return await self._fetch_within(url, waiting)
        except ArtRefused:
            raise
        except Exception as error:
            if expired[0]:
                raise ArtRefused(504, "timeout", "the speaker did not answer in time") from None
            reason = describe_failure(error)[1]
            raise ArtRefused(502, "speaker_error", f"cannot fetch the image: {reason}") from None
        finally:
            if deadline.active():
                deadline.cancel()

    async def _fetch_within(self, url: str, waiting: list[Deferred[Any]]) -> Image:
        request = self._agent.request(
            b"GET", url.encode("ascii"), Headers({b"accept": [b"image/*"]})
        )
        waiting.append(request)
        response: IResponse = await request
        content_type = _content_type(response)
        if response.code != 200 or content_type not in IMAGE_TYPES:
            what = f"status {response.code}" if response.code != 200 else content_type
            refused = ArtRefused(502, "speaker_error", f"the speaker answered {what}, not an image")
            # Nothing of it is read: its connection is dropped at its first byte.
            read_bounded(response, 0, lambda: refused).addErrback(lambda _: None)
            raise refused
        reading = read_bounded(
            response, MAX_IMAGE, lambda: ArtRefused(502, "speaker_error", "the image is too large")
        )
        waiting.append(reading)
        try:
            body = await reading
        except ResponseFailed:
            raise ArtRefused(502, "speaker_error", "the speaker broke off the image") from None
        return Image.of(content_type, body)


def _content_type(response: IResponse) -> str:
    values = response.headers.getRawHeaders(b"content-type") or [b""]
    return values[0].decode("latin-1").split(";")[0].strip().lower()


class ArtResource(Resource):
    """``GET /api/v1/art``: the checked URL's image from the proxy (auth by the site's gate).

    @param state: The followed speakers.
    @param proxy: Fetches and caches.
    """

    isLeaf = True

    def __init__(self, state: views.StateView, proxy: ArtProxy) -> None:
        super().__init__()
        self._state = state
        self._proxy = proxy

    def render(self, request: Request) -> bytes | int:
        """The image, ``304`` when the browser has it, or a JSON error."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return json_error(request, 405, "method_not_allowed", "only GET is allowed here")
        args: dict[bytes, list[bytes]] = request.args or {}
        raw_url = query_first(args, b"url")
        raw_speaker = query_first(args, b"speaker")
        try:
            url = art_url(
                raw_url.decode("utf-8", "replace") if raw_url else "",
                raw_speaker.decode("utf-8", "replace") if raw_speaker else None,
                self._state,
            )
            fetching = self._proxy.get(url)
        except ArtRefused as refused:
            return json_error(request, refused.status, refused.code, refused.message)
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))
        fetching.addCallbacks(
            self._answer, self._refuse, callbackArgs=(request, finished),
            errbackArgs=(request, finished),
        )  # fmt: skip
        return NOT_DONE_YET

    @staticmethod
    def _answer(image: Image, request: Request, finished: list[bool]) -> None:
        if finished[0]:
            return
        request.setHeader(b"cache-control", b"private, max-age=86400")
        request.setHeader(b"etag", image.etag.encode("ascii"))
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"content-security-policy", b"default-src 'none'; sandbox")
        if not_modified(request, image.etag.encode("ascii")):
            request.setResponseCode(304)
        else:
            request.setHeader(b"content-type", image.content_type.encode("ascii"))
            request.setHeader(b"content-length", b"%d" % len(image.body))
            if request.method != b"HEAD":
                request.write(image.body)
        request.finish()

    @staticmethod
    def _refuse(failure: Failure, request: Request, finished: list[bool]) -> None:
        if finished[0]:
            return
        error = failure.value
        if not isinstance(error, ArtRefused):
            log.failure("album art fetch failed", failure)
            error = ArtRefused(502, "speaker_error", "cannot fetch the image")
        request.write(json_error(request, error.status, error.code, error.message))
        request.finish()
