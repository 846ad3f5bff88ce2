# -*- test-case-name: tests.api.test_dashboard,tests.api.test_dashboard_browser -*-
"""The web dashboard: static files from the package, served at ``/`` and ``/dashboard/``.

The page is plain HTML, CSS and JavaScript modules kept in ``sonosd/api/static/`` (package
data): no build step, nothing from any other host. Every file is read once, when the
resource is built, and answered from memory with an ``ETag`` (a browser revalidates with
``If-None-Match`` and gets ``304``). Every answer carries a strict ``Content-Security-Policy``
(scripts, styles, images and connections from the daemon itself only; no inline script or
style; no framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``.

The same page answers at ``/`` and at ``/dashboard/``; a ``<base>`` element points its
relative URLs at ``/dashboard/`` in both cases (relative, so a reverse proxy may mount the
daemon under any prefix). The files hold nothing secret: the data behind them is fetched
from ``/api/v1`` with the same tokens as any other client.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import attrs
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request

from sonosd.api.responses import not_modified

#: The policy of every dashboard answer (see the module docstring).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
}

#: Where the index's ``<base href>`` goes, per path it is served at.
_BASE_MARK = b'<base href="./">'
_BASE_AT_ROOT = b'<base href="dashboard/">'

INDEX = "index.html"


@attrs.frozen
class StaticFile:
    """One file of the dashboard, held in memory."""

    body: bytes
    content_type: bytes
    etag: bytes

    @classmethod
    def of(cls, name: str, body: bytes) -> StaticFile:
        """The file ``name`` (its type from its extension) with ``body``."""
        suffix = name[name.rfind(".") :]
        digest = hashlib.sha256(body).hexdigest()[:20]
        return cls(body, _TYPES[suffix], b'"' + digest.encode("ascii") + b'"')


def load_files(package: str = "sonosd.api", folder: str = "static") -> dict[str, StaticFile]:
    """Every file of the dashboard folder whose type is known, by name."""
    root = resources.files(package).joinpath(folder)
    files: dict[str, StaticFile] = {}
    for entry in root.iterdir():
        name = entry.name
        if entry.is_file() and name[name.rfind(".") :] in _TYPES:
            files[name] = StaticFile.of(name, entry.read_bytes())
    return files


def security_headers(request: Request) -> None:
    """The headers every dashboard answer carries (the policy and its companions)."""
    request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY.encode("ascii"))
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"x-frame-options", b"DENY")
    request.setHeader(b"cross-origin-opener-policy", b"same-origin")


class FileResource(Resource):
    """Answers GET and HEAD with one in-memory file; revalidation with ``If-None-Match``."""

    isLeaf = True

    def __init__(self, file: StaticFile) -> None:
        super().__init__()
        self._file = file

    def render(self, request: Request) -> bytes:
        """The file, ``304`` when the browser has it, ``405`` for other methods."""
        security_headers(request)
        if request.method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"method not allowed\n"
        request.setHeader(b"etag", self._file.etag)
        # Revalidate every time: an upgraded daemon serves the new page at once.
        request.setHeader(b"cache-control", b"no-cache")
        if not_modified(request, self._file.etag):
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-type", self._file.content_type)
        return self._file.body


class PlainAnswer(Resource):
    """One short plain-text answer, whatever the method (a 404, the folder's redirect)."""

    isLeaf = True

    def __init__(self, status: int, text: bytes, location: bytes | None = None) -> None:
        super().__init__()
        self._status = status
        self._text = text
        self._location = location

    def render(self, request: Request) -> bytes:
        """The status, the text and the policy headers."""
        security_headers(request)
        request.setResponseCode(self._status)
        if self._location is not None:
            request.setHeader(b"location", self._location)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return self._text


def not_found_page() -> PlainAnswer:
    """A 404 for a path of the dashboard that holds nothing."""
    return PlainAnswer(404, b"not found\n")


def folder_redirect() -> PlainAnswer:
    """``/dashboard`` → ``dashboard/`` (relative, for reverse proxies)."""
    return PlainAnswer(301, b"see dashboard/\n", b"dashboard/")


class DashboardFolder(Resource):
    """``/dashboard/``: the index for the folder itself, each file by its name."""

    def __init__(self, files: dict[str, StaticFile]) -> None:
        super().__init__()
        self._files = {name.encode("utf-8"): FileResource(file) for name, file in files.items()}
        self._index = self._files[INDEX.encode()]

    def getChild(self, path: bytes, request: Request) -> IResource:
        """A file; the empty segment (the folder) is the index; anything deeper is 404."""
        if request.postpath:
            return not_found_page()
        if not path:
            return self._index
        return self._files.get(path) or not_found_page()

    def render(self, request: Request) -> bytes:
        """Unreachable through ``getChild`` (a folder request goes to the index)."""
        return self._index.render(request)


class SiteRoot(Resource):
    """The site's root: the dashboard at ``/`` and ``/dashboard/``, other children as put.

    @param files: The dashboard's files (``load_files()`` by default).
    """

    def __init__(self, files: dict[str, StaticFile] | None = None) -> None:
        super().__init__()
        files = load_files() if files is None else files
        index = files[INDEX]
        at_root = StaticFile.of(INDEX, index.body.replace(_BASE_MARK, _BASE_AT_ROOT, 1))
        self._root_index = FileResource(at_root)
        self._folder = DashboardFolder(files)

    def getChild(self, path: bytes, request: Request) -> IResource:
        """``/`` is the page; ``/dashboard`` the folder; anything else not put here is 404."""
        if not path and not request.postpath:
            return self._root_index
        if path == b"dashboard":
            return self._folder if request.postpath else folder_redirect()
        return not_found_page()

    def render(self, request: Request) -> bytes:
        """The page (reached when the request path is empty)."""
        return self._root_index.render(request)
