"""Tests for sonosd.sinks.webhooks: signed, ordered, bounded, retried webhook deliveries."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import tempfile
import types
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.logger import LogLevel, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from sonosd.config import Webhook, parse_config
from sonosd.delivery.filters import Filter
from sonosd.delivery.hub import Hub
from sonosd.sinks.webhooks import (
    Outcome,
    WebhookSink,
    WebhookTarget,
    classify,
    retry_after,
    signature,
    verify_signature,
)
from tests.conftest import free_loopback_base
from tests.daemon_helpers import Recorder, until
from tests.paths import ROOT
from tests.sinks.test_callbacks import capture_logs

SECRET = "s3cret"
#: The reason a refused connection is logged with.
REFUSED = "connection refused"
KITCHEN = {"uid": "RINCON_000E58A0123401400", "name": "Kitchen", "host": "127.0.0.2"}
OFFICE = {"uid": "RINCON_000E58A0567801400", "name": "Office", "host": "127.0.0.3"}


class Receiver(Resource):
    """A webhook receiver that records requests and answers with scripted statuses.

    ``statuses`` is consumed one per request (then 200); ``hold`` keeps requests open until
    the test finishes them.
    """

    isLeaf = True

    def __init__(self, clock: Clock | None = None, statuses: list[int] | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.statuses = list(statuses or [])
        self.requests: list[tuple[float, dict[str, str], bytes]] = []
        self.hold = False
        self.open: list[Request] = []
        self.retry_after: str | None = None

    def render_POST(self, request: Request) -> bytes | int:
        headers = {
            k.decode().lower(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()
        }
        assert request.content is not None
        body = request.content.read()
        when = self.clock.seconds() if self.clock is not None else 0.0
        self.requests.append((when, headers, body))
        if self.hold:
            self.open.append(request)
            return NOT_DONE_YET
        status = self.statuses.pop(0) if self.statuses else 200
        request.setResponseCode(status)
        if self.retry_after is not None:
            request.setHeader(b"Retry-After", self.retry_after.encode("latin-1"))
        return b"ok"

    def ids(self) -> list[int]:
        return [json.loads(body)["id"] for _, _, body in self.requests]


class TargetTests(SynchronousTestCase):
    """One target against an in-memory receiver (StubTreq) on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_764_005_400)
        self.hub = Hub(self.clock)
        self.receiver = Receiver(self.clock)
        self.stub = StubTreq(self.receiver)

    def target(self, client: Any = None, **kwargs: Any) -> WebhookTarget:
        kwargs.setdefault("secret", SECRET)
        kwargs.setdefault("random", lambda: 0.5)
        target = WebhookTarget(
            self.clock, "http://hooks.example/sonos", client or self.stub, **kwargs
        )
        self.hub.add_sink(target)
        return target

    def publish(self, count: int = 1, speaker: dict[str, str] = KITCHEN) -> None:
        for n in range(count):
            self.hub.publish("event", {"n": n}, speaker=speaker, service="RenderingControl")

    def test_signed_json_post(self) -> None:
        """The message JSON is POSTed as sent elsewhere, with its id and a valid signature."""
        self.target()
        self.publish()
        [(_, headers, body)] = self.receiver.requests
        message = next(self.hub.since(0) or iter(()))
        self.assertEqual(body, message.raw)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(headers["x-sonosd-message-id"], "1")
        self.assertEqual(headers["x-sonosd-message-type"], "event")
        self.assertEqual(headers["x-sonosd-attempt"], "1")
        self.assertEqual(headers["x-sonosd-timestamp"], "1764005400")
        self.assertTrue(
            verify_signature(
                SECRET,
                body,
                headers["x-sonosd-timestamp"],
                headers["x-sonosd-signature"],
                now=self.clock.seconds(),
            )
        )

    def test_no_secret_no_signature(self) -> None:
        """A target without a secret sends no signature header."""
        self.target(secret=None)
        self.publish()
        [(_, headers, _body)] = self.receiver.requests
        self.assertNotIn("x-sonosd-signature", headers)

    def test_one_request_in_flight_in_order(self) -> None:
        """The next message is sent only when the previous one got its answer."""
        self.receiver.hold = True
        target = self.target()
        self.publish(3)
        self.assertEqual(self.receiver.ids(), [1])
        self.assertEqual(target.queued, 3)
        for expected in ([1, 2], [1, 2, 3]):
            request = self.receiver.open.pop(0)
            request.write(b"ok")
            request.finish()
            self.stub.flush()
            self.assertEqual(self.receiver.ids(), expected)
        self.receiver.open.pop(0).finish()
        self.stub.flush()
        self.assertEqual(target.queued, 0)
        self.assertEqual(target.stats.delivered, 3)

    def test_5xx_retried_with_backoff(self) -> None:
        """A 5xx is retried after 1, 2, 4 s (times 0.75 with this jitter), then delivered."""
        self.receiver.statuses = [503, 500, 502]
        target = self.target()
        self.publish()
        start = self.clock.seconds()
        self.clock.pump([0.25] * 40)
        times = [when - start for when, _, _ in self.receiver.requests]
        self.assertEqual(len(times), 4)
        self.assertAlmostEqual(times[1] - times[0], 0.75)
        self.assertAlmostEqual(times[2] - times[1], 1.5)
        self.assertAlmostEqual(times[3] - times[2], 3.0)
        attempts = [headers["x-sonosd-attempt"] for _, headers, _ in self.receiver.requests]
        self.assertEqual(attempts, ["1", "2", "3", "4"])
        self.assertEqual(target.stats.delivered, 1)
        self.assertEqual(target.stats.retried, 3)

    def test_each_attempt_has_its_own_timestamp_and_signature(self) -> None:
        """A retry carries the Unix time of that attempt (not of the first one) and a
        signature over it, so a receiver refusing stale timestamps accepts a late retry."""
        self.receiver.statuses = [503, 503]
        self.target(random=lambda: 1.0)
        self.publish()
        self.clock.pump([0.25] * 40)
        stamps = [headers["x-sonosd-timestamp"] for _, headers, _ in self.receiver.requests]
        sent = [str(int(when)) for when, _, _ in self.receiver.requests]
        self.assertEqual(stamps, sent)
        self.assertEqual(len(set(stamps)), 3)
        for when, headers, body in self.receiver.requests:
            signed = headers["x-sonosd-signature"]
            self.assertTrue(verify_signature(SECRET, body, str(int(when)), signed, now=when))
            stale = str(int(self.receiver.requests[0][0]))
            if stale != headers["x-sonosd-timestamp"]:
                self.assertFalse(verify_signature(SECRET, body, stale, signed, now=when))

    def test_no_request_before_backoff_elapsed(self) -> None:
        """During the backoff nothing is sent, not even newer messages (order is kept)."""
        self.receiver.statuses = [503]
        self.target()
        self.publish(2)
        self.clock.advance(0.7)
        self.assertEqual(self.receiver.ids(), [1])
        self.clock.advance(0.1)
        self.assertEqual(self.receiver.ids(), [1, 1, 2])

    def test_gives_up_after_retries(self) -> None:
        """After ``retries`` retries the message is dropped, counted, and the next one is sent."""
        self.receiver.statuses = [500, 500, 500]
        target = self.target(retries=2)
        self.publish(2)
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.receiver.ids(), [1, 1, 1, 2])
        self.assertEqual((target.stats.failed, target.stats.delivered), (1, 1))

    def test_failing_without_retries(self) -> None:
        """With ``retries: 0`` a target whose attempt fails is failing (diagnostics, metrics,
        the doctor) until a message is delivered."""
        self.receiver.statuses = [500, 500]
        target = self.target(retries=0)
        self.publish(2)
        self.clock.pump([1.0] * 3)
        self.assertEqual((target.stats.failed, target.failing), (2, True))
        self.publish(1)
        self.clock.pump([1.0] * 3)
        self.assertEqual((target.stats.delivered, target.failing), (1, False))

    def test_each_streak_of_failures_warns_once(self) -> None:
        """The first failure of each streak is a warning and the attempts after it debug
        lines; a delivery ends the streak (``delivers again``), so the next failure warns."""
        logs = capture_logs(self)
        self.receiver.statuses = [503, 500, 200, 502]
        target = self.target()
        self.publish(2)
        self.clock.pump([0.25] * 40)
        lines = [
            (e["log_level"], e["log_format"].split(" ")[2])
            for e in logs
            if str(e.get("log_format", "")).startswith("webhook {url} ")
        ]
        self.assertEqual(
            lines,
            [
                (LogLevel.warn, "failing"),
                (LogLevel.debug, "attempt"),
                (LogLevel.info, "delivers"),
                (LogLevel.warn, "failing"),
                (LogLevel.info, "delivers"),
            ],
        )
        self.assertEqual((self.receiver.ids(), target.failing), ([1, 1, 1, 2, 2], False))

    def test_4xx_not_retried(self) -> None:
        """A 4xx other than 429 drops the message at once and the next one goes out; each
        refusal is logged as a warning naming the URL, the message and the status."""
        logs = capture_logs(self)
        self.receiver.statuses = [400, 404]
        target = self.target()
        self.publish(3)
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.receiver.ids(), [1, 2, 3])
        self.assertEqual((target.stats.refused, target.stats.delivered), (2, 1))
        self.assertEqual(refusals(logs), [(1, "HTTP 400"), (2, "HTTP 404")])

    def retried_after(self, status: int, retry_after: str, seconds: float) -> None:
        """A message answered ``status`` with ``retry_after`` is sent again ``seconds`` later,
        not sooner, and then delivered."""
        self.receiver.requests.clear()
        self.receiver.statuses = [status]
        self.receiver.retry_after = retry_after
        # The target's defaults, as the daemon builds it (WebhookSink.from_config).
        target = WebhookTarget(self.clock, "http://hooks.example/sonos", self.stub)
        target.deliver(self.hub.publish("event", {}, speaker=KITCHEN, service="Queue"))
        self.clock.advance(seconds - 0.1)
        self.assertEqual(len(self.receiver.requests), 1)
        self.clock.advance(0.2)
        self.assertEqual(len(self.receiver.requests), 2)
        self.assertEqual(target.stats.delivered, 1)

    def test_retry_after_honoured_on_429_and_503(self) -> None:
        """A 429 or a 503 is retried no sooner than its Retry-After asks, in seconds or as an
        HTTP date."""
        self.retried_after(429, "7", 7)
        when = int(self.clock.seconds()) + 10
        self.retried_after(503, formatdate(when, usegmt=True), when - self.clock.seconds())

    def test_retry_after_capped_at_60_seconds(self) -> None:
        """A Retry-After of an hour, on a 429 or a 503, delays the retry by 60 s, no more."""
        for status in (429, 503):
            self.retried_after(status, "3600", 60)

    def test_hostile_retry_after_keeps_the_status(self) -> None:
        """A 503 whose Retry-After is a 400-digit number waits the 60 s cap, and one whose
        Retry-After is Latin-1 superscript digits or a date past year 9999 is retried on the
        backoff, its error still ``HTTP 503``."""
        self.retried_after(503, "1" + "0" * 400, 60)
        for value in ("\u00b2", "\u00b9\u00b2", "Thu, 01 Jan 99999999999 00:00:00 GMT"):
            self.receiver.requests.clear()
            self.receiver.statuses = [503]
            self.receiver.retry_after = value
            target = WebhookTarget(self.clock, "http://hooks.example/sonos", self.stub)
            target.deliver(self.hub.publish("event", {}, speaker=KITCHEN, service="Queue"))
            self.assertEqual((len(self.receiver.requests), target.last_error), (1, "HTTP 503"))
            self.clock.pump([1.0] * 5)
            self.assertEqual(len(self.receiver.requests), 2, value)
            self.assertEqual(target.stats.delivered, 1)

    def test_connection_errors_retried(self) -> None:
        """A connection error is retried; the target logs it and gives up after the retries."""
        calls: list[str] = []

        class Down:
            def post(self, url: str, /, **kwargs: Any) -> Deferred[Any]:
                calls.append(url)
                return fail(ConnectionRefusedError())

        target = self.target(client=Down(), retries=3)
        self.publish()
        self.clock.pump([1.0] * 20)
        self.assertEqual(len(calls), 4)
        self.assertEqual(target.stats.failed, 1)

    def test_timeout_retried(self) -> None:
        """An attempt without an answer is cancelled after ``timeout``, failed as ``timeout``
        and retried."""
        self.receiver.hold = True
        target = self.target(timeout=10.0)
        self.publish()
        self.clock.advance(9.9)
        self.assertEqual(len(self.receiver.requests), 1)
        self.clock.advance(0.1)
        self.clock.advance(0.75)
        self.assertEqual(len(self.receiver.requests), 2)
        self.assertEqual(target.stats.retried, 1)
        self.assertEqual(target.last_error, "timeout")

    def test_queue_bounded_while_down(self) -> None:
        """While the target is down the queue keeps only the newest messages and counts drops;
        a warning is logged at the first drop, and ``caught up after dropping N messages``
        once the queue is empty again."""
        logs = capture_logs(self)

        def lines() -> list[tuple[Any, str, Any]]:
            return [
                (e["log_level"], e["log_format"].split(" ")[2], e.get("count"))
                for e in logs
                if e.get("log_format", "").startswith("webhook {url} ")
                and ("behind" in e["log_format"] or "caught up" in e["log_format"])
            ]

        self.receiver.statuses = [503] * 100
        target = self.target(queue=5, retries=1)
        self.publish(20)
        self.assertEqual(target.stats.dropped, 14)
        self.assertEqual(target.queued, 6)
        self.assertEqual(lines(), [(LogLevel.warn, "is", None)])
        self.receiver.statuses = []
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.receiver.ids(), [1, 1, 16, 17, 18, 19, 20])
        self.assertEqual(target.queued, 0)
        self.assertEqual(lines()[1:], [(LogLevel.warn, "caught", 14)])

    def test_filter(self) -> None:
        """Only messages accepted by the target's filter are sent: the ids of the others are
        gaps at the receiver (docs/webhooks.md)."""
        self.target(filter=Filter(rooms=["kitchen"]))
        self.publish(1, speaker=OFFICE)
        self.publish(1, speaker=KITCHEN)
        self.assertEqual(self.receiver.ids(), [2])

    def test_redirect_refused(self) -> None:
        """A redirect is not followed: the receiver's URL is wrong, the message is dropped
        and logged, not retried."""
        logs = capture_logs(self)
        self.receiver.statuses = [301, 308]
        target = self.target()
        self.publish(2)
        self.clock.pump([1.0] * 10)
        self.assertEqual(self.receiver.ids(), [1, 2])
        self.assertEqual((target.stats.refused, target.stats.retried), (2, 0))
        self.assertEqual(refusals(logs), [(1, "HTTP 301"), (2, "HTTP 308")])


