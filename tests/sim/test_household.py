"""Tests for the simulated household model (sonosd.sim.household, variables, zonegroups)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from xml.etree import ElementTree

import pytest
from soco.events_base import parse_event_xml
from twisted.internet.task import Clock

from sonosd.sim import actions
from sonosd.sim.household import Household
from sonosd.sim.propertyset import build_propertyset
from sonosd.sim.soap import UPnPError
from tests.sim_fakes import FakePresence, RecordingManager


def make(speakers: int = 3, **kwargs: object) -> tuple[Clock, Household, list[RecordingManager]]:
    clock = Clock()
    household = Household(clock, speakers=speakers, seed=7, **kwargs)  # type: ignore[arg-type]
    managers = []
    for speaker in household.speakers:
        manager = RecordingManager(clock, speaker.uid, speaker.address, speaker.full_state, "x")
        speaker.manager = manager
        speaker.network = FakePresence(address=speaker.address)
        managers.append(manager)
    return clock, household, managers


def zgs_members(household: Household) -> dict[str, dict[str, str]]:
    root = ElementTree.fromstring(household.zone_group_state())
    return {m.get("UUID", ""): dict(m.attrib) for m in root.iter("ZoneGroupMember")}


def test_identities() -> None:
    """UIDs, household ID and addresses have the real formats and follow the base address."""
    _, household, _ = make(base_address="127.0.0.10")
    assert household.household_id.startswith("Sonos_")
    assert len(household.household_id) == len("Sonos_") + 26
    for index, speaker in enumerate(household.speakers):
        assert speaker.uid.startswith("RINCON_") and speaker.uid.endswith("01400")
        assert len(speaker.uid) == len("RINCON_") + 12 + 5
        assert speaker.address == f"127.0.0.{10 + index}"
    assert [s.name for s in household.speakers] == ["Living Room", "Kitchen", "Bedroom"]


def test_same_seed_same_household() -> None:
    """A household built twice with one seed has the same IDs (stable across restarts)."""
    first = Household(Clock(), speakers=2, seed=3)
    second = Household(Clock(), speakers=2, seed=3)
    assert first.household_id == second.household_id
    assert [s.uid for s in first.speakers] == [s.uid for s in second.speakers]


def test_only_changed_variables_are_evented() -> None:
    """Setting the volume events Volume alone; setting it again to the same value events nothing."""
    _, household, managers = make()
    speaker = household.speakers[0]
    speaker.set_volume(42)
    speaker.set_volume(42)
    assert managers[0].of("RenderingControl") == [
        {"Volume": {"Master": "42", "LF": "100", "RF": "100"}}
    ]


def test_evented_values_encode_and_parse_like_a_speaker() -> None:
    """A full state turned into a NOTIFY body parses with SoCo into the model's values."""
    _, household, _ = make()
    speaker = household.speakers[0]
    speaker.set_volume(31)
    for service in ("AVTransport", "RenderingControl", "ZoneGroupTopology", "Queue"):
        body = build_propertyset(service, speaker.full_state(service))
        variables = parse_event_xml(body)
        assert variables, service
    rendering = parse_event_xml(
        build_propertyset("RenderingControl", speaker.full_state("RenderingControl"))
    )
    assert rendering["volume"]["Master"] == "31"


def test_join_events_topology_on_every_speaker() -> None:
    """A join changes the one ZoneGroupState and every speaker's manager is told."""
    _, household, managers = make()
    living, kitchen, _ = household.speakers
    household.join(kitchen, living)
    assert kitchen.coordinator is living
    assert kitchen.group is living.group
    for manager in managers:
        changes = manager.of("ZoneGroupTopology")
        assert changes and "ZoneGroupState" in changes[-1]
    avt = managers[1].of("AVTransport")[-1]
    assert avt["AVTransportURI"] == f"x-rincon:{living.uid}"
    root = ElementTree.fromstring(household.zone_group_state())
    groups = root.findall("ZoneGroups/ZoneGroup")
    assert len(groups) == 2
    joined = next(g for g in groups if g.get("Coordinator") == living.uid)
    assert [m.get("UUID") for m in joined] == [living.uid, kitchen.uid]


def test_unjoin_makes_a_new_standalone_group() -> None:
    """BecomeCoordinatorOfStandaloneGroup gives the member its own group with a new ID."""
    _, household, _ = make()
    living, kitchen, _ = household.speakers
    household.join(kitchen, living)
    delegated, group_id = household.unjoin(kitchen)
    assert delegated == living.uid
    assert kitchen.is_coordinator and kitchen.group.members == [kitchen.uid]
    assert group_id.startswith(kitchen.uid + ":")


