"""Tests for sonosd.sim.propertyset: NOTIFY bodies that read like real speakers' ones."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any
from uuid import uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st
from soco.events_base import parse_event_xml

from sonosd.sim import propertyset
from sonosd.sim.propertyset import (
    LAST_CHANGE_SERVICES,
    EventValue,
    build_propertyset,
    is_last_change,
)
from tests.paths import SAMPLES

EVENT_NS = "{urn:schemas-upnp-org:event-1-0}"
RINCON_NS = "{urn:schemas-rinconnetworks-com:metadata-1-0/}"
LAST_CHANGE_NS = {
    "{urn:schemas-upnp-org:metadata-1-0/AVT/}": "AVTransport",
    "{urn:schemas-upnp-org:metadata-1-0/RCS/}": "RenderingControl",
    "{urn:schemas-sonos-com:metadata-1-0/Queue/}": "Queue",
}

# The shape of a GroupRenderingControl event (sonos-protocol.md §3.6; no capture is stored).
GROUP_RENDERING_CONTROL = (
    b'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0"><e:property><GroupVolume>14'
    b"</GroupVolume></e:property><e:property><GroupMute>0</GroupMute></e:property><e:property>"
    b"<GroupVolumeChangeable>1</GroupVolumeChangeable></e:property></e:propertyset>"
)

# sample file name prefix -> service (plain-variable services; LastChange ones are detected)
PLAIN_SERVICES = {
    "alarm": "AlarmClock",
    "audio": "AudioIn",
    "connection": "MR_ConnectionManager",
    "contentdirectory": "ContentDirectory",
    "device": "DeviceProperties",
    "ht": "HTControl",
    "music": "MusicServices",
    "system": "SystemProperties",
    "zonegrouptopology": "ZoneGroupTopology",
    "groupmanagement": "GroupManagement",
}


def _sample_bodies() -> list[tuple[str, bytes]]:
    bodies = [("GroupRenderingControl(doc)", GROUP_RENDERING_CONTROL)]
    for path in sorted((SAMPLES / "events").glob("*.xml")):
        bodies.append((path.name, path.read_bytes()))
    for path in sorted((SAMPLES / "gena_notify_raw").glob("*.http")):
        raw = path.read_bytes().replace(b"\r\n", b"\n")
        bodies.append((path.name, raw.split(b"\n\n", 1)[1].strip()))
    return bodies


SAMPLE_BODIES = _sample_bodies()


def _plain_service(name: str) -> str:
    key = name.lower().replace("-", "").split("_")[0].split("(")[0]
    for prefix, service in PLAIN_SERVICES.items():
        if key.startswith(prefix):
            return service
    return "GroupRenderingControl"


def extract_variables(body: bytes, name: str) -> tuple[str, dict[str, EventValue]]:
    """Read a real body's service and wire-named variables straight from its XML."""
    tree = ET.fromstring(body)
    variables: dict[str, EventValue] = {}
    service = _plain_service(name)
    for prop in tree.findall(f"{EVENT_NS}property"):
        for variable in prop:
            if variable.tag != "LastChange":
                variables[variable.tag] = variable.text or ""
                continue
            event = ET.fromstring((variable.text or "").encode("utf-8"))
            instance = event[0]
            namespace = instance.tag.split("}")[0] + "}"
            service = LAST_CHANGE_NS[namespace]
            for element in instance:
                local = element.tag.split("}", 1)[1]
                wire = "r:" + local if element.tag.startswith(RINCON_NS) else local
                value = element.get("val")
                if value is None:
                    value = element.text or ""
                channel = element.get("channel")
                if channel is None:
                    variables[wire] = value
                else:
                    channels = variables.setdefault(wire, {})
                    assert isinstance(channels, dict)
                    channels[channel] = value
    return service, variables


@pytest.mark.parametrize(("name", "body"), SAMPLE_BODIES, ids=[n for n, _ in SAMPLE_BODIES])
def test_rebuilt_sample_parses_like_the_real_one(name: str, body: bytes) -> None:
    """A body built from a real sample's variables parses (SoCo) to the same names and values."""
    service, variables = extract_variables(body, name)
    built = build_propertyset(service, variables)
    expected = parse_event_xml(body)
    got = parse_event_xml(built)
    assert set(got) == set(expected)
    for key, value in expected.items():
        assert got[key] == value, key


