# -*- test-case-name: tests.gena.test_subscription -*-
"""GENA subscriptions to Sonos services: ``soco.events_twisted``'s API, hardened for a daemon.

A :class:`Subscription` subscribes to one service of one speaker, renews it and ends it, and
receives the speaker's events, with the API and behaviour of
``soco.events_twisted.Subscription`` and the hardening a daemon needs (status codes checked,
a timeout on every request, nothing blocking the reactor...: see
:mod:`sonosd.gena.core`). :func:`check_response` and :func:`gena_request` are the core's,
raising this module's exceptions.

The GENA client itself is :class:`sonosd.gena.core.BaseSubscription`, which needs nothing of
SoCo (the daemon uses it directly); this module adds what makes it SoCo's: SoCo's
``SubscriptionBase``, its ``Event`` given to callbacks, its ``ZoneGroupState`` cache fed from
ZoneGroupTopology events, and exceptions that are ``SoCoException`` s (each also the core's
exception of the same name, which the core's functions raise).

The module also works as ``soco.config.EVENTS_MODULE``: ``Service.subscribe()`` calls
``EVENTS_MODULE.Subscription(service, event_queue)``, which then uses the module's default
listener (``event_listener``, created on first use on the global reactor).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final
from weakref import WeakKeyDictionary

import attrs
from soco import config as soco_config
from soco.events_base import Event, SubscriptionBase
from soco.exceptions import SoCoException
from treq.client import HTTPClient
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sonosd.gena import core
from sonosd.gena.core import (
    DEFAULT_REQUEST_TIMEOUT,
    INFINITE_RENEW_INTERVAL,
    MAX_RESPONSE_BODY,
    RENEW_FRACTION,
    GenaResponse,
    SubscriptionDeferred,
    build_http_client,
    parse_timeout,
    renew_headers,
    subscribe_headers,
)
from sonosd.gena.listener import INotifyListener, INotifySubscription, NotifyListener

__all__ = [
    "DEFAULT_REQUEST_TIMEOUT",
    "INFINITE_RENEW_INTERVAL",
    "MAX_RESPONSE_BODY",
    "RENEW_FRACTION",
    "SHUTDOWN_GRACE",
    "GenaError",
    "GenaResponse",
    "GenaTimeout",
    "Subscription",
    "SubscriptionDeferred",
    "SubscriptionGone",
    "UsageError",
    "build_http_client",
    "check_response",
    "close_default_listener",
    "default_listener",
    "gena_request",
    "parse_timeout",
    "renew_headers",
    "subscribe_headers",
]

log = Logger()

SHUTDOWN_GRACE: Final = 5.0
"""Seconds the compatibility listener's shutdown trigger waits for UNSUBSCRIBEs."""


class GenaError(core.GenaError, SoCoException):
    """A GENA request failed; ``status`` is the HTTP status (``None``: no usable answer)."""


class SubscriptionGone(core.SubscriptionGone, GenaError):
    """The speaker does not know the subscription (412: expired, or the speaker rebooted)."""


class GenaTimeout(core.GenaTimeout, GenaError):
    """The speaker did not answer in time."""


class UsageError(core.UsageError, SoCoException):
    """A call that makes no sense in the Subscription's state (it is not cancelled for it)."""


#: The core's exceptions and the SoCoException each stands for here (most specific first).
_PUBLIC: tuple[tuple[type[Exception], type[Exception]], ...] = (
    (core.SubscriptionGone, SubscriptionGone),
    (core.GenaTimeout, GenaTimeout),
    (core.GenaError, GenaError),
    (core.UsageError, UsageError),
)


def public_error(error: Exception) -> Exception:
    """``error`` as this module's exception of the same kind (a ``SoCoException``), with its
    status and message; any other error as it is."""
    if isinstance(error, SoCoException):
        return error
    for kind, public in _PUBLIC:
        if isinstance(error, kind):
            if isinstance(error, core.GenaError):
                converted: Exception = public(error.status, error.message)
            else:
                converted = public(*error.args)
            converted.__cause__ = error.__cause__
            return converted
    return error


def check_response(
    method: str, status: int, headers: Mapping[str, str], *, need_sid: bool, need_timeout: bool
) -> GenaResponse:
    """``sonosd.gena.core.check_response``, raising this module's exceptions."""
    try:
        return core.check_response(
            method, status, headers, need_sid=need_sid, need_timeout=need_timeout
        )
    except core.GenaError as error:
        raise public_error(error) from None


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
    """``sonosd.gena.core.gena_request``, raising this module's exceptions."""
    try:
        return await core.gena_request(
            http,
            clock,
            method,
            url,
            headers,
            timeout,
            need_sid=need_sid,
            need_timeout=need_timeout,
        )
    except core.GenaError as error:
        raise public_error(error) from error.__cause__