def test_slow_regroup_shows_the_new_groups_only_after_the_delay() -> None:
    """With regroup_delay a join or unjoin takes effect at once, but the ZoneGroupState and
    its events show the old groups until regroup_delay after the last one."""
    clock, household, managers = make()
    household.set_modes(regroup_delay=2.0)
    living, kitchen, office = household.speakers

    def groups() -> list[list[str | None]]:
        root = ElementTree.fromstring(household.zone_group_state())
        return [[m.get("UUID") for m in g] for g in root.findall("ZoneGroups/ZoneGroup")]

    def topology_events() -> int:
        return sum(len(manager.of("ZoneGroupTopology")) for manager in managers)

    apart = groups()
    household.join(kitchen, living)
    assert kitchen.coordinator is living
    assert managers[1].of("AVTransport")[-1]["AVTransportURI"] == f"x-rincon:{living.uid}"
    clock.advance(1.5)
    household.join(office, living)
    clock.advance(1.5)
    assert (groups(), topology_events()) == (apart, 0)
    clock.advance(0.5)
    assert groups() == [[living.uid, kitchen.uid, office.uid]]
    assert topology_events() == len(managers)
    household.unjoin(office)
    assert office.is_coordinator and groups() == [[living.uid, kitchen.uid, office.uid]]
    clock.advance(2.0)
    assert groups() == [[living.uid, kitchen.uid], [office.uid]]
    household.join(office, living)
    household.shutdown()
    clock.advance(5.0)
    assert topology_events() == 2 * len(managers)


def test_coordinator_leaving_delegates_playback() -> None:
    """When the coordinator leaves, the next member takes over and keeps playing."""
    clock, household, _ = make(transition_delay=0.0)
    living, kitchen, _ = household.speakers
    household.join(kitchen, living)
    living.transport.play()
    clock.advance(0)
    delegated, _ = household.unjoin(living)
    clock.advance(0)
    assert delegated == kitchen.uid
    assert kitchen.is_coordinator
    assert kitchen.transport.state == "PLAYING"
    assert living.transport.state == "STOPPED"


def test_stereo_pair_is_one_room_with_an_invisible_member() -> None:
    """The stereo pair shares a name and group; the right speaker is invisible."""
    _, household, _ = make(stereo_pair=True)
    left, right, _ = household.speakers
    members = zgs_members(household)
    assert members[right.uid]["Invisible"] == "1"
    assert "Invisible" not in members[left.uid]
    assert members[left.uid]["ChannelMapSet"] == f"{left.uid}:LF,LF;{right.uid}:RF,RF"
    assert right.name == left.name and right.group is left.group
    assert household.speaker(left.name) is left
    with pytest.raises(UPnPError) as error:
        household.join(right, household.speakers[2])
    assert error.value.code == 800


def test_pairing_at_runtime_hides_the_right_speaker_and_events_it() -> None:
    """Pairing two speakers at runtime takes the right one out of its group into the left
    one's room as an invisible member with the pair's ChannelMapSet, evented in the
    ZoneGroupState and DeviceProperties; already bonded speakers cannot pair again."""
    _, household, managers = make()
    living, kitchen, bedroom = household.speakers
    household.join(kitchen, bedroom)
    household.pair(living, kitchen)
    members = zgs_members(household)
    channel_map = f"{living.uid}:LF,LF;{kitchen.uid}:RF,RF"
    assert members[kitchen.uid]["Invisible"] == "1"
    assert "Invisible" not in members[living.uid]
    assert members[living.uid]["ChannelMapSet"] == members[kitchen.uid]["ChannelMapSet"]
    assert members[kitchen.uid]["ChannelMapSet"] == channel_map
    assert members[kitchen.uid]["ZoneName"] == living.name
    assert kitchen.group is living.group and kitchen.group.members == [living.uid, kitchen.uid]
    assert bedroom.group.members == [bedroom.uid]
    latest = managers[1].of("DeviceProperties")[-1]
    assert (latest["Invisible"], latest["ChannelMapSet"]) == ("1", channel_map)
    assert 'Invisible="1"' in managers[2].of("ZoneGroupTopology")[-1]["ZoneGroupState"]
    for left, right in ((living, bedroom), (bedroom, kitchen), (bedroom, bedroom)):
        with pytest.raises(ValueError):
            household.pair(left, right)


def test_create_stereo_pair_action_pairs_from_the_channel_map() -> None:
    """DeviceProperties CreateStereoPair on the left speaker pairs it with the speaker its
    ChannelMapSet names RF; a map that does not name this speaker LF is a 402."""
    _, household, _ = make()
    living, kitchen, bedroom = household.speakers
    bad = f"{kitchen.uid}:LF,LF;{bedroom.uid}:RF,RF"
    with pytest.raises(UPnPError) as error:
        actions.run(living, "DeviceProperties", "CreateStereoPair", {"ChannelMapSet": bad})
    assert error.value.code == 402
    good = f"{living.uid}:LF,LF;{bedroom.uid}:RF,RF"
    actions.run(living, "DeviceProperties", "CreateStereoPair", {"ChannelMapSet": good})
    assert (bedroom.invisible, bedroom.pair_partner, living.channel_map) == (True, living.uid, good)
    with pytest.raises(UPnPError) as error:
        actions.run(
            kitchen,
            "DeviceProperties",
            "CreateStereoPair",
            {"ChannelMapSet": f"{kitchen.uid}:LF,LF;{living.uid}:RF,RF"},
        )
    assert error.value.code == 800


