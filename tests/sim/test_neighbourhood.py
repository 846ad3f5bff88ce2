"""Several households on one loopback range (sonosd.sim.neighbourhood)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from twisted.internet.task import Clock

from sonosd.config import SimulateConfig
from sonosd.sim.neighbourhood import Neighbourhood, household_seed, split


def build(**kwargs: object) -> Neighbourhood:
    config = SimulateConfig(base_address="127.0.0.2", **kwargs)  # type: ignore[arg-type]
    return Neighbourhood.build(Clock(), config, seed=11)


def zgs_uids(document: str) -> set[str]:
    root = ElementTree.fromstring(document)
    return {m.get("UUID", "") for m in root.iter("ZoneGroupMember")}


def test_split_gives_the_first_ones_the_extra() -> None:
    """Seven speakers in three households are 3, 2, 2; more households than speakers fail."""
    assert split(7, 3) == [3, 2, 2]
    assert split(4, 1) == [4]
    with pytest.raises(ValueError, match="households"):
        split(2, 3)


def test_each_household_lists_only_its_own_members() -> None:
    """Two households: own IDs, consecutive addresses, and each ZGS only its own speakers."""
    neighbourhood = build(speakers=5, households=2)
    first, second = neighbourhood.households
    assert first.household_id != second.household_id
    assert [s.address for s in neighbourhood.speakers] == [f"127.0.0.{n}" for n in range(2, 7)]
    assert [s.index for s in neighbourhood.speakers] == list(range(5))
    assert zgs_uids(first.zone_group_state()) == {s.uid for s in first.speakers}
    assert zgs_uids(second.zone_group_state()) == {s.uid for s in second.speakers}
    assert len({s.uid for s in neighbourhood.speakers}) == 5
    assert len({s.name for s in neighbourhood.speakers}) == 5


def test_one_household_is_as_before() -> None:
    """With one household, the first household keeps the service's seed (same UIDs as ever)."""
    neighbourhood = build(speakers=3)
    assert len(neighbourhood.households) == 1
    assert household_seed(11, 0) == 11 and household_seed(11, 1) != 11


def test_lookup_across_households() -> None:
    """A speaker is found by global index, UID, address or name; a household by number or ID."""
    neighbourhood = build(speakers=4, households=2)
    fourth = neighbourhood.speakers[3]
    for key in ("3", 3, fourth.uid, fourth.address, fourth.name.upper()):
        assert neighbourhood.speaker(key) is fourth
    with pytest.raises(KeyError):
        neighbourhood.speaker("9")
    with pytest.raises(KeyError):
        neighbourhood.speaker("nobody")
    second = neighbourhood.households[1]
    assert neighbourhood.household_by_key("1") is second
    assert neighbourhood.household_by_key(second.household_id) is second
    with pytest.raises(KeyError):
        neighbourhood.household_by_key("7")


def test_modes_models_and_https_follow_the_global_index() -> None:
    """Models and HTTPS-only indexes count across households; modes apply to each household."""
    neighbourhood = build(
        speakers=4,
        households=2,
        models=("S18", "S18", "S27"),
        https_only=(3,),
        upnp=False,
        large_household=True,
    )
    speakers = neighbourhood.speakers
    assert speakers[2].model.number == "S27" and speakers[2].battery is not None
    assert [s.https_only for s in speakers] == [False, False, False, True]
    assert all(not h.modes.upnp and h.modes.large_household for h in neighbourhood.households)
