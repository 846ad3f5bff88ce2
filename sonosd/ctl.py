# -*- test-case-name: tests.test_ctl -*-
"""``sonosctl``: the command-line client of a running sonosd.

    sonosctl [--url URL] [--token T] [--json] status
    sonosctl [--url URL] [--token T] [--json] doctor
    sonosctl [--url URL] [--token T] [--json] <room> <command> [args...]
    sonosctl [--url URL] [--token T] events [--json] [--room R] [--type T] [--service S]

It speaks the daemon's HTTP API (``GET /api/v1/snapshot``, ``POST
/api/v1/speakers/{id}/{command}``, the Server-Sent Events of ``/api/v1/events``). It uses
the standard library's ``urllib`` rather than Twisted: a short-lived command that makes one
request starts in a fraction of the time without a reactor (that matters on a Raspberry Pi,
in shell loops and Node-RED ``exec`` nodes), and an SSE tail is a blocking line reader.

Exit status: 0 done (``doctor``: all is well), 1 the daemon refused the command (unknown
speaker, bad argument...; ``doctor``: a problem was found), 2 usage error, 3 the daemon cannot
be reached, 4 not authorised (401/403), 5 the speaker failed (it refused, is offline, or did not
answer within the daemon's call timeout). Every failure is one line on stderr.

A command waits ``COMMAND_TIMEOUT`` seconds by default: longer than the daemon's own limits
(``soco.call_timeout``, 20 s by default, three times that for snapshot and restore), so that a
hung speaker is reported as the daemon's ``504 timeout`` (exit 5), not as an unreachable daemon.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any

from sonosd import doctor

DEFAULT_URL = "http://127.0.0.1:8080"

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_UNAUTHORISED = 4
EXIT_SPEAKER = 5

#: Seconds ``status``, ``doctor`` and ``events`` wait for the daemon.
DEFAULT_TIMEOUT = 15.0
#: Seconds a command waits for its answer (see the module docstring).
COMMAND_TIMEOUT = 90.0

#: Error codes that mean the speaker failed, not the request (exit status 5).
SPEAKER_CODES = frozenset({"speaker_error", "offline", "asleep", "upnp_disabled", "timeout"})


class CtlError(Exception):
    """A failure reported as one line, with the exit status it gives."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# -- command words to API requests (pure) ------------------------------------------------------


def _switch(word: str) -> bool:
    text = word.lower()
    if text in ("on", "true", "yes", "1"):
        return True
    if text in ("off", "false", "no", "0"):
        return False
    raise CtlError(f"expected on or off, got {word!r}", EXIT_USAGE)


def _level(word: str) -> dict[str, Any]:
    """``30`` → absolute; ``+5`` / ``-5`` → relative."""
    try:
        number = int(word)
    except ValueError:
        raise CtlError(f"expected a number, +N or -N, got {word!r}", EXIT_USAGE) from None
    if word.startswith(("+", "-")):
        return {"delta": number}
    return {"volume": number}


