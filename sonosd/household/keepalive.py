# -*- test-case-name: tests.household.test_keepalive -*-
"""Keeping one GENA subscription alive: one ``ServiceSupervisor`` per speaker and service.

A service supervisor subscribes its service, renews the subscription early (before a
fraction of the granted timeout; the first renewal of a subscription spread widely so that a
household's subscriptions do not renew together), resubscribes with jittered exponential
backoff after any failure (``subscription.lost`` / ``subscription.restored``), drops duplicate
NOTIFYs and resyncs the state after a SEQ gap (``events.gap``), and polls the state when
NOTIFYs never arrive. Speaker-wide matters (availability, reboots, address) belong to its speaker
(``sonosd.household.supervisor.SpeakerSupervisor``), which it reaches through ``SpeakerHandle``.

The lifecycle and every timer are described in ``docs/supervisor.md``.
"""

from __future__ import annotations

import enum
import functools
import random as _random
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol
from urllib.parse import urlparse

import attrs
from twisted.internet.defer import CancelledError, Deferred, DeferredList, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd import lazysoco
from sonosd.backoff import (
    GONE_412,
    FailureKind,
    SlowAnswer,
    backoff_delay,
    describe_failure,
    renew_delay,
)
from sonosd.blocking import Runner
from sonosd.config import DEFAULT_SERVICES, SubscriptionConfig
from sonosd.gena.core import GenaTimeout
from sonosd.gena.httpclient import add_timeout
from sonosd.gena.sequence import SeqKind, SeqTracker
from sonosd.household.position import PositionTracker
from sonosd.household.probe import Description
from sonosd.household.resync import ZoneGroupStateUnavailable
from sonosd.household.state import SpeakerRef

log = Logger()


class Processor(Protocol):
    """What the supervisor needs of ``sonosd.household.events.EventProcessor``: events and read
    state in, and the supervisor's own messages out (it records availability in the state)."""

    def on_event(self, speaker: SpeakerRef, service: str, event: Any) -> Any: ...

    def on_state(
        self, speaker: SpeakerRef, service: str, variables: Mapping[str, Any], source: str = ...
    ) -> Any: ...

    def speaker_availability(
        self, speaker: SpeakerRef, status: str, reason: str | None = None
    ) -> Any: ...

    def speaker_removed(self, speaker: SpeakerRef, reason: str) -> Any: ...

    def subscription_lost(self, speaker: SpeakerRef, service: str, reason: str) -> Any: ...

    def subscription_restored(
        self, speaker: SpeakerRef, service: str, reason: str | None = None
    ) -> Any: ...

    def events_gap(
        self,
        speaker: SpeakerRef,
        service: str,
        expected: int | None,
        got: int | None,
        reason: str | None = None,
    ) -> Any: ...

    def differences(
        self, speaker: SpeakerRef, service: str, variables: Mapping[str, Any]
    ) -> list[str]: ...


class Reader(Protocol):
    """What the supervisor needs of ``sonosd.household.resync.StateReader``."""

    def read(self, speaker: SpeakerRef, service: str) -> Deferred[dict[str, Any]]: ...

    def check(
        self, speaker: SpeakerRef, services: Iterable[str]
    ) -> Deferred[dict[str, dict[str, Any]]]: ...


class GenaSubscription(Protocol):
    """What the supervisor needs of a ``sonosd.gena.Subscription`` (soco-compatible)."""

    sid: str | None
    timeout: int | None
    is_subscribed: bool
    callback: Callable[[Any], None] | None

    def subscribe(
        self, requested_timeout: int | None = None, auto_renew: bool = False
    ) -> Deferred[Any]: ...

    def renew(self, requested_timeout: int | None = None) -> Deferred[Any]: ...

    def unsubscribe(self) -> Deferred[Any]: ...

    def cancel(self) -> None: ...


class _Guard:
    """The supervisor's bound on one SUBSCRIBE or renewal: ``seconds`` from the moment the
    request was started, not from the moment it was asked for.

    The household's subscriptions share a bound on their requests in flight
    (``household.supervisor.GENA_CONCURRENCY``); at start-up a large household's SUBSCRIBEs
    wait their turn for seconds. Counted from the call, that wait cut requests that had just
    been sent: the speaker granted them, and its NOTIFYs then went to SIDs the daemon had
    never learnt (412; issue 17). A subscription that says when its request started
    (``request_started``: ``None`` while it waits for a slot) is timed from then; any other
    from the call.
    """

    def __init__(self, clock: IReactorTime, operation: Deferred[Any], subscription: Any) -> None:
        self._clock = clock
        self._operation = operation
        self._subscription = subscription
        self._asked = clock.seconds()
        self._seconds = 0.0
        self._call: IDelayedCall | None = None
        self.expired = False

    def arm(self, seconds: float) -> None:
        """Cancel the operation once it has run ``seconds`` since its request started."""
        self._seconds = seconds
        self._call = self._clock.callLater(seconds, self._check)

    def disarm(self) -> None:
        """The operation ended: forget the timer."""
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _check(self) -> None:
        started = getattr(self._subscription, "request_started", self._asked)
        # None: still waiting for a slot (bounded by the requests ahead, each by its timeout).
        now = self._clock.seconds()
        left = self._seconds if started is None else started + self._seconds - now
        if left > 0:
            self._call = self._clock.callLater(left, self._check)
            return
        self._call = None
        self.expired = True
        self._operation.cancel()


