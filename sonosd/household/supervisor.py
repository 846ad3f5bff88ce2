# -*- test-case-name: tests.household.test_supervisor,tests.household.test_supervisor_sim -*-
"""Subscriptions that never die: one supervisor per speaker, one per speaker and service.

``HouseholdSupervisor`` (a ``MultiService``) owns a ``SpeakerSupervisor`` per speaker, which
owns a ``ServiceSupervisor`` per configured UPnP service. Together they

- identify each speaker from its device description and household id, with two HTTP requests
  made by the reactor (``sonosd.household.probe``): never ``GetZoneGroupState``, which large
  households answer with UPnP 501; the uid keys everything;
- follow the household of every configured speaker (``follow_household``): each visible
  member of its topology is followed, members that join or leave appear or disappear as the
  topology changes (``speaker.removed``); invisible members (the hidden half of a stereo pair,
  home-theatre satellites, bridges) stay in the topology without subscriptions of their own;
- subscribe every service (``sonosd.household.keepalive.ServiceSupervisor``), renew each
  subscription early and resubscribe with jittered exponential backoff after any failure
  (``subscription.lost`` / ``subscription.restored``), UNSUBSCRIBE the SIDs a new
  subscription replaced (after an outage, an address change) as soon as the speaker answers;
- notice reboots (412 on renewal, a BootSeq increase in the topology or an SSDP answer) and
  replace all of the speaker's subscriptions at once;
- keep each speaker's availability, the one source of truth for health, status, commands,
  messages and metrics (``speaker.online``, ``speaker.offline``, ``speaker.asleep``,
  ``speaker.upnp_disabled``): from NOTIFYs, renewals, command failures, the topology's
  ``VanishedDevices``, SSDP byebyes, and a cheap ping only when a speaker is silent;
- poll the state when NOTIFYs never arrive (saying once, clearly, why that happens), and drop
  duplicate NOTIFYs and resync the state after a SEQ gap (``events.gap``);
- unsubscribe everything at shutdown within a bounded time.

The lifecycle, every timer and the measured availability figures are in
``docs/supervisor.md``.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from treq.client import HTTPClient
from twisted.application.service import MultiService, Service
from twisted.internet.defer import CancelledError, Deferred, DeferredList, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd.backoff import (
    FailureKind,
    SlowAnswer,
    backoff_delay,
    describe_failure,
)
from sonosd.blocking import Runner
from sonosd.config import Config, Device, is_address
from sonosd.gena import core as gena
from sonosd.household import probe
from sonosd.household.discovery import SSDP_GROUP, Sighting, SsdpDiscovery
from sonosd.household.keepalive import (
    GenaSubscription,
    Processor,
    Reader,
    ServiceState,
    ServiceSupervisor,
    SupervisorContext,
)
from sonosd.household.position import PositionTracker
from sonosd.household.probe import UPNP_HELP, Description, ProbeError, UpnpDisabled
from sonosd.household.resync import CHECKS
from sonosd.household.soap import SoapCaller, SoapClient
from sonosd.household.speaker import (
    SpeakerHandle,
    TopologyFeed,
    TopologySubscription,
    service_object,
)
from sonosd.household.state import SpeakerRef
from sonosd.household.topology import ASLEEP_REASONS, Member, Topology, VanishedDevice

log = Logger()

SONOS_PORT = 1400

#: The counters of a ``ServiceSupervisor`` that the household keeps when it stops
#: supervising that subscription (see ``HouseholdSupervisor.retired``).
RETIRED_COUNTERS: tuple[str, ...] = (
    "events",
    "duplicates",
    "gaps",
    "resyncs",
    "polls",
    "subscribes",
    "subscribe_failures",
    "resubscriptions",
    "renewals",
    "renewal_failures",
)

CONFIRM_DELAY = 2.0
"""Seconds the consistency check waits before confirming a difference (a NOTIFY sent just
before the read has arrived by then)."""

REBOOT_MERGE_WINDOW = 60.0
"""A BootSeq increase seen this soon after every subscription was made afresh (a 412 on a
renewal, or the speaker back online) is the same reboot."""

# Availability statuses (``sonosd.household.state.STATUSES``).
UNKNOWN, ONLINE, OFFLINE, ASLEEP, UPNP_DISABLED = (
    "unknown",
    "online",
    "offline",
    "asleep",
    "upnp_disabled",
)


GENA_CONCURRENCY = 64
"""The most GENA requests (SUBSCRIBE, renewal, UNSUBSCRIBE) the daemon has in flight at once.