def _scalar(text: str) -> Any:
    """A ``key=value`` value: JSON where it parses (numbers, true, null...), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


_PLAIN = frozenset({"play", "pause", "toggle", "stop", "next", "previous", "leave", "party"})
_SWITCHES = {"loudness": "loudness", "night-mode": "night_mode", "dialog-mode": "dialog_mode"}

#: The first words of every command: the API's commands (``_`` or ``-``) and sonosctl's
#: shorthands. One of them where the room belongs is a command typed before its room.
_API_COMMANDS = (
    *("play", "pause", "toggle", "stop", "next", "previous", "seek", "play_mode"),
    *("volume", "mute", "bass", "treble", "loudness", "night_mode", "dialog_mode"),
    *("group_volume", "group_mute", "join", "leave", "party", "play_uri", "play_favorite"),
    *("favorites", "playlists", "library", "share_link", "queue", "sleep_timer"),
    *("snapshot", "restore", "announce", "say", "alarms", "line_in", "tv"),
    *("speech_enhancement", "sub", "surround"),
)
_COMMAND_WORDS = frozenset(
    (
        *_API_COMMANDS,
        *(name.replace("_", "-") for name in _API_COMMANDS),
        *("shuffle", "repeat", "crossfade", "sleep", "say-all", "say-room"),
        *("playlist", "search", "share", "alarm"),
    )
)


def _order_hint(words: Sequence[str]) -> str:
    """A hint to add to a command's error when ``words`` (room first) look swapped: the room
    is a command word and the command is not (``sonosctl volume Kitchen 30``)."""
    if len(words) < 2:
        return ""
    room, command = words[0].lower(), words[1].lower()
    if room not in _COMMAND_WORDS or command in _COMMAND_WORDS:
        return ""
    swapped = " ".join([words[1], words[0], *words[2:]])
    return f" (the room comes first: sonosctl {swapped})"


def command_request(words: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The API command and JSON arguments for ``sonosctl <room> <words...>``.

    Shorthands: ``volume 30|+5|-5``, ``group-volume ...``, ``mute [on|off]``, ``group-mute
    [on|off]``, ``bass N``, ``treble N``, ``loudness|night-mode|dialog-mode on|off``,
    ``seek H:MM:SS|SECONDS``, ``seek track N``, ``shuffle on|off``, ``repeat none|all|one``,
    ``crossfade on|off``, ``join ROOM``, ``play-uri URI [TITLE]``, ``play-favorite NAME``,
    ``queue [list|clear|add URI|play N]``, ``sleep [MINUTES|off]``, ``snapshot [NAME]``,
    ``restore [NAME]``, ``announce URI [VOLUME]``, and those of ``_content_words`` (``say
    TEXT``, ``favorites``, ``playlists``, ``playlist ACTION NAME``, ``library``, ``search``,
    ``share-link URL``, ``alarms``, ``alarm ...``, ``line-in``, ``tv``, ``sub``,
    ``surround``, ``speech-enhancement``). Anything else is sent as is, with
    ``key=value`` arguments (``sonosctl Kitchen play_mode shuffle=true repeat=one``).

    @raise CtlError: Wrong shorthand arguments (exit status 2).
    """
    if not words:
        raise CtlError("missing command after the room", EXIT_USAGE)
    command, rest = words[0].lower(), list(words[1:])

    def need(count: int, usage: str) -> None:
        if len(rest) < count:
            raise CtlError(f"usage: sonosctl <room> {usage}", EXIT_USAGE)

    if command in _PLAIN and not rest:
        return command, {}
    if command in ("volume", "group-volume"):
        need(1, f"{command} N|+N|-N")
        return command.replace("-", "_"), _level(rest[0])
    if command in ("mute", "group-mute"):
        return command.replace("-", "_"), {"mute": _switch(rest[0])} if rest else {}
    if command in ("bass", "treble"):
        need(1, f"{command} -10..10")
        try:
            return command, {command: int(rest[0])}
        except ValueError:
            raise CtlError(f"expected a number, got {rest[0]!r}", EXIT_USAGE) from None
    if command in _SWITCHES:
        need(1, f"{command} on|off")
        return _SWITCHES[command], {_SWITCHES[command]: _switch(rest[0])}
    if command == "seek":
        need(1, "seek H:MM:SS|SECONDS | seek track N")
        if rest[0] == "track":
            need(2, "seek track N")
            return "seek", {"track": _scalar(rest[1])}
        return "seek", {"position": rest[0]}
    if command in ("shuffle", "crossfade"):
        need(1, f"{command} on|off")
        return "play_mode", {command: _switch(rest[0])}
    if command == "repeat":
        need(1, "repeat none|all|one")
        return "play_mode", {"repeat": rest[0].lower()}
    if command == "join":
        need(1, "join ROOM")
        return "join", {"coordinator": " ".join(rest)}
    if command == "play-uri":
        need(1, "play-uri URI [TITLE]")
        args: dict[str, Any] = {"uri": rest[0]}
        if len(rest) > 1:
            args["title"] = " ".join(rest[1:])
        return "play_uri", args
    if command == "play-favorite":
        need(1, "play-favorite NAME")
        return "play_favorite", {"name": " ".join(rest)}
    if command == "queue":
        if not rest or rest[0] == "list":
            return "queue", {"action": "list"}
        if rest[0] == "clear":
            return "queue", {"action": "clear"}
        if rest[0] == "add":
            need(2, "queue add URI")
            return "queue", {"action": "add", "uri": rest[1]}
        if rest[0] == "play":
            need(2, "queue play N")
            return "queue", {"action": "play", "track": _scalar(rest[1])}
        if rest[0] == "remove":
            need(2, "queue remove N [COUNT]")
            args = {"action": "remove", "track": _scalar(rest[1])}
            if len(rest) > 2:
                args["count"] = _scalar(rest[2])
            return "queue", args
        if rest[0] == "move":
            need(3, "queue move N TO")
            return "queue", {"action": "move", "track": _scalar(rest[1]), "to": _scalar(rest[2])}
        raise CtlError(
            "usage: sonosctl <room> queue [list|clear|add URI|play N|remove N [COUNT]|move N TO]",
            EXIT_USAGE,
        )
    if command == "sleep":
        if not rest:
            return "sleep_timer", {"action": "get"}
        if rest[0].lower() in ("off", "cancel"):
            return "sleep_timer", {"action": "cancel"}
        return "sleep_timer", {"minutes": _scalar(rest[0])}
    if command in ("snapshot", "restore"):
        return command, {"name": rest[0]} if rest else {}
    if command == "announce":
        need(1, "announce URI [VOLUME]")
        args = {"uri": rest[0]}
        if len(rest) > 1:
            args["volume"] = _scalar(rest[1])
        return "announce", args
    shorthand = _content_words(command, rest)
    if shorthand is not None:
        return shorthand
    generic: dict[str, Any] = {}
    for word in rest:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise CtlError(f"expected key=value, got {word!r}", EXIT_USAGE)
        generic[key] = _scalar(value)
    return command.replace("-", "_"), generic