def refusals(logs: list[Any]) -> list[tuple[int, str]]:
    """The (message id, reason) of each warning that a message was refused and dropped."""
    return [
        (e["id"], e["reason"])
        for e in logs
        if "refused message" in str(e.get("log_format"))
        and e["log_level"] is LogLevel.warn
        and e["url"] == "http://hooks.example/sonos"
    ]


class SinkTests(SynchronousTestCase):
    """The sink built from configuration, and its shutdown."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.hub = Hub(self.clock)
        self.receivers: dict[str, Receiver] = {}
        self.stubs: dict[str, StubTreq] = {}

    def factory(self, webhook: Webhook) -> StubTreq:
        receiver = Receiver(self.clock)
        self.receivers[webhook.url] = receiver
        self.stubs[webhook.url] = StubTreq(receiver)
        return self.stubs[webhook.url]

    def test_from_config_targets_and_filters(self) -> None:
        """Each configured target gets the messages its filter accepts."""
        sink = WebhookSink.from_config(
            self.clock,
            [
                Webhook(url="http://a/", secret="x"),
                Webhook(url="http://b/", filter={"rooms": ("Office",), "types": ("event",)}),
            ],
            client_factory=self.factory,
        )
        self.hub.add_sink(sink)
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.hub.publish("event", {}, speaker=OFFICE, service="AVTransport")
        self.hub.publish("speaker.offline", {}, speaker=OFFICE)
        self.assertEqual(self.receivers["http://a/"].ids(), [1, 2, 3])
        self.assertEqual(self.receivers["http://b/"].ids(), [2])
        self.assertEqual(sink.stats()["http://a/"].delivered, 3)

    def test_two_targets_on_one_url_are_told_apart(self) -> None:
        """Two targets posting to one URL (each with its own filter) keep their own counters,
        shown as ``<url>`` and ``<url>#2`` (credentials hidden) in the diagnostics and as two
        series of each metric, not one series twice (which Prometheus refuses)."""
        from prometheus_client import CollectorRegistry, generate_latest

        from sonosd.delivery.metrics import DaemonCollector

        posted: list[StubTreq] = []

        def factory(webhook: Webhook) -> StubTreq:
            posted.append(StubTreq(Receiver(self.clock)))
            return posted[-1]

        url = "http://user:pw@hooks/x?key=abc&v"
        sink = WebhookSink.from_config(
            self.clock,
            [
                Webhook(url=url, filter={"rooms": ("Kitchen",)}),
                Webhook(url=url, filter={"rooms": ("Office",)}),
                Webhook(url="http://other/"),
            ],
            client_factory=factory,
        )
        self.hub.add_sink(sink)
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.hub.publish("event", {}, speaker=OFFICE, service="AVTransport")
        self.hub.publish("event", {}, speaker=OFFICE, service="AVTransport")
        shown = [entry["url"] for entry in sink.status()]
        self.assertEqual(
            shown,
            ["http://***@hooks/x?key=***&v", "http://***@hooks/x?key=***&v#2", "http://other/"],
        )
        self.assertEqual(
            {name: stats.delivered for name, stats in sink.stats().items()},
            {
                "http://***@hooks/x?key=***&v": 1,
                "http://***@hooks/x?key=***&v#2": 2,
                "http://other/": 3,
            },
        )
        registry = CollectorRegistry()
        registry.register(DaemonCollector(dict, lambda: {"webhooks": sink.status()}, ()))
        lines = generate_latest(registry).decode().splitlines()
        prefix = 'sonosd_webhook_deliveries_total{result="delivered",target='
        delivered = sorted(line[len(prefix) :] for line in lines if line.startswith(prefix))
        self.assertEqual(
            delivered,
            [
                '"http://***@hooks/x?key=***&v"} 1.0',
                '"http://***@hooks/x?key=***&v#2"} 2.0',
                '"http://other/"} 3.0',
            ],
        )

    def test_stop_drains_then_cancels(self) -> None:
        """stopService waits for in-flight deliveries up to its bound, then drops the rest."""
        sink = WebhookSink.from_config(
            self.clock, [Webhook(url="http://a/")], client_factory=self.factory, drain_timeout=3
        )
        self.hub.add_sink(sink)
        sink.startService()
        receiver = self.receivers["http://a/"]
        receiver.hold = True
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        stopped = sink.stopService()
        self.assertNoResult(stopped)
        receiver.open.pop(0).finish()
        self.stubs["http://a/"].flush()
        self.assertEqual(receiver.ids(), [1, 2])
        self.clock.advance(3)
        self.successResultOf(stopped)
        target = sink.targets[0]
        self.assertEqual((target.stats.delivered, target.stats.lost_at_shutdown), (1, 1))
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.assertEqual(receiver.ids(), [1, 2])

    def test_default_shutdown_bound_and_queue(self) -> None:
        """As the daemon builds it (the defaults), the sink keeps 1,000 messages waiting per
        target, lets them drain for 5 s at shutdown, then drops the rest and logs the count."""
        logs = capture_logs(self)
        sink = WebhookSink.from_config(
            self.clock, [Webhook(url="http://a/")], client_factory=self.factory
        )
        self.hub.add_sink(sink)
        sink.startService()
        self.receivers["http://a/"].hold = True
        for _ in range(1_002):
            self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        target = sink.targets[0]
        # One in flight, 1,000 waiting, the oldest waiting one dropped.
        self.assertEqual((target.queued, target.stats.dropped), (1_001, 1))
        stopped = sink.stopService()
        self.clock.advance(4.9)
        self.assertNoResult(stopped)
        self.clock.advance(0.2)
        self.successResultOf(stopped)
        self.assertEqual(target.stats.lost_at_shutdown, 1_001)
        lost = [e for e in logs if "not delivered at shutdown" in e.get("log_format", "")]
        self.assertEqual([e["count"] for e in lost], [1_001])

    def test_default_retries_and_timeout(self) -> None:
        """As the daemon builds it (the defaults), a target waits 10 s for an answer, then
        retries five times, 1, 2, 4, 8 and 16 s apart at the top of the jitter, and gives up."""
        sink = WebhookSink.from_config(
            self.clock, [Webhook(url="http://a/")], client_factory=self.factory, random=lambda: 1.0
        )
        self.hub.add_sink(sink)
        receiver = self.receivers["http://a/"]
        receiver.hold = True
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.clock.advance(9.9)
        self.assertEqual(len(receiver.requests), 1)
        self.clock.advance(0.1)
        self.assertEqual(sink.targets[0].stats.retried, 1)
        receiver.hold = False
        receiver.statuses = [503] * 10
        self.clock.pump([0.5] * 120)
        times = [when for when, _, _ in receiver.requests]
        self.assertEqual([b - a for a, b in itertools.pairwise(times)], [11, 2, 4, 8, 16])
        self.assertEqual(sink.targets[0].stats.failed, 1)

    def test_backoff_doubles_up_to_60_seconds(self) -> None:
        """As the daemon builds it, the n-th retry waits between half of and the whole of
        min(60, 2^(n-1)) seconds: the top of the jitter doubles from 1 s and stays at 60 s,
        the bottom is half of it."""
        for jitter, scale in ((1.0, 1.0), (0.0, 0.5)):
            self.clock = Clock()
            self.hub = Hub(self.clock)
            webhook = Webhook(url="http://a/", retries=8)
            sink = WebhookSink.from_config(
                self.clock, [webhook], client_factory=self.factory, random=lambda j=jitter: j
            )
            self.hub.add_sink(sink)
            receiver = self.receivers["http://a/"]
            receiver.statuses = [503] * 20
            self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
            self.clock.pump([0.25] * 1_000)
            times = [when for when, _, _ in receiver.requests]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            self.assertEqual(gaps, [scale * g for g in (1, 2, 4, 8, 16, 32, 60, 60)])
            self.assertEqual(sink.targets[0].stats.failed, 1)

    def test_stop_drops_a_message_waiting_for_its_retry(self) -> None:
        """A message still waiting for its retry when the shutdown bound expires is dropped
        with those queued behind it, and counted in the line logged at shutdown."""
        logs = capture_logs(self)
        sink = WebhookSink.from_config(
            self.clock, [Webhook(url="http://a/")], client_factory=self.factory, random=lambda: 1.0
        )
        self.hub.add_sink(sink)
        sink.startService()
        receiver = self.receivers["http://a/"]
        receiver.statuses = [503] * 10
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        stopped = sink.stopService()
        # Attempts at 0, 1 and 3 s; at 5 s the third retry is due only at 7 s.
        self.clock.pump([0.5] * 10)
        self.successResultOf(stopped)
        self.assertEqual(receiver.ids(), [1, 1, 1])
        target = sink.targets[0]
        self.assertEqual((target.stats.lost_at_shutdown, target.queued), (2, 0))
        lost = [e for e in logs if "not delivered at shutdown" in e.get("log_format", "")]
        self.assertEqual([e["count"] for e in lost], [2])
        self.clock.pump([1.0] * 10)
        self.assertEqual(receiver.ids(), [1, 1, 1])

    def test_the_documented_example(self) -> None:
        """The configuration at the top of docs/webhooks.md loads (its ca_file pointed at a
        real PEM file): two targets, the first signing, filtering by room and type with
        its bounds as written, the second plain with the documented defaults (5 retries, a
        queue of 1,000, 10 s an attempt)."""
        text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
        example = text[text.index("```yaml\n") + len("```yaml\n") :]
        example = example[: example.index("```")]
        directory = tempfile.mkdtemp(prefix="sonosd-webhooks-doc-")
        self.addCleanup(__import__("shutil").rmtree, directory)
        ca_path, _, _ = make_ca_and_server(directory)
        example = example.replace("/etc/sonosd/private-ca.pem", ca_path)
        first, second = parse_config(example, "webhooks.md").sinks.webhooks
        self.assertEqual(
            (first.url, first.secret, first.timeout, first.retries, first.queue, first.ca_file),
            ("https://hooks.lan/sonos", "a long random string", 10, 5, 1000, ca_path),
        )
        self.assertEqual(
            (second.url, second.secret, second.timeout, second.retries, second.queue),
            ("http://nodered.lan:1880/sonos", None, 10, 5, 1000),
        )
        sink = WebhookSink.from_config(self.clock, [first, second], client_factory=self.factory)
        self.hub.add_sink(sink)
        self.hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        self.hub.publish("speaker.online", {}, speaker=KITCHEN)
        self.hub.publish("topology.changed", {})
        self.hub.publish("event", {}, speaker=OFFICE, service="AVTransport")
        self.assertEqual(self.receivers[first.url].ids(), [1, 2])
        self.assertEqual(self.receivers[second.url].ids(), [1, 2, 3, 4])

    def test_stop_idle(self) -> None:
        """stopService with nothing queued finishes at once."""
        sink = WebhookSink.from_config(
            self.clock, [Webhook(url="http://a/")], client_factory=self.factory
        )
        sink.startService()
        self.successResultOf(sink.stopService())


class PureTests(SynchronousTestCase):
    """Status classification, Retry-After parsing and signatures."""

    def test_classify(self) -> None:
        """2xx delivered; 429 and 5xx retried; other statuses refused."""
        self.assertEqual(classify(204), Outcome.DELIVERED)
        self.assertEqual(classify(429), Outcome.RETRY)
        self.assertEqual(classify(503), Outcome.RETRY)
        for status in (301, 400, 401, 403, 404, 410, 413):
            self.assertEqual(classify(status), Outcome.REFUSED)

    def test_retry_after(self) -> None:
        """Retry-After is read as seconds or as an HTTP date; nonsense is ignored."""
        self.assertEqual(retry_after("30", 0.0), 30.0)
        self.assertEqual(retry_after("Thu, 01 Jan 1970 00:01:00 GMT", 10.0), 50.0)
        self.assertIsNone(retry_after("soon", 0.0))
        self.assertIsNone(retry_after(None, 0.0))

    @given(value=st.text(max_size=64))
    def test_retry_after_never_raises(self, value: str) -> None:
        """Whatever text a receiver sends as Retry-After, the reading is a number of seconds
        (not below zero) or nothing, never an exception."""
        for text in (value, value + " 12:00:00 GMT", "Mon, 01 Jan " + value + " 00:00:00 GMT"):
            seconds = retry_after(text, 0.0)
            self.assertTrue(seconds is None or seconds >= 0.0, seconds)

    def test_signature_known_value(self) -> None:
        """The signature is the hex HMAC-SHA256 of ``<timestamp>.<body>``."""
        self.assertEqual(
            signature("key", 1, b"{}"),
            "sha256=" + __import__("hmac").new(b"key", b"1.{}", "sha256").hexdigest(),
        )

    def test_verify_rejects_stale_and_missing(self) -> None:
        """Old timestamps, missing or malformed headers do not verify."""
        good = signature(SECRET, 1000, b"{}")
        self.assertTrue(verify_signature(SECRET, b"{}", "1000", good, now=1100))
        self.assertFalse(verify_signature(SECRET, b"{}", "1000", good, now=2000))
        self.assertFalse(verify_signature(SECRET, b"{}", None, good, now=1000))
        self.assertFalse(verify_signature(SECRET, b"{}", "10x0", good, now=1000))
        self.assertFalse(verify_signature(SECRET, b"{}", "\u00b2", good, now=1000))
        self.assertFalse(verify_signature(SECRET, b"{}", b"1000", b"sha256=00", now=1000))

    def test_verify_refuses_a_signature_that_is_not_ascii(self) -> None:
        """A signature header with a byte past ASCII (read as Latin-1 by a receiver, or
        replaced when decoded) does not verify: no TypeError from ``compare_digest``."""
        good = signature(SECRET, 1000, b"{}")
        for forged in (good[:-1] + "\u00e9", "sha256=\ufffd", good.encode() + b"\xff"):
            self.assertFalse(verify_signature(SECRET, b"{}", "1000", forged, now=1000))


def documented_verify(now: float) -> Callable[[bytes, bytes, str, str], bool]:
    """The ``verify`` function of docs/webhooks.md, run as printed, its clock at ``now``."""
    text = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    section = text[text.index("## Verifying the signature") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/webhooks.md", "exec"), namespace)
    namespace["time"] = types.SimpleNamespace(time=lambda: now)
    verify: Callable[[bytes, bytes, str, str], bool] = namespace["verify"]
    return verify


@given(
    body=st.binary(max_size=64),
    timestamp=st.one_of(st.text(max_size=20), st.integers(0, 2_000).map(str)),
    forged=st.one_of(st.none(), st.text(max_size=80)),
)
def test_the_documented_verify_agrees_and_never_raises(
    body: bytes, timestamp: str, forged: str | None
) -> None:
    """The receiver's check printed in docs/webhooks.md gives the answer of
    ``verify_signature`` for any headers a sender may forge (digits other than ASCII, a
    timestamp of thousands of digits, a signature that is not ASCII), never an exception."""
    now = 1000.0
    verify = documented_verify(now)
    headers = [(timestamp, forged)] if forged is not None else []
    if timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15:
        headers.append((timestamp, signature(SECRET, int(timestamp), body)))
    headers += [("\u00b2", "sha256=00"), ("9" * 5_000, "sha256=00"), ("1000", "sha256=\u00e9")]
    for stamp, signed in headers:
        expected = verify_signature(SECRET, body, stamp, signed, now=now)
        assert verify(SECRET.encode(), body, stamp, signed) is expected, (stamp, signed)
    good = signature(SECRET, 1000, body)
    assert verify(SECRET.encode(), body, "1000", good)
    assert not verify(SECRET.encode(), body, "600", signature(SECRET, 600, body))


@given(secret=st.text(min_size=1), body=st.binary(), timestamp=st.integers(0, 2**40))
def test_signature_round_trip(secret: str, body: bytes, timestamp: int) -> None:
    """A signature verifies for its own body and timestamp and not for a changed body."""
    value = signature(secret, timestamp, body)
    assert verify_signature(secret, body, str(timestamp), value, now=timestamp)
    assert not verify_signature(secret, body + b" ", str(timestamp), value, now=timestamp)
    assert not verify_signature(secret + "x", body, str(timestamp), value, now=timestamp)


def make_ca_and_server(
    directory: str, ip: str = "127.0.0.1", ca: str = "sonosd test CA", dns: str = "localhost"
) -> tuple[str, bytes, bytes]:
    """A test CA named ``ca`` (its PEM written to ``directory``) and a server key+cert for
    ``ip`` and the host name ``dns``."""
    now = datetime.datetime.now(datetime.UTC)

    def build(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [
                        x509.DNSName(dns),
                        x509.IPAddress(__import__("ipaddress").ip_address(ip)),
                    ]
                ),
                critical=False,
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca)])
    ca_cert = build(ca, ca_key, ca_name, ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = build("127.0.0.1", server_key, ca_name, ca_key, False)
    ca_path = os.path.join(directory, "ca.pem")
    with open(ca_path, "wb") as handle:
        handle.write(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ca_path, key_pem, server_cert.public_bytes(serialization.Encoding.PEM)


class VerifyingReceiver(Resource):
    """An HTTPS webhook receiver that checks each signature the way docs/webhooks.md says."""

    isLeaf = True

    def __init__(self, now: Callable[[], float]) -> None:
        super().__init__()
        self.now = now
        self.bodies: list[dict[str, Any]] = []
        self.waiters: list[tuple[int, Deferred[None]]] = []

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        body = request.content.read()
        ok = verify_signature(
            SECRET,
            body,
            request.getHeader("X-Sonosd-Timestamp"),
            request.getHeader("X-Sonosd-Signature"),
            now=self.now(),
        )
        if not ok:
            request.setResponseCode(401)
            return b"bad signature"
        self.bodies.append(json.loads(body))
        for count, d in list(self.waiters):
            if len(self.bodies) >= count:
                self.waiters.remove((count, d))
                d.callback(None)
        return b""

    def wait_for(self, count: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if len(self.bodies) >= count:
            d.callback(None)
        else:
            self.waiters.append((count, d))
        return d


async def send_one(reactor: Any, sink: WebhookSink) -> None:
    """Start ``sink``, give it one message, wait until its first target is idle, stop it."""
    sink.startService()
    hub = Hub(reactor)
    hub.add_sink(sink)
    hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
    await sink.targets[0].when_idle().addTimeout(30, reactor)
    await sink.stopService()


class HTTPSIntegrationTests(TestCase):
    """Real HTTPS on loopback: a private CA, a verifying receiver, the default treq client."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        directory = tempfile.mkdtemp(prefix="sonosd-webhooks-")
        self.addCleanup(__import__("shutil").rmtree, directory)
        self.ca_path, key_pem, cert_pem = make_ca_and_server(directory)
        server_cert = ssl.PrivateCertificate.loadPEM(key_pem + cert_pem)
        self.receiver = VerifyingReceiver(reactor.seconds)
        site = Site(self.receiver)
        site.noisy = False
        port = reactor.listenSSL(0, site, server_cert.options(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = f"https://127.0.0.1:{port.getHost().port}/hook"
        # The same certificate served on an address it does not name.
        other = free_loopback_base(port=0, count=1)
        port = reactor.listenSSL(0, site, server_cert.options(), interface=other)
        self.addCleanup(port.stopListening)
        self.wrong_host_url = f"https://{other}:{port.getHost().port}/hook"

    async def test_delivered_over_verified_https(self) -> None:
        """Messages reach an HTTPS receiver trusted through ca_file, in order, signed."""
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=self.url, secret=SECRET, ca_file=self.ca_path)]
        )
        sink.startService()
        hub = Hub(self.reactor)
        hub.add_sink(sink)
        for n in range(5):
            hub.publish("event", {"n": n}, speaker=KITCHEN, service="AVTransport")
        await self.receiver.wait_for(5).addTimeout(30, self.reactor)
        self.assertEqual([body["id"] for body in self.receiver.bodies], [1, 2, 3, 4, 5])
        await sink.stopService()
        self.assertEqual(sink.targets[0].stats.delivered, 5)

    async def test_untrusted_certificate_refused(self) -> None:
        """Without the private CA the server's certificate is not trusted: nothing is sent,
        and the TLS failure is retried like any failure to connect, then given up."""
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=self.url, secret=SECRET, retries=1)]
        )
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        stats = sink.targets[0].stats
        self.assertEqual((stats.retried, stats.failed, stats.delivered), (1, 1, 0))
        self.assertEqual(self.receiver.bodies, [])

    async def test_host_name_verified(self) -> None:
        """A certificate from the trusted CA for another host name is refused."""
        sink = WebhookSink.from_config(
            self.reactor,
            [Webhook(url=self.wrong_host_url, secret=SECRET, retries=0, ca_file=self.ca_path)],
        )
        await send_one(self.reactor, sink)
        self.assertEqual(sink.targets[0].stats.failed, 1)
        self.assertEqual(self.receiver.bodies, [])

    def trust_as_system(self, ca_path: str) -> None:
        """Make ``ca_path`` the system's trust store (OpenSSL's ``SSL_CERT_FILE``) for this
        test, with no trust directory."""
        empty = tempfile.mkdtemp(prefix="sonosd-webhooks-certs-")
        self.addCleanup(os.rmdir, empty)
        for name, value in (("SSL_CERT_FILE", ca_path), ("SSL_CERT_DIR", empty)):
            old = os.environ.get(name)
            os.environ[name] = value
            if old is None:
                self.addCleanup(os.environ.pop, name, None)
            else:
                self.addCleanup(os.environ.__setitem__, name, old)

    async def test_system_trust_store_by_default_ca_file_instead(self) -> None:
        """Without ``ca_file`` the system's trust store decides (here a store holding the
        private CA: delivered); with ``ca_file`` only its CAs are trusted (another CA: refused,
        though the system trusts the server), and a file of several CAs trusts each of them."""
        self.trust_as_system(self.ca_path)
        directory = tempfile.mkdtemp(prefix="sonosd-webhooks-other-")
        self.addCleanup(__import__("shutil").rmtree, directory)
        other_ca, _, _ = make_ca_and_server(directory, ca="another test CA")
        both = os.path.join(directory, "both.pem")
        with open(both, "wb") as out:
            for path in (other_ca, self.ca_path):
                with open(path, "rb") as handle:
                    out.write(handle.read())
        outcomes = []
        for ca_file in (None, other_ca, both):
            sink = WebhookSink.from_config(
                self.reactor, [Webhook(url=self.url, secret=SECRET, retries=0, ca_file=ca_file)]
            )
            await send_one(self.reactor, sink)
            stats = sink.targets[0].stats
            outcomes.append((stats.delivered, stats.failed))
        self.assertEqual(outcomes, [(1, 0), (0, 1), (1, 0)])
        self.assertEqual([body["id"] for body in self.receiver.bodies], [1, 1])

    async def test_a_tls_handshake_without_end_is_cut_at_the_timeout(self) -> None:
        """A receiver that accepts the connection and then says nothing (no TLS handshake)
        fails each attempt at the webhook's ``timeout``, which bounds the TLS set-up too: the
        message is retried, given up with ``timeout``, and each connection is closed."""
        closed: list[object] = []

        class Silent(Protocol):
            def connectionLost(self, reason: object = None) -> None:
                closed.append(reason)

        port = self.reactor.listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        url = f"https://127.0.0.1:{port.getHost().port}/hook"
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=url, retries=1, timeout=0.3, ca_file=self.ca_path)]
        )
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        target = sink.targets[0]
        self.assertEqual((target.stats.retried, target.stats.failed), (1, 1))
        self.assertEqual(target.last_error, "timeout")
        await until(lambda: len(closed) == 2, "both connections closed")

    async def test_dns_name_verified(self) -> None:
        """A URL naming the host by a DNS name (``localhost``, from /etc/hosts: loopback) is
        delivered to a certificate that names it, and refused by one of the trusted CA that
        names only another host and the address."""
        directory = tempfile.mkdtemp(prefix="sonosd-webhooks-dns-")
        self.addCleanup(__import__("shutil").rmtree, directory)
        ca_path, key_pem, cert_pem = make_ca_and_server(directory, dns="sonosd.invalid")
        certificate = ssl.PrivateCertificate.loadPEM(key_pem + cert_pem)
        site = Site(self.receiver)
        site.noisy = False
        port = self.reactor.listenSSL(0, site, certificate.options(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        outcomes = []
        for url, ca in (
            (self.url.replace("127.0.0.1", "localhost"), self.ca_path),
            (f"https://localhost:{port.getHost().port}/hook", ca_path),
        ):
            sink = WebhookSink.from_config(
                self.reactor, [Webhook(url=url, secret=SECRET, retries=0, ca_file=ca)]
            )
            await send_one(self.reactor, sink)
            stats = sink.targets[0].stats
            outcomes.append((stats.delivered, stats.failed))
        self.assertEqual(outcomes, [(1, 0), (0, 1)])
        self.assertEqual(len(self.receiver.bodies), 1)

    async def test_wrong_secret_refused_not_retried(self) -> None:
        """A receiver that refuses the signature (401) makes the target drop, not retry."""
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=self.url, secret="wrong", ca_file=self.ca_path)]
        )
        await send_one(self.reactor, sink)
        stats = sink.targets[0].stats
        self.assertEqual((stats.refused, stats.retried), (1, 0))


