"""Tests for sonosd.household.speaker: a followed speaker without SoCo until it is needed."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
import soco
import soco.services
from soco.events_base import Event as SocoEvent

from sonosd.config import SERVICES
from sonosd.gena.event import Event
from sonosd.household.speaker import (
    EVENT_PATHS,
    SpeakerHandle,
    service_object,
    soco_event,
)
from tests.paths import SAMPLES


class Device:
    """A SoCo stand-in that records its address and what it was told."""

    _uid: str | None = None
    _household_id: str | None = None

    def __init__(self, address: str) -> None:
        self.ip_address = address
        self.volume = 11


#: The services SoCo has a class for (it has none for ConnectionManager, VirtualLineIn,
#: HTControl).
SOCOS = sorted(name for name in EVENT_PATHS if hasattr(soco.services, name))


def test_soco_has_most_services() -> None:
    """SoCo has a Service class for all but a few of the services (the next test compares)."""
    assert len(SOCOS) >= len(EVENT_PATHS) - 3 and "Queue" in SOCOS


@pytest.mark.parametrize("service", SOCOS)
def test_event_paths_are_socos(service: str) -> None:
    """Each service's event path is the one SoCo's Service object has."""
    device = soco.SoCo("127.9.8.7")
    assert EVENT_PATHS[service] == service_object(device, service).event_subscription_url


def test_event_paths_are_the_speakers() -> None:
    """Each service's event path is the eventSubURL of the real speakers' descriptions."""
    found: dict[str, set[str]] = {}
    for path in SAMPLES.glob("service_descriptions/sonos-*.json"):
        for service in json.loads(path.read_text(encoding="utf-8"))["services"]:
            found.setdefault(service["name"], set()).add(service["eventSubURL"])
    for service, path in EVENT_PATHS.items():
        assert found[service] == {path}, service


def test_every_configurable_service_has_an_event_path() -> None:
    """Every service the configuration accepts can be subscribed without SoCo."""
    assert set(SERVICES) <= set(EVENT_PATHS)


def test_soco_object_built_once_on_first_use() -> None:
    """Nothing is built until a SoCo attribute is asked for; then one object is kept (asked
    from any number of threads at once), told the uid and household."""
    made: list[str] = []

    def factory(address: str) -> Device:
        made.append(address)
        return Device(address)

    handle = SpeakerHandle("127.9.8.7", "RINCON_9", "Sonos_9", factory)
    assert (handle.uid, handle.ip_address, handle.household_id, handle.built) == (
        "RINCON_9",
        "127.9.8.7",
        "Sonos_9",
        False,
    )
    ref = handle.service_ref("AVTransport")
    assert (ref.base_url, ref.event_subscription_url, ref.uid, ref.household_id) == (
        "http://127.9.8.7:1400",
        "/MediaRenderer/AVTransport/Event",
        "RINCON_9",
        "Sonos_9",
    )
    assert made == []
    volumes: list[int] = []
    threads = [threading.Thread(target=lambda: volumes.append(handle.volume)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert volumes == [11] * 8 and set(made) == {"127.9.8.7"} and handle.built
    assert handle.soco is handle.soco
    assert (handle.soco._uid, handle.soco._household_id) == ("RINCON_9", "Sonos_9")


def test_real_soco_object_is_told_who_it_is() -> None:
    """The default factory builds a SoCo object that knows its uid and household without
    asking the speaker."""
    handle = SpeakerHandle("127.9.8.6", "RINCON_8", "Sonos_8")
    assert isinstance(handle.soco, soco.SoCo)
    assert (handle.soco.uid, handle.soco.household_id) == ("RINCON_8", "Sonos_8")


def test_soco_event_for_callbacks() -> None:
    """The daemon's event becomes SoCo's, with the speaker's SoCo Service; anything else
    stays as it is."""
    ref = SpeakerHandle("127.9.8.5", "RINCON_7", "Sonos_7").service_ref("RenderingControl")
    event = soco_event(Event("uuid:s", "2", ref, 3.0, {"volume": {"Master": "9"}}))
    assert type(event) is SocoEvent
    assert (event.sid, event.seq, event.timestamp, event.volume) == (
        "uuid:s",
        "2",
        3.0,
        {"Master": "9"},
    )
    assert event.service.service_type == "RenderingControl"
    assert event.service.soco.ip_address == "127.9.8.5"
    assert event.service.soco.uid == "RINCON_7"
    other: Any = object()
    assert soco_event(other) is other and soco_event(None) is None


class Cache:
    """SoCo's ZoneGroupState as the feed uses it: recorded."""

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.subscriptions: list[Any] = []

    def process_payload(self, payload: str, source: str, source_ip: str) -> None:
        self.payloads.append(payload)

    def add_subscription(self, subscription: Any) -> None:
        self.subscriptions.append(subscription)

    def remove_subscription(self, subscription: Any) -> None:
        self.subscriptions.remove(subscription)


class Zoned(Device):
    """A SoCo stand-in with a topology cache; reading it without a household id fails."""

    cache = Cache()

    @property
    def zone_group_state(self) -> Cache:
        assert self._household_id is not None, "would read the household id over the network"
        return self.cache


class Live:
    """A live ZoneGroupTopology subscription as SoCo's cache reads it."""

    sid = "uuid:z"
    time_left = 60


def test_topology_feed_seeds_then_follows() -> None:
    """Before SoCo loads, only the household's latest document is kept; at load the cache
    gets it and the live subscription; then each new document once; a speaker without a
    household id is never fed."""
    from sonosd.household.speaker import TopologyFeed

    Zoned.cache = Cache()
    feed = TopologyFeed()
    handle = SpeakerHandle("127.9.8.4", "RINCON_4", "Sonos_4", Zoned)
    anonymous = SpeakerHandle("127.9.8.3", "RINCON_3", None, Zoned)
    subscription = Live()
    feed.subscribed(subscription, handle)
    feed.subscribed(subscription, anonymous)
    for document in ("<a/>", "<b/>"):
        feed.event(handle, Event("s", "0", None, 0.0, {"zone_group_state": document}))
    feed.event(anonymous, Event("s", "0", None, 0.0, {"zone_group_state": "<z/>"}))
    assert not handle.built and not anonymous.built
    feed._loaded(soco)
    assert Zoned.cache.payloads == ["<b/>"]
    assert [(view.sid, view.time_left) for view in Zoned.cache.subscriptions] == [("uuid:z", 60)]
    assert Zoned.cache.subscriptions[0].service.soco is handle.soco
    for document in ("<b/>", "<c/>", "<c/>"):
        feed.event(handle, Event("s", "1", None, 0.0, {"zone_group_state": document}))
    assert Zoned.cache.payloads == ["<b/>", "<c/>"] and not anonymous.built
    feed.ended(subscription)
    assert Zoned.cache.subscriptions == []