_ALARM_WORDS = {"on": "enable", "off": "disable", "delete": "delete", "skip": "skip"}
_PLAYLIST_WORDS = ("play", "add", "save", "delete", "tracks")
_SOUND = {"speech-enhancement": "speech_enhancement", "sub": "sub", "surround": "surround"}


def _content_words(command: str, rest: list[str]) -> tuple[str, dict[str, Any]] | None:
    """The shorthands of favourites, playlists, the library, share links, alarms,
    announcements and inputs; ``None`` for any other command."""

    def need(count: int, usage: str) -> None:
        if len(rest) < count:
            raise CtlError(f"usage: sonosctl <room> {usage}", EXIT_USAGE)

    if command in ("say", "say-all", "say-room"):
        need(1, f"{command} TEXT")
        target = {"say": "group", "say-all": "all", "say-room": "room"}[command]
        return "say", {"text": " ".join(rest), "target": target}
    if command == "favorites" and not rest:
        return "favorites", {}
    if command == "playlists" and not rest:
        return "playlists", {"action": "list"}
    if command == "playlist":
        need(2, "playlist play|add|save|delete|tracks NAME")
        action = rest[0].lower()
        if action not in _PLAYLIST_WORDS:
            raise CtlError(
                "usage: sonosctl <room> playlist play|add|save|delete|tracks NAME", EXIT_USAGE
            )
        name = " ".join(rest[1:])
        return "playlists", {"action": action, "title" if action == "save" else "name": name}
    if command == "library" and len(rest) <= 1:
        return "library", {"action": "browse", "category": rest[0] if rest else "artists"}
    if command == "search":
        need(2, "search CATEGORY TERM")
        return "library", {"action": "search", "category": rest[0], "term": " ".join(rest[1:])}
    if command in ("share-link", "share"):
        need(1, f"{command} URL [queue]")
        args: dict[str, Any] = {"url": rest[0]}
        if rest[1:] == ["queue"]:
            args["play"] = False
        return "share_link", args
    if command == "alarms" and not rest:
        return "alarms", {"action": "list"}
    if command == "alarm":
        need(2, "alarm add HH:MM [DAILY|WEEKDAYS|WEEKENDS|ONCE] | alarm on|off|delete|skip ID")
        word = rest[0].lower()
        if word == "add":
            args = {"action": "create", "time": rest[1]}
            if len(rest) > 2:
                args["recurrence"] = rest[2]
            return "alarms", args
        if word in _ALARM_WORDS:
            return "alarms", {"action": _ALARM_WORDS[word], "id": _scalar(rest[1])}
        raise CtlError(f"unknown alarm action {rest[0]!r}", EXIT_USAGE)
    if command == "line-in":
        return "line_in", {"source": " ".join(rest)} if rest else {}
    if command == "tv" and not rest:
        return "tv", {}
    if command in _SOUND and len(rest) == 1:
        name = _SOUND[command]
        if name == "speech_enhancement":
            return name, {name: _switch(rest[0])}
        word = rest[0].lower()
        if word in ("on", "off", "true", "false", "yes", "no"):
            return name, {"enabled": _switch(word)}
        return name, {"gain" if name == "sub" else "tv_level": _scalar(rest[0])}
    return None


