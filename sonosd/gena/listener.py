# -*- test-case-name: tests.gena.test_listener -*-
"""The GENA NOTIFY listener: the small HTTP server that speakers push their events to.

A speaker sends each event of a subscription as a ``NOTIFY`` request to the ``CALLBACK`` URL the
subscriber gave it (UPnP Device Architecture 1.1, 4.3). This module owns that end:

- :class:`NotifyListener` binds the server on ``interface`` (trying ``port`` .. ``port+99`` when a
  port is taken) and builds the callback URL advertised to each speaker: the configured
  ``advertise`` address (Docker bridge, NAT), else the bound interface when it is a specific
  address, else the local address that routes to that speaker.
- :class:`NotifyDispatcher` checks every NOTIFY (headers, body, SID, source address), keeps the
  registry SID -> subscription, and hands accepted events to their subscription. Unlike SoCo's
  listener it answers ``412`` to an unknown SID (so the speaker stops sending), ``403`` to a
  NOTIFY that does not come from the subscribed speaker, ``400`` to a malformed one and ``413``
  to an oversized body, and a failing callback never becomes a ``500``.
- The HTTP itself is :mod:`sonosd.gena.notifyproto`: a lean protocol for one request per connection
  (not twisted.web, whose general machinery cost most of the CPU per NOTIFY; issue 7).
- The first-NOTIFY race: a speaker may send ``SEQ 0`` before the SUBSCRIBE response has been
  read and the SID registered. While a SUBSCRIBE to a host is in flight, a NOTIFY for an unknown
  SID from that host is held (bounded in number and time) until the SID is registered.

:func:`check_notify` and :func:`route_address` are pure helpers, usable on their own.
"""

from __future__ import annotations

import errno
import re
import socket
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTCP, IReactorTime
from twisted.logger import Logger, LogLevel
from zope.interface import Attribute, Interface, implementer

from sonosd.gena import notifyport, xmlguard
from sonosd.gena.event import Event
from sonosd.gena.notifyproto import (
    MAX_PER_HOST,
    REQUEST_TIMEOUT,
    MediaLookup,
    NotifyRequest,
    NotifyServerFactory,
)
from sonosd.peerlog import PeerLog

log = Logger()

DEFAULT_MAX_BODY: Final = 1_048_576

#: The NOTIFY port's listen backlog. Every speaker sends the initial NOTIFY of each new
#: subscription at once (a household of 200 speakers, 1,600 connections in a few seconds);
#: with Twisted's default of 50 the kernel dropped a quarter of them (docs/benchmarks.md).
BACKLOG: Final = 1024
"""The largest NOTIFY body accepted (bytes); the biggest real events are tens of kilobytes."""

PORT_TRIES: Final = 100
"""How many ports are tried, from the requested one up (as SoCo's listener does)."""

SEQ_MAX: Final = 4_294_967_295
"""The largest SEQ a NOTIFY may carry (a UPnP ``ui4``)."""

_SEQ_RE: Final = re.compile(r"[0-9]{1,10}\Z")


#: Seconds an ended SID is remembered at most: each is kept until its grant would have run out
#: (a speaker sends to it until then, or until the first 412 it heeds), and no grant the
#: daemon asks for is longer than a day (``subscription.timeout`` goes up to 86400 s, what
#: speakers grant when none is asked; a longer or infinite grant is kept a day).
ENDED_MEMORY = 86400.0

#: Ended SIDs remembered at most (the oldest are forgotten first).
MAX_ENDED = 10_000

#: Unknown-SID NOTIFYs held per SUBSCRIBE in flight to their sender: its initial NOTIFY and
#: one event that followed it at once. A speaker sends the initial NOTIFY right after its
#: SUBSCRIBE answer, on another connection, and a busy daemon may read that one first.
HELD_PER_SUBSCRIBE: Final = 2

#: Unknown-SID NOTIFYs held at once, all senders together. The daemon has at most 64
#: SUBSCRIBEs in flight (``household.supervisor.GENA_CONCURRENCY``): every one of them may
#: have its initial NOTIFY waiting. The bound was 32, and at start-up a 200-speaker
#: household had up to 40 initial NOTIFYs refused (412) while their subscriptions were being
#: granted (issue 17).
MAX_HELD: Final = HELD_PER_SUBSCRIBE * 64


