"""Tests for sonosd.household.events: events and the supervisor's observations become schema-valid
messages, and the household state follows them."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from soco.events_base import Event
from twisted.internet.task import Clock

from sonosd.delivery.hub import Hub, Message
from sonosd.gena.eventxml import parse_event_xml
from sonosd.household.alarms import parse_alarm_list
from sonosd.household.events import EventProcessor, parse_seq
from sonosd.household.soap import out_arguments
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import TopologyError
from tests.paths import ROOT, SAMPLES

SCHEMA = json.loads((ROOT / "sonosd" / "message.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
KITCHEN = SpeakerRef(uid="RINCON_K", name="Kitchen", host="127.0.0.2")
OFFICE = SpeakerRef(uid="RINCON_O", name="Office", host="127.0.0.3")


class Recorder:
    """A sink that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, message: Message) -> None:
        self.messages.append(message)

    def types(self) -> list[str]:
        return [message.type for message in self.messages]


def setup() -> tuple[EventProcessor, Hub, Recorder, Clock]:
    """A processor publishing into a real hub with a recording sink, on a fake clock."""
    clock = Clock()
    clock.advance(1_700_000_000)
    hub = Hub(clock)
    sink = Recorder()
    hub.add_sink(sink)
    return EventProcessor(hub, HouseholdState(), clock), hub, sink, clock


def valid(body: Any) -> Any:
    """``body`` after checking it against the message schema (and that it is JSON)."""
    VALIDATOR.validate(json.loads(json.dumps(body)))
    return body


def event(variables: dict[str, Any], seq: str = "0") -> Event:
    """A SoCo Event carrying ``variables``."""
    return Event("uuid:RINCON_K_sub0000000001", seq, "service", 0.0, variables)


def body_of(path: Path) -> bytes:
    """The NOTIFY body in a sample file."""
    raw = path.read_bytes()
    if path.suffix == ".http":
        raw = raw.split(b"\n\n", 1)[1] if b"\r\n\r\n" not in raw else raw.split(b"\r\n\r\n", 1)[1]
    return raw


def zgs(*groups: tuple[str, list[tuple[str, str, int]]]) -> str:
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
    return f"<ZoneGroupState><ZoneGroups>{body}</ZoneGroups><VanishedDevices/></ZoneGroupState>"


def test_schema_published_in_docs() -> None:
    """docs/message.schema.json is the package's schema, byte for byte, and a valid schema."""
    assert (ROOT / "docs" / "message.schema.json").read_bytes() == (
        ROOT / "sonosd" / "message.schema.json"
    ).read_bytes()
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


SAMPLE_FILES = sorted(SAMPLES.glob("events/*.xml")) + sorted(
    SAMPLES.glob("gena_notify_raw/*_seq*.http")
)


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=[p.name for p in SAMPLE_FILES])
def test_every_sample_event_gives_a_valid_message(path: Path) -> None:
    """Every real sample, parsed by our parser or SoCo's, gives a schema-valid event message."""
    processor, _, sink, _ = setup()
    service = path.name.split("_")[0] if "_seq" in path.name else "AVTransport"
    message = processor.on_event(KITCHEN, service, event(parse_event_xml(body_of(path)), "3"))
    assert valid(message.body)["type"] == "event"
    assert message.body["seq"] == 3 and message.body["source"] == "notify"
    assert message.event is not None
    assert json.loads(message.raw) == message.body
    for other in sink.messages:
        valid(other.body)


def test_event_message_shape() -> None:
    """A RenderingControl event becomes DESIGN §5's message with typed variables, and the
    speaker's state holds them."""
    processor, _, sink, _ = setup()
    body = (SAMPLES / "events/rendering-control_node-sonos-ts.xml").read_bytes()
    message = processor.on_event(KITCHEN, "RenderingControl", event(parse_event_xml(body), "17"))
    assert sink.messages == [message]
    fields = valid(message.body)
    assert fields["id"] == 1 and fields["time"].endswith("Z")
    assert fields["speaker"] == {"uid": "RINCON_K", "name": "Kitchen", "host": "127.0.0.2"}
    assert fields["service"] == "RenderingControl" and fields["seq"] == 17
    assert isinstance(fields["variables"]["volume"]["Master"], int)
    assert isinstance(fields["variables"]["mute"]["Master"], bool)
    assert processor.state.variables("RINCON_K", "RenderingControl") == fields["variables"]
    mark = processor.state.mark("RINCON_K", "RenderingControl")
    assert mark is not None and mark.seq == 17 and mark.time == 1_700_000_000


