# -*- test-case-name: tests.household.test_socohttp -*-
"""SoCo's HTTP to the speakers, bounded: answer size, whole-answer deadline, no DTD.

Every control call and state read runs SoCo's blocking code in the pool (``sonosd.blocking``),
and SoCo reads each answer with ``requests``: the whole body, however large, then parses it
with the standard library's XML parser, which expands the entities a DTD declares (up to 100
times the input past 8 MiB). A speaker, or anything answering at its address, could so make a
pool thread read without end or build hundreds of megabytes. :class:`BoundedRequests` stands
in for the ``requests`` module inside SoCo's modules that talk to speakers
(:func:`install`); each request

- streams the answer and stops at ``max_bytes`` (``AnswerRefused``, over ``MAX_ANSWER``); a
  larger announced ``Content-Length`` is refused before reading;
- must be complete within ``deadline`` seconds, however steadily it drips (a watchdog shuts
  the socket at the deadline; SoCo's own timeout only bounds each read);
- is refused when its body declares a DTD or an entity (``sonosd.gena.xmlguard``), at the top
  or escaped up to ``NESTING`` levels down (out-arguments that are documents themselves:
  ``TrackMetaData``, ``ZoneGroupState``, DIDL inside a Browse result).

Anything else of ``requests`` (its exceptions, sessions) is the real module's.

What each request costs matters: the daemon reads a playing group's position with SoCo
after every track change. ``requests.request`` builds a ``Session`` per call and looks
for proxies and a ``.netrc`` in the environment each time (a third of a call's CPU), and a
``threading.Timer`` per request starts a thread. Here each pool thread keeps one session
that ignores the environment (speakers are on the local network: no proxy, no ``.netrc``
credentials are sent to them), asks the speaker to close the connection after the answer
(one connection per request, as SoCo's own calls make), and one watchdog thread serves
every deadline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import threading
import time
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Final

import requests
from twisted.logger import Logger

from sonosd.gena.xmlguard import NESTING, UnsafeXml, check_answer

log = Logger()

MAX_ANSWER: Final = 4 * 1024 * 1024
"""The largest answer (bytes) a speaker may send to a SoCo call; a GetZoneGroupState of 200
speakers is about 150 KB, a Browse of 100 queue items about 200 KB."""

CHUNK: Final = 16_384

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
        headers = kwargs.get("headers")
        kwargs["headers"] = {**headers, **CLOSE} if headers else CLOSE
        started = time.monotonic()
        response = _session().request(method, url, **kwargs)
        alarm = None
        if self.deadline is not None:
            alarm = WATCHDOG.arm(started + self.deadline, response)
        try:
            body = self._read(response, url)
        except (requests.exceptions.RequestException, OSError) as error:
            if self.deadline is not None and time.monotonic() - started >= self.deadline:
                raise AnswerRefused(
                    f"the answer from {url} took more than {self.deadline:g} s"
                ) from error
            raise
        finally:
            if alarm is not None:
                WATCHDOG.disarm(alarm)
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
            check_answer(body, NESTING)
        except UnsafeXml as unsafe:
            raise AnswerRefused(f"the answer from {url} is refused: {unsafe}") from None

    def _read(self, response: requests.Response, url: str) -> bytes:
        announced = response.headers.get("Content-Length", "").strip()
        if announced.isascii() and announced.isdigit():
            # Refused before reading: at a drip, reading to the bound could take hours.
            self.check_size(int(announced) if len(announced) <= 19 else self.max_bytes + 1, url)
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            self.check_size(size, url)
            chunks.append(chunk)
        return b"".join(chunks)


#: Sent with every request: one connection per request, as SoCo's own calls make.
CLOSE: Final = {"Connection": "close"}

_local = threading.local()


def _session() -> requests.Session:
    """This thread's session (made on first use) that ignores proxies and ``.netrc`` and
    keeps no cookies."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.trust_env = False
        # As requests.request, which starts every call with an empty jar: nothing a speaker
        # (or whatever answers at its address) sets is sent on the next call.
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        _local.session = session
    return session


class Watchdog:
    """One thread that shuts the sockets of answers past their deadline (see ``_shut``)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int]] = []
        self._live: dict[int, requests.Response] = {}
        self._numbers = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, deadline: float, response: requests.Response) -> int:
        """Shut ``response``'s socket at ``deadline`` (``time.monotonic()``) unless disarmed
        before; returns the number to disarm it with."""
        with self._wake:
            number = next(self._numbers)
            self._live[number] = response
            first = not self._due or deadline < self._due[0][0]
            heapq.heappush(self._due, (deadline, number))
            if len(self._due) > 2 * len(self._live) + 64:
                # Disarmed deadlines far ahead: drop them rather than keep them until due.
                self._due = [item for item in self._due if item[1] in self._live]
                heapq.heapify(self._due)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="sonosd-soco-watchdog", daemon=True
                )
                self._thread.start()
            elif first:
                self._wake.notify()
        return number

    def disarm(self, number: int) -> None:
        """The exchange ended in time."""
        with self._wake:
            self._live.pop(number, None)

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and self._due[0][1] not in self._live:
                    heapq.heappop(self._due)  # disarmed
                if not self._due:
                    self._wake.wait()
                    continue
                deadline, number = self._due[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._due)
                response = self._live.pop(number)
            try:
                _shut(response)
            except Exception:  # the watchdog serves every call: it must outlive any answer
                log.failure("the SoCo watchdog could not shut an answer")


WATCHDOG: Final = Watchdog()


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


class Pretty:
    """SoCo's ``prettify(text)`` done only when a debug line that shows it is written.

    ``soco.services`` pretty-prints every request body for a debug line whether or not debug
    lines are written (a DOM parse of the envelope per call); as a lazy argument of that
    line, the work is done by ``str()`` when the line is formatted.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        from soco.utils import prettify

        return str(prettify(self.text))


def install(bounded: BoundedRequests) -> None:
    """Make SoCo's speaker-facing modules use ``bounded`` for their HTTP, and pretty-print
    their requests only for debug lines that are written (process-wide: the daemon calls
    this once, before any SoCo call)."""
    import importlib

    for name in SOCO_MODULES:
        module = importlib.import_module(name)
        module.requests = bounded  # type: ignore[attr-defined]
    services = importlib.import_module("soco.services")
    services.prettify = Pretty  # type: ignore[attr-defined]
