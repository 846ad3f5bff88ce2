"""Tests for sonosd.api.dashboard: the page's files, their headers, and what they may load.

The page itself is driven in a real browser by ``tests/test_dashboard_browser.py``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from sonosd.api.dashboard import CONTENT_SECURITY_POLICY, load_files
from sonosd.delivery.hub import Hub
from tests.api_helpers import READER, household, start_api
from tests.paths import ROOT

STATIC = resources.files("sonosd.api").joinpath("static")

#: docs/dashboard.md's "How it is built", up to the tests.
BUILT = (ROOT / "docs" / "dashboard.md").read_text(encoding="utf-8")
BUILT = BUILT[BUILT.index("## How it is built") : BUILT.index("## Tests")]


def documented_headers() -> dict[bytes, bytes]:
    """The headers docs/dashboard.md says every file is served with (its ``text`` block, a
    line indented by two spaces continuing the header above it)."""
    block = BUILT[BUILT.index("```text\n") + 8 :]
    block = block[: block.index("```")]
    headers: dict[bytes, bytes] = {}
    name = b""
    for line in block.splitlines():
        if line.startswith("  "):
            headers[name] += b" " + line.strip().encode()
        else:
            key, _, value = line.partition(": ")
            name = key.lower().encode()
            headers[name] = value.strip().encode()
    return headers


class _Tags(HTMLParser):
    """Collects every start tag with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


class FilesTests(SynchronousTestCase):
    """The shipped files hold nothing the policy would refuse and nothing from elsewhere."""

    def test_index_loads_only_local_files_and_no_inline_code(self) -> None:
        """The page has no inline script or style and loads only files that are shipped."""
        files = load_files()
        tags = _tags(files["index.html"].body.decode())
        for tag, attributes in tags:
            self.assertNotIn("style", attributes, tag)
            self.assertFalse([name for name in attributes if name.startswith("on")], tag)
            if tag == "script":
                self.assertIn(attributes.get("src"), files)
                self.assertEqual(attributes.get("type"), "module")
            for name in ("src", "href"):
                value = attributes.get(name)
                if value is not None and tag in ("script", "link", "img"):
                    self.assertIn(value, files, (tag, value))
        self.assertNotIn("<style", files["index.html"].body.decode())

    def test_modules_import_only_shipped_modules(self) -> None:
        """Every ``import`` of every module names a module of the folder."""
        files = load_files()
        modules = [name for name in files if name.endswith(".js")]
        self.assertIn("main.js", modules)
        for name in modules:
            text = files[name].body.decode()
            for target in re.findall(r"""from\s+["']([^"']+)["']""", text):
                self.assertTrue(target.startswith("./"), (name, target))
                self.assertIn(target[2:], files, (name, target))

    def test_nothing_points_at_another_host(self) -> None:
        """No file refers to a URL on another host (no CDN, no fonts, no analytics)."""
        for entry in STATIC.iterdir():
            text = entry.read_text(encoding="utf-8")
            urls = re.findall(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.IGNORECASE)
            self.assertEqual([url for url in urls if "w3.org" not in url], [], entry.name)

    def test_the_documented_files_are_the_shipped_ones(self) -> None:
        """docs/dashboard.md names every file of the page, and only those."""
        named = set(re.findall(r"`([a-z]+\.(?:html|js|css|svg))`", BUILT))
        self.assertEqual(named, set(load_files()))


