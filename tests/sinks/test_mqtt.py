"""Tests for sonosd.sinks.mqtt against a real mosquitto broker started by each test."""

from __future__ import annotations

import gc
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import paho.mqtt.client as paho
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import ProcessProtocol, connectionDone
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import LogLevel, formatEvent
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.config import MqttConfig
from sonosd.delivery.hub import Hub
from sonosd.sinks.mqtt import MqttSink, _default_client, keepalive_check_interval
from tests.conftest import free_loopback_base
from tests.sinks.test_callbacks import capture_logs
from tests.sinks.test_webhooks import make_ca_and_server

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"

KITCHEN = {"uid": "RINCON_000E58A0123401400", "name": "Kitchen", "host": "127.0.0.2"}
OFFICE = {"uid": "RINCON_000E58A0567801400", "name": "Office", "host": "127.0.0.3"}

#: The longest any wait in these tests may take before the test fails.
WAIT = 20.0


class Broker:
    """A mosquitto process on a private loopback address, without persistence."""

    def __init__(
        self,
        reactor: Any,
        directory: str,
        tls: bool = False,
        login: tuple[str, str] | None = None,
        cert_ip: str | None = None,
        log: bool = False,
        debug: bool = False,
    ) -> None:
        """@param login: The only user the broker lets in (anonymous clients too if ``None``).
        @param cert_ip: The address the TLS certificate names (default: the broker's own).
        @param log: Write the broker's notices (connections, with their keep-alive) to
            ``log_file``.
        @param debug: With ``log``, the packets each client sends too (``PINGREQ``)."""
        self.reactor = reactor
        self.port = 8883 if tls else 1883
        self.host = free_loopback_base(port=self.port, count=1)
        self.config = os.path.join(directory, "mosquitto.conf")
        self.ca_file: str | None = None
        self.login = login
        lines = [f"listener {self.port} {self.host}"]
        self.log_file = os.path.join(directory, "mosquitto.log")
        if tls or login or log:
            # Started as root, mosquitto drops to its own user before reading its files.
            os.chmod(directory, 0o755)
        if tls:
            self.ca_file, key_pem, cert_pem = make_ca_and_server(directory, ip=cert_ip or self.host)
            for name, data in (("server.key", key_pem), ("server.pem", cert_pem)):
                with open(os.path.join(directory, name), "wb") as handle:
                    handle.write(data)
            for name in ("ca.pem", "server.key", "server.pem"):
                os.chmod(os.path.join(directory, name), 0o644)
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {os.path.join(directory, 'server.pem')}",
                f"keyfile {os.path.join(directory, 'server.key')}",
            ]
        if login is None:
            lines.append("allow_anonymous true")
        else:
            passwords = os.path.join(directory, "passwords")
            subprocess.run([MOSQUITTO_PASSWD, "-b", "-c", passwords, *login], check=True)
            os.chmod(passwords, 0o644)
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        if log:
            with open(self.log_file, "w"):
                pass
            os.chmod(self.log_file, 0o666)
            lines += [f"log_dest file {self.log_file}", "log_type notice"]
            if debug:
                lines.append("log_type debug")
        else:
            lines.append("log_dest none")
        lines.append("persistence false")
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.launch()
        for _ in range(int(WAIT / 0.05)):
            if self.listening():
                return
            await deferLater(self.reactor, 0.05)
        raise RuntimeError("mosquitto did not start listening")

    def launch(self) -> None:
        """Start mosquitto; L{listening} tells when it takes connections."""
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", self.config],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def listening(self) -> bool:
        """Whether the launched broker takes connections now.

        @raise RuntimeError: mosquitto exited."""
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {self.process.returncode}")
        with socket.socket() as probe:
            return probe.connect_ex((self.host, self.port)) == 0

    def connect_lines(self, client_id: str) -> list[str]:
        """The lines of the broker's log (``log=True``) that say ``client_id`` connected, with
        the keep-alive it asked for (``k30``)."""
        with open(self.log_file) as handle:
            return [line for line in handle if f" as {client_id} (" in line]

    def pings(self, client_id: str) -> int:
        """How many ``PINGREQ`` the broker's log (``debug=True``) shows from ``client_id``."""
        with open(self.log_file) as handle:
            return sum(f"Received PINGREQ from {client_id}" in line for line in handle)

    def pause(self, case: Any) -> subprocess.Popen[bytes]:
        """Stop the broker reading (SIGSTOP) until the test ends or it is sent SIGCONT; its
        process."""
        process = self.process
        assert process is not None
        process.send_signal(signal.SIGSTOP)
        case.addCleanup(lambda: process.poll() is None and process.send_signal(signal.SIGCONT))
        return process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class Subscriber(ProcessProtocol):
    """A ``mosquitto_sub`` process (subscribed at QoS 1); each line is ``(retained, topic,
    payload)``, and ``qos`` has ``(topic, QoS)`` of each: the lower of the publisher's and 1."""

    def __init__(self, reactor: Any, broker: Broker, topic: str, *more: str) -> None:
        self.lines: list[tuple[bool, str, str]] = []
        self.qos: list[tuple[str, int]] = []
        self._buffer = b""
        self._waiters: list[tuple[Callable[[], bool], Deferred[None]]] = []
        self.ended: Deferred[None] = Deferred()
        args = [
            MOSQUITTO_SUB,
            "-h",
            broker.host,
            "-p",
            str(broker.port),
            "-q",
            "1",
            "-t",
            topic,
            *(argument for extra in more for argument in ("-t", extra)),
            "-F",
            "%r\t%q\t%t\t%p",
        ]
        if broker.ca_file is not None:
            args += ["--cafile", broker.ca_file]
        if broker.login is not None:
            args += ["-u", broker.login[0], "-P", broker.login[1]]
        self.transport = reactor.spawnProcess(self, MOSQUITTO_SUB, args, env=os.environ)

    def outReceived(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            retained, qos, topic, payload = line.decode(errors="replace").split("\t", 3)
            self.lines.append((retained == "1", topic, payload))
            self.qos.append((topic, int(qos)))
        for predicate, d in list(self._waiters):
            if predicate():
                self._waiters.remove((predicate, d))
                d.callback(None)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)

    def wait(self, predicate: Callable[[], bool], reactor: Any) -> Deferred[None]:
        """Fire when ``predicate()`` holds for the lines received (fail after ``WAIT``)."""
        d: Deferred[None] = Deferred()
        if predicate():
            d.callback(None)
        else:
            self._waiters.append((predicate, d))
        return d.addTimeout(WAIT, reactor)

    def payloads(self, topic: str) -> list[str]:
        return [payload for _, t, payload in self.lines if t == topic]

    def has(self, topic: str, count: int = 1) -> Callable[[], bool]:
        return lambda: len(self.payloads(topic)) >= count

    def stop(self) -> Deferred[None]:
        """End mosquitto_sub (TERM, and KILL if it is still there 3 s later)."""
        if not self.ended.called:
            self.transport.signalProcess("TERM")
            from twisted.internet import reactor

            kill = reactor.callLater(3.0, self._kill)
            self.ended.addBoth(lambda result: kill.cancel() if kill.active() else None)
        return self.ended

    def _kill(self) -> None:
        if not self.ended.called:
            self.transport.signalProcess("KILL")


