"""Tests for gena.notifyproto: the request parser, chunked bodies, the protocol, idle sweeps."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from sonosd.gena.notifyproto import (
    DISCARD_FACTOR,
    IDLE_SWEEPS,
    MAX_CHUNK_LINE,
    MAX_HEAD,
    MAX_HEADERS,
    RESPONSES,
    BadRequest,
    ChunkedDecoder,
    NotifyProtocol,
    NotifyRequest,
    NotifyServerFactory,
    RequestHead,
    find_head_end,
    parse_head,
)
from tests.paths import SHARED

CAPTURES = sorted((SHARED / "reference/samples/gena_notify_raw").glob("*.http"))
SPEAKER_NOTIFY = (
    b"NOTIFY / HTTP/1.1\r\nHOST: 192.168.1.22:1234\r\nCONNECTION: close\r\n"
    b"CONTENT-TYPE: text/xml\r\nCONTENT-LENGTH: 5\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n"
    b"SID: uuid:RINCON_48A6B888B19601400_sub0000000413\r\nSEQ: 3\r\n"
    b"X-SONOS-SERVICETYPE: RenderingControl\r\n\r\n<e/>\n"
)
OK = RESPONSES[200]


# -- the head -------------------------------------------------------------------------------


def test_find_head_end_crlf_lf_and_mixed() -> None:
    """The head ends at the first empty line, whether lines end with CRLF or LF."""
    assert find_head_end(b"A\r\nB: c\r\n\r\nbody") == (7, 11)
    assert find_head_end(b"A\nB: c\n\nbody") == (6, 8)
    assert find_head_end(b"A\nB: c\n\r\nbody\n\n") == (6, 9)
    assert find_head_end(b"A\r\nB: c\r\n") is None


def test_parse_head_of_a_speaker_notify() -> None:
    """A modern speaker's NOTIFY gives its method, path, lower-case headers and length."""
    end, _ = find_head_end(SPEAKER_NOTIFY) or (0, 0)
    head = parse_head(SPEAKER_NOTIFY[:end])
    assert (head.method, head.target, head.length) == ("NOTIFY", "/", 5)
    assert head.headers["sid"] == "uuid:RINCON_48A6B888B19601400_sub0000000413"
    assert head.headers["x-sonos-servicetype"] == "RenderingControl"
    assert head.headers["nts"] == "upnp:propchange"


@pytest.mark.parametrize("path", CAPTURES, ids=lambda path: path.name)
def test_parse_head_of_every_capture(path: Path) -> None:
    """Every captured NOTIFY (LF-only old firmware, paths with spaces) parses."""
    data = path.read_bytes()
    found = find_head_end(data)
    assert found is not None
    head = parse_head(data[: found[0]])
    assert head.method == "NOTIFY"
    assert head.target.startswith("/")
    assert head.length is not None and len(data) - found[1] >= head.length


def test_parse_head_details() -> None:
    """Old firmware's spaces in the path, HTTP/1.0, folded values, first value of repeats."""
    head = parse_head(
        b"NOTIFY /Zone Group Event HTTP/1.0\nSID: a\nX-Long: one\n  two\nsid: b\nHost:x"
    )
    assert head == RequestHead(
        "NOTIFY", "/Zone Group Event", {"sid": "a", "x-long": "one two", "host": "x"}, 0
    )


def test_parse_head_framing() -> None:
    """Chunked gives no length; repeated equal Content-Lengths are fine."""
    assert parse_head(b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: Chunked").length is None
    assert parse_head(b"NOTIFY / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3").length == 3
    head = parse_head(b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 9")
    assert head.length is None


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"NOTIFY /", 400),
        (b"NOTIFY / HTTP/2.0", 400),
        (b"NOT\tIFY / HTTP/1.1", 400),
        (b" / HTTP/1.1", 400),
        (b"NOTIFY  HTTP/1.1", 400),
        (b"NOTIFY / HTTP/1.1\r\nNo colon here", 400),
        (b"NOTIFY / HTTP/1.1\r\nSID : x", 400),
        (b"NOTIFY / HTTP/1.1\r\n: x", 400),
        (b"NOTIFY / HTTP/1.1\r\n folded-first", 400),
        (b"NOTIFY / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4", 400),
        (b"NOTIFY / HTTP/1.1\r\nContent-Length: -3", 400),
        (b"NOTIFY / HTTP/1.1\r\nContent-Length: 0x10", 400),
        (b"NOTIFY / HTTP/1.1\r\nContent-Length: \xd9\xa3", 400),
        (b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: gzip", 501),
        (b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked", 501),
        (b"NOTIFY / HTTP/1.1" + b"\r\nA: b" * (MAX_HEADERS + 1), 431),
    ],
)
def test_parse_head_refusals(head: bytes, status: int) -> None:
    """Each broken request line or header block is refused with its status."""
    with pytest.raises(BadRequest) as raised:
        parse_head(head)
    assert raised.value.status == status


_TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_TOKENS = st.text(alphabet=_TOKEN_CHARS, min_size=1, max_size=12)
_VALUES = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=30,
)


