# -*- test-case-name: tests.sim.test_gena -*-
"""The speaker side of GENA eventing: subscriptions, their expiry, and NOTIFY delivery.

One :class:`SubscriptionManager` per simulated speaker. The speaker's HTTP site hands it the
``SUBSCRIBE`` / ``UNSUBSCRIBE`` requests of every service's event URL; the household model calls
:meth:`SubscriptionManager.notify` when evented state changes. Behaviour follows real speakers
(``sonos-protocol.md`` §3.1-3.4):

- new subscription (``CALLBACK`` + ``NT: upnp:event`` [+ ``TIMEOUT``]) → 200 with
  ``SID: uuid:<uid>_sub%010d`` (one counter per speaker, shared by its services) and
  ``TIMEOUT: Second-N`` (the requested N capped at ``max_timeout``; 86400 when absent or
  unparseable; never ``infinite``), then an initial NOTIFY with SEQ 0 and the full state;
- renewal (``SID`` [+ ``TIMEOUT``]) → 200, same SID, SEQ continues; unknown or expired SID →
  412; ``SID`` together with ``NT`` or ``CALLBACK`` → 400; bad ``CALLBACK`` or ``NT`` → 412;
- NOTIFYs are delivered one at a time per subscription, in SEQ order (0, 1, 2, ...,
  4294967295, 1, ...), from the speaker's own address. A failed NOTIFY is logged and the
  subscription kept.
- ``LastChange`` (AVTransport, RenderingControl, Queue) is moderated as UPnP AV defines it:
  the first change opens a window of ``moderation`` seconds (0.2), changes within it are
  merged (the latest value of each variable wins), and one NOTIFY per subscription carries
  them when the window closes. So TRANSITIONING then PLAYING 0.1 s apart reach subscribers
  as one event showing PLAYING. One window (one timer) per service, whatever the number of
  changes or subscriptions; plain-variable services are not moderated.

:class:`GenaFaults` injects the failures the daemon must survive (see
``docs/simulator-gena.md``).
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTCP, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET

from sonosd.sim.addresses import on_this_machine
from sonosd.sim.badanswers import drip, garbage_answer, pad_head
from sonosd.sim.notifier import (
    CallbackURL,
    INotifier,
    Notifier,
    NotifyHead,
    parse_callback,
    sonos_service_type,
)
from sonosd.sim.propertyset import EventValue, build_propertyset, is_last_change

log = Logger()

FullState = Callable[[str], Mapping[str, EventValue]]
"""Returns every evented variable of a service (the body of the SEQ 0 NOTIFY)."""

DEFAULT_TIMEOUT: Final = 86400
#: UPnP AV moderates LastChange: at most one event per 0.2 s, changes coalesced.
DEFAULT_MODERATION: Final = 0.2
MAX_SEQ: Final = 4294967295
#: The values of ``GenaFaults.answer_only``.
ANSWER_ONLY: Final = ("", "SUBSCRIBE", "UNSUBSCRIBE")
_TIMEOUT_RE: Final = re.compile(r"\s*Second-(\d{1,10})\s*\Z", re.IGNORECASE)


@attrs.define
class GenaFaults:
    """Failures a speaker injects into its eventing; mutate the fields, tests read them back.

    Counters (``*_next``) apply to the next NOTIFYs of any subscription of the speaker (the
    SEQ 0 NOTIFY included) and count down as they are used.
    """

    drop_next: int = 0
    """NOTIFYs silently not sent; their SEQ is consumed (the subscriber sees a gap)."""
    duplicate_next: int = 0
    """NOTIFYs sent twice with the same SEQ."""
    reorder_next: int = 0
    """Pairs of consecutive NOTIFYs of one subscription swapped on the wire (a NOTIFY is held
    until the subscription's next one has been sent)."""
    delay: float = 0.0
    """Seconds waited before sending each NOTIFY (per subscription, so they add up)."""
    subscribe_status: int | None = None
    """Answer valid new SUBSCRIBEs with this status (e.g. 503) and create nothing."""
    renew_status: int | None = None
    """Answer renewals with this status; the subscription is left as it was."""
    subscribe_hang: bool = False
    """Never answer new SUBSCRIBEs (the request stays open until the client gives up)."""
    answer_delay: float = 0.0
    """Seconds a granted new SUBSCRIBE's answer waits, while its initial NOTIFY goes out at
    once (a busy speaker, or a subscriber that reads the NOTIFY's connection first: the
    subscriber sees the initial event before it knows the SID)."""
    renew_hang: bool = False
    """Never answer renewals."""
    next_seq: int | None = None
    """The SEQ of the next NOTIFY of any subscription after its SEQ 0 (1..4294967295); later
    ones count on from it, wrapping to 1. A subscription notified for years, compressed into
    one jump (its subscriber sees a gap). Used once."""

    answer_status_line: str = ""
    """When set, every granted SUBSCRIBE or renewal answer starts with this line instead of
    ``HTTP/1.1 200 OK`` (a broken device: ``garbage``), then the connection is closed."""
    answer_header_bytes: int = 0
    """Bytes of extra header lines (``X-Padding``, 1 KiB each) in every granted answer's head:
    a head far over what any client reads."""
    answer_drip: float = 0.0
    """Seconds between the 1 KiB pieces every granted answer's body (at least 1 KiB of
    padding, ``answer_body_bytes`` if more) is written in: an answer that never ends."""
    answer_sid: str | None = None
    """The ``SID`` header of every granted answer: ``""`` leaves it out, other text is sent
    instead of the SID (the subscription is made all the same), and added to an UNSUBSCRIBE
    answer (which has none)."""
    answer_timeout: str | None = None
    """The ``TIMEOUT`` header of every granted answer: ``""`` leaves it out, other text
    (``Second-0``, ``Second-99999999999999``, ``infinite``, ``garbage``) is sent instead of
    the seconds granted (the speaker keeps the subscription for those), and added to an
    UNSUBSCRIBE answer (which has none)."""
    answer_body_bytes: int = 0
    """Bytes of body (spaces) in every granted answer, where real speakers send none."""
    answer_only: str = ""
    """Which granted answers the ``answer_*`` faults make hostile: ``""`` every one,
    ``SUBSCRIBE`` (new ones and renewals) or ``UNSUBSCRIBE`` only."""
    unsubscribe_status: int | None = None
    """Answer UNSUBSCRIBEs of a known SID with this status; the subscription is kept."""
    unsubscribe_hang: bool = False
    """Never answer UNSUBSCRIBEs of a known SID; the subscription is kept."""

    def reset(self) -> None:
        """Clear every fault."""
        for field in attrs.fields(GenaFaults):
            setattr(self, field.name, field.default)


@attrs.define(eq=False)
class _Subscription:
    """A live subscription and its delivery queue (internal, mutable)."""

    sid: str
    service: str
    callback: CallbackURL
    timeout: int
    head: NotifyHead
    expiry: IDelayedCall | None = None
    last_seq: int | None = None
    queue: deque[tuple[int, bytes]] = attrs.field(factory=deque)
    held: tuple[int, bytes] | None = None
    ready: bool = False
    draining: bool = False
    alive: bool = True
    start_call: IDelayedCall | None = None
    waiting: Deferred[Any] | None = None

    def next_seq(self) -> int:
        """Consume and return the SEQ of the next NOTIFY."""
        last = self.last_seq
        seq = 0 if last is None else (1 if last >= MAX_SEQ else last + 1)
        self.last_seq = seq
        return seq


def parse_timeout(header: str | None, max_timeout: int) -> int:
    """The seconds granted for a ``TIMEOUT`` header: ``Second-N`` capped at ``max_timeout``.

    Absent, ``infinite``, zero or unparseable (``Seconds-600``) → 86400 (capped too).
    """
    default = min(DEFAULT_TIMEOUT, max_timeout)
    if header is None:
        return default
    match = _TIMEOUT_RE.match(header)
    if match is None:
        return default
    seconds = int(match.group(1))
    if seconds < 1:
        return default
    return min(seconds, max_timeout)


class SubscriptionManager:
    """All GENA subscriptions of one simulated speaker.

    :param reactor: provides ``callLater``/``seconds`` and ``connectTCP``.
    :param uid: the speaker's UID (``RINCON_...01400``), the stem of its SIDs.
    :param address: the speaker's IP address; NOTIFYs are sent from it.
    :param full_state: returns every evented variable of a service, for SEQ 0 NOTIFYs.
    :param server_header: the ``Server`` header of GENA answers
        (``Linux UPnP/1.0 Sonos/85.0-65270 (ZPS16)``).
    :param max_timeout: the longest subscription granted, in seconds.
    :param notify_timeout: seconds a subscriber has to answer one NOTIFY.
    :param notifier: the NOTIFY client; a fresh :class:`Notifier` by default.
    :param moderation: seconds of a LastChange moderation window (0: every change is sent
        at once).
    """

    def __init__(
        self,
        reactor: IReactorTime,
        uid: str,
        address: str,
        full_state: FullState,
        server_header: str,
        *,
        max_timeout: int = DEFAULT_TIMEOUT,
        notify_timeout: float = 30.0,
        notifier: INotifier | None = None,
        moderation: float = DEFAULT_MODERATION,
    ) -> None:
        self._reactor = reactor
        self.uid = uid
        self.address = address
        self._full_state = full_state
        self.server_header = server_header
        self.max_timeout = max_timeout
        self.moderation = moderation
        self._pending: dict[str, dict[str, EventValue]] = {}
        self._merged: set[str] = set()
        self._windows: dict[str, IDelayedCall] = {}
        self._order: dict[str, dict[str, int]] = {}
        tcp: IReactorTCP = reactor  # type: ignore[assignment]
        self._notifier: INotifier = (
            notifier if notifier is not None else Notifier(tcp, notify_timeout)
        )
        self.faults = GenaFaults()
        self._subs: dict[str, _Subscription] = {}
        self._by_service: dict[str, dict[str, _Subscription]] = {}
        self._counter = 0
        self._paused = False
        self._stopped = False
        self._hung: set[IRequest] = set()
        self._rng = random.Random()
        self.sent = 0
        """NOTIFYs answered by the subscriber (any status)."""
        self.failed = 0
        """NOTIFYs that failed: refused, timed out, or answered other than 200."""
        self.dropped = 0
        """NOTIFYs not sent: the drop fault, or generated while paused."""

    # -- GENA requests -------------------------------------------------------------------

    def render_subscribe(self, request: IRequest, service: str) -> bytes | int:
        """Answer a SUBSCRIBE (new or renewal) on ``service``'s event URL.

        :return: the (empty) body, or ``NOT_DONE_YET`` when a hang fault holds the request.
        """
        sid = _header(request, b"sid")
        nt = _header(request, b"nt")
        callback_header = _header(request, b"callback")
        if sid is not None:
            if nt is not None or callback_header is not None:
                return self._answer(request, 400)
            return self._renew(request, service, sid, _header(request, b"timeout"))
        callback = parse_callback(callback_header)
        if callback is None or nt is None or nt.strip() != "upnp:event":
            return self._answer(request, 412)
        if not on_this_machine(callback.connect_host):
            # The simulator sends nothing off this machine (docs/simulator.md, Loopback only).
            log.info(
                "{uid}: refused a subscription for {callback}: not on this machine",
                uid=self.uid,
                callback=callback.url,
            )
            return self._answer(request, 412)
        if self._stopped:
            # Before the faults: a request held now would outlive the stop() that aborts them.
            return self._answer(request, 503)
        if self.faults.subscribe_hang:
            return self._hang(request)
        if self.faults.subscribe_status is not None:
            return self._answer(request, self.faults.subscribe_status)
        timeout = parse_timeout(_header(request, b"timeout"), self.max_timeout)
        subscription = self._add(service, callback, timeout)
        log.debug(
            "{uid}: {sid} subscribed to {service} for {callback} ({timeout} s)",
            uid=self.uid,
            sid=subscription.sid,
            service=service,
            callback=callback.url,
            timeout=timeout,
        )
        if self.faults.answer_delay > 0:
            return self._answer_later(request, self.faults.answer_delay, subscription.sid, timeout)
        return self._granted(request, subscription.sid, timeout)

    def render_unsubscribe(self, request: IRequest, service: str) -> bytes | int:
        """Answer an UNSUBSCRIBE on ``service``'s event URL."""
        sid = _header(request, b"sid")
        if sid is None:
            return self._answer(request, 412)
        if _header(request, b"nt") is not None or _header(request, b"callback") is not None:
            return self._answer(request, 400)
        subscription = self._find(service, sid)
        if subscription is None:
            return self._answer(request, 412)
        if self.faults.unsubscribe_hang:
            return self._hang(request)
        if self.faults.unsubscribe_status is not None:
            return self._answer(request, self.faults.unsubscribe_status)
        self._remove(subscription)
        log.debug("{uid}: {sid} unsubscribed", uid=self.uid, sid=sid)
        return self._granted(request)

    def _renew(self, request: IRequest, service: str, sid: str, timeout_header: str | None) -> Any:
        if self.faults.renew_hang and not self._stopped:
            return self._hang(request)
        if self.faults.renew_status is not None:
            return self._answer(request, self.faults.renew_status)
        subscription = self._find(service, sid)
        if subscription is None:
            return self._answer(request, 412)
        timeout = parse_timeout(timeout_header, self.max_timeout)
        subscription.timeout = timeout
        if subscription.expiry is not None and subscription.expiry.active():
            subscription.expiry.cancel()
        subscription.expiry = self._reactor.callLater(timeout, self._expire, subscription)
        log.debug("{uid}: {sid} renewed ({timeout} s)", uid=self.uid, sid=sid, timeout=timeout)
        return self._granted(request, sid, timeout)

    def _granted(self, request: IRequest, sid: str | None = None, timeout: int = 0) -> bytes | int:
        """The 200 answer to a granted SUBSCRIBE or renewal (``sid``), or UNSUBSCRIBE (no
        ``sid``), as the hostile-answer faults (``answer_*``) make it (those ``answer_only``
        names, when set)."""
        faults = self.faults
        method = "UNSUBSCRIBE" if sid is None else "SUBSCRIBE"
        if faults.answer_only and faults.answer_only != method:
            return self._answer(request, 200, sid, timeout if sid is not None else None)
        body = b" " * max(faults.answer_body_bytes, 1024 if faults.answer_drip > 0 else 0)
        self._answer(request, 200)
        if sid is not None:
            head_sid = sid if faults.answer_sid is None else faults.answer_sid
            head_timeout = (
                f"Second-{timeout}" if faults.answer_timeout is None else faults.answer_timeout
            )
            if head_sid:
                request.setHeader(b"SID", head_sid.encode("latin-1", "replace"))
            if head_timeout:
                request.setHeader(b"TIMEOUT", head_timeout.encode("latin-1", "replace"))
        else:
            # An UNSUBSCRIBE answer has neither: the faults add them.
            for name, value in ((b"SID", faults.answer_sid), (b"TIMEOUT", faults.answer_timeout)):
                if value:
                    request.setHeader(name, value.encode("latin-1", "replace"))
        request.setHeader(b"Content-Length", b"%d" % len(body))
        if faults.answer_status_line:
            return garbage_answer(request, faults.answer_status_line, body)
        pad_head(request, faults.answer_header_bytes)
        if faults.answer_drip > 0:
            self._hang(request)  # held like a hung request: aborted when the manager stops
            return drip(request, body, faults.answer_drip, self._reactor)
        return body

    def _answer(
        self, request: IRequest, status: int, sid: str | None = None, timeout: int | None = None
    ) -> bytes:
        request.setResponseCode(status)
        if sid is not None:
            request.setHeader(b"SID", sid.encode("ascii"))
            request.setHeader(b"TIMEOUT", f"Second-{timeout}".encode("ascii"))
        request.setHeader(b"Server", self.server_header.encode("utf-8"))
        request.setHeader(b"Content-Length", b"0")
        request.setHeader(b"Connection", b"close")
        # Sonos closes after every answer, whatever the client asked for.
        channel = getattr(request, "channel", None)
        if channel is not None and hasattr(channel, "persistent"):
            channel.persistent = False
        return b""

    def _answer_later(self, request: IRequest, delay: float, sid: str, timeout: int) -> int:
        """Answer a granted SUBSCRIBE ``delay`` seconds from now (``answer_delay``)."""

        def answer() -> None:
            # As any granted answer: the hostile-answer faults apply (``_granted``).
            body = self._granted(request, sid, timeout)
            if not isinstance(body, bytes):
                return  # NOT_DONE_YET: the fault writes it (a garbage status line, a drip)
            request.write(body)
            request.finish()

        call = self._reactor.callLater(delay, answer)
        finished: Deferred[None] = request.notifyFinish()  # type: ignore[attr-defined]
        # Finished (by answer) or lost (the client gave up): nothing more to answer.
        finished.addBoth(lambda _: call.cancel() if call.active() else None)
        # Held like a hung request until then (``held_requests``).
        return self._hang(request)

    def _hang(self, request: IRequest) -> int:
        self._hung.add(request)
        finished: Deferred[None] = request.notifyFinish()  # type: ignore[attr-defined]
        finished.addBoth(lambda _: self._hung.discard(request))
        return NOT_DONE_YET

    # -- subscriptions -------------------------------------------------------------------

    def _add(self, service: str, callback: CallbackURL, timeout: int) -> _Subscription:
        self._counter += 1
        sid = f"uuid:{self.uid}_sub{self._counter:010d}"
        head = NotifyHead.for_subscription(callback, sid, sonos_service_type(service))
        subscription = _Subscription(sid, service, callback, timeout, head)
        self._subs[sid] = subscription
        self._by_service.setdefault(service, {})[sid] = subscription
        subscription.expiry = self._reactor.callLater(timeout, self._expire, subscription)
        initial = build_propertyset(service, self._full_state(service))
        self._enqueue(subscription, initial)
        # The initial NOTIFY goes out after the SUBSCRIBE answer has been written.
        subscription.start_call = self._reactor.callLater(0, self._start, subscription)
        return subscription

    def _start(self, subscription: _Subscription) -> None:
        subscription.start_call = None
        subscription.ready = True
        self._kick(subscription)

    def _find(self, service: str, sid: str) -> _Subscription | None:
        return self._by_service.get(service, {}).get(sid.strip())

    def _expire(self, subscription: _Subscription) -> None:
        subscription.expiry = None
        log.info("{uid}: {sid} expired", uid=self.uid, sid=subscription.sid)
        self._remove(subscription)

    def _remove(self, subscription: _Subscription) -> None:
        subscription.alive = False
        self._subs.pop(subscription.sid, None)
        by_service = self._by_service.get(subscription.service)
        if by_service is not None:
            by_service.pop(subscription.sid, None)
            if not by_service:
                del self._by_service[subscription.service]
        for call in (subscription.expiry, subscription.start_call):
            if call is not None and call.active():
                call.cancel()
        subscription.expiry = subscription.start_call = None
        self._discard_pending(subscription)

    def _discard_pending(self, subscription: _Subscription) -> None:
        subscription.queue.clear()
        subscription.held = None
        if subscription.waiting is not None:
            subscription.waiting.cancel()

    # -- NOTIFY --------------------------------------------------------------------------

    def notify(self, service: str, changed: Mapping[str, EventValue]) -> None:
        """Announce ``changed`` to every subscription of ``service``: one NOTIFY each, now, or
        when the service's moderation window closes (LastChange services).

        The body is built once for all subscribers. While paused, the SEQ of each subscription
        is consumed but nothing is sent (or replayed later).
        """
        if self._stopped or not self._by_service.get(service):
            return
        if self.moderation > 0 and is_last_change(service):
            pending = self._pending.get(service)
            if pending is None:
                self._pending[service] = dict(changed)
                self._windows[service] = self._reactor.callLater(
                    self.moderation, self._close_window, service
                )
            else:
                _merge(pending, changed)
                self._merged.add(service)
            return
        self._deliver(service, changed)

    def _close_window(self, service: str) -> None:
        """Send what changed in ``service`` during its moderation window."""
        del self._windows[service]
        changed = self._pending.pop(service)
        if service in self._merged:
            self._merged.discard(service)
            changed = self._in_body_order(service, changed)
        self._deliver(service, changed)

    def _in_body_order(
        self, service: str, changed: Mapping[str, EventValue]
    ) -> dict[str, EventValue]:
        """``changed`` sorted as the service's full state orders its variables."""
        order = self._order.get(service)
        if order is None:
            order = {name: n for n, name in enumerate(self._full_state(service))}
            self._order[service] = order
        last = len(order)
        return dict(sorted(changed.items(), key=lambda item: order.get(item[0], last)))

    def _cancel_windows(self) -> None:
        for call in self._windows.values():
            if call.active():
                call.cancel()
        self._windows.clear()
        self._pending.clear()
        self._merged.clear()

    def _deliver(self, service: str, changed: Mapping[str, EventValue]) -> None:
        subscriptions = self._by_service.get(service)
        if not subscriptions or self._stopped:
            return
        if self._paused:
            for subscription in subscriptions.values():
                self._number(subscription)
                self.dropped += 1
            return
        body = build_propertyset(service, changed)
        for subscription in list(subscriptions.values()):
            self._enqueue(subscription, body)

    def _number(self, subscription: _Subscription) -> int:
        """Consume the SEQ of ``subscription``'s next NOTIFY (the ``next_seq`` fault applied)."""
        jump = self.faults.next_seq
        if jump is not None and subscription.last_seq is not None:
            self.faults.next_seq = None
            subscription.last_seq = jump - 1 if jump > 1 else MAX_SEQ
        return subscription.next_seq()

    def _enqueue(self, subscription: _Subscription, body: bytes) -> None:
        seq = self._number(subscription)
        faults = self.faults
        if faults.drop_next > 0:
            faults.drop_next -= 1
            self.dropped += 1
            log.info("{sid}: fault: dropped SEQ {seq}", sid=subscription.sid, seq=seq)
            return
        item = (seq, body)
        if faults.reorder_next > 0 and subscription.held is None:
            faults.reorder_next -= 1
            subscription.held = item
            return
        subscription.queue.append(item)
        if faults.duplicate_next > 0:
            faults.duplicate_next -= 1
            subscription.queue.append(item)
        if subscription.held is not None:
            subscription.queue.append(subscription.held)
            subscription.held = None
        self._kick(subscription)

    def _kick(self, subscription: _Subscription) -> None:
        if subscription.draining or not subscription.ready or not subscription.queue:
            return
        subscription.draining = True
        drained = Deferred.fromCoroutine(self._drain(subscription))
        drained.addErrback(self._drain_failed, subscription)

    def _drain_failed(self, failure: Failure, subscription: _Subscription) -> None:
        subscription.draining = False
        log.failure("{sid}: NOTIFY queue failed", failure, sid=subscription.sid)

    async def _drain(self, subscription: _Subscription) -> None:
        """Send the subscription's queued NOTIFYs one at a time, in order."""
        queue = subscription.queue
        try:
            while queue and subscription.alive and not self._paused:
                seq, body = queue.popleft()
                if self.faults.delay > 0:
                    waiting: Deferred[None] = deferLater(self._reactor, self.faults.delay)
                    subscription.waiting = waiting
                    try:
                        await waiting
                    except CancelledError:
                        break
                    finally:
                        subscription.waiting = None
                    if not subscription.alive:
                        break
                await self._send(subscription, seq, body)
        finally:
            subscription.draining = False

    async def _send(self, subscription: _Subscription, seq: int, body: bytes) -> None:
        callback = subscription.callback
        request = subscription.head.request(seq, body)
        try:
            status = await self._notifier.send(
                callback.connect_host, callback.port, request, self.address
            )
        except Exception as error:
            problem = f"failed: {error}"
        else:
            self.sent += 1
            if status == 200:
                return
            problem = f"answered {status}"
        self.failed += 1
        log.warn(
            "{uid}: NOTIFY {sid} SEQ {seq} to {callback} {problem}",
            uid=self.uid,
            sid=subscription.sid,
            seq=seq,
            callback=callback.url,
            problem=problem,
        )

    def send_unknown_sid(self, callback_url: str, service: str) -> Deferred[int]:
        """Send ``service``'s full state to ``callback_url`` under a SID nobody subscribed.

        :return: a Deferred firing with the HTTP status the subscriber answered (a daemon
            should answer 412).
        """
        header = callback_url if callback_url.lstrip().startswith("<") else f"<{callback_url}>"
        callback = parse_callback(header)
        if callback is None:
            raise ValueError(f"not an http:// callback URL: {callback_url!r}")
        if not on_this_machine(callback.connect_host):
            raise ValueError(
                f"callback: expected a host on this machine (127.0.0.0/8, localhost or an "
                f"address of its own), got {callback_url!r}"
            )
        while True:
            sid = f"uuid:{self.uid}_sub{self._rng.randrange(5 * 10**9, 10**10):010d}"
            if sid not in self._subs:
                break
        head = NotifyHead.for_subscription(callback, sid, sonos_service_type(service))
        body = build_propertyset(service, self._full_state(service))
        return self._notifier.send(
            callback.connect_host, callback.port, head.request(1, body), self.address
        )

    # -- speaker life ---------------------------------------------------------------------

    def subscriptions(self) -> list[dict[str, Any]]:
        """The live subscriptions, for the admin API.

        Each: ``sid``, ``service``, ``callback`` (URL), ``seq`` (SEQ of the latest NOTIFY
        generated), ``timeout`` (granted seconds), ``expires_in`` (seconds).
        """
        now = self._reactor.seconds()
        return [
            {
                "sid": subscription.sid,
                "service": subscription.service,
                "callback": subscription.callback.url,
                "seq": subscription.last_seq,
                "timeout": subscription.timeout,
                "expires_in": (
                    round(subscription.expiry.getTime() - now, 3)
                    if subscription.expiry is not None
                    else 0.0
                ),
            }
            for subscription in self._subs.values()
        ]

    def backlog(self) -> int:
        """How many NOTIFYs wait in the subscriptions' queues (not counting in-flight ones,
        nor changes waiting in a moderation window)."""
        return sum(len(subscription.queue) for subscription in self._subs.values())

    def stats(self) -> dict[str, int]:
        """Counters since start: ``sent``, ``failed``, ``dropped``, ``subscriptions``."""
        return {
            "sent": self.sent,
            "failed": self.failed,
            "dropped": self.dropped,
            "subscriptions": len(self._subs),
        }

    def pause(self) -> None:
        """Go offline: send nothing until :meth:`resume`; queued NOTIFYs are discarded.

        Subscriptions keep their timers (a speaker that stays away long enough loses them).
        """
        self._paused = True
        for subscription in self._subs.values():
            self._discard_pending(subscription)

    def resume(self) -> None:
        """Come back online; what changed while paused is not replayed."""
        self._paused = False

    @property
    def held_requests(self) -> int:
        """How many SUBSCRIBE and UNSUBSCRIBE requests a hang fault (or ``answer_delay``, or
        ``answer_drip``) holds unanswered right now."""
        return len(self._hung)

    @property
    def paused(self) -> bool:
        """Whether the speaker is offline (see :meth:`pause`)."""
        return self._paused

    def unsubscribe_all(self) -> None:
        """Drop every subscription silently (UPnP switched off); the SID counter goes on."""
        for subscription in list(self._subs.values()):
            self._remove(subscription)
        self._cancel_windows()

    def forget_all(self) -> Deferred[None]:
        """Reboot: drop every subscription and timer, abort NOTIFYs, restart the SID counter.

        :return: a Deferred firing once the aborted connections are closed.
        """
        for subscription in list(self._subs.values()):
            self._remove(subscription)
        self._cancel_windows()
        self._counter = 0
        return self._notifier.abort_all()

    def stop(self) -> Deferred[None]:
        """Cancel every timer, abort every connection and held request; no more NOTIFYs.

        :return: a Deferred firing once every connection is closed.
        """
        self._stopped = True
        self._cancel_windows()
        for request in list(self._hung):
            _abort_request(request)
        self._hung.clear()
        if not self._subs and not self._notifier.in_flight:
            return succeed(None)
        return self.forget_all()


def _merge(pending: dict[str, EventValue], changed: Mapping[str, EventValue]) -> None:
    """Merge ``changed`` into a moderation window's ``pending`` changes: the latest value of
    each variable wins, and of each channel of a channel variable (``{"Master": "33"}`` then
    ``{"LF": "90"}`` carry both)."""
    for name, value in changed.items():
        earlier = pending.get(name)
        if isinstance(value, Mapping) and isinstance(earlier, Mapping):
            pending[name] = {**earlier, **value}
        else:
            pending[name] = value


def _header(request: IRequest, name: bytes) -> str | None:
    value = request.getHeader(name)
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return str(value)


def _abort_request(request: IRequest) -> None:
    channel = getattr(request, "channel", None)
    transport = getattr(channel, "transport", None)
    if transport is not None and hasattr(transport, "abortConnection"):
        transport.abortConnection()
