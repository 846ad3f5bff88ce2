"""Property tests of the NOTIFY port at the byte level: whatever a peer sends, in whatever
pieces, each request gets at most one well-formed answer with the status docs/gena.md and
docs/security.md promise (or a close), every refusal is counted once by its documented reason,
nothing is logged as an unhandled error, and a valid NOTIFY on another connection is still
delivered.

The HTTP runs through the listener's own protocol and factory (``listener.site``) on
``StringTransport`` and ``MemoryReactorClock``; a few cases run on real loopback sockets
through ``NotifyPort``, on both of its paths (whole on arrival with ``TCP_DEFER_ACCEPT``, and
handed over to a Twisted transport).
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import time
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.gena.listener import NotifyListener
from sonosd.gena.notifyport import NotifyPort
from sonosd.gena.notifyproto import MAX_HEAD, MAX_HEADERS, RESPONSES, NotifyProtocol
from tests.conftest import free_loopback_base
from tests.gena.test_listener import RC_BODY, SID, SPEAKER, RecordingSubscription
from tests.log_capture import captured_failures

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
MAX_BODY = 4096
IDLE_TIMEOUT = 30.0
REQUEST_TIMEOUT = 15.0
INTRUDER = "127.0.0.9"

#: The reasons a status is counted under (gena.md's dispatch table, security.md's bounds).
REASONS: dict[int, set[str]] = {
    200: {"accepted"},
    400: {
        "malformed",
        "unparsable",
        "bad_request",
        "dtd",
        "encoding",
        "over_budget",
        "value_too_large",
    },
    403: {"source"},
    405: {"method"},
    412: {"unknown_sid", "ended_sid"},
    413: {"too_large"},
    431: {"bad_request"},
    501: {"bad_request"},
}

#: A fault put into a near-valid NOTIFY, and the status and reason it must get (``None``:
#: the request is never whole, so it gets no answer).
FAULTS: dict[str, tuple[int | None, str]] = {
    "none": (200, "accepted"),
    "version": (400, "bad_request"),
    "method_token": (400, "bad_request"),
    "method_other": (405, "method"),
    "header_line": (400, "bad_request"),
    "first_line_folded": (400, "bad_request"),
    "too_many_headers": (431, "bad_request"),
    "head_too_long": (431, "bad_request"),
    "content_length": (400, "bad_request"),
    "conflicting_length": (400, "bad_request"),
    "transfer_encoding": (501, "bad_request"),
    "declared_over_cap": (413, "too_large"),
    "chunk_over_cap": (413, "too_large"),
    "chunk_size": (400, "bad_request"),
    "nt": (400, "malformed"),
    "nts": (400, "malformed"),
    "no_sid": (400, "malformed"),
    "seq": (400, "malformed"),
    "not_xml": (400, "malformed"),
    "dtd": (400, "dtd"),
    "short_length": (400, "unparsable"),
    "unknown_sid": (412, "unknown_sid"),
    "other_source": (403, "source"),
    "incomplete": (None, "too_slow"),
}


@attrs.frozen
class Wire:
    """A near-valid NOTIFY as bytes, the fault put into it, and where it is cut into reads."""

    data: bytes
    fault: str
    cuts: tuple[int, ...]
    chunked: bool

    def pieces(self) -> list[bytes]:
        bounds = [
            0,
            *sorted({cut for cut in self.cuts if 0 < cut < len(self.data)}),
            len(self.data),
        ]
        return [self.data[start:end] for start, end in itertools.pairwise(bounds)]


def _case(name: str, draw: st.DrawFn) -> str:
    # Each letter in either case: one draw of a bit per character (cheaper than a draw each).
    bits = draw(st.integers(0, 2 ** len(name) - 1))
    return "".join(c.upper() if bits >> i & 1 else c.lower() for i, c in enumerate(name))


@st.composite
def near_valid(draw: st.DrawFn) -> Wire:
    """A speaker's NOTIFY with at most one fault and any number of harmless oddities: header
    names in any case, LF-only line ends, repeated headers (first wins), non-ASCII and folded
    values, ``Expect: 100-continue``, chunked framing with extensions and trailers, bytes
    pipelined after it, and any cuts between reads."""
    fault = draw(st.sampled_from(sorted(FAULTS)))
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    chunked = fault in ("chunk_over_cap", "chunk_size") or (
        fault
        not in (
            "content_length",
            "conflicting_length",
            "declared_over_cap",
            "short_length",
            "incomplete",
            "transfer_encoding",
        )
        and draw(st.booleans())
    )
    body = RC_BODY
    if fault == "not_xml":
        body = b"hello, not XML"
    elif fault == "dtd":
        body = b'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY a "b">]><e>&a;</e>'
    method = {
        "method_token": b"NOT{IFY",
        "method_other": draw(st.sampled_from([b"GET", b"POST", b"SUBSCRIBE", b"notify"])),
    }.get(fault, b"NOTIFY")
    version = (
        b"HTTP/2.0" if fault == "version" else draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    )
    target = draw(st.sampled_from([b"/", b"/notify", b"/a path/with spaces", b"/%ff?x=\xe9"]))
    fields: list[tuple[bytes, bytes]] = []
    if fault == "first_line_folded":
        fields.append((b" folded", b""))
    gena = {
        b"NT": b"upnp:evnt" if fault == "nt" else b"upnp:event",
        b"NTS": b"upnp:propchanged" if fault == "nts" else b"upnp:propchange",
        b"SID": b"uuid:RINCON_UNKNOWN_sub1" if fault == "unknown_sid" else SID.encode(),
        b"SEQ": draw(st.sampled_from([b"-1", b"4294967296", b"1e3", b"\xb2", b""]))
        if fault == "seq"
        else str(draw(st.integers(0, 4294967295))).encode(),
    }
    if fault == "no_sid":
        del gena[b"SID"]
    for name, value in gena.items():
        fields.append((_case(name.decode(), draw).encode(), value))
    if draw(st.booleans()):
        fields.append(
            (
                b"X-Odd",
                draw(
                    st.binary(max_size=40).map(
                        lambda raw: bytes(b for b in raw if b not in b"\r\n")
                    )
                ),
            )
        )
    if draw(st.booleans()):
        fields.append(
            (b"X-Folded", b"first" + eol + draw(st.sampled_from([b" ", b"\t"])) + b"second")
        )
    if fault == "header_line":
        fields.append((b"no colon here", b""))
    if fault == "too_many_headers":
        fields.extend((b"X-Many-%d" % index, b"1") for index in range(MAX_HEADERS + 1))
    if fault == "head_too_long":
        fields.append((b"X-Long", b"a" * MAX_HEAD))
    expect = draw(st.booleans())
    if expect:
        fields.append((b"Expect", b"100-continue"))
    if chunked:
        fields.append((_case("Transfer-Encoding", draw).encode(), b"chunked"))
        sizes = draw(st.lists(st.integers(1, 400), max_size=4))
        frames, position = [], 0
        for size in [*sizes, len(body)]:
            piece = body[position : position + size]
            position += len(piece)
            if piece:
                extension = draw(st.sampled_from([b"", b";name=value", b" ;x"]))
                frames.append(b"%x%s%s%s%s" % (len(piece), extension, eol, piece, eol))
        if fault == "chunk_over_cap":
            frames.insert(0, b"%x%s" % (MAX_BODY + 1, eol))
        elif fault == "chunk_size":
            frames.insert(0, b"zz" + eol)
        trailer = draw(st.sampled_from([b"", b"X-Trailer: 1" + eol]))
        framed = b"".join(frames) + b"0" + eol + trailer + eol
    else:
        length = str(len(body)).encode()
        if fault == "content_length":
            length = draw(st.sampled_from([b"12a", b"-1", b"+5", b"\xb2", b"9" * 19, b""]))
        elif fault == "declared_over_cap":
            length = str(MAX_BODY + 1).encode()
        elif fault == "short_length":
            length = str(len(body) // 2).encode()
        elif fault == "incomplete":
            length = str(len(body) + 10).encode()
        if fault == "transfer_encoding":
            fields.append(
                (b"Transfer-Encoding", draw(st.sampled_from([b"gzip", b"chunked, gzip"])))
            )
        fields.append((_case("Content-Length", draw).encode(), length))
        if fault == "conflicting_length":
            fields.append((b"Content-Length", str(len(body) + 1).encode()))
        elif draw(st.booleans()):
            fields.append((b"content-length", length))
        framed = body
    if fault not in ("too_many_headers", "head_too_long", "first_line_folded"):
        fields = draw(st.permutations(fields))
    if fault != "no_sid" and draw(st.booleans()):
        # A repeated SID: the first value is the one kept.
        fields.append((b"Sid", b"uuid:somebody-else"))
    head = method + b" " + target + b" " + version + eol
    for name, value in fields:
        head += name + (b": " + value if value or not name.startswith(b" ") else b"") + eol
    data = head + eol + framed
    if fault != "incomplete" and draw(st.booleans()):
        data += draw(st.sampled_from([b"NOTIFY / HTTP/1.1\r\n\r\n", b"\x00\xff garbage", b"\r\n"]))
    cuts = tuple(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return Wire(data, fault, cuts, chunked)


def hostile_bytes() -> st.SearchStrategy[list[bytes]]:
    """Arbitrary reads: random bytes, and pieces of HTTP that parsers trip on."""
    return st.lists(
        st.binary(max_size=300)
        | st.sampled_from(
            [
                b"NOTIFY / HTTP/1.1\r\n",
                b"NOTIFY / HTTP/1.1\n",
                b"GET / HTTP/1.0\r\n\r\n",
                b"Content-Length: 5\r\n",
                b"Content-Length: 99999999999999999999\r\n",
                b"Transfer-Encoding: chunked\r\n",
                b"Transfer-Encoding: identity\r\n",
                b"Expect: 100-continue\r\n",
                b"SID: " + SID.encode() + b"\r\n",
                b"NT: upnp:event\r\nNTS: upnp:propchange\r\nSEQ: 1\r\n",
                b" folded\r\n",
                b"\r\n",
                b"\n",
                b"ffffffff\r\n",
                b"5;ext\r\nhello\r\n",
                b"0\r\n\r\n",
                b"\xff\xfe\x00<",
                b"x" * 2000,
            ]
        ),
        max_size=20,
    )


class HalfClosingTransport(StringTransport):
    """A ``StringTransport`` that can close its write side only, as a TCP transport can."""

    write_closed = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True


class Peer:
    """One in-memory connection to a listener's server from ``host``."""

    def __init__(self, listener: NotifyListener, host: str = SPEAKER) -> None:
        address = IPv4Address("TCP", host, 40000)
        protocol = listener.site.buildProtocol(address)
        assert isinstance(protocol, NotifyProtocol)
        self.protocol = protocol
        self.transport = HalfClosingTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 1400)
        )
        self.protocol.makeConnection(self.transport)
        self.lost = False

    def send(self, data: bytes) -> None:
        if not self.lost:
            self.protocol.dataReceived(data)
            self.settle()

    def settle(self) -> None:
        """A connection the server closed (``loseConnection``, ``abortConnection``) is gone
        once its answer is out, as a TCP transport's would be."""
        if self.transport.disconnecting:
            self.close()

    def close(self) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionError("peer closed")))

    def status(self) -> int | None:
        """The status of the one answer written, ``None`` when none was; fails unless the
        bytes written are exactly (an optional ``100 Continue`` and) one whole answer."""
        written = self.transport.value().removeprefix(CONTINUE)
        if not written:
            return None
        status = int(written[9:12])
        assert written == RESPONSES[status], written
        return status