class Http10Receiver:
    """Python's http.server (HTTP/1.0: it closes the connection after every response), in a
    thread, recording each request's X-Sonosd-Attempt and message id, and the client port.

    @param version: The protocol it answers with (``HTTP/1.1`` keeps connections open).
    @param close_on: The request (1 for the first) answered with ``Connection: close``,
        after which that connection is closed, as nginx does at its ``keepalive_requests``.
    """

    def __init__(self, version: str = "HTTP/1.0", close_on: int | None = None) -> None:
        import http.server
        import threading

        received: list[tuple[str, int]] = []
        self.received = received
        self.ports: list[int] = []
        ports = self.ports

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = version

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.headers["X-Sonosd-Attempt"], body["id"]))
                ports.append(self.client_address[1])
                # A complete response (with its length), then the connection is closed.
                self.send_response(200)
                self.send_header("Content-Length", "2")
                if len(received) == close_on:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class PlainHTTPIntegrationTests(TestCase):
    """Real HTTP on loopback with the default client: HTTP/1.0 receivers, dead targets."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor

    async def test_http10_receiver_gets_every_message_at_the_first_attempt(self) -> None:
        """An HTTP/1.0 receiver closes each connection: no POST is written into a closing
        one, so every message arrives at its first attempt."""
        receiver = Http10Receiver()
        sink = await self.send_in_batches(receiver, 20, 5)
        self.assertEqual(receiver.received, [("1", n) for n in range(1, 21)])
        self.assertEqual(sink.targets[0].stats.retried, 0)

    async def send_in_batches(
        self, receiver: Http10Receiver, count: int, batch: int
    ) -> WebhookSink:
        """Send ``count`` messages to ``receiver``, ``batch`` at a time (each batch waits
        for the one before to be delivered); stop the sink; close the receiver at cleanup."""
        self.addCleanup(receiver.close)
        sink = WebhookSink.from_config(self.reactor, [Webhook(url=receiver.url)])
        sink.startService()
        hub = Hub(self.reactor)
        hub.add_sink(sink)
        for n in range(count):
            hub.publish("event", {"n": n}, speaker=KITCHEN, service="AVTransport")
            if n % batch == batch - 1:
                await sink.targets[0].when_idle().addTimeout(30, self.reactor)
        await sink.targets[0].when_idle().addTimeout(30, self.reactor)
        await sink.stopService()
        return sink

    async def test_connection_reset_without_an_answer_is_retried(self) -> None:
        """A receiver that resets the connection instead of answering gets the same message
        again as attempt 2, which it answers: delivered once, retried once."""

        class Resetting(Receiver):
            def render_POST(self, request: Request) -> bytes | int:
                answer = super().render_POST(request)
                if len(self.requests) == 1:
                    request.channel.transport.abortConnection()  # type: ignore[union-attr]
                    return NOT_DONE_YET
                return answer

        receiver = Resetting()
        sink = WebhookSink.from_config(self.reactor, [Webhook(url=self.listen(receiver))])
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        attempts = [headers["x-sonosd-attempt"] for _, headers, _ in receiver.requests]
        self.assertEqual((receiver.ids(), attempts), ([1, 1], ["1", "2"]))
        stats = sink.targets[0].stats
        self.assertEqual((stats.delivered, stats.retried, stats.failed), (1, 1, 0))

    async def test_one_connection_close_keeps_the_next_connections_alive(self) -> None:
        """An HTTP/1.1 receiver that closes one connection with ``Connection: close`` (nginx
        after its keepalive_requests) gets the next messages over one new kept-alive
        connection, each at its first attempt: not one connection per request from then on."""
        receiver = Http10Receiver(version="HTTP/1.1", close_on=3)
        await self.send_in_batches(receiver, 10, 10)
        self.assertEqual(receiver.received, [("1", n) for n in range(1, 11)])
        self.assertEqual(
            [len(set(receiver.ports[:3])), len(set(receiver.ports[3:]))], [1, 1], receiver.ports
        )
        self.assertNotEqual(receiver.ports[2], receiver.ports[3])

    async def test_dead_target_logs_no_factory_lines(self) -> None:
        """Retrying a target that refuses connections logs no Starting/Stopping factory."""
        events = capture_logs(self)
        port = free_loopback_base(port=0, count=1)
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=f"http://{port}:9/hook", retries=2)]
        )
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        self.assertEqual(sink.targets[0].stats.failed, 1)
        formats = [str(event.get("log_format")) for event in events]
        self.assertFalse([f for f in formats if "factory" in f.lower()], formats)

    def listen(self, receiver: Resource, address: str = "127.0.0.1", port: int = 0) -> str:
        """Serve ``receiver`` over plain HTTP on loopback; its URL."""
        site = Site(receiver)
        site.noisy = False
        listening = self.reactor.listenTCP(port, site, interface=address)
        self.addCleanup(listening.stopListening)
        return f"http://{address}:{listening.getHost().port}/hook"

    async def test_one_kept_alive_connection_per_target(self) -> None:
        """Two targets on one receiver each send their ten requests, with ``User-Agent:
        sonosd``, over one kept-alive connection of their own."""
        ports: dict[bytes, list[int]] = {}
        agents: set[str | None] = set()

        class PortReceiver(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> bytes:
                address = request.getClientAddress()
                assert isinstance(address, IPv4Address)
                ports.setdefault(request.path, []).append(address.port)
                agents.add(request.getHeader("User-Agent"))
                return b"ok"

        url = self.listen(PortReceiver())
        sink = WebhookSink.from_config(self.reactor, [Webhook(url=url + p) for p in ("a", "b")])
        sink.startService()
        hub = Hub(self.reactor)
        hub.add_sink(sink)
        for n in range(10):
            hub.publish("event", {"n": n}, speaker=KITCHEN, service="AVTransport")
        await until(
            lambda: sum(len(p) for p in ports.values()) == 20, "every message at both targets"
        )
        await sink.stopService()
        self.assertEqual(agents, {"sonosd"})
        self.assertEqual(sorted(ports), [b"/hooka", b"/hookb"])
        connections = [set(p) for p in ports.values()]
        self.assertEqual([len(c) for c in connections], [1, 1])
        self.assertNotEqual(connections[0], connections[1])

    async def test_answer_with_endless_headers_is_bounded(self) -> None:
        """A receiver answering with 200 KB of header lines fails the delivery at 64 KiB of
        them, a warning naming the URL and the bound, the message given up after its retries;
        another target gets every message."""
        events = capture_logs(self)

        class Flooding(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> bytes:
                for _ in range(200):
                    request.responseHeaders.addRawHeader(b"x-padding", b"x" * 1011)
                return b"ok"

        fast = Receiver()
        webhooks = [
            Webhook(url=self.listen(Flooding()), retries=2),
            Webhook(url=self.listen(fast)),
        ]
        sink = WebhookSink.from_config(self.reactor, webhooks)
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        self.assertEqual((sink.targets[0].stats.failed, len(fast.requests)), (1, 1))
        warnings = [
            formatEvent(e)
            for e in events
            if e["log_level"] >= LogLevel.warn and webhooks[0].url in formatEvent(e)
        ]
        self.assertTrue(warnings)
        self.assertTrue(all("status line and headers over 65536 bytes" in w for w in warnings))

    async def test_an_answer_whose_body_never_ends_is_cut_at_the_timeout(self) -> None:
        """A receiver that answers 200 and then sends its body without end fails the attempt
        at the webhook's ``timeout``, the body included (docs/security.md: 10 s an attempt,
        the body included): a warning names the URL and the timeout, and the message is given
        up after its retries."""
        events = capture_logs(self)
        requests: list[Request] = []
        cut: list[Request] = []

        class Endless(Resource):
            isLeaf = True

            def render_POST(self, request: Request) -> int:
                requests.append(request)
                request.notifyFinish().addErrback(lambda _: cut.append(request))
                request.write(b"x" * 1024)
                return NOT_DONE_YET

        webhook = Webhook(url=self.listen(Endless()), retries=1, timeout=0.5)
        sink = WebhookSink.from_config(self.reactor, [webhook])
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        self.assertEqual((sink.targets[0].stats.failed, len(requests)), (1, 2))
        warnings = [
            formatEvent(e)
            for e in events
            if e["log_level"] >= LogLevel.warn and webhook.url in formatEvent(e)
        ]
        self.assertTrue(warnings)
        self.assertTrue(all("timeout" in w for w in warnings), warnings)
        # Each cut attempt's connection is closed, not left open to a body without end.
        await until(lambda: len(cut) == 2, "both connections closed")

    async def test_a_receiver_that_never_answers_is_a_timeout(self) -> None:
        """A receiver that takes the request and never answers fails each attempt at the
        webhook's ``timeout``: the message is retried, then given up, the reason ``timeout``
        (not ``connection lost``: the receiver did not close anything)."""
        events = capture_logs(self)
        receiver = Receiver()
        receiver.hold = True
        webhook = Webhook(url=self.listen(receiver), retries=1, timeout=0.3)
        sink = WebhookSink.from_config(self.reactor, [webhook])
        sink.targets[0]._backoff_initial = sink.targets[0]._backoff_max = 0.01
        await send_one(self.reactor, sink)
        target = sink.targets[0]
        self.assertEqual((len(receiver.requests), target.stats.failed), (2, 1))
        reasons = [e["reason"] for e in events if e.get("url") == webhook.url and "reason" in e]
        self.assertEqual(reasons, ["timeout", "timeout"])
        self.assertEqual(target.last_error, "timeout")

    async def test_slow_target_delays_no_other_target(self) -> None:
        """While one receiver holds its request open, another target and another channel get
        every message at once, in order; the slow receiver gets them all once it answers."""
        slow, fast = Receiver(), Receiver()
        slow.hold = True
        webhooks = [Webhook(url=self.listen(r), timeout=120) for r in (slow, fast)]
        sink = WebhookSink.from_config(self.reactor, webhooks)
        sink.startService()
        hub = Hub(self.reactor)
        other = Recorder()
        hub.add_sink(sink)
        hub.add_sink(other)
        for n in range(20):
            hub.publish("event", {"n": n}, speaker=KITCHEN, service="AVTransport")
        self.assertEqual(len(other.messages), 20)
        await until(
            lambda: len(fast.requests) == 20 and slow.requests, "the fast receiver's messages"
        )
        self.assertEqual(fast.ids(), list(range(1, 21)))
        self.assertEqual((slow.ids(), sink.targets[0].queued), ([1], 20))
        slow.hold = False
        for request in slow.open:
            request.finish()
        await until(lambda: len(slow.requests) == 20, "the slow receiver's messages")
        await sink.stopService()
        self.assertEqual(slow.ids(), list(range(1, 21)))
        self.assertEqual([t.stats.delivered for t in sink.targets], [20, 20])

    async def test_receiver_away_then_back_is_logged(self) -> None:
        """A receiver that refuses connections gets a warning at its first failure, debug lines
        for the next attempts, a warning naming the URL, message id, attempts and reason when
        the message is given up, and ``delivers again`` once it answers."""
        events = capture_logs(self)
        address = free_loopback_base(port=8080, count=1)
        url = f"http://{address}:8080/hook"
        sink = WebhookSink.from_config(
            self.reactor, [Webhook(url=url, retries=2)], random=lambda: 0.0
        )
        target = sink.targets[0]
        sink.startService()
        hub = Hub(self.reactor)
        hub.add_sink(sink)
        hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        await until(lambda: target.stats.failed == 1, "the message given up")
        self.assertTrue(target.failing)
        receiver = Receiver()
        self.listen(receiver, address, 8080)
        hub.publish("event", {}, speaker=KITCHEN, service="AVTransport")
        await until(lambda: target.stats.delivered == 1, "the next message delivered")
        await sink.stopService()
        self.assertEqual((receiver.ids(), target.failing), ([2], False))
        lines = [
            (e["log_level"], e["log_format"].split(" ")[2], e)
            for e in events
            if str(e.get("log_format", "")).startswith("webhook {url} ")
        ]
        self.assertEqual(
            [(level, word) for level, word, _ in lines],
            [
                (LogLevel.warn, "failing"),
                (LogLevel.debug, "attempt"),
                (LogLevel.warn, "failed"),
                (LogLevel.info, "delivers"),
            ],
        )
        failing, _, given_up, _ = (e for _, _, e in lines)
        self.assertEqual((failing["reason"], failing["id"], failing["delay"]), (REFUSED, 1, 0.5))
        self.assertEqual(
            (given_up["url"], given_up["id"], given_up["attempts"], given_up["reason"]),
            (url, 1, 3, REFUSED),
        )
