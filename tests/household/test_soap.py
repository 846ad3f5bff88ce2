"""Tests for household.soap: the daemon's own SOAP reads from the reactor. Parsing against
captured answers and SoCo's own unwrapping; every bound as an attack (in memory with treq's
RequestTraversalAgent and a Clock, and against simulated speakers told to answer like hostile
ones); UPnP faults, HTTPS-only speakers, UPnP switched off and offline speakers through the
simulator."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any, cast

import soco
from hypothesis import given, settings
from soco.services import Service
from treq.testing import RequestTraversalAgent
from twisted.internet import reactor
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web._newclient import ResponseNeverReceived
from twisted.web.client import URI, ResponseFailed
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from sonosd.backoff import FailureKind, SlowAnswer, describe_failure
from sonosd.config import SimulateConfig
from sonosd.gena.httpclient import read_body
from sonosd.gena.xmlguard import MAX_ANSWER_TAGS
from sonosd.household.position import PositionTracker
from sonosd.household.resync import StateReader, ZoneGroupStateUnavailable
from sonosd.household.soap import (
    SERVICES,
    AnswerRefused,
    SoapClient,
    SoapHttpError,
    SoapTimeout,
    UpnpFault,
    _agent,
    envelope,
    fault_code,
    out_arguments,
)
from sonosd.household.state import SpeakerRef
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.household.test_position import Processor
from tests.mangled import mangled
from tests.paths import ROOT, SAMPLES
from tests.soco_helpers import in_thread

ANSWER = (
    b'<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" '
    b's:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body>'
    b'<u:GetVolumeResponse xmlns:u="urn:schemas-upnp-org:service:RenderingControl:1">'
    b"<CurrentVolume>23</CurrentVolume></u:GetVolumeResponse></s:Body></s:Envelope>"
)
FAULT = (SAMPLES / "soap" / "soap_fault_UPnPError_800_sonos-api-docs.xml").read_bytes()
DTD = b'<!DOCTYPE s [<!ENTITY a "xxxxxxxx">]>' + ANSWER.replace(b">23<", b">&a;<")


def _envelope_of(sample: str) -> bytes:
    """The SOAP envelope of a captured answer (the HTTP head, if captured, left out)."""
    data = (SAMPLES / "soap" / sample).read_bytes()
    return data[data.index(b"<s:Envelope") :] if b"<s:Envelope" in data else data


class ParsingTests(SynchronousTestCase):
    """Pure parsing: the values SoCo gives for the same answers."""

    def test_answers_as_soco_unwraps_them(self) -> None:
        """Captured answers give exactly the out-arguments SoCo's unwrap_arguments gives."""
        for sample in (
            "AVTransport_GetPositionInfo_response_jishi.xml",
            "ContentDirectory_Browse_Q0_response_jishi.xml",
            "AVTransport_AddURIToQueue_response_jishi.xml",
        ):
            document = _envelope_of(sample)
            expected = Service.unwrap_arguments(document.decode("utf-8"))
            self.assertEqual(out_arguments(document), expected, sample)
        self.assertEqual(out_arguments(ANSWER), {"CurrentVolume": "23"})

    def test_fault_code(self) -> None:
        """A fault document gives its UPnP errorCode; one without gives None."""
        self.assertEqual(fault_code(FAULT), "800")
        self.assertIsNone(fault_code(ANSWER))
        self.assertIsNone(fault_code(b"<html>Internal error"))

    def test_dtd_refused_at_the_top_and_nested(self) -> None:
        """An answer declaring a DTD, or carrying an escaped document that does, is refused
        before it is parsed."""
        with self.assertRaisesRegex(AnswerRefused, "document type or entity"):
            out_arguments(DTD)
        nested = ANSWER.replace(b">23<", b">&lt;!DOCTYPE x [&lt;!ENTITY a 'b'&gt;]&gt;&lt;x/&gt;<")
        with self.assertRaisesRegex(AnswerRefused, "DTD"):
            out_arguments(nested)
        with self.assertRaises(AnswerRefused):
            fault_code(DTD)

    def test_illegal_characters_dropped_as_soco_does(self) -> None:
        """Characters XML forbids (some firmware puts them in metadata) are dropped, as SoCo's
        second parse does; what is not XML at all is refused with the reason."""
        broken = ANSWER.replace(b">23<", b">2\x013<")
        self.assertEqual(out_arguments(broken), {"CurrentVolume": "23"})
        self.assertEqual(out_arguments(broken), Service.unwrap_arguments(broken.decode()))
        with self.assertRaisesRegex(AnswerRefused, "not XML"):
            out_arguments(b"<s:Envelope")
        with self.assertRaisesRegex(AnswerRefused, "no SOAP Body"):
            out_arguments(b"<x/>")

    def test_envelope_as_soco_builds_it(self) -> None:
        """The request body is SoCo's, values escaped alike."""
        device = soco.SoCo("127.0.0.1")
        _, expected = device.avTransport.build_command(
            "SetAVTransportURI", [("InstanceID", 0), ("CurrentURI", 'a&b<"c">')]
        )
        self.assertEqual(
            envelope(
                SERVICES["AVTransport"].service_type,
                "SetAVTransportURI",
                (("InstanceID", 0), ("CurrentURI", 'a&b<"c">')),
            ),
            expected.encode(),
        )


