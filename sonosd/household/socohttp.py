# -*- test-case-name: tests.household.test_socohttp -*-
"""SoCo's HTTP to the speakers, bounded: answer size, whole-answer deadline, no DTD.

Every control call and state read runs SoCo's blocking code in the pool (``sonosd.blocking``),
and SoCo reads each answer with ``requests``: the whole body, however large, then parses it
with the standard library's XML parser, which expands the entities a DTD declares (up to 100
times the input past 8 MiB). A speaker, or anything answering at its address, could so make a
pool thread read without end or build hundreds of megabytes. :class:`BoundedRequests` stands
in for the ``requests`` module inside SoCo's modules that talk to speakers
(:func:`install`); each request

- streams the answer and stops at ``max_bytes`` (``AnswerRefused``, over ``MAX_ANSWER``);
- must be complete within ``deadline`` seconds, however steadily it drips (a watchdog shuts
  the socket at the deadline; SoCo's own timeout only bounds each read);
- is refused when its body declares a DTD or an entity (``sonosd.gena.xmlguard``), at the top
  or escaped up to ``NESTING`` levels down (out-arguments that are documents themselves:
  ``TrackMetaData``, ``ZoneGroupState``, DIDL inside a Browse result).

Anything else of ``requests`` (its exceptions, sessions) is the real module's.
"""

from __future__ import annotations

import contextlib
import html
import socket
import threading
import time
from typing import Any, Final

import requests
from twisted.logger import Logger

from sonosd.gena.xmlguard import UnsafeXml, check_document, check_text

log = Logger()

MAX_ANSWER: Final = 4 * 1024 * 1024
"""The largest answer (bytes) a speaker may send to a SoCo call; a GetZoneGroupState of 200
speakers is about 150 KB, a Browse of 100 queue items about 200 KB."""

CHUNK: Final = 16_384

NESTING: Final = 3
"""How many levels of escaped documents inside an answer are checked for a DTD."""

#: SoCo's modules whose ``requests`` calls reach speakers.
SOCO_MODULES: Final = ("soco.services", "soco.core")


class AnswerRefused(requests.exceptions.RequestException):
    """A speaker's answer broke a bound (size, deadline, DTD); ``str()`` says which."""


class BoundedRequests:
    """The ``requests`` API SoCo uses (``get``, ``post``, ``request``), bounded.

    @param max_bytes: The largest answer accepted.
    @param deadline: Seconds a whole exchange may take (``None``: SoCo's own timeouts only).
    """

    def __init__(self, max_bytes: int = MAX_ANSWER, deadline: float | None = None) -> None:
        self.max_bytes = max_bytes
        self.deadline = deadline

    def __getattr__(self, name: str) -> Any:
        # exceptions, Session, codes...: the real module's.
        return getattr(requests, name)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        """``requests.get``, bounded."""
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        """``requests.post``, bounded."""
        return self.request("POST", url, **kwargs)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One exchange; the answer is read whole (within the bounds) before it is returned.

        @raise AnswerRefused: Over ``max_bytes``, past ``deadline``, or with a DTD.
        """
        kwargs["stream"] = True
        started = time.monotonic()
        response = requests.request(method, url, **kwargs)
        watchdog = None
        if self.deadline is not None:
            remaining = max(0.0, self.deadline - (time.monotonic() - started))
            watchdog = threading.Timer(remaining, _shut, (response,))
            watchdog.daemon = True
            watchdog.start()
        try:
            body = self._read(response, url)
        except (requests.exceptions.RequestException, OSError) as error:
            if self.deadline is not None and time.monotonic() - started >= self.deadline:
                raise AnswerRefused(
                    f"the answer from {url} took more than {self.deadline:g} s"
                ) from error
            raise
        finally:
            if watchdog is not None:
                watchdog.cancel()
            response.close()
        self.check(body, url)
        response._content = body
        response._content_consumed = True
        return response

    def check_size(self, size: int, url: str) -> None:
        """Refuse an answer that has reached ``size`` bytes if that is over ``max_bytes``."""
        if size > self.max_bytes:
            raise AnswerRefused(f"the answer from {url} is over {self.max_bytes} bytes")

    def check(self, body: bytes, url: str) -> None:
        """Refuse ``body`` if it, or a document escaped in it, declares a DTD or an entity.

        @raise AnswerRefused: Naming the rule.
        """
        try:
            check_document(body)
            text = body.decode("utf-8", "replace")
            for _ in range(NESTING):
                # Out-arguments that are documents of their own (escaped once; DIDL metadata
                # inside them twice): none may declare a DTD either.
                if "&" not in text:
                    break
                text = html.unescape(text)
                check_text(text)
        except UnsafeXml as unsafe:
            raise AnswerRefused(f"the answer from {url} is refused: {unsafe}") from None

    def _read(self, response: requests.Response, url: str) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            self.check_size(size, url)
            chunks.append(chunk)
        return b"".join(chunks)


def _shut(response: requests.Response) -> None:
    """The deadline passed: shut the answer's socket so that the blocked read returns."""
    sock = _socket_of(response)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _socket_of(response: requests.Response) -> socket.socket | None:
    """The socket under a streamed ``requests`` answer (urllib3's connection), if any."""
    raw = getattr(response, "raw", None)
    connection = getattr(raw, "_connection", None) or getattr(raw, "connection", None)
    sock = getattr(connection, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None)
    sock = getattr(fp, "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def install(bounded: BoundedRequests) -> None:
    """Make SoCo's speaker-facing modules use ``bounded`` for their HTTP (process-wide: the
    daemon calls this once, before any SoCo call)."""
    import importlib

    for name in SOCO_MODULES:
        module = importlib.import_module(name)
        module.requests = bounded  # type: ignore[attr-defined]
