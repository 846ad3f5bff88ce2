# -*- test-case-name: tests.household.test_soap -*-
"""SOAP calls made by the reactor: the daemon's own reads of speakers, without SoCo.

An idle daemon talks SOAP to its speakers on its own, with no user command: the position of
a playing group after a transport or track change (``household.position``), the consistency
check and the resync after a SEQ gap or while polling (``household.resync``), the alarm list
when its version changes (``household.alarms``). Through SoCo each read cost a thread of
the pool, ``requests`` and SoCo's parsing (1-2 ms of CPU), and made an idle daemon import
SoCo, ``requests``, urllib3 and lxml. :class:`SoapClient` sends them from the reactor with
Twisted's HTTP client instead, within the bounds SoCo's HTTP has in the daemon
(``household.socohttp``):

- the answer is at most ``MAX_ANSWER`` bytes (``AnswerRefused`` as soon as it is over);
- the whole call (waiting for the speaker's turn, every exchange, the whole answer) ends
  within its timeout, however steadily an answer drips (``SoapTimeout``; the connection is
  closed); an answer that began but did not end in time, or that a call waited behind for
  its turn, makes it ``SlowAnswer`` too, whose reason names that answer, the speaker and
  the bound, as the device description's does (``household.probe``);
- an answer that declares a DTD or an entity, at the top or in a document escaped in it,
  is refused before any parser sees it (``gena.xmlguard.check_answer``);
- a speaker gets one of these calls at a time, in order (as the SoCo pool serialised them
  per speaker).

The results have SoCo's shape: the out-arguments of the action as ``{name: text}`` (``""``
for an empty element), what ``soco.services.Service.send_command`` returns. Failures keep
what callers tell apart: a UPnP fault (HTTP 500 with an ``errorCode``) is ``UpnpFault``
with SoCo's ``error_code`` (a string: ``"501"``, ``"701"``), any other status is
``SoapHttpError`` with its ``status``, a refused or lost connection is Twisted's own error
(``sonosd.backoff.describe_failure`` reads them all).

Speakers that refuse SOAP over HTTP (``403``; some S2 firmware) serve it over HTTPS on port
``TLS_PORT``, unverified (their certificate is self-signed), exactly as ``sonosd.securesoap``
does for SoCo's calls: a 403 over HTTP is tried once over HTTPS and, answered there, the
address is remembered; a remembered address is asked over HTTPS directly, and over HTTP
again when no connection can be made on that port (an answer other than 403 then forgets
it). pyOpenSSL is loaded with the first such speaker (``sonosd.tlsgate``).

Building requests and reading answers (``envelope``, ``out_arguments``, ``fault_code``) is
pure and apart from the I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import attrs
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredLock, succeed
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import (
    IConsumer,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from sonosd import tlsgate
from sonosd.backoff import SlowAnswer
from sonosd.gena.httpclient import add_timeout, read_bounded, speaker_agent
from sonosd.gena.xmlguard import UnsafeXml, check_answer

log = Logger()

MAX_ANSWER: Final = 4 * 1024 * 1024
"""The largest answer (bytes) a speaker may send to a SOAP call; a GetZoneGroupState of 200
speakers is about 150 KB, a Browse of 100 queue items about 200 KB."""

TLS_PORT: Final = 1443
"""The port speakers serve HTTPS on (``SSLPort`` in the device description and topology)."""

DEFAULT_TIMEOUT: Final = 20.0
"""Seconds a call may take when neither the call nor the client says (SoCo's default)."""

_QUOTE: Final = {'"': "&quot;"}
_ENVELOPE: Final = "{http://schemas.xmlsoap.org/soap/envelope/}"
_CONTROL: Final = "{urn:schemas-upnp-org:control-1-0}"
# Characters XML 1.0 does not allow (or discourages), which some firmware puts in metadata:
# when an answer does not parse, SoCo drops them and parses again (soco.xml.illegal_xml_re).
_ILLEGAL_RANGES: Final = (
    (0x00, 0x08),
    (0x0B, 0x0C),
    (0x0E, 0x1F),
    (0x7F, 0x84),
    (0x86, 0x9F),
    (0xD800, 0xDFFF),
    (0xFDD0, 0xFDDF),
    *((plane + 0xFFFE, plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000)),
)
_ILLEGAL_XML: Final = re.compile(
    "[" + "".join(f"{chr(low)}-{chr(high)}" for low, high in _ILLEGAL_RANGES) + "]"
)


@attrs.frozen
class SoapService:
    """Where a service's SOAP actions go.

    @ivar control_url: The path of its control URL.
    @ivar service_type: Its type, as SoCo sends it (``SOAPACTION`` and the action's namespace).
    """

    control_url: str
    service_type: str


def _service(name: str, control_url: str) -> SoapService:
    return SoapService(control_url, f"urn:schemas-upnp-org:service:{name}:1")


#: The services the daemon reads by itself, by name (the control URLs SoCo uses).
SERVICES: Mapping[str, SoapService] = {
    "AVTransport": _service("AVTransport", "/MediaRenderer/AVTransport/Control"),
    "RenderingControl": _service("RenderingControl", "/MediaRenderer/RenderingControl/Control"),
    "GroupRenderingControl": _service(
        "GroupRenderingControl", "/MediaRenderer/GroupRenderingControl/Control"
    ),
    "Queue": _service("Queue", "/MediaRenderer/Queue/Control"),
    "ContentDirectory": _service("ContentDirectory", "/MediaServer/ContentDirectory/Control"),
    "ZoneGroupTopology": _service("ZoneGroupTopology", "/ZoneGroupTopology/Control"),
    "DeviceProperties": _service("DeviceProperties", "/DeviceProperties/Control"),
    "AlarmClock": _service("AlarmClock", "/AlarmClock/Control"),
    "SystemProperties": _service("SystemProperties", "/SystemProperties/Control"),
}

Arguments = Sequence[tuple[str, Any]]


class SoapError(Exception):
    """A SOAP call got no usable answer; ``str()`` says why."""


class UpnpFault(SoapError):
    """The speaker answered HTTP 500 with a UPnP error (as ``SoCoUPnPException``).

    @ivar error_code: The ``errorCode``, a string as SoCo has it (``"501"``).
    @ivar action: The action that failed.
    """

    def __init__(self, action: str, host: str, error_code: str) -> None:
        super().__init__(f"UPnP error {error_code} from {host} ({action})")
        self.action = action
        self.error_code = error_code


class SoapHttpError(SoapError):
    """The speaker answered with an HTTP status other than 200, or a 500 without a UPnP error.

    @ivar status: The status (``403``, ``404``, ``503``...).
    """

    def __init__(self, action: str, host: str, status: int) -> None:
        super().__init__(f"{action} to {host}: HTTP {status}")
        self.action = action
        self.status = status


class AnswerRefused(SoapError):
    """An answer broke a bound (its size, a DTD) or is not a SOAP answer at all."""


class SoapTimeout(SoapError, TimeoutError):
    """The call did not end (the whole answer received) within its timeout."""


class SoapSlowAnswer(SoapTimeout, SlowAnswer):
    """The call's answer, or the one it waited behind for its turn, began within its timeout
    but did not end in it (a dripping speaker): ``str()`` is ``the answer to GetVolume from
    127.0.0.2 did not arrive within 20 s (it began, then came too slowly)``, the reason
    ``describe_failure`` gives."""


class AnswerCut(CancelledError):
    """A call cancelled by its caller while its answer was arriving: a caller's own bound
    (a whole read's, ``household.resync``) says so as ``SlowAnswer.began(what, host, ...)``.

    @ivar what: ``the answer to GetVolume``.
    @ivar host: The speaker's address.
    """

    def __init__(self, what: str, host: str) -> None:
        super().__init__(f"{what} from {host} was cut while it arrived")
        self.what = what
        self.host = host


@attrs.define
class _Call:
    """One call, and where it is: ``answering`` while an answer's body is arriving."""

    host: str
    port: int
    target: SoapService
    action: str
    arguments: Arguments
    answering: bool = False


def envelope(service_type: str, action: str, arguments: Arguments = ()) -> bytes:
    """The SOAP request body of ``action`` with ``arguments`` (values escaped as SoCo does)."""
    args = "".join(f"<{name}>{escape(str(value), _QUOTE)}</{name}>" for name, value in arguments)
    return (
        '<?xml version="1.0"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
        's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
        f'<u:{action} xmlns:u="{service_type}">{args}</u:{action}>'
        "</s:Body></s:Envelope>"
    ).encode()


def _checked(document: bytes) -> None:
    try:
        check_answer(document)
    except UnsafeXml as unsafe:
        raise AnswerRefused(f"the answer is refused: {unsafe}") from None


def _parse(document: bytes) -> ElementTree.Element:
    """The parsed answer (checked first); characters XML forbids are dropped and the parse
    tried again, as SoCo does (some firmware sends them in metadata).

    @raise ElementTree.ParseError: It is not XML even so.
    """
    try:
        return ElementTree.fromstring(document)
    except ElementTree.ParseError:
        text = _ILLEGAL_XML.sub("", document.decode("utf-8", "replace"))
        return ElementTree.fromstring(text.encode("utf-8"))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def out_arguments(document: bytes) -> dict[str, str]:
    """The out-arguments of a 200 answer: the children of the SOAP ``Body``'s first element,
    ``{name: text}`` (``""`` when empty), as ``soco.services.Service.unwrap_arguments``.

    @raise AnswerRefused: With a DTD, or not a SOAP answer.
    """
    _checked(document)
    try:
        root = _parse(document)
    except ElementTree.ParseError as error:
        raise AnswerRefused(f"the answer is not XML: {error}") from None
    body = root.find(f"{_ENVELOPE}Body")
    if body is None or len(body) == 0:
        raise AnswerRefused("the answer has no SOAP Body element")
    return {_local(element.tag): element.text or "" for element in body[0]}


def fault_code(document: bytes) -> str | None:
    """The UPnP ``errorCode`` of a fault (an HTTP 500 answer), or ``None`` if it has none.

    @raise AnswerRefused: With a DTD.
    """
    _checked(document)
    try:
        root = _parse(document)
    except ElementTree.ParseError:
        return None
    code = root.findtext(f".//{_CONTROL}errorCode")
    return code.strip() if code is not None and code.strip() else None


class SoapCaller(Protocol):
    """What the readers need of :class:`SoapClient` (tests pass a recording fake)."""

    def call(
        self,
        host: str,
        port: int,
        service: str,
        action: str,
        arguments: Arguments = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[dict[str, str]]:
        """See :meth:`SoapClient.call`."""


@attrs.frozen
class _Answer:
    status: int
    body: bytes


class SoapClient(Service):
    """SOAP calls to speakers from the reactor; see the module docstring.

    A service only so that stopping it cancels the calls still in flight (their connections
    closed, their timers gone); it can still be used after.

    @param reactor: Connects, and times every call.
    @param timeout: Seconds a call may take when it does not say (``soco.call_timeout``).
    @param max_bytes: The largest answer accepted.
    @param tls_port: The speakers' HTTPS port.
    @param agent: Sends the requests over plain HTTP (default: an ``Agent`` of its own that
        connects straight to the speaker's address, a connection per request, as speakers
        expect).
    @param tls_agent: Sends them over HTTPS to HTTPS-only speakers (default: the same kind
        of ``Agent``, without certificate verification, made for the first of them).
    @ivar secure: The addresses known to take SOAP over HTTPS only.
    @ivar calls: Calls made (for the diagnostics and the tests).
    """

    def __init__(
        self,
        reactor: Any,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        max_bytes: int = MAX_ANSWER,
        tls_port: int = TLS_PORT,
        agent: IAgent | None = None,
        tls_agent: IAgent | None = None,
    ) -> None:
        self._reactor = reactor
        self._clock: IReactorTime = reactor
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.tls_port = tls_port
        self._agent = agent if agent is not None else _agent(reactor)
        self._tls_agent = tls_agent
        self.secure: set[str] = set()
        self._turns: dict[str, DeferredLock] = {}
        # The call that has each speaker's turn.
        self._holders: dict[str, _Call] = {}
        self._in_flight: set[Deferred[Any]] = set()
        self.calls = 0

    def stopService(self) -> None:
        """Cancel every call in flight (each fails with ``CancelledError``)."""
        super().stopService()
        for running in list(self._in_flight):
            running.cancel()

    def call(
        self,
        host: str,
        port: int,
        service: str,
        action: str,
        arguments: Arguments = (),
        *,
        timeout: float | None = None,
    ) -> Deferred[dict[str, str]]:
        """Call ``action`` of ``service`` on the speaker at ``host``.

        @param port: Its HTTP port (1400).
        @param timeout: Seconds for the whole call, the wait for the speaker's turn
            included (default: the client's).
        @return: A Deferred firing with the out-arguments (``{name: text}``); it fails with
            ``UpnpFault``, ``SoapHttpError``, ``AnswerRefused``, ``SoapTimeout`` or the
            connection's error; cancelled, with ``CancelledError`` (``AnswerCut`` while the
            answer was arriving).
        @raise KeyError: For a service not in ``SERVICES``.
        """
        target = SERVICES[service]
        seconds = self.timeout if timeout is None else timeout
        self.calls += 1

        made = _Call(host, port, target, action, arguments)

        def timed_out(after: float) -> Exception:
            slow = self._dripping(made)
            if slow is not None:
                return SoapSlowAnswer.began(f"the answer to {slow}", host, after)
            return SoapTimeout(f"{action} to {host}: no whole answer within {after:g} s")

        running = add_timeout(
            Deferred.fromCoroutine(self._call(made)), seconds, self._clock, timed_out
        )

        def cut(failure: Failure) -> Failure:
            slow = self._dripping(made)
            if slow is not None and type(failure.value) is CancelledError:
                return Failure(AnswerCut(f"the answer to {slow}", host))
            return failure

        running.addErrback(cut)
        if not running.called:
            self._in_flight.add(running)
            running.addBoth(self._settled, running)
        return running

    def _dripping(self, made: _Call) -> str | None:
        """The action whose answer was arriving when ``made`` ended unanswered: its own, or
        that of the call it waited behind (a speaker dripping one answer holds up the next);
        ``None`` when no answer had begun."""
        if made.answering:
            return made.action
        holder = self._holders.get(made.host)
        return holder.action if holder is not None and holder.answering else None

    def _settled(self, result: Any, running: Deferred[Any]) -> Any:
        self._in_flight.discard(running)
        return result

    async def _call(self, made: _Call) -> dict[str, str]:
        host, action = made.host, made.action
        turn = self._turns.get(host)
        if turn is None:
            turn = self._turns[host] = DeferredLock()
        await turn.acquire()
        self._holders[host] = made
        try:
            answer = await self._send(made)
        finally:
            del self._holders[host]
            turn.release()
            if not turn.locked and not turn.waiting:
                self._turns.pop(host, None)
        if answer.status == 200:
            return out_arguments(answer.body)
        if answer.status == 500:
            code = fault_code(answer.body)
            if code is not None:
                raise UpnpFault(action, host, code)
        raise SoapHttpError(action, host, answer.status)

    async def _send(self, made: _Call) -> _Answer:
        """One call over HTTP, or HTTPS for a speaker that wants it (see the module)."""
        host, port, target, action = made.host, made.port, made.target, made.action
        arguments = made.arguments
        body = envelope(target.service_type, action, arguments)
        headers = Headers(
            {
                b"Content-Type": [b'text/xml; charset="utf-8"'],
                b"SOAPACTION": [f'"{target.service_type}#{action}"'.encode()],
            }
        )
        plain = f"http://{_netloc(host, port)}{target.control_url}"
        secure = f"https://{_netloc(host, self.tls_port)}{target.control_url}"
        if host in self.secure:
            try:
                return await self._exchange(self._tls(), secure, headers, body, made)
            except ConnectError:
                answer = await self._exchange(self._agent, plain, headers, body, made)
                if answer.status != 403:
                    self._forget(host)
                return answer
        answer = await self._exchange(self._agent, plain, headers, body, made)
        if answer.status != 403:
            return answer
        try:
            over_tls = await self._exchange(self._tls(), secure, headers, body, made)
        except CancelledError:
            raise
        except Exception:
            return answer  # Nothing on the HTTPS port (UPnP is off): the 403 stands.
        if over_tls.status == 403:
            return answer
        self._remember(host)
        return over_tls

    async def _exchange(
        self, agent: IAgent, url: str, headers: Headers, body: bytes, made: _Call
    ) -> _Answer:
        response: IResponse = await agent.request(b"POST", url.encode(), headers, _Body(body))
        made.answering = True
        limit = self.max_bytes
        # Cancelled (the call's timeout), or over the limit, the connection is closed.
        body = await read_bounded(
            response, limit, lambda: AnswerRefused(f"the answer from {url} is over {limit} bytes")
        )
        made.answering = False  # Not on a failure: the timeout's reason reads it.
        return _Answer(response.code, body)

    def _tls(self) -> IAgent:
        if self._tls_agent is None:
            tlsgate.enable()
            self._tls_agent = _agent(self._reactor, tls=True)
        return self._tls_agent

    def _remember(self, host: str) -> None:
        if host not in self.secure:
            self.secure.add(host)
            log.info(
                "{host} refuses SOAP over HTTP: the daemon's reads of it go over HTTPS (port "
                "{port}) from now on, without certificate verification (speakers' "
                "certificates are self-signed)",
                host=host,
                port=self.tls_port,
            )

    def _forget(self, host: str) -> None:
        if host in self.secure:
            self.secure.discard(host)
            log.info("{host} takes SOAP over HTTP again", host=host)


def _netloc(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _agent(reactor: Any, tls: bool = False) -> IAgent:
    """An ``Agent`` of its own: one connection per request, none of them logged, each
    straight to the speaker (``gena.httpclient.speaker_agent``), over TLS for ``https``
    (unverified: ``_UnverifiedCreator``)."""
    return speaker_agent(reactor, _UnverifiedCreator() if tls else None)


@implementer(IBodyProducer)
class _Body:
    """A request body written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


@implementer(IOpenSSLClientConnectionCreator)
class _UnverifiedCreator:
    """TLS to speakers without verifying their certificate (self-signed, naming no address:
    it cannot be verified). Needs pyOpenSSL: made only once ``tlsgate.enable`` ran."""

    def __init__(self) -> None:
        from twisted.internet.ssl import CertificateOptions

        self._context = CertificateOptions(verify=False).getContext()

    def clientConnectionForTLS(self, protocol: Any) -> Any:
        from OpenSSL import SSL

        connection = SSL.Connection(self._context, None)
        connection.set_app_data(protocol)
        return connection