class MalformedNotify(ValueError):
    """A NOTIFY request breaks the GENA rules; ``reason`` says which one."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# Mutable for speed (one per NOTIFY; a frozen attrs class costs 5x to build): nothing
# assigns to it.
@attrs.define
class NotifyHeaders:
    """The checked GENA fields of one NOTIFY request.

    @ivar sid: The subscription identifier (opaque, as sent by the speaker).
    @ivar seq: The event sequence number (0 for the initial, full-state event).
    @ivar service_type: ``X-SONOS-SERVICETYPE`` when the speaker sent it (modern firmware).
    """

    sid: str
    seq: int
    service_type: str | None = None


def check_notify(headers: Mapping[str, str], body: bytes) -> NotifyHeaders:
    """Check one NOTIFY request and return its GENA fields.

    @param headers: Request headers, names in lower case, first value of each.
    @param body: The request body.
    @raise MalformedNotify: When ``NT`` is not ``upnp:event``, ``NTS`` is not
        ``upnp:propchange``, ``SID`` is missing or empty, ``SEQ`` is not an integer in
        0 .. 4294967295, or the body is not an XML document (a UTF-16 or UTF-32 one is left
        to the parser, which refuses its encoding).
    """
    if headers.get("nt", "").strip().lower() != "upnp:event":
        raise MalformedNotify("NT is not upnp:event")
    if headers.get("nts", "").strip().lower() != "upnp:propchange":
        raise MalformedNotify("NTS is not upnp:propchange")
    sid = headers.get("sid", "").strip()
    if not sid:
        raise MalformedNotify("SID missing")
    seq_text = headers.get("seq", "").strip()
    if not _SEQ_RE.match(seq_text) or int(seq_text) > SEQ_MAX:
        raise MalformedNotify("SEQ is not an integer in 0..4294967295")
    # A UTF-16/32 body passes: the parser refuses it, counted as the encoding it is.
    if not body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<") and not xmlguard.is_wide(body):
        raise MalformedNotify("body is not XML")
    service_type = headers.get("x-sonos-servicetype", "").strip() or None
    return NotifyHeaders(sid=sid, seq=int(seq_text), service_type=service_type)


def route_address(host: str, port: int = 1400) -> str | None:
    """Return the local IPv4 address the kernel would use to reach ``host``, or ``None``.

    A UDP socket is "connected" to the speaker, which only looks up the route: no packet is
    sent. ``host`` should be an address; a name is resolved here, which blocks.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.setblocking(False)
        probe.connect((host, port))
        address: str = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return address


def _is_wildcard(interface: str) -> bool:
    return interface in ("", "0.0.0.0", "::")


def _default_parser() -> Callable[[bytes], dict[str, Any]]:
    """Return ``sonosd.gena.eventxml.parse_event_xml`` when it exists, else SoCo's."""
    try:
        from sonosd.gena import eventxml
    except ImportError:
        from soco.events_base import parse_event_xml

        return parse_event_xml
    return eventxml.parse_event_xml


class INotifySubscription(Interface):
    """What the listener needs from a subscription to route NOTIFYs to it."""

    sid = Attribute("The SID the speaker gave the subscription (``str``).")
    speaker_host = Attribute("The speaker's address: the only accepted NOTIFY source.")
    service = Attribute(
        "The service put into each ``Event``: a SoCo ``Service``, or the daemon's light"
        " ``ServiceRef``."
    )

    def send_event(event: Event) -> None:
        """Take one event (called in the reactor thread; should not raise)."""


class INotifyListener(Interface):
    """What a GENA subscription needs from the listener."""

    def callback_url(speaker_host: str) -> str:
        """The ``CALLBACK`` URL to give the speaker at ``speaker_host``."""

    def register(subscription: INotifySubscription) -> None:
        """Route NOTIFYs for ``subscription.sid`` to ``subscription`` from now on."""

    def unregister(subscription: INotifySubscription) -> None:
        """Forget ``subscription`` (later NOTIFYs for its SID get 412)."""

    def subscribing(speaker_host: str) -> None:
        """A SUBSCRIBE to ``speaker_host`` is in flight: hold its unknown-SID NOTIFYs."""

    def subscribe_finished(speaker_host: str) -> None:
        """That SUBSCRIBE ended (registered or failed): stop holding for it."""


