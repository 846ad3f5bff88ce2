"""End-to-end test of MQTT commands: the whole daemon, its simulated household and a real
mosquitto broker on a private loopback address, driven with ``mosquitto_pub``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogLevel
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.sim.service import HouseholdService
from tests.control.test_controller_daemon import sse, start_daemon
from tests.daemon_helpers import daemon_yaml, reactor, until
from tests.sinks.test_callbacks import capture_logs
from tests.sinks.test_mqtt import MOSQUITTO_PUB, MOSQUITTO_SUB, WAIT, Broker, Subscriber
from tests.test_daemon_process import (
    Processes,
    processes,  # noqa: F401 (a fixture)
    wait_for,
)


class _Ended(ProcessProtocol):
    def __init__(self) -> None:
        self.done: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.done.callback(None)


async def publish(broker: Broker, topic: str, payload: str, retain: bool = False) -> None:
    """Publish ``payload`` on ``topic`` with ``mosquitto_pub`` (not retained unless
    ``retain``)."""
    args = [MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port), "-q", "1"]
    args += ["-t", topic, "-m", payload] + (["-r"] if retain else [])
    ended = _Ended()
    reactor.spawnProcess(ended, MOSQUITTO_PUB, args, env=os.environ)
    await ended.done.addTimeout(WAIT, reactor)


def master_volume(payload: str) -> Any:
    """The master volume of a RenderingControl state or event payload."""
    return (json.loads(payload).get("variables", {}).get("volume") or {}).get("Master")


def carries_volume(sub: Subscriber, topic: str, volume: int) -> Callable[[], bool]:
    """Whether ``sub`` received a payload on ``topic`` with master volume ``volume``."""
    return lambda: volume in [master_volume(payload) for payload in sub.payloads(topic)]


async def broker_and_subscriber(case: TestCase) -> tuple[Broker, Subscriber, dict[str, Any]]:
    """A private mosquitto, a ``mosquitto_sub`` of ``sonos/#``, and the daemon's ``mqtt``
    section for that broker; all stopped when ``case`` ends."""
    directory = tempfile.mkdtemp(prefix="sonosd-mqtt-daemon-")
    case.addCleanup(shutil.rmtree, directory)
    broker = Broker(reactor, directory)
    case.addCleanup(broker.stop)
    await broker.start()
    sub = Subscriber(reactor, broker, "sonos/#")
    case.addCleanup(sub.stop)
    mqtt = {"host": broker.host, "port": broker.port, "client_id": f"sonosd-{os.getpid()}"}
    return broker, sub, mqtt


class MqttDaemonTests(TestCase):
    """Commands published to the broker run on the simulated speakers."""

    timeout = 60

    async def test_volume_command(self) -> None:
        """``sonos/Kitchen/cmd/volume`` sets the simulated volume, the change reaches the
        state and event topics, and results and errors are published on ``.../result``."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(self, sinks={"mqtt": mqtt})
        kitchen = daemon.speaker(0)
        stream = await sse(self, daemon)
        # The sink subscribes to the command topics before it publishes its availability.
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)

        await publish(broker, "sonos/Kitchen/cmd/volume", '{"volume": 27, "request_id": "r1"}')
        result = "sonos/Kitchen/cmd/volume/result"
        await sub.wait(sub.has(result), reactor)
        self.assertEqual(
            json.loads(sub.payloads(result)[0]),
            {"ok": True, "result": {"volume": 27}, "request_id": "r1"},
        )
        self.assertEqual(kitchen.rendering.volume, 27)
        for topic in (
            "sonos/Kitchen/event/RenderingControl",
            "sonos/Kitchen/state/RenderingControl",
        ):
            await sub.wait(carries_volume(sub, topic, 27), reactor)
        # The event's payload is byte for byte what the SSE channel sends (docs/mqtt.md).
        events = sub.payloads("sonos/Kitchen/event/RenderingControl")
        event = next(payload for payload in events if master_volume(payload) == 27)
        ident = json.loads(event)["id"]
        await until(lambda: ident in [m.get("id") for m in stream.messages()], "the SSE event")
        sent = [
            line.removeprefix(b"data: ")
            for line in stream.body.split(b"\n")
            if line.startswith(b"data: ") and json.loads(line[6:]).get("id") == ident
        ]
        self.assertEqual(sent, [event.encode()])

        await publish(broker, "sonos/Kitchen/cmd/volume", '{"volume": 101}')
        await publish(broker, "sonos/Attic/cmd/play", "")
        await sub.wait(sub.has(result, 2), reactor)
        await sub.wait(sub.has("sonos/Attic/cmd/play/result"), reactor)
        refused = json.loads(sub.payloads(result)[1])
        self.assertEqual(
            (refused["ok"], refused["status"], refused["error"]["code"]),
            (False, 400, "bad_argument"),
        )
        self.assertTrue(refused["error"]["message"].startswith("volume: "))
        unknown = json.loads(sub.payloads("sonos/Attic/cmd/play/result")[0])
        self.assertEqual(
            (unknown["ok"], unknown["status"], unknown["error"]["code"]),
            (False, 404, "unknown_speaker"),
        )
        self.assertEqual(kitchen.rendering.volume, 27)

        # docs/mqtt.md's second example: a command to a speaker that is offline, answered with
        # the status and error object the HTTP API gives.
        office = daemon.speaker(2)
        await office.go_offline("refuse")
        self.addCleanup(office.come_online)
        await publish(broker, f"sonos/{office.name}/cmd/play", "")
        played = f"sonos/{office.name}/cmd/play/result"
        await sub.wait(sub.has(played), reactor)
        answer = json.loads(sub.payloads(played)[0])
        status, body = await daemon.post(office.uid, "play")
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        self.assertEqual((answer["ok"], answer["status"]), (False, status))
        self.assertEqual(
            (answer["error"]["code"], set(answer["error"])), ("offline", set(body["error"]))
        )

    async def test_payload_bounds_are_32_levels_and_64_kib(self) -> None:
        """A command payload nested 32 levels deep or of 64 KiB reaches the controller; one
        level or one byte more is ``bad_request`` naming the bound, counted in
        ``sonosd_client_errors_total{channel="mqtt"}``, and the connection stays up."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(self, sinks={"mqtt": mqtt})
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)

        def nested(depth: int) -> str:
            return '{"deep": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"

        def sized(size: int) -> str:
            head = '{"volume": 20, "request_id": "'
            return head + "x" * (size - len(head) - 2) + '"}'

        assert len(sized(65_536)) == 65_536
        topic, result = "sonos/Kitchen/cmd/volume", "sonos/Kitchen/cmd/volume/result"
        for payload in (nested(32), nested(33), sized(65_536), sized(65_537)):
            await publish(broker, topic, payload)
        await sub.wait(sub.has(result, 4), reactor)
        # Results come as each command ends: refusals at once, the volume after its call.
        answers = [json.loads(payload) for payload in sub.payloads(result)]
        [done] = [answer for answer in answers if answer["ok"]]
        self.assertEqual(done["result"], {"volume": 20})
        errors = {a["error"]["message"]: a["error"]["code"] for a in answers if not a["ok"]}
        self.assertEqual(sorted(errors.values()), ["bad_argument", "bad_request", "bad_request"])
        # Within the bounds the arguments are the controller's to judge.
        [argument] = [text for text, code in errors.items() if code == "bad_argument"]
        self.assertTrue(argument.startswith("deep"), argument)
        refusals = [text for text, code in errors.items() if code == "bad_request"]
        self.assertEqual(len([text for text in refusals if "over the limit of 32" in text]), 1)
        self.assertEqual(len([text for text in refusals if "65536" in text]), 1)
        # The same status and error object as the HTTP API gives for the same arguments.
        [too_deep] = [
            a for a in answers if not a["ok"] and "over the limit of 32" in a["error"]["message"]
        ]
        status, body = await daemon.post(daemon.speaker(0).uid, "volume", json.loads(nested(33)))
        self.assertEqual(too_deep, {"ok": False, "status": status, **body})
        self.assertEqual(status, 400)
        response = await daemon.http.get(daemon.url("/api/v1/metrics"))
        metrics = await response.text()
        for reason in ("too_deep", "too_large"):
            self.assertIn(
                f'sonosd_client_errors_total{{channel="mqtt",reason="{reason}"}} 1.0', metrics
            )
        self.assertEqual(sub.payloads("sonos/bridge/availability"), ["online"])

    async def test_retained_command_is_ignored(self) -> None:
        """A command left retained on the broker is not run when the daemon subscribes (it
        would run again at every reconnect) and gets no result, and the daemon logs that it
        ignored it; a live one after it runs."""
        logs = capture_logs(self)
        broker, sub, mqtt = await broker_and_subscriber(self)
        topic, result = "sonos/Kitchen/cmd/volume", "sonos/Kitchen/cmd/volume/result"
        await publish(broker, topic, '{"volume": 5, "request_id": "retained"}', retain=True)
        await sub.wait(sub.has(topic), reactor)
        daemon = await start_daemon(self, sinks={"mqtt": mqtt})
        kitchen = daemon.speaker(0)
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)
        # The broker sent the retained command when the sink subscribed, before this one.
        await publish(broker, topic, '{"volume": 27, "request_id": "live"}')
        await sub.wait(sub.has(result), reactor)
        await sub.wait(carries_volume(sub, "sonos/Kitchen/event/RenderingControl", 27), reactor)
        self.assertEqual(
            [json.loads(payload)["request_id"] for payload in sub.payloads(result)], ["live"]
        )
        self.assertEqual(kitchen.rendering.volume, 27)
        volumes = [master_volume(p) for p in sub.payloads("sonos/Kitchen/event/RenderingControl")]
        self.assertNotIn(5, volumes)
        ignored = [e for e in logs if "ignored retained command" in e.get("log_format", "")]
        self.assertEqual([(e["log_level"], e["topic"]) for e in ignored], [(LogLevel.warn, topic)])

    async def test_home_theatre_room_topics_belong_to_the_soundbar(self) -> None:
        """In a home theatre whose sub and surrounds are followed too, the room's state,
        availability and command topics belong to its visible soundbar, whichever speaker
        evented first; the invisible satellites publish under their own uids, as does the
        hidden half of a stereo pair followed beside it."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(
            self,
            sinks={"mqtt": mqtt},
            simulate={
                "speakers": 6,
                "stereo_pair": True,
                "home_theatre": True,
                "rooms": ["Kitchen", "Pantry", "Living Room"],
            },
        )
        left, right, bar, *satellites = daemon.household.speakers
        self.assertEqual([s.name for s in satellites], ["Living Room"] * 3)
        self.assertEqual((right.name, right.invisible), ("Kitchen", True))
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)
        room = "sonos/Living Room/state/RenderingControl"

        def speaker_of(topic: str) -> Any:
            payloads = sub.payloads(topic)
            return json.loads(payloads[-1])["speaker"]["uid"] if payloads else None

        for satellite in (*satellites, right):
            topic = f"sonos/{satellite.uid}/state/RenderingControl"
            await sub.wait(lambda t=topic, s=satellite: speaker_of(t) == s.uid, reactor)
        await sub.wait(lambda: speaker_of(room) == bar.uid, reactor)
        pair_room = "sonos/Kitchen/state/RenderingControl"
        await sub.wait(lambda: speaker_of(pair_room) == left.uid, reactor)
        self.assertEqual(sub.payloads("sonos/Kitchen/availability")[-1], "online")
        self.assertEqual(sub.payloads("sonos/Living Room/availability")[-1], "online")

        bar.set_volume(33)
        await sub.wait(carries_volume(sub, room, 33), reactor)
        events = sub.payloads("sonos/Living Room/event/RenderingControl")
        self.assertEqual(
            {json.loads(payload)["speaker"]["uid"] for payload in events[-1:]}, {bar.uid}
        )
        await publish(broker, "sonos/Living Room/cmd/volume", '{"volume": 21}')
        result = "sonos/Living Room/cmd/volume/result"
        await sub.wait(sub.has(result), reactor)
        self.assertEqual(
            json.loads(sub.payloads(result)[0]), {"ok": True, "result": {"volume": 21}}
        )
        self.assertEqual(bar.rendering.volume, 21)
        await sub.wait(carries_volume(sub, room, 21), reactor)

        # Renamed, with the soundbar's NOTIFYs late: the satellites' events carry the new
        # name first, and still the new room's topics go to the soundbar.
        assert bar.manager is not None
        bar.manager.faults.delay = 1.0
        bar.rename("Den")
        den = "sonos/Den/state/RenderingControl"
        await sub.wait(lambda: speaker_of(den) == bar.uid, reactor)
        await sub.wait(lambda: sub.payloads(room)[-1:] == [""], reactor)
        await sub.wait(lambda: sub.payloads("sonos/Den/availability")[-1:] == ["online"], reactor)
        bar.manager.faults.delay = 0.0
        bar.set_volume(44)
        await sub.wait(carries_volume(sub, den, 44), reactor)
        den_topics = [topic for _, topic, _ in sub.lines if topic.startswith("sonos/Den/")]
        owners = {
            json.loads(payload)["speaker"]["uid"]
            for topic in set(den_topics)
            if "/state/" in topic or "/event/" in topic
            for payload in sub.payloads(topic)
            if payload
        }
        self.assertEqual(owners, {bar.uid})

    async def test_a_separated_pairs_freed_speaker_publishes_under_its_uid(self) -> None:
        """After a stereo pair made and separated at runtime both speakers carry the room's
        name: the room's topics stay the left speaker's throughout, and the freed right
        speaker's availability, state, events and commands use the topics under its uid
        (mqtt.md's rule for a room name another speaker already uses)."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(self, listed=1, sinks={"mqtt": mqtt})
        _, left, right = daemon.household.speakers
        room, old = left.name, right.name
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)
        availability = f"sonos/{old}/availability"
        await sub.wait(lambda: sub.payloads(availability)[-1:] == ["online"], reactor)
        left.household.pair(left, right)
        await until(lambda: daemon.recorder.of("speaker.removed", right.uid), "removed")
        await sub.wait(lambda: sub.payloads(availability)[-1:] == [""], reactor)
        # The removal's event (QoS 1) may reach the subscriber after the cleared availability
        # (QoS 0): MQTT orders messages within one QoS only.
        await sub.wait(sub.has(f"sonos/{old}/event/speaker.removed"), reactor)
        separated = len(sub.lines)
        left.household.unpair(left)
        await until(
            lambda: daemon.service.state.availability(right.uid).status == "online", "followed"
        )
        self.assertEqual(right.name, room)
        own = f"sonos/{right.uid}"

        def speaker_of(topic: str) -> Any:
            payloads = sub.payloads(topic)
            return json.loads(payloads[-1])["speaker"]["uid"] if payloads and payloads[-1] else None

        await sub.wait(lambda: sub.payloads(f"{own}/availability")[-1:] == ["online"], reactor)
        await sub.wait(lambda: speaker_of(f"{own}/state/RenderingControl") == right.uid, reactor)
        right.set_volume(right.rendering.volume % 40 + 7)
        for topic in (f"{own}/state/RenderingControl", f"{own}/event/RenderingControl"):
            await sub.wait(carries_volume(sub, topic, right.rendering.volume), reactor)
        left.set_volume(right.rendering.volume + 5)
        await sub.wait(
            carries_volume(sub, f"sonos/{room}/state/RenderingControl", left.rendering.volume),
            reactor,
        )
        await publish(broker, f"{own}/cmd/volume", '{"volume": 9}')
        await sub.wait(sub.has(f"{own}/cmd/volume/result"), reactor)
        await publish(broker, f"sonos/{room}/cmd/volume", '{"volume": 19}')
        await sub.wait(sub.has(f"sonos/{room}/cmd/volume/result"), reactor)
        self.assertEqual((right.rendering.volume, left.rendering.volume), (9, 19))
        await sub.wait(carries_volume(sub, f"{own}/state/RenderingControl", 9), reactor)
        await sub.wait(carries_volume(sub, f"sonos/{room}/state/RenderingControl", 19), reactor)
        self.assertEqual(sub.payloads(f"sonos/{room}/availability")[-1], "online")
        owners = {
            json.loads(payload)["speaker"]["uid"]
            for _, topic, payload in sub.lines
            if topic.startswith(f"sonos/{room}/")
            and ("/state/" in topic or "/event/" in topic)
            and payload
        }
        self.assertEqual(owners, {left.uid})
        late = [
            topic
            for _, topic, payload in sub.lines[separated:]
            if topic.startswith(f"sonos/{old}/") and payload
        ]
        self.assertEqual(late, [])

    async def test_asleep_awake_and_removed_on_the_availability_topic(self) -> None:
        """A simulated portable that falls asleep is ``offline`` on its availability topic
        (``speaker.asleep`` on its event topic says why) and ``online`` again once awake; a
        speaker that leaves its household (``speaker.removed``) has its retained topics and
        its Home Assistant entities cleared."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        entities = Subscriber(reactor, broker, "homeassistant/#")
        self.addCleanup(entities.stop)
        daemon = await start_daemon(
            self,
            lambda clock, simulate: HouseholdService(clock, simulate, transition_delay=0.01),
            listed=1,
            sinks={"mqtt": {**mqtt, "homeassistant": True}},
            simulate={"models": ["S18", "S27", "S18"]},
        )
        _, roam, third = daemon.household.speakers
        for speaker in (roam, third):
            available = f"sonos/{speaker.name}/availability"
            await sub.wait(lambda t=available: sub.payloads(t)[-1:] == ["online"], reactor)
        available = f"sonos/{roam.name}/availability"
        await roam.sleep()
        await sub.wait(sub.has(f"sonos/{roam.name}/event/speaker.asleep"), reactor)
        await sub.wait(lambda: sub.payloads(available)[-1:] == ["offline"], reactor)
        await roam.wake()
        await sub.wait(sub.has(f"sonos/{roam.name}/event/speaker.online"), reactor)
        await sub.wait(lambda: sub.payloads(available)[-1:] == ["online"], reactor)

        volume = f"homeassistant/sensor/sonosd_{third.uid}/volume/config"
        await entities.wait(entities.has(volume), reactor)
        # The departed speaker's last view holds the others back until the settle timeout.
        daemon.service.processor.settle_timeout = 2.0
        third.leave_household()
        own = f"sonos/{third.name}/"
        await sub.wait(sub.has(f"{own}event/speaker.removed"), reactor)
        await sub.wait(lambda: sub.payloads(f"{own}availability")[-1:] == [""], reactor)
        await entities.wait(lambda: entities.payloads(volume)[-1:] == [""], reactor)
        # Nothing of it stays retained on the broker: a new subscriber gets the retained
        # messages of its topics in the order subscribed, the bridge's availability last.
        documents = f"homeassistant/+/sonosd_{third.uid}/+/config"
        late = Subscriber(reactor, broker, f"{own}#", documents, "sonos/bridge/availability")
        self.addCleanup(late.stop)
        await late.wait(late.has("sonos/bridge/availability"), reactor)
        self.assertEqual([topic for _, topic, _ in late.lines], ["sonos/bridge/availability"])

    async def test_a_reloaded_sink_publishes_the_current_state_under_its_new_prefix(
        self,
    ) -> None:
        """A reload that changes ``sinks.mqtt`` (here its prefix) replaces the sink: the old
        one leaves ``offline`` on its bridge availability; the new one publishes at once the
        current state of every speaker, their availability and the topology under the new
        prefix (not only as the next events come), and takes commands there."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(self, sinks={"mqtt": mqtt})
        kitchen = daemon.speaker(0)
        await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)
        home = Subscriber(reactor, broker, "home/#")
        self.addCleanup(home.stop)
        service = daemon.service
        config = service.config
        assert config.sinks.mqtt is not None
        moved = attrs.evolve(config.sinks.mqtt, prefix="home")
        old = service.sinks["mqtt"]
        service.reload(attrs.evolve(config, sinks=attrs.evolve(config.sinks, mqtt=moved)))
        # Both use the same client id: the broker may drop the old one as the new one logs
        # in, before the old one's offline is acknowledged; its stop ends then all the same.
        await until(lambda: not old._acked and old._descriptor is None, "the old sink stopped")
        retained = [
            "home/bridge/availability",
            f"home/bridge/topology/{daemon.household.household_id}",
            *(f"home/{s.name}/availability" for s in daemon.household.speakers),
            *(f"home/{s.name}/state/RenderingControl" for s in daemon.household.speakers),
            *(f"home/{s.name}/state/AVTransport" for s in daemon.household.speakers),
        ]
        await home.wait(lambda: all(home.payloads(topic) for topic in retained), reactor)
        rendering = json.loads(home.payloads("home/Kitchen/state/RenderingControl")[-1])
        self.assertEqual(rendering["variables"]["volume"]["Master"], kitchen.rendering.volume)
        self.assertEqual(retained_now(broker, "sonos/bridge/availability"), "1 offline")
        await publish(broker, "home/Kitchen/cmd/volume", '{"volume": 17}')
        await home.wait(home.has("home/Kitchen/cmd/volume/result"), reactor)
        self.assertEqual(kitchen.rendering.volume, 17)

        # Reloaded again on the same prefix (Home Assistant switched on): the old sink's
        # offline never outlasts the new one's online, and the entities come at once.
        config = service.config
        assert config.sinks.mqtt is not None
        old = service.sinks["mqtt"]
        announced = attrs.evolve(config.sinks.mqtt, homeassistant=True)
        service.reload(attrs.evolve(config, sinks=attrs.evolve(config.sinks, mqtt=announced)))
        await until(lambda: not old._acked and old._descriptor is None, "the old sink stopped")
        await until(lambda: service.sinks["mqtt"].connected, "the new sink connected")
        entity = f"homeassistant/sensor/sonosd_{kitchen.uid}/volume/config"
        late = Subscriber(reactor, broker, entity, "home/bridge/availability")
        self.addCleanup(late.stop)
        await late.wait(lambda: bool(late.payloads(entity)), reactor)
        await late.wait(late.has("home/bridge/availability"), reactor)
        self.assertEqual(
            [line for line in late.lines if line[1] == "home/bridge/availability"],
            [(True, "home/bridge/availability", "online")],
        )

    async def test_two_households_keep_their_own_topics(self) -> None:
        """With two simulated households, each has its own retained topology and alarm
        topics holding only its own speakers and alarms, and a command to a speaker of the
        second household runs on that speaker."""
        broker, sub, mqtt = await broker_and_subscriber(self)
        daemon = await start_daemon(
            self,
            sinks={"mqtt": mqtt},
            simulate={
                "speakers": 4,
                "households": 2,
                "rooms": ["Kitchen", "Office", "Garden", "Study"],
            },
        )
        simulator = daemon.service.simulator
        assert isinstance(simulator, HouseholdService)
        one, two = simulator.households
        self.assertNotEqual(one.household_id, two.household_id)

        def last(topic: str) -> Any:
            payloads = sub.payloads(topic)
            return json.loads(payloads[-1]) if payloads and payloads[-1] else None

        for household in (one, two):
            topology = f"sonos/bridge/topology/{household.household_id}"
            alarms = f"sonos/bridge/alarms/{household.household_id}"
            await sub.wait(lambda t=topology, a=alarms: last(t) and last(a), reactor)
            members = {
                member["uid"] for group in last(topology)["groups"] for member in group["members"]
            }
            self.assertEqual(members, {s.uid for s in household.speakers})
            listed = last(alarms)
            self.assertEqual(listed["household"], household.household_id)
            self.assertEqual(
                {(a["id"], a["room"]["uid"]) for a in listed["alarms"]},
                {(a.alarm_id, a.room_uid) for a in household.alarms},
            )
        study = two.speakers[1]
        self.assertEqual(study.name, "Study")
        await publish(broker, "sonos/Study/cmd/volume", '{"volume": 13}')
        await sub.wait(sub.has("sonos/Study/cmd/volume/result"), reactor)
        self.assertEqual(study.rendering.volume, 13)
        await sub.wait(carries_volume(sub, "sonos/Study/state/RenderingControl", 13), reactor)


def retained_now(broker: Broker, topic: str) -> str | None:
    """The message retained on ``topic`` as ``"<retained flag> <payload>"``, read by a fresh
    ``mosquitto_sub``; ``None`` when none came within 3 s."""
    command = [MOSQUITTO_SUB, "-h", broker.host, "-p", str(broker.port), "-t", topic]
    done = subprocess.run(
        [*command, "-C", "1", "-W", "3", "-F", "%r %p"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def mqtt_daemon(
    processes: Processes,  # noqa: F811
    directory: Path,
    **mqtt: object,
) -> tuple[subprocess.Popen[bytes], Broker, str]:
    """A logging mosquitto and ``twistd sonosd`` (following no speaker) publishing to it with
    these ``mqtt`` settings: the daemon, the broker (the caller stops it with L{done_with})
    and the daemon's client id."""
    # Not under tmp_path: mosquitto drops to its own user, who must reach its log file.
    broker_dir = tempfile.mkdtemp(prefix="sonosd-mqtt-process-")
    broker = Broker(reactor, broker_dir, log=True)
    broker.launch()
    wait_for(broker.listening, "mosquitto listening")
    client_id = f"sonosd-process-{os.getpid()}"
    document = json.loads(daemon_yaml("127.0.0.2", simulate=False))
    document["sinks"] = {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": client_id, **mqtt}
    }
    config = directory / "sonosd.yaml"
    config.write_text(json.dumps(document))
    return processes.start("daemon", "sonosd", "-c", str(config)), broker, client_id