def test_partial_event_merges() -> None:
    """A partial LastChange event is published as it came and updates only its keys."""
    processor, _, sink, _ = setup()
    full = {"volume": {"Master": "10", "LF": "100", "RF": "100"}, "bass": "0", "treble": "2"}
    processor.on_event(KITCHEN, "RenderingControl", event(full, "0"))
    processor.on_event(KITCHEN, "RenderingControl", event({"volume": {"Master": "11"}}, "1"))
    assert sink.messages[-1].body["variables"] == {"volume": {"Master": 11}}
    assert processor.state.variables("RINCON_K", "RenderingControl") == {
        "volume": {"Master": 11, "LF": 100, "RF": 100},
        "bass": 0,
        "treble": 2,
    }


def test_events_variables_are_not_modified() -> None:
    """The Event's variables (which SoCo may share between events) are left untouched."""
    processor, _, _, _ = setup()
    body = (SAMPLES / "events/avtransport_full_PLAYING_node-sonos-ts.xml").read_bytes()
    variables = parse_event_xml(body)
    before = copy.copy(variables)
    processor.on_event(KITCHEN, "AVTransport", event(variables))
    assert variables == before
    assert set(variables) == set(before)


def test_album_art_is_absolute() -> None:
    """Relative album art in track metadata is made absolute with the speaker's address."""
    processor, _, _, _ = setup()
    body = (SAMPLES / "events/avtransport_lastchange_spotify_queue_jishi.xml").read_bytes()
    message = processor.on_event(KITCHEN, "AVTransport", event(parse_event_xml(body)))
    art = message.body["variables"]["current_track_meta_data"]["album_art_uri"]
    assert art.startswith("http://127.0.0.2:1400/getaa?")


def test_differences_of_a_track_uri_in_its_soap_form() -> None:
    """A queue's track URI evented in LastChange (escaped twice) and read by GetPositionInfo
    (escaped once) compare equal, as do the play modes; another track is a difference."""
    processor, _, _, _ = setup()
    body = (SAMPLES / "events/avtransport_lastchange_spotify_queue_jishi.xml").read_bytes()
    processor.on_event(KITCHEN, "AVTransport", event(parse_event_xml(body)))
    answer = (SAMPLES / "soap/AVTransport_GetPositionInfo_response_jishi.xml").read_bytes()
    other = out_arguments(answer)["TrackURI"]
    evented = (
        "x-sonos-spotify:spotify%3atrack%3a5qAFqkXoQd2RfjZ2j1ay0w?sid=9&amp;flags=8224&amp;sn=9"
    )
    same = re.sub(
        rb"<TrackURI>[^<]*</TrackURI>", f"<TrackURI>{evented}</TrackURI>".encode(), answer
    )

    def read(uri: str) -> dict[str, Any]:
        return {
            "transport_state": "PLAYING",
            "current_track_uri": uri,
            "current_play_mode": "SHUFFLE",
        }

    assert (
        processor.differences(KITCHEN, "AVTransport", read(out_arguments(same)["TrackURI"])) == []
    )
    [found] = processor.differences(KITCHEN, "AVTransport", read(other))
    assert found.startswith("current_track_uri: x-sonos-spotify:spotify%3atrack%3a5qAF")
    assert found.endswith(f", {other} on the speaker")


def test_differences_leave_out_a_group_members_play_mode() -> None:
    """A group member's evented play mode (NORMAL) is not compared with the coordinator's mode
    its GetTransportSettings may give; its x-rincon: track URI is."""
    processor, _, _, _ = setup()
    path = SAMPLES / "parsed/ha_fixture_av_transport_event_variables_groupmember.json"
    member = json.loads(path.read_text())
    processor.on_event(KITCHEN, "AVTransport", event(member))
    uri = member["current_track_uri"]
    read = {"transport_state": "PLAYING", "current_track_uri": uri, "current_play_mode": "SHUFFLE"}
    assert processor.differences(KITCHEN, "AVTransport", read) == []
    read["current_track_uri"] = "x-rincon:RINCON_other"
    assert processor.differences(KITCHEN, "AVTransport", read) == [
        f"current_track_uri: {uri} here, x-rincon:RINCON_other on the speaker"
    ]


