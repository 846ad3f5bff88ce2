"""Tests for household.state: merged per-speaker state, availability, topology and snapshot."""

from __future__ import annotations

import pytest
from twisted.logger import capturedLogs

from sonosd.household.state import (
    HouseholdState,
    SpeakerRef,
    isotime,
    merge_variables,
    speakers_from_topology,
)
from sonosd.household.topology import Topology, parse_zone_group_state
from tests.paths import SAMPLES

KITCHEN = SpeakerRef(uid="RINCON_K", name="Kitchen", host="127.0.0.2")
OFFICE = SpeakerRef(uid="RINCON_O", name="Office", host="127.0.0.3", port=1401)


def group_document(*groups: tuple[str, list[tuple[str, str, int]]]) -> str:
    """A ZoneGroupState with ``(coordinator, [(uid, name, boot_seq)])`` groups."""
    body = ""
    for coordinator, members in groups:
        body += f'<ZoneGroup Coordinator="{coordinator}" ID="{coordinator}:1">'
        for uid, name, boot_seq in members:
            body += (
                f'<ZoneGroupMember UUID="{uid}" ZoneName="{name}" BootSeq="{boot_seq}" '
                f'Location="http://127.0.0.9:1400/xml/device_description.xml"/>'
            )
        body += "</ZoneGroup>"
    return f"<ZoneGroupState><ZoneGroups>{body}</ZoneGroups></ZoneGroupState>"


def test_speaker_ref() -> None:
    """A speaker reference gives the message's speaker object and its base URL."""
    assert KITCHEN.to_json() == {"uid": "RINCON_K", "name": "Kitchen", "host": "127.0.0.2"}
    assert OFFICE.base_url == "http://127.0.0.3:1401"
    assert SpeakerRef("RINCON_X", "X", "::1").base_url == "http://[::1]:1400"


def test_lookup() -> None:
    """Speakers are found by uid, by room name whatever its case, and by host."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    state.ensure(OFFICE)
    assert state.by_uid("RINCON_O") == OFFICE
    assert state.by_name("kITCHEN") == KITCHEN
    assert state.by_host("127.0.0.3") == OFFICE
    assert state.find("office") == OFFICE
    assert state.find("127.0.0.2") == KITCHEN
    assert state.find("nowhere") is None
    assert state.speakers() == (KITCHEN, OFFICE)
    state.remove("RINCON_O")
    assert state.find("office") is None


def test_room_with_several_speakers_prefers_the_coordinator() -> None:
    """In a stereo pair, looking up the room finds the coordinator, not the hidden half."""
    state = HouseholdState()
    left = SpeakerRef("RINCON_B", "Office", "127.0.0.4")
    right = SpeakerRef("RINCON_A", "Office", "127.0.0.5")
    state.ensure(left)
    state.ensure(right)
    assert state.by_name("office") == right
    pair = [("RINCON_A", "Office", 1), ("RINCON_B", "Office", 1)]
    state.set_topology(parse_zone_group_state(group_document(("RINCON_B", pair))))
    assert state.by_name("office") == left


def test_ensure_keeps_the_known_name_and_takes_the_address() -> None:
    """Registering a known speaker again updates its address but keeps its room name."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    moved = state.ensure(SpeakerRef("RINCON_K", "Old name", "127.0.0.7", 1400))
    assert moved == SpeakerRef("RINCON_K", "Kitchen", "127.0.0.7", 1400)
    assert state.by_host("127.0.0.7") == moved


def test_partial_merge_updates_only_its_keys() -> None:
    """A partial event updates only the variables (and channels) it carries; the change set
    lists what differs."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    full = {"volume": {"Master": 10, "LF": 100, "RF": 100}, "mute": {"Master": False}, "bass": 0}
    assert state.merge("RINCON_K", "RenderingControl", full, seq=0, time=1.0) == full
    changed = state.merge(
        "RINCON_K", "RenderingControl", {"volume": {"Master": 12, "LF": 100}}, seq=1, time=2.0
    )
    assert changed == {"volume": {"Master": 12}}
    assert state.variables("RINCON_K", "RenderingControl") == {
        "volume": {"Master": 12, "LF": 100, "RF": 100},
        "mute": {"Master": False},
        "bass": 0,
    }
    mark = state.mark("RINCON_K", "RenderingControl")
    assert mark is not None and (mark.seq, mark.time, mark.source) == (1, 2.0, "notify")
    assert state.merge("RINCON_K", "RenderingControl", {"bass": 0}, seq=2, time=3.0) == {}


def test_metadata_replaces_whole() -> None:
    """Track metadata objects replace the old ones instead of merging field by field."""
    current = {"current_track_meta_data": {"title": "A", "album": "X"}}
    changed = merge_variables(current, {"current_track_meta_data": {"title": "B", "album": None}})
    assert changed == {"current_track_meta_data": {"title": "B", "album": None}}
    assert current == changed


def test_merged_state_is_not_shared() -> None:
    """Neither the caller's dicts nor returned copies alias the stored state."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    update = {"volume": {"Master": 1}}
    state.merge("RINCON_K", "RenderingControl", update, seq=0, time=0.0)
    update["volume"]["Master"] = 99
    copy = state.variables("RINCON_K", "RenderingControl")
    copy["volume"]["Master"] = 50
    assert state.variables("RINCON_K", "RenderingControl") == {"volume": {"Master": 1}}
    assert state.variables("RINCON_X", "RenderingControl") == {}


