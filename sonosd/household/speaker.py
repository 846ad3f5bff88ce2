# -*- test-case-name: tests.household.test_speaker -*-
"""A followed speaker and its services as the daemon knows them, SoCo built only when needed.

Subscribing, renewing and receiving events need only a speaker's address, its uid and
household and, per service, its event path: :class:`SpeakerHandle` and
:class:`~sonosd.gena.core.ServiceRef` carry them. The SoCo object (``SpeakerHandle.soco``) is
built, and SoCo loaded (``sonosd.lazysoco``), the first time something asks for what only
SoCo has (the household's own reads are SOAP from the reactor, ``household.soap``). An idle
daemon never loads SoCo, with requests and lxml ~11 MB of resident memory (issue 17).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit
from weakref import WeakKeyDictionary

from twisted.logger import Logger

from sonosd import lazysoco
from sonosd.gena.core import BaseSubscription, ServiceRef
from sonosd.gena.event import Event

log = Logger()

#: Each service's attribute on a ``soco.SoCo`` (``Queue`` has none: ``service_object``).
SOCO_ATTRIBUTES: Mapping[str, str] = {
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

#: Each service's event path, as SoCo's ``Service.event_subscription_url`` has it and as the
#: speakers' service descriptions give it (``eventSubURL``; tests check both).
EVENT_PATHS: Mapping[str, str] = {
    "AVTransport": "/MediaRenderer/AVTransport/Event",
    "RenderingControl": "/MediaRenderer/RenderingControl/Event",
    "GroupRenderingControl": "/MediaRenderer/GroupRenderingControl/Event",
    "Queue": "/MediaRenderer/Queue/Event",
    "ZoneGroupTopology": "/ZoneGroupTopology/Event",
    "ContentDirectory": "/MediaServer/ContentDirectory/Event",
    "DeviceProperties": "/DeviceProperties/Event",
    "AlarmClock": "/AlarmClock/Event",
    "SystemProperties": "/SystemProperties/Event",
    "MusicServices": "/MusicServices/Event",
    "AudioIn": "/AudioIn/Event",
    "GroupManagement": "/GroupManagement/Event",
    "ConnectionManager": "/MediaRenderer/ConnectionManager/Event",
    "VirtualLineIn": "/MediaRenderer/VirtualLineIn/Event",
    "HTControl": "/HTControl/Event",
}


def service_object(device: Any, service: str) -> Any:
    """The SoCo ``Service`` object named ``service`` on ``device`` (``Queue`` included)."""
    attribute = SOCO_ATTRIBUTES.get(service)
    if attribute is not None:
        return getattr(device, attribute)
    from soco import services

    return getattr(services, service)(device)


class SpeakerHandle:
    """A speaker: address, port, uid and household, and its SoCo object once needed.

    Any attribute it does not hold itself is the SoCo object's (``handle.avTransport``,
    ``handle.get_current_transport_info``): code that runs SoCo calls in the pool takes a
    handle as it took a SoCo object, and the first such call builds it there.

    @param ip_address: The speaker's address.
    @param uid: Its uid (``RINCON_...``; ``None``: not known).
    @param household_id: Its household (``None``: not known).
    @param factory: Builds the SoCo object of an address (``sonosd.lazysoco.speaker``, or a
        fake in tests); SoCo is then told the uid and household, so that it never reads them
        itself (through GetZoneGroupState, which large households refuse).
    @param port: The speaker's HTTP port.
    """

    def __init__(
        self,
        ip_address: str,
        uid: str | None,
        household_id: str | None,
        factory: Callable[[str], Any] = lazysoco.speaker,
        port: int = lazysoco.SONOS_PORT,
    ) -> None:
        self.ip_address = ip_address
        self.uid = uid
        #: SoCo's name for a known uid (``resync.speaker_key`` reads it without SoCo).
        self._uid = uid
        self.household_id = household_id
        self.port = port
        self._factory = factory
        self._device: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        """Whether the SoCo object exists yet."""
        return self._device is not None

    @property
    def soco(self) -> Any:
        """The SoCo object (built on first use, from any thread; the same one ever after)."""
        device = self._device
        if device is None:
            # Built outside the lock: building may load SoCo (sonosd.lazysoco's lock), whose
            # hooks build handles' objects in turn. SoCo objects are one per address anyway.
            built = _told(self._factory(self.ip_address), self)
            with self._lock:
                if self._device is None:
                    self._device = built
                device = self._device
        return device

    def __getattr__(self, name: str) -> Any:
        return getattr(self.soco, name)

    def __repr__(self) -> str:
        return f"<SpeakerHandle {self.uid} at {self.ip_address}>"

    def service_ref(self, service: str) -> ServiceRef:
        """The light description of ``service`` on this speaker (what a subscription needs).

        @raise KeyError: For a service name the daemon does not know.
        """
        return ServiceRef(
            base_url=f"http://{self.ip_address}:{self.port}",
            event_subscription_url=EVENT_PATHS[service],
            service_type=service,
            uid=self.uid,
            household_id=self.household_id,
        )


def _told(device: Any, handle: SpeakerHandle) -> Any:
    for attribute, value in (("_uid", handle.uid), ("_household_id", handle.household_id)):
        known = hasattr(device, attribute) or type(device).__module__.startswith("soco")
        if value is not None and known:
            setattr(device, attribute, value)
    return device


def soco_event(event: Any) -> Any:
    """SoCo's ``Event`` for one of the daemon's events (``sonosd.gena.event.Event``, whose
    ``service`` is a ``ServiceRef``), with the SoCo ``Service`` of that speaker: what Python
    callbacks are documented to receive. Loads SoCo; anything else (``None``, SoCo's own
    events) is returned as it is."""
    if not isinstance(event, Event):
        return event
    service = event.service
    if isinstance(service, ServiceRef):
        handle = SpeakerHandle(
            urlsplit(service.base_url).hostname or "",
            service.uid,
            service.household_id,
        )
        service = service_object(handle.soco, service.service_type)
    from soco.events_base import Event as SocoEvent

    return SocoEvent(event.sid, event.seq, service, event.timestamp, event.variables)


class TopologyFeed:
    """SoCo's topology caches kept fed from the daemon's ZoneGroupTopology events, once SoCo
    is loaded.

    SoCo answers ``group``, ``is_coordinator`` (a snapshot's restore, joins) from its
    household's ``ZoneGroupState``, which polls ``GetZoneGroupState`` unless a ZoneGroupTopology
    subscription feeds it (large households answer that call with UPnP 501). The public
    ``sonosd.gena.Subscription`` feeds it; the daemon's subscriptions carry no SoCo, so this
    does it for them: while SoCo is not loaded it only keeps each household's latest document;
    when SoCo loads (``install``: a ``sonosd.lazysoco`` hook) every household's cache gets that
    document and every live ZoneGroupTopology subscription, and from then on each event.
    """

    def __init__(self) -> None:
        self.loaded = False
        #: Per household, the latest ZoneGroupState and the speaker it came from.
        self._latest: dict[str | None, tuple[str, SpeakerHandle]] = {}
        self._live: WeakKeyDictionary[Any, SpeakerHandle] = WeakKeyDictionary()
        #: What SoCo's cache holds (weakly) for each live subscription.
        self._views: WeakKeyDictionary[Any, _SocoView] = WeakKeyDictionary()
        #: Per SoCo ZoneGroupState, the last document given to it.
        self._fed: WeakKeyDictionary[Any, str] = WeakKeyDictionary()

    def install(self) -> None:
        """Seed SoCo's caches when it loads (at once if it has already)."""
        lazysoco.on_load(self._loaded)

    def _loaded(self, soco: Any) -> None:
        self.loaded = True
        # This runs in the thread that loaded SoCo (a pool thread, say) while the reactor
        # thread may add a subscription: a copy that raced is taken again.
        for _ in range(10):
            try:
                live, latest = list(self._live.items()), list(self._latest.values())
                break
            except RuntimeError:
                continue
        else:
            return
        for subscription, handle in live:
            self._track(subscription, handle)
        for text, handle in latest:
            self._give(handle, text)

    def subscribed(self, subscription: Any, handle: SpeakerHandle) -> None:
        """``subscription`` (of ``handle``'s ZoneGroupTopology) is live: SoCo need not poll."""
        if handle.household_id is None:
            return  # see ``event``
        self._live[subscription] = handle
        if self.loaded:
            self._track(subscription, handle)

    def ended(self, subscription: Any) -> None:
        """``subscription`` has ended."""
        handle = self._live.pop(subscription, None)
        view = self._views.pop(subscription, None)
        if handle is not None and view is not None:
            with contextlib.suppress(Exception):
                handle.soco.zone_group_state.remove_subscription(view)

    def event(self, handle: SpeakerHandle, event: Any) -> None:
        """A ZoneGroupTopology event of ``handle``: its document kept, and given to SoCo."""
        text = event.variables.get("zone_group_state")
        if not isinstance(text, str) or handle.household_id is None:
            # Without its household id SoCo would read it over the network to find the
            # cache (as the public Subscription, this skips such a speaker).
            return
        self._latest[handle.household_id] = (text, handle)
        if self.loaded:
            self._give(handle, text)

    def _track(self, subscription: Any, handle: SpeakerHandle) -> None:
        try:
            view = self._views.get(subscription)
            if view is None:
                view = self._views[subscription] = _SocoView(subscription, handle)
            handle.soco.zone_group_state.add_subscription(view)
        except Exception:
            log.failure("SoCo's topology cache did not take {speaker}", speaker=handle.uid)

    def _give(self, handle: SpeakerHandle, text: str) -> None:
        # Every speaker of a household sends the same document: each is parsed once.
        try:
            cache = handle.soco.zone_group_state
            if self._fed.get(cache) == text:
                return
            cache.process_payload(payload=text, source="event", source_ip=handle.ip_address)
            self._fed[cache] = text
        except Exception as error:
            # The speaker's document (SoCo's lxml refuses one nested over 256 deep): one
            # line, no traceback; SoCo reads the topology itself when it needs it.
            log.warn(
                "SoCo's topology cache did not take the document of {speaker}: {error}",
                speaker=handle.uid,
                error=str(error)[:200],
            )


class _SocoView:
    """What SoCo's ``ZoneGroupState`` reads of a subscription that feeds it: ``sid``,
    ``time_left`` and ``service`` (``service_type``, ``soco``)."""

    def __init__(self, subscription: Any, handle: SpeakerHandle) -> None:
        self._subscription = subscription
        self._handle = handle

    @property
    def sid(self) -> str | None:
        sid: str | None = self._subscription.sid
        return sid

    @property
    def time_left(self) -> float:
        left: float = self._subscription.time_left
        return left

    @property
    def service(self) -> Any:
        return self

    @property
    def service_type(self) -> str:
        return "ZoneGroupTopology"

    @property
    def soco(self) -> Any:
        return self._handle.soco


class TopologySubscription(BaseSubscription):
    """A daemon's ZoneGroupTopology subscription that tells a ``TopologyFeed`` about itself
    and its events (see there)."""

    def __init__(
        self,
        service: Any,
        listener: Any,
        *,
        handle: SpeakerHandle,
        feed: TopologyFeed,
        **options: Any,
    ) -> None:
        super().__init__(service, listener, **options)
        self._handle = handle
        self._feed = feed

    def send_event(self, event: Any) -> None:
        """Feed SoCo's cache (once loaded), then hand the event on."""
        self._feed.event(self._handle, event)
        super().send_event(event)

    def _track_topology(self) -> None:
        self._feed.subscribed(self, self._handle)

    def _untrack_topology(self) -> None:
        self._feed.ended(self)
