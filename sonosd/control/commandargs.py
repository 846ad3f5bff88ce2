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
MAX_SLEEP_SECONDS = 86399


#: The most unknown argument names a refusal lists beside the first.
OTHERS_SHOWN = 5


def _only(args: Args, *allowed: str) -> None:
    """Refuse arguments not in ``allowed``, naming every one (the first leads the message)."""
    unknown = [name for name in args if name not in allowed]
    if not unknown:
        return
    expected = ", ".join(allowed) if allowed else "none"
    message = f"unknown argument (expected: {expected})"
    others = unknown[1:]
    if others:
        shown = ", ".join(others[:OTHERS_SHOWN])
        more = f" and {len(others) - OTHERS_SHOWN} more" if len(others) > OTHERS_SHOWN else ""
        message += f"; also unknown: {shown}{more}"
    raise bad_argument(unknown[0], message)


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
        # int() refuses strings over 4,300 digits; no range here needs 19.
        if isinstance(value, str) and len(value.strip().lstrip("+-")) > 18:
            raise bad_argument(name, f"expected {low}..{high}, got {len(value.strip())} digits")
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
            # int() refuses over 4,300 digits; anything over 9 is past 100 hours anyway.
            seconds = int(text) if len(text) <= 9 else None
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


MODES = ("replace", "next", "end")
#: The most items a page lists, and the most queue tracks one ``remove`` or ``move`` takes
#: (docs/openapi.yaml: ``count``, 1..1000, whatever the action).
MAX_COUNT = 1000
MAX_TEXT = 1000
CATEGORIES = (
    "artists",
    "album_artists",
    "albums",
    "genres",
    "composers",
    "tracks",
    "playlists",
    "shares",
    "stations",
    "shows",
)
SEARCHABLE = ("artists", "album_artists", "albums", "genres", "composers", "tracks")
ALARM_PLAY_MODES = (
    "NORMAL",
    "REPEAT_ALL",
    "REPEAT_ONE",
    "SHUFFLE",
    "SHUFFLE_NOREPEAT",
    "SHUFFLE_REPEAT_ONE",
)
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
RECURRENCES = ("DAILY", "WEEKDAYS", "WEEKENDS", "ONCE")
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$", re.ASCII)
_RECURRENCE = re.compile(r"^ON_[0-6]{1,7}$", re.ASCII)


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.strip().lower() not in choices:
        raise bad_argument(name, f"expected one of {', '.join(choices)}, got {value!r}")
    return value.strip().lower()


def _bare(args: Args) -> Params:
    """An action without arguments."""
    _only(args, "action")
    return {}


def _actions(args: Args, default: str, table: Mapping[str, Callable[[Args], Params]]) -> Params:
    """Run the parser of ``args["action"]`` (``default`` when left out)."""
    action = args.get("action", default)
    parser = table.get(action) if isinstance(action, str) else None
    if parser is None:
        raise bad_argument("action", f"expected {', '.join(table)}, got {action!r}")
    return {"action": action, **parser(args)}


def _paging(args: Args) -> Params:
    return {
        "start": to_int("start", args.get("start", 0), 0, 1_000_000),
        "count": to_int("count", args.get("count", 100), 1, MAX_COUNT),
    }


def _mode(args: Args, default: str = "replace") -> str:
    return _choice("mode", args.get("mode", default), MODES)


def _named(args: Args, what: str) -> Params:
    """``name`` (a title, any case) or ``id`` (``SQ:3``): exactly one."""
    if ("name" in args) == ("id" in args):
        raise bad_argument("name", f"give exactly one of name and id (the {what})")
    if "id" in args:
        return {"id": to_str("id", args["id"]).strip(), "name": None}
    return {"name": to_str("name", args["name"]).strip(), "id": None}


def _play_favorite(args: Args) -> Params:
    _only(args, "name", "mode", "play")
    if "name" not in args:
        raise bad_argument("name", "missing (the favorite's title)")
    return {
        "name": to_str("name", args["name"]).strip(),
        "mode": _mode(args),
        "play": to_bool("play", args.get("play", True)),
    }