def test_topology_changed_only_on_real_change() -> None:
    """ZoneGroupTopology events publish topology.changed the first time and when groups
    change (once the reporting speakers agree), not when another speaker repeats the state
    nor when a speaker reboots (whose new BootSeq is taken into the state at once)."""
    processor, _, sink, _ = setup()
    observed: list[Any] = []
    processor.state.add_topology_observer(lambda old, new: observed.append((old, new)))
    assert KITCHEN.household is None
    alone = zgs(
        ("RINCON_K", [("RINCON_K", "Kitchen", 1)]), ("RINCON_O", [("RINCON_O", "Office", 5)])
    )
    processor.on_event(KITCHEN, "ZoneGroupTopology", event({"zone_group_state": alone}))
    assert sink.types() == ["event", "topology.changed"]
    assert [g["coordinator"] for g in valid(sink.messages[1].body)["groups"]] == [
        "RINCON_K",
        "RINCON_O",
    ]
    # docs/messages.md: household is null while the daemon does not know it (KITCHEN's).
    assert sink.messages[1].body["household"] is None
    event_variables = valid(sink.messages[0].body)["variables"]
    assert event_variables["zone_group_state"]["groups"][0]["members"][0]["uid"] == "RINCON_K"

    processor.on_event(OFFICE, "ZoneGroupTopology", event({"zone_group_state": alone}))
    assert sink.types() == ["event", "topology.changed", "event"]
    assert "zone_group_state" not in sink.messages[2].body["variables"]

    rebooted = zgs(
        ("RINCON_K", [("RINCON_K", "Kitchen", 2)]), ("RINCON_O", [("RINCON_O", "Office", 5)])
    )
    processor.on_event(KITCHEN, "ZoneGroupTopology", event({"zone_group_state": rebooted}, "1"))
    # Only a BootSeq differs: taken at once (the supervisor needs it), with no message.
    assert sink.types()[-1] == "event"
    assert len(observed) == 2 and observed[1][1].member("RINCON_K").boot_seq == 2
    processor.on_event(OFFICE, "ZoneGroupTopology", event({"zone_group_state": rebooted}, "1"))
    assert sink.types()[-2:] == ["event", "event"] and len(observed) == 2

    grouped = zgs(("RINCON_K", [("RINCON_K", "Kitchen", 2), ("RINCON_O", "Office", 5)]))
    processor.on_event(KITCHEN, "ZoneGroupTopology", event({"zone_group_state": grouped}, "2"))
    assert sink.types()[-1] == "event"
    processor.on_event(OFFICE, "ZoneGroupTopology", event({"zone_group_state": grouped}, "2"))
    assert sink.types()[-2:] == ["event", "topology.changed"]
    changed = valid(sink.messages[-1].body)
    assert "speaker" not in changed and "service" not in changed
    assert [m["uid"] for m in changed["groups"][0]["members"]] == ["RINCON_K", "RINCON_O"]
    assert processor.state.topology is not None
    assert processor.state.topology.coordinator_of("RINCON_O") == "RINCON_K"


BEDROOM = SpeakerRef(uid="RINCON_B", name="Bedroom", host="127.0.0.4")
APART = zgs(
    ("RINCON_K", [("RINCON_K", "Kitchen", 1)]),
    ("RINCON_O", [("RINCON_O", "Office", 1)]),
    ("RINCON_B", [("RINCON_B", "Bedroom", 1)]),
)
JOINED = zgs(
    ("RINCON_K", [("RINCON_K", "Kitchen", 1), ("RINCON_O", "Office", 1)]),
    ("RINCON_B", [("RINCON_B", "Bedroom", 1)]),
)
ALL = zgs(
    (
        "RINCON_K",
        [("RINCON_K", "Kitchen", 1), ("RINCON_O", "Office", 1), ("RINCON_B", "Bedroom", 1)],
    )
)


def report(processor: EventProcessor, speaker: SpeakerRef, document: str, seq: int) -> None:
    processor.on_event(
        speaker, "ZoneGroupTopology", event({"zone_group_state": document}, str(seq))
    )


def two_of_three_report_the_join(processor: EventProcessor) -> None:
    """Kitchen, Office and Bedroom report themselves apart; then Kitchen and Office report
    Office joined to Kitchen, Bedroom not yet."""
    for speaker in (KITCHEN, OFFICE, BEDROOM):
        report(processor, speaker, APART, 0)
    report(processor, KITCHEN, JOINED, 1)
    report(processor, OFFICE, JOINED, 1)


