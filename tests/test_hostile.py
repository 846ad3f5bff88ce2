"""Attacks on the whole daemon, as issue 18 found them: every one is refused, bounded and counted.

The daemon (``SonosdService``) runs in this process against its simulated household on the real
reactor, with real sockets: NOTIFYs sent from a speaker's own address (a registered SID and the
right source, as an attacker on the LAN who guessed a SID would), clients that drip bytes,
nested JSON on every channel, floods of bad requests, and a NOTIFY lost for good.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from xml.sax.saxutils import escape

import attrs
import treq
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.task import deferLater
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers
from zope.interface import implementer

from sonosd.backoff import describe_failure
from sonosd.config import parse_config
from sonosd.logs import route_stdlib_logging
from sonosd.service import SonosdService
from sonosd.sim.gena import GenaFaults
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import DripClient, connect_ws
from tests.conftest import free_loopback_base
from tests.daemon_helpers import (
    WAIT,
    Recorder,
    check_schema,
    daemon_yaml,
    http_agent,
    reactor,
    until,
    volume_of,
)
from tests.gena_wire import notify_request, status_of

PROPERTYSET = b'<e:propertyset xmlns:e="urn:schemas-upnp-org:event-1-0">'


def expanding_dtd(size: int) -> bytes:
    """A DTD whose entity ``c`` expands to ``size`` bytes (a few hundred bytes of text)."""
    a = "x" * 1000
    b = "&a;" * 100
    c = "&b;" * max(1, size // 100_000)
    return (
        f'<!DOCTYPE e:propertyset [<!ENTITY a "{a}"><!ENTITY b "{b}"><!ENTITY c "{c}">]>'.encode()
    )


def last_change(transport_state: bytes) -> bytes:
    """An AVTransport propertyset whose escaped LastChange sets TransportState."""
    return (
        PROPERTYSET + b"<e:property><LastChange>"
        b'&lt;Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/"&gt;'
        b'&lt;InstanceID val="0"&gt;&lt;TransportState val="' + transport_state + b'"/&gt;'
        b"&lt;/InstanceID&gt;&lt;/Event&gt;</LastChange></e:property></e:propertyset>"
    )


def chunked_request(sid: str, seq: int, chunked: bytes, extra: bytes = b"") -> bytes:
    """A NOTIFY request with a chunked body (``chunked`` is the framed body), ``extra`` header
    lines after the speaker's."""
    head = (
        f"NOTIFY / HTTP/1.1\r\nHOST: 127.0.0.1\r\nCONNECTION: close\r\n"
        f"CONTENT-TYPE: text/xml\r\nTRANSFER-ENCODING: chunked\r\nNT: upnp:event\r\n"
        f"NTS: upnp:propchange\r\nSID: {sid}\r\nSEQ: {seq}\r\n"
    )
    return head.encode() + extra + b"\r\n" + chunked


def service_warnings(events: list[LogEvent], speaker: Speaker, service: str) -> list[str]:
    """The daemon's warnings that a SUBSCRIBE or renewal of ``service`` of ``speaker``
    failed, as logged."""
    label = f"{speaker.name} ({speaker.uid})"
    return [
        formatEvent(e)
        for e in events
        if e.get("log_format", "").startswith("{during} {speaker} {service} failed")
        and (e.get("speaker"), e.get("service")) == (label, service)
    ]


def at_least(count: int, found: Callable[[], list[str]]) -> bool:
    """Whether ``found()`` gives ``count`` or more."""
    return len(found()) >= count


@implementer(IHalfCloseableProtocol)
class HalfCloseClient(DripClient):
    """A L{DripClient} that keeps sending after the server half-closes (as after an early
    answer) and closes once it has sent everything and read the end of the answer."""

    def readConnectionLost(self) -> None:
        transport: Any = self.transport
        transport.loseConnection()

    def writeConnectionLost(self) -> None:
        pass


@attrs.define
class Daemon:
    """A running daemon, its simulated household and what the tests look at."""

    service: SonosdService
    recorder: Recorder
    host: str
    port: int

    @property
    def speakers(self) -> list[Speaker]:
        sim: Any = self.service.simulator
        return list(sim.household.speakers)

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def sid(self, speaker: Speaker, service: str) -> str:
        manager: Any = speaker.manager
        [sid] = [s["sid"] for s in manager.subscriptions() if s["service"] == service]
        return str(sid)

    def subscribed(self, speaker: Speaker, service: str) -> bool:
        """Whether the daemon follows ``speaker`` and is subscribed to its ``service``."""
        return any(
            s["uid"] == speaker.uid and s["services"].get(service, {}).get("state") == "subscribed"
            for s in self.service.household.status()["speakers"]
        )

    def status(self, speaker: Speaker, service: str) -> dict[str, Any]:
        """The daemon's status of its subscription to ``service`` of ``speaker``."""
        [status] = [
            s for s in self.service.household.status()["speakers"] if s["uid"] == speaker.uid
        ]
        return cast(dict[str, Any], status["services"][service])

    def settled(self) -> bool:
        return all(
            any(
                m.type == "event" and m.body.get("seq") == 0 and m.service == service
                for m in self.recorder.of("event", speaker.uid)
            )
            for speaker in self.speakers
            if not speaker.soap_faults.description
            and cast(Any, speaker.manager).faults == GenaFaults()
            for service in self.service.config.services
        )


def has_error(client: Any) -> bool:
    """Whether a WebSocket client got an ``error`` message."""
    return any(m["type"] == "error" for m in client.messages)


