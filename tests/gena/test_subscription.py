"""Tests for sonosd.gena.subscription (public as sonosd.gena): the hardened GENA Subscription."""

from __future__ import annotations

import inspect
import math
import socket
from collections.abc import Mapping
from queue import Queue
from typing import Any, cast
from xml.sax.saxutils import escape

import attrs
import soco
from hypothesis import given
from hypothesis import strategies as st
from soco import config as soco_config
from soco.events_base import Event
from treq.client import HTTPClient
from treq.testing import RequestTraversalAgent
from twisted.internet import reactor as global_reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, DeferredQueue, DeferredSemaphore
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web import server
from twisted.web.client import Agent
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from zope.interface import implementer

import sonosd.gena
from sonosd.gena import subscription as subscription_module
from sonosd.gena.listener import INotifyListener, INotifySubscription, NotifyListener
from sonosd.gena.subscription import (
    INFINITE_RENEW_INTERVAL,
    MAX_RESPONSE_BODY,
    GenaError,
    GenaResponse,
    GenaTimeout,
    Subscription,
    SubscriptionDeferred,
    SubscriptionGone,
    UsageError,
    _shutdown_default,
    check_response,
    close_default_listener,
    parse_timeout,
    renew_headers,
    subscribe_headers,
)
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.gena.test_listener import held_timers

SPEAKER = "127.0.0.2"
SID = "uuid:RINCON_000E58A0123401400_sub0000000007"
EVENT_URL = "/MediaRenderer/RenderingControl/Event"


# -- fakes ------------------------------------------------------------------------------------


@implementer(INotifyListener)
@attrs.define
class RecordingListener:
    """A listener that records what subscriptions tell it."""

    registered: dict[str, INotifySubscription] = attrs.Factory(dict)
    in_flight: dict[str, int] = attrs.Factory(dict)
    log: list[str] = attrs.Factory(list)

    def callback_url(self, speaker_host: str) -> str:
        return "http://127.0.0.1:1400/"

    def register(self, subscription: INotifySubscription) -> None:
        self.log.append(f"register {subscription.sid}")
        self.registered[subscription.sid] = subscription

    def unregister(self, subscription: INotifySubscription) -> None:
        self.log.append(f"unregister {subscription.sid}")
        self.registered.pop(subscription.sid, None)

    def subscribing(self, speaker_host: str) -> None:
        self.in_flight[speaker_host] = self.in_flight.get(speaker_host, 0) + 1

    def subscribe_finished(self, speaker_host: str) -> None:
        self.in_flight[speaker_host] -= 1
        if not self.in_flight[speaker_host]:
            del self.in_flight[speaker_host]


class HouseholdUnknown:
    """A SoCo stand-in whose network-backed properties must never be read in the reactor."""

    _household_id: str | None = None

    @property
    def household_id(self) -> str:
        raise AssertionError("household_id read in the reactor thread")

    @property
    def zone_group_state(self) -> Any:
        raise AssertionError("zone_group_state read in the reactor thread")


@attrs.define(eq=False)
class RecordingZoneGroupState:
    """Records the ZGT subscriptions SoCo's ZoneGroupState is told about."""

    tracked: list[Any] = attrs.Factory(list)

    def add_subscription(self, subscription: Any) -> None:
        self.tracked.append(subscription)

    def remove_subscription(self, subscription: Any) -> None:
        self.tracked.remove(subscription)


class HouseholdKnown:
    """A SoCo stand-in whose household id is cached (reading the topology cannot block)."""

    _household_id = "Sonos_test"

    def __init__(self) -> None:
        self.zone_group_state = RecordingZoneGroupState()


@attrs.define
class FakeService:
    """The parts of a SoCo Service a Subscription uses."""

    service_type: str = "RenderingControl"
    base_url: str = f"http://{SPEAKER}:1400"
    event_subscription_url: str = EVENT_URL
    soco: Any = attrs.Factory(HouseholdUnknown)
    cache_updates: list[Event] = attrs.Factory(list)

    def _update_cache_on_event(self, event: Event) -> None:
        self.cache_updates.append(event)


@attrs.define
class Answer:
    """How the fake speaker answers the next GENA request."""

    status: int = 200
    headers: Mapping[str, str] = attrs.Factory(lambda: {"SID": SID, "TIMEOUT": "Second-600"})
    hang: bool = False
    body: bytes = b""


