# -*- test-case-name: tests.sinks.test_webhooks -*-
"""Webhooks: every message POSTed as JSON to any number of HTTP(S) targets, signed.

Each target has its own bounded queue and sends one request at a time, so messages arrive in
order. A request that fails with a connection error, a timeout, a 5xx or a 429 is retried
with exponential backoff and jitter (a ``Retry-After`` from the receiver is honoured, within
the cap); any other 4xx, and a redirect, means the receiver refuses the message: it is
dropped and logged, not retried. When a target falls behind, its oldest queued messages are
dropped, counted and logged. Nothing is lost without a log line saying so.

Request (documented in docs/webhooks.md)::

    POST <url>
    Content-Type: application/json
    X-Sonosd-Message-Id: 1234
    X-Sonosd-Message-Type: event
    X-Sonosd-Timestamp: 1764005400            (Unix seconds of this attempt)
    X-Sonosd-Attempt: 1
    X-Sonosd-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>

    <the message JSON, exactly the bytes every other channel sends>

The signature covers the timestamp so that a receiver can refuse replays of old requests;
``verify_signature`` is the reference check.

HTTPS is verified like a browser does (``optionsForClientTLS``: the chain against the
system's trust store, or the target's ``ca_file`` for a private CA, and the host name
against the certificate with service-identity).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import random as _random
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import attrs
from treq.client import HTTPClient
from twisted.application.service import Service
from twisted.internet import ssl
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IConsumer, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    HTTPConnectionPool,
)
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from sonosd.backoff import backoff_delay, describe_failure
from sonosd.config import Webhook
from sonosd.delivery.drain import drained
from sonosd.delivery.filters import Filter
from sonosd.delivery.hub import ISink, Message
from sonosd.gena.httpclient import add_timeout, quiet_pool, read_body

log = Logger()

SIGNATURE_HEADER = "X-Sonosd-Signature"
TIMESTAMP_HEADER = "X-Sonosd-Timestamp"
MESSAGE_ID_HEADER = "X-Sonosd-Message-Id"
MESSAGE_TYPE_HEADER = "X-Sonosd-Message-Type"
ATTEMPT_HEADER = "X-Sonosd-Attempt"
USER_AGENT = "sonosd"

#: A receiver's clock may differ from ours by this much before a signature is refused.
DEFAULT_TOLERANCE = 300.0


def signature(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The ``X-Sonosd-Signature`` value: ``sha256=`` and the hex HMAC of ``<timestamp>.<body>``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, b"%d." % timestamp + body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp_header: str | bytes | None,
    signature_header: str | bytes | None,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether a received webhook request is authentic and recent (the receiver's check).

    @param body: The raw request body, before any JSON parsing.
    @param timestamp_header: The ``X-Sonosd-Timestamp`` header.
    @param signature_header: The ``X-Sonosd-Signature`` header.
    @param now: The receiver's current Unix time.
    @param tolerance: How many seconds the timestamp may differ from ``now``.
    """
    if timestamp_header is None or signature_header is None:
        return False
    if isinstance(timestamp_header, bytes):
        timestamp_header = timestamp_header.decode("ascii", "replace")
    if isinstance(signature_header, bytes):
        signature_header = signature_header.decode("ascii", "replace")
    if (
        not (timestamp_header.isascii() and timestamp_header.isdigit())
        or len(timestamp_header) > 15
        # hmac.compare_digest raises TypeError on a str that is not ASCII (a sender's bytes
        # read as Latin-1, or replaced when decoded): such a signature is simply wrong.
        or not signature_header.isascii()
    ):
        return False
    timestamp = int(timestamp_header)
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), signature_header)