class Speaker(Resource):
    """A speaker's control URLs in memory: answers ``(status, body)``, or holds requests
    (``hold``), or drips its answer a byte every second of ``clock``."""

    isLeaf = True

    def __init__(self, status: int = 200, body: bytes = ANSWER) -> None:
        super().__init__()
        self.status = status
        self.body = body
        self.hold = False
        self.held: list[Request] = []
        self.seen: list[tuple[bytes, bytes | None]] = []
        self.drip: Clock | None = None
        self.lost: list[Request] = []

    def render_POST(self, request: Request) -> bytes | int:
        self.seen.append((request.path, request.getHeader(b"soapaction")))
        request.notifyFinish().addErrback(lambda _: self.lost.append(request))
        request.setResponseCode(self.status)
        if self.hold:
            self.held.append(request)
            return NOT_DONE_YET
        if self.drip is not None:
            clock, left = self.drip, list(self.body)

            def piece() -> None:
                request.write(bytes([left.pop(0)]))
                if left:
                    clock.callLater(1.0, piece)

            piece()
            return NOT_DONE_YET
        return self.body


class Refusing:
    """An HTTP client whose connections are refused (nothing listens on the port)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def request(self, method: bytes, uri: bytes, *args: Any) -> Deferred[Any]:
        self.urls.append(uri.decode())
        return fail(ConnectionRefusedError())


class ClientTests(SynchronousTestCase):
    """The client against in-memory speakers (RequestTraversalAgent) and a Clock."""

    def client(
        self, speaker: Speaker, https: Any = None, max_bytes: int = 4096
    ) -> tuple[SoapClient, RequestTraversalAgent]:
        self.clock = Clock()
        stub = RequestTraversalAgent(speaker)
        client = SoapClient(
            self.clock,
            5.0,
            max_bytes=max_bytes,
            agent=stub,
            tls_agent=https,
        )
        return client, stub

    def call(self, client: SoapClient, **kwargs: Any) -> Deferred[dict[str, str]]:
        return client.call(
            "127.0.0.2", 1400, "RenderingControl", "GetVolume", (("InstanceID", 0),), **kwargs
        )

    def test_answer(self) -> None:
        """A 200 answer gives the out-arguments; the request goes to the control URL with
        SoCo's SOAPACTION."""
        speaker = Speaker()
        client, stub = self.client(speaker)
        reading = self.call(client)
        stub.flush()
        self.assertEqual(self.successResultOf(reading), {"CurrentVolume": "23"})
        self.assertEqual(
            speaker.seen,
            [
                (
                    b"/MediaRenderer/RenderingControl/Control",
                    b'"urn:schemas-upnp-org:service:RenderingControl:1#GetVolume"',
                )
            ],
        )

    def test_fault(self) -> None:
        """A 500 with a UPnP error is UpnpFault with SoCo's error_code (a string), which
        describe_failure names; a 500 without one, or another status, is SoapHttpError."""
        client, stub = self.client(Speaker(500, FAULT))
        reading = self.call(client)
        stub.flush()
        fault = self.failureResultOf(reading, UpnpFault).value
        self.assertEqual(fault.error_code, "800")
        self.assertEqual(describe_failure(fault), (FailureKind.ERROR, "UPnP error 800"))
        for status, body in ((500, b"<html>oops</html>"), (404, b""), (503, ANSWER)):
            client, stub = self.client(Speaker(status, body))
            reading = self.call(client)
            stub.flush()
            error = self.failureResultOf(reading, SoapHttpError).value
            self.assertEqual(error.status, status)
            self.assertEqual(describe_failure(error), (FailureKind.ERROR, f"HTTP {status}"))

    def test_oversized_answer_refused(self) -> None:
        """An answer over max_bytes is refused, whether its length is announced or not."""
        client, stub = self.client(Speaker(200, ANSWER + b" " * 5000))
        reading = self.call(client)
        stub.flush()
        self.assertIn("over 4096 bytes", str(self.failureResultOf(reading, AnswerRefused).value))
        speaker = Speaker(200, ANSWER + b" " * 5000)
        speaker.drip = Clock()
        client, stub = self.client(speaker)
        reading = self.call(client)
        for _ in range(4200):
            speaker.drip.advance(1.0)
        stub.flush()
        self.assertIn("over 4096 bytes", str(self.failureResultOf(reading, AnswerRefused).value))

    def test_dtd_refused(self) -> None:
        """An answer declaring a DTD is refused."""
        client, stub = self.client(Speaker(200, DTD))
        reading = self.call(client)
        stub.flush()
        self.failureResultOf(reading, AnswerRefused)

    def test_slow_drip_past_the_deadline(self) -> None:
        """An answer dripping a byte a second is cut at the call's timeout (its connection
        closed): SoapTimeout, whose reason for describe_failure says the answer began and
        came too slowly (what the device description's reason says), where an answer that
        never began is a plain timeout."""
        speaker = Speaker()
        client, stub = self.client(speaker)
        speaker.drip = self.clock
        reading = self.call(client, timeout=3.0)
        stub.flush()
        for _ in range(3):
            self.clock.advance(1.0)
            stub.flush()
        failure = self.failureResultOf(reading, SoapTimeout)
        stub.flush()
        self.assertEqual(len(speaker.lost), 1)  # the connection was closed
        self.assertEqual(
            describe_failure(failure),
            (
                FailureKind.UNREACHABLE,
                "the answer to GetVolume from 127.0.0.2 did not arrive within 3 s "
                "(it began, then came too slowly)",
            ),
        )
        held = Speaker()
        held.hold = True
        client, stub = self.client(held)
        reading = self.call(client, timeout=3.0)
        stub.flush()
        self.clock.advance(3.0)
        failure = self.failureResultOf(reading, SoapTimeout)
        self.assertIn("no whole answer within 3 s", str(failure.value))
        self.assertEqual(describe_failure(failure), (FailureKind.UNREACHABLE, "timeout"))

    def test_a_call_held_up_by_a_dripping_answer_names_it(self) -> None:
        """A call that times out waiting for its turn behind an answer still dripping names
        that answer (the speaker drips, it is not silent); the dripping call then ends at its
        own bound, named too."""
        speaker = Speaker()
        client, stub = self.client(speaker)
        speaker.drip = self.clock
        first = self.call(client, timeout=10.0)
        second = client.call("127.0.0.2", 1400, "AVTransport", "GetMediaInfo", timeout=2.0)
        stub.flush()
        for _ in range(2):
            self.clock.advance(1.0)
            stub.flush()
        slow = "from 127.0.0.2 did not arrive within {} s (it began, then came too slowly)"
        self.assertEqual(
            describe_failure(self.failureResultOf(second, SoapTimeout)),
            (FailureKind.UNREACHABLE, "the answer to GetVolume " + slow.format(2)),
        )
        for _ in range(8):
            self.clock.advance(1.0)
            stub.flush()
        self.assertEqual(
            describe_failure(self.failureResultOf(first, SoapTimeout))[1],
            "the answer to GetVolume " + slow.format(10),
        )
        self.assertEqual(len(speaker.seen), 1)

    def test_one_call_at_a_time_per_speaker(self) -> None:
        """A speaker gets the next call only once the previous one is answered; a call that
        times out while waiting never goes out."""
        speaker = Speaker()
        speaker.hold = True
        client, stub = self.client(speaker)
        first = self.call(client)
        second = self.call(client)
        third = self.call(client, timeout=1.0)
        stub.flush()
        self.assertEqual(len(speaker.held), 1)
        self.clock.advance(1.0)
        self.failureResultOf(third, SoapTimeout)
        speaker.held[0].write(ANSWER)
        speaker.held[0].finish()
        stub.flush()
        self.assertEqual(self.successResultOf(first), {"CurrentVolume": "23"})
        self.assertEqual(len(speaker.held), 2)
        self.assertNoResult(second)
        speaker.held[1].write(ANSWER)
        speaker.held[1].finish()
        stub.flush()
        self.successResultOf(second)
        self.assertEqual(len(speaker.seen), 2)
        self.assertEqual(client._turns, {})

    def test_https_only_speaker_remembered_then_forgotten(self) -> None:
        """A 403 over HTTP is sent again over HTTPS; answered there, the speaker is
        remembered and asked over HTTPS directly; when nothing listens there any more, over
        HTTP again, and forgotten."""
        secure = Speaker()
        plain = Speaker(403, b"")
        https = RequestTraversalAgent(secure)
        client, stub = self.client(plain, https=https)
        reading = self.call(client)
        stub.flush()
        https.flush()
        self.assertEqual(self.successResultOf(reading), {"CurrentVolume": "23"})
        self.assertEqual(client.secure, {"127.0.0.2"})
        self.assertEqual((len(plain.seen), len(secure.seen)), (1, 1))
        reading = self.call(client)
        https.flush()
        self.successResultOf(reading)
        self.assertEqual((len(plain.seen), len(secure.seen)), (1, 2))
        refusing = Refusing()
        client._tls_agent = cast(Any, refusing)
        plain.status, plain.body = 200, ANSWER
        reading = self.call(client)
        stub.flush()
        self.successResultOf(reading)
        self.assertEqual(
            refusing.urls, ["https://127.0.0.2:1443/MediaRenderer/RenderingControl/Control"]
        )
        self.assertEqual(client.secure, set())

    def test_403_on_both_stands(self) -> None:
        """A speaker answering 403 over HTTP and HTTPS (UPnP switched off), or with nothing
        on its HTTPS port, fails with the 403 and is not remembered."""
        for https in (RequestTraversalAgent(Speaker(403, b"")), Refusing()):
            client, stub = self.client(Speaker(403, b""), https=cast(Any, https))
            reading = self.call(client)
            stub.flush()
            if isinstance(https, RequestTraversalAgent):
                https.flush()
            self.assertEqual(self.failureResultOf(reading, SoapHttpError).value.status, 403)
            self.assertEqual(client.secure, set())

    def test_stop_cancels_calls_in_flight(self) -> None:
        """Stopping the client (the daemon stops) cancels the calls in flight, and their
        timers with them."""
        speaker = Speaker()
        speaker.hold = True
        client, stub = self.client(speaker)
        client.startService()
        reading = self.call(client)
        stub.flush()
        client.stopService()
        # Cancelled while waiting for its answer: Twisted's "response never received".
        self.failureResultOf(reading, CancelledError, ResponseNeverReceived)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_remembered_speaker_refusing_both_stays_remembered(self) -> None:
        """A remembered speaker whose HTTPS port refuses while HTTP still answers 403 (it is
        restarting its HTTPS side) fails with the 403 and stays remembered."""
        client, stub = self.client(Speaker(403, b""), https=Refusing())
        client.secure.add("127.0.0.2")
        reading = self.call(client)
        stub.flush()
        self.assertEqual(self.failureResultOf(reading, SoapHttpError).value.status, 403)
        self.assertEqual(client.secure, {"127.0.0.2"})

    def test_answer_cut_short(self) -> None:
        """An answer whose connection breaks before its end fails with the connection's
        error (a lost connection, unreachable for describe_failure), not a partial body."""
        response = _Delivering()
        chunks: list[bytes] = []
        reading = read_body(cast(Any, response), chunks.append)
        response.protocol.makeConnection(StringTransport())
        response.protocol.dataReceived(b"<s:Envelope>")
        response.protocol.connectionLost(Failure(ConnectionLost()))
        failure = self.failureResultOf(reading, ConnectionLost)
        self.assertEqual(describe_failure(failure)[0], FailureKind.UNREACHABLE)

    def test_https_agent_wraps_tls(self) -> None:
        """The agent of an HTTPS-only speaker connects over TLS, straight to its address."""
        reactor = MemoryReactorClock()
        agent: Any = _agent(reactor, tls=True)
        endpoint = agent._endpointFactory.endpointForURI(URI.fromBytes(b"https://127.0.0.2:1443/"))
        self.assertNotIsInstance(endpoint, TCP4ClientEndpoint)
        plain: Any = _agent(reactor)
        endpoint = plain._endpointFactory.endpointForURI(URI.fromBytes(b"http://127.0.0.2:1400/"))
        self.assertIsInstance(endpoint, TCP4ClientEndpoint)

    def test_refused_connection(self) -> None:
        """A refused connection is Twisted's error, unreachable for describe_failure."""
        client = SoapClient(Clock(), 5.0, agent=cast(Any, Refusing()))
        failure = self.failureResultOf(self.call(client))
        self.assertEqual(describe_failure(failure), (FailureKind.UNREACHABLE, "connection refused"))