def members_of_kitchen(sink: Recorder) -> list[list[str]]:
    """The members of Kitchen's group in each topology.changed, in order."""
    return [
        [
            member["uid"]
            for group in message.body["groups"]
            if group["coordinator"] == "RINCON_K"
            for member in group["members"]
        ]
        for message in sink.messages
        if message.type == "topology.changed"
    ]


def test_a_lagging_speakers_older_view_is_never_taken_back() -> None:
    """Two regroupings learnt by the speakers a little apart: the household's topology changes
    once the reporting speakers agree, and a lagging speaker's older view, arriving after a
    newer one, neither changes it back nor reappears in its event."""
    processor, _, sink, _ = setup()
    for speaker in (KITCHEN, OFFICE, BEDROOM):
        report(processor, speaker, APART, 0)
    assert members_of_kitchen(sink) == [["RINCON_K"]]
    report(processor, KITCHEN, JOINED, 1)
    report(processor, KITCHEN, ALL, 2)
    report(processor, OFFICE, JOINED, 1)
    report(processor, OFFICE, ALL, 2)
    report(processor, BEDROOM, JOINED, 1)
    assert members_of_kitchen(sink) == [["RINCON_K"]]
    report(processor, BEDROOM, ALL, 2)
    assert members_of_kitchen(sink) == [["RINCON_K"], ["RINCON_B", "RINCON_K", "RINCON_O"]]
    events = [m for m in sink.messages if m.type == "event"]
    assert len(events) == 9
    carrying = [m.body["seq"] for m in events if "zone_group_state" in m.body["variables"]]
    assert carrying == [0, 1, 2]
    assert processor.state.topology is not None
    assert processor.state.topology.coordinator_of("RINCON_B") == "RINCON_K"


def test_one_topology_written_in_two_orders_is_one_view() -> None:
    """Speakers that write the same groups in another order agree at once: the regrouping is
    taken when the last of them shows it, with no wait for the settle timeout, and the
    reordered document is not published again."""
    processor, _, sink, clock = setup()
    reordered = zgs(
        ("RINCON_B", [("RINCON_B", "Bedroom", 1)]),
        ("RINCON_K", [("RINCON_K", "Kitchen", 1), ("RINCON_O", "Office", 1)]),
    )
    assert reordered != JOINED
    for speaker in (KITCHEN, OFFICE, BEDROOM):
        report(processor, speaker, APART, 0)
    report(processor, KITCHEN, JOINED, 1)
    report(processor, OFFICE, reordered, 1)
    assert members_of_kitchen(sink) == [["RINCON_K"]]
    report(processor, BEDROOM, reordered, 1)
    assert members_of_kitchen(sink) == [["RINCON_K"], ["RINCON_K", "RINCON_O"]]
    assert not clock.getDelayedCalls()
    events = [m for m in sink.messages if m.type == "event"]
    carrying = [m.body["seq"] for m in events if "zone_group_state" in m.body["variables"]]
    assert carrying == [0, 1]


def test_views_that_stay_apart_are_settled_by_the_timeout() -> None:
    """A speaker that stays behind holds the household back for settle_timeout at most: then
    the view most speakers show is taken, and a later agreement on it changes nothing."""
    clock = Clock()
    hub = Hub(clock)
    sink = Recorder()
    hub.add_sink(sink)
    processor = EventProcessor(hub, HouseholdState(), clock, settle_timeout=5.0)
    two_of_three_report_the_join(processor)
    clock.advance(4.9)
    assert members_of_kitchen(sink) == [["RINCON_K"]]
    clock.advance(0.1)
    assert members_of_kitchen(sink) == [["RINCON_K"], ["RINCON_K", "RINCON_O"]]
    report(processor, BEDROOM, JOINED, 1)
    clock.advance(10)
    assert len(members_of_kitchen(sink)) == 2
    assert not clock.getDelayedCalls()


def test_a_speaker_that_stays_behind_holds_the_household_back_10_seconds() -> None:
    """docs/messages.md: if one speaker stays behind, topology.changed is published 10 s later
    with the document most of them show (the daemon's processor, built with its default)."""
    processor, _, sink, clock = setup()
    two_of_three_report_the_join(processor)
    clock.advance(9.9)
    assert members_of_kitchen(sink) == [["RINCON_K"]]
    clock.advance(0.1)
    assert members_of_kitchen(sink) == [["RINCON_K"], ["RINCON_K", "RINCON_O"]]


