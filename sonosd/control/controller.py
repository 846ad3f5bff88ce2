# -*- test-case-name: tests.control.test_controller -*-
"""Speaker commands: what the REST API, the WebSocket and MQTT run through one method.

``Controller.execute(speaker_id, command, args)`` checks the command and its arguments
(``sonosd.control.commandargs``, no network), finds the speaker in ``HouseholdState`` (uid or room
name, any case), routes transport commands to its group coordinator, and runs SoCo's blocking
calls in the ``SocoRunner``: with a timeout, one at a time per speaker (key: its uid). Join,
leave and party mode wait, within ``confirm_timeout``, for topology events to show the new
grouping, so that the answer shows the resulting group.

Every failure reaches the client as a ``ControlError`` with a stable code and the HTTP status
(``docs/control.md``); SoCo's exceptions are translated here and a traceback is only ever
logged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from sonosd import lazysoco
from sonosd.backoff import not_http
from sonosd.blocking import CallTimeout, Runner
from sonosd.config import AnnounceConfig
from sonosd.control.alarms import AlarmCommands
from sonosd.control.announce import AnnounceCommands
from sonosd.control.commandargs import ControlError, Params, bad_argument, parse_command
from sonosd.control.context import GroupSnapshot, Handler, call_meaning
from sonosd.control.inputs import InputCommands
from sonosd.control.library import LibraryCommands
from sonosd.control.queue import QueueCommands
from sonosd.control.skips import SkipFile
from sonosd.gena.media import MediaStore
from sonosd.household.probe import UPNP_HELP
from sonosd.household.soap import AnswerRefused, fault_code
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import Topology, TopologyError, parse_zone_group_state

if TYPE_CHECKING:
    from soco.snapshot import Snapshot

__all__ = ["ControlError", "Controller", "GroupSnapshot"]

log = Logger()

MAX_PENDING = 32
"""The most SoCo calls of commands waiting or running at once for one speaker (see
``Controller``): a speaker answers a few commands a second, so more would only wait."""

T = TypeVar("T")

_REPEAT_NAMES: Mapping[Any, str] = {False: "none", True: "all", "ONE": "one"}
_REPEAT_VALUES: Mapping[str, Any] = {"none": False, "all": True, "one": "ONE"}
_PLAYING = frozenset({"PLAYING", "TRANSITIONING"})


# -- blocking calls (run in the pool) --------------------------------------------------------


def _on_device(
    build: Callable[[SpeakerRef], Any], ref: SpeakerRef, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(device, *args)`` with ``ref``'s SoCo object built here, in the pool's thread."""
    return fn(build(ref), *args)


def _toggle(device: Any) -> str:
    state = device.get_current_transport_info()["current_transport_state"]
    if state in _PLAYING:
        device.pause()
        return "pause"
    device.play()
    return "play"


def _seek(device: Any, position: str | None, track: int | None) -> None:
    if track is not None:
        device.seek(track=track - 1)
    else:
        device.seek(position=position)


def _play_mode(
    device: Any, shuffle: bool | None, repeat: str | None, crossfade: bool | None
) -> dict[str, Any]:
    from soco.core import PLAY_MODE_BY_MEANING, PLAY_MODES

    mode = device.play_mode
    if shuffle is not None or repeat is not None:
        current_shuffle, current_repeat = PLAY_MODES[mode]
        wanted = PLAY_MODE_BY_MEANING[
            (
                current_shuffle if shuffle is None else shuffle,
                current_repeat if repeat is None else _REPEAT_VALUES[repeat],
            )
        ]
        if wanted != mode:
            device.play_mode = wanted
            mode = wanted
    if crossfade is not None:
        device.cross_fade = crossfade
    shuffled, repeated = PLAY_MODES[mode]
    return {
        "play_mode": mode,
        "shuffle": shuffled,
        "repeat": _REPEAT_NAMES[repeated],
        "crossfade": bool(device.cross_fade),
    }