@attrs.define(eq=False)
class _Held:
    """A NOTIFY for a SID not registered yet, kept until its SUBSCRIBE response is read."""

    request: NotifyRequest
    host: str
    notify: NotifyHeaders
    body: bytes
    timer: IDelayedCall | None = None


class NotifyDispatcher:
    """Checks NOTIFYs, keeps the SID registry and delivers events to subscriptions.

    @param clock: Times held NOTIFYs and stamps events.
    @param parse: Turns a NOTIFY body into ``Event.variables`` (default: the fast parser of
        ``sonosd.gena.eventxml`` when present, else ``soco.events_base.parse_event_xml``).
    @param hold_timeout: Seconds an unknown-SID NOTIFY is held while a SUBSCRIBE to its
        sender is in flight.
    @param max_held: How many such NOTIFYs may be held at once, all senders together
        (beyond: 412 at once); one sender may have at most ``HELD_PER_SUBSCRIBE`` held per
        SUBSCRIBE in flight to it.
    @param log_interval: Seconds during which a refusal of one reason from one host is logged
        at most once (later ones are counted and summed up in one line; ``sonosd.peerlog``).

    @ivar accepted: NOTIFYs delivered to a subscription.
    @ivar rejected: Refused requests by reason: ``malformed`` and ``unparsable`` (400);
        ``dtd``, ``encoding``, ``over_budget`` and ``value_too_large`` (400: bodies that could
        cost more than their size, ``sonosd.gena.xmlguard``); ``source`` (403); ``method``
        (405); ``unknown_sid`` (412); ``ended_sid`` (412: a subscription that ended recently,
        which the speaker keeps notifying until it hears 412 or the SID expires: counted,
        logged at debug level only); ``too_large`` (413); ``bad_request`` (broken HTTP: 400,
        431, 501); ``too_slow`` (connections closed at the request deadline) and
        ``too_many_connections`` (closed at once: too many from one host).
    @ivar held: NOTIFYs that had to wait for their SUBSCRIBE response.
    @ivar peer_log: The throttled log of refusals.
    """

    def __init__(
        self,
        clock: IReactorTime,
        parse: Callable[[bytes], dict[str, Any]] | None = None,
        hold_timeout: float = 5.0,
        max_held: int = MAX_HELD,
        log_interval: float = 60.0,
    ) -> None:
        self._clock = clock
        self._parse = parse if parse is not None else _default_parser()
        self._hold_timeout = hold_timeout
        self._max_held = max_held
        self.peer_log = PeerLog(log, clock, log_interval)
        self._subscriptions: dict[str, INotifySubscription] = {}
        # SIDs of subscriptions that ended, with when to forget them (oldest first).
        self._ended: OrderedDict[str, float] = OrderedDict()
        self._in_flight: Counter[str] = Counter()
        self._held: dict[str, list[_Held]] = {}
        self._held_count = 0
        self._held_from: Counter[str] = Counter()
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self.held = 0

    # -- registry -----------------------------------------------------------------------------

    def register(self, subscription: INotifySubscription) -> None:
        """Route ``subscription.sid`` to ``subscription``; deliver NOTIFYs held for it."""
        self._subscriptions[subscription.sid] = subscription
        # A rebooted speaker may hand out an old SID again.
        self._ended.pop(subscription.sid, None)
        waiting = self._held.pop(subscription.sid, [])
        for entry in sorted(waiting, key=lambda held: held.notify.seq):
            self._unhold(entry)
            if entry.host != subscription.speaker_host:
                entry.request.answer(self._refuse_source(entry.host, entry.notify))
            else:
                entry.request.answer(self._deliver(subscription, entry.notify, entry.body))

    def unregister(self, subscription: INotifySubscription) -> None:
        """Forget ``subscription`` if it is the one registered under its SID, remembering
        the SID as ended (until its grant would have run out at the speaker, its
        ``time_left``, at most ``ENDED_MEMORY`` seconds; the ``MAX_ENDED`` most recent) so
        that its NOTIFYs are refused quietly. One with no time left is not remembered."""
        if self._subscriptions.get(subscription.sid) is not subscription:
            return
        del self._subscriptions[subscription.sid]
        left = getattr(subscription, "time_left", None)
        memory = ENDED_MEMORY
        if isinstance(left, int | float) and left == left:  # not NaN
            memory = max(0.0, min(float(left), ENDED_MEMORY))
        ended = self._ended
        ended.pop(subscription.sid, None)
        now = self._clock.seconds()
        if memory > 0:
            ended[subscription.sid] = now + memory
        while ended and (len(ended) > MAX_ENDED or next(iter(ended.values())) <= now):
            ended.popitem(last=False)

    def subscribing(self, speaker_host: str) -> None:
        """Note a SUBSCRIBE in flight to ``speaker_host``."""
        self._in_flight[speaker_host] += 1

    def subscribe_finished(self, speaker_host: str) -> None:
        """Note the end of a SUBSCRIBE to ``speaker_host``; refuse what nobody will claim."""
        self._in_flight[speaker_host] -= 1
        if self._in_flight[speaker_host] > 0:
            return
        del self._in_flight[speaker_host]
        for sid in list(self._held):
            for entry in [held for held in self._held[sid] if held.host == speaker_host]:
                self._drop(entry)
                entry.request.answer(self._refuse_unknown(entry.host, entry.notify))

    def subscription(self, sid: str) -> INotifySubscription | None:
        """The subscription registered under ``sid``, if any."""
        return self._subscriptions.get(sid)

    def subscriptions(self) -> list[INotifySubscription]:
        """Every registered subscription."""
        return list(self._subscriptions.values())

    def release_all(self) -> None:
        """Refuse every held NOTIFY (412): the listener is stopping."""
        for entries in list(self._held.values()):
            for entry in list(entries):
                self._drop(entry)
                entry.request.answer(self._refuse_unknown(entry.host, entry.notify))

    # -- requests -----------------------------------------------------------------------------

    def reject(self, reason: str, host: str | None = None, detail: str = "") -> None:
        """Count and log (throttled) one request refused before it reached the dispatcher
        (405, 413, broken HTTP, too slow, too many connections)."""
        self.rejected[reason] += 1
        self.peer_log.emit(
            host,
            reason,
            "NOTIFY listener refused a request from {source}: {detail}",
            detail=detail or reason,
        )

    def dispatch(self, request: NotifyRequest) -> int | None:
        """Handle one NOTIFY: deliver it or refuse it (the status to answer), or hold it
        (``None``: it is answered later through ``request.answer``)."""
        host = request.host
        body = request.body
        try:
            notify = check_notify(request.headers, body)
        except MalformedNotify as error:
            self.rejected["malformed"] += 1
            self.peer_log.emit(
                host, "malformed", "malformed NOTIFY from {source}: {what}", what=error.reason
            )
            return 400
        subscription = self._subscriptions.get(notify.sid)
        if subscription is None:
            if host is not None and self._may_hold(host):
                self._hold(_Held(request, host, notify, body))
                return None
            return self._refuse_unknown(host, notify)
        if host != subscription.speaker_host:
            return self._refuse_source(host, notify)
        return self._deliver(subscription, notify, body)

    def _deliver(
        self, subscription: INotifySubscription, notify: NotifyHeaders, body: bytes
    ) -> int:
        try:
            variables = self._parse(body)
        except Exception as error:
            # MalformedEvent (and UnsafeEvent) say which rule; any other parser's error is
            # "unparsable". The body is the speaker's fault, not ours: no traceback.
            reason = getattr(error, "reason", None)
            reason = reason if isinstance(reason, str) else "unparsable"
            self.rejected[reason] += 1
            self.peer_log.emit(
                subscription.speaker_host,
                reason,
                "NOTIFY body from {source} for {sid} seq {seq} refused ({reason}): {error}",
                sid=notify.sid,
                seq=notify.seq,
                error=str(error)[:200],
            )
            return 400
        event = Event(
            notify.sid, str(notify.seq), subscription.service, self._clock.seconds(), variables
        )
        self.accepted += 1
        try:
            subscription.send_event(event)
        except Exception:
            log.failure("event handler failed for {sid} seq {seq}", sid=notify.sid, seq=notify.seq)
        return 200

    def _refuse_unknown(self, host: str | None, notify: NotifyHeaders) -> int:
        until = self._ended.get(notify.sid)
        if until is not None and until > self._clock.seconds():
            self.rejected["ended_sid"] += 1
            log.debug("NOTIFY for ended {sid} from {host}: 412", sid=notify.sid, host=host)
            return 412
        self.rejected["unknown_sid"] += 1
        self.peer_log.emit(
            host,
            "unknown_sid",
            "NOTIFY for unknown {sid} from {source}: 412",
            level=LogLevel.info,
            sid=notify.sid[:100],
        )
        return 412

    def _refuse_source(self, host: str | None, notify: NotifyHeaders) -> int:
        self.rejected["source"] += 1
        self.peer_log.emit(
            host,
            "source",
            "NOTIFY for {sid} from {source}, not from the subscribed speaker: 403",
            sid=notify.sid[:100],
        )
        return 403

    # -- the first-NOTIFY race ----------------------------------------------------------------

    def _may_hold(self, host: str) -> bool:
        """Whether an unknown-SID NOTIFY from ``host`` may wait for a SUBSCRIBE answer."""
        in_flight = self._in_flight[host]
        return (
            in_flight > 0
            and self._held_from[host] < HELD_PER_SUBSCRIBE * in_flight
            and self._held_count < self._max_held
        )

    def _hold(self, entry: _Held) -> None:
        self.held += 1
        self._held_count += 1
        self._held_from[entry.host] += 1
        self._held.setdefault(entry.notify.sid, []).append(entry)
        entry.timer = self._clock.callLater(self._hold_timeout, self._expire, entry)
        entry.request.on_lost = lambda: self._drop(entry)

    def _unhold(self, entry: _Held) -> None:
        self._held_count -= 1
        self._held_from[entry.host] -= 1
        if self._held_from[entry.host] <= 0:
            del self._held_from[entry.host]
        if entry.timer is not None and entry.timer.active():
            entry.timer.cancel()
        entry.timer = None

    def _drop(self, entry: _Held) -> bool:
        entries = self._held.get(entry.notify.sid, [])
        if entry not in entries:
            return False
        entries.remove(entry)
        if not entries:
            del self._held[entry.notify.sid]
        self._unhold(entry)
        return True

    def _expire(self, entry: _Held) -> None:
        entry.timer = None
        if self._drop(entry):
            entry.request.answer(self._refuse_unknown(entry.host, entry.notify))