def test_speakers_that_disagree_for_good_change_the_topology_at_most_once_every_10_s() -> None:
    """docs/supervisor.md ("Not modelled"): speakers that never agree (one flips between
    two groupings every 4 s while the others each hold one of them) make the daemon take the
    document most of them show, again and again, changing the household's topology at most
    once every 10 s (the settle timeout), not at each flip."""
    processor, _, sink, clock = setup()
    for speaker in (KITCHEN, OFFICE, BEDROOM):
        report(processor, speaker, APART, 0)
    report(processor, OFFICE, JOINED, 1)
    report(processor, BEDROOM, APART, 1)
    changed_at: list[float] = []
    for second in range(120):
        if second % 4 == 0:
            report(processor, KITCHEN, JOINED if second % 8 else APART, second + 1)
        clock.advance(1.0)
        if len(members_of_kitchen(sink)) > len(changed_at) + 1:
            changed_at.append(clock.seconds())
    assert len(changed_at) >= 5
    assert all(later - earlier >= 10.0 for earlier, later in itertools.pairwise(changed_at))
    kitchen = members_of_kitchen(sink)
    assert all(one != other for one, other in itertools.pairwise(kitchen))


def test_a_speaker_that_stops_reporting_no_longer_holds_the_others_back() -> None:
    """When the lagging speaker goes offline or loses its ZoneGroupTopology subscription, the
    view the others agree on is taken at once."""
    processor, _, sink, clock = setup()
    two_of_three_report_the_join(processor)
    processor.subscription_lost(BEDROOM, "RenderingControl", "gone")
    assert len(members_of_kitchen(sink)) == 1
    processor.subscription_lost(BEDROOM, "ZoneGroupTopology", "gone")
    assert members_of_kitchen(sink)[-1] == ["RINCON_K", "RINCON_O"]
    report(processor, BEDROOM, JOINED, 0)
    report(processor, KITCHEN, ALL, 2)
    processor.speaker_offline(OFFICE, "connection refused")
    assert members_of_kitchen(sink)[-1] == ["RINCON_K", "RINCON_O"]
    processor.speaker_removed(BEDROOM, "left its household")
    assert members_of_kitchen(sink)[-1] == ["RINCON_B", "RINCON_K", "RINCON_O"]
    assert not clock.getDelayedCalls()


def test_a_speaker_listed_as_vanished_no_longer_holds_the_others_back() -> None:
    """A speaker that goes to sleep (or is powered off) cannot event the document that lists
    it under VanishedDevices: once another speaker shows that document, the vanished one's
    last view stops counting, and the document is taken when the others agree, with no wait
    for the settle timeout."""
    processor, _, sink, clock = setup()
    for speaker in (KITCHEN, OFFICE, BEDROOM):
        report(processor, speaker, APART, 0)
    asleep = zgs(
        ("RINCON_K", [("RINCON_K", "Kitchen", 1)]), ("RINCON_O", [("RINCON_O", "Office", 1)])
    ).replace(
        "<VanishedDevices/>",
        '<VanishedDevices><Device UUID="RINCON_B" ZoneName="Bedroom" Reason="sleeping"/>'
        "</VanishedDevices>",
    )
    report(processor, KITCHEN, asleep, 1)
    assert processor.state.topology is not None
    assert processor.state.topology.vanished_device("RINCON_B") is None
    report(processor, OFFICE, asleep, 1)
    assert not clock.getDelayedCalls()
    vanished = processor.state.topology.vanished_device("RINCON_B")
    assert vanished is not None and vanished.reason == "sleeping"
    assert [m.body["vanished"] for m in sink.messages if m.type == "topology.changed"][-1]


def test_identical_zone_group_state_dropped_before_json_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same ZoneGroupState from every other speaker of the household is dropped before it
    is parsed or turned into JSON: it appears in one event message and one topology.changed,
    and the other speakers' events carry only their own variables."""
    import sonosd.household.events as events_module

    processor, _, sink, _ = setup()
    parsed: list[str] = []
    real_parse = events_module.parse_zone_group_state

    def counting_parse(document: str | bytes) -> Any:
        parsed.append(str(document))
        return real_parse(document)

    monkeypatch.setattr(events_module, "parse_zone_group_state", counting_parse)
    document = zgs(("RINCON_K", [("RINCON_K", "Kitchen", 1), ("RINCON_O", "Office", 1)]))
    for speaker in (KITCHEN, OFFICE, KITCHEN, OFFICE):
        variables = {"zone_group_state": document, "zone_group_name": speaker.name}
        processor.on_event(speaker, "ZoneGroupTopology", event(variables))
    assert len(parsed) == 1
    assert sink.types() == ["event", "topology.changed", "event", "event", "event"]
    events = [m for m in sink.messages if m.type == "event"]
    assert ["zone_group_state" in m.body["variables"] for m in events] == [True] + [False] * 3
    assert [list(m.body["variables"]) for m in events[1:]] == [["zone_group_name"]] * 3
    assert processor.topology_duplicates == 3


