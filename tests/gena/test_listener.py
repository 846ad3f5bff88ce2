"""Tests for sonosd.gena.listener: NOTIFY checks, SID registry, first-NOTIFY race, size cap, ports.

The HTTP is driven through the listener's own protocol (``listener.site``, a
``sonosd.gena.notifyproto.NotifyServerFactory``) on a ``StringTransport``, and on real loopback
sockets; the protocol alone is tested in ``tests/gena/test_notifyproto.py``.
"""

from __future__ import annotations

import ast
import inspect
import json
import math
import re
import socket
from collections.abc import Mapping
from typing import Any, cast

import attrs
from hypothesis import example, given
from hypothesis import strategies as st
from soco.events_base import Event
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from sonosd.config import schema_text
from sonosd.gena import listener as listener_module
from sonosd.gena.listener import (
    BACKLOG,
    HELD_PER_SUBSCRIBE,
    SEQ_MAX,
    INotifySubscription,
    MalformedNotify,
    NotifyDispatcher,
    NotifyHeaders,
    NotifyListener,
    check_notify,
    route_address,
)
from sonosd.gena.notifyproto import DISCARD_FACTOR, IDLE_SWEEPS, NotifyProtocol, NotifyRequest
from tests.conftest import free_loopback_base
from tests.paths import ROOT, SAMPLES

RC_BODY = (SAMPLES / "events" / "renderingcontrol_lastchange_volume_jishi.xml").read_bytes()
SID = "uuid:RINCON_000E58A0123401400_sub0000000001"
SPEAKER = "127.0.0.2"

GOOD_HEADERS = {"nt": "upnp:event", "nts": "upnp:propchange", "sid": SID, "seq": "0"}


@implementer(INotifySubscription)
@attrs.define(eq=False)
class RecordingSubscription:
    """A subscription that records the events routed to it."""

    sid: str = SID
    speaker_host: str = SPEAKER
    service: object = "RenderingControl service"
    events: list[Event] = attrs.Factory(list)
    fail: bool = False

    def send_event(self, event: Event) -> None:
        if self.fail:
            raise ZeroDivisionError("callback bug")
        self.events.append(event)


def notify_bytes(
    sid: str = SID,
    seq: int | str = 0,
    body: bytes = RC_BODY,
    extra: Mapping[str, str] | None = None,
    method: str = "NOTIFY",
    length: int | None = None,
) -> bytes:
    """A NOTIFY request as a speaker sends it."""
    headers = {
        "HOST": "127.0.0.1:1400",
        "CONNECTION": "close",
        "CONTENT-TYPE": "text/xml",
        "CONTENT-LENGTH": str(len(body) if length is None else length),
        "NT": "upnp:event",
        "NTS": "upnp:propchange",
        "SID": sid,
        "SEQ": str(seq),
        "X-SONOS-SERVICETYPE": "RenderingControl",
    }
    headers.update(extra or {})
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items() if value)
    return f"{method} / HTTP/1.1\r\n{head}\r\n".encode("latin-1") + body


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (0 when there is none yet)."""
    if not response.startswith(b"HTTP/1.1 "):
        return 0
    return int(response[9:12])


class Connection:
    """One in-memory HTTP connection to a listener's server."""

    def __init__(self, listener: NotifyListener, peer: str = SPEAKER) -> None:
        address = IPv4Address("TCP", peer, 40000)
        self.protocol: NotifyProtocol = listener.site.buildProtocol(address)
        self.transport = StringTransport(
            peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 1400)
        )
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> int:
        self.protocol.dataReceived(data)
        return status_of(self.transport.value())

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionError("gone")))


def held_timers(clock: Any) -> list[Any]:
    """The clock's pending calls but the listener's connection sweep (which ends by itself at
    the first sweep that finds no connection being read)."""
    return [
        call
        for call in clock.getDelayedCalls()
        if getattr(call.func, "__name__", None) != "_sweep_idle"
    ]


