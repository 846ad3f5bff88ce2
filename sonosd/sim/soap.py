# -*- test-case-name: tests.sim.test_soap -*-
"""SOAP envelopes as Sonos speakers read and write them (protocol reference section 2).

Parsing is lenient in the ways real clients need: the ``SOAPACTION`` header may be quoted or
not and carry any namespace; the action's namespace in the body is ignored. Responses and
UPnP faults are formatted exactly as firmware does (faults: HTTP 500, ``UPnPError`` with only
an ``errorCode``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from xml.etree import ElementTree
from xml.sax.saxutils import escape

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
    """The 200 response body of ``action`` with its out-arguments (values escaped once)."""
    args = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in out)
    return (
        f'{_ENVELOPE_OPEN}<u:{action}Response xmlns:u="{service_type}">{args}'
        f"</u:{action}Response>{_ENVELOPE_CLOSE}"
    ).encode()


def format_fault(code: int) -> bytes:
    """The HTTP 500 body of a UPnP error, as Sonos sends it (no errorDescription)."""
    return (
        f"{_ENVELOPE_OPEN}<s:Fault><faultcode>s:Client</faultcode>"
        "<faultstring>UPnPError</faultstring><detail>"
        '<UPnPError xmlns="urn:schemas-upnp-org:control-1-0">'
        f"<errorCode>{code}</errorCode></UPnPError></detail></s:Fault>{_ENVELOPE_CLOSE}"
    ).encode()
