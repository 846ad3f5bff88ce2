# -*- test-case-name: tests.gena.test_core -*-
"""GENA subscriptions to Sonos services, without SoCo: ``soco.events_twisted``'s API,
hardened for a daemon.

A :class:`BaseSubscription` subscribes to one service of one speaker (``SUBSCRIBE`` with a
``CALLBACK`` URL from the :class:`~sonosd.gena.listener.NotifyListener`), renews it and ends it
(``UNSUBSCRIBE``), and receives the speaker's events. It keeps the API and behaviour of
``soco.events_twisted.Subscription`` -- Deferreds that fire with the Subscription and carry
``.subscription`` at once, calls serialised per Subscription, ``callback`` or the ``events``
queue, ``auto_renew_fail`` -- and fixes what a daemon running for months cannot live with:

- HTTP status codes are checked: 412 is :class:`SubscriptionGone`, any other non-2xx is
  :class:`GenaError`, a response without ``SID``/``TIMEOUT`` is a :class:`GenaError`;
- every request has a timeout (:class:`GenaTimeout`); a hung speaker never stalls later calls;
- nothing blocks the reactor (SoCo's first subscribe reads ``household_id`` over the network);
- ``Second-infinite`` is understood; auto-renew is a ``callLater`` chain that stops cleanly,
  calling ``auto_renew_fail``, when a renewal fails;
- the speaker's address is recorded as the only accepted NOTIFY source;
- nothing is kept once a subscription ends: no shutdown trigger per subscription, no timer;
- the reactor, HTTP client and listener are passed in.

The pure helpers (:func:`parse_timeout`, :func:`subscribe_headers`, :func:`renew_headers`,
:func:`check_response`) and :func:`gena_request` are usable on their own, for code that runs
its own renewal schedule.

:class:`BaseSubscription` is the whole GENA client and needs nothing of SoCo: the daemon
subscribes with it, describing each service with a light :class:`ServiceRef` (an idle daemon
never loads SoCo, issue 17). :mod:`sonosd.gena.subscription` builds the public,
SoCo-compatible ``Subscription`` on it (SoCo's ``SubscriptionBase``, ``Event`` and exceptions,
the ``soco.config.EVENTS_MODULE`` shim).
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Coroutine, Mapping
from queue import Queue
from typing import Any, Final
from urllib.parse import urlparse

import attrs
from treq.client import HTTPClient
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredLock,
    DeferredSemaphore,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sonosd.gena.event import Event
from sonosd.gena.httpclient import add_timeout, read_body, speaker_agent
from sonosd.gena.listener import INotifyListener, INotifySubscription, NotifyListener

log = Logger()

DEFAULT_REQUEST_TIMEOUT: Final = 10.0
"""Seconds allowed for one SUBSCRIBE/renew/UNSUBSCRIBE exchange, body included."""

RENEW_FRACTION: Final = 0.85
"""Auto-renew after this fraction of the granted timeout (as SoCo does)."""

INFINITE_RENEW_INTERVAL: Final = 3600.0
"""Auto-renew interval for a ``Second-infinite`` grant: a rebooted speaker is noticed."""

SPEAKER_DEFAULT_TIMEOUT: Final = 86400
"""What a Sonos speaker grants a SUBSCRIBE that asks for no timeout: auto-renew counts a
longer grant as this one."""

MAX_RESPONSE_BODY: Final = 65_536
"""A GENA response has an empty body; more than this is not read."""


class GenaError(Exception):
    """A GENA request failed; ``status`` is the HTTP status (``None``: no usable answer)."""

    def __init__(self, status: int | None, message: str = "") -> None:
        self.status = status
        self.message = message or (f"HTTP {status}" if status is not None else "GENA error")
        super().__init__(self.message)


class SubscriptionGone(GenaError):
    """The speaker does not know the subscription (412: expired, or the speaker rebooted)."""


class GenaTimeout(GenaError):
    """The speaker did not answer in time."""


class UsageError(Exception):
    """A call that makes no sense in the Subscription's state (it is not cancelled for it)."""


@attrs.frozen
class GenaResponse:
    """A checked answer to a GENA request.

    @ivar status: The HTTP status (2xx).
    @ivar sid: The ``SID`` header, when sent.
    @ivar timeout: The granted seconds; ``None`` for ``Second-infinite`` or when not sent.
    @ivar has_timeout: Whether a ``TIMEOUT`` header was sent.
    """

    status: int
    sid: str | None = None
    timeout: int | None = None
    has_timeout: bool = False