def test_separating_a_pair_frees_the_right_speaker_and_events_it() -> None:
    """Separating a pair made at runtime makes the right speaker a visible group of its own
    again, keeping the room name, with no ChannelMapSet on either half, evented in every
    speaker's ZoneGroupState and in both halves' DeviceProperties; the left speaker stays in
    its group, and a speaker in no pair cannot be separated."""
    _, household, managers = make()
    living, kitchen, bedroom = household.speakers
    household.join(bedroom, living)
    household.pair(living, kitchen)
    assert household.unpair(kitchen) == (living, kitchen)
    members = zgs_members(household)
    for speaker in (living, kitchen):
        assert "Invisible" not in members[speaker.uid]
        assert "ChannelMapSet" not in members[speaker.uid]
        latest = managers[speaker.index].of("DeviceProperties")[-1]
        assert latest["ChannelMapSet"] == ""
    assert managers[kitchen.index].of("DeviceProperties")[-1]["Invisible"] == "0"
    assert members[kitchen.uid]["ZoneName"] == living.name
    assert kitchen.group.members == [kitchen.uid] and kitchen.is_coordinator
    assert living.group.members == [living.uid, bedroom.uid]
    assert (kitchen.pair_partner, living.pair_partner, kitchen.invisible) == (None, None, False)
    assert kitchen.transport.uri == kitchen.transport.queue_uri
    assert kitchen.transport.state == "STOPPED"
    for manager in managers:
        zgs = manager.of("ZoneGroupTopology")[-1]["ZoneGroupState"]
        assert f'Coordinator="{kitchen.uid}"' in zgs and "ChannelMapSet" not in zgs
    for speaker in household.speakers:
        with pytest.raises(ValueError, match="not in a stereo pair"):
            household.unpair(speaker)
    household.pair(living, kitchen)
    assert household.unpair(living) == (living, kitchen)
    assert not kitchen.invisible and kitchen.group is not living.group


def test_separate_stereo_pair_action_takes_the_pairs_channel_map() -> None:
    """DeviceProperties SeparateStereoPair with the pair's ChannelMapSet separates it from
    either half; a map that is not a stereo map is a 402, and one that is not this speaker's
    pair, or a speaker in no pair, is an 800; SoCo's RemoveBondedZones separates too, and
    answers 800 for a speaker bonded to nothing."""
    _, household, _ = make()
    living, kitchen, bedroom = household.speakers
    pair_map = f"{living.uid}:LF,LF;{kitchen.uid}:RF,RF"

    def separate(speaker: object, channel_map: str) -> int:
        try:
            actions.run(
                speaker,  # type: ignore[arg-type]
                "DeviceProperties",
                "SeparateStereoPair",
                {"ChannelMapSet": channel_map},
            )
        except UPnPError as e:
            return e.code
        return 200

    assert separate(living, pair_map) == 800
    household.pair(living, kitchen)
    assert separate(living, f"{living.uid}:LF,LF") == 402
    assert separate(living, f"{living.uid}:LF,LF;RINCON_NOBODY01400:RF,RF") == 402
    assert separate(living, f"{living.uid}:LF,LF;{living.uid}:RF,RF") == 402
    assert separate(living, f"{living.uid}:LF,LF;{bedroom.uid}:RF,RF") == 800
    assert separate(bedroom, pair_map) == 800
    assert living.pair_partner == kitchen.uid
    assert separate(kitchen, pair_map) == 200
    assert (kitchen.invisible, living.channel_map) == (False, "")
    actions.run(living, "DeviceProperties", "AddBondedZones", {"ChannelMapSet": pair_map})
    assert kitchen.invisible
    remove = {"ChannelMapSet": "", "KeepGrouped": "0"}
    actions.run(living, "DeviceProperties", "RemoveBondedZones", remove)
    assert (kitchen.invisible, kitchen.pair_partner) == (False, None)
    with pytest.raises(UPnPError) as error:
        actions.run(living, "DeviceProperties", "RemoveBondedZones", remove)
    assert error.value.code == 800