class FakeController:
    """Records commands; answers from a table of results or exceptions."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}

    def execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]:
        self.calls.append((speaker_id, command, dict(args)))
        answer = self.answers.get(command, {"done": command})
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)


class ControlError(Exception):
    """Shaped like sonosd.control.controller.ControlError."""

    def __init__(self, code: str, status: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.upnp_error = None


def master(state: Mapping[str, Any]) -> Any:
    """The master volume of a RenderingControl state payload."""
    return state["variables"]["volume"]["Master"]


class MqttBrokerTests(TestCase):
    """The sink against a real broker, observed with mosquitto_sub."""

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor: Any = reactor
        self.directory = tempfile.mkdtemp(prefix="sonosd-mqtt-")
        self.addCleanup(shutil.rmtree, self.directory)
        self.broker = Broker(reactor, self.directory)
        self.addCleanup(self.broker.stop)
        self.pool = ThreadPool(1, 1, name="test-mqtt-connect")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.hub = Hub(reactor)
        self.controller = FakeController()

    def run_blocking(self, fn: Callable[[], Any]) -> Deferred[Any]:
        return deferToThreadPool(self.reactor, self.pool, fn)

    def make_sink(self, **kwargs: Any) -> MqttSink:
        config = MqttConfig(
            host=self.broker.host,
            port=self.broker.port,
            client_id=f"sonosd-test-{os.getpid()}",
            homeassistant=kwargs.pop("homeassistant", False),
            username=kwargs.pop("username", None),
            password=kwargs.pop("password", None),
            tls=kwargs.pop("tls", False),
            ca_file=kwargs.pop("ca_file", None),
            **{
                key: kwargs.pop(key)
                for key in ("prefix", "discovery_prefix", "keepalive")
                if key in kwargs
            },
        )
        kwargs.setdefault("controller", self.controller)
        kwargs.setdefault("backoff_initial", 0.1)
        kwargs.setdefault("backoff_max", 0.5)
        sink = MqttSink(self.reactor, config, self.run_blocking, **kwargs)
        self.hub.add_sink(sink)
        return sink

    async def start(self, sink: MqttSink) -> None:
        sink.startService()
        self.addCleanup(lambda: sink.stopService() if sink.running else None)
        await self.until(lambda: sink.connected)

    async def until(self, predicate: Callable[[], bool]) -> None:
        for _ in range(int(WAIT / 0.02)):
            if predicate():
                return
            await deferLater(self.reactor, 0.02)
        self.fail("condition not reached")

    async def ready_subscriber(self, topic: str) -> Subscriber:
        """A subscriber to ``topic`` that is known to be subscribed: it also follows the
        bridge's retained availability and has received it (the sink must be connected)."""
        sub = self.subscriber(topic, "sonos/bridge/availability")
        await sub.wait(sub.has("sonos/bridge/availability"), self.reactor)
        return sub

    def subscriber(self, topic: str = "sonos/#", *more: str) -> Subscriber:
        sub = Subscriber(self.reactor, self.broker, topic, *more)
        self.addCleanup(sub.stop)
        return sub

    def publish_household(self) -> None:
        hub = self.hub
        hub.publish("speaker.online", {"reason": "subscribed"}, speaker=KITCHEN)
        hub.publish(
            "event",
            {"seq": 0, "variables": {"volume": {"Master": 20}, "mute": {"Master": False}}},
            speaker=KITCHEN,
            service="RenderingControl",
        )
        hub.publish(
            "event",
            {"seq": 1, "variables": {"volume": {"Master": 25}}},
            speaker=KITCHEN,
            service="RenderingControl",
        )
        hub.publish(
            "event",
            {"seq": 0, "variables": {"transport_state": "PLAYING"}},
            speaker=OFFICE,
            service="AVTransport",
        )
        hub.publish(
            "topology.changed",
            {"household": "Sonos_1", "groups": [{"coordinator": KITCHEN["uid"]}]},
        )
        hub.publish(
            "topology.changed",
            {"household": "Sonos_2", "groups": [{"coordinator": OFFICE["uid"]}]},
        )
        for household, alarm_id in (("Sonos_1", 4), ("Sonos_2", 9)):
            hub.publish(
                "alarms.changed",
                {"household": household, "version": f"X:{alarm_id}", "alarms": [{"id": alarm_id}]},
            )

    def publish_volumes(self, seqs: range) -> list[int]:
        """Publish one Kitchen volume event per ``seq`` (volume = seq); their message ids."""
        return [
            self.hub.publish(
                "event",
                {"seq": seq, "variables": {"volume": {"Master": seq}}},
                speaker=KITCHEN,
                service="RenderingControl",
            ).id
            for seq in seqs
        ]

    def state(self, sub: Subscriber, topic: str) -> dict[str, Any]:
        return json.loads(sub.payloads(topic)[-1])  # type: ignore[no-any-return]

    async def test_retained_state_and_availability(self) -> None:
        """Merged state, availability and each household's topology and alarms are retained for
        late subscribers."""
        await self.broker.start()
        sink = self.make_sink()
        self.publish_household()
        await self.start(sink)
        topics = (
            "sonos/Kitchen/state/RenderingControl",
            "sonos/Office/state/AVTransport",
            "sonos/Kitchen/availability",
            "sonos/Office/availability",
            "sonos/bridge/availability",
            "sonos/bridge/topology/Sonos_1",
            "sonos/bridge/topology/Sonos_2",
            "sonos/bridge/alarms/Sonos_1",
            "sonos/bridge/alarms/Sonos_2",
        )
        first = self.subscriber()
        await first.wait(lambda: all(first.payloads(t) for t in topics), self.reactor)
        # A subscriber that comes later gets all of it from the broker, retained.
        sub = self.subscriber()
        await sub.wait(lambda: all(sub.payloads(t) for t in topics), self.reactor)
        self.assertTrue(all(retained for retained, _, _ in sub.lines))
        kitchen = self.state(sub, "sonos/Kitchen/state/RenderingControl")
        self.assertEqual(
            kitchen["variables"], {"volume": {"Master": 25}, "mute": {"Master": False}}
        )
        self.assertEqual(kitchen["speaker"]["uid"], KITCHEN["uid"])
        self.assertEqual(kitchen["service"], "RenderingControl")
        # id and time are those of the last message merged.
        [last] = [m for m in self.hub.since(0) or [] if m.id == 3]
        self.assertEqual((kitchen["id"], kitchen["time"]), (3, json.loads(last.raw)["time"]))
        self.assertEqual(sub.payloads("sonos/Kitchen/availability"), ["online"])
        self.assertEqual(sub.payloads("sonos/Office/availability"), ["online"])
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["online"])
        for household, uid in (("Sonos_1", KITCHEN["uid"]), ("Sonos_2", OFFICE["uid"])):
            topology = json.loads(sub.payloads(f"sonos/bridge/topology/{household}")[0])
            self.assertEqual(topology["type"], "topology.changed")
            self.assertEqual(topology["groups"][0]["coordinator"], uid)
        for household, alarm_id in (("Sonos_1", 4), ("Sonos_2", 9)):
            (alarms,) = [json.loads(p) for p in sub.payloads(f"sonos/bridge/alarms/{household}")]
            self.assertEqual((alarms["type"], alarms["household"]), ("alarms.changed", household))
            self.assertEqual(alarms["alarms"], [{"id": alarm_id}])
        # Events published before the first connection are not replayed, but counted.
        self.assertEqual(sub.payloads("sonos/Kitchen/event/RenderingControl"), [])

    async def test_events_live_and_not_retained(self) -> None:
        """Each message is published once on its event topic, not retained, as sent."""
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        sub = self.subscriber()
        await sub.wait(sub.has("sonos/bridge/availability"), self.reactor)
        self.publish_household()
        others = ("subscription.lost", "subscription.restored", "events.gap")
        for kind in others:
            self.hub.publish(kind, {"service": "AVTransport"}, speaker=KITCHEN)
        self.hub.publish("speaker.offline", {"reason": "no answer"}, speaker=OFFICE)
        # Every event is QoS 1 from one publisher: in order, the last one comes last.
        await sub.wait(sub.has("sonos/Office/event/speaker.offline"), self.reactor)
        for kind in others:
            [payload] = sub.payloads(f"sonos/Kitchen/event/{kind}")
            self.assertEqual(json.loads(payload)["type"], kind)
        events = sub.payloads("sonos/Kitchen/event/RenderingControl")
        self.assertEqual([json.loads(p)["seq"] for p in events], [0, 1])
        raw = [m.raw.decode() for m in self.hub.since(0) or [] if m.id in (2, 3)]
        self.assertEqual(events, raw)
        self.assertEqual(len(sub.payloads("sonos/bridge/event/topology.changed")), 2)
        alarms = [json.loads(p) for p in sub.payloads("sonos/bridge/event/alarms.changed")]
        self.assertEqual([a["household"] for a in alarms], ["Sonos_1", "Sonos_2"])
        self.assertEqual(sub.payloads("sonos/Office/availability")[-1], "offline")
        event_lines = [line for line in sub.lines if "/event/" in line[1]]
        self.assertFalse(any(retained for retained, _, _ in event_lines))
        # Events at QoS 1 (resent after a broker that died before reading them), retained
        # state at QoS 0 (republished on every connect instead).
        qos = {(topic.split("/")[2], level) for topic, level in sub.qos if topic.count("/") >= 2}
        self.assertIn(("event", 1), qos)
        self.assertIn(("state", 0), qos)
        self.assertEqual({level for kind, level in qos if kind == "event"}, {1})
        self.assertEqual({level for kind, level in qos if kind == "state"}, {0})
        # Every retained topic is QoS 0: availability, topology and alarms too.
        retained_qos = {
            level
            for topic, level in sub.qos
            if topic.endswith("/availability")
            or "/bridge/topology/" in topic
            or "/bridge/alarms/" in topic
        }
        self.assertEqual(retained_qos, {0})

    async def test_broker_restart_republishes_retained_state(self) -> None:
        """After the broker restarts (losing retained messages) the sink reconnects and
        republishes them, and says how many events it could not publish meanwhile."""
        logs = capture_logs(self)
        await self.broker.start()
        sink = self.make_sink(homeassistant=True)
        await self.start(sink)
        self.publish_household()
        self.broker.stop()
        await self.until(lambda: not sink.connected)
        missed = self.hub.publish(
            "event",
            {"seq": 2, "variables": {"volume": {"Master": 30}}},
            speaker=KITCHEN,
            service="RenderingControl",
        )
        self.assertEqual(sink.missed, 1)
        await self.broker.start()
        await self.until(lambda: sink.connected)
        self.assertEqual(sink.connects, 2)
        sub = self.subscriber()
        await sub.wait(
            lambda: (
                bool(sub.payloads("sonos/Kitchen/state/RenderingControl"))
                and bool(sub.payloads("sonos/bridge/topology/Sonos_1"))
                and bool(sub.payloads("sonos/bridge/alarms/Sonos_2"))
            ),
            self.reactor,
        )
        kitchen = self.state(sub, "sonos/Kitchen/state/RenderingControl")
        self.assertEqual(kitchen["variables"]["volume"], {"Master": 30})
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["online"])
        # Every retained topic is back: each speaker's availability and its Home Assistant
        # discovery documents too (docs/mqtt.md, Delivery).
        discovery = self.subscriber("homeassistant/#")
        entities = (
            f"homeassistant/sensor/sonosd_{KITCHEN['uid']}/volume/config",
            f"homeassistant/sensor/sonosd_{OFFICE['uid']}/transport_state/config",
            "homeassistant/binary_sensor/sonosd_bridge/connectivity/config",
        )
        await discovery.wait(
            lambda: all(discovery.payloads(topic) for topic in entities), self.reactor
        )
        await sub.wait(
            lambda: all(
                sub.payloads(f"sonos/{room}/availability") for room in ("Kitchen", "Office")
            ),
            self.reactor,
        )
        self.assertEqual(sub.payloads("sonos/Kitchen/availability"), ["online"])
        self.assertEqual(sub.payloads("sonos/Office/availability"), ["online"])
        gaps = [e for e in logs if "not published while the broker" in e.get("log_format", "")]
        # The log says how many and which ids.
        self.assertEqual(
            [(e["count"], e["first"], e["last"]) for e in gaps], [(1, missed.id, missed.id)]
        )
        self.assertEqual(sink.missed, 0)

    async def test_gap_topic_counts_the_events_not_published(self) -> None:
        """After the connection dropped, ``sonos/bridge/gap`` (not retained) says how many
        events were not published and the ids of the first and the last."""
        await self.broker.start()
        sink = self.make_sink(backoff_initial=1.0, backoff_max=1.0)
        await self.start(sink)
        sub = await self.ready_subscriber("sonos/bridge/gap")
        sock = sink._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        # The reconnect waits at least 0.5 s: this check runs before it.
        await self.until(lambda: not sink.connected)
        ids = self.publish_volumes(range(3))
        await sub.wait(sub.has("sonos/bridge/gap"), self.reactor)
        [(retained, _, payload)] = [line for line in sub.lines if line[1] == "sonos/bridge/gap"]
        self.assertFalse(retained)
        self.assertEqual([q for t, q in sub.qos if t == "sonos/bridge/gap"], [1])
        self.assertEqual(json.loads(payload), {"missed": 3, "first_id": ids[0], "last_id": ids[2]})
        self.assertEqual(sink.connects, 2)
        # Not queued either: after the reconnect the next event is the first on its topic
        # (QoS 1 from one publisher keeps its order, so a replay would come before it).
        events = await self.ready_subscriber("sonos/Kitchen/event/RenderingControl")
        [live] = self.publish_volumes(range(3, 4))
        await events.wait(events.has("sonos/Kitchen/event/RenderingControl"), self.reactor)
        got = [json.loads(p)["id"] for p in events.payloads("sonos/Kitchen/event/RenderingControl")]
        self.assertEqual(got, [live])

    async def test_topics_cleared_while_disconnected_are_cleared_on_reconnect(self) -> None:
        """A speaker removed, a room renamed, while the connection is down (the broker keeps
        its retained messages): after the reconnect the broker holds neither the removed
        speaker's topics and entities nor the old room's, only the new room's."""
        await self.broker.start()
        sink = self.make_sink(homeassistant=True, backoff_initial=1.0, backoff_max=1.0)
        self.publish_household()
        await self.start(sink)
        node = f"homeassistant/sensor/sonosd_{OFFICE['uid']}/volume/config"
        first = self.subscriber("sonos/#", "homeassistant/#")
        await first.wait(
            lambda: all(
                first.payloads(topic)
                for topic in (node, "sonos/Office/availability", "sonos/Kitchen/availability")
            ),
            self.reactor,
        )
        sock = sink._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        # The reconnect waits at least 0.5 s: these run before it.
        await self.until(lambda: not sink.connected)
        self.hub.publish("speaker.removed", {"reason": "left household"}, speaker=OFFICE)
        rc = {"seq": 5, "variables": {"volume": {"Master": 31}}}
        renamed = dict(KITCHEN, name="Cuisine")
        self.hub.publish("event", rc, speaker=renamed, service="RenderingControl")
        # The new room's state is republished after the reconnect, after any clearing: once
        # it is seen, the broker has taken both.
        await first.wait(first.has("sonos/Cuisine/state/RenderingControl"), self.reactor)
        # The broker sends each subscription's retained messages in the order subscribed.
        late = self.subscriber(
            "sonos/Office/#",
            "sonos/Kitchen/#",
            f"homeassistant/+/sonosd_{OFFICE['uid']}/+/config",
            "sonos/Cuisine/state/RenderingControl",
        )
        await late.wait(late.has("sonos/Cuisine/state/RenderingControl"), self.reactor)
        self.assertEqual(
            [topic for _, topic, _ in late.lines], ["sonos/Cuisine/state/RenderingControl"]
        )
        self.assertEqual(master(self.state(late, "sonos/Cuisine/state/RenderingControl")), 31)

    async def test_login_with_username_and_password(self) -> None:
        """The sink logs in to a broker that refuses anonymous clients with its username and
        password; a refused login is logged as an error and never counts as connected."""
        logs = capture_logs(self)
        await self.use_broker(login=("sonosd", "right"))
        wrong = self.make_sink(username="sonosd", password="wrong")
        await self.never_connects(wrong)
        refusals = [e for e in logs if "refused the connection" in e.get("log_format", "")]
        self.assertGreaterEqual(len(refusals), 2)
        self.assertEqual({e["log_level"] for e in refusals}, {LogLevel.error})
        self.assertEqual({e["reason"] for e in refusals}, {"Not authorized"})
        await wrong.stopService()
        self.hub.remove_sink(wrong)
        sink = self.make_sink(username="sonosd", password="right")
        await self.start(sink)
        self.publish_household()
        sub = self.subscriber("sonos/Kitchen/state/RenderingControl")
        # The subscriber may see the first volume live before the last one.
        await sub.wait(
            lambda: bool(sub.lines) and master(json.loads(sub.lines[-1][2])) == 25, self.reactor
        )

    async def test_refused_login_is_the_last_error(self) -> None:
        """After a refused login the broker's reason ("Not authorized"), not paho's
        "Unspecified error", is the sink's last error and the reason of its retry warning."""
        logs = capture_logs(self)
        await self.use_broker(login=("sonosd", "right"))
        sink = self.make_sink(username="sonosd", password="wrong")
        self.assertEqual(await self.never_connects(sink), "Not authorized")
        retries = [e for e in logs if "unreachable ({reason})" in e.get("log_format", "")]
        self.assertGreaterEqual(len(retries), 2)
        self.assertEqual({e["reason"] for e in retries}, {"Not authorized"})
        self.assertEqual(retries[0]["log_level"], LogLevel.warn)

    async def use_broker(self, **kwargs: Any) -> None:
        """Replace the plain broker of ``setUp`` with a started one made with ``kwargs``."""
        self.broker = Broker(self.reactor, self.directory, **kwargs)
        self.addCleanup(self.broker.stop)
        await self.broker.start()

    async def never_connects(self, sink: MqttSink) -> str:
        """Start ``sink``, see it fail to connect twice without ever counting as connected;
        its last error."""
        sink.startService()
        self.addCleanup(lambda: sink.stopService() if sink.running else None)
        await self.until(lambda: sink.status()["failures"] >= 2)
        self.assertEqual((sink.connected, sink.connects), (False, 0))
        return str(sink.status()["last_error"])

    async def test_keepalive_default_is_30_seconds(self) -> None:
        """By default the sink asks the broker for a 30 s keep-alive (the broker's log shows
        ``k30`` for its client id), so the last will comes within 45 s of a silent death."""
        await self.use_broker(log=True)
        sink = self.make_sink()
        await self.start(sink)
        client_id = f"sonosd-test-{os.getpid()}"
        await self.until(lambda: bool(self.broker.connect_lines(client_id)))
        self.assertIn(" k30", self.broker.connect_lines(client_id)[0])

    async def test_idle_connection_is_kept_alive_by_pings(self) -> None:
        """With nothing to publish, the sink still pings the broker every keep-alive (paho's
        ``loop_misc``, run by the reactor once a second, docs/mqtt.md "How it is built"): an
        idle daemon is not taken for dead and its last will is not published."""
        await self.use_broker(log=True, debug=True)
        sink = self.make_sink(keepalive=1)
        await self.start(sink)
        await self.until(lambda: self.broker.pings(f"sonosd-test-{os.getpid()}") >= 2)

    async def test_tls_untrusted_certificate_refused(self) -> None:
        """With ``tls: true`` and no ``ca_file`` the system's trust store decides: a broker
        whose certificate comes from a private CA is never connected to."""
        await self.use_broker(tls=True)
        sink = self.make_sink(tls=True)
        error = await self.never_connects(sink)
        self.assertIn("certificate verify failed: self-signed certificate in certificate", error)

    async def test_silent_tls_broker_is_bounded_by_the_connect_timeout(self) -> None:
        """A broker address that accepts TCP but never answers the TLS handshake holds the
        connect thread only for the connect timeout (10 s by default): the attempt fails as
        timed out, its connection is closed (not left to the garbage collector), and it is
        retried with the thread free for the next one."""
        from twisted.internet.protocol import Factory, Protocol

        closed: list[Deferred[None]] = []
        opened: list[Any] = []

        class Silent(Protocol):
            def connectionMade(self) -> None:
                self.closed: Deferred[None] = Deferred()
                closed.append(self.closed)
                opened.append(self.transport)

            def connectionLost(self, reason: Failure = connectionDone) -> None:
                self.closed.callback(None)

        silent = self.reactor.listenTCP(0, Factory.forProtocol(Silent), interface=self.broker.host)

        async def stop_silent() -> None:
            await silent.stopListening()
            for transport in opened:
                transport.abortConnection()
            await gatherResults(closed)

        self.addCleanup(lambda: Deferred.fromCoroutine(stop_silent()))
        # paho drops the socket of a failed handshake without closing it: with the collector
        # off, only the sink's own close can end these connections.
        gc.disable()
        self.addCleanup(gc.enable)
        self.broker.port = silent.getHost().port
        self.assertEqual(self.make_sink()._client.connect_timeout, 10.0)
        sink = self.make_sink(tls=True, connect_timeout=0.5)
        error = await self.never_connects(sink)
        self.assertEqual(error, "timeout")
        await self.until(lambda: len(opened) >= 2 and all(d.called for d in closed[:2]))

    async def test_tls_host_name_verified(self) -> None:
        """A broker certificate from the trusted ``ca_file`` that names another address than
        the configured host is refused."""
        await self.use_broker(tls=True, cert_ip="127.0.0.1")
        sink = self.make_sink(tls=True, ca_file=self.broker.ca_file)
        error = await self.never_connects(sink)
        self.assertIn("certificate verify failed: IP address mismatch", error)

    async def test_events_the_broker_never_took_are_sent_again(self) -> None:
        """Events written to a broker that dies before reading them (SIGSTOP, then SIGKILL)
        reach subscribers after the reconnect: none is lost without a gap report."""
        await self.broker.start()
        sink = self.make_sink(backoff_initial=3.0, backoff_max=3.0)
        await self.start(sink)
        assert self.broker.process is not None
        self.broker.process.send_signal(signal.SIGSTOP)
        ids = self.publish_volumes(range(1, 6))
        await deferLater(self.reactor, 0.2)
        self.assertTrue(sink.connected)
        self.assertEqual(sink.missed, 0)
        self.broker.process.kill()
        self.broker.process.wait(10)
        await self.until(lambda: not sink.connected)
        await self.broker.start()
        sub = self.subscriber("sonos/Kitchen/event/#")
        await deferLater(self.reactor, 0.3)
        await sub.wait(sub.has("sonos/Kitchen/event/RenderingControl", 5), self.reactor)
        got = [json.loads(p)["id"] for p in sub.payloads("sonos/Kitchen/event/RenderingControl")]
        self.assertEqual(sorted(set(got)), ids)
        self.assertEqual(sink.connects, 2)

    async def test_stalled_broker_pauses_publishing_then_catches_up(self) -> None:
        """A broker that stays connected but stops reading (here: SIGSTOP) does not make the
        sink queue without bound: past max_unsent waiting messages it pauses, counts events as
        missed, and once the broker reads again republishes the retained state and reports
        the gap."""
        logs = capture_logs(self)
        await self.broker.start()
        sink = self.make_sink(max_unsent=20)
        await self.start(sink)
        self.publish_household()
        gap = await self.ready_subscriber("sonos/bridge/gap")
        process = self.broker.pause(self)
        pad = "x" * 200_000
        for seq in range(2, 400):
            self.hub.publish(
                "event",
                {"seq": seq, "variables": {"pad": pad}},
                speaker=KITCHEN,
                service="Queue",
            )
            await deferLater(self.reactor, 0)
            if sink.missed >= 3:
                break
        self.assertTrue(sink.stalled)
        self.assertGreaterEqual(sink.missed, 3)
        self.hub.publish(
            "event",
            {"seq": 400, "variables": {"volume": {"Master": 33}}},
            speaker=KITCHEN,
            service="RenderingControl",
        )
        process.send_signal(signal.SIGCONT)
        await self.until(lambda: not sink.stalled and sink.missed == 0)
        self.assertTrue(sink.connected)
        sub = self.subscriber()
        await sub.wait(sub.has("sonos/Kitchen/state/RenderingControl"), self.reactor)
        kitchen = self.state(sub, "sonos/Kitchen/state/RenderingControl")
        self.assertEqual(kitchen["variables"]["volume"], {"Master": 33})
        gaps = [e for e in logs if "not published while the broker" in e.get("log_format", "")]
        self.assertEqual(len(gaps), 1)
        self.assertGreaterEqual(gaps[0]["count"], 4)
        # ... and publishes it on sonos/bridge/gap, as after a reconnect.
        await gap.wait(gap.has("sonos/bridge/gap"), self.reactor)
        [report] = [json.loads(p) for p in gap.payloads("sonos/bridge/gap")]
        self.assertEqual(
            report,
            {"missed": gaps[0]["count"], "first_id": gaps[0]["first"], "last_id": gaps[0]["last"]},
        )

    async def test_default_bounds_of_a_stalled_broker(self) -> None:
        """As the daemon builds it (the defaults), the sink has at most 100 events on the
        wire awaiting the broker's acknowledgement, and pauses publishing once 10,000
        messages wait for a broker that stopped reading (SIGSTOP)."""
        logs = capture_logs(self)
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        self.assertEqual(sink._client.max_inflight_messages, 100)
        process = self.broker.pause(self)
        for seq in range(30_000):
            self.publish_volumes(range(seq, seq + 1))
            if seq % 500 == 0:
                await deferLater(self.reactor, 0)
            if sink.stalled:
                break
        self.assertTrue(sink.stalled)
        paused = [e for e in logs if "is not reading" in e.get("log_format", "")]
        self.assertEqual(paused[0]["count"], 10_001)
        process.send_signal(signal.SIGCONT)
        await self.until(lambda: not sink.stalled)

    async def test_last_will_marks_bridge_offline(self) -> None:
        """A connection that dies without DISCONNECT makes the broker publish the last will."""
        await self.broker.start()
        sink = self.make_sink(backoff_initial=3600.0, backoff_max=3600.0)
        await self.start(sink)
        sock = sink._client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)
        await self.until(lambda: not sink.connected)
        sub = self.subscriber("sonos/bridge/availability")
        await sub.wait(sub.has("sonos/bridge/availability"), self.reactor)
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["offline"])
        self.assertEqual(sub.qos, [("sonos/bridge/availability", 1)])

    async def test_clean_stop_publishes_offline(self) -> None:
        """stopService publishes ``offline`` for the bridge and disconnects; the events sent
        just before, which the broker acknowledges first, are not counted as undelivered."""
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        logs = capture_logs(self)
        self.publish_volumes(range(1, 6))
        await sink.stopService()
        self.assertFalse(sink.connected)
        self.assertEqual(sink.missed, 0)
        self.assertEqual([e for e in logs if "not delivered" in formatEvent(e)], [])
        sub = self.subscriber("sonos/bridge/availability")
        await sub.wait(sub.has("sonos/bridge/availability"), self.reactor)
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["offline"])
        # The one retained message at QoS 1, as the last will is (the broker keeps it at
        # the QoS it was published with).
        self.assertEqual(sub.qos, [("sonos/bridge/availability", 1)])

    async def test_clean_stop_waits_for_the_broker_to_take_offline(self) -> None:
        """stopService ends only once the broker has acknowledged the retained ``offline``: a
        broker that stopped reading (SIGSTOP) holds the stop until it reads again."""
        await self.broker.start()
        sink = self.make_sink(drain_timeout=60.0)
        await self.start(sink)
        process = self.broker.pause(self)
        stopped = sink.stopService()
        await self.until(lambda: bool(sink._acked))
        await deferLater(self.reactor, 0.5)
        self.assertFalse(stopped.called)
        process.send_signal(signal.SIGCONT)
        await stopped
        self.assertFalse(sink.connected)
        sub = self.subscriber("sonos/bridge/availability")
        await sub.wait(sub.has("sonos/bridge/availability"), self.reactor)
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["offline"])

    async def test_clean_stop_is_bounded_by_the_drain_timeout(self) -> None:
        """A broker that never acknowledges the ``offline`` nor takes the disconnect (it
        stopped reading: SIGSTOP) holds the stop only for the drain timeout (the daemon's
        ``subscription.shutdown_timeout``): the stop then closes the connection itself."""
        await self.broker.start()
        sink = self.make_sink(drain_timeout=0.5)
        await self.start(sink)
        process = self.broker.pause(self)
        stopped = sink.stopService()
        await self.until(lambda: stopped.called)
        self.assertFalse(sink.connected)
        self.assertIsNone(sink._descriptor)
        process.send_signal(signal.SIGCONT)

    async def pub(self, topic: str, payload: str, *extra: str) -> None:
        await self.mosquitto_pub("-t", topic, "-m", payload, *extra)

    async def mosquitto_pub(self, *arguments: str) -> None:
        args = [MOSQUITTO_PUB, "-h", self.broker.host, "-p", str(self.broker.port), "-q", "1"]
        args += arguments
        done: Deferred[None] = Deferred()

        class Ended(ProcessProtocol):
            def processEnded(self, reason: Failure) -> None:
                done.callback(None)

        self.reactor.spawnProcess(Ended(), MOSQUITTO_PUB, args, env=os.environ)
        await done.addTimeout(WAIT, self.reactor)

    async def test_command_topic_runs_controller(self) -> None:
        """A command published on ``<room>/cmd/<command>`` runs the controller with the
        speaker's uid and answers on ``.../result``."""
        await self.broker.start()
        sink = self.make_sink()
        self.publish_household()
        await self.start(sink)
        self.controller.answers["volume"] = {"volume": 12}
        self.controller.answers["play"] = ControlError("offline", 503, "speaker is offline")
        sub = await self.ready_subscriber("sonos/+/cmd/#")
        await self.pub("sonos/Kitchen/cmd/volume", '{"volume": 12, "request_id": "r1"}')
        await self.pub("sonos/Office/cmd/play", "")
        await self.pub("sonos/Kitchen/cmd/mute", "[1, 2]")
        # request_id is any JSON value, null too: taken out of the arguments, echoed as sent.
        await self.pub("sonos/Kitchen/cmd/pause", '{"request_id": null}')
        await self.pub("sonos/Office/cmd/next", '{"request_id": {"n": [7, "a"]}}')
        await sub.wait(
            lambda: all(
                sub.payloads(f"sonos/{room}/cmd/{command}/result")
                for room, command in (
                    ("Kitchen", "volume"),
                    ("Office", "play"),
                    ("Kitchen", "mute"),
                    ("Kitchen", "pause"),
                    ("Office", "next"),
                )
            ),
            self.reactor,
        )
        self.assertEqual(
            self.controller.calls,
            [
                (KITCHEN["uid"], "volume", {"volume": 12}),
                (OFFICE["uid"], "play", {}),
                (KITCHEN["uid"], "pause", {}),
                (OFFICE["uid"], "next", {}),
            ],
        )
        volume = json.loads(sub.payloads("sonos/Kitchen/cmd/volume/result")[0])
        self.assertEqual(volume, {"ok": True, "result": {"volume": 12}, "request_id": "r1"})
        play = json.loads(sub.payloads("sonos/Office/cmd/play/result")[0])
        self.assertEqual(
            (play["ok"], play["status"], play["error"]["code"]), (False, 503, "offline")
        )
        # A refused payload is answered as the HTTP API answers it: status 400 beside the
        # error object {code, message} (docs/mqtt.md, Commands).
        mute = json.loads(sub.payloads("sonos/Kitchen/cmd/mute/result")[0])
        self.assertEqual(set(mute["error"]), {"code", "message"})
        self.assertEqual(
            (mute["ok"], mute["status"], mute["error"]["code"]), (False, 400, "bad_request")
        )
        pause = json.loads(sub.payloads("sonos/Kitchen/cmd/pause/result")[0])
        self.assertEqual(pause, {"ok": True, "result": {"done": "pause"}, "request_id": None})
        nxt = json.loads(sub.payloads("sonos/Office/cmd/next/result")[0])
        self.assertEqual(nxt["request_id"], {"n": [7, "a"]})
        # Results are not retained: a client subscribing later never reads an old answer
        # (the broker sends a subscription's retained messages before the next one's).
        late = await self.ready_subscriber("sonos/+/cmd/+/result")
        self.assertEqual([topic for _, topic, _ in late.lines], ["sonos/bridge/availability"])

    async def test_command_topics_need_a_controller(self) -> None:
        """Without a controller the sink subscribes to nothing (no command topic); with one it
        subscribes to ``sonos/+/cmd/+``."""
        subscribed: list[str] = []

        def recording_client(config: MqttConfig) -> paho.Client:
            client = _default_client(config)
            subscribe = client.subscribe

            def record(topic: Any, *args: Any, **kwargs: Any) -> Any:
                subscribed.append(topic)
                return subscribe(topic, *args, **kwargs)

            client.subscribe = record  # type: ignore[method-assign]
            return client

        await self.broker.start()
        for controller, expected in ((None, []), (self.controller, ["sonos/+/cmd/+"])):
            sink = self.make_sink(controller=controller, client_factory=recording_client)
            # Connected means the CONNACK was handled: subscriptions are made by then.
            await self.start(sink)
            self.assertEqual(subscribed, expected)
            await sink.stopService()
            self.hub.remove_sink(sink)
            subscribed.clear()

    async def pub_bytes(self, topic: str, payload: bytes) -> None:
        """Publish a payload too large for a command line (from a file)."""
        path = os.path.join(self.directory, "payload")
        with open(path, "wb") as handle:
            handle.write(payload)
        await self.mosquitto_pub("-t", topic, "-f", path)

    async def test_hostile_command_payloads_keep_the_connection(self) -> None:
        """Payloads of 30,000 nested arrays, a megabyte, bytes that are not UTF-8, or echoing
        values that cannot be encoded are answered with bad_request; the MQTT connection stays
        up (no offline/online flap, no republish) and the next command runs."""
        await self.broker.start()
        sink = self.make_sink()
        self.publish_household()
        await self.start(sink)
        sub = self.subscriber("sonos/#")
        retained = (
            "sonos/bridge/availability",
            "sonos/bridge/topology/Sonos_1",
            "sonos/bridge/topology/Sonos_2",
            "sonos/Kitchen/state/RenderingControl",
            "sonos/Office/state/AVTransport",
            "sonos/Kitchen/availability",
            "sonos/Office/availability",
        )
        await sub.wait(lambda: all(sub.payloads(topic) for topic in retained), self.reactor)
        retained_before = len(sub.lines)
        await self.pub_bytes("sonos/Kitchen/cmd/volume", b"[" * 30_000 + b"]" * 30_000)
        await self.pub("sonos/Kitchen/cmd/volume", '{"request_id": "\\ud800"}')
        await self.pub_bytes("sonos/Kitchen/cmd/volume", b" " * 1_000_000)
        await self.pub_bytes("sonos/Kitchen/cmd/volume", b'{"volume": "\xff\xfe"}')
        await self.pub("sonos/Kitchen/cmd/volume", '{"volume": 12}')
        result = "sonos/Kitchen/cmd/volume/result"
        await sub.wait(sub.has(result, 5), self.reactor)
        answers = [json.loads(payload) for payload in sub.payloads(result)]
        self.assertEqual([a["ok"] for a in answers], [False, False, False, False, True])
        self.assertIn("nested 30000 levels deep", answers[0]["error"]["message"])
        self.assertIn("UTF-8", answers[3]["error"]["message"])
        self.assertEqual(
            sink.refused,
            {("mqtt", "too_deep"): 1, ("mqtt", "not_json"): 2, ("mqtt", "too_large"): 1},
        )
        self.assertEqual(self.controller.calls, [(KITCHEN["uid"], "volume", {"volume": 12})])
        self.assertEqual(sink.connects, 1)
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["online"])
        # Only the commands and their results arrived since: nothing was published again
        # (the gap report of the five events published before the first connection may
        # reach the subscriber late, as QoS 1).
        later = {topic for _, topic, _ in sub.lines[retained_before:]} - {"sonos/bridge/gap"}
        self.assertEqual(later, {"sonos/Kitchen/cmd/volume", result})

    async def test_a_result_topic_mqtt_refuses_is_a_warning(self) -> None:
        """A command whose topic holds a wildcard (a broker that does not check topics could
        deliver one; mosquitto cannot be made to) has a result topic MQTT refuses: the sink
        logs a warning and stays connected, nothing raises into paho's read loop."""
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        events = capture_logs(self)
        message = paho.MQTTMessage(topic=b"sonos/Kitchen/cmd/pl+ay")
        message.payload = b"{}"
        sink._on_message(sink._client, None, message)
        self.assertEqual(self.controller.calls, [("Kitchen", "pl+ay", {})])
        levels = [
            (e["log_level"], e.get("reason")) for e in events if e["log_level"] >= LogLevel.warn
        ]
        self.assertEqual(levels, [(LogLevel.warn, "bad_topic")])
        self.assertTrue(sink.connected)

    async def test_retained_command_not_run_again(self) -> None:
        """A command left retained on the broker is not run again when the sink reconnects
        (nor at start: a stale command never runs)."""
        await self.broker.start()
        await self.pub("sonos/Kitchen/cmd/previous", "{}", "-r")
        sink = self.make_sink()
        await self.start(sink)
        # The sink subscribes to commands before it says online: once that is seen, a
        # command published is live for it.
        await self.ready_subscriber("sonos/bridge/availability")
        # Live subscribers see a retained publish without the flag: it runs once.
        await self.pub("sonos/Kitchen/cmd/play", "{}", "-r")
        await self.until(lambda: len(self.controller.calls) >= 1)
        self.broker.stop()
        await self.until(lambda: not sink.connected)
        await self.broker.start()
        await self.until(lambda: sink.connected)
        await self.ready_subscriber("sonos/bridge/availability")
        await self.pub("sonos/Kitchen/cmd/next", "{}")
        await self.until(lambda: len(self.controller.calls) >= 2)
        self.assertEqual([c[1] for c in self.controller.calls], ["play", "next"])

    async def test_refusals_are_logged_once_per_reason_whatever_the_room(self) -> None:
        """Retained commands and bad payloads sent to many room topics are logged once per
        reason, not once per room: the broker is the one source (it does not say who
        published, and the room key is the sender's to choose); the rest are summed up in
        one line each, naming the last topic (docs/security.md, Logs)."""
        await self.broker.start()
        for room in ("Attic", "Cellar"):
            await self.pub(f"sonos/{room}/cmd/play", "{}", "-r")
        logs = capture_logs(self)
        sink = self.make_sink()
        await self.start(sink)
        sub = await self.ready_subscriber("sonos/+/cmd/volume/result")
        rooms = ("Kitchen", "Office", "Nowhere", "X1")
        for room in rooms:
            await self.pub(f"sonos/{room}/cmd/volume", "not json")
        await sub.wait(sub.has("sonos/X1/cmd/volume/result"), self.reactor)
        await sub.wait(
            lambda: len(sub.payloads("sonos/Nowhere/cmd/volume/result")) == 1, self.reactor
        )
        await sink.stopService()
        lines = [
            formatEvent(event)
            for event in logs
            if event.get("log_namespace") == "sonosd.sinks.mqtt"
            and any(
                word in event.get("log_format", "")
                for word in ("refused:", "retained command", "more like this")
            )
        ]
        broker = f"mqtt broker {self.broker.host}:{self.broker.port}"
        self.assertEqual(
            [line.partition(": ")[0] for line in lines],
            [
                "mqtt",
                "mqtt command volume for Kitchen refused",
                f"1 more like this from {broker} (retained) in the last 60 s; the last",
                f"3 more like this from {broker} (not_json) in the last 60 s; the last",
            ],
        )
        self.assertIn("ignored retained command sonos/Attic/cmd/play", lines[0])
        self.assertIn("the last: mqtt: ignored retained command sonos/Cellar/cmd/play", lines[2])
        self.assertIn("the last: mqtt command volume for X1 refused: ", lines[3])

    async def test_room_collision_and_rename(self) -> None:
        """A second speaker with a taken room name uses its uid; a renamed room moves its
        retained topics and clears the old ones."""
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        twin = {"uid": "RINCON_000E58A0999901400", "name": "Kitchen", "host": "127.0.0.4"}
        rc = {"seq": 0, "variables": {"volume": {"Master": 1}}}
        self.hub.publish("event", rc, speaker=KITCHEN, service="RenderingControl")
        self.hub.publish("event", rc, speaker=twin, service="RenderingControl")
        # A room name's /, + and # become _ (one topic level, no wildcard).
        renamed = dict(KITCHEN, name="Cuisine/Bar+#2")
        self.hub.publish("event", rc, speaker=renamed, service="RenderingControl")
        # A speaker without a room name yet publishes under its uid; so does one whose name
        # is too long for a topic level (MQTT refuses topics over 65,535 bytes).
        nameless = {"uid": "RINCON_000E58A0777701400", "name": None, "host": "127.0.0.5"}
        self.hub.publish("event", rc, speaker=nameless, service="RenderingControl")
        endless = {"uid": "RINCON_000E58A0666601400", "name": "x" * 70_000, "host": "127.0.0.6"}
        self.hub.publish("event", rc, speaker=endless, service="RenderingControl")
        cuisine = "sonos/Cuisine_Bar__2"
        first = self.subscriber()
        await first.wait(first.has(f"{cuisine}/state/RenderingControl"), self.reactor)
        sub = self.subscriber()
        await sub.wait(
            lambda: (
                bool(sub.payloads(f"{cuisine}/state/RenderingControl"))
                and bool(sub.payloads(f"sonos/{twin['uid']}/state/RenderingControl"))
                and bool(sub.payloads(f"sonos/{nameless['uid']}/state/RenderingControl"))
                and bool(sub.payloads(f"sonos/{endless['uid']}/state/RenderingControl"))
            ),
            self.reactor,
        )
        self.assertEqual(self.hub.sink_errors, 0)
        self.assertEqual(sub.payloads("sonos/Kitchen/state/RenderingControl"), [])
        self.assertEqual(sub.payloads(f"{cuisine}/availability"), ["online"])

    async def test_room_key_goes_to_the_visible_speaker(self) -> None:
        """A home theatre's sub that evented before its soundbar gives the room's key up
        when the topology says it is invisible: the room's retained topics become the
        soundbar's, the sub's move under its uid; an invisible member never takes a room's
        key again, even renamed."""
        await self.broker.start()
        sink = self.make_sink()
        await self.start(sink)
        room = "Living Room"
        bar = {"uid": "RINCON_BAR000000000001400", "name": room, "host": "127.0.0.5"}
        sub_ = {"uid": "RINCON_SUB000000000001400", "name": room, "host": "127.0.0.6"}
        for speaker, volume in ((sub_, 5), (bar, 30)):
            self.hub.publish("speaker.online", {"reason": "identified"}, speaker=speaker)
            rc = {"seq": 0, "variables": {"volume": {"Master": volume}}}
            self.hub.publish("event", rc, speaker=speaker, service="RenderingControl")
        sub = self.subscriber()
        state = f"sonos/{room}/state/RenderingControl"
        await sub.wait(sub.has(f"sonos/{bar['uid']}/state/RenderingControl"), self.reactor)
        self.assertEqual(self.state(sub, state)["speaker"]["uid"], sub_["uid"])
        satellite = dict(sub_, invisible=True, satellites=[])
        member = dict(bar, invisible=False, satellites=[satellite])
        self.hub.publish(
            "topology.changed",
            {"household": "Sonos_1", "groups": [{"coordinator": bar["uid"], "members": [member]}]},
        )

        def owner(topic: str) -> Any:
            payloads = sub.payloads(topic)
            return json.loads(payloads[-1])["speaker"]["uid"] if payloads and payloads[-1] else None

        await sub.wait(lambda: owner(state) == bar["uid"], self.reactor)
        own = f"sonos/{sub_['uid']}/state/RenderingControl"
        await sub.wait(sub.has(own), self.reactor)
        self.assertEqual(self.state(sub, own)["speaker"]["uid"], sub_["uid"])
        self.assertEqual(sub.payloads(f"sonos/{bar['uid']}/state/RenderingControl")[-1], "")
        self.assertEqual(sub.payloads(f"sonos/{room}/availability")[-1], "online")
        renamed = dict(sub_, name="Den")
        rc = {"seq": 1, "variables": {"volume": {"Master": 6}}}
        self.hub.publish("event", rc, speaker=renamed, service="RenderingControl")
        await sub.wait(lambda: master(self.state(sub, own)) == 6, self.reactor)
        self.assertEqual(sub.payloads("sonos/Den/state/RenderingControl"), [])

    async def test_home_assistant_discovery(self) -> None:
        """With Home Assistant enabled, each speaker's entities are announced, retained."""
        await self.broker.start()
        sink = self.make_sink(homeassistant=True)
        self.publish_household()
        await self.start(sink)
        sub = self.subscriber("homeassistant/#")
        node = "sonosd_" + KITCHEN["uid"]
        volume_topic = f"homeassistant/sensor/{node}/volume/config"
        await sub.wait(
            lambda: (
                bool(sub.payloads(volume_topic))
                and bool(sub.payloads(f"homeassistant/button/{node}/play/config"))
                and bool(
                    sub.payloads("homeassistant/binary_sensor/sonosd_bridge/connectivity/config")
                )
            ),
            self.reactor,
        )
        volume = json.loads(sub.payloads(volume_topic)[0])
        self.assertEqual(volume["state_topic"], "sonos/Kitchen/state/RenderingControl")
        self.assertEqual(volume["device"]["name"], "Kitchen")
        self.assertEqual(
            [a["topic"] for a in volume["availability"]],
            ["sonos/bridge/availability", "sonos/Kitchen/availability"],
        )

    async def test_other_prefixes_end_to_end(self) -> None:
        """With ``prefix: home/sonos`` and ``discovery_prefix: ha`` the retained state,
        availability, live events, discovery documents and command topics all live under
        those prefixes, and nothing is published under ``sonos/`` or ``homeassistant/``."""
        await self.broker.start()
        sink = self.make_sink(homeassistant=True, prefix="home/sonos", discovery_prefix="ha")
        self.publish_household()
        await self.start(sink)
        sub = self.subscriber("home/sonos/#", "ha/#", "sonos/#", "homeassistant/#")
        state = "home/sonos/Kitchen/state/RenderingControl"
        volume_config = f"ha/sensor/sonosd_{KITCHEN['uid']}/volume/config"
        retained = (state, "home/sonos/bridge/availability", volume_config)
        await sub.wait(lambda: all(sub.payloads(topic) for topic in retained), self.reactor)
        self.assertEqual(master(self.state(sub, state)), 25)
        self.assertEqual(sub.payloads("home/sonos/bridge/availability"), ["online"])
        document = json.loads(sub.payloads(volume_config)[-1])
        self.assertEqual(document["state_topic"], state)
        ids = self.publish_volumes(range(40, 41))
        event = "home/sonos/Kitchen/event/RenderingControl"
        await sub.wait(sub.has(event), self.reactor)
        self.assertEqual(json.loads(sub.payloads(event)[-1])["id"], ids[0])
        self.controller.answers["volume"] = {"volume": 12}
        await self.pub("home/sonos/Kitchen/cmd/volume", '{"volume": 12}')
        result = "home/sonos/Kitchen/cmd/volume/result"
        await sub.wait(sub.has(result), self.reactor)
        self.assertEqual(
            json.loads(sub.payloads(result)[0]), {"ok": True, "result": {"volume": 12}}
        )
        self.assertEqual(self.controller.calls, [(KITCHEN["uid"], "volume", {"volume": 12})])
        elsewhere = [t for _, t, _ in sub.lines if t.split("/")[0] not in ("home", "ha")]
        self.assertEqual(elsewhere, [])

    async def test_availability_statuses_and_removal(self) -> None:
        """Asleep and UPnP-off speakers are offline on their availability topic (Home
        Assistant's payloads); a removed speaker's retained topics and entities are cleared."""
        await self.broker.start()
        sink = self.make_sink(homeassistant=True)
        await self.start(sink)
        sub = self.subscriber("#")
        self.publish_household()
        node = "sonosd_" + KITCHEN["uid"]
        volume_topic = f"homeassistant/sensor/{node}/volume/config"
        await sub.wait(sub.has(volume_topic), self.reactor)
        availability = {"status": "asleep", "reason": "sleeping", "since": None}
        self.hub.publish(
            "speaker.asleep", {"reason": "sleeping", "availability": availability}, speaker=OFFICE
        )
        await sub.wait(sub.has("sonos/Office/event/speaker.asleep"), self.reactor)
        self.assertEqual(sub.payloads("sonos/Office/availability")[-1], "offline")
        self.hub.publish("speaker.online", {"reason": "woke up"}, speaker=OFFICE)
        await sub.wait(sub.has("sonos/Office/event/speaker.online"), self.reactor)
        self.assertEqual(sub.payloads("sonos/Office/availability")[-1], "online")
        upnp_off = {"status": "upnp_disabled", "reason": "HTTP 403", "since": None}
        self.hub.publish(
            "speaker.upnp_disabled",
            {"reason": "HTTP 403", "availability": upnp_off},
            speaker=OFFICE,
        )
        await sub.wait(sub.has("sonos/Office/event/speaker.upnp_disabled"), self.reactor)
        self.assertEqual(sub.payloads("sonos/Office/availability")[-1], "offline")
        self.hub.publish("speaker.removed", {"reason": "left household"}, speaker=KITCHEN)
        await sub.wait(lambda: sub.payloads(volume_topic)[-1:] == [""], self.reactor)
        self.assertEqual(sub.payloads("sonos/Kitchen/availability")[-1], "")
        self.assertEqual(sub.payloads("sonos/Kitchen/state/RenderingControl")[-1], "")
        self.assertEqual(len(sub.payloads("sonos/Kitchen/event/speaker.removed")), 1)
        later = self.subscriber("sonos/Kitchen/#")
        await deferLater(self.reactor, 0.5)
        self.assertEqual([line for line in later.lines if line[2]], [])


