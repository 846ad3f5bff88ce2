"""Tests for sonosd.ctl (sonosctl): against the real API site, and its pure helpers."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import socket
import subprocess
import sys
import urllib.error
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.protocols import portforward
from twisted.trial.unittest import TestCase

from sonosd import ctl
from sonosd.blocking import SocoRunner
from sonosd.config import SimulateConfig
from sonosd.control.controller import Controller
from sonosd.ctl import (
    COMMAND_TIMEOUT,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_SPEAKER,
    EXIT_UNAUTHORISED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CtlError,
    _command_timeout,
    _http_error,
    command_request,
    format_event,
    format_result,
    format_status,
    main,
    parse_sse,
)
from sonosd.delivery.hub import Hub
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import parse_zone_group_state
from sonosd.sim.service import HouseholdService
from tests.api_helpers import ADMIN, READER, start_api
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.stdlib_http import serving


class Outcome:
    """What one sonosctl run printed and returned."""

    def __init__(self, status: int, out: str, err: str) -> None:
        self.status, self.out, self.err = status, out, err


def run_ctl(argv: list[str], environ: dict[str, str] | None = None) -> Outcome:
    """Run sonosctl in this thread; capture its output."""
    out, err = io.StringIO(), io.StringIO()
    status = main(argv, stdout=out, stderr=err, environ=environ or {})
    return Outcome(status, out.getvalue(), err.getvalue())


class DroppingProxy:
    """A TCP proxy in front of the API that can drop every connection and stop accepting,
    as a network path that goes away; it keeps what each connection sent and received."""

    def __init__(self, host: str, port: int) -> None:
        self.sent: list[bytes] = []
        self.received: list[bytes] = []
        self.servers: list[portforward.ProxyServer] = []
        self.listening: Any = None
        self.port = 0
        proxy = self

        class Client(portforward.ProxyClient):
            def dataReceived(self, data: bytes) -> None:
                proxy.received[self.peer.index] += data  # type: ignore[attr-defined]
                super().dataReceived(data)

        class ClientFactory(portforward.ProxyClientFactory):
            protocol = Client

        class Server(portforward.ProxyServer):
            clientProtocolFactory = ClientFactory

            def connectionMade(self) -> None:
                self.index = len(proxy.sent)
                proxy.sent.append(b"")
                proxy.received.append(b"")
                proxy.servers.append(self)
                super().connectionMade()

            def dataReceived(self, data: bytes) -> None:
                proxy.sent[self.index] += data
                super().dataReceived(data)

        self.factory = portforward.ProxyFactory(host, port)
        self.factory.protocol = Server
        self.factory.noisy = False

    def listen(self) -> str:
        """Accept connections (on the same port as before, if any); the proxy's URL."""
        self.listening = reactor.listenTCP(  # type: ignore[attr-defined]
            self.port, self.factory, interface="127.0.0.1"
        )
        self.port = self.listening.getHost().port
        return f"http://127.0.0.1:{self.port}"

    async def go_away(self) -> None:
        """Stop accepting and drop every open connection."""
        await self.listening.stopListening()
        for server in self.servers:
            server.transport.loseConnection()