@given(st.binary(max_size=300))
def test_parse_head_fails_only_with_bad_request(data: bytes) -> None:
    """Whatever the bytes, parse_head returns a head or raises BadRequest."""
    try:
        head = parse_head(data)
    except BadRequest as error:
        assert error.status in (400, 431, 501)
    else:
        assert head.length is None or head.length >= 0


@given(
    _TOKENS,
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1),
    st.dictionaries(_TOKENS.map(str.lower), _VALUES, max_size=20),
    st.integers(min_value=0, max_value=10**9),
    st.sampled_from([b"\r\n", b"\n"]),
    st.booleans(),
)
def test_well_formed_heads_parse(
    method: str, target: str, fields: dict[str, str], length: int, eol: bytes, upper: bool
) -> None:
    """A well-formed head parses to its method, target, headers and length."""
    fields.pop("transfer-encoding", None)
    fields["content-length"] = str(length)
    lines = [f"{method} {target} HTTP/1.1"] + [
        f"{name.upper() if upper else name}: {value}" for name, value in fields.items()
    ]
    head = eol.join(line.encode("latin-1") for line in lines)
    assert parse_head(head) == RequestHead(method, target, fields, length)
    request = head + eol + eol + b"x" * 3
    assert find_head_end(request) == (len(head), len(head) + 2 * len(eol))


# -- chunked bodies -------------------------------------------------------------------------


def test_chunked_with_extensions_trailers_and_lf() -> None:
    """Chunk extensions and trailers are skipped; LF-only framing is accepted."""
    decoder = ChunkedDecoder(100)
    assert not decoder.feed(b"3;name=value\r\nabc\r\n")
    assert decoder.feed(b"2\nde\n0\r\nX-Trailer: 1\r\n\r\nignored")
    assert decoder.body() == b"abcde"
    assert decoder.feed(b"more")


def test_chunked_byte_by_byte() -> None:
    """A chunked body fed one byte at a time decodes the same."""
    decoder = ChunkedDecoder(100)
    data = b"A\r\n0123456789\r\n1\r\n!\r\n0\r\n\r\n"
    results = [decoder.feed(data[index : index + 1]) for index in range(len(data))]
    assert results[-1] and not any(results[:-1])
    assert decoder.body() == b"0123456789!"


def test_chunk_over_the_limit_is_refused_before_its_data() -> None:
    """A chunk size that would take the body over the limit is a 413 before any data is kept."""
    decoder = ChunkedDecoder(10)
    decoder.feed(b"8\r\n01234567\r\n")
    with pytest.raises(BadRequest) as raised:
        decoder.feed(b"3\r\n")
    assert raised.value.status == 413
    assert decoder.buffered == 8


@pytest.mark.parametrize(
    "data",
    [
        b"x\r\n",
        b"0x3\r\n",
        b"-1\r\n",
        b"1_0\r\n",
        b"3\r\nabcd\r\n",
        b"1" * (MAX_CHUNK_LINE + 1),
        b"1" * (MAX_CHUNK_LINE + 1) + b"\r\n",
        b"0\r\n" + b"T: x\r\n" * (MAX_HEADERS + 1),
    ],
)
def test_broken_chunked_framing(data: bytes) -> None:
    """Bad sizes, data longer than its size, and overlong lines are 400."""
    with pytest.raises(BadRequest) as raised:
        ChunkedDecoder(10**6).feed(data)
    assert raised.value.status == 400


