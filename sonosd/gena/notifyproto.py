# -*- test-case-name: tests.gena.test_notifyproto -*-
"""The NOTIFY listener's wire protocol: a lean HTTP/1.1 server for one request per connection.

GENA NOTIFY is a tiny, fixed use of HTTP: a speaker opens a connection, sends one ``NOTIFY``
with a handful of known headers and a ``Content-Length`` body, reads the answer and closes
(``CONNECTION: close``; sonos-protocol.md §3.4). twisted.web's general machinery (a ``Request``
and header objects per request, resource traversal, access-log hooks, a timeout reset on every
read) cost about two thirds of the listener's CPU per NOTIFY (issue 7). This module serves that
exchange directly on a ``twisted.internet.protocol.Protocol``:

- :func:`find_head_end` and :func:`parse_head` read the request line and headers from the
  buffered bytes (names case-insensitive, LF-only line ends accepted), and
  :class:`ChunkedDecoder` a chunked body (rare: old firmware and other UPnP stacks). They are
  pure and raise :class:`BadRequest` with the status to answer.
- :class:`NotifyProtocol` enforces the limits (``MAX_HEAD`` for the request line and headers,
  ``max_body`` for the body: 413 as soon as a declared length or chunk size goes over, without
  buffering it), hands the complete request to an :class:`INotifyHandler` as a
  :class:`NotifyRequest`, writes one pre-built answer and closes the connection.
- :class:`NotifyServerFactory` closes idle connections, and connections whose request is not
  complete within ``request_timeout`` of connecting (a client dripping a byte every few
  seconds is not idle, but it is too slow), with one periodic sweep for all of them (no timer
  per connection); and it refuses a connection at once when ``max_per_host`` connections from
  the same address are open (a speaker sends one NOTIFY at a time per subscription).

One request per connection: every answer says ``Connection: close`` and the connection is closed
once it is written; bytes after the first request (pipelining) are ignored. Keep-alive clients
simply reconnect, as speakers always do.

The same port serves the clips the daemon makes for announcements: with a ``media`` lookup
(``sonosd.gena.media.MediaStore.lookup``), ``GET`` and ``HEAD`` of a clip's path answer 200
with the clip (``HEAD``: its headers), any other path 404; without one they are 405 like any
method but ``NOTIFY``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Final
from typing import Protocol as TypingProtocol

import attrs
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

log = Logger()

MAX_HEAD: Final = 16_384
"""The longest request line plus headers accepted (bytes); beyond, 431."""

MAX_HEADERS: Final = 100
"""The most header lines accepted in one request; beyond, 431."""

MAX_CHUNK_LINE: Final = 1_024
"""The longest chunk-size or trailer line of a chunked body (bytes); beyond, 400."""

DISCARD_FACTOR: Final = 16
"""The body of a refused request is read and dropped up to this many times ``max_body`` bytes
(so that the client gets to read the answer), then the connection is aborted."""

IDLE_SWEEPS: Final = 4
"""Sweeps per ``idle_timeout`` (or ``request_timeout``, when shorter): a connection silent
for ``idle_timeout`` is closed after ``idle_timeout`` to 1.25 times ``idle_timeout``."""

REQUEST_TIMEOUT: Final = 15.0
"""Seconds from connecting by which a whole request must have arrived (default)."""

MAX_PER_HOST: Final = 64
"""The most connections one address may have open at once (default)."""

_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEX: Final = re.compile(rb"[0-9A-Fa-f]{1,16}\Z")
_FIELD: Final = re.compile(r"^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):([^\n]*)", re.MULTILINE)
"""One well-formed header line; a head whose every line matches takes the fast path."""


def _response(code: int) -> bytes:
    extra = b"Allow: NOTIFY\r\n" if code == 405 else b""
    reason = HTTPStatus(code).phrase.encode("ascii")
    return b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n%sConnection: close\r\n\r\n" % (
        code,
        reason,
        extra,
    )


RESPONSES: Final[dict[int, bytes]] = {
    code: _response(code) for code in (200, 400, 403, 404, 405, 412, 413, 431, 500, 501)
}
"""The whole answer for each status the listener gives: no body, then the connection closes."""

_CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"


class BadRequest(ValueError):
    """A request the protocol refuses before it reaches the handler.

    @ivar status: The HTTP status to answer (400, 413, 431 or 501).
    @ivar reason: What is wrong, for the log.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.status = status
        self.reason = reason