class CtlAgainstDaemonTests(TestCase):
    """sonosctl → the real API site → the real Controller → SoCo → the simulator."""

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        base = free_loopback_base(count=4)
        self.sim = HouseholdService(
            reactor, SimulateConfig(speakers=2, base_address=base), transition_delay=0.01
        )
        self.household = self.sim.household
        self.sim.startService()
        self.addCleanup(self.sim.stopService)
        runner = SocoRunner(reactor, threads=4, timeout=10.0)
        runner.startService()
        self.addCleanup(runner.stopService)
        self.state = HouseholdState()
        for speaker in self.household.speakers:
            self.state.ensure(SpeakerRef(speaker.uid, speaker.name, speaker.address))
            self.state.set_availability(speaker.uid, "online", "test", time=0.0)
        self.state.set_topology(parse_zone_group_state(self.household.zone_group_state()))
        self.state.merge(
            self.household.speakers[0].uid,
            "RenderingControl",
            {"volume": {"Master": 23}, "mute": {"Master": True}},
            seq=0,
            time=0.0,
        )
        self.hub = Hub(reactor)
        self.hub.set_snapshot_provider(self.state.snapshot)
        controller = Controller(runner, self.state, reactor, timeout=5.0, confirm_timeout=0.5)
        self.controller = controller
        _, host, port = await start_api(
            self, self.hub, self.state, controller, tokens=(ADMIN, READER), require_auth=True
        )
        self.url = f"http://{host}:{port}"

    async def ctl(self, *words: str, token: str | None = ADMIN.secret) -> Outcome:
        """Run sonosctl against the daemon, in a thread (it blocks)."""
        environ = {"SONOSD_URL": self.url}
        if token is not None:
            environ["SONOSD_TOKEN"] = token
        outcome: Outcome = await deferToThread(run_ctl, list(words), environ)
        return outcome

    async def test_volume_command(self) -> None:
        """``sonosctl <room> volume 30`` sets the speaker's volume and says so."""
        outcome = await self.ctl("living room", "volume", "30")
        self.assertEqual((outcome.status, outcome.err), (EXIT_OK, ""))
        self.assertEqual(outcome.out, "living room: volume 30\n")
        self.assertEqual(self.household.speakers[0].rendering.volume, 30)
        outcome = await self.ctl("--json", "Living Room", "volume", "-5")
        self.assertEqual(json.loads(outcome.out), {"volume": 25})

    async def test_join_shows_group(self) -> None:
        """``sonosctl <room> join <room>`` answers the resulting group."""
        outcome = await self.ctl("Kitchen", "join", "Living", "Room")
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        self.assertEqual(outcome.out, "Kitchen: group Living Room + Kitchen\n")

    async def test_alarm_results_read_as_lines(self) -> None:
        """``alarm add|skip|on|off|delete``, an update and ``alarms`` print each alarm as a
        line (id, time, recurrence, room, on or off, the ring skipped and when it is back);
        ``--json`` prints the daemon's answer as it is."""
        self.controller.alarms._now = lambda: dt.datetime(2026, 11, 23, 12, 0)  # a Monday

        def held(alarm_id: int) -> Any:
            return next((a for a in self.household.alarms if a.alarm_id == alarm_id), None)

        before = {a.alarm_id for a in self.household.alarms}
        outcome = await self.ctl("kitchen", "alarm", "add", "06:30", "WEEKDAYS")
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        (alarm_id,) = {a.alarm_id for a in self.household.alarms} - before
        self.assertEqual(
            (held(alarm_id).start_time, held(alarm_id).room_uid),
            ("06:30:00", self.household.speakers[1].uid),
        )
        self.assertEqual(
            outcome.out, f"kitchen: alarm {alarm_id} added: 06:30 WEEKDAYS in Kitchen, on\n"
        )
        outcome = await self.ctl("kitchen", "alarm", "skip", str(alarm_id))
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        self.assertEqual(
            outcome.out,
            f"kitchen: alarm {alarm_id} skipped: 06:30 WEEKDAYS in Kitchen, off; "
            "skips Tue 2026-11-24 06:30, on again Tue 2026-11-24 06:31\n",
        )
        self.assertFalse(held(alarm_id).enabled)
        outcome = await self.ctl("kitchen", "alarm", "on", str(alarm_id))
        self.assertEqual(
            outcome.out, f"kitchen: alarm {alarm_id} switched on: 06:30 WEEKDAYS in Kitchen, on\n"
        )
        outcome = await self.ctl(
            "kitchen", "alarms", "action=update", f"id={alarm_id}", 'days=["mon","sat"]'
        )
        self.assertEqual(
            outcome.out, f"kitchen: alarm {alarm_id} changed: 06:30 mon,sat in Kitchen, on\n"
        )
        self.assertEqual(held(alarm_id).recurrence, "ON_16")
        outcome = await self.ctl("kitchen", "alarm", "off", str(alarm_id))
        self.assertEqual(
            outcome.out, f"kitchen: alarm {alarm_id} switched off: 06:30 mon,sat in Kitchen, off\n"
        )
        outcome = await self.ctl("Living Room", "alarms")
        lines = outcome.out.splitlines()
        self.assertEqual(lines[0], f"Living Room: {len(self.household.alarms)} alarms")
        self.assertIn(f"  {alarm_id}. 06:30 mon,sat in Kitchen, off", lines)
        outcome = await self.ctl("kitchen", "alarm", "add", "07:15", "ONCE")
        (once,) = {a.alarm_id for a in self.household.alarms} - before - {alarm_id}
        outcome = await self.ctl("kitchen", "alarm", "skip", str(once))
        self.assertEqual(
            outcome.out,
            f"kitchen: alarm {once} skipped: 07:15 ONCE in Kitchen, off; "
            "skips Tue 2026-11-24 07:15, stays off (it rings once)\n",
        )
        outcome = await self.ctl("kitchen", "alarm", "delete", str(alarm_id))
        self.assertEqual(outcome.out, f"kitchen: alarm {alarm_id} deleted\n")
        self.assertIsNone(held(alarm_id))
        outcome = await self.ctl("--json", "kitchen", "alarm", "delete", str(once))
        self.assertEqual(
            json.loads(outcome.out),
            {"deleted": once, "version": self.household.alarm_list_version()},
        )
        outcome = await self.ctl("--json", "kitchen", "alarms")
        self.assertEqual(json.loads(outcome.out)["version"], self.household.alarm_list_version())

    async def test_status(self) -> None:
        """``sonosctl status`` lists groups, rooms, volumes and mutes."""
        outcome = await self.ctl("status", token=READER.secret)
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        self.assertIn("Living Room  [?]", outcome.out)
        self.assertIn("  Living Room  volume 23  muted", outcome.out)
        self.assertIn("Kitchen", outcome.out)
        # --json: the daemon's snapshot as it is.
        outcome = await self.ctl("--json", "status", token=READER.secret)
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        snapshot = json.loads(outcome.out)
        self.assertEqual(snapshot["type"], "snapshot")
        self.assertEqual(
            sorted(speaker["name"] for speaker in snapshot["speakers"]),
            sorted(ref.name for ref in self.state.speakers()),
        )

    async def test_unknown_speaker(self) -> None:
        """An unknown room exits 1 with the daemon's error on one line."""
        outcome = await self.ctl("Attic", "play")
        self.assertEqual(outcome.status, EXIT_REFUSED)
        self.assertEqual(outcome.err, "sonosctl: unknown_speaker: no speaker 'Attic'\n")

    async def test_a_command_before_its_room_is_pointed_out(self) -> None:
        """``sonosctl play Kitchen`` reaches the daemon as room "play", command "kitchen": its
        refusal (exit 1) says the room comes first, with the words in that order."""
        outcome = await self.ctl("play", "Kitchen")
        self.assertEqual(outcome.status, EXIT_REFUSED)
        self.assertTrue(outcome.err.startswith("sonosctl: unknown_"), outcome.err)
        self.assertTrue(
            outcome.err.endswith(" (the room comes first: sonosctl Kitchen play)\n"), outcome.err
        )
        # A room and a command in the right order get no such hint.
        outcome = await self.ctl("Attic", "play")
        self.assertNotIn("comes first", outcome.err)

    async def test_speaker_error_has_upnp_code(self) -> None:
        """A speaker's refusal names the UPnP error once, and exits 5 (the speaker failed)."""
        self.household.speakers[0].transport.clear_queue()
        outcome = await self.ctl("Living Room", "play")
        self.assertEqual(outcome.status, EXIT_SPEAKER)
        self.assertEqual(
            outcome.err, "sonosctl: speaker_error: Living Room refused: UPnP error 701\n"
        )

    async def test_hung_speaker_is_not_an_unreachable_daemon(self) -> None:
        """A speaker that never answers: the daemon's timeout (exit 5), not exit 3."""
        speaker = self.household.speakers[0]
        self.controller.timeout = 1.0
        await speaker.go_offline("hang")
        self.addCleanup(speaker.come_online)
        outcome = await self.ctl("Living Room", "volume", "30")
        self.assertEqual(outcome.status, EXIT_SPEAKER, outcome.err)
        self.assertEqual(outcome.err, "sonosctl: timeout: Living Room did not answer within 1 s\n")

    async def test_offline_speaker_exits_5(self) -> None:
        """A speaker that refuses connections is the daemon's 503 offline, and sonosctl exits
        5 (the speaker failed) with the daemon's ``offline: ...`` line."""
        speaker = self.household.speakers[0]
        await speaker.go_offline("refuse")
        self.addCleanup(speaker.come_online)
        outcome = await self.ctl("Living Room", "volume", "30")
        self.assertEqual(outcome.status, EXIT_SPEAKER, outcome.err)
        self.assertTrue(outcome.err.startswith("sonosctl: offline: Living Room"), outcome.err)

    async def test_unauthorised(self) -> None:
        """Without a token exits 4; with a read-only token a command exits 4 too."""
        outcome = await self.ctl("Kitchen", "play", token=None)
        self.assertEqual(outcome.status, EXIT_UNAUTHORISED)
        self.assertIn("SONOSD_TOKEN", outcome.err)
        outcome = await self.ctl("Kitchen", "play", token=READER.secret)
        self.assertEqual(outcome.status, EXIT_UNAUTHORISED)

    async def test_events_tail(self) -> None:
        """``sonosctl events --count 2`` prints live messages, filtered by room."""
        kitchen = self.state.find("Kitchen")
        living = self.state.find("Living Room")
        assert kitchen is not None and living is not None

        def publish() -> None:
            for ref, volume in ((living, 1), (kitchen, 17)):
                self.hub.publish(
                    "event",
                    {"seq": 1, "variables": {"volume": {"Master": volume}}},
                    speaker=ref.to_json(),
                    service="RenderingControl",
                )
            self.hub.publish(
                "event",
                {"seq": 1, "variables": {"transport_state": "PLAYING"}},
                speaker=living.to_json(),
                service="AVTransport",
            )
            # Passes a services filter (docs/api.md): only --type keeps it out.
            self.hub.publish(
                "speaker.online",
                {"reason": "answered", "availability": {"status": "online"}},
                speaker=living.to_json(),
            )

        loop = LoopingCall(publish)
        loop.clock = reactor
        loop.start(0.05)

        def stop() -> None:
            if loop.running:
                loop.stop()

        self.addCleanup(stop)
        outcome = await self.ctl("events", "--room", "kitchen", "--count", "2", token=READER.secret)
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        lines = outcome.out.splitlines()
        self.assertEqual(len(lines), 2)
        for line in lines:
            self.assertRegex(
                line, r"^\d\d:\d\d:\d\d\.\d{3} event Kitchen RenderingControl volume=17$"
            )
        outcome = await self.ctl("events", "--json", "--count", "1", token=READER.secret)
        self.assertEqual(json.loads(outcome.out)["type"], "event")
        # Filters repeat (docs/control.md): both rooms, one type, one service.
        outcome = await self.ctl(
            "events",
            *("--room", "kitchen", "--room", "Living Room"),
            *("--type", "event", "--service", "RenderingControl", "--count", "6"),
            token=READER.secret,
        )
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        lines = outcome.out.splitlines()
        self.assertEqual(len(lines), 6)
        self.assertTrue(all(" event " in line for line in lines), lines)
        self.assertTrue(all(" RenderingControl volume=" in line for line in lines), lines)
        self.assertTrue(any(" event Kitchen " in line for line in lines), lines)
        self.assertTrue(any(" event Living Room " in line for line in lines), lines)

    async def test_events_reconnects_and_resumes_after_the_stream_drops(self) -> None:
        """``sonosctl events`` whose stream drops reconnects with the last message id
        (``Last-Event-ID``) and prints, once each and in order, the messages published while
        it was away (docs/control.md)."""
        host, port = self.url.removeprefix("http://").split(":")
        proxy = DroppingProxy(host, int(port))
        url = proxy.listen()
        self.addCleanup(lambda: proxy.listening.stopListening())
        ran = deferToThread(
            run_ctl,
            ["events", "--json", "--room", "Kitchen", "--count", "2"],
            {"SONOSD_URL": url, "SONOSD_TOKEN": READER.secret},
        )
        kitchen = self.state.find("Kitchen")
        assert kitchen is not None

        def publish(volume: int) -> int:
            body = {"seq": volume, "variables": {"volume": {"Master": volume}}}
            message = self.hub.publish(
                "event", body, speaker=kitchen.to_json(), service="RenderingControl"
            )
            return message.id

        await until(lambda: b"event: snapshot" in b"".join(proxy.received), "the snapshot")
        first = publish(31)
        await until(lambda: b"event: event" in proxy.received[0], "the first message")
        await proxy.go_away()
        second = publish(32)
        proxy.listen()
        await until(
            lambda: len(proxy.received) > 1 and b"event: " in proxy.received[-1], "the reconnect"
        )
        # A client that did not resume would print this one instead of the second.
        publish(33)
        outcome: Outcome = await ran
        self.assertEqual(outcome.status, EXIT_OK, outcome.err)
        printed = [json.loads(line) for line in outcome.out.splitlines()]
        self.assertEqual([m["id"] for m in printed], [first, second])
        self.assertEqual([m["variables"]["volume"]["Master"] for m in printed], [31, 32])
        # The id of the first message's block on the dropped stream is the one resumed from.
        [block] = [b for b in proxy.received[0].split(b"\n\n") if b"event: event" in b]
        [event_id] = [line[4:] for line in block.splitlines() if line.startswith(b"id: ")]
        resumed = proxy.sent[-1].lower()
        self.assertIn(b"last-event-id: " + event_id.lower(), resumed)