def test_merge_unknown_speaker_fails() -> None:
    """Merging into an unregistered speaker is a programming error."""
    with pytest.raises(KeyError):
        HouseholdState().merge("RINCON_X", "AVTransport", {}, seq=0, time=0.0)


def test_clear() -> None:
    """Clearing drops one service's or every service's variables."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    state.merge("RINCON_K", "A", {"x": "1"}, seq=0, time=0.0)
    state.merge("RINCON_K", "B", {"y": "1"}, seq=0, time=0.0)
    state.clear("RINCON_K", "A")
    assert state.variables("RINCON_K", "A") == {} and state.mark("RINCON_K", "A") is None
    assert state.variables("RINCON_K", "B") == {"y": "1"}
    state.clear("RINCON_K")
    assert state.variables("RINCON_K", "B") == {}
    state.clear("RINCON_X")


def test_device_properties_rename() -> None:
    """A DeviceProperties zone_name event renames the speaker."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    state.merge("RINCON_K", "DeviceProperties", {"zone_name": "Cuisine"}, seq=3, time=0.0)
    assert state.by_name("cuisine") == SpeakerRef("RINCON_K", "Cuisine", "127.0.0.2")


def test_availability() -> None:
    """Availability starts unknown; only a change of status reports a change; the time of
    the change is kept while the status holds."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    assert state.availability("RINCON_K").status == "unknown"
    assert state.set_availability("RINCON_K", "online", "subscribed", time=10.0)
    assert not state.set_availability("RINCON_K", "online", "renewed", time=20.0)
    availability = state.availability("RINCON_K")
    assert (availability.status, availability.reason, availability.since) == (
        "online",
        "renewed",
        10.0,
    )
    assert state.set_availability("RINCON_K", "offline", "no answer", time=30.0)
    assert state.availability("RINCON_K").to_json() == {
        "status": "offline",
        "reason": "no answer",
        "since": "1970-01-01T00:00:30.000Z",
    }
    assert state.availability("RINCON_X").status == "unknown"
    assert state.set_availability("RINCON_K", "asleep", "sleeping", time=40.0)
    assert state.availability("RINCON_K").online is False
    assert state.availability_counts() == {
        "online": 0,
        "offline": 0,
        "asleep": 1,
        "upnp_disabled": 0,
        "unknown": 0,
    }
    with pytest.raises(ValueError):
        state.set_availability("RINCON_K", "dozing", time=50.0)


def test_topology_observers() -> None:
    """Observers hear every change with the old and new topology (None first), not a repeat
    of the same one; a failing observer does not stop the others."""
    state = HouseholdState()
    seen: list[tuple[Topology | None, Topology]] = []

    def broken(old: Topology | None, new: Topology) -> None:
        raise RuntimeError("observer bug")

    state.add_topology_observer(broken)
    state.add_topology_observer(lambda old, new: seen.append((old, new)))
    first = parse_zone_group_state(group_document(("RINCON_K", [("RINCON_K", "Kitchen", 1)])))
    rebooted = parse_zone_group_state(group_document(("RINCON_K", [("RINCON_K", "Kitchen", 2)])))
    with capturedLogs() as events:
        assert state.set_topology(first) is None
        assert state.set_topology(first) is first
        assert state.set_topology(rebooted) is first
    assert seen == [(None, first), (first, rebooted)]
    assert len([event for event in events if "log_failure" in event]) == 2
    state.remove_topology_observer(broken)
    state.remove_topology_observer(broken)
    assert state.topology is rebooted


def test_topology_renames_speakers() -> None:
    """Room names follow the topology."""
    state = HouseholdState()
    state.ensure(KITCHEN)
    state.set_topology(
        parse_zone_group_state(group_document(("RINCON_K", [("RINCON_K", "Keuken", 1)])))
    )
    assert state.by_uid("RINCON_K") == SpeakerRef("RINCON_K", "Keuken", "127.0.0.2")


def test_snapshot() -> None:
    """The snapshot lists every speaker with its availability and merged services, the
    topology and the alarms."""
    state = HouseholdState()
    assert state.snapshot() == {"speakers": [], "topology": None, "alarms": None}
    state.set_alarms("RINCON_K:3", [{"id": 3}])
    snapshot = state.snapshot()
    assert snapshot["alarms"] == {"version": "RINCON_K:3", "alarms": [{"id": 3}]}
    snapshot["alarms"]["alarms"].clear()
    assert state.alarms == {"version": "RINCON_K:3", "alarms": [{"id": 3}]}
    state.ensure(KITCHEN)
    state.set_availability("RINCON_K", "online", time=1.5)
    state.merge("RINCON_K", "RenderingControl", {"volume": {"Master": 3}}, seq=4, time=2.0)
    topology = parse_zone_group_state(group_document(("RINCON_K", [("RINCON_K", "Kitchen", 1)])))
    state.set_topology(topology)
    snapshot = state.snapshot()
    assert snapshot["topology"] == topology.to_json()
    assert snapshot["speakers"] == [
        {
            "uid": "RINCON_K",
            "name": "Kitchen",
            "host": "127.0.0.2",
            "port": 1400,
            "household": None,
            "availability": {
                "status": "online",
                "reason": None,
                "since": "1970-01-01T00:00:01.500Z",
            },
            "services": {
                "RenderingControl": {
                    "seq": 4,
                    "time": "1970-01-01T00:00:02.000Z",
                    "source": "notify",
                    "variables": {"volume": {"Master": 3}},
                }
            },
        }
    ]
    snapshot["speakers"][0]["services"]["RenderingControl"]["variables"]["volume"]["Master"] = 9
    assert state.variables("RINCON_K", "RenderingControl") == {"volume": {"Master": 3}}


def test_speakers_from_topology() -> None:
    """Every addressed member of a topology becomes a speaker reference."""
    topology = parse_zone_group_state(
        (SAMPLES / "zgs/zgs_grouped_HT_satellite_vanished_fw94.1_rust-oto.xml").read_bytes()
    )
    refs = list(speakers_from_topology(topology))
    assert {ref.uid for ref in refs} == {member.uid for member in topology.members()}
    assert all(ref.port == 1400 for ref in refs)


def test_isotime() -> None:
    """Times are UTC with milliseconds and a Z."""
    assert isotime(1_700_000_000.1234) == "2023-11-14T22:13:20.123Z"


def test_merge_keeps_its_own_channels() -> None:
    """Channel dicts are copied into the state (later merges change them in place); other
    values are kept as given and returned as given."""
    current: dict[str, object] = {}
    volume = {"Master": 10, "LF": 100}
    track = {"title": "A"}
    changed = merge_variables(current, {"volume": volume, "current_track_meta_data": track})
    assert changed["volume"] is volume and changed["current_track_meta_data"] is track
    assert current["volume"] == volume and current["volume"] is not volume
    assert current["current_track_meta_data"] is track
    assert merge_variables(current, {"volume": {"Master": 20, "LF": 100}}) == {
        "volume": {"Master": 20}
    }
    assert volume == {"Master": 10, "LF": 100}
    assert merge_variables(current, {"volume": {"Master": 20}, "mute": None}) == {"mute": None}


def test_merge_copies_nested_values() -> None:
    """A value holding mappings or lists is copied into the state, not kept."""
    current: dict[str, object] = {}
    nested = {"a": {"b": [1, {"c": 2}]}}
    merge_variables(current, {"x": nested})
    nested["a"]["b"].append(3)  # type: ignore[index]
    assert current == {"x": {"a": {"b": [1, {"c": 2}]}}}


def test_households_kept_apart() -> None:
    """Each household's topology is kept on its own: a second household does not replace the
    first; lookups by uid find the right one; the snapshot lists both, each group named with
    its household."""
    state = HouseholdState()
    seen: list[tuple[str | None, str | None]] = []
    state.add_topology_observer(
        lambda old, new: seen.append((None if old is None else old.household, new.household))
    )
    first = parse_zone_group_state(group_document(("RINCON_A", [("RINCON_A", "Attic", 1)])))
    second = parse_zone_group_state(group_document(("RINCON_B", [("RINCON_B", "Barn", 1)])))
    state.set_topology(first.tagged("Sonos_1"))
    state.set_topology(second.tagged("Sonos_2"))
    state.ensure(SpeakerRef("RINCON_B", "Barn", "127.0.0.9", household="Sonos_2"))
    assert seen == [(None, "Sonos_1"), (None, "Sonos_2")]
    assert set(state.topologies()) == {"Sonos_1", "Sonos_2"}
    assert state.topology_for("RINCON_A") == first.tagged("Sonos_1")
    assert state.topology_for("RINCON_B") == second.tagged("Sonos_2")
    assert state.topology_for("RINCON_C") is None
    merged = state.topology
    assert merged is not None and merged.coordinator_of("RINCON_B") == "RINCON_B"
    groups = state.snapshot()["topology"]["groups"]
    assert [(g["coordinator"], g["household"]) for g in groups] == [
        ("RINCON_A", "Sonos_1"),
        ("RINCON_B", "Sonos_2"),
    ]
    assert state.snapshot()["speakers"][0]["household"] == "Sonos_2"
    state.set_topology(first.tagged("Sonos_1"))
    assert len(seen) == 2