# Mutable for speed (one per request; a frozen attrs class costs 5x to build): nothing
# assigns to it.
@attrs.define
class RequestHead:
    """The request line and headers of one request.

    @ivar method: The method as sent (case matters: ``NOTIFY``).
    @ivar target: The request target (any path; old firmware echoed paths with spaces).
    @ivar headers: Names in lower case; the first value of each, stripped (``Transfer-Encoding``
        values joined with ``", "``).
    @ivar length: The body length from ``Content-Length`` (0 when absent), ``None`` when the
        body is chunked.
    """

    method: str
    target: str
    headers: dict[str, str]
    length: int | None


def find_head_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the request head in ``buffer`` ends: ``(end of head, start of body)``, or ``None``.

    The head ends at the first empty line, ``CRLF CRLF`` or (leniently) ``LF LF`` or
    ``LF CRLF``.
    """
    crlf = buffer.find(b"\n\r\n")
    lf = buffer.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(buffer))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return (crlf - 1 if buffer[crlf - 1 : crlf] == b"\r" else crlf), crlf + 3
    return None


def parse_head(head: bytes) -> RequestHead:
    """Parse a request line and its header lines (without the empty line that ends them).

    @raise BadRequest: 400 for a malformed request line, header line or ``Content-Length``
        (or two different ones), 431 for too many header lines, 501 for a
        ``Transfer-Encoding`` other than ``chunked``.
    """
    text = head.decode("latin-1")
    line_end = text.find("\n")
    request_line = text if line_end < 0 else text[:line_end]
    method, _, rest = request_line.removesuffix("\r").partition(" ")
    target, _, version = rest.rpartition(" ")
    if not _TOKEN.match(method) or not target.strip() or version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(400, "bad request line")
    headers: dict[str, str] = {}
    if line_end >= 0:
        count = text.count("\n")
        if count > MAX_HEADERS:
            raise BadRequest(431, "too many header lines")
        fields = _FIELD.findall(text, line_end + 1)
        if len(fields) == count:
            for name, value in fields:
                key = name.lower()
                if key in headers:
                    _add_field(headers, key, value.strip(" \t\r"))
                else:
                    headers[key] = value.strip(" \t\r")
        else:
            _parse_fields(headers, text[line_end + 1 :].split("\n"))
    length: int | None
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.lower() != "chunked":
            raise BadRequest(501, "Transfer-Encoding other than chunked")
        length = None
    else:
        declared = headers.get("content-length", "0")
        if not (declared.isascii() and declared.isdigit() and len(declared) <= 18):
            raise BadRequest(400, "bad Content-Length")
        length = int(declared)
    return RequestHead(method, target, headers, length)


def _parse_fields(headers: dict[str, str], lines: list[str]) -> None:
    """Header lines one by one: obsolete line folding, and the precise error."""
    last: str | None = None
    for raw in lines:
        line = raw.removesuffix("\r")
        if line[:1] in (" ", "\t"):
            # Obsolete line folding (RFC 9112, 5.2): a continuation of the previous value.
            if last is None or not line.strip(" \t"):
                raise BadRequest(400, "bad header continuation")
            headers[last] = (headers[last] + " " + line.strip(" \t")).strip(" \t")
            continue
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.match(name):
            raise BadRequest(400, "bad header line")
        name = name.lower()
        last = name if _add_field(headers, name, value.strip(" \t\r")) else None


def _add_field(headers: dict[str, str], name: str, value: str) -> bool:
    """Add one header field (the first value wins); whether ``value`` was kept."""
    if name not in headers:
        headers[name] = value
        return True
    if name == "transfer-encoding":
        headers[name] = f"{headers[name]}, {value}"
        return True
    if name == "content-length" and headers[name] != value:
        raise BadRequest(400, "conflicting Content-Length")
    return False


_SIZE, _DATA, _DATA_END, _TRAILER, _END = range(5)


class ChunkedDecoder:
    """Decodes a chunked body as it arrives, refusing it once it would exceed ``limit`` bytes.

    @param limit: The largest body accepted; a chunk whose declared size would take the body
        over it is refused before any of its data is kept.
    @ivar size: Body bytes decoded so far.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._state = _SIZE
        self._line = b""
        self._left = 0
        self._trailers = 0
        self._parts: list[bytes] = []
        self.size = 0

    @property
    def buffered(self) -> int:
        """Bytes kept: the body so far and an incomplete line."""
        return self.size + len(self._line)

    def body(self) -> bytes:
        """The body decoded so far (all of it once ``feed`` returned ``True``)."""
        return b"".join(self._parts)

    def feed(self, data: bytes) -> bool:
        """Decode the next bytes; ``True`` once the last chunk and the trailers have been read.

        Bytes after the end of the body are ignored.

        @raise BadRequest: 400 for broken framing, 413 for a body over the limit.
        """
        position, end = 0, len(data)
        while position < end and self._state != _END:
            if self._state == _DATA:
                take = min(self._left, end - position)
                self._parts.append(data[position : position + take])
                self.size += take
                self._left -= take
                position += take
                if not self._left:
                    self._state = _DATA_END
                continue
            newline = data.find(b"\n", position)
            if newline < 0:
                self._line += data[position:]
                if len(self._line) > MAX_CHUNK_LINE:
                    raise BadRequest(400, "chunk line too long")
                return False
            line = (self._line + data[position:newline]).removesuffix(b"\r")
            self._line = b""
            position = newline + 1
            if len(line) > MAX_CHUNK_LINE:
                raise BadRequest(400, "chunk line too long")
            self._line_received(line)
        return self._state == _END

    def _line_received(self, line: bytes) -> None:
        if self._state == _SIZE:
            text = line.split(b";", 1)[0].strip(b" \t")
            if not _HEX.match(text):
                raise BadRequest(400, "bad chunk size")
            size = int(text, 16)
            if not size:
                self._state = _TRAILER
            elif self.size + size > self._limit:
                raise BadRequest(413, f"chunked body over {self._limit} bytes")
            else:
                self._left = size
                self._state = _DATA
        elif self._state == _DATA_END:
            if line:
                raise BadRequest(400, "chunk data longer than its size")
            self._state = _SIZE
        elif not line:
            self._state = _END
        else:
            self._trailers += 1
            if self._trailers > MAX_HEADERS:
                raise BadRequest(400, "too many trailer lines")