@implementer(INotifySubscription)
class Subscription(core.BaseSubscription, SubscriptionBase):
    """A GENA subscription to one service of one speaker, SoCo's way (see the module
    docstring and ``sonosd.gena.core.BaseSubscription``).

    @param service: The SoCo ``Service`` (``device.renderingControl``, ...). Only its
        ``base_url``, ``event_subscription_url``, ``service_type`` and ``soco`` are used, and
        nothing that makes a network call.
    @param event_listener: The L{INotifyListener} that receives this subscription's NOTIFYs.
        ``None`` (only without ``reactor``): the module's default listener. Anything else is
        taken as SoCo's ``event_queue`` argument (``Service.subscribe()`` passes it here).
    @param reactor: Times requests and renewals; ``None``: the global reactor
        (the ``EVENTS_MODULE`` compatibility path).
    @param http: The HTTP client for SUBSCRIBE/UNSUBSCRIBE (default: built from ``reactor``).
    @param request_timeout: Seconds allowed per request.
    @param limiter: Shared by the subscriptions of a household to bound how many of their
        requests are in flight at once (``None``: no bound). The wait for a slot is not part
        of ``request_timeout``.
    @param event_queue: Where events go when ``callback`` is not set (default: a new queue).

    @ivar callback: Called in the reactor thread with each ``soco.events_base.Event``.
    @ivar auto_renew_fail: Called with the Failure when an automatic renewal fails (the
        subscription has then ended; make a new one).
    @ivar speaker_host: The speaker's address, the only accepted source of its NOTIFYs.
    """

    def __init__(
        self,
        service: Any,
        event_listener: Any = None,
        *,
        reactor: Any = None,
        http: HTTPClient | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT,
        limiter: DeferredSemaphore | None = None,
        event_queue: Any = None,
    ) -> None:
        if event_listener is not None and not INotifyListener.providedBy(event_listener):
            event_queue, event_listener = event_listener, None
        if reactor is None:
            reactor = _global_reactor()
            if http is None:
                http = _compat_http()
        elif event_listener is None:
            raise TypeError("Subscription: an event_listener is required with a reactor")
        super().__init__(
            service,
            event_listener,
            reactor=reactor,
            http=http,
            request_timeout=request_timeout,
            limiter=limiter,
            event_queue=event_queue,
        )
        self._topology: Any = None
        # Only ZoneGroupTopology feeds SoCo's caches: other events skip the hook entirely.
        self._feeds_topology = service.service_type == "ZoneGroupTopology"

    def send_event(self, event: Any) -> None:
        """Hand one event, as SoCo's ``Event``, to ``callback`` (or the ``events`` queue)
        after feeding SoCo's caches; never raises."""
        if not isinstance(event, Event):
            event = Event(event.sid, event.seq, event.service, event.timestamp, event.variables)
        self._update_topology_cache(event)
        super().send_event(event)

    def _convert(self, error: Exception) -> Exception:
        return public_error(error)

    def _ensure_listener(self) -> INotifyListener:
        if self._listener is None:
            self._listener = default_listener()
        if isinstance(self._listener, NotifyListener) and not self._listener.running:
            if self._listener is not _compat.listener:
                raise UsageError("the NOTIFY listener is not running")
            self._listener.startService()
        return self._listener

    # -- SoCo's topology cache ----------------------------------------------------------------

    def _household_known(self) -> bool:
        """Whether ``soco.zone_group_state`` can be read without a network call."""
        return getattr(getattr(self.service, "soco", None), "_household_id", None) is not None

    def _track_topology(self) -> None:
        """Tell SoCo's ZoneGroupState a ZGT subscription feeds it (only if that cannot block)."""
        if not self._feeds_topology or not self._household_known():
            return
        self._topology = self.service.soco.zone_group_state
        self._topology.add_subscription(self)

    def _untrack_topology(self) -> None:
        topology, self._topology = self._topology, None
        if topology is not None:
            topology.remove_subscription(self)
            # Without subscriptions SoCo polls its cache itself: the next document from an
            # event must reach it even if it equals the last one given.
            with contextlib.suppress(TypeError):
                _fed_topology.pop(topology, None)

    def _update_topology_cache(self, event: Event) -> None:
        """Feed SoCo's own caches (ZoneGroupState from ZGT events): CPU only, never blocking.

        Only ``ZoneGroupTopology`` has such a cache (the hook of every other service is a
        no-op). ``ZoneGroupTopology._update_cache_on_event`` reads ``soco.zone_group_state``, which
        fetches ``household_id`` over the network the first time; it is skipped until the
        household id is known (read it in a worker thread before subscribing).
        """
        if not self._feeds_topology or not self._household_known():
            return
        # Every speaker of a household sends the same ZoneGroupState with every change (142 KB
        # at 200 speakers): SoCo parses each copy before it sees it is a duplicate, on the
        # reactor thread and under its lock. A document equal to the last one given to the
        # household's cache is skipped.
        text = event.variables.get("zone_group_state")
        cache = self.service.soco.zone_group_state
        if isinstance(text, str) and _last_fed(cache) == text:
            return
        try:
            self.service._update_cache_on_event(event)
        except Exception:
            log.failure("SoCo cache update failed for {sid}", sid=self.sid)
            return
        if isinstance(text, str):
            with contextlib.suppress(TypeError):  # a cache that cannot be weakly referenced
                _fed_topology[cache] = text