class ScriptedSpeaker(Resource):
    """A speaker's event URL that answers from a script and records every request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.script: list[Answer] = []
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.hung: list[server.Request] = []

    def render(self, request: server.Request) -> bytes | int:
        headers = {
            name.decode().lower(): values[0].decode()
            for name, values in request.requestHeaders.getAllRawHeaders()
        }
        self.requests.append((request.method.decode(), headers))
        answer = self.script.pop(0) if self.script else Answer()
        if answer.hang:
            self.hung.append(request)
            return server.NOT_DONE_YET
        request.setResponseCode(answer.status)
        for name, value in answer.headers.items():
            request.setHeader(name, value)
        return answer.body

    def methods(self) -> list[str]:
        return [method for method, _ in self.requests]


def grant_hung(speaker: ScriptedSpeaker, agent: RequestTraversalAgent) -> None:
    """Answer the last hung request as a speaker grants a SUBSCRIBE (SID, 600 s)."""
    request = speaker.hung.pop()
    request.setHeader("SID", SID)
    request.setHeader("TIMEOUT", "Second-600")
    request.finish()
    agent.flush()


class Harness:
    """A Subscription wired to a scripted speaker, a recording listener and a Clock."""

    def __init__(self, service: FakeService | None = None, timeout: float = 10.0) -> None:
        self.clock = Clock()
        self.speaker = ScriptedSpeaker()
        self.agent = RequestTraversalAgent(self.speaker)
        self.listener = RecordingListener()
        self.service = service or FakeService()
        self.subscription = Subscription(
            self.service,
            self.listener,
            reactor=self.clock,
            http=HTTPClient(self.agent),
            request_timeout=timeout,
        )
        self.failures: list[Failure] = []
        self.subscription.auto_renew_fail = self.failures.append

    def event(self, seq: str = "0", **variables: Any) -> Event:
        return Event(self.subscription.sid, seq, self.service, self.clock.seconds(), variables)

    def sharing(self, limiter: DeferredSemaphore) -> Subscription:
        """Another subscription on the same speaker, clock and listener, with ``limiter``."""
        return Subscription(
            FakeService(),
            self.listener,
            reactor=self.clock,
            http=HTTPClient(self.agent),
            request_timeout=5.0,
            limiter=limiter,
        )


def two_sharing_one_slot() -> tuple[
    Harness, Subscription, SubscriptionDeferred, SubscriptionDeferred
]:
    """Two subscriptions (5 s request timeout) sharing a limiter of one slot, both subscribing
    to a speaker that holds its answers: the harness, the second subscription and the two
    subscribe() Deferreds (the first one's request is on the wire, the second waits)."""
    harness = Harness(timeout=5.0)
    limiter = DeferredSemaphore(1)
    harness.subscription._limiter = limiter
    waiting = harness.sharing(limiter)
    harness.speaker.script.extend([Answer(hang=True), Answer(hang=True)])
    return harness, waiting, harness.subscription.subscribe(), waiting.subscribe()


class SubscribeTests(SynchronousTestCase):
    """subscribe(): headers sent, state recorded, failures checked."""

    def test_result_is_the_subscription(self) -> None:
        """subscribe(), renew() and unsubscribe() each return a SubscriptionDeferred that
        carries .subscription at once and fires with the Subscription (SoCo's: None)."""
        harness = Harness()
        d = harness.subscription.subscribe(requested_timeout=600)
        assert isinstance(d, SubscriptionDeferred)
        assert d.subscription is harness.subscription
        assert self.successResultOf(d) is harness.subscription
        for call in (harness.subscription.renew, harness.subscription.unsubscribe):
            d = call()
            assert isinstance(d, SubscriptionDeferred), call
            assert d.subscription is harness.subscription
            assert self.successResultOf(d) is harness.subscription

    def test_headers_and_state(self) -> None:
        """SUBSCRIBE carries CALLBACK, NT and TIMEOUT; sid, timeout and time_left follow."""
        harness = Harness()
        harness.clock.advance(100)
        self.successResultOf(harness.subscription.subscribe(requested_timeout=600))
        [(method, headers)] = harness.speaker.requests
        assert method == "SUBSCRIBE"
        assert headers["callback"] == "<http://127.0.0.1:1400/>"
        assert headers["nt"] == "upnp:event"
        assert headers["timeout"] == "Second-600"
        sub = harness.subscription
        assert (sub.sid, sub.timeout, sub.is_subscribed) == (SID, 600, True)
        harness.clock.advance(60)
        assert sub.time_left == 540
        assert harness.listener.registered == {SID: sub}
        assert harness.listener.in_flight == {}
        assert sub.speaker_host == SPEAKER

    def test_no_timeout_requested(self) -> None:
        """Without requested_timeout no TIMEOUT header is sent (the speaker grants 86400)."""
        harness = Harness()
        self.successResultOf(harness.subscription.subscribe())
        assert "timeout" not in harness.speaker.requests[0][1]

    def test_412_is_subscription_gone(self) -> None:
        """A 412 answer fails with SubscriptionGone (SoCo: KeyError('sid')) and ends it."""
        harness = Harness()
        harness.speaker.script.append(Answer(412, {}))
        failure = self.failureResultOf(harness.subscription.subscribe(), SubscriptionGone)
        assert failure.value.status == 412
        assert not harness.subscription.is_subscribed
        assert harness.listener.registered == {} and harness.listener.in_flight == {}

    def test_other_status_is_gena_error(self) -> None:
        """A 503 answer fails with GenaError(503), never with a KeyError; the Subscription
        has ended and is never reused: subscribing it again is a UsageError and sends nothing."""
        harness = Harness()
        harness.speaker.script.append(Answer(503, {"SID": SID, "TIMEOUT": "Second-600"}))
        failure = self.failureResultOf(harness.subscription.subscribe(), GenaError)
        assert failure.value.status == 503
        self.failureResultOf(harness.subscription.subscribe(), UsageError)
        assert harness.speaker.methods() == ["SUBSCRIBE"]
        assert harness.listener.registered == {} and harness.clock.getDelayedCalls() == []

    def test_missing_sid(self) -> None:
        """A 200 without SID fails with GenaError."""
        harness = Harness()
        harness.speaker.script.append(Answer(200, {"TIMEOUT": "Second-600"}))
        self.failureResultOf(harness.subscription.subscribe(), GenaError)

    def test_missing_timeout(self) -> None:
        """A 200 without TIMEOUT fails with GenaError."""
        harness = Harness()
        harness.speaker.script.append(Answer(200, {"SID": SID}))
        self.failureResultOf(harness.subscription.subscribe(), GenaError)

    def test_second_infinite(self) -> None:
        """Second-infinite gives timeout None and an infinite time_left (SoCo crashes), and
        auto-renew then renews every hour (INFINITE_RENEW_INTERVAL), so that a reboot is
        noticed."""
        harness = Harness()
        harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": "Second-infinite"}))
        self.successResultOf(harness.subscription.subscribe(auto_renew=True))
        assert harness.subscription.timeout is None
        assert harness.subscription.time_left == math.inf
        [call] = harness.clock.getDelayedCalls()
        assert call.getTime() == INFINITE_RENEW_INTERVAL == 3600
        harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": "Second-infinite"}))
        harness.clock.advance(3599.9)
        assert harness.speaker.methods() == ["SUBSCRIBE"]
        harness.clock.advance(0.1)
        assert harness.speaker.methods() == ["SUBSCRIBE", "SUBSCRIBE"]

    def test_hung_subscribe_times_out(self) -> None:
        """A SUBSCRIBE the speaker never answers fails with GenaTimeout after the timeout."""
        harness = Harness(timeout=5.0)
        harness.speaker.script.append(Answer(hang=True))
        d = harness.subscription.subscribe()
        self.assertNoResult(d)
        harness.clock.advance(5.0)
        failure = self.failureResultOf(d, GenaTimeout)
        assert failure.value.message.endswith(": no answer within 5 s"), failure.value.message
        assert failure.value.message.startswith("SUBSCRIBE http://"), failure.value.message
        assert harness.listener.in_flight == {}
        assert harness.clock.getDelayedCalls() == []

    def test_limiter_bounds_requests_in_flight(self) -> None:
        """Subscriptions sharing a limiter of one send their requests one at a time; one
        cancelled while it waits for the slot sends nothing and holds no slot."""
        harness = Harness(timeout=5.0)
        limiter = DeferredSemaphore(1)
        harness.subscription._limiter = limiter

        def another() -> Subscription:
            return harness.sharing(limiter)

        harness.speaker.script.append(Answer(hang=True))
        first = harness.subscription.subscribe()
        cancelled, waiting = another(), another()
        gone = cancelled.subscribe()
        second = waiting.subscribe()
        assert harness.speaker.methods() == ["SUBSCRIBE"]
        gone.cancel()
        self.failureResultOf(gone)
        grant_hung(harness.speaker, harness.agent)
        self.successResultOf(first)
        self.successResultOf(second)
        assert harness.speaker.methods() == ["SUBSCRIBE", "SUBSCRIBE"]
        assert limiter.tokens == 1

    def test_request_started_is_when_the_slot_was_had(self) -> None:
        """request_started is None while a request waits for a slot of the limiter, the
        clock time it got one while it runs, None again once it ended."""
        harness, waiting, first, second = two_sharing_one_slot()
        assert harness.subscription.request_started == 0.0
        assert waiting.request_started is None
        harness.clock.advance(3.0)
        grant_hung(harness.speaker, harness.agent)
        self.successResultOf(first)
        assert harness.subscription.request_started is None
        assert waiting.request_started == 3.0
        grant_hung(harness.speaker, harness.agent)
        self.successResultOf(second)
        assert waiting.request_started is None

    def test_the_wait_for_a_slot_is_not_counted_in_request_timeout(self) -> None:
        """A request that waited 4 s for the limiter's slot still has its whole
        ``request_timeout`` (5 s) once it has the slot."""
        harness, _, first, second = two_sharing_one_slot()
        harness.clock.advance(4.0)
        grant_hung(harness.speaker, harness.agent)
        self.successResultOf(first)
        harness.clock.advance(4.9)
        self.assertNoResult(second)
        harness.clock.advance(0.1)
        self.failureResultOf(second, GenaTimeout)

    def test_request_timeout_is_10_seconds_by_default(self) -> None:
        """A Subscription made without ``request_timeout`` gives a silent speaker 10 s, then
        fails with GenaTimeout."""
        harness = Harness()
        subscription = Subscription(
            FakeService(), harness.listener, reactor=harness.clock, http=HTTPClient(harness.agent)
        )
        harness.speaker.script.append(Answer(hang=True))
        d = subscription.subscribe()
        harness.clock.advance(9.9)
        self.assertNoResult(d)
        harness.clock.advance(0.1)
        self.failureResultOf(d, GenaTimeout)

    def test_oversized_answer_body(self) -> None:
        """An answer body over MAX_RESPONSE_BODY is not read: GenaError."""
        harness = Harness()
        harness.speaker.script.append(Answer(body=b"x" * (MAX_RESPONSE_BODY + 1)))
        self.failureResultOf(harness.subscription.subscribe(), GenaError)

    def test_listener_not_running(self) -> None:
        """Subscribing through a listener that is not bound fails with UsageError."""
        listener = NotifyListener(MemoryReactorClock(), interface="127.0.0.1", port=0)
        sub = Subscription(FakeService(), listener, reactor=Clock())
        self.failureResultOf(sub.subscribe(), UsageError)

    def test_twice_is_a_usage_error(self) -> None:
        """Subscribing twice fails with UsageError and leaves the subscription as it was: alive,
        registered, its renewal due when it was, and its renewals asking for the timeout the
        first subscribe() asked for (not the refused call's)."""
        harness = Harness()
        sub = harness.subscription
        self.successResultOf(sub.subscribe(requested_timeout=600, auto_renew=True))
        [due] = [call.getTime() for call in harness.clock.getDelayedCalls()]
        self.failureResultOf(sub.subscribe(requested_timeout=60), UsageError)
        assert sub.is_subscribed and harness.listener.registered == {SID: sub}
        assert sub.requested_timeout == 600
        assert [call.getTime() for call in harness.clock.getDelayedCalls()] == [due]
        harness.clock.advance(due)
        method, headers = harness.speaker.requests[-1]
        assert (method, headers["sid"], headers["timeout"]) == ("SUBSCRIBE", SID, "Second-600")

    def test_not_strict(self) -> None:
        """With strict=False a failure is logged (a warning naming the call and the error) and
        the Deferred fires with the Subscription."""
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        harness = Harness()
        harness.speaker.script.append(Answer(500, {}))
        d = harness.subscription.subscribe(strict=False)
        assert self.successResultOf(d) is harness.subscription
        assert not harness.subscription.is_subscribed
        [warning] = [e for e in events if e["log_level"] is LogLevel.warn]
        said = formatEvent(warning)
        assert said.startswith("subscribe http://") and "failed" in said and "500" in said, said

    def test_never_reads_household_id(self) -> None:
        """Subscribing never touches soco.household_id or zone_group_state (they block)."""
        harness = Harness(FakeService(service_type="ZoneGroupTopology"))
        self.successResultOf(harness.subscription.subscribe())
        harness.subscription.send_event(harness.event(zone_group_state="<x/>"))
        assert harness.service.cache_updates == []

    def test_listener_required_with_a_reactor(self) -> None:
        """An explicit reactor without a listener is a TypeError (no hidden global)."""
        self.assertRaises(TypeError, Subscription, FakeService(), reactor=Clock())

    def test_soco_event_queue_argument(self) -> None:
        """SoCo passes its event_queue positionally; it becomes the events queue."""
        queue: Queue[Event] = Queue()
        assert Subscription(FakeService(), queue).events is queue

    def test_events_queue_made_when_first_used(self) -> None:
        """Without an event_queue no queue exists until ``events`` is read, then the same one."""
        subscription = Harness().subscription
        assert subscription._events is None
        queue = subscription.events
        assert isinstance(queue, Queue)
        assert subscription.events is queue

    def test_events_queue_can_be_replaced(self) -> None:
        """Assigning ``events`` (as SoCo's own code may) replaces the queue."""
        subscription = Harness().subscription
        queue: Queue[Event] = Queue()
        subscription.events = queue
        assert subscription.events is queue


class SerialisationTests(SynchronousTestCase):
    """Calls on one Subscription run one at a time, and a hung one never stalls the rest."""

    def test_renew_waits_for_subscribe(self) -> None:
        """A renew() issued while SUBSCRIBE is in flight is sent only after it completes."""
        harness = Harness()
        harness.speaker.script.append(Answer(hang=True))
        subscribing = harness.subscription.subscribe()
        renewing = harness.subscription.renew()
        assert harness.speaker.methods() == ["SUBSCRIBE"]
        grant_hung(harness.speaker, harness.agent)
        self.successResultOf(subscribing)
        self.successResultOf(renewing)
        assert harness.speaker.methods() == ["SUBSCRIBE", "SUBSCRIBE"]

    def test_hung_renew_does_not_stall_unsubscribe(self) -> None:
        """After a hung renew times out, a queued unsubscribe still runs."""
        harness = Harness(timeout=3.0)
        self.successResultOf(harness.subscription.subscribe())
        harness.speaker.script.append(Answer(hang=True))
        renewing = harness.subscription.renew()
        leaving = harness.subscription.unsubscribe()
        harness.clock.advance(3.0)
        self.failureResultOf(renewing, GenaTimeout)
        self.successResultOf(leaving)
        assert harness.clock.getDelayedCalls() == []

    def test_cancel_ends_everything(self) -> None:
        """cancel() aborts the call in flight (a GenaError or CancelledError: its request was
        on the wire) and fails the queued ones with CancelledError, and keeps nothing: no
        timer, no registration."""
        harness = Harness()
        self.successResultOf(harness.subscription.subscribe(auto_renew=True))
        harness.speaker.script.append(Answer(hang=True))
        renewing = harness.subscription.renew()
        queued = harness.subscription.renew()
        harness.subscription.cancel()
        self.failureResultOf(renewing, GenaError, CancelledError)
        self.failureResultOf(queued, CancelledError)
        # The queued renewal never went out: cancel() sends nothing.
        assert harness.speaker.methods() == ["SUBSCRIBE", "SUBSCRIBE"]
        assert harness.clock.getDelayedCalls() == []
        assert harness.listener.registered == {}
        assert not harness.subscription.is_subscribed
        assert not harness.subscription._ops

    def test_cancelling_the_deferred(self) -> None:
        """Cancelling a subscribe() Deferred ends the subscription and releases the race hold."""
        harness = Harness()
        harness.speaker.script.append(Answer(hang=True))
        d = harness.subscription.subscribe()
        d.cancel()
        self.failureResultOf(d)
        assert harness.listener.in_flight == {}
        assert harness.clock.getDelayedCalls() == []


class RenewTests(SynchronousTestCase):
    """renew() and auto-renew."""

    def setUp(self) -> None:
        self.harness = Harness()

    def test_renew_headers_and_new_timeout(self) -> None:
        """A renewal sends the SID and TIMEOUT only, and records the new grant."""
        self.successResultOf(self.harness.subscription.subscribe(requested_timeout=600))
        self.harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": "Second-300"}))
        self.harness.clock.advance(100)
        self.successResultOf(self.harness.subscription.renew())
        method, headers = self.harness.speaker.requests[-1]
        assert method == "SUBSCRIBE"
        assert headers["sid"] == SID and headers["timeout"] == "Second-600"
        assert "callback" not in headers and "nt" not in headers
        assert self.harness.subscription.timeout == 300
        assert self.harness.subscription.time_left == 300

    def test_renew_412(self) -> None:
        """A 412 on renewal is SubscriptionGone (SoCo: KeyError('timeout')); it ends."""
        self.successResultOf(self.harness.subscription.subscribe())
        self.harness.speaker.script.append(Answer(412, {}))
        self.failureResultOf(self.harness.subscription.renew(), SubscriptionGone)
        assert not self.harness.subscription.is_subscribed
        assert self.harness.listener.registered == {}

    def test_renew_after_expiry(self) -> None:
        """Renewing an expired subscription fails with SubscriptionGone, without a request."""
        self.successResultOf(self.harness.subscription.subscribe())
        self.harness.clock.advance(601)
        self.failureResultOf(self.harness.subscription.renew(), SubscriptionGone)
        assert self.harness.speaker.methods() == ["SUBSCRIBE"]

    def test_renew_after_unsubscribe(self) -> None:
        """Renewing an ended subscription is a UsageError and sends nothing."""
        self.successResultOf(self.harness.subscription.subscribe())
        self.successResultOf(self.harness.subscription.unsubscribe())
        self.failureResultOf(self.harness.subscription.renew(), UsageError)
        assert self.harness.speaker.methods() == ["SUBSCRIBE", "UNSUBSCRIBE"]

    def test_renew_before_subscribe(self) -> None:
        """Renewing before subscribing is a UsageError and does not end the subscription."""
        self.failureResultOf(self.harness.subscription.renew(), UsageError)
        self.successResultOf(self.harness.subscription.subscribe())

    def test_auto_renew_schedule(self) -> None:
        """Auto-renew renews at 85 % of each grant, with callLater (no LoopingCall)."""
        self.successResultOf(
            self.harness.subscription.subscribe(requested_timeout=600, auto_renew=True)
        )
        [call] = self.harness.clock.getDelayedCalls()
        assert call.getTime() == 510
        self.harness.clock.advance(510)
        assert self.harness.speaker.methods() == ["SUBSCRIBE", "SUBSCRIBE"]
        self.harness.clock.advance(510)
        assert self.harness.speaker.methods() == ["SUBSCRIBE"] * 3
        assert self.harness.failures == []

    def test_auto_renew_counts_a_longer_grant_as_the_one_asked_for(self) -> None:
        """A grant longer than the timeout asked for is renewed at 85 % of the one asked for
        (a renewal that asks for another timeout counts that one); without one asked for, a
        grant over 86400 s (what speakers grant) counts as 86400 s; ``infinite`` is renewed
        hourly, or sooner when the timeout asked for is shorter."""
        cases: list[tuple[int | None, str, float]] = [
            (600, "Second-99999999999999", 510),
            (600, "Second-900", 510),
            (600, "Second-300", 255),
            (None, "Second-99999999999999", 86400 * 0.85),
            (None, "Second-3600", 3060),
            (600, "Second-infinite", 510),
            (86400, "Second-infinite", INFINITE_RENEW_INTERVAL),
        ]
        for asked, granted, due in cases:
            harness = Harness()
            harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": granted}))
            self.successResultOf(
                harness.subscription.subscribe(requested_timeout=asked, auto_renew=True)
            )
            [call] = harness.clock.getDelayedCalls()
            assert math.isclose(call.getTime(), due), (asked, granted, call.getTime())
        harness = Harness()
        harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": "Second-99999999999999"}))
        self.successResultOf(harness.subscription.subscribe(requested_timeout=600, auto_renew=True))
        harness.speaker.script.append(Answer(200, {"SID": SID, "TIMEOUT": "Second-99999999999999"}))
        self.successResultOf(harness.subscription.renew(requested_timeout=100))
        [call] = harness.clock.getDelayedCalls()
        assert math.isclose(call.getTime(), 85)

    def test_auto_renew_failure_stops_and_reports(self) -> None:
        """A failed auto-renewal calls auto_renew_fail and stops; nothing is left scheduled."""
        self.successResultOf(self.harness.subscription.subscribe(600, auto_renew=True))
        self.harness.speaker.script.append(Answer(412, {}))
        self.harness.clock.advance(510)
        [failure] = self.harness.failures
        assert failure.check(SubscriptionGone)
        assert self.harness.clock.getDelayedCalls() == []
        assert self.harness.listener.registered == {}

    def test_auto_renew_hang_times_out(self) -> None:
        """A hung auto-renewal times out, reports GenaTimeout, and leaves no timer."""
        self.successResultOf(self.harness.subscription.subscribe(600, auto_renew=True))
        self.harness.speaker.script.append(Answer(hang=True))
        self.harness.clock.advance(510)
        self.harness.clock.advance(10)
        [failure] = self.harness.failures
        assert failure.check(GenaTimeout)
        assert self.harness.clock.getDelayedCalls() == []

    def test_expiry_kept_when_a_renewal_fails(self) -> None:
        """A subscription ended by a failed renewal keeps the time the speaker forgets its SID
        (it was not told); one never granted has none."""
        sub = self.harness.subscription
        assert sub.expires is None
        start = self.harness.clock.seconds()
        self.successResultOf(sub.subscribe(600, auto_renew=True))
        assert sub.expires == start + 600
        self.harness.speaker.script.append(Answer(hang=True))
        self.harness.clock.advance(510)
        self.harness.clock.advance(10)
        assert not sub.is_subscribed
        assert (sub.time_left, sub.expires) == (0, start + 600)

    def test_auto_renew_fail_that_raises(self) -> None:
        """An auto_renew_fail that raises is logged; the subscription still ends cleanly."""

        def broken(failure: Failure) -> None:
            raise ZeroDivisionError()

        self.harness.subscription.auto_renew_fail = broken
        self.successResultOf(self.harness.subscription.subscribe(600, auto_renew=True))
        self.harness.speaker.script.append(Answer(500, {}))
        self.harness.clock.advance(510)
        assert len(self.flushLoggedErrors(ZeroDivisionError)) == 1
        assert self.harness.clock.getDelayedCalls() == []

    def test_soco_auto_renew_hooks(self) -> None:
        """SoCo's _auto_renew_start/_auto_renew_cancel hooks schedule and cancel one call."""
        self.successResultOf(self.harness.subscription.subscribe(600))
        self.harness.subscription._auto_renew_start(100)
        assert [c.getTime() for c in self.harness.clock.getDelayedCalls()] == [100]
        self.harness.subscription._auto_renew_cancel()
        assert self.harness.clock.getDelayedCalls() == []


class UnsubscribeTests(SynchronousTestCase):
    """unsubscribe() ends the subscription and keeps nothing."""

    def setUp(self) -> None:
        self.harness = Harness()
        self.successResultOf(self.harness.subscription.subscribe(600, auto_renew=True))

    def test_unsubscribe(self) -> None:
        """UNSUBSCRIBE carries the SID; afterwards nothing is registered or scheduled."""
        self.successResultOf(self.harness.subscription.unsubscribe())
        method, headers = self.harness.speaker.requests[-1]
        assert (method, headers["sid"]) == ("UNSUBSCRIBE", SID)
        assert self.harness.listener.registered == {}
        assert self.harness.clock.getDelayedCalls() == []
        assert self.harness.subscription.time_left == 0

    def test_412_is_fine(self) -> None:
        """A 412 on UNSUBSCRIBE (the speaker rebooted) is not an error."""
        self.harness.speaker.script.append(Answer(412, {}))
        self.successResultOf(self.harness.subscription.unsubscribe())
        assert not self.harness.subscription.is_subscribed

    def test_error_still_ends(self) -> None:
        """A 500 on UNSUBSCRIBE fails the call, but the subscription has ended locally."""
        self.harness.speaker.script.append(Answer(500, {}))
        self.failureResultOf(self.harness.subscription.unsubscribe(), GenaError)
        assert self.harness.listener.registered == {}
        assert self.harness.clock.getDelayedCalls() == []

    def test_twice_is_a_no_op(self) -> None:
        """A second unsubscribe sends nothing."""
        self.successResultOf(self.harness.subscription.unsubscribe())
        self.successResultOf(self.harness.subscription.unsubscribe())
        assert self.harness.speaker.methods().count("UNSUBSCRIBE") == 1

    def test_expired_is_not_sent(self) -> None:
        """Unsubscribing an expired subscription sends nothing and ends it."""
        self.harness.subscription._auto_renew_cancel()
        self.harness.clock.advance(601)
        self.successResultOf(self.harness.subscription.unsubscribe())
        assert "UNSUBSCRIBE" not in self.harness.speaker.methods()

    def test_no_resubscribe(self) -> None:
        """An ended Subscription cannot subscribe again (make a new one)."""
        self.successResultOf(self.harness.subscription.unsubscribe())
        self.failureResultOf(self.harness.subscription.subscribe(), UsageError)


class EventTests(SynchronousTestCase):
    """Events reach callback or the queue; SoCo's caches are fed only without blocking."""

    def test_callback(self) -> None:
        """With callback set, each event is passed to it."""
        harness = Harness()
        seen: list[Event] = []
        harness.subscription.callback = seen.append
        event = harness.event(volume={"Master": "3"})
        harness.subscription.send_event(event)
        assert seen == [event]
        assert harness.subscription.events.empty()

    def test_queue(self) -> None:
        """Without callback, or with one that is not callable, events go to the events queue
        as in soco.events."""
        harness = Harness()
        event = harness.event()
        harness.subscription.send_event(event)
        assert harness.subscription.events.get_nowait() is event
        harness.subscription.callback = "not callable"  # type: ignore[assignment]
        harness.subscription.send_event(event)
        assert harness.subscription.events.get_nowait() is event

    def test_callback_exception_is_logged(self) -> None:
        """A callback that raises is logged; send_event does not raise."""
        harness = Harness()

        def broken(event: Event) -> None:
            raise ZeroDivisionError()

        harness.subscription.callback = broken
        harness.subscription.send_event(harness.event())
        assert len(self.flushLoggedErrors(ZeroDivisionError)) == 1

    def test_topology_cache_fed_when_household_known(self) -> None:
        """With the household id cached, ZGT events feed SoCo's cache and the ZGS tracks us."""
        service = FakeService(service_type="ZoneGroupTopology", soco=HouseholdKnown())
        harness = Harness(service)
        self.successResultOf(harness.subscription.subscribe())
        assert service.soco.zone_group_state.tracked == [harness.subscription]
        event = harness.event(zone_group_state="<ZoneGroupState/>")
        harness.subscription.send_event(event)
        assert service.cache_updates == [event]
        self.successResultOf(harness.subscription.unsubscribe())
        assert service.soco.zone_group_state.tracked == []

    def test_topology_cache_fed_each_document_once(self) -> None:
        """The same ZoneGroupState from every speaker of a household reaches SoCo's cache once;
        a different one reaches it again."""
        household = HouseholdKnown()
        services = [FakeService(service_type="ZoneGroupTopology", soco=household) for _ in "ab"]
        harnesses = [Harness(service) for service in services]
        for harness in harnesses:
            self.successResultOf(harness.subscription.subscribe())
        first = "<ZoneGroupState><ZoneGroups/></ZoneGroupState>"
        second = "<ZoneGroupState><ZoneGroups><ZoneGroup/></ZoneGroups></ZoneGroupState>"
        for text in (first, first, second, first):
            for harness in harnesses:
                harness.subscription.send_event(harness.event(zone_group_state=text))
        fed = [
            event.variables["zone_group_state"]
            for service in services
            for event in service.cache_updates
        ]
        assert sorted(fed) == sorted([first, second, first])
        assert [e.variables["zone_group_state"] for e in services[0].cache_updates] == [
            first,
            second,
            first,
        ]

    def test_topology_cache_fed_again_after_a_subscription_ends(self) -> None:
        """Once a ZGT subscription ends (SoCo may then poll its cache itself), the next event's
        document reaches the cache even if it equals the last one given."""
        household = HouseholdKnown()
        text = "<ZoneGroupState><ZoneGroups/></ZoneGroupState>"
        first = Harness(FakeService(service_type="ZoneGroupTopology", soco=household))
        self.successResultOf(first.subscription.subscribe())
        first.subscription.send_event(first.event(zone_group_state=text))
        self.successResultOf(first.subscription.unsubscribe())
        second = Harness(FakeService(service_type="ZoneGroupTopology", soco=household))
        self.successResultOf(second.subscription.subscribe())
        second.subscription.send_event(second.event(zone_group_state=text))
        assert len(first.service.cache_updates) == 1
        assert len(second.service.cache_updates) == 1

    def test_topology_cache_that_cannot_be_remembered_is_always_fed(self) -> None:
        """A cache object that cannot be weakly referenced (or hashed) gets every document."""

        @attrs.define
        class Unhashable(RecordingZoneGroupState):
            pass

        household = HouseholdKnown()
        household.zone_group_state = Unhashable()
        service = FakeService(service_type="ZoneGroupTopology", soco=household)
        harness = Harness(service)
        self.successResultOf(harness.subscription.subscribe())
        for _ in range(2):
            harness.subscription.send_event(harness.event(zone_group_state="<ZoneGroupState/>"))
        assert len(service.cache_updates) == 2

    def test_other_services_skip_the_cache_hook(self) -> None:
        """Events of a service other than ZoneGroupTopology never call SoCo's cache hook."""
        service = FakeService(soco=HouseholdKnown())
        harness = Harness(service)
        self.successResultOf(harness.subscription.subscribe())
        harness.subscription.send_event(harness.event())
        assert service.cache_updates == []

    def test_topology_cache_failure_is_logged(self) -> None:
        """A SoCo cache update that raises is logged; the event is still delivered."""

        class BrokenService(FakeService):
            def _update_cache_on_event(self, event: Event) -> None:
                raise ZeroDivisionError()

        harness = Harness(BrokenService(service_type="ZoneGroupTopology", soco=HouseholdKnown()))
        seen: list[Event] = []
        harness.subscription.callback = seen.append
        harness.subscription.send_event(harness.event())
        assert len(seen) == 1
        assert len(self.flushLoggedErrors(ZeroDivisionError)) == 1


class FirstNotifyRaceTests(SynchronousTestCase):
    """SEQ 0 arriving before the SUBSCRIBE response still reaches the Subscription."""

    def test_seq0_before_the_response(self) -> None:
        """A NOTIFY for the new SID, read before the SUBSCRIBE answer, is held then delivered."""
        reactor = MemoryReactorClock()
        listener = NotifyListener(reactor, interface="127.0.0.1", port=0)
        listener.startService()
        speaker = ScriptedSpeaker()
        agent = RequestTraversalAgent(speaker)
        sub = Subscription(FakeService(), listener, reactor=reactor, http=HTTPClient(agent))
        seen: list[Event] = []
        sub.callback = seen.append
        speaker.script.append(Answer(hang=True))
        subscribing = sub.subscribe()
        address = IPv4Address("TCP", SPEAKER, 40000)
        protocol = listener.site.buildProtocol(address)
        assert protocol is not None
        transport = StringTransport(peerAddress=address)
        protocol.makeConnection(transport)
        protocol.dataReceived(
            b"NOTIFY / HTTP/1.1\r\nConnection: close\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n"
            b"SID: "
            + SID.encode()
            + b"\r\nSEQ: 0\r\nContent-Length: "
            + str(len(rendering_control_body(7))).encode()
            + b"\r\n\r\n"
            + rendering_control_body(7)
        )
        assert transport.value() == b""
        grant_hung(speaker, agent)
        self.successResultOf(subscribing)
        assert [event.seq for event in seen] == ["0"]
        assert seen[0].variables["volume"] == {"Master": "7"}
        assert transport.value().startswith(b"HTTP/1.1 200 ")
        assert held_timers(reactor) == []


class NameResolutionTests(TestCase):
    """A speaker given by name is resolved without blocking, and its address recorded."""

    async def test_host_name_is_resolved(self) -> None:
        """A speaker at http://localhost:1400 is recorded as 127.0.0.1, the NOTIFY source."""
        speaker = ScriptedSpeaker()
        listener = RecordingListener()
        service = FakeService(base_url="http://localhost:1400")
        sub = Subscription(
            service,
            listener,
            reactor=global_reactor,
            http=HTTPClient(RequestTraversalAgent(speaker)),
        )
        await sub.subscribe()
        assert sub.speaker_host == "127.0.0.1"
        assert listener.registered == {SID: sub}
        sub.cancel()


# -- pure helpers -----------------------------------------------------------------------------


def test_parse_timeout_forms() -> None:
    """Second-N, Second-infinite and infinite parse; case does not matter."""
    assert parse_timeout("Second-1800") == 1800
    assert parse_timeout(" second-5 ") == 5
    assert parse_timeout("Second-infinite") is None
    assert parse_timeout("INFINITE") is None


@given(st.integers(min_value=1, max_value=10**12))
def test_parse_timeout_round_trip(seconds: int) -> None:
    """What subscribe_headers sends for N parses back to N."""
    assert parse_timeout(subscribe_headers("http://x/", seconds)["TIMEOUT"]) == seconds


@given(st.text(max_size=20))
def test_parse_timeout_rejects_garbage(text: str) -> None:
    """Anything but Second-<digits> or infinite raises ValueError (never anything else)."""
    try:
        result = parse_timeout(text)
    except ValueError:
        return
    assert result is None or text.strip().lower().startswith("second-")


def test_headers() -> None:
    """A new SUBSCRIBE has CALLBACK and NT; a renewal has only SID (and TIMEOUT)."""
    assert subscribe_headers("http://h:1/", None) == {
        "CALLBACK": "<http://h:1/>",
        "NT": "upnp:event",
    }
    assert renew_headers(SID, 60) == {"SID": SID, "TIMEOUT": "Second-60"}


def test_check_response_table() -> None:
    """Status and header checks: 412 gone, non-2xx error, missing or bad headers error."""
    good = {"sid": SID, "timeout": "Second-600"}
    assert check_response("SUBSCRIBE", 200, good, need_sid=True, need_timeout=True) == (
        GenaResponse(200, SID, 600, has_timeout=True)
    )
    assert check_response("UNSUBSCRIBE", 200, {}, need_sid=False, need_timeout=False) == (
        GenaResponse(200)
    )
    cases: list[tuple[int, dict[str, str], type[GenaError]]] = [
        (412, good, SubscriptionGone),
        (500, good, GenaError),
        (301, good, GenaError),
        (200, {"timeout": "Second-600"}, GenaError),
        (200, {"sid": SID}, GenaError),
        (200, {"sid": SID, "timeout": "Minute-5"}, GenaError),
    ]
    for status, headers, error in cases:
        try:
            check_response("SUBSCRIBE", status, headers, need_sid=True, need_timeout=True)
        except error as raised:
            assert raised.status == status
        else:
            raise AssertionError(f"accepted {status} {headers}")


# -- end to end on loopback -------------------------------------------------------------------


def rendering_control_body(volume: int) -> bytes:
    """A RenderingControl LastChange propertyset, escaped as a speaker escapes it."""
    inner = (
        '<Event xmlns="urn:schemas-upnp-org:metadata-1-0/RCS/"><InstanceID val="0">'
        f'<Volume channel="Master" val="{volume}"/></InstanceID></Event>'
    )
    text = escape(inner, {'"': "&quot;"})
    return (
        '<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property>'
        f"<LastChange>{text}</LastChange></e:property></e:propertyset>"
    ).encode()


class LoopbackSpeaker(Resource):
    """A small GENA speaker on its own loopback address: SUBSCRIBE, renew, UNSUBSCRIBE, NOTIFY.

    NOTIFYs are sent from the speaker's address, SEQ 0 (full state) right after a subscribe.
    """

    isLeaf = True

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
        self.volume = 10
        self.subscriptions: dict[str, list[Any]] = {}
        self.counter = 0
        self.answers: list[int] = []
        self.agent = Agent(global_reactor, bindAddress=(address, 0))
        #: UNSUBSCRIBEs go unanswered (kept in ``hung``) while true.
        self.hang_unsubscribe = False
        self.hung: list[server.Request] = []

    def render_SUBSCRIBE(self, request: server.Request) -> bytes:
        sid = request.getHeader("sid")
        timeout = request.getHeader("timeout") or "Second-86400"
        if sid is not None:
            if sid not in self.subscriptions:
                request.setResponseCode(412)
                return b""
        else:
            callback = (request.getHeader("callback") or "").strip("<>")
            self.counter += 1
            sid = f"uuid:RINCON_LOOPBACK01400_sub{self.counter:010d}"
            self.subscriptions[sid] = [callback, 0]
            global_reactor.callLater(0, self.send, sid)
        request.setHeader("SID", sid)
        request.setHeader("TIMEOUT", timeout)
        return b""

    def render_UNSUBSCRIBE(self, request: server.Request) -> bytes | int:
        if self.hang_unsubscribe:
            self.hung.append(request)
            return server.NOT_DONE_YET
        sid = request.getHeader("sid") or ""
        if self.subscriptions.pop(sid, None) is None:
            request.setResponseCode(412)
        return b""

    def set_volume(self, volume: int) -> None:
        self.volume = volume
        for sid in self.subscriptions:
            self.send(sid)

    def send(self, sid: str) -> None:
        callback, seq = self.subscriptions[sid]
        self.subscriptions[sid][1] = seq + 1
        headers = Headers(
            {
                "NT": ["upnp:event"],
                "NTS": ["upnp:propchange"],
                "SID": [sid],
                "SEQ": [str(seq)],
                "Content-Type": ["text/xml"],
            }
        )
        body = rendering_control_body(self.volume)
        client = HTTPClient(self.agent)
        d = client.request("NOTIFY", callback, headers=headers, data=body)
        d.addCallback(lambda response: self.answers.append(response.code))


class EndToEndTests(TestCase):
    """A Subscription against a speaker on loopback, through a real NotifyListener."""

    def setUp(self) -> None:
        base = free_loopback_base()
        self.speaker_address = base
        self.speaker = LoopbackSpeaker(base)
        site = server.Site(self.speaker)
        port = global_reactor.listenTCP(1400, site, interface=base)  # type: ignore[arg-type]
        self.addCleanup(port.stopListening)
        self.listener = NotifyListener(global_reactor, interface="127.0.0.1", port=0)
        self.listener.startService()
        self.addCleanup(self.listener.stopService)
        self.events: DeferredQueue[Event] = DeferredQueue()

    async def next_event(self) -> Event:
        d = self.events.get()
        d.addTimeout(10, global_reactor)
        return await d

    async def test_subscribe_event_renew_unsubscribe(self) -> None:
        """SEQ 0 then SEQ 1 after a volume change arrive; renew keeps the SID; unsubscribe ends."""
        service = FakeService(base_url=f"http://{self.speaker_address}:1400")
        sub = Subscription(service, self.listener, reactor=global_reactor)
        sub.callback = self.events.put
        await sub.subscribe(requested_timeout=600)
        first = await self.next_event()
        assert (first.sid, first.seq) == (sub.sid, "0")
        assert first.variables["volume"] == {"Master": "10"}
        self.speaker.set_volume(25)
        second = await self.next_event()
        assert (second.seq, second.variables["volume"]) == ("1", {"Master": "25"})
        await sub.renew()
        assert sub.time_left > 590
        await sub.unsubscribe()
        assert self.speaker.subscriptions == {}
        assert self.listener.dispatcher.subscriptions() == []
        assert self.speaker.answers == [200, 200]

    async def test_events_module_compatibility(self) -> None:
        """With EVENTS_MODULE = sonosd.gena, plain SoCo code subscribes and gets events."""
        use_as_events_module(self)
        device = soco.SoCo(self.speaker_address)
        d = device.renderingControl.subscribe(auto_renew=True)
        assert isinstance(d, SubscriptionDeferred)
        sub = d.subscription
        assert isinstance(sub, Subscription)
        sub.callback = self.events.put
        assert await d is sub
        event = await self.next_event()
        assert event.service is device.renderingControl
        assert event.variables["volume"] == {"Master": "10"}
        assert sonosd.gena.event_listener.is_running
        assert sonosd.gena.event_listener is sonosd.gena.default_listener()
        await _shutdown_default()
        assert self.speaker.subscriptions == {}
        assert not sub.is_subscribed

    async def test_refused_connection_is_gena_error_none_caused_by_the_refusal(self) -> None:
        """A SUBSCRIBE to a speaker address where nothing listens fails with this module's
        ``GenaError(None)`` (a SoCoException), raised from the refusal (``__cause__``), and
        ends the subscription: nothing registered."""
        with socket.socket() as probe:
            probe.bind((self.speaker_address, 0))
            port = probe.getsockname()[1]
        service = FakeService(base_url=f"http://{self.speaker_address}:{port}")
        sub = Subscription(service, self.listener, reactor=global_reactor)
        with self.assertRaises(GenaError) as caught:
            await sub.subscribe()
        assert caught.exception.status is None
        assert isinstance(caught.exception, soco.exceptions.SoCoException)
        assert isinstance(caught.exception.__cause__, ConnectionRefusedError)
        assert not sub.is_subscribed and self.listener.dispatcher.subscriptions() == []

    async def test_one_shutdown_trigger_for_the_compatibility_listener(self) -> None:
        """However many subscriptions the compatibility path makes and ends, the reactor gets
        one shutdown trigger (the default listener's), and close_default_listener() removes
        it (soco.events_twisted adds one per subscription, never removed)."""
        use_as_events_module(self)
        added: list[object] = []
        removed: list[object] = []
        real_add = global_reactor.addSystemEventTrigger
        real_remove = global_reactor.removeSystemEventTrigger

        def add(phase: str, event: str, f: Any, *args: Any, **kwargs: Any) -> object:
            trigger = real_add(phase, event, f, *args, **kwargs)
            if (phase, event) == ("before", "shutdown"):
                added.append(trigger)
            return trigger

        def remove(trigger: Any) -> None:
            removed.append(trigger)
            real_remove(trigger)

        self.patch(global_reactor, "addSystemEventTrigger", add)
        self.patch(global_reactor, "removeSystemEventTrigger", remove)
        device = soco.SoCo(self.speaker_address)
        for _ in range(3):
            d = device.renderingControl.subscribe()
            d.subscription.callback = self.events.put
            await d
            await self.next_event()
            await d.subscription.unsubscribe()
        assert len(added) == 1
        await close_default_listener()
        assert removed == added

    async def test_the_default_listener_reads_socos_settings_and_outlives_its_subscriptions(
        self,
    ) -> None:
        """The compatibility listener is made from SoCo's settings as they are at its first
        use (set here long after ``sonosd.gena`` was imported), advertises
        ``EVENT_ADVERTISE_IP``, and keeps running when its last subscription ends: the next
        subscription uses it again and gets its events."""
        use_as_events_module(self)
        saved = soco_config.EVENT_ADVERTISE_IP
        self.addCleanup(setattr, soco_config, "EVENT_ADVERTISE_IP", saved)
        # Every interface, so that NOTIFYs to the advertised loopback address arrive too.
        soco_config.EVENT_LISTENER_IP = "0.0.0.0"
        soco_config.EVENT_ADVERTISE_IP = "127.0.0.9"
        device = soco.SoCo(self.speaker_address)
        first = device.renderingControl.subscribe()
        first.subscription.callback = self.events.put
        await first
        await self.next_event()
        listener = sonosd.gena.default_listener()
        assert listener.interface == "0.0.0.0" and listener.port != 1400
        [callback, _] = next(iter(self.speaker.subscriptions.values()))
        assert callback == f"http://127.0.0.9:{listener.port}/"
        await first.subscription.unsubscribe()
        assert self.speaker.subscriptions == {}
        assert listener.is_running
        again = device.renderingControl.subscribe()
        again.subscription.callback = self.events.put
        await again
        assert sonosd.gena.default_listener() is listener
        assert (await self.next_event()).sid == again.subscription.sid

    async def test_the_default_listener_stops_within_5_seconds_of_a_hung_speaker(self) -> None:
        """The compatibility listener's shutdown trigger gives the UNSUBSCRIBEs
        ``SHUTDOWN_GRACE`` (5 s, as ``close_default_listener``'s default) in all: a speaker
        that never answers holds the shutdown that long, not its 10 s request timeout, and the
        listener is stopped. The bound is shortened to 0.5 s here (not waited out)."""
        self.assertEqual(subscription_module.SHUTDOWN_GRACE, 5.0)
        default = inspect.signature(close_default_listener).parameters["grace"].default
        self.assertEqual(default, subscription_module.SHUTDOWN_GRACE)
        self.patch(subscription_module, "SHUTDOWN_GRACE", 0.5)
        use_as_events_module(self)
        device = soco.SoCo(self.speaker_address)
        subscribed = device.renderingControl.subscribe()
        sub = subscribed.subscription
        sub.callback = self.events.put
        await subscribed
        await self.next_event()
        listener = sonosd.gena.default_listener()
        self.speaker.hang_unsubscribe = True
        marks: list[str] = []
        global_reactor.callLater(0.45, marks.append, "0.45 s")
        # Well past the bound, well before the 10 s request timeout.
        late = global_reactor.callLater(3.0, marks.append, "3 s")
        self.addCleanup(lambda: late.cancel() if late.active() else None)
        closing = _shutdown_default()
        closing.addBoth(lambda _: marks.append("closed"))
        await closing
        assert marks == ["0.45 s", "closed"]
        assert len(self.speaker.hung) == 1 and not self.speaker.hung[0].finished
        assert not listener.running
        # Let the hung UNSUBSCRIBE end, so that nothing is left on the reactor.
        self.speaker.hung[0].finish()
        await until(lambda: not sub.is_subscribed and sub.request_started is None, "the end")


def use_as_events_module(test: TestCase) -> None:
    """Make sonosd.gena SoCo's events module for one test, its listener on 127.0.0.1:any."""
    saved = (
        soco_config.EVENTS_MODULE,
        soco_config.EVENT_LISTENER_IP,
        soco_config.EVENT_LISTENER_PORT,
    )

    def restore() -> None:
        (
            soco_config.EVENTS_MODULE,
            soco_config.EVENT_LISTENER_IP,
            soco_config.EVENT_LISTENER_PORT,
        ) = saved

    test.addCleanup(restore)
    test.addCleanup(close_default_listener)
    soco_config.EVENTS_MODULE = sonosd.gena
    soco_config.EVENT_LISTENER_IP = "127.0.0.1"
    soco_config.EVENT_LISTENER_PORT = 0


class SimulatorTests(TestCase):
    """A Subscription against the Sonos household simulator, on loopback."""

    def setUp(self) -> None:
        from sonosd.config import SimulateConfig
        from sonosd.sim.service import HouseholdService

        base = free_loopback_base(count=1)
        self.sim = HouseholdService(global_reactor, SimulateConfig(speakers=1, base_address=base))
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.speaker = self.sim.household.speakers[0]
        self.manager: Any = self.speaker.manager
        self.listener = NotifyListener(global_reactor, interface="127.0.0.1", port=0)
        self.listener.startService()
        self.addCleanup(self.listener.stopService)
        self.events: DeferredQueue[Event] = DeferredQueue()

    async def next_event(self) -> Event:
        d = self.events.get()
        d.addTimeout(10, global_reactor)
        return await d

    def subscription(self, **kwargs: Any) -> Subscription:
        device = soco.SoCo(self.speaker.address)
        sub = Subscription(device.renderingControl, self.listener, reactor=global_reactor, **kwargs)
        sub.callback = self.events.put
        return sub

    async def test_seq0_volume_change_renew_unsubscribe(self) -> None:
        """SEQ 0 carries the volume, a volume change gives SEQ 1, renew works, unsubscribe ends."""
        self.speaker.set_volume(20)
        sub = self.subscription()
        await sub.subscribe(requested_timeout=600)
        first = await self.next_event()
        assert (first.sid, first.seq) == (sub.sid, "0")
        assert first.variables["volume"]["Master"] == "20"
        self.speaker.set_volume(33)
        second = await self.next_event()
        assert second.seq == "1"
        assert second.variables["volume"]["Master"] == "33"
        await sub.renew()
        assert sub.timeout == 600
        [live] = self.manager.subscriptions()
        assert live["sid"] == sub.sid
        await sub.unsubscribe()
        assert self.manager.subscriptions() == []
        assert self.listener.dispatcher.subscriptions() == []

    async def test_seq0_before_the_answer_is_delivered_before_subscribe_fires(self) -> None:
        """A speaker that sends SEQ 0 before its SUBSCRIBE answer (the simulator's
        ``answer_delay``): the NOTIFY is held, not refused, and delivered when the SID is
        registered, before the subscribe() Deferred fires, to a callback set right after
        calling subscribe()."""
        self.manager.faults.answer_delay = 0.2
        device = soco.SoCo(self.speaker.address)
        sub = Subscription(device.renderingControl, self.listener, reactor=global_reactor)
        subscribing = sub.subscribe(requested_timeout=600)
        sub.callback = self.events.put
        await subscribing
        [event] = self.events.pending
        assert (event.sid, event.seq) == (sub.sid, "0")
        assert self.listener.rejected["unknown_sid"] == 0
        await sub.unsubscribe()
        assert self.manager.subscriptions() == []

    async def test_reboot_makes_renew_gone(self) -> None:
        """After the speaker forgets its SIDs (a reboot), renewal fails with SubscriptionGone."""
        sub = self.subscription()
        await sub.subscribe(requested_timeout=600)
        await self.next_event()
        await self.manager.forget_all()
        with self.assertRaises(SubscriptionGone):
            await sub.renew()
        assert not sub.is_subscribed
        assert self.listener.dispatcher.subscriptions() == []

    async def test_hung_renew_times_out(self) -> None:
        """A speaker that never answers a renewal gives GenaTimeout, the request's connection
        is closed (the speaker holds it no more), and unsubscribe still runs."""
        sub = self.subscription(request_timeout=0.5)
        await sub.subscribe(requested_timeout=600)
        self.manager.faults.renew_hang = True
        renewing = sub.renew()
        leaving = sub.unsubscribe()
        await until(lambda: self.manager.held_requests == 1, "the renewal held by the speaker")
        with self.assertRaises(GenaTimeout):
            await renewing
        await until(lambda: self.manager.held_requests == 0, "the timed-out renewal closed")
        await leaving
        assert not sub.is_subscribed

    async def test_absurd_grants_are_auto_renewed_as_asked(self) -> None:
        """A speaker granting ``Second-99999999999999`` or ``infinite`` (it keeps the
        subscription for the 3 s asked for): auto-renew renews within those 3 s, before the
        speaker forgets the SID (its expiry moves on), and nothing fails."""
        for granted in ("Second-99999999999999", "infinite"):
            self.manager.faults.answer_timeout = granted
            sub = self.subscription()
            failures: list[Failure] = []
            sub.auto_renew_fail = failures.append
            await sub.subscribe(requested_timeout=3, auto_renew=True)
            assert sub.timeout == (None if granted == "infinite" else 99999999999999)
            first = self.expiry(sub)
            assert first is not None
            await until(
                lambda sub=sub, first=first: (self.expiry(sub) or 0) > first + 1,
                f"a renewal of a {granted} grant",
            )
            assert failures == [] and sub.is_subscribed, failures
            self.manager.faults.reset()
            await sub.unsubscribe()
            assert self.manager.subscriptions() == []

    def expiry(self, sub: Subscription) -> float | None:
        """When the simulated speaker forgets ``sub``'s SID (reactor time), unless it did."""
        for live in self.manager.subscriptions():
            if live["sid"] == sub.sid:
                return float(global_reactor.seconds() + live["expires_in"])
        return None

    async def test_unknown_sid_from_the_simulator(self) -> None:
        """The simulator's NOTIFY for a SID nobody holds is answered 412."""
        url = self.listener.callback_url(self.speaker.address)
        status = await self.manager.send_unknown_sid(url, "RenderingControl")
        assert status == 412

    async def test_events_module_with_the_simulator(self) -> None:
        """Plain SoCo code with EVENTS_MODULE = sonosd.gena gets SEQ 0 and SEQ 1 from the sim."""
        use_as_events_module(self)
        device = soco.SoCo(self.speaker.address)
        d = device.renderingControl.subscribe(requested_timeout=600, auto_renew=True)
        d.subscription.callback = self.events.put
        sub = await d
        assert (await self.next_event()).seq == "0"
        self.speaker.set_volume(41)
        event = await self.next_event()
        assert (event.seq, event.variables["volume"]["Master"]) == ("1", "41")
        await sub.unsubscribe()
        assert self.manager.subscriptions() == []


class SocoFlavourTests(SynchronousTestCase):
    """What the public class adds to the core: SoCo's exceptions and SoCo's Event."""

    def test_errors_are_soco_exceptions_and_the_cores(self) -> None:
        """A failure is this module's error, a SoCoException, and the core's kind too."""
        from soco.exceptions import SoCoException

        from sonosd.gena import core

        harness = Harness()
        harness.speaker.script.append(Answer(412, {}))
        failure = self.failureResultOf(harness.subscription.subscribe(), SubscriptionGone)
        assert isinstance(failure.value, SoCoException)
        assert isinstance(failure.value, core.SubscriptionGone)
        assert failure.value.status == 412
        self.successResultOf(Harness().subscription.subscribe())
        twice = Harness()
        self.successResultOf(twice.subscription.subscribe())
        usage = self.failureResultOf(twice.subscription.subscribe(), UsageError)
        assert isinstance(usage.value, SoCoException)
        with self.assertRaises(SubscriptionGone):
            check_response("SUBSCRIBE", 412, {}, need_sid=True, need_timeout=True)

    def test_callback_gets_socos_event(self) -> None:
        """The listener's SoCo-free Event reaches the callback as SoCo's Event, same fields."""
        from sonosd.gena.event import Event as CoreEvent

        harness = Harness()
        received: list[Any] = []
        harness.subscription.callback = received.append
        harness.subscription.send_event(CoreEvent(SID, "4", harness.service, 2.0, {"mute": "1"}))
        [event] = received
        assert type(event) is Event
        assert (event.sid, event.seq, event.service, event.timestamp, event.mute) == (
            SID,
            "4",
            harness.service,
            2.0,
            "1",
        )