@given(
    st.lists(st.binary(min_size=1, max_size=40), max_size=8),
    st.lists(st.integers(min_value=1, max_value=50), max_size=20),
    st.sampled_from([b"\r\n", b"\n"]),
)
def test_chunked_round_trip(chunks: list[bytes], splits: list[int], eol: bytes) -> None:
    """Any body, chunked any way and delivered in any pieces, decodes to itself."""
    data = b"".join(b"%x%s%s%s" % (len(chunk), eol, chunk, eol) for chunk in chunks)
    data += b"0" + eol + eol
    decoder = ChunkedDecoder(10**6)
    done, position = False, 0
    for size in [*splits, len(data)]:
        done = decoder.feed(data[position : position + size])
        position += size
    assert done
    assert decoder.body() == b"".join(chunks)


@given(st.lists(st.binary(max_size=60), max_size=6))
def test_chunked_fails_only_with_bad_request(pieces: list[bytes]) -> None:
    """Whatever the bytes, the decoder consumes them or raises BadRequest."""
    decoder = ChunkedDecoder(100)
    try:
        for piece in pieces:
            decoder.feed(piece)
    except BadRequest as error:
        assert error.status in (400, 413)
    assert decoder.size <= 100


# -- the protocol ---------------------------------------------------------------------------


@attrs.define
class RecordingHandler:
    """A handler that records requests and answers ``code`` (``None``: hold them)."""

    code: int | None = 200
    requests: list[NotifyRequest] = attrs.Factory(list)
    rejected: list[str] = attrs.Factory(list)
    fail: bool = False

    def dispatch(self, request: NotifyRequest) -> int | None:
        if self.fail:
            raise ZeroDivisionError("handler bug")
        self.requests.append(request)
        return self.code

    def reject(self, reason: str, host: str | None = None, detail: str = "") -> None:
        self.rejected.append(reason)