# -- formatting (pure) -------------------------------------------------------------------------


def _compact(value: Any) -> str:
    if isinstance(value, dict):
        if set(value) == {"Master"} or ("Master" in value and "title" not in value):
            return _compact(value["Master"])
        if "title" in value:
            parts = [value.get("title"), value.get("artist") or value.get("creator")]
            return " - ".join(str(part) for part in parts if part) or "-"
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "-"
    if isinstance(value, list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _group_line(group: Mapping[str, Any]) -> str:
    """``Coordinator + Member + ...`` (visible members, the coordinator first)."""
    coordinator = group.get("coordinator")
    members = sorted(group.get("members", []), key=lambda m: m.get("uid") != coordinator)
    visible = [m.get("name", m.get("uid")) for m in members if not m.get("invisible")]
    return " + ".join(str(name) for name in visible) or str(group.get("name", "?"))


def format_result(
    room: str, command: str, result: Mapping[str, Any], args: Mapping[str, Any] | None = None
) -> str:
    """One line (more for lists) describing a command's result (``args``: the command's,
    which say what an ``alarms`` action did)."""
    if command == "alarms" and ("alarm" in result or "deleted" in result):
        return f"{room}: {_alarm_change((args or {}).get('action'), result)}"
    if "group" in result and isinstance(result["group"], Mapping):
        note = "" if result.get("confirmed", True) else " (not confirmed yet)"
        return f"{room}: group {_group_line(result['group'])}{note}"
    if command == "queue" and "items" in result:
        lines = [f"{room}: queue, {result.get('total', 0)} tracks"]
        for item in result["items"]:
            lines.append(f"  {item.get('position')}. {_compact(item)}")
        return "\n".join(lines)
    listing = _listing(room, result)
    if listing is not None:
        return listing
    shown = {k: v for k, v in result.items() if k != "coordinator"}
    if not shown:
        return f"{room}: {command} done"
    return f"{room}: " + " ".join(f"{key} {_compact(value)}" for key, value in shown.items())


#: What each ``alarms`` action did, as sonosctl says it.
_ALARM_DONE = {
    "create": "added",
    "update": "changed",
    "enable": "switched on",
    "disable": "switched off",
    "skip": "skipped",
}


def _clock_time(text: Any) -> str:
    """``07:00:00`` as ``07:00`` (seconds only when there are some)."""
    text = str(text)
    return text[:-3] if len(text) == 8 and text.endswith(":00") else text


def _moment(text: Any) -> str:
    """An ISO local date and time (``2026-11-24T07:00:00``) as ``Tue 2026-11-24 07:00``."""
    try:
        moment = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return moment.strftime("%a %Y-%m-%d %H:%M")


def _alarm_text(alarm: Mapping[str, Any]) -> str:
    """``07:00 WEEKDAYS in Kitchen, on`` (days named for an ``ON_<days>`` alarm)."""
    recurrence = str(alarm.get("recurrence"))
    days = alarm.get("days")
    if recurrence.startswith("ON_") and isinstance(days, list) and days:
        recurrence = ",".join(str(day) for day in days)
    where = (alarm.get("room") or {}).get("name") or "?"
    state = "on" if alarm.get("enabled") else "off"
    return f"{_clock_time(alarm.get('time'))} {recurrence} in {where}, {state}"


def _alarm_change(action: Any, result: Mapping[str, Any]) -> str:
    """What an ``alarms`` action other than ``list`` did, in words."""
    if "deleted" in result:
        return f"alarm {result['deleted']} deleted"
    alarm = result["alarm"] if isinstance(result["alarm"], Mapping) else {}
    done = _ALARM_DONE.get(str(action))
    line = f"alarm {alarm.get('id')}{' ' + done if done else ''}: {_alarm_text(alarm)}"
    if "skipped" in result:
        back = result.get("resumes")
        again = f"on again {_moment(back)}" if back else "stays off (it rings once)"
        line += f"; skips {_moment(result['skipped'])}, {again}"
    return line


def _listing(room: str, result: Mapping[str, Any]) -> str | None:
    """Favourites, playlists, alarms and library items, one per line."""

    def alarm_line(alarm: Mapping[str, Any]) -> str:
        return f"{alarm.get('id')}. {_alarm_text(alarm)}"

    kinds = (
        ("favorites", "favorites", lambda f: f"{f.get('title')} ({f.get('kind')})"),
        (
            "playlists",
            "Sonos playlists",
            lambda p: f"{p.get('id')} {p.get('title')} ({p.get('tracks')} tracks)",
        ),
        ("alarms", "alarms", alarm_line),
        ("items", "items", lambda i: f"{i.get('id')}  {i.get('title')} ({i.get('kind')})"),
    )
    for key, noun, line in kinds:
        rows = result.get(key)
        if isinstance(rows, list):
            count = result.get("total", len(rows)) if key == "items" else len(rows)
            return "\n".join([f"{room}: {count} {noun}", *(f"  {line(row)}" for row in rows)])
    return None


def _variables(speaker: Mapping[str, Any], service: str) -> Mapping[str, Any]:
    services = speaker.get("services") or {}
    block = services.get(service) or {}
    variables = block.get("variables") or {}
    return variables if isinstance(variables, Mapping) else {}


def format_status(snapshot: Mapping[str, Any]) -> str:
    """The household at a glance: each group with what it plays, each room's volume."""
    speakers = {s["uid"]: s for s in snapshot.get("speakers", []) if "uid" in s}
    topology = snapshot.get("topology") or {}
    groups = topology.get("groups") or [
        {"coordinator": uid, "name": s.get("name"), "members": [s]} for uid, s in speakers.items()
    ]
    lines: list[str] = []
    for group in groups:
        coordinator = speakers.get(group.get("coordinator", ""), {})
        transport = _variables(coordinator, "AVTransport")
        state = transport.get("transport_state") or "?"
        track = transport.get("current_track_meta_data")
        playing = f"  {_compact(track)}" if isinstance(track, Mapping) else ""
        lines.append(f"{_group_line(group)}  [{state}]{playing}")
        for member in group.get("members", []):
            if member.get("invisible"):
                continue
            speaker = speakers.get(member.get("uid", ""), member)
            rendering = _variables(speaker, "RenderingControl")
            volume = rendering.get("volume")
            muted = rendering.get("mute")
            parts = [f"  {speaker.get('name', member.get('uid'))}"]
            if volume is not None:
                parts.append(f"volume {_compact(volume)}")
            if isinstance(muted, Mapping) and muted.get("Master"):
                parts.append("muted")
            availability = speaker.get("availability") or {}
            status = availability.get("status")
            if status in ("offline", "asleep", "upnp_disabled"):
                shown = {"upnp_disabled": "UPNP OFF"}.get(status, str(status).upper())
                reason = availability.get("reason") if status != "upnp_disabled" else None
                parts.append(f"{shown} ({reason})" if reason else shown)
            lines.append("  ".join(parts))
    if not lines:
        return "no speakers known"
    return "\n".join(lines)


_SKIPPED = frozenset(
    {"id", "run", "time", "type", "speaker", "service", "seq", "source", "variables"}
)


def format_event(message: Mapping[str, Any]) -> str:
    """One line for one message: time, type, room, service, then the changed values."""
    stamp = str(message.get("time", ""))[11:23]
    kind = str(message.get("type", "?"))
    speaker = message.get("speaker") or {}
    parts = [stamp, kind]
    if speaker:
        parts.append(str(speaker.get("name") or speaker.get("uid")))
    if message.get("service"):
        parts.append(str(message["service"]))
    if kind == "topology.changed":
        parts.append("; ".join(_group_line(group) for group in message.get("groups", [])))
    elif kind == "event":
        variables = message.get("variables") or {}
        parts.extend(f"{key}={_compact(value)}" for key, value in variables.items())
    else:
        parts.extend(
            f"{key}={_compact(value)}" for key, value in message.items() if key not in _SKIPPED
        )
    return " ".join(part for part in parts if part)


def parse_sse(lines: Iterator[str]) -> Iterator[tuple[str, str, str | None]]:
    """``(event, data, id)`` of each SSE block read from ``lines`` (comments skipped)."""
    event, event_id = "message", None
    data: list[str] = []
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if data:
                yield event, "\n".join(data), event_id
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


# -- HTTP ------------------------------------------------------------------------------------


class Client:
    """The daemon's API over ``urllib``.

    @param url: The API's base URL (``http://127.0.0.1:8080``).
    @param token: A bearer token, or ``None``.
    @param timeout: Seconds for connecting and for each read.
    """

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        return request

    def open(self, request: urllib.request.Request, timeout: float | None = None) -> Any:
        """Send ``request``; the response, or a ``CtlError`` with the right exit status."""
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as error:
            raise _http_error(error) from None
        except (urllib.error.URLError, OSError) as error:
            raise self._unreachable(getattr(error, "reason", error)) from None

    def _unreachable(self, reason: object) -> CtlError:
        if isinstance(reason, ConnectionRefusedError):
            text = "connection refused (is sonosd running?)"
        elif isinstance(reason, socket.timeout | TimeoutError):
            text = "no answer in time"
        else:
            text = str(reason)
        return CtlError(f"cannot reach {self.url}: {text}", EXIT_UNREACHABLE)

    def _json(self, request: urllib.request.Request, timeout: float | None = None) -> Any:
        """Send ``request`` and read its answer as JSON (a body that breaks off or is not
        JSON is a ``CtlError`` too)."""
        with self.open(request, timeout) as response:
            try:
                return json.load(response)
            except ValueError:
                raise self._unreachable("the answer is not JSON (is this sonosd's API?)") from None
            except OSError as error:
                raise self._unreachable(error) from None

    def get_json(self, path: str) -> Any:
        """``GET path`` as JSON."""
        return self._json(self._request("GET", path))

    def command(
        self, room: str, command: str, args: Mapping[str, Any], timeout: float
    ) -> dict[str, Any]:
        """``POST /api/v1/speakers/{room}/{command}``: the command's result."""
        path = "/api/v1/speakers/{}/{}".format(
            urllib.parse.quote(room, safe=""), urllib.parse.quote(command, safe="")
        )
        body = self._json(self._request("POST", path, args), timeout)
        result = body.get("result", body) if isinstance(body, dict) else body
        return result if isinstance(result, dict) else {"result": result}

    def events(self, query: Mapping[str, str], last_id: str | None) -> Any:
        """Open the SSE stream (resuming after ``last_id``)."""
        path = "/api/v1/events"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        return self.open(self._request("GET", path, headers=headers), max(self.timeout, 60.0))


def _http_error(error: urllib.error.HTTPError) -> CtlError:
    code = error.code
    try:
        body = json.loads(error.read() or b"{}")
    except ValueError:
        body = {}
    detail = body.get("error") if isinstance(body, dict) else None
    kind = None
    if isinstance(detail, dict):
        kind = detail.get("code")
        message = str(detail.get("message", ""))
        text = f"{detail.get('code', code)}: {message}".rstrip(": ")
        upnp = detail.get("upnp_error")
        if upnp is not None and f"UPnP error {upnp}" not in message:
            text += f" (UPnP error {upnp})"
    else:
        text = f"HTTP {code} {error.reason}"
    if code in (401, 403):
        hint = "" if code == 403 else " (give --token or set SONOSD_TOKEN)"
        return CtlError(f"not authorised: {text}{hint}", EXIT_UNAUTHORISED)
    if kind in SPEAKER_CODES or (kind is None and code in (502, 504)):
        return CtlError(text, EXIT_SPEAKER)
    return CtlError(text, EXIT_REFUSED)


# -- main ------------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    """A ``--timeout``: a number of seconds above 0 (``urlopen`` refuses others with a
    traceback)."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds above 0, got {text!r}")
    return seconds