def counted(listener: NotifyListener) -> dict[str, int]:
    """Every request the listener counted, accepted ones under ``accepted``."""
    counts = {reason: count for reason, count in listener.rejected.items() if count}
    if listener.accepted:
        counts["accepted"] = listener.accepted
    return counts


def memory_listener() -> tuple[NotifyListener, MemoryReactorClock, RecordingSubscription]:
    reactor = MemoryReactorClock()
    listener = NotifyListener(
        reactor,
        interface="127.0.0.1",
        port=0,
        max_body=MAX_BODY,
        idle_timeout=IDLE_TIMEOUT,
        request_timeout=REQUEST_TIMEOUT,
    )
    subscription = RecordingSubscription()
    listener.register(subscription)
    return listener, reactor, subscription


def speaker_notify(seq: int = 7) -> bytes:
    return (
        b"NOTIFY / HTTP/1.1\r\nHOST: 127.0.0.1:1400\r\nCONTENT-TYPE: text/xml\r\n"
        b"NT: upnp:event\r\nNTS: upnp:propchange\r\nSID: %s\r\nSEQ: %d\r\n"
        b"CONTENT-LENGTH: %d\r\n\r\n%s" % (SID.encode(), seq, len(RC_BODY), RC_BODY)
    )


def run_out_the_clock(reactor: MemoryReactorClock, peer: Peer) -> None:
    """Let every deadline pass; a connection the server closed is then gone."""
    for _ in range(12):
        reactor.advance(REQUEST_TIMEOUT / 2)
        peer.settle()