def _queue_list(args: Args) -> Params:
    _only(args, "action", "start", "count")
    return _paging(args)


def _queue_add(args: Args) -> Params:
    _only(args, "action", "uri", "title", "position", "as_next")
    if "uri" not in args:
        raise bad_argument("uri", "missing")
    return {
        "uri": to_str("uri", args["uri"]).strip(),
        "title": to_str("title", args.get("title", ""), empty=True),
        "position": to_int("position", args.get("position", 0), 0, 1_000_000),
        "as_next": to_bool("as_next", args.get("as_next", False)),
    }


def _queue_remove(args: Args) -> Params:
    _only(args, "action", "track", "count")
    if "track" not in args:
        raise bad_argument("track", "missing (1 is the first track)")
    return {
        "track": to_int("track", args["track"], 1, 1_000_000),
        "count": to_int("count", args.get("count", 1), 1, MAX_COUNT),
    }


def _queue_move(args: Args) -> Params:
    _only(args, "action", "track", "to", "count")
    for name in ("track", "to"):
        if name not in args:
            raise bad_argument(name, "missing (1 is the first track)")
    return {
        "track": to_int("track", args["track"], 1, 1_000_000),
        "to": to_int("to", args["to"], 1, 1_000_000),
        "count": to_int("count", args.get("count", 1), 1, MAX_COUNT),
    }


def _queue_play(args: Args) -> Params:
    _only(args, "action", "track")
    if "track" not in args:
        raise bad_argument("track", "missing (1 is the first track)")
    return {"track": to_int("track", args["track"], 1, 1_000_000)}


def _queue(args: Args) -> Params:
    return _actions(
        args,
        "list",
        {
            "list": _queue_list,
            "add": _queue_add,
            "remove": _queue_remove,
            "move": _queue_move,
            "clear": _bare,
            "play": _queue_play,
        },
    )


def _favorites(args: Args) -> Params:
    _only(args)
    return {}


def _playlist_target(args: Args, *extra: str) -> Params:
    _only(args, "action", "name", "id", *extra)
    return _named(args, "playlist's title or SQ: id")


def _playlists(args: Args) -> Params:
    def tracks(a: Args) -> Params:
        return {**_playlist_target(a, "start", "count"), **_paging(a)}

    def play(a: Args) -> Params:
        return {**_playlist_target(a, "mode"), "mode": _mode(a)}

    def add(a: Args) -> Params:
        return {
            **_playlist_target(a, "mode"),
            "mode": _choice("mode", a.get("mode", "end"), MODES[1:]),
        }

    def save(a: Args) -> Params:
        _only(a, "action", "title", "replace")
        if "title" not in a:
            raise bad_argument("title", "missing (the new playlist's title)")
        return {
            "title": to_str("title", a["title"]).strip(),
            "replace": to_bool("replace", a.get("replace", False)),
        }

    return _actions(
        args,
        "list",
        {
            "list": _bare,
            "tracks": tracks,
            "play": play,
            "add": add,
            "save": save,
            "delete": lambda a: _playlist_target(a),
        },
    )


def _library(args: Args) -> Params:
    def browse(a: Args) -> Params:
        _only(a, "action", "category", "id", "start", "count")
        if ("category" in a) == ("id" in a):
            raise bad_argument("category", "give exactly one of category and id")
        where: Params = {"category": None, "id": None}
        if "category" in a:
            where["category"] = _choice("category", a["category"], CATEGORIES)
        else:
            where["id"] = to_str("id", a["id"]).strip()
        return {**where, **_paging(a)}

    def search(a: Args) -> Params:
        _only(a, "action", "category", "term", "start", "count")
        if "term" not in a:
            raise bad_argument("term", "missing (what to look for)")
        term = to_str("term", a["term"]).strip()
        if len(term) > 200:
            raise bad_argument("term", "longer than 200 characters")
        category = _choice("category", a.get("category", "tracks"), SEARCHABLE)
        return {"category": category, "term": term, **_paging(a)}

    def item(default: str, modes: tuple[str, ...]) -> Callable[[Args], Params]:
        def parse(a: Args) -> Params:
            _only(a, "action", "id", "mode")
            if "id" not in a:
                raise bad_argument("id", "missing (an item id from browse or search)")
            return {
                "id": to_str("id", a["id"]).strip(),
                "mode": _choice("mode", a.get("mode", default), modes),
            }

        return parse

    return _actions(
        args,
        "browse",
        {
            "browse": browse,
            "search": search,
            "play": item("replace", MODES),
            "add": item("end", MODES[1:]),
        },
    )