class NotifyRequest:
    """One complete request, as the handler sees it.

    @ivar method: The request method (``NOTIFY`` for every request the handler gets).
    @ivar target: The request target.
    @ivar headers: See L{RequestHead.headers}.
    @ivar body: The whole body, de-chunked.
    @ivar host: The client's address (IPv4-mapped IPv6 addresses unmapped), ``None`` when the
        transport has none.
    @param respond: Writes the answer (the protocol's; a recorder in tests).
    @ivar on_lost: Called once if the connection closes before the request was answered
        (the handler sets it when it keeps the request to answer later).
    """

    __slots__ = ("_respond", "body", "headers", "host", "method", "on_lost", "target")

    def __init__(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: bytes,
        host: str | None,
        respond: Callable[[int], None],
    ) -> None:
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
        self.host = host
        self.on_lost: Callable[[], object] | None = None
        self._respond = respond

    def answer(self, code: int) -> None:
        """Answer ``code`` and close the connection (nothing if it is already answered or gone)."""
        self._respond(code)


class ServedClip(TypingProtocol):
    """A clip the listener serves (``sonosd.gena.media.Clip``)."""

    @property
    def body(self) -> bytes: ...

    @property
    def mime(self) -> str: ...


#: Finds the clip at a request target (``sonosd.gena.media.MediaStore.lookup``).
MediaLookup = Callable[[str], ServedClip | None]


class INotifyHandler(TypingProtocol):
    """What the protocol hands requests to (``sonosd.gena.listener.NotifyDispatcher``)."""

    def dispatch(self, request: NotifyRequest) -> int | None:
        """Handle one NOTIFY: return the status to answer, or ``None`` to answer later with
        ``request.answer``."""

    def reject(self, reason: str, host: str | None = None, detail: str = "") -> None:
        """Count (and log, throttled) one request refused by the protocol (``method``,
        ``too_large``, ``bad_request``, ``too_slow``, ``too_many_connections``)."""


_HEAD, _LENGTH, _CHUNKED, _DISCARD, _WAITING, _DONE = range(6)