def still_delivers(listener: NotifyListener, subscription: RecordingSubscription) -> None:
    """A valid NOTIFY on a new connection is answered 200 and reaches the subscription."""
    before, accepted = len(subscription.events), listener.accepted
    peer = Peer(listener)
    peer.send(speaker_notify(seq=4242))
    assert peer.status() == 200
    assert len(subscription.events) == before + 1
    assert subscription.events[-1].seq == "4242"
    assert listener.accepted == accepted + 1


@settings(max_examples=250, derandomize=True)
@given(near_valid(), st.booleans())
def test_each_near_valid_request_gets_its_documented_answer(wire: Wire, close: bool) -> None:
    """A near-valid NOTIFY, cut anywhere, gets exactly the one status and counted reason its
    fault calls for (or, never whole, no answer and ``too_slow`` at the deadline), with nothing
    logged as an error; a valid NOTIFY is delivered afterwards."""
    listener, reactor, subscription = memory_listener()
    status, reason = FAULTS[wire.fault]
    with captured_failures() as failures:
        peer = Peer(listener, INTRUDER if wire.fault == "other_source" else SPEAKER)
        for piece in wire.pieces():
            peer.send(piece)
        assert peer.status() == status
        if close:
            peer.close()
        else:
            run_out_the_clock(reactor, peer)
        if status is None and close:
            assert counted(listener) == {}
        else:
            assert counted(listener) == {reason: 1}
        if status == 200:
            [event] = subscription.events
            assert event.variables["volume"]
        else:
            assert subscription.events == []
        still_delivers(listener, subscription)
    assert failures == []