class MqttTlsTests(TestCase):
    """TLS to the broker, verified against a private CA, with the socket in the reactor."""

    async def test_tls_connection(self) -> None:
        """The sink connects over TLS (CA and host name checked) and its state is retained."""
        from twisted.internet import reactor

        directory = tempfile.mkdtemp(prefix="sonosd-mqtt-tls-")
        self.addCleanup(shutil.rmtree, directory)
        broker = Broker(reactor, directory, tls=True)
        self.addCleanup(broker.stop)
        await broker.start()
        pool = ThreadPool(1, 1, name="test-mqtt-tls")
        pool.start()
        self.addCleanup(pool.stop)
        config = MqttConfig(
            host=broker.host, port=broker.port, tls=True, ca_file=broker.ca_file, client_id="tls"
        )
        sink = MqttSink(
            reactor,  # type: ignore[arg-type]
            config,
            lambda fn: deferToThreadPool(reactor, pool, fn),  # type: ignore[arg-type]
        )
        hub = Hub(reactor)  # type: ignore[arg-type]
        hub.add_sink(sink)
        sink.startService()
        self.addCleanup(lambda: sink.stopService() if sink.running else None)
        for n in range(50):
            hub.publish(
                "event",
                {"seq": n, "variables": {"volume": {"Master": n}}},
                speaker=KITCHEN,
                service="RenderingControl",
            )
        sub = Subscriber(reactor, broker, "sonos/#")
        self.addCleanup(sub.stop)
        topic = "sonos/Kitchen/state/RenderingControl"
        await sub.wait(
            lambda: any(
                json.loads(p)["variables"]["volume"]["Master"] == 49 for p in sub.payloads(topic)
            ),
            reactor,
        )
        self.assertTrue(sink.connected)
        await sink.stopService()