@implementer(IHalfCloseableProtocol)
class NotifyProtocol(Protocol):
    """One connection: read one request, hand it to the handler, answer, close.

    A client may close its sending side once its request is sent (half-close): the answer
    still reaches it. Without that, Twisted drops the connection at the client's end of data,
    and an answer still in the transport's buffer (a refusal written while the rest of the
    request is read and dropped) never left.

    @ivar host: The client's address (see L{NotifyRequest.host}).
    @ivar idle: Idle sweeps since data last arrived (see L{NotifyServerFactory}).
    @ivar connected_at: When the connection was made (the request deadline counts from it).
    """

    def __init__(self, factory: NotifyServerFactory, host: str | None) -> None:
        self.factory = factory
        self.host = host
        self.idle = 0
        self.connected_at = 0.0
        self._state = _HEAD
        self._buffer = b""
        self._head: RequestHead | None = None
        self._parts: list[bytes] = []
        self._needed = 0
        self._decoder: ChunkedDecoder | None = None
        self._received = 0
        self._discard_left: int | None = None
        self._request: NotifyRequest | None = None

    @property
    def buffered(self) -> int:
        """Bytes of the request kept so far (the head being read, or the body)."""
        decoder = self._decoder.buffered if self._decoder is not None else 0
        return len(self._buffer) + sum(map(len, self._parts)) + decoder

    @property
    def discarding(self) -> bool:
        """Whether the request was refused and what follows it is being read and dropped."""
        return self._state == _DISCARD

    def connectionMade(self) -> None:
        """Start watching the connection for idleness and for its request deadline."""
        self.factory.opened(self)
        self.factory.track(self)

    def dataReceived(self, data: bytes) -> None:
        """Read the request head, then its body; once refused, drop what follows."""
        self.idle = 0
        state = self._state
        if state == _HEAD:
            self._head_received(data)
        elif state == _LENGTH:
            self._length_received(data)
        elif state == _CHUNKED:
            self._chunk_received(data)
        elif state == _DISCARD:
            self._discard(data)
        # _WAITING and _DONE: the one request was read; more bytes are ignored (no pipelining).

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Forget the connection; a request still waiting for its answer is reported lost."""
        self.factory.untrack(self)
        self.factory.closed(self)
        waiting = self._state == _WAITING
        self._state = _DONE
        request, self._request = self._request, None
        if waiting and request is not None and request.on_lost is not None:
            request.on_lost()

    def readConnectionLost(self) -> None:
        """The client sent all it will send: close once what is written is out (a request
        still incomplete never gets an answer; a held one is answered when it is released)."""
        if self._state == _WAITING:
            return
        self._state = _DONE
        self._transport().loseConnection()

    def writeConnectionLost(self) -> None:
        """Our sending side is closed (after a refusal): keep reading what is dropped."""

    def timed_out(self) -> None:
        """The connection was idle or slow too long: drop it without an answer."""
        self._state = _DONE
        self._transport().abortConnection()

    # -- reading ------------------------------------------------------------------------------

    def _head_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        found = find_head_end(buffer)
        if found is None:
            if len(buffer) > MAX_HEAD:
                self._buffer = b""
                self._refuse(BadRequest(431, "request head too long"), None, len(buffer))
            else:
                self._buffer = buffer
            return
        self._buffer = b""
        end, start = found
        rest = buffer[start:]
        try:
            if end > MAX_HEAD:
                raise BadRequest(431, "request head too long")
            head = parse_head(buffer[:end])
        except BadRequest as error:
            self._refuse(error, None, len(rest))
            return
        length = head.length
        if head.method in ("GET", "HEAD") and self.factory.media is not None:
            self._serve(head)
            return
        if head.method != "NOTIFY":
            remaining = None if length is None else max(length - len(rest), 0)
            self.factory.handler.reject("method", self.host, f"method {head.method[:20]}: 405")
            self._refuse_with(405, remaining, len(rest))
            return
        self._head = head
        if length is None:
            self._decoder = ChunkedDecoder(self.factory.max_body)
            self._state = _CHUNKED
            self._expect_continue(head, rest)
            if rest:
                self._chunk_received(rest)
        elif length > self.factory.max_body:
            self._refuse(
                BadRequest(413, f"body over {self.factory.max_body} bytes"),
                max(length - len(rest), 0),
                len(rest),
            )
        elif len(rest) >= length:
            self._complete(rest[:length] if len(rest) > length else rest)
        else:
            self._expect_continue(head, rest)
            self._parts = [rest] if rest else []
            self._needed = length - len(rest)
            self._state = _LENGTH

    def _expect_continue(self, head: RequestHead, rest: bytes) -> None:
        if not rest and head.headers.get("expect", "").lower() == "100-continue":
            self._transport().write(_CONTINUE)

    def _length_received(self, data: bytes) -> None:
        needed = self._needed
        if len(data) < needed:
            self._parts.append(data)
            self._needed = needed - len(data)
            return
        self._parts.append(data[:needed] if len(data) > needed else data)
        body = b"".join(self._parts)
        self._parts = []
        self._complete(body)

    def _chunk_received(self, data: bytes) -> None:
        decoder = self._decoder
        assert decoder is not None
        self._received += len(data)
        try:
            done = decoder.feed(data)
        except BadRequest as error:
            self._decoder = None
            self._refuse(error, None, self._received)
            return
        if done:
            self._decoder = None
            self._complete(decoder.body())

    def _discard(self, data: bytes) -> None:
        self._received += len(data)
        if self._received > DISCARD_FACTOR * self.factory.max_body:
            self._state = _DONE
            self._transport().abortConnection()
            return
        if self._discard_left is not None:
            self._discard_left -= len(data)
            if self._discard_left <= 0:
                self._state = _DONE
                self._transport().loseConnection()

    # -- answering ----------------------------------------------------------------------------

    def _complete(self, body: bytes) -> None:
        head = self._head
        assert head is not None
        self._head = None
        self._state = _WAITING
        self.factory.untrack(self)
        request = NotifyRequest(
            head.method, head.target, head.headers, body, self.host, self._answer
        )
        self._request = request
        try:
            code = self.factory.handler.dispatch(request)
        except Exception:
            log.failure("NOTIFY handler failed")
            code = 500
        if code is not None:
            self._answer(code)

    def _answer(self, code: int) -> None:
        if self._state != _WAITING:
            return
        self._state = _DONE
        self._request = None
        transport = self._transport()
        transport.write(RESPONSES.get(code) or _response(code))
        transport.loseConnection()

    def _serve(self, head: RequestHead) -> None:
        """Answer a ``GET``/``HEAD`` of a served clip (or 404) and close."""
        assert self.factory.media is not None
        self._state = _DONE
        self.factory.untrack(self)
        transport = self._transport()
        clip = self.factory.media(head.target)
        if clip is None:
            transport.write(RESPONSES[404])
        else:
            log.debug("{host} fetched {target}", host=self.host, target=head.target)
            transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                b"Accept-Ranges: none\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                % (clip.mime.encode("ascii", "replace"), len(clip.body))
            )
            if head.method == "GET":
                transport.write(clip.body)
        transport.loseConnection()

    def _refuse(self, error: BadRequest, remaining: int | None, received: int) -> None:
        reason = "too_large" if error.status == 413 else "bad_request"
        self.factory.handler.reject(reason, self.host, f"{error.reason}: {error.status}")
        self._refuse_with(error.status, remaining, received)

    def _refuse_with(self, code: int, remaining: int | None, received: int) -> None:
        """Answer at once; then read and drop the rest of the request so the client sees it."""
        self._parts = []
        self._head = None
        transport = self._transport()
        transport.write(RESPONSES[code])
        if remaining == 0:
            self._state = _DONE
            transport.loseConnection()
            return
        self._state = _DISCARD
        self._discard_left = remaining
        self._received = received
        lose_write = getattr(transport, "loseWriteConnection", None)
        if lose_write is not None:
            lose_write()
        else:
            transport.loseConnection()

    def _transport(self) -> Any:
        return self.transport


class NotifyServerFactory(ServerFactory):
    """Builds a L{NotifyProtocol} per connection and closes the idle and the slow ones.

    One sweep every ``min(idle_timeout, request_timeout) / IDLE_SWEEPS`` seconds, scheduled
    only while connections are being read (the first sweep that finds none is the last),
    closes those that sent nothing for ``idle_timeout`` and those still reading their request
    ``request_timeout`` seconds after connecting, however steadily they drip. A request waiting
    for its answer (held by the handler) is neither: the handler bounds that wait.

    @param handler: Gets each complete NOTIFY and the refusals to count.
    @param clock: Schedules the sweep.
    @param max_body: The largest body accepted (bytes); larger ones are answered 413.
    @param idle_timeout: Seconds without data after which a connection is closed; ``0``:
        never.
    @param request_timeout: Seconds from connecting by which the whole request must have
        arrived; ``0``: no deadline.
    @param max_per_host: The most connections one address may have open; a connection beyond
        is closed at once, unanswered (``0``: no limit).
    @param media: Finds the clip a ``GET``/``HEAD`` asks for (see the module docstring).
    """

    noisy = False

    def __init__(
        self,
        handler: INotifyHandler,
        clock: IReactorTime,
        max_body: int,
        idle_timeout: float,
        request_timeout: float = REQUEST_TIMEOUT,
        max_per_host: int = MAX_PER_HOST,
        media: MediaLookup | None = None,
    ) -> None:
        self.handler = handler
        self.media = media
        self.max_body = max_body
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.max_per_host = max_per_host
        self._clock = clock
        self._reading: set[NotifyProtocol] = set()
        self._sweep: IDelayedCall | None = None
        self._per_host: dict[str | None, int] = {}
        periods = [period for period in (idle_timeout, request_timeout) if period > 0]
        self._interval = min(periods) / IDLE_SWEEPS if periods else 0.0
        self._idle_sweeps = (
            max(IDLE_SWEEPS, math.ceil(idle_timeout / self._interval - 1e-9))
            if idle_timeout > 0
            else 0
        )

    def buildProtocol(self, addr: IAddress | None) -> NotifyProtocol | None:
        """A protocol for the connection from ``addr``; ``None`` (closed at once) when that
        address already has ``max_per_host`` connections open."""
        host = getattr(addr, "host", None)
        host = host.removeprefix("::ffff:") if isinstance(host, str) else None
        if self.max_per_host and self._per_host.get(host, 0) >= self.max_per_host:
            self.handler.reject(
                "too_many_connections",
                host,
                f"more than {self.max_per_host} connections at once: closed",
            )
            return None
        return NotifyProtocol(self, host)

    def opened(self, protocol: NotifyProtocol) -> None:
        """Count ``protocol``'s connection against its host and stamp its deadline."""
        self._per_host[protocol.host] = self._per_host.get(protocol.host, 0) + 1
        protocol.connected_at = self._clock.seconds()

    def closed(self, protocol: NotifyProtocol) -> None:
        """Stop counting ``protocol``'s connection."""
        left = self._per_host.get(protocol.host, 0) - 1
        if left > 0:
            self._per_host[protocol.host] = left
        else:
            self._per_host.pop(protocol.host, None)

    def track(self, protocol: NotifyProtocol) -> None:
        """Watch ``protocol`` for idleness and its deadline until L{untrack}."""
        self._reading.add(protocol)
        if self._sweep is None and self._interval > 0:
            self._sweep = self._clock.callLater(self._interval, self._sweep_idle)

    def untrack(self, protocol: NotifyProtocol) -> None:
        """Stop watching ``protocol``. With nothing left to watch, the sweep that is due is the
        last one: cancelling it and scheduling another for the next connection would cost a
        timer per NOTIFY when they come one at a time."""
        self._reading.discard(protocol)

    @property
    def reading(self) -> int:
        """How many connections are being read (watched for idleness)."""
        return len(self._reading)

    def stop(self) -> None:
        """Stop sweeping and close every connection still being read."""
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()
        self._sweep = None
        reading, self._reading = self._reading, set()
        for protocol in reading:
            protocol.timed_out()

    def _sweep_idle(self) -> None:
        self._sweep = None
        deadline = (
            self._clock.seconds() - self.request_timeout if self.request_timeout > 0 else None
        )
        for protocol in list(self._reading):
            protocol.idle += 1
            late = deadline is not None and protocol.connected_at < deadline
            if protocol.discarding:
                if protocol.idle > self._idle_sweeps or late:
                    # Refused and counted already (one request, one reason): the client is
                    # not taking its answer, or still sending what was refused.
                    self._reading.discard(protocol)
                    protocol.timed_out()
                continue
            if self._idle_sweeps and protocol.idle > self._idle_sweeps:
                why = f"nothing received for {self.idle_timeout:g} s: closed"
            elif late:
                why = f"request not complete {self.request_timeout:g} s after connecting: closed"
            else:
                continue
            self._reading.discard(protocol)
            self.handler.reject("too_slow", protocol.host, why)
            protocol.timed_out()
        if self._reading:
            self._sweep = self._clock.callLater(self._interval, self._sweep_idle)