def test_a_pairs_volume_and_mute_are_the_rooms() -> None:
    """A stereo pair's volume, mute and EQ set on its visible speaker are the room's: the
    hidden half takes them and events them too; set on the hidden half they stay there; the
    group volume counts the room once; once separated, each half moves on its own."""
    _, household, managers = make()
    living, kitchen, bedroom = household.speakers
    living.set_volume(30)
    kitchen.set_volume(10)
    household.pair(living, kitchen)
    assert kitchen.rendering.volume == 30
    living.set_volume(44)
    living.set_mute(True)
    living.set_bass(3)
    assert (kitchen.rendering.volume, kitchen.rendering.mute, kitchen.rendering.bass) == (
        44,
        True,
        3,
    )
    events = managers[kitchen.index].of("RenderingControl")
    assert [e["Volume"]["Master"] for e in events if "Volume" in e][-1] == "44"
    assert (events[-2]["Mute"]["Master"], events[-1]["Bass"]) == ("1", "3")
    kitchen.set_volume(40)
    assert (living.rendering.volume, kitchen.rendering.volume) == (44, 40)
    bedroom.set_volume(20)
    household.join(bedroom, living)
    assert living.group_volume() == 32
    living.set_group_volume(42)
    assert [s.rendering.volume for s in household.speakers] == [54, 54, 30]
    household.unpair(living)
    kitchen.set_volume(5)
    living.set_volume(50)
    assert (living.rendering.volume, kitchen.rendering.volume) == (50, 5)


def test_group_volume_is_the_mean_and_moves_everyone() -> None:
    """Group volume is the members' mean; setting it shifts each member by the same amount."""
    _, household, managers = make()
    living, kitchen, _ = household.speakers
    living.set_volume(40)
    kitchen.set_volume(20)
    household.join(kitchen, living)
    assert living.group_volume() == 30
    living.set_group_volume(50)
    assert (living.rendering.volume, kitchen.rendering.volume) == (60, 40)
    assert managers[0].of("GroupRenderingControl")[-1]["GroupVolume"] == "50"


def test_play_passes_through_transitioning() -> None:
    """Play events TRANSITIONING first, then PLAYING once the clock moves."""
    clock, household, managers = make(transition_delay=0.2)
    speaker = household.speakers[0]
    speaker.transport.play()
    assert speaker.transport.state == "TRANSITIONING"
    clock.advance(0.2)
    states = [c["TransportState"] for c in managers[0].of("AVTransport") if "TransportState" in c]
    assert states == ["TRANSITIONING", "PLAYING"]


def test_rename_changes_zone_name_everywhere() -> None:
    """A new room name is evented by DeviceProperties and appears in the ZoneGroupState."""
    _, household, managers = make()
    household.speakers[1].rename("Studio")
    assert managers[1].of("DeviceProperties")[-1]["ZoneName"] == "Studio"
    assert zgs_members(household)[household.speakers[1].uid]["ZoneName"] == "Studio"


def test_reboot_forgets_sids_and_comes_back_with_next_boot_seq() -> None:
    """Reboot: SIDs forgotten, unreachable, then back after the downtime with BootSeq + 1."""
    clock, household, managers = make()
    speaker = household.speakers[0]
    before = speaker.boot_seq
    speaker.reboot(downtime=30)
    assert managers[0].calls == ["forget_all"]
    assert not speaker.reachable
    back = speaker.when_up()
    clock.advance(29)
    assert speaker.boot_seq == before and not back.called
    clock.advance(1)
    assert back.called and speaker.reachable
    assert speaker.boot_seq == before + 1
    assert zgs_members(household)[speaker.uid]["BootSeq"] == str(before + 1)
    for manager in managers:
        assert "ZoneGroupState" in manager.of("ZoneGroupTopology")[-1]


def test_offline_pauses_notifications_and_vanishes() -> None:
    """Offline with vanish pauses the manager and lists the speaker under VanishedDevices."""
    _, household, managers = make()
    speaker = household.speakers[2]
    speaker.go_offline("hang", vanish=True)
    assert managers[2].paused
    assert speaker.network is not None and speaker.network.mode == "hang"
    root = ElementTree.fromstring(household.zone_group_state())
    assert root.find("VanishedDevices/Device").get("Reason") == "powered off"  # type: ignore[union-attr]
    assert speaker.uid not in zgs_members(household)
    speaker.come_online()
    assert not managers[2].paused
    assert speaker.uid in zgs_members(household)


def test_leave_household_and_rejoin() -> None:
    """A speaker that leaves its household leaves its group, forgets its subscriptions and is
    in nobody's ZoneGroupState, not even as vanished; rejoining lists it again; a bonded
    speaker cannot leave alone."""
    _, household, managers = make(stereo_pair=True, speakers=4)
    speaker = household.speakers[3]
    household.join(speaker, household.speakers[2])
    speaker.leave_household()
    assert speaker.left_household and "forget_all" in managers[3].calls
    root = ElementTree.fromstring(household.zone_group_state())
    assert speaker.uid not in zgs_members(household)
    assert root.find("VanishedDevices/Device") is None
    assert household.speakers[2].group.members == [household.speakers[2].uid]
    speaker.leave_household()
    speaker.rejoin_household()
    assert speaker.uid in zgs_members(household)
    with pytest.raises(ValueError, match="bonded"):
        household.speakers[1].leave_household()