class ConnectRetryTests(SynchronousTestCase):
    """Reconnection timing, with a Clock and a connect that always fails."""

    def unreachable(self, **kwargs: Any) -> tuple[Clock, MqttSink, list[float]]:
        """A started sink on a Clock whose every connect is refused; the attempts' times."""
        clock = Clock()
        attempts: list[float] = []

        def run_blocking(fn: Callable[[], Any]) -> Deferred[Any]:
            attempts.append(clock.seconds())
            return fail(ConnectionRefusedError())

        sink = MqttSink(
            clock,  # type: ignore[arg-type]
            MqttConfig(host="127.0.0.1", port=1),
            run_blocking,
            **kwargs,
        )
        sink.startService()
        return clock, sink, attempts

    def test_backoff_while_broker_unreachable(self) -> None:
        """Failed connects are retried after growing, jittered, capped delays."""
        clock, sink, attempts = self.unreachable(
            backoff_initial=1.0, backoff_max=8.0, random=lambda: 1.0
        )
        clock.pump([0.5] * 60)
        gaps = [b - a for a, b in itertools.pairwise(attempts)]
        self.assertEqual(gaps[:5], [1.0, 2.0, 4.0, 8.0, 8.0])
        self.successResultOf(sink.stopService())
        count = len(attempts)
        clock.pump([1.0] * 30)
        self.assertEqual(len(attempts), count)

    def test_default_backoff(self) -> None:
        """By default the first retry comes after 0.5-1 s, then the delay doubles up to
        60 s (docs/mqtt.md), at either end of the jitter."""
        for jitter, first in ((0.0, 0.5), (1.0, 1.0)):
            clock, sink, attempts = self.unreachable(random=lambda jitter=jitter: jitter)
            clock.pump([0.25] * 2000)
            gaps = [b - a for a, b in itertools.pairwise(attempts)]
            doubling = [first * 2**n for n in range(7)]
            cap = 60.0 * first
            self.assertEqual(gaps[:9], [min(cap, gap) for gap in doubling] + [cap, cap])
            self.successResultOf(sink.stopService())

    def test_messages_while_never_connected_are_counted(self) -> None:
        """Events that cannot be published are counted, and state is kept for later."""
        clock = Clock()
        sink = MqttSink(
            clock,  # type: ignore[arg-type]
            MqttConfig(),
            lambda fn: Deferred(),
        )
        hub = Hub(clock)
        hub.add_sink(sink)
        hub.publish(
            "event",
            {"variables": {"volume": {"Master": 5}}},
            speaker=KITCHEN,
            service="RenderingControl",
        )
        self.assertEqual(sink.missed, 1)
        self.assertFalse(sink.connected)
        # Stopped before any broker took them: counted in one warning (docs/deployment.md,
        # SIGTERM: what is left is "dropped and counted in a warning").
        logs = capture_logs(self)
        self.successResultOf(sink.stopService())
        said = [formatEvent(e) for e in logs if "not delivered at shutdown" in formatEvent(e)]
        self.assertEqual(said, ["mqtt broker 127.0.0.1:1883: 1 messages not delivered at shutdown"])


