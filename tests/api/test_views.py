"""Tests for sonosd.api.views: speakers, groups and health read from the snapshot."""

from __future__ import annotations

from sonosd.api import views
from sonosd.household.state import HouseholdState, SpeakerRef


def state() -> HouseholdState:
    household = HouseholdState()
    household.ensure(SpeakerRef("RINCON_B", "office", "127.0.0.3"))
    household.ensure(SpeakerRef("RINCON_A", "Kitchen", "127.0.0.2"))
    return household


def test_speakers_sorted_by_room() -> None:
    """Speakers are listed by room name, case-insensitively."""
    assert [s["uid"] for s in views.speakers(state().snapshot())] == ["RINCON_A", "RINCON_B"]


def test_speakers_mapping_shape() -> None:
    """A snapshot whose speakers are keyed by uid is read too."""
    snapshot = {"speakers": {"RINCON_X": {"name": "Den"}}}
    assert views.speakers(snapshot) == [{"name": "Den", "uid": "RINCON_X"}]


def test_lookup_by_uid_name_or_host() -> None:
    """A speaker is found by uid, room name (any case) or host."""
    household = state()
    assert views.lookup(household, "RINCON_B")["name"] == "office"
    assert views.lookup(household, "KITCHEN")["uid"] == "RINCON_A"
    assert views.lookup(household, "127.0.0.3")["uid"] == "RINCON_B"
    assert views.lookup(household, "garage") is None


def test_find_speaker_fallback() -> None:
    """The snapshot-only lookup matches uid first, then room name."""
    snapshot = state().snapshot()
    assert views.find_speaker(snapshot, "Office")["uid"] == "RINCON_B"
    assert views.find_speaker(snapshot, "RINCON_A")["name"] == "Kitchen"
    assert views.find_speaker(snapshot, "nope") is None


def test_health_status() -> None:
    """Health is starting, then ok when all are online (or asleep), degraded with reasons
    when one is offline, has UPnP off, or the household reports a problem."""
    household = HouseholdState()
    assert views.health(household.availability_counts(), 1.0, "v")["status"] == "starting"
    household = state()
    assert views.health(household.availability_counts(), 1.0, "v")["status"] == "starting"
    household.set_availability("RINCON_A", "online", time=1.0)
    household.set_availability("RINCON_B", "online", time=1.0)
    assert views.health(household.availability_counts(), 2.5, "v") == {
        "status": "ok",
        "version": "v",
        "uptime": 2.5,
        "reasons": [],
        "speakers": {"online": 2, "offline": 0, "asleep": 0, "upnp_disabled": 0, "unknown": 0},
    }
    polling = ["Kitchen AVTransport: polling (no NOTIFY arrives)"]
    degraded = views.health(household.availability_counts(), 2.5, "v", polling)
    assert (degraded["status"], degraded["reasons"]) == ("degraded", polling)
    household.set_availability("RINCON_B", "asleep", "sleeping", time=2.0)
    assert views.health(household.availability_counts(), 3.0, "v")["status"] == "ok"
    household.set_availability("RINCON_B", "offline", "gone", time=2.0)
    offline = views.health(household.availability_counts(), 3.0, "v")
    assert (offline["status"], offline["reasons"]) == ("degraded", ["1 speaker(s) offline"])
    household.set_availability("RINCON_B", "upnp_disabled", "UPnP off", time=2.0)
    assert views.health(household.availability_counts(), 3.0, "v")["status"] == "degraded"


def test_groups_shapes() -> None:
    """Groups come from the topology, a top-level list, or a mapping keyed by id."""
    assert views.groups({"topology": None}) == []
    assert views.groups({"topology": {"groups": [{"id": "g"}]}}) == [{"id": "g"}]
    assert views.groups({"groups": {"g": {"coordinator": "A"}}}) == [
        {"coordinator": "A", "id": "g"}
    ]
