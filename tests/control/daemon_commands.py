"""Shared pieces of the end-to-end tests of the content, alarm, announcement and input commands.

``start`` runs the whole daemon against a simulated household of a Sonos One (Kitchen), a
Play:5 (Office: line-in) and a home theatre (Living Room: an Amp, with line-in, bonded with a
sub and two surrounds, invisible), with an SSE client; ``Daemon.post`` sends a command over
REST. ``Channel`` sends the same command over REST, the WebSocket, MQTT or sonosctl and reads
the messages that arrive the same way, so a test can check every command on every channel.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.ctl import main as ctl_main
from sonosd.sim.household import Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import SseClient, WsClient, connect_ws
from tests.control.test_controller_daemon import (
    WAIT,
    Daemon,
    Predicate,
    arrives,
    sse,
    start_daemon,
)
from tests.daemon_helpers import reactor, until

#: Kitchen: Sonos One; Office: Play:5 (line-in); Living Room: Amp (a soundbar with line-in)
#: with its sub and surrounds.
MODELS = ("S18", "S6", "S16")
#: The simulate section of these tests: six speakers, the last four the home theatre.
SIMULATE = {"speakers": 6, "home_theatre": True, "rooms": ["Kitchen", "Office", "Living Room"]}

Body = Mapping[str, Any]


def household(reactor: Any, simulate: SimulateConfig) -> HouseholdService:
    """The simulated household of these tests."""
    return HouseholdService(reactor, simulate, models=MODELS, transition_delay=0.01)


async def start(case: TestCase, **sections: Any) -> tuple[Daemon, SseClient]:
    """A running daemon (every initial event in, the alarm list read) and an SSE client."""
    simulate = {**SIMULATE, **sections.pop("simulate", {})}
    daemon = await start_daemon(case, household, simulate=simulate, **sections)
    await until(lambda: daemon.service.state.alarms is not None, "the alarm list")
    client = await sse(case, daemon)
    return daemon, client


async def grouped(daemon: Daemon, member: Speaker, coordinator: Speaker) -> None:
    """Join ``member`` to ``coordinator``'s group in the simulator, and wait until the daemon
    knows it too (its topology, from the ZoneGroupTopology events): a command sent before
    that acts on the grouping the daemon knew, as it should."""
    daemon.household.join(member, coordinator)

    def known() -> bool:
        topology = daemon.service.state.topology
        return (
            member.group.coordinator == coordinator.uid
            and topology is not None
            and topology.coordinator_of(member.uid) == coordinator.uid
        )

    await until(known, f"{member.name} in {coordinator.name}'s group, as the daemon knows it")


def wav_command(seconds: float) -> list[str]:
    """A text-to-speech command writing a silent WAV of ``seconds`` to standard output."""
    script = (
        "import sys, wave\n"
        "out = wave.open(sys.stdout.buffer, 'wb')\n"
        "out.setnchannels(1); out.setsampwidth(2); out.setframerate(8000)\n"
        f"out.writeframes(bytes({round(seconds * 8000)} * 2)); out.close()\n"
    )
    return [sys.executable, "-c", script]


def message(kind: str, **fields: Any) -> Predicate:
    """A message of type ``kind`` whose top-level ``fields`` have these values."""
    return lambda body: (
        body.get("type") == kind and all(body.get(name) == value for name, value in fields.items())
    )


def alarms_changed(check: Callable[[list[dict[str, Any]]], bool]) -> Predicate:
    """An ``alarms.changed`` message whose list satisfies ``check``."""
    return lambda body: body.get("type") == "alarms.changed" and check(body.get("alarms", []))


class Channel:
    """Sends commands over one channel and reads the messages that come back on it."""

    name = "rest"

    def __init__(self, daemon: Daemon, client: SseClient) -> None:
        self.daemon = daemon
        self.client = client

    def messages(self) -> list[dict[str, Any]]:
        """Every message received so far, in order."""
        return list(self.client.messages())

    async def send(
        self, speaker: str, command: str, args: Mapping[str, Any], words: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        """Run a command; ``(HTTP status, {"result"|"error": ...})``."""
        return await self.daemon.post(speaker, command, args)

    async def expect(self, mark: int, predicate: Predicate, what: str) -> int:
        """Wait for a message after ``mark`` matching ``predicate``."""
        return await arrives(self.messages, mark, predicate, what)


class WsChannel(Channel):
    """Commands and messages over one WebSocket."""

    name = "ws"

    def __init__(self, daemon: Daemon, client: SseClient, ws: WsClient) -> None:
        super().__init__(daemon, client)
        self.ws = ws
        self._ids = 0

    def messages(self) -> list[dict[str, Any]]:
        return list(self.ws.messages)

    async def send(
        self, speaker: str, command: str, args: Mapping[str, Any], words: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        self._ids += 1
        request_id = f"c{self._ids}"
        mark = len(self.ws.messages)
        self.ws.send(
            {
                "op": "command",
                "id": request_id,
                "speaker": speaker,
                "command": command,
                "args": args,
            }
        )
        index = await arrives(
            self.messages,
            mark,
            lambda m: m.get("id") == request_id and m.get("type") in ("result", "error"),
            f"the answer to {command}",
        )
        answer = self.ws.messages[index]
        if answer["type"] == "result":
            return 200, {"result": answer["result"]}
        return 400, {"error": answer["error"]}


class MqttChannel(Channel):
    """Commands published to ``sonos/<room>/cmd/<command>``; messages from the event topics."""

    name = "mqtt"

    def __init__(self, daemon: Daemon, client: SseClient, broker: Any, sub: Any) -> None:
        super().__init__(daemon, client)
        self.broker = broker
        self.sub = sub
        self._ids = 0

    def messages(self) -> list[dict[str, Any]]:
        bodies = []
        for _, topic, payload in self.sub.lines:
            if "/event/" in topic:
                try:
                    bodies.append(json.loads(payload))
                except ValueError:
                    continue
        return bodies

    async def send(
        self, speaker: str, command: str, args: Mapping[str, Any], words: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        from tests.sinks.test_mqtt_daemon import publish

        self._ids += 1
        request_id = f"r{self._ids}"
        topic = f"sonos/{speaker}/cmd/{command}"
        result_topic = f"{topic}/result"
        seen = len(self.sub.payloads(result_topic))
        await publish(self.broker, topic, json.dumps({**args, "request_id": request_id}))

        def answered() -> bool:
            return any(
                json.loads(p).get("request_id") == request_id
                for p in self.sub.payloads(result_topic)[seen:]
            )

        await until(answered, f"the MQTT result of {command}", WAIT * 3)
        answer = next(
            json.loads(p)
            for p in self.sub.payloads(result_topic)[seen:]
            if json.loads(p).get("request_id") == request_id
        )
        if answer["ok"]:
            return 200, {"result": answer["result"]}
        return int(answer["status"]), {"error": answer["error"]}


class CtlChannel(Channel):
    """``sonosctl --json <room> <words...>`` (the shorthand words when given)."""

    name = "sonosctl"

    async def send(
        self, speaker: str, command: str, args: Mapping[str, Any], words: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        if not words:
            words = [command, *(f"{key}={json.dumps(value)}" for key, value in args.items())]
        argv = ["--json", speaker, *words]
        url = f"http://{self.daemon.host}:{self.daemon.port}"

        def run() -> tuple[int, str, str]:
            out, err = io.StringIO(), io.StringIO()
            status = ctl_main(argv, stdout=out, stderr=err, environ={"SONOSD_URL": url})
            return status, out.getvalue(), err.getvalue()

        status, out, err = await deferToThread(run)
        if status == 0:
            return 200, {"result": json.loads(out)}
        return 400, {"error": {"message": err.strip(), "exit": status}}


async def ws_channel(case: TestCase, daemon: Daemon, client: SseClient) -> WsChannel:
    """A WebSocket channel (its snapshot received)."""
    ws = await connect_ws(case, daemon.host, daemon.port)
    await until(lambda: ws.messages, "the WebSocket snapshot")
    return WsChannel(daemon, client, ws)


async def mqtt_daemon(case: TestCase, **sections: Any) -> tuple[Daemon, SseClient, MqttChannel]:
    """A daemon with an MQTT sink on a private broker (``sections`` merged into its
    configuration), and its MQTT channel."""
    from tests.sinks.test_mqtt_daemon import broker_and_subscriber

    broker, sub, mqtt = await broker_and_subscriber(case)
    daemon, client = await start(case, sinks={"mqtt": mqtt}, **sections)
    await sub.wait(lambda: "online" in sub.payloads("sonos/bridge/availability"), reactor)
    return daemon, client, MqttChannel(daemon, client, broker, sub)


def room(speaker: Speaker) -> str:
    """The room name a command names ``speaker`` by."""
    return speaker.name