def test_sample_services_cover_the_brief() -> None:
    """The samples exercised cover every evented service the simulator offers."""
    services = {extract_variables(body, name)[0] for name, body in SAMPLE_BODIES}
    assert services >= {
        "AVTransport",
        "RenderingControl",
        "Queue",
        "ZoneGroupTopology",
        "DeviceProperties",
        "AlarmClock",
        "ContentDirectory",
        "GroupRenderingControl",
        "SystemProperties",
        "MusicServices",
        "AudioIn",
        "MR_ConnectionManager",
        "HTControl",
        "GroupManagement",
    }


def test_modern_capture_is_reproduced_byte_for_byte() -> None:
    """The modern RenderingControl capture's body is exactly what the builder writes."""
    raw = (SAMPLES / "gena_notify_raw" / "RenderingControl_seq3_S18_modern_crlf.http").read_bytes()
    body = raw.split(b"\r\n\r\n", 1)[1]
    built = build_propertyset(
        "RenderingControl", {"Volume": {"Master": "40", "LF": "100", "RF": "100"}}
    )
    assert built == body


def test_avtransport_declares_the_rincon_namespace_and_no_prolog() -> None:
    """AVTransport bodies start with the propertyset (no prolog) and declare xmlns:r."""
    body = build_propertyset("AVTransport", {"TransportState": "PLAYING"})
    assert body.startswith(b'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">')
    assert b"xmlns:r=&quot;urn:schemas-rinconnetworks-com:metadata-1-0/&quot;" in body
    assert b"&lt;InstanceID val=&quot;0&quot;&gt;&lt;TransportState val=&quot;PLAYING&quot;" in body


def test_queue_uses_queue_id() -> None:
    """Queue bodies put their variables in QueueID 0 of the Queue namespace."""
    body = build_propertyset("Queue", {"UpdateID": "3", "Curated": "0", "QueueOwnerID": ""})
    assert b"&lt;QueueID val=&quot;0&quot;&gt;&lt;UpdateID val=&quot;3&quot;/&gt;" in body
    assert parse_event_xml(body) == {"update_id": "3", "curated": "0", "queue_owner_id": ""}


def test_rincon_prefix_outside_avtransport_declares_namespace() -> None:
    """An r: variable in RenderingControl gets xmlns:r declared so the document stays valid."""
    body = build_propertyset("RenderingControl", {"r:Special": "1", "Bass": "2"})
    assert parse_event_xml(body) == {"special": "1", "bass": "2"}


def test_didl_metadata_is_escaped_twice() -> None:
    """DIDL-Lite in a LastChange value appears escaped twice and parses as a SoCo DIDL item."""
    didl = (
        '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:upnp="urn:schemas-upnp-org:metadata-1-0/upnp/" '
        'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/"><item id="-1" parentID="-1" '
        'restricted="true"><res protocolInfo="http-get:*:audio/mpeg:*">http://x/a?b=1&amp;c=2'
        "</res><dc:title>Rock &amp; Roll</dc:title><upnp:class>object.item.audioItem.musicTrack"
        "</upnp:class></item></DIDL-Lite>"
    )
    body = build_propertyset("AVTransport", {"CurrentTrackMetaData": didl})
    assert b"val=&quot;&amp;lt;DIDL-Lite xmlns:dc=&amp;quot;" in body
    assert b"b=1&amp;amp;amp;c=2" in body
    item = parse_event_xml(body)["current_track_meta_data"]
    assert item.title == "Rock & Roll"
    assert item.resources[0].uri == "http://x/a?b=1&c=2"


def test_variable_order_is_kept() -> None:
    """Variables appear in the body in the order given."""
    body = build_propertyset("DeviceProperties", {"ZoneName": "a", "Icon": "b", "Invisible": "0"})
    assert body.index(b"<ZoneName>") < body.index(b"<Icon>") < body.index(b"<Invisible>")