_MAX_TIMEOUT_DIGITS: Final = 18
_SHOWN: Final = 40
_SID: Final = re.compile(r"uuid:[!-~]{1,250}", re.IGNORECASE)


def parse_timeout(value: str) -> int | None:
    """Parse a GENA ``TIMEOUT`` value: ``Second-N`` gives ``N``, ``Second-infinite`` ``None``.

    ``Second-0`` (a subscription that has already expired) and numbers of more than 18
    digits are refused.

    @raise ValueError: For anything else.
    """
    text = value.strip()
    if text.lower() in ("infinite", "second-infinite"):
        return None
    prefix, _, number = text.partition("-")
    if (
        prefix.lower() != "second"
        or not number.isascii()
        or not number.isdigit()
        or len(number) > _MAX_TIMEOUT_DIGITS
        or int(number) == 0
    ):
        raise ValueError(f"bad GENA TIMEOUT: {value[:_SHOWN]!r}")
    return int(number)


def check_sid(value: str) -> str:
    """Check a GENA ``SID``: ``uuid:`` and at most 250 printable ASCII characters.

    @raise ValueError: For anything else.
    """
    if _SID.fullmatch(value) is None:
        raise ValueError(f"bad GENA SID: {value[:_SHOWN]!r}")
    return value


def subscribe_headers(callback_url: str, requested_timeout: int | None) -> dict[str, str]:
    """The headers of a new SUBSCRIBE (UPnP Device Architecture 1.1, 4.1.2)."""
    headers = {"CALLBACK": f"<{callback_url}>", "NT": "upnp:event"}
    if requested_timeout is not None:
        headers["TIMEOUT"] = f"Second-{requested_timeout}"
    return headers


def renew_headers(sid: str, requested_timeout: int | None) -> dict[str, str]:
    """The headers of a renewal SUBSCRIBE: the SID only (plus the requested timeout)."""
    headers = {"SID": sid}
    if requested_timeout is not None:
        headers["TIMEOUT"] = f"Second-{requested_timeout}"
    return headers


def check_response(
    method: str, status: int, headers: Mapping[str, str], *, need_sid: bool, need_timeout: bool
) -> GenaResponse:
    """Check a GENA answer and return what it grants.

    @param headers: Response headers, names in lower case, first value of each.
    @raise SubscriptionGone: For a 412.
    @raise GenaError: For any other non-2xx status, or a missing or bad ``SID``/``TIMEOUT``
        (see L{check_sid}, L{parse_timeout}); those of an ``UNSUBSCRIBE`` answer are not read.
    """
    if status == 412:
        raise SubscriptionGone(412, f"{method}: 412 Precondition Failed")
    if not 200 <= status < 300:
        raise GenaError(status, f"{method}: HTTP {status}")
    if method == "UNSUBSCRIBE":
        # Only its status counts: a SID or TIMEOUT there (speakers send none) is not read, so
        # a speaker that ended the subscription is not said to have failed to.
        return GenaResponse(status)
    sid = headers.get("sid", "").strip() or None
    if need_sid and sid is None:
        raise GenaError(status, f"{method}: response has no SID")
    if sid is not None:
        try:
            check_sid(sid)
        except ValueError as error:
            raise GenaError(status, f"{method}: {error}") from None
    raw_timeout = headers.get("timeout")
    if raw_timeout is None:
        if need_timeout:
            raise GenaError(status, f"{method}: response has no TIMEOUT")
        return GenaResponse(status, sid)
    try:
        timeout = parse_timeout(raw_timeout)
    except ValueError as error:
        raise GenaError(status, f"{method}: {error}") from None
    return GenaResponse(status, sid, timeout, has_timeout=True)


class _BodyLimit:
    def __init__(self, limit: int) -> None:
        self.left = limit

    def __call__(self, data: bytes) -> None:
        self.left -= len(data)
        if self.left < 0:
            raise GenaError(None, "GENA response body too large")


