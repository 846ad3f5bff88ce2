# -*- test-case-name: tests.control.test_commandargs -*-
"""Speaker commands' names and arguments, checked before anything touches the network.

Pure functions: ``parse_command(command, args)`` gives the command's canonical name and its
arguments normalised (booleans from ``true``/``"on"``/``1``, integers from numbers or numeric
strings, positions as ``H:MM:SS``) or raises ``ControlError`` (``unknown_command`` 404,
``bad_argument`` 400 naming the argument). ``sonosd.control.controller`` runs what this
accepts; every command and argument is documented in ``docs/control.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class ControlError(Exception):
    """A command failed in a way a client is told about (never a traceback).

    @ivar code: Stable machine-readable code (``unknown_speaker``, ``bad_argument``,
        ``unknown_command``, ``speaker_error``, ``timeout``, ``offline``, ``not_supported``,
        ``unknown_snapshot``, ``internal``).
    @ivar status: The HTTP status the API answers with.
    @ivar message: One line for humans.
    @ivar upnp_error: The speaker's UPnP error code, for ``speaker_error``.
    @ivar argument: The argument at fault, for ``bad_argument``.
    """

    def __init__(
        self,
        code: str,
        status: int,
        message: str,
        upnp_error: int | None = None,
        argument: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.upnp_error = upnp_error
        self.argument = argument

    def to_json(self) -> dict[str, Any]:
        """``{"code", "message"}`` plus ``upnp_error`` when there is one."""
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.upnp_error is not None:
            body["upnp_error"] = self.upnp_error
        return body


def bad_argument(name: str, message: str) -> ControlError:
    """``400 bad_argument`` about argument ``name``."""
    return ControlError("bad_argument", 400, f"{name}: {message}", argument=name)


Args = Mapping[str, Any]
Params = dict[str, Any]

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no"})
_HMS = re.compile(r"^(\d{1,2}):([0-5]?\d):([0-5]\d)$", re.ASCII)
REPEAT_MODES = ("none", "all", "one")
MAX_ANNOUNCE_SECONDS = 600.0
DEFAULT_ANNOUNCE_SECONDS = 30.0
MAX_SLEEP_SECONDS = 86399


def _only(args: Args, *allowed: str) -> None:
    for name in args:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise bad_argument(name, f"unknown argument (expected: {expected})")


def to_bool(name: str, value: Any) -> bool:
    """A boolean from ``true``/``false``, ``1``/``0`` or ``"on"``/``"off"``/``"yes"``/``"no"``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise bad_argument(name, f"expected true or false, got {value!r}")


def to_int(name: str, value: Any, low: int, high: int) -> int:
    """An integer in ``low..high`` from a number or a numeric string (``"+5"`` included)."""
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value, re.ASCII)
    ):
        number = int(value)
    if number is None:
        raise bad_argument(name, f"expected an integer, got {value!r}")
    if not low <= number <= high:
        raise bad_argument(name, f"expected {low}..{high}, got {number}")
    return number


def to_str(name: str, value: Any, *, empty: bool = False) -> str:
    """A string (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise bad_argument(name, f"expected a non-empty string, got {value!r}")
    return value


def to_seconds(name: str, value: Any, high: float) -> float:
    """A number of seconds in ``0 < s <= high``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_argument(name, f"expected a number of seconds, got {value!r}")
    if not 0 < value <= high:
        raise bad_argument(name, f"expected 0 < seconds <= {high:g}, got {value!r}")
    return float(value)


def to_position(name: str, value: Any) -> str:
    """A position in a track as ``H:MM:SS``, from ``"H:MM:SS"``, ``"MM:SS"`` or seconds."""
    seconds: int | None = None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 360_000:
        seconds = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():
            seconds = int(text)
        else:
            match = _HMS.match(text if text.count(":") == 2 else f"0:{text}")
            if match:
                hours, minutes, secs = (int(part) for part in match.groups())
                seconds = hours * 3600 + minutes * 60 + secs
    if seconds is None or seconds >= 100 * 3600:
        raise bad_argument(name, f"expected H:MM:SS or seconds, got {value!r}")
    return format_hms(seconds)