def _volume(device: Any, volume: int | None, delta: int | None) -> int:
    if delta is not None:
        return int(device.set_relative_volume(delta))
    assert volume is not None
    device.volume = volume
    return volume


def _mute(device: Any, mute: bool | None) -> bool:
    if mute is None:
        mute = not device.mute
    device.mute = mute
    return mute


def _set(device: Any, attribute: str, value: Any) -> None:
    setattr(device, attribute, value)


def _group_volume(device: Any, volume: int | None, delta: int | None) -> int:
    group = device.groupRenderingControl
    if delta is not None:
        return int(
            group.SetRelativeGroupVolume([("InstanceID", 0), ("Adjustment", delta)])["NewVolume"]
        )
    group.SnapshotGroupVolume([("InstanceID", 0)])
    group.SetGroupVolume([("InstanceID", 0), ("DesiredVolume", volume)])
    return int(group.GetGroupVolume([("InstanceID", 0)])["CurrentVolume"])


def _group_mute(device: Any, mute: bool | None) -> bool:
    group = device.groupRenderingControl
    if mute is None:
        mute = group.GetGroupMute([("InstanceID", 0)])["CurrentMute"] != "1"
    group.SetGroupMute([("InstanceID", 0), ("DesiredMute", "1" if mute else "0")])
    return mute


def _join(device: Any, coordinator_uid: str) -> None:
    device.avTransport.SetAVTransportURI(
        [
            ("InstanceID", 0),
            ("CurrentURI", f"x-rincon:{coordinator_uid}"),
            ("CurrentURIMetaData", ""),
        ]
    )


def _leave(device: Any) -> None:
    device.unjoin()


def _zone_group_state(device: Any) -> str:
    return str(device.zoneGroupTopology.GetZoneGroupState()["ZoneGroupState"])


def _play_uri(device: Any, uri: str, meta: str, title: str, start: bool) -> None:
    device.play_uri(uri, meta=meta, title=title, start=start)


def _sleep_timer(device: Any, action: str, seconds: int | None) -> dict[str, Any]:
    if action == "set":
        device.set_sleep_timer(seconds)
    elif action == "cancel":
        device.set_sleep_timer(None)
    return {"remaining": device.get_sleep_timer()}


def _take_snapshot(device: Any) -> Snapshot:
    from soco.snapshot import Snapshot

    snapshot = Snapshot(device)
    snapshot.snapshot()
    return snapshot


def _restore_snapshot(device: Any, snapshot: Snapshot, fade: bool) -> None:
    snapshot.restore(fade=fade)


def _invoke(device: Any, method: str) -> None:
    getattr(device, method)()


# -- the controller --------------------------------------------------------------------------


def _standalone(uid: str) -> Callable[[Topology], bool]:
    def check(topology: Topology) -> bool:
        group = topology.group_of(uid)
        return (
            group is not None
            and group.coordinator == uid
            and all(member.uid == uid or member.invisible for member in group.members)
        )

    return check


def _follows(uids: Iterable[str], coordinator: str) -> Callable[[Topology], bool]:
    wanted = tuple(uids)

    def check(topology: Topology) -> bool:
        return all(topology.coordinator_of(uid) == coordinator for uid in wanted)

    return check


def _regrouped(
    coordinator: str, members: Iterable[str], leavers: Iterable[str]
) -> Callable[[Topology], bool]:
    """``coordinator`` leads a group holding ``members`` and none of ``leavers``."""
    follows = _follows((coordinator, *members), coordinator)
    gone = tuple(leavers)

    def check(topology: Topology) -> bool:
        return follows(topology) and all(
            topology.coordinator_of(uid) != coordinator for uid in gone
        )

    return check