def _command_timeout(base: float, args: Mapping[str, Any], command: str = "") -> float:
    """Seconds to wait for a command: ``base``, or 30 s more than the command's own
    ``timeout`` argument when it has a usable one (announce); an announcement without one
    may take the daemon's default (up to 30 s of clip, the text to speech, the restore):
    at least 90 s."""
    own = args.get("timeout")
    if isinstance(own, bool) or not isinstance(own, int | float) or not math.isfinite(own):
        return max(base, 90.0) if command in ("announce", "say") else base
    return max(base, float(own) + 30)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sonosctl",
        description="Control Sonos speakers through a running sonosd.",
        epilog="commands: status | doctor | events [...] | <room> <command> [args...] "
        "(see docs/control.md)",
    )
    parser.add_argument("--url", help=f"the sonosd API (env SONOSD_URL; default {DEFAULT_URL})")
    parser.add_argument("--token", help="API token (env SONOSD_TOKEN)")
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        help=f"seconds to wait for the daemon (default {DEFAULT_TIMEOUT:g}; "
        f"{COMMAND_TIMEOUT:g} for a command, longer than the daemon's call timeout)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def _events_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sonosctl events", description="Follow live events.")
    parser.add_argument("--json", action="store_true", help="one JSON message per line")
    parser.add_argument("--room", action="append", default=[], help="only this room")
    parser.add_argument("--type", action="append", default=[], help="only this message type")
    parser.add_argument("--service", action="append", default=[], help="only this service")
    parser.add_argument("--count", type=int, help="stop after this many messages")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``sonosctl``; return its exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    env = os.environ if environ is None else environ
    try:
        options = _parser().parse_args(argv)
    except SystemExit as exit:
        return int(exit.code or 0)
    client = Client(
        options.url or env.get("SONOSD_URL") or DEFAULT_URL,
        options.token or env.get("SONOSD_TOKEN") or None,
        options.timeout or DEFAULT_TIMEOUT,
    )
    words: list[str] = options.words
    try:
        if not words:
            raise CtlError(
                "give a command: status, doctor, events, or <room> <command>", EXIT_USAGE
            )
        if words[0] == "status" and len(words) == 1:
            snapshot = client.get_json("/api/v1/snapshot")
            out.write(json.dumps(snapshot) if options.json else format_status(snapshot))
            out.write("\n")
        elif words[0] == "doctor" and len(words) == 1:
            return _doctor(client, options.json, out)
        elif words[0] == "events":
            try:
                events = _events_parser().parse_args(words[1:])
            except SystemExit as exit:
                return int(exit.code or 0)
            return _follow(client, events, options.json or events.json, out, err)
        else:
            try:
                command, args = command_request(words[1:])
                result = client.command(
                    words[0],
                    command,
                    args,
                    _command_timeout(options.timeout or COMMAND_TIMEOUT, args, command),
                )
            except CtlError as error:
                if error.status not in (EXIT_USAGE, EXIT_REFUSED):
                    raise
                raise CtlError(f"{error}{_order_hint(words)}", error.status) from None
            out.write(
                json.dumps(result)
                if options.json
                else format_result(words[0], command, result, args)
            )
            out.write("\n")
    except CtlError as error:
        err.write(f"sonosctl: {error}\n")
        return error.status
    except KeyboardInterrupt:
        return 130
    out.flush()
    return EXIT_OK