class ServingTests(TestCase):
    """The files through the real API site."""

    timeout = 20

    def setUp(self) -> None:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPClient(Agent(reactor, pool=pool))

    async def start(self, **settings: Any) -> str:
        _, host, port = await start_api(self, Hub(reactor), household(), **settings)
        return f"http://{host}:{port}"

    async def fetch(self, url: str, method: str = "GET", headers: Any = None) -> Any:
        response = await self.http.request(method, url, headers=headers, allow_redirects=False)
        response.body = await response.content()
        return response

    async def test_page_at_root_and_dashboard(self) -> None:
        """``/`` and ``/dashboard/`` serve the page, each with its relative base, the policy and
        its companion headers; no token is needed for the page itself."""
        site = await self.start(tokens=(READER,))
        bases = (("/", b'<base href="dashboard/">'), ("/dashboard/", b'<base href="./">'))
        for path, base in bases:
            response = await self.fetch(site + path)
            self.assertEqual(response.code, 200, path)
            self.assertIn(base, response.body)
            headers = response.headers
            self.assertEqual(headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"])
            self.assertEqual(
                headers.getRawHeaders(b"content-security-policy"),
                [CONTENT_SECURITY_POLICY.encode()],
            )
            self.assertEqual(headers.getRawHeaders(b"x-content-type-options"), [b"nosniff"])
            self.assertEqual(headers.getRawHeaders(b"referrer-policy"), [b"no-referrer"])
            self.assertEqual(headers.getRawHeaders(b"x-frame-options"), [b"DENY"])
        self.assertIn("script-src 'self'", CONTENT_SECURITY_POLICY)
        self.assertNotIn("unsafe", CONTENT_SECURITY_POLICY)
        self.assertIn("frame-ancestors 'none'", CONTENT_SECURITY_POLICY)

    async def test_the_documented_headers_exactly(self) -> None:
        """Every answer of the page (a file, a 404, the folder's redirect) carries the headers
        docs/dashboard.md lists, with their values, and no other header of that kind."""
        site = await self.start()
        documented = documented_headers()
        self.assertIn(b"x-frame-options", documented)
        told = {b"content-type", b"content-length", b"etag", b"cache-control", b"location"}
        for path in ("/", "/dashboard/main.js", "/dashboard/nothing.js", "/dashboard"):
            response = await self.fetch(site + path)
            served = {
                name.lower(): b", ".join(values)
                for name, values in response.headers.getAllRawHeaders()
                if name.lower() not in told | {b"date", b"server"}
                # treq's decoding agent leaves an empty one where the answer has none.
                and not (name.lower() == b"content-encoding" and values == [b""])
            }
            self.assertEqual(served, documented, path)

    async def test_files_types_and_revalidation(self) -> None:
        """Each file has its type and an ETag; ``If-None-Match`` with it gives 304."""
        site = await self.start()
        for name, kind in (
            ("main.js", b"text/javascript; charset=utf-8"),
            ("style.css", b"text/css; charset=utf-8"),
            ("icon.svg", b"image/svg+xml"),
        ):
            response = await self.fetch(f"{site}/dashboard/{name}")
            self.assertEqual(response.code, 200, name)
            self.assertEqual(response.headers.getRawHeaders(b"content-type"), [kind])
            self.assertEqual(response.body, STATIC.joinpath(name).read_bytes())
            etag = response.headers.getRawHeaders(b"etag")[0]
            again = await self.fetch(
                f"{site}/dashboard/{name}", headers={b"If-None-Match": [b"W/" + etag]}
            )
            self.assertEqual((again.code, again.body), (304, b""))

    async def test_other_paths_and_methods(self) -> None:
        """``/dashboard`` redirects to the folder; unknown paths are 404; POST is 405."""
        site = await self.start()
        redirect = await self.fetch(site + "/dashboard")
        self.assertEqual(redirect.code, 301)
        self.assertEqual(redirect.headers.getRawHeaders(b"location"), [b"dashboard/"])
        for path in ("/nothing", "/dashboard/nothing.js", "/dashboard/a/main.js", "/main.js"):
            response = await self.fetch(site + path)
            self.assertEqual(response.code, 404, path)
            self.assertTrue(response.headers.hasHeader(b"content-security-policy"))
        posted = await self.fetch(site + "/dashboard/", method="POST")
        self.assertEqual(posted.code, 405)
        head = await self.fetch(site + "/", method="HEAD")
        self.assertEqual((head.code, head.body), (200, b""))

    async def test_api_stays_beside_the_page(self) -> None:
        """The API answers under ``/api/v1`` as before."""
        site = await self.start()
        response = await self.fetch(site + "/api/v1/health")
        self.assertEqual(response.code, 200)
