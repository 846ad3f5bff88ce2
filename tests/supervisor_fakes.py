"""Small recording fakes of the supervisor's collaborators (runner, hub, GENA, SoCo, reader)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.base import DelayedCall
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock

from sonosd.config import DEFAULT_SERVICES, Device, SubscriptionConfig
from sonosd.household.keepalive import SupervisorContext
from sonosd.household.probe import Description
from sonosd.household.resync import comparable
from sonosd.household.supervisor import SpeakerSupervisor


def _due(call: DelayedCall) -> float:
    return call.getTime()


class _OrderedCall(DelayedCall):
    """A call of an ``OrderedClock``, which tells it when a reset or delay moved it."""

    def __init__(self, clock: OrderedClock, *args: Any) -> None:
        super().__init__(*args)
        self._clock = clock

    def reset(self, secondsFromNow: float) -> None:
        super().reset(secondsFromNow)
        self._clock.moved = True

    def delay(self, secondsLater: float) -> None:
        super().delay(secondsLater)
        self._clock.moved = True


class OrderedClock(Clock):
    """A Clock for hundreds of pending calls: a new call is put in its place (a binary
    search), where Clock sorts the whole list on every callLater and after every call it runs
    (seconds of a test's time with 800 subscriptions). Same order as Clock: by due time, calls
    due together in the order they were made; a call reset or delayed is put back in order
    before the next call is made or run."""

    def __init__(self) -> None:
        super().__init__()
        self.moved = False

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        call = _OrderedCall(
            self,
            self.seconds() + delay,
            callable,
            args,
            kw,
            self.calls.remove,
            lambda c: None,
            self.seconds,
        )
        self._sortCalls()
        bisect.insort_right(self.calls, call, key=_due)
        return call

    def _sortCalls(self) -> None:
        if self.moved:
            self.moved = False
            self.calls.sort(key=_due)


class HttpError(Exception):
    """A GENA failure with an HTTP status, as ``sonosd.gena.GenaError`` carries one."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


class FakeRunner:
    """Runs each call synchronously (or holds it when ``hold`` is set) and records it."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...], object, float | None]] = []
        self.hold = False
        self.pending: list[Deferred[Any]] = []

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: object | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> Deferred[Any]:
        self.calls.append((fn, args, key, timeout))
        if self.hold:
            d: Deferred[Any] = Deferred()
            self.pending.append(d)
            return d
        try:
            return succeed(fn(*args, **kwargs))
        except Exception as e:
            return fail(e)

    def names(self) -> list[str]:
        return [fn.__name__ for fn, _, _, _ in self.calls]


SoapCall = tuple[str, int, str, str, tuple[tuple[str, Any], ...], "float | None"]


class FakeSoap:
    """A ``household.soap.SoapCaller`` that records each call ``(host, port, service, action,
    arguments, timeout)`` and answers ``answer(call)`` at once (or holds the call when
    ``hold`` is set; an exception returned by ``answer`` fails it)."""

    def __init__(self, answer: Callable[[SoapCall], Any]) -> None:
        self.answer = answer
        self.calls: list[SoapCall] = []
        self.hold = False
        self.pending: list[Deferred[Any]] = []

    def call(
        self,
        host: str,
        port: int,
        service: str,
        action: str,
        arguments: Any = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[dict[str, str]]:
        made: SoapCall = (host, port, service, action, tuple(arguments), timeout)
        self.calls.append(made)
        if self.hold:
            d: Deferred[Any] = Deferred()
            self.pending.append(d)
            return d
        result = self.answer(made)
        return fail(result) if isinstance(result, Exception) else succeed(result)


class FakeRendering:
    def __init__(self, device: FakeSoCo) -> None:
        self.device = device

    def GetVolume(self, args: Any) -> dict[str, str]:
        self.device.pings += 1
        if self.device.down is not None:
            raise self.device.down
        return {"CurrentVolume": "12"}


class FakeSoCo:
    """A SoCo stand-in: identity properties and a ``renderingControl.GetVolume`` ping."""

    def __init__(self, address: str, uid: str, name: str = "Kitchen", boot_seq: int = 5) -> None:
        self.ip_address = address
        self.uid = uid
        self.player_name = name
        self.household_id = "Sonos_test"
        self.boot_seqnum = boot_seq
        self.down: Exception | None = None
        self.pings = 0
        self.renderingControl = FakeRendering(self)


class FakeHousehold:
    """Speakers by address: ``soco_factory``, ``describe`` and ``ping`` of the context, with
    uids per address; ``unreachable`` addresses refuse, ``hold`` holds every answer."""

    def __init__(self) -> None:
        self.uids: dict[str, str] = {}
        self.devices: dict[str, FakeSoCo] = {}
        self.unreachable: set[str] = set()
        self.household_id = "Sonos_test"
        self.hold = False
        self.pending: list[Deferred[Any]] = []
        self.described: list[tuple[str, int, float]] = []

    def soco(self, address: str) -> FakeSoCo:
        if address in self.unreachable:
            raise ConnectionRefusedError()
        device = self.devices.get(address)
        if device is None:
            uid = self.uids.get(address, "RINCON_" + address.replace(".", "") + "01400")
            device = self.devices[address] = FakeSoCo(address, uid)
        return device

    def _held(self) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append(d)
        return d

    def describe(self, host: str, port: int, timeout: float) -> Deferred[Description]:
        self.described.append((host, port, timeout))
        if self.hold:
            return self._held()
        if host in self.unreachable:
            return fail(ConnectionRefusedError())
        device = self.soco(host)
        return succeed(Description(device.uid, device.player_name, household_id=self.household_id))

    def ping(self, host: str, port: int, timeout: float) -> Deferred[Any]:
        device = self.soco(host) if host not in self.unreachable else None
        if device is not None:
            device.pings += 1
        if self.hold:
            return self._held()
        if device is None:
            return fail(ConnectionRefusedError())
        if device.down is not None:
            return fail(device.down)
        return succeed(200)


class FakeUnsubscriber:
    """Records the UNSUBSCRIBEs of replaced SIDs: ``(host, port, path, sid)``."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int, str, str]] = []
        #: When set, every UNSUBSCRIBE fails with it (the speaker cannot be reached).
        self.failure: BaseException | None = None

    def __call__(self, host: str, port: int, path: str, sid: str, timeout: float) -> Deferred[Any]:
        self.sent.append((host, port, path, sid))
        return fail(self.failure) if self.failure is not None else succeed(None)


@attrs.define
class FakeEvent:
    sid: str
    seq: str
    variables: dict[str, Any] = attrs.field(factory=dict)


class FakeSubscription:
    """A GENA subscription whose requests answer as the test says (default: at once, OK)."""

    counter = 0

    def __init__(self, gena: FakeGena, device: Any, service: str) -> None:
        self.gena = gena
        self.device = device
        self.service = service
        self.sid: str | None = None
        self.timeout: int | None = None
        self.is_subscribed = False
        self.callback: Callable[[Any], None] | None = None
        self.requests: list[str] = []
        self.pending: list[Deferred[Any]] = []
        self.cancelled = False
        self.event_path = f"/{service}/Event"
        self.time_left = 0.0
        #: As ``GenaSubscription.expires`` (the test sets it where it matters).
        self.expires: float | None = None

    def _answer(self, kind: str) -> Deferred[Any]:
        self.requests.append(kind)
        self.gena.log.append((kind, self.device.uid, self.service))
        answer = self.gena.answers.get(kind)
        if answer == "hang":
            # As sonosd.gena: a request cancelled (timed out) ends the subscription locally.
            d: Deferred[Any] = Deferred(lambda _: setattr(self, "is_subscribed", False))
            self.pending.append(d)
            return d
        if isinstance(answer, Exception):
            if kind != "subscribe":
                self.is_subscribed = False
            return fail(answer)
        if kind == "subscribe":
            FakeSubscription.counter += 1
            self.sid = f"uuid:{self.device.uid}_sub{FakeSubscription.counter:010d}"
            self.is_subscribed = True
            self.timeout = self.gena.granted
            self.time_left = float(self.gena.granted)
        elif kind == "renew":
            self.timeout = self.gena.granted
        else:
            self.is_subscribed = False
        return succeed(self)

    def subscribe(self, requested_timeout: int | None = None, auto_renew: bool = False) -> Any:
        self.gena.requested.append((requested_timeout, auto_renew))
        return self._answer("subscribe")

    def renew(self, requested_timeout: int | None = None) -> Deferred[Any]:
        return self._answer("renew")

    def unsubscribe(self) -> Deferred[Any]:
        if not self.is_subscribed:
            return succeed(self)
        return self._answer("unsubscribe")

    def cancel(self) -> None:
        self.cancelled = True
        self.is_subscribed = False
        for d in self.pending:
            if not d.called:
                d.cancel()

    def grant(self) -> None:
        """Answer the SUBSCRIBE left unanswered (a ``hang`` answer): granted, as late as the
        test says."""
        [waiting] = [d for d in self.pending if not d.called]
        FakeSubscription.counter += 1
        self.sid = f"uuid:{self.device.uid}_sub{FakeSubscription.counter:010d}"
        self.is_subscribed = True
        self.timeout = self.gena.granted
        self.time_left = float(self.gena.granted)
        waiting.callback(self)

    def notify(self, seq: int, **variables: Any) -> None:
        assert self.callback is not None, "no callback: the supervisor dropped this subscription"
        self.callback(FakeEvent(self.sid or "", str(seq), dict(variables)))


class FakeGena:
    """The subscription factory: records every subscription made."""

    def __init__(self) -> None:
        self.made: list[FakeSubscription] = []
        self.answers: dict[str, object] = {}
        self.granted = 1800
        self.requested: list[tuple[int | None, bool]] = []
        self.log: list[tuple[str, str, str]] = []
        self.broken: Exception | None = None
        #: The class of the subscriptions made (a test may give a subclass).
        self.kind: type[FakeSubscription] = FakeSubscription

    def __call__(self, device: Any, service: str) -> FakeSubscription:
        if self.broken is not None:
            raise self.broken
        subscription = self.kind(self, device, service)
        self.made.append(subscription)
        return subscription

    def current(self, service: str, uid: str | None = None) -> FakeSubscription:
        for subscription in reversed(self.made):
            if subscription.service == service and (uid is None or subscription.device.uid == uid):
                return subscription
        raise LookupError(service)

    def count(self, kind: str) -> int:
        return sum(1 for entry in self.log if entry[0] == kind)


Message = tuple[str, dict[str, Any], dict[str, str], "str | None"]


class FakeProcessor:
    """Records events, state reads and the supervisor's messages (availability deduplicated
    as ``EventProcessor`` does)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []
        self.states: list[tuple[str, str, Mapping[str, Any], str]] = []
        self.messages: list[Message] = []
        self.status: dict[str, str] = {}
        self.known: dict[str, dict[str, Any]] = {}

    def on_event(self, speaker: Any, service: str, event: Any) -> None:
        self.events.append((speaker.uid, service, event))

    def on_state(
        self, speaker: Any, service: str, variables: Mapping[str, Any], source: str = "poll"
    ) -> None:
        self.states.append((speaker.uid, service, variables, source))

    def _say(self, type: str, fields: dict[str, Any], speaker: Any, service: str | None) -> None:
        self.messages.append((type, fields, speaker.to_json(), service))

    def speaker_availability(self, speaker: Any, status: str, reason: str | None = None) -> None:
        if self.status.get(speaker.uid) != status:
            self.status[speaker.uid] = status
            self._say(f"speaker.{status}", {"reason": reason}, speaker, None)

    def speaker_removed(self, speaker: Any, reason: str) -> None:
        self._say("speaker.removed", {"reason": reason}, speaker, None)

    def subscription_lost(self, speaker: Any, service: str, reason: str) -> None:
        self._say("subscription.lost", {"reason": reason}, speaker, service)

    def subscription_restored(self, speaker: Any, service: str, reason: str | None = None) -> None:
        self._say("subscription.restored", {"reason": reason}, speaker, service)

    def events_gap(
        self,
        speaker: Any,
        service: str,
        expected: int | None,
        got: int | None,
        reason: str | None = None,
    ) -> None:
        self._say(
            "events.gap", {"expected": expected, "got": got, "reason": reason}, speaker, service
        )

    def differences(self, speaker: Any, service: str, variables: Mapping[str, Any]) -> list[str]:
        """What ``self.known`` (``{service: {name: value}}``) says differently, of the values
        ``comparable`` keeps (as ``EventProcessor.differences``)."""
        known = self.known.get(service, {})
        return [
            f"{name}: {known[name]} here, {value} on the speaker"
            for name, value in comparable(service, known, variables).items()
            if name in known and known[name] != value
        ]

    def types(self) -> list[str]:
        return [m[0] for m in self.messages]

    def of(self, type: str) -> list[Message]:
        return [m for m in self.messages if m[0] == type]


class FakeReader:
    def __init__(self) -> None:
        self.reads: list[tuple[Any, str]] = []
        self.checks: list[list[str]] = []
        self.speaker: dict[str, dict[str, Any]] = {}
        self.error: Exception | None = None
        #: Reads never answer (a hung speaker).
        self.hang = False

    def read(self, speaker: Any, service: str) -> Deferred[dict[str, Any]]:
        self.reads.append((speaker, service))
        if self.hang:
            return Deferred()
        if self.error is not None:
            return fail(self.error)
        return succeed({"read": len(self.reads)})

    def check(self, speaker: Any, services: Any) -> Deferred[dict[str, dict[str, Any]]]:
        """The consistency check's read: ``self.speaker`` (``{service: variables}``)."""
        self.checks.append(list(services))
        if self.error is not None:
            return fail(self.error)
        return succeed({name: dict(self.speaker.get(name, {})) for name in services})


class Harness:
    """A supervisor context made of fakes and an ``OrderedClock``."""

    def __init__(
        self,
        services: tuple[str, ...] = ("RenderingControl",),
        resolve: Callable[[str], str] = lambda host: host,
        **config: Any,
    ) -> None:
        """@param resolve: Host name to address (the context's; default: the name itself)."""
        self.clock = OrderedClock()
        self.runner = FakeRunner()
        self.processor = FakeProcessor()
        self.reader = FakeReader()
        self.gena = FakeGena()
        self.household = FakeHousehold()
        self.jitter = 0.0
        # The consistency check reads the speaker (activity): off unless a test asks for it.
        config.setdefault("check_interval", 0.0)
        self.unsubscriber = FakeUnsubscriber()
        self.config = SubscriptionConfig(**config)
        self.ctx = SupervisorContext(
            clock=self.clock,
            runner=self.runner,
            processor=self.processor,
            reader=self.reader,
            subscriptions=self.gena,
            config=self.config,
            services=services,
            callback_url=lambda host: "http://127.0.0.1:1400/",
            soco_factory=self.household.soco,
            resolve=resolve,
            random=lambda: self.jitter,
            describe=self.household.describe,
            ping=self.household.ping,
            unsubscribe=self.unsubscriber,
        )


ALL_SERVICES = DEFAULT_SERVICES


HOST = "127.0.0.2"
UID = "RINCON_12700201400"


def started(h: Harness, host: str = HOST, name: str | None = None) -> SpeakerSupervisor:
    """A speaker supervisor for ``host`` in ``h``, started (identified at once by the fakes)."""
    speaker = SpeakerSupervisor(Device(host=host, name=name), h.ctx)
    speaker.startService()
    return speaker
