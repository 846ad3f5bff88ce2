# -*- test-case-name: tests.sim.test_admin -*-
"""The simulator's admin HTTP API: JSON, on its own endpoint (never on a speaker's port).

It reads and changes the household's state (changes are evented exactly like changes made
through SoCo) and injects faults: reboot, offline, address change, NOTIFY bursts, the GENA
faults of each speaker's ``SubscriptionManager``, and the household and firmware modes
(large household, UPnP off, HTTPS-only control, portables asleep or on Bluetooth). Every
route is listed in ``docs/simulator.md``; ``GET /`` lists them too.

A speaker is named in the path by its index (``0``, counted across every household), UID,
address or room name; a household by its number (``0``) or household ID.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import attrs
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from sonosd.sim import catalog, musicservices
from sonosd.sim.battery import POWER_SOURCES
from sonosd.sim.content import queue_tracks
from sonosd.sim.didl import format_duration, parse_duration
from sonosd.sim.gena import ANSWER_ONLY, MAX_SEQ
from sonosd.sim.household import Household, Speaker
from sonosd.sim.modes import (
    MAX_REGROUP_DELAY,
    MAX_TOPOLOGY_SETTLE,
    SSDP_WHEN_UPNP_OFF,
    UPNP_KINDS,
)
from sonosd.sim.neighbourhood import Neighbourhood
from sonosd.sim.propertyset import check_chars
from sonosd.sim.soap import UPnPError

if TYPE_CHECKING:
    from sonosd.sim.activity import ActivityGenerator
    from sonosd.sim.transport import Transport

log = Logger()

MAX_BODY = 65536

ROUTES = (
    "GET /household",
    "PATCH /household/modes",
    "GET /households",
    "GET /households/{n}",
    "PATCH /households/{n}/modes",
    "GET /speakers",
    "GET /speakers/{id}",
    "PATCH /speakers/{id}/state",
    "POST /speakers/{id}/play|pause|stop|next|previous",
    "POST /speakers/{id}/join",
    "POST /speakers/{id}/unjoin",
    "POST /speakers/{id}/queue",
    "DELETE /speakers/{id}/queue",
    "POST /speakers/{id}/reboot",
    "POST /speakers/{id}/offline",
    "POST /speakers/{id}/online",
    "POST /speakers/{id}/address",
    "POST /speakers/{id}/burst",
    "PATCH /speakers/{id}/modes",
    "POST /speakers/{id}/sleep",
    "POST /speakers/{id}/wake",
    "POST /speakers/{id}/bluetooth",
    "POST /speakers/{id}/pair",
    "POST /speakers/{id}/separate",
    "POST /speakers/{id}/add-satellite",
    "POST /speakers/{id}/remove-satellite",
    "POST /speakers/{id}/leave-household",
    "POST /speakers/{id}/rejoin-household",
    "PATCH /speakers/{id}/battery",
    "GET /speakers/{id}/gena",
    "PATCH /speakers/{id}/gena/faults",
    "DELETE /speakers/{id}/gena/faults",
    "GET|PATCH|DELETE /speakers/{id}/soap/faults",
    "POST /speakers/{id}/gena/unknown-sid",
    "GET /activity",
    "PATCH /activity",
    "GET /content",
    "GET /accounts",
    "PUT /accounts",
)


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def speaker_json(speaker: Speaker) -> dict[str, Any]:
    """Everything the admin API shows about one speaker."""
    transport = speaker.coordinator.transport
    track = transport.current()
    r = speaker.rendering
    battery = speaker.battery
    return {
        "index": speaker.index,
        "uid": speaker.uid,
        "household_id": speaker.household.household_id,
        "name": speaker.name,
        "address": speaker.address,
        "port": speaker.port,
        "model": speaker.model.number,
        "model_name": speaker.model.name,
        "boot_seq": speaker.boot_seq,
        "network": speaker.network.mode if speaker.network is not None else "none",
        "vanished": speaker.vanished_reason,
        "asleep": speaker.asleep,
        "left_household": speaker.left_household,
        "https_only": speaker.https_only,
        "portable": speaker.model.portable,
        "battery": (
            {
                "level": battery.level,
                "power_source": battery.power_source,
                "charging": battery.charging,
                "temperature": battery.temperature,
            }
            if battery is not None
            else None
        ),
        "invisible": speaker.invisible,
        "satellites": list(speaker.satellites),
        "ht_primary": speaker.ht_primary,
        "ht_channel": speaker.ht_channel or None,
        "coordinator": speaker.coordinator.uid,
        "group": speaker.group.group_id,
        "volume": r.volume,
        "mute": r.mute,
        "bass": r.bass,
        "treble": r.treble,
        "loudness": r.loudness,
        "night_mode": r.night_mode if speaker.model.soundbar else None,
        "dialog_mode": r.dialog_level if speaker.model.soundbar else None,
        "led": speaker.led_on,
        "transport": transport.state,
        "play_mode": transport.play_mode,
        "crossfade": transport.crossfade,
        "uri": transport.uri,
        "track": transport.track_no,
        "position": format_duration(transport.position()),
        "sleep_timer": transport.remaining_sleep(),
        "current": (
            {
                "title": track.title,
                "artist": track.artist,
                "album": track.album,
                "duration": format_duration(track.duration),
                "uri": track.uri,
            }
            if track is not None
            else None
        ),
        "queue_length": len(speaker.transport.queue),
        "group_volume": speaker.coordinator.group_volume(),
        "group_mute": speaker.coordinator.group_mute(),
    }


class AdminResource(Resource):
    """The admin API; see the module docstring."""

    isLeaf = True

    def __init__(
        self,
        household: Household | Neighbourhood,
        activity: ActivityGenerator | None = None,
    ) -> None:
        super().__init__()
        self.neighbourhood = (
            Neighbourhood([household]) if isinstance(household, Household) else household
        )
        self.household = self.neighbourhood.household
        self.activity = activity

    def render(self, request: Request) -> bytes | int:
        """Route, run the handler, answer JSON (asynchronous handlers answer later)."""
        path = request.path.decode("latin-1").rstrip("/") or "/"
        method = request.method.decode("latin-1")
        try:
            body = self._body(request)
            result = self._route(method, [unquote(p) for p in path.split("/")[1:] if p], body)
        except ApiError as e:
            return _json(request, e.status, {"error": e.message, **e.extra})
        except UPnPError as e:
            return _json(request, 409, {"error": e.description, "upnp_error": e.code})
        if isinstance(result, Deferred):
            result.addCallbacks(
                lambda value: _finish(request, 200, value),
                lambda failure: _fail(request, failure),
            )
            return NOT_DONE_YET
        return _json(request, 200, result)

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        assert request.content is not None
        raw = request.content.read(MAX_BODY + 1)
        if len(raw) > MAX_BODY:
            raise ApiError(413, "request body too large")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"body is not JSON: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "body must be a JSON object")
        return body

    def _speaker(self, key: str) -> Speaker:
        try:
            return self.neighbourhood.speaker(key)
        except (KeyError, IndexError):
            raise ApiError(404, f"no speaker {key!r}") from None

    def _household_named(self, key: str) -> Household:
        try:
            return self.neighbourhood.household_by_key(key)
        except KeyError:
            raise ApiError(404, f"no household {key!r}") from None

    def _route(self, method: str, parts: list[str], body: dict[str, Any]) -> Any:
        if not parts:
            _allow(method, "GET")
            return {"routes": list(ROUTES)}
        if parts[0] == "household" and len(parts) <= 2:
            return self._household_route(method, self.household, parts[1:], body)
        if parts == ["households"]:
            _allow(method, "GET")
            return [self._household(h) for h in self.neighbourhood.households]
        if parts[0] == "households" and 2 <= len(parts) <= 3:
            return self._household_route(method, self._household_named(parts[1]), parts[2:], body)
        if parts == ["speakers"]:
            _allow(method, "GET")
            return [speaker_json(s) for s in self.neighbourhood.speakers]
        if parts == ["activity"]:
            return self._activity(method, body)
        if parts == ["content"]:
            _allow(method, "GET")
            return content_json(self.household)
        if parts == ["accounts"]:
            return _accounts(self.household, method, body)
        if parts[0] == "speakers" and len(parts) >= 2:
            speaker = self._speaker(parts[1])
            return self._speaker_route(method, speaker, parts[2:], body)
        raise ApiError(404, "no such route")

    def _household_route(
        self, method: str, household: Household, rest: list[str], body: dict[str, Any]
    ) -> Any:
        if not rest:
            _allow(method, "GET")
            return self._household(household)
        if rest == ["modes"]:
            _allow(method, "PATCH")
            _set_modes(household, body)
            return self._household(household)
        raise ApiError(404, "no such route")

    @staticmethod
    def _household(household: Household) -> dict[str, Any]:
        return {
            "household_id": household.household_id,
            "modes": attrs.asdict(household.modes),
            "speakers": [speaker_json(s) for s in household.speakers],
            "groups": [
                {"id": g.group_id, "coordinator": g.coordinator, "members": list(g.members)}
                for g in household.groups
            ],
            "zone_group_state": household.zone_group_state(),
        }

    def _activity(self, method: str, body: dict[str, Any]) -> Any:
        if self.activity is None:
            raise ApiError(404, "no activity generator")
        _allow(method, "GET", "PATCH")
        if method == "PATCH":
            rate = body.get("rate")
            if not isinstance(rate, int | float) or isinstance(rate, bool) or rate < 0:
                raise ApiError(400, "rate must be a number >= 0")
            self.activity.set_rate(float(rate))
        return {
            "rate": self.activity.rate,
            "running": self.activity.running,
            "changes": self.activity.changes,
        }

    def _speaker_route(
        self, method: str, speaker: Speaker, rest: list[str], body: dict[str, Any]
    ) -> Any:
        if not rest:
            _allow(method, "GET")
            return speaker_json(speaker)
        head = rest[0]
        if head == "state" and len(rest) == 1:
            _allow(method, "PATCH")
            _apply_state(speaker, body)
            return speaker_json(speaker)
        if head in ("play", "pause", "stop", "next", "previous") and len(rest) == 1:
            _allow(method, "POST")
            getattr(speaker.coordinator.transport, head)()
            return speaker_json(speaker)
        if head == "join" and len(rest) == 1:
            _allow(method, "POST")
            target = self._speaker(_string(body, "coordinator"))
            if target is speaker:
                raise ApiError(400, "a speaker cannot join itself")
            self.household.join(speaker, target)
            return speaker_json(speaker)
        if head in ("pair", "separate", "add-satellite", "remove-satellite") and len(rest) == 1:
            _allow(method, "POST")
            return self._bond(head, speaker, body)
        if head == "unjoin" and len(rest) == 1:
            _allow(method, "POST")
            self.household.unjoin(speaker)
            return speaker_json(speaker)
        if head == "queue" and len(rest) == 1:
            return self._queue(method, speaker, body)
        if head == "gena":
            return self._gena(method, speaker, rest[1:], body)
        if head == "soap" and rest[1:] == ["faults"]:
            _allow(method, "GET", "PATCH", "DELETE")
            if method == "DELETE":
                speaker.soap_faults.reset()
            elif method == "PATCH":
                _set_faults(speaker.soap_faults, body)
            return attrs.asdict(speaker.soap_faults)
        if head == "modes" and len(rest) == 1:
            _allow(method, "PATCH")
            unknown = sorted(set(body) - {"https_only"})
            if unknown:
                raise ApiError(400, f"unknown speaker modes {unknown}; known: ['https_only']")
            if "https_only" in body:
                https = _bool_value("https_only", body["https_only"])
                return speaker.set_https_only(https).addCallback(lambda _: speaker_json(speaker))
            return speaker_json(speaker)
        if head == "battery" and len(rest) == 1:
            _allow(method, "PATCH")
            _set_battery(speaker, body)
            return speaker_json(speaker)
        if len(rest) == 1 and head in _FAULTS:
            _allow(method, "POST")
            return _FAULTS[head](speaker, body)
        raise ApiError(404, "no such route")

    def _bond(self, head: str, speaker: Speaker, body: dict[str, Any]) -> Any:
        """Pair, separate, add a home-theatre satellite to, or remove one from ``speaker``
        (``POST /speakers/{id}/<head>``): what the household refuses is 409."""
        household = speaker.household
        change: Callable[[], object]
        if head == "pair":
            right = self._speaker(_string(body, "right"))
            change = functools.partial(household.pair, speaker, right)
        elif head == "separate":
            change = functools.partial(household.unpair, speaker)
        elif head == "add-satellite":
            satellite = self._speaker(_string(body, "satellite"))
            channel = _string(body, "channel")
            change = functools.partial(household.add_satellite, speaker, satellite, channel)
        else:
            change = functools.partial(household.remove_satellite, speaker)
        try:
            change()
        except (ValueError, NotImplementedError) as e:
            raise ApiError(409, str(e)) from None
        return speaker_json(speaker)

    @staticmethod
    def _queue(method: str, speaker: Speaker, body: dict[str, Any]) -> Any:
        _allow(method, "POST", "DELETE")
        if method == "DELETE":
            speaker.transport.clear_queue()
            return speaker_json(speaker)
        if "uri" in body:
            uri = _string(body, "uri")
            metadata = body.get("metadata", "")
            if not isinstance(metadata, str):
                raise ApiError(400, "metadata must be a string")
            _xml_text("metadata", metadata)
            tracks = queue_tracks(speaker.household, uri, metadata)
        else:
            count = _integer(body, "songs", 1, 1000)
            songs = catalog.SONGS
            tracks = [songs[n % len(songs)] for n in range(count)]
        first = speaker.transport.add_to_queue(tracks, _integer(body, "position", 0, 10**6, 0))
        return {"first_track": first, "queue_length": len(speaker.transport.queue)}

    def _gena(self, method: str, speaker: Speaker, rest: list[str], body: dict[str, Any]) -> Any:
        manager = speaker.gena
        if manager is None:
            raise ApiError(409, "the speaker is not running")
        if not rest:
            _allow(method, "GET")
            return {
                "subscriptions": manager.subscriptions(),
                "faults": attrs.asdict(manager.faults),
                "stats": manager.stats(),
                "paused": manager.paused,
            }
        if rest == ["faults"]:
            _allow(method, "PATCH", "DELETE")
            if method == "DELETE":
                manager.faults.reset()
            else:
                _set_faults(manager.faults, body)
            return attrs.asdict(manager.faults)
        if rest == ["unknown-sid"]:
            _allow(method, "POST")
            service = body.get("service", "AVTransport")
            if service not in speaker.offered:
                raise ApiError(400, f"unknown service {service!r}")
            try:
                sent: Deferred[int] = manager.send_unknown_sid(_string(body, "callback"), service)
            except ValueError as e:
                raise ApiError(400, str(e)) from None
            return sent.addCallback(lambda status: {"status": status})
        raise ApiError(404, "no such route")


def _set_modes(household: Household, body: Mapping[str, Any]) -> None:
    """Switch household modes from a JSON body (types checked here, ranges by the model)."""
    checks: dict[str, Callable[[Any], object]] = {
        "large_household": lambda v: _bool_value("large_household", v),
        "large_household_players": lambda v: _int_value("large_household_players", v, 1, 1000),
        "upnp": lambda v: _bool_value("upnp", v),
        "regroup_delay": lambda v: _seconds_value("regroup_delay", v, MAX_REGROUP_DELAY),
        "topology_settle": lambda v: _seconds_value("topology_settle", v, MAX_TOPOLOGY_SETTLE),
        "upnp_off_ssdp": lambda v: _choice("upnp_off_ssdp", v, SSDP_WHEN_UPNP_OFF),
        "upnp_off_forbidden": lambda v: tuple(
            _choice("upnp_off_forbidden", kind, UPNP_KINDS)
            for kind in _list("upnp_off_forbidden", v)
        ),
    }
    unknown = sorted(set(body) - set(checks))
    if unknown:
        raise ApiError(400, f"unknown household modes {unknown}; known: {sorted(checks)}")
    try:
        household.set_modes(**{key: checks[key](value) for key, value in body.items()})
    except ValueError as e:
        raise ApiError(400, str(e)) from None


def _set_battery(speaker: Speaker, body: Mapping[str, Any]) -> None:
    known = {"level", "power_source", "temperature"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise ApiError(400, f"unknown battery keys {unknown}; known: {sorted(known)}")
    try:
        speaker.set_battery(
            level=_int_value("level", body["level"], 0, 100) if "level" in body else None,
            power_source=(
                _choice("power_source", body["power_source"], POWER_SOURCES)
                if "power_source" in body
                else None
            ),
            temperature=(
                _int_value("temperature", body["temperature"], -40, 100)
                if "temperature" in body
                else None
            ),
        )
    except ValueError as e:
        raise ApiError(409, str(e)) from None


def _set_faults(faults: Any, body: Mapping[str, Any]) -> None:
    fields = {f.name: f for f in attrs.fields(type(faults))}
    for name, value in body.items():
        if name not in fields:
            raise ApiError(400, f"unknown fault {name!r}; known: {sorted(fields)}")
        current = getattr(faults, name)
        if isinstance(current, bool) or name.endswith("_hang"):
            if not isinstance(value, bool):
                raise ApiError(400, f"{name} must be true or false")
        elif name == "next_seq":
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SEQ
            ):
                raise ApiError(400, f"next_seq must be a SEQ 1..{MAX_SEQ} or null")
        elif name.endswith("_status"):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or not 100 <= value <= 599
            ):
                raise ApiError(400, f"{name} must be an HTTP status or null")
        elif name == "answer_only":
            if value not in ANSWER_ONLY:
                raise ApiError(400, f"answer_only must be one of {list(ANSWER_ONLY)}")
        elif name in ("answer_sid", "answer_timeout"):
            if value is not None and not isinstance(value, str):
                raise ApiError(400, f"{name} must be a text or null")
        elif isinstance(current, str):
            if not isinstance(value, str) or len(value) > 64:
                raise ApiError(400, f"{name} must be a text of at most 64 characters")
        elif isinstance(current, float) or name == "delay":
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ApiError(400, f"{name} must be a number >= 0")
            value = float(value)
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ApiError(400, f"{name} must be an integer >= 0")
    for name, value in body.items():
        setattr(faults, name, float(value) if isinstance(getattr(faults, name), float) else value)


def _apply_state(speaker: Speaker, body: Mapping[str, Any]) -> None:
    """Apply admin state changes through the household (so they are evented), all or
    nothing: every value is checked (400) and every key the speaker could refuse (409) is
    tried, in the body's order, on a rehearsal of its transport before any is applied."""
    checks: dict[str, Callable[[Any], Any]] = {
        "volume": lambda v: _int_value("volume", v, 0, 100),
        "mute": lambda v: _bool_value("mute", v),
        "bass": lambda v: _int_value("bass", v, -10, 10),
        "treble": lambda v: _int_value("treble", v, -10, 10),
        "loudness": lambda v: _bool_value("loudness", v),
        "name": lambda v: _str_value("name", v),
        "led": lambda v: _bool_value("led", v),
        "night_mode": lambda v: int(_bool_value("night_mode", v)),
        "dialog_mode": lambda v: int(_bool_value("dialog_mode", v)),
        "transport": _transport_value,
        "play_mode": lambda v: _str_value("play_mode", v).upper(),
        "crossfade": lambda v: _bool_value("crossfade", v),
        "track": lambda v: _int_value("track", v, 1, 10**6),
        "position": _position_value,
        "group_volume": lambda v: _int_value("group_volume", v, 0, 100),
        "group_mute": lambda v: _bool_value("group_mute", v),
        "sleep_timer": lambda v: None if v is None else _int_value("sleep_timer", v, 0, 86399),
    }
    unknown = sorted(set(body) - set(checks))
    if unknown:
        raise ApiError(400, f"unknown state keys {unknown}; known: {sorted(checks)}")
    values = {key: checks[key](value) for key, value in body.items()}
    transport = speaker.coordinator.transport
    # The speaker's own settings refuse only an EQ type its model lacks (``get_eq`` says so
    # and changes nothing); the transport's commands depend on one another (a track, then a
    # position in it), so they are tried in order on a copy.
    rehearsal: dict[str, Callable[[Any], object]] = {
        **_transport_setters(transport.rehearsal()),
        "night_mode": lambda _: speaker.get_eq("NightMode"),
        "dialog_mode": lambda _: speaker.get_eq("DialogLevel"),
    }
    for key, value in values.items():
        if key in rehearsal:
            rehearsal[key](value)
    setters: dict[str, Callable[[Any], object]] = {
        "volume": speaker.set_volume,
        "mute": speaker.set_mute,
        "bass": speaker.set_bass,
        "treble": speaker.set_treble,
        "loudness": speaker.set_loudness,
        "name": speaker.rename,
        "led": speaker.set_led,
        "night_mode": functools.partial(speaker.set_eq, "NightMode"),
        "dialog_mode": functools.partial(speaker.set_eq, "DialogLevel"),
        "group_volume": speaker.coordinator.set_group_volume,
        "group_mute": speaker.coordinator.set_group_mute,
        **_transport_setters(transport),
    }
    for key, value in values.items():
        setters[key](value)