def _share_link(args: Args) -> Params:
    _only(args, "url", "mode", "play")
    if "url" not in args:
        raise bad_argument("url", "missing (a Spotify, Apple Music, TIDAL or Deezer link)")
    play = to_bool("play", args.get("play", True))
    return {
        "url": to_str("url", args["url"]).strip(),
        "mode": _mode(args, "replace" if play else "end"),
        "play": play,
    }


def to_clock(name: str, value: Any, seconds: bool = True) -> str:
    """``HH:MM:SS`` from ``"7:30"``, ``"07:30:00"``."""
    match = _CLOCK.match(value.strip()) if isinstance(value, str) else None
    if match is None or int(match.group(1)) > (99 if not seconds else 23):
        raise bad_argument(name, f"expected HH:MM or HH:MM:SS, got {value!r}")
    hours, minutes, secs = match.group(1), match.group(2), match.group(3) or "00"
    return f"{int(hours):02d}:{minutes}:{secs}"


def _recurrence(args: Args) -> str | None:
    if "recurrence" in args and "days" in args:
        raise bad_argument("recurrence", "give recurrence or days, not both")
    if "days" in args:
        days = args["days"]
        if not isinstance(days, list) or not days:
            raise bad_argument("days", f"expected a list of day names ({', '.join(DAYS)})")
        numbers = sorted({DAYS.index(_choice("days", day, DAYS)) for day in days})
        return "ON_" + "".join(str(n) for n in numbers)
    if "recurrence" not in args:
        return None
    value = args["recurrence"]
    text = value.strip().upper() if isinstance(value, str) else ""
    if text not in RECURRENCES and not _RECURRENCE.match(text):
        raise bad_argument(
            "recurrence",
            f"expected DAILY, WEEKDAYS, WEEKENDS, ONCE or ON_<days 0-6>, got {value!r}",
        )
    return text


_ALARM_FIELDS = (
    "time",
    "recurrence",
    "days",
    "duration",
    "volume",
    "enabled",
    "play_mode",
    "favorite",
    "uri",
    "meta",
    "room",
    "include_linked_zones",
)


def _alarm_fields(args: Args) -> Params:
    """The alarm fields given (only those: an update keeps the others)."""
    fields: Params = {}
    if "time" in args:
        fields["time"] = to_clock("time", args["time"])
    recurrence = _recurrence(args)
    if recurrence is not None:
        fields["recurrence"] = recurrence
    if "duration" in args:
        duration = args["duration"]
        fields["duration"] = "" if duration is None else to_clock("duration", duration, False)
    if "volume" in args:
        fields["volume"] = to_int("volume", args["volume"], 0, 100)
    for flag in ("enabled", "include_linked_zones"):
        if flag in args:
            fields[flag] = to_bool(flag, args[flag])
    if "play_mode" in args:
        mode = args["play_mode"]
        if not isinstance(mode, str) or mode.strip().upper() not in ALARM_PLAY_MODES:
            raise bad_argument("play_mode", f"expected one of {', '.join(ALARM_PLAY_MODES)}")
        fields["play_mode"] = mode.strip().upper()
    if "favorite" in args and "uri" in args:
        raise bad_argument("favorite", "give favorite or uri, not both")
    if "favorite" in args:
        fields["favorite"] = to_str("favorite", args["favorite"]).strip()
    if "uri" in args:
        fields["uri"] = to_str("uri", args["uri"]).strip()
        fields["meta"] = to_str("meta", args.get("meta", ""), empty=True)
    elif "meta" in args:
        raise bad_argument("meta", "only with uri")
    if "room" in args:
        fields["room"] = to_str("room", args["room"]).strip()
    return fields


