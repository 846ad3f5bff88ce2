"""Tests for SOAP envelope parsing and formatting (sonosd.sim.soap)."""

from __future__ import annotations

import contextlib
from xml.etree import ElementTree

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.household.soap import out_arguments
from sonosd.sim.soap import (
    SoapFaults,
    SoapParseError,
    action_from_header,
    format_fault,
    format_response,
    hostile_answer,
    parse_request,
    rewritten,
)

SOCO_BODY = (
    b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
    b'<u:SetVolume xmlns:u="urn:schemas-upnp-org:service:RenderingControl:1">'
    b"<InstanceID>0</InstanceID><Channel>Master</Channel><DesiredVolume>30</DesiredVolume>"
    b"</u:SetVolume></s:Body></s:Envelope>"
)


@pytest.mark.parametrize(
    "header",
    [
        "urn:schemas-upnp-org:service:RenderingControl:1#SetVolume",
        '"urn:schemas-upnp-org:service:RenderingControl:1#SetVolume"',
        ' "urn:schemas-sonos-com:service:Whatever:1#SetVolume" ',
        None,
    ],
)
def test_soapaction_quoted_or_not(header: str | None) -> None:
    """The action is read whether SOAPACTION is quoted, unquoted, any namespace, or absent."""
    request = parse_request(SOCO_BODY, header)
    assert request.action == "SetVolume"
    assert request.arguments == {"InstanceID": "0", "Channel": "Master", "DesiredVolume": "30"}


def test_header_and_body_must_agree() -> None:
    """A SOAPACTION naming another action than the body is refused."""
    with pytest.raises(SoapParseError):
        parse_request(SOCO_BODY, "urn:x#GetVolume")


def test_action_from_header() -> None:
    """Only the part after '#' names the action."""
    assert action_from_header('"a:b#Play"') == "Play"
    assert action_from_header("no-hash") is None
    assert action_from_header("") is None


@given(st.binary(max_size=300))
def test_parse_never_crashes(body: bytes) -> None:
    """Arbitrary bytes either parse or raise SoapParseError, nothing else."""
    with contextlib.suppress(SoapParseError):
        parse_request(body)


@given(
    st.dictionaries(
        st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,10}", fullmatch=True),
        st.text(
            alphabet=st.characters(
                blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
            ),
            max_size=40,
        ),
        max_size=5,
    )
)
def test_response_round_trips(out: dict[str, str]) -> None:
    """Out-arguments XML can carry, written by format_response, are read back unchanged
    (escaped once)."""
    body = format_response("GetThing", "urn:schemas-upnp-org:service:X:1", out.items())
    root = ElementTree.fromstring(body)
    element = root[0][0]
    assert element.tag.endswith("GetThingResponse")
    assert {child.tag: child.text or "" for child in element} == out


@pytest.mark.parametrize("character", ["\x01", "\ufffe"])
def test_a_character_xml_cannot_carry_is_written_as_firmware_does(character: str) -> None:
    """A value holding a character XML cannot carry is written as it is (some firmware does,
    in metadata): ElementTree refuses the answer, the daemon's reader drops the character."""
    body = format_response(
        "GetVolume",
        "urn:schemas-upnp-org:service:RenderingControl:1",
        [("CurrentVolume", f"2{character}5")],
    )
    assert f"2{character}5".encode() in body
    with pytest.raises(ElementTree.ParseError):
        ElementTree.fromstring(body)
    assert out_arguments(body) == {"CurrentVolume": "25"}


def test_fault_has_only_the_error_code() -> None:
    """A fault carries UPnPError/errorCode as Sonos sends it."""
    root = ElementTree.fromstring(format_fault(701))
    code = root.find(".//{urn:schemas-upnp-org:control-1-0}errorCode")
    assert code is not None and code.text == "701"
    assert root.find(".//{urn:schemas-upnp-org:control-1-0}errorDescription") is None


def test_didl_doctype_puts_a_dtd_in_one_didl_value() -> None:
    """The didl_doctype fault leaves the envelope without a declaration and gives the first
    DIDL-Lite out-argument a DTD whose entity expands to megabytes in its title."""
    didl = (
        '<DIDL-Lite xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns="urn:schemas-upnp-org:metadata-1-0/DIDL-Lite/">'
        '<item id="-1" parentID="-1"><dc:title>Song</dc:title></item></DIDL-Lite>'
    )
    out = [("Track", "1"), ("TrackMetaData", didl), ("Other", didl)]
    answer = format_response("GetPositionInfo", "urn:schemas-upnp-org:service:AVTransport:1", out)
    hostile = hostile_answer(answer, SoapFaults(didl_doctype=True))
    assert b"<!DOCTYPE" not in hostile and len(hostile) < 10_000
    element = ElementTree.fromstring(hostile)[0][0]
    values = {child.tag: child.text or "" for child in element}
    assert values["Track"] == "1" and values["Other"] == didl
    assert values["TrackMetaData"].startswith("<!DOCTYPE DIDL-Lite [<!ENTITY a ")
    title = ElementTree.fromstring(values["TrackMetaData"]).findtext(
        ".//{http://purl.org/dc/elements/1.1/}title"
    )
    assert title is not None and title.endswith("Song") and len(title) >= 5_000_000


def test_rewrite_replaces_one_out_argument_or_the_first_attribute() -> None:
    """The rewrite fault replaces the out-argument so named, or else only the first attribute
    so named inside an out-argument's document, and only in answers to its action."""
    alarms = '<Alarms><Alarm ID="1" Volume="20"/><Alarm ID="2" Volume="30"/></Alarms>'
    out = [("CurrentAlarmList", alarms), ("CurrentAlarmListVersion", "RINCON_1:7")]
    faults = SoapFaults(rewrite_action="ListAlarms", rewrite_name="Volume", rewrite_value='"\u00b2')
    assert rewritten("GetVolume", out, faults) == out
    document = rewritten("ListAlarms", out, faults)[0][1]
    volumes = [a.get("Volume") for a in ElementTree.fromstring(document).iter("Alarm")]
    assert volumes == ['"\u00b2', "30"]
    faults.rewrite_name = "ID"
    ids = [
        a.get("ID")
        for a in ElementTree.fromstring(rewritten("ListAlarms", out, faults)[0][1]).iter("Alarm")
    ]
    assert ids == ['"\u00b2', "2"]
    faults.rewrite_name = "CurrentAlarmListVersion"
    assert rewritten("ListAlarms", out, faults) == [out[0], ("CurrentAlarmListVersion", '"\u00b2')]
    faults.rewrite_name = "Nowhere"
    assert rewritten("ListAlarms", out, faults) == out


def test_only_clears_the_other_faults() -> None:
    """SoapFaults.only() clears every fault, then sets those named; a name that is no fault
    is an AttributeError."""
    faults = SoapFaults(padding=5, doctype=True)
    faults.only(nesting=3, art=True)
    assert faults == SoapFaults(nesting=3, art=True)
    with pytest.raises(AttributeError, match="no SOAP fault 'nope'"):
        faults.only(nope=1)