SubscriptionFactory = Callable[[Any, str], GenaSubscription]
"""Builds an unsubscribed GENA subscription for ``(soco_device, service_name)``."""

Describer = Callable[[str, int, float], Deferred[Description]]
"""``(host, port, timeout)``: who the speaker there is (``sonosd.household.probe.describe``)."""

Pinger = Callable[[str, int, float], Deferred[Any]]
"""``(host, port, timeout)``: fires when the speaker answers (``sonosd.household.probe.ping``)."""

Unsubscriber = Callable[[str, int, str, str, float], Deferred[Any]]
"""``(host, port, event path, SID, timeout)``: one best-effort UNSUBSCRIBE of a SID."""


def _not_wired(*args: Any) -> Deferred[Any]:
    failed: Deferred[Any] = Deferred()
    failed.errback(NotImplementedError("not wired in this SupervisorContext"))
    return failed


# Operations are coroutines started with Deferred.fromCoroutine; one that finishes at once
# (a cached answer, a fake) has already updated the supervisor's state, so only a pending
# one is recorded as in flight (``running = ...; if not running.called: self._x = running``).


class PollingNotice:
    """Says once per callback URL why NOTIFYs do not arrive (and that sonosd polls instead)."""

    def __init__(self) -> None:
        self._said: set[str] = set()

    def announce(self, url: str, ref: SpeakerRef, service: str, grace: float) -> bool:
        """Log the one explanatory line for ``url`` unless it was already said; return if said."""
        if url in self._said:
            return False
        self._said.add(url)
        log.warn(
            "no NOTIFY from {room} ({host}) within {grace} s of subscribing to {service}: "
            "the speaker cannot reach sonosd's callback URL {url}; polling the state instead. "
            "Check that {url} is reachable from the speakers: the firewall (TCP port {port}), "
            "the Docker network (use network_mode: host, or publish the port and set "
            "listener.advertise to the host's LAN address)",
            room=ref.name,
            host=ref.host,
            grace=grace,
            service=service,
            url=url,
            port=urlparse(url).port,
        )
        return True


def _default_soco_factory(address: str) -> Any:
    return lazysoco.speaker(address)


@attrs.frozen
class SupervisorContext:
    """Everything the supervisors share: collaborators, settings and sources of time/chance.

    @ivar clock: Schedules every timer.
    @ivar runner: Runs SoCo's blocking calls (``SocoRunner``).
    @ivar processor: Receives events and read state, publishes the supervisor's messages
        (``EventProcessor``).
    @ivar reader: Reads a service's state by control calls (``StateReader``).
    @ivar subscriptions: Builds GENA subscriptions for ``(soco_device, service)``.
    @ivar config: Timeouts, intervals and backoff.
    @ivar services: The services subscribed on every speaker.
    @ivar callback_url: The URL the listener advertises to a speaker host (for the log line).
    @ivar soco_factory: ``soco.SoCo`` (through ``sonosd.lazysoco``), or a fake; called when a
        speaker's SoCo object is first needed (``SpeakerHandle``).
    @ivar resolve: Host name to IPv4 address; called in the thread pool.
    @ivar random: Jitter source in [0, 1).
    @ivar read_timeout: Seconds a state read (resync, poll) may take.
    @ivar describe: Identifies a speaker (device description and household id).
    @ivar ping: Proves a speaker answers (the availability check).
    @ivar unsubscribe: UNSUBSCRIBEs a replaced SID at the speaker's current address.
    @ivar position: Reads playing groups' track position (``None``: not read).
    @ivar status_changed: Called (no arguments) when what the status counts may have changed:
        a speaker came or went, its availability changed, a subscription became evented or
        stopped being so (systemd's status line is refreshed then).
    """

    clock: IReactorTime
    runner: Runner
    processor: Processor
    reader: Reader
    subscriptions: SubscriptionFactory
    config: SubscriptionConfig = attrs.field(factory=SubscriptionConfig)
    services: tuple[str, ...] = DEFAULT_SERVICES
    callback_url: Callable[[str], str] = lambda host: "(unknown)"
    soco_factory: Callable[[str], Any] = _default_soco_factory
    resolve: Callable[[str], str] = socket.gethostbyname
    random: Callable[[], float] = _random.random
    read_timeout: float = 30.0
    notice: PollingNotice = attrs.field(factory=PollingNotice)
    describe: Describer = _not_wired
    ping: Pinger = _not_wired
    unsubscribe: Unsubscriber = _not_wired
    position: PositionTracker | None = None
    status_changed: Callable[[], None] = lambda: None


