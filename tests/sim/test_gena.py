"""Tests for sonosd.sim.gena: the simulated speaker's GENA subscriptions and NOTIFYs."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import attrs
from hypothesis import given
from hypothesis import strategies as st
from soco.events_base import parse_event_xml
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, ResponseNeverReceived
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.test.requesthelper import DummyRequest
from zope.interface import implementer
from zope.interface.verify import verifyObject

from sonosd.sim import gena
from sonosd.sim.gena import MAX_SEQ, SubscriptionManager, parse_timeout
from sonosd.sim.notifier import INotifier, Notifier, NotifyError
from sonosd.sim.propertyset import EventValue, build_propertyset
from tests.api_helpers import RawClient, connect_raw
from tests.conftest import free_loopback_base
from tests.gena_wire import Notify, Receiver, first, gena_call, parse_notify, status_of

UID = "RINCON_000E58AAAAAA01400"
SERVER = "Linux UPnP/1.0 Sonos/85.0-65270 (ZPS16)"
SPEAKER = "127.9.9.2"
RC_STATE: dict[str, EventValue] = {
    "Volume": {"Master": "20", "LF": "100", "RF": "100"},
    "Mute": {"Master": "0", "LF": "0", "RF": "0"},
    "Bass": "0",
}
AVT_STATE: dict[str, EventValue] = {"TransportState": "STOPPED", "CurrentPlayMode": "NORMAL"}
STATE: dict[str, Mapping[str, EventValue]] = {
    "RenderingControl": RC_STATE,
    "AVTransport": AVT_STATE,
    "ZoneGroupTopology": {"ZoneGroupName": "Kitchen"},
    "MR_ConnectionManager": {"CurrentConnectionIDs": "0"},
}


def full_state(service: str) -> Mapping[str, EventValue]:
    """The test household's state: fixed values per service."""
    return STATE[service]


@attrs.define
class Sent:
    """One NOTIFY handed to the recording notifier."""

    host: str
    port: int
    request: bytes
    bind_address: str | None
    result: Deferred[int]

    @property
    def notify(self) -> Notify:
        return parse_notify(self.request)