async def gena_request(
    http: HTTPClient,
    clock: IReactorTime,
    method: str,
    url: str,
    headers: Mapping[str, str],
    timeout: float = DEFAULT_REQUEST_TIMEOUT,
    *,
    need_sid: bool = False,
    need_timeout: bool = False,
) -> GenaResponse:
    """Send one GENA request and check its answer, all within ``timeout`` seconds.

    @raise GenaTimeout: When the answer (status, headers and body) is not in within
        ``timeout``; the request is cancelled (its connection closed).
    @raise SubscriptionGone: See L{check_response}.
    @raise GenaError: See L{check_response}; also for a connection failure.
    """

    sent = Headers()
    for name, value in headers.items():
        sent.addRawHeader(name, value)

    async def exchange() -> GenaResponse:
        response = await http.request(
            method,
            url,
            headers=sent,
            allow_redirects=False,
            unbuffered=True,
            reactor=clock,  # type: ignore[arg-type]
        )
        await read_body(response, _BodyLimit(MAX_RESPONSE_BODY))
        received = {
            name.decode("latin-1").lower(): values[0].decode("latin-1")
            for name, values in response.headers.getAllRawHeaders()
        }
        return check_response(
            method, response.code, received, need_sid=need_sid, need_timeout=need_timeout
        )

    attempt = add_timeout(
        Deferred.fromCoroutine(exchange()),
        timeout,
        clock,
        lambda seconds: GenaTimeout(None, f"{method} {url}: no answer within {seconds:g} s"),
    )
    try:
        return await attempt
    except (GenaError, CancelledError):
        raise
    except Exception as error:
        raise GenaError(None, f"{method} {url}: {error}") from error


class SubscriptionDeferred(Deferred["BaseSubscription"]):
    """A Deferred for a Subscription call; ``subscription`` refers to it at once."""

    def __init__(self, subscription: BaseSubscription, canceller: Callable[[Any], None]) -> None:
        super().__init__(canceller)
        self.subscription = subscription


def build_http_client(reactor: Any) -> HTTPClient:
    """An HTTP client for GENA requests: one connection per request, like the speakers, each
    straight to the speaker's address (``httpclient.speaker_agent``)."""
    return HTTPClient(speaker_agent(reactor))


@attrs.frozen
class ServiceRef:
    """What a subscription needs of a speaker's service, without SoCo (the daemon's
    subscriptions are made from these; a SoCo ``Service`` has the same attributes).

    @ivar base_url: ``http://<address>:<port>``.
    @ivar event_subscription_url: The path of its event URL (``/MediaRenderer/AVTransport/Event``).
    @ivar service_type: SoCo's name of the service (``AVTransport``).
    @ivar uid: The speaker's uid (``None``: not known).
    @ivar household_id: The speaker's household (``None``: not known).
    """

    base_url: str
    event_subscription_url: str
    service_type: str
    uid: str | None = None
    household_id: str | None = None

    @property
    def service_id(self) -> str:
        """SoCo's ``service_id`` (the service type's name)."""
        return self.service_type