class Controller:
    """Runs speaker commands; see the module docstring and ``docs/control.md``.

    @param runner: The ``SocoRunner`` every SoCo call goes through.
    @param state: The household: speakers by uid/room, availability, topology.
    @param reactor: Schedules the waits (topology confirmation, announcement polling).
    @param timeout: Seconds for one SoCo call (snapshot and restore get three times that).
    @param soco_factory: Builds the SoCo object of an address (default:
        ``sonosd.lazysoco.speaker``, which loads SoCo with the first one).
    @param confirm_timeout: Seconds join/leave/party wait for topology events before
        reading the topology from the speaker instead.
    @param poll_interval: Seconds between transport reads while an announcement plays.
    @param max_pending: SoCo calls of commands that may wait or run at once for one speaker;
        beyond, a command fails at once with 503 ``busy`` instead of queueing (a client
        flooding commands cannot grow the queue, nor delay the daemon's own calls for long).
    @param unreachable: Told ``(uid, reason)`` when a call to a speaker times out, cannot
        connect or is refused 403 (UPnP off) (the household supervisor then checks its
        availability at once), or ``None``.
    @param transport_commanded: Told the coordinator's uid after a transport command (play,
        pause, seek...) succeeded (the track position is read again), or ``None``.
    @param announce: The ``announce`` configuration (text to speech, defaults).
    @param media: Where the clips of spoken announcements are served (``None``: none).
    @param media_url: The URL of a served clip as a speaker's host reaches it.
    @param state_dir: Where pending alarm skips are kept across restarts (``None``: nowhere).

    The commands of each area live in their own module (``control.queue``,
    ``control.library``, ``control.alarms``, ``control.announce``, ``control.inputs``), built
    with this controller as their ``ControlContext``.
    """

    def __init__(
        self,
        runner: Runner,
        state: HouseholdState,
        reactor: IReactorTime,
        *,
        timeout: float = 10.0,
        soco_factory: Callable[..., Any] = lazysoco.speaker,
        confirm_timeout: float = 5.0,
        poll_interval: float = 0.5,
        max_pending: int = MAX_PENDING,
        unreachable: Callable[[str, str], None] | None = None,
        transport_commanded: Callable[[str], None] | None = None,
        announce: AnnounceConfig | None = None,
        media: MediaStore | None = None,
        media_url: Callable[[str, str], str] | None = None,
        state_dir: str | None = None,
    ) -> None:
        self.unreachable = unreachable
        self.transport_commanded = transport_commanded
        self._runner = runner
        self._max_pending = max(1, max_pending)
        self._pending: dict[str, int] = {}
        self._state = state
        self._reactor = reactor
        self.timeout = timeout
        self._soco_factory = soco_factory
        self.confirm_timeout = confirm_timeout
        self.poll_interval = poll_interval
        self.snapshots: dict[str, GroupSnapshot] = {}
        self.executed = 0
        self.failed = 0
        #: Called with ``(command, result, seconds)`` when a command ends (``result``: ``ok``
        #: or the error code), for the command latency metric.
        self.on_done: Callable[[str, str, float], None] | None = None
        self.alarms = AlarmCommands(self, skip_file=SkipFile(state_dir))
        self.announcements = AnnounceCommands(
            self,
            self,
            announce or AnnounceConfig(),
            media=media,
            media_url=media_url,
            poll_interval=poll_interval,
        )
        self._handlers: dict[str, Handler] = {}
        for area in (
            QueueCommands(self),
            LibraryCommands(self),
            self.alarms,
            self.announcements,
            InputCommands(self),
        ):
            for command in area.COMMANDS:
                self._handlers[command] = getattr(area, f"do_{command}")

    @property
    def reactor(self) -> IReactorTime:
        """Schedules waits and timers."""
        return self._reactor

    @property
    def state(self) -> HouseholdState:
        """The household as the daemon knows it."""
        return self._state

    def pending(self, uid: str) -> int:
        """Commands' SoCo calls waiting or running for the speaker ``uid`` now (at most
        ``max_pending``: past that a command is refused ``busy``)."""
        return self._pending.get(uid, 0)

    @property
    def soco_factory(self) -> Callable[..., Any]:
        """Builds the SoCo object of an address."""
        return self._soco_factory

    def reconfigure_announce(self, config: AnnounceConfig) -> None:
        """Use a new ``announce`` configuration from the next announcement on (reload)."""
        self.announcements.reconfigure(config)

    def stop(self) -> None:
        """Cancel the timers the commands left (alarm re-enables after a skip: they stay in
        the state directory for the next start)."""
        self.alarms.stop()

    # -- entry point -------------------------------------------------------------------------

    def execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]:
        """Run ``command`` with ``args`` on the speaker ``speaker_id`` (uid or room name).

        @return: A Deferred firing with the command's JSON result, or failing with a
            ``ControlError``.
        """
        return Deferred.fromCoroutine(self._execute(speaker_id, command, args))

    async def _execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> dict[str, Any]:
        started = time.monotonic()
        ref: SpeakerRef | None = None
        try:
            name, params = parse_command(command, args)
            ref = self.speaker(speaker_id)
            handler: Handler = self._handlers.get(name) or getattr(self, f"_do_{name}")
            result: dict[str, Any] = await handler(ref, params)
        except Exception as error:
            self.failed += 1
            translated = self._translate(error, ref)
            self._observe(command, translated.code, started)
            log.info(
                # Not "message": legacy log observers (twisted.python.log) reset that field.
                "command {command} on {speaker} failed: {code} {reason}",
                command=command,
                speaker=speaker_id,
                code=translated.code,
                reason=translated.message,
            )
            raise translated from error
        self.executed += 1
        self._observe(name, "ok", started)
        log.debug(
            "command {command} on {speaker} done in {ms} ms",
            command=name,
            speaker=ref.name,
            ms=round((time.monotonic() - started) * 1000),
        )
        return result

    def _observe(self, command: str, result: str, started: float) -> None:
        """Tell ``on_done`` (the metrics) how a command ended and how long it took."""
        if self.on_done is not None:
            self.on_done(command, result, time.monotonic() - started)

    def _translate(self, error: Exception, ref: SpeakerRef | None) -> ControlError:
        who = "the speaker" if ref is None else ref.name or ref.uid
        if isinstance(error, ControlError):
            return error
        if isinstance(error, CallTimeout):
            return ControlError("timeout", 504, f"{who} did not answer within {error.seconds:g} s")
        # SoCo and requests are loaded with the first SoCo object: an error can only be one
        # of theirs once they are (sonosd.lazysoco).
        exceptions = lazysoco.loaded_module("soco.exceptions")
        requests = lazysoco.loaded_module("requests")
        if exceptions is not None and isinstance(error, exceptions.SoCoUPnPException):
            return _upnp_error(who, str(error.error_code))
        if exceptions is not None and isinstance(error, exceptions.UnknownSoCoException):
            # SoCo's int() refused the errorCode ("²", 5,000 digits): its error holds the
            # whole answer (up to socohttp.MAX_ANSWER), never echoed.
            answer = error.args[0] if error.args else b""
            try:
                code = fault_code(answer) if isinstance(answer, bytes) else None
            except AnswerRefused:
                code = None
            if code is not None:
                return _upnp_error(who, code)
            return ControlError("speaker_error", 502, f"{who} failed: an unreadable UPnP fault")
        if exceptions is not None and isinstance(error, exceptions.NotSupportedException):
            return ControlError("not_supported", 409, f"{who} does not support this: {error}")
        if requests is not None and isinstance(error, requests.exceptions.Timeout):
            # SoCo's own request timeout (the daemon sets it to the call timeout, so that a
            # hung speaker frees its thread): the same answer as the pool's, whichever fires
            # first.
            import soco.config

            seconds = soco.config.REQUEST_TIMEOUT
            return ControlError("timeout", 504, f"{who} did not answer within {seconds:g} s")
        garbled = not_http(error)
        if garbled is not None:
            # It answered, with no HTTP status line: reachable, and wrong.
            return ControlError("speaker_error", 502, f"{who} failed: {garbled}")
        if requests is not None and isinstance(error, requests.exceptions.ConnectionError):
            return ControlError("offline", 503, f"{who} cannot be reached")
        if (
            requests is not None
            and isinstance(error, requests.exceptions.HTTPError)
            and getattr(error.response, "status_code", None) == 403
        ):
            # 403 over HTTP and over HTTPS (sonosd.securesoap tried both): UPnP is off.
            return ControlError("upnp_disabled", 503, f"{who} cannot be controlled: {UPNP_HELP}")
        # Any other requests error: SoCo's raise_for_status() on a status other than 200, 405
        # and 500, a body that breaks off ...
        if (
            isinstance(error, TopologyError)
            or (exceptions is not None and isinstance(error, exceptions.SoCoException))
            or (requests is not None and isinstance(error, requests.exceptions.RequestException))
        ):
            return ControlError("speaker_error", 502, _bounded(f"{who} failed: {error}"))
        log.failure("a command on {speaker} failed unexpectedly", speaker=who)
        return ControlError("internal", 500, "the command failed; see the daemon's log")

    # -- speakers ----------------------------------------------------------------------------

    def speaker(self, speaker_id: str, argument: str | None = None) -> SpeakerRef:
        ref = self._state.find(speaker_id) if speaker_id else None
        if ref is None:
            about = f" ({argument})" if argument else ""
            raise ControlError("unknown_speaker", 404, f"no speaker {speaker_id!r}{about}")
        self._check_online(ref)
        return ref

    def _check_online(self, ref: SpeakerRef) -> None:
        availability = self._state.availability(ref.uid)
        if availability.online is not False:
            return
        who = ref.name or ref.uid
        reason = availability.reason
        if availability.status == "asleep":
            raise ControlError("asleep", 503, f"{who} is asleep ({reason or 'sleeping'})")
        if availability.status == "upnp_disabled":
            raise ControlError("upnp_disabled", 503, f"{who} cannot be controlled: {reason}")
        because = f": {reason}" if reason else ""
        raise ControlError("offline", 503, f"{who} is offline{because}")

    def _ref(self, uid: str, topology: Topology | None = None) -> SpeakerRef:
        ref = self._state.by_uid(uid)
        if ref is not None:
            return ref
        member = topology.member(uid) if topology is not None else None
        if member is None or not member.host:
            raise ControlError("unknown_speaker", 404, f"no speaker {uid!r}")
        return SpeakerRef(uid=uid, name=member.name, host=member.host, port=member.port or 1400)

    def coordinator(self, ref: SpeakerRef) -> SpeakerRef:
        """The coordinator of ``ref``'s group (``ref`` itself before any topology is known)."""
        topology = self._state.topology
        uid = topology.coordinator_of(ref.uid) if topology is not None else None
        if uid is None or uid == ref.uid:
            return ref
        coordinator = self._ref(uid, topology)
        self._check_online(coordinator)
        return coordinator

    def _device(self, ref: SpeakerRef) -> Any:
        if ref.port == 1400:
            return self._soco_factory(ref.host)
        return self._soco_factory(ref.host, ref.port)

    async def call(
        self, ref: SpeakerRef, fn: Callable[..., T], *args: Any, slow: bool = False
    ) -> T:
        timeout = self.timeout * 3 if slow else self.timeout
        pending = self._pending.get(ref.uid, 0)
        if pending >= self._max_pending:
            raise ControlError(
                "busy",
                503,
                f"{ref.name or ref.uid} has {pending} commands waiting; try again shortly",
            )
        self._pending[ref.uid] = pending + 1
        try:
            # The SoCo object is built in the pool: the first one imports SoCo (lazysoco),
            # a fraction of a second the reactor must not wait.
            result: T = await self._runner.run(
                _on_device, self._device, ref, fn, *args, key=ref.uid, timeout=timeout
            )
        except Exception as error:
            # Name the speaker the call went to (the coordinator, for transport commands).
            translated = self._translate(error, ref)
            if (
                translated.code in ("timeout", "offline", "upnp_disabled")
                and self.unreachable is not None
            ):
                self.unreachable(ref.uid, translated.message)
            raise translated from error
        finally:
            left = self._pending[ref.uid] - 1
            if left:
                self._pending[ref.uid] = left
            else:
                del self._pending[ref.uid]
        return result

    async def topology(self, ref: SpeakerRef) -> Topology:
        """The topology of ``ref``'s household: the state's, else read from ``ref``."""
        topology = self._state.topology_for(ref.uid)
        if topology is not None:
            return topology
        return await self._read_topology(ref)

    async def _read_topology(self, ref: SpeakerRef) -> Topology:
        return parse_zone_group_state(await self.call(ref, _zone_group_state))

    async def _confirm(self, ref: SpeakerRef, check: Callable[[Topology], bool]) -> dict[str, Any]:
        """Wait for the topology to satisfy ``check``; answer ``ref``'s group.

        Topology events are awaited for ``confirm_timeout`` seconds (not at all before the
        state has a topology: no event pipeline); after that the topology is read from the
        speaker.
        """
        topology: Topology | None = None
        source = "event"
        if self._state.topology is not None:
            topology = await self._await_topology(check, self.confirm_timeout)
        if topology is None:
            source = "read"
            try:
                topology = await self._read_topology(ref)
            except ControlError as error:
                # A large household answers GetZoneGroupState with UPnP 501: its topology is
                # only known from events, so the last one known is the answer.
                topology = self._state.topology_for(ref.uid)
                if error.upnp_error != 501 or topology is None:
                    raise
                source = "state"
        group = topology.group_of(ref.uid)
        return {
            "group": None if group is None else group.to_json(),
            "confirmed": check(topology),
            "source": source,
        }

    async def _await_topology(
        self, check: Callable[[Topology], bool], seconds: float
    ) -> Topology | None:
        current = self._state.topology
        if current is not None and check(current):
            return current
        done: Deferred[Topology | None] = Deferred()

        def observe(old: Topology | None, new: Topology) -> None:
            if not done.called and check(new):
                done.callback(new)

        def expire() -> None:
            if not done.called:
                done.callback(None)

        self._state.add_topology_observer(observe)
        timer = self._reactor.callLater(seconds, expire)
        try:
            return await done
        finally:
            self._state.remove_topology_observer(observe)
            if timer.active():
                timer.cancel()

    async def _all(self, calls: Iterable[Deferred[Any]]) -> list[Any]:
        """Wait for every call; raise the first failure after all have finished."""
        results = await DeferredList(list(calls), consumeErrors=True)
        values = []
        for ok, value in results:
            if not ok:
                value.raiseException()
            values.append(value)
        return values

    def _run(
        self, ref: SpeakerRef, fn: Callable[..., Any], *args: Any, slow: bool = False
    ) -> Deferred[Any]:
        return Deferred.fromCoroutine(self.call(ref, fn, *args, slow=slow))

    # -- transport (on the coordinator) -------------------------------------------------------

    def _moved(self, coordinator: SpeakerRef) -> None:
        if self.transport_commanded is not None:
            self.transport_commanded(coordinator.uid)

    async def _transport(self, ref: SpeakerRef, method: str) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        await self.call(coordinator, _invoke, method)
        self._moved(coordinator)
        return {"coordinator": coordinator.uid}

    async def _do_play(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._transport(ref, "play")

    async def _do_pause(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._transport(ref, "pause")

    async def _do_stop(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._transport(ref, "stop")

    async def _do_next(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._transport(ref, "next")

    async def _do_previous(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._transport(ref, "previous")

    async def _do_toggle(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        action = await self.call(coordinator, _toggle)
        self._moved(coordinator)
        return {"coordinator": coordinator.uid, "action": action}

    async def _do_seek(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        await self.call(coordinator, _seek, params.get("position"), params.get("track"))
        self._moved(coordinator)
        return {"coordinator": coordinator.uid, **params}

    async def _do_play_mode(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        # SetCrossfadeMode is 800 on content that cannot crossfade (SetPlayMode says 712):
        # reference/samples/service_descriptions/documentation.json.
        meanings = {
            800: (
                "not_supported",
                409,
                f"{coordinator.name or coordinator.uid} cannot crossfade what it plays now "
                "(a radio stream, line-in or TV): Sonos crossfades only between tracks of "
                "the queue",
            )
        }
        return await call_meaning(
            self,
            coordinator,
            meanings if "crossfade" in params else {},
            _play_mode,
            params.get("shuffle"),
            params.get("repeat"),
            params.get("crossfade"),
        )

    async def _do_play_uri(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        await self.call(
            coordinator, _play_uri, params["uri"], params["meta"], params["title"], params["start"]
        )
        return {"coordinator": coordinator.uid, "uri": params["uri"]}

    async def _do_sleep_timer(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        result = await self.call(coordinator, _sleep_timer, params["action"], params.get("seconds"))
        return {"coordinator": coordinator.uid, **result}

    # -- rendering (on the speaker itself) -----------------------------------------------------

    async def _do_volume(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        volume = await self.call(ref, _volume, params.get("volume"), params.get("delta"))
        return {"volume": volume}

    async def _do_mute(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return {"mute": await self.call(ref, _mute, params["mute"])}

    async def _setting(self, ref: SpeakerRef, attribute: str, value: Any) -> dict[str, Any]:
        await self.call(ref, _set, attribute, value)
        return {attribute: value}

    async def _do_bass(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._setting(ref, "bass", params["bass"])

    async def _do_treble(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._setting(ref, "treble", params["treble"])

    async def _do_loudness(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._setting(ref, "loudness", params["loudness"])

    async def _do_night_mode(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._setting(ref, "night_mode", params["night_mode"])

    async def _do_dialog_mode(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return await self._setting(ref, "dialog_mode", params["dialog_mode"])

    async def _do_group_volume(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        volume = await self.call(
            coordinator, _group_volume, params.get("volume"), params.get("delta")
        )
        return {"coordinator": coordinator.uid, "group_volume": volume}

    async def _do_group_mute(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        mute = await self.call(coordinator, _group_mute, params["mute"])
        return {"coordinator": coordinator.uid, "group_mute": mute}

    # -- grouping ----------------------------------------------------------------------------

    async def _do_join(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        target = self.speaker(params["coordinator"], "coordinator")
        coordinator = self.coordinator(target)
        if coordinator.uid == ref.uid or target.uid == ref.uid:
            raise bad_argument("coordinator", f"{ref.name} cannot join its own group")
        if None not in (ref.household, target.household) and ref.household != target.household:
            raise bad_argument(
                "coordinator",
                f"{target.name} is in household {target.household}, {ref.name} in "
                f"{ref.household}: speakers of different households cannot be grouped",
            )
        topology = self._state.topology
        if topology is None or topology.coordinator_of(ref.uid) != coordinator.uid:
            await self.call(ref, _join, coordinator.uid)
        return await self._confirm(ref, _follows([ref.uid], coordinator.uid))

    async def _do_leave(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        topology = self._state.topology
        if topology is None or not _standalone(ref.uid)(topology):
            await self.call(ref, _leave)
        return await self._confirm(ref, _standalone(ref.uid))

    async def _do_party(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        coordinator = self.coordinator(ref)
        topology = await self.topology(ref)
        joining = [
            member.uid
            for group in topology.groups
            if group.coordinator != coordinator.uid
            for member in group.members
            if not member.invisible
            and not member.is_zone_bridge
            and self._state.availability(member.uid).online is not False
        ]
        await self._all(
            self._run(self._ref(uid, topology), _join, coordinator.uid) for uid in joining
        )
        result = await self._confirm(coordinator, _follows(joining, coordinator.uid))
        return {**result, "joined": joining}

    # -- snapshots and announcements -----------------------------------------------------------

    async def _take(self, name: str, ref: SpeakerRef) -> GroupSnapshot:
        topology = await self.topology(ref)
        group = topology.group_of(ref.uid)
        if group is None:
            members: tuple[str, ...] = (ref.uid,)
            coordinator = ref.uid
        else:
            coordinator = group.coordinator
            members = tuple(
                member.uid
                for member in group.members
                if not member.invisible or member.uid == group.coordinator
            )
        refs = {uid: self._ref(uid, topology) for uid in members}
        taken = await self._all(self._run(refs[uid], _take_snapshot, slow=True) for uid in members)
        snapshot = GroupSnapshot(
            name=name,
            coordinator=coordinator,
            members=members,
            speakers=dict(zip(members, taken, strict=True)),
            refs=refs,
        )
        self.snapshots[name] = snapshot
        return snapshot

    async def take_snapshot(self, name: str, ref: SpeakerRef) -> GroupSnapshot:
        """Save ``ref``'s group as ``name`` (see ``snapshot``)."""
        return await self._take(name, ref)

    async def restore_snapshot(self, saved: GroupSnapshot, fade: bool) -> dict[str, Any]:
        """Regroup as ``saved`` and restore every member (see ``restore``)."""
        return await self._restore(saved, fade)

    def forget_snapshot(self, name: str) -> None:
        """Drop the snapshot ``name``."""
        self.snapshots.pop(name, None)

    async def leave(self, ref: SpeakerRef) -> dict[str, Any]:
        """``ref`` becomes a group of its own; answers once the topology shows it."""
        return await self._do_leave(ref, {})

    async def _do_snapshot(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        return (await self._take(params["name"], ref)).to_json()

    async def _restore(self, saved: GroupSnapshot, fade: bool) -> dict[str, Any]:
        coordinator = saved.refs[saved.coordinator]
        topology = await self.topology(coordinator)
        others = [uid for uid in saved.members if uid != saved.coordinator]
        moves: list[Deferred[Any]] = []
        leavers: list[str] = []
        left = topology.coordinator_of(saved.coordinator) != saved.coordinator
        if left:
            await self.call(coordinator, _leave)
        current = topology.group_of(saved.coordinator)
        if current is not None and current.coordinator == saved.coordinator:
            for member in current.members:
                if member.uid not in saved.members and not member.invisible:
                    leavers.append(member.uid)
                    moves.append(self._run(self._ref(member.uid, topology), _leave))
        for uid in others:
            if topology.coordinator_of(uid) != saved.coordinator:
                moves.append(self._run(saved.refs[uid], _join, saved.coordinator))
        await self._all(moves)
        group: dict[str, Any] | None = None
        regrouped = left or bool(moves)
        if regrouped:
            check = _regrouped(saved.coordinator, others, leavers)
            group = await self._confirm(coordinator, check)
        await self._all(
            self._run(saved.refs[uid], _restore_snapshot, saved.speakers[uid], fade, slow=True)
            for uid in saved.members
        )
        result: dict[str, Any] = {**saved.to_json(), "regrouped": regrouped}
        if group is not None:
            result["group"] = group["group"]
        return result

    async def _do_restore(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        saved = self.snapshots.get(params["name"])
        if saved is None:
            known = ", ".join(sorted(self.snapshots)) or "none"
            raise ControlError(
                "unknown_snapshot", 404, f"no snapshot named {params['name']!r}; known: {known}"
            )
        return await self._restore(saved, params["fade"])


#: The most of a speaker's words an error message repeats (a fault code, SoCo's message).
SHOWN = 200


def _bounded(text: str) -> str:
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def _upnp_error(who: str, code: str) -> ControlError:
    """A speaker's UPnP fault: its code a number only when it is one (1-9 ASCII digits)."""
    number = code.isascii() and code.isdigit() and len(code) <= 9
    return ControlError(
        "speaker_error",
        502,
        _bounded(f"{who} refused: UPnP error {code}"),
        upnp_error=int(code) if number else None,
    )