def test_connection_refused() -> None:
    """A daemon that is not running exits 3 with one line."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = run_ctl(["--url", f"http://127.0.0.1:{port}", "status"])
    assert outcome.status == EXIT_UNREACHABLE
    assert outcome.err.startswith("sonosctl: cannot reach http://127.0.0.1:")
    assert "connection refused" in outcome.err
    assert outcome.err.count("\n") == 1


_STDLIB_ONLY = """
import io, json, sys
before = set(sys.modules)
from sonosd.ctl import main
url = sys.argv[1]
for words in (["status"], ["doctor"], ["--json", "Kitchen", "volume", "+5"], ["events"]):
    main(["--url", url, *words], stdout=io.StringIO(), stderr=io.StringIO(), environ={})
loaded = sorted(
    name for name in sys.modules
    if name not in before and name.split(".")[0] not in sys.stdlib_module_names
)
print(json.dumps(loaded))
"""


def test_sonosctl_needs_only_the_standard_library() -> None:
    """sonosctl (status, doctor, a command, events; docs/control.md: "It needs only the
    standard library") loads no module from outside the standard library but its own."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    run = subprocess.run(
        [sys.executable, "-c", _STDLIB_ONLY, f"http://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(run.stdout) == ["sonosd", "sonosd.ctl", "sonosd.doctor"]


class _NotSonosd(BaseHTTPRequestHandler):
    """Answers every request with an HTML page, as a proxy or another server would."""

    def _html(self) -> None:
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _html

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def not_sonosd() -> Iterator[str]:
    with serving(_NotSonosd) as url:
        yield url


def test_answer_that_is_not_json(not_sonosd: str) -> None:
    """An answer that is not JSON exits 3 with one line, not a traceback."""
    for words in (["status"], ["Kitchen", "play"]):
        outcome = run_ctl(["--url", not_sonosd, *words])
        assert outcome.status == EXIT_UNREACHABLE
        assert outcome.err == (
            f"sonosctl: cannot reach {not_sonosd}: the answer is not JSON (is this sonosd's API?)\n"
        )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_timeout_option(value: str) -> None:
    """A --timeout that is not a number of seconds above 0 is a usage error."""
    assert run_ctl(["--timeout", value, "status"]).status == EXIT_USAGE


def test_default_timeouts_exceed_the_daemons_call_timeout() -> None:
    """A command waits 90 s by default, longer than the daemon's own limit (3 x
    soco.call_timeout, 20 s by default); status, doctor and events wait 15 s."""
    from sonosd.config import SocoConfig

    assert SocoConfig().call_timeout == 20.0
    assert 3 * SocoConfig().call_timeout < COMMAND_TIMEOUT == 90.0
    assert DEFAULT_TIMEOUT == 15.0


def test_url_option_environment_and_default() -> None:
    """docs/control.md: ``--url``, else ``SONOSD_URL``, else http://127.0.0.1:8080."""
    assert DEFAULT_URL == "http://127.0.0.1:8080"
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    option, environment = (f"http://127.0.0.1:{port}" for port in ports)
    outcome = run_ctl(["--url", option, "status"], {"SONOSD_URL": environment})
    assert outcome.err.startswith(f"sonosctl: cannot reach {option}"), outcome.err
    outcome = run_ctl(["status"], {"SONOSD_URL": environment})
    assert outcome.err.startswith(f"sonosctl: cannot reach {environment}"), outcome.err


def test_command_timeout() -> None:
    """A command waits 30 s longer than its own numeric timeout; other values are ignored."""
    assert _command_timeout(15.0, {}) == 15.0
    assert _command_timeout(15.0, {"timeout": 100}) == 130.0
    assert _command_timeout(15.0, {"timeout": "abc"}) == 15.0
    assert _command_timeout(15.0, {"timeout": True}) == 15.0
    assert _command_timeout(15.0, {"timeout": float("nan")}) == 15.0
    assert _command_timeout(15.0, {"text": "hi"}, "say") == 90.0
    assert _command_timeout(120.0, {}, "announce") == 120.0


def test_usage_errors() -> None:
    """Missing or malformed words exit 2 without any request."""
    assert run_ctl([]).status == EXIT_USAGE
    # A command typed before its room: the words are read as room "volume", command
    # "Kitchen" (no shorthand, so key=value arguments); the error says the order.
    outcome = run_ctl(["--url", "http://127.0.0.1:9", "volume", "Kitchen", "30"])
    assert (outcome.status, outcome.err) == (
        EXIT_USAGE,
        "sonosctl: expected key=value, got '30' (the room comes first: sonosctl Kitchen volume"
        " 30)\n",
    )
    outcome = run_ctl(["--url", "http://127.0.0.1:9", "Kitchen", "volume"])
    assert (outcome.status, outcome.err) == (
        EXIT_USAGE,
        "sonosctl: usage: sonosctl <room> volume N|+N|-N\n",
    )
    assert run_ctl(["Kitchen", "mute", "perhaps"]).status == EXIT_USAGE


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["play"], ("play", {})),
        (["volume", "30"], ("volume", {"volume": 30})),
        (["volume", "+5"], ("volume", {"delta": 5})),
        (["group-volume", "-3"], ("group_volume", {"delta": -3})),
        (["mute"], ("mute", {})),
        (["mute", "on"], ("mute", {"mute": True})),
        (["bass", "-2"], ("bass", {"bass": -2})),
        (["night-mode", "off"], ("night_mode", {"night_mode": False})),
        (["seek", "1:30"], ("seek", {"position": "1:30"})),
        (["seek", "track", "4"], ("seek", {"track": 4})),
        (["shuffle", "on"], ("play_mode", {"shuffle": True})),
        (["repeat", "One"], ("play_mode", {"repeat": "one"})),
        (["join", "Living", "Room"], ("join", {"coordinator": "Living Room"})),
        (
            ["play-uri", "http://x/a.mp3", "My", "Song"],
            ("play_uri", {"uri": "http://x/a.mp3", "title": "My Song"}),
        ),
        (["play-favorite", "Jazz", "FM"], ("play_favorite", {"name": "Jazz FM"})),
        (["queue"], ("queue", {"action": "list"})),
        (["queue", "add", "http://x/a.mp3"], ("queue", {"action": "add", "uri": "http://x/a.mp3"})),
        (["sleep", "20"], ("sleep_timer", {"minutes": 20})),
        (["sleep", "off"], ("sleep_timer", {"action": "cancel"})),
        (["snapshot", "evening"], ("snapshot", {"name": "evening"})),
        (
            ["announce", "http://x/d.mp3", "40"],
            ("announce", {"uri": "http://x/d.mp3", "volume": 40}),
        ),
        (
            ["play_mode", "shuffle=true", "repeat=one"],
            ("play_mode", {"shuffle": True, "repeat": "one"}),
        ),
        (["say", "dinner", "is", "ready"], ("say", {"text": "dinner is ready", "target": "group"})),
        (["say-all", "hi"], ("say", {"text": "hi", "target": "all"})),
        (["say-room", "hi"], ("say", {"text": "hi", "target": "room"})),
        (["favorites"], ("favorites", {})),
        (["playlists"], ("playlists", {"action": "list"})),
        (
            ["playlist", "play", "Morning", "Mix"],
            ("playlists", {"action": "play", "name": "Morning Mix"}),
        ),
        (["playlist", "save", "Mine"], ("playlists", {"action": "save", "title": "Mine"})),
        (["library"], ("library", {"action": "browse", "category": "artists"})),
        (["library", "albums"], ("library", {"action": "browse", "category": "albums"})),
        (
            ["search", "tracks", "low", "tide"],
            ("library", {"action": "search", "category": "tracks", "term": "low tide"}),
        ),
        (["share-link", "https://x/y"], ("share_link", {"url": "https://x/y"})),
        (["share", "https://x/y", "queue"], ("share_link", {"url": "https://x/y", "play": False})),
        (["queue", "remove", "2", "3"], ("queue", {"action": "remove", "track": 2, "count": 3})),
        (["queue", "move", "4", "1"], ("queue", {"action": "move", "track": 4, "to": 1})),
        (["alarms"], ("alarms", {"action": "list"})),
        (
            ["alarm", "add", "7:00", "WEEKDAYS"],
            ("alarms", {"action": "create", "time": "7:00", "recurrence": "WEEKDAYS"}),
        ),
        (["alarm", "off", "3"], ("alarms", {"action": "disable", "id": 3})),
        (["alarm", "skip", "3"], ("alarms", {"action": "skip", "id": 3})),
        (["alarm", "on", "3"], ("alarms", {"action": "enable", "id": 3})),
        (["alarm", "delete", "3"], ("alarms", {"action": "delete", "id": 3})),
        (["queue", "clear"], ("queue", {"action": "clear"})),
        (["queue", "play", "3"], ("queue", {"action": "play", "track": 3})),
        (["sleep"], ("sleep_timer", {"action": "get"})),
        (["playlist", "delete", "Mine"], ("playlists", {"action": "delete", "name": "Mine"})),
        (["line-in"], ("line_in", {})),
        (["line-in", "Living", "Room"], ("line_in", {"source": "Living Room"})),
        (["tv"], ("tv", {})),
        (["speech-enhancement", "on"], ("speech_enhancement", {"speech_enhancement": True})),
        (["sub", "off"], ("sub", {"enabled": False})),
        (["sub", "-4"], ("sub", {"gain": -4})),
        (["surround", "3"], ("surround", {"tv_level": 3})),
        # The rest of docs/control.md's shorthand table.
        *(([word], (word, {})) for word in ("toggle", "stop", "next", "previous")),
        (["leave"], ("leave", {})),
        (["party"], ("party", {})),
        (["volume", "-5"], ("volume", {"delta": -5})),
        (["group-volume", "30"], ("group_volume", {"volume": 30})),
        (["group-volume", "+4"], ("group_volume", {"delta": 4})),
        (["mute", "off"], ("mute", {"mute": False})),
        (["group-mute"], ("group_mute", {})),
        (["group-mute", "on"], ("group_mute", {"mute": True})),
        (["treble", "3"], ("treble", {"treble": 3})),
        (["loudness", "on"], ("loudness", {"loudness": True})),
        (["dialog-mode", "on"], ("dialog_mode", {"dialog_mode": True})),
        (["seek", "90"], ("seek", {"position": "90"})),
        (["crossfade", "off"], ("play_mode", {"crossfade": False})),
        (["restore"], ("restore", {})),
        (["restore", "evening"], ("restore", {"name": "evening"})),
        (
            ["playlist", "add", "Morning", "Mix"],
            ("playlists", {"action": "add", "name": "Morning Mix"}),
        ),
        (
            ["playlist", "tracks", "Morning", "Mix"],
            ("playlists", {"action": "tracks", "name": "Morning Mix"}),
        ),
        (
            ["share-link", "https://x/y", "queue"],
            ("share_link", {"url": "https://x/y", "play": False}),
        ),
        (["sub", "on"], ("sub", {"enabled": True})),
        (["surround", "off"], ("surround", {"enabled": False})),
    ],
)
def test_command_words(words: list[str], expected: tuple[str, dict[str, Any]]) -> None:
    """Command-line shorthands become the API's command and arguments."""
    assert command_request(words) == expected