class _Delivering:
    """A response that hands its body's protocol over (``read_body``'s side of it)."""

    protocol: Any = None

    def deliverBody(self, protocol: Any) -> None:
        self.protocol = protocol


SOCO_NAMES = {
    "AVTransport": "avTransport",
    "RenderingControl": "renderingControl",
    "ZoneGroupTopology": "zoneGroupTopology",
    "AlarmClock": "alarmClock",
}


class SimulatorTests(TestCase):
    """The client against a simulated household of three on loopback: the second speaker is
    HTTPS-only."""

    timeout = 60

    def setUp(self) -> None:
        config = SimulateConfig(
            speakers=3, base_address=free_loopback_base(count=3), https_only=(1,)
        )
        self.sim = HouseholdService(reactor, config)
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.speakers = self.sim.household.speakers
        self.soap = SoapClient(reactor, 5.0, max_bytes=1_000_000)

    def ref(self, index: int) -> SpeakerRef:
        speaker = self.speakers[index]
        return SpeakerRef(speaker.uid, speaker.name, speaker.address)

    async def test_same_values_as_soco(self) -> None:
        """Every read the daemon makes gives what SoCo's call gives for the same speaker."""
        self.speakers[0].transport.play()
        await self.speakers[0].transport.settled()
        device = soco.SoCo(self.speakers[0].address)
        address = self.speakers[0].address
        for service, action, args in (
            ("AVTransport", "GetPositionInfo", (("InstanceID", 0),)),
            ("AVTransport", "GetMediaInfo", (("InstanceID", 0),)),
            ("RenderingControl", "GetVolume", (("InstanceID", 0), ("Channel", "Master"))),
            ("ZoneGroupTopology", "GetZoneGroupState", ()),
            ("AlarmClock", "ListAlarms", ()),
            ("Queue", "Browse", (("QueueID", 0), ("StartingIndex", 0), ("RequestedCount", 1))),
        ):
            mine = await self.soap.call(address, 1400, service, action, args)
            target = (
                soco.services.Queue(device)
                if service == "Queue"
                else getattr(device, SOCO_NAMES[service])
            )
            socos = await in_thread(lambda: getattr(target, action)(list(args)))  # noqa: B023
            self.assertEqual(mine, socos, action)

    async def test_https_only_speaker(self) -> None:
        """An HTTPS-only speaker's state is read over HTTPS (port 1443) and remembered."""
        self.speakers[1].set_volume(41)
        reader = StateReader(self.soap, reactor, 10.0)
        read = await reader.read(self.ref(1), "RenderingControl")
        self.assertEqual(read["volume"], {"Master": "41"})
        self.assertEqual(self.soap.secure, {self.speakers[1].address})

    async def test_upnp_off(self) -> None:
        """With UPnP switched off (403 over HTTP and HTTPS) the read fails with HTTP 403 and
        nothing is remembered."""
        self.sim.household.set_modes(upnp=False)
        with self.assertRaises(SoapHttpError) as raised:
            await self.soap.call(self.speakers[1].address, 1400, "AlarmClock", "ListAlarms")
        self.assertEqual(raised.exception.status, 403)
        self.assertEqual(self.soap.secure, set())

    async def test_faults(self) -> None:
        """UPnP faults keep their codes: 701 for an unknown alarm, and a large household's
        501 on GetZoneGroupState is ZoneGroupStateUnavailable for the reader."""
        with self.assertRaises(UpnpFault) as raised:
            await self.soap.call(
                self.speakers[0].address, 1400, "AlarmClock", "DestroyAlarm", (("ID", 999),)
            )
        self.assertEqual(raised.exception.error_code, "701")
        self.sim.household.set_modes(large_household=True, large_household_players=2)
        reader = StateReader(self.soap, reactor, 10.0)
        with self.assertRaises(ZoneGroupStateUnavailable) as unavailable:
            await reader.read(self.ref(0), "ZoneGroupTopology")
        self.assertIn("zone_group_name", unavailable.exception.variables)

    async def test_offline_speaker(self) -> None:
        """A speaker that went offline (connections refused) fails the call as unreachable."""
        await self.speakers[2].go_offline("refuse")
        with self.assertRaises(Exception) as raised:
            await self.soap.call(self.speakers[2].address, 1400, "AlarmClock", "ListAlarms")
        self.assertEqual(describe_failure(raised.exception)[0], FailureKind.UNREACHABLE)

    async def test_hostile_answers(self) -> None:
        """A speaker answering with 5 MB of padding, an expanding DTD, dripping past the
        deadline or breaking off halfway is refused (size, DTD), cut (timeout) or fails as the
        connection did (unreachable, never a partial answer read)."""
        faults = self.speakers[0].soap_faults
        address = self.speakers[0].address
        args = (("InstanceID", 0), ("Channel", "Master"))
        faults.padding = 5_000_000
        with self.assertRaisesRegex(AnswerRefused, "over 1000000 bytes"):
            await self.soap.call(address, 1400, "RenderingControl", "GetVolume", args)
        faults.reset()
        faults.doctype = True
        with self.assertRaisesRegex(AnswerRefused, "document type or entity"):
            await self.soap.call(address, 1400, "RenderingControl", "GetVolume", args)
        faults.reset()
        faults.padding = 20_000
        faults.drip = 0.5
        with self.assertRaises(SoapTimeout):
            await self.soap.call(address, 1400, "RenderingControl", "GetVolume", args, timeout=1.5)
        faults.reset()
        faults.cut = True
        with self.assertRaises(ResponseFailed) as cut:
            await self.soap.call(address, 1400, "RenderingControl", "GetVolume", args)
        self.assertEqual(describe_failure(cut.exception)[0], FailureKind.UNREACHABLE)
        faults.reset()
        self.assertEqual(
            (await self.soap.call(address, 1400, "RenderingControl", "GetVolume", args)).keys(),
            {"CurrentVolume"},
        )

    async def test_dripping_reads_say_so(self) -> None:
        """A position read and a resync read whose answer drips past their timeout (the
        simulator's drip fault) fail with the reason the device description's gets: which
        answer, from which speaker, within what bound, and that it began but came too
        slowly; the position read logs it in its reason field."""
        faults = self.speakers[0].soap_faults
        faults.padding = 20_000
        faults.drip = 0.5
        address = self.speakers[0].address
        slow = f"from {address} did not arrive within 1.5 s (it began, then came too slowly)"
        tracker = PositionTracker(reactor, self.soap, Processor(), 0.0, 1.5, lambda uid: True)
        self.addCleanup(tracker.stop)
        with capturedLogs() as events:
            tracker.transport_event(self.ref(0), {"transport_state": "PLAYING"})

            def logged() -> list[object]:
                return [e["reason"] for e in events if "not read" in e.get("log_format", "")]

            await until(logged, "the failed position read logged")
        self.assertEqual(logged(), [f"the answer to GetPositionInfo {slow}"])
        # The whole read's bound (1.5 s) comes before the call's own (5 s): the answer it
        # cut is named all the same.
        with self.assertRaises(SlowAnswer) as raised:
            await StateReader(self.soap, reactor, 1.5).read(self.ref(0), "RenderingControl")
        reason = describe_failure(raised.exception)[1]
        self.assertTrue(reason.startswith("the answer to Get") and reason.endswith(slow), reason)