@settings(max_examples=250, derandomize=True)
@given(hostile_bytes(), st.booleans())
def test_arbitrary_bytes_get_one_answer_or_a_close(pieces: list[bytes], close: bool) -> None:
    """Arbitrary bytes in arbitrary reads get at most one well-formed answer, each answer and
    each server-side close is counted once under a reason its status allows, nothing is logged
    as an error, and a valid NOTIFY is delivered afterwards."""
    listener, reactor, subscription = memory_listener()
    with captured_failures() as failures:
        peer = Peer(listener)
        for piece in pieces:
            peer.send(piece)
        status = peer.status()
        if close:
            peer.close()
        else:
            run_out_the_clock(reactor, peer)
        counts = counted(listener)
        if status is not None:
            assert counts.keys() <= REASONS[status] and sum(counts.values()) == 1, counts
        elif close:
            assert counts == {}
        else:
            assert counts == {"too_slow": 1}
        assert len(subscription.events) == (1 if status == 200 else 0)
        still_delivers(listener, subscription)
    assert failures == []


@settings(max_examples=60, derandomize=True)
@given(st.lists(near_valid(), min_size=2, max_size=6))
def test_interleaved_connections_keep_apart(wires: list[Wire]) -> None:
    """Several connections fed read by read in turn each get their own documented answer, and
    every accepted one is delivered once."""
    listener, _, subscription = memory_listener()
    with captured_failures() as failures:
        peers = [Peer(listener, INTRUDER if w.fault == "other_source" else SPEAKER) for w in wires]
        queues = [wire.pieces() for wire in wires]
        while any(queues):
            for peer, queue in zip(peers, queues, strict=True):
                if queue:
                    peer.send(queue.pop(0))
        statuses = [peer.status() for peer in peers]
        assert statuses == [FAULTS[wire.fault][0] for wire in wires]
        assert len(subscription.events) == statuses.count(200)
    assert failures == []


