# -*- test-case-name: tests.sim.test_soap -*-
"""SOAP envelopes as Sonos speakers read and write them (protocol reference section 2).

Parsing is lenient in the ways real clients need: the ``SOAPACTION`` header may be quoted or
not and carry any namespace; the action's namespace in the body is ignored. Responses and
UPnP faults are formatted exactly as firmware does (faults: HTTP 500, ``UPnPError`` with only
an ``errorCode``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

import attrs

ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_ENVELOPE_OPEN = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
)
_ENVELOPE_CLOSE = "</s:Body></s:Envelope>"


class UPnPError(Exception):
    """A UPnP error answered as HTTP 500 with ``<errorCode>``; ``code`` is e.g. 701."""

    def __init__(self, code: int, description: str = "") -> None:
        super().__init__(code, description)
        self.code = code
        self.description = description


class SoapParseError(ValueError):
    """The request body is not a SOAP envelope with one action element."""


@attrs.frozen
class SoapRequest:
    """A parsed SOAP request: the action name and its arguments (namespace-free names)."""

    action: str
    arguments: Mapping[str, str]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def action_from_header(value: str | None) -> str | None:
    """The action name in a ``SOAPACTION`` header (``"urn:...:1#Play"`` -> ``Play``)."""
    if not value:
        return None
    value = value.strip().strip('"').strip()
    if "#" not in value:
        return None
    return value.rsplit("#", 1)[1].strip() or None


def parse_request(body: bytes, soapaction: str | None = None) -> SoapRequest:
    """Parse a SOAP request body; the body's element names the action (the header is a hint).

    Raises ``SoapParseError`` when the body is not a SOAP envelope, or when it names a
    different action than the header does.
    """
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as e:
        raise SoapParseError(f"not XML: {e}") from e
    if _local(root.tag) != "Envelope":
        raise SoapParseError("no SOAP Envelope")
    soap_body = next((c for c in root if _local(c.tag) == "Body"), None)
    if soap_body is None or len(soap_body) == 0:
        raise SoapParseError("no SOAP Body")
    element = soap_body[0]
    action = _local(element.tag)
    hinted = action_from_header(soapaction)
    if hinted is not None and hinted != action:
        raise SoapParseError(f"SOAPACTION names {hinted} but the body names {action}")
    arguments = {_local(child.tag): child.text or "" for child in element}
    return SoapRequest(action=action, arguments=arguments)


def format_response(action: str, service_type: str, out: Iterable[tuple[str, str]]) -> bytes:
    """The 200 response body of ``action`` with its out-arguments (values escaped once).

    A character XML cannot carry is written as it is, as some firmware does in metadata (the
    daemon drops it and parses again, as SoCo); only a ``rewrite_*`` fault puts one there, as
    the admin API refuses such characters in the state it sets."""
    args = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in out)
    return (
        f'{_ENVELOPE_OPEN}<u:{action}Response xmlns:u="{service_type}">{args}'
        f"</u:{action}Response>{_ENVELOPE_CLOSE}"
    ).encode()


def format_fault(code: int | str) -> bytes:
    """The HTTP 500 body of a UPnP error, as Sonos sends it (no errorDescription); a text
    ``code`` is a hostile one (``SoapFaults.error_code``), escaped."""
    return (
        f"{_ENVELOPE_OPEN}<s:Fault><faultcode>s:Client</faultcode>"
        "<faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{escape(str(code))}</errorCode></UPnPError></detail></s:Fault>"
        f"{_ENVELOPE_CLOSE}"
    ).encode()


@attrs.define
class SoapFaults:
    """Hostile answers a speaker can be told to give to SOAP requests (a compromised or broken
    device; real speakers never do this), for the daemon's bounds (docs/security.md).

    Mutate the fields; the admin API sets them per speaker.
    """

    padding: int = 0
    """Bytes of whitespace added inside each answer's envelope (a huge answer)."""
    doctype: bool = False
    """Each answer declares a DTD whose entity expands to megabytes, used in its first
    out-argument."""
    drip: float = 0.0
    """Seconds between the 1 KiB pieces an answer is written in (a slow drip)."""
    error_code: str = ""
    """When set, every action fails with a UPnP fault whose ``errorCode`` is this text (a
    broken device: real speakers send a number)."""
    didl_doctype: bool = False
    """The first DIDL-Lite out-argument of each answer (``TrackMetaData`` of
    ``GetPositionInfo``, ``CurrentURIMetaData`` of ``GetMediaInfo``, a Browse ``Result``)
    starts with a DTD whose entity expands to megabytes, used in its title, escaped as
    speakers escape DIDL in SOAP: the envelope itself declares nothing."""
    rewrite_action: str = ""
    """With ``rewrite_name``: the action (``ListAlarms``, ``GetPositionInfo``) whose answer
    carries ``rewrite_value`` in place of one value (a broken device's odd digits)."""
    rewrite_name: str = ""
    """The out-argument (``Track``) whose value is rewritten; when the answer has no such
    out-argument, the first attribute of that name (``Volume``, ``ID``, ``StartTime``) inside
    an out-argument's document (the first alarm of ``CurrentAlarmList``)."""
    rewrite_value: str = ""
    """The value written instead (any text, escaped as firmware escapes values)."""
    nesting: int = 0
    """Elements nested this deep at the end of each answer's root element (after the SOAP
    ``Body``, before a description's ``</root>``): deep nesting within the size bound."""
    not_utf8: bool = False
    """Each answer holds bytes that are not UTF-8 (at the end of its root element), as a
    broken device sends them although it declares UTF-8."""
    status_line: str = ""
    """When set, each answer starts with this line instead of ``HTTP/1.1 200 OK`` (a broken
    device: ``garbage``, ``HTTP/1.1 abc``), then the connection is closed."""
    header_bytes: int = 0
    """Bytes of extra header lines (``X-Padding``, 1 KiB each) in each answer's head: a head
    far over what any client reads."""
    cut: bool = False
    """Each answer announces its whole length and ends halfway through its body, the
    connection closed (a speaker rebooting or dropping off Wi-Fi mid-answer)."""
    description: bool = False
    """The device description is answered with these faults too (``padding``, ``doctype``,
    ``nesting``, ``not_utf8``, ``drip``, ``status_line``, ``header_bytes``, ``cut``): the
    answer read to identify a speaker."""
    art: bool = False
    """Album art (``/getaa``, ``/img/...``) is answered with ``padding`` (bytes appended to
    the image), ``drip``, ``status_line``, ``header_bytes`` and ``cut`` too: what the daemon's
    art proxy fetches."""

    def reset(self) -> None:
        """Clear every fault."""
        for field in attrs.fields(SoapFaults):
            setattr(self, field.name, field.default)

    def only(self, **faults: object) -> None:
        """Clear every fault, then set these (``only(nesting=3_000)``).

        @raise AttributeError: For a name that is no fault.
        """
        self.reset()
        for name, value in faults.items():
            if name not in attrs.fields_dict(SoapFaults):
                raise AttributeError(f"no SOAP fault {name!r}")
            setattr(self, name, value)