class HostileTests(TestCase):
    """Each attack of issue 18's "Found" list, against the real daemon."""

    timeout = 120

    async def daemon(
        self,
        services: tuple[str, ...] = ("AVTransport", "RenderingControl"),
        prepare: Callable[[list[Speaker]], object] | None = None,
        gena_faults: Sequence[Mapping[str, Any]] = (),
        max_timeout: int | None = None,
        speakers: int = 2,
        **sections: Any,
    ) -> Daemon:
        """A daemon of ``speakers`` simulated speakers subscribed to ``services`` (sections
        merged into the test configuration), with every subscription's initial event received
        (of the speakers that answer); stopped at cleanup. ``prepare`` is given the simulated
        speakers before the daemon starts (to set their faults); ``gena_faults`` (one mapping
        per speaker, in order) are set on the speakers' GENA managers as soon as they exist,
        before the daemon subscribes, and so is ``max_timeout`` (the longest subscription the
        speakers grant)."""
        base = free_loopback_base(count=max(4, speakers))
        document = json.loads(daemon_yaml(base, speakers=speakers))
        document["services"] = list(services)
        for name, values in sections.items():
            document.setdefault(name, {}).update(values)
        config = parse_config(json.dumps(document), "hostile-test.yaml")
        service = SonosdService(config, reactor, household_factory=HouseholdService)
        recorder = Recorder()
        service.hub.add_sink(recorder)
        daemon = Daemon(service, recorder, "", 0)
        if prepare is not None:
            prepare(daemon.speakers)
        service.startService()
        for speaker, faults in zip(daemon.speakers, gena_faults, strict=False):
            for name, value in faults.items():
                setattr(cast(Any, speaker.manager).faults, name, value)
        if max_timeout is not None:
            for speaker in daemon.speakers:
                cast(Any, speaker.manager).max_timeout = max_timeout
        self.addCleanup(lambda: service.stopService() if service.running else None)
        self.addCleanup(check_schema, recorder, service.hub)
        port = await service.api.listening
        address: Any = port.getHost()
        daemon.host, daemon.port = address.host, address.port
        await until(daemon.settled, "the initial events")
        return daemon

    async def send(
        self,
        daemon: Daemon,
        data: bytes | list[bytes],
        source: str,
        drip: float | None = None,
        client: DripClient | None = None,
    ) -> DripClient:
        """Connect from ``source`` to the NOTIFY listener and send ``data`` (or connect
        ``client``)."""
        listener = daemon.service.listener
        endpoint = TCP4ClientEndpoint(
            reactor, listener.interface, listener.port, timeout=5, bindAddress=(source, 0)
        )
        client = client or DripClient(data, drip)
        await connectProtocol(endpoint, client)
        self.addCleanup(client.close)
        return client

    async def metrics(self, daemon: Daemon) -> str:
        response = await treq.get(daemon.url("/api/v1/metrics"), agent=http_agent(self))
        return cast(str, await response.text())

    async def set_volume(
        self, daemon: Daemon, body: bytes = b'{"volume": 21}'
    ) -> tuple[int, dict[str, Any]]:
        """POST a volume command to Kitchen: the status and the answer's error object."""
        response = await treq.post(
            daemon.url("/api/v1/speakers/Kitchen/volume"),
            body,
            headers=Headers({"Content-Type": ["application/json"]}),
            agent=http_agent(self),
        )
        return response.code, json.loads(await response.content()).get("error", {})

    def capture_logs(self) -> list[LogEvent]:
        events: list[LogEvent] = []
        observer = cast(ILogObserver, events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        return events

    async def lose_a_notify(self, speaker: Speaker, lost: str, then: str) -> None:
        """A lost NOTIFY (of play mode ``lost``), then one whose SEQ shows it (play mode
        ``then``): ``events.gap`` and a resync of the speaker's AVTransport."""
        manager: Any = speaker.manager
        dropped = manager.stats()["dropped"] + 1
        manager.faults.drop_next = 1
        speaker.transport.set_play_mode(lost)
        await until(lambda: manager.stats()["dropped"] == dropped, "the NOTIFY dropped")
        speaker.transport.set_play_mode(then)

    @staticmethod
    def resync_failures(events: list[LogEvent]) -> list[LogEvent]:
        """The lines saying an AVTransport resync failed."""
        return [
            e for e in events if e.get("source") == "resync" and e.get("service") == "AVTransport"
        ]

    # -- entity expansion ------------------------------------------------------------------

    async def test_entity_expansion_is_refused(self) -> None:
        """A NOTIFY whose DTD would expand to megabytes is answered 400, counted, and nothing
        of it reaches the state, the snapshot or any client."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        body = expanding_dtd(5_000_000) + last_change(b"&c;")
        self.assertLess(len(body), 30_000)
        published = len(daemon.recorder.messages)
        sid = daemon.sid(kitchen, "AVTransport")
        client = await self.send(daemon, notify_request(sid, 1, body), kitchen.address)
        answer = await client.done
        self.assertEqual(status_of(answer), 400)
        self.assertEqual(daemon.service.listener.rejected["dtd"], 1)
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertLess(len(json.dumps(state)), 100_000)
        self.assertEqual(
            [m.body for m in daemon.recorder.messages[published:] if len(m.raw) > 100_000], []
        )
        self.assertIn('sonosd_notifies_total{result="dtd"} 1.0', await self.metrics(daemon))
        response = await treq.get(daemon.url("/api/v1/snapshot"), agent=http_agent(self))
        self.assertLess(len(await response.content()), 200_000)

    async def test_nested_document_with_a_dtd_is_refused(self) -> None:
        """A DTD inside the escaped LastChange (parsed again) is refused as well."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        inner = (
            b'&lt;!DOCTYPE Event [&lt;!ENTITY a "' + b"y" * 1000 + b'"&gt;]&gt;'
            b'&lt;Event xmlns="urn:schemas-upnp-org:metadata-1-0/AVT/"&gt;'
            b'&lt;InstanceID val="0"&gt;&lt;TransportState val="&amp;a;"/&gt;'
            b"&lt;/InstanceID&gt;&lt;/Event&gt;"
        )
        body = PROPERTYSET + b"<e:property><LastChange>" + inner + b"</LastChange></e:property>"
        body += b"</e:propertyset>"
        sid = daemon.sid(kitchen, "AVTransport")
        client = await self.send(daemon, notify_request(sid, 1, body), kitchen.address)
        self.assertEqual(status_of(await client.done), 400)
        self.assertEqual(daemon.service.listener.rejected["dtd"], 1)

    async def test_oversized_value_is_refused(self) -> None:
        """A NOTIFY within ``max_body`` whose one value is over ``eventxml.MAX_VALUE``
        characters is answered 400, counted ``value_too_large``, and kept from the state."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        body = last_change(b"P" * 70_000)
        sid = daemon.sid(kitchen, "AVTransport")
        client = await self.send(daemon, notify_request(sid, 1, body), kitchen.address)
        self.assertEqual(status_of(await client.done), 400)
        self.assertEqual(daemon.service.listener.rejected["value_too_large"], 1)
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertNotEqual(state.get("transport_state"), "P" * 70_000)
        self.assertLess(len(json.dumps(state)), 65_536)
        self.assertIn(
            'sonosd_notifies_total{result="value_too_large"} 1.0', await self.metrics(daemon)
        )

    async def test_bodies_in_other_encodings_are_refused(self) -> None:
        """A NOTIFY body in UTF-16, or declaring an encoding other than UTF-8, US-ASCII or
        ISO-8859-1, is answered 400, counted ``encoding``, and kept from the state."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")
        published = len(daemon.recorder.messages)
        utf16 = (
            '<?xml version="1.0" encoding="UTF-16"?>' + last_change(b"HOSTILE_UTF16").decode()
        ).encode("utf-16")
        utf7 = b'<?xml version="1.0" encoding="UTF-7"?>' + last_change(b"HOSTILE_UTF7")
        for seq, body in enumerate((utf16, utf7), start=1):
            client = await self.send(daemon, notify_request(sid, seq, body), kitchen.address)
            self.assertEqual(status_of(await client.done), 400, body[:60])
        self.assertEqual(daemon.service.listener.rejected["encoding"], 2)
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertFalse(str(state.get("transport_state")).startswith("HOSTILE"))
        self.assertFalse([m for m in daemon.recorder.messages[published:] if b"HOSTILE" in m.raw])
        self.assertIn('sonosd_notifies_total{result="encoding"} 2.0', await self.metrics(daemon))

    async def test_nested_documents_over_the_budget_are_refused(self) -> None:
        """A NOTIFY within ``max_body`` whose escaped LastChange holds over 50,000 elements is
        answered 400, counted ``over_budget``, and kept from the state."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")
        published = len(daemon.recorder.messages)
        elements = b"&lt;a/&gt;" * 50_001
        body = last_change(b"HOSTILE_BUDGET").replace(
            b"&lt;/Event&gt;", elements + b"&lt;/Event&gt;"
        )
        self.assertLess(len(body), 1024 * 1024)
        client = await self.send(daemon, notify_request(sid, 1, body), kitchen.address)
        self.assertEqual(status_of(await client.done), 400)
        self.assertEqual(daemon.service.listener.rejected["over_budget"], 1)
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertNotEqual(state.get("transport_state"), "HOSTILE_BUDGET")
        self.assertFalse([m for m in daemon.recorder.messages[published:] if b"HOSTILE" in m.raw])
        self.assertIn('sonosd_notifies_total{result="over_budget"} 1.0', await self.metrics(daemon))

    async def test_hostile_soap_answers_are_refused(self) -> None:
        """A speaker answering a command with 5 MB of padding, or with an expanding DTD, gets
        the command a 502 naming the bound; nothing of the answer is kept. An answer that
        announces 5 MB is refused before it is read (docs/security.md: it would drip for
        hours here, long past the call's deadline)."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        for fault, words in (
            ({"padding": 5_000_000}, "over 4194304 bytes"),
            ({"padding": 5_000_000, "drip": 1.0}, "over 4194304 bytes"),
            ({"doctype": True}, "document type or entity declaration"),
        ):
            kitchen.soap_faults.only(**fault)
            status, error = await self.set_volume(daemon)
            self.assertEqual(status, 502, error)
            self.assertIn(words, error["message"])
        kitchen.soap_faults.reset()

    async def test_fault_codes_that_are_no_number_are_a_502(self) -> None:
        """A speaker failing a command with a UPnP errorCode that is no ASCII number (a
        superscript, thousands of digits) gets the command a 502 naming the code, not a 500."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        self.addCleanup(kitchen.soap_faults.reset)
        # SoCo's logging routed as the daemon routes it (tap.makeService), into a list.
        events: list[LogEvent] = []
        soco_logger = logging.getLogger("soco")
        level = soco_logger.level
        handler = route_stdlib_logging("info", soco_logger, cast(ILogObserver, events.append))
        self.addCleanup(soco_logger.setLevel, level)
        self.addCleanup(soco_logger.removeHandler, handler)
        for code, upnp_error in (("\u00b2", None), ("9" * 60, None), ("701", 701)):
            kitchen.soap_faults.error_code = code
            status, error = await self.set_volume(daemon)
            self.assertEqual(status, 502, error)
            self.assertEqual(error["code"], "speaker_error")
            self.assertIn(f"UPnP error {code}", error["message"])
            self.assertEqual(error.get("upnp_error"), upnp_error)
        # Beyond int()'s 4,300 digits SoCo keeps the whole answer: the message is 200 characters.
        kitchen.soap_faults.error_code = "9" * 5000
        status, error = await self.set_volume(daemon)
        self.assertEqual((status, len(error["message"])), (502, 200))
        self.assertTrue(error["message"].startswith("Kitchen refused: UPnP error 9999"))
        # SoCo logs the answer it could not read: cut at 2,000 characters.
        answers = [formatEvent(e) for e in events if "9999" in formatEvent(e)]
        self.assertTrue(answers)
        self.assertLessEqual(max(len(text) for text in answers), 2100)

    async def test_answers_too_deep_broken_or_garbled_are_bounded(self) -> None:
        """A speaker whose answers nest 70,000 elements deep (within the size bound), hold
        bytes that are not UTF-8, start with a garbage status line or 200 KB of headers:
        commands (SoCo) and the daemon's own reads (the reactor's SOAP client) fail naming
        what was wrong, or take the answer when it is within the bounds; the other speaker
        is unaffected and nothing is logged as an error."""
        daemon = await self.daemon()
        kitchen, living_room = daemon.speakers
        self.addCleanup(kitchen.soap_faults.reset)
        events = self.capture_logs()

        async def own_read() -> str:
            values = await daemon.service.soap.call(
                kitchen.address,
                kitchen.port,
                "RenderingControl",
                "GetVolume",
                (("InstanceID", 0), ("Channel", "Master")),
            )
            return values["CurrentVolume"]

        for fault, command_words, read_words in (
            ({"nesting": 70_000}, "more than 100000 tags in one answer", None),
            ({"status_line": "garbage"}, "not an HTTP answer: 'garbage'", None),
            # SoCo's http.client reads 100 header lines at most, Twisted's client 64 KiB.
            ({"header_bytes": 200_000}, "got more than 100 headers", "over 65536 bytes"),
        ):
            kitchen.soap_faults.only(**fault)
            status, error = await self.set_volume(daemon)
            self.assertEqual(status, 502, error)
            self.assertIn(command_words, error["message"])
            with self.assertRaises(Exception) as refused:
                await own_read()
            self.assertIn(read_words or command_words, describe_failure(refused.exception)[1])
            response = await treq.post(
                daemon.url("/api/v1/speakers/Living Room/volume"),
                b'{"volume": 12}',
                headers=Headers({"Content-Type": ["application/json"]}),
                agent=http_agent(self),
            )
            self.assertEqual(response.code, 200, await response.text())
        self.assertEqual(living_room.rendering.volume, 12)
        # The command's log line names the speaker and what was wrong.
        self.assertTrue(
            [
                line
                for line in map(formatEvent, events)
                if line.startswith("command volume on Kitchen failed: speaker_error Kitchen")
                and "not an HTTP answer: 'garbage'" in line
            ]
        )
        # Within the bounds: nested 3,000 deep, or with bytes that are not UTF-8, the answer
        # is taken (the bad bytes are not in a value the daemon reads).
        for fault in ({"nesting": 3_000}, {"not_utf8": True}):
            kitchen.soap_faults.only(**fault)
            self.assertEqual(await self.set_volume(daemon), (200, {}))
            self.assertEqual(await own_read(), "21")
        self.assertEqual(kitchen.rendering.volume, 21)
        self.assertFalse([formatEvent(e) for e in events if e["log_level"] >= LogLevel.error])

    async def test_hostile_device_descriptions_are_not_identified(self) -> None:
        """A speaker whose device description is over the size or tag bound, declares a DTD,
        is not UTF-8, drips past the request timeout, has a garbage status line or 200 KB of
        headers, or breaks off halfway is not identified: one warning names its address and
        what was wrong, identification is retried, the other speaker is followed meanwhile,
        and the speaker is followed as soon as it answers well."""
        faults: list[tuple[dict[str, Any], str]] = [
            ({"padding": 300_000}, "is over 262144 bytes"),
            ({"nesting": 6_000}, "more than 10000 tags"),
            ({"doctype": True}, "declares a DTD"),
            ({"not_utf8": True}, "not XML"),
            (
                {"drip": 1.0, "padding": 50_000},
                ": the device description from {address} did not arrive within 2 s "
                "(it began, then came too slowly);",
            ),
            ({"status_line": "garbage"}, "not an HTTP answer: 'garbage'"),
            ({"header_bytes": 200_000}, "over 65536 bytes"),
            ({"cut": True}, "connection lost"),
        ]
        # One daemon, a speaker per fault and one without: the speakers are identified
        # independently.
        events = self.capture_logs()

        def prepare(speakers: list[Speaker]) -> None:
            for speaker, (fault, _) in zip(speakers, faults, strict=False):
                speaker.soap_faults.only(description=True, **fault)

        daemon = await self.daemon(prepare=prepare, speakers=len(faults) + 1)
        *faulty, healthy = daemon.speakers

        def warned(speaker: Speaker) -> list[str]:
            return [
                formatEvent(e)
                for e in events
                if e.get("log_format", "").startswith("cannot identify speaker")
                and e.get("host") == speaker.address
            ]

        said: dict[str, str] = {}
        for speaker, (fault, words) in zip(faulty, faults, strict=True):
            await until(lambda speaker=speaker: warned(speaker), f"the warning about {fault}")
            [line] = warned(speaker)
            said[speaker.uid] = line
            self.assertIn(words.format(address=speaker.address), line)
            # The reason is a field of its own, the host another (not just text in a line).
            [event] = [
                e
                for e in events
                if e.get("log_format", "").startswith("cannot identify")
                and e.get("host") == speaker.address
            ]
            self.assertEqual(event["log_level"], LogLevel.warn)
            self.assertIn(
                event["reason"], words.format(address=speaker.address) if "drip" in fault else line
            )
            self.assertFalse(daemon.recorder.of("event", speaker.uid))
        self.assertTrue(daemon.recorder.of("event", healthy.uid))
        for speaker in faulty:
            speaker.soap_faults.reset()
        await until(daemon.settled, "every speaker followed once it answers well")
        for speaker in faulty:
            self.assertEqual(warned(speaker), [said[speaker.uid]])
        identifying = [e for e in events if e.get("log_format", "").startswith("cannot identify")]
        self.assertEqual(len(identifying), len(faults))
        self.assertFalse([formatEvent(e) for e in events if e["log_level"] >= LogLevel.error])

    async def test_hostile_subscribe_answers_are_retried(self) -> None:
        """A speaker whose SUBSCRIBE answers have a garbage status line, 200 KB of headers, a
        body dripping past the request timeout or over the body bound, no SID, a SID that is
        no GENA SID, no TIMEOUT or a garbage one is not subscribed: one warning per service
        names the speaker and what was wrong, the SUBSCRIBE is retried with backoff, nothing
        logs an error, the other speaker is followed meanwhile, and the speaker is subscribed
        as soon as its answers are good."""
        faults: list[tuple[dict[str, Any], str]] = [
            ({"answer_status_line": "garbage"}, "not an HTTP answer: 'garbage'"),
            ({"answer_header_bytes": 200_000}, "over 65536 bytes"),
            ({"answer_drip": 1.0, "answer_body_bytes": 10_000}, "failed: timeout;"),
            ({"answer_body_bytes": 100_000}, "response body too large"),
            ({"answer_sid": ""}, "response has no SID"),
            ({"answer_sid": "garbage"}, "bad GENA SID: 'garbage'"),
            ({"answer_sid": "uuid:" + "x" * 10_000}, "bad GENA SID: 'uuid:xxx"),
            ({"answer_timeout": ""}, "response has no TIMEOUT"),
            ({"answer_timeout": "garbage"}, "bad GENA TIMEOUT: 'garbage'"),
            ({"answer_timeout": "Second-0"}, "bad GENA TIMEOUT: 'Second-0'"),
        ]
        # One daemon, a speaker per fault and one without: the speakers' SUBSCRIBEs are
        # independent. The test configuration's backoff (0.2 s, at most 0.5 s): the retries
        # are counted in the log, not timed.
        events = self.capture_logs()
        daemon = await self.daemon(
            gena_faults=[fault for fault, _ in faults], speakers=len(faults) + 1
        )
        *faulty, healthy = daemon.speakers
        for speaker, (fault, words) in zip(faulty, faults, strict=True):
            warned = functools.partial(service_warnings, events, speaker, "AVTransport")
            await until(functools.partial(at_least, 2, warned), f"two warnings about {fault}")
            first, second = warned()[:2]
            self.assertIn(words, first)
            self.assertIn("retry 1 in", first)
            self.assertIn("retry 2 in", second)
        # The dripping answers (10 s each, cut at 2 s) are closed when cut: one request at a
        # time per service at the speaker, not one more open connection at each retry.
        dripping: Any = faulty[2].manager
        self.assertEqual(dripping.faults.answer_drip, 1.0)
        await until(lambda: dripping.held_requests <= 2, "the cut answers' connections closed")
        self.assertTrue(daemon.recorder.of("event", healthy.uid))
        for speaker in faulty:
            cast(Any, speaker.manager).faults.reset()
        await until(daemon.settled, "every speaker subscribed once it answers well")
        self.assertFalse([formatEvent(e) for e in events if e["log_level"] >= LogLevel.error])

    async def test_hostile_renewal_answers_are_retried(self) -> None:
        """A speaker whose renewal answers turn hostile (a garbage status line, a garbage
        TIMEOUT, a body over the bound) loses its subscriptions: one warning per service
        names the speaker and what was wrong, it is subscribed afresh with backoff, nothing
        logs an error, the other speaker keeps renewing, and it is followed again once its
        answers are good."""
        faults: list[tuple[dict[str, Any], str]] = [
            ({"answer_status_line": "garbage"}, "not an HTTP answer: 'garbage'"),
            ({"answer_timeout": "garbage"}, "bad GENA TIMEOUT: 'garbage'"),
            ({"answer_body_bytes": 100_000}, "response body too large"),
        ]
        # One daemon, a speaker per fault and one without: the speakers' renewals are
        # independent. The speakers grant 10 s of the 60 s asked for (as UPnP allows):
        # renewals come every second (the daemon's least delay) rather than every 6 s.
        events = self.capture_logs()
        daemon = await self.daemon(
            subscription={"timeout": 60, "renew_fraction": 0.1},
            max_timeout=10,
            speakers=len(faults) + 1,
        )
        *faulty, healthy = daemon.speakers
        for speaker, (fault, _) in zip(faulty, faults, strict=True):
            for name, value in fault.items():
                setattr(cast(Any, speaker.manager).faults, name, value)
        renewed = daemon.status(healthy, "AVTransport")["renewals"]
        for speaker, (fault, words) in zip(faulty, faults, strict=True):
            label = f"{speaker.name} ({speaker.uid})"
            warned = functools.partial(service_warnings, events, speaker, "AVTransport")
            await until(functools.partial(at_least, 2, warned), f"two warnings about {fault}")
            first, second = warned()[:2]
            self.assertTrue(first.startswith(f"renew {label} AVTransport failed: "), first)
            self.assertIn(words, first)
            self.assertIn("retry 1 in", first)
            self.assertTrue(second.startswith(f"subscribe {label} AVTransport failed: "))
        await until(
            lambda: daemon.status(healthy, "AVTransport")["renewals"] > renewed,
            "the speaker without a fault renewed meanwhile",
        )
        for speaker in faulty:
            cast(Any, speaker.manager).faults.reset()
        for speaker in faulty:
            await until(
                lambda speaker=speaker: (
                    daemon.status(speaker, "AVTransport")["state"] == "subscribed"
                ),
                f"{speaker.name} subscribed again once it answers well",
            )
        self.assertFalse([formatEvent(e) for e in events if e["log_level"] >= LogLevel.error])

    async def test_absurd_granted_timeouts_are_renewed_in_time(self) -> None:
        """A speaker that grants ``Second-99999999999999`` or ``infinite`` (it keeps the
        subscription for the requested 60 s) is renewed within the requested timeout, as
        often as a good grant would be: neither never nor in a tight loop."""
        # One grant per speaker, in one daemon: the two subscriptions are independent. The
        # least timeout (60 s) and renew fraction (0.1) make a renewal due within 6 s; the
        # renewal's answer (as absurd) is checked by the renewal it schedules, read as the
        # renewal is seen, not by waiting for it (5.4 to 6 s on).
        grants = ("Second-99999999999999", "infinite")
        daemon = await self.daemon(
            gena_faults=[{"answer_timeout": granted} for granted in grants],
            subscription={"timeout": 60, "renew_fraction": 0.1},
        )
        speakers = daemon.speakers[: len(grants)]

        def transport(speaker: Speaker) -> dict[str, Any]:
            return daemon.status(speaker, "AVTransport")

        await until(
            lambda: all(daemon.subscribed(speaker, "AVTransport") for speaker in speakers),
            "subscribed",
        )
        sids: dict[str, str] = {}
        for speaker in speakers:
            self.assertLessEqual(transport(speaker)["next_renewal"], 6.0)
            sids[speaker.uid] = transport(speaker)["sid"]
        renewed: dict[str, dict[str, Any]] = {}

        def first_renewals() -> bool:
            for speaker in speakers:
                status = transport(speaker)
                if speaker.uid not in renewed and status["renewals"] >= 1:
                    renewed[speaker.uid] = status
            return len(renewed) == len(speakers)

        await until(first_renewals, "a renewal of each grant")
        for speaker, granted in zip(speakers, grants, strict=True):
            status = renewed[speaker.uid]
            self.assertEqual(status["renewals"], 1, granted)
            # Due again as after a good grant of 60 s (5.4 to 6 s on, less the moment it took
            # to see the renewal): not never, nor at once (a loop would be 1 s, the least
            # delay).
            self.assertGreater(status["next_renewal"], 2.0, granted)
            self.assertLessEqual(status["next_renewal"], 6.0, granted)
            self.assertEqual(status["sid"], sids[speaker.uid], granted)
            self.assertEqual(status["subscribe_failures"], 0, granted)
            self.assertEqual(status["state"], "subscribed", granted)

    async def test_numbers_of_thousands_of_digits_are_a_400(self) -> None:
        """A command argument of 5,000 digits (over int()'s 4,300) is a 400 naming the
        argument, not a 500 with a traceback."""
        daemon = await self.daemon()
        events = self.capture_logs()
        for body in (b'{"volume": "%s"}' % (b"9" * 5000), b'{"delta": "-%s"}' % (b"1" * 4400)):
            status, error = await self.set_volume(daemon, body)
            self.assertEqual((status, error["code"]), (400, "bad_argument"), error)
            self.assertIn("digits", error["message"])
        self.assertFalse([e for e in events if "log_failure" in e])

    async def test_zone_group_state_nested_thousands_deep_is_taken(self) -> None:
        """A ZoneGroupState whose Satellite elements nest 3,000 deep (within every NOTIFY
        bound) is taken as its topology (a satellite's satellites unread): no RecursionError,
        no traceback (SoCo's cache refusing it is one line), no event lost."""
        daemon = await self.daemon(services=("ZoneGroupTopology",))
        # A view this document leaves out waits for the settle timeout: a shorter one.
        daemon.service.processor.settle_timeout = 2.0
        kitchen = daemon.speakers[0]
        # A command loads SoCo, whose topology cache is then given every ZoneGroupState.
        self.assertEqual((await self.set_volume(daemon))[0], 200)
        events = self.capture_logs()
        satellite = (
            f'<Satellite UUID="RINCON_DEEP01400" Location="http://{kitchen.address}:1400/x">'
        )
        document = (
            f'<ZoneGroupState><ZoneGroups><ZoneGroup Coordinator="{kitchen.uid}" ID="deep:1">'
            f'<ZoneGroupMember UUID="{kitchen.uid}" ZoneName="Kitchen" '
            f'Location="http://{kitchen.address}:1400/xml/device_description.xml">'
            + satellite * 3000
            + "</Satellite>" * 3000
            + "</ZoneGroupMember></ZoneGroup></ZoneGroups><VanishedDevices/></ZoneGroupState>"
        )
        body = (
            PROPERTYSET + b"<e:property><ZoneGroupState>" + escape(document).encode()
            + b"</ZoneGroupState></e:property></e:propertyset>"
        )  # fmt: skip
        sid = daemon.sid(kitchen, "ZoneGroupTopology")
        client = await self.send(daemon, notify_request(sid, 1, body), kitchen.address)
        self.assertEqual(status_of(await client.done), 200)

        def deep_group() -> list[Any]:
            return [
                group
                for message in daemon.recorder.of("topology.changed")
                for group in message.body["groups"]
                if group["id"] == "deep:1"
            ]

        await until(deep_group, "the topology of the deep document")
        [member] = deep_group()[0]["members"]
        self.assertEqual([s["uid"] for s in member["satellites"]], ["RINCON_DEEP01400"])
        self.assertEqual([e for e in events if "log_failure" in e], [])

    async def test_a_resync_answer_dripping_past_its_bound_is_named(self) -> None:
        """A resync whose answers drip past ``soco.call_timeout`` (the simulator's SOAP
        ``drip`` fault) fails with a warning whose reason names the answer, the speaker and
        the bound, and says it began then came too slowly, as the device description's
        reason does: not a plain ``timeout``."""
        daemon = await self.daemon(soco={"call_timeout": 1.0})
        events = self.capture_logs()
        kitchen = daemon.speakers[0]
        start = kitchen.transport.play_mode
        modes = [m for m in ("SHUFFLE", "REPEAT_ALL", "NORMAL") if m != start]
        kitchen.soap_faults.padding = 20_000
        kitchen.soap_faults.drip = 0.5
        self.addCleanup(kitchen.soap_faults.reset)
        await self.lose_a_notify(kitchen, modes[0], modes[1])
        await until(lambda: self.resync_failures(events), "the resync failed")
        [failed] = self.resync_failures(events)
        self.assertEqual(failed["log_level"], LogLevel.warn)
        reason = str(failed["reason"])
        self.assertTrue(reason.startswith("the answer to Get"), reason)
        self.assertTrue(
            reason.endswith(
                f" from {kitchen.address} did not arrive within 1 s "
                "(it began, then came too slowly)"
            ),
            reason,
        )

    async def test_dtd_in_didl_read_by_a_resync_is_refused(self) -> None:
        """A resync whose GetPositionInfo answer carries a DTD inside its escaped track
        metadata fails as a refused answer (logged, nothing of it in the state), the state keeps
        what the NOTIFYs said, and once the speaker answers plainly the next resync is read."""
        daemon = await self.daemon()
        events = self.capture_logs()
        kitchen = daemon.speakers[0]
        kitchen.soap_faults.didl_doctype = True
        start = kitchen.transport.play_mode
        modes = [m for m in ("SHUFFLE", "REPEAT_ALL", "REPEAT_ONE", "NORMAL") if m != start]

        def play_mode() -> object:
            return daemon.service.state.variables(kitchen.uid, "AVTransport")["current_play_mode"]

        def resync_failures() -> list[str]:
            return [str(e.get("reason")) for e in self.resync_failures(events)]

        await self.lose_a_notify(kitchen, modes[0], modes[1])
        await until(resync_failures, "the resync refused")
        [reason] = resync_failures()
        self.assertIn("the answer is refused: a nested document declares a DTD", reason)
        self.assertEqual(len(daemon.recorder.of("events.gap", kitchen.uid, "AVTransport")), 1)
        self.assertEqual(play_mode(), modes[1])
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertLess(len(json.dumps(state)), 100_000)
        self.assertFalse(
            [m for m in daemon.recorder.of("event", kitchen.uid) if m.body["source"] == "resync"]
        )
        self.assertFalse(any(e["log_level"] >= LogLevel.error for e in events))
        self.assertIn("sonosd_resyncs_total 0.0", await self.metrics(daemon))
        kitchen.soap_faults.reset()
        await self.lose_a_notify(kitchen, modes[2], modes[1])
        for _ in range(int(WAIT / 0.05)):
            if "sonosd_resyncs_total 1.0" in await self.metrics(daemon):
                break
            await deferLater(reactor, 0.05)
        self.assertIn("sonosd_resyncs_total 1.0", await self.metrics(daemon))
        self.assertEqual(play_mode(), modes[1])
        self.assertEqual(len(resync_failures()), 1)

    # -- HTTP framing of NOTIFYs -----------------------------------------------------------

    async def assert_refused(
        self,
        daemon: Daemon,
        data: bytes | list[bytes],
        status: int,
        reason: str,
        count: int,
        drip: float | None = None,
    ) -> DripClient:
        """Send ``data`` (pieces ``drip`` s apart) from the Kitchen speaker's address; check
        the answer's ``status``,
        that the listener counted ``count`` refusals as ``reason`` and that nothing HOSTILE
        reached the state or any client."""
        kitchen = daemon.speakers[0]
        published = len(daemon.recorder.messages)
        client = await self.send(daemon, data, kitchen.address, drip)
        self.assertEqual(status_of(await client.done), status, client.received[:80])
        self.assertEqual(daemon.service.listener.rejected[reason], count)
        state = daemon.service.state.variables(kitchen.uid, "AVTransport")
        self.assertFalse(str(state.get("transport_state")).startswith("HOSTILE"))
        self.assertFalse([m for m in daemon.recorder.messages[published:] if b"HOSTILE" in m.raw])
        return client

    async def test_chunked_notify_lines_are_bounded(self) -> None:
        """Through the daemon's listener, a chunked NOTIFY from the speaker is taken, while one
        whose chunk-size line or trailer line is over 1 KiB, or with over 100 trailer lines,
        is answered 400, counted ``bad_request`` and kept from the state."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")

        def transport_state() -> object:
            return daemon.service.state.variables(kitchen.uid, "AVTransport").get("transport_state")

        fresh = b"STOPPED" if transport_state() != "STOPPED" else b"PAUSED_PLAYBACK"
        body = last_change(fresh)
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        client = await self.send(daemon, chunked_request(sid, 1, framed), kitchen.address)
        self.assertEqual(status_of(await client.done), 200)
        await until(lambda: transport_state() == fresh.decode(), "the chunked event taken")
        hostile = last_change(b"HOSTILE_CHUNK")
        long_size = b"%x;ext=%s\r\n%s\r\n0\r\n\r\n" % (len(hostile), b"e" * 1100, hostile)
        long_trailer = b"%x\r\n%s\r\n0\r\nX-T: %s\r\n\r\n" % (len(hostile), hostile, b"t" * 1100)
        many_trailers = b"%x\r\n%s\r\n0\r\n%s\r\n" % (len(hostile), hostile, b"X-T: t\r\n" * 101)
        for count, framed in enumerate((long_size, long_trailer, many_trailers), start=1):
            await self.assert_refused(
                daemon, chunked_request(sid, 2, framed), 400, "bad_request", count
            )
        self.assertEqual(transport_state(), fresh.decode())
        self.assertIn('sonosd_notifies_total{result="bad_request"} 3.0', await self.metrics(daemon))

    async def test_notify_heads_over_the_bound_get_431(self) -> None:
        """Through the daemon's listener, a NOTIFY from the speaker with over 100 header lines,
        or a head over 16 KiB, is answered 431, counted ``bad_request`` and kept from the
        state."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")
        body = last_change(b"HOSTILE_HEAD")
        framed = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        many = chunked_request(sid, 1, framed, b"X-H: h\r\n" * 100)
        await self.assert_refused(daemon, many, 431, "bad_request", 1)
        long = chunked_request(sid, 1, framed, b"X-H: %s\r\n" % (b"h" * 17_000))
        await self.assert_refused(daemon, long, 431, "bad_request", 2)
        self.assertIn('sonosd_notifies_total{result="bad_request"} 2.0', await self.metrics(daemon))

    async def test_refused_notify_is_drained_then_aborted(self) -> None:
        """Through the daemon's listener, a NOTIFY from the speaker over ``max_body`` (8 KiB
        after a reload) gets its 413 and the rest of it is read and dropped (the client reads
        the answer and a clean close, not a reset), while one over 16 x ``max_body`` has its
        connection aborted; both are counted ``too_large`` and kept from the state."""
        daemon = await self.daemon()
        config = daemon.service.config
        listener = attrs.evolve(config.listener, max_body=8192)
        self.assertEqual(daemon.service.reload(attrs.evolve(config, listener=listener)), [])
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")

        # Twisted reads 64 KiB at a time: the rest of a 100 KB body arrives after the 413.
        def padded(size: int) -> bytes:
            body = last_change(b"HOSTILE_LARGE")
            body = body.replace(PROPERTYSET, PROPERTYSET + b" " * (size - len(body)), 1)
            return notify_request(sid, 1, body)

        drained = await self.send(
            daemon, b"", kitchen.address, client=HalfCloseClient(padded(100_000))
        )
        self.assertEqual(status_of(await drained.done), 413)
        assert drained.lost is not None
        self.assertTrue(drained.lost.check(ConnectionDone), drained.lost)
        self.assertEqual(daemon.service.listener.rejected["too_large"], 1)
        aborted = await self.send(
            daemon, b"", kitchen.address, client=HalfCloseClient(padded(400_000))
        )
        await aborted.done
        assert aborted.lost is not None
        self.assertTrue(aborted.lost.check(ConnectionLost), aborted.lost)
        self.assertEqual(daemon.service.listener.rejected["too_large"], 2)
        self.assertIn('sonosd_notifies_total{result="too_large"} 2.0', await self.metrics(daemon))

    # -- nested JSON -----------------------------------------------------------------------

    async def test_rest_nested_json_is_a_json_400(self) -> None:
        """A 60 KB nested array posted as a command's arguments is a JSON 400, not a 500."""
        daemon = await self.daemon()
        response = await treq.post(
            daemon.url("/api/v1/speakers/Kitchen/volume"),
            b"[" * 30_000 + b"]" * 30_000,
            headers=Headers({"Content-Type": ["application/json"]}),
            agent=http_agent(self),
        )
        self.assertEqual(response.code, 400)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/json"])
        error = json.loads(await response.content())["error"]
        self.assertEqual(error["code"], "bad_request")
        self.assertIn("nested 30000 levels deep", error["message"])
        self.assertIn(
            'sonosd_client_errors_total{channel="rest",reason="too_deep"} 1.0',
            await self.metrics(daemon),
        )

    async def test_websocket_nested_frame_keeps_the_socket(self) -> None:
        """A frame of 30,000 nested arrays, one that is no JSON and an unknown op each get an
        error message and are counted in ``sonosd_client_errors_total`` by reason
        (docs/security.md, Metrics); the socket stays usable."""
        daemon = await self.daemon()
        client = await connect_ws(self, daemon.host, daemon.port)
        await until(lambda: client.messages, "the snapshot")
        client.sendMessage(b"[" * 30_000 + b"]" * 30_000)
        client.sendMessage(b"not json")
        client.send({"op": "dance", "id": 1})

        def errors() -> list[dict[str, Any]]:
            return [m for m in client.messages if m["type"] == "error"]

        await until(lambda: len(errors()) == 3, "three errors")
        self.assertEqual([e["error"]["code"] for e in errors()], ["bad_request"] * 3)
        self.assertIn("nested 30000 levels deep", errors()[0]["error"]["message"])
        self.assertIn("unknown op 'dance'", errors()[2]["error"]["message"])
        client.send({"op": "filter", "id": 2, "types": ["event"]})
        await until(lambda: any(m["type"] == "filter" for m in client.messages), "the filter")
        self.assertFalse(client.closed.called)
        text = await self.metrics(daemon)
        for reason in ("too_deep", "not_json", "unknown_op"):
            self.assertIn(
                f'sonosd_client_errors_total{{channel="websocket",reason="{reason}"}} 1.0', text
            )

    async def test_bad_websocket_operations_from_one_host_log_one_line(self) -> None:
        """Unknown ops from one host, over ten connections (each from its own port), are
        logged once for that host and reason (docs/security.md, Logs: the source is the
        address), and each is counted."""
        daemon = await self.daemon()
        events = self.capture_logs()
        clients = []
        for n in range(10):
            clients.append(await connect_ws(self, daemon.host, daemon.port))
            clients[-1].send({"op": "dance", "id": n})
        for client in clients:
            await until(functools.partial(has_error, client), "the error")
        lines = [
            formatEvent(e)
            for e in events
            if e.get("log_namespace") == "sonosd.api.ws" and e["log_level"] >= LogLevel.info
        ]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("websocket client 127.0.0.1: unknown op 'dance'", lines[0])
        self.assertIn(
            'sonosd_client_errors_total{channel="websocket",reason="unknown_op"} 10.0',
            await self.metrics(daemon),
        )

    # -- JSON errors only ------------------------------------------------------------------

    async def test_every_answer_under_the_api_root_is_json(self) -> None:
        """Odd methods, paths, bodies and headers on every route get a JSON answer (never
        twisted.web's HTML page, never a 5xx), and nothing is logged as critical."""
        daemon = await self.daemon()
        events = self.capture_logs()
        paths = [
            "/api",
            "/api/",
            "/api/v1",
            "/api/v1/",
            "/api/v2/x",
            "/api/v1/nope",
            "/api/v1/health",
            "/api/v1/snapshot",
            "/api/v1/speakers",
            "/api/v1/speakers/%ff%fe",
            "/api/v1/speakers/Kitchen",
            "/api/v1/speakers/Kitchen/volume",
            "/api/v1/speakers/Kitchen/no-such-command",
            "/api/v1/groups",
            "/api/v1/ws",
            "/api/v1/art?url=http%3A%2F%2Fevil.example%2Fx",
            "/api/v1/events?last_id=" + "9" * 40,
            "/api/v1/speakers/" + "a" * 4000,
        ]
        methods = [b"TRACE", b"PUT", b"DELETE", b"PATCH", b"PROPFIND", b"OPTIONS", b"POST"]
        for path in paths:
            for method in methods:
                body = b"[" * 2000 + b"]" * 2000
                request = (
                    method + b" " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nConnection: close\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body
                )
                endpoint = TCP4ClientEndpoint(reactor, daemon.host, daemon.port, timeout=5)
                client = DripClient(request)
                await connectProtocol(endpoint, client)
                answer = await client.done
                head = answer.partition(b"\r\n\r\n")[0].lower()
                where = f"{method.decode()} {path[:60]}: {answer[:120]!r}"
                self.assertLess(status_of(answer), 500, where)
                if status_of(answer) not in (204,):
                    self.assertIn(b"content-type: application/json", head, where)
        self.assertFalse(any(e["log_level"] >= LogLevel.critical for e in events))

    async def test_headers_that_are_not_utf8_are_a_400(self) -> None:
        """A request whose Host, Origin, Authorization, Content-Type or Last-Event-ID is not
        UTF-8 (twisted.web decodes str-named headers strictly) gets a JSON 4xx, not a 500, and
        logs no traceback."""
        daemon = await self.daemon()
        events = self.capture_logs()
        for name, path, method in (
            (b"Host", b"/api/v1/health", b"GET"),
            (b"Origin", b"/api/v1/health", b"GET"),
            (b"Authorization", b"/api/v1/snapshot", b"GET"),
            (b"Content-Type", b"/api/v1/speakers/Kitchen/volume", b"POST"),
            (b"Last-Event-ID", b"/api/v1/events", b"GET"),
        ):
            host = b"" if name == b"Host" else b"Host: 127.0.0.1\r\n"
            request = (
                method + b" " + path + b" HTTP/1.1\r\n" + host + name + b": \xff\xfe\r\n"
                b'Connection: close\r\nContent-Length: 14\r\n\r\n{"volume": 21}'
            )
            endpoint = TCP4ClientEndpoint(reactor, daemon.host, daemon.port, timeout=5)
            client = DripClient(request)
            await connectProtocol(endpoint, client)
            answer = await client.done
            where = f"{name.decode()}: {answer[:200]!r}"
            self.assertIn(status_of(answer), (400, 401, 403, 415), where)
            self.assertIn(b"content-type: application/json", answer.lower(), where)
        self.assertEqual([e for e in events if "log_failure" in e], [])

    # -- log flooding ----------------------------------------------------------------------

    async def test_a_flood_of_bad_notifies_logs_a_few_lines(self) -> None:
        """Hundreds of malformed and unknown-SID NOTIFYs from one host cost a line per reason,
        and the metrics count every one."""
        daemon = await self.daemon()
        events = self.capture_logs()
        attacker = daemon.speakers[0].address.rsplit(".", 1)[0] + ".200"
        flood = 150
        for index in range(flood):
            malformed = notify_request("uuid:nobody", 1, b"not xml")
            unknown = notify_request(f"uuid:guess-{index}", 1, last_change(b"PLAYING"))
            for data in (malformed, unknown):
                client = await self.send(daemon, data, attacker)
                await client.done
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")
        for _ in range(30):
            # Unparsable bodies from the speaker itself: logged once, without a traceback.
            broken = PROPERTYSET + b"<e:property><LastChange>&lt;nope</LastChange>"
            client = await self.send(daemon, notify_request(sid, 1, broken), kitchen.address)
            self.assertEqual(status_of(await client.done), 400)
        lines = [
            e
            for e in events
            if e.get("log_namespace") == "sonosd.gena.listener" and e["log_level"] >= LogLevel.info
        ]
        self.assertLessEqual(len(lines), 3, [e.get("log_format") for e in lines][:4])
        self.assertFalse(any("log_failure" in e for e in lines))
        self.assertFalse(any(e["log_level"] >= LogLevel.error for e in events))
        rejected = daemon.service.listener.rejected
        self.assertEqual((rejected["malformed"], rejected["unknown_sid"]), (flood, flood))
        self.assertEqual(rejected["unparsable"], 30)
        text = await self.metrics(daemon)
        self.assertIn(f'sonosd_notifies_total{{result="malformed"}} {flood}.0', text)

    async def test_reloaded_max_body_is_enforced(self) -> None:
        """After a reload lowers listener.max_body, a NOTIFY from the speaker over the new
        limit (accepted before the reload) is answered 413, counted and kept from the state,
        while one under it is still taken."""
        daemon = await self.daemon()
        kitchen = daemon.speakers[0]
        sid = daemon.sid(kitchen, "AVTransport")

        def padded(state: bytes) -> bytes:
            # 2,000 bytes: under the default 1 MiB, over the 1,024 set below.
            body = last_change(state)
            return body.replace(PROPERTYSET, PROPERTYSET + b" " * (2000 - len(body)), 1)

        def transport_state() -> object:
            return daemon.service.state.variables(kitchen.uid, "AVTransport").get("transport_state")

        client = await self.send(
            daemon, notify_request(sid, 1, padded(b"PLAYING")), kitchen.address
        )
        self.assertEqual(status_of(await client.done), 200)
        await until(lambda: transport_state() == "PLAYING", "the 2,000-byte event taken")
        config = daemon.service.config
        listener = attrs.evolve(config.listener, max_body=1024)
        self.assertEqual(daemon.service.reload(attrs.evolve(config, listener=listener)), [])
        client = await self.send(
            daemon, notify_request(sid, 2, padded(b"PAUSED_PLAYBACK")), kitchen.address
        )
        self.assertEqual(status_of(await client.done), 413)
        self.assertEqual(daemon.service.listener.rejected["too_large"], 1)
        self.assertEqual(transport_state(), "PLAYING")
        client = await self.send(
            daemon, notify_request(sid, 2, last_change(b"STOPPED")), kitchen.address
        )
        self.assertEqual(status_of(await client.done), 200)
        await until(lambda: transport_state() == "STOPPED", "the small event taken")

    # -- slow drip -------------------------------------------------------------------------

    async def test_slow_drip_to_the_listener_is_closed(self) -> None:
        """Connections dripping a byte every 0.2 s are closed at the request deadline (1 s),
        however long their request would have taken."""
        daemon = await self.daemon(listener={"request_timeout": 1.0})
        kitchen = daemon.speakers[0]
        data = notify_request(daemon.sid(kitchen, "AVTransport"), 1, last_change(b"PLAYING"))
        clients = [await self.send(daemon, data, kitchen.address, drip=0.2) for _ in range(5)]
        for client in clients:
            await client.done
            self.assertFalse(client.everything_sent)
            self.assertEqual(client.received, b"")
        self.assertEqual(daemon.service.listener.rejected["too_slow"], 5)

    async def test_a_silent_connection_to_the_listener_is_closed_at_idle_timeout(self) -> None:
        """A NOTIFY connection that goes silent mid-request is closed once
        ``listener.idle_timeout`` (0.5 s) passes, long before its request deadline (an hour),
        unanswered and counted."""
        daemon = await self.daemon(listener={"idle_timeout": 0.5, "request_timeout": 3600})
        kitchen = daemon.speakers[0]
        client = await self.send(daemon, b"NOTIFY / HTTP/1.1\r\nHOST: 127", kitchen.address)
        await until(lambda: client.done.called, "the silent connection closed")
        self.assertEqual(client.received, b"")
        self.assertEqual(daemon.service.listener.rejected["too_slow"], 1)

    async def test_connections_from_one_host_are_bounded(self) -> None:
        """Beyond ``listener.max_connections_per_host`` open connections from one address,
        each new one is closed at once and counted; the speaker's own NOTIFYs still land once
        they are gone."""
        daemon = await self.daemon(listener={"max_connections_per_host": 8})
        kitchen = daemon.speakers[0]
        head = b"NOTIFY / HTTP/1.1\r\nHOST: 127.0.0.1\r\n"
        clients = [await self.send(daemon, head, kitchen.address) for _ in range(12)]
        await until(
            lambda: daemon.service.listener.rejected["too_many_connections"] == 4,
            "the connections beyond the bound closed",
        )
        await until(
            lambda: sum(client.done.called for client in clients) == 4, "4 connections closed"
        )
        self.assertEqual(daemon.service.listener.rejected["too_many_connections"], 4)
        for client in clients:
            client.close()
        volume = 33 if kitchen.rendering.volume != 33 else 34
        kitchen.set_volume(volume)

        def volume_in_state() -> object:
            variables = daemon.service.state.variables(kitchen.uid, "RenderingControl")
            return variables.get("volume", {}).get("Master")

        await until(lambda: volume_in_state() == volume, "the next NOTIFY accepted")

    async def test_slow_drip_to_the_api_is_closed(self) -> None:
        """An API request dripping a byte every 0.2 s is answered 408 (JSON) at its deadline."""
        daemon = await self.daemon(api={"request_timeout": 1.0})
        request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Pad: y\r\n" * 20
        endpoint = TCP4ClientEndpoint(reactor, daemon.host, daemon.port, timeout=5)
        client = DripClient(request + b"\r\n", drip=0.2)
        await connectProtocol(endpoint, client)
        self.addCleanup(client.close)
        answer = await client.done
        self.assertFalse(client.everything_sent)
        self.assertEqual(status_of(answer), 408)
        body = json.loads(answer.partition(b"\r\n\r\n")[2])
        self.assertEqual(body["error"]["code"], "request_timeout")
        self.assertIn(
            'sonosd_client_errors_total{channel="rest",reason="too_slow"} 1.0',
            await self.metrics(daemon),
        )

    # -- the lost last NOTIFY --------------------------------------------------------------

    async def test_lost_last_notify_is_found(self) -> None:
        """A volume change whose NOTIFY is dropped, with nothing after it, is found by the
        consistency check: events.gap, then the state follows the speaker (the resync, or the
        fresh subscription's initial NOTIFY, whichever comes first); that service is
        subscribed afresh, its old SID UNSUBSCRIBEd, with no subscription.lost (the gap said
        it: docs/supervisor.md, the consistency check)."""
        daemon = await self.daemon(subscription={"check_interval": 1.0})
        kitchen = daemon.speakers[0]
        volume = 50 if kitchen.rendering.volume != 50 else 45
        manager: Any = kitchen.manager
        supervised = daemon.service.household.speaker(kitchen.uid)
        assert supervised is not None
        rendering = supervised.services["RenderingControl"]
        assert rendering.subscription is not None
        old = rendering.subscription.sid

        def sids(service: str) -> set[str]:
            return {s["sid"] for s in manager.subscriptions() if s["service"] == service}

        others = sids("AVTransport")
        manager.faults.drop_next = 1
        started = time.monotonic()
        kitchen.set_volume(volume)

        def volume_in_state() -> object:
            variables = daemon.service.state.variables(kitchen.uid, "RenderingControl")
            return variables.get("volume", {}).get("Master")

        await until(lambda: volume_in_state() == volume, "the state to follow the speaker")
        self.assertEqual(manager.stats()["dropped"], 1)
        [gap] = daemon.recorder.of("events.gap", kitchen.uid, "RenderingControl")
        self.assertIsNone(gap.body["got"])
        self.assertIn("consistency check: volume Master", gap.body["reason"])
        found = self.after_gap(daemon, gap, kitchen.uid, "RenderingControl")
        self.assertIn(volume, [volume_of(m.body) for m in found])
        self.assertGreater(time.monotonic(), started)
        await until(lambda: sids("RenderingControl") - {old}, "a fresh subscription")
        await until(lambda: old not in sids("RenderingControl"), "the old SID UNSUBSCRIBEd")
        assert rendering.subscription is not None
        self.assertEqual(sids("RenderingControl"), {rendering.subscription.sid})
        self.assertEqual(sids("AVTransport"), others)
        self.assertEqual(daemon.recorder.of("subscription.lost"), [])

    def after_gap(self, daemon: Daemon, gap: Any, uid: str, service: str) -> list[Any]:
        """The ``event`` messages that followed ``gap`` from a resync or a NOTIFY (the fresh
        subscription's initial one)."""
        since = daemon.recorder.messages.index(gap)
        return [
            m
            for m in daemon.recorder.of("event", uid, service, since=since)
            if m.body["source"] in ("resync", "notify")
        ]

    async def test_notifies_that_stop_reaching_the_daemon_are_polled(self) -> None:
        """A speaker whose NOTIFYs stop reaching the daemon for good after it subscribed (a
        firewall; renewals still succeed) is found by the consistency check, subscribed
        afresh, and, with no initial NOTIFY either, polled: its later changes still reach
        the clients, as ``source: poll`` events."""
        daemon = await self.daemon(
            subscription={"check_interval": 0.5, "no_event_grace": 1.0, "poll_interval": 0.5}
        )
        kitchen = daemon.speakers[0]
        manager: Any = kitchen.manager
        manager.faults.drop_next = 10**9
        first = 50 if kitchen.rendering.volume != 50 else 45
        kitchen.set_volume(first)
        await until(
            lambda: daemon.recorder.of("events.gap", kitchen.uid, "RenderingControl"),
            "the consistency check to find the lost NOTIFY",
        )
        speaker = daemon.service.household.speaker(kitchen.uid)
        assert speaker is not None
        rendering = speaker.services["RenderingControl"]
        await until(lambda: rendering.polling, "the fresh subscription's NOTIFY missing: polling")
        await until(lambda: rendering.polls >= 1, "a first poll")
        since = len(daemon.recorder.messages)
        second = first - 20
        kitchen.set_volume(second)

        def polled() -> bool:
            return any(
                m.body["source"] == "poll" and volume_of(m.body) == second
                for m in daemon.recorder.of("event", kitchen.uid, "RenderingControl", since)
            )

        await until(polled, "the second volume to arrive by polling")
        self.assertGreaterEqual(manager.stats()["dropped"], 2)

    async def assert_lost_change_found(
        self, daemon: Daemon, speaker: Speaker, name: str, change: Callable[[], object], value: str
    ) -> None:
        """Drop the NOTIFY of ``change`` (an AVTransport one, the last); wait until the
        consistency check finds ``name`` differing and the resync brings ``value``."""
        manager: Any = speaker.manager
        manager.faults.drop_next = 1
        self.assertNotEqual(daemon.service.state.variables(speaker.uid, "AVTransport")[name], value)
        change()

        def in_state() -> object:
            return daemon.service.state.variables(speaker.uid, "AVTransport").get(name)

        await until(lambda: in_state() == value, f"the state's {name} to follow the speaker")
        self.assertEqual(manager.stats()["dropped"], 1)
        [gap] = daemon.recorder.of("events.gap", speaker.uid, "AVTransport")
        self.assertIsNone(gap.body["got"])
        self.assertIn(f"consistency check: {name}: ", gap.body["reason"])
        found = self.after_gap(daemon, gap, speaker.uid, "AVTransport")
        self.assertIn(value, [m.body["variables"].get(name) for m in found])

    async def test_lost_last_track_change_is_found(self) -> None:
        """A track change of a stopped queue whose NOTIFY is dropped, with nothing after it, is
        found by the consistency check (the track URI): events.gap, then a resync."""
        daemon = await self.daemon(subscription={"check_interval": 0.5})
        kitchen = daemon.speakers[0]
        transport = kitchen.transport
        self.assertTrue(transport.on_queue and len(transport.queue) > 1)
        target = 2 if transport.track_no != 2 else 1
        self.assertNotEqual(transport.queue[target - 1].uri, transport.current().uri)
        await self.assert_lost_change_found(
            daemon,
            kitchen,
            "current_track_uri",
            lambda: transport.seek_track(target),
            transport.queue[target - 1].uri,
        )

    async def test_lost_last_play_mode_change_is_found(self) -> None:
        """A play-mode change whose NOTIFY is dropped, with nothing after it, is found by the
        consistency check: events.gap naming the play mode, then a resync."""
        daemon = await self.daemon(subscription={"check_interval": 0.5})
        kitchen = daemon.speakers[0]
        mode = "SHUFFLE" if kitchen.transport.play_mode != "SHUFFLE" else "REPEAT_ALL"
        await self.assert_lost_change_found(
            daemon,
            kitchen,
            "current_play_mode",
            lambda: kitchen.transport.set_play_mode(mode),
            mode,
        )

    async def test_lost_last_mute_and_transport_state_changes_are_found(self) -> None:
        """A mute change and a transport state change (on another speaker) whose NOTIFYs are
        dropped, with nothing after them, are found by the consistency check, which reads
        both (docs/security.md, Losses that are not an attack): events.gap naming each, then
        the state follows the speakers."""
        daemon = await self.daemon(subscription={"check_interval": 0.5})
        kitchen, other = daemon.speakers
        transport = other.transport
        transport.play()

        def transport_state() -> object:
            return daemon.service.state.variables(other.uid, "AVTransport").get("transport_state")

        await until(lambda: transport_state() == "PLAYING", "the other speaker playing")
        mute = not kitchen.rendering.mute

        def muted() -> object:
            variables = daemon.service.state.variables(kitchen.uid, "RenderingControl")
            return variables.get("mute", {}).get("Master")

        self.assertNotEqual(muted(), mute)
        for speaker in (kitchen, other):
            cast(Any, speaker.manager).faults.drop_next = 1
        kitchen.set_mute(mute)
        transport.stop()
        await until(lambda: muted() == mute, "the state's mute to follow the speaker")
        await until(lambda: transport_state() == "STOPPED", "the transport state to follow")
        for speaker in (kitchen, other):
            self.assertEqual(cast(Any, speaker.manager).stats()["dropped"], 1)
        [gap] = daemon.recorder.of("events.gap", kitchen.uid, "RenderingControl")
        self.assertIn("consistency check: mute Master", gap.body["reason"])
        [gap] = daemon.recorder.of("events.gap", other.uid, "AVTransport")
        self.assertIn("consistency check: transport_state: PLAYING here", gap.body["reason"])

    async def test_group_member_is_consistent(self) -> None:
        """A group member, whose AVTransport reads its coordinator's play mode while its events
        say NORMAL, passes consistency checks without events.gap."""
        daemon = await self.daemon(subscription={"check_interval": 0.2})
        coordinator, member = daemon.speakers
        coordinator.transport.set_play_mode("SHUFFLE_NOREPEAT")
        sim: Any = daemon.service.simulator
        sim.household.join(member, coordinator)

        def member_uri() -> object:
            return daemon.service.state.variables(member.uid, "AVTransport").get(
                "current_track_uri"
            )

        await until(lambda: member_uri() == f"x-rincon:{coordinator.uid}", "the member's event")
        supervisor = daemon.service.household.speaker(member.uid)
        assert supervisor is not None
        checks = supervisor.checks
        await until(lambda: supervisor.checks >= checks + 3, "three consistency checks")
        self.assertEqual(daemon.recorder.of("events.gap"), [])
