# -*- test-case-name: tests.household.test_supervisor -*-
"""Subscriptions that never die: one supervisor per speaker, one per speaker and service.

``HouseholdSupervisor`` (a ``MultiService``) owns a ``SpeakerSupervisor`` per speaker, which
owns a ``ServiceSupervisor`` per configured UPnP service. Together they

- identify each speaker in the thread pool (``SoCo(host)``; ``uid``, ``player_name`` and
  ``household_id`` read there, never in the reactor thread); the uid keys everything;
- subscribe every service (``sonosd.household.keepalive.ServiceSupervisor``), renew each
  subscription early (a jittered fraction of the granted timeout) and resubscribe with jittered
  exponential backoff after any failure (``subscription.lost`` / ``subscription.restored``);
- notice reboots (412 on renewal, a BootSeq increase in the topology or an SSDP answer) and
  replace all of the speaker's subscriptions at once;
- track availability (``speaker.online`` / ``speaker.offline`` with a reason), pinging a speaker
  that has been silent, and following a speaker whose address changes;
- poll the state when NOTIFYs never arrive (saying once, clearly, why that happens), and drop
  duplicate NOTIFYs and resync the state after a SEQ gap (``events.gap``);
- unsubscribe everything at shutdown within a bounded time.

The lifecycle and every timer are described in ``docs/supervisor.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd.backoff import backoff_delay, describe_failure
from sonosd.blocking import Runner
from sonosd.config import Config, Device
from sonosd.gena import subscription as gena
from sonosd.household.discovery import SSDP_GROUP, Sighting, SsdpDiscovery
from sonosd.household.keepalive import (
    GenaSubscription,
    Processor,
    Reader,
    ServiceSupervisor,
    SubscriptionFactory,
    SupervisorContext,
)
from sonosd.household.resync import CHECKS
from sonosd.household.state import SpeakerRef

log = Logger()

SONOS_PORT = 1400

CONFIRM_DELAY = 2.0
"""Seconds the consistency check waits before confirming a difference (a NOTIFY sent just
before the read has arrived by then)."""
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

REBOOT_MERGE_WINDOW = 60.0
"""A BootSeq increase seen this soon after a 412-triggered resubscription is the same reboot."""

_SOCO_ATTRIBUTES: Mapping[str, str] = {
    "AVTransport": "avTransport",
    "RenderingControl": "renderingControl",
    "GroupRenderingControl": "groupRenderingControl",
    "ZoneGroupTopology": "zoneGroupTopology",
    "ContentDirectory": "contentDirectory",
    "DeviceProperties": "deviceProperties",
    "AlarmClock": "alarmClock",
    "SystemProperties": "systemProperties",
    "MusicServices": "musicServices",
    "AudioIn": "audioIn",
}


def service_object(device: Any, service: str) -> Any:
    """The SoCo ``Service`` object named ``service`` on ``device`` (``Queue`` included)."""
    attribute = _SOCO_ATTRIBUTES.get(service)
    if attribute is not None:
        return getattr(device, attribute)
    from soco import services

    return getattr(services, service)(device)


GENA_CONCURRENCY = 64
"""The most GENA requests (SUBSCRIBE, renewal, UNSUBSCRIBE) the daemon has in flight at once.

