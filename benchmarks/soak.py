"""The chaos soak: a real daemon, a changing household and a fault every few seconds.

    python -m benchmarks.soak [--duration 900] [--fault-interval 20] [--report docs/soak.md]

``make soak`` runs it for 15 minutes and rewrites ``docs/soak.md``; ``make test`` runs it for
30 seconds, a fault every 2.5 s (``tests/test_soak.py``), and writes its report elsewhere.
Everything is real and on loopback, each part in its own process where it would be in
production:

- ``twistd sonos-sim``: 5 speakers, the activity generator (track changes, volume, play/pause,
  mute), faults through its admin API;
- ``twistd sonosd``: tokens on, a webhook target, an MQTT broker and the local stream
  configured, short timers (renewals every ~30 s, a consistency check every 5 s);
- ``mosquitto``, persistent, so that a restart keeps the observer's session;
- this process: the webhook receiver, the observers (two WebSocket clients, one SSE client,
  a stream client, an MQTT subscriber) and the fault injector.

Every ``--fault-interval`` seconds one fault, drawn at random: a speaker reboot; an outage
(refused, hanging, or vanished); an address change; dropped, duplicated or reordered NOTIFYs;
a slow client (it stops reading during a burst and is disconnected) or a vanishing one (its
connection dies without a close); a webhook target or an MQTT broker restart. After each
fault a probe change is made on the speaker concerned and the time until the observers see
it is the fault's recovery time.

At the end (activity stopped, faults cleared, a settle period) the soak asserts that:

1. every observer saw contiguous ids: a WebSocket or SSE client across its reconnections
   (resuming with its last id), the stream within each connection, the webhook receiver and
   the MQTT subscriber overall, where MQTT may only miss the ranges it reported on
   ``bridge/gap``; duplicates are allowed (retries), gaps are not; the stable clients, the
   webhook receiver and MQTT all reach the last id;
2. every loss on the speakers' side was reported: each dropped NOTIFY by an ``events.gap``,
   each outage or reboot by a ``subscription.lost`` (or ``events.gap``) of that speaker;
3. the daemon's final state equals the simulator's for every speaker (volume, mute, transport
   state, play mode, track, URI; a speaker missing from the daemon's snapshot differs);
4. resident memory and open files are flat after the warm-up, and nothing was logged at
   critical level in the daemon's log (which must say "sonosd running").

It prints the report and exits 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import attrs
import paho.mqtt.client as paho
import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from sonosd.sim.addresses import free_loopback_base, port_free

SPEAKERS = 5
READ_TOKEN = "soak-read-token-0123456789"
CONTROL_TOKEN = "soak-control-token-0123456789"
WEBHOOK_SECRET = "soak-webhook-secret"
PREFIX = "sonos-soak"
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

#: Fault kinds and their weights.
FAULTS: dict[str, float] = {
    "reboot": 2.0,
    "outage-refuse": 1.0,
    "outage-hang": 1.0,
    "outage-vanish": 1.0,
    "address": 1.0,
    "drop": 2.0,
    "duplicate": 1.0,
    "reorder": 1.0,
    "slow-client": 1.0,
    "vanishing-client": 1.0,
    "webhook-restart": 1.0,
    "broker-restart": 1.0,
}

#: Seconds any one recovery may take before the soak fails.
RECOVERY_LIMIT = 90.0

#: The daemon's replay ring (messages); the warm-up burst fills it.
REPLAY = 2000

#: Bursts (warm-up, slow clients) change GroupRenderingControl: speakers moderate LastChange
#: (one event per 0.2 s), plain-variable services send one NOTIFY per change.
BURST_SERVICE = "GroupRenderingControl"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def twistd() -> str:
    path = os.path.join(os.path.dirname(sys.executable), "twistd")
    return path if os.path.exists(path) else shutil.which("twistd") or "twistd"


async def sleep(reactor: Any, seconds: float) -> None:
    await task.deferLater(reactor, seconds)


async def wait_for(
    reactor: Any, check: Callable[[], object], timeout: float, step: float = 0.1
) -> bool:
    """Poll ``check()`` until true; ``False`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await sleep(reactor, step)
    return True


# -- observers ---------------------------------------------------------------------------------


@attrs.define
class Tracker:
    """The ids one observer received, in order: gaps, duplicates, resets."""

    name: str
    expected: int | None = None
    received: int = 0
    duplicates: int = 0
    resets: int = 0
    connections: int = 0
    gaps: list[tuple[int, int]] = attrs.Factory(list)
    #: Every (uid, master volume) received, in order (snapshots included).
    volumes: list[tuple[str, int]] = attrs.Factory(list)
    #: (monotonic time, uid) of every events.gap and subscription.lost received.
    losses: list[tuple[float, str]] = attrs.Factory(list)

    @property
    def last_id(self) -> int:
        return -1 if self.expected is None else self.expected - 1

    def snapshot(self, body: dict[str, Any], reset: bool) -> None:
        """A snapshot: where the ids start (again, after a reset)."""
        if reset or self.expected is None:
            self.expected = int(body["last_id"]) + 1
        for speaker in body.get("speakers", []):
            rc = speaker.get("services", {}).get("RenderingControl", {})
            volume = (rc.get("variables", {}).get("volume") or {}).get("Master")
            if isinstance(volume, int):
                self.volumes.append((speaker["uid"], volume))

    def message(self, body: dict[str, Any]) -> None:
        ident = body.get("id")
        if not isinstance(ident, int):
            return
        self.received += 1
        if self.expected is None:
            self.expected = ident
        if ident < self.expected:
            self.duplicates += 1
            return
        if ident > self.expected:
            self.gaps.append((self.expected, ident))
        self.expected = ident + 1
        if body.get("type") in ("events.gap", "subscription.lost"):
            self.losses.append((time.monotonic(), body["speaker"]["uid"]))
        if body.get("type") == "event" and body.get("service") == "RenderingControl":
            volume = ((body.get("variables") or {}).get("volume") or {}).get("Master")
            if isinstance(volume, int):
                self.volumes.append((body["speaker"]["uid"], volume))


class WsObserver(WebSocketClientProtocol):
    """A WebSocket client feeding a Tracker; ``paused`` stops reading (a slow client)."""

    tracker: Tracker
    opened: Deferred[Any]
    closed: Deferred[Any]
    _reset = False

    def onOpen(self) -> None:
        self.tracker.connections += 1
        self.opened.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        body = json.loads(payload)
        if body.get("type") == "reset":
            self.tracker.resets += 1
            self._reset = True
        elif body.get("type") == "snapshot":
            self.tracker.snapshot(body, reset=self._reset)
            self._reset = False
        else:
            self.tracker.message(body)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.opened.called:
            self.opened.errback(Failure(ConnectionError(f"closed {code} {reason}")))
        if not self.closed.called:
            self.closed.callback((code, reason))


class _Given(ClientFactory):
    """A factory that hands out one protocol already built (for an adopted socket)."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol_instance = protocol

    def buildProtocol(self, addr: Any) -> Protocol:
        return self.protocol_instance


class SseObserver(Protocol):
    """An HTTP/1.0 EventSource client feeding a Tracker."""

    def __init__(self, tracker: Tracker, request: bytes) -> None:
        self.tracker = tracker
        self.request = request
        self.buffer = b""
        self.head_done = False
        self.closed: Deferred[None] = Deferred()
        self._reset = False

    def connectionMade(self) -> None:
        self.tracker.connections += 1
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if not self.head_done:
            _, mark, rest = self.buffer.partition(b"\r\n\r\n")
            if not mark:
                return
            self.head_done = True
            self.buffer = rest
        while b"\n\n" in self.buffer:
            block, self.buffer = self.buffer.split(b"\n\n", 1)
            for line in block.split(b"\n"):
                if line.startswith(b"data: "):
                    body = json.loads(line[6:])
                    if body.get("type") == "reset":
                        self.tracker.resets += 1
                        self._reset = True
                    elif body.get("type") == "snapshot":
                        self.tracker.snapshot(body, reset=self._reset)
                        self._reset = False
                    else:
                        self.tracker.message(body)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)


class StreamObserver(LineOnlyReceiver):
    """A local stream client: contiguous ids within its connection."""

    delimiter = b"\n"
    MAX_LENGTH = 10_000_000

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.tracker.connections += 1

    def lineReceived(self, line: bytes) -> None:
        body = json.loads(line)
        if body.get("type") == "snapshot":
            # Each connection starts again at its snapshot.
            self.tracker.snapshot(body, reset=True)
        else:
            self.tracker.message(body)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if not self.closed.called:
            self.closed.callback(None)


class WebhookReceiver(Resource):
    """Records the ids POSTed to it (answering 200)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[int] = set()
        self.requests = 0

    def render_POST(self, request: Request) -> bytes:
        self.requests += 1
        assert request.content is not None
        body = json.loads(request.content.read())
        self.ids.add(int(body["id"]))
        return b"{}"


class MqttObserver:
    """A persistent-session MQTT subscriber (paho's own thread): ids and reported gaps."""

    def __init__(self, host: str, port: int) -> None:
        self.lock = threading.Lock()
        self.ids: set[int] = set()
        self.gap_ranges: list[tuple[int, int]] = []
        self.messages = 0
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id="soak-observer",
            clean_session=False,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect_async(host, port, keepalive=10)
        self.client.loop_start()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        client.subscribe(f"{PREFIX}/#", qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.retain or "/cmd/" in msg.topic:
            return
        try:
            body = json.loads(msg.payload)
        except ValueError:
            return
        with self.lock:
            if msg.topic == f"{PREFIX}/bridge/gap":
                self.gap_ranges.append((int(body["first_id"]), int(body["last_id"])))
            elif "/event/" in msg.topic and isinstance(body.get("id"), int):
                self.ids.add(body["id"])
                self.messages += 1

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# -- the processes -----------------------------------------------------------------------------


class Broker:
    """mosquitto with persistence, so that a restart keeps the observer's queued messages."""

    def __init__(self, directory: str) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.directory = os.path.join(directory, "mosquitto")
        os.makedirs(self.directory, mode=0o777, exist_ok=True)
        os.chmod(self.directory, 0o777)
        self.config = os.path.join(self.directory, "mosquitto.conf")
        with open(self.config, "w") as handle:
            handle.write(
                "\n".join(
                    [
                        f"listener {self.port} {self.host}",
                        "allow_anonymous true",
                        "persistence true",
                        f"persistence_location {self.directory}/",
                        "autosave_interval 1",
                        "max_queued_messages 0",
                        "queue_qos0_messages true",
                        "log_dest none",
                        "",
                    ]
                )
            )
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", self.config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def persisting(self) -> bool:
        """Whether mosquitto has written its database (``autosave_interval`` 1 s): without it,
        a restart loses the observer's session and whatever was published before it
        reconnects, the daemon's ``bridge/gap`` reports included."""
        return os.path.exists(os.path.join(self.directory, "mosquitto.db"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@attrs.define
class Sample:
    at: float
    rss_mb: float
    fds: int


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@attrs.define
class FaultRecord:
    at: float
    kind: str
    target: str
    detail: str
    recovery: float | None = None
    ok: bool = True
    lost_reported: bool | None = None


class Soak:
    """Runs everything; see the module docstring."""

    def __init__(self, reactor: Any, args: argparse.Namespace) -> None:
        self.reactor = reactor
        self.args = args
        self.rng = random.Random(args.seed)
        self.directory = tempfile.mkdtemp(prefix="sonosd-soak-")
        # mosquitto, started as root, runs as the user mosquitto: it must be able to pass
        # through this directory (mkdtemp makes it 0700) to keep its database in its own
        # subdirectory, or a restart forgets the observer's session (Broker.persisting).
        os.chmod(self.directory, 0o711)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.base = free_loopback_base(count=SPEAKERS)
        self.prefix = self.base.rsplit(".", 1)[0]
        self.next_address = 100
        self.admin_port = free_port()
        self.api_port = free_port()
        self.webhook_port = free_port()
        self.stream_path = os.path.join(self.directory, "events.sock")
        self.broker = Broker(self.directory)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.agent = Agent(reactor, pool=self.pool)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_log = os.path.join(self.directory, "daemon.log")
        self.webhook = WebhookReceiver()
        self.webhook_port_listening: Any = None
        self.trackers: dict[str, Tracker] = {}
        self.stream_trackers: list[Tracker] = []
        self.mqtt: MqttObserver | None = None
        self.samples: list[Sample] = []
        self.faults: list[FaultRecord] = []
        self.failures: list[str] = []
        self.started = 0.0
        self.warm_at = 0.0
        self.uids: list[str] = []
        self.ws_clients: dict[str, WsObserver] = {}

    # -- set-up --------------------------------------------------------------------------

    def spawn(self, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        with open(os.path.join(self.directory, log), "wb") as output:
            process = subprocess.Popen(
                argv, cwd=self.directory, stdout=output, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    async def admin(self, method: str, path: str, body: Any = None) -> Any:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        data = None if body is None else json.dumps(body).encode()
        response = await treq.request(method, url, data=data, agent=self.agent, timeout=15)
        text = await response.content()
        if response.code >= 400:
            raise RuntimeError(f"admin {method} {path}: {response.code} {text[:200]!r}")
        return json.loads(text) if text else None

    async def api(self, path: str) -> Any:
        response = await treq.get(
            f"http://127.0.0.1:{self.api_port}{path}",
            headers=Headers({"Authorization": [f"Bearer {READ_TOKEN}"]}),
            agent=self.agent,
            timeout=15,
        )
        return json.loads(await response.content())

    def daemon_config(self) -> dict[str, Any]:
        return {
            "listener": {"interface": "127.0.0.1", "port": 0},
            "api": {
                "listen": f"tcp:{self.api_port}:interface=127.0.0.1",
                "require_auth": True,
                "tokens": [
                    {"name": "soak-read", "token": READ_TOKEN, "scopes": ["read"]},
                    {"name": "soak-control", "token": CONTROL_TOKEN, "scopes": ["read", "control"]},
                ],
                "client_buffer": 200,
                "heartbeat": 30.0,
                # Small enough to be full after the warm-up burst: memory is then measured
                # with every bounded buffer at its bound.
                "replay_buffer": REPLAY,
            },
            "devices": [{"host": f"{self.prefix}.{2 + i}"} for i in range(SPEAKERS)],
            "services": [
                "AVTransport",
                "RenderingControl",
                "GroupRenderingControl",
                "ZoneGroupTopology",
                "Queue",
            ],
            "subscription": {
                "timeout": 60,
                "request_timeout": 3.0,
                "backoff_initial": 0.3,
                "backoff_max": 3.0,
                "no_event_grace": 5.0,
                "poll_interval": 2.0,
                "availability_interval": 1.0,
                "silence_timeout": 20.0,
                "shutdown_timeout": 3.0,
                "check_interval": 5.0,
            },
            "soco": {"threads": 6, "call_timeout": 6.0},
            "sinks": {
                "webhooks": [
                    {
                        "url": f"http://127.0.0.1:{self.webhook_port}/hook",
                        "secret": WEBHOOK_SECRET,
                        "retries": 10,
                        "timeout": 5.0,
                        "queue": 10_000,
                    }
                ],
                "mqtt": {
                    "host": self.broker.host,
                    "port": self.broker.port,
                    "prefix": PREFIX,
                    "client_id": "sonosd-soak",
                },
                "stream": f"unix:{self.stream_path}",
            },
            "log": {"level": "info"},
        }

    async def start(self) -> None:
        self.broker.start()
        await wait_for(self.reactor, self.broker.listening, 20)
        self.spawn(
            [
                twistd(),
                "-n",
                "--pidfile=",
                "sonos-sim",
                "--speakers",
                str(SPEAKERS),
                "--base-address",
                self.base,
                "--admin",
                f"tcp:{self.admin_port}:interface=127.0.0.1",
                "--activity",
                str(self.args.activity),
                "--seed",
                str(self.args.seed),
            ],
            "sim.log",
        )

        async def admin_up() -> bool:
            try:
                await self.admin("GET", "/speakers")
            except Exception:
                return False
            return True

        for _ in range(200):
            if await admin_up():
                break
            await sleep(self.reactor, 0.1)
        speakers = await self.admin("GET", "/speakers")
        self.uids = [s["uid"] for s in speakers]
        self.listen_webhook()
        config = os.path.join(self.directory, "soak.yaml")
        with open(config, "w") as handle:
            json.dump(self.daemon_config(), handle, indent=2)
        self.daemon = self.spawn(
            [twistd(), "-n", "--pidfile=", f"--logfile={self.daemon_log}", "sonosd", "-c", config],
            "daemon.out",
        )

        async def evented() -> bool:
            try:
                snapshot = await self.api("/api/v1/snapshot")
            except Exception:
                return False
            return (
                all(
                    s.get("availability", {}).get("status") == "online"
                    and "RenderingControl" in s.get("services", {})
                    for s in snapshot.get("speakers", [])
                )
                and len(snapshot.get("speakers", [])) == SPEAKERS
            )

        for _ in range(600):
            if await evented():
                break
            await sleep(self.reactor, 0.1)
        else:
            raise RuntimeError("the daemon did not follow every speaker within 60 s")
        self.mqtt = MqttObserver(self.broker.host, self.broker.port)
        await wait_for(self.reactor, self.broker.persisting, 20)
        await self.connect_ws("ws-stable")
        await self.connect_sse("sse-stable")
        await self.connect_stream()
        self.started = time.monotonic()
        # Warm-up: enough messages to fill the replay ring (and every other bounded buffer).
        for speaker in range(SPEAKERS):
            await self.admin(
                "POST",
                f"/speakers/{speaker}/burst",
                {"count": REPLAY // SPEAKERS + 100, "service": BURST_SERVICE},
            )
        await wait_for(self.reactor, lambda: self.trackers["ws-stable"].received > REPLAY + 200, 60)

    def listen_webhook(self) -> None:
        self.webhook_port_listening = self.reactor.listenTCP(
            self.webhook_port, Site(self.webhook), interface="127.0.0.1"
        )

    # -- observers -----------------------------------------------------------------------

    async def connect_ws(self, name: str, receive_buffer: int | None = None) -> WsObserver:
        """A WebSocket observer (resuming from its tracker's last id); ``receive_buffer``:
        its socket's SO_RCVBUF, set before connecting (a slow client's tiny window)."""
        tracker = self.trackers.setdefault(name, Tracker(name))
        query = f"?last_id={tracker.last_id}" if tracker.expected is not None else ""
        url = f"ws://127.0.0.1:{self.api_port}/api/v1/ws{query}"
        factory = WebSocketClientFactory(
            url, headers={"Authorization": f"Bearer {READ_TOKEN}"}, reactor=self.reactor
        )
        factory.protocol = WsObserver
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, WsObserver)
        protocol.tracker = tracker
        protocol.opened = Deferred()
        protocol.closed = Deferred()
        if receive_buffer is None:
            endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.api_port)
            await connectProtocol(endpoint, protocol)
        else:
            raw = socket.socket()
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
            raw.connect(("127.0.0.1", self.api_port))
            raw.setblocking(False)
            self.reactor.adoptStreamConnection(raw.fileno(), socket.AF_INET, _Given(protocol))
            raw.close()
        await protocol.opened
        self.ws_clients[name] = protocol
        if name.endswith("-stable"):
            protocol.closed.addCallback(lambda _: self._reconnect_ws(name))
        return protocol

    def _reconnect_ws(self, name: str) -> None:
        if not self.stopping:
            Deferred.fromCoroutine(self.connect_ws(name)).addErrback(
                lambda f: self.reactor.callLater(1, self._reconnect_ws, name)
            )

    stopping = False

    async def connect_sse(self, name: str) -> SseObserver:
        tracker = self.trackers.setdefault(name, Tracker(name))
        lines = [
            "GET /api/v1/events HTTP/1.0",
            "Host: 127.0.0.1",
            f"Authorization: Bearer {READ_TOKEN}",
        ]
        if tracker.expected is not None:
            lines.append(f"Last-Event-ID: {tracker.last_id}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        protocol = SseObserver(tracker, request)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.api_port)
        await connectProtocol(endpoint, protocol)
        if name.endswith("-stable"):
            protocol.closed.addCallback(lambda _: self._reconnect_sse(name))
        self.sse_client = protocol
        return protocol

    def _reconnect_sse(self, name: str) -> None:
        if not self.stopping:
            Deferred.fromCoroutine(self.connect_sse(name)).addErrback(
                lambda f: self.reactor.callLater(1, self._reconnect_sse, name)
            )

    async def connect_stream(self) -> None:
        tracker = Tracker(f"stream-{len(self.stream_trackers) + 1}")
        self.stream_trackers.append(tracker)
        protocol = StreamObserver(tracker)
        await connectProtocol(UNIXClientEndpoint(self.reactor, self.stream_path), protocol)
        self.stream_client = protocol

    # -- sampling ------------------------------------------------------------------------

    def sample(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        with contextlib.suppress(OSError):
            self.samples.append(
                Sample(
                    time.monotonic() - self.started,
                    rss_mb(self.daemon.pid),
                    open_files(self.daemon.pid),
                )
            )

    # -- faults --------------------------------------------------------------------------

    def speaker_index(self) -> int:
        return self.rng.randrange(SPEAKERS)

    async def probe(self, index: int, started: float) -> float | None:
        """Change the speaker's volume; the seconds until the stable WebSocket sees it.

        The activity generator keeps changing volumes too, and a speaker moderates
        RenderingControl's LastChange (one NOTIFY per 0.2 s window, with the latest values):
        a volume move within the window after the probe's replaces the probe's value in the
        NOTIFY, so that no message ever carries it although nothing was lost. What counts is
        a message, received after the probe, with a volume the speaker had from the probe on
        (the probe's, or one the speaker was seen at afterwards).
        """
        state = await self.admin("GET", f"/speakers/{index}")
        uid = state["uid"]
        choices = [v for v in range(5, 96, 3) if v != state["volume"]]
        volume = self.rng.choice(choices)
        tracker = self.trackers["ws-stable"]
        since = len(tracker.volumes)
        await self.admin("PATCH", f"/speakers/{index}/state", {"volume": volume})
        after = {volume}
        deadline = time.monotonic() + RECOVERY_LIMIT
        looks = 0
        while not any(u == uid and v in after for u, v in tracker.volumes[since:]):
            if time.monotonic() > deadline:
                return None
            await sleep(self.reactor, 0.1)
            looks += 1
            if looks % 5 == 0:
                # Where the speaker's volume is now (every 0.5 s, not at every look).
                after.add((await self.admin("GET", f"/speakers/{index}"))["volume"])
        return time.monotonic() - started

    async def fault(self, kind: str) -> FaultRecord:
        at = time.monotonic() - self.started
        index = self.speaker_index()
        record = FaultRecord(at, kind, f"speaker {index}", "")
        restored = time.monotonic()
        if kind == "reboot":
            downtime = self.rng.uniform(1, 4)
            record.detail = f"downtime {downtime:.1f} s"
            await self.admin("POST", f"/speakers/{index}/reboot", {"downtime": downtime})
            await sleep(self.reactor, downtime + 0.5)
            restored = time.monotonic()
        elif kind.startswith("outage-"):
            mode = kind.partition("-")[2]
            body = {"mode": "refuse" if mode == "vanish" else mode, "vanish": mode == "vanish"}
            duration = self.rng.uniform(2, 8)
            record.detail = f"{duration:.1f} s"
            await self.admin("POST", f"/speakers/{index}/offline", body)
            await sleep(self.reactor, duration / 2)
            # A change the speaker cannot send: a loss the daemon must report.
            volume = self.rng.randrange(5, 95)
            await self.admin("PATCH", f"/speakers/{index}/state", {"volume": volume})
            await sleep(self.reactor, duration / 2)
            await self.admin("POST", f"/speakers/{index}/online")
            restored = time.monotonic()
        elif kind == "address":
            address = self.free_address()
            record.detail = f"to {address}"
            await self.admin("POST", f"/speakers/{index}/address", {"address": address})
            restored = time.monotonic()
        elif kind in ("drop", "duplicate", "reorder"):
            count = self.rng.randint(1, 3)
            record.detail = f"{count} NOTIFY(s)"
            await self.admin("PATCH", f"/speakers/{index}/gena/faults", {f"{kind}_next": count})
            # Changes for the fault to act on; the probe below is one more.
            for _ in range(count):
                volume = self.rng.randrange(5, 95)
                await self.admin("PATCH", f"/speakers/{index}/state", {"volume": volume})
            restored = time.monotonic()
        elif kind == "slow-client":
            record.target = "WebSocket client"
            record.detail = await self.slow_client(index)
            restored = time.monotonic()
        elif kind == "vanishing-client":
            record.target = "WebSocket client"
            record.detail = await self.vanishing_client()
            restored = time.monotonic()
        elif kind == "webhook-restart":
            record.target = "webhook target"
            down = self.rng.uniform(1, 6)
            record.detail = f"down {down:.1f} s"
            await self.webhook_port_listening.stopListening()
            await sleep(self.reactor, down)
            self.listen_webhook()
            restored = time.monotonic()
        elif kind == "broker-restart":
            record.target = "MQTT broker"
            down = self.rng.uniform(1, 5)
            record.detail = f"down {down:.1f} s"
            self.broker.stop()
            await sleep(self.reactor, down)
            self.broker.start()
            await wait_for(self.reactor, self.broker.listening, 20)
            self.broker.restarts += 1
            restored = time.monotonic()
        record.recovery = await self.probe(index, restored)
        if record.recovery is None:
            record.ok = False
            self.failures.append(f"{kind} at {at:.0f} s: speaker {index} did not recover")
        return record

    def free_address(self) -> str:
        while True:
            address = f"{self.prefix}.{self.next_address}"
            self.next_address += 1
            if port_free(address, 1400):
                return address

    async def slow_client(self, index: int) -> str:
        """A client that stops reading while a burst goes by: disconnected as too slow, then
        back with its last id."""
        name = f"ws-slow-{len(self.faults)}"
        # A small receive window, so that the daemon's queue for it fills within a burst.
        client = await self.connect_ws(name, receive_buffer=2048)
        await sleep(self.reactor, 0.5)
        transport: Any = client.transport
        before = await self.slow_disconnects()
        transport.pauseProducing()
        # A paused client does not even see its connection close: the daemon's metrics say.
        # The kernel's buffers take a few hundred kilobytes first: bursts from every speaker
        # (each sends one NOTIFY at a time per subscription).
        deadline = time.monotonic() + 60
        bursts = 0
        while time.monotonic() < deadline and await self.slow_disconnects() <= before:
            for speaker in range(SPEAKERS):
                await self.admin(
                    "POST", f"/speakers/{speaker}/burst", {"count": 60, "service": BURST_SERVICE}
                )
            bursts += SPEAKERS * 60
            await sleep(self.reactor, 0.5)
        transport.resumeProducing()
        closed = await wait_for(self.reactor, lambda: client.closed.called, 20)
        code = cast(tuple[int, str], client.closed.result)[0] if client.closed.called else None
        again = await self.connect_ws(name)
        caught_up = await wait_for(
            self.reactor,
            lambda: again.tracker.last_id >= self.trackers["ws-stable"].last_id,
            RECOVERY_LIMIT,
        )
        again.dropConnection(abort=True)
        # 1008 "too slow"; 1006 when the daemon had to abort the connection because the
        # client did not even read that last word in time.
        if not closed or code not in (1006, 1008) or not caught_up:
            self.failures.append(f"slow client: closed={closed} code={code} caught_up={caught_up}")
        return f"closed with {code} after a burst of {bursts}, resumed"

    async def slow_disconnects(self) -> float:
        """The daemon's count of WebSocket clients disconnected for slowness."""
        response = await treq.get(
            f"http://127.0.0.1:{self.api_port}/api/v1/metrics",
            headers=Headers({"Authorization": [f"Bearer {READ_TOKEN}"]}),
            agent=self.agent,
            timeout=15,
        )
        for line in (await response.text()).splitlines():
            if line.startswith('sonosd_api_slow_disconnects_total{channel="websocket"}'):
                return float(line.split()[-1])
        return 0.0

    async def vanishing_client(self) -> str:
        """A client whose connection dies without a close, back a little later."""
        name = f"ws-vanishing-{len(self.faults)}"
        client = await self.connect_ws(name)
        await sleep(self.reactor, self.rng.uniform(0.5, 2))
        client.transport.abortConnection()  # type: ignore[union-attr]
        away = self.rng.uniform(1, 4)
        await sleep(self.reactor, away)
        again = await self.connect_ws(name)
        caught_up = await wait_for(
            self.reactor,
            lambda: again.tracker.last_id >= self.trackers["ws-stable"].last_id,
            RECOVERY_LIMIT,
        )
        again.dropConnection(abort=True)
        if not caught_up:
            self.failures.append(f"vanishing client {name} did not catch up")
        return f"gone {away:.1f} s, resumed"

    # -- the run -------------------------------------------------------------------------

    async def run(self) -> int:
        try:
            await self.start()
            sampler = task.LoopingCall(self.sample)
            sampler.clock = self.reactor
            sampler.start(2.0)
            warm = min(60.0, self.args.duration / 4)
            self.warm_at = warm
            end = self.started + self.args.duration
            kinds = self.args.faults or list(FAULTS)
            weights = [FAULTS[kind] for kind in kinds]
            next_fault = time.monotonic() + min(self.args.fault_interval, warm)
            while time.monotonic() < end:
                if time.monotonic() >= next_fault:
                    kind = self.rng.choices(kinds, weights)[0]
                    self.faults.append(await self.fault(kind))
                    next_fault = max(next_fault + self.args.fault_interval, time.monotonic() + 1.0)
                else:
                    await sleep(self.reactor, 0.2)
            await self.settle()
            sampler.stop()
            self.verify()
        except Exception as error:
            self.failures.append(f"the soak itself failed: {error!r}")
            import traceback

            traceback.print_exc()
        finally:
            await self.shutdown()
        report = self.report()
        print(report)
        if self.args.report:
            with open(self.args.report, "w") as handle:
                handle.write(report)
        return 1 if self.failures else 0

    async def settle(self) -> None:
        """Stop the activity and the faults; wait until the daemon agrees with the speakers."""
        await self.admin("PATCH", "/activity", {"rate": 0})
        for index in range(SPEAKERS):
            await self.admin("DELETE", f"/speakers/{index}/gena/faults")
        self.settle_started = time.monotonic()
        self.mismatches: list[str] = []

        async def agreed() -> bool:
            self.mismatches = await self.compare()
            return not self.mismatches

        deadline = time.monotonic() + self.args.settle
        while not await agreed():
            if time.monotonic() > deadline:
                self.failures.extend(f"final state: {m}" for m in self.mismatches)
                break
            await sleep(self.reactor, 1.0)
        self.settle_time = time.monotonic() - self.settle_started
        snapshot = await self.api("/api/v1/snapshot")
        self.final_id = int(snapshot["last_id"])
        # Every observer catches up with the last message.
        await wait_for(
            self.reactor,
            lambda: (
                all(t.last_id >= self.final_id for t in self.observed_trackers())
                and self.mqtt_covers(self.final_id)
                and self.webhook_covers(self.final_id)
            ),
            60,
        )
        assert self.daemon is not None
        pid = self.daemon.pid
        self.final_sample = Sample(time.monotonic() - self.started, rss_mb(pid), open_files(pid))

    def observed_trackers(self) -> list[Tracker]:
        return [self.trackers["ws-stable"], self.trackers["sse-stable"], self.stream_trackers[-1]]

    def mqtt_covers(self, last: int) -> bool:
        assert self.mqtt is not None
        with self.mqtt.lock:
            return bool(self.mqtt.ids) and max(self.mqtt.ids) >= last

    def webhook_covers(self, last: int) -> bool:
        return bool(self.webhook.ids) and max(self.webhook.ids) >= last

    async def compare(self) -> list[str]:
        """What differs between the daemon's snapshot and the speakers: each speaker's
        volume, mute, transport state, play mode, track, URI and availability, and every
        speaker the daemon does not follow."""
        speakers = {s["uid"]: s for s in await self.admin("GET", "/speakers")}
        snapshot = await self.api("/api/v1/snapshot")
        mismatches = []
        for daemon in snapshot["speakers"]:
            sim = speakers.get(daemon["uid"])
            if sim is None:
                mismatches.append(f"{daemon['uid']}: unknown to the simulator")
                continue
            services = daemon.get("services", {})
            rc = services.get("RenderingControl", {}).get("variables", {})
            avt = services.get("AVTransport", {}).get("variables", {})
            pairs = {
                "volume": ((rc.get("volume") or {}).get("Master"), sim["volume"]),
                "mute": ((rc.get("mute") or {}).get("Master"), sim["mute"]),
                "transport": (avt.get("transport_state"), sim["transport"]),
                "play_mode": (avt.get("current_play_mode"), sim["play_mode"]),
                "track": (avt.get("current_track"), sim["track"]),
                "uri": (avt.get("av_transport_uri"), sim["uri"]),
                "online": (daemon["availability"]["status"], "online"),
            }
            for name, (mine, theirs) in pairs.items():
                if mine != theirs:
                    mismatches.append(f"{sim['name']} {name}: daemon {mine!r}, speaker {theirs!r}")
        followed = {daemon["uid"] for daemon in snapshot["speakers"]}
        mismatches.extend(
            f"{sim['name']}: not in the daemon's snapshot"
            for uid, sim in speakers.items()
            if uid not in followed
        )
        return mismatches

    def verify(self) -> None:
        for tracker in [*self.trackers.values(), *self.stream_trackers]:
            if tracker.gaps:
                self.failures.append(f"{tracker.name}: ids missing {tracker.gaps[:5]}")
        # An observer that stopped receiving has no gap: it must have reached the last id.
        for tracker in self.observed_trackers():
            if tracker.last_id < self.final_id:
                self.failures.append(
                    f"{tracker.name}: received up to id {tracker.last_id}, "
                    f"the last is {self.final_id}"
                )
        assert self.mqtt is not None
        with self.mqtt.lock:
            ids = set(self.mqtt.ids)
            gaps = list(self.mqtt.gap_ranges)
        if ids:
            covered = set(ids)
            for first, last in gaps:
                covered.update(range(first, last + 1))
            missing = sorted(set(range(min(ids), self.final_id + 1)) - covered)
            if missing:
                self.failures.append(f"mqtt: ids missing and not reported: {missing[:10]}")
        else:
            self.failures.append("mqtt: no message received")
        if self.webhook.ids:
            expected = set(range(min(self.webhook.ids), self.final_id + 1))
            missing = sorted(expected - self.webhook.ids)
            if missing:
                self.failures.append(f"webhook: ids missing {missing[:10]}")
        else:
            self.failures.append("webhook: no message received")
        self.verify_losses_reported()
        self.verify_flat()
        self.critical = self.count_log("critical")
        if self.critical:
            self.failures.append(f"{self.critical} critical log lines (unhandled errors)")
        if not self.log_says("sonosd running"):
            # A log that is not the daemon's would count no critical line either.
            self.failures.append(f"no 'sonosd running' line in {self.daemon_log}")

    def verify_losses_reported(self) -> None:
        """Each speaker fault that loses NOTIFYs shows as events.gap or subscription.lost."""
        losses = self.loss_reports
        for record in self.faults:
            if record.kind in ("reboot", "drop") or record.kind.startswith("outage-"):
                index = int(record.target.split()[-1])
                uid = self.uids[index]
                reported = any(
                    uid == report_uid and at >= record.at - 1 for at, report_uid in losses
                )
                record.lost_reported = reported
                if not reported:
                    self.failures.append(
                        f"{record.kind} at {record.at:.0f} s on {record.target}: no events.gap "
                        "or subscription.lost"
                    )

    @property
    def loss_reports(self) -> list[tuple[float, str]]:
        """(seconds into the soak, uid) of every loss the stable WebSocket was told of."""
        return [(at - self.started, uid) for at, uid in self.trackers["ws-stable"].losses]

    def verify_flat(self) -> None:
        after = [s for s in self.samples if s.at >= self.warm_at]
        if len(after) < 4:
            self.failures.append("too few memory samples after the warm-up")
            return
        quarter = max(1, len(after) // 4)
        first = sorted(s.rss_mb for s in after[:quarter])
        last = sorted(s.rss_mb for s in after[-quarter:])
        self.rss_first = first[len(first) // 2]
        self.rss_last = last[len(last) // 2]
        allowed = max(8.0, 0.15 * self.rss_first)
        if self.rss_last - self.rss_first > allowed:
            self.failures.append(
                f"resident memory grew from {self.rss_first:.1f} MB to {self.rss_last:.1f} MB "
                f"after the warm-up (allowed {allowed:.1f} MB)"
            )
        self.fds_warm = min(s.fds for s in after[:quarter])
        if self.final_sample.fds > self.fds_warm + 8:
            self.failures.append(f"open files grew from {self.fds_warm} to {self.final_sample.fds}")

    def log_lines(self) -> Iterator[str]:
        """The lines of the daemon's log, oldest first, across the files twistd rotated it
        into (``daemon.log.2``, ``daemon.log.1``, then ``daemon.log``: a file per MB)."""
        rotated = glob.glob(glob.escape(self.daemon_log) + ".*")
        numbered = sorted(
            (name for name in rotated if name.rsplit(".", 1)[1].isdigit()),
            key=lambda name: -int(name.rsplit(".", 1)[1]),
        )
        for name in [*numbered, self.daemon_log]:
            try:
                with open(name, errors="replace") as handle:
                    yield from handle
            except OSError:
                continue

    def log_says(self, text: str) -> bool:
        """Whether a line of the daemon's log holds ``text``."""
        return any(text in line for line in self.log_lines())

    def count_log(self, level: str) -> int:
        """The daemon's log lines at ``level``: its second field (``<time> <level>
        [<namespace>] <text>``), not the word anywhere in a line's text."""
        return sum(1 for line in self.log_lines() if line.split(" ", 2)[1:2] == [level])

    async def shutdown(self) -> None:
        self.stopping = True
        for client in self.ws_clients.values():
            transport: Any = client.transport
            if transport is not None:
                transport.abortConnection()
        if self.mqtt is not None:
            self.mqtt.stop()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            for _ in range(200):
                if self.daemon.poll() is not None:
                    break
                await sleep(self.reactor, 0.1)
            self.daemon_exit = self.daemon.poll()
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
        self.broker.stop()
        if self.webhook_port_listening is not None:
            await self.webhook_port_listening.stopListening()
        await self.pool.closeCachedConnections()
        if not self.args.keep:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the report ----------------------------------------------------------------------

    def report(self) -> str:
        lines = [
            "# Chaos soak",
            "",
            f"`python -m benchmarks.soak --duration {self.args.duration:g} "
            f"--fault-interval {self.args.fault_interval:g}` "
            f"(`make soak`; seed {self.args.seed}), {time.strftime('%Y-%m-%d')}: a real "
            f"`twistd sonosd` following {SPEAKERS} simulated speakers (`twistd sonos-sim`, "
            f"activity {self.args.activity:g} changes/s), with tokens, a webhook target, an "
            "MQTT broker and the local stream; a fault every "
            f"{self.args.fault_interval:g} s. What it injects and checks: "
            "[`benchmarks/soak.py`](../benchmarks/soak.py).",
            "",
            f"**Result: {'FAILED' if self.failures else 'passed'}.**",
            "",
        ]
        if self.failures:
            lines += ["## Failures", ""] + [f"- {failure}" for failure in self.failures] + [""]
        counts = Counter(record.kind for record in self.faults)
        lines += [
            "## Faults injected",
            "",
            "| fault | count | recovery (s): median | max |",
            "|---|---|---|---|",
        ]
        for kind in FAULTS:
            times = sorted(
                r.recovery for r in self.faults if r.kind == kind and r.recovery is not None
            )
            if not counts[kind]:
                lines.append(f"| {kind} | 0 | | |")
                continue
            median = times[len(times) // 2] if times else float("nan")
            worst = max(times or [float("nan")])
            lines.append(f"| {kind} | {counts[kind]} | {median:.1f} | {worst:.1f} |")
        lines += [
            "",
            "Recovery: from the end of the fault to the moment a probe change (a new volume on "
            "the speaker concerned, or a volume the speaker had after it: activity within the "
            "0.2 s LastChange moderation window can replace the probe's value) reached the "
            "stable WebSocket client; it includes noticing the fault (the consistency check "
            "runs every 5 s, a silent speaker is pinged after 20 s).",
            "",
            "## Every fault",
            "",
            "| at (s) | fault | target | detail | recovery (s) | loss reported |",
            "|---|---|---|---|---|---|",
        ]
        for record in self.faults:
            recovery = "-" if record.recovery is None else f"{record.recovery:.1f}"
            reported = {None: "", True: "yes", False: "NO"}[record.lost_reported]
            lines.append(
                f"| {record.at:.0f} | {record.kind} | {record.target} | {record.detail} | "
                f"{recovery} | {reported} |"
            )
        lines += [
            "",
            "## Observers",
            "",
            "| observer | messages | connections | duplicates | resets | gaps |",
            "|---|---|---|---|---|---|",
        ]
        for tracker in [*self.trackers.values(), *self.stream_trackers]:
            if tracker.name.startswith(("ws-slow", "ws-vanishing")) and not tracker.gaps:
                continue
            lines.append(
                f"| {tracker.name} | {tracker.received} | {tracker.connections} | "
                f"{tracker.duplicates} | {tracker.resets} | {len(tracker.gaps)} |"
            )
        slow = [t for t in self.trackers.values() if t.name.startswith(("ws-slow", "ws-vanishing"))]
        if slow:
            lines.append(
                f"| {len(slow)} slow and vanishing clients | {sum(t.received for t in slow)} | "
                f"{sum(t.connections for t in slow)} | {sum(t.duplicates for t in slow)} | "
                f"{sum(t.resets for t in slow)} | {sum(len(t.gaps) for t in slow)} |"
            )
        if self.mqtt is not None:
            lines.append(
                f"| MQTT subscriber | {self.mqtt.messages} | {self.broker.restarts + 1} | | | "
                f"{len(self.mqtt.gap_ranges)} reported |"
            )
        lines.append(
            f"| webhook receiver | {self.webhook.requests} | | "
            f"{self.webhook.requests - len(self.webhook.ids)} | | |"
        )
        lines += [
            "",
            "Gaps are ids an observer never received and was never told about: the soak fails "
            "on any. A reset is a loss told in-band: a client resuming from an id that had "
            f"left the replay ring (the soak keeps {REPLAY:,} messages, and a slow client is "
            "disconnected after a burst of that order) gets `reset` and a fresh snapshot. "
            "MQTT counts the ranges the daemon reported on `bridge/gap` while the broker was "
            "away; duplicates are retries (webhooks) and resends (MQTT QoS 1).",
            "",
        ]
        if self.samples:
            peak = max(s.rss_mb for s in self.samples)
            lines += [
                "## Memory and open files",
                "",
                f"- Resident memory after the warm-up ({self.warm_at:.0f} s): "
                f"{getattr(self, 'rss_first', 0):.1f} MB (median of the first quarter), "
                f"{getattr(self, 'rss_last', 0):.1f} MB (median of the last quarter); "
                f"peak {peak:.1f} MB.",
                f"- Open files: {getattr(self, 'fds_warm', 0)} after the warm-up, "
                f"{getattr(self, 'final_sample', Sample(0, 0, 0)).fds} at the end.",
                f"- Settled (daemon state equal to the speakers') "
                f"{getattr(self, 'settle_time', float('nan')):.1f} s after the activity stopped; "
                f"last message id {getattr(self, 'final_id', 0)}.",
                f"- Critical log lines: {getattr(self, 'critical', 0)}.",
                "",
            ]
        return "\n".join(lines)


def parse_args(argv: Iterable[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__)
    parser.add_argument("--duration", type=float, default=900.0, help="seconds of faults")
    parser.add_argument("--fault-interval", type=float, default=20.0)
    parser.add_argument("--activity", type=float, default=1.0, help="changes per second")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to agree, at most")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--report", help="write the report here (markdown)")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    parser.add_argument(
        "--faults",
        type=lambda text: [kind for kind in text.split(",") if kind],
        help="only these fault kinds (comma-separated): " + ", ".join(FAULTS),
    )
    return parser.parse_args(list(argv))


def main(argv: Iterable[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)

    async def run(reactor: Any) -> None:
        status = await Soak(reactor, args).run()
        if status:
            raise SystemExit(status)

    task.react(lambda reactor: Deferred.fromCoroutine(run(reactor)))


if __name__ == "__main__":
    main()
