"""Tests for sonosd.api.art: album art proxied from simulated speakers, cached, never open."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sonosd.api import art
from sonosd.api.art import ArtCache, ArtProxy, ArtRefused, Image, art_url
from sonosd.config import SimulateConfig
from sonosd.delivery.hub import Hub
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.sim.addresses import free_loopback_base
from sonosd.sim.service import HouseholdService
from tests.api_helpers import ADMIN, READER, start_api

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def followed(*hosts: str, port: int = 1400) -> HouseholdState:
    """A state following one speaker per host (rooms A, B, ...)."""
    state = HouseholdState()
    for index, host in enumerate(hosts):
        uid = f"RINCON_00000000000{index}01400"
        state.ensure(SpeakerRef(uid=uid, name=chr(65 + index), host=host, port=port))
    return state


class ArtUrlTests(SynchronousTestCase):
    """Which URLs the proxy agrees to fetch (pure)."""

    def setUp(self) -> None:
        self.state = followed("127.0.0.2", "127.0.0.3")

    def refused(self, url: str, speaker: str | None = None) -> ArtRefused:
        with self.assertRaises(ArtRefused) as caught:
            art_url(url, speaker, self.state)
        return caught.exception

    def test_followed_speaker_urls_pass_rebuilt(self) -> None:
        """A followed speaker's port-1400 URL passes, rebuilt without a fragment."""
        self.assertEqual(
            art_url("http://127.0.0.2:1400/getaa?s=1&u=x%3Ay#frag", None, self.state),
            "http://127.0.0.2:1400/getaa?s=1&u=x%3Ay",
        )
        self.assertEqual(
            art_url("http://127.0.0.3/getaa?u=1", None, self.state),
            "http://127.0.0.3:1400/getaa?u=1",
        )

    def test_relative_urls_need_a_followed_speaker(self) -> None:
        """A relative path is fetched from the named speaker (room or uid), else refused."""
        self.assertEqual(
            art_url("/getaa?s=1&u=a", "b", self.state), "http://127.0.0.3:1400/getaa?s=1&u=a"
        )
        self.assertEqual(self.refused("/getaa?s=1").status, 400)
        self.assertEqual(self.refused("/getaa?s=1", "Nowhere").code, "unknown_speaker")

    def test_everything_else_is_refused(self) -> None:
        """Other hosts, ports, schemes, user info and odd spellings never pass."""
        for url in (
            "http://127.0.0.4:1400/getaa",  # not followed
            "http://127.0.0.2:8080/api/v1/snapshot",  # a followed host, another port
            "https://127.0.0.2:1443/getaa",  # not proxied
            "http://user@127.0.0.2:1400/getaa",
            "http://127.0.0.2:1400@127.0.0.9:1400/getaa",
            "//127.0.0.9/getaa",
            "ftp://127.0.0.2:1400/getaa",
            "file:///etc/passwd",
            "http://localhost:1400/getaa",
        ):
            self.assertEqual(self.refused(url).status, 403, url)
        for url in ("", "http://127.0.0.2:1400/a b", "http://127.0.0.2:99999/", "x" * 5000):
            self.assertEqual(self.refused(url).code, "bad_url", url)

    def test_speaker_with_another_port_is_not_an_art_source(self) -> None:
        """A speaker known on a port other than 1400 is not fetched from."""
        state = followed("127.0.0.2", port=8080)
        with self.assertRaises(ArtRefused):
            art_url("http://127.0.0.2:8080/getaa", None, state)
        with self.assertRaises(ArtRefused):
            art_url("/getaa", "A", state)