def test_two_households_kept_apart() -> None:
    """Two households' ZoneGroupStates do not overwrite each other: each publishes its own
    topology.changed with its household id, alternating documents are no change, and the
    snapshot lists every household's groups."""
    processor, _, sink, _ = setup()
    attic = SpeakerRef("RINCON_A", "Attic", "127.0.0.5", household="Sonos_1")
    barn = SpeakerRef("RINCON_B", "Barn", "127.1.0.5", household="Sonos_2")
    first = zgs(("RINCON_A", [("RINCON_A", "Attic", 1)]))
    second = zgs(("RINCON_B", [("RINCON_B", "Barn", 1)]))
    for _ in range(2):
        processor.on_event(attic, "ZoneGroupTopology", event({"zone_group_state": first}))
        processor.on_event(barn, "ZoneGroupTopology", event({"zone_group_state": second}))
    changes = [valid(m.body) for m in sink.messages if m.type == "topology.changed"]
    assert [(c["household"], c["groups"][0]["coordinator"]) for c in changes] == [
        ("Sonos_1", "RINCON_A"),
        ("Sonos_2", "RINCON_B"),
    ]
    assert changes[1]["groups"][0]["household"] == "Sonos_2"
    snapshot = valid(
        {
            **processor.state.snapshot(),
            "type": "snapshot",
            "run": "r",
            "last_id": 1,
            "time": "2026-01-01T00:00:00.000Z",
        }
    )
    assert {g["household"] for g in snapshot["topology"]["groups"]} == {"Sonos_1", "Sonos_2"}
    assert {s["household"] for s in snapshot["speakers"]} == {"Sonos_1", "Sonos_2"}


def test_topology_not_stored_per_speaker_and_secrets_dropped() -> None:
    """The ZoneGroupState is household state (not merged per speaker) and
    ThirdPartyMediaServersX never reaches a message or the state."""
    processor, _, sink, _ = setup()
    variables = {
        "zone_group_state": zgs(("RINCON_K", [("RINCON_K", "Kitchen", 1)])),
        "third_party_media_servers_x": "[redacted]",
        "zone_group_name": "Kitchen",
    }
    processor.on_event(KITCHEN, "ZoneGroupTopology", event(variables))
    assert "third_party_media_servers_x" not in sink.messages[0].body["variables"]
    assert b"redacted" not in sink.messages[0].raw
    assert processor.state.variables("RINCON_K", "ZoneGroupTopology") == {
        "zone_group_name": "Kitchen"
    }


def test_unparseable_zone_group_state_is_forwarded_as_text() -> None:
    """A ZoneGroupState that cannot be parsed is logged and forwarded as its text, once: the
    same text from another speaker of the household is left out of its event."""
    processor, _, sink, _ = setup()
    processor.on_event(KITCHEN, "ZoneGroupTopology", event({"zone_group_state": "<Other/>"}))
    assert sink.types() == ["event"]
    assert sink.messages[0].body["variables"]["zone_group_state"] == "<Other/>"
    assert processor.topology_errors == 1
    processor.on_event(OFFICE, "ZoneGroupTopology", event({"zone_group_state": "<Other/>"}))
    assert sink.types() == ["event", "event"]
    assert "zone_group_state" not in sink.messages[1].body["variables"]


def test_on_state_publishes_only_changes() -> None:
    """State read by control calls is published as a poll/resync event with only what
    differs from the merged state, and not at all when nothing differs."""
    processor, _, sink, _ = setup()
    processor.on_event(KITCHEN, "RenderingControl", event({"volume": {"Master": "5"}, "bass": "0"}))
    assert processor.on_state(KITCHEN, "RenderingControl", {"bass": "0"}) is None
    message = processor.on_state(
        KITCHEN, "RenderingControl", {"volume": {"Master": "7"}, "bass": "0"}, source="resync"
    )
    fields = valid(message.body)
    assert (fields["source"], fields["seq"], fields["variables"]) == (
        "resync",
        None,
        {"volume": {"Master": 7}},
    )
    mark = processor.state.mark("RINCON_K", "RenderingControl")
    assert mark is not None and (mark.seq, mark.source) == (None, "resync")
    assert len(sink.messages) == 2