def _doctor(client: Client, as_json: bool, out: IO[str]) -> int:
    """Read the daemon's diagnostics and say what is wrong; 0 when nothing is."""
    diagnostics = client.get_json("/api/v1/diagnostics")
    findings = doctor.diagnose(diagnostics)
    if as_json:
        out.write(json.dumps([dataclasses.asdict(finding) for finding in findings]))
    else:
        out.write(doctor.report(diagnostics, findings))
    out.write("\n")
    out.flush()
    problems = any(finding.severity == doctor.PROBLEM for finding in findings)
    return EXIT_REFUSED if problems else EXIT_OK


def _follow(
    client: Client, events: argparse.Namespace, as_json: bool, out: IO[str], err: IO[str]
) -> int:
    """Print messages as they come; reconnect (resuming by id) when the stream drops."""
    query = {
        key: ",".join(values)
        for key, values in (
            ("rooms", events.room),
            ("types", events.type),
            ("services", events.service),
        )
        if values
    }
    last_id: str | None = None
    printed = 0
    delay = 1.0
    while True:
        try:
            response = client.events(query, last_id)
        except CtlError as error:
            if last_id is None or error.status != EXIT_UNREACHABLE:
                raise
            err.write(f"sonosctl: {error}; retrying in {delay:g} s\n")
            time.sleep(delay)
            delay = min(delay * 2, 30.0)
            continue
        delay = 1.0
        try:
            with response:
                lines = (line.decode("utf-8", "replace") for line in response)
                for kind, data, event_id in parse_sse(lines):
                    if event_id is not None:
                        last_id = event_id
                    if kind == "snapshot":
                        continue
                    if kind == "reset":
                        err.write("sonosctl: the daemon could not replay every missed event\n")
                        continue
                    message = json.loads(data)
                    out.write(data if as_json else format_event(message))
                    out.write("\n")
                    out.flush()
                    printed += 1
                    if events.count is not None and printed >= events.count:
                        return EXIT_OK
        except (OSError, ValueError) as error:
            err.write(f"sonosctl: the event stream broke ({error}); reconnecting\n")
        if last_id is None:
            raise CtlError("the event stream ended", EXIT_UNREACHABLE)