class TakeOverTests(SynchronousTestCase):
    """A reload's new sink starts from what the old one knew."""

    def test_the_old_sinks_gap_is_the_new_ones_to_report(self) -> None:
        """The events a sink that never reached its broker could not publish (a wrong
        address, fixed by a reload) are counted by the sink that replaces it, to be
        reported on ``bridge/gap`` at its first connect, with the state it merged."""
        clock = Clock()
        old = MqttSink(clock, MqttConfig(port=1), lambda fn: Deferred())  # type: ignore[arg-type]
        hub = Hub(clock)
        hub.add_sink(old)
        ids = [
            hub.publish(
                "event",
                {"variables": {"volume": {"Master": n}}},
                speaker=KITCHEN,
                service="RenderingControl",
            ).id
            for n in range(3)
        ]
        new = MqttSink(clock, MqttConfig(), lambda fn: Deferred())  # type: ignore[arg-type]
        new.take_over(old)
        self.assertEqual((new.missed, new._missed_first, new._missed_last), (3, ids[0], ids[-1]))
        self.assertEqual(
            new._state[KITCHEN["uid"]]["RenderingControl"]["variables"], {"volume": {"Master": 2}}
        )
        # The old one's stop does not count them as undelivered again.
        logs = capture_logs(self)
        self.successResultOf(old.stopService())
        self.assertEqual([e for e in logs if "not delivered" in formatEvent(e)], [])