def _alarm_id(args: Args) -> int:
    if "id" not in args:
        raise bad_argument("id", "missing (the alarm's id, from alarms list)")
    return to_int("id", args["id"], 0, 2**31 - 1)


def _alarms(args: Args) -> Params:
    def create(a: Args) -> Params:
        _only(a, "action", *_ALARM_FIELDS)
        if "time" not in a:
            raise bad_argument("time", "missing (when it rings, HH:MM)")
        return _alarm_fields(a)

    def update(a: Args) -> Params:
        _only(a, "action", "id", *_ALARM_FIELDS)
        fields = _alarm_fields(a)
        if not fields:
            raise bad_argument("id", "nothing to change: give at least one field")
        return {"id": _alarm_id(a), **fields}

    def by_id(a: Args) -> Params:
        _only(a, "action", "id")
        return {"id": _alarm_id(a)}

    return _actions(
        args,
        "list",
        {
            "list": _bare,
            "create": create,
            "update": update,
            "enable": by_id,
            "disable": by_id,
            "delete": by_id,
            "skip": by_id,
        },
    )


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


TARGETS = ("group", "room", "all")


def _announce(args: Args) -> Params:
    _only(args, "uri", "text", "volume", "timeout", "title", "meta", "target")
    if ("uri" in args) == ("text" in args):
        raise bad_argument("uri", "give exactly one of uri and text")
    return _announcement(args)


def _say(args: Args) -> Params:
    _only(args, "text", "volume", "timeout", "title", "target")
    if "text" not in args:
        raise bad_argument("text", "missing (what to say)")
    return _announcement(args)


def _announcement(args: Args) -> Params:
    volume = args.get("volume")
    timeout = args.get("timeout")
    text = None
    if "text" in args:
        text = " ".join(to_str("text", args["text"]).split())
        if len(text) > MAX_TEXT:
            raise bad_argument("text", f"longer than {MAX_TEXT} characters")
    return {
        "uri": to_str("uri", args["uri"]).strip() if "uri" in args else None,
        "text": text,
        "volume": None if volume is None else to_int("volume", volume, 0, 100),
        "timeout": None
        if timeout is None
        else to_seconds("timeout", timeout, MAX_ANNOUNCE_SECONDS),
        "title": to_str("title", args.get("title", ""), empty=True),
        "meta": to_str("meta", args.get("meta", ""), empty=True),
        "target": _choice("target", args.get("target", "group"), TARGETS),
    }


def _line_in(args: Args) -> Params:
    _only(args, "source", "play")
    source = args.get("source")
    return {
        "source": None if source is None else to_str("source", source).strip(),
        "play": to_bool("play", args.get("play", True)),
    }


def _tv(args: Args) -> Params:
    _only(args, "play")
    return {"play": to_bool("play", args.get("play", True))}


def _levels(*levels: str, flags: tuple[str, ...] = ()) -> Callable[[Args], Params]:
    """Settings of which at least one is given: levels -15..15 and booleans."""

    def parse(args: Args) -> Params:
        _only(args, *flags, *levels)
        params: Params = {}
        for name in flags:
            if name in args:
                params[name] = to_bool(name, args[name])
        for name in levels:
            if name in args:
                params[name] = to_int(name, args[name], -15, 15)
        return params

    return parse


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
    "favorites": _favorites,
    "playlists": _playlists,
    "library": _library,
    "share_link": _share_link,
    "queue": _queue,
    "sleep_timer": _sleep_timer,
    "snapshot": _snapshot,
    "restore": _restore,
    "announce": _announce,
    "say": _say,
    "alarms": _alarms,
    "line_in": _line_in,
    "tv": _tv,
    "speech_enhancement": _flag("speech_enhancement"),
    "sub": _levels("gain", flags=("enabled",)),
    "surround": _levels("tv_level", "music_level", flags=("enabled", "full_volume")),
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
