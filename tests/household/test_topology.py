"""Tests for sonosd.household.topology: ZoneGroupState documents parsed into comparable objects."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonosd.gena.eventxml import parse_event_xml
from sonosd.household.topology import (
    Member,
    SpeakerViews,
    Topology,
    TopologyError,
    parse_channel_map,
    parse_zone_group_state,
)
from tests.paths import SAMPLES


def event_zgs(path: Path) -> str:
    """The ZoneGroupState text of a ZoneGroupTopology NOTIFY sample."""
    raw = path.read_bytes()
    if path.suffix == ".http":
        raw = raw.split(b"\n\n", 1)[1]
    text = parse_event_xml(raw)["zone_group_state"]
    assert isinstance(text, str)
    return text


DOCUMENTS: dict[str, str | bytes] = {
    path.name: path.read_bytes() for path in sorted(SAMPLES.glob("zgs/*.xml"))
}
DOCUMENTS.update(
    (path.name, path.read_bytes())
    for path in sorted(SAMPLES.glob("soap/outarg_fragment_zone-group.*.xml"))
)
DOCUMENTS.update(
    (path.name, event_zgs(path))
    for path in [
        *sorted(SAMPLES.glob("events/zonegrouptopology_*.xml")),
        SAMPLES / "gena_notify_raw/ZoneGroupTopology_seq0_sonos19.3_commandfusion.http",
    ]
)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_sample_parses(name: str) -> None:
    """Every ZGS sample gives groups whose members have a uid, a name and an address, and
    whose JSON serialises."""
    topology = parse_zone_group_state(DOCUMENTS[name])
    assert topology.groups
    for group in topology.groups:
        assert group.coordinator and group.id and group.members
        for member in group.members:
            assert member.uid.startswith("RINCON_")
            assert member.name and member.host and member.port == 1400
            assert member.boot_seq is not None
    assert json.loads(json.dumps(topology.to_json())) == topology.to_json()


def test_modern_group_with_satellite_and_vanished() -> None:
    """The fw 94.1 capture: one group of two rooms, a satellite nested in its member, and one
    vanished device with its reason."""
    topology = parse_zone_group_state(
        DOCUMENTS["zgs_grouped_HT_satellite_vanished_fw94.1_rust-oto.xml"]
    )
    (group,) = topology.groups
    assert group.coordinator == "RINCON_542A1B9463A801400"
    assert group.name == "Living Room"
    assert [member.name for member in group.members] == ["Living Room", "Kitchen"]
    living = topology.member("RINCON_542A1B9463A801400")
    assert living is not None and living.host == "10.83.0.103" and living.boot_seq == 38
    (satellite,) = living.satellites
    assert satellite.uid == "RINCON_38420B9275BE01400" and satellite.invisible
    assert dict(living.ht_channel_map)["RINCON_38420B92755401400"] == "LR"
    assert topology.group_of(satellite.uid) is group
    assert topology.coordinator_of("RINCON_7828CAE858CA01400") == group.coordinator
    assert [(d.uid, d.reason) for d in topology.vanished] == [
        ("RINCON_38420B92755401400", "UNKNOWN")
    ]
    # docs/messages.md: with the address it last had, when the speaker says.
    assert topology.tagged("Sonos_x").to_json()["vanished"] == [
        {
            "uid": "RINCON_38420B92755401400",
            "name": "Living Room",
            "reason": "UNKNOWN",
            "host": "10.83.0.115",
            "household": "Sonos_x",
        }
    ]


def test_two_standalone_speakers() -> None:
    """Two speakers on their own are two groups of one."""
    topology = parse_zone_group_state(DOCUMENTS["ha_fixture_zgs_two_single.xml"])
    assert [(g.coordinator, len(g.members)) for g in topology.groups] == [
        ("RINCON_test_10.10.10.1", 1),
        ("RINCON_test_10.10.10.2", 1),
    ]


def test_stereo_pair_from_soap_out_argument() -> None:
    """The escaped GetZoneGroupState out-argument parses; the pair shares its room name, the
    right speaker is invisible and the channel map names both."""
    topology = parse_zone_group_state(
        DOCUMENTS["outarg_fragment_zone-group.GroupState.ChannelMapSet.stereo.xml"]
    )
    (group,) = topology.groups
    assert {member.name for member in group.members} == {"Office"}
    assert sorted(member.invisible for member in group.members) == [False, True]
    assert len(group.members[0].channel_map) == 2


def test_old_format_bridge_and_line_break_in_coordinator() -> None:
    """The old <ZoneGroups> root parses; a Boost is an invisible zone bridge; a coordinator
    attribute broken over two lines is trimmed."""
    topology = parse_zone_group_state(
        DOCUMENTS["zonegrouptopology_zgs_oldformat_31.8_anonymized_jishi.xml"]
    )
    bridge = [m for g in topology.groups for m in g.members if m.name == "BOOST"]
    assert bridge and bridge[0].is_zone_bridge and bridge[0].invisible
    assert all(group.coordinator == group.coordinator.strip() for group in topology.groups)
    assert topology.vanished == ()


def test_unbalanced_capture_is_recovered() -> None:
    """A real capture with a missing end tag still yields its groups (recovering parser)."""
    topology = parse_zone_group_state(
        DOCUMENTS["zonegrouptopology_zgs_oldformat_satellites_anonymized_jishi.xml"]
    )
    assert any(member.satellites for member in topology.members())


def test_order_does_not_matter() -> None:
    """Groups and members listed in another order give an equal topology."""
    a = (
        '<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="RINCON_A" ID="RINCON_A:1">'
        '<ZoneGroupMember UUID="RINCON_A" ZoneName="A" Location="http://h1:1400/x"/>'
        '<ZoneGroupMember UUID="RINCON_B" ZoneName="B" Location="http://h2:1400/x"/>'
        '</ZoneGroup><ZoneGroup Coordinator="RINCON_C" ID="RINCON_C:1">'
        '<ZoneGroupMember UUID="RINCON_C" ZoneName="C" Location="http://h3:1400/x"/>'
        "</ZoneGroup></ZoneGroups></ZoneGroupState>"
    )
    b = (
        '<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="RINCON_C" ID="RINCON_C:1">'
        '<ZoneGroupMember UUID="RINCON_C" ZoneName="C" Location="http://h3:1400/x"/>'
        '</ZoneGroup><ZoneGroup Coordinator="RINCON_A" ID="RINCON_A:1">'
        '<ZoneGroupMember UUID="RINCON_B" ZoneName="B" Location="http://h2:1400/x"/>'
        '<ZoneGroupMember UUID="RINCON_A" ZoneName="A" Location="http://h1:1400/x"/>'
        "</ZoneGroup></ZoneGroups></ZoneGroupState>"
    )
    assert parse_zone_group_state(a) == parse_zone_group_state(b)
    assert hash(parse_zone_group_state(a)) == hash(parse_zone_group_state(b))


def test_grouping_ignores_reboots_but_not_regrouping() -> None:
    """A new BootSeq changes the topology but not its grouping; a member moving to another
    group changes both."""
    topology = parse_zone_group_state(DOCUMENTS["ha_fixture_zgs_group.xml"])
    group = topology.groups[0]
    rebooted_member = attrs.evolve(group.members[0], boot_seq=9999)
    rebooted = Topology(
        groups=(attrs.evolve(group, members=(rebooted_member, *group.members[1:])),)
    )
    assert rebooted != topology
    assert rebooted.grouping() == topology.grouping()
    split = Topology(
        groups=(
            attrs.evolve(group, members=group.members[:1]),
            attrs.evolve(
                group, id="x", coordinator=group.members[1].uid, members=group.members[1:]
            ),
        )
    )
    assert split.grouping() != topology.grouping()


def test_not_a_zone_group_state() -> None:
    """Other documents and non-XML raise TopologyError."""
    with pytest.raises(TopologyError):
        parse_zone_group_state("<Other/>")
    with pytest.raises(TopologyError):
        parse_zone_group_state(b"\x00\x01 not xml")


def test_empty_household() -> None:
    """A ZoneGroupState without groups is an empty topology."""
    assert parse_zone_group_state("<ZoneGroupState><ZoneGroups/></ZoneGroupState>") == Topology()
    assert parse_zone_group_state("<ZoneGroupState/>") == Topology()


def test_member_without_location_or_boot_seq() -> None:
    """Missing or bad Location and BootSeq give None, not an error."""
    topology = parse_zone_group_state(
        '<ZoneGroups><ZoneGroup Coordinator="RINCON_A" ID="RINCON_A:1">'
        '<ZoneGroupMember UUID="RINCON_A" ZoneName="A" BootSeq="x" Location="http://[bad"/>'
        '<ZoneGroupMember UUID="RINCON_B" ZoneName="B"/>'
        "</ZoneGroup></ZoneGroups>"
    )
    assert [(m.host, m.port, m.boot_seq) for m in topology.members()] == [
        (None, None, None),
        (None, None, None),
    ]
    assert topology.member("RINCON_Z") is None
    assert topology.coordinator_of("RINCON_Z") is None


def test_group_name_without_coordinator_member() -> None:
    """A group whose coordinator is not among its members is named after its first member."""
    topology = parse_zone_group_state(
        '<ZoneGroups><ZoneGroup Coordinator="RINCON_X" ID="RINCON_X:1">'
        '<ZoneGroupMember UUID="RINCON_A" ZoneName="A"/></ZoneGroup></ZoneGroups>'
    )
    assert topology.groups[0].name == "A"


UIDS = st.text(alphabet="ABCDEF0123456789", min_size=1, max_size=6)


@given(st.lists(st.tuples(UIDS, st.sampled_from(["LF,LF", "RF,RF", "SW", "LR", ""]))))
def test_channel_map_round_trip(pairs: list[tuple[str, str]]) -> None:
    """A channel map written as uid:channels;... parses back to its pairs."""
    text = ";".join(f"{uid}:{channels}" for uid, channels in pairs)
    assert parse_channel_map(text) == tuple(pairs)
    assert parse_channel_map(None) == ()


@given(
    st.lists(
        st.tuples(UIDS, st.text(alphabet="abc XYZ", max_size=5), st.integers(0, 500)),
        min_size=1,
        max_size=6,
        unique_by=lambda item: item[0],
    )
)
def test_generated_documents(members: list[tuple[str, str, int]]) -> None:
    """Generated single-group documents parse to exactly their members."""
    body = "".join(
        f'<ZoneGroupMember UUID="RINCON_{uid}" ZoneName="{name}" BootSeq="{seq}" '
        f'Location="http://10.0.0.{i}:1400/xml/device_description.xml"/>'
        for i, (uid, name, seq) in enumerate(members)
    )
    coordinator = f"RINCON_{members[0][0]}"
    document = (
        f'<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="{coordinator}" ID="{coordinator}:1">'
        f"{body}</ZoneGroup></ZoneGroups><VanishedDevices/></ZoneGroupState>"
    )
    topology = parse_zone_group_state(document)
    assert sorted((m.uid, m.name, m.boot_seq) for m in topology.members()) == sorted(
        (f"RINCON_{uid}", name, seq) for uid, name, seq in members
    )
    assert all(isinstance(m, Member) and m.port == 1400 for m in topology.members())


@settings(max_examples=200, derandomize=True)
@given(
    st.binary(max_size=1500)
    | st.text(max_size=1500)
    | st.sampled_from(
        [
            '<!DOCTYPE z [<!ENTITY a "aaaa">]><ZoneGroupState>&a;</ZoneGroupState>',
            "<ZoneGroupState>"
            + "<ZoneGroups>" * 5000
            + "</ZoneGroups>" * 5000
            + "</ZoneGroupState>",
        ]
    )
)
def test_any_document_gives_a_topology_or_topology_error(document: str | bytes) -> None:
    """Whatever a speaker sends as its ZoneGroupState, the parse gives a Topology or a
    TopologyError; a document with a DTD is always refused."""
    try:
        topology = parse_zone_group_state(document)
    except TopologyError:
        return
    assert isinstance(topology, Topology)
    marks = ("<!DOCTYPE", "<!ENTITY") if isinstance(document, str) else (b"<!DOCTYPE",)
    assert not any(mark in document for mark in marks)  # type: ignore[operator]


def test_a_document_escaped_twice_is_refused() -> None:
    """A ZoneGroupState escaped in an out-argument is read once; one escaped again inside it
    is a TopologyError naming it (each level would be another recursion)."""
    inner = (
        '<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="R" ID="R:1"/></ZoneGroups>'
        "</ZoneGroupState>"
    )
    once = f"<ZoneGroupState>{escape(inner)}</ZoneGroupState>"
    assert [group.id for group in parse_zone_group_state(once).groups] == ["R:1"]
    with pytest.raises(TopologyError, match="escaped in a ZoneGroupState escaped"):
        parse_zone_group_state(f"<ZoneGroupState>{escape(once)}</ZoneGroupState>")


def test_speaker_views_agree_only_when_every_reporting_speaker_shows_one_document() -> None:
    """SpeakerViews keeps each speaker's latest document: they agree when all show the same
    one, the most held one wins (ties: the one shown last), and a forgotten speaker counts no
    more."""
    views = SpeakerViews()
    assert (views.agreed(), views.most_held(), len(views)) == (None, None, 0)
    views.report("K", "old")
    views.report("O", "old")
    assert views.agreed() == "old"
    views.report("K", "new")
    assert (views.agreed(), views.documents(), "old" in views) == (None, 2, True)
    assert views.most_held() == "new"
    views.report("B", "old")
    assert views.most_held() == "old"
    views.report("O", "new")
    assert views.most_held() == "new"
    assert views.forget("B") and not views.forget("B")
    assert (views.agreed(), "old" in views, len(views)) == ("new", False, 2)


def test_groups_by_coordinator_members_by_uid() -> None:
    """Groups come ordered by coordinator uid (not by group ID) and members by uid (the
    coordinator not first), whatever the document's order (docs/messages.md)."""
    topology = parse_zone_group_state(
        '<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="RINCON_C" ID="RINCON_A:1">'
        '<ZoneGroupMember UUID="RINCON_C" ZoneName="C" Location="http://h3:1400/x"/>'
        '</ZoneGroup><ZoneGroup Coordinator="RINCON_B" ID="RINCON_Z:9">'
        '<ZoneGroupMember UUID="RINCON_B" ZoneName="B" Location="http://h2:1400/x"/>'
        '<ZoneGroupMember UUID="RINCON_A" ZoneName="A" Location="http://h1:1400/x"/>'
        "</ZoneGroup></ZoneGroups></ZoneGroupState>"
    )
    groups = topology.to_json()["groups"]
    assert [g["coordinator"] for g in groups] == ["RINCON_B", "RINCON_C"]
    assert [m["uid"] for m in groups[0]["members"]] == ["RINCON_A", "RINCON_B"]
    assert groups[0]["name"] == "B"