def test_a_notify_cut_at_every_point_is_delivered_whole() -> None:
    """A NOTIFY (length-framed, then chunked) cut into two reads at every byte is answered 200
    and its body delivered whole."""
    chunked = speaker_notify().replace(
        b"CONTENT-LENGTH: %d\r\n\r\n%s" % (len(RC_BODY), RC_BODY),
        b"TRANSFER-ENCODING: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(RC_BODY), RC_BODY),
    )
    for data in (speaker_notify(), chunked):
        listener, _, subscription = memory_listener()
        for cut in range(len(data) + 1):
            peer = Peer(listener)
            peer.send(data[:cut])
            peer.send(data[cut:])
            assert peer.status() == 200, cut
            peer.close()
        assert len(subscription.events) == len(data) + 1
        assert {event.variables["volume"]["Master"] for event in subscription.events} == {
            subscription.events[0].variables["volume"]["Master"]
        }


def test_a_refused_request_still_dripping_at_the_deadline_is_counted_once() -> None:
    """A request refused at once (405, 413) whose announced body keeps dripping past the request
    deadline is closed then, and counted under its refusal only, never again as ``too_slow``."""
    for head in (
        b"GET / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n",
        b"NOTIFY / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
    ):
        listener, reactor, _ = memory_listener()
        peer = Peer(listener)
        peer.send(head)
        for _ in range(int(REQUEST_TIMEOUT * 2)):
            reactor.advance(1)
            peer.send(b"x")
        assert peer.transport.disconnecting
        assert sum(counted(listener).values()) == 1, counted(listener)


# -- real sockets ---------------------------------------------------------------------------