class Outcome(enum.Enum):
    """What a response status means for the message."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


def classify(status: int) -> Outcome:
    """2xx delivered; 429 and 5xx retried; anything else (other 4xx, 1xx, 3xx) refused."""
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status == 429 or status >= 500:
        return Outcome.RETRY
    return Outcome.REFUSED


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or an HTTP date), if any.

    Anything else a receiver sends (other digits than ASCII ones, a year past 9999) is ignored:
    never an exception that would hide the answer's status.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # float() of a 400-digit number is inf, never an error; the caller caps the wait.
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class HTTPPoster(Protocol):
    """The part of ``treq.HTTPClient`` (and ``treq.testing.StubTreq``) the sink uses."""

    def post(
        self,
        url: str,
        /,
        *,
        data: Any = ...,
        headers: Any = ...,
        allow_redirects: bool = ...,
        reactor: Any = ...,
    ) -> Deferred[Any]:
        """POST to ``url``."""


@implementer(IBodyProducer)
class _BytesProducer:
    """Writes a body already in memory at once (no cooperator, no global reactor)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body) if body else UNKNOWN_LENGTH

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        """Nothing to pause: the body is written in one piece."""

    def resumeProducing(self) -> None:
        """Nothing to resume."""

    def stopProducing(self) -> None:
        """Nothing to stop."""


def load_trust_root(ca_file: str) -> Any:
    """The ``IOpenSSLTrustRoot`` of every certificate in the PEM file ``ca_file``."""
    with open(ca_file, "rb") as handle:
        data = handle.read()
    marker = b"-----END CERTIFICATE-----"
    blocks = [part + marker for part in data.split(marker) if b"-----BEGIN CERTIFICATE" in part]
    if not blocks:
        raise ValueError(f"{ca_file}: no PEM certificate found")
    certificates = [ssl.Certificate.loadPEM(block.strip()) for block in blocks]
    return ssl.trustRootFromCertificates(certificates)


def make_http_client(
    reactor: Any, ca_file: str | None = None, pool: HTTPConnectionPool | None = None
) -> HTTPClient:
    """A treq client for webhook targets: verified HTTPS, persistent connections.

    @param reactor: The reactor the agent connects with.
    @param ca_file: A PEM file of the certificate authorities to trust instead of the
        system's (a private CA).
    @param pool: The connection pool (one per target, so that no connection verified
        against one target's CA is reused for another).
    """
    trust = load_trust_root(ca_file) if ca_file else None
    agent = Agent(
        reactor,
        contextFactory=BrowserLikePolicyForHTTPS(trustRoot=trust),
        pool=pool,
    )
    return HTTPClient(agent, data_to_body_producer=_BytesProducer)


@attrs.define
class TargetStats:
    """Counters of one target (for logs, metrics and tests)."""

    delivered: int = 0
    retried: int = 0
    refused: int = 0
    failed: int = 0
    dropped: int = 0
    lost_at_shutdown: int = 0