def test_empty_plain_value_parses_as_none_like_real_speakers() -> None:
    """An empty plain variable is written as an empty element (SoCo reads None, as for Sonos)."""
    body = build_propertyset("DeviceProperties", {"MoreInfo": ""})
    assert b"<MoreInfo></MoreInfo>" in body
    assert parse_event_xml(body) == {"more_info": None}


def test_channel_value_in_plain_service_is_rejected() -> None:
    """Channel variables exist only in LastChange services."""
    with pytest.raises(TypeError):
        build_propertyset("GroupRenderingControl", {"GroupVolume": {"Master": "1"}})


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a<b", "x:y", "r:"])
def test_bad_names_are_rejected(name: str) -> None:
    """Names that are not XML names (with at most the r: prefix) raise ValueError."""
    with pytest.raises(ValueError):
        build_propertyset("DeviceProperties", {name: "1"})
    with pytest.raises(ValueError):
        build_propertyset("AVTransport", {name: "1"})


@pytest.mark.parametrize("value", ["a\x00b", "\x1b[0m", "\ufffe", "x" * 70 + "\x01"])
def test_characters_xml_cannot_carry_are_rejected(value: str) -> None:
    """Control characters XML 1.0 cannot represent raise ValueError instead of bad XML."""
    with pytest.raises(ValueError):
        build_propertyset("DeviceProperties", {"ZoneName": value})
    with pytest.raises(ValueError):
        build_propertyset("AVTransport", {"CurrentTrackURI": value})


def test_last_change_services() -> None:
    """Exactly AVTransport, RenderingControl and Queue use LastChange."""
    assert frozenset({"AVTransport", "RenderingControl", "Queue"}) == LAST_CHANGE_SERVICES
    assert is_last_change("Queue")
    assert not is_last_change("GroupRenderingControl")


def _xml_char(codepoint: int) -> bool:
    return (
        codepoint in (0x9, 0xA, 0xD)
        or 0x20 <= codepoint <= 0xD7FF
        or 0xE000 <= codepoint <= 0xFFFD
        or codepoint >= 0x10000
    )


xml_text = st.text(
    alphabet=st.one_of(
        st.sampled_from("&<>\"'\t\n\r ]]>;#"),
        st.characters(blacklist_categories=("Cs",)).filter(lambda c: _xml_char(ord(c))),
    ),
    max_size=80,
)


@given(xml_text)
def test_plain_values_round_trip(value: str) -> None:
    """Any XML-representable text survives build → parse_event_xml in a plain variable."""
    parsed: dict[str, Any] = parse_event_xml(build_propertyset("DeviceProperties", {"Zone": value}))
    assert parsed["zone"] == (value or None)


@given(xml_text.filter(lambda v: not v.startswith("<DIDL-Lite")))
def test_last_change_values_round_trip(value: str) -> None:
    """Any XML-representable text survives build → parse_event_xml in a LastChange value."""
    body = build_propertyset("AVTransport", {"r:NextTrackURI": value, "TransportState": "X"})
    assert parse_event_xml(body) == {"next_track_uri": value, "transport_state": "X"}


@given(st.dictionaries(xml_text.filter(bool), xml_text, min_size=1, max_size=4), xml_text)
def test_channel_values_round_trip(channels: dict[str, str], other: str) -> None:
    """Channel variables come back as SoCo's {channel: value} dict, whatever the text."""
    body = build_propertyset("RenderingControl", {"Volume": channels, "Bass": other})
    assert parse_event_xml(body) == {"volume": channels, "bass": other}


def test_a_long_value_sent_again_is_escaped_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ZoneGroupState pushed to every speaker (the same long value in many bodies) is
    escaped once (docs/simulator-gena.md, Performance); short values each time."""
    checked: list[str] = []

    def counting(value: str) -> None:
        checked.append(value)

    monkeypatch.setattr(propertyset, "check_chars", counting)
    # A value no other test built (the cache lives as long as the process).
    state = f'<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="RINCON_A" ID="{uuid4()}">'
    bodies = {
        build_propertyset("ZoneGroupTopology", {"ZoneGroupState": state, "ZoneGroupName": "Den"})
        for _ in range(5)
    }
    assert len(bodies) == 1
    assert checked.count(state) == 1
    assert checked.count("Den") == 5