Without a bound, a household of 200 speakers x 8 services opens 1,600 connections within a
second at start-up and receives 1,600 initial NOTIFYs at once; with 64 it subscribes as fast
(all 1,600 in ~3.5 s on loopback) with 35 MB less resident memory afterwards (issue #7), and
its outgoing GENA connections stay far below a default ``ulimit -n`` of 1,024."""


class GenaSubscriptions:
    """The subscription factory for the daemon: ``sonosd.gena.core.BaseSubscription`` objects
    (no SoCo: each service described by the speaker's ``SpeakerHandle``) that
    send their requests with ``http`` (default: one client built from ``reactor``, shared by
    every subscription: a client per subscription was an agent, a connection pool and a
    cookie jar each, megabytes at 1,600 subscriptions), at most ``GENA_CONCURRENCY`` of them
    at once, and receive their NOTIFYs through ``listener`` (a running ``NotifyListener``).

    @param limiter: Bounds the requests in flight (default: a new one; ``build_household``
        shares one with the UNSUBSCRIBEs of superseded SIDs).
    @param feed: Keeps SoCo's topology caches fed once SoCo is loaded.
    @ivar request_timeout: Seconds each request may take (a reload may change it).
    """

    def __init__(
        self,
        reactor: Any,
        listener: Any,
        request_timeout: float,
        http: Any = None,
        limiter: DeferredSemaphore | None = None,
        feed: TopologyFeed | None = None,
    ) -> None:
        self._reactor = reactor
        self._listener = listener
        self.request_timeout = request_timeout
        self._http = gena.build_http_client(reactor) if http is None else http
        self._limiter = DeferredSemaphore(GENA_CONCURRENCY) if limiter is None else limiter
        self._feed = feed

    def __call__(self, device: Any, service: str) -> GenaSubscription:
        options: dict[str, Any] = {
            "reactor": self._reactor,
            "http": self._http,
            "request_timeout": self.request_timeout,
            "limiter": self._limiter,
        }
        if not isinstance(device, SpeakerHandle):
            return gena.BaseSubscription(service_object(device, service), self._listener, **options)
        described = device.service_ref(service)
        if service == "ZoneGroupTopology" and self._feed is not None:
            return TopologySubscription(
                described, self._listener, handle=device, feed=self._feed, **options
            )
        return gena.BaseSubscription(described, self._listener, **options)


#: The daemon's subscription factory, under the name the docs give it (docs/supervisor.md).
gena_subscriptions = GenaSubscriptions


def gena_unsubscriber(reactor: Any, http: HTTPClient, limiter: DeferredSemaphore) -> Any:
    """``(host, port, event path, SID, timeout)`` -> an UNSUBSCRIBE of that SID sent to
    ``host`` (a speaker's current address: after a move it is not the SID's old one), with the
    subscriptions' HTTP client and within their concurrency bound."""

    async def unsubscribe(host: str, port: int, path: str, sid: str, timeout: float) -> None:
        await limiter.acquire()
        try:
            url = f"http://{host}:{port}{path}"
            try:
                await gena.gena_request(http, reactor, "UNSUBSCRIBE", url, {"SID": sid}, timeout)
            except gena.GenaTimeout:
                raise SlowAnswer.unsubscribe(timeout) from None
        finally:
            limiter.release()

    def start(host: str, port: int, path: str, sid: str, timeout: float) -> Deferred[None]:
        return Deferred.fromCoroutine(unsubscribe(host, port, path, sid, timeout))

    return start


@attrs.frozen
class Superseded:
    """A SID a new subscription replaced, to be UNSUBSCRIBEd when the speaker answers.

    @ivar expires: When the speaker forgets it by itself (then nothing is sent).
    """

    sid: str
    path: str
    expires: float


#: Superseded SIDs kept per service of a speaker (older ones expire at the speaker by themselves).
SUPERSEDED_PER_SERVICE = 2

#: Seconds before superseded SIDs are looked at again while a SUBSCRIBE is in flight.
FLUSH_RETRY = 0.5


def _resolve(resolve: Callable[[str], str], host: str) -> str:
    return host if is_address(host) else resolve(host)


class SpeakerSupervisor(Service):
    """One speaker: its identity, availability, reboots, address, and its service supervisors.

    @param device: The configured host (and optional expected room name), or the address the
        topology gave for a member of a followed household.
    @param ctx: What all supervisors share.
    @param on_identified: Called once the speaker's uid is known; returns ``False`` when
        another supervisor already has that uid (this one then stops).
    @param member: What the topology says of a speaker learnt from it (its uid, room and
        household are then known before it is identified; ``None`` for a configured one).
    """

    def __init__(
        self,
        device: Device,
        ctx: SupervisorContext,
        on_identified: Callable[[SpeakerSupervisor], bool] | None = None,
        *,
        member: SpeakerRef | None = None,
    ) -> None:
        self.config_device = device
        self.ctx = ctx
        self._on_identified = on_identified
        #: Listed under ``devices`` (or found by SSDP): never dropped as the topology changes.
        self.configured = member is None
        #: Found by SSDP, not configured (a reload keeps it).
        self.discovered = False
        self.device: Any = None
        # Known before identification for a member learnt from the topology.
        self.ref: SpeakerRef | None = member
        self.identified = False
        self.household_id: str | None = None if member is None else member.household
        self.boot_seq: int | None = None
        # ``(uid, BootSeq)`` of an SSDP sighting at this host before it was identified.
        self._sighted: tuple[str, int] | None = None
        #: ``online``, ``offline``, ``asleep``, ``upnp_disabled`` or ``unknown`` (see the
        #: module docstring), with ``reason``.
        self.availability = UNKNOWN
        self.reason: str | None = None
        self.last_activity = 0.0
        self.services: dict[str, ServiceSupervisor] = {
            service: ServiceSupervisor(self, service) for service in ctx.services
        }
        self._gen = 0
        self._failures = 0
        self._operation: Deferred[Any] | None = None
        self._probing: Deferred[Any] | None = None
        self._resolving: Deferred[None] | None = None
        self._timer: IDelayedCall | None = None
        self._absorb_boot_seq_until = 0.0
        self._superseded: list[Superseded] = []
        #: Counts the times the speaker forgot its SIDs (a reboot): a SID from before one is
        #: never sent again (a new subscription, maybe another controller's, may hold it).
        self._forgot_sids = 0
        self._flush: IDelayedCall | None = None
        self._unsubscribing: set[Deferred[Any]] = set()
        self._unsubscribe_bound: float | None = None
        self._replaced_failed: list[str] = []
        self._cut: IDelayedCall | None = None
        #: The clock time by which a stop of the whole household wants this speaker stopped
        #: (set by ``HouseholdSupervisor.stopService``); ``None``: ``shutdown_timeout`` from
        #: this speaker's own stop.
        self.stop_by: float | None = None
        self.stopping = False
        self._said: str | None = None
        self._consistency: LoopingCall | None = None
        #: Whether the consistency check was asked for (the speaker was identified).
        self._checks_asked = False
        self._checking: Deferred[Any] | None = None
        self.checks = 0

    @property
    def label(self) -> str:
        """How log lines name this speaker: its room (and uid) once known, else its host."""
        if self.ref is None:
            return self.config_device.host
        return f"{self.ref.name} ({self.ref.uid})"

    @property
    def uid(self) -> str | None:
        """The speaker's uid, once known."""
        return None if self.ref is None else self.ref.uid

    @property
    def online(self) -> bool | None:
        """``True`` online, ``None`` not decided, ``False`` anything else."""
        return None if self.availability == UNKNOWN else self.availability == ONLINE

    @property
    def offline_reason(self) -> str | None:
        """Why the speaker is not online (``None`` when it is)."""
        return None if self.availability == ONLINE else self.reason

    def status(self, *, callback: bool = False) -> dict[str, Any]:
        """A plain snapshot of the speaker and each of its subscriptions (``ServiceSupervisor
        .status``), the one source of diagnostics, readiness, health, metrics and systemd's
        status.

        ``availability`` is ``online``, ``offline``, ``asleep``, ``upnp_disabled`` or
        ``unknown`` (with ``reason``), as the state, the API and the messages have it.

        @param callback: Include the callback URL given to the speaker (``callback_url``
            looks up a route: only the diagnostics ask for it).
        """
        host = self.config_device.host if self.ref is None else self.ref.host
        status: dict[str, Any] = {
            "host": host,
            "configured_host": self.config_device.host,
            "uid": self.uid,
            "name": None if self.ref is None else self.ref.name,
            "household": self.household_id,
            "configured": self.configured,
            "identified": self.identified,
            "availability": self.availability,
            "online": self.online,
            "reason": self.reason,
            "boot_seq": self.boot_seq,
            "failures": self._failures,
            "last_activity_age": (
                round(self.ctx.clock.seconds() - self.last_activity, 3)
                if self.last_activity
                else None
            ),
            "superseded_sids": len(self._superseded),
            "services": {name: sup.status() for name, sup in self.services.items()},
        }
        if callback:
            status["callback_url"] = self.ctx.callback_url(host)
        return status

    @property
    def evented(self) -> bool:
        """Online, and every service subscribed with NOTIFYs arriving."""
        return bool(self.online) and all(sup.evented for sup in self.services.values())

    def set_services(self, services: Iterable[str]) -> None:
        """Follow exactly ``services`` from now on: subscribe the new ones (when online),
        UNSUBSCRIBE the ones no longer wanted (a configuration reload)."""
        wanted = tuple(services)
        for name in [name for name in self.services if name not in wanted]:
            sup = self.services.pop(name)
            sup.stop(self.ctx.config.shutdown_timeout)
        for name in wanted:
            if name not in self.services:
                sup = ServiceSupervisor(self, name)
                self.services[name] = sup
                if self.running and self.online:
                    sup.start()
        self.services = {name: self.services[name] for name in wanted}
        if "AVTransport" not in wanted and self.ctx.position is not None and self.ref is not None:
            # No transport followed: no track position read either.
            self.ctx.position.forget(self.ref.uid)
        if self.running and self._checks_asked:
            # A service the consistency check compares may have come.
            self._start_checks()

    # Service lifecycle.

    def startService(self) -> None:
        """Identify the speaker, then subscribe every service.

        A member learnt as vanished (asleep, powered off) is not contacted until there is a
        sign of it (the topology lists it again, or its slow check answers)."""
        super().startService()
        if self.availability in (ASLEEP, OFFLINE) and self.ref is not None:
            self._schedule_check()
            return
        self._begin_identify()

    def stopService(self) -> Deferred[None]:
        """Stop every timer and UNSUBSCRIBE every service concurrently, within the bound."""
        super().stopService()
        self._gen += 1
        self._cancel_timer()
        for call in (self._flush,):
            if call is not None and call.active():
                call.cancel()
        self._flush = None
        if self._consistency is not None and self._consistency.running:
            self._consistency.stop()
        self._consistency = None
        for operation in (self._operation, self._probing, self._checking):
            if operation is not None:
                operation.cancel()
        self._operation = self._probing = self._checking = None
        if self.ctx.position is not None and self.ref is not None:
            self.ctx.position.forget(self.ref.uid)
        # The bound runs from the household's stop when it is one (its speakers are stopped
        # one after another: a stop slow to run, the process starved of CPU, must not push
        # the later speakers' cuts past the household's own bound); lines name the bound.
        bound = self.ctx.config.shutdown_timeout
        deadline, self.stop_by = self.stop_by, None
        timeout = bound if deadline is None else max(0.0, deadline - self.ctx.clock.seconds())
        self.stopping = True
        self._unsubscribe_bound = bound
        self._replaced_failed = []
        stops = [sup.stop(timeout, bound) for sup in self.services.values()]
        if self._unsubscribing:
            # UNSUBSCRIBEs of replaced SIDs still in flight get the same bound as the rest.
            stops.extend(self._unsubscribing)
            self._cut = self.ctx.clock.callLater(timeout, self._cut_replaced)
        done = DeferredList(stops, consumeErrors=True)
        return done.addCallback(lambda _: self._unsubscribed())

    def _cut_replaced(self) -> None:
        self._cut = None
        for sending in list(self._unsubscribing):
            sending.cancel()

    def _unsubscribed(self) -> None:
        """Everything is UNSUBSCRIBEd, or given up: one line says what could not be, and why."""
        self.stopping = False
        if self._cut is not None and self._cut.active():
            self._cut.cancel()
        self._cut = None
        failed = {
            name: sup.unsubscribe_error
            for name, sup in self.services.items()
            if sup.unsubscribe_error is not None
        }
        replaced, self._replaced_failed = self._replaced_failed, []
        what = [f"{len(failed)} service(s)"] if failed else []
        if replaced:
            what.append(f"{len(replaced)} replaced SID(s)")
        if what:
            log.info(
                "could not unsubscribe {what} of {speaker}: {reasons}",
                what=" and ".join(what),
                count=len(failed),
                replaced=len(replaced),
                speaker=self.label,
                reasons=", ".join(sorted({*failed.values(), *replaced})),
            )

    # Identification.

    def _begin_identify(self) -> None:
        self._cancel_timer()
        if self._operation is not None:
            return
        self._gen += 1
        running = Deferred.fromCoroutine(self._identify(self._gen))
        if not running.called:
            self._operation = running

    async def _identify(self, gen: int) -> None:
        host = self.config_device.host
        try:
            address, description = await self._describe_at(host)
        except Exception:
            if gen == self._gen:
                self._operation = None
                self._not_identified(Failure())
            return
        if gen != self._gen:
            return
        self._operation = None
        expected = None if self.configured or self.ref is None else self.ref.uid
        if expected is not None and description.uid != expected:
            log.error(
                "{host} is {other}, not {speaker} as the topology says: not following it there",
                host=host,
                other=description.uid,
                speaker=self.label,
            )
            self._schedule_check()
            return
        self._failures = 0
        self._said = None
        self.identified = True
        if self.boot_seq is None and self._sighted is not None:
            uid, boot_seq = self._sighted
            if uid == description.uid:
                # The BootSeq SSDP showed before the speaker was identified is its known one.
                self.boot_seq = boot_seq
        self._sighted = None
        # A speaker that refuses SOAP over HTTP (it wants HTTPS) gives no household id: the
        # topology that named it did.
        description = attrs.evolve(
            description, household_id=description.household_id or self.household_id
        )
        self.household_id = description.household_id
        self.device = self._soco(address, description)
        self.ref = SpeakerRef(
            uid=description.uid,
            name=description.name,
            host=address,
            port=SONOS_PORT,
            household=description.household_id,
        )
        expected_name = self.config_device.name
        if expected_name is not None and expected_name != description.name:
            log.warn(
                "speaker {host} is named {actual!r}, not {expected!r} as configured",
                host=host,
                actual=description.name,
                expected=expected_name,
            )
        if self._on_identified is not None and not self._on_identified(self):
            return
        log.info(
            "speaker {name} is {uid} at {address} (household {household})",
            name=description.name,
            uid=description.uid,
            address=address,
            household=description.household_id,
        )
        self._start_checks()
        self._go_online("identified")

    def _soco(self, address: str, description: Description) -> SpeakerHandle:
        """The speaker's handle: its SoCo object is built when first needed, told the uid and
        household id, so that SoCo never reads them itself (through GetZoneGroupState, which
        large households refuse)."""
        return SpeakerHandle(
            address, description.uid, description.household_id, self.ctx.soco_factory
        )

    def _not_identified(self, failure: Failure) -> None:
        """Identification failed: a member the topology named shows it in its status; a
        configured host is reported once per reason. Either is tried again later."""
        if failure.check(UpnpDisabled) and self.ref is not None:
            self._go_upnp_disabled()
            return
        if failure.check(UpnpDisabled):
            # A configured host with UPnP off: its status says so (no uid: not in the state).
            self.availability = UPNP_DISABLED
            reason = "UPnP switched off"
        elif failure.check(ProbeError):
            reason = failure.getErrorMessage()
        else:
            reason = describe_failure(failure)[1]
        self._failures += 1
        if self.ref is not None:
            if self.availability in (UNKNOWN, ONLINE, OFFLINE):
                self._set_status(OFFLINE, reason)
        else:
            self.reason = UPNP_HELP if reason == "UPnP switched off" else reason
            if self.availability == UPNP_DISABLED and reason != "UPnP switched off":
                self.availability = UNKNOWN
            if self._said != reason:
                self._said = reason
                log.warn(
                    "cannot identify speaker {host}: {reason}; trying again until it answers",
                    host=self.config_device.host,
                    reason=self.reason,
                )
        self._schedule_check()

    # Availability.

    def saw_activity(self) -> None:
        """Note that the speaker answered or sent something just now."""
        self.last_activity = self.ctx.clock.seconds()

    def check_now(self, why: str) -> None:
        """Ping the speaker now, unless a ping is already under way or it is not known."""
        if self._probing is not None or self.ref is None or not self.running:
            return
        if not self.identified:
            if self._operation is None and self.config_device.host:
                self._begin_identify()
            return
        self._cancel_timer()
        log.debug("pinging {speaker}: {why}", speaker=self.label, why=why)
        running = Deferred.fromCoroutine(self._ping(self._gen))
        if not running.called:
            self._probing = running

    async def _ping(self, gen: int) -> None:
        assert self.ref is not None
        config = self.ctx.config
        try:
            await self.ctx.ping(self.ref.host, self.ref.port, config.ping_timeout).addTimeout(
                config.ping_timeout + 1.0, self.ctx.clock
            )
        except UpnpDisabled:
            if gen == self._gen:
                self._probing = None
                self._go_upnp_disabled()
            return
        except ProbeError:
            pass  # It answered, if strangely: it is there.
        except Exception:
            if gen != self._gen:
                return
            self._probing = None
            self._ping_failed(describe_failure(Failure())[1])
            return
        if gen != self._gen:
            return
        self._probing = None
        self.saw_activity()
        if self.availability != ONLINE:
            self._go_online("answering again")
        else:
            self._schedule_check()

    def _ping_failed(self, reason: str) -> None:
        self._resolve_again()
        if self.availability in (ONLINE, UNKNOWN):
            self._go_offline(reason)
            return
        if self.availability == OFFLINE:
            # Still offline, maybe for another reason: recorded, no new message or log line.
            self._set_status(OFFLINE, reason)
        self._schedule_check()

    def _resolve_again(self) -> None:
        """A speaker listed by host name that stops answering may have moved (a new DHCP
        lease, the name updated): resolve its name again, and look for it at the address the
        name now gives (the topology and SSDP cannot say where a speaker that lost its
        subscriptions went when no other speaker of its household is followed)."""
        host = self.config_device.host
        if not self.configured or not host or is_address(host) or self._resolving is not None:
            return
        running = Deferred.fromCoroutine(self._resolve_name(host, self._gen))
        if not running.called:
            self._resolving = running

    async def _resolve_name(self, host: str, gen: int) -> None:
        timeout = self.ctx.config.request_timeout
        try:
            address: str = await self._run(
                _resolve, self.ctx.resolve, host, key=host, timeout=timeout
            )
        except Exception:
            log.debug(
                "{host} does not resolve: {reason}",
                host=host,
                reason=describe_failure(Failure())[1],
            )
            return
        finally:
            self._resolving = None
        if gen == self._gen and self.ref is not None and address != self.ref.host:
            self.observe_address(address, f"{host} resolved again")

    def _schedule_check(self) -> None:
        """Arm the one availability timer for what the status calls for: the silence check
        while online, a ping every ``availability_interval`` while offline, the slow check
        while asleep or with UPnP off, identification retries before the speaker is known."""
        self._cancel_timer()
        if not self.running:
            return
        config = self.ctx.config
        clock = self.ctx.clock
        if not self.identified:
            if not self.config_device.host:
                return  # Nothing to contact (an asleep member): the topology will say.
            if self.availability in (ASLEEP, UPNP_DISABLED) or self._said == "UPnP switched off":
                delay = config.asleep_interval
            elif self.ref is not None:
                delay = config.availability_interval
            else:
                # A configured host that never answered: back off, up to the slow interval.
                delay = min(
                    backoff_delay(
                        self._failures,
                        config.backoff_initial,
                        config.backoff_max,
                        self.ctx.random,
                    ),
                    config.asleep_interval,
                )
            self._timer = clock.callLater(delay, self._begin_identify)
            return
        if self.availability == ONLINE:
            due = self.last_activity + config.silence_timeout - clock.seconds()
            self._timer = clock.callLater(max(0.0, due), self._silence_due)
        elif self.availability in (ASLEEP, UPNP_DISABLED):
            self._timer = clock.callLater(config.asleep_interval, self.check_now, "slow check")
        else:
            self._timer = clock.callLater(
                config.availability_interval, self.check_now, "offline check"
            )

    def _silence_due(self) -> None:
        self._timer = None
        silent = self.ctx.clock.seconds() - self.last_activity
        if silent >= self.ctx.config.silence_timeout:
            self.check_now(f"silent for {silent:.0f} s")
        else:
            self._schedule_check()

    def _set_status(self, status: str, reason: str | None) -> bool:
        """Record the status in the state (publishing the message if it changed) and log one
        line when it changed."""
        changed = status != self.availability
        self.availability, self.reason = status, reason
        if changed:
            self.ctx.status_changed()
        if self.ref is not None:
            self.ctx.processor.speaker_availability(self.ref, status, reason)
        if changed:
            emit = log.info if status in (ONLINE, ASLEEP) else log.warn
            emit(
                "speaker {speaker} is {status} ({reason})",
                speaker=self.label,
                status=status.replace("_", " "),
                reason=reason,
            )
        return changed

    def _go_offline(self, reason: str) -> None:
        self._failures = 1
        self._set_status(OFFLINE, reason)
        self._suspend(f"speaker offline: {reason}")
        self._schedule_check()

    def _go_asleep(self, reason: str) -> None:
        if self.availability == ASLEEP:
            return
        self._set_status(ASLEEP, reason)
        self._suspend(f"speaker asleep: {reason}")
        self._schedule_check()

    def _go_upnp_disabled(self) -> None:
        if self.availability == UPNP_DISABLED:
            self._schedule_check()
            return
        self._set_status(UPNP_DISABLED, UPNP_HELP)
        self._suspend("UPnP switched off")
        self._schedule_check()

    def _go_online(self, reason: str) -> None:
        assert self.ref is not None
        was = self.availability
        self._failures = 0
        self.saw_activity()
        self._set_status(ONLINE, reason)
        if was != UNKNOWN:
            # Every subscription is made afresh: a BootSeq increase the topology shows next
            # is the reboot that took the speaker away.
            self._absorb_boot_seq_until = self.ctx.clock.seconds() + REBOOT_MERGE_WINDOW
        for sup in self.services.values():
            sup.start()
        self._schedule_flush()
        self._schedule_check()

    def _suspend(self, reason: str) -> None:
        for sup in self.services.values():
            sup.suspend(reason)
        if self.ctx.position is not None and self.ref is not None:
            self.ctx.position.forget(self.ref.uid)

    def transport_changed(self, variables: Mapping[str, Any]) -> None:
        """An AVTransport event or read: the position tracker reads the position if the
        speaker coordinates a group and the transport state or track changed."""
        if self.ctx.position is not None and self.ref is not None:
            self.ctx.position.transport_event(self.ref, variables)

    def transport_commanded(self) -> None:
        """A transport command (a seek...) went to this speaker: read its position again."""
        if (
            self.ctx.position is not None
            and self.ref is not None
            and self.availability == ONLINE
            and "AVTransport" in self.services
        ):
            self.ctx.position.refresh(self.ref)

    def sign_of_life(self, source: str) -> None:
        """Something (discovery, the topology) shows the speaker is up: re-check it if it
        is not online."""
        if self.availability != ONLINE:
            self.check_now(source)

    def command_failed(self, reason: str) -> None:
        """A command to the speaker did not get through (a timeout, a refused or lost
        connection, a 403: UPnP off): check it now rather than at the next silence check."""
        if self.availability == ONLINE:
            self.check_now(f"a command failed: {reason}")

    # The topology's view of the speaker.

    def observe_member(self, member: Member) -> None:
        """The topology lists the speaker in a group: follow its BootSeq and address, and
        check it at once if it was asleep or offline (it is back)."""
        if member.boot_seq is not None:
            self.observe_boot_seq(member.boot_seq, "topology")
        if member.host is not None:
            self.observe_address(member.host, "topology")
        if self.availability in (ASLEEP, OFFLINE):
            self.check_now("listed in the topology again")

    def observe_vanished(self, device: VanishedDevice) -> None:
        """The topology lists the speaker under ``VanishedDevices``: asleep (a portable
        sleeping or switched to Bluetooth: a slow check only, no error) or offline."""
        reason = device.reason or "vanished"
        if reason in ASLEEP_REASONS:
            self._go_asleep(reason)
        elif self.availability != OFFLINE:
            self._go_offline(reason)

    # The consistency check: a lost last NOTIFY.

    def _start_checks(self) -> None:
        """Run the consistency check every ``check_interval`` (unless 0, or no service has
        values to compare)."""
        self._checks_asked = True
        if self._consistency is not None or self.ctx.config.check_interval <= 0:
            return
        if not any(service in CHECKS for service in self.services):
            return
        self._consistency = LoopingCall(self.check_consistency)
        self._consistency.clock = self.ctx.clock
        self._consistency.start(self.ctx.config.check_interval, now=False)

    def checks_changed(self) -> None:
        """``check_interval`` changed (a reload): the consistency check runs every new
        interval from now on, or no more once it is 0."""
        if self._consistency is not None and self._consistency.running:
            self._consistency.stop()
        self._consistency = None
        if self.running and self._checks_asked:
            self._start_checks()

    def check_consistency(self) -> None:
        """Compare a cheap read of the speaker (volume, mute, transport state) with the state
        kept from its events, unless a check is under way or the speaker is offline.

        A NOTIFY lost in the middle of others shows as a SEQ gap at the next one; the last one
        before a quiet spell shows nowhere. A difference that is still there after
        ``CONFIRM_DELAY`` (a NOTIFY in flight has arrived by then), with no event of that
        service in between, is such a loss: ``events.gap`` and a resync.
        """
        if self._checking is not None or not self.online or self.ref is None:
            return
        running = Deferred.fromCoroutine(self._check(self._gen))
        if not running.called:
            self._checking = running

    async def _check(self, gen: int) -> None:
        try:
            since = {name: sup.events for name, sup in self.services.items()}
            found = await self._differences(gen, since)
            if found and gen == self._gen:
                await deferLater(self.ctx.clock, CONFIRM_DELAY)
                confirmed = await self._differences(gen, since, found)
                for service, reasons in confirmed.items():
                    self.services[service].found_gap("; ".join(reasons))
        except Exception:
            if gen == self._gen:
                log.debug(
                    "consistency check of {speaker} failed: {reason}",
                    speaker=self.label,
                    reason=describe_failure(Failure())[1],
                )
        finally:
            if gen == self._gen:
                self._checking = None
                self.checks += 1

    async def _differences(
        self, gen: int, since: Mapping[str, int], only: Mapping[str, list[str]] | None = None
    ) -> dict[str, list[str]]:
        """``{service: differences}`` between a read and the state, for the services whose
        state comes from events and that got no event since the check began (``since``: the
        services' event counts then)."""
        services = [
            name
            for name, sup in self.services.items()
            if name in CHECKS and sup.checkable and (only is None or name in only)
        ]
        if not services or self.ref is None:
            return {}
        read: Mapping[str, Mapping[str, Any]] = await self.ctx.reader.check(
            self.ref, services
        ).addTimeout(self.ctx.read_timeout, self.ctx.clock)
        if gen != self._gen or self.ref is None:
            return {}
        self.saw_activity()
        found = {}
        for name, variables in read.items():
            sup = self.services[name]
            if sup.events != since[name] or not sup.checkable:
                continue  # An event arrived meanwhile: the comparison proves nothing.
            reasons = self.ctx.processor.differences(self.ref, name, variables)
            if reasons:
                found[name] = reasons
        return found

    # Reboots and address changes.

    def rebooted(self, reason: str) -> None:
        """The speaker rebooted (it forgot its SIDs): replace every subscription at once."""
        if self.ref is None or not self.running or not self.identified:
            return
        if self.availability != ONLINE:
            self.sign_of_life(reason)
            return
        if reason.startswith("412"):
            self._absorb_boot_seq_until = self.ctx.clock.seconds() + REBOOT_MERGE_WINDOW
        log.info(
            "speaker {speaker} rebooted ({reason}): resubscribing every service",
            speaker=self.label,
            reason=reason,
        )
        # What it held before the reboot, it forgot.
        self._superseded.clear()
        self._forgot_sids += 1
        for sup in self.services.values():
            sup.start(reason="reboot")

    def sighted_as(self, uid: str, boot_seq: int | None) -> None:
        """SSDP saw ``uid`` with ``boot_seq`` at this speaker's host before it is identified:
        once identification shows it is that uid, that BootSeq is the one known (so that a
        higher one later is a reboot, with no topology to give it)."""
        if boot_seq is not None and not self.identified:
            self._sighted = (uid, boot_seq)

    def observe_boot_seq(self, boot_seq: int, source: str) -> None:
        """Take the speaker's BootSeq from the topology or SSDP; an increase is a reboot."""
        known, self.boot_seq = self.boot_seq, boot_seq
        if known is None or boot_seq <= known:
            return
        if self.ctx.clock.seconds() < self._absorb_boot_seq_until:
            # Most likely already handled: a renewal got 412, or the speaker came back online
            # and was subscribed afresh, just before the topology told us. But the window is
            # long, and a reboot after those fresh subscriptions (an outage, then a reboot a
            # few seconds later) left them dead with no NOTIFY to say so: one renewal now
            # tells (412 from a speaker that forgot it, and every service is resubscribed; any
            # other failure cannot tell, and is taken as that reboot too).
            self._absorb_boot_seq_until = 0.0
            self._superseded.clear()
            self._forgot_sids += 1
            for sup in self.services.values():
                if sup.renew_now(probe=True):
                    break
            return
        self.rebooted(f"BootSeq {known} -> {boot_seq} ({source})")

    def observe_address(self, address: str, source: str) -> None:
        """Take the speaker's address from the topology or SSDP; follow it when it changes."""
        if self.ref is None or not self.running or address == self.ref.host:
            return
        if not self.identified:
            # Learnt from the topology and not reached yet: try the new address.
            self.config_device = Device(host=address, name=self.config_device.name)
            self.ref = attrs.evolve(self.ref, host=address)
            return
        if self._operation is not None:
            return
        log.info(
            "speaker {speaker} moved from {old} to {new} ({source})",
            speaker=self.label,
            old=self.ref.host,
            new=address,
            source=source,
        )
        running = Deferred.fromCoroutine(self._move(address, self._gen))
        if not running.called:
            self._operation = running

    async def _move(self, address: str, gen: int) -> None:
        assert self.ref is not None
        try:
            address, description = await self._describe_at(address)
        except Exception:
            if gen == self._gen:
                self._operation = None
                log.warn(
                    "speaker {speaker} does not answer at its new address {address}: {reason}",
                    speaker=self.label,
                    address=address,
                    reason=describe_failure(Failure())[1],
                )
            return
        if gen != self._gen:
            return
        self._operation = None
        if description.uid != self.ref.uid:
            log.error(
                "{address} is {other}, not {speaker}: not following",
                address=address,
                other=description.uid,
                speaker=self.label,
            )
            return
        description = attrs.evolve(
            description, household_id=description.household_id or self.household_id
        )
        self.device = self._soco(address, description)
        self.ref = SpeakerRef(
            uid=self.ref.uid,
            name=description.name,
            host=address,
            port=SONOS_PORT,
            household=description.household_id,
        )
        if self.availability != ONLINE:
            self.check_now("address changed")
            return
        for sup in self.services.values():
            sup.start(reason="address changed")
        # The old SIDs live on at the new address: the speaker keeps sending to them.
        self._schedule_flush()

    # Replaced subscriptions.

    def supersede(self, subscription: GenaSubscription) -> None:
        """Remember a SID a new subscription replaces, to UNSUBSCRIBE it as soon as the speaker
        answers (once it is answered; one the speaker could not be reached for is kept for its
        next return): until then, or until it expires, the speaker keeps sending NOTIFYs to it
        (the listener answers them 412, quietly)."""
        sid = subscription.sid
        path = getattr(subscription, "event_path", None)
        if not sid or not isinstance(path, str):
            return
        now = self.ctx.clock.seconds()
        if subscription.is_subscribed:
            left = getattr(subscription, "time_left", 0)
            expires = now + (left if isinstance(left, int | float) and left < 1e9 else 86400.0)
        else:
            # Ended here without the speaker knowing (a renewal that could not reach it): it
            # holds the SID until its expiry.
            ended = getattr(subscription, "expires", None)
            if not isinstance(ended, int | float) or ended <= now:
                return
            expires = min(ended, now + 86400.0)
        self._superseded.append(Superseded(sid, path, expires))
        same = [entry for entry in self._superseded if entry.path == path]
        for oldest in same[:-SUPERSEDED_PER_SERVICE]:
            self._superseded.remove(oldest)
        if self.availability == ONLINE:
            self._schedule_flush()

    def _schedule_flush(self, delay: float = 0.0) -> None:
        if self._superseded and self._flush is None and self.running:
            self._flush = self.ctx.clock.callLater(delay, self._flush_superseded)

    def _flush_superseded(self) -> None:
        self._flush = None
        if self.ref is None or self.availability != ONLINE:
            return
        # A speaker that rebooted numbers its SIDs from 1 again: an old SID may now be a new
        # subscription's. UNSUBSCRIBE only once no SUBSCRIBE is in flight, and never a SID a
        # current subscription holds.
        if any(sup.state is ServiceState.SUBSCRIBING for sup in self.services.values()):
            self._schedule_flush(FLUSH_RETRY)
            return
        held = {
            sup.subscription.sid
            for sup in self.services.values()
            if sup.subscription is not None and sup.subscription.sid
        }
        now = self.ctx.clock.seconds()
        superseded, self._superseded = self._superseded, []
        for entry in superseded:
            if entry.expires <= now or entry.sid in held:
                continue
            sending = self.ctx.unsubscribe(
                self.ref.host, self.ref.port, entry.path, entry.sid, self.ctx.config.request_timeout
            )
            self._unsubscribing.add(sending)
            sending.addErrback(self._unsubscribe_failed, entry, self._forgot_sids)
            sending.addBoth(self._superseded_sent, sending)

    def _unsubscribe_failed(self, failure: Failure, entry: Superseded, forgot: int) -> None:
        bound = self._unsubscribe_bound
        kind, reason = describe_failure(failure)
        if failure.check(CancelledError) and self.stopping and bound is not None:
            # Cut by the stop's bound (``_cut_replaced``).
            reason = str(SlowAnswer.unsubscribe(bound))
        log.debug(
            "UNSUBSCRIBE of replaced {sid} at {speaker}: {reason}",
            sid=entry.sid,
            speaker=self.label,
            reason=reason,
        )
        if self.stopping:
            self._replaced_failed.append(reason)
        elif (
            kind is FailureKind.UNREACHABLE
            and forgot == self._forgot_sids
            and entry.expires > self.ctx.clock.seconds()
        ):
            # The speaker did not get it (it was going away as the SID was replaced): it is
            # sent again when the speaker answers again (``_go_online`` flushes), else the
            # speaker would keep sending NOTIFYs to it until it expires.
            self._superseded.insert(0, entry)

    def _superseded_sent(self, result: object, sending: Deferred[Any]) -> None:
        self._unsubscribing.discard(sending)

    # Helpers.

    def _run(self, fn: Callable[..., Any], *args: Any, key: str, timeout: float) -> Deferred[Any]:
        """``fn(*args)`` in the thread pool; fails after ``timeout`` (and a second's slack)."""
        running = self.ctx.runner.run(fn, *args, key=key, timeout=timeout)
        return running.addTimeout(timeout + 1.0, self.ctx.clock)

    async def _describe_at(self, host: str) -> tuple[str, Description]:
        """The address of ``host`` (resolved in the thread pool when it is a name) and who
        the speaker there is."""
        timeout = self.ctx.config.request_timeout
        address: str = (
            host
            if is_address(host)
            else await self._run(_resolve, self.ctx.resolve, host, key=host, timeout=timeout)
        )
        description: Description = await self.ctx.describe(address, SONOS_PORT, timeout).addTimeout(
            timeout + 1.0, self.ctx.clock
        )
        return address, description

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()


def followable(member: Member) -> bool:
    """Whether a topology member gets a supervisor (and subscriptions) of its own: visible
    members only. Invisible ones (the hidden half of a stereo pair, a home theatre's sub and
    surrounds) are answered for by their visible member; a Boost or Bridge plays nothing."""
    return not member.invisible and not member.is_zone_bridge


class HouseholdSupervisor(MultiService):
    """Owns the speaker supervisors: add speakers, look them up, start and stop them all, and
    follow each followed household's members as its topology changes.

    @param ctx: What all supervisors share.
    @param devices: The configured speakers.
    @param follow_household: Follow every visible member of each configured speaker's
        household (``False``: the configured speakers only).
    """

    def __init__(
        self,
        ctx: SupervisorContext,
        devices: Iterable[Device] = (),
        *,
        follow_household: bool = True,
        listener: Any = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.follow_household = follow_household
        self.listener = listener
        #: Counters of subscriptions no longer supervised (removed by a reload, or a speaker
        #: that left its household), so that the totals the metrics export never go down.
        self.retired: Counter[str] = Counter()
        self._by_uid: dict[str, SpeakerSupervisor] = {}
        self.discovery: Service | None = None
        self._speakers: list[SpeakerSupervisor] = []
        #: The latest topology of each household, for a reload that removes a listed speaker.
        self._topologies: dict[str | None, Topology] = {}
        for device in devices:
            self.add_device(device)

    def add_device(
        self, device: Device, *, discovered: bool = False, sighting: Sighting | None = None
    ) -> SpeakerSupervisor:
        """Supervise ``device`` (started at once if the household is running).

        @param discovered: Found by SSDP, not configured (a reload keeps it).
        @param sighting: The SSDP sighting that found it (its BootSeq is taken once the
            speaker is identified as its uid).
        """
        speaker = SpeakerSupervisor(device, self.ctx, on_identified=self._identified)
        speaker.discovered = discovered
        if sighting is not None:
            speaker.sighted_as(sighting.uid, sighting.boot_seq)
        self._add(speaker)
        return speaker

    def add_member(
        self, uid: str, name: str, host: str | None, household: str | None
    ) -> SpeakerSupervisor:
        """Supervise a member of a followed household, learnt from its topology."""
        ref = SpeakerRef(uid=uid, name=name, host=host or "", household=household)
        speaker = SpeakerSupervisor(
            Device(host=host or ""), self.ctx, on_identified=self._identified, member=ref
        )
        self._by_uid[uid] = speaker
        log.info(
            "following {name} ({uid}) of household {household}",
            name=name,
            uid=uid,
            household=household,
        )
        self._add(speaker)
        return speaker

    def _add(self, speaker: SpeakerSupervisor) -> None:
        self._speakers.append(speaker)
        speaker.setServiceParent(self)
        self.ctx.status_changed()

    def remove(self, speaker: SpeakerSupervisor, reason: str) -> Deferred[None]:
        """Stop following ``speaker`` (UNSUBSCRIBE everything) and forget it
        (``speaker.removed``)."""
        if speaker in self._speakers:
            self._speakers.remove(speaker)
            self.ctx.status_changed()
        if speaker.uid is not None and self._by_uid.get(speaker.uid) is speaker:
            del self._by_uid[speaker.uid]
        self._retire(speaker.services.values())
        log.info("no longer following {speaker}: {reason}", speaker=speaker.label, reason=reason)
        stopped: Deferred[None] = Deferred()
        result = speaker.disownServiceParent()
        if isinstance(result, Deferred):
            result.addBoth(lambda _: stopped.callback(None))
        else:
            stopped.callback(None)
        if speaker.ref is not None:
            self.ctx.processor.speaker_removed(speaker.ref, reason)
        return stopped

    def speakers(self) -> list[SpeakerSupervisor]:
        """Every speaker supervisor, in the order they were added."""
        return list(self._speakers)

    def speaker(self, uid: str) -> SpeakerSupervisor | None:
        """The supervisor of the speaker ``uid``, if it is known."""
        return self._by_uid.get(uid)

    def status(self, *, callback: bool = False) -> dict[str, Any]:
        """The household as diagnostics, readiness, metrics and systemd read it.

        ``{"speakers": [SpeakerSupervisor.status(), ...], "notify": {"accepted": n,
        "refused": {reason: n}, "held": n}, "retired": {counter: n}}`` (the shape is
        documented in docs/api.md under ``/api/v1/diagnostics``).

        @param callback: Include each speaker's callback URL.
        """
        notify: dict[str, Any] = {"accepted": 0, "refused": {}, "held": 0}
        dispatcher = getattr(self.listener, "dispatcher", None)
        if dispatcher is not None:
            notify = {
                "accepted": dispatcher.accepted,
                "refused": dict(sorted(dispatcher.rejected.items())),
                "held": dispatcher.held,
            }
        return {
            "speakers": [speaker.status(callback=callback) for speaker in self._speakers],
            "notify": notify,
            "retired": dict(self.retired),
        }

    def remove_device(self, host: str) -> SpeakerSupervisor | None:
        """Stop supervising the speaker configured as ``host`` (its subscriptions are
        UNSUBSCRIBEd); return it, or ``None`` when no speaker was configured so."""
        for speaker in self._speakers:
            if speaker.config_device.host.lower() == host.lower():
                break
        else:
            return None
        self._retire(speaker.services.values())
        self._speakers.remove(speaker)
        self.ctx.status_changed()
        if speaker.uid is not None and self._by_uid.get(speaker.uid) is speaker:
            del self._by_uid[speaker.uid]
        speaker.disownServiceParent()
        return speaker

    def reconfigure(self, ctx: SupervisorContext) -> None:
        """Use ``ctx`` from now on (a reload): new timings apply to the next timer of each
        subscription, the next position read, the consistency check and the polls under way
        (restarted at their new intervals); services added are subscribed, services removed
        UNSUBSCRIBEd."""
        old, self.ctx = self.ctx, ctx
        if ctx.position is not None:
            ctx.position.interval = ctx.config.position_interval
            ctx.position.timeout = ctx.config.request_timeout
        for speaker in self._speakers:
            speaker.ctx = ctx
            if ctx.config.check_interval != old.config.check_interval:
                speaker.checks_changed()
            if ctx.config.poll_interval != old.config.poll_interval:
                for sup in speaker.services.values():
                    sup.poll_interval_changed()
            if ctx.services != old.services:
                gone = [sup for name, sup in speaker.services.items() if name not in ctx.services]
                self._retire(gone)
                speaker.set_services(ctx.services)

    def apply(self, config: Config) -> tuple[list[str], list[str]]:
        """Follow ``config`` (a reload): its devices (and the room names expected of them),
        ``follow_household``, services and subscription timings (with ``follow_household``
        now false, the members learnt from topologies are dropped; switched on, the members of
        the households known are followed at once; with it true, a removed device still a
        member of a followed household is followed again as a member, at once).

        @return: The hosts added and the hosts removed.
        """
        known = {
            speaker.config_device.host.lower(): speaker
            for speaker in self._speakers
            if speaker.configured and not speaker.discovered
        }
        wanted = {device.host.lower(): device for device in config.devices}
        removed = [s.config_device.host for key, s in known.items() if key not in wanted]
        for key, speaker in known.items():
            if key in wanted and speaker.config_device.name != wanted[key].name:
                # The room expected of it when it is identified (a warning if another).
                speaker.config_device = attrs.evolve(speaker.config_device, name=wanted[key].name)
        for host in removed:
            self.remove_device(host)
        subscriptions = self.ctx.subscriptions
        if isinstance(subscriptions, GenaSubscriptions):
            subscriptions.request_timeout = config.subscription.request_timeout
        self.reconfigure(
            attrs.evolve(self.ctx, config=config.subscription, services=config.services)
        )
        switched_on = config.follow_household and not self.follow_household
        self.follow_household = config.follow_household
        if not self.follow_household:
            for speaker in [s for s in self._speakers if not s.configured]:
                self.remove(speaker, "follow_household is false")
        added = [device.host for key, device in wanted.items() if key not in known]
        for device in config.devices:
            if device.host in added:
                self.add_device(device)
        if (removed or switched_on) and self.follow_household and self.running:
            self._follow_members_again()
        return added, removed

    def _follow_members_again(self) -> None:
        """Follow, as members learnt from the topology, the speakers of a followed household
        that nothing supervises any more (a reload removed them from ``devices``, or switched
        ``follow_household`` on): at once, not when the household's topology next changes,
        which may be days away."""
        for household, topology in self._topologies.items():
            if not any(speaker.household_id == household for speaker in self._speakers):
                continue
            for member in topology.members():
                if member.uid not in self._by_uid and followable(member):
                    speaker = self.add_member(member.uid, member.name, member.host, household)
                    speaker.observe_member(member)
            for device in topology.vanished:
                if device.uid not in self._by_uid:
                    self._vanished_member(device, household).observe_vanished(device)

    def _retire(self, services: Iterable[ServiceSupervisor]) -> None:
        for sup in services:
            for key in RETIRED_COUNTERS:
                self.retired[key] += getattr(sup, key)

    def command_failed(self, uid: str, reason: str) -> None:
        """A command to ``uid`` failed without an answer: its availability is checked now."""
        speaker = self._by_uid.get(uid)
        if speaker is not None:
            speaker.command_failed(reason)

    def transport_commanded(self, uid: str) -> None:
        """A transport command (play, seek...) went to the coordinator ``uid``: its position
        is read again."""
        speaker = self._by_uid.get(uid)
        if speaker is not None:
            speaker.transport_commanded()

    def _identified(self, speaker: SpeakerSupervisor) -> bool:
        assert speaker.uid is not None
        other = self._by_uid.get(speaker.uid)
        if other is not None and other is not speaker:
            if not other.configured and speaker.configured:
                # The topology named it first; the configuration takes it over.
                other.configured = True
                other.config_device = speaker.config_device
            log.warn(
                "{host} is speaker {uid}, already supervised as {other}: ignoring it",
                host=speaker.config_device.host,
                uid=speaker.uid,
                other=other.config_device.host,
            )
            self._speakers.remove(speaker)
            speaker.disownServiceParent()
            return False
        self._by_uid[speaker.uid] = speaker
        return True

    def stopService(self) -> Deferred[None]:
        """Stop every speaker concurrently; fire within ``shutdown_timeout`` whatever happens."""
        done: Deferred[None] = Deferred()
        bound = self.ctx.config.shutdown_timeout + 0.5
        clock = self.ctx.clock
        timer = clock.callLater(bound, self._stop_overdue, done)
        # Every speaker's UNSUBSCRIBEs are cut shutdown_timeout after this, not after its own
        # turn to stop: before the bound above even when the turns take a while (a process
        # starved of CPU), unless they take longer than the bound itself.
        stop_by = clock.seconds() + self.ctx.config.shutdown_timeout
        for speaker in self._speakers:
            speaker.stop_by = stop_by

        def finished(_: object) -> None:
            if timer.active():
                timer.cancel()
            if not done.called:
                done.callback(None)

        children = super().stopService()
        if children is None:
            finished(None)
        else:
            children.addBoth(finished)
        return done

    def _stop_overdue(self, done: Deferred[None]) -> None:
        if not done.called:
            late = [speaker.label for speaker in self._speakers if speaker.stopping]
            log.warn(
                "{count} speaker(s) still stopping after {bound:g} s ({speakers}); stopping anyway",
                count=len(late),
                bound=self.ctx.config.shutdown_timeout + 0.5,
                speakers=", ".join(late),
            )
            done.callback(None)

    # Sources of news about speakers.

    def on_topology(self, old: Topology | None, new: Topology) -> None:
        """``HouseholdState`` topology observer: follow BootSeq, Location and vanished devices
        of every speaker, and the household's members as they join and leave."""
        household = new.household
        self._topologies[household] = new
        listed: set[str] = set()
        for member in new.members():
            listed.add(member.uid)
            speaker = self._by_uid.get(member.uid)
            if speaker is None:
                if not (self.follow_household and self.running and followable(member)):
                    continue
                speaker = self.add_member(member.uid, member.name, member.host, household)
            if not followable(member) and not speaker.configured and self.follow_household:
                self.remove(speaker, f"now an invisible member of {member.name}")
                continue
            speaker.observe_member(member)
        for device in new.vanished:
            listed.add(device.uid)
            speaker = self._by_uid.get(device.uid)
            if speaker is None and self.follow_household and self.running:
                speaker = self._vanished_member(device, household)
            if speaker is not None:
                speaker.observe_vanished(device)
        if not self.follow_household or old is None:
            return
        for speaker in list(self._speakers):
            uid = speaker.uid
            if (
                uid is not None
                and uid not in listed
                and not speaker.configured
                and speaker.household_id == household
                and (old.member(uid) is not None or old.vanished_device(uid) is not None)
            ):
                self.remove(speaker, f"left household {household}")

    def _vanished_member(self, device: VanishedDevice, household: str | None) -> SpeakerSupervisor:
        """A member the household lists as vanished when the daemon learns of it: followed,
        in the state as asleep or offline, contacted when it shows up again."""
        ref = SpeakerRef(
            uid=device.uid, name=device.name, host=device.host or "", household=household
        )
        speaker = SpeakerSupervisor(
            Device(host=device.host or ""), self.ctx, on_identified=self._identified, member=ref
        )
        reason = device.reason or "vanished"
        speaker.availability = ASLEEP if reason in ASLEEP_REASONS else OFFLINE
        speaker.reason = reason
        self._by_uid[device.uid] = speaker
        self.ctx.processor.speaker_availability(ref, speaker.availability, reason)
        self._add(speaker)
        return speaker

    def on_sighting(self, sighting: Sighting) -> None:
        """A speaker was seen (SSDP): add it if new; else follow its BootSeq and address."""
        speaker = self._by_uid.get(sighting.uid)
        if speaker is None:
            there = [
                s
                for s in self._speakers
                if s.config_device.host == sighting.host
                or (s.ref is not None and s.ref.host == sighting.host)
            ]
            for being_identified in there:
                being_identified.sighted_as(sighting.uid, sighting.boot_seq)
            if not there:
                log.info("discovered speaker {uid} at {host}", uid=sighting.uid, host=sighting.host)
                self.add_device(Device(host=sighting.host), discovered=True, sighting=sighting)
            return
        if sighting.boot_seq is not None:
            speaker.observe_boot_seq(sighting.boot_seq, sighting.source)
        speaker.observe_address(sighting.host, sighting.source)
        speaker.sign_of_life(sighting.source)

    def on_byebye(self, uid: str, reason: str | None) -> None:
        """A speaker announced it is leaving (SSDP ``ssdp:byebye``): asleep at once when its
        ``X-RINCON-REASON`` says it goes to sleep (or to Bluetooth), else checked at once."""
        speaker = self._by_uid.get(uid)
        if speaker is None:
            return
        if reason in ASLEEP_REASONS:
            speaker.observe_vanished(VanishedDevice(uid=uid, name="", reason=reason))
            return
        speaker.check_now(f"ssdp:byebye ({reason or 'no reason'})")


def build_household(
    reactor: Any,
    config: Config,
    *,
    runner: Runner,
    processor: Processor,
    reader: Reader,
    listener: Any,
    state: Any,
    soap: SoapCaller | None = None,
    status_changed: Callable[[], None] = lambda: None,
) -> HouseholdSupervisor:
    """The daemon's supervisor, wired: configured devices, topology observer, discovery.

    @param soap: Sends the position reads (default: a ``SoapClient`` of its own with the
        configuration's ``soco.call_timeout``, a child service of the household).
    @param listener: The running ``NotifyListener`` (its ``callback_url`` goes in the log line
        that explains the polling fallback).
    @param state: The ``HouseholdState``; the supervisor follows its topology (BootSeq,
        Location, vanished devices, members).
    @param status_changed: Told when what ``status()`` counts may have changed
        (``SupervisorContext.status_changed``).
    """
    http = gena.build_http_client(reactor)
    limiter = DeferredSemaphore(GENA_CONCURRENCY)
    timeout = config.subscription.request_timeout
    feed = TopologyFeed()
    feed.install()

    def describe(host: str, port: int, seconds: float) -> Deferred[Description]:
        return Deferred.fromCoroutine(probe.describe(http, reactor, host, port, seconds))

    def ping_speaker(host: str, port: int, seconds: float) -> Deferred[int]:
        return Deferred.fromCoroutine(probe.ping(http, reactor, host, port, seconds))

    def is_coordinator(uid: str) -> bool:
        topology = state.topology
        coordinator = None if topology is None else topology.coordinator_of(uid)
        return coordinator in (None, uid)

    own: SoapClient | None = None
    if soap is None:
        soap = own = SoapClient(reactor, config.soco.call_timeout)
    position = PositionTracker(
        reactor,
        soap,
        processor,
        config.subscription.position_interval,
        timeout,
        is_coordinator,
    )
    ctx = SupervisorContext(
        clock=reactor,
        runner=runner,
        processor=processor,
        reader=reader,
        subscriptions=gena_subscriptions(
            reactor, listener, timeout, http=http, limiter=limiter, feed=feed
        ),
        config=config.subscription,
        services=config.services,
        callback_url=listener.callback_url,
        resolve=socket.gethostbyname,
        describe=describe,
        ping=ping_speaker,
        unsubscribe=gena_unsubscriber(reactor, http, limiter),
        position=position,
        status_changed=status_changed,
    )
    household = HouseholdSupervisor(
        ctx, config.devices, follow_household=config.follow_household, listener=listener
    )
    if own is not None:
        own.setServiceParent(household)
    state.add_topology_observer(household.on_topology)
    if config.discovery:
        interface = config.listener.interface
        ssdp = config.ssdp
        discovery = SsdpDiscovery(
            reactor,
            household.on_sighting,
            household.on_byebye,
            interfaces=(interface,),
            target=(SSDP_GROUP, ssdp.port),
            interval=ssdp.interval,
            notify_port=ssdp.port if ssdp.announcements else None,
        )
        discovery.setServiceParent(household)
        household.discovery = discovery
    return household


__all__ = [
    "FailureKind",
    "HouseholdSupervisor",
    "SpeakerSupervisor",
    "build_household",
    "followable",
    "gena_subscriptions",
]