class WebhookTarget:
    """One webhook URL: a bounded queue, one request in flight, retries with backoff.

    @param reactor: Schedules timeouts and backoff (a ``Clock`` in tests).
    @param url: The target URL.
    @param client: Sends the requests (``treq.HTTPClient``; ``StubTreq`` in tests).
    @param secret: Signs each request (no ``X-Sonosd-Signature`` when ``None``).
    @param timeout: Seconds for one attempt (connect, send, response, body).
    @param retries: Attempts after the first before a message is given up.
    @param queue: How many messages may wait; beyond that the oldest are dropped.
    @param filter: Which messages this target wants.
    @param backoff_initial: The first retry delay, doubled on each further retry.
    @param backoff_max: The longest retry delay.
    @param random: The jitter source (returns a float in [0, 1)).
    @param pool: The client's connection pool: it stops keeping connections open when the
        receiver answers with HTTP/1.0 (which closes every connection after one response).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        url: str,
        client: HTTPPoster,
        *,
        secret: str | None = None,
        timeout: float = 10.0,
        retries: int = 5,
        queue: int = 1_000,
        filter: Filter | None = None,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        random: Callable[[], float] = _random.random,
        pool: HTTPConnectionPool | None = None,
        shown: str | None = None,
    ) -> None:
        self.url = url
        self._shown = shown or safe_url(url)
        self._pool = pool
        self.stats = TargetStats()
        self._reactor = reactor
        self._client = client
        self._secret = secret or None
        self._timeout = timeout
        self._retries = max(0, retries)
        self._size = max(1, queue)
        self._filter = filter or Filter()
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._random = random
        self._pending: deque[Message] = deque()
        self._pump: Deferred[None] | None = None
        self._running = False
        self._dropping = 0
        self._failing = False
        self.last_error: str | None = None
        self._closed = False
        self._idle: list[Deferred[None]] = []

    @property
    def shown(self) -> str:
        """The target as logs, diagnostics and metrics name it (no credentials)."""
        return self._shown

    @property
    def queued(self) -> int:
        """Messages waiting, plus the one in flight."""
        return len(self._pending) + int(self._running)

    @property
    def failing(self) -> bool:
        """Whether the last attempt failed and the message is being retried."""
        return self._failing

    def status(self) -> dict[str, Any]:
        """The target's URL (credentials hidden), queue, state and counters."""
        return {
            "url": self._shown,
            "queued": self.queued,
            "failing": self._failing,
            "last_error": self.last_error,
            **attrs.asdict(self.stats),
        }

    def deliver(self, message: Message) -> None:
        """Queue ``message`` if the filter accepts it; return at once."""
        if self._closed or not self._filter.matches(message):
            return
        if len(self._pending) >= self._size:
            dropped = self._pending.popleft()
            self.stats.dropped += 1
            self._dropping += 1
            if self._dropping == 1:
                log.warn(
                    "webhook {url} is behind: its queue of {size} is full, dropping the "
                    "oldest messages (first dropped: {id})",
                    url=self._shown,
                    size=self._size,
                    id=dropped.id,
                )
        self._pending.append(message)
        if not self._running:
            pump = Deferred.fromCoroutine(self._run())
            # A run that finished synchronously (an in-memory client) has nothing to cancel.
            self._pump = None if pump.called else pump

    async def _run(self) -> None:
        self._running = True
        try:
            while self._pending and not self._closed:
                await self._send(self._pending.popleft())
                if not self._pending and self._dropping:
                    log.warn(
                        "webhook {url} caught up after dropping {count} messages",
                        url=self._shown,
                        count=self._dropping,
                    )
                    self._dropping = 0
        except CancelledError:
            pass
        finally:
            self._running = False
            self._pump = None
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)

    async def _send(self, message: Message) -> None:
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                status, asked = await add_timeout(
                    self._attempt(message, attempt), self._timeout, self._reactor, _timed_out
                )
            except CancelledError:
                self.stats.lost_at_shutdown += 1
                raise
            except Exception as error:
                reason = describe_failure(error)[1]
                outcome = Outcome.RETRY
            else:
                outcome = classify(status)
                reason = f"HTTP {status}"
                wait = asked
            if outcome is not Outcome.DELIVERED:
                self.last_error = reason
            if outcome is not Outcome.DELIVERED and self._closed:
                # Cancelled by close(); the HTTP client reports it as a lost connection.
                self.stats.lost_at_shutdown += 1
                return
            if outcome is Outcome.DELIVERED:
                self.stats.delivered += 1
                if self._failing:
                    self._failing = False
                    log.info("webhook {url} delivers again", url=self._shown)
                return
            if outcome is Outcome.REFUSED:
                self.stats.refused += 1
                log.warn(
                    "webhook {url} refused message {id} ({reason}): dropped, not retried",
                    url=self._shown,
                    id=message.id,
                    reason=reason,
                )
                return
            if attempt > self._retries:
                # Failing until a message is delivered, with retries or without (retries: 0).
                self._failing = True
                self.stats.failed += 1
                log.warn(
                    "webhook {url} failed message {id} after {attempts} attempts ({reason}): "
                    "dropped",
                    url=self._shown,
                    id=message.id,
                    attempts=attempt,
                    reason=reason,
                )
                return
            delay = backoff_delay(attempt, self._backoff_initial, self._backoff_max, self._random)
            if wait is not None:
                delay = min(max(delay, wait), self._backoff_max)
            if not self._failing:
                self._failing = True
                log.warn(
                    "webhook {url} failing ({reason}); retrying message {id} in {delay:.1f} s",
                    url=self._shown,
                    reason=reason,
                    id=message.id,
                    delay=delay,
                )
            else:
                log.debug(
                    "webhook {url} attempt {attempt} for {id} failed ({reason}); retry in "
                    "{delay:.1f} s",
                    url=self._shown,
                    attempt=attempt,
                    id=message.id,
                    reason=reason,
                    delay=delay,
                )
            self.stats.retried += 1
            try:
                await deferLater(self._reactor, delay)
            except CancelledError:
                self.stats.lost_at_shutdown += 1
                raise

    def _attempt(self, message: Message, attempt: int) -> Deferred[tuple[int, float | None]]:
        return Deferred.fromCoroutine(self._post(message, attempt))

    async def _post(self, message: Message, attempt: int) -> tuple[int, float | None]:
        now = self._reactor.seconds()
        headers: dict[str, list[str]] = {
            "Content-Type": ["application/json"],
            "User-Agent": [USER_AGENT],
            MESSAGE_ID_HEADER: [str(message.id)],
            MESSAGE_TYPE_HEADER: [message.type],
            TIMESTAMP_HEADER: [str(int(now))],
            ATTEMPT_HEADER: [str(attempt)],
        }
        if self._secret is not None:
            headers[SIGNATURE_HEADER] = [signature(self._secret, int(now), message.raw)]
        response = await self._client.post(
            self.url,
            data=message.raw,
            headers=headers,
            allow_redirects=False,
            reactor=self._reactor,
        )
        # Read the body so the connection goes back to the pool; its content is not used.
        await read_body(response, _discard)
        if self._pool is not None and self._pool.persistent and closes_after(response):
            # An HTTP/1.0 receiver (Python's http.server) closes the connection after each
            # response, but Twisted keeps it in the pool: the next POST would be written into
            # a closing socket and fail with "connection lost".
            self._pool.persistent = False
            self._pool.closeCachedConnections()
            log.info(
                "webhook {url} answers with HTTP/1.0: one connection per request from now on",
                url=self._shown,
            )
        asked = None
        if response.code == 429 or response.code == 503:
            values = response.headers.getRawHeaders(b"Retry-After") or []
            if values:
                asked = retry_after(values[0].decode("latin-1"), now)
        return response.code, asked

    def when_idle(self) -> Deferred[None]:
        """Fire when nothing is queued or in flight."""
        if not self._running:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def close(self) -> None:
        """Stop at once: the request or backoff in progress is cancelled, the queue dropped."""
        self._closed = True
        lost = len(self._pending)
        self._pending.clear()
        self.stats.lost_at_shutdown += lost
        pump = self._pump
        if pump is not None:
            pump.addErrback(lambda failure: failure.trap(CancelledError))
            pump.cancel()
        total = self.stats.lost_at_shutdown
        if total:
            log.warn(
                "webhook {url}: {count} messages not delivered at shutdown",
                url=self._shown,
                count=total,
            )