def make_listener(**kwargs: Any) -> tuple[NotifyListener, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    listener = NotifyListener(reactor, interface="127.0.0.1", port=0, **kwargs)
    return listener, reactor


# -- what docs/gena.md says ----------------------------------------------------------------


def test_the_documented_defaults_are_the_listeners() -> None:
    """The signature docs/gena.md gives for NotifyListener has the code's defaults, and the
    held NOTIFYs per SUBSCRIBE and the ended SIDs remembered it names are the code's."""
    text = (ROOT / "docs" / "gena.md").read_text()
    match = re.search(r"`NotifyListener\(reactor, (.*?)\)` is an", text, re.S)
    assert match is not None
    named = {"None": None, "1 MiB": 1 << 20}
    documented = {}
    for part in match[1].split(","):
        name, value = (side.strip() for side in part.split("=", 1))
        documented[name] = named[value] if value in named else ast.literal_eval(value)
    parameters = inspect.signature(NotifyListener).parameters.values()
    assert documented == {p.name: p.default for p in parameters if p.name != "reactor"}
    flat = " ".join(text.split())
    assert f"(at most `HELD_PER_SUBSCRIBE`, {HELD_PER_SUBSCRIBE}, per SUBSCRIBE" in flat
    assert f"the {listener_module.MAX_ENDED:,} most recent" in flat
    assert "each until its grant would have run out, a day at most" in flat
    assert listener_module.ENDED_MEMORY == 86400
    # The longest grant the daemon may ask for: its subscription.timeout at most.
    schema = json.loads(schema_text())
    longest = schema["properties"]["subscription"]["properties"]["timeout"]["maximum"]
    assert longest == listener_module.ENDED_MEMORY


def test_every_test_the_fixes_table_names_exists() -> None:
    """Each test docs/gena.md's "What it fixes" table names (``Class::test``, ``Class::*``,
    or a bare ``test_`` name after its class in the same cell) is a test of tests/gena/."""
    defined: dict[str, set[str]] = {}
    for path in (ROOT / "tests" / "gena").glob("test_*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef):
                methods = defined.setdefault(node.name, set())
                methods.update(
                    item.name
                    for item in node.body
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                )
    text = (ROOT / "docs" / "gena.md").read_text()
    table = text[text.index("## What it fixes") : text.index("## As `soco.config")]
    named = 0
    for row in table.splitlines()[4:]:
        # The test column, without the file paths some references start with.
        cell = re.sub(r"tests/[\w/]+\.py::", "", row.rstrip(" |").rsplit("|", 1)[-1])
        owner = None
        for owner_name, method in re.findall(r"(?:(\w+)::)?(test_\w+|\*)", cell):
            owner = owner_name or owner
            assert owner in defined, f"{row}: no test class {owner}"
            assert method == "*" or method in defined[owner], f"{row}: no {owner}::{method}"
            named += 1
    assert named >= 30


# -- check_notify (pure) --------------------------------------------------------------------


def test_check_notify_accepts_a_speaker_notify() -> None:
    """A NOTIFY with the GENA headers and an XML body gives its SID, SEQ and service type."""
    headers = dict(GOOD_HEADERS, seq="17", **{"x-sonos-servicetype": "RenderingControl"})
    assert check_notify(headers, RC_BODY) == NotifyHeaders(SID, 17, "RenderingControl")


def test_check_notify_accepts_leading_whitespace_and_bom() -> None:
    """A body with a BOM or leading blank lines is still XML."""
    assert check_notify(GOOD_HEADERS, b"\xef\xbb\xbf\r\n  <e:propertyset/>").seq == 0


def test_check_notify_rejects_each_broken_field() -> None:
    """Wrong NT, wrong NTS, no SID, a bad SEQ or a non-XML body are each malformed."""
    cases: list[tuple[dict[str, str], bytes]] = [
        (dict(GOOD_HEADERS, nt="upnp:other"), RC_BODY),
        ({k: v for k, v in GOOD_HEADERS.items() if k != "nt"}, RC_BODY),
        (dict(GOOD_HEADERS, nts="ssdp:alive"), RC_BODY),
        (dict(GOOD_HEADERS, sid="  "), RC_BODY),
        (dict(GOOD_HEADERS, seq="-1"), RC_BODY),
        (dict(GOOD_HEADERS, seq="1.5"), RC_BODY),
        (dict(GOOD_HEADERS, seq=str(SEQ_MAX + 1)), RC_BODY),
        (dict(GOOD_HEADERS, seq="\u0663"), RC_BODY),
        (GOOD_HEADERS, b""),
        (GOOD_HEADERS, b"volume=40"),
    ]
    for headers, body in cases:
        try:
            check_notify(headers, body)
        except MalformedNotify:
            continue
        raise AssertionError(f"accepted {headers!r} {body!r}")


@given(st.text(max_size=14) | st.integers(min_value=0, max_value=2 * SEQ_MAX).map(str))
@example("00000000001")
@example(" 7\t")
def test_check_notify_seq_is_a_ui4(seq: str) -> None:
    """SEQ is accepted exactly when it is 1-10 ASCII digits worth at most 2**32-1."""
    text = seq.strip()
    expected = text.isascii() and text.isdigit() and len(text) <= 10 and int(text) <= SEQ_MAX
    try:
        result = check_notify(dict(GOOD_HEADERS, seq=seq), RC_BODY)
    except MalformedNotify:
        assert not expected
    else:
        assert expected and result.seq == int(seq.strip())


@given(
    st.dictionaries(
        st.sampled_from(["nt", "nts", "sid", "seq", "x-sonos-servicetype", "other"]),
        st.text(max_size=30),
    ),
    st.binary(max_size=50),
)
def test_check_notify_fails_only_with_malformed_notify(
    headers: dict[str, str], body: bytes
) -> None:
    """Whatever the input, check_notify returns or raises MalformedNotify, nothing else."""
    try:
        check_notify(headers, body)
    except MalformedNotify as error:
        assert error.reason


def test_route_address_of_a_loopback_speaker() -> None:
    """The local address routing to a 127.x speaker is 127.0.0.1 (no packet is sent)."""
    assert route_address("127.9.8.2") == "127.0.0.1"


def test_route_address_of_nowhere() -> None:
    """An address with no route gives None instead of raising."""
    assert route_address("255.255.255.255") is None


def test_route_address_is_ipv4_only() -> None:
    """docs/gena.md's known limit: an IPv6 speaker address (here loopback ::1) has no IPv4
    route, so None, and a host name is resolved (blocking) to its IPv4 address."""
    assert route_address("::1") is None
    assert route_address("localhost") == "127.0.0.1"


# -- the dispatcher through the HTTP stack -----------------------------------------------------


class DispatchTests(SynchronousTestCase):
    """NOTIFY handling through the listener's HTTP protocol, in memory."""

    def setUp(self) -> None:
        self.listener, self.reactor = make_listener()
        self.subscription = RecordingSubscription()

    def test_delivers_to_the_registered_subscription(self) -> None:
        """A NOTIFY for a registered SID from its speaker is parsed, delivered, answered 200."""
        self.reactor.advance(1234.5)
        self.listener.register(self.subscription)
        assert Connection(self.listener).send(notify_bytes(seq=3)) == 200
        [event] = self.subscription.events
        assert (event.sid, event.seq, event.service) == (SID, "3", self.subscription.service)
        assert event.timestamp == 1234.5
        assert event.variables["volume"] == {"Master": "12", "LF": "100", "RF": "100"}
        assert self.listener.accepted == 1

    def test_unknown_sid_is_412(self) -> None:
        """A NOTIFY for a SID nobody registered is answered 412 so the speaker stops."""
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert self.listener.rejected["unknown_sid"] == 1

    def test_unknown_sids_are_logged_once_a_minute(self) -> None:
        """Unknown-SID NOTIFYs from one speaker are logged once at info, and the rest of the
        minute summed up in one line when it ends."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for _ in range(5):
            assert Connection(self.listener).send(notify_bytes()) == 412
        self.reactor.advance(60)
        said = [(e["log_level"], formatEvent(e)) for e in events]
        line = f"NOTIFY for unknown {SID} from {SPEAKER}: 412"
        assert said == [
            (LogLevel.info, line),
            (
                LogLevel.info,
                f"4 more like this from {SPEAKER} (unknown_sid) in the last 60 s; the last: {line}",
            ),
        ]

    def refused(self) -> tuple[int, int]:
        """The NOTIFYs refused as for an ended SID and as for an unknown one."""
        rejected = self.listener.rejected
        return rejected["ended_sid"], rejected["unknown_sid"]

    def ended(self, time_left: float) -> None:
        """Register and unregister a subscription that had ``time_left`` seconds to run."""

        @attrs.define
        class Ending(RecordingSubscription):
            time_left: float = 0.0

        subscription = Ending(time_left=time_left)
        self.listener.register(subscription)
        self.listener.unregister(subscription)

    def test_an_ended_sid_is_412_quietly_until_it_would_expire(self) -> None:
        """A NOTIFY for the SID of a subscription that ended is 412, counted as ``ended_sid``
        and logged at debug level only, until the subscription would have expired at the
        speaker; after that it is an unknown SID."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.ended(time_left=120.0)
        assert Connection(self.listener).send(notify_bytes()) == 412
        self.reactor.advance(119.9)
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert (self.listener.rejected["ended_sid"], self.listener.rejected["unknown_sid"]) == (
            2,
            0,
        )
        assert {e["log_level"] for e in events if SID in formatEvent(e)} == {LogLevel.debug}
        self.reactor.advance(0.1)
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert (self.listener.rejected["ended_sid"], self.listener.rejected["unknown_sid"]) == (
            2,
            1,
        )

    def test_an_ended_sid_is_remembered_as_long_as_its_grant(self) -> None:
        """The SID of an ended subscription with two hours left (a 7200 s grant) is refused
        as ended until they run out, not for an hour only; then as unknown."""
        self.ended(time_left=7200.0)
        self.reactor.advance(3600.1)
        assert Connection(self.listener).send(notify_bytes()) == 412
        self.reactor.advance(7199.9 - 3600.1)
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert self.refused() == (2, 0)
        self.reactor.advance(0.1)
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert self.refused() == (2, 1)

    def test_an_ended_sid_is_remembered_a_day_at_most(self) -> None:
        """The SID of an ended subscription granted more than a day (or an infinite grant,
        or one that says nothing of its time left) is refused as ended for a day, the longest
        grant the daemon asks for, then as unknown."""
        for left in (math.inf, 10.0**12, None):
            self.listener, self.reactor = make_listener()
            if left is None:
                self.listener.register(self.subscription)
                self.listener.unregister(self.subscription)
            else:
                self.ended(time_left=left)
            self.reactor.advance(86399.9)
            assert Connection(self.listener).send(notify_bytes()) == 412
            assert self.refused() == (1, 0), left
            self.reactor.advance(0.1)
            assert Connection(self.listener).send(notify_bytes()) == 412
            assert self.refused() == (1, 1), left

    def test_an_ended_sid_with_no_time_left_is_not_remembered(self) -> None:
        """A subscription that ended with its grant run out (the speaker forgot it) leaves
        no SID behind: its NOTIFY is an unknown SID's."""
        self.ended(time_left=0.0)
        assert Connection(self.listener).send(notify_bytes()) == 412
        assert self.refused() == (0, 1)

    def test_other_source_is_403(self) -> None:
        """A NOTIFY for a registered SID from another address is refused and not delivered."""
        self.listener.register(self.subscription)
        assert Connection(self.listener, peer="127.0.0.66").send(notify_bytes()) == 403
        assert self.subscription.events == []
        assert self.listener.rejected["source"] == 1

    def test_malformed_is_400(self) -> None:
        """A NOTIFY without a valid SEQ is answered 400 and counted."""
        self.listener.register(self.subscription)
        assert Connection(self.listener).send(notify_bytes(seq="x")) == 400
        assert self.listener.rejected["malformed"] == 1
        assert self.subscription.events == []

    def test_unparsable_body_is_400(self) -> None:
        """A body that looks like XML but does not parse is answered 400 and counted."""
        self.listener.register(self.subscription)
        assert Connection(self.listener).send(notify_bytes(body=b"<e:propertyset")) == 400
        assert self.listener.rejected["unparsable"] == 1
        self.flushLoggedErrors()

    def test_other_methods_are_405(self) -> None:
        """A GET on the listener is answered 405 with Allow: NOTIFY."""
        connection = Connection(self.listener)
        assert connection.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 405
        assert b"Allow: NOTIFY" in connection.transport.value()
        assert self.listener.rejected["method"] == 1

    def test_callback_exception_is_not_500(self) -> None:
        """A subscription that raises still gets the speaker a 200; the error is logged."""
        self.listener.register(RecordingSubscription(fail=True))
        assert Connection(self.listener).send(notify_bytes()) == 200
        assert len(self.flushLoggedErrors(ZeroDivisionError)) == 1

    def test_any_path_is_accepted(self) -> None:
        """The callback path does not matter (old firmware echoed paths with spaces)."""
        self.listener.register(self.subscription)
        request = notify_bytes().replace(b"NOTIFY / ", b"NOTIFY /Zone%20Group/x ", 1)
        assert Connection(self.listener).send(request) == 200

    def test_lf_only_line_ends_are_accepted(self) -> None:
        """A NOTIFY written with bare LF line ends is delivered like a CRLF one."""
        self.listener.register(self.subscription)
        head, _, body = notify_bytes(seq=5).partition(b"\r\n\r\n")
        request = head.replace(b"\r\n", b"\n") + b"\n\n" + body
        assert Connection(self.listener).send(request) == 200
        assert [event.seq for event in self.subscription.events] == ["5"]

    def test_lower_case_header_names(self) -> None:
        """Header names are matched whatever their case."""
        self.listener.register(self.subscription)
        line, _, rest = notify_bytes().partition(b"\r\n")
        head, _, body = rest.partition(b"\r\n\r\n")
        request = line + b"\r\n" + head.lower() + b"\r\n\r\n" + body
        assert Connection(self.listener).send(request) == 412  # the SID, lowered, is unknown
        request = notify_bytes().replace(b"SEQ:", b"sEq:").replace(b"NTS:", b"nts:")
        assert Connection(self.listener).send(request) == 200

    def test_chunked_body_is_delivered(self) -> None:
        """A chunked NOTIFY (old UPnP stacks) is decoded and delivered."""
        self.listener.register(self.subscription)
        connection = Connection(self.listener)
        head = notify_bytes(body=b"", extra={"CONTENT-LENGTH": "", "TRANSFER-ENCODING": "chunked"})
        assert connection.send(head) == 0
        half = len(RC_BODY) // 2
        for piece in (RC_BODY[:half], RC_BODY[half:]):
            assert connection.send(b"%x\r\n%s\r\n" % (len(piece), piece)) == 0
        assert connection.send(b"0\r\n\r\n") == 200
        [event] = self.subscription.events
        assert event.variables["volume"] == {"Master": "12", "LF": "100", "RF": "100"}

    def test_broken_http_is_400_and_counted(self) -> None:
        """A request line that is not HTTP is answered 400 and counted as bad_request."""
        assert Connection(self.listener).send(b"hello there\r\n\r\n") == 400
        assert self.listener.rejected["bad_request"] == 1
        assert self.listener.accepted == 0

    def test_answer_closes_the_connection(self) -> None:
        """Every answer is the minimal response, then the connection is closed."""
        self.listener.register(self.subscription)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        assert connection.transport.value() == (
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        assert connection.transport.disconnecting

    def test_unregister_forgets_the_sid(self) -> None:
        """After unregister nothing is kept and the SID's NOTIFYs get 412."""
        self.listener.register(self.subscription)
        self.listener.unregister(self.subscription)
        assert self.listener.dispatcher.subscriptions() == []
        assert Connection(self.listener).send(notify_bytes()) == 412

    def test_unregister_of_a_stale_object_keeps_the_current_one(self) -> None:
        """Unregistering an old subscription with the same SID leaves the live one routed."""
        self.listener.register(self.subscription)
        self.listener.unregister(RecordingSubscription())
        assert self.listener.dispatcher.subscription(SID) is self.subscription


class BareDispatcherTests(SynchronousTestCase):
    """The dispatcher on hand-made requests, without any HTTP parsing."""

    def test_no_client_address_is_never_held(self) -> None:
        """A request without a peer address (not TCP) is not held: 412 at once."""
        dispatcher = NotifyDispatcher(Clock())
        dispatcher.subscribing(SPEAKER)
        answers: list[int] = []
        request = NotifyRequest("NOTIFY", "/", dict(GOOD_HEADERS), RC_BODY, None, answers.append)
        assert dispatcher.dispatch(request) == 412
        assert answers == []
        assert dispatcher.rejected["unknown_sid"] == 1

    def test_held_request_is_answered_through_the_request(self) -> None:
        """A held request gets its answer through NotifyRequest.answer once its SID registers."""
        dispatcher = NotifyDispatcher(Clock())
        dispatcher.subscribing(SPEAKER)
        answers: list[int] = []
        request = NotifyRequest("NOTIFY", "/", dict(GOOD_HEADERS), RC_BODY, SPEAKER, answers.append)
        assert dispatcher.dispatch(request) is None
        dispatcher.register(RecordingSubscription())
        assert answers == [200]


# -- the body cap ---------------------------------------------------------------------------


class BodyCapTests(SynchronousTestCase):
    """Bodies over max_body are refused with 413 without being kept."""

    def setUp(self) -> None:
        self.listener, _ = make_listener(max_body=1024)
        self.listener.register(RecordingSubscription())

    def test_declared_length_over_the_cap(self) -> None:
        """A Content-Length over the cap is answered 413 as soon as the headers are read."""
        connection = Connection(self.listener)
        head = notify_bytes(body=b"", length=10_000_000)
        assert connection.send(head) == 413
        assert connection.transport.disconnecting
        assert self.listener.rejected["too_large"] == 1

    def test_the_rest_of_a_refused_body_is_discarded(self) -> None:
        """The body of a refused request is read and dropped, then the connection closes."""
        connection = Connection(self.listener)
        body = b"<" + b"x" * 1500
        head = notify_bytes(body=body)[: -len(body)]
        assert connection.send(head + body[:700]) == 413
        assert not connection.transport.disconnecting or connection.protocol.buffered == 0
        connection.send(body[700:])
        assert connection.protocol.buffered == 0
        assert connection.transport.disconnecting
        assert self.listener.accepted == 0

    def test_chunked_body_growing_over_the_cap(self) -> None:
        """A chunked body is refused when it grows over the cap, and nothing more is kept."""
        connection = Connection(self.listener)
        head = notify_bytes(body=b"", extra={"CONTENT-LENGTH": "", "TRANSFER-ENCODING": "chunked"})
        assert connection.send(head) == 0
        chunk = b"<" + b"x" * 599
        assert connection.send(b"258\r\n" + chunk + b"\r\n") == 0
        assert connection.send(b"258\r\n" + chunk + b"\r\n") == 413
        assert connection.protocol.buffered == 0
        assert self.listener.rejected["too_large"] == 1

    def test_endless_refused_body_is_aborted(self) -> None:
        """A refused chunked body that keeps coming is cut off after DISCARD_FACTOR x max_body."""
        connection = Connection(self.listener)
        connection.send(
            notify_bytes(body=b"", extra={"CONTENT-LENGTH": "", "TRANSFER-ENCODING": "chunked"})
        )
        frame = b"400\r\n" + b"x" * 1024 + b"\r\n"
        sent = 0
        while sent <= DISCARD_FACTOR * 1024:
            assert not connection.transport.disconnected
            connection.send(frame)
            sent += len(frame)
        assert status_of(connection.transport.value()) == 413
        assert connection.transport.disconnected
        assert DISCARD_FACTOR * 1024 < sent <= DISCARD_FACTOR * 1024 + len(frame)

    def test_body_at_the_cap_is_accepted(self) -> None:
        """A body of exactly max_body bytes is delivered."""
        body = b"<e:propertyset xmlns:e='urn:schemas-upnp-org:event-1-0'/>"
        body = body + b" " * (1024 - len(body))
        assert Connection(self.listener).send(notify_bytes(body=body)) == 200


# -- the first-NOTIFY race --------------------------------------------------------------------


class RaceTests(SynchronousTestCase):
    """Unknown-SID NOTIFYs are held while a SUBSCRIBE to their sender is in flight."""

    def setUp(self) -> None:
        self.listener, self.clock = make_listener(hold_timeout=3.0, max_held=2)
        self.subscription = RecordingSubscription()

    def test_held_until_registered(self) -> None:
        """SEQ 0 arriving before the SUBSCRIBE response is delivered when the SID registers."""
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        assert connection.send(notify_bytes(seq=0)) == 0
        self.listener.register(self.subscription)
        self.listener.subscribe_finished(SPEAKER)
        assert status_of(connection.transport.value()) == 200
        assert [event.seq for event in self.subscription.events] == ["0"]
        assert held_timers(self.clock) == []
        assert self.listener.dispatcher.held == 1

    def test_held_connection_is_not_idle(self) -> None:
        """A held NOTIFY is bounded by hold_timeout, not closed by the idle sweep."""
        listener, clock = make_listener(hold_timeout=60.0, idle_timeout=8.0)
        listener.subscribing(SPEAKER)
        connection = Connection(listener)
        connection.send(notify_bytes())
        clock.pump([1.0] * 30)
        assert not connection.transport.disconnected
        listener.register(self.subscription)
        assert status_of(connection.transport.value()) == 200

    def test_held_events_are_delivered_in_seq_order(self) -> None:
        """Two held NOTIFYs reach the subscription in SEQ order."""
        self.listener.subscribing(SPEAKER)
        later, first = Connection(self.listener), Connection(self.listener)
        later.send(notify_bytes(seq=1))
        first.send(notify_bytes(seq=0))
        self.listener.register(self.subscription)
        assert [event.seq for event in self.subscription.events] == ["0", "1"]

    def test_hold_times_out_with_412(self) -> None:
        """A held NOTIFY whose SID never registers is answered 412 after hold_timeout."""
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        self.clock.advance(2.9)
        assert status_of(connection.transport.value()) == 0
        self.clock.advance(0.2)
        assert status_of(connection.transport.value()) == 412
        assert self.listener.rejected["unknown_sid"] == 1

    def test_failed_subscribe_releases_with_412(self) -> None:
        """When the SUBSCRIBE ends without registering, its held NOTIFYs get 412 at once."""
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        self.listener.subscribe_finished(SPEAKER)
        assert status_of(connection.transport.value()) == 412
        assert held_timers(self.clock) == []

    def test_only_the_subscribed_host_is_held(self) -> None:
        """An unknown SID from a host with no SUBSCRIBE in flight is refused at once."""
        self.listener.subscribing(SPEAKER)
        assert Connection(self.listener, peer="127.0.0.9").send(notify_bytes()) == 412

    def test_hold_is_bounded(self) -> None:
        """Beyond max_held, unknown-SID NOTIFYs are refused at once."""
        self.listener.subscribing(SPEAKER)
        assert Connection(self.listener).send(notify_bytes(seq=0)) == 0
        assert Connection(self.listener).send(notify_bytes(seq=1)) == 0
        assert Connection(self.listener).send(notify_bytes(seq=2)) == 412

    def test_hold_is_bounded_per_subscribe_in_flight(self) -> None:
        """A sender gets two held NOTIFYs per SUBSCRIBE in flight to it, whatever max_held."""
        listener, _ = make_listener(hold_timeout=3.0)
        listener.subscribing(SPEAKER)
        assert Connection(listener).send(notify_bytes(seq=0)) == 0
        assert Connection(listener).send(notify_bytes(seq=1)) == 0
        assert Connection(listener).send(notify_bytes(seq=2)) == 412
        listener.subscribing(SPEAKER)
        assert Connection(listener).send(notify_bytes(seq=3)) == 0
        assert Connection(listener).send(notify_bytes(seq=4)) == 0
        assert Connection(listener).send(notify_bytes(seq=5)) == 412

    def test_every_subscribe_in_flight_may_have_its_initial_notify_held(self) -> None:
        """With 64 SUBSCRIBEs in flight (the daemon's bound) to 8 speakers, all 64 initial
        NOTIFYs that overtake their answers are held and delivered (the bound was 32)."""
        listener, _ = make_listener()
        hosts = [f"127.0.0.{10 + n}" for n in range(8)]
        subscriptions = [
            RecordingSubscription(sid=f"uuid:RINCON_{n:02d}_sub{k:010d}", speaker_host=host)
            for n, host in enumerate(hosts)
            for k in range(8)
        ]
        for subscription in subscriptions:
            listener.subscribing(subscription.speaker_host)
        connections = []
        for subscription in subscriptions:
            connection = Connection(listener, peer=subscription.speaker_host)
            assert connection.send(notify_bytes(sid=subscription.sid, seq=0)) == 0
            connections.append(connection)
        for subscription in subscriptions:
            listener.register(subscription)
            listener.subscribe_finished(subscription.speaker_host)
        assert [status_of(c.transport.value()) for c in connections] == [200] * 64
        assert all([e.seq for e in s.events] == ["0"] for s in subscriptions)
        assert listener.rejected["unknown_sid"] == 0

    def test_held_from_another_host_than_the_registered_one_is_403(self) -> None:
        """A held NOTIFY whose SID turns out to belong to another speaker is refused 403."""
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        self.listener.register(RecordingSubscription(speaker_host="127.0.0.3"))
        assert status_of(connection.transport.value()) == 403

    def test_lost_connection_drops_the_held_notify(self) -> None:
        """A held NOTIFY whose connection closes is forgotten, timer included."""
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        connection.lose()
        assert held_timers(self.clock) == []
        self.listener.register(self.subscription)
        assert self.subscription.events == []

    def test_lost_connection_keeps_the_other_held_notify(self) -> None:
        """Of two NOTIFYs held for one SID, losing one connection keeps the other."""
        self.listener.subscribing(SPEAKER)
        lost, kept = Connection(self.listener), Connection(self.listener)
        lost.send(notify_bytes(seq=0))
        kept.send(notify_bytes(seq=1))
        lost.lose()
        self.listener.register(self.subscription)
        assert [event.seq for event in self.subscription.events] == ["1"]
        assert status_of(kept.transport.value()) == 200

    def test_overlapping_subscribes_keep_holding(self) -> None:
        """With two SUBSCRIBEs in flight to a host, the end of one keeps the NOTIFY held."""
        self.listener.subscribing(SPEAKER)
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        self.listener.subscribe_finished(SPEAKER)
        assert status_of(connection.transport.value()) == 0
        self.listener.register(self.subscription)
        assert status_of(connection.transport.value()) == 200

    def test_stop_closes_connections_being_read(self) -> None:
        """Stopping the listener drops half-read requests and leaves no timer."""
        self.listener.startService()
        connection = Connection(self.listener)
        connection.send(b"NOTIFY / HTTP/1.1\r\n")
        self.successResultOf(self.listener.stopService())
        assert connection.transport.disconnected
        assert self.clock.getDelayedCalls() == []

    def test_stop_releases_held(self) -> None:
        """Stopping the listener answers held NOTIFYs with 412."""
        self.listener.startService()
        self.listener.subscribing(SPEAKER)
        connection = Connection(self.listener)
        connection.send(notify_bytes())
        self.successResultOf(self.listener.stopService())
        assert status_of(connection.transport.value()) == 412


# -- idle connections -----------------------------------------------------------------------


class IdleTests(SynchronousTestCase):
    """Connections that stop sending are closed after idle_timeout."""

    def test_silent_connection_is_closed(self) -> None:
        """A connection that sends nothing is closed between idle_timeout and 1.25 times it."""
        listener, clock = make_listener(idle_timeout=8.0)
        connection = Connection(listener)
        clock.pump([1.0] * 8)
        assert not connection.transport.disconnected
        clock.pump([1.0] * 2)
        assert connection.transport.disconnected
        assert clock.getDelayedCalls() == []

    def test_data_keeps_a_slow_request_open(self) -> None:
        """Each arriving piece of a request restarts its idle time (within its deadline)."""
        listener, clock = make_listener(idle_timeout=8.0, request_timeout=600.0)
        listener.register(RecordingSubscription())
        connection = Connection(listener)
        request = notify_bytes()
        for index in range(0, len(request), 200):
            clock.pump([1.0] * 7)
            connection.send(request[index : index + 200])
        assert status_of(connection.transport.value()) == 200
        assert not connection.transport.disconnected

    def test_one_timer_for_all_connections(self) -> None:
        """However many connections are open, one sweep timer is scheduled."""
        listener, clock = make_listener(idle_timeout=8.0)
        connections = [Connection(listener) for _ in range(50)]
        assert len(clock.getDelayedCalls()) == 1
        clock.pump([8.0 / IDLE_SWEEPS] * (IDLE_SWEEPS + 1))
        assert all(connection.transport.disconnected for connection in connections)


# -- the service: ports and callback URLs -----------------------------------------------------


class TakenPortsReactor(MemoryReactorClock):
    """A memory reactor on which some ports are taken."""

    def __init__(self, taken: set[int]) -> None:
        super().__init__()
        self.taken = taken

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        if port in self.taken:
            raise CannotListenError(interface, port, OSError(98, "Address already in use"))
        return super().listenTCP(port, factory, backlog, interface)


class ServiceTests(SynchronousTestCase):
    """NotifyListener binds with port fallback and advertises the right URL."""

    def test_next_port_when_taken(self) -> None:
        """With 1400 and 1401 taken the listener binds 1402 and advertises it."""
        reactor = TakenPortsReactor({1400, 1401})
        listener = NotifyListener(reactor, interface="10.0.0.5", port=1400)
        listener.startService()
        assert listener.port == 1402
        assert reactor.tcpServers[0][0] == 1402
        assert listener.callback_url("10.0.0.20") == "http://10.0.0.5:1402/"

    def test_backlog_fits_a_household_subscribing_at_once(self) -> None:
        """The port's listen backlog is large enough for every speaker's initial NOTIFYs."""
        reactor = MemoryReactorClock()
        NotifyListener(reactor, port=0).startService()
        assert reactor.tcpServers[0][2] == BACKLOG >= 1024

    def test_all_ports_taken(self) -> None:
        """When the 100 ports are all taken, startService raises CannotListenError."""
        reactor = TakenPortsReactor(set(range(1400, 1500)))
        listener = NotifyListener(reactor, interface="10.0.0.5", port=1400)
        self.assertRaises(CannotListenError, listener.startService)
        assert not listener.running

    def test_address_not_available_fails_at_once(self) -> None:
        """An address this host does not have is no reason to try 99 more ports."""

        class NoSuchAddress(MemoryReactorClock):
            tries = 0

            def listenTCP(
                self, port: int, factory: Any, backlog: int = 50, interface: str = ""
            ) -> Any:
                self.tries += 1
                raise CannotListenError(
                    interface, port, OSError(99, "Cannot assign requested address")
                )

        reactor = NoSuchAddress()
        listener = NotifyListener(reactor, interface="198.51.100.7", port=1400)
        self.assertRaises(CannotListenError, listener.startService)
        assert reactor.tries == 1

    def test_advertise_overrides(self) -> None:
        """A configured advertise address is used whatever the bound interface."""
        listener = NotifyListener(MemoryReactorClock(), port=1400, advertise="192.168.1.10")
        listener.startService()
        assert listener.callback_url("192.168.1.20") == "http://192.168.1.10:1400/"

    def test_wildcard_interface_uses_the_route(self) -> None:
        """Bound to every interface, the advertised address is the one routing to the speaker."""
        listener = NotifyListener(MemoryReactorClock(), interface="0.0.0.0", port=1400)
        listener.startService()
        assert listener.callback_url("127.3.4.5") == "http://127.0.0.1:1400/"
        assert listener.advertised_address("127.3.4.5") == "127.0.0.1"

    def test_no_route_falls_back(self) -> None:
        """With no route to the speaker, 127.0.0.1 is advertised (and a warning logged)."""
        listener = NotifyListener(MemoryReactorClock(), interface="0.0.0.0", port=1400)
        assert listener.advertised_address("255.255.255.255") == "127.0.0.1"

    def test_route_is_looked_up_again(self) -> None:
        """A speaker with no route at first gets the routed address once a route exists."""
        routes: dict[str, str | None] = {"10.0.0.20": None}
        self.patch(listener_module, "route_address", lambda host: routes[host])
        listener = NotifyListener(MemoryReactorClock(), interface="0.0.0.0", port=1400)
        assert listener.advertised_address("10.0.0.20") == "127.0.0.1"
        routes["10.0.0.20"] = "10.0.0.5"
        assert listener.advertised_address("10.0.0.20") == "10.0.0.5"

    def test_stop_before_start(self) -> None:
        """Stopping a listener that never bound succeeds at once."""
        listener, _ = make_listener()
        self.successResultOf(listener.stopService())

    def test_stop_unbinds(self) -> None:
        """stopService unbinds the port; the listener is no longer running."""
        listener, reactor = make_listener()
        listener.startService()
        assert listener.is_running
        assert listener.address == ("127.0.0.1", reactor.tcpServers[0][0])
        self.successResultOf(listener.stop())
        assert not listener.is_running


# -- integration on loopback ------------------------------------------------------------------


class RawClient(Protocol):
    """Sends bytes, collects the whole answer until the server closes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.received = b""
        self.done: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.data)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.done.callback(self.received)


async def send_raw(host: str, port: int, data: bytes, source: str) -> bytes:
    """Send one raw request from ``source`` and return the raw answer."""
    endpoint = TCP4ClientEndpoint(global_reactor, host, port, timeout=5, bindAddress=(source, 0))
    client = RawClient(data)
    await connectProtocol(endpoint, client)
    client.done.addTimeout(10, global_reactor)
    return await client.done


class LoopbackTests(TestCase):
    """The listener on real loopback sockets."""

    def setUp(self) -> None:
        self.base = free_loopback_base()
        self.prefix = self.base.rsplit(".", 1)[0]
        self.speaker = f"{self.prefix}.3"

    def start(self, **kwargs: Any) -> NotifyListener:
        listener = NotifyListener(global_reactor, interface=self.base, **kwargs)
        listener.startService()
        self.addCleanup(listener.stopService)
        return listener

    async def test_port_fallback(self) -> None:
        """With the requested port taken, the next one is bound, advertised, and warned about."""
        blocker = global_reactor.listenTCP(1400, ServerFactory(), interface=self.base)
        self.addCleanup(blocker.stopListening)
        warnings: list[LogEvent] = []
        observer = cast(ILogObserver, warnings.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        listener = self.start(port=1400)
        assert 1400 < listener.port < 1500
        assert listener.callback_url(self.speaker) == f"http://{self.base}:{listener.port}/"
        [warning] = [e for e in warnings if e["log_level"] is LogLevel.warn]
        assert formatEvent(warning) == (
            f"NOTIFY listener on {self.base}:{listener.port} (port 1400 is taken)"
        )
        with socket.create_connection((self.base, listener.port), timeout=2):
            pass

    async def test_accepted_from_the_speaker(self) -> None:
        """A NOTIFY from the subscribed speaker's address is answered 200 and delivered."""
        listener = self.start(port=0)
        subscription = RecordingSubscription(speaker_host=self.speaker)
        listener.register(subscription)
        answer = await send_raw(self.base, listener.port, notify_bytes(), self.speaker)
        assert status_of(answer) == 200
        assert len(subscription.events) == 1

    async def test_an_accepted_notify_logs_nothing(self) -> None:
        """No access log line per NOTIFY: accepting and delivering NOTIFYs over the wire logs
        nothing of sonosd's at any level (the test's own client connections log their
        factories)."""
        listener = self.start(port=0)
        subscription = RecordingSubscription(speaker_host=self.speaker)
        listener.register(subscription)
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for seq in range(3):
            answer = await send_raw(self.base, listener.port, notify_bytes(seq=seq), self.speaker)
            assert status_of(answer) == 200
        assert len(subscription.events) == 3
        ours = [e for e in events if str(e.get("log_namespace", "")).startswith("sonosd")]
        assert [formatEvent(e) for e in ours] == []

    async def test_unknown_sid(self) -> None:
        """A NOTIFY for an unknown SID is answered 412 over the wire."""
        listener = self.start(port=0)
        answer = await send_raw(self.base, listener.port, notify_bytes(), self.speaker)
        assert status_of(answer) == 412

    async def test_other_address_is_rejected(self) -> None:
        """A NOTIFY sent from another 127.x address than the speaker's is answered 403."""
        listener = self.start(port=0)
        subscription = RecordingSubscription(speaker_host=self.speaker)
        listener.register(subscription)
        intruder = f"{self.prefix}.4"
        answer = await send_raw(self.base, listener.port, notify_bytes(), intruder)
        assert status_of(answer) == 403
        assert subscription.events == []
        assert listener.rejected["source"] == 1

    async def test_too_large(self) -> None:
        """A body over max_body is answered 413 over the wire."""
        listener = self.start(port=0, max_body=4096)
        listener.register(RecordingSubscription(speaker_host=self.speaker))
        body = b"<" + b"x" * 40_000
        answer = await send_raw(self.base, listener.port, notify_bytes(body=body), self.speaker)
        assert status_of(answer) == 413
        assert listener.rejected["too_large"] == 1

    async def test_chunked(self) -> None:
        """A chunked NOTIFY is delivered over the wire."""
        listener = self.start(port=0)
        subscription = RecordingSubscription(speaker_host=self.speaker)
        listener.register(subscription)
        head = notify_bytes(body=b"", extra={"CONTENT-LENGTH": "", "TRANSFER-ENCODING": "chunked"})
        request = head + b"%x\r\n%s\r\n0\r\n\r\n" % (len(RC_BODY), RC_BODY)
        answer = await send_raw(self.base, listener.port, request, self.speaker)
        assert status_of(answer) == 200
        assert len(subscription.events) == 1

    async def test_other_method(self) -> None:
        """A GET is answered 405 over the wire, with Allow: NOTIFY."""
        listener = self.start(port=0)
        answer = await send_raw(self.base, listener.port, b"GET / HTTP/1.1\r\n\r\n", self.speaker)
        assert status_of(answer) == 405
        assert b"Allow: NOTIFY" in answer

    async def test_malformed(self) -> None:
        """A NOTIFY without NTS is answered 400 over the wire."""
        listener = self.start(port=0)
        listener.register(RecordingSubscription(speaker_host=self.speaker))
        request = notify_bytes(extra={"NTS": ""})
        answer = await send_raw(self.base, listener.port, request, self.speaker)
        assert status_of(answer) == 400