class SpeakerHandle(Protocol):
    """What a service supervisor needs of its speaker supervisor."""

    ctx: SupervisorContext
    ref: SpeakerRef | None
    device: Any

    @property
    def label(self) -> str: ...

    def saw_activity(self) -> None: ...

    def check_now(self, why: str) -> None: ...

    def rebooted(self, reason: str) -> None: ...

    def supersede(self, subscription: GenaSubscription) -> None: ...

    def transport_changed(self, variables: Mapping[str, Any]) -> None: ...


class ServiceState(enum.Enum):
    """Where a service supervisor is in its lifecycle (see docs/supervisor.md)."""

    IDLE = "idle"
    SUBSCRIBING = "subscribing"
    SUBSCRIBED = "subscribed"
    RENEWING = "renewing"
    RETRYING = "retrying"
    SUSPENDED = "suspended"
    STOPPED = "stopped"


#: The public state of a subscription, as ``/api/v1/diagnostics`` and the metrics show it:
#: ``subscribed`` (NOTIFYs expected or arriving), ``polling`` (subscribed, but no NOTIFY
#: arrived: the state is read every ``poll_interval``), ``backing_off`` (failed, waiting to
#: resubscribe), ``lost`` (dropped while the speaker is offline), ``subscribing``, ``idle``
#: (the speaker is not identified yet) and ``stopped``.
PHASES: tuple[str, ...] = (
    "subscribed",
    "polling",
    "backing_off",
    "lost",
    "subscribing",
    "idle",
    "stopped",
)

_PHASES: Mapping[ServiceState, str] = {
    ServiceState.IDLE: "idle",
    ServiceState.SUBSCRIBING: "subscribing",
    ServiceState.RETRYING: "backing_off",
    ServiceState.SUSPENDED: "lost",
    ServiceState.STOPPED: "stopped",
}