@implementer(INotifier)
class RecordingNotifier:
    """An INotifier that records requests; the test answers them."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []

    @property
    def in_flight(self) -> int:
        return sum(1 for sent in self.sent if not sent.result.called)

    def send(
        self, host: str, port: int, request: bytes, bind_address: str | None = None
    ) -> Deferred[int]:
        result: Deferred[int] = Deferred()
        self.sent.append(Sent(host, port, request, bind_address, result))
        return result

    def abort_all(self) -> Deferred[None]:
        for sent in self.sent:
            if not sent.result.called:
                sent.result.errback(NotifyError("aborted"))
        return succeed(None)

    def answer(self, status: int = 200) -> None:
        """Answer the oldest unanswered NOTIFY."""
        for sent in self.sent:
            if not sent.result.called:
                sent.result.callback(status)
                return
        raise AssertionError("no NOTIFY waiting")

    def answer_all(self) -> None:
        """Answer every NOTIFY, including those sent as a consequence."""
        while self.in_flight:
            self.answer()

    def seqs(self) -> list[int]:
        return [sent.notify.seq for sent in self.sent]


def gena_request(method: bytes, headers: Mapping[str, str | None]) -> DummyRequest:
    """A GENA request on an event URL with the given headers (None values left out)."""
    request = DummyRequest([b"MediaRenderer", b"RenderingControl", b"Event"])
    request.method = method
    for name, value in headers.items():
        if value is not None:
            request.requestHeaders.setRawHeaders(name, [value])
    return request


def response_header(request: DummyRequest, name: str) -> str | None:
    values = request.responseHeaders.getRawHeaders(name.encode("ascii"))
    return None if values is None else values[0].decode("latin-1")


class _ManagerTestCase(SynchronousTestCase):
    """A manager on a Clock with a recording notifier; LastChange moderation off (it has
    tests of its own, ``ModerationTests``), so each notify() is one NOTIFY."""

    moderation = 0.0

    def setUp(self) -> None:
        self.clock = Clock()
        self.notifier = RecordingNotifier()
        self.manager = SubscriptionManager(
            self.clock,
            UID,
            SPEAKER,
            full_state,
            SERVER,
            notifier=self.notifier,
            moderation=self.moderation,
        )

    def subscribe(
        self,
        service: str = "RenderingControl",
        callback: str | None = "<http://127.0.0.1:4000>",
        timeout: str | None = "Second-600",
        nt: str | None = "upnp:event",
        **extra: str,
    ) -> DummyRequest:
        request = gena_request(
            b"SUBSCRIBE", {"CALLBACK": callback, "NT": nt, "TIMEOUT": timeout, **extra}
        )
        self.assertEqual(self.manager.render_subscribe(request, service), b"")
        return request

    def subscribed(self, service: str = "RenderingControl", **kwargs: Any) -> str:
        """Subscribe, let the initial NOTIFY go out and be answered; return the SID."""
        request = self.subscribe(service, **kwargs)
        self.assertEqual(request.responseCode, 200)
        self.clock.advance(0)
        self.notifier.answer_all()
        sid = response_header(request, "SID")
        assert sid is not None
        return sid

    def renew(
        self, sid: str, service: str = "RenderingControl", timeout: str | None = "Second-600"
    ) -> DummyRequest:
        request = gena_request(b"SUBSCRIBE", {"SID": sid, "TIMEOUT": timeout})
        self.manager.render_subscribe(request, service)
        return request

    def unsubscribe(
        self, sid: str | None, service: str = "RenderingControl", **extra: str
    ) -> DummyRequest:
        request = gena_request(b"UNSUBSCRIBE", {"SID": sid, **extra})
        self.assertEqual(self.manager.render_unsubscribe(request, service), b"")
        return request


class SubscribeTests(_ManagerTestCase):
    """SUBSCRIBE, renewal, UNSUBSCRIBE and expiry, per sonos-protocol.md §3.1-3.3."""

    def test_new_subscription_answer(self) -> None:
        """A new subscription gets 200 with SID, TIMEOUT, Server, empty body, Connection: close."""
        request = self.subscribe()
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(response_header(request, "SID"), f"uuid:{UID}_sub0000000001")
        self.assertEqual(response_header(request, "TIMEOUT"), "Second-600")
        self.assertEqual(response_header(request, "Server"), SERVER)
        self.assertEqual(response_header(request, "Content-Length"), "0")
        self.assertEqual(response_header(request, "Connection"), "close")

    def test_sid_counter_is_shared_by_services(self) -> None:
        """The SID counter counts subscriptions of every service of the speaker."""
        first = self.subscribed("RenderingControl")
        second = self.subscribed("AVTransport")
        third = self.subscribed("RenderingControl")
        self.assertEqual(
            [first, second, third],
            [f"uuid:{UID}_sub{n:010d}" for n in (1, 2, 3)],
        )

    def test_timeout_policy(self) -> None:
        """Requested timeouts are granted up to the cap; absent or odd ones get 86400."""
        for requested, granted in [
            (None, "Second-86400"),
            ("Second-100000", "Second-86400"),
            ("Seconds-600", "Second-86400"),
            ("Second-infinite", "Second-86400"),
            ("infinite", "Second-86400"),
            ("Second-0", "Second-86400"),
            ("second-30", "Second-30"),
        ]:
            request = self.subscribe(timeout=requested)
            self.assertEqual(response_header(request, "TIMEOUT"), granted, requested)

    def test_max_timeout_caps_default_too(self) -> None:
        """With max_timeout 3600 a request without TIMEOUT gets 3600."""
        self.manager.max_timeout = 3600
        self.assertEqual(response_header(self.subscribe(timeout=None), "TIMEOUT"), "Second-3600")
        request = self.subscribe(timeout="Second-7200")
        self.assertEqual(response_header(request, "TIMEOUT"), "Second-3600")

    def test_initial_notify_follows_the_answer(self) -> None:
        """The SEQ 0 NOTIFY with the full state leaves only after the answer was written."""
        self.subscribe(callback="<http://127.0.0.1:4000/sonos/rc>")
        self.assertEqual(self.notifier.sent, [])
        self.clock.advance(0)
        [sent] = self.notifier.sent
        self.assertEqual((sent.host, sent.port, sent.bind_address), ("127.0.0.1", 4000, SPEAKER))
        notify = sent.notify
        self.assertEqual(notify.request_line, "NOTIFY /sonos/rc HTTP/1.1")
        self.assertEqual(notify.seq, 0)
        self.assertEqual(notify.body, build_propertyset("RenderingControl", RC_STATE))

    def test_notify_headers_as_modern_firmware(self) -> None:
        """NOTIFY headers come in the modern capture's order, X-SONOS-SERVICETYPE last."""
        self.subscribe("MR_ConnectionManager")
        self.clock.advance(0)
        notify = self.notifier.sent[0].notify
        self.assertEqual(
            [name for name, _ in notify.headers],
            [
                *("HOST", "CONNECTION", "CONTENT-TYPE", "CONTENT-LENGTH", "NT", "NTS"),
                *("SID", "SEQ", "X-SONOS-SERVICETYPE"),
            ],
        )
        self.assertEqual(
            notify.header,
            {
                "HOST": "127.0.0.1:4000",
                "CONNECTION": "close",
                "CONTENT-TYPE": "text/xml",
                "CONTENT-LENGTH": str(len(notify.body)),
                "NT": "upnp:event",
                "NTS": "upnp:propchange",
                "SID": f"uuid:{UID}_sub0000000001",
                "SEQ": "0",
                "X-SONOS-SERVICETYPE": "ConnectionManager",
            },
        )

    def test_renewal_keeps_sid_and_seq(self) -> None:
        """A renewal answers the same SID, sends no new initial event, and SEQ continues."""
        sid = self.subscribed()
        request = self.renew(sid, timeout="Second-900")
        self.assertEqual(request.responseCode, 200)
        self.assertEqual(response_header(request, "SID"), sid)
        self.assertEqual(response_header(request, "TIMEOUT"), "Second-900")
        self.assertEqual(response_header(request, "Server"), SERVER)
        self.clock.advance(0)
        self.assertEqual(len(self.notifier.sent), 1)
        self.manager.notify("RenderingControl", {"Bass": "3"})
        self.assertEqual(self.notifier.seqs(), [0, 1])

    def test_renewal_postpones_expiry(self) -> None:
        """A subscription renewed before its timeout outlives the first timeout."""
        sid = self.subscribed(timeout="Second-100")
        self.clock.advance(90)
        self.assertEqual(self.renew(sid, timeout="Second-100").responseCode, 200)
        self.clock.advance(90)
        self.assertEqual([s["sid"] for s in self.manager.subscriptions()], [sid])
        self.clock.advance(10)
        self.assertEqual(self.manager.subscriptions(), [])

    def test_expired_subscription_is_gone(self) -> None:
        """Not renewed in time, a subscription is dropped: no NOTIFY, renewal gets 412."""
        sid = self.subscribed(timeout="Second-100")
        self.clock.advance(100)
        self.assertEqual(self.manager.subscriptions(), [])
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(len(self.notifier.sent), 1)
        self.assertEqual(self.renew(sid).responseCode, 412)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_renewal_of_unknown_or_other_service_sid(self) -> None:
        """Renewing an unknown SID, or a SID of another service, gets 412."""
        sid = self.subscribed("RenderingControl")
        self.assertEqual(self.renew(f"uuid:{UID}_sub0000000099").responseCode, 412)
        self.assertEqual(self.renew(sid, service="AVTransport").responseCode, 412)

    def test_sid_with_nt_or_callback_is_400(self) -> None:
        """SID together with NT or CALLBACK is a bad request, for SUBSCRIBE and UNSUBSCRIBE."""
        sid = self.subscribed()
        self.assertEqual(self.subscribe(SID=sid).responseCode, 400)
        self.assertEqual(self.subscribe(callback=None, SID=sid).responseCode, 400)
        self.assertEqual(self.unsubscribe(sid, NT="upnp:event").responseCode, 400)
        self.assertEqual(self.unsubscribe(sid, CALLBACK="<http://x:1/>").responseCode, 400)
        self.assertEqual(len(self.manager.subscriptions()), 1)

    def test_bad_callback_or_nt_is_412(self) -> None:
        """A missing or invalid CALLBACK, one off this machine (the simulator sends nothing
        beyond loopback), or NT other than upnp:event, gets 412; nothing is sent."""
        for kwargs in [
            {"callback": None},
            {"callback": "http://127.0.0.1:4000/"},
            {"callback": "<https://127.0.0.1:4000/>"},
            {"callback": "<http://192.0.2.20:4000/>"},  # TEST-NET-1: nobody's address
            {"callback": "<http://kitchen.lan:4000/>"},
            {"callback": "<http://192.0.2.1:4000/><http://127.0.0.1:4000/>"},
            {"nt": None},
            {"nt": "upnp:propchange"},
        ]:
            request = self.subscribe(**kwargs)  # type: ignore[arg-type]
            self.assertEqual(request.responseCode, 412, kwargs)
            self.assertEqual(response_header(request, "Server"), SERVER)
        self.assertEqual(self.manager.subscriptions(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.notifier.sent, [])
        for loopback in ("<http://127.9.8.7:4000/>", "<http://localhost:4000/>"):
            self.assertEqual(self.subscribe(callback=loopback).responseCode, 200)

    def test_unsubscribe(self) -> None:
        """UNSUBSCRIBE answers 200 once, then 412; without SID 412; timers are cancelled."""
        sid = self.subscribed()
        self.assertEqual(self.unsubscribe(sid).responseCode, 200)
        self.assertEqual(self.unsubscribe(sid).responseCode, 412)
        self.assertEqual(self.unsubscribe(None).responseCode, 412)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(len(self.notifier.sent), 1)

    def test_unsubscribe_before_initial_notify(self) -> None:
        """A subscription cancelled before its initial NOTIFY left never sends it."""
        request = self.subscribe()
        sid = response_header(request, "SID")
        self.unsubscribe(sid)
        self.clock.advance(0)
        self.assertEqual(self.notifier.sent, [])


class NotifyTests(_ManagerTestCase):
    """NOTIFY delivery: SEQ, ordering, failures, pause, reboot, address changes."""

    def test_seq_counts_per_subscription_and_body_is_built_once(self) -> None:
        """Each subscription has its own SEQ; one notify() builds one body for all."""
        built: list[str] = []

        def counting(service: str, variables: Mapping[str, EventValue]) -> bytes:
            built.append(service)
            return build_propertyset(service, variables)

        first = self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.notifier.answer_all()
        second = self.subscribed()
        self.patch(gena, "build_propertyset", counting)
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.notifier.answer_all()
        self.assertEqual(built, ["RenderingControl"])
        last = {sent.notify.sid: sent.notify.seq for sent in self.notifier.sent}
        self.assertEqual(last, {first: 2, second: 1})
        bodies = {sent.notify.body for sent in self.notifier.sent[-2:]}
        self.assertEqual(bodies, {build_propertyset("RenderingControl", {"Bass": "2"})})

    def test_other_services_are_not_notified(self) -> None:
        """A change of one service goes only to that service's subscriptions."""
        self.subscribed("AVTransport")
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.notify("Queue", {"UpdateID": "1"})
        self.assertEqual(len(self.notifier.sent), 1)

    def test_one_notify_at_a_time_in_order(self) -> None:
        """A subscription's NOTIFYs go one at a time, each after the previous was answered."""
        self.subscribe()
        self.clock.advance(0)
        for bass in "123":
            self.manager.notify("RenderingControl", {"Bass": bass})
        self.assertEqual(self.notifier.seqs(), [0])
        self.notifier.answer()
        self.assertEqual(self.notifier.seqs(), [0, 1])
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 1, 2, 3])

    def test_notify_before_initial_queues_behind_it(self) -> None:
        """A change right after subscribing is sent after the SEQ 0 NOTIFY, as SEQ 1."""
        self.subscribe()
        self.manager.notify("RenderingControl", {"Bass": "5"})
        self.clock.advance(0)
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 1])

    def test_seq_wraps_to_one(self) -> None:
        """After SEQ 4294967295 comes 1, never 0."""
        self.subscribed()
        self.manager.faults.next_seq = MAX_SEQ
        for _ in range(3):
            self.manager.notify("RenderingControl", {"Bass": "1"})
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs()[1:], [MAX_SEQ, 1, 2])

    def test_failed_notify_does_not_stop_the_next(self) -> None:
        """A refused or non-200 NOTIFY is counted and logged at warn level; later ones still
        go; sub kept."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.notifier.sent[-1].result.errback(ConnectionRefusedError())
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.notifier.answer(500)
        self.manager.notify("RenderingControl", {"Bass": "3"})
        self.notifier.answer()
        self.assertEqual(self.notifier.seqs(), [0, 1, 2, 3])
        self.assertEqual(self.manager.stats()["failed"], 2)
        self.assertEqual(self.manager.stats()["sent"], 3)  # answered, whatever the status
        self.assertEqual(self.manager.stats()["subscriptions"], 1)
        self.assertEqual(len(self.flushLoggedErrors()), 0)
        warned = [
            (event["seq"], event["problem"])
            for event in events
            if event.get("log_namespace") == "sonosd.sim.gena"
            and event["log_level"] is LogLevel.warn
        ]
        self.assertEqual(warned[0][0], 1)
        self.assertIn("failed", warned[0][1])
        self.assertEqual(warned[1], (2, "answered 500"))
        self.assertEqual(len(warned), 2)

    def test_pause_consumes_seq_and_sends_nothing(self) -> None:
        """While paused nothing is sent and nothing is replayed; SEQ moves on (a gap)."""
        self.subscribed()
        self.manager.pause()
        self.assertTrue(self.manager.paused)
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.manager.resume()
        self.assertEqual(self.notifier.seqs(), [0])
        self.manager.notify("RenderingControl", {"Bass": "3"})
        self.assertEqual(self.notifier.seqs(), [0, 3])

    def test_pause_discards_queued_notifies(self) -> None:
        """NOTIFYs queued behind an in-flight one are discarded by pause()."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.manager.pause()
        self.notifier.answer_all()
        self.manager.resume()
        self.assertEqual(self.notifier.seqs(), [0, 1])

    def test_forget_all_is_a_reboot(self) -> None:
        """forget_all drops every subscription and timer and restarts the SID counter."""
        old = self.subscribed()
        self.subscribed("AVTransport")
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(self.notifier.in_flight, 1)
        self.successResultOf(self.manager.forget_all())
        self.assertEqual(self.notifier.in_flight, 0)  # aborted
        self.assertEqual(self.manager.subscriptions(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.renew(old).responseCode, 412)
        request = self.subscribe("AVTransport")
        self.assertEqual(response_header(request, "SID"), f"uuid:{UID}_sub0000000001")

    def test_unsubscribe_all_keeps_the_sid_counter(self) -> None:
        """unsubscribe_all (UPnP switched off) drops every subscription and timer without a
        NOTIFY; renewals of the old SIDs get 412 and the next SID counts on."""
        old = self.subscribed()
        self.subscribed("AVTransport")
        sent = len(self.notifier.sent)
        self.manager.unsubscribe_all()
        self.assertEqual(self.manager.subscriptions(), [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(len(self.notifier.sent), sent)
        self.assertEqual(self.renew(old).responseCode, 412)
        request = self.subscribe("AVTransport")
        self.assertEqual(response_header(request, "SID"), f"uuid:{UID}_sub0000000003")

    def test_backlog_counts_queued_notifies(self) -> None:
        """backlog() counts the NOTIFYs waiting behind a subscription's in-flight one, not
        the in-flight one itself."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual((self.notifier.in_flight, self.manager.backlog()), (1, 0))
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.manager.notify("RenderingControl", {"Bass": "3"})
        self.assertEqual(self.manager.backlog(), 2)
        self.notifier.answer()
        self.assertEqual(self.manager.backlog(), 1)
        self.notifier.answer_all()
        self.assertEqual(self.manager.backlog(), 0)

    def test_address_change(self) -> None:
        """After an address change NOTIFYs leave from the new address."""
        self.subscribed()
        self.manager.address = "127.9.9.3"
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual([s.bind_address for s in self.notifier.sent], [SPEAKER, "127.9.9.3"])

    def test_subscriptions_listing(self) -> None:
        """subscriptions() lists sid, service, callback, seq, timeout and expires_in."""
        sid = self.subscribed(callback="<http://127.0.0.1:4000/cb>", timeout="Second-300")
        self.clock.advance(100)
        self.assertEqual(
            self.manager.subscriptions(),
            [
                {
                    "sid": sid,
                    "service": "RenderingControl",
                    "callback": "http://127.0.0.1:4000/cb",
                    "seq": 0,
                    "timeout": 300,
                    "expires_in": 200.0,
                }
            ],
        )

    def test_stop_leaves_nothing_behind(self) -> None:
        """stop() cancels every timer and pending NOTIFY; later changes send nothing."""
        self.subscribe()
        self.subscribe("AVTransport")
        self.manager.faults.delay = 3.0
        self.clock.advance(0)
        self.successResultOf(self.manager.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(self.notifier.sent, [])
        self.assertEqual(self.subscribe().responseCode, 503)

    def test_after_stop_faults_hold_no_request(self) -> None:
        """After stop() a new SUBSCRIBE gets 503 and a renewal of an old SID 412, whatever
        hang, status or answer-delay fault is set: stop() has already aborted the held
        requests, so one held now would stay open for good."""
        sid = self.subscribed()
        self.successResultOf(self.manager.stop())
        faults = self.manager.faults
        faults.subscribe_hang = faults.renew_hang = True
        self.assertEqual(self.subscribe().responseCode, 503)
        faults.subscribe_hang, faults.subscribe_status, faults.answer_delay = False, 500, 1.0
        self.assertEqual(self.subscribe().responseCode, 503)
        renewal = gena_request(b"SUBSCRIBE", {"SID": sid})
        self.assertEqual(self.manager.render_subscribe(renewal, "RenderingControl"), b"")
        self.assertEqual(renewal.responseCode, 412)
        self.assertEqual(self.manager.held_requests, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_pause_keeps_the_expiry_timers(self) -> None:
        """A speaker offline longer than a subscription's timeout loses it: back online, it
        sends nothing to it and a renewal gets 412."""
        sid = self.subscribed(timeout="Second-100")
        self.manager.pause()
        self.clock.advance(99)
        self.assertEqual([s["sid"] for s in self.manager.subscriptions()], [sid])
        self.clock.advance(1)
        self.assertEqual(self.manager.subscriptions(), [])
        self.manager.resume()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.assertEqual(self.notifier.seqs(), [0])
        self.assertEqual(self.renew(sid).responseCode, 412)

    def test_send_unknown_sid(self) -> None:
        """send_unknown_sid sends the full state under an unheld SID and reports the status."""
        sid = self.subscribed()
        result = self.manager.send_unknown_sid("http://127.0.0.1:4000/x", "RenderingControl")
        notify = self.notifier.sent[-1].notify
        self.assertNotEqual(notify.sid, sid)
        self.assertRegex(notify.sid, rf"^uuid:{UID}_sub\d{{10}}$")
        self.assertEqual(notify.request_line, "NOTIFY /x HTTP/1.1")
        self.assertEqual(notify.seq, 1)
        self.assertEqual(self.notifier.sent[-1].bind_address, SPEAKER)
        self.assertEqual(notify.body, build_propertyset("RenderingControl", RC_STATE))
        self.notifier.answer(412)
        self.assertEqual(self.successResultOf(result), 412)
        with self.assertRaises(ValueError):
            self.manager.send_unknown_sid("ftp://x/", "RenderingControl")
        sent = len(self.notifier.sent)
        with self.assertRaisesRegex(ValueError, "^callback: expected a host on this machine .*2.9"):
            self.manager.send_unknown_sid("http://192.0.2.9:4000/x", "RenderingControl")
        self.assertEqual(len(self.notifier.sent), sent)


class FaultTests(_ManagerTestCase):
    """Fault switches, in memory (their wire effect is in GenaWireTests)."""

    def test_drop_consumes_seq(self) -> None:
        """drop_next NOTIFYs are not sent, but their SEQ is used."""
        self.subscribed()
        self.manager.faults.drop_next = 2
        for bass in "123":
            self.manager.notify("RenderingControl", {"Bass": bass})
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 3])
        self.assertEqual(self.manager.faults.drop_next, 0)
        self.assertEqual(self.manager.stats()["dropped"], 2)

    def test_counters_apply_to_the_initial_notify_too(self) -> None:
        """drop_next and duplicate_next set before a SUBSCRIBE apply to its SEQ 0 NOTIFY:
        dropped, the subscriber's first NOTIFY is SEQ 1; duplicated, SEQ 0 arrives twice."""
        self.manager.faults.drop_next = 1
        self.subscribe()
        self.clock.advance(0)
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [1])
        self.assertEqual(self.manager.stats()["dropped"], 1)
        self.manager.faults.duplicate_next = 1
        self.subscribe("AVTransport")
        self.clock.advance(0)
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [1, 0, 0])
        self.assertEqual(self.notifier.sent[1].request, self.notifier.sent[2].request)

    def test_next_seq_jumps_once_after_the_initial_notify(self) -> None:
        """next_seq leaves the SEQ 0 NOTIFY alone, numbers the next one, and is used once."""
        self.manager.faults.next_seq = 7
        self.subscribe()
        self.clock.advance(0)
        for bass in "12":
            self.manager.notify("RenderingControl", {"Bass": bass})
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 7, 8])
        self.assertIsNone(self.manager.faults.next_seq)

    def test_subscribe_status(self) -> None:
        """subscribe_status answers valid new SUBSCRIBEs with that status and creates nothing."""
        self.manager.faults.subscribe_status = 503
        self.assertEqual(self.subscribe().responseCode, 503)
        self.assertEqual(self.manager.subscriptions(), [])
        self.assertEqual(self.subscribe(nt=None).responseCode, 412)

    def test_renew_status(self) -> None:
        """renew_status answers renewals with that status; the subscription keeps its timer."""
        sid = self.subscribed(timeout="Second-100")
        self.manager.faults.renew_status = 500
        self.clock.advance(50)
        self.assertEqual(self.renew(sid).responseCode, 500)
        self.assertEqual(self.manager.subscriptions()[0]["expires_in"], 50.0)
        self.assertEqual(self.renew(f"uuid:{UID}_sub0000000099").responseCode, 500)

    def test_hangs_hold_the_request(self) -> None:
        """subscribe_hang and renew_hang leave the request unanswered."""
        sid = self.subscribed()
        self.manager.faults.subscribe_hang = True
        self.manager.faults.renew_hang = True
        request = gena_request(
            b"SUBSCRIBE", {"CALLBACK": "<http://127.0.0.1:4000>", "NT": "upnp:event"}
        )
        self.assertEqual(self.manager.render_subscribe(request, "RenderingControl"), NOT_DONE_YET)
        renewal = gena_request(b"SUBSCRIBE", {"SID": sid})
        self.assertEqual(self.manager.render_subscribe(renewal, "RenderingControl"), NOT_DONE_YET)
        self.assertEqual((request.finished, renewal.finished), (0, 0))
        self.assertIsNone(request.responseCode)
        self.assertEqual(len(self.manager.subscriptions()), 1)
        self.successResultOf(self.manager.stop())

    def test_unsubscribe_status_and_hang_keep_the_subscription(self) -> None:
        """unsubscribe_status answers an UNSUBSCRIBE of a known SID with that status,
        unsubscribe_hang never answers it; either way the speaker keeps the subscription. An
        unknown SID still gets its 412."""
        sid = self.subscribed()
        self.manager.faults.unsubscribe_status = 500
        self.assertEqual(self.unsubscribe(sid).responseCode, 500)
        self.assertEqual(self.unsubscribe("uuid:nobody").responseCode, 412)
        self.manager.faults.reset()
        self.manager.faults.unsubscribe_hang = True
        request = gena_request(b"UNSUBSCRIBE", {"SID": sid})
        self.assertEqual(self.manager.render_unsubscribe(request, "RenderingControl"), NOT_DONE_YET)
        self.assertIsNone(request.responseCode)
        self.assertEqual(self.manager.held_requests, 1)
        self.assertEqual([s["sid"] for s in self.manager.subscriptions()], [sid])
        self.successResultOf(self.manager.stop())
        self.assertEqual(self.manager.held_requests, 0)

    def test_answer_only_picks_the_answers_made_hostile(self) -> None:
        """answer_only "UNSUBSCRIBE" leaves SUBSCRIBE answers as speakers write them and
        makes the UNSUBSCRIBE answer hostile; "SUBSCRIBE" the other way round."""
        faults = self.manager.faults
        faults.answer_only, faults.answer_body_bytes = "UNSUBSCRIBE", 500
        faults.answer_timeout = "garbage"
        subscribed = self.subscribe()
        self.assertEqual(response_header(subscribed, "TIMEOUT"), "Second-600")
        self.assertEqual(response_header(subscribed, "Content-Length"), "0")
        sid = response_header(subscribed, "SID")
        assert sid is not None
        request = gena_request(b"UNSUBSCRIBE", {"SID": sid})
        self.assertEqual(self.manager.render_unsubscribe(request, "RenderingControl"), b" " * 500)
        # An UNSUBSCRIBE answer has no TIMEOUT: the fault adds one.
        self.assertEqual(response_header(request, "TIMEOUT"), "garbage")
        faults.answer_only, faults.answer_body_bytes = "SUBSCRIBE", 0
        subscribed = self.subscribe()
        self.assertEqual(response_header(subscribed, "TIMEOUT"), "garbage")
        sid = response_header(subscribed, "SID")
        assert sid is not None
        self.assertEqual(response_header(self.renew(sid), "TIMEOUT"), "garbage")  # renewals too
        self.assertEqual(self.unsubscribe(sid).responseCode, 200)
        self.assertEqual(self.manager.subscriptions(), [])

    def test_reset(self) -> None:
        """reset() clears every fault."""
        faults = self.manager.faults
        faults.drop_next, faults.delay, faults.renew_hang = 3, 1.5, True
        faults.reset()
        self.assertEqual(faults, gena.GenaFaults())

    def test_delay_holds_the_connection_attempt(self) -> None:
        """With delay set, the NOTIFY connection is only opened once the delay has passed."""
        reactor = MemoryReactorClock()
        manager = SubscriptionManager(reactor, UID, SPEAKER, full_state, SERVER)
        manager.faults.delay = 5.0
        request = gena_request(
            b"SUBSCRIBE", {"CALLBACK": "<http://127.0.0.1:4000>", "NT": "upnp:event"}
        )
        manager.render_subscribe(request, "RenderingControl")
        reactor.advance(0)
        reactor.advance(4.9)
        self.assertEqual(reactor.tcpClients, [])
        reactor.advance(0.1)
        [(host, port, _factory, _timeout, bind)] = reactor.tcpClients
        self.assertEqual((host, port, bind), ("127.0.0.1", 4000, (SPEAKER, 0)))
        manager.stop()

    def test_default_notify_timeout_is_30_seconds(self) -> None:
        """By default a subscriber has 30 s to answer a NOTIFY; one that never does is a
        failed NOTIFY (counted) and the subscription is kept."""
        reactor = MemoryReactorClock()
        manager = SubscriptionManager(reactor, UID, SPEAKER, full_state, SERVER)
        request = gena_request(
            b"SUBSCRIBE", {"CALLBACK": "<http://127.0.0.1:4000>", "NT": "upnp:event"}
        )
        manager.render_subscribe(request, "RenderingControl")
        reactor.advance(0)
        self.assertEqual(len(reactor.tcpClients), 1)
        reactor.advance(29.9)
        self.assertEqual(manager.stats()["failed"], 0)
        reactor.advance(0.1)
        self.assertEqual(manager.stats()["failed"], 1)
        self.assertEqual(manager.stats()["subscriptions"], 1)
        manager.stop()

    def test_default_moderation_is_two_tenths_of_a_second(self) -> None:
        """Without a moderation argument, LastChange changes 0.1 s apart are one NOTIFY
        sent 0.2 s after the first."""
        manager = SubscriptionManager(
            self.clock, UID, SPEAKER, full_state, SERVER, notifier=self.notifier
        )
        self.manager = manager
        self.subscribed()
        manager.notify("RenderingControl", {"Bass": "1"})
        self.clock.advance(0.1)
        manager.notify("RenderingControl", {"Bass": "2"})
        self.clock.advance(0.09)
        self.assertEqual(self.notifier.seqs(), [0])
        self.clock.advance(0.02)
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 1])
        self.assertEqual(parse_event_xml(self.notifier.sent[1].notify.body), {"bass": "2"})

    def test_manager_default_notifier_provides_interface(self) -> None:
        """The default notifier provides INotifier."""
        manager = SubscriptionManager(MemoryReactorClock(), UID, SPEAKER, full_state, SERVER)
        self.assertTrue(verifyObject(INotifier, manager._notifier))