def test_firmware_update_reboots_with_the_new_version() -> None:
    """A firmware update reboots the speaker, which comes back with BootSeq + 1 and the new
    version in the ZGS, the GENA Server header and the device description's model."""
    clock, household, managers = make()
    speaker = household.speakers[1]
    before = speaker.boot_seq
    speaker.update_firmware("80.1-55000", downtime=10)
    assert managers[1].calls == ["forget_all"] and not speaker.reachable
    clock.advance(10)
    assert speaker.reachable and speaker.boot_seq == before + 1
    member = zgs_members(household)[speaker.uid]
    assert (member["SoftwareVersion"], member["BootSeq"]) == ("80.1-55000", str(before + 1))
    assert managers[1].server_header == "Linux UPnP/1.0 Sonos/80.1-55000 (ZPS18)"
    assert speaker.model.software_version == "80.1-55000"
    assert household.speakers[0].model.software_version != "80.1-55000"
    with pytest.raises(ValueError):
        speaker.update_firmware("")


def test_change_address_moves_location_and_manager() -> None:
    """A new address updates Location in the ZGS and the manager's source address."""
    _, household, managers = make(base_address="127.0.0.2")
    speaker = household.speakers[1]
    speaker.change_address("127.0.0.50")
    assert managers[1].address == "127.0.0.50"
    location = zgs_members(household)[speaker.uid]["Location"]
    assert location == "http://127.0.0.50:1400/xml/device_description.xml"
    assert household.speaker("127.0.0.50") is speaker
    with pytest.raises(ValueError):
        speaker.change_address("127.0.0.2")


def test_burst_sends_one_notify_per_change() -> None:
    """A burst of N changes hands N changes of that service to the GENA manager (which
    moderates LastChange services)."""
    _, household, managers = make()
    household.speakers[0].burst(25)
    assert len(managers[0].of("RenderingControl")) == 25


def test_soundbar_only_eq() -> None:
    """Night mode exists on soundbars (evented) and is refused with 402 elsewhere."""
    _, household, managers = make(models=("S18", "S14"))
    one, beam, _ = household.speakers
    beam.set_eq("NightMode", 1)
    assert managers[1].of("RenderingControl")[-1] == {"NightMode": "1"}
    with pytest.raises(UPnPError) as error:
        one.set_eq("NightMode", 1)
    assert error.value.code == 402


def test_hundred_speakers() -> None:
    """A household of 100 speakers builds with distinct UIDs and one ZoneGroupState."""
    _, household, _ = make(speakers=100)
    assert len({s.uid for s in household.speakers}) == 100
    assert len(zgs_members(household)) == 100
    assert household.speakers[-1].address == "127.0.0.101"


def test_transport_change_events_the_track_block() -> None:
    """Pause after play events the whole track block (play mode, track count ...) again."""
    clock, household, managers = make(transition_delay=0.0)
    speaker = household.speakers[0]
    speaker.transport.play()
    clock.advance(0)
    speaker.transport.pause()
    last = managers[0].of("AVTransport")[-1]
    assert last["TransportState"] == "PAUSED_PLAYBACK"
    assert last["CurrentPlayMode"] == "NORMAL" and last["NumberOfTracks"] == "8"


def test_home_theatre_set() -> None:
    """A soundbar with sub and surrounds: satellites in the ZGS, HTSatChanMapSet, one room."""
    _, household, managers = make(speakers=5, home_theatre=True, rooms=("Kitchen", "Den"))
    other, bar, sub, left, right = household.speakers
    assert bar.model.soundbar and sub.model.number == "Sub"
    assert [s.invisible for s in household.speakers] == [False, False, True, True, True]
    assert (other.name, bar.name) == ("Kitchen", "Den")
    assert {s.name for s in (bar, sub, left, right)} == {bar.name}
    root = ElementTree.fromstring(household.zone_group_state())
    member = next(m for m in root.iter("ZoneGroupMember") if m.get("UUID") == bar.uid)
    satellites = {s.get("UUID"): s for s in member.findall("Satellite")}
    assert set(satellites) == {sub.uid, left.uid, right.uid}
    assert member.get("HTSatChanMapSet") == (
        f"{bar.uid}:LF,RF;{sub.uid}:SW;{left.uid}:LR;{right.uid}:RR"
    )
    assert satellites[left.uid].get("HTSatChanMapSet") == f"{bar.uid}:LF,RF;{left.uid}:LR"
    assert satellites[sub.uid].get("Invisible") == "1"
    assert len(root.findall("ZoneGroups/ZoneGroup")) == 2
    assert sub.group is bar.group and sub.coordinator is bar
    assert bar.full_state("DeviceProperties")["HTSatChanMapSet"] == bar.ht_sat_chan_map
    household.join(other, bar)
    bar.rename("Cinema")
    assert {s.name for s in (bar, sub, left, right)} == {"Cinema"}
    assert managers[3].of("DeviceProperties")[-1]["ZoneName"] == "Cinema"
    with pytest.raises(UPnPError):
        household.join(sub, other)