class HalfCloseTransport(StringTransport):
    """A StringTransport that can close its write side alone, as TCP transports can."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Wire:
    """A factory, a clock and helpers to open in-memory connections."""

    def __init__(
        self,
        max_body: int = 1000,
        idle_timeout: float = 8.0,
        code: int | None = 200,
        request_timeout: float = 15.0,
        max_per_host: int = 64,
    ):
        self.handler = RecordingHandler(code)
        self.clock = Clock()
        self.factory = NotifyServerFactory(
            self.handler, self.clock, max_body, idle_timeout, request_timeout, max_per_host
        )

    def connect(self, address: object = None) -> tuple[NotifyProtocol, HalfCloseTransport]:
        peer = IPv4Address("TCP", "10.0.0.7", 5000) if address is None else address
        protocol = self.factory.buildProtocol(peer)  # type: ignore[arg-type]
        transport = HalfCloseTransport(peerAddress=peer)
        protocol.makeConnection(transport)
        return protocol, transport


def notify(body: bytes = b"<e/>", **headers: str) -> bytes:
    """A NOTIFY with ``body`` and its Content-Length (plus ``headers``)."""
    fields = {"SID": "uuid:x", "SEQ": "1", "CONTENT-LENGTH": str(len(body)), **headers}
    lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
    return f"NOTIFY / HTTP/1.1\r\n{lines}\r\n".encode() + body


class ProtocolTests(SynchronousTestCase):
    """NotifyProtocol reads one request, hands it over, answers and closes."""

    def test_one_request(self) -> None:
        """A NOTIFY in one segment is handed over with its body and peer, then answered 200."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(notify(b"<body/>"))
        [request] = wire.handler.requests
        assert (request.method, request.target, request.body) == ("NOTIFY", "/", b"<body/>")
        assert (request.host, request.headers["sid"]) == ("10.0.0.7", "uuid:x")
        assert transport.value() == OK
        assert transport.disconnecting

    def test_byte_by_byte(self) -> None:
        """A request arriving one byte at a time is handled the same."""
        wire = Wire()
        protocol, transport = wire.connect()
        data = notify(b"<body/>")
        for index in range(len(data)):
            protocol.dataReceived(data[index : index + 1])
        assert [request.body for request in wire.handler.requests] == [b"<body/>"]
        assert transport.value() == OK

    def test_every_capture_is_handed_over(self) -> None:
        """Every captured speaker NOTIFY reaches the handler with its declared body."""
        for path in CAPTURES:
            wire = Wire(max_body=100_000)
            protocol, transport = wire.connect()
            protocol.dataReceived(path.read_bytes())
            [request] = wire.handler.requests
            assert len(request.body) == int(request.headers["content-length"]), path.name
            assert transport.value() == OK

    def test_pipelined_bytes_are_ignored(self) -> None:
        """Bytes after the first request are ignored: one request per connection."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(notify() + notify())
        protocol.dataReceived(notify())
        assert len(wire.handler.requests) == 1
        assert transport.value() == OK

    def test_other_method_is_405(self) -> None:
        """Any other method is answered 405 with Allow: NOTIFY and counted."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert transport.value() == RESPONSES[405]
        assert b"Allow: NOTIFY\r\n" in transport.value()
        assert wire.handler.rejected == ["method"]
        assert transport.disconnecting

    def test_405_waits_for_the_declared_body(self) -> None:
        """A refused request with a body still coming is answered, then its body dropped."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345")
        assert transport.value() == RESPONSES[405]
        assert transport.write_closed and not transport.disconnecting
        protocol.dataReceived(b"67890")
        assert transport.disconnecting
        assert protocol.buffered == 0

    def test_declared_length_over_the_cap(self) -> None:
        """A Content-Length over max_body is refused at once, without reading the body."""
        wire = Wire(max_body=10)
        protocol, transport = wire.connect()
        protocol.dataReceived(notify(b"<" * 11)[:-5])
        assert transport.value() == RESPONSES[413]
        assert wire.handler.rejected == ["too_large"]
        assert protocol.buffered == 0
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_head_too_long(self) -> None:
        """A head that never ends is refused 431 once it passes MAX_HEAD, keeping nothing."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(b"NOTIFY / HTTP/1.1\r\n")
        while not transport.value():
            protocol.dataReceived(b"X-Pad: " + b"p" * 1000 + b"\r\n")
            assert protocol.buffered <= MAX_HEAD + 1100
        assert transport.value() == RESPONSES[431]
        assert protocol.buffered == 0
        assert wire.handler.rejected == ["bad_request"]

    def test_head_too_long_in_one_segment(self) -> None:
        """A complete head longer than MAX_HEAD is refused 431 too."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(notify(b"<e/>", **{"X-Pad": "p" * MAX_HEAD}))
        assert transport.value() == RESPONSES[431]

    def test_unsupported_transfer_encoding(self) -> None:
        """A Transfer-Encoding other than chunked is answered 501."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n")
        assert transport.value() == RESPONSES[501]
        assert wire.handler.rejected == ["bad_request"]

    def test_broken_chunked_body(self) -> None:
        """Broken chunked framing is answered 400 and the rest dropped."""
        wire = Wire()
        protocol, transport = wire.connect()
        protocol.dataReceived(notify(b"", **{"TRANSFER-ENCODING": "chunked"}) + b"zz\r\n")
        assert transport.value() == RESPONSES[400]
        assert wire.handler.requests == []

    def test_missing_length_is_an_empty_body(self) -> None:
        """Without Content-Length or Transfer-Encoding the body is empty (RFC 9112, 6.3)."""
        wire = Wire()
        protocol, _ = wire.connect()
        protocol.dataReceived(b"NOTIFY / HTTP/1.1\r\nSID: x\r\n\r\n<ignored/>")
        assert wire.handler.requests[0].body == b""

    def test_expect_continue(self) -> None:
        """A client that waits for 100 Continue gets it, then its answer."""
        wire = Wire()
        protocol, transport = wire.connect()
        head = notify(b"<body/>", EXPECT="100-continue")[:-7]
        protocol.dataReceived(head)
        assert transport.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
        protocol.dataReceived(b"<body/>")
        assert transport.value().endswith(OK)

    def test_handler_bug_is_500(self) -> None:
        """An exception escaping the handler is logged and answered 500."""
        wire = Wire()
        wire.handler.fail = True
        protocol, transport = wire.connect()
        protocol.dataReceived(notify())
        assert transport.value() == RESPONSES[500]
        assert len(self.flushLoggedErrors(ZeroDivisionError)) == 1

    def test_answer_later(self) -> None:
        """A request the handler holds is answered once, when the handler says so."""
        wire = Wire(code=None)
        protocol, transport = wire.connect()
        protocol.dataReceived(notify())
        assert transport.value() == b""
        request = wire.handler.requests[0]
        request.answer(412)
        request.answer(200)
        assert transport.value() == RESPONSES[412]

    def test_lost_while_held(self) -> None:
        """A held request whose connection closes reports it once; a late answer is dropped."""
        wire = Wire(code=None)
        protocol, transport = wire.connect()
        protocol.dataReceived(notify())
        lost: list[bool] = []
        wire.handler.requests[0].on_lost = lambda: lost.append(True)
        protocol.connectionLost(Failure(ConnectionError("gone")))
        protocol.connectionLost(Failure(ConnectionError("again")))
        wire.handler.requests[0].answer(200)
        assert lost == [True]
        assert transport.value() == b""

    def test_peer_addresses(self) -> None:
        """IPv4-mapped IPv6 peers are unmapped; a peer without a host gives None."""
        wire = Wire()
        assert wire.connect(IPv6Address("TCP", "::ffff:10.1.2.3", 5))[0].host == "10.1.2.3"
        assert wire.connect(IPv6Address("TCP", "fe80::1", 5))[0].host == "fe80::1"
        assert wire.connect(UNIXAddress(b"/tmp/x"))[0].host is None

    def test_discard_is_bounded(self) -> None:
        """The body of a refused request is dropped up to DISCARD_FACTOR x max_body, then cut."""
        wire = Wire(max_body=100)
        protocol, transport = wire.connect()
        protocol.dataReceived(b"NOTIFY / HTTP/1.1\r\nContent-Length: 999999\r\n\r\n")
        for _ in range(DISCARD_FACTOR):
            protocol.dataReceived(b"x" * 100)
        assert not transport.disconnected
        protocol.dataReceived(b"x")
        assert transport.disconnected

    @given(st.binary(max_size=400), st.lists(st.integers(min_value=1, max_value=80)))
    def test_arbitrary_bytes_never_crash(self, data: bytes, splits: list[int]) -> None:
        """Whatever arrives, in whatever pieces, the protocol answers at most one known status."""
        wire = Wire(max_body=64)
        protocol, transport = wire.connect()
        position = 0
        for size in [*splits, len(data)]:
            protocol.dataReceived(data[position : position + size])
            position += size
        answer = transport.value().removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert answer == b"" or answer in RESPONSES.values()
        protocol.connectionLost(Failure(ConnectionError("done")))
        assert wire.factory.reading == 0
        self.flushLoggedErrors()

    @given(st.binary(max_size=300), st.lists(st.integers(min_value=1, max_value=50)))
    def test_well_formed_requests_are_handed_over(self, body: bytes, splits: list[int]) -> None:
        """A well-formed NOTIFY, in whatever pieces, reaches the handler with its exact body."""
        wire = Wire()
        protocol, transport = wire.connect()
        data = notify(body)
        position = 0
        for size in [*splits, len(data)]:
            protocol.dataReceived(data[position : position + size])
            position += size
        assert [request.body for request in wire.handler.requests] == [body]
        assert transport.value() == OK