#: Modules an idle daemon would load only for SoCo (about 12 MB resident, issue 17).
SOCO_STACK = ("soco", "requests", "urllib3")


def test_the_client_and_the_alarm_watcher_load_no_soco() -> None:
    """Importing the SOAP client and the alarm watcher (in a fresh interpreter) loads neither
    SoCo nor requests nor urllib3."""
    code = (
        "import sys, sonosd.household.soap, sonosd.household.alarms; "
        f"print([m for m in {SOCO_STACK!r} if m in sys.modules])"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert output.strip() == "[]"


def test_the_readers_import_nothing_of_soco() -> None:
    """The position tracker, the state reader, the alarm watcher and the probes import
    nothing of SoCo or requests themselves (what reaches SoCo through the event parser's DIDL
    classes is ``gena.eventxml``'s; docs/design.md: the probes are HTTP from the reactor)."""
    for name in ("position", "resync", "alarms", "soap", "probe"):
        tree = ast.parse((ROOT / "sonosd" / "household" / f"{name}.py").read_text())
        imported = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            (node.module or "").split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
        }
        assert not imported & set(SOCO_STACK), (name, imported & set(SOCO_STACK))


_POSITION = (SAMPLES / "soap" / "AVTransport_GetPositionInfo_response_jishi.xml").read_bytes()