def format_hms(seconds: int) -> str:
    """``H:MM:SS`` as Sonos writes positions."""
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# -- one parser per command --------------------------------------------------------------


def _none(args: Args) -> Params:
    _only(args)
    return {}


def _seek(args: Args) -> Params:
    _only(args, "position", "track")
    if ("position" in args) == ("track" in args):
        raise bad_argument("position", "give exactly one of position and track")
    if "track" in args:
        return {"track": to_int("track", args["track"], 1, 100_000)}
    return {"position": to_position("position", args["position"])}


def _play_mode(args: Args) -> Params:
    _only(args, "shuffle", "repeat", "crossfade")
    if not args:
        raise bad_argument("shuffle", "give at least one of shuffle, repeat and crossfade")
    params: Params = {}
    if "shuffle" in args:
        params["shuffle"] = to_bool("shuffle", args["shuffle"])
    if "repeat" in args:
        repeat = args["repeat"]
        if isinstance(repeat, bool):
            repeat = "all" if repeat else "none"
        if not isinstance(repeat, str) or repeat.lower() not in REPEAT_MODES:
            raise bad_argument("repeat", f"expected none, all or one, got {repeat!r}")
        params["repeat"] = repeat.lower()
    if "crossfade" in args:
        params["crossfade"] = to_bool("crossfade", args["crossfade"])
    return params


def _volume(args: Args) -> Params:
    _only(args, "volume", "delta")
    if ("volume" in args) == ("delta" in args):
        raise bad_argument("volume", "give exactly one of volume and delta")
    if "delta" in args:
        return {"delta": to_int("delta", args["delta"], -100, 100)}
    value = args["volume"]
    if isinstance(value, str) and value.strip().startswith(("+", "-")):
        # "+5" and "-5" are relative, as sonosctl and the README write them.
        return {"delta": to_int("volume", value, -100, 100)}
    return {"volume": to_int("volume", value, 0, 100)}


def _flag(name: str, optional: bool = False) -> Callable[[Args], Params]:
    def parse(args: Args) -> Params:
        _only(args, name)
        if name not in args:
            if optional:
                return {name: None}
            raise bad_argument(name, "missing")
        return {name: to_bool(name, args[name])}

    return parse


def _tone(name: str) -> Callable[[Args], Params]:
    def parse(args: Args) -> Params:
        _only(args, name)
        if name not in args:
            raise bad_argument(name, "missing")
        return {name: to_int(name, args[name], -10, 10)}

    return parse


def _join(args: Args) -> Params:
    _only(args, "coordinator")
    if "coordinator" not in args:
        raise bad_argument("coordinator", "missing (the uid or room of the group to join)")
    return {"coordinator": to_str("coordinator", args["coordinator"])}


def _play_uri(args: Args) -> Params:
    _only(args, "uri", "title", "meta", "start")
    if "uri" not in args:
        raise bad_argument("uri", "missing")
    return {
        "uri": to_str("uri", args["uri"]).strip(),
        "title": to_str("title", args.get("title", ""), empty=True),
        "meta": to_str("meta", args.get("meta", ""), empty=True),
        "start": to_bool("start", args.get("start", True)),
    }


def _play_favorite(args: Args) -> Params:
    _only(args, "name")
    if "name" not in args:
        raise bad_argument("name", "missing (the favorite's title)")
    return {"name": to_str("name", args["name"]).strip()}


def _queue(args: Args) -> Params:
    action = args.get("action", "list")
    if action == "list":
        _only(args, "action", "start", "count")
        return {
            "action": "list",
            "start": to_int("start", args.get("start", 0), 0, 1_000_000),
            "count": to_int("count", args.get("count", 100), 1, 1000),
        }
    if action == "add":
        _only(args, "action", "uri", "title", "position", "as_next")
        if "uri" not in args:
            raise bad_argument("uri", "missing")
        return {
            "action": "add",
            "uri": to_str("uri", args["uri"]).strip(),
            "title": to_str("title", args.get("title", ""), empty=True),
            "position": to_int("position", args.get("position", 0), 0, 1_000_000),
            "as_next": to_bool("as_next", args.get("as_next", False)),
        }
    if action == "clear":
        _only(args, "action")
        return {"action": "clear"}
    if action == "play":
        _only(args, "action", "track")
        if "track" not in args:
            raise bad_argument("track", "missing (1 is the first track)")
        return {"action": "play", "track": to_int("track", args["track"], 1, 1_000_000)}
    raise bad_argument("action", f"expected list, add, clear or play, got {action!r}")