class ModerationTests(_ManagerTestCase):
    """LastChange moderation: one window of 0.2 s per service, changes merged (UPnP AV)."""

    moderation = 0.2

    def bodies(self) -> list[dict[str, Any]]:
        """The parsed bodies of every NOTIFY after the initial one, answered."""
        self.notifier.answer_all()
        return [parse_event_xml(sent.notify.body) for sent in self.notifier.sent[1:]]

    def test_changes_within_a_window_become_one_event(self) -> None:
        """Two changes 0.1 s apart reach the subscriber as one NOTIFY with the final values."""
        self.subscribed("AVTransport")
        self.manager.notify("AVTransport", {"TransportState": "TRANSITIONING"})
        self.clock.advance(0.1)
        self.manager.notify("AVTransport", {"TransportState": "PLAYING"})
        self.assertEqual(self.bodies(), [])
        self.clock.advance(0.1)
        self.assertEqual(self.bodies(), [{"transport_state": "PLAYING"}])
        self.assertEqual(self.notifier.seqs(), [0, 1])

    def test_merged_variables_keep_body_order(self) -> None:
        """A window that merges several changes writes its variables in full-state order."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "4"})
        self.manager.notify("RenderingControl", {"Volume": {"Master": "9", "LF": "100"}})
        self.clock.advance(0.2)
        self.notifier.answer_all()
        body = self.notifier.sent[1].notify.body
        self.assertLess(body.index(b"Volume"), body.index(b"Bass"))

    def test_channels_changed_apart_in_a_window_are_all_sent(self) -> None:
        """Changes of different channels of one variable within a window each reach the
        subscriber (the latest value per channel wins); none hides the other."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Volume": {"Master": "33"}})
        self.manager.notify("RenderingControl", {"Volume": {"LF": "90"}})
        self.manager.notify("RenderingControl", {"Volume": {"Master": "34"}, "Bass": "2"})
        self.clock.advance(0.2)
        self.assertEqual(self.bodies(), [{"volume": {"Master": "34", "LF": "90"}, "bass": "2"}])

    def test_at_most_one_event_per_window(self) -> None:
        """Changes every 0.05 s for 1 s give one NOTIFY per 0.2 s window, the last value last."""
        self.subscribed()
        for step in range(20):
            self.manager.notify("RenderingControl", {"Bass": str(step % 10)})
            self.clock.advance(0.05)
        self.clock.advance(0.2)
        bodies = self.bodies()
        self.assertEqual(len(bodies), 5)
        self.assertEqual(bodies[-1], {"bass": "9"})

    def test_plain_variable_services_are_not_moderated(self) -> None:
        """A ZoneGroupTopology change goes out at once."""
        self.subscribed("ZoneGroupTopology")
        self.manager.notify("ZoneGroupTopology", {"ZoneGroupName": "Den"})
        self.assertEqual(self.bodies(), [{"zone_group_name": "Den"}])

    def test_one_window_serves_every_subscription(self) -> None:
        """Two subscriptions of a service share one window and one body, each with its SEQ."""
        self.subscribed()
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.assertEqual(len(self.manager._windows), 1)
        self.clock.advance(0.2)
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 0, 1, 1])
        self.assertEqual(self.notifier.sent[2].notify.body, self.notifier.sent[3].notify.body)

    def test_reboot_and_stop_drop_the_window(self) -> None:
        """forget_all() and stop() cancel a pending window: nothing is sent afterwards."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.forget_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.manager.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unsubscribe_all_drops_the_window(self) -> None:
        """unsubscribe_all() (UPnP switched off) cancels a pending window: no timer is left."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.unsubscribe_all()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.subscribed()
        self.clock.advance(0.2)
        self.assertEqual(self.notifier.seqs(), [0, 0])

    def test_window_changes_are_no_backlog(self) -> None:
        """Changes waiting in an open moderation window are not counted by backlog()."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.assertEqual((self.manager.backlog(), self.notifier.in_flight), (0, 0))
        self.clock.advance(0.2)
        self.assertEqual((self.manager.backlog(), self.notifier.in_flight), (0, 1))

    def test_paused_window_consumes_seq(self) -> None:
        """A window that closes while the speaker is offline consumes one SEQ, sends nothing."""
        self.subscribed()
        self.manager.notify("RenderingControl", {"Bass": "1"})
        self.manager.pause()
        self.clock.advance(0.2)
        self.manager.resume()
        self.manager.notify("RenderingControl", {"Bass": "2"})
        self.clock.advance(0.2)
        self.notifier.answer_all()
        self.assertEqual(self.notifier.seqs(), [0, 2])


@given(st.one_of(st.none(), st.text(max_size=30)), st.integers(min_value=1, max_value=10**6))
def test_parse_timeout_is_always_a_sane_grant(header: str | None, cap: int) -> None:
    """Any TIMEOUT header yields a grant between 1 and the cap; never infinite."""
    granted = parse_timeout(header, cap)
    assert 1 <= granted <= cap
    match = re.fullmatch(r"\s*Second-(\d{1,10})\s*", header or "", re.IGNORECASE)
    if match and int(match.group(1)) >= 1:
        assert granted == min(int(match.group(1)), cap)
    else:
        assert granted == min(86400, cap)


# -- on the wire ----------------------------------------------------------------------------

EVENT_URLS = {
    b"/MediaRenderer/RenderingControl/Event": "RenderingControl",
    b"/MediaRenderer/AVTransport/Event": "AVTransport",
    b"/ZoneGroupTopology/Event": "ZoneGroupTopology",
}

# Just enough of DeviceProperties for SoCo's household_id (which subscribe() needs).
DEVICE_PROPERTIES_SCPD = (
    b'<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion>'
    b"<major>1</major><minor>0</minor></specVersion><actionList><action><name>GetHouseholdID"
    b"</name><argumentList><argument><name>CurrentHouseholdID</name><direction>out</direction>"
    b"<relatedStateVariable>HouseholdID</relatedStateVariable></argument></argumentList>"
    b'</action></actionList><serviceStateTable><stateVariable sendEvents="no"><name>'
    b"HouseholdID</name><dataType>string</dataType></stateVariable></serviceStateTable></scpd>"
)
HOUSEHOLD_RESPONSE = (
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle='
    b'"http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:GetHouseholdIDResponse xmlns:u='
    b'"urn:schemas-upnp-org:service:DeviceProperties:1"><CurrentHouseholdID>Sonos_gena_test'
    b"</CurrentHouseholdID></u:GetHouseholdIDResponse></s:Body></s:Envelope>"
)


class SpeakerSite(Resource):
    """A minimal speaker site: event URLs routed to the manager (plus SoCo's household id)."""

    isLeaf = True

    def __init__(self, manager: SubscriptionManager) -> None:
        super().__init__()
        self.manager = manager
        self.requests: list[Deferred[None]] = []
        self.last: Request | None = None

    def _seen(self, request: Request) -> None:
        self.last = request
        waiters, self.requests = self.requests, []
        for waiter in waiters:
            waiter.callback(None)

    def render_SUBSCRIBE(self, request: Request) -> bytes | int:
        answer = self.manager.render_subscribe(request, EVENT_URLS[request.path])
        self._seen(request)
        return answer

    def render_UNSUBSCRIBE(self, request: Request) -> bytes:
        answer = self.manager.render_unsubscribe(request, EVENT_URLS[request.path])
        self._seen(request)
        return answer

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/xml")
        return DEVICE_PROPERTIES_SCPD

    def render_POST(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b'text/xml; charset="utf-8"')
        return HOUSEHOLD_RESPONSE


@attrs.define
class Wire:
    """A manager behind a real site on its own loopback address, and a real subscriber."""

    manager: SubscriptionManager
    site: SpeakerSite
    speaker: str
    site_port: int
    receiver: Receiver
    receiver_port: int
    notifier: Notifier

    def url(self, path: bytes = b"/MediaRenderer/RenderingControl/Event") -> bytes:
        return b"http://%s:%d%s" % (self.speaker.encode(), self.site_port, path)

    @property
    def callback(self) -> bytes:
        return b"<http://127.0.0.1:%d/notify/rc>" % self.receiver_port


class GenaWireTests(TestCase):
    """SUBSCRIBE and NOTIFY over real loopback TCP, faults included."""

    def start(
        self,
        answer: Callable[[Notify], int] = lambda notify: 200,
        port: int = 0,
        clock: Clock | None = None,
        state: Callable[[str], Mapping[str, EventValue]] = full_state,
        moderation: float = 0.0,
    ) -> Wire:
        """A wire; with ``clock`` the manager's timers (initial NOTIFY, delay, expiry,
        moderation) run on it while the NOTIFYs still travel over real TCP."""
        from twisted.internet import reactor

        speaker = free_loopback_base()
        notifier = Notifier(reactor, 10)
        manager = SubscriptionManager(
            clock or reactor,
            UID,
            speaker,
            state,
            SERVER,
            notifier=notifier,
            moderation=moderation,
        )
        self.addCleanup(manager.stop)
        site = SpeakerSite(manager)
        listening = reactor.listenTCP(port, Site(site), interface=speaker)
        self.addCleanup(listening.stopListening)
        receiver = Receiver(answer)
        receiving = reactor.listenTCP(0, receiver, interface="127.0.0.1")
        self.addCleanup(receiving.stopListening)
        return Wire(
            manager,
            site,
            speaker,
            listening.getHost().port,
            receiver,
            receiving.getHost().port,
            notifier,
        )

    async def subscribe(self, wire: Wire, timeout: bytes = b"Second-600") -> str:
        status, headers = await gena_call(
            b"SUBSCRIBE",
            wire.url(),
            {b"CALLBACK": wire.callback, b"NT": b"upnp:event", b"TIMEOUT": timeout},
        )
        self.assertEqual(status, 200)
        sid = first(headers, b"SID")
        assert sid is not None
        return sid

    async def test_initial_then_sequence_from_the_speaker_address(self) -> None:
        """The subscriber gets SEQ 0 (full state) then 1, 2 in order, from the speaker's address."""
        wire = self.start()
        status, headers = await gena_call(
            b"SUBSCRIBE",
            wire.url(),
            {b"CALLBACK": wire.callback, b"NT": b"upnp:event", b"TIMEOUT": b"Second-600"},
        )
        self.assertEqual(status, 200)
        sid = first(headers, b"SID")
        self.assertEqual(sid, f"uuid:{UID}_sub0000000001")
        self.assertEqual(first(headers, b"TIMEOUT"), "Second-600")
        self.assertEqual(first(headers, b"Server"), SERVER)
        await wire.receiver.wait_for(1)
        wire.manager.notify("RenderingControl", {"Volume": {"Master": "33"}})
        wire.manager.notify("RenderingControl", {"Mute": {"Master": "1"}})
        received = await wire.receiver.wait_for(3)
        self.assertEqual([r.notify.seq for r in received], [0, 1, 2])
        self.assertEqual({r.peer for r in received}, {wire.speaker})
        for r in received:
            self.assertEqual(r.notify.request_line, "NOTIFY /notify/rc HTTP/1.1")
            self.assertEqual(r.notify.header["SID"], sid)
            self.assertEqual(r.notify.header["HOST"], f"127.0.0.1:{wire.receiver_port}")
            self.assertEqual(r.notify.header["NT"], "upnp:event")
            self.assertEqual(r.notify.header["NTS"], "upnp:propchange")
            self.assertEqual(r.notify.header["CONTENT-LENGTH"], str(len(r.notify.body)))
            self.assertEqual(r.notify.headers[-1], ("X-SONOS-SERVICETYPE", "RenderingControl"))
        self.assertEqual(parse_event_xml(received[0].notify.body)["bass"], "0")
        self.assertEqual(parse_event_xml(received[1].notify.body), {"volume": {"Master": "33"}})
        self.assertEqual(parse_event_xml(received[2].notify.body), {"mute": {"Master": "1"}})

    async def test_a_localhost_callback_is_notified(self) -> None:
        """A CALLBACK naming localhost is taken (docs/simulator-gena.md) and its SEQ 0
        NOTIFY reaches the subscriber listening on loopback."""
        wire = self.start()
        callback = b"<http://localhost:%d/notify/rc>" % wire.receiver_port
        status, _ = await gena_call(
            b"SUBSCRIBE", wire.url(), {b"CALLBACK": callback, b"NT": b"upnp:event"}
        )
        self.assertEqual(status, 200)
        [received] = await wire.receiver.wait_for(1)
        self.assertEqual((received.notify.seq, received.peer), (0, wire.speaker))
        self.assertEqual(received.notify.header["HOST"], f"localhost:{wire.receiver_port}")

    async def test_renew_and_unsubscribe(self) -> None:
        """Renewal keeps the SID without a new initial event; UNSUBSCRIBE works once."""
        wire = self.start()
        sid = await self.subscribe(wire)
        await wire.receiver.wait_for(1)
        status, headers = await gena_call(
            b"SUBSCRIBE", wire.url(), {b"SID": sid.encode(), b"TIMEOUT": b"Second-1200"}
        )
        self.assertEqual((status, first(headers, b"SID")), (200, sid))
        self.assertEqual(first(headers, b"TIMEOUT"), "Second-1200")
        status, _ = await gena_call(b"UNSUBSCRIBE", wire.url(), {b"SID": sid.encode()})
        self.assertEqual(status, 200)
        status, _ = await gena_call(b"UNSUBSCRIBE", wire.url(), {b"SID": sid.encode()})
        self.assertEqual(status, 412)
        status, _ = await gena_call(
            b"SUBSCRIBE", wire.url(), {b"SID": sid.encode(), b"NT": b"upnp:event"}
        )
        self.assertEqual(status, 400)
        self.assertEqual(wire.receiver.seqs(), [0])

    async def test_drop_shows_as_a_seq_gap(self) -> None:
        """drop_next: the subscriber sees a SEQ gap."""
        wire = self.start()
        await self.subscribe(wire)
        await wire.receiver.wait_for(1)
        wire.manager.faults.drop_next = 1
        for bass in "123":
            wire.manager.notify("RenderingControl", {"Bass": bass})
        await wire.receiver.wait_for(3)
        self.assertEqual(wire.receiver.seqs(), [0, 2, 3])

    async def test_duplicate_is_sent_twice(self) -> None:
        """duplicate_next: the same SEQ and body arrive twice."""
        wire = self.start()
        await self.subscribe(wire)
        await wire.receiver.wait_for(1)
        wire.manager.faults.duplicate_next = 1
        wire.manager.notify("RenderingControl", {"Bass": "1"})
        wire.manager.notify("RenderingControl", {"Bass": "2"})
        received = await wire.receiver.wait_for(4)
        self.assertEqual(wire.receiver.seqs(), [0, 1, 1, 2])
        self.assertEqual(received[1].notify, received[2].notify)

    async def test_reorder_swaps_two_notifies(self) -> None:
        """reorder_next: the next two NOTIFYs arrive swapped."""
        wire = self.start()
        await self.subscribe(wire)
        await wire.receiver.wait_for(1)
        wire.manager.faults.reorder_next = 1
        for bass in "123":
            wire.manager.notify("RenderingControl", {"Bass": bass})
        received = await wire.receiver.wait_for(4)
        self.assertEqual(wire.receiver.seqs(), [0, 2, 1, 3])
        self.assertEqual(parse_event_xml(received[1].notify.body), {"bass": "2"})

    async def settled(self, wire: Wire, clock: Clock, timeout: bytes = b"Second-600") -> str:
        """Subscribe, let the initial NOTIFY go (on ``clock``) and arrive; return the SID."""
        sid = await self.subscribe(wire, timeout)
        clock.advance(0)
        await wire.receiver.wait_for(len(wire.receiver.received) + 1)
        await wire.notifier.when_idle()
        return sid

    async def held_then(self, action: Callable[[Wire, Clock, str], Any]) -> tuple[Wire, Clock]:
        """Hold a NOTIFY (reorder_next) then run ``action(wire, clock, sid)`` (awaited if it
        returns a Deferred); returns once every NOTIFY connection is closed."""
        clock = Clock()
        wire = self.start(clock=clock)
        sid = await self.settled(wire, clock, b"Second-60")
        wire.manager.faults.reorder_next = 1
        wire.manager.notify("RenderingControl", {"Bass": "1"})
        await maybeDeferred(action, wire, clock, sid)
        await wire.notifier.when_idle()
        return wire, clock

    async def test_reorder_held_notify_discarded_by_pause(self) -> None:
        """A NOTIFY held for reordering is discarded by pause: after resume the next ones
        arrive in order and the held SEQ never does."""

        def pause(wire: Wire, clock: Clock, sid: str) -> None:
            wire.manager.pause()
            wire.manager.resume()

        wire, _ = await self.held_then(pause)
        wire.manager.notify("RenderingControl", {"Bass": "2"})
        wire.manager.notify("RenderingControl", {"Bass": "3"})
        received = await wire.receiver.wait_for(3)
        await wire.notifier.when_idle()
        self.assertEqual(wire.receiver.seqs(), [0, 2, 3])
        self.assertEqual(parse_event_xml(received[1].notify.body), {"bass": "2"})

    async def test_reorder_held_notify_discarded_by_unsubscribe_reboot_or_expiry(self) -> None:
        """A NOTIFY held for reordering is discarded when its subscription ends by
        UNSUBSCRIBE, reboot or expiry: it is never sent, not even to a later subscription
        that gets the same SID after a reboot."""

        async def unsubscribe(wire: Wire, clock: Clock, sid: str) -> None:
            status, _ = await gena_call(b"UNSUBSCRIBE", wire.url(), {b"SID": sid.encode()})
            self.assertEqual(status, 200)

        def reboot(wire: Wire, clock: Clock, sid: str) -> Deferred[None]:
            return wire.manager.forget_all()

        def expire(wire: Wire, clock: Clock, sid: str) -> None:
            clock.advance(60)

        for action in (unsubscribe, reboot, expire):
            wire, clock = await self.held_then(action)
            self.assertEqual(wire.manager.subscriptions(), [], action.__name__)
            self.assertEqual(wire.receiver.seqs(), [0], action.__name__)
            await self.settled(wire, clock)
            wire.manager.notify("RenderingControl", {"Bass": "2"})
            received = await wire.receiver.wait_for(3)
            await wire.notifier.when_idle()
            self.assertEqual(wire.receiver.seqs(), [0, 0, 1], action.__name__)
            self.assertEqual(parse_event_xml(received[2].notify.body), {"bass": "2"})

    async def test_delay_adds_up_for_queued_notifies(self) -> None:
        """With delay set, a second queued NOTIFY waits a whole delay of its own after the
        first was sent: the delay is per subscription, not per change."""
        clock = Clock()
        wire = self.start(clock=clock)
        await self.settled(wire, clock)
        wire.manager.faults.delay = 5.0
        wire.manager.notify("RenderingControl", {"Bass": "1"})
        wire.manager.notify("RenderingControl", {"Bass": "2"})
        clock.advance(5)
        await wire.receiver.wait_for(2)
        await wire.notifier.when_idle()
        self.assertEqual(wire.receiver.seqs(), [0, 1])
        clock.advance(4.9)
        # Had both delays run side by side, SEQ 2 would be on its way by now.
        self.assertEqual((wire.notifier.in_flight, wire.receiver.seqs()), (0, [0, 1]))
        clock.advance(0.1)
        received = await wire.receiver.wait_for(3)
        self.assertEqual(wire.receiver.seqs(), [0, 1, 2])
        self.assertEqual(parse_event_xml(received[2].notify.body), {"bass": "2"})

    async def test_subscription_during_a_window_gets_state_and_the_window_event(self) -> None:
        """A subscription made while a LastChange moderation window is open gets SEQ 0 with
        the current state, then the window's event as SEQ 1, like the older subscription."""
        clock = Clock()
        rendering = dict(RC_STATE)
        state = {**STATE, "RenderingControl": rendering}
        wire = self.start(clock=clock, state=state.__getitem__, moderation=0.2)
        older = await self.settled(wire, clock)
        rendering["Volume"] = {"Master": "33", "LF": "100", "RF": "100"}
        wire.manager.notify("RenderingControl", {"Volume": {"Master": "33"}})
        clock.advance(0.1)
        newer = await self.settled(wire, clock)
        self.assertEqual(wire.receiver.seqs(), [0, 0])
        clock.advance(0.1)
        await wire.receiver.wait_for(4)
        await wire.notifier.when_idle()
        by_sid: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for received in wire.receiver.received:
            notify = received.notify
            by_sid.setdefault(notify.sid, []).append((notify.seq, parse_event_xml(notify.body)))
        self.assertEqual(set(by_sid), {older, newer})
        [(seq, initial), (seq_after, event)] = by_sid[newer]
        self.assertEqual((seq, initial["volume"]["Master"]), (0, "33"))
        self.assertEqual((seq_after, event), (1, {"volume": {"Master": "33"}}))
        self.assertEqual(by_sid[older][1], (1, {"volume": {"Master": "33"}}))

    async def test_failed_notify_does_not_stop_later_ones(self) -> None:
        """A NOTIFY answered 500 is logged; the next one still arrives."""
        wire = self.start(answer=lambda notify: 500 if notify.seq == 1 else 200)
        await self.subscribe(wire)
        wire.manager.notify("RenderingControl", {"Bass": "1"})
        wire.manager.notify("RenderingControl", {"Bass": "2"})
        await wire.receiver.wait_for(3)
        self.assertEqual(wire.receiver.seqs(), [0, 1, 2])
        self.assertEqual(wire.manager.stats()["failed"], 1)

    async def test_subscribe_and_renew_status_faults(self) -> None:
        """subscribe_status and renew_status answer with the chosen 5xx."""
        wire = self.start()
        sid = await self.subscribe(wire)
        wire.manager.faults.subscribe_status = 503
        wire.manager.faults.renew_status = 500
        status, headers = await gena_call(
            b"SUBSCRIBE", wire.url(), {b"CALLBACK": wire.callback, b"NT": b"upnp:event"}
        )
        self.assertEqual((status, first(headers, b"SID")), (503, None))
        self.assertEqual(first(headers, b"Server"), SERVER)
        status, _ = await gena_call(b"SUBSCRIBE", wire.url(), {b"SID": sid.encode()})
        self.assertEqual(status, 500)
        self.assertEqual(len(wire.manager.subscriptions()), 1)

    async def test_malformed_requests_are_answered_before_faults(self) -> None:
        """Malformed SUBSCRIBE and UNSUBSCRIBE requests (a CALLBACK off this machine too)
        get their 400 or 412 whatever subscribe/renew status, hang or hostile-answer fault is
        set: the faults apply to valid requests."""
        wire = self.start()
        sid = (await self.subscribe(wire)).encode()
        callback, nt = wire.callback, b"upnp:event"
        malformed: list[tuple[bytes, dict[bytes, bytes], int]] = [
            (b"SUBSCRIBE", {b"SID": sid, b"NT": nt}, 400),
            (b"SUBSCRIBE", {b"SID": sid, b"CALLBACK": callback}, 400),
            (b"SUBSCRIBE", {b"CALLBACK": callback}, 412),
            (b"SUBSCRIBE", {b"NT": nt}, 412),
            (b"SUBSCRIBE", {b"CALLBACK": b"<ftp://127.0.0.1/>", b"NT": nt}, 412),
            (b"SUBSCRIBE", {b"CALLBACK": callback, b"NT": b"upnp:other"}, 412),
            (b"SUBSCRIBE", {b"CALLBACK": b"<http://192.0.2.20:9/>", b"NT": nt}, 412),
            (b"UNSUBSCRIBE", {}, 412),
            (b"UNSUBSCRIBE", {b"SID": sid, b"NT": nt}, 400),
        ]
        faults = wire.manager.faults
        for fault in ("status", "hang", "hostile answers"):
            faults.reset()
            if fault == "status":
                faults.subscribe_status, faults.renew_status = 503, 500
            elif fault == "hang":
                faults.subscribe_hang = faults.renew_hang = True
            else:  # they apply to granted answers only
                faults.answer_status_line, faults.answer_body_bytes = "garbage", 100
            for method, headers, status in malformed:
                answer, _ = await gena_call(method, wire.url(), headers)
                self.assertEqual(answer, status, (fault, method, headers))
            self.assertEqual(wire.manager.held_requests, 0)
        self.assertEqual([s["sid"] for s in wire.manager.subscriptions()], [sid.decode()])

    async def test_answer_delay_sends_the_initial_notify_first(self) -> None:
        """answer_delay: the SEQ 0 NOTIFY of the new SID arrives before the SUBSCRIBE answer."""
        wire = self.start()
        wire.manager.faults.answer_delay = 0.5
        answered: list[int] = []
        subscribing = Deferred.fromCoroutine(
            gena_call(b"SUBSCRIBE", wire.url(), {b"CALLBACK": wire.callback, b"NT": b"upnp:event"})
        )
        subscribing.addCallback(lambda result: answered.append(result[0]) or result)
        received = await wire.receiver.wait_for(1)
        self.assertEqual(answered, [])
        self.assertEqual(wire.manager.held_requests, 1)
        status, headers = await subscribing
        self.assertEqual(status, 200)
        self.assertEqual(received[0].notify.sid, first(headers, b"SID"))
        self.assertEqual(received[0].notify.seq, 0)
        self.assertEqual(wire.manager.held_requests, 0)

    async def test_a_delayed_answer_is_hostile_too(self) -> None:
        """answer_delay with hostile-answer faults: the late answer to the new SUBSCRIBE is
        as hostile as an answer on time (a TIMEOUT replaced, a body of spaces), and a
        garbage status line is written late too."""
        wire = self.start()
        faults = wire.manager.faults
        faults.answer_delay, faults.answer_timeout, faults.answer_body_bytes = 0.05, "garbage", 10
        headers = {b"CALLBACK": wire.callback, b"NT": b"upnp:event"}
        answer = await self.raw_gena(wire, b"SUBSCRIBE", headers)
        head, _, body = answer.partition(b"\r\n\r\n")
        self.assertEqual((status_of(answer), body), (200, b" " * 10))
        self.assertIn(b"\r\ntimeout: garbage\r\n", head.lower() + b"\r\n")
        faults.answer_status_line = "garbage"
        answer = await self.raw_gena(wire, b"SUBSCRIBE", headers)
        self.assertTrue(answer.startswith(b"garbage\r\n"), answer[:40])
        self.assertEqual((len(wire.manager.subscriptions()), wire.manager.held_requests), (2, 0))

    async def test_subscribe_hang_until_the_client_gives_up(self) -> None:
        """subscribe_hang: no answer; a client that gives up frees the held request."""
        from twisted.internet import reactor

        wire = self.start()
        wire.manager.faults.subscribe_hang = True
        seen: Deferred[None] = Deferred()
        wire.site.requests.append(seen)
        agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
        pending = agent.request(
            b"SUBSCRIBE",
            wire.url(),
            Headers({b"CALLBACK": [wire.callback], b"NT": [b"upnp:event"]}),
        )
        await seen
        self.assertEqual(wire.manager.held_requests, 1)
        self.assertNoResult(pending)
        assert wire.site.last is not None
        server_side = wire.site.last.notifyFinish()
        pending.addErrback(lambda failure: None)
        pending.cancel()
        with self.assertRaises(ConnectionLost):
            await server_side
        self.assertEqual(wire.manager.held_requests, 0)
        self.assertEqual(wire.manager.subscriptions(), [])

    async def test_renew_hang_until_stop(self) -> None:
        """renew_hang: the renewal is never answered; stop() drops the connection."""
        wire = self.start()
        sid = await self.subscribe(wire)
        wire.manager.faults.renew_hang = True
        seen: Deferred[None] = Deferred()
        wire.site.requests.append(seen)
        renewal = Deferred.fromCoroutine(
            gena_call(b"SUBSCRIBE", wire.url(), {b"SID": sid.encode()})
        )
        await seen
        self.assertEqual(wire.manager.held_requests, 1)
        self.assertNoResult(renewal)
        await wire.manager.stop()
        with self.assertRaises(ResponseNeverReceived):
            await renewal

    async def test_unknown_sid_reports_the_subscriber_answer(self) -> None:
        """send_unknown_sid fires with the status the subscriber answered (412 here)."""
        wire = self.start(answer=lambda notify: 412)
        status = await wire.manager.send_unknown_sid(
            f"http://127.0.0.1:{wire.receiver_port}/notify/rc", "RenderingControl"
        )
        self.assertEqual(status, 412)
        [received] = wire.receiver.received
        self.assertEqual(received.peer, wire.speaker)
        self.assertEqual(received.notify.header["X-SONOS-SERVICETYPE"], "RenderingControl")

    async def test_unknown_sid_callback_with_or_without_brackets(self) -> None:
        """send_unknown_sid takes the callback URL bare or in a CALLBACK header's angle
        brackets, and either way sends to that URL's path."""
        wire = self.start(answer=lambda notify: 412)
        url = f"http://127.0.0.1:{wire.receiver_port}/notify/rc"
        for callback in (url, f"<{url}>"):
            status = await wire.manager.send_unknown_sid(callback, "RenderingControl")
            self.assertEqual(status, 412, callback)
            self.assertEqual(
                wire.receiver.received[-1].notify.request_line, "NOTIFY /notify/rc HTTP/1.1"
            )
        self.assertEqual(len(wire.receiver.received), 2)

    async def raw_gena(self, wire: Wire, method: bytes, headers: Mapping[bytes, bytes]) -> bytes:
        """Send a GENA request over a raw connection; return all the speaker wrote before
        it closed the connection."""
        from twisted.internet import reactor

        lines = [method + b" /MediaRenderer/RenderingControl/Event HTTP/1.1", b"Host: x"]
        lines += [name + b": " + value for name, value in headers.items()]
        raw = RawClient(b"\r\n".join(lines) + b"\r\n\r\n")
        await connect_raw(wire.speaker, wire.site_port, raw, self)
        await raw.closed.addTimeout(10, reactor)
        return raw.data

    async def test_hostile_answers_still_grant_renew_and_end(self) -> None:
        """Each hostile-answer fault shapes every granted answer on the wire as
        docs/simulator-gena.md says (a garbage status line then the headers, 1 KiB padding
        lines, a body of spaces, a body of at least 1 KiB dripped while the request is held,
        a replaced or missing SID or TIMEOUT, added to the UNSUBSCRIBE answer too), and the
        speaker acts all the same: the subscription is made (its SEQ 0 NOTIFY goes out),
        renewed (for the seconds really granted) and ended."""
        wire = self.start()
        faults: list[tuple[dict[str, Any], Callable[[bytes, bytes, str | None], None]]] = []

        def fault(**fields: Any) -> Callable[[Any], Any]:
            def add(check: Callable[[bytes, bytes, str | None], None]) -> Any:
                faults.append((fields, check))
                return check

            return add

        def split(answer: bytes) -> tuple[list[bytes], dict[bytes, bytes], bytes]:
            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = {n.lower(): v.strip() for n, _, v in (h.partition(b":") for h in lines[1:])}
            return lines, headers, body

        @fault(answer_status_line="garbage")
        def status_line(answer: bytes, method: bytes, sid: str | None) -> None:
            lines, headers, body = split(answer)
            self.assertEqual(lines[0], b"garbage")
            self.assertEqual((headers[b"server"], body), (SERVER.encode(), b""))

        @fault(answer_header_bytes=3000)
        def padding(answer: bytes, method: bytes, sid: str | None) -> None:
            lines, _, body = split(answer)
            padded = [line for line in lines if line.startswith(b"X-Padding:")]
            self.assertEqual([len(line) + 2 for line in padded], [1024] * 3)
            self.assertEqual((status_of(answer), body), (200, b""))

        @fault(answer_body_bytes=500)
        def body_bytes(answer: bytes, method: bytes, sid: str | None) -> None:
            _, headers, body = split(answer)
            self.assertEqual((headers[b"content-length"], body), (b"500", b" " * 500))

        @fault(answer_drip=0.02)
        def drip_small(answer: bytes, method: bytes, sid: str | None) -> None:
            self.assertEqual(split(answer)[2], b" " * 1024)

        @fault(answer_drip=0.02, answer_body_bytes=2500)
        def drip_big(answer: bytes, method: bytes, sid: str | None) -> None:
            _, headers, body = split(answer)
            self.assertEqual((headers[b"content-length"], body), (b"2500", b" " * 2500))

        @fault(answer_sid="garbage", answer_timeout="infinite")
        def replaced(answer: bytes, method: bytes, sid: str | None) -> None:
            _, headers, _ = split(answer)
            self.assertEqual((headers[b"sid"], headers[b"timeout"]), (b"garbage", b"infinite"))

        @fault(answer_sid="", answer_timeout="")
        def left_out(answer: bytes, method: bytes, sid: str | None) -> None:
            _, headers, _ = split(answer)
            self.assertEqual(status_of(answer), 200)
            self.assertNotIn(b"sid", headers)
            self.assertNotIn(b"timeout", headers)

        manager = wire.manager
        for count, (fields, check) in enumerate(faults, start=1):
            manager.faults.reset()
            for name, value in fields.items():
                setattr(manager.faults, name, value)
            seen: Deferred[None] = Deferred()
            wire.site.requests.append(seen)
            subscribing = Deferred.fromCoroutine(
                self.raw_gena(
                    wire,
                    b"SUBSCRIBE",
                    {b"CALLBACK": wire.callback, b"NT": b"upnp:event", b"TIMEOUT": b"Second-600"},
                )
            )
            await seen
            # A dripping answer of more than one piece is held until its last piece is out.
            dripping = "answer_drip" in fields and fields.get("answer_body_bytes", 0) > 1024
            self.assertEqual(manager.held_requests, int(dripping), fields)
            check(await subscribing, b"SUBSCRIBE", None)
            [made] = manager.subscriptions()
            self.assertEqual(made["timeout"], 600, fields)
            received = await wire.receiver.wait_for(count)
            self.assertEqual((received[-1].notify.sid, received[-1].notify.seq), (made["sid"], 0))
            sid = made["sid"].encode()
            renewal = {b"SID": sid, b"TIMEOUT": b"Second-1200"}
            check(await self.raw_gena(wire, b"SUBSCRIBE", renewal), b"SUBSCRIBE", made["sid"])
            self.assertEqual(manager.subscriptions()[0]["timeout"], 1200, fields)
            check(await self.raw_gena(wire, b"UNSUBSCRIBE", {b"SID": sid}), b"UNSUBSCRIBE", sid)
            self.assertEqual((manager.subscriptions(), manager.held_requests), ([], 0), fields)
        self.assertEqual(wire.receiver.seqs(), [0] * len(faults))

    async def test_soco_threaded_events_module(self) -> None:
        """SoCo's default (threaded) events module gets SEQ 0, then a volume change."""
        import soco
        import soco.events

        wire = self.start(port=1400)
        # SoCo registers the SID only after reading the answer; a real speaker races it the
        # same way (sonosd re-reads state for that reason). Give SoCo a head start here.
        wire.manager.faults.delay = 0.3
        device = soco.SoCo(wire.speaker)
        household = await deferToThread(lambda: device.household_id)
        self.assertEqual(household, "Sonos_gena_test")
        subscription = await deferToThread(device.renderingControl.subscribe, requested_timeout=600)
        self.addCleanup(deferToThread, soco.events.event_listener.stop)
        self.addCleanup(deferToThread, subscription.unsubscribe)
        self.assertEqual(subscription.timeout, 600)
        initial = await deferToThread(subscription.events.get, timeout=10)
        self.assertEqual(initial.seq, "0")
        self.assertEqual(initial.variables["volume"], {"Master": "20", "LF": "100", "RF": "100"})
        wire.manager.notify("RenderingControl", {"Volume": {"Master": "33"}})
        change = await deferToThread(subscription.events.get, timeout=10)
        self.assertEqual((change.seq, change.variables), ("1", {"volume": {"Master": "33"}}))
        self.assertEqual(change.sid, subscription.sid)

    async def test_every_answer_closes_the_connection(self) -> None:
        """Through the full simulator, a 200, a 412 and a 400 to HTTP/1.1 clients that ask to
        keep the connection have Server, Content-Length: 0, Connection: close and no body,
        and the speaker closes the connection after each; the 200 names ``SID`` and
        ``TIMEOUT`` in capitals, as speakers write them (sonos-protocol.md 3.1)."""
        from twisted.internet import reactor

        from sonosd.config import SimulateConfig
        from sonosd.sim.service import HouseholdService

        base = free_loopback_base()
        household = HouseholdService(reactor, SimulateConfig(speakers=1, base_address=base))
        household.startService()
        self.addCleanup(household.stopService)
        path = b" /MediaRenderer/RenderingControl/Event HTTP/1.1\r\nHost: x\r\n"
        keep = b"Connection: keep-alive\r\n"
        requests = {
            200: b"SUBSCRIBE" + path + keep + b"CALLBACK: <http://127.0.0.1:9/>\r\n"
            b"NT: upnp:event\r\nTIMEOUT: Second-60\r\n\r\n",
            412: b"SUBSCRIBE" + path + keep + b"SID: uuid:RINCON_X_sub0000000042\r\n\r\n",
            400: b"UNSUBSCRIBE" + path + b"SID: uuid:X\r\nNT: upnp:event\r\n\r\n",
        }
        for status, request in requests.items():
            raw = await connect_raw(base, 1400, RawClient(request), self)
            await raw.closed.addTimeout(10, reactor)
            head, _, body = raw.data.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            self.assertEqual(status_of(raw.data), status, raw.data)
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            self.assertEqual(
                headers["server"], household.household.speakers[0].manager.server_header
            )
            self.assertEqual((headers["content-length"], headers["connection"]), ("0", "close"))
            self.assertEqual(body, b"")
            if status == 200:
                names = [line.partition(":")[0] for line in lines[1:]]
                self.assertIn("SID", names)
                self.assertIn("TIMEOUT", names)
                self.assertTrue(headers["sid"].startswith("uuid:RINCON_"), headers)
                self.assertEqual(headers["timeout"], "Second-60")

    async def test_every_event_url_of_the_household_speaker(self) -> None:
        """Through the full simulator, a SUBSCRIBE on each event URL a speaker offers is
        handed to the manager under the service's SoCo-style name: SIDs count on across the
        services, and each subscriber gets SEQ 0 with that service's full state, from the
        speaker's address, X-SONOS-SERVICETYPE naming the service (ConnectionManager for
        both ConnectionManagers)."""
        from twisted.internet import reactor

        from sonosd.config import SimulateConfig
        from sonosd.sim import scpd
        from sonosd.sim.notifier import sonos_service_type
        from sonosd.sim.service import HouseholdService

        base = free_loopback_base()
        household = HouseholdService(reactor, SimulateConfig(speakers=1, base_address=base))
        household.startService()
        self.addCleanup(household.stopService)
        speaker = household.household.speakers[0]
        receiver = Receiver()
        receiving = reactor.listenTCP(0, receiver, interface="127.0.0.1")
        self.addCleanup(receiving.stopListening)
        callback = b"<http://127.0.0.1:%d/cb>" % receiving.getHost().port
        services = [i for i in scpd.by_event_url().values() if i.key in speaker.offered]
        self.assertIn("MR_ConnectionManager", {info.key for info in services})
        self.assertIn("MS_ConnectionManager", {info.key for info in services})
        by_sid: dict[str, str] = {}
        for n, info in enumerate(services, start=1):
            url = f"http://{base}:1400{info.event_url}".encode()
            status, headers = await gena_call(
                b"SUBSCRIBE", url, {b"CALLBACK": callback, b"NT": b"upnp:event"}
            )
            self.assertEqual(status, 200, info.key)
            sid = first(headers, b"SID")
            self.assertEqual(sid, f"uuid:{speaker.uid}_sub{n:010d}")
            assert sid is not None
            by_sid[sid] = info.key
        received = await receiver.wait_for(len(services))
        manager = speaker.manager
        assert isinstance(manager, SubscriptionManager)
        for got in received:
            notify = got.notify
            key = by_sid[notify.sid]
            self.assertEqual((notify.seq, got.peer), (0, base), key)
            self.assertEqual(notify.header["X-SONOS-SERVICETYPE"], sonos_service_type(key))
            self.assertEqual(notify.body, build_propertyset(key, speaker.full_state(key)), key)
        self.assertEqual(len({got.notify.sid for got in received}), len(services))

    async def test_soco_threaded_events_against_the_household(self) -> None:
        """Through the full simulator, SoCo's threaded events see SEQ 0 then its own volume set."""
        import soco
        import soco.events
        from twisted.internet import reactor

        from sonosd.config import SimulateConfig
        from sonosd.sim.service import HouseholdService

        base = free_loopback_base()
        household = HouseholdService(reactor, SimulateConfig(speakers=1, base_address=base))
        household.startService()
        self.addCleanup(household.stopService)
        manager = household.household.speakers[0].manager
        assert isinstance(manager, SubscriptionManager)
        manager.faults.delay = 0.3  # SoCo registers the SID after reading the answer.
        device = soco.SoCo(base)
        await deferToThread(lambda: device.household_id)
        subscription = await deferToThread(device.renderingControl.subscribe, requested_timeout=600)
        self.addCleanup(deferToThread, soco.events.event_listener.stop)
        self.addCleanup(deferToThread, subscription.unsubscribe)
        initial = await deferToThread(subscription.events.get, timeout=10)
        self.assertEqual(initial.seq, "0")
        self.assertIn("Master", initial.variables["volume"])
        new_volume = 7 if initial.variables["volume"]["Master"] != "7" else 8
        await deferToThread(setattr, device, "volume", new_volume)
        change = await deferToThread(subscription.events.get, timeout=10)
        self.assertEqual(change.seq, "1")
        self.assertEqual(change.variables["volume"]["Master"], str(new_volume))
