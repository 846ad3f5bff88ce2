# -*- test-case-name: tests.household.test_probe -*-
"""Asking a speaker who it is, and whether it answers: two small HTTP exchanges made by the
reactor (no thread, no SoCo).

- ``describe``: the speaker's device description (``/xml/device_description.xml``: ``UDN``
  gives the uid, ``roomName`` the room, ``modelName``...) and its household id (SOAP
  ``DeviceProperties.GetHouseholdID``). Identification never asks ``GetZoneGroupState``,
  which large households (about 20 players and more) answer with UPnP 501, and which SoCo's
  ``uid``, ``player_name`` and ``boot_seqnum`` read.
- ``ping``: one SOAP ``RenderingControl.GetVolume``. Any HTTP answer proves the speaker is
  there (a Boost, without RenderingControl, answers 404 or a UPnP fault: there too); a refused
  connection, a timeout or a broken connection is the failure the caller classifies with
  ``sonosd.backoff.describe_failure``. Pings cost no thread of the SoCo pool, so that many
  hung speakers cannot starve commands.

A speaker whose UPnP setting is switched off in the Sonos app answers ``403 Forbidden`` to
both (home-assistant/core#159330, simojenki/bonob#224): ``UpnpDisabled``.

Parsing (``parse_description``, ``parse_soap``) is pure and apart from the I/O; SOAP
envelopes and answers are read as the daemon's other SOAP calls read them
(``household.soap``). Answers are bounded (``MAX_ANSWER`` bytes) and a document declaring a
DTD is refused: what a speaker sends is untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit
from xml.etree import ElementTree

import attrs
from treq.client import HTTPClient
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.web.http_headers import Headers

from sonosd.backoff import SlowAnswer
from sonosd.gena.httpclient import add_timeout, read_bounded
from sonosd.gena.xmlguard import UnsafeXml, check_answer
from sonosd.household.soap import AnswerRefused, envelope, fault_code, out_arguments

#: The largest answer read from a speaker (a device description is about 20 KB).
MAX_ANSWER = 256 * 1024

#: The most tags (``<``) a device description may hold (a real one has about 400).
MAX_DESCRIPTION_TAGS = 10_000

DESCRIPTION_PATH = "/xml/device_description.xml"

#: How failures name the answer at ``DESCRIPTION_PATH``.
DESCRIPTION = "the device description"

_DEVICE_NS = "{urn:schemas-upnp-org:device-1-0}"

#: Where to switch UPnP on, for the message that says a speaker has it off.
UPNP_HELP = (
    "UPnP is switched off on this speaker's Sonos system, so nothing can follow or control "
    "it: in the Sonos app (iOS or Android) open Account, then Privacy & Security (under Legal "
    "and Privacy), then Connection Security, and switch UPnP on; sonosd picks the speaker up "
    "by itself"
)


class ProbeError(Exception):
    """The speaker answered, but not as a Sonos speaker does (a status, a malformed body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpnpDisabled(ProbeError):
    """``403 Forbidden``: UPnP is switched off in the Sonos app (see ``UPNP_HELP``)."""


@attrs.frozen
class Description:
    """Who a speaker is, from its device description and ``GetHouseholdID``.

    @ivar uid: ``RINCON_...`` (the ``UDN`` without ``uuid:``).
    @ivar name: Its room (``roomName``).
    @ivar model: ``modelName`` (``Sonos One``), or ``""``.
    @ivar model_number: ``modelNumber`` (``S18``), or ``""``.
    @ivar software_version: ``softwareVersion``, or ``""``.
    @ivar household_id: ``Sonos_...`` (``None`` when only the description was read).
    """

    uid: str
    name: str
    model: str = ""
    model_number: str = ""
    software_version: str = ""
    household_id: str | None = None


def parse_description(document: bytes) -> Description:
    """The identity in a device description (the root device's ``UDN`` and ``roomName``).

    @raise ProbeError: When it is not a Sonos device description, or breaks a bound (a DTD,
        an encoding other than UTF-8, over ``MAX_DESCRIPTION_TAGS`` tags).
    """
    try:
        check_answer(document, levels=0, max_tags=MAX_DESCRIPTION_TAGS)
    except UnsafeXml as error:
        if error.reason == "dtd":
            raise ProbeError("the speaker's answer declares a DTD: refused") from None
        raise ProbeError(f"the device description is refused: {error}") from None
    try:
        root = ElementTree.fromstring(document)
    except ElementTree.ParseError as error:
        raise ProbeError(f"the device description is not XML: {error}") from None
    device = root.find(f"{_DEVICE_NS}device")
    if device is None:
        raise ProbeError("the device description has no device")

    def text(name: str) -> str:
        return (device.findtext(f"{_DEVICE_NS}{name}") or "").strip()

    udn = text("UDN")
    uid = udn[5:] if udn.startswith("uuid:") else udn
    if not uid.startswith("RINCON_"):
        raise ProbeError(f"not a Sonos speaker (UDN {udn or 'missing'})")
    return Description(
        uid=uid,
        name=text("roomName"),
        model=text("modelName"),
        model_number=text("modelNumber"),
        software_version=text("softwareVersion"),
    )


def soap_envelope(
    service_type: str, action: str, arguments: Sequence[tuple[str, str | int]] = ()
) -> bytes:
    """The SOAP request body for ``action`` of ``service_type`` (``household.soap.envelope``)."""
    return envelope(service_type, action, arguments)


def parse_soap(document: bytes, action: str) -> dict[str, str]:
    """The out-arguments of ``action``'s SOAP answer (``household.soap.out_arguments``).

    @raise ProbeError: For a SOAP fault (with its UPnP error code), a DTD or a malformed
        answer.
    """
    try:
        code = fault_code(document)
        if code is not None:
            raise ProbeError(f"UPnP error {code}")
        return out_arguments(document)
    except AnswerRefused as refused:
        raise ProbeError(f"the {action} answer: {refused}") from None


@attrs.frozen
class Answer:
    """An HTTP answer: its status and (bounded) body."""

    status: int
    body: bytes


async def _exchange(
    http: HTTPClient,
    clock: IReactorTime,
    method: str,
    url: str,
    timeout: float,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    *,
    what: str = "the answer",
) -> Answer:
    """One HTTP request, its whole answer within ``timeout`` seconds, and the connection
    closed otherwise: ``TimeoutError`` when nothing came (``timeout``), ``SlowAnswer`` naming
    ``what``, the host and the bound when the answer began but did not end in time (a
    dripping speaker)."""
    began = False

    async def exchange() -> Answer:
        nonlocal began
        response = await http.request(
            method,
            url,
            headers=Headers({name: [value] for name, value in (headers or {}).items()}),
            data=body,
            allow_redirects=False,
            unbuffered=True,
            reactor=clock,  # type: ignore[arg-type]
        )
        began = True
        answer = await read_bounded(
            response,
            MAX_ANSWER,
            lambda: ProbeError(f"the answer to {method} {url} is over {MAX_ANSWER} bytes"),
        )
        return Answer(response.code, answer)

    def timed_out(seconds: float) -> Exception:
        if began:
            return SlowAnswer.began(what, urlsplit(url).hostname, seconds)
        return TimeoutError(f"{method} {url}: no whole answer within {seconds:g} s")

    return await add_timeout(Deferred.fromCoroutine(exchange()), timeout, clock, timed_out)


def _base(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def _check(answer: Answer, what: str) -> None:
    if answer.status == 403:
        raise UpnpDisabled(f"{what}: 403 Forbidden ({UPNP_HELP})", 403)


async def soap_call(
    http: HTTPClient,
    clock: IReactorTime,
    host: str,
    port: int,
    path: str,
    service_type: str,
    action: str,
    arguments: Sequence[tuple[str, str | int]] = (),
    timeout: float = 5.0,
) -> Answer:
    """POST one SOAP action; the raw answer (any status but 403, which is ``UpnpDisabled``)."""
    answer = await _exchange(
        http,
        clock,
        "POST",
        _base(host, port) + path,
        timeout,
        headers={
            "Content-Type": 'text/xml; charset="utf-8"',
            "SOAPACTION": f'"{service_type}#{action}"',
        },
        body=soap_envelope(service_type, action, arguments),
        what=f"the answer to {action}",
    )
    _check(answer, action)
    return answer


async def describe(
    http: HTTPClient, clock: IReactorTime, host: str, port: int = 1400, timeout: float = 10.0
) -> Description:
    """Who the speaker at ``host`` is: its description and household id (see the module).

    A speaker that serves its description but answers 403 to SOAP over HTTP (a variant of
    some S2 models that want control over HTTPS on 1443; its events still work over HTTP)
    is described without a household id.

    @raise UpnpDisabled: The description answers 403 (UPnP switched off).
    @raise ProbeError: It answers, but not as a Sonos speaker.
    """
    answer = await _exchange(
        http, clock, "GET", _base(host, port) + DESCRIPTION_PATH, timeout, what=DESCRIPTION
    )
    _check(answer, "device description")
    if answer.status != 200:
        raise ProbeError(f"the device description answered HTTP {answer.status}", answer.status)
    description = parse_description(answer.body)
    try:
        household = await soap_call(
            http,
            clock,
            host,
            port,
            "/DeviceProperties/Control",
            "urn:schemas-upnp-org:service:DeviceProperties:1",
            "GetHouseholdID",
            timeout=timeout,
        )
    except UpnpDisabled:
        return description
    values = parse_soap(household.body, "GetHouseholdID")
    household_id = values.get("CurrentHouseholdID", "").strip()
    if not household_id:
        raise ProbeError("GetHouseholdID gave no household id")
    return attrs.evolve(description, household_id=household_id)


async def ping(
    http: HTTPClient, clock: IReactorTime, host: str, port: int = 1400, timeout: float = 5.0
) -> int:
    """One ``GetVolume``: returns the HTTP status when the speaker answers at all.

    A 403 is told apart by the device description: refused too, UPnP is switched off;
    served, the speaker only refuses control over HTTP (it is there, and evented).

    @raise UpnpDisabled: UPnP is switched off.
    """
    try:
        answer = await soap_call(
            http,
            clock,
            host,
            port,
            "/MediaRenderer/RenderingControl/Control",
            "urn:schemas-upnp-org:service:RenderingControl:1",
            "GetVolume",
            (("InstanceID", 0), ("Channel", "Master")),
            timeout=timeout,
        )
    except UpnpDisabled:
        described = await _exchange(
            http, clock, "GET", _base(host, port) + DESCRIPTION_PATH, timeout, what=DESCRIPTION
        )
        _check(described, "device description")
        return 403
    return answer.status