@settings(max_examples=250, derandomize=True)
@given(
    mangled(
        [ANSWER, FAULT, _POSITION],
        [
            b"<!DOCTYPE s [<!ENTITY a 'b'>]>",
            b"&lt;!DOCTYPE d&gt;",
            b"&amp;lt;!ENTITY e&amp;gt;",
            b"<a/>" * 100_001,
            b"&lt;a/&gt;" * 100_001,
            b"\xff\xfe\x00",
            b"\x80\xc3(\x01\x0b",
            b"<?xml version='1.0' encoding='utf-16'?>",
            b"<errorCode>\xc2\xb2</errorCode>",
            b"&#xD800;",
            b"]]>",
        ],
    )
)
def test_any_bytes_give_arguments_a_code_or_answer_refused(document: bytes) -> None:
    """Whatever a speaker answers (a real answer or fault mangled, or any bytes), the SOAP
    readers give the out-arguments, a fault's code (or None) or AnswerRefused, nothing else;
    nothing that declares a DTD, at the top or escaped once, or holds over MAX_ANSWER_TAGS
    tags, is ever read."""
    for read in (out_arguments, fault_code):
        try:
            value = read(document)
        except AnswerRefused as refused:
            assert str(refused)
            continue
        assert value is None or isinstance(value, dict | str)
        assert b"<!DOCTYPE" not in document and b"<!ENTITY" not in document
        assert b"&lt;!DOCTYPE" not in document and b"&lt;!ENTITY" not in document
        assert document.count(b"<") <= MAX_ANSWER_TAGS