class IdleSweepTests(SynchronousTestCase):
    """One periodic sweep closes connections that stopped sending."""

    def test_closed_after_the_idle_timeout(self) -> None:
        """A silent connection is aborted after IDLE_SWEEPS + 1 sweeps, and the sweep stops."""
        wire = Wire(idle_timeout=8.0)
        _, transport = wire.connect()
        wire.clock.pump([2.0] * IDLE_SWEEPS)
        assert not transport.disconnected
        wire.clock.advance(2.0)
        assert transport.disconnected
        assert wire.clock.getDelayedCalls() == []

    def test_answered_connections_stop_the_sweep(self) -> None:
        """Once no connection is being read, the sweep due is the last: no timer is left."""
        wire = Wire()
        protocol, _ = wire.connect()
        [sweep] = wire.clock.getDelayedCalls()
        protocol.dataReceived(notify())
        assert wire.clock.getDelayedCalls() == [sweep]
        wire.clock.advance(sweep.getTime())
        assert wire.clock.getDelayedCalls() == []

    def test_one_sweep_for_connections_one_after_another(self) -> None:
        """Connections read one after another share the sweep scheduled for the first."""
        wire = Wire()
        protocol, _ = wire.connect()
        [sweep] = wire.clock.getDelayedCalls()
        protocol.dataReceived(notify())
        for _ in range(3):
            protocol, _ = wire.connect()
            assert wire.clock.getDelayedCalls() == [sweep]
            protocol.dataReceived(notify())
        assert wire.handler.requests and not sweep.cancelled

    def test_zero_disables(self) -> None:
        """An idle_timeout and a request_timeout of 0 schedule nothing."""
        wire = Wire(idle_timeout=0, request_timeout=0)
        wire.connect()
        assert wire.clock.getDelayedCalls() == []

    def test_idle_connection_is_counted_as_too_slow(self) -> None:
        """A silent connection closed by the sweep is reported to the handler as too_slow."""
        wire = Wire(idle_timeout=8.0)
        wire.connect()
        wire.clock.pump([2.0] * (IDLE_SWEEPS + 1))
        assert wire.handler.rejected == ["too_slow"]


