"""End-to-end tests of speaker commands: the whole daemon against its simulated household.

Each test starts a real ``SonosdService`` (SoCo thread pool, simulator, NOTIFY listener,
supervisor, controller, API site) on a private loopback block, sends commands with a real
HTTP or WebSocket client, and checks both sides of every promise in ``docs/control.md``: the
simulated speaker changed (its Python API), and the ``event`` message the change causes
reaches a streaming client (SSE or WebSocket).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast
from urllib.parse import quote

import attrs
import soco.services
import treq
from twisted.internet.defer import Deferred
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from sonosd.config import SimulateConfig, parse_config
from sonosd.securesoap import SecureSoap
from sonosd.service import SonosdService, simulated_devices
from sonosd.sim.catalog import STATIONS
from sonosd.sim.household import Household, Speaker
from sonosd.sim.service import HouseholdService
from tests.api_helpers import SseClient, WsClient, connect_raw, connect_ws, sse_request
from tests.audio_helpers import serve_audio
from tests.conftest import free_loopback_base
from tests.daemon_helpers import (
    ROOMS,
    Recorder,
    daemon_yaml,
    http_agent,
    reactor,
    start_recorded,
    until,
)

#: Speaker models in speaker order: Kitchen and Office are Sonos Ones, Living Room a Beam
#: (a soundbar, so it has night and dialog modes).
MODELS = ("S18", "S14", "S18")

#: How long a test waits for something to happen before it fails.
WAIT = 10.0

Body = Mapping[str, Any]
Predicate = Callable[[Body], bool]


def household(reactor: Any, simulate: SimulateConfig) -> HouseholdService:
    """The daemon's simulated household with a soundbar and short transitions."""
    return HouseholdService(reactor, simulate, models=MODELS, transition_delay=0.01)


def daemon_config(base: str, **sections: Any) -> Any:
    """The loopback test configuration, with ``sections`` merged over its sections (a key
    whose value is no mapping, such as ``state_dir``, set as it is)."""
    document = json.loads(daemon_yaml(base))
    for name, values in sections.items():
        if isinstance(values, Mapping):
            document[name] = {**document.get(name, {}), **values}
        else:
            document[name] = values
    return parse_config(json.dumps(document), "control-daemon-test.yaml")


#: Subscription settings under which nothing looks at a speaker for minutes (no silence ping,
#: no poll, no periodic check): only what a command does can.
NOTHING_DUE = {
    "silence_timeout": 600.0,
    "no_event_grace": 600.0,
    "poll_interval": 600.0,
    "check_interval": 0,
    "position_interval": 0,
}