class ClearingBoundTests(SynchronousTestCase):
    """What the sink remembers to clear while the broker is away is bounded."""

    def test_a_room_renamed_without_end_costs_at_most_max_unsent_topics(self) -> None:
        """A speaker renaming its room again and again while the broker is unreachable
        leaves old topics to clear at the reconnect: past ``max_unsent`` of them the oldest
        is given up, with a warning naming it."""
        clock = Clock()
        sink = MqttSink(
            clock,  # type: ignore[arg-type]
            MqttConfig(),
            lambda fn: Deferred(),
            max_unsent=3,
        )
        hub = Hub(clock)
        hub.add_sink(sink)
        events = capture_logs(self)
        rc = {"variables": {"volume": {"Master": 5}}}
        for n in range(6):
            room = dict(KITCHEN, name=f"Room {n}")
            hub.publish("event", rc, speaker=room, service="RenderingControl")
        given_up = [e["topic"] for e in events if "too many retained topics" in e["log_format"]]
        # Five renames, two topics each (availability, state): the first seven given up.
        self.assertEqual(len(given_up), 7)
        self.assertEqual(given_up[0], "sonos/Room 0/availability")
        self.assertEqual(len(sink._clears), 3)


class KeepaliveCheckTests(SynchronousTestCase):
    """How often the reactor runs paho's keep-alive check."""

    def test_the_ping_leaves_before_the_broker_gives_up(self) -> None:
        """paho pings once the keep-alive passed without a packet out, seen at the next
        check: for every keep-alive, 1 s included, that is before the broker's 1.5 x
        (docs/mqtt.md, How it is built); once a second for the default 30 s."""
        for keepalive in (1, 2, 3, 4, 5, 10, 30, 65535):
            latest = keepalive + keepalive_check_interval(keepalive)
            self.assertLessEqual(latest, 1.25 * keepalive, keepalive)
        self.assertEqual(keepalive_check_interval(30), 1.0)