def test_every_api_command_is_a_command_word() -> None:
    """sonosctl (standard library only) knows the daemon's command names, so that a command
    typed where the room belongs is recognised: its list follows the controller's."""
    from sonosd.control.commandargs import COMMANDS

    for name in COMMANDS:
        assert name in ctl._COMMAND_WORDS, name
        assert name.replace("_", "-") in ctl._COMMAND_WORDS, name
    assert ctl._order_hint(["Kitchen", "volume", "30"]) == ""
    assert ctl._order_hint(["tv", "volume", "30"]) == ""


def test_command_words_rejected() -> None:
    """A generic command argument without ``=`` and wrong shorthands are usage errors."""
    for words in (
        ["play_mode", "shuffle"],
        ["say"],
        ["playlist", "shuffle", "x"],
        ["alarm", "snooze", "3"],
        ["queue", "move", "1"],
        ["search", "tracks"],
    ):
        with pytest.raises(CtlError) as caught:
            command_request(words)
        assert caught.value.status == EXIT_USAGE, words


def test_listings() -> None:
    """Favourites, playlists, alarms and library items are printed one per line."""
    assert format_result(
        "Kitchen", "favorites", {"favorites": [{"title": "A", "kind": "album"}]}
    ) == ("Kitchen: 1 favorites\n  A (album)")
    playlists = {"playlists": [{"id": "SQ:1", "title": "Mix", "tracks": 4}]}
    assert (
        format_result("K", "playlists", playlists) == "K: 1 Sonos playlists\n  SQ:1 Mix (4 tracks)"
    )
    alarm = {
        "id": 3,
        "time": "07:00:00",
        "recurrence": "DAILY",
        "enabled": False,
        "room": {"name": "K"},
    }
    assert format_result("K", "alarms", {"version": "v", "alarms": [alarm]}) == (
        "K: 1 alarms\n  3. 07:00 DAILY in K, off"
    )
    items = {"total": 1, "items": [{"id": "A:ALBUM/X", "title": "X", "kind": "album"}]}
    assert format_result("K", "library", items) == "K: 1 items\n  A:ALBUM/X  X (album)"