def _last_fed(cache: Any) -> str | None:
    try:
        return _fed_topology.get(cache)
    except TypeError:
        return None


#: Per SoCo ZoneGroupState (one per household), the last document given to it from an event.
_fed_topology: WeakKeyDictionary[Any, str] = WeakKeyDictionary()


# -- soco.config.EVENTS_MODULE compatibility ------------------------------------------------


@attrs.define
class _CompatState:
    listener: NotifyListener | None = None
    http: HTTPClient | None = None
    trigger: Any = None


_compat = _CompatState()


def _global_reactor() -> Any:
    """The global reactor, for the ``EVENTS_MODULE`` path only (imported when first needed)."""
    from twisted.internet import reactor

    return reactor


def _compat_http() -> HTTPClient:
    if _compat.http is None:
        _compat.http = build_http_client(_global_reactor())
    return _compat.http


def default_listener() -> NotifyListener:
    """The listener used by Subscriptions made through ``soco.config.EVENTS_MODULE``.

    Created on first use on the global reactor from SoCo's settings: it binds
    ``config.EVENT_LISTENER_IP`` (default every interface) from ``config.EVENT_LISTENER_PORT``
    and advertises ``config.EVENT_ADVERTISE_IP`` when set. It starts with the first
    subscription; one reactor shutdown trigger unsubscribes what is left (within
    ``SHUTDOWN_GRACE`` seconds) and stops it.
    """
    if _compat.listener is None:
        reactor = _global_reactor()
        _compat.listener = NotifyListener(
            reactor,
            interface=soco_config.EVENT_LISTENER_IP or "0.0.0.0",
            port=soco_config.EVENT_LISTENER_PORT,
            advertise=soco_config.EVENT_ADVERTISE_IP,
        )
        _compat.trigger = reactor.addSystemEventTrigger("before", "shutdown", _shutdown_default)
    return _compat.listener


def _shutdown_default() -> Deferred[None]:
    _compat.trigger = None
    # The bound read now, not when close_default_listener was defined (tests shorten it).
    return close_default_listener(SHUTDOWN_GRACE)


def close_default_listener(grace: float = SHUTDOWN_GRACE) -> Deferred[None]:
    """Unsubscribe every Subscription of the default listener, then stop and forget it.

    The UNSUBSCRIBEs get ``grace`` seconds in all. A later compatibility subscription makes a
    new default listener.
    """
    listener, _compat.listener = _compat.listener, None
    if _compat.trigger is not None:
        _global_reactor().removeSystemEventTrigger(_compat.trigger)
        _compat.trigger = None
    if listener is None:
        return succeed(None)
    pending = [
        subscription.unsubscribe(strict=False)
        for subscription in listener.dispatcher.subscriptions()
        if isinstance(subscription, Subscription)
    ]
    done: Deferred[Any] = DeferredList(pending, consumeErrors=True)
    done.addTimeout(grace, _global_reactor())

    def stop(_: object) -> Deferred[None]:
        return listener.stopService() if listener.running else succeed(None)

    done.addBoth(stop)
    return done


def __getattr__(name: str) -> Any:
    """``event_listener``: the default listener, created on first access (SoCo's name)."""
    if name == "event_listener":
        return default_listener()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
