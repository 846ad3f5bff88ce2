"""Tests for sim.contentactions: Browse of every object, DestroyObject, ListAvailableServices."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from twisted.internet.task import Clock

from sonosd.sim import actions, contentactions  # noqa: F401 - registers the handlers
from sonosd.sim.household import Household
from sonosd.sim.soap import UPnPError

DIDL = "{urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/}"


def browse(home: Household, object_id: str, flag: str = "BrowseDirectChildren", **extra: str):
    args = {"ObjectID": object_id, "BrowseFlag": flag, **extra}
    out = actions.run(home.speakers[0], "ContentDirectory", "Browse", args)
    return ElementTree.fromstring(out["Result"]), out


def test_every_root_answers() -> None:
    """0, Q:0, FV:2, SQ:, A:, S:, R:0/0 and R:0/1 answer their children and themselves."""
    home = Household(Clock(), speakers=1)
    root, out = browse(home, "0")
    assert [c.get("id") for c in root] == ["A:", "S:", "Q:", "SQ:", "R:", "FV:"]
    for object_id in ("Q:0", "FV:2", "SQ:", "A:", "S:", "R:0/0", "R:0/1", "0"):
        children, out = browse(home, object_id)
        assert int(out["TotalMatches"]) == len(children) > 0, object_id
        itself, out = browse(home, object_id, "BrowseMetadata")
        assert len(itself) == 1 and itself[0].get("id") == object_id, object_id
    queue, _ = browse(home, "Q:0", "BrowseMetadata")
    assert queue[0].get("childCount") == str(len(home.speakers[0].transport.queue))


def test_playlist_objects_and_paging() -> None:
    """SQ:<n> lists its tracks in pages with the playlist's update id; SQ:<n>/<i> is one."""
    home = Household(Clock(), speakers=1)
    playlist = next(iter(home.saved_queues))
    page, out = browse(home, playlist.object_id, StartingIndex="1", RequestedCount="2")
    assert [c.get("id") for c in page] == [f"{playlist.object_id}/2", f"{playlist.object_id}/3"]
    assert out["TotalMatches"] == str(len(playlist.tracks))
    assert out["UpdateID"] == str(playlist.update_id)
    item, _ = browse(home, f"{playlist.object_id}/1", "BrowseMetadata")
    assert item[0].tag == f"{DIDL}item"


@pytest.mark.parametrize(
    ("object_id", "flag", "code"),
    [
        ("NOPE", "BrowseDirectChildren", 701),
        ("SQ:99", "BrowseDirectChildren", 701),
        ("SQ:1/99", "BrowseMetadata", 701),
        ("SQ:1/1", "BrowseDirectChildren", 701),
        ("A:ALBUM/None", "BrowseDirectChildren", 701),
        ("Q:0", "BrowseSideways", 402),
    ],
)
def test_browse_errors(object_id: str, flag: str, code: int) -> None:
    """Unknown objects are 701; an unknown browse flag is 402."""
    home = Household(Clock(), speakers=1)
    with pytest.raises(UPnPError) as raised:
        browse(home, object_id, flag)
    assert raised.value.code == code


def test_negative_paging_is_402() -> None:
    """A negative starting index is 402."""
    home = Household(Clock(), speakers=1)
    with pytest.raises(UPnPError) as raised:
        browse(home, "Q:0", StartingIndex="-1")
    assert raised.value.code == 402


def test_destroy_object() -> None:
    """DestroyObject deletes a Sonos playlist; anything else is 701."""
    home = Household(Clock(), speakers=1)
    speaker = home.speakers[0]
    actions.run(speaker, "ContentDirectory", "DestroyObject", {"ObjectID": "SQ:1"})
    assert [p.object_id for p in home.saved_queues] == ["SQ:2"]
    for object_id in ("SQ:1", "FV:2/1"):
        with pytest.raises(UPnPError) as raised:
            actions.run(speaker, "ContentDirectory", "DestroyObject", {"ObjectID": object_id})
        assert raised.value.code == 701


def test_list_available_services() -> None:
    """ListAvailableServices answers the descriptors, the types and the evented version."""
    home = Household(Clock(), speakers=1)
    out = actions.run(home.speakers[0], "MusicServices", "ListAvailableServices", {})
    assert ElementTree.fromstring(out["AvailableServiceDescriptorList"]).tag == "Services"
    assert "2311" in out["AvailableServiceTypeList"].split(",")
    assert out["AvailableServiceListVersion"].endswith(":1")
    home.set_accounts({2311: 1})
    out = actions.run(home.speakers[0], "MusicServices", "ListAvailableServices", {})
    assert out["AvailableServiceListVersion"].endswith(":2")