def test_home_theatre_needs_four_speakers() -> None:
    """A home theatre besides a stereo pair needs six speakers; it takes the last four."""
    with pytest.raises(ValueError, match="home theatre"):
        make(speakers=5, home_theatre=True, stereo_pair=True)
    _, household, _ = make(speakers=6, home_theatre=True, stereo_pair=True)
    assert household.speakers[1].pair_partner == household.speakers[0].uid
    assert household.speakers[2].satellites == [s.uid for s in household.speakers[3:6]]


def test_portable_battery_sleep_and_bluetooth() -> None:
    """A Roam: battery evented in MoreInfo; sleep and Bluetooth vanish it with their reasons."""
    _, household, managers = make(models=("S18", "S27"))
    one, roam, _ = household.speakers
    assert one.battery is None and one.full_state("DeviceProperties")["MoreInfo"] == ""
    roam.set_battery(level=15, power_source="USB_POWER", temperature=31)
    more_info = managers[1].of("DeviceProperties")[-1]["MoreInfo"]
    assert "BattPct:15" in more_info and "BattChg:CHARGING" in more_info
    assert "BattTmp:31" in more_info
    roam.sleep()
    assert roam.asleep and managers[1].paused and not roam.reachable
    root = ElementTree.fromstring(household.zone_group_state())
    device = root.find("VanishedDevices/Device")
    assert device is not None and device.get("Reason") == "sleeping"
    assert device.get("UUID") == roam.uid and device.get("ModelInfo") == "S27"
    assert "ZoneGroupState" in managers[0].of("ZoneGroupTopology")[-1]
    roam.wake()
    assert not roam.asleep and roam.reachable and roam.uid in zgs_members(household)
    roam.switch_to_bluetooth()
    root = ElementTree.fromstring(household.zone_group_state())
    assert root.find("VanishedDevices/Device").get("Reason") == "switch to bluetooth"  # type: ignore[union-attr]
    for refused in (one.sleep, one.switch_to_bluetooth, one.wake, one.set_battery):
        with pytest.raises(ValueError, match="not a portable"):
            refused()


def test_upnp_off_drops_subscriptions() -> None:
    """Switching UPnP off drops every subscription; unknown modes and bad values fail."""
    _, household, managers = make()
    household.set_modes(upnp=False)
    assert all("unsubscribe_all" in manager.calls for manager in managers)
    household.set_modes(upnp=False)
    assert [m.calls.count("unsubscribe_all") for m in managers] == [1, 1, 1]
    household.set_modes(upnp=True, large_household=True)
    assert household.modes.upnp and household.modes.large_household
    with pytest.raises(ValueError, match="unknown"):
        household.set_modes(colour="red")
    with pytest.raises(ValueError, match="upnp_off_ssdp"):
        household.set_modes(upnp_off_ssdp="loud")


def test_sub_and_surround_need_their_satellites() -> None:
    """A home-theatre soundbar takes sub and surround EQ values (evented); a soundbar with
    no sub or surrounds, and a Sonos One, answer 402."""
    household = Household(Clock(), speakers=5, models=("S14",), home_theatre=True)
    soundbar = household.speakers[1]
    assert [household.by_uid[uid].ht_channel for uid in soundbar.satellites] == ["SW", "LR", "RR"]
    soundbar.set_eq("SubGain", -6)
    soundbar.set_eq("SurroundLevel", 4)
    soundbar.set_eq("SurroundMode", 1)
    assert (soundbar.get_eq("SubGain"), soundbar.get_eq("SurroundLevel")) == (-6, 4)
    state = soundbar.full_state("RenderingControl")
    assert (state["SubGain"], state["SurroundLevel"], state["SurroundMode"]) == ("-6", "4", "1")
    bare = Household(Clock(), speakers=2, models=("S14", "S18"))
    for speaker, eq_type in (
        (bare.speakers[0], "SubGain"),
        (bare.speakers[0], "SurroundEnable"),
        (bare.speakers[1], "NightMode"),
        (soundbar, "SubGain"),
    ):
        value = 99 if speaker is soundbar else 1
        with pytest.raises(UPnPError) as raised:
            speaker.set_eq(eq_type, value)
        assert raised.value.code == 402


def ht_satellites(household: Household) -> dict[str, dict[str, str]]:
    root = ElementTree.fromstring(household.zone_group_state())
    return {
        satellite.get("UUID", ""): dict(satellite.attrib)
        for member in root.iter("ZoneGroupMember")
        for satellite in member.iter("Satellite")
    }


def home_theatre(**kwargs: object) -> tuple[Household, list[RecordingManager]]:
    """A One, then a home theatre: an Arc with a Sub and two surrounds."""
    _, household, managers = make(5, home_theatre=True, **kwargs)
    return household, managers