LOOPBACK_CASES: list[tuple[bytes, int]] = [
    (b"\x00\xff\r\n\r\n", 400),
    (b"NOTIFY / HTTP/1.1\r\nX: " + b"a" * (MAX_HEAD + 10) + b"\r\n\r\n", 431),
    (b"NOTIFY / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1), 413),
    (b"NOTIFY / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"BREW /pot HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", 405),
    (b"NOTIFY / HTTP/1.1\r\nNT: upnp:event\r\n\r\n", 400),
    (speaker_notify(seq=3) + speaker_notify(seq=4), 200),
]


class LoopbackTests(TestCase):
    """Hostile streams on real loopback sockets, on both paths of ``NotifyPort``."""

    timeout = 60

    def setUp(self) -> None:
        self.base = free_loopback_base()
        self.listener = NotifyListener(
            global_reactor, interface=self.base, port=0, max_body=MAX_BODY
        )
        self.listener.startService()
        self.addCleanup(self.listener.stopService)
        self.subscription = RecordingSubscription(speaker_host=self.base)
        self.listener.register(self.subscription)
        self.failures_context = captured_failures()
        self.failures = self.failures_context.__enter__()
        self.addCleanup(self.failures_context.__exit__, None, None, None)

    @property
    def port(self) -> NotifyPort:
        listening = self.listener._listening
        assert isinstance(listening, NotifyPort)
        return listening

    async def until(self, check: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + 20
        while not check():
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            await deferLater(global_reactor, 0.01, lambda: None)

    async def exchange(self, pieces: list[bytes], pause: float = 0.0) -> bytes:
        """Send ``pieces`` on a new connection (``pause`` seconds apart); return the answer."""
        client = socket.create_connection(
            (self.base, self.listener.port), timeout=5, source_address=(self.base, 0)
        )
        client.setblocking(False)
        self.addCleanup(client.close)
        received = bytearray()
        closed: list[bool] = []

        def poll() -> bool:
            while True:
                try:
                    data = client.recv(65536)
                except BlockingIOError:
                    return bool(closed)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed.append(True)
                    return True
                received.extend(data)

        for piece in pieces:
            if pause:
                await deferLater(global_reactor, pause, lambda: None)
            client.sendall(piece)
        # Done sending (a refused request's rest is read until the client stops).
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_WR)
        await self.until(poll, "the server to close the connection")
        return bytes(received)

    async def test_hostile_streams_whole_on_arrival(self) -> None:
        """Hostile requests sent whole get their documented answer (served from the first read,
        or handed over to a transport to drop the rest), and a valid NOTIFY is still served."""
        for data, status in LOOPBACK_CASES:
            answer = await self.exchange([data])
            assert answer == RESPONSES[status], (data[:60], answer)
        assert self.port.served_at_once >= 1
        answer = await self.exchange([speaker_notify(seq=99)])
        assert answer == RESPONSES[200]
        assert self.subscription.events[-1].seq == "99"
        assert self.listener.accepted == 2
        assert sum(self.listener.rejected.values()) == len(LOOPBACK_CASES) - 1
        assert self.failures == []

    async def test_hostile_streams_in_pieces(self) -> None:
        """The same requests dripped a few bytes per read over a handed-over transport get the
        same answers."""
        handed_over = self.port.handed_over
        for data, status in LOOPBACK_CASES:
            pieces = [data[:5], data[5:9], data[9:]]
            answer = await self.exchange(pieces, pause=0.02)
            assert answer == RESPONSES[status], (data[:60], answer)
        assert self.port.handed_over > handed_over
        assert self.failures == []

    async def test_early_close_answers_nothing_and_counts_nothing(self) -> None:
        """A client that closes mid-head or mid-body gets no answer and nothing is counted; the
        next NOTIFY is delivered."""
        notify = speaker_notify(seq=5)
        for cut in (10, len(notify) - 50):
            answer = await self.exchange([notify[:cut]])
            assert answer == b""
        assert sum(self.listener.rejected.values()) == 0
        assert await self.exchange([speaker_notify(seq=6)]) == RESPONSES[200]
        assert [event.seq for event in self.subscription.events] == ["6"]
        assert self.failures == []


def test_a_held_notify_half_closed_is_still_answered() -> None:
    """A NOTIFY held for a SUBSCRIBE in flight whose client closes its sending side is answered
    and delivered when its SID is registered."""
    listener, _, _ = memory_listener()
    listener.subscribing(SPEAKER)
    peer = Peer(listener)
    peer.send(speaker_notify(seq=0).replace(SID.encode(), b"uuid:RINCON_NEW_sub1"))
    peer.protocol.readConnectionLost()
    assert peer.status() is None and not peer.transport.disconnecting
    later = RecordingSubscription(sid="uuid:RINCON_NEW_sub1")
    listener.register(later)
    assert peer.status() == 200
    assert [event.seq for event in later.events] == ["0"]
