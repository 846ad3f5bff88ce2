# -*- test-case-name: tests.sim.test_soco -*-
"""The HTTP side of one simulated speaker (port 1400): descriptions, SOAP, GENA, album art.

Routes, as real firmware has them: ``GET /xml/device_description.xml``, ``GET
/xml/<Service>1.xml`` (plus SoCo's ``MS_``/``MR_ConnectionManager`` aliases), ``POST
<controlURL>`` (SOAP), ``SUBSCRIBE``/``UNSUBSCRIBE <eventSubURL>`` (handed to the speaker's GENA
``SubscriptionManager``), ``GET /getaa?...`` and ``/img/icon-*.png`` (PNG; ``/getaa`` answers a
redirect instead while the ``Speaker.art_redirect`` fault is set), ``GET
/status/batterystatus`` and ``GET /status/accounts`` (the household's music-service accounts,
as SoCo's ``Account`` reads them). Unknown paths get 404, a known path with the wrong method
405.

The same site serves HTTP (port 1400) and, for HTTPS-only speakers, TLS (port 1443). The
household's and the speaker's modes (``sonosd.sim.modes``) may refuse a request first: 403
to the description, SOAP and GENA while UPnP is switched off, 403 to SOAP over plain HTTP on an
HTTPS-only speaker.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from twisted.logger import Logger
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sonosd.sim import actions, modes, musicservices, scpd

# The handler modules register their actions with sonosd.sim.actions when imported.
from sonosd.sim import alarmactions, contentactions, queueactions  # noqa: F401  isort: skip
from sonosd.sim.artwork import art_for
from sonosd.sim.badanswers import cut_short, drip, garbage_answer, pad_head
from sonosd.sim.battery import NO_BATTERY_STATUS
from sonosd.sim.description import device_description
from sonosd.sim.soap import (
    SoapParseError,
    UPnPError,
    format_fault,
    format_response,
    hostile_answer,
    parse_request,
    rewritten,
)

if TYPE_CHECKING:
    from sonosd.sim.household import Speaker

log = Logger()

_XML = b'text/xml; charset="utf-8"'
#: Larger SOAP requests are refused (real speakers accept far less than this).
MAX_SOAP_BODY = 1_048_576


class SpeakerResource(Resource):
    """Every path of one speaker; see the module docstring."""

    isLeaf = True

    def __init__(self, speaker: Speaker) -> None:
        super().__init__()
        self.speaker = speaker

    def render(self, request: Request) -> bytes | int:
        """Route by path, apply the modes, then check the method."""
        speaker = self.speaker
        request.setHeader(b"server", speaker.model.server_header.encode("ascii"))
        path = urlsplit(request.uri.decode("latin-1")).path
        method = request.method.decode("latin-1")
        kind, target = self._route(path)
        refused = modes.refusal(
            kind, speaker.household.modes, https_only=speaker.https_only, secure=request.isSecure()
        )
        if refused is not None:
            request.setResponseCode(refused)
            request.setHeader(b"content-type", b"text/html")
            return modes.FORBIDDEN_BODY
        if kind == modes.DESCRIPTION:
            return self._only(request, method, ("GET", "HEAD")) or self._description(request)
        if kind == modes.SCPD:
            assert isinstance(target, str)
            return self._only(request, method, ("GET", "HEAD")) or self._xml(
                request, scpd.scpd_document(target)
            )
        if kind == modes.CONTROL:
            assert isinstance(target, scpd.ServiceInfo)
            return self._only(request, method, ("POST",)) or self._soap(request, target)
        if kind == modes.EVENT:
            assert isinstance(target, scpd.ServiceInfo)
            return self._gena(request, method, target.key)
        if path == "/status/batterystatus":
            return self._only(request, method, ("GET", "HEAD")) or self._xml(
                request,
                speaker.battery.status_page() if speaker.battery is not None else NO_BATTERY_STATUS,
            )
        if path == "/status/accounts":
            if bad := self._only(request, method, ("GET", "HEAD")):
                return bad
            household = speaker.household
            return self._xml(
                request, musicservices.accounts_xml(household.alarm_list.owner, household.accounts)
            )
        if path == "/getaa" or (path.startswith("/img/") and path.endswith(".png")):
            if bad := self._only(request, method, ("GET", "HEAD")):
                return bad
            if path == "/getaa" and speaker.art_redirect is not None:
                request.setResponseCode(302)
                request.setHeader(b"location", speaker.art_redirect.encode("utf-8"))
                return b""
            query = parse_qs(urlsplit(request.uri.decode("latin-1")).query)
            image = art_for(query.get("u", [path])[0])
            faults = speaker.soap_faults
            if faults.art:
                return self._deliver(request, image + b"\0" * faults.padding, b"image/png")
            request.setHeader(b"content-type", speaker.art_type.encode("latin-1"))
            return image
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"text/html")
        return b"<html><body><h1>404 Not Found</h1></body></html>"

    def _route(self, path: str) -> tuple[str, scpd.ServiceInfo | str | None]:
        """What kind of request ``path`` is (``sonosd.sim.modes``) and what it names."""
        offered = self.speaker.offered
        if path == "/xml/device_description.xml":
            return modes.DESCRIPTION, None
        scpd_name = scpd.scpd_paths().get(path)
        if scpd_name is not None and self._offers_name(scpd_name):
            return modes.SCPD, scpd_name
        control = scpd.by_control_url().get(path)
        if control is not None and control.key in offered:
            return modes.CONTROL, control
        event = scpd.by_event_url().get(path)
        if event is not None and event.key in offered:
            return modes.EVENT, event
        return modes.OTHER, None

    def _offers_name(self, name: str) -> bool:
        return any(scpd.services()[key].name == name for key in self.speaker.offered)

    @staticmethod
    def _only(request: Request, method: str, allowed: tuple[str, ...]) -> bytes | None:
        if method in allowed:
            return None
        request.setResponseCode(405)
        request.setHeader(b"allow", ", ".join(allowed).encode("ascii"))
        return b""

    @staticmethod
    def _xml(request: Request, body: bytes) -> bytes:
        request.setHeader(b"content-type", _XML)
        return body

    def _description(self, request: Request) -> bytes | int:
        speaker = self.speaker
        description = device_description(
            identity=speaker.identity,
            model=speaker.model,
            room_name=speaker.name,
            address=speaker.address,
            offered=speaker.offered,
        )
        if speaker.soap_faults.description:
            return self._hostile(request, description)
        return self._xml(request, description)

    def _soap(self, request: Request, service: scpd.ServiceInfo) -> bytes | int:
        assert request.content is not None
        body = request.content.read(MAX_SOAP_BODY + 1)
        if len(body) > MAX_SOAP_BODY:
            request.setResponseCode(413)
            return b""
        soapaction = request.getHeader("soapaction")
        try:
            soap = parse_request(body, soapaction)
        except SoapParseError as e:
            log.debug("bad SOAP request to {path}: {error}", path=service.control_url, error=e)
            return self._fault(request, 402 if body.strip() else 401)
        declared = service.actions.get(soap.action)
        if declared is None:
            return self._fault(request, 401)
        if self.speaker.soap_faults.error_code:
            return self._fault(request, self.speaker.soap_faults.error_code)
        try:
            out = actions.run(self.speaker, service.key, soap.action, soap.arguments)
        except UPnPError as e:
            log.debug(
                "{speaker} {service} {action} failed with {code}: {description}",
                speaker=self.speaker.name,
                service=service.key,
                action=soap.action,
                code=e.code,
                description=e.description,
            )
            return self._fault(request, e.code)
        names = [arg.name for arg in declared.outputs]
        ordered = [(name, out[name]) for name in names if name in out]
        ordered += [(name, value) for name, value in out.items() if name not in names]
        faults = self.speaker.soap_faults
        ordered = rewritten(soap.action, ordered, faults)
        return self._hostile(request, format_response(soap.action, service.service_type, ordered))

    def _hostile(self, request: Request, answer: bytes) -> bytes | int:
        """Send ``answer`` as the speaker's SOAP faults make it (``hostile_answer``, then a
        drip or a garbage status line)."""
        return self._deliver(request, hostile_answer(answer, self.speaker.soap_faults), _XML)

    def _deliver(self, request: Request, body: bytes, content_type: bytes) -> bytes | int:
        """Send ``body`` as the speaker's faults make it: after a garbage status line, in a
        slow drip, or plainly."""
        faults = self.speaker.soap_faults
        request.setHeader(b"content-type", content_type)
        if faults.status_line:
            request.setHeader(b"content-length", b"%d" % len(body))
            return garbage_answer(request, faults.status_line, body)
        pad_head(request, faults.header_bytes)
        if faults.cut:
            return cut_short(request, body)
        if faults.drip > 0:
            request.setHeader(b"content-length", b"%d" % len(body))
            return drip(request, body, faults.drip, self.speaker.household.clock)
        return body

    def _fault(self, request: Request, code: int | str) -> bytes:
        request.setResponseCode(500)
        return self._xml(request, format_fault(code))

    def _gena(self, request: Request, method: str, service: str) -> bytes | int:
        manager = self.speaker.manager
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE") or manager is None:
            return self._only(request, method, ("SUBSCRIBE", "UNSUBSCRIBE")) or b""
        if method == "SUBSCRIBE":
            return manager.render_subscribe(request, service)
        return manager.render_unsubscribe(request, service)


class _SpeakerHeaders(Headers):
    """Answer headers written as a speaker writes them: ``SID`` and ``TIMEOUT`` in capitals
    where twisted.web would write ``Sid`` and ``Timeout`` (docs/simulator-gena.md)."""

    _CAPITALS = {b"Sid": b"SID", b"Timeout": b"TIMEOUT"}

    def getAllRawHeaders(self) -> Iterator[tuple[bytes, Sequence[bytes]]]:
        """Every header, ``SID`` and ``TIMEOUT`` named in capitals (what the channel writes)."""
        for name, values in super().getAllRawHeaders():
            yield self._CAPITALS.get(name, name), values


class _SpeakerRequest(Request):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.responseHeaders = _SpeakerHeaders()


def speaker_site(speaker: Speaker) -> Site:
    """The HTTP site of ``speaker`` (no access log: 100 speakers would drown the log)."""
    site = Site(SpeakerResource(speaker))
    site.requestFactory = _SpeakerRequest
    site.noisy = False
    site.log = lambda request: None  # type: ignore[method-assign]
    return site