class ServiceSupervisor:
    """Keeps one service of one speaker subscribed, and its events in order.

    Every operation captures a generation number; restarting, suspending or stopping bumps it,
    so late results of an abandoned operation (a renewal that answers after the speaker was
    found to have rebooted, a NOTIFY of a replaced subscription) are ignored.
    """

    def __init__(self, speaker: SpeakerHandle, service: str) -> None:
        self.speaker = speaker
        self.service = service
        self._state = ServiceState.IDLE
        self.subscription: GenaSubscription | None = None
        self._polling = False
        self.failures = 0
        self.lost_reason: str | None = None
        self.events = 0
        self.duplicates = 0
        self.gaps = 0
        self.resyncs = 0
        self.polls = 0
        self.subscribes = 0
        self.subscribe_failures = 0
        self.renewals = 0
        self.renewal_failures = 0
        self.last_notify: float | None = None
        self.last_seq: int | None = None
        self.subscribed_at: float | None = None
        self.unsubscribe_error: str | None = None
        self._gen = 0
        self._operation: Deferred[Any] | None = None
        self._timer: IDelayedCall | None = None
        self._grace: IDelayedCall | None = None
        self._poll: LoopingCall | None = None
        self._poll_token = 0
        self._poll_failed = False
        self._resync: Deferred[Any] | None = None
        self._resync_again = False
        self._lost_at = 0.0
        # The renewal under way checks whether the speaker still holds its subscriptions.
        self._probing = False
        self._seq = SeqTracker()
        self._notified_ = False
        # SUBSCRIBEs in flight when their subscription was abandoned: each UNSUBSCRIBEs what
        # it is granted (``_unsubscribe_once_granted``).
        self._abandoned: set[Deferred[None]] = set()

    def __repr__(self) -> str:
        return f"<ServiceSupervisor {self.speaker.label} {self.service} {self.state.value}>"

    @property
    def _ctx(self) -> SupervisorContext:
        # Read through the speaker: a reload replaces the context (new timings, services).
        return self.speaker.ctx

    # The three attributes ``evented`` and ``phase`` are read from: setting one to a new
    # value tells the context's ``status_changed``.

    @property
    def state(self) -> ServiceState:
        """Where the subscription's life is (``phase`` is its public name)."""
        return self._state

    @state.setter
    def state(self, value: ServiceState) -> None:
        self._set_told("_state", value)

    @property
    def polling(self) -> bool:
        """Whether the state is read every ``poll_interval`` (no NOTIFY came)."""
        return self._polling

    @polling.setter
    def polling(self, value: bool) -> None:
        self._set_told("_polling", value)

    @property
    def _notified(self) -> bool:
        # The first NOTIFY of the current subscription came.
        return self._notified_

    @_notified.setter
    def _notified(self, value: bool) -> None:
        self._set_told("_notified_", value)

    def _set_told(self, attribute: str, value: object) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            self._ctx.status_changed()

    @property
    def _config(self) -> SubscriptionConfig:
        return self.speaker.ctx.config

    # What the diagnostics, readiness, metrics and systemd's status line read.

    @property
    def phase(self) -> str:
        """The public state of the subscription (see ``PHASES``)."""
        if self.state in (ServiceState.SUBSCRIBED, ServiceState.RENEWING):
            return "polling" if self.polling else "subscribed"
        return _PHASES[self.state]

    @property
    def resubscriptions(self) -> int:
        """Subscriptions made after the first (after a loss, a reboot, an outage)."""
        return max(0, self.subscribes - 1)

    @property
    def evented(self) -> bool:
        """Subscribed, and NOTIFYs arrive (the first one came since subscribing)."""
        return self.phase == "subscribed" and self._notified

    def status(self) -> dict[str, Any]:
        """A plain snapshot of this subscription (documented in docs/api.md, diagnostics).

        Times are seconds: ``next_renewal`` and ``retry_in`` from now, ``last_notify_age``
        and ``subscribed_for`` up to now; ``None`` where they do not apply.
        """
        now = self._ctx.clock.seconds()
        subscription = self.subscription
        timer = self._timer
        pending = None
        if timer is not None and timer.active():
            pending = round(max(0.0, timer.getTime() - now), 3)
        subscribed = self.state in (ServiceState.SUBSCRIBED, ServiceState.RENEWING)
        return {
            "state": self.phase,
            "evented": self.evented,
            "polling": self.polling,
            "sid": None if subscription is None else subscription.sid,
            "timeout": None if subscription is None else subscription.timeout,
            "next_renewal": pending if self.state is ServiceState.SUBSCRIBED else None,
            "retry_in": pending if self.state is ServiceState.RETRYING else None,
            "subscribed_for": (
                round(now - self.subscribed_at, 3)
                if subscribed and self.subscribed_at is not None
                else None
            ),
            "last_notify_age": (
                None if self.last_notify is None else round(now - self.last_notify, 3)
            ),
            "notified": self._notified,
            "seq": self.last_seq,
            "reason": self.lost_reason,
            "failures": self.failures,
            "events": self.events,
            "duplicates": self.duplicates,
            "gaps": self.gaps,
            "resyncs": self.resyncs,
            "polls": self.polls,
            "subscribes": self.subscribes,
            "subscribe_failures": self.subscribe_failures,
            "resubscriptions": self.resubscriptions,
            "renewals": self.renewals,
            "renewal_failures": self.renewal_failures,
        }

    # Commands from the speaker supervisor.

    def start(self, reason: str | None = None) -> None:
        """Subscribe afresh: abandon any current subscription and operation, then subscribe.

        @param reason: Why the current subscription is being replaced (``reboot``, ``address
            changed``); ``subscription.lost`` is published with it. ``None`` at start-up.
        """
        self._abandon(forgotten=reason == "reboot")
        if reason is not None:
            self._mark_lost(reason)
        self.failures = 0
        self._begin_subscribe()

    def suspend(self, reason: str) -> None:
        """Drop the subscription and stop everything until ``start`` (the speaker is offline)."""
        self._abandon()
        self._stop_polling()
        self._mark_lost(reason)
        self.state = ServiceState.SUSPENDED

    def stop(self, timeout: float, bound: float | None = None) -> Deferred[None]:
        """Cancel everything and UNSUBSCRIBE; fire within ``timeout`` seconds, never fail.
        An UNSUBSCRIBE cut then is said not to have been answered within ``bound`` seconds
        (default ``timeout``: the stop's whole bound, of which ``timeout`` may be what is left).

        A renewal in flight is not cancelled (that would end the subscription locally, and
        no UNSUBSCRIBE would go out): the UNSUBSCRIBE is sent behind it, within the bound.
        Nor is a SUBSCRIBE in flight, this one or one abandoned earlier (an address change,
        an outage, a reboot): the speaker may have granted it already, and only its answer
        tells the SID to UNSUBSCRIBE (see ``_unsubscribe_once_granted``); the earlier ones
        get the same bound.
        """
        subscription = None
        if self.state is not ServiceState.SUBSCRIBING:
            # UNSUBSCRIBEd here, not handed to the speaker supervisor by ``_abandon``.
            subscription, self.subscription = self.subscription, None
        renewal = self._operation if self.state is ServiceState.RENEWING else None
        if renewal is not None:
            self._operation = None
        said = timeout if bound is None else bound
        self._abandon(stopping_within=timeout, bound=said)
        self._stop_polling()
        self.state = ServiceState.STOPPED
        clock = self._ctx.clock
        waits: list[Deferred[None]] = [
            wait.addTimeout(timeout, clock) for wait in list(self._abandoned)
        ]
        if subscription is not None and (renewal is not None or subscription.is_subscribed):
            done = self._unsubscribe(subscription, timeout, said)
            if renewal is not None:
                done.addBoth(lambda _: renewal.cancel())
            waits.append(done)
        if not waits:
            return succeed(None)
        return DeferredList(waits, consumeErrors=True).addCallback(lambda _: None)

    # Subscribing and renewing.

    def _begin_subscribe(self) -> None:
        self._timer = None
        self._gen += 1
        running = Deferred.fromCoroutine(self._subscribe(self._gen))
        if not running.called:
            self._operation = running

    async def _subscribe(self, gen: int) -> None:
        self.state = ServiceState.SUBSCRIBING
        self._seq.reset()
        self._notified = False

        def request() -> Deferred[Any]:
            subscription = self._ctx.subscriptions(self.speaker.device, self.service)
            subscription.callback = functools.partial(self._on_event, gen)
            self.subscription = subscription
            return subscription.subscribe(requested_timeout=self._config.timeout, auto_renew=False)

        if not await self._request(gen, "subscribe", request):
            return
        subscription = self.subscription
        assert subscription is not None
        self.failures = 0
        self.subscribes += 1
        self.subscribed_at = self._ctx.clock.seconds()
        log.debug(
            "subscribed {speaker} {service} sid={sid} for {timeout} s",
            speaker=self.speaker.label,
            service=self.service,
            sid=subscription.sid,
            timeout=subscription.timeout,
        )
        if self.lost_reason is not None:
            self._restored()
        self._schedule_renew(subscription, first=True)
        if not self._notified and self._grace is None:
            self._grace = self._ctx.clock.callLater(
                self._config.no_event_grace, self._grace_expired, gen
            )

    def _schedule_renew(self, subscription: GenaSubscription, *, first: bool = False) -> None:
        """Schedule the next renewal; ``first`` after a SUBSCRIBE, which picks the phase.

        A grant longer than the timeout requested (``Second-99999999999999``, ``infinite``)
        counts as the one requested: renewing early costs one request, trusting an absurd
        grant would never renew, and a rebooted speaker would go unnoticed.
        """
        granted = min(subscription.timeout or self._config.timeout, self._config.timeout)
        delay = renew_delay(granted, self._config.renew_fraction, self._ctx.random, first=first)
        self._timer = self._ctx.clock.callLater(delay, self._begin_renew)

    def renew_now(self, probe: bool = False) -> bool:
        """Renew at once rather than when due: whether the speaker still holds the
        subscription is in doubt (a 412 answer is a reboot, handled as on any renewal).

        @param probe: The renewal stands for all the speaker's subscriptions (a reboot the
            topology showed may have made it forget them): any failure, not only a 412, is
            then taken as that reboot, and every service is subscribed afresh.
        @return: Whether a renewal was started (only a subscribed service renews).
        """
        if self.state is not ServiceState.SUBSCRIBED or self.subscription is None:
            return False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._probing = probe
        self._begin_renew()
        return True

    def _begin_renew(self) -> None:
        self._timer = None
        running = Deferred.fromCoroutine(self._renew(self._gen))
        if not running.called:
            self._operation = running

    async def _renew(self, gen: int) -> None:
        subscription = self.subscription
        assert subscription is not None
        self.state = ServiceState.RENEWING
        request = functools.partial(subscription.renew, requested_timeout=self._config.timeout)
        if not await self._request(gen, "renew", request):
            return
        self._probing = False
        self.renewals += 1
        log.debug(
            "renewed {speaker} {service} for {timeout} s",
            speaker=self.speaker.label,
            service=self.service,
            timeout=subscription.timeout,
        )
        self._schedule_renew(subscription)

    async def _request(self, gen: int, during: str, request: Callable[[], Deferred[Any]]) -> bool:
        """Make a SUBSCRIBE or renewal of generation ``gen``, within the request timeout.

        @return: Whether it succeeded and ``gen`` is still current (then the service is
            subscribed); a failure of the current generation is handled (retry, reboot).
        """
        guard: _Guard | None = None
        try:
            operation = request()
            guard = _Guard(self._ctx.clock, operation, self.subscription)
            guard.arm(self._config.request_timeout + 1.0)
            await operation
        except Exception:
            failure = Failure()
            if guard is not None and guard.expired:
                # Ours, whatever the request failed with once cancelled.
                failure = Failure(TimeoutError(f"{during}: no answer in time"))
            if gen == self._gen:
                self._failed(failure, during)
            return False
        finally:
            if guard is not None:
                guard.disarm()
        if gen != self._gen:
            return False
        self._operation = None
        self.state = ServiceState.SUBSCRIBED
        self.speaker.saw_activity()
        return True

    def _failed(self, failure: Failure, during: str) -> None:
        kind, reason = describe_failure(failure)
        self._operation = None
        probe, self._probing = self._probing, False
        if during == "renew":
            self.renewal_failures += 1
        else:
            self.subscribe_failures += 1
        forgot = kind is FailureKind.GONE and reason == GONE_412
        if during == "renew" and (forgot or probe):
            # The speaker forgot the subscription: it rebooted. All its services are replaced
            # (this one included, unless the speaker cannot act on it now). A failed probe
            # cannot tell that the others survived the reboot the topology showed.
            gen = self._gen
            self.speaker.rebooted(
                f"412 on renewal of {self.service}"
                if forgot
                else f"renewal of {self.service} failed after a BootSeq increase: {reason}"
            )
            if self._gen != gen:
                return
        self._abandon(forgotten=kind is FailureKind.GONE)
        self._mark_lost(reason)
        self.failures += 1
        delay = backoff_delay(
            self.failures, self._config.backoff_initial, self._config.backoff_max, self._ctx.random
        )
        # A speaker that does not answer is the speaker supervisor's to report (one line when
        # it goes offline), not every service's.
        emit = log.debug if kind is FailureKind.UNREACHABLE else log.warn
        emit(
            "{during} {speaker} {service} failed: {reason}; retry {n} in {delay:.1f} s",
            during=during,
            speaker=self.speaker.label,
            service=self.service,
            reason=reason,
            n=self.failures,
            delay=delay,
        )
        self.state = ServiceState.RETRYING
        self._timer = self._ctx.clock.callLater(delay, self._begin_subscribe)
        if kind is FailureKind.UNREACHABLE or reason == "HTTP 403":
            # Not answering, or answering 403 (UPnP switched off): the speaker's ping says.
            self.speaker.check_now(reason)

    def _abandon(
        self,
        forgotten: bool = False,
        stopping_within: float | None = None,
        bound: float | None = None,
    ) -> None:
        """Forget the current subscription and cancel every timer and operation of this one.

        A SUBSCRIBE in flight is not cancelled, whatever the reason (a reboot included: it
        may have been sent after it): the speaker may have granted it already, and only its
        answer tells which SID to UNSUBSCRIBE (``_unsubscribe_once_granted``). One still
        waiting for its turn among the household's requests was never sent: it is cancelled.

        @param forgotten: The speaker forgot the subscription (it rebooted, or answered 412):
            no UNSUBSCRIBE is due. Otherwise the speaker may still hold it, and keep sending
            NOTIFYs to it: it is handed to the speaker supervisor to be UNSUBSCRIBEd.
        @param stopping_within: The service stops: a SUBSCRIBE in flight is waited for and
            its SID UNSUBSCRIBEd within these seconds (``None``: within the request bounds).
        @param bound: The stop's whole bound, which a failure of that UNSUBSCRIBE names.
        """
        subscribing = self.state is ServiceState.SUBSCRIBING
        self._gen += 1
        self._probing = False
        for call in (self._timer, self._grace):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._grace = None
        operation, self._operation = self._operation, None
        in_flight = self.subscription if subscribing and operation is not None else None
        if getattr(in_flight, "request_started", 0.0) is None:
            in_flight = None  # Still waiting for its turn (``_Guard``): never sent, cancelled.
        if operation is not None and in_flight is not None:
            self.subscription = None
            self._unsubscribe_once_granted(operation, in_flight, stopping_within, bound)
            operation = None
        if operation is not None:
            operation.cancel()
        resync, self._resync = self._resync, None
        self._resync_again = False
        if resync is not None:
            resync.cancel()
        subscription, self.subscription = self.subscription, None
        if subscription is not None:
            # Ends it locally: the listener answers 412 to its NOTIFYs from now on (quietly:
            # it knows the SID ended); the speaker supervisor UNSUBSCRIBEs it as soon as the
            # speaker answers.
            subscription.callback = None
            if not forgotten:
                self.speaker.supersede(subscription)
            subscription.cancel()

    def _unsubscribe_once_granted(
        self,
        subscribing: Deferred[Any],
        subscription: GenaSubscription,
        stopping_within: float | None = None,
        bound: float | None = None,
    ) -> None:
        """Wait for the SUBSCRIBE in flight (``subscribing``, of an abandoned generation: its
        events and its result are ignored), then UNSUBSCRIBE what it was granted; tracked in
        ``_abandoned`` until done.

        Whatever abandoned it (a stop, a removal, an address change, an outage, a reboot),
        the speaker may have granted it, and would keep sending NOTIFYs to that SID until it
        expires. All within ``stopping_within`` when the service stops (a SUBSCRIBE still
        unanswered then is cancelled; a failure is said in the stop's line); otherwise within
        the SUBSCRIBE's bound and the UNSUBSCRIBE's (``_unsubscribe_abandoned``).
        """
        clock = self._ctx.clock
        request = self._config.request_timeout
        timeout = 2 * request + 1.0 if stopping_within is None else stopping_within
        deadline = clock.seconds() + timeout
        subscription.callback = None

        def answered(_: object) -> Deferred[None]:
            if not subscription.is_subscribed:
                return succeed(None)
            left = max(0.0, deadline - clock.seconds())
            if stopping_within is None:
                return self._unsubscribe_abandoned(subscription, left)
            return self._unsubscribe(subscription, left, bound)

        waited = subscribing.addTimeout(timeout, clock).addBoth(answered)
        waited.addErrback(lambda _: None)
        self._abandoned.add(waited)
        waited.addBoth(lambda _: self._abandoned.discard(waited))

    def _unsubscribe_abandoned(
        self, subscription: GenaSubscription, timeout: float
    ) -> Deferred[None]:
        """UNSUBSCRIBE the SID an abandoned SUBSCRIBE was granted. If the speaker could not be
        reached (refused, no whole answer in time: it was going away), the speaker supervisor
        keeps the SID to send again when the speaker answers again, as a replaced one's;
        any other failure is only logged (the speaker forgets the SID at its expiry)."""

        def failed(failure: Failure) -> None:
            kind, reason = describe_failure(failure)
            log.debug(
                "UNSUBSCRIBE of abandoned {sid} at {speaker}: {reason}",
                sid=subscription.sid,
                speaker=self.speaker.label,
                reason=reason,
            )
            if kind is FailureKind.UNREACHABLE:
                self.speaker.supersede(subscription)

        d = subscription.unsubscribe().addTimeout(timeout, self._ctx.clock)
        return d.addCallbacks(lambda _: None, failed)

    def _unsubscribe(
        self, subscription: GenaSubscription, timeout: float, bound: float | None = None
    ) -> Deferred[None]:
        said = timeout if bound is None else bound

        def failed(failure: Failure) -> None:
            # The speaker supervisor says it once for all its services.
            if failure.check(GenaTimeout):
                # The request's own bound, shorter than the stop's.
                seconds = self._config.request_timeout
                self.unsubscribe_error = str(SlowAnswer.unsubscribe(seconds))
            elif failure.check(CancelledError):
                # Cut by the stop's own wait (``stop``: the UNSUBSCRIBE of a SID an abandoned
                # SUBSCRIBE was granted, cut at the same moment as here).
                self.unsubscribe_error = str(SlowAnswer.unsubscribe(said))
            else:
                self.unsubscribe_error = describe_failure(failure)[1]
            log.debug(
                "unsubscribe {speaker} {service} failed: {reason}",
                speaker=self.speaker.label,
                service=self.service,
                reason=self.unsubscribe_error,
            )

        # A hung or dripping answer is cut here; whatever the cancelled call failed with.
        d = add_timeout(
            subscription.unsubscribe(),
            timeout,
            self._ctx.clock,
            lambda _: SlowAnswer.unsubscribe(said),
        )
        return d.addCallbacks(lambda _: None, failed)

    def _mark_lost(self, reason: str) -> None:
        if self.lost_reason is not None:
            return
        self.lost_reason = reason
        self._lost_at = self._ctx.clock.seconds()
        ref = self.speaker.ref
        if ref is not None:
            self._ctx.processor.subscription_lost(ref, self.service, reason)

    def _restored(self) -> None:
        ref = self.speaker.ref
        assert ref is not None
        reason, self.lost_reason = self.lost_reason, None
        down = round(self._ctx.clock.seconds() - self._lost_at, 3)
        # After a reboot, an address change or an outage the speaker's own line said that
        # every service is being resubscribed: one line per service would repeat it.
        speaker_wide = reason in ("reboot", "address changed") or (reason or "").startswith(
            "speaker offline"
        )
        (log.debug if speaker_wide else log.info)(
            "subscription {speaker} {service} restored after {down} s ({reason})",
            speaker=self.speaker.label,
            service=self.service,
            down=down,
            reason=reason,
        )
        self._ctx.processor.subscription_restored(ref, self.service, reason)

    # Events.

    def _on_event(self, gen: int, event: Any) -> None:
        """Take one NOTIFY of the subscription of generation ``gen``; never raise."""
        try:
            self._handle_event(gen, event)
        except Exception:
            log.failure(
                "event of {speaker} {service} failed",
                speaker=self.speaker.label,
                service=self.service,
            )

    def _handle_event(self, gen: int, event: Any) -> None:
        if gen != self._gen:
            return
        ref = self.speaker.ref
        assert ref is not None
        self.speaker.saw_activity()
        self.last_notify = self._ctx.clock.seconds()
        verdict = self._seq.observe(int(event.seq))
        if verdict.kind is SeqKind.DUPLICATE:
            self.duplicates += 1
            log.debug(
                "dropped duplicate SEQ {seq} of {speaker} {service} (expected {expected})",
                seq=verdict.seq,
                speaker=self.speaker.label,
                service=self.service,
                expected=verdict.expected,
            )
            return
        self.events += 1
        self.last_seq = verdict.seq
        if not self._notified:
            self._notified = True
            if self._grace is not None and self._grace.active():
                self._grace.cancel()
            self._grace = None
            if self.polling:
                log.info(
                    "NOTIFYs from {speaker} {service} arrive now: polling stopped",
                    speaker=self.speaker.label,
                    service=self.service,
                )
                self._stop_polling()
        self._ctx.processor.on_event(ref, self.service, event)
        if self.service == "AVTransport":
            self.speaker.transport_changed(getattr(event, "variables", None) or {})
        if verdict.kind is SeqKind.GAP:
            self.gaps += 1
            log.warn(
                "{missed} event(s) lost from {speaker} {service} (SEQ {seq}, expected "
                "{expected}): resyncing",
                missed=verdict.missed,
                speaker=self.speaker.label,
                service=self.service,
                seq=verdict.seq,
                expected=verdict.expected,
            )
            expected = verdict.expected if verdict.expected is not None else 0
            self._ctx.processor.events_gap(ref, self.service, expected, verdict.seq)
            self.resync()

    # The consistency check (driven by the speaker): a lost last NOTIFY.

    @property
    def checkable(self) -> bool:
        """Whether the state of this service comes from its NOTIFYs now (subscribed, an event
        received, not polling, no resync under way): only then can a difference with the
        speaker mean a lost NOTIFY."""
        return (
            self.state is ServiceState.SUBSCRIBED
            and self._notified
            and not self.polling
            and self._resync is None
        )

    def found_gap(self, reason: str) -> None:
        """The consistency check found the state differing from the speaker's: a NOTIFY was
        lost (perhaps the last one, which no SEQ gap will ever show). Say so, subscribe
        afresh and resync.

        NOTIFYs may have stopped reaching the daemon altogether since the speaker subscribed
        (a firewall, a network or Docker change) while renewals still succeed: the fresh
        subscription's initial NOTIFY shows they arrive again, and without one within
        ``no_event_grace`` the service is polled, as when NOTIFYs never arrived.
        """
        ref = self.speaker.ref
        if ref is None or not self.checkable:
            return
        self.gaps += 1
        log.warn(
            "{speaker} {service} differs from the events received ({reason}): a NOTIFY was "
            "lost; subscribing afresh and resyncing",
            speaker=self.speaker.label,
            service=self.service,
            reason=reason,
        )
        self._ctx.processor.events_gap(
            ref, self.service, self._seq.expected, None, f"consistency check: {reason}"
        )
        self.start()
        self.resync()

    # State reads: resync after a gap, polling when NOTIFYs do not arrive.

    def resync(self) -> None:
        """Read the service's state and feed it as ``source="resync"``; coalesce overlaps."""
        if self._resync is not None:
            self._resync_again = True
            return
        running = Deferred.fromCoroutine(self._resync_once(self._gen))
        if not running.called:
            self._resync = running

    async def _resync_once(self, gen: int) -> None:
        variables = await self._read_state("resync", lambda: gen == self._gen)
        if gen != self._gen:
            return
        self._resync = None
        if variables is not None:
            self.resyncs += 1
            self._feed_state(variables, "resync")
        if self._resync_again:
            self._resync_again = False
            self.resync()

    async def _read_state(
        self, source: str, current: Callable[[], bool], *, again: bool = False
    ) -> Mapping[str, Any] | None:
        """Read the state through ``StateReader``; ``None`` on failure (logged if ``current``).

        @param again: The previous read failed too: the failure is logged at debug level only
            (a poll that fails every ``poll_interval`` for months must not flood the log).
        """
        ref = self.speaker.ref
        if ref is None:
            return None
        try:
            variables: Mapping[str, Any] = await self._ctx.reader.read(
                ref, self.service
            ).addTimeout(self._ctx.read_timeout, self._ctx.clock)
        except ZoneGroupStateUnavailable as unavailable:
            # Large households answer GetZoneGroupState with UPnP 501: their topology comes
            # from ZoneGroupTopology events alone, the rest of the service still reads.
            variables = unavailable.variables
        except Exception:
            kind, reason = describe_failure(Failure())
            if current():
                (log.debug if again else log.warn)(
                    "{source} of {speaker} {service} failed: {reason}",
                    source=source,
                    speaker=self.speaker.label,
                    service=self.service,
                    reason=reason,
                )
                if kind is FailureKind.UNREACHABLE:
                    self.speaker.check_now(reason)
            return None
        if not current():
            return None
        self.speaker.saw_activity()
        return variables

    def _feed_state(self, variables: Mapping[str, Any], source: str) -> None:
        ref = self.speaker.ref
        assert ref is not None
        try:
            self._ctx.processor.on_state(ref, self.service, variables, source=source)
        except Exception:
            log.failure(
                "{source} state of {speaker} {service} failed",
                source=source,
                speaker=self.speaker.label,
                service=self.service,
            )
            return
        if self.service == "AVTransport":
            self.speaker.transport_changed(variables)

    def _grace_expired(self, gen: int) -> None:
        self._grace = None
        if gen != self._gen or self._notified or self.polling:
            return
        ref = self.speaker.ref
        assert ref is not None
        url = self._ctx.callback_url(ref.host)
        if not self._ctx.notice.announce(url, ref, self.service, self._config.no_event_grace):
            log.info(
                "no NOTIFY from {speaker} {service}: polling every {interval} s",
                speaker=self.speaker.label,
                service=self.service,
                interval=self._config.poll_interval,
            )
        self.polling = True
        self._poll_failed = False
        self._poll_token += 1
        self._start_poll(now=True)

    def _start_poll(self, now: bool) -> None:
        poll = self._poll = LoopingCall(self._poll_once, self._poll_token)
        poll.clock = self._ctx.clock
        poll.start(self._config.poll_interval, now=now)

    def poll_interval_changed(self) -> None:
        """``poll_interval`` changed (a reload): a poll under way reads every new interval
        from now on, not at the next tick of the old one (which may be a day away)."""
        poll = self._poll
        if poll is None or not poll.running or poll.interval == self._config.poll_interval:
            return
        poll.stop()
        self._start_poll(now=False)

    def _poll_once(self, token: int) -> Deferred[None]:
        return Deferred.fromCoroutine(self._poll_read(token))

    async def _poll_read(self, token: int) -> None:
        variables = await self._read_state(
            "poll", lambda: token == self._poll_token, again=self._poll_failed
        )
        self._poll_failed = variables is None
        if variables is not None:
            self.polls += 1
            self._feed_state(variables, "poll")

    def _stop_polling(self) -> None:
        self.polling = False
        self._poll_token += 1
        poll, self._poll = self._poll, None
        if poll is not None and poll.running:
            poll.stop()