class DeadlineTests(SynchronousTestCase):
    """A request must arrive whole within request_timeout of connecting, however it drips."""

    def test_drip_is_closed_at_the_deadline(self) -> None:
        """A byte every second keeps a connection from being idle, not past its deadline."""
        wire = Wire(idle_timeout=8.0, request_timeout=6.0)
        protocol, transport = wire.connect()
        request = notify(b"<e/>" * 20)
        for second in range(8):
            protocol.dataReceived(request[second : second + 1])
            wire.clock.advance(1.0)
        assert transport.disconnected
        assert wire.handler.requests == []
        assert wire.handler.rejected == ["too_slow"]
        assert wire.clock.getDelayedCalls() == []

    def test_request_within_the_deadline(self) -> None:
        """A request that arrives in pieces before its deadline is handed over and answered."""
        wire = Wire(idle_timeout=8.0, request_timeout=6.0)
        protocol, transport = wire.connect()
        request = notify(b"<e/>")
        half = len(request) // 2
        protocol.dataReceived(request[:half])
        wire.clock.advance(1.5)
        protocol.dataReceived(request[half:])
        assert transport.value() == OK
        assert wire.handler.rejected == []

    def test_deadline_alone_sets_the_sweep(self) -> None:
        """Without an idle timeout the deadline still closes a slow connection."""
        wire = Wire(idle_timeout=0, request_timeout=4.0)
        _, transport = wire.connect()
        wire.clock.pump([1.0] * 6)
        assert transport.disconnected


class PerHostTests(SynchronousTestCase):
    """One address may hold at most max_per_host connections at once."""

    def test_connection_beyond_the_limit_is_refused(self) -> None:
        """The connection over the limit gets no protocol; closing one makes room again."""
        wire = Wire(max_per_host=3)
        connections = [wire.connect() for _ in range(3)]
        peer = IPv4Address("TCP", "10.0.0.7", 5001)
        assert wire.factory.buildProtocol(peer) is None
        assert wire.handler.rejected == ["too_many_connections"]
        other = IPv4Address("TCP", "10.0.0.8", 5001)
        assert wire.factory.buildProtocol(other) is not None
        protocol, _ = connections[0]
        protocol.connectionLost()
        assert wire.factory.buildProtocol(peer) is not None

    def test_stop(self) -> None:
        """stop() cancels the sweep and aborts the connections being read."""
        wire = Wire()
        _, transport = wire.connect()
        wire.factory.stop()
        assert transport.disconnected
        assert wire.clock.getDelayedCalls() == []
        wire.factory.stop()


@settings(max_examples=200)
@given(
    st.lists(
        st.binary(max_size=600)
        | st.sampled_from(
            [
                b"NOTIFY / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n",
                b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"fffff\r\n",
                b"x" * 5000,
                b"\r\n\r\n",
            ]
        ),
        max_size=30,
    )
)
def test_memory_stays_bounded_whatever_arrives(pieces: list[bytes]) -> None:
    """Whatever bytes arrive, in whatever pieces, a connection never keeps more than the head
    limit plus the body limit plus one chunk line (memory bound per connection)."""
    wire = Wire(max_body=1000)
    protocol, _ = wire.connect()
    for piece in pieces:
        protocol.dataReceived(piece)
        assert protocol.buffered <= MAX_HEAD + 1000 + MAX_CHUNK_LINE + len(piece)