def test_removing_a_satellite_frees_it_and_events_it() -> None:
    """A surround removed from its home theatre is a visible group of its own with the room
    name it had before it was bonded and no HTSatChanMapSet, the soundbar's map and
    satellites lose it (the others stay nested under the soundbar), all evented in every
    speaker's ZoneGroupState and in DeviceProperties; a speaker that is no satellite
    cannot be removed."""
    household, managers = home_theatre()
    _, bar, sub, left, right = household.speakers
    assert (left.name, left.own_name) == (bar.name, "Office")
    assert household.remove_satellite(left) is bar
    members = zgs_members(household)
    assert "Invisible" not in members[left.uid] and "HTSatChanMapSet" not in members[left.uid]
    assert members[left.uid]["ZoneName"] == "Office" == left.name
    bar_map = f"{bar.uid}:LF,RF;{sub.uid}:SW;{right.uid}:RR"
    assert members[bar.uid]["HTSatChanMapSet"] == bar_map
    assert set(ht_satellites(household)) == {sub.uid, right.uid}
    assert left.group.members == [left.uid] and left.is_coordinator
    assert (bar.satellites, left.ht_primary, left.ht_channel) == ([sub.uid, right.uid], None, "")
    assert left.transport.uri == left.transport.queue_uri
    assert left.transport.state == "STOPPED"
    freed = managers[left.index].of("DeviceProperties")[-1]
    assert (freed["Invisible"], freed["HTSatChanMapSet"], freed["ZoneName"]) == ("0", "", "Office")
    assert managers[bar.index].of("DeviceProperties")[-1]["HTSatChanMapSet"] == bar_map
    for manager in managers:
        zgs = manager.of("ZoneGroupTopology")[-1]["ZoneGroupState"]
        assert f'Coordinator="{left.uid}"' in zgs
    for speaker in (left, bar, household.speakers[0]):
        with pytest.raises(ValueError, match="not a home-theatre satellite"):
            household.remove_satellite(speaker)
    household.remove_satellite(sub)
    assert zgs_members(household)[sub.uid]["ZoneName"] == "Bedroom"


def test_adding_a_satellite_bonds_it_under_the_soundbar() -> None:
    """A speaker added to a soundbar leaves its group, takes the room name and is the
    soundbar's invisible Satellite on its channel, in the soundbar's HTSatChanMapSet and its
    own, evented; a speaker that does not fit the channel, a taken channel, a bonded
    speaker and a soundbar that is not one are refused, and dedicated fronts are not
    modelled."""
    household, managers = home_theatre()
    kitchen, bar, sub, left, right = household.speakers
    household.remove_satellite(right)
    household.join(right, kitchen)
    household.add_satellite(bar, right, "RR")
    satellites = ht_satellites(household)
    assert set(satellites) == {sub.uid, left.uid, right.uid}
    assert satellites[right.uid]["Invisible"] == "1"
    assert satellites[right.uid]["ZoneName"] == bar.name
    assert satellites[right.uid]["HTSatChanMapSet"] == f"{bar.uid}:LF,RF;{right.uid}:RR"
    assert right.uid not in zgs_members(household)
    assert kitchen.group.members == [kitchen.uid]
    bar_map = f"{bar.uid}:LF,RF;{sub.uid}:SW;{left.uid}:LR;{right.uid}:RR"
    assert managers[bar.index].of("DeviceProperties")[-1]["HTSatChanMapSet"] == bar_map
    latest = managers[right.index].of("DeviceProperties")[-1]
    assert (latest["Invisible"], latest["ZoneName"]) == ("1", bar.name)
    household.remove_satellite(left)
    for soundbar, satellite, channel, reason in (
        (bar, sub, "LR", "already bonded"),
        (bar, left, "SW", "cannot play SW"),
        (bar, left, "RR", "has a RR satellite already"),
        (bar, left, "XX", "unknown home-theatre channel"),
        (kitchen, left, "LR", "not a soundbar"),
        (bar, bar, "LR", "its own satellite"),
    ):
        with pytest.raises(ValueError, match=reason):
            household.add_satellite(soundbar, satellite, channel)
    with pytest.raises(NotImplementedError):
        household.add_satellite(bar, left, "LF")
    left.go_offline(vanish=True)
    with pytest.raises(ValueError, match="off the network"):
        household.add_satellite(bar, left, "LR")
    left.come_online()
    household.add_satellite(bar, left, "LR")
    assert left.ht_primary == bar.uid and left.invisible