@implementer(INotifySubscription)
class BaseSubscription:
    """A GENA subscription to one service of one speaker (see the module docstring).

    @param service: The service: a L{ServiceRef} or a SoCo ``Service``. Only its
        ``base_url``, ``event_subscription_url`` and ``service_type`` are used.
    @param event_listener: The L{INotifyListener} that receives this subscription's NOTIFYs.
    @param reactor: Times requests and renewals.
    @param http: The HTTP client for SUBSCRIBE/UNSUBSCRIBE (default: built from ``reactor``).
    @param request_timeout: Seconds allowed per request.
    @param limiter: Shared by the subscriptions of a household to bound how many of their
        requests are in flight at once (``None``: no bound). The wait for a slot is not part
        of ``request_timeout``.
    @param event_queue: Where events go when ``callback`` is not set (default: a new queue).

    @ivar callback: Called in the reactor thread with each L{Event}.
    @ivar auto_renew_fail: Called with the Failure when an automatic renewal fails (the
        subscription has then ended; make a new one).
    @ivar speaker_host: The speaker's address, the only accepted source of its NOTIFYs.
    @ivar request_started: When (clock seconds) the request in progress got its slot of
        ``limiter`` and was started; ``None`` while it waits for a slot, or when no request is
        in progress. A caller that bounds a whole call (``household.keepalive``) counts from
        here: the wait for a slot is not the speaker's fault.
    """

    sid: str | None
    timeout: int | None
    requested_timeout: int | None
    is_subscribed: bool
    _has_been_unsubscribed: bool
    _timestamp: float | None

    def __init__(
        self,
        service: Any,
        event_listener: INotifyListener | None,
        *,
        reactor: Any,
        http: HTTPClient | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        limiter: DeferredSemaphore | None = None,
        event_queue: Any = None,
    ) -> None:
        # SoCo's SubscriptionBase attributes (sonosd.gena.subscription adds that class).
        self.service = service
        self.sid = None
        self.timeout = None
        self.is_subscribed = False
        self._events: Any = event_queue
        self.requested_timeout = None
        self.auto_renew_fail: Callable[[Failure], Any] | None = None
        self._has_been_unsubscribed = False
        self._timestamp = None
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self._http = http if http is not None else build_http_client(reactor)
        self._request_timeout = request_timeout
        self._limiter = limiter
        self._listener: INotifyListener | None = event_listener
        self.callback: Callable[[Any], Any] | None = None
        self.speaker_host: str = urlparse(service.base_url).hostname or ""
        self._url = service.base_url + service.event_subscription_url
        self._lock = DeferredLock()
        # The calls not finished, in the order they were made (a dict keeps it).
        self._ops: dict[Deferred[BaseSubscription], None] = {}
        self._auto_renew = False
        self._renewal: IDelayedCall | None = None
        self._registered = False
        self._ended_expiry: float | None = None
        self.request_started: float | None = None
        self._asked_timeout: int | None = None

    @property
    def events(self) -> Any:
        """Where events go when ``callback`` is not set: the ``event_queue`` given, else a
        ``queue.Queue`` made when first used.

        The daemon sets ``callback`` and never uses it: a queue (a lock and three conditions,
        about 3 KB) for each of a large household's 1,600 subscriptions would be ~5 MB of
        resident memory for nothing (issue #7).
        """
        if self._events is None:
            self._events = Queue()
        return self._events

    @events.setter
    def events(self, queue: Any) -> None:
        self._events = queue

    # -- the soco.events_twisted API ----------------------------------------------------------

    def subscribe(
        self, requested_timeout: int | None = None, auto_renew: bool = False, strict: bool = True
    ) -> SubscriptionDeferred:
        """Subscribe to the service.

        @param requested_timeout: Seconds to ask for (the speaker grants 86400 without).
        @param auto_renew: Renew at 85 % of each granted timeout until a renewal fails.
        @param strict: When ``False`` a failure is logged and the Deferred still fires with
            the Subscription.
        @return: Fires with the Subscription once the speaker accepted (``sid``, ``timeout``
            set); fails with L{GenaError} (the Subscription has then ended) or L{UsageError}.
        """
        return self._enqueue(
            "subscribe", strict, False, lambda: self._subscribe(requested_timeout, auto_renew)
        )

    def renew(
        self, requested_timeout: int | None = None, is_autorenew: bool = False, strict: bool = True
    ) -> SubscriptionDeferred:
        """Renew the subscription (``SUBSCRIBE`` with its SID).

        @param requested_timeout: Seconds to ask for; default: those asked at subscription.
        @param is_autorenew: Set by the auto-renew timer: a failure calls ``auto_renew_fail``.
        @return: Fires with the Subscription; fails with L{SubscriptionGone} (412, or the
            subscription expired before it could be renewed), L{GenaTimeout} or L{GenaError},
            and the Subscription has then ended.
        """
        return self._enqueue("renew", strict, is_autorenew, lambda: self._renew(requested_timeout))

    def unsubscribe(self, strict: bool = True) -> SubscriptionDeferred:
        """End the subscription (``UNSUBSCRIBE``); a no-op when it is not subscribed.

        The subscription has ended locally whatever the answer; a 412 (the speaker already
        forgot it) is not an error.
        """
        return self._enqueue("unsubscribe", strict, False, self._unsubscribe)

    def cancel(self) -> None:
        """End the subscription locally at once: no request, calls in progress cancelled.

        The calls still waiting for their turn go first (they fail with ``CancelledError``),
        then the one running: its end lets the next call in, which must not be there any
        more to send its request.
        """
        for operation in reversed(list(self._ops)):
            operation.cancel()
        self._end("cancelled")

    @property
    def event_path(self) -> str:
        """The path of the service's event URL (``/MediaRenderer/RenderingControl/Event``):
        with the speaker's current address, where an UNSUBSCRIBE of this SID goes."""
        path: str = self.service.event_subscription_url
        return path

    @property
    def time_left(self) -> float:
        """Seconds until the subscription expires (0: not subscribed; ``inf``: infinite)."""
        if self._timestamp is None:
            return 0
        if self.timeout is None:
            return math.inf
        left: float = self.timeout - (self._clock.seconds() - self._timestamp)
        return left if left > 0 else 0

    @property
    def expires(self) -> float | None:
        """The clock time at which the speaker forgets this SID (``None``: never granted, or
        an infinite timeout). Kept once the subscription has ended here: a speaker that was
        not told (a renewal that could not reach it) keeps sending to the SID until then."""
        if self._timestamp is None:
            return self._ended_expiry
        if self.timeout is None:
            return None
        return self._timestamp + self.timeout

    def send_event(self, event: Event) -> None:
        """Hand one event to ``callback`` (or the ``events`` queue); never raises."""
        callback = self.callback
        try:
            if callable(callback):
                callback(event)
            else:
                self.events.put(event)
        except Exception:
            log.failure("event callback failed for {sid} seq {seq}", sid=self.sid, seq=event.seq)

    # -- serialisation ------------------------------------------------------------------------

    def _enqueue(
        self,
        action: str,
        strict: bool,
        is_autorenew: bool,
        work: Callable[[], Coroutine[Any, Any, None]],
    ) -> SubscriptionDeferred:
        async def run() -> BaseSubscription:
            await self._lock.acquire()
            try:
                await work()
            except (GenaError, UsageError) as error:
                converted = self._convert(error)
                if converted is error:
                    raise
                raise converted from error.__cause__
            finally:
                self._lock.release()
            return self

        operation = Deferred.fromCoroutine(run())
        self._ops[operation] = None
        operation.addBoth(self._op_done, operation)
        operation.addErrback(self._failed, action, strict, is_autorenew)
        result = SubscriptionDeferred(self, lambda _: operation.cancel())
        operation.chainDeferred(result)
        return result

    def _convert(self, error: Exception) -> Exception:
        """The error the caller gets for ``error`` (a subclass may give its own kinds)."""
        return error

    def _op_done(self, outcome: Any, operation: Deferred[BaseSubscription]) -> Any:
        self._ops.pop(operation, None)
        return outcome

    def _failed(self, failure: Failure, action: str, strict: bool, is_autorenew: bool) -> Any:
        if not failure.check(UsageError):
            self._end(f"{action} failed")
        # A strict caller gets the failure and reports it; only a non-strict one relies on us.
        emit = log.debug if strict else log.warn
        emit(
            "{action} {url} (sid {sid}) failed: {error}",
            action=action,
            url=self._url,
            sid=self.sid,
            error=failure.getErrorMessage(),
        )
        if is_autorenew and callable(self.auto_renew_fail):
            try:
                self.auto_renew_fail(failure)
            except Exception:
                log.failure("auto_renew_fail raised for {sid}", sid=self.sid)
        if strict:
            return failure
        return self

    # -- the requests -------------------------------------------------------------------------

    async def _subscribe(self, requested_timeout: int | None, auto_renew: bool) -> None:
        if self.is_subscribed:
            raise UsageError(
                "Cannot subscribe Subscription instance more than once. Use renew instead"
            )
        if self._has_been_unsubscribed:
            raise UsageError("Cannot resubscribe Subscription instance once unsubscribed")
        # Only a call that is not refused says what later renewals ask for.
        self.requested_timeout = requested_timeout
        listener = self._ensure_listener()
        self.speaker_host = await self._speaker_address()
        headers = subscribe_headers(listener.callback_url(self.speaker_host), requested_timeout)
        listener.subscribing(self.speaker_host)
        self._asked_timeout = requested_timeout
        try:
            response = await self._request("SUBSCRIBE", headers, need_sid=True, need_timeout=True)
            self.sid = response.sid
            self.timeout = response.timeout
            self._timestamp = self._clock.seconds()
            self.is_subscribed = True
            self._auto_renew = auto_renew
            self._track_topology()
            log.debug("subscribed {url} sid {sid}", url=self._url, sid=self.sid)
            self._registered = True
            listener.register(self)
        finally:
            listener.subscribe_finished(self.speaker_host)
        if auto_renew:
            self._schedule_renewal()

    async def _renew(self, requested_timeout: int | None) -> None:
        if self._has_been_unsubscribed:
            raise UsageError("Cannot renew subscription once unsubscribed")
        if not self.is_subscribed:
            raise UsageError("Cannot renew subscription before subscribing")
        if self.time_left == 0:
            raise SubscriptionGone(None, "subscription expired before it was renewed")
        if requested_timeout is None:
            requested_timeout = self.requested_timeout
        response = await self._request(
            "SUBSCRIBE", renew_headers(self.sid or "", requested_timeout), need_timeout=True
        )
        self._asked_timeout = requested_timeout
        self.timeout = response.timeout
        self._timestamp = self._clock.seconds()
        log.debug("renewed {url} sid {sid}", url=self._url, sid=self.sid)
        if self._auto_renew:
            self._schedule_renewal()

    async def _unsubscribe(self) -> None:
        if self._has_been_unsubscribed or not self.is_subscribed:
            return
        if self.time_left == 0:
            self._end("expired")
            return
        try:
            await self._request("UNSUBSCRIBE", {"SID": self.sid or ""})
        except SubscriptionGone:
            log.debug("unsubscribe {url} sid {sid}: already gone", url=self._url, sid=self.sid)
        finally:
            self._end("unsubscribed")

    async def _request(
        self,
        method: str,
        headers: Mapping[str, str],
        need_sid: bool = False,
        need_timeout: bool = False,
    ) -> GenaResponse:
        limiter = self._limiter
        if limiter is not None:
            # Cancelled while waiting, it holds no slot (nothing to release).
            await limiter.acquire()
        self.request_started = self._clock.seconds()
        try:
            return await gena_request(
                self._http,
                self._clock,
                method,
                self._url,
                headers,
                self._request_timeout,
                need_sid=need_sid,
                need_timeout=need_timeout,
            )
        finally:
            self.request_started = None
            if limiter is not None:
                limiter.release()

    async def _speaker_address(self) -> str:
        """The speaker's IP address: resolved off the reactor thread when it is a name."""
        host = self.speaker_host
        try:
            ipaddress.ip_address(host)
        except ValueError:
            resolving: Deferred[str] = self._reactor.resolve(host)
            resolving.addTimeout(self._request_timeout, self._clock)
            try:
                return await resolving
            except Exception as error:
                raise GenaError(None, f"cannot resolve {host}: {error}") from error
        return host

    def _ensure_listener(self) -> INotifyListener:
        listener = self._listener
        if listener is None or (isinstance(listener, NotifyListener) and not listener.running):
            raise UsageError("the NOTIFY listener is not running")
        return listener

    def _track_topology(self) -> None:
        """Called once subscribed (``sonosd.gena.subscription`` feeds SoCo's caches)."""

    def _untrack_topology(self) -> None:
        """Called when the subscription ends."""

    # -- the end of a subscription ------------------------------------------------------------

    def _end(self, reason: str) -> None:
        """Forget everything about the subscription: timer, registration, topology tracking."""
        self._cancel_renewal()
        self._auto_renew = False
        if self._registered and self._listener is not None:
            self._listener.unregister(self)
        self._registered = False
        self._untrack_topology()
        if not self._has_been_unsubscribed:
            log.debug("subscription {sid} ended: {reason}", sid=self.sid, reason=reason)
        self._ended_expiry = self.expires
        self.is_subscribed = False
        self._has_been_unsubscribed = True
        self._timestamp = None

    def _cancel_subscription(self, msg: str | None = None) -> None:
        """SoCo's name for ending a subscription locally."""
        self._end(msg or "cancelled")

    # -- auto-renew ---------------------------------------------------------------------------

    def _schedule_renewal(self) -> None:
        self._cancel_renewal()
        self._renewal = self._clock.callLater(self._renew_interval(), self._auto_renew_now)

    def _renew_interval(self) -> float:
        """Seconds until the next automatic renewal: 85 % of the grant, a grant longer than
        the timeout asked for (``Second-99999999999999``) counted as that timeout (86400 s,
        what speakers grant, when none was asked): an absurd grant would never be renewed,
        and a rebooted speaker never noticed. ``infinite`` is renewed every
        ``INFINITE_RENEW_INTERVAL``, or at 85 % of the timeout asked for when that is
        sooner."""
        granted, asked = self.timeout, self._asked_timeout
        if granted is None:
            hourly = INFINITE_RENEW_INTERVAL
            return hourly if asked is None else min(hourly, asked * RENEW_FRACTION)
        limit = SPEAKER_DEFAULT_TIMEOUT if asked is None else asked
        return min(granted, limit) * RENEW_FRACTION

    def _auto_renew_now(self) -> None:
        self._renewal = None
        self.renew(is_autorenew=True, strict=False)

    def _cancel_renewal(self) -> None:
        if self._renewal is not None and self._renewal.active():
            self._renewal.cancel()
        self._renewal = None

    def _auto_renew_start(self, interval: float) -> None:
        """SoCo's hook: renew after ``interval`` seconds (then at 85 % of each grant)."""
        self._auto_renew = True
        self._cancel_renewal()
        self._renewal = self._clock.callLater(interval, self._auto_renew_now)

    def _auto_renew_cancel(self) -> None:
        """SoCo's hook: stop auto-renewing."""
        self._auto_renew = False
        self._cancel_renewal()