Without a bound, a household of 200 speakers x 8 services opens 1,600 connections within a
second at start-up and receives 1,600 initial NOTIFYs at once; with 64 it subscribes as fast
(all 1,600 in ~3.5 s on loopback) with 35 MB less resident memory afterwards (issue #7), and
its outgoing GENA connections stay far below a default ``ulimit -n`` of 1,024."""


class GenaSubscriptions:
    """The subscription factory for the daemon: ``sonosd.gena.Subscription`` objects that
    send their requests with ``http`` (default: one client built from ``reactor``, shared by
    every subscription: a client per subscription was an agent, a connection pool and a
    cookie jar each, megabytes at 1,600 subscriptions), at most ``GENA_CONCURRENCY`` of them
    at once, and receive their NOTIFYs through ``listener`` (a running ``NotifyListener``).

    @ivar request_timeout: Seconds each request may take (a reload may change it).
    """

    def __init__(
        self, reactor: Any, listener: Any, request_timeout: float, http: Any = None
    ) -> None:
        self._reactor = reactor
        self._listener = listener
        self.request_timeout = request_timeout
        self._http = gena.build_http_client(reactor) if http is None else http
        self._limiter = DeferredSemaphore(GENA_CONCURRENCY)

    def __call__(self, device: Any, service: str) -> GenaSubscription:
        return gena.Subscription(
            service_object(device, service),
            self._listener,
            reactor=self._reactor,
            http=self._http,
            request_timeout=self.request_timeout,
            limiter=self._limiter,
        )


def gena_subscriptions(
    reactor: Any, listener: Any, request_timeout: float, http: Any = None
) -> SubscriptionFactory:
    """A ``GenaSubscriptions`` factory (see there)."""
    return GenaSubscriptions(reactor, listener, request_timeout, http)


@attrs.frozen
class Identity:
    """What identifying a speaker (in the thread pool) found out."""

    device: Any
    address: str
    uid: str
    name: str
    household_id: str
    boot_seq: int | None


def identify(
    soco_factory: Callable[[str], Any], resolve: Callable[[str], str], host: str
) -> Identity:
    """Build ``SoCo(address)`` and read its identity. Blocking: runs in the thread pool.

    Reading ``household_id`` here also spares the reactor thread SoCo's lazy blocking lookup.
    """
    address = resolve(host)
    device = soco_factory(address)
    _read_household_id(device)
    uid = device.uid
    name = device.player_name
    household_id = device.household_id
    boot_seq: int | None
    try:
        boot_seq = int(device.boot_seqnum)
    except (AttributeError, TypeError, ValueError):
        boot_seq = None
    return Identity(device, address, uid, name, household_id, boot_seq)


def _read_household_id(device: Any) -> None:
    """Read the household id for SoCo, sparing it a download of the service description.

    SoCo's ``uid`` and ``player_name`` need ``household_id``, which it reads with
    ``GetHouseholdID`` called with keyword arguments: to compose them it downloads, parses and
    keeps the DeviceProperties description of every speaker (20 KB of XML fetched and ~30 KB
    of objects kept per speaker, issue #7). The action has no arguments: called with an
    explicit empty list it needs no description, and SoCo's own cache takes the answer. A SoCo
    without that cache (another version) simply reads the id itself.
    """
    if getattr(device, "_household_id", "") is not None:
        return
    answer = device.deviceProperties.send_command("GetHouseholdID", args=[])
    device._household_id = answer["CurrentHouseholdID"]


def ping(device: Any) -> Any:
    """A cheap control call that proves the speaker answers. Blocking: runs in the thread pool."""
    return device.renderingControl.GetVolume([("InstanceID", 0), ("Channel", "Master")])


class SpeakerSupervisor(Service):
    """One speaker: its identity, availability, reboots, address, and its service supervisors.

    @param device: The configured host (and optional expected room name).
    @param ctx: What all supervisors share.
    @param on_identified: Called once the speaker's uid is known; returns ``False`` when
        another supervisor already has that uid (this one then stops).
    """

    def __init__(
        self,
        device: Device,
        ctx: SupervisorContext,
        on_identified: Callable[[SpeakerSupervisor], bool] | None = None,
    ) -> None:
        self.config_device = device
        self.ctx = ctx
        self._on_identified = on_identified
        self.discovered = False
        self.device: Any = None
        self.ref: SpeakerRef | None = None
        self.household_id: str | None = None
        self.boot_seq: int | None = None
        self.online: bool | None = None
        self.offline_reason: str | None = None
        self.last_activity = 0.0
        self.services: dict[str, ServiceSupervisor] = {
            service: ServiceSupervisor(self, service) for service in ctx.services
        }
        self._gen = 0
        self._failures = 0
        self._operation: Deferred[Any] | None = None
        self._pinging: Deferred[Any] | None = None
        self._timer: IDelayedCall | None = None
        self._availability: LoopingCall | None = None
        self._consistency: LoopingCall | None = None
        self._checking: Deferred[Any] | None = None
        self._absorb_boot_seq_until = 0.0
        self.checks = 0

    @property
    def label(self) -> str:
        """How log lines name this speaker: its room (and uid) once known, else its host."""
        if self.ref is None:
            return self.config_device.host
        return f"{self.ref.name} ({self.ref.uid})"

    @property
    def uid(self) -> str | None:
        """The speaker's uid, once identified."""
        return None if self.ref is None else self.ref.uid

    def status(self, *, callback: bool = False) -> dict[str, Any]:
        """A plain snapshot of the speaker and each of its subscriptions (``ServiceSupervisor
        .status``), the one source of diagnostics, readiness, metrics and systemd's status.

        @param callback: Include the callback URL given to the speaker (``callback_url``
            looks up a route: only the diagnostics ask for it).
        """
        host = self.config_device.host if self.ref is None else self.ref.host
        availability = {None: "unknown", True: "online", False: "offline"}[self.online]
        status: dict[str, Any] = {
            "host": host,
            "configured_host": self.config_device.host,
            "uid": self.uid,
            "name": None if self.ref is None else self.ref.name,
            "availability": availability,
            "online": self.online,
            "reason": self.offline_reason,
            "boot_seq": self.boot_seq,
            "failures": self._failures,
            "last_activity_age": (
                round(self.ctx.clock.seconds() - self.last_activity, 3)
                if self.last_activity
                else None
            ),
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

    # Service lifecycle.

    def startService(self) -> None:
        """Identify the speaker (in the thread pool), then subscribe every service."""
        super().startService()
        self._begin_identify()

    def stopService(self) -> Deferred[None]:
        """Stop every timer and UNSUBSCRIBE every service concurrently, within the bound."""
        super().stopService()
        self._gen += 1
        self._cancel_timer()
        for loop in (self._availability, self._consistency):
            if loop is not None and loop.running:
                loop.stop()
        self._availability = self._consistency = None
        for operation in (self._operation, self._pinging, self._checking):
            if operation is not None:
                operation.cancel()
        self._operation = self._pinging = self._checking = None
        timeout = self.ctx.config.shutdown_timeout
        stops = [sup.stop(timeout) for sup in self.services.values()]
        done = DeferredList(stops, consumeErrors=True)
        return done.addCallback(lambda _: self._unsubscribed())

    def _unsubscribed(self) -> None:
        failed = {
            name: sup.unsubscribe_error
            for name, sup in self.services.items()
            if sup.unsubscribe_error is not None
        }
        if failed:
            log.info(
                "could not unsubscribe {count} service(s) of {speaker}: {reasons}",
                count=len(failed),
                speaker=self.label,
                reasons=", ".join(sorted(set(failed.values()))),
            )

    # Identification.

    def _begin_identify(self) -> None:
        self._timer = None
        self._gen += 1
        running = Deferred.fromCoroutine(self._identify(self._gen))
        if not running.called:
            self._operation = running

    async def _identify(self, gen: int) -> None:
        host = self.config_device.host
        try:
            identity: Identity = await self._identify_at(host)
        except Exception:
            if gen != self._gen:
                return
            self._operation = None
            self._failures += 1
            reason = describe_failure(Failure())[1]
            delay = self._backoff()
            log.warn(
                "cannot reach speaker {host}: {reason}; retry {n} in {delay:.1f} s",
                host=host,
                reason=reason,
                n=self._failures,
                delay=delay,
            )
            self.offline_reason = reason
            self._timer = self.ctx.clock.callLater(delay, self._begin_identify)
            return
        if gen != self._gen:
            return
        self._operation = None
        self._failures = 0
        self.device = identity.device
        self.household_id = identity.household_id
        self.boot_seq = identity.boot_seq
        self.ref = SpeakerRef(
            uid=identity.uid, name=identity.name, host=identity.address, port=SONOS_PORT
        )
        expected = self.config_device.name
        if expected is not None and expected != identity.name:
            log.warn(
                "speaker {host} is named {actual!r}, not {expected!r} as configured",
                host=host,
                actual=identity.name,
                expected=expected,
            )
        if self._on_identified is not None and not self._on_identified(self):
            return
        log.info(
            "speaker {name} is {uid} at {address}",
            name=identity.name,
            uid=identity.uid,
            address=identity.address,
        )
        self._availability = LoopingCall(self._check_silence)
        self._availability.clock = self.ctx.clock
        self._availability.start(self.ctx.config.availability_interval, now=False)
        if self.ctx.config.check_interval > 0 and any(s in CHECKS for s in self.services):
            self._consistency = LoopingCall(self.check_consistency)
            self._consistency.clock = self.ctx.clock
            self._consistency.start(self.ctx.config.check_interval, now=False)
        self._go_online("identified")

    # Availability.

    def saw_activity(self) -> None:
        """Note that the speaker answered or sent something just now."""
        self.last_activity = self.ctx.clock.seconds()

    def _check_silence(self) -> None:
        if not self.online:
            return
        silent = self.ctx.clock.seconds() - self.last_activity
        if silent >= self.ctx.config.silence_timeout:
            self.check_now(f"silent for {silent:.0f} s")

    def check_now(self, why: str) -> None:
        """Ping the speaker now, unless a ping is already under way or it is not identified."""
        if self._pinging is not None or self.ref is None or not self.running:
            return
        self._cancel_timer()
        log.debug("pinging {speaker}: {why}", speaker=self.label, why=why)
        running = Deferred.fromCoroutine(self._ping(self._gen))
        if not running.called:
            self._pinging = running

    async def _ping(self, gen: int) -> None:
        assert self.ref is not None
        try:
            await self._run(
                ping, self.device, key=f"{self.ref.uid}:ping", timeout=self.ctx.ping_timeout
            )
        except Exception:
            if gen != self._gen:
                return
            self._pinging = None
            reason = describe_failure(Failure())[1]
            if self.online:
                self._go_offline(reason)
            else:
                self._failures += 1
                self._schedule_ping()
            return
        if gen != self._gen:
            return
        self._pinging = None
        self.saw_activity()
        if not self.online:
            self._go_online("answering again")

    def _schedule_ping(self) -> None:
        self._cancel_timer()
        self._timer = self.ctx.clock.callLater(self._backoff(), self.check_now, "offline retry")

    def _go_offline(self, reason: str) -> None:
        assert self.ref is not None
        self.online = False
        self.offline_reason = reason
        self._failures = 1
        log.warn("speaker {speaker} is offline: {reason}", speaker=self.label, reason=reason)
        self.ctx.processor.speaker_offline(self.ref, reason)
        for sup in self.services.values():
            sup.suspend(f"speaker offline: {reason}")
        self._schedule_ping()

    def _go_online(self, reason: str) -> None:
        assert self.ref is not None
        self.online = True
        self.offline_reason = None
        self._failures = 0
        self.saw_activity()
        log.info("speaker {speaker} is online ({reason})", speaker=self.label, reason=reason)
        self.ctx.processor.speaker_online(self.ref, reason)
        for sup in self.services.values():
            sup.start()

    def sign_of_life(self, source: str) -> None:
        """Something (discovery, the topology) shows the speaker is up: re-check it if offline."""
        if self.online is False:
            self.check_now(source)

    # The consistency check: a lost last NOTIFY.

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
        if not services:
            return {}
        read: Mapping[str, Mapping[str, Any]] = await self.ctx.reader.check(
            self.device, services
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
        if self.ref is None or not self.running:
            return
        if self.online is False:
            self.sign_of_life(reason)
            return
        if reason.startswith("412"):
            self._absorb_boot_seq_until = self.ctx.clock.seconds() + REBOOT_MERGE_WINDOW
        log.info(
            "speaker {speaker} rebooted ({reason}): resubscribing every service",
            speaker=self.label,
            reason=reason,
        )
        for sup in self.services.values():
            sup.start(reason="reboot")

    def observe_boot_seq(self, boot_seq: int, source: str) -> None:
        """Take the speaker's BootSeq from the topology or SSDP; an increase is a reboot."""
        known, self.boot_seq = self.boot_seq, boot_seq
        if known is None or boot_seq <= known:
            return
        if self.ctx.clock.seconds() < self._absorb_boot_seq_until:
            # Already handled: a renewal got 412 just before the topology told us.
            self._absorb_boot_seq_until = 0.0
            return
        self.rebooted(f"BootSeq {known} -> {boot_seq} ({source})")

    def observe_address(self, address: str, source: str) -> None:
        """Take the speaker's address from the topology or SSDP; follow it when it changes."""
        if self.ref is None or not self.running or address == self.ref.host:
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
            identity: Identity = await self._identify_at(address)
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
        if identity.uid != self.ref.uid:
            log.error(
                "{address} is {other}, not {speaker}: not following",
                address=address,
                other=identity.uid,
                speaker=self.label,
            )
            return
        self.device = identity.device
        self.ref = SpeakerRef(
            uid=self.ref.uid, name=identity.name, host=identity.address, port=SONOS_PORT
        )
        if self.online is False:
            self.check_now("address changed")
            return
        for sup in self.services.values():
            sup.start(reason="address changed")

    # Helpers.

    def _run(self, fn: Callable[..., Any], *args: Any, key: str, timeout: float) -> Deferred[Any]:
        """``fn(*args)`` in the thread pool; fails after ``timeout`` (and a second's slack)."""
        running = self.ctx.runner.run(fn, *args, key=key, timeout=timeout)
        return running.addTimeout(timeout + 1.0, self.ctx.clock)

    def _identify_at(self, address: str) -> Deferred[Identity]:
        """Identify the speaker at ``address`` (the configured host, or a new address)."""
        return self._run(
            identify,
            self.ctx.soco_factory,
            self.ctx.resolve,
            address,
            key=address,
            timeout=self.ctx.config.request_timeout,
        )

    def _backoff(self) -> float:
        config = self.ctx.config
        return backoff_delay(
            self._failures, config.backoff_initial, config.backoff_max, self.ctx.random
        )

    def _cancel_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()


@attrs.frozen
class MemberInfo:
    """What the topology says about one speaker: its BootSeq and the host of its Location."""

    boot_seq: int | None
    host: str | None


TopologyReader = Callable[[Any], Mapping[str, MemberInfo]]
"""Extracts ``{uid: MemberInfo}`` from a ``HouseholdState`` topology object."""


def topology_members(topology: Any) -> dict[str, MemberInfo]:
    """``{uid: MemberInfo}`` for every member of a topology (or ``None``)."""
    if topology is None:
        return {}
    return {
        member.uid: MemberInfo(boot_seq=member.boot_seq, host=member.host)
        for member in topology.members()
    }


class HouseholdSupervisor(MultiService):
    """Owns the speaker supervisors: add speakers, look them up, start and stop them all.

    @param ctx: What all supervisors share.
    @param devices: The configured speakers.
    @param topology_members: How to read BootSeq and Location per uid from a topology passed
        to ``on_topology`` (register ``on_topology`` with ``HouseholdState``).
    """

    def __init__(
        self,
        ctx: SupervisorContext,
        devices: Iterable[Device] = (),
        topology_members: TopologyReader = topology_members,
        listener: Any = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.listener = listener
        #: Counters of subscriptions no longer supervised (removed by a reload), so that the
        #: totals the metrics export never go down.
        self.retired: Counter[str] = Counter()
        self._topology_members = topology_members
        self._by_uid: dict[str, SpeakerSupervisor] = {}
        self.discovery: Service | None = None
        self._speakers: list[SpeakerSupervisor] = []
        for device in devices:
            self.add_device(device)

    def add_device(self, device: Device, *, discovered: bool = False) -> SpeakerSupervisor:
        """Supervise ``device`` (started at once if the household is running).

        @param discovered: Found by SSDP, not configured (a reload keeps it).
        """
        speaker = SpeakerSupervisor(device, self.ctx, on_identified=self._identified)
        speaker.discovered = discovered
        self._speakers.append(speaker)
        speaker.setServiceParent(self)
        return speaker

    def speakers(self) -> list[SpeakerSupervisor]:
        """Every speaker supervisor, in the order they were added."""
        return list(self._speakers)

    def speaker(self, uid: str) -> SpeakerSupervisor | None:
        """The supervisor of the speaker ``uid``, if it has been identified."""
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
        if speaker.uid is not None and self._by_uid.get(speaker.uid) is speaker:
            del self._by_uid[speaker.uid]
        speaker.disownServiceParent()
        return speaker

    def reconfigure(self, ctx: SupervisorContext) -> None:
        """Use ``ctx`` from now on (a reload): new timings apply to the next timer of each
        subscription; services added are subscribed, services removed UNSUBSCRIBEd."""
        old, self.ctx = self.ctx, ctx
        for speaker in self._speakers:
            speaker.ctx = ctx
            if ctx.services != old.services:
                gone = [sup for name, sup in speaker.services.items() if name not in ctx.services]
                self._retire(gone)
                speaker.set_services(ctx.services)

    def apply(self, config: Config) -> tuple[list[str], list[str]]:
        """Follow ``config`` (a reload): its devices, services and subscription timings.

        @return: The hosts added and the hosts removed.
        """
        known = {
            speaker.config_device.host.lower(): speaker
            for speaker in self._speakers
            if not speaker.discovered
        }
        wanted = {device.host.lower(): device for device in config.devices}
        removed = [s.config_device.host for key, s in known.items() if key not in wanted]
        for host in removed:
            self.remove_device(host)
        subscriptions = self.ctx.subscriptions
        if isinstance(subscriptions, GenaSubscriptions):
            subscriptions.request_timeout = config.subscription.request_timeout
        self.reconfigure(
            attrs.evolve(self.ctx, config=config.subscription, services=config.services)
        )
        added = [device.host for key, device in wanted.items() if key not in known]
        for device in config.devices:
            if device.host in added:
                self.add_device(device)
        return added, removed

    def _retire(self, services: Iterable[ServiceSupervisor]) -> None:
        for sup in services:
            for key in RETIRED_COUNTERS:
                self.retired[key] += getattr(sup, key)

    def _identified(self, speaker: SpeakerSupervisor) -> bool:
        assert speaker.uid is not None
        other = self._by_uid.get(speaker.uid)
        if other is not None and other is not speaker:
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
        timer = self.ctx.clock.callLater(bound, self._stop_overdue, done)

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
            log.warn("some speakers did not answer UNSUBSCRIBE in time; stopping anyway")
            done.callback(None)

    # Sources of news about speakers.

    def on_topology(self, old: Any, new: Any) -> None:
        """``HouseholdState`` topology observer: follow BootSeq and Location of every speaker."""
        for uid, member in self._topology_members(new).items():
            speaker = self._by_uid.get(uid)
            if speaker is None:
                continue
            if member.boot_seq is not None:
                speaker.observe_boot_seq(member.boot_seq, "topology")
            if member.host is not None:
                speaker.observe_address(member.host, "topology")

    def on_sighting(self, sighting: Sighting) -> None:
        """A speaker was seen (SSDP): add it if new; else follow its BootSeq and address."""
        speaker = self._by_uid.get(sighting.uid)
        if speaker is None:
            known = any(
                s.config_device.host == sighting.host
                or (s.ref is not None and s.ref.host == sighting.host)
                for s in self._speakers
            )
            if not known:
                log.info("discovered speaker {uid} at {host}", uid=sighting.uid, host=sighting.host)
                self.add_device(Device(host=sighting.host), discovered=True)
            return
        if sighting.boot_seq is not None:
            speaker.observe_boot_seq(sighting.boot_seq, sighting.source)
        speaker.observe_address(sighting.host, sighting.source)
        speaker.sign_of_life(sighting.source)

    def on_byebye(self, uid: str, reason: str | None) -> None:
        """A speaker announced it is leaving (SSDP ``ssdp:byebye``): check it at once."""
        speaker = self._by_uid.get(uid)
        if speaker is not None:
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
) -> HouseholdSupervisor:
    """The daemon's supervisor, wired: configured devices, topology observer, discovery.

    @param listener: The running ``NotifyListener`` (its ``callback_url`` goes in the log line
        that explains the polling fallback).
    @param state: The ``HouseholdState``; the supervisor follows its topology (BootSeq,
        Location).
    """
    ctx = SupervisorContext(
        clock=reactor,
        runner=runner,
        processor=processor,
        reader=reader,
        subscriptions=gena_subscriptions(reactor, listener, config.subscription.request_timeout),
        config=config.subscription,
        services=config.services,
        callback_url=listener.callback_url,
    )
    household = HouseholdSupervisor(ctx, config.devices, listener=listener)
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