def test_alarm_results_without_the_usual_fields() -> None:
    """An alarm result still reads as a line when the action is unknown, the time has
    seconds, the room is missing or the skipped moment is no ISO date."""
    alarm = {"id": 5, "time": "07:00:30", "recurrence": "ON_3", "days": [], "enabled": True}
    assert format_result("K", "alarms", {"alarm": alarm}) == "K: alarm 5: 07:00:30 ON_3 in ?, on"
    skipped = {"alarm": alarm, "skipped": "soon", "resumes": None}
    assert format_result("K", "alarms", skipped, {"action": "skip"}) == (
        "K: alarm 5 skipped: 07:00:30 ON_3 in ?, on; skips soon, stays off (it rings once)"
    )


def test_parse_sse() -> None:
    """SSE blocks give their event, data and id; comments and retry lines are skipped."""
    lines = iter(
        [
            "retry: 2000\n",
            "\n",
            ": ping\n",
            "\n",
            "id: 4\n",
            "event: event\n",
            'data: {"a":1}\n',
            "\n",
        ]
    )
    assert list(parse_sse(lines)) == [("event", '{"a":1}', "4")]


def test_format_event() -> None:
    """An event line shows time, type, room, service and compact values."""
    message = {
        "id": 3,
        "time": "2026-11-24T17:30:00.123Z",
        "type": "event",
        "speaker": {"uid": "RINCON_A", "name": "Kitchen", "host": "h"},
        "service": "AVTransport",
        "variables": {
            "transport_state": "PLAYING",
            "current_track_meta_data": {"title": "T", "artist": "A"},
        },
    }
    assert (
        format_event(message) == "17:30:00.123 event Kitchen AVTransport transport_state=PLAYING "
        "current_track_meta_data=T - A"
    )
    offline = {
        "time": "2026-11-24T17:30:01.000Z",
        "type": "speaker.offline",
        "speaker": {"name": "Den"},
        "reason": "gone",
    }
    assert format_event(offline) == "17:30:01.000 speaker.offline Den reason=gone"