@attrs.define
class Daemon:
    """A running daemon, its simulated household, and an HTTP client for its API."""

    service: SonosdService
    recorder: Recorder
    http: treq.client.HTTPClient
    host: str
    port: int

    @property
    def household(self) -> Household:
        return cast(HouseholdService, self.service.simulator).household

    def speaker(self, index: int) -> Speaker:
        return self.household.speakers[index]

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def settled(self) -> bool:
        """Whether every service of every speaker delivered its initial (SEQ 0) event."""
        return all(
            self.recorder.initial_events(speaker.uid, service)
            for speaker in self.household.speakers
            for service in self.service.config.services
        )

    async def post(
        self, speaker: str, command: str, args: Mapping[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """``POST /api/v1/speakers/{speaker}/{command}``: the status and the JSON body."""
        response = await self.http.post(
            self.url(f"/api/v1/speakers/{quote(speaker)}/{command}"),
            data=json.dumps(args or {}).encode(),
            headers=Headers({b"Content-Type": [b"application/json"]}),
        )
        body: dict[str, Any] = await response.json()
        return response.code, body

    def posting(
        self, speaker: str, command: str, args: Mapping[str, Any] | None = None
    ) -> Deferred[tuple[int, dict[str, Any]]]:
        """``post`` started now, as a Deferred (to run beside other requests)."""
        return Deferred.fromCoroutine(self.post(speaker, command, args))


async def start_daemon(
    case: TestCase,
    factory: Callable[[Any, SimulateConfig], HouseholdService] | None = None,
    listed: int | None = None,
    **sections: Any,
) -> Daemon:
    """Start a daemon on a private loopback block; wait for every initial event.

    @param factory: Builds the simulated household (default: ``household``).
    @param listed: List only the first ``listed`` speakers under ``devices`` (the others
        are followed as members of their household); default: every speaker.
    @param sections: Configuration sections merged over the test configuration.
    """
    speakers = int(sections.get("simulate", {}).get("speakers", len(ROOMS)))
    config = daemon_config(free_loopback_base(count=max(4, speakers)), **sections)
    if listed is not None:
        assert config.simulate is not None
        config = attrs.evolve(config, devices=simulated_devices(config.simulate)[:listed])
    service = SonosdService(config, reactor, household_factory=factory or household)
    recorder = start_recorded(case, service)
    port = await service.api.listening
    address: Any = port.getHost()
    http = treq.client.HTTPClient(http_agent(case))
    daemon = Daemon(service, recorder, http, address.host, address.port)
    await until(daemon.settled, "the initial event of every service of every speaker")
    return daemon


async def sse(case: TestCase, daemon: Daemon) -> SseClient:
    """An SSE client of ``/api/v1/events`` that has received its snapshot."""
    client = SseClient(sse_request("/api/v1/events"))
    await connect_raw(daemon.host, daemon.port, client, case)
    await until(lambda: client.messages(), "the SSE snapshot")
    return client


def _plain(value: object) -> object:
    """A per-channel variable's ``Master`` value; any other value as it is."""
    if isinstance(value, Mapping) and "Master" in value:
        return value["Master"]
    return value


def event_of(speaker: Speaker, service: str, **variables: object) -> Predicate:
    """An ``event`` message of ``speaker``'s ``service`` carrying ``variables`` (channel
    variables compared by their ``Master`` value)."""

    def matches(body: Body) -> bool:
        carried = body.get("variables") or {}
        return (
            body.get("type") == "event"
            and (body.get("speaker") or {}).get("uid") == speaker.uid
            and body.get("service") == service
            and all(
                name in carried and _plain(carried[name]) == value
                for name, value in variables.items()
            )
        )

    return matches


def topology_with(coordinator: Speaker, *members: Speaker) -> Predicate:
    """A ``topology.changed`` message with a group of exactly ``members`` led by
    ``coordinator``."""
    wanted = {coordinator.uid, *(member.uid for member in members)}

    def matches(body: Body) -> bool:
        return body.get("type") == "topology.changed" and any(
            group["coordinator"] == coordinator.uid
            and {member["uid"] for member in group["members"]} == wanted
            for group in body.get("groups", ())
        )

    return matches


def member_uids(result: Body) -> set[str]:
    """The uids of the members of the group a join/leave/party/restore answered."""
    return {member["uid"] for member in result["group"]["members"]}


async def arrives(
    messages: Callable[[], Sequence[Body]], mark: int, predicate: Predicate, what: str
) -> int:
    """Wait for a message after the first ``mark`` that satisfies ``predicate``; its index."""

    def found() -> int | None:
        received = messages()
        for index in range(mark, len(received)):
            if predicate(received[index]):
                return index
        return None

    await until(lambda: found() is not None, what, WAIT)
    index = found()
    assert index is not None
    return index


@attrs.frozen
class Step:
    """One row of a command table: the request, what it answers, what the simulated speaker
    shows afterwards, and the event message the change causes (``None``: not evented)."""

    command: str
    args: Mapping[str, Any]
    result: Mapping[str, Any]
    observe: Callable[[], object]
    expected: object
    event: Predicate | None


class ControlDaemonTests(TestCase):
    """Every command of docs/control.md through the real daemon, from outside."""

    timeout = 60

    async def run_steps(
        self, daemon: Daemon, client: SseClient, speaker: str, steps: Sequence[Step]
    ) -> None:
        """Run each step on ``speaker`` in order: 200 with the result, the event on SSE, then
        the simulated speaker's state."""
        for step in steps:
            what = f"{step.command} {dict(step.args)} on {speaker}"
            mark = len(client.messages())
            status, body = await daemon.post(speaker, step.command, step.args)
            self.assertEqual(status, 200, f"{what}: {body}")
            result = body["result"]
            self.assertEqual({key: result.get(key) for key in step.result}, step.result, what)
            if step.event is not None:
                await arrives(client.messages, mark, step.event, f"the event of {what}")
            self.assertEqual(step.observe(), step.expected, what)

    async def test_transport_commands(self) -> None:
        """play, pause, toggle, next, previous, seek, stop and play_mode change the simulated
        transport, and each change reaches SSE as an AVTransport event."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        on = {"coordinator": kitchen.uid}
        playing, paused = "PLAYING", "PAUSED_PLAYBACK"

        def state() -> str:
            return transport.state

        def track() -> int:
            return transport.track_no

        def av(**variables: object) -> Predicate:
            return event_of(kitchen, "AVTransport", **variables)

        await self.run_steps(
            daemon,
            client,
            "Kitchen",
            [
                Step("play", {}, on, state, playing, av(transport_state=playing)),
                Step("pause", {}, on, state, paused, av(transport_state=paused)),
                Step("toggle", {}, {"action": "play"}, state, playing, av(transport_state=playing)),
                Step("toggle", {}, {"action": "pause"}, state, paused, av(transport_state=paused)),
                Step("next", {}, on, track, 2, av(current_track=2)),
                Step("previous", {}, on, track, 1, av(current_track=1)),
                Step("seek", {"track": 3}, {**on, "track": 3}, track, 3, av(current_track=3)),
                # The position is not evented (only polling sees it, as on real speakers).
                Step(
                    "seek", {"position": 65}, {"position": "0:01:05"}, transport.position, 65, None
                ),
                Step("stop", {}, on, state, "STOPPED", av(transport_state="STOPPED")),
                Step(
                    "play_mode",
                    {"shuffle": True, "repeat": "all"},
                    {"play_mode": "SHUFFLE", "shuffle": True, "repeat": "all", "crossfade": False},
                    lambda: transport.play_mode,
                    "SHUFFLE",
                    av(current_play_mode="SHUFFLE"),
                ),
                Step(
                    "play_mode",
                    {"crossfade": "on"},
                    {"play_mode": "SHUFFLE", "crossfade": True},
                    lambda: transport.crossfade,
                    True,
                    av(current_crossfade_mode=True),
                ),
            ],
        )

    async def test_https_only_speaker_is_controlled_over_tls(self) -> None:
        """A speaker that answers 403 to SOAP over HTTP (the simulator's HTTPS-only mode) is
        controlled over HTTPS: its commands change it and their events arrive, its position
        is read, and it stays online; the other speakers keep HTTP."""
        daemon = await start_daemon(self, simulate={"https_only": [1]})
        client = await sse(self, daemon)
        strict = daemon.speaker(1)

        def rendering(**variables: object) -> Predicate:
            return event_of(strict, "RenderingControl", **variables)

        def position(body: Body) -> bool:
            return (
                body.get("source") == "position"
                and (body.get("speaker") or {}).get("uid") == strict.uid
            )

        await self.run_steps(
            daemon,
            client,
            strict.name,
            [
                Step(
                    "volume",
                    {"volume": 17},
                    {"volume": 17},
                    lambda: strict.rendering.volume,
                    17,
                    rendering(volume=17),
                ),
                Step(
                    "mute",
                    {"mute": True},
                    {"mute": True},
                    lambda: strict.rendering.mute,
                    True,
                    rendering(mute=True),
                ),
                Step(
                    "play",
                    {},
                    {"coordinator": strict.uid},
                    lambda: strict.transport.state,
                    "PLAYING",
                    position,
                ),
            ],
        )
        shim = soco.services.requests
        assert isinstance(shim, SecureSoap)
        self.assertEqual(shim.secure, {strict.address})
        self.assertEqual(daemon.service.state.availability(strict.uid).status, "online")
        status, body = await daemon.post(strict.name, "favorites")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["result"]["favorites"])
        status, body = await daemon.post("Kitchen", "volume", {"volume": 9})
        self.assertEqual((status, daemon.speaker(0).rendering.volume), (200, 9))
        self.assertEqual(shim.secure, {strict.address})

    async def test_rendering_commands(self) -> None:
        """volume (absolute and relative), mute, bass, treble, loudness, and a soundbar's night
        and dialog modes change the speaker and arrive as RenderingControl events."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen, living = daemon.speaker(0), daemon.speaker(1)
        rendering, bar = kitchen.rendering, living.rendering
        self.assertEqual((rendering.volume, rendering.mute, rendering.loudness), (20, False, True))

        def read(name: str) -> Callable[[], object]:
            return lambda: getattr(rendering, name)

        def rc(**variables: object) -> Predicate:
            return event_of(kitchen, "RenderingControl", **variables)

        volume, mute = read("volume"), read("mute")
        await self.run_steps(
            daemon,
            client,
            "Kitchen",
            [
                Step("volume", {"volume": 30}, {"volume": 30}, volume, 30, rc(volume=30)),
                Step("volume", {"delta": "-5"}, {"volume": 25}, volume, 25, rc(volume=25)),
                Step("volume", {"delta": 8}, {"volume": 33}, volume, 33, rc(volume=33)),
                Step("mute", {}, {"mute": True}, mute, True, rc(mute=True)),
                Step("mute", {"mute": "off"}, {"mute": False}, mute, False, rc(mute=False)),
                Step("bass", {"bass": -4}, {"bass": -4}, read("bass"), -4, rc(bass=-4)),
                Step("treble", {"treble": 6}, {"treble": 6}, read("treble"), 6, rc(treble=6)),
                Step(
                    "loudness",
                    {"loudness": False},
                    {"loudness": False},
                    read("loudness"),
                    False,
                    rc(loudness=False),
                ),
            ],
        )
        await self.run_steps(
            daemon,
            client,
            "Living Room",
            [
                Step(
                    "night_mode",
                    {"night_mode": True},
                    {"night_mode": True},
                    lambda: bar.night_mode,
                    True,
                    event_of(living, "RenderingControl", night_mode=True),
                ),
                Step(
                    "dialog-mode",
                    {"dialog_mode": "yes"},
                    {"dialog_mode": True},
                    lambda: bar.dialog_level,
                    True,
                    # DialogLevel is a string in the SCPD, so it stays one (docs/messages.md).
                    event_of(living, "RenderingControl", dialog_level="1"),
                ),
            ],
        )
        status, body = await daemon.post("Kitchen", "night_mode", {"night_mode": True})
        self.assertEqual((status, body["error"]["code"]), (409, "not_supported"))
        self.assertFalse(rendering.night_mode)

    async def test_grouping_commands(self) -> None:
        """join, group_volume, group_mute, leave and party regroup the simulated household;
        each answer shows the group that topology.changed announced over SSE."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen, living, office = (daemon.speaker(i) for i in range(3))

        mark = len(client.messages())
        status, body = await daemon.post("Office", "join", {"coordinator": "kitchen"})
        self.assertEqual(status, 200, body)
        joined = body["result"]
        self.assertEqual((joined["confirmed"], joined["source"]), (True, "event"))
        self.assertEqual(joined["group"]["coordinator"], kitchen.uid)
        self.assertEqual(member_uids(joined), {kitchen.uid, office.uid})
        self.assertEqual(office.group.coordinator, kitchen.uid)
        await arrives(client.messages, mark, topology_with(kitchen, office), "the joined group")

        kitchen.set_volume(20)
        office.set_volume(40)
        mark = len(client.messages())
        status, body = await daemon.post("Office", "group_volume", {"volume": 50})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], {"coordinator": kitchen.uid, "group_volume": 50})
        self.assertEqual((kitchen.rendering.volume, office.rendering.volume), (40, 60))
        self.assertEqual(kitchen.group_volume(), 50)
        for predicate in (
            event_of(kitchen, "GroupRenderingControl", group_volume=50),
            event_of(kitchen, "RenderingControl", volume=40),
            event_of(office, "RenderingControl", volume=60),
        ):
            await arrives(client.messages, mark, predicate, "the group volume's events")

        mark = len(client.messages())
        status, body = await daemon.post("Office", "group_volume", {"delta": -10})
        self.assertEqual((status, body["result"]["group_volume"]), (200, 40), body)
        await arrives(
            client.messages,
            mark,
            event_of(kitchen, "GroupRenderingControl", group_volume=40),
            "the relative group volume's event",
        )

        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "group_mute", {})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"], {"coordinator": kitchen.uid, "group_mute": True})
        self.assertTrue(kitchen.rendering.mute and office.rendering.mute)
        await arrives(
            client.messages,
            mark,
            event_of(kitchen, "GroupRenderingControl", group_mute=True),
            "the group mute's event",
        )

        mark = len(client.messages())
        status, body = await daemon.post("Office", "leave")
        self.assertEqual(status, 200, body)
        self.assertTrue(body["result"]["confirmed"])
        self.assertEqual(member_uids(body["result"]), {office.uid})
        self.assertTrue(office.is_coordinator)
        self.assertEqual(kitchen.group.members, [kitchen.uid])
        await arrives(client.messages, mark, topology_with(office), "the group left")

        mark = len(client.messages())
        status, body = await daemon.post("Living Room", "party")
        self.assertEqual(status, 200, body)
        party = body["result"]
        self.assertTrue(party["confirmed"])
        self.assertEqual(sorted(party["joined"]), sorted([kitchen.uid, office.uid]))
        self.assertEqual(member_uids(party), {kitchen.uid, living.uid, office.uid})
        self.assertEqual(len(daemon.household.groups), 1)
        self.assertEqual(office.group.coordinator, living.uid)
        await arrives(
            client.messages, mark, topology_with(living, kitchen, office), "the party group"
        )

    async def test_soco_never_polls_the_topology(self) -> None:
        """Snapshots and their restore, for which SoCo asks whether a speaker coordinates its
        group, take the topology from the caches the daemon feeds from ZoneGroupTopology
        events: no SOAP request of SoCo's (``python-requests``) asks a speaker for
        ``GetZoneGroupState``."""
        from sonosd.sim.site import SpeakerResource

        asked: list[tuple[str, str]] = []
        answer = SpeakerResource._soap

        def recorded(resource: Any, request: Any, service: Any) -> bytes:
            agent = (request.getHeader("user-agent") or "").split("/")[0]
            asked.append((agent, (request.getHeader("soapaction") or "").rsplit("#", 1)[-1]))
            return answer(resource, request, service)

        self.patch(SpeakerResource, "_soap", recorded)
        daemon = await start_daemon(self)
        for room, command, args in (
            ("Office", "join", {"coordinator": "Kitchen"}),
            ("Kitchen", "snapshot", {"name": "evening"}),
            ("Office", "leave", {}),
            ("Living Room", "restore", {"name": "evening"}),
        ):
            status, body = await daemon.post(room, command, args)
            self.assertEqual(status, 200, body)
        socos = [action for agent, action in asked if agent.strip('"') == "python-requests"]
        self.assertTrue(socos, asked)
        self.assertNotIn("GetZoneGroupState", socos)

    async def test_source_commands(self) -> None:
        """play_uri, play_favorite, queue list/add/clear and sleep_timer act on the simulated
        coordinator and are evented (AVTransport, Queue)."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        favorite = daemon.household.favorites[0]
        song = "http://127.0.0.1/song.mp3"
        extra = "http://127.0.0.1/extra.mp3"
        on = {"coordinator": kitchen.uid}

        def queue_event() -> Predicate:
            # The Queue event carries the new update id; read it once the command is done.
            return lambda body: event_of(kitchen, "Queue", update_id=transport.queue_update_id)(
                body
            )

        await self.run_steps(
            daemon,
            client,
            "Kitchen",
            [
                Step(
                    "play_uri",
                    {"uri": song, "title": "Song"},
                    {**on, "uri": song},
                    lambda: transport.uri,
                    song,
                    event_of(kitchen, "AVTransport", current_track_uri=song),
                ),
                Step(
                    "play-favorite",
                    {"name": favorite.title.upper()},
                    {**on, "favorite": favorite.title, "uri": favorite.uri},
                    lambda: transport.uri,
                    favorite.uri,
                    event_of(kitchen, "AVTransport", current_track_uri=favorite.uri),
                ),
                Step(
                    "queue",
                    {"action": "add", "uri": extra},
                    {**on, "position": 9},
                    lambda: (len(transport.queue), transport.queue[-1].uri),
                    (9, extra),
                    queue_event(),
                ),
                Step(
                    "sleep_timer",
                    {"minutes": 10},
                    {**on, "remaining": 600},
                    lambda: transport.remaining_sleep() is not None,
                    True,
                    event_of(kitchen, "AVTransport", sleep_timer_generation=1),
                ),
                Step(
                    "sleep_timer",
                    {"action": "cancel"},
                    {**on, "remaining": None},
                    transport.remaining_sleep,
                    None,
                    event_of(kitchen, "AVTransport", sleep_timer_generation=2),
                ),
                Step(
                    "queue",
                    {"action": "clear"},
                    {**on, "cleared": True},
                    lambda: transport.queue,
                    [],
                    queue_event(),
                ),
            ],
        )

    async def test_queue_list_and_sleep_timer_get(self) -> None:
        """queue list and sleep_timer get answer what the simulated speaker holds."""
        daemon = await start_daemon(self)
        office = daemon.speaker(2)
        queue = office.transport.queue
        status, body = await daemon.post(
            "Office", "queue", {"action": "list", "start": 1, "count": 3}
        )
        self.assertEqual(status, 200, body)
        listed = body["result"]
        self.assertEqual((listed["coordinator"], listed["start"]), (office.uid, 1))
        self.assertEqual(listed["total"], len(queue))
        self.assertEqual(
            [(item["position"], item["title"], item["uri"]) for item in listed["items"]],
            [(n, queue[n - 1].title, queue[n - 1].uri) for n in (2, 3, 4)],
        )
        status, body = await daemon.post("Office", "sleep_timer")
        self.assertEqual((status, body["result"]["remaining"]), (200, None), body)

    async def join_in_a_slow_household(self, source: str, **modes: Any) -> None:
        """Join Office to Kitchen in a household that regroups only after the controller
        stopped waiting (its 5 s compressed to 1 s): accepted unconfirmed, from ``source``,
        with Office still apart; topology.changed shows the new group later."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen, office = daemon.speaker(0), daemon.speaker(2)
        daemon.household.set_modes(regroup_delay=3.0, **modes)
        daemon.service.controller.confirm_timeout = 1.0
        mark = len(client.messages())
        status, body = await daemon.post("Office", "join", {"coordinator": "Kitchen"})
        self.assertEqual(status, 200, body)
        joined = body["result"]
        self.assertEqual((joined["confirmed"], joined["source"]), (False, source))
        self.assertEqual(member_uids(joined), {office.uid})
        self.assertEqual(office.group.coordinator, kitchen.uid)
        await arrives(client.messages, mark, topology_with(kitchen, office), "the new group")

    async def test_join_in_a_slow_household_is_accepted_unconfirmed(self) -> None:
        """In a household that regroups only after the controller stopped waiting, join
        answers the grouping it reads (still apart) with confirmed false, and the household
        regroups all the same, as topology.changed shows later."""
        await self.join_in_a_slow_household("read")

    async def test_join_in_a_slow_large_household_answers_the_evented_grouping(self) -> None:
        """In a large household (GetZoneGroupState answers UPnP 501) join cannot read the
        topology: it answers the grouping last evented, ``"source": "state"`` and confirmed
        false (docs/control.md), not the 501; the household regroups all the same."""
        await self.join_in_a_slow_household(
            "state", large_household=True, large_household_players=1
        )

    async def test_websocket_command_at_an_offline_speaker(self) -> None:
        """A WebSocket command op at a speaker that refuses connections is answered, with its
        id, by docs/api.md's error: ``offline``, a message, ``upnp_error`` null; a command op
        at an online speaker runs and answers its result."""
        daemon = await start_daemon(self)
        office = daemon.speaker(2)
        await office.go_offline("refuse")
        self.addCleanup(office.come_online)
        ws = await connect_ws(self, daemon.host, daemon.port)
        await until(lambda: ws.messages, "the snapshot")
        ws.send(
            {
                "op": "command",
                "id": "c7",
                "speaker": "Office",
                "command": "volume",
                "args": {"volume": 20},
            }
        )
        ws.send(
            {
                "op": "command",
                "id": 8,
                "speaker": "Kitchen",
                "command": "volume",
                "args": {"volume": 21},
            }
        )

        def replies() -> list[dict[str, Any]]:
            return [m for m in ws.messages if m["type"] in ("result", "error")]

        await until(lambda: len(replies()) == 2, "both replies")
        by_id = {m["id"]: m for m in replies()}
        error = by_id["c7"]
        self.assertEqual((error["type"], error["error"]["code"]), ("error", "offline"), error)
        self.assertIsNone(error["error"]["upnp_error"])
        self.assertTrue(error["error"]["message"])
        self.assertEqual(by_id[8]["type"], "result", by_id[8])
        self.assertEqual(daemon.speaker(0).rendering.volume, 21)

    async def test_party_leaves_out_an_offline_speaker(self) -> None:
        """party groups every reachable speaker of the household and leaves out one that is
        offline but still listed in the topology, answering confirmed."""
        daemon = await start_daemon(self)
        kitchen, living, office = (daemon.speaker(i) for i in range(3))
        await office.go_offline("refuse")
        self.addCleanup(office.come_online)
        status, body = await daemon.post("Office", "volume", {"volume": 3})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        state = daemon.service.state
        await until(lambda: state.availability(office.uid).status == "offline", "offline")
        topology = state.topology
        assert topology is not None and topology.member(office.uid) is not None
        status, body = await daemon.post("Living Room", "party")
        self.assertEqual(status, 200, body)
        party = body["result"]
        self.assertEqual((party["joined"], party["confirmed"]), ([kitchen.uid], True))
        self.assertEqual(member_uids(party), {kitchen.uid, living.uid})
        self.assertEqual(kitchen.group.coordinator, living.uid)
        self.assertEqual(office.group.members, [office.uid])

    async def test_snapshot_and_restore(self) -> None:
        """restore, named from any speaker, regroups the saved group and restores each
        member's volume; both changes arrive over SSE."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen, office = daemon.speaker(0), daemon.speaker(2)
        status, body = await daemon.post("Office", "join", {"coordinator": "Kitchen"})
        self.assertEqual(status, 200, body)
        office.set_volume(33)
        # docs/control.md: a snapshot holds each member's volume, mute and tone, and the
        # coordinator's source, position, play mode and transport state.
        before: list[tuple[str, str, dict[str, Any]]] = [
            ("Office", "mute", {"mute": True}),
            ("Office", "bass", {"bass": -3}),
            ("Kitchen", "queue", {"action": "play", "track": 3}),
            ("Kitchen", "play_mode", {"repeat": "all"}),
        ]
        after: list[tuple[str, str, dict[str, Any]]] = [
            ("Office", "leave", {}),
            ("Office", "volume", {"volume": 70}),
            ("Office", "mute", {"mute": False}),
            ("Office", "bass", {"bass": 5}),
            ("Kitchen", "pause", {}),
            ("Kitchen", "seek", {"track": 1}),
            ("Kitchen", "play_mode", {"repeat": "none"}),
        ]
        for room, command, args in before:
            status, body = await daemon.post(room, command, args)
            self.assertEqual(status, 200, (command, body))
        await kitchen.transport.settled()
        status, body = await daemon.post("Kitchen", "snapshot", {"name": "evening"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["coordinator"], kitchen.uid)
        self.assertEqual(set(body["result"]["members"]), {kitchen.uid, office.uid})
        for room, command, args in after:
            status, body = await daemon.post(room, command, args)
            self.assertEqual(status, 200, (command, body))

        mark = len(client.messages())
        status, body = await daemon.post("Living Room", "restore", {"name": "evening"})
        self.assertEqual(status, 200, body)
        restored = body["result"]
        self.assertEqual((restored["name"], restored["regrouped"]), ("evening", True))
        self.assertEqual(member_uids(restored), {kitchen.uid, office.uid})
        self.assertEqual(office.group.coordinator, kitchen.uid)
        self.assertEqual(office.rendering.volume, 33)
        self.assertEqual((office.rendering.mute, office.rendering.bass), (True, -3))
        await kitchen.transport.settled()
        self.assertEqual(
            (kitchen.transport.track_no, kitchen.transport.play_mode, kitchen.transport.state),
            (3, "REPEAT_ALL", "PLAYING"),
        )
        await arrives(client.messages, mark, topology_with(kitchen, office), "the regrouping")
        await arrives(
            client.messages,
            mark,
            event_of(office, "RenderingControl", volume=33),
            "the restored volume",
        )
        status, body = await daemon.post("Kitchen", "restore", {"name": "morning"})
        self.assertEqual((status, body["error"]["code"]), (404, "unknown_snapshot"))

    async def test_restore_answers_the_restored_group(self) -> None:
        """restore waits until the topology shows the saved group exactly (newcomers gone, a
        coordinator that joined elsewhere back on its own) and answers that group."""
        daemon = await start_daemon(self)
        kitchen, living, office = (daemon.speaker(i) for i in range(3))
        for room, command, args in (
            ("Living Room", "snapshot", {"name": "alone"}),
            ("Office", "join", {"coordinator": "Kitchen"}),
            ("Kitchen", "snapshot", {"name": "pair"}),
            ("Living Room", "join", {"coordinator": "Kitchen"}),
        ):
            status, body = await daemon.post(room, command, args)
            self.assertEqual(status, 200, f"{command}: {body}")
        # Topology NOTIFYs now arrive half a second late: the answer must wait for them.
        for speaker in (kitchen, living, office):
            speaker.gena.faults.delay = 0.5
            self.addCleanup(setattr, speaker.gena.faults, "delay", 0.0)
        status, body = await daemon.post("Kitchen", "restore", {"name": "pair"})
        self.assertEqual(status, 200, body)
        self.assertEqual(
            (body["result"]["regrouped"], member_uids(body["result"])),
            (True, {kitchen.uid, office.uid}),
        )
        self.assertTrue(living.is_coordinator)

        # docs/control.md: join's coordinator is "a speaker in the group to join": naming a
        # member (Office) joins the group its coordinator (Kitchen) leads.
        status, body = await daemon.post("Living Room", "join", {"coordinator": "Office"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["group"]["coordinator"], kitchen.uid)
        self.assertEqual(member_uids(body["result"]), {kitchen.uid, office.uid, living.uid})
        self.assertEqual(living.group.coordinator, kitchen.uid)
        status, body = await daemon.post("Living Room", "restore", {"name": "alone"})
        self.assertEqual(status, 200, body)
        self.assertEqual(
            (body["result"]["regrouped"], member_uids(body["result"])), (True, {living.uid})
        )
        self.assertEqual(living.group.members, [living.uid])

    async def test_announce(self) -> None:
        """announce sets the volume, plays the clip until it ends, then restores the volume and
        the source; SSE shows the three changes in that order."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen = daemon.speaker(0)
        before = kitchen.transport.uri
        kitchen.set_volume(12)
        await arrives(client.messages, 0, event_of(kitchen, "RenderingControl", volume=12), "12")
        mark = len(client.messages())
        server = serve_audio(self)
        clip_uri = server.url("/clip.wav")
        status, body = await daemon.post(
            "Kitchen", "announce", {"uri": clip_uri, "volume": 45, "timeout": 10}
        )
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual(
            (result["coordinator"], result["uri"], result["ended"]),
            (kitchen.uid, clip_uri, "finished"),
        )
        self.assertEqual((kitchen.rendering.volume, kitchen.transport.uri), (12, before))
        loud = await arrives(
            client.messages, mark, event_of(kitchen, "RenderingControl", volume=45), "45"
        )
        clip = await arrives(
            client.messages,
            loud,
            event_of(kitchen, "AVTransport", current_track_uri=clip_uri),
            "the clip after the volume",
        )
        await arrives(
            client.messages,
            clip,
            event_of(kitchen, "RenderingControl", volume=12),
            "the volume restored after the clip",
        )
        self.assertEqual(daemon.service.controller.snapshots, {})

    async def test_errors(self) -> None:
        """Refused commands answer the documented status and code, name the bad argument and
        carry the UPnP error code, and leave the speaker as it was."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        # (speaker, command, args, status, code, message prefix or UPnP error code)
        cases: list[tuple[str, str, dict[str, Any], int, str, str | int | None]] = [
            ("Attic", "play", {}, 404, "unknown_speaker", None),
            ("Kitchen", "fly", {}, 404, "unknown_command", None),
            ("Kitchen", "volume", {"volume": 101}, 400, "bad_argument", "volume: "),
            ("Kitchen", "volume", {"volum": 30}, 400, "bad_argument", "volum: "),
            ("Kitchen", "volume", {}, 400, "bad_argument", None),
            ("Kitchen", "mute", {"mute": "maybe"}, 400, "bad_argument", "mute: "),
            ("Kitchen", "seek", {"position": "soon"}, 400, "bad_argument", "position: "),
            ("Kitchen", "join", {"coordinator": "Attic"}, 404, "unknown_speaker", None),
            ("Kitchen", "join", {"coordinator": "kitchen"}, 400, "bad_argument", "coordinator: "),
            # Beyond the end of the 3:21 first track: 711 illegal seek target.
            ("Kitchen", "seek", {"position": "9:00:00"}, 502, "speaker_error", 711),
            ("Kitchen", "seek", {"track": 99}, 502, "speaker_error", 711),
            # Nothing plays: pausing is a transition the speaker does not allow.
            ("Kitchen", "pause", {}, 502, "speaker_error", 701),
            ("Kitchen", "play_favorite", {"name": "No Such"}, 404, "unknown_favorite", None),
        ]
        for speaker, command, args, status, code, detail in cases:
            what = f"{command} {args} on {speaker}"
            got, body = await daemon.post(speaker, command, args)
            error = body.get("error") or {}
            self.assertEqual((got, error.get("code")), (status, code), f"{what}: {body}")
            self.assertNotIn("Traceback", error.get("message", ""), what)
            if isinstance(detail, str):
                self.assertTrue(error["message"].startswith(detail), f"{what}: {error}")
            expected_upnp = detail if isinstance(detail, int) else None
            self.assertEqual(error.get("upnp_error"), expected_upnp, what)
        self.assertEqual(
            (kitchen.rendering.volume, kitchen.transport.state, kitchen.transport.track_no),
            (20, "STOPPED", 1),
        )
        self.assertEqual(kitchen.group.members, [kitchen.uid])

    async def test_a_failed_command_is_not_retried(self) -> None:
        """Nothing is retried behind the client's back (docs/control.md): a relative volume
        the speaker applies but answers with a garbled status line is one 502 speaker_error
        saying why, and the volume moved once (a retry would move it twice)."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        self.addCleanup(kitchen.soap_faults.reset)
        kitchen.set_volume(20)
        kitchen.soap_faults.status_line = "garbage"
        status, body = await daemon.post("Kitchen", "volume", {"delta": 5})
        self.assertEqual((status, body["error"]["code"]), (502, "speaker_error"), body)
        self.assertIn("garbage", body["error"]["message"])
        self.assertEqual(kitchen.rendering.volume, 25)
        kitchen.soap_faults.reset()
        status, body = await daemon.post("Kitchen", "volume", {"delta": 5})
        self.assertEqual((status, body), (200, {"result": {"volume": 30}}))

    async def test_offline_speaker(self) -> None:
        """A speaker that stopped answering is 503 offline, with the daemon's reason once it
        is marked offline, while the others still obey; back online, it obeys again."""
        daemon = await start_daemon(self, subscription={"silence_timeout": 0.5})
        client = await sse(self, daemon)
        office = daemon.speaker(2)
        await office.go_offline("refuse")
        status, body = await daemon.post("Office", "volume", {"volume": 3})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        await arrives(
            client.messages,
            0,
            lambda m: m["type"] == "speaker.offline" and m["speaker"]["uid"] == office.uid,
            "the office marked offline",
        )
        reason = daemon.service.state.availability(office.uid).reason
        status, body = await daemon.post("office", "play")
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        self.assertIn(str(reason), body["error"]["message"])
        status, body = await daemon.post("Kitchen", "volume", {"volume": 3})
        self.assertEqual((status, body), (200, {"result": {"volume": 3}}))
        self.assertEqual(office.rendering.volume, 20)
        mark = len(client.messages())
        await office.come_online()
        await arrives(
            client.messages,
            mark,
            lambda m: m["type"] == "speaker.online" and m["speaker"]["uid"] == office.uid,
            "the office back online",
        )
        status, body = await daemon.post("Office", "volume", {"volume": 4})
        self.assertEqual((status, body), (200, {"result": {"volume": 4}}))
        self.assertEqual(office.rendering.volume, 4)

    async def test_refused_command_checks_the_speaker_at_once(self) -> None:
        """A speaker that refuses the connection is 503 offline, and its availability is
        checked at once (docs/control.md): it is marked offline although nothing else would
        look at it for minutes (no silence ping, poll or check due), so the next command gets
        the daemon's reason without a call."""
        daemon = await start_daemon(self, subscription=NOTHING_DUE)
        office = daemon.speaker(2)
        await office.go_offline("refuse")
        status, body = await daemon.post("Office", "volume", {"volume": 3})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        state = daemon.service.state
        await until(lambda: state.availability(office.uid).status == "offline", "offline")
        reason = state.availability(office.uid).reason
        status, body = await daemon.post("Office", "mute", {"mute": True})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        self.assertIn(f"is offline: {reason}", body["error"]["message"])

    async def test_upnp_switched_off_is_503_upnp_disabled_at_once(self) -> None:
        """A command to a speaker whose household has just switched UPnP off (403 over HTTP
        and HTTPS) is 503 upnp_disabled saying where to switch it on in the Sonos app, not a
        502 with the HTTP error (docs/control.md); the speaker is checked at once, so the
        daemon marks it upnp_disabled although nothing else is due to look at it."""
        daemon = await start_daemon(self, subscription=NOTHING_DUE)
        kitchen = daemon.speaker(0)
        daemon.household.set_modes(upnp=False)
        status, body = await daemon.post("Kitchen", "volume", {"volume": 3})
        self.assertEqual((status, body["error"]["code"]), (503, "upnp_disabled"), body)
        self.assertIn("Privacy & Security", body["error"]["message"])
        state = daemon.service.state
        await until(lambda: state.availability(kitchen.uid).status == "upnp_disabled", "UPnP off")
        status, body = await daemon.post("Kitchen", "mute", {"mute": True})
        self.assertEqual((status, body["error"]["code"]), (503, "upnp_disabled"), body)
        self.assertEqual(kitchen.rendering.volume, 20)

    async def test_hung_speaker_times_out(self) -> None:
        """A speaker whose calls hang is 504 timeout, while another speaker's command is
        answered before that timeout; the timeout makes it be checked at once, so it is
        offline right after (the next command gets 503 at once, consistent with the status);
        once it answers again and is back online, so do its commands."""
        # The check the timeout starts pings with a 1 s bound (5 s by default): its offline
        # verdict, not the bound, is what is asserted.
        # Nothing else due to look at the speaker: only the timeout's check can find it.
        daemon = await start_daemon(
            self,
            soco={"call_timeout": 2.0},
            subscription={**NOTHING_DUE, "ping_timeout": 1.0},
        )
        office, kitchen = daemon.speaker(2), daemon.speaker(0)
        await office.go_offline("hang")
        self.addCleanup(office.come_online)
        hung = daemon.posting("Office", "volume", {"volume": 3})
        status, body = await daemon.post("Kitchen", "volume", {"volume": 41})
        self.assertEqual((status, body), (200, {"result": {"volume": 41}}))
        self.assertEqual(kitchen.rendering.volume, 41)
        self.assertFalse(hung.called, "the hung speaker answered before the timeout")
        status, body = await hung
        self.assertEqual((status, body["error"]["code"]), (504, "timeout"), body)
        self.assertIn("2 s", body["error"]["message"])
        self.assertEqual(office.rendering.volume, 20)
        state = daemon.service.state
        await until(lambda: state.availability(office.uid).status == "offline", "offline")
        status, body = await daemon.post("Office", "volume", {"volume": 5})
        self.assertEqual((status, body["error"]["code"]), (503, "offline"), body)
        await office.come_online()
        await until(lambda: state.availability(office.uid).status == "online", "back online")
        status, body = await daemon.post("Office", "volume", {"volume": 4})
        self.assertEqual((status, body), (200, {"result": {"volume": 4}}))
        self.assertEqual(office.rendering.volume, 4)

    async def test_busy_speaker_refuses_the_33rd_command(self) -> None:
        """With 32 commands waiting for a hung speaker, one more is refused at once with 503
        busy and never sent, another speaker still obeys, and the 32 run in order once the
        speaker answers again."""
        daemon = await start_daemon(self, soco={"call_timeout": 60.0})
        office, kitchen = daemon.speaker(2), daemon.speaker(0)
        controller = daemon.service.controller
        assert controller is not None
        await office.go_offline("hang")
        self.addCleanup(office.come_online)
        waiting: list[Deferred[tuple[int, dict[str, Any]]]] = []
        for n in range(1, 33):
            # One at a time: 32 requests sent at once reach the API in any order.
            waiting.append(daemon.posting("Office", "volume", {"volume": n}))
            await until(lambda: controller.pending(office.uid) == len(waiting), f"command {n}")
        status, body = await daemon.post("Office", "volume", {"volume": 77})
        self.assertEqual((status, body["error"]["code"]), (503, "busy"), body)
        self.assertIn("32 commands waiting", body["error"]["message"])
        status, body = await daemon.post("Kitchen", "volume", {"volume": 41})
        self.assertEqual((status, body), (200, {"result": {"volume": 41}}))
        self.assertEqual(kitchen.rendering.volume, 41)
        self.assertFalse(any(d.called for d in waiting), "a hung command was answered")
        await office.come_online()
        answers = [await d for d in waiting]
        # The first was on the wire when the speaker came back: its connection was cut.
        self.assertEqual((answers[0][0], answers[0][1]["error"]["code"]), (503, "offline"))
        self.assertEqual(answers[1:], [(200, {"result": {"volume": n}}) for n in range(2, 33)])
        self.assertEqual(office.rendering.volume, 32)
        self.assertEqual(controller.pending(office.uid), 0)

    async def test_websocket_commands(self) -> None:
        """A WebSocket command gets the same result and error objects as REST, and its event
        arrives on the same socket."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        ws: WsClient = await connect_ws(self, daemon.host, daemon.port)
        await until(lambda: ws.messages, "the WebSocket snapshot")

        def reply(request_id: str) -> Predicate:
            return lambda m: m.get("id") == request_id and m["type"] in ("result", "error")

        def messages() -> list[dict[str, Any]]:
            return ws.messages

        mark = len(ws.messages)
        ws.send(
            {
                "op": "command",
                "id": "c1",
                "speaker": "kitchen",
                "command": "volume",
                "args": {"volume": 37},
            }
        )
        answer = ws.messages[await arrives(messages, mark, reply("c1"), "the result of c1")]
        self.assertEqual(answer, {"type": "result", "id": "c1", "result": {"volume": 37}})
        self.assertEqual(kitchen.rendering.volume, 37)
        await arrives(
            messages, mark, event_of(kitchen, "RenderingControl", volume=37), "c1's event"
        )

        failing: list[tuple[str, str, str, dict[str, Any]]] = [
            ("c2", "Kitchen", "seek", {"position": "9:00:00"}),
            ("c3", "Attic", "play", {}),
            ("c4", "Kitchen", "volume", {"delta": 500}),
        ]
        for request_id, speaker, command, args in failing:
            mark = len(ws.messages)
            ws.send(
                {
                    "op": "command",
                    "id": request_id,
                    "speaker": speaker,
                    "command": command,
                    "args": args,
                }
            )
            answer = ws.messages[await arrives(messages, mark, reply(request_id), request_id)]
            status, body = await daemon.post(speaker, command, args)
            self.assertGreaterEqual(status, 400)
            self.assertEqual(answer, {"type": "error", "id": request_id, "error": body["error"]})
        self.assertEqual(kitchen.rendering.volume, 37)

    async def test_group_member_transport_goes_to_its_coordinator(self) -> None:
        """Transport commands sent to a group member act on its coordinator and name it, while
        volume sent to the member changes that member alone."""
        daemon = await start_daemon(self)
        kitchen, office = daemon.speaker(0), daemon.speaker(2)
        status, body = await daemon.post("Office", "join", {"coordinator": "Kitchen"})
        self.assertEqual(status, 200, body)
        on = {"result": {"coordinator": kitchen.uid}}
        self.assertEqual(await daemon.post("office", "play"), (200, on))
        await kitchen.transport.settled()
        self.assertEqual(kitchen.transport.state, "PLAYING")
        self.assertEqual(await daemon.post("office", "next"), (200, on))
        self.assertEqual(kitchen.transport.track_no, 2)
        self.assertEqual(await daemon.post("office", "pause"), (200, on))
        self.assertEqual(kitchen.transport.state, "PAUSED_PLAYBACK")
        self.assertEqual(office.group.coordinator, kitchen.uid)
        status, body = await daemon.post("Office", "volume", {"volume": 44})
        self.assertEqual((status, body), (200, {"result": {"volume": 44}}))
        self.assertEqual((office.rendering.volume, kitchen.rendering.volume), (44, 20))

    async def test_signed_volume_string_is_relative(self) -> None:
        """A volume string with a sign moves the volume by that much, an unsigned one sets it,
        whether the speaker is named by uid and the command in capitals."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        self.assertEqual(kitchen.rendering.volume, 20)
        for volume, expected in (("+5", 25), ("-7", 18), ("12", 12), ("+0", 12)):
            status, body = await daemon.post(kitchen.uid, "VOLUME", {"volume": volume})
            self.assertEqual((status, body), (200, {"result": {"volume": expected}}), volume)
            self.assertEqual(kitchen.rendering.volume, expected, volume)

    async def test_play_mode_off_the_queue_is_refused_with_712(self) -> None:
        """Shuffle asked while a stream (not the queue) plays is 502 speaker_error with UPnP
        712, and the play mode stays; back on the queue it is set."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        stream = "http://127.0.0.1/live.mp3"
        status, body = await daemon.post("Kitchen", "play_uri", {"uri": stream, "start": False})
        self.assertEqual(status, 200, body)
        status, body = await daemon.post("Kitchen", "play_mode", {"shuffle": True})
        self.assertEqual(
            (status, body["error"]["code"], body["error"]["upnp_error"]),
            (502, "speaker_error", 712),
            body,
        )
        self.assertEqual(kitchen.transport.play_mode, "NORMAL")
        status, body = await daemon.post("Kitchen", "queue", {"action": "play", "track": 1})
        self.assertEqual(status, 200, body)
        status, body = await daemon.post("Kitchen", "play_mode", {"shuffle": True})
        self.assertEqual((status, body["result"]["play_mode"]), (200, "SHUFFLE_NOREPEAT"), body)
        self.assertEqual(kitchen.transport.play_mode, "SHUFFLE_NOREPEAT")

    async def test_crossfade_on_a_stream_or_radio_is_409_naming_the_cause(self) -> None:
        """Crossfade asked while a stream or a radio station plays (the speaker answers UPnP 800) is
        409 not_supported naming the source as the cause, and crossfade stays off; back on the
        queue it is set."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        stream = "http://127.0.0.1/live.mp3"
        for source in (stream, STATIONS[0].uri):
            status, body = await daemon.post("Kitchen", "play_uri", {"uri": source, "start": False})
            self.assertEqual(status, 200, body)
            status, body = await daemon.post("Kitchen", "play_mode", {"crossfade": True})
            error = body["error"]
            self.assertEqual(
                (status, error["code"], error["upnp_error"]), (409, "not_supported", 800), body
            )
            self.assertIn("Kitchen cannot crossfade", error["message"])
            self.assertIn("radio stream, line-in or TV", error["message"])
            self.assertFalse(kitchen.transport.crossfade)
        status, body = await daemon.post("Kitchen", "queue", {"action": "play", "track": 1})
        self.assertEqual(status, 200, body)
        status, body = await daemon.post("Kitchen", "play_mode", {"crossfade": True})
        self.assertEqual((status, body["result"]["crossfade"]), (200, True), body)
        self.assertTrue(kitchen.transport.crossfade)

    async def test_play_uri_without_start_only_sets_the_source(self) -> None:
        """play_uri with start false sets the URI (with the title as DIDL metadata) on the
        coordinator without playing it; by default it plays."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        song = "http://127.0.0.1/later.mp3"
        status, body = await daemon.post(
            "Kitchen", "play_uri", {"uri": song, "title": "Later On", "start": False}
        )
        self.assertEqual(
            (status, body), (200, {"result": {"coordinator": kitchen.uid, "uri": song}})
        )
        self.assertEqual((transport.uri, transport.state), (song, "STOPPED"))
        self.assertIn("Later On", transport.uri_metadata)
        self.assertIn("DIDL-Lite", transport.uri_metadata)
        station = STATIONS[0].uri
        status, body = await daemon.post("Kitchen", "play_uri", {"uri": station})
        self.assertEqual(status, 200, body)
        await transport.settled()
        self.assertEqual((transport.uri, transport.state), (station, "PLAYING"))

    async def test_snapshot_of_the_same_name_replaces_it(self) -> None:
        """A second snapshot of the same (default) name replaces the first: restore brings
        back the later volume."""
        daemon = await start_daemon(self)
        kitchen = daemon.speaker(0)
        for volume in (10, 30):
            kitchen.set_volume(volume)
            status, body = await daemon.post("Kitchen", "snapshot")
            self.assertEqual((status, body["result"]["name"]), (200, "default"), body)
        kitchen.set_volume(50)
        status, body = await daemon.post("Kitchen", "restore")
        self.assertEqual((status, body["result"]["name"]), (200, "default"), body)
        self.assertEqual(kitchen.rendering.volume, 30)

    async def test_stereo_pair_room_is_its_visible_speaker(self) -> None:
        """A stereo pair's room name means its visible speaker (whose volume is the room's,
        so the hidden half follows it), and party joins that speaker (its hidden partner
        follows it) without naming the partner among the joined."""
        daemon = await start_daemon(
            self, simulate={"speakers": 4, "stereo_pair": True, "rooms": ["Kitchen", "Office"]}
        )
        left, right = daemon.speaker(0), daemon.speaker(1)
        others = [daemon.speaker(2), daemon.speaker(3)]
        self.assertEqual((left.name, right.name, right.invisible), ("Kitchen", "Kitchen", True))
        left.set_volume(25)
        right.set_volume(20)
        self.assertEqual((left.rendering.volume, right.rendering.volume), (25, 20))
        status, body = await daemon.post("kitchen", "volume", {"volume": 31})
        self.assertEqual((status, body), (200, {"result": {"volume": 31}}))
        self.assertEqual((left.rendering.volume, right.rendering.volume), (31, 31))
        status, body = await daemon.post(others[0].uid, "party")
        self.assertEqual(status, 200, body)
        party = body["result"]
        self.assertEqual(sorted(party["joined"]), sorted([left.uid, others[1].uid]))
        self.assertTrue(party["confirmed"])
        self.assertEqual(
            member_uids(party), {left.uid, right.uid, *(speaker.uid for speaker in others)}
        )
        self.assertEqual((left.group.coordinator, right.group.coordinator), (others[0].uid,) * 2)

    async def test_toggle_pauses_a_transitioning_speaker(self) -> None:
        """toggle pauses a speaker still TRANSITIONING (a Play not yet playing), as it pauses a
        playing one, and the pause reaches SSE."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen = daemon.speaker(0)
        transport = kitchen.transport
        # The simulated speaker holds the Play below in TRANSITIONING for an hour.
        transport.transition_delay = 3600.0
        status, body = await daemon.post("Kitchen", "play")
        self.assertEqual(status, 200, body)
        self.assertEqual(transport.state, "TRANSITIONING")
        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "toggle")
        self.assertEqual(
            (status, body), (200, {"result": {"coordinator": kitchen.uid, "action": "pause"}})
        )
        self.assertEqual(transport.state, "PAUSED_PLAYBACK")
        await arrives(
            client.messages,
            mark,
            event_of(kitchen, "AVTransport", transport_state="PAUSED_PLAYBACK"),
            "the pause",
        )

    async def test_sleep_timer_set_in_seconds(self) -> None:
        """sleep_timer with seconds (not minutes) sets the coordinator's timer to that many
        seconds and answers what remains of it."""
        daemon = await start_daemon(self)
        office = daemon.speaker(2)
        status, body = await daemon.post("Office", "sleep_timer", {"action": "set", "seconds": 75})
        self.assertEqual(status, 200, body)
        result = body["result"]
        self.assertEqual(result["coordinator"], office.uid)
        # 75 s, read back just after: not 75 minutes, nor rounded to whole minutes.
        self.assertIn(result["remaining"], range(61, 76), result)
        self.assertIn(office.transport.remaining_sleep(), range(61, 76))

    async def test_restore_with_fade_ramps_the_volume_up(self) -> None:
        """restore with fade sets the volume to 0 and has the speaker ramp it to the saved
        volume (SoCo's Snapshot.restore(fade=True)): it rises step by step over SSE instead of
        jumping there."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen = daemon.speaker(0)
        kitchen.set_volume(33)
        status, body = await daemon.post("Kitchen", "snapshot", {"name": "quiet"})
        self.assertEqual(status, 200, body)
        status, body = await daemon.post("Kitchen", "volume", {"volume": 70})
        self.assertEqual(status, 200, body)
        mark = len(client.messages())
        status, body = await daemon.post("Kitchen", "restore", {"name": "quiet", "fade": True})
        self.assertEqual(status, 200, body)
        self.assertEqual(kitchen.ramp.target, 33)
        self.assertLess(kitchen.rendering.volume, 33)
        zero = await arrives(
            client.messages, mark, event_of(kitchen, "RenderingControl", volume=0), "volume 0"
        )
        await arrives(
            client.messages,
            zero + 1,
            event_of(kitchen, "RenderingControl", volume=1),
            "the ramp's first step",
        )

    async def test_snapshot_and_restore_get_three_call_timeouts(self) -> None:
        """A speaker whose snapshot and restore take longer than the call timeout (every SOAP
        answer dripped out) but less than three times it is snapshot and restored."""
        daemon = await start_daemon(self, soco={"call_timeout": 1.0})
        kitchen = daemon.speaker(0)
        kitchen.set_volume(27)
        # Here snapshot makes 10 SOAP calls and restore 12; each answer is padded past 1 KiB
        # and written in pieces 0.11 s apart: at least 1.1 s (snapshot) and 1.3 s (restore),
        # each piece well within the call timeout that SoCo's requests also read with.
        faults = kitchen.soap_faults
        faults.padding, faults.drip = 1024, 0.11
        self.addCleanup(faults.reset)
        status, body = await daemon.post("Kitchen", "snapshot", {"name": "slow"})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["result"]["members"], [kitchen.uid])
        kitchen.set_volume(60)
        status, body = await daemon.post("Kitchen", "restore", {"name": "slow"})
        self.assertEqual(status, 200, body)
        self.assertEqual(kitchen.rendering.volume, 27)

    async def test_transport_command_to_a_former_coordinator_is_800(self) -> None:
        """A transport command to a speaker that has just joined another group, while the
        household still shows it coordinating its own (a slow regroup), is refused by the
        speaker: 502 speaker_error with UPnP 800; once the topology shows the group, the
        command goes to the new coordinator."""
        daemon = await start_daemon(self)
        client = await sse(self, daemon)
        kitchen, office = daemon.speaker(0), daemon.speaker(2)
        daemon.household.set_modes(regroup_delay=1.5)
        mark = len(client.messages())
        # Grouped from elsewhere (the Sonos app): the household shows it 1.5 s later (the
        # command below takes a few hundredths of that).
        daemon.household.join(office, kitchen)
        status, body = await daemon.post("Office", "play")
        self.assertEqual(
            (status, body["error"]["code"], body["error"]["upnp_error"]),
            (502, "speaker_error", 800),
            body,
        )
        self.assertEqual(kitchen.transport.state, "STOPPED")
        await arrives(client.messages, mark, topology_with(kitchen, office), "the new group")
        status, body = await daemon.post("Office", "play")
        self.assertEqual((status, body), (200, {"result": {"coordinator": kitchen.uid}}))