def test_ht_satellite_actions_take_the_maps_sonos_apps_send() -> None:
    """DeviceProperties RemoveHTSatellite takes the satellite's uid and AddHTSatellite the
    soundbar's map with one new satellite (satellites it has may be listed again), both sent
    to the soundbar; a speaker that cannot lead a home theatre answers 401, a uid that is
    not its satellite, two new satellites or a bad one 800, a map without the soundbar 402,
    dedicated fronts 501."""
    household, _ = home_theatre()
    kitchen, bar, sub, left, right = household.speakers

    def call(speaker: object, action: str, **args: str) -> int:
        try:
            actions.run(speaker, "DeviceProperties", action, args)  # type: ignore[arg-type]
        except UPnPError as e:
            return e.code
        return 200

    assert call(kitchen, "RemoveHTSatellite", SatRoomUUID=sub.uid) == 401
    assert call(sub, "RemoveHTSatellite", SatRoomUUID=sub.uid) == 401
    assert call(bar, "RemoveHTSatellite", SatRoomUUID=kitchen.uid) == 800
    assert call(bar, "RemoveHTSatellite", SatRoomUUID=sub.uid) == 200
    assert call(bar, "RemoveHTSatellite", SatRoomUUID=left.uid) == 200
    assert (sub.invisible, left.invisible, bar.satellites) == (False, False, [right.uid])
    assert call(bar, "RemoveHTSatellite", SatRoomUUID=sub.uid) == 800
    assert call(bar, "RemoveHTSatellite") == 402
    both = f"{bar.uid}:LF,RF;{sub.uid}:SW;{left.uid}:LR"
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=both) == 800
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=f"{sub.uid}:SW") == 402
    unknown = f"{bar.uid}:CC;RINCON_NOBODY01400:SW"
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=unknown) == 800
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=f"{bar.uid}:CC;{kitchen.uid}:SW") == 800
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=f"{bar.uid}:CC;{left.uid}:LF,LTF") == 501
    sub_map = f"{bar.uid}:CC;{sub.uid}:SW"
    assert call(kitchen, "AddHTSatellite", HTSatChanMapSet=sub_map) == 401
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=sub_map) == 200
    assert (sub.ht_primary, sub.ht_channel, sub.invisible) == (bar.uid, "SW", True)
    again = f"{bar.uid}:LF,RF;{sub.uid}:SW;{right.uid}:RR;{left.uid}:LR"
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=again) == 200
    assert bar.satellites == [right.uid, sub.uid, left.uid]
    assert call(bar, "AddHTSatellite", HTSatChanMapSet=again) == 200


def test_topology_settle_lets_each_speaker_learn_a_change_in_turn() -> None:
    """With topology_settle the speakers learn each new ZoneGroupState one after another,
    each eventing and answering its own view meanwhile, so a lagging speaker events an older
    view after a leading one evented a newer one."""
    clock, household, managers = make()
    household.set_modes(topology_settle=3.0)
    living, kitchen, office = household.speakers
    apart = household.zone_group_state()
    seen: list[tuple[int, str]] = []

    def recorder(index: int) -> Callable[[str, Mapping[str, object]], None]:
        def notify(service: str, changed: Mapping[str, object]) -> None:
            if "ZoneGroupState" in changed:
                seen.append((index, str(changed["ZoneGroupState"])))

        return notify

    for index, manager in enumerate(managers):
        manager.notify = recorder(index)  # type: ignore[method-assign]
    household.join(kitchen, living)
    joined = household.zone_group_state()
    clock.advance(0.5)
    household.unjoin(kitchen)
    regrouped = household.zone_group_state()
    assert len({apart, joined, regrouped}) == 3
    assert [household.zone_group_state_of(s) for s in household.speakers] == [apart] * 3
    assert actions.run(office, "ZoneGroupTopology", "GetZoneGroupState", {}) == {
        "ZoneGroupState": apart
    }
    clock.advance(0.75)
    assert household.zone_group_state_of(living) == joined
    assert household.zone_group_state_of(office) == apart
    clock.advance(3.0)
    assert seen == [
        (0, joined),
        (0, regrouped),
        (1, joined),
        (1, regrouped),
        (2, joined),
        (2, regrouped),
    ]
    assert all(s.zgs_view is None for s in household.speakers)
    assert [household.zone_group_state_of(s) for s in household.speakers] == [regrouped] * 3


def test_large_household_counts_invisible_and_vanished_players_not_departed_ones() -> None:
    """GetZoneGroupState answers 501 above ``large_household_players`` counting every player
    of the household, invisible (a stereo pair's right speaker) and vanished ones too, as
    docs/simulator.md says; a speaker that left the household is no player of it."""
    clock = Clock()
    household = Household(clock, speakers=4, seed=3, stereo_pair=True)
    for speaker in household.speakers:
        speaker.manager = RecordingManager(clock, speaker.uid, speaker.address, None, "")
        speaker.network = FakePresence(address=speaker.address)
    household.set_modes(large_household=True, large_household_players=3)
    first, _, third, last = household.speakers

    def answer() -> int | None:
        try:
            actions.run(first, "ZoneGroupTopology", "GetZoneGroupState", {})
        except UPnPError as error:
            return error.code
        return None

    assert answer() == 501
    last.go_offline("refuse", vanish=True)
    assert answer() == 501
    household.set_modes(large_household_players=4)
    assert answer() is None
    household.set_modes(large_household_players=2)
    third.leave_household()
    last.come_online()
    last.leave_household()
    assert answer() is None