class HostileTopicTests(SynchronousTestCase):
    """What a broker that does not check topics could deliver (mosquitto refuses these, so
    the broker-backed tests cannot send them)."""

    def test_a_topic_that_is_not_utf8_is_no_command(self) -> None:
        """A message whose topic is not UTF-8 (paho's ``topic`` would raise decoding it) is
        ignored as no command topic: nothing raises into paho's read loop, nothing is logged
        as a failure, and the controller is not called (docs/security.md, MQTT)."""
        controller = FakeController()
        sink = MqttSink(
            Clock(),  # type: ignore[arg-type]
            MqttConfig(),
            lambda fn: Deferred(),
            controller=controller,
        )
        events = capture_logs(self)
        message = paho.MQTTMessage(topic=b"sonos/K\xfcche/cmd/volume")
        message.payload = b'{"volume": 10}'
        sink._on_message(sink._client, None, message)
        self.assertEqual(controller.calls, [])
        self.assertEqual([e for e in events if e["log_level"] >= LogLevel.warn], [])
        # A command topic that is UTF-8 still runs (the same sink, the same path).
        message = paho.MQTTMessage(topic="sonos/Küche/cmd/volume".encode())
        message.payload = b'{"volume": 10}'
        sink._on_message(sink._client, None, message)
        self.assertEqual(controller.calls, [("Küche", "volume", {"volume": 10})])