def test_on_state_topology() -> None:
    """A ZoneGroupTopology state read updates the topology like an event."""
    processor, _, sink, _ = setup()
    document = zgs(("RINCON_K", [("RINCON_K", "Kitchen", 1)]))
    message = processor.on_state(KITCHEN, "ZoneGroupTopology", {"zone_group_state": document})
    assert valid(message.body)["variables"]["zone_group_state"]["groups"][0]["name"] == "Kitchen"
    assert sink.types() == ["event", "topology.changed"]
    assert processor.on_state(KITCHEN, "ZoneGroupTopology", {"zone_group_state": document}) is None


def test_on_zone_group_state() -> None:
    """A GetZoneGroupState result publishes topology.changed only when groups change."""
    processor, _, sink, _ = setup()
    document = (SAMPLES / "zgs/zgs_grouped_HT_satellite_vanished_fw94.1_rust-oto.xml").read_bytes()
    message = processor.on_zone_group_state(document)
    fields = valid(message.body)
    assert fields["vanished"][0]["reason"] == "UNKNOWN"
    assert processor.on_zone_group_state(document) is None
    assert sink.types() == ["topology.changed"]
    with pytest.raises(TopologyError):
        processor.on_zone_group_state("<nope/>")


def test_availability_messages_on_transitions_only() -> None:
    """speaker.online/offline are published when the availability changes, with the reason."""
    processor, _, sink, clock = setup()
    first = processor.speaker_online(KITCHEN, "subscribed")
    assert valid(first.body)["reason"] == "subscribed"
    assert processor.speaker_online(KITCHEN, "renewed") is None
    clock.advance(5)
    offline = processor.speaker_offline(KITCHEN, "no answer")
    assert valid(offline.body)["speaker"]["uid"] == "RINCON_K"
    assert processor.speaker_offline(KITCHEN, "still no answer") is None
    assert processor.state.availability("RINCON_K").since == 1_700_000_005
    assert valid(processor.speaker_online(KITCHEN).body)["reason"] is None
    assert sink.types() == ["speaker.online", "speaker.offline", "speaker.online"]


def test_differences_compare_what_the_state_holds() -> None:
    """A read is compared with the state per value (per channel), only where the state has it."""
    processor, _, _, _ = setup()
    full = {"volume": {"Master": "45", "LF": "100"}, "mute": {"Master": "0"}}
    processor.on_event(KITCHEN, "RenderingControl", event(full))
    read = {"volume": {"Master": "50"}, "mute": {"Master": "0"}, "bass": "3"}
    assert processor.differences(KITCHEN, "RenderingControl", read) == [
        "volume Master: 45 here, 50 on the speaker"
    ]
    assert processor.differences(KITCHEN, "RenderingControl", {"volume": {"Master": "45"}}) == []
    assert processor.differences(KITCHEN, "AVTransport", {"transport_state": "PLAYING"}) == []


def test_supervisor_messages() -> None:
    """subscription.lost/restored and events.gap have their documented fields; ``missed``
    counts the SEQs skipped across the wrap from 4294967295 to 1."""
    processor, _, sink, _ = setup()
    lost = valid(processor.subscription_lost(KITCHEN, "AVTransport", "412 on renewal").body)
    assert (lost["service"], lost["reason"]) == ("AVTransport", "412 on renewal")
    restored = valid(processor.subscription_restored(KITCHEN, "AVTransport").body)
    assert restored["reason"] is None and restored["service"] == "AVTransport"
    gap = valid(processor.events_gap(KITCHEN, "AVTransport", expected=4, got=7).body)
    assert (gap["expected"], gap["got"], gap["missed"]) == (4, 7, 3)
    assert gap["reason"] == "SEQ 7 arrived, 4 was expected"
    wrapped = valid(processor.events_gap(KITCHEN, "AVTransport", 4294967294, 2).body)
    assert (wrapped["got"], wrapped["missed"]) == (2, 3)
    check = valid(processor.events_gap(KITCHEN, "AVTransport", 5, None, "consistency check").body)
    assert (check["expected"], check["got"], check["missed"]) == (5, None, None)
    assert check["reason"] == "consistency check"
    assert sink.types() == [
        "subscription.lost",
        "subscription.restored",
        "events.gap",
        "events.gap",
        "events.gap",
    ]