def test_format_status_without_topology() -> None:
    """Without a topology every speaker is its own line, offline, asleep and UPnP-off ones
    marked."""
    snapshot = {
        "speakers": [
            {
                "uid": "A",
                "name": "Den",
                "availability": {"status": "offline", "reason": "no answer"},
                "services": {},
            }
        ],
        "topology": None,
    }
    assert format_status(snapshot) == "Den  [?]\n  Den  OFFLINE (no answer)"
    assert format_status({"speakers": []}) == "no speakers known"
    speaker = snapshot["speakers"][0]  # type: ignore[index]
    speaker["availability"] = {"status": "asleep", "reason": "sleeping"}
    assert format_status(snapshot) == "Den  [?]\n  Den  ASLEEP (sleeping)"
    speaker["availability"] = {"status": "upnp_disabled", "reason": "switch it on in the app"}
    assert format_status(snapshot) == "Den  [?]\n  Den  UPNP OFF"


def test_format_result() -> None:
    """Results read as one line; queues list their tracks."""
    assert format_result("Den", "play", {"coordinator": "A"}) == "Den: play done"
    assert format_result("Den", "mute", {"mute": True}) == "Den: mute on"
    queue = {"total": 1, "items": [{"position": 1, "title": "T", "artist": "A"}]}
    assert format_result("Den", "queue", queue) == "Den: queue, 1 tracks\n  1. T - A"