def _sleep_timer(args: Args) -> Params:
    action = args.get("action", "set" if "seconds" in args or "minutes" in args else "get")
    if action == "set":
        _only(args, "action", "seconds", "minutes")
        if ("seconds" in args) == ("minutes" in args):
            raise bad_argument("seconds", "give exactly one of seconds and minutes")
        if "minutes" in args:
            minutes = to_int("minutes", args["minutes"], 1, MAX_SLEEP_SECONDS // 60)
            return {"action": "set", "seconds": minutes * 60}
        return {
            "action": "set",
            "seconds": to_int("seconds", args["seconds"], 1, MAX_SLEEP_SECONDS),
        }
    if action in ("cancel", "get"):
        _only(args, "action")
        return {"action": action}
    raise bad_argument("action", f"expected set, cancel or get, got {action!r}")


def _snapshot(args: Args) -> Params:
    _only(args, "name")
    return {"name": to_str("name", args.get("name", "default")).strip()}


def _restore(args: Args) -> Params:
    _only(args, "name", "fade")
    return {
        "name": to_str("name", args.get("name", "default")).strip(),
        "fade": to_bool("fade", args.get("fade", False)),
    }


def _announce(args: Args) -> Params:
    _only(args, "uri", "volume", "timeout", "title", "meta")
    if "uri" not in args:
        raise bad_argument("uri", "missing")
    volume = args.get("volume")
    return {
        "uri": to_str("uri", args["uri"]).strip(),
        "volume": None if volume is None else to_int("volume", volume, 0, 100),
        "timeout": to_seconds(
            "timeout", args.get("timeout", DEFAULT_ANNOUNCE_SECONDS), MAX_ANNOUNCE_SECONDS
        ),
        "title": to_str("title", args.get("title", ""), empty=True),
        "meta": to_str("meta", args.get("meta", ""), empty=True),
    }


#: Every command and its argument parser.
PARSERS: Mapping[str, Callable[[Args], Params]] = {
    "play": _none,
    "pause": _none,
    "toggle": _none,
    "stop": _none,
    "next": _none,
    "previous": _none,
    "seek": _seek,
    "play_mode": _play_mode,
    "volume": _volume,
    "mute": _flag("mute", optional=True),
    "bass": _tone("bass"),
    "treble": _tone("treble"),
    "loudness": _flag("loudness"),
    "night_mode": _flag("night_mode"),
    "dialog_mode": _flag("dialog_mode"),
    "group_volume": _volume,
    "group_mute": _flag("mute", optional=True),
    "join": _join,
    "leave": _none,
    "party": _none,
    "play_uri": _play_uri,
    "play_favorite": _play_favorite,
    "queue": _queue,
    "sleep_timer": _sleep_timer,
    "snapshot": _snapshot,
    "restore": _restore,
    "announce": _announce,
}

COMMANDS = tuple(PARSERS)


def canonical(command: str) -> str:
    """The command's canonical name: lower case, ``-`` read as ``_`` (``play-favorite``)."""
    return command.strip().lower().replace("-", "_")


def parse_command(command: str, args: Any) -> tuple[str, Params]:
    """Check ``command`` and its ``args`` (a JSON object); return the canonical name and the
    normalised arguments.

    @raise ControlError: ``unknown_command`` (404) or ``bad_argument`` (400).
    """
    name = canonical(command)
    parser = PARSERS.get(name)
    if parser is None:
        raise ControlError(
            "unknown_command", 404, f"unknown command {command!r}; known: {', '.join(COMMANDS)}"
        )
    if args is None:
        args = {}
    if not isinstance(args, Mapping):
        raise bad_argument("args", "expected a JSON object of arguments")
    return name, parser(args)