def test_snapshot_is_schema_valid() -> None:
    """The hub's snapshot of the household state validates against the schema."""
    processor, hub, _, _ = setup()
    hub.set_snapshot_provider(processor.state.snapshot)
    assert valid(hub.snapshot())["speakers"] == []
    body = (SAMPLES / "events/avtransport_full_PLAYING_node-sonos-ts.xml").read_bytes()
    processor.on_event(KITCHEN, "AVTransport", event(parse_event_xml(body), "4"))
    processor.on_zone_group_state(zgs(("RINCON_K", [("RINCON_K", "Kitchen", 1)])))
    processor.speaker_offline(OFFICE, "unreachable")
    snapshot = valid(hub.snapshot())
    assert snapshot["last_id"] == 3
    assert [speaker["name"] for speaker in snapshot["speakers"]] == ["Kitchen", "Office"]
    assert snapshot["speakers"][1]["availability"]["status"] == "offline"


def test_schema_rejects_wrong_messages() -> None:
    """The schema is strict for known types and checks only the envelope of others."""
    good = {"id": 1, "run": "r1", "time": "2026-01-01T00:00:00.000Z", "type": "events.gap"}
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(good)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate({**good, "type": "event", "speaker": {}, "service": "x"})
    VALIDATOR.validate({**good, "type": "control.result", "anything": 1})
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate({"time": good["time"], "type": "control.result"})
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate({"id": 1, "time": good["time"], "type": "control.result"})


def test_parse_seq() -> None:
    """SEQ headers become ints; junk becomes None."""
    assert parse_seq("12") == 12
    assert parse_seq(b"3") == 3
    assert parse_seq(4) == 4
    assert parse_seq("x") is None
    assert parse_seq(None) is None
    assert parse_seq(True) is None


def test_default_clock() -> None:
    """Without a clock the processor stamps state updates with the wall clock."""
    hub = Hub(Clock())
    processor = EventProcessor(hub, HouseholdState())
    processor.on_event(KITCHEN, "RenderingControl", event({"bass": "1"}))
    mark = processor.state.mark("RINCON_K", "RenderingControl")
    assert mark is not None and mark.time > 1_600_000_000


def test_alarms_changed_is_schema_valid_and_in_the_snapshot() -> None:
    """alarms_changed keeps the parsed list in the state and publishes alarms.changed; both
    the message and the snapshot validate against the schema."""
    processor, hub, _sink, _ = setup()
    hub.set_snapshot_provider(processor.state.snapshot)
    document = (
        '<Alarms><Alarm ID="3" StartTime="06:00:00" Duration="" Recurrence="ON_06" '
        'Enabled="1" RoomUUID="RINCON_K" ProgramURI="x-rincon-buzzer:0" ProgramMetaData="" '
        'PlayMode="NORMAL" Volume="20" IncludeLinkedZones="0"/></Alarms>'
    )
    message = processor.alarms_changed("RINCON_K:3", parse_alarm_list(document))
    body = valid(message.body)
    assert (body["type"], body["version"], body["alarms"][0]["id"]) == (
        "alarms.changed",
        "RINCON_K:3",
        3,
    )
    snapshot = valid(hub.snapshot())
    assert snapshot["alarms"]["version"] == "RINCON_K:3"


def test_variables_observers_see_events_and_reads() -> None:
    """Observers get each event's variables and a read's changes; one that raises is logged
    and the others still run."""
    processor, _, _, _ = setup()
    seen: list[tuple[str, str, dict[str, Any]]] = []

    def broken(ref: SpeakerRef, service: str, variables: Any) -> None:
        raise RuntimeError("observer bug")

    processor.add_variables_observer(broken)
    processor.add_variables_observer(
        lambda ref, service, v: seen.append((ref.uid, service, dict(v)))
    )
    processor.on_event(KITCHEN, "AlarmClock", event({"alarm_list_version": "RINCON_K:4"}))
    processor.on_state(KITCHEN, "AlarmClock", {"alarm_list_version": "RINCON_K:4"})
    processor.on_state(KITCHEN, "AlarmClock", {"alarm_list_version": "RINCON_K:5"})
    assert seen == [
        ("RINCON_K", "AlarmClock", {"alarm_list_version": "RINCON_K:4"}),
        ("RINCON_K", "AlarmClock", {"alarm_list_version": "RINCON_K:5"}),
    ]