def _transport_setters(transport: Transport) -> dict[str, Callable[[Any], object]]:
    """The state keys that are commands to ``transport`` (any of them may be refused)."""
    return {
        "transport": lambda state: _set_transport(transport, state),
        "play_mode": transport.set_play_mode,
        "crossfade": transport.set_crossfade,
        "track": transport.seek_track,
        "position": transport.seek_time,
        "sleep_timer": transport.configure_sleep,
    }


def _position_value(value: Any) -> int:
    seconds = parse_duration(_str_value("position", value))
    if seconds is None:
        raise ApiError(400, f"position must be H:MM:SS, got {value!r}")
    return seconds


def _transport_value(value: Any) -> str:
    state = _str_value("transport", value).upper()
    if state == "PAUSED":
        return "PAUSED_PLAYBACK"
    if state not in ("PLAYING", "PAUSED_PLAYBACK", "STOPPED"):
        raise ApiError(400, "transport must be PLAYING, PAUSED_PLAYBACK or STOPPED")
    return state


def _set_transport(transport: Transport, state: str) -> None:
    if state == "PLAYING":
        transport.play()
    elif state == "PAUSED_PLAYBACK":
        transport.pause()
    else:
        transport.stop()


def _reboot(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    downtime = body.get("downtime", 5.0)
    if not isinstance(downtime, int | float) or isinstance(downtime, bool) or downtime < 0:
        raise ApiError(400, "downtime must be a number >= 0")
    return speaker.reboot(float(downtime)).addCallback(
        lambda _: {"rebooting": True, "downtime": downtime, "boot_seq": speaker.boot_seq + 1}
    )


def _offline(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    mode = body.get("mode", "refuse")
    if mode not in ("refuse", "hang"):
        raise ApiError(400, "mode must be 'refuse' or 'hang'")
    vanish = _bool_value("vanish", body.get("vanish", False))
    return speaker.go_offline(mode, vanish=vanish).addCallback(lambda _: speaker_json(speaker))


def _online(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    return speaker.come_online().addCallback(lambda _: speaker_json(speaker))


def _address(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    address = _string(body, "address")
    try:
        moved = speaker.change_address(address)
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return moved.addCallback(lambda _: speaker_json(speaker))


def _portable_call(speaker: Speaker, call: Callable[[], Deferred[None]]) -> Deferred[Any]:
    try:
        done = call()
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    return done.addCallback(lambda _: speaker_json(speaker))


def _sleep(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    mode = body.get("mode", "refuse")
    if mode not in ("refuse", "hang"):
        raise ApiError(400, "mode must be 'refuse' or 'hang'")
    return _portable_call(speaker, lambda: speaker.sleep(mode))


def _wake(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    return _portable_call(speaker, speaker.wake)


def _bluetooth(speaker: Speaker, body: Mapping[str, Any]) -> Deferred[dict[str, Any]]:
    return _portable_call(speaker, speaker.switch_to_bluetooth)


def _leave_household(speaker: Speaker, body: Mapping[str, Any]) -> dict[str, Any]:
    try:
        speaker.leave_household()
    except ValueError as e:
        raise ApiError(409, str(e)) from None
    return speaker_json(speaker)


def _rejoin_household(speaker: Speaker, body: Mapping[str, Any]) -> dict[str, Any]:
    speaker.rejoin_household()
    return speaker_json(speaker)


def _burst(speaker: Speaker, body: Mapping[str, Any]) -> dict[str, Any]:
    count = _integer(body, "count", 1, 100_000)
    service = body.get("service", "RenderingControl")
    try:
        speaker.burst(count, service)
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return {"count": count, "service": service}


_FAULTS: dict[str, Callable[[Speaker, Mapping[str, Any]], Any]] = {
    "reboot": _reboot,
    "offline": _offline,
    "online": _online,
    "address": _address,
    "burst": _burst,
    "sleep": _sleep,
    "wake": _wake,
    "bluetooth": _bluetooth,
    "leave-household": _leave_household,
    "rejoin-household": _rejoin_household,
}


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, f"method {method} not allowed; use {', '.join(allowed)}")


def _string(body: Mapping[str, Any], key: str) -> str:
    return _str_value(key, body.get(key))


def _str_value(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"{key} must be a non-empty string")
    return _xml_text(key, value)


def _xml_text(key: str, value: str) -> str:
    """``value``, refused when XML cannot carry it: the speaker's answers and events could not
    (some firmware sends such characters anyway: the ``rewrite_*`` SOAP faults do that)."""
    try:
        check_chars(value)
    except ValueError as e:
        raise ApiError(400, f"{key}: {e}") from None
    return value


def _int_value(key: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(400, f"{key} must be an integer from {low} to {high}")
    return value


def _seconds_value(key: str, value: Any, high: float) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= high:
        raise ApiError(400, f"{key} must be a number of seconds from 0 to {high:g}")
    return float(value)


def _integer(
    body: Mapping[str, Any], key: str, low: int, high: int, default: int | None = None
) -> int:
    if key not in body and default is not None:
        return default
    return _int_value(key, body.get(key), low, high)


def _list(key: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ApiError(400, f"{key} must be a list")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ApiError(400, f"{key} must be one of {', '.join(choices)}")
    return str(value)


def _bool_value(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ApiError(400, f"{key} must be true or false")
    return value


def _json(request: Request, status: int, value: Any) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value, indent=1).encode() + b"\n"


def _finish(request: Request, status: int, value: Any) -> None:
    if request.finished or request.channel is None:
        return
    request.write(_json(request, status, value))
    request.finish()


def _fail(request: Request, failure: Failure) -> None:
    error = failure.value
    if isinstance(error, ApiError):
        _finish(request, error.status, {"error": error.message})
    elif isinstance(error, UPnPError):
        _finish(request, 409, {"error": error.description, "upnp_error": error.code})
    else:
        log.failure("admin request failed", failure)
        _finish(request, 500, {"error": str(error)})


class _AdminSite(Site):
    """The admin API's site: no access log (tests and demos call it constantly)."""

    noisy = False

    def log(self, request: Any) -> None:
        """Write nothing per request."""


def admin_site(
    household: Household | Neighbourhood, activity: ActivityGenerator | None = None
) -> Site:
    """The admin API site."""
    return _AdminSite(AdminResource(household, activity))


def content_json(household: Household) -> dict[str, Any]:
    """``GET /content``: favourites (with their kind), Sonos playlists, alarms, accounts."""
    return {
        "favorites": [
            {"title": f.title, "kind": f.kind, "uri": f.uri} for f in household.favorites
        ],
        "playlists": [
            {"id": p.object_id, "title": p.title, "tracks": [t.title for t in p.tracks]}
            for p in household.saved_queues
        ],
        "alarms": {
            "version": household.alarm_list_version(),
            "alarms": [attrs.asdict(alarm) for alarm in household.alarms],
        },
        **_accounts(household, "GET", {}),
    }


def _accounts(household: Household, method: str, body: dict[str, Any]) -> dict[str, Any]:
    """``GET``/``PUT /accounts``: the music services the household has accounts for
    (``{"services": ["Spotify", 44551]}``: names or service types)."""
    _allow(method, "GET", "PUT")
    if method == "PUT":
        wanted = body.get("services")
        if not isinstance(wanted, list):
            raise ApiError(400, "services must be a list of service names or types")
        types: list[int] = []
        for item in wanted:
            service = next(
                (
                    s
                    for s in musicservices.SERVICES
                    if item in (s.name, s.service_type) and not isinstance(item, bool)
                ),
                None,
            )
            if service is None:
                known = ", ".join(s.name for s in musicservices.SERVICES)
                raise ApiError(400, f"unknown music service {item!r}; known: {known}")
            types.append(service.service_type)
        household.set_accounts({t: n for n, t in enumerate(dict.fromkeys(types), start=1)})
    return {
        "accounts": [
            {
                "service": (musicservices.by_type(t) or musicservices.SERVICES[0]).name,
                "type": t,
                "serial": n,
            }
            for t, n in sorted(household.accounts.items())
        ],
        "services": [
            {"name": s.name, "type": s.service_type, "auth": s.auth} for s in musicservices.SERVICES
        ],
    }