@implementer(INotifyListener)
class NotifyListener(Service):
    """The NOTIFY listener service: binds the server and advertises its URL to speakers.

    @param reactor: Binds the port and times held NOTIFYs.
    @param interface: The address to bind (``0.0.0.0``: every interface).
    @param port: The first port tried; ``port+1`` .. ``port+99`` follow when it is taken.
        ``0`` takes any free port.
    @param advertise: The address put in ``CALLBACK`` URLs (NAT, Docker bridge); default:
        ``interface`` when it is a specific address, else the local address that routes to
        each speaker.
    @param max_body: The largest NOTIFY body accepted (bytes).
    @param hold_timeout: See L{NotifyDispatcher}.
    @param max_held: See L{NotifyDispatcher}.
    @param idle_timeout: Seconds an idle connection is kept (see L{NotifyServerFactory}).
    @param request_timeout: Seconds from connecting by which a whole request must have arrived
        (see L{NotifyServerFactory}).
    @param max_per_host: The most connections one address may have open at once.
    @param parse: See L{NotifyDispatcher}.
    @param log_interval: See L{NotifyDispatcher}.
    @param media: Serves the daemon's clips on the same port (see L{NotifyServerFactory}).

    @ivar site: The L{NotifyServerFactory} bound to the port (the name is the one it had when
        it was a twisted.web ``Site``).
    """

    def __init__(
        self,
        reactor: IReactorTCP,
        interface: str = "0.0.0.0",
        port: int = 1400,
        advertise: str | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        hold_timeout: float = 5.0,
        max_held: int = MAX_HELD,
        idle_timeout: float = 30.0,
        parse: Callable[[bytes], dict[str, Any]] | None = None,
        request_timeout: float = REQUEST_TIMEOUT,
        max_per_host: int = MAX_PER_HOST,
        log_interval: float = 60.0,
        media: MediaLookup | None = None,
    ) -> None:
        self._reactor = reactor
        self._clock = IReactorTime(reactor)
        self.interface = interface
        self.requested_port = port
        self.advertise = advertise
        self.dispatcher = NotifyDispatcher(
            self._clock, parse, hold_timeout, max_held, log_interval=log_interval
        )
        self.site = NotifyServerFactory(
            self.dispatcher,
            self._clock,
            max_body,
            idle_timeout,
            request_timeout,
            max_per_host,
            media=media,
        )
        self.port = 0
        self._listening: IListeningPort | None = None

    @property
    def accepted(self) -> int:
        """NOTIFYs delivered to a subscription (for the metrics endpoint)."""
        return self.dispatcher.accepted

    @property
    def rejected(self) -> Counter[str]:
        """Refused NOTIFYs by reason (see L{NotifyDispatcher})."""
        return self.dispatcher.rejected

    @property
    def is_running(self) -> bool:
        """Whether the server is bound (SoCo's listener attribute)."""
        return self._listening is not None

    @property
    def address(self) -> tuple[str, int]:
        """``(interface, port)`` as bound (SoCo's listener attribute)."""
        return (self.interface, self.port)

    def startService(self) -> None:
        """Bind the server, trying the next ports when one is taken.

        @raise CannotListenError: When none of the ports could be bound.
        """
        self._listening = self._bind()
        self.port = getattr(self._listening.getHost(), "port", 0)
        taken = self.requested_port and self.port != self.requested_port
        # A port other than the one configured is a warning: a firewall rule or a published
        # Docker port made for the configured one does not let the speakers' NOTIFYs in.
        log.emit(
            LogLevel.warn if taken else LogLevel.info,
            "NOTIFY listener on {interface}:{port}{note}",
            interface=self.interface,
            port=self.port,
            note=f" (port {self.requested_port} is taken)" if taken else "",
        )
        super().startService()

    def _bind(self) -> IListeningPort:
        last = self.requested_port + (PORT_TRIES - 1 if self.requested_port else 0)
        error: CannotListenError | None = None
        for number in range(self.requested_port, min(last, 65535) + 1):
            try:
                return notifyport.listen(self._reactor, number, self.site, BACKLOG, self.interface)
            except CannotListenError as taken:
                error = taken
                if getattr(taken.socketError, "errno", None) != errno.EADDRINUSE:
                    # Not a port in use (an address this host does not have, no
                    # permission): every other port would fail the same way.
                    raise
                log.debug(
                    "cannot listen on {interface}:{port}: {error}; trying the next port",
                    interface=self.interface,
                    port=number,
                    error=taken.socketError,
                )
        assert error is not None
        raise error

    def stopService(self) -> Deferred[None]:
        """Refuse held NOTIFYs, close connections still being read, and unbind the server."""
        super().stopService()
        self.dispatcher.release_all()
        self.dispatcher.peer_log.stop()
        self.site.stop()
        listening, self._listening = self._listening, None
        if listening is None:
            return succeed(None)
        result = listening.stopListening()
        if isinstance(result, Deferred):
            return result
        return succeed(None)

    def stop(self) -> Deferred[None]:
        """Stop the service (the name SoCo's ``event_listener.stop()`` callers use)."""
        return self.stopService()

    def advertised_address(self, speaker_host: str) -> str:
        """The address of this host as ``speaker_host`` should see it."""
        if self.advertise:
            return self.advertise
        if not _is_wildcard(self.interface):
            return self.interface
        # Looked up for every SUBSCRIBE, never cached: the route (and this host's address)
        # may change over months, and a missing route at start-up must not stick.
        address = route_address(speaker_host)
        if address is None:
            log.warn("no route to {host}; advertising 127.0.0.1", host=speaker_host)
            return "127.0.0.1"
        return address

    def callback_url(self, speaker_host: str) -> str:
        """``http://<advertised address>:<port>/`` for the speaker at ``speaker_host``."""
        return f"http://{self.advertised_address(speaker_host)}:{self.port}/"

    def media_url(self, speaker_host: str, path: str) -> str:
        """The URL of a served clip at ``path`` as the speaker at ``speaker_host`` reaches it."""
        return self.callback_url(speaker_host) + path.lstrip("/")

    def register(self, subscription: INotifySubscription) -> None:
        """See L{NotifyDispatcher.register}."""
        self.dispatcher.register(subscription)

    def unregister(self, subscription: INotifySubscription) -> None:
        """See L{NotifyDispatcher.unregister}."""
        self.dispatcher.unregister(subscription)

    def subscribing(self, speaker_host: str) -> None:
        """See L{NotifyDispatcher.subscribing}."""
        self.dispatcher.subscribing(speaker_host)

    def subscribe_finished(self, speaker_host: str) -> None:
        """See L{NotifyDispatcher.subscribe_finished}."""
        self.dispatcher.subscribe_finished(speaker_host)
