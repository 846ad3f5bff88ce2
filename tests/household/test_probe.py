"""Tests for sonosd.household.probe: identifying and pinging speakers without SoCo or a thread.

The parsers are checked against real captured device descriptions; ``describe`` and ``ping``
against the simulator on loopback.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from twisted.internet import reactor as global_reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.backoff import FailureKind, SlowAnswer, describe_failure
from sonosd.config import SimulateConfig
from sonosd.gena.subscription import build_http_client
from sonosd.household.probe import (
    MAX_ANSWER,
    MAX_DESCRIPTION_TAGS,
    ProbeError,
    UpnpDisabled,
    describe,
    parse_description,
    parse_soap,
    ping,
    soap_envelope,
)
from sonosd.sim.service import HouseholdService
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.mangled import mangled
from tests.paths import SAMPLES

reactor: Any = global_reactor


@pytest.mark.parametrize(
    ("sample", "uid", "room"),
    [
        ("S18_sonos_one_66.4_swift-watchkit.xml", "RINCON_48A6B888B19601400", "Sonos One"),
        ("S9_playbar_57.4_node-sonos-ts.xml", None, None),
        ("S3_play3_19.3_commandfusion.xml", None, None),
    ],
)
def test_parse_real_descriptions(sample: str, uid: str | None, room: str | None) -> None:
    """Real device descriptions give a RINCON uid and a room name."""
    description = parse_description((SAMPLES / "device_description" / sample).read_bytes())
    assert description.uid.startswith("RINCON_")
    assert description.name
    if uid is not None:
        assert (description.uid, description.name) == (uid, room)
        assert (description.model, description.model_number) == ("Sonos One", "S18")


def test_parse_description_refuses_what_is_not_sonos() -> None:
    """Another device, garbage, documents declaring a DTD (anywhere) or another encoding than
    UTF-8 are refused with a reason."""
    other = (
        b'<root xmlns="urn:schemas-upnp-org:device-1-0"><device><UDN>uuid:other</UDN>'
        b"</device></root>"
    )
    for document, words in (
        (other, "not a Sonos speaker"),
        (b"nonsense", "not XML"),
        (b'<root xmlns="urn:schemas-upnp-org:device-1-0"/>', "no device"),
        (b'<!DOCTYPE r [<!ENTITY a "b">]><root/>', "DTD"),
        # Anywhere in the document, not only at its head; and in UTF-8 only.
        (b"<root>" + b" " * 5000 + b'<!ENTITY a "b"></root>', "DTD"),
        (b'<?xml version="1.0" encoding="UTF-16"?><root/>', "not accepted"),
    ):
        with pytest.raises(ProbeError, match=words):
            parse_description(document)


def test_soap_round_trip() -> None:
    """A request names its action and escapes its arguments; an answer gives its
    out-arguments, a fault its UPnP error."""
    request = soap_envelope("urn:x:service:Y:1", "Do", (("Name", "a<b"), ("N", 1)))
    assert b'<u:Do xmlns:u="urn:x:service:Y:1"><Name>a&lt;b</Name><N>1</N></u:Do>' in request
    answer = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<u:DoResponse xmlns:u="urn:x"><Out>7</Out></u:DoResponse></s:Body></s:Envelope>'
    )
    assert parse_soap(answer, "Do") == {"Out": "7"}
    fault = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>'
        b'<detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>501'
        b"</errorCode></UPnPError></detail></s:Fault></s:Body></s:Envelope>"
    )
    with pytest.raises(ProbeError, match="UPnP error 501"):
        parse_soap(fault, "Do")
    with pytest.raises(ProbeError, match="the Do answer: the answer has no SOAP Body"):
        parse_soap(b"<a/>", "Do")
    with pytest.raises(ProbeError, match="document type or entity"):
        parse_soap(b'<!DOCTYPE a [<!ENTITY b "c">]>' + answer, "Do")


class SimulatedSpeakerTests(TestCase):
    """describe() and ping() against simulated speakers."""

    timeout = 30
    #: The connections of ``hostile_host`` that were closed.
    lost: list[Protocol]

    def setUp(self) -> None:
        self.sim = HouseholdService(
            reactor, SimulateConfig(speakers=2, base_address=free_loopback_base())
        )
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        self.http = build_http_client(reactor)

    async def test_describe_reads_identity_without_zone_group_state(self) -> None:
        """describe() gives the uid, room and household id, and the speaker never sees a
        GetZoneGroupState request (large households answer it with UPnP 501)."""
        speaker = self.sim.household.speakers[1]
        seen: list[str] = []
        real = self.sim.household.zone_group_state

        def watched() -> str:
            seen.append("GetZoneGroupState")
            return real()

        self.sim.household.zone_group_state = watched  # type: ignore[method-assign]
        description = await describe(self.http, reactor, speaker.address)
        self.assertEqual(
            (description.uid, description.name, description.household_id),
            (speaker.uid, speaker.name, self.sim.household.household_id),
        )
        self.assertEqual(seen, [])

    async def test_ping_answers_and_fails(self) -> None:
        """ping() returns once the speaker answers; a refusing one fails with the network
        error, a hung one with a timeout."""
        speaker = self.sim.household.speakers[0]
        self.assertEqual(await ping(self.http, reactor, speaker.address), 200)
        await speaker.go_offline("refuse")
        with self.assertRaises(ConnectionRefusedError):
            await ping(self.http, reactor, speaker.address, timeout=2.0)
        await speaker.go_offline("hang")
        started = reactor.seconds()
        with self.assertRaises(Exception) as caught:
            await ping(self.http, reactor, speaker.address, timeout=0.5)
        self.assertLess(reactor.seconds() - started, 5.0)
        self.assertEqual(describe_failure(caught.exception), (FailureKind.UNREACHABLE, "timeout"))
        await speaker.come_online()
        self.assertEqual(await ping(self.http, reactor, speaker.address), 200)

    def hostile_host(self, answer: bytes) -> int:
        """A loopback port whose every connection gets ``answer``, then nothing more, the
        connection left open (closed at cleanup)."""
        connections: list[Protocol] = []
        lost: list[Protocol] = []
        self.lost = lost

        class Answer(Protocol):
            def connectionMade(self) -> None:
                connections.append(self)
                assert self.transport is not None
                self.transport.write(answer)

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                lost.append(self)

        def close() -> None:
            for connection in connections:
                if connection.transport is not None:
                    connection.transport.abortConnection()  # type: ignore[attr-defined]

        port = reactor.listenTCP(0, Factory.forProtocol(Answer), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.addCleanup(close)
        return int(port.getHost().port)

    async def test_huge_or_stalled_descriptions_are_bounded(self) -> None:
        """A host an SSDP LOCATION points at that sends a description over 256 KiB fails the
        identification naming the bound, as does one announcing 100 MB (before reading it);
        one announcing 1,000 bytes and sending a few fails at the timeout, saying so (not a
        plain timeout); none is kept, and no connection is left open (a retry would add one
        more each time)."""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n"
        huge = b"<root>" + b" " * (300 * 1024) + b"</root>"
        for answer in (
            head + b"Content-Length: %d\r\n\r\n" % len(huge) + huge,
            head + b"Content-Length: 100000000\r\n\r\n<root>",
        ):
            port = self.hostile_host(answer)
            with self.assertRaises(ProbeError) as refused:
                await describe(self.http, reactor, "127.0.0.1", port, timeout=10.0)
            self.assertIn("is over 262144 bytes", str(refused.exception))
            await until(lambda: len(self.lost) == 1, "the huge answer's connection closed")
        port = self.hostile_host(head + b"Content-Length: 1000\r\n\r\n<root>")
        with self.assertRaises(SlowAnswer) as late:
            await describe(self.http, reactor, "127.0.0.1", port, timeout=0.5)
        self.assertEqual(
            str(late.exception),
            "the device description from 127.0.0.1 did not arrive within 0.5 s "
            "(it began, then came too slowly)",
        )
        await until(lambda: len(self.lost) == 1, "the stalled answer's connection closed")

    async def test_not_a_speaker(self) -> None:
        """A host that answers HTTP but is no Sonos speaker is a ProbeError; 403 is
        UpnpDisabled (a subclass that names the app setting)."""
        from twisted.web.pages import errorPage
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        class Root(Resource):
            def getChild(self, path: bytes, request: Any) -> Any:
                return self.children.get(path) or errorPage(404, "Not Found", "no")

        root = Root()
        root.putChild(b"xml", errorPage(403, "Forbidden", "no"))
        port = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        number = port.getHost().port
        with self.assertRaises(UpnpDisabled) as caught:
            await describe(self.http, reactor, "127.0.0.1", number)
        self.assertIn("Privacy & Security", str(caught.exception))
        del root.children[b"xml"]
        with self.assertRaises(ProbeError) as other:
            await describe(self.http, reactor, "127.0.0.1", number)
        self.assertIn("HTTP 404", str(other.exception))


_DESCRIPTION = (
    SAMPLES / "device_description" / "S18_sonos_one_66.4_swift-watchkit.xml"
).read_bytes()


@settings(max_examples=250, derandomize=True)
@given(
    mangled(
        [_DESCRIPTION],
        [
            b"<!DOCTYPE r [<!ENTITY a 'b'>]>",
            b"<a/>" * 11_000,
            b"\xff\xfe",
            b"\x80\xc3(",
            b"<?xml version='1.0' encoding='utf-16'?>",
            b"&a;",
            b"]]>",
        ],
    )
)
def test_any_bytes_give_a_description_or_a_probe_error(document: bytes) -> None:
    """Whatever a host sends as its device description (the bytes of a real one mangled,
    or any bytes), parse_description gives a Sonos identity or a ProbeError, nothing else;
    nothing that declares a DTD, or holds over 10,000 tags, is ever taken."""
    try:
        description = parse_description(document)
    except ProbeError as error:
        assert str(error)
        return
    assert description.uid.startswith("RINCON_")
    assert b"<!DOCTYPE" not in document and b"<!ENTITY" not in document
    assert document.count(b"<") <= MAX_DESCRIPTION_TAGS


def test_description_of_too_many_tags_is_refused() -> None:
    """A description holding over MAX_DESCRIPTION_TAGS tags (within the size bound) is a
    ProbeError naming the bound, before any parser builds its elements."""
    document = _DESCRIPTION.replace(b"</root>", b"<x/>" * MAX_DESCRIPTION_TAGS + b"</root>")
    assert len(document) < MAX_ANSWER
    with pytest.raises(ProbeError, match="more than 10000 tags"):
        parse_description(document)