def _timed_out(timeout: float) -> TimeoutError:
    """An attempt cut at its timeout fails with this, whatever error the HTTP client gives
    the cancelled request (see ``add_timeout``)."""
    return TimeoutError(f"no answer within {timeout:g} s")


def closes_after(response: Any) -> bool:
    """Whether the server closes the connection after every response: an HTTP/1.0 answer.

    Twisted's client keeps the ``Connection`` header to itself (not in ``headers``) and acts
    on a ``close`` there alone; an HTTP/1.0 server's ``keep-alive`` cannot be seen from here,
    so an HTTP/1.0 answer is taken to close (a connection per request: slower, never lost).
    """
    return tuple(getattr(response, "version", (b"HTTP", 1, 1))[1:]) < (1, 1)


def safe_url(url: str) -> str:
    """``url`` without a password in its user part or query values (for logs and the API)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "=" in pair else pair
        for pair in parts.query.split("&")
        if pair
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _discard(data: bytes) -> None:
    del data


@implementer(ISink)
class WebhookSink(Service):
    """Every configured webhook target, as one sink and one service.

    @param reactor: The reactor (connections, timeouts, backoff).
    @param targets: The targets.
    @param drain_timeout: How long ``stopService`` lets the queues drain.
    @param pools: Connection pools to close at stop.

    @ivar drain_timeout: The bound ``stopService`` uses (the daemon sets it again when a reload
        changes ``subscription.shutdown_timeout``).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        targets: Iterable[WebhookTarget],
        *,
        drain_timeout: float = 5.0,
        pools: Iterable[HTTPConnectionPool] = (),
    ) -> None:
        self._reactor = reactor
        self.targets = list(targets)
        self.drain_timeout = drain_timeout
        self._pools = list(pools)

    @classmethod
    def from_config(
        cls,
        reactor: Any,
        webhooks: Iterable[Webhook],
        *,
        drain_timeout: float = 5.0,
        client_factory: Callable[[Webhook], HTTPPoster] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> WebhookSink:
        """Build the sink for the configured targets.

        @param client_factory: Makes the HTTP client of one target (default: a treq client
            with its own persistent connection pool and the target's ``ca_file``).
        """
        targets = []
        pools = []
        # Two targets may post to one URL (each with its own filter): the second is shown as
        # ``<url>#2`` in logs, diagnostics and metrics, which would otherwise merge them.
        seen: Counter[str] = Counter()
        for webhook in webhooks:
            shown = safe_url(webhook.url)
            seen[shown] += 1
            if seen[shown] > 1:
                shown = f"{shown}#{seen[shown]}"
            pool: HTTPConnectionPool | None = None
            if client_factory is None:
                pool = quiet_pool(reactor, persistent=True)
                pool.maxPersistentPerHost = 1
                pools.append(pool)
                client: HTTPPoster = make_http_client(reactor, webhook.ca_file, pool)
            else:
                client = client_factory(webhook)
            targets.append(
                WebhookTarget(
                    reactor,
                    webhook.url,
                    client,
                    secret=webhook.secret,
                    timeout=webhook.timeout,
                    retries=webhook.retries,
                    queue=webhook.queue,
                    filter=_filter_of(webhook.filter),
                    random=random,
                    pool=pool,
                    shown=shown,
                )
            )
        return cls(reactor, targets, drain_timeout=drain_timeout, pools=pools)

    def deliver(self, message: Message) -> None:
        """Queue ``message`` for every target whose filter accepts it."""
        for target in self.targets:
            target.deliver(message)

    def stats(self) -> dict[str, TargetStats]:
        """Counters per target, by its URL as shown (``status()``'s ``url``)."""
        return {target.shown: target.stats for target in self.targets}

    def status(self) -> list[dict[str, Any]]:
        """Every target: its URL (without credentials), queue and counters."""
        return [target.status() for target in self.targets]

    def stopService(self) -> Deferred[None]:
        """Let the queues drain for at most ``drain_timeout`` s, then cancel what is left."""
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        busy = [target for target in self.targets if target.queued]
        if busy:
            await drained(
                [target.when_idle() for target in busy], self.drain_timeout, self._reactor
            )
        for target in self.targets:
            target.close()
        for pool in self._pools:
            await pool.closeCachedConnections()


def _filter_of(mapping: Mapping[str, Any]) -> Filter:
    return Filter.from_query(mapping, strict=True) if mapping else Filter()
