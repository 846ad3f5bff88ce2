"""Tests for sonosd.sinks.mqtt_topics: the topic layout and Home Assistant discovery."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sonosd.sinks.mqtt_topics import (
    MAX_ROOM_KEY,
    Topics,
    bridge_discovery,
    discovery,
    room_key,
    segment,
)
from tests.paths import ROOT

TOPICS = Topics("sonos")
UID = "RINCON_000E58A0123401400"


def test_segment_replaces_wildcards_and_separators() -> None:
    """Room names cannot add topic levels or wildcards."""
    assert segment(" Living/Room+#1 ") == "Living_Room__1"
    assert segment("Küche") == "Küche"


@given(st.text())
def test_segment_is_one_safe_level(name: str) -> None:
    """Whatever the name, its segment holds no ``/``, ``+``, ``#`` or NUL."""
    result = segment(name)
    assert not set(result) & {"/", "+", "#", "\x00"}


def test_room_key_is_bounded() -> None:
    """A room name gives a topic level of at most MAX_ROOM_KEY bytes of UTF-8; a longer one,
    or one with nothing left once made safe, gives none (the uid is used instead)."""
    assert room_key("Living Room") == "Living Room"
    assert room_key("x" * MAX_ROOM_KEY) == "x" * MAX_ROOM_KEY
    assert room_key("x" * (MAX_ROOM_KEY + 1)) == ""
    assert room_key("ü" * (MAX_ROOM_KEY // 2 + 1)) == ""
    assert room_key(" ") == room_key(None) == ""


def test_layout() -> None:
    """The documented topics."""
    assert TOPICS.state("Kitchen", "AVTransport") == "sonos/Kitchen/state/AVTransport"
    assert TOPICS.event("Kitchen", "speaker.offline") == "sonos/Kitchen/event/speaker.offline"
    assert TOPICS.availability("Kitchen") == "sonos/Kitchen/availability"
    assert TOPICS.bridge_availability == "sonos/bridge/availability"
    assert TOPICS.bridge_topology("Sonos_A/b") == "sonos/bridge/topology/Sonos_A_b"
    assert TOPICS.bridge_topology(None) == "sonos/bridge/topology/unknown"
    assert TOPICS.bridge_alarms("Sonos_A") == "sonos/bridge/alarms/Sonos_A"
    assert TOPICS.bridge_event("topology.changed") == "sonos/bridge/event/topology.changed"
    assert TOPICS.commands == "sonos/+/cmd/+"
    assert TOPICS.result("Kitchen", "play") == "sonos/Kitchen/cmd/play/result"


def test_every_topic_is_in_the_documented_table() -> None:
    """Each topic the sink publishes or reads is a row of docs/mqtt.md's topic table."""
    text = (ROOT / "docs" / "mqtt.md").read_text()
    rows = {
        line.split("|")[1].strip().strip("`")
        for line in text.split("## Topics", 1)[1].split("\n## ", 1)[0].splitlines()
        if line.startswith("| `")
    }
    published = {
        TOPICS.bridge_availability,
        TOPICS.bridge_topology("<household>"),
        TOPICS.bridge_alarms("<household>"),
        TOPICS.bridge_event("<type>"),
        TOPICS.bridge_gap,
        TOPICS.availability("<key>"),
        TOPICS.state("<key>", "<service>"),
        TOPICS.event("<key>", "<service>"),
        TOPICS.event("<key>", "<type>"),
        TOPICS.command("<key>", "<command>"),
        TOPICS.result("<key>", "<command>"),
    }
    assert published <= rows, published - rows


@given(
    key=st.text(min_size=1).map(segment).filter(bool),
    command=st.text(min_size=1).map(segment).filter(bool),
)
def test_command_round_trip(key: str, command: str) -> None:
    """A command topic parses back to its speaker key and command."""
    assert TOPICS.parse_command(TOPICS.command(key, command)) == (key, command)


def test_parse_command_rejects_other_topics() -> None:
    """Results, state, other prefixes and malformed topics are not commands."""
    for topic in (
        "sonos/Kitchen/cmd/play/result",
        "sonos/Kitchen/state/AVTransport",
        "other/Kitchen/cmd/play",
        "sonos//cmd/play",
        "sonos/Kitchen/cmd/",
        "sonos/Kitchen/cmd",
    ):
        assert TOPICS.parse_command(topic) is None


def test_discovery_sensors_only_without_commands() -> None:
    """Without a controller only read-only entities are announced."""
    documents = dict(discovery("homeassistant", TOPICS, UID, "Kitchen", "Kitchen", commands=False))
    components = {topic.split("/")[1] for topic in documents}
    assert components == {"sensor", "binary_sensor", "image"}
    volume = documents[f"homeassistant/sensor/sonosd_{UID}/volume/config"]
    assert volume["unique_id"] == f"sonosd_{UID}_volume"
    assert volume["state_topic"] == "sonos/Kitchen/state/RenderingControl"
    assert volume["availability_mode"] == "all"
    assert volume["device"]["identifiers"] == [f"sonosd_{UID}"]


def test_discovery_with_commands() -> None:
    """With a controller, volume, mute and transport controls point at command topics."""
    documents = dict(discovery("ha", TOPICS, UID, "Kitchen", None, commands=True))
    number = documents[f"ha/number/sonosd_{UID}/volume_set/config"]
    assert number["command_topic"] == "sonos/Kitchen/cmd/volume"
    assert number["device"]["name"] == UID
    play = documents[f"ha/button/sonosd_{UID}/play/config"]
    assert play["command_topic"] == "sonos/Kitchen/cmd/play"
    unique = [document["unique_id"] for document in documents.values()]
    assert len(unique) == len(set(unique))


def test_bridge_discovery() -> None:
    """The daemon is announced as a connectivity sensor on the bridge availability topic."""
    topic, document = bridge_discovery("homeassistant", TOPICS)
    assert topic == "homeassistant/binary_sensor/sonosd_bridge/connectivity/config"
    assert document["state_topic"] == "sonos/bridge/availability"
    # docs/mqtt.md: the daemon itself is a device ``sonosd`` with a ``Connected`` sensor.
    assert (document["name"], document["device_class"]) == ("Connected", "connectivity")
    assert document["device"]["name"] == "sonosd"
    assert (document["payload_on"], document["payload_off"]) == ("online", "offline")


def test_discovery_entities_are_the_documented_table() -> None:
    """With commands, a speaker's entities are exactly docs/mqtt.md's Home Assistant table:
    component, name, where each reads its state and which command each sends."""
    documents = dict(discovery("homeassistant", TOPICS, UID, "Kitchen", "Kitchen", commands=True))
    rendering = "sonos/Kitchen/state/RenderingControl"
    transport = "sonos/Kitchen/state/AVTransport"
    entities = {
        (topic.split("/")[1], document["name"]): (
            document.get("state_topic") or document.get("url_topic"),
            document.get("command_topic"),
        )
        for topic, document in documents.items()
    }
    assert entities == {
        ("sensor", "Volume"): (rendering, None),
        ("binary_sensor", "Muted"): (rendering, None),
        ("sensor", "Transport state"): (transport, None),
        ("sensor", "Play mode"): (transport, None),
        ("sensor", "Title"): (transport, None),
        ("sensor", "Artist"): (transport, None),
        ("sensor", "Album"): (transport, None),
        ("image", "Album art"): (transport, None),
        ("number", "Volume level"): (rendering, "sonos/Kitchen/cmd/volume"),
        ("switch", "Mute"): (rendering, "sonos/Kitchen/cmd/mute"),
        ("button", "Play"): (None, "sonos/Kitchen/cmd/play"),
        ("button", "Pause"): (None, "sonos/Kitchen/cmd/pause"),
        ("button", "Next"): (None, "sonos/Kitchen/cmd/next"),
        ("button", "Previous"): (None, "sonos/Kitchen/cmd/previous"),
    }
    by_name = {document["name"]: document for document in documents.values()}
    assert by_name["Volume"]["unit_of_measurement"] == "%"
    assert by_name["Play mode"]["entity_category"] == "diagnostic"
    assert "variables.current_play_mode" in by_name["Play mode"]["value_template"]
    for name, field in (("Title", "title"), ("Artist", "artist"), ("Album", "album")):
        assert f").{field} " in by_name[name]["value_template"], name
    assert ").album_art_uri " in by_name["Album art"]["url_template"]
    slider = by_name["Volume level"]
    assert (slider["min"], slider["max"], slider["mode"]) == (0, 100, "slider")
    assert slider["command_template"] == '{"volume": {{ value | int }}}'
    mute = by_name["Mute"]
    assert (mute["payload_on"], mute["payload_off"]) == ('{"mute": true}', '{"mute": false}')
    assert all(document["device"]["name"] == "Kitchen" for document in documents.values())