def done_with(broker: Broker) -> None:
    """Stop ``broker`` and remove its directory."""
    broker.stop()
    shutil.rmtree(os.path.dirname(broker.config))


def test_default_keepalive_handed_to_the_broker_is_30_seconds(
    processes: Processes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``twistd sonosd`` with no ``mqtt.keepalive`` connects asking the broker for a 30 s
    keep-alive (the broker's log shows ``k30``), the value docs/mqtt.md gives."""
    daemon, broker, client_id = mqtt_daemon(processes, tmp_path)
    try:
        lines = wait_for(lambda: broker.connect_lines(client_id), "the daemon connected")
        assert daemon.poll() is None, processes.output(daemon)
        assert " k30)" in lines[0], lines
    finally:
        done_with(broker)


def test_sigkilled_daemon_leaves_offline_as_the_retained_last_will(
    processes: Processes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A ``twistd sonosd`` with ``mqtt.keepalive: 2`` killed with SIGKILL (no DISCONNECT) is
    marked ``offline`` on the bridge availability, retained, by the broker's last will."""
    daemon, broker, client_id = mqtt_daemon(processes, tmp_path, keepalive=2)
    topic = "sonos/bridge/availability"
    try:
        lines = wait_for(lambda: broker.connect_lines(client_id), "the daemon connected")
        assert " k2)" in lines[0], lines
        wait_for(lambda: retained_now(broker, topic) == "1 online", "online, retained")
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(WAIT)
        wait_for(lambda: retained_now(broker, topic) == "1 offline", "the last will, retained")
    finally:
        done_with(broker)


def test_sigterm_leaves_offline_retained_once_the_daemon_exited(
    processes: Processes,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A ``twistd sonosd`` stopped with SIGTERM waits for the broker to take its retained
    ``offline`` before it exits: a client that subscribes once the process is gone reads
    ``offline`` (not the last will: with the default 30 s keep-alive that would come 45 s
    later)."""
    daemon, broker, _ = mqtt_daemon(processes, tmp_path)
    topic = "sonos/bridge/availability"
    try:
        wait_for(lambda: retained_now(broker, topic) == "1 online", "online, retained")
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(WAIT)
        assert retained_now(broker, topic) == "1 offline", processes.output(daemon)
    finally:
        done_with(broker)