_EXPANDING_DTD = (
    '<!DOCTYPE s:Envelope [<!ENTITY a "' + "x" * 1000 + '">'
    '<!ENTITY b "' + "&a;" * 100 + '"><!ENTITY c "' + "&b;" * 50 + '">]>'
).encode("ascii")


_EXPANDING_DIDL_DTD = (
    '&lt;!DOCTYPE DIDL-Lite [&lt;!ENTITY a "' + "x" * 1000 + '"&gt;'
    '&lt;!ENTITY b "' + "&amp;a;" * 100 + '"&gt;&lt;!ENTITY c "' + "&amp;b;" * 50 + '"&gt;]&gt;'
).encode("ascii")

#: A DIDL-Lite document escaped once in an out-argument, up to its first title's text.
_ESCAPED_DIDL_TITLE = re.compile(rb"&lt;DIDL-Lite [^<]*?&lt;dc:title&gt;")

#: The opening tag of an answer's Response element and of its first out-argument, if any.
_RESPONSE_OPENING = re.compile(rb"<u:\w+Response xmlns:u=\"[^\"]*\">(?:<\w+>)?")


def rewritten(action: str, out: list[tuple[str, str]], faults: SoapFaults) -> list[tuple[str, str]]:
    """The out-arguments of ``action`` with the value ``faults`` rewrite (``rewrite_*``), if
    any: the out-argument so named, else the first attribute so named in one's document."""
    name = faults.rewrite_name
    if not name or action != faults.rewrite_action:
        return out
    if any(arg == name for arg, _ in out):
        return [(arg, faults.rewrite_value if arg == name else value) for arg, value in out]
    attribute = re.compile(rf'(?<=\s){re.escape(name)}="[^"]*"')
    value = quoteattr(faults.rewrite_value)
    result = []
    for arg, text in out:
        text, count = attribute.subn(lambda _: f"{name}={value}", text, count=1)
        result.append((arg, text))
        if count:
            return result + out[len(result) :]
    return out


#: Bytes that are not UTF-8 (a lone continuation byte, an unfinished sequence, 0xFF).
NOT_UTF8 = b"\x80 \xc3( \xff"


def hostile_answer(answer: bytes, faults: SoapFaults) -> bytes:
    """``answer`` (a SOAP answer or a device description) as ``faults`` make a speaker send it
    (padding, an expanding DTD, one in a DIDL value, deep nesting, bytes that are not
    UTF-8)."""
    if faults.didl_doctype:
        didl = _ESCAPED_DIDL_TITLE.search(answer)
        if didl is not None:
            answer = (
                answer[: didl.start()]
                + _EXPANDING_DIDL_DTD
                + answer[didl.start() : didl.end()]
                + b"&amp;c;"
                + answer[didl.end() :]
            )
    if faults.doctype:
        # The entity (5 MB) lands in the first out-argument's text (or, for an action
        # without one, in the Response element's).
        opening = _RESPONSE_OPENING.search(answer)
        if opening is not None:
            answer = answer[: opening.end()] + b"&c;" + answer[opening.end() :]
        answer = _EXPANDING_DTD + answer
    if faults.nesting or faults.not_utf8:
        # Before the root element's end tag: a SOAP answer's Body, a description's device
        # stay where they are.
        end = answer.rindex(b"</")
        nested = b"<Nested>" * faults.nesting + b"</Nested>" * faults.nesting
        tail = NOT_UTF8 if faults.not_utf8 else b""
        answer = answer[:end] + nested + tail + answer[end:]
    if faults.padding:
        if b"<s:Body>" in answer:
            answer = answer.replace(b"<s:Body>", b"<s:Body>" + b" " * faults.padding, 1)
        else:
            answer += b" " * faults.padding
    return answer