def serve_diagnostics(body: dict[str, Any]) -> contextlib.AbstractContextManager[str]:
    """A server answering ``GET /api/v1/diagnostics`` with ``body`` (a daemon stand-in),
    while the block runs: its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(200 if self.path == "/api/v1/diagnostics" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return serving(Handler)


@pytest.mark.parametrize(
    ("status", "code", "exit_status"),
    [
        (502, "speaker_error", EXIT_SPEAKER),
        (503, "offline", EXIT_SPEAKER),
        (503, "asleep", EXIT_SPEAKER),
        (503, "upnp_disabled", EXIT_SPEAKER),
        (504, "timeout", EXIT_SPEAKER),
        (404, "unknown_speaker", EXIT_REFUSED),
        (400, "bad_argument", EXIT_REFUSED),
        (404, "unknown_command", EXIT_REFUSED),
        (503, "busy", EXIT_REFUSED),
        (401, "unauthorized", EXIT_UNAUTHORISED),
        (403, "forbidden", EXIT_UNAUTHORISED),
    ],
)
def test_exit_status_of_each_error(status: int, code: str, exit_status: int) -> None:
    """docs/control.md's exit statuses: 5 when the speaker failed (refused, offline, asleep,
    UPnP off, no answer), 4 not authorised, 1 any other refusal; the line is the API's
    ``code: message``."""
    body = json.dumps({"error": {"code": code, "message": "why"}}).encode()
    error = urllib.error.HTTPError("http://127.0.0.1/", status, "x", Message(), io.BytesIO(body))
    failure = _http_error(error)
    assert failure.status == exit_status
    assert f"{code}: why" in str(failure)


def test_doctor_reports_problems_and_exits_1() -> None:
    """``sonosctl doctor`` prints each finding as a sentence and exits 1 on a problem; with
    --json it prints the findings."""
    from tests.diagnostics_shapes import diagnostics, speaker

    body = diagnostics(speaker("Kitchen", availability="offline", reason="timeout"))
    with serve_diagnostics(body) as url:
        outcome = run_ctl(["--url", url, "doctor"])
        assert outcome.status == EXIT_REFUSED
        lines = outcome.out.splitlines()
        assert lines[0].startswith("problem: Kitchen (192.168.1.20) is offline (timeout)")
        assert all(line.startswith(("problem: ", "note: ", "ok: ")) for line in lines[:-1])
        assert lines[-1] == "1 problem(s) found."
        outcome = run_ctl(["--url", url, "--json", "doctor"])
        [finding] = json.loads(outcome.out)
        assert finding["severity"] == "problem"
        assert finding["subject"] == "Kitchen (192.168.1.20)"


def test_doctor_all_well_exits_0() -> None:
    """Nothing wrong: one ok line per speaker and exit 0."""
    from tests.diagnostics_shapes import diagnostics, speaker

    with serve_diagnostics(diagnostics(speaker("Kitchen"))) as url:
        outcome = run_ctl(["--url", url, "doctor"])
    assert (outcome.status, outcome.err) == (EXIT_OK, "")
    *lines, last = outcome.out.splitlines()
    assert lines and all(line.startswith("ok: ") for line in lines), lines
    assert last == "All is well: every followed speaker delivers its events."


def test_doctor_cannot_reach_the_daemon() -> None:
    """A daemon that is not running: exit 3, as for any command."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert run_ctl(["--url", f"http://127.0.0.1:{port}", "doctor"]).status == EXIT_UNREACHABLE