class ArtCacheTests(SynchronousTestCase):
    """The cache's bounds."""

    def test_bounded_by_count_least_recently_used_first(self) -> None:
        """Past the entry limit the least recently used image goes."""
        cache = ArtCache(entries=2, size=1000)
        cache.put("a", Image.of("image/png", b"a"))
        cache.put("b", Image.of("image/png", b"b"))
        self.assertIsNotNone(cache.get("a"))
        cache.put("c", Image.of("image/png", b"c"))
        self.assertIsNone(cache.get("b"))
        self.assertIsNotNone(cache.get("a"))
        self.assertEqual(len(cache), 2)

    def test_bounded_by_bytes(self) -> None:
        """Past the byte limit the oldest go; an image larger than the cache is not kept."""
        cache = ArtCache(entries=10, size=10)
        cache.put("a", Image.of("image/png", b"x" * 6))
        cache.put("b", Image.of("image/png", b"y" * 6))
        self.assertEqual((len(cache), cache.bytes), (1, 6))
        self.assertIsNone(cache.get("a"))
        cache.put("c", Image.of("image/png", b"z" * 11))
        self.assertIsNone(cache.get("c"))
        cache.put("b", Image.of("image/png", b"w" * 2))
        self.assertEqual(cache.bytes, 2)


class BusyTests(SynchronousTestCase):
    """The proxy's bounds on fetches."""

    def test_documented_bounds(self) -> None:
        """The bounds are those docs/api.md states."""
        cache = ArtCache()
        self.assertEqual((cache._entries, cache._size), (256, 16 * 1024 * 1024))
        self.assertEqual(art.MAX_IMAGE, 2 * 1024 * 1024)
        self.assertEqual((art.FETCH_TIMEOUT, art.MAX_FETCHES, art.MAX_WAITING), (10.0, 4, 64))

    def test_too_many_waiting_is_busy_and_timeouts_free_them(self) -> None:
        """Past the running and waiting fetches a request is refused busy; when the speakers
        time out, every waiting request fails 504 and room is made again."""
        clock = Clock()
        hung: list[Deferred[Any]] = []

        class Hung:
            def request(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
                hung.append(Deferred())
                return hung[-1]

        proxy = ArtProxy(clock, agent=Hung())  # type: ignore[arg-type]
        pending = [proxy.get(f"http://127.0.0.2:1400/{n}") for n in range(68)]
        self.assertEqual(len(hung), 4)
        with self.assertRaises(ArtRefused) as caught:
            proxy.get("http://127.0.0.2:1400/more")
        self.assertEqual((caught.exception.status, caught.exception.code), (503, "busy"))
        for _ in range(20):
            clock.advance(art.FETCH_TIMEOUT)
        for waiting in pending:
            self.assertEqual(self.failureResultOf(waiting, ArtRefused).value.status, 504)
        self.assertEqual(len(hung), 68)
        proxy.get("http://127.0.0.2:1400/more").addErrback(lambda _: None)


class Recorder(Resource):
    """A decoy server: records every request it gets."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[bytes] = []

    def render(self, request: Request) -> bytes:
        self.requests.append(request.uri)
        request.setHeader(b"content-type", b"image/png")
        return PNG_MAGIC


class CountingAgent:
    """An agent that counts the requests it passes on."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.urls: list[bytes] = []

    def request(self, method: bytes, uri: bytes, headers: Any = None, body: Any = None) -> Any:
        self.urls.append(uri)
        return self.agent.request(method, uri, headers, body)


class ArtProxyTests(TestCase):
    """The proxy against a simulated speaker, through the real API site."""

    timeout = 30

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        base = free_loopback_base(count=2)
        self.sim = HouseholdService(reactor, SimulateConfig(speakers=1, base_address=base))
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.speaker = self.sim.household.speakers[0]
        self.state = HouseholdState()
        self.state.ensure(SpeakerRef(self.speaker.uid, self.speaker.name, self.speaker.address))
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.agent = Agent(reactor, pool=pool)
        self.http = HTTPClient(self.agent)
        self.decoy = Recorder()
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(self.decoy))
        self.addCleanup(port.stopListening)
        self.decoy_url = f"http://127.0.0.1:{port.getHost().port}/x.png"
        self.art = f"http://{self.speaker.address}:1400/getaa?s=1&u=x-file-cifs%3A%2F%2Fa.flac"

    async def api(self, **settings: Any) -> str:
        _, host, port = await start_api(self, Hub(reactor), self.state, **settings)
        return f"http://{host}:{port}/api/v1"

    async def get(
        self, base: str, url: str, speaker: str | None = None, headers: Any = None
    ) -> tuple[int, Any, Any]:
        query = f"url={quote(url, safe='')}" + (f"&speaker={quote(speaker)}" if speaker else "")
        response = await self.http.get(f"{base}/art?{query}", headers=headers)
        content = await response.content()
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        parsed = json.loads(content) if kind.startswith(b"application/json") else content
        return response.code, parsed, response.headers

    async def test_speaker_art_is_served_and_cached(self) -> None:
        """The speaker's image comes back as is; once cached it is served while the speaker
        is unreachable."""
        direct = await (await self.http.get(self.art)).content()
        self.assertTrue(direct.startswith(PNG_MAGIC))
        base = await self.api()
        code, body, headers = await self.get(base, self.art)
        self.assertEqual((code, body), (200, direct))
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"image/png"])
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.assertIn(b"sandbox", headers.getRawHeaders(b"content-security-policy")[0])
        await self.speaker.go_offline("refuse")
        code, body, _ = await self.get(base, self.art)
        self.assertEqual((code, body), (200, direct))
        etag = headers.getRawHeaders(b"etag")[0].decode()
        code, _, _ = await self.get(base, self.art, headers={"If-None-Match": etag})
        self.assertEqual(code, 304)

    async def test_image_headers(self) -> None:
        """The image is sent cacheable by the browser only, for a day, with an ETag, no
        sniffing and a sandboxing policy."""
        base = await self.api()
        code, _, headers = await self.get(base, self.art)
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders(b"cache-control"), [b"private, max-age=86400"])
        self.assertEqual(len(headers.getRawHeaders(b"etag")), 1)
        self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
        self.assertEqual(
            headers.getRawHeaders(b"content-security-policy"), [b"default-src 'none'; sandbox"]
        )

    async def test_redirects_are_not_followed(self) -> None:
        """A speaker answering the art request with a redirect gives 502 speaker_error; the
        place it points to is never asked."""
        self.speaker.art_redirect = self.decoy_url
        base = await self.api()
        code, body, _ = await self.get(base, self.art)
        self.assertEqual(self.decoy.requests, [])
        self.assertEqual(code, 502)
        self.assertEqual(body["error"]["code"], "speaker_error")

    async def test_relative_art_with_the_speaker(self) -> None:
        """A relative URL is fetched from the speaker named by ``speaker``."""
        base = await self.api()
        code, body, _ = await self.get(base, "/getaa?s=1&u=abc", speaker=self.speaker.name)
        self.assertEqual(code, 200)
        self.assertTrue(body.startswith(PNG_MAGIC))

    async def test_not_an_open_proxy(self) -> None:
        """URLs that are not a followed speaker's art are refused and never fetched."""
        base = await self.api()
        api_port = base.split(":")[2].split("/")[0]
        for url in (
            self.decoy_url,
            f"http://{self.speaker.address}:{api_port}/api/v1/snapshot",
            f"http://x@{self.speaker.address}:1400/getaa",
            f"http://{self.speaker.address}:1400@127.0.0.1:{self.decoy_url.split(':')[2]}",
        ):
            code, body, _ = await self.get(base, url)
            self.assertIn(code, (400, 403), url)
            self.assertIn(body["error"]["code"], ("not_a_speaker", "bad_url"), url)
        self.assertEqual(self.decoy.requests, [])

    async def test_not_an_image_is_refused(self) -> None:
        """A speaker page that is not an image gives 502 and is not passed on."""
        base = await self.api()
        code, body, _ = await self.get(
            base, f"http://{self.speaker.address}:1400/xml/device_description.xml"
        )
        self.assertEqual((code, body["error"]["code"]), (502, "speaker_error"))

    async def test_raster_images_only(self) -> None:
        """The raster types docs/openapi.yaml lists (JPEG, PNG, GIF, WebP, AVIF, BMP) are
        passed on with their type; an SVG (a script carrier) or HTML image is 502."""
        base = await self.api()
        for kind in ("jpeg", "png", "gif", "webp", "avif", "bmp", "svg+xml", "html"):
            self.speaker.art_type = f"image/{kind}" if kind != "html" else "text/html"
            url = self.art.replace("a.flac", f"{kind}.flac")
            code, body, headers = await self.get(base, url)
            if kind in ("svg+xml", "html"):
                self.assertEqual((code, body["error"]["code"]), (502, "speaker_error"), kind)
                continue
            self.assertEqual(code, 200, kind)
            self.assertEqual(headers.getRawHeaders(b"content-type"), [f"image/{kind}".encode()])

    async def test_same_tokens_as_the_api(self) -> None:
        """Without a token art is refused (401); a read token works, in the query too."""
        base = await self.api(tokens=(READER, ADMIN))
        code, _, _ = await self.get(base, self.art)
        self.assertEqual(code, 401)
        code, _, _ = await self.get(base, self.art, headers={"Authorization": "Bearer read-secret"})
        self.assertEqual(code, 200)
        response = await self.http.get(
            f"{base}/art?url={quote(self.art, safe='')}&access_token=read-secret"
        )
        await response.content()
        self.assertEqual(response.code, 200)

    async def test_concurrent_requests_share_one_fetch(self) -> None:
        """Requests for an image being fetched wait for that fetch instead of another."""
        counting = CountingAgent(self.agent)
        proxy = ArtProxy(reactor, agent=counting)  # type: ignore[arg-type]
        url = art_url(self.art, None, self.state)
        first, second = proxy.get(url), proxy.get(url)
        images = [await first, await second]
        self.assertEqual(images[0], images[1])
        self.assertEqual(len(counting.urls), 1)
        await proxy.get(url)
        self.assertEqual(len(counting.urls), 1)

    async def test_hung_speaker_times_out(self) -> None:
        """A speaker that never answers gives a 504 timeout."""
        self.patch(art, "FETCH_TIMEOUT", 0.3)
        await self.speaker.go_offline("hang")
        proxy = ArtProxy(reactor, agent=self.agent)
        with self.assertRaises(ArtRefused) as caught:
            await proxy.get(art_url(self.art, None, self.state))
        self.assertEqual((caught.exception.status, caught.exception.code), (504, "timeout"))

    async def test_hostile_speaker_art_is_bounded(self) -> None:
        """A speaker whose art is over 2 MiB, drips past the fetch timeout, comes after a
        garbage status line or after 200 KB of headers, or breaks off halfway (its connection
        closed) gives a 502 or 504 naming what was
        wrong, nothing of it cached; the same image is served once the speaker answers well."""
        self.patch(art, "FETCH_TIMEOUT", 1.0)
        base = await self.api()
        faults = self.speaker.soap_faults
        self.addCleanup(faults.reset)
        for fault, status, words in (
            ({"padding": 3 * 1024 * 1024}, 502, "the image is too large"),
            ({"padding": 1024 * 1024, "drip": 0.2}, 504, "did not answer in time"),
            ({"status_line": "garbage"}, 502, "not an HTTP answer: 'garbage'"),
            ({"header_bytes": 200_000}, 502, "over 65536 bytes"),
            ({"cut": True}, 502, "the speaker broke off the image"),
        ):
            faults.only(art=True, **fault)
            code, body, _ = await self.get(base, self.art)
            self.assertEqual(code, status, body)
            self.assertIn(words, body["error"]["message"])
        faults.reset()
        code, body, _ = await self.get(base, self.art)
        self.assertEqual(code, 200)
        self.assertTrue(body.startswith(PNG_MAGIC))
