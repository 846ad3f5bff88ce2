"""Tests for sonosd.control.commandargs: command names and arguments checked without a network."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.control.commandargs import (
    COMMANDS,
    ControlError,
    format_hms,
    parse_command,
    to_bool,
    to_int,
    to_position,
)


def rejected(command: str, args: Any) -> ControlError:
    """The ControlError that parsing ``command`` with ``args`` raises."""
    with pytest.raises(ControlError) as caught:
        parse_command(command, args)
    return caught.value


def test_unknown_command() -> None:
    """An unknown command is 404 unknown_command and lists the known ones."""
    error = rejected("dance", {})
    assert (error.code, error.status) == ("unknown_command", 404)
    assert "play_favorite" in error.message


def test_hyphen_and_case() -> None:
    """Command names are case-insensitive and read ``-`` as ``_``."""
    assert parse_command("Play-Favorite", {"name": "Jazz"}) == (
        "play_favorite",
        {"name": "Jazz", "mode": "replace", "play": True},
    )


def test_unknown_argument_named() -> None:
    """An unexpected argument is 400 bad_argument naming it."""
    error = rejected("play", {"volume": 3})
    assert (error.code, error.status, error.argument) == ("bad_argument", 400, "volume")
    assert error.message.startswith("volume:")


def test_args_must_be_object() -> None:
    """Arguments that are not a JSON object are refused."""
    assert rejected("play", [1, 2]).argument == "args"
    assert parse_command("play", None) == ("play", {})


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("volume", {"volume": 30}, {"volume": 30}),
        ("volume", {"volume": "30"}, {"volume": 30}),
        ("volume", {"delta": "+5"}, {"delta": 5}),
        ("volume", {"delta": -5}, {"delta": -5}),
        ("volume", {"volume": "+5"}, {"delta": 5}),
        ("volume", {"volume": " -3"}, {"delta": -3}),
        ("volume", {"volume": "30"}, {"volume": 30}),
        ("group_volume", {"volume": "+10"}, {"delta": 10}),
        ("group_volume", {"delta": 3}, {"delta": 3}),
        ("mute", {}, {"mute": None}),
        ("mute", {"mute": "on"}, {"mute": True}),
        ("group_mute", {"mute": 0}, {"mute": False}),
        ("bass", {"bass": -10}, {"bass": -10}),
        ("loudness", {"loudness": "off"}, {"loudness": False}),
        ("seek", {"position": 75}, {"position": "0:01:15"}),
        ("seek", {"position": "1:15"}, {"position": "0:01:15"}),
        ("seek", {"position": "1:02:03"}, {"position": "1:02:03"}),
        ("seek", {"track": 3}, {"track": 3}),
        ("play_mode", {"repeat": "ONE"}, {"repeat": "one"}),
        ("play_mode", {"shuffle": True, "crossfade": "1"}, {"shuffle": True, "crossfade": True}),
        ("join", {"coordinator": "Kitchen"}, {"coordinator": "Kitchen"}),
        ("sleep_timer", {}, {"action": "get"}),
        ("sleep_timer", {"minutes": 2}, {"action": "set", "seconds": 120}),
        ("sleep_timer", {"action": "cancel"}, {"action": "cancel"}),
        ("queue", {}, {"action": "list", "start": 0, "count": 100}),
        ("queue", {"action": "play", "track": 2}, {"action": "play", "track": 2}),
        ("snapshot", {}, {"name": "default"}),
        ("restore", {"name": "x"}, {"name": "x", "fade": False}),
    ],
)
def test_accepted(command: str, args: dict[str, Any], expected: dict[str, Any]) -> None:
    """Valid arguments are normalised."""
    assert parse_command(command, args) == (command, expected)


@pytest.mark.parametrize(
    ("command", "args", "argument"),
    [
        ("volume", {}, "volume"),
        ("volume", {"volume": 101}, "volume"),
        ("volume", {"volume": True}, "volume"),
        ("volume", {"volume": 3, "delta": 1}, "volume"),
        ("volume", {"delta": "lots"}, "delta"),
        ("bass", {"bass": 11}, "bass"),
        ("treble", {}, "treble"),
        ("night_mode", {}, "night_mode"),
        ("mute", {"mute": "maybe"}, "mute"),
        ("seek", {}, "position"),
        ("seek", {"position": "1:99"}, "position"),
        ("seek", {"track": 0}, "track"),
        ("play_mode", {}, "shuffle"),
        ("play_mode", {"repeat": "twice"}, "repeat"),
        ("join", {}, "coordinator"),
        ("join", {"coordinator": ""}, "coordinator"),
        ("play_uri", {}, "uri"),
        ("play_uri", {"uri": 3}, "uri"),
        ("play_favorite", {}, "name"),
        ("queue", {"action": "shuffle"}, "action"),
        ("queue", {"action": "add"}, "uri"),
        ("queue", {"action": "play"}, "track"),
        ("sleep_timer", {"action": "snooze"}, "action"),
        ("sleep_timer", {"seconds": 0}, "seconds"),
        ("announce", {"uri": "http://x/a.mp3", "timeout": 0}, "timeout"),
        ("announce", {"uri": "http://x/a.mp3", "timeout": 9999}, "timeout"),
        ("announce", {"volume": 3}, "uri"),
    ],
)
def test_rejected(command: str, args: dict[str, Any], argument: str) -> None:
    """Invalid arguments are 400 bad_argument naming the argument."""
    error = rejected(command, args)
    assert (error.code, error.status, error.argument) == ("bad_argument", 400, argument)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        (1, True),
        (0, False),
        ("1", True),
        ("0", False),
        ("on", True),
        ("off", False),
        ("yes", True),
        ("no", False),
    ],
)
def test_every_documented_boolean_spelling(value: Any, expected: bool) -> None:
    """Booleans accept true/false, 1/0, "on"/"off" and "yes"/"no" (docs/control.md)."""
    assert parse_command("loudness", {"loudness": value}) == ("loudness", {"loudness": expected})
    assert parse_command("night-mode", {"night_mode": value})[1] == {"night_mode": expected}


def test_integers_accept_numeric_strings() -> None:
    """Integers accept numbers or numeric strings with a sign (docs/control.md)."""
    assert parse_command("bass", {"bass": "+5"}) == ("bass", {"bass": 5})
    assert parse_command("treble", {"treble": "-3"}) == ("treble", {"treble": -3})
    assert parse_command("queue", {"action": "play", "track": "2"})[1]["track"] == 2


def test_out_of_range_message_names_the_argument_first() -> None:
    """An out-of-range value is refused with a message that starts with the argument's name,
    as documented: ``volume: expected 0..100, got 101``."""
    assert str(rejected("volume", {"volume": 101})).startswith("volume: expected 0..100, got 101")


def test_position_not_finite() -> None:
    """Infinite or huge positions are bad arguments, not crashes."""
    for value in (float("inf"), float("nan"), 10**12):
        assert rejected("seek", {"position": value}).argument == "position"


def test_announce_defaults() -> None:
    """An announcement defaults to the group, no volume change and the configured bound."""
    _, params = parse_command("announce", {"uri": "http://x/a.mp3"})
    assert params == {
        "uri": "http://x/a.mp3",
        "text": None,
        "volume": None,
        "timeout": None,
        "title": "",
        "meta": "",
        "target": "group",
    }


def test_every_command_parses_something() -> None:
    """Every command has a parser that rejects an unknown argument."""
    for command in COMMANDS:
        assert rejected(command, {"bogus": 1}).argument in ("bogus", "action")


def test_unknown_arguments_are_all_named() -> None:
    """docs/control.md: unknown arguments are refused naming them: the first leads the
    message (its argument), the others follow, at most five of them listed."""
    error = rejected("volume", {"volume": 3, "volum": 3, "vol": 4})
    assert (error.code, error.status, error.argument) == ("bad_argument", 400, "volum")
    assert error.message == ("volum: unknown argument (expected: volume, delta); also unknown: vol")
    many = {f"x{n}": n for n in range(9)}
    error = rejected("play", many)
    assert error.message == (
        "x0: unknown argument (expected: none); also unknown: x1, x2, x3, x4, x5 and 3 more"
    )


def test_error_json() -> None:
    """A ControlError's JSON carries the UPnP error only when there is one."""
    assert ControlError("timeout", 504, "slow").to_json() == {"code": "timeout", "message": "slow"}
    error = ControlError("speaker_error", 502, "refused", upnp_error=701)
    assert error.to_json()["upnp_error"] == 701


@given(st.integers(min_value=0, max_value=100 * 3600 - 1))
def test_position_roundtrip(seconds: int) -> None:
    """Seconds and their H:MM:SS form give the same position."""
    text = format_hms(seconds)
    assert to_position("position", seconds) == text
    assert to_position("position", text) == text


@given(
    st.one_of(
        st.text(),
        st.floats(allow_nan=True),
        st.none(),
        st.lists(st.integers()),
        st.integers(4290, 5000).map(lambda n: "9" * n),
        st.integers(19, 4400).map(lambda n: "+" + "1" * n),
    )
)
def test_validators_raise_only_control_errors(value: Any) -> None:
    """Any JSON-ish value either parses or raises a bad_argument ControlError."""
    for check in (
        lambda: to_int("v", value, 0, 100),
        lambda: to_bool("v", value),
        lambda: to_position("v", value),
    ):
        try:
            check()
        except ControlError as error:
            assert error.code == "bad_argument"


def test_every_command_is_documented() -> None:
    """Every command is in the OpenAPI document's command names and in docs/control.md."""
    from tests.paths import ROOT, openapi_spec

    spec = openapi_spec()
    assert set(spec["components"]["schemas"]["CommandName"]["enum"]) == set(COMMANDS)
    control = (ROOT / "docs" / "control.md").read_text()
    for command in COMMANDS:
        assert f"`{command}`" in control, command


#: docs/openapi.yaml's argument schemas, and the commands that take them: ``(command, the
#: other arguments that make a valid request, schema, argument)`` for each bounded argument.
BOUNDED = [
    ("volume", {}, "LevelArgs", "volume"),
    ("volume", {}, "LevelArgs", "delta"),
    ("group_volume", {}, "LevelArgs", "volume"),
    ("group_volume", {}, "LevelArgs", "delta"),
    ("bass", {}, "ToneArgs", "bass"),
    ("treble", {}, "ToneArgs", "treble"),
    ("seek", {}, "SeekArgs", "track"),
    ("seek", {}, "SeekArgs", "position"),
    ("queue", {"action": "list"}, "QueueArgs", "start"),
    ("queue", {"action": "list"}, "QueueArgs", "count"),
    ("queue", {"action": "remove", "track": 1}, "QueueArgs", "count"),
    ("queue", {"action": "move", "track": 1, "to": 2}, "QueueArgs", "count"),
    ("queue", {"action": "move", "track": 1}, "QueueArgs", "to"),
    ("queue", {"action": "add", "uri": "x-file-cifs://nas/a.mp3"}, "QueueArgs", "position"),
    ("queue", {"action": "play"}, "QueueArgs", "track"),
    ("queue", {"action": "remove"}, "QueueArgs", "track"),
    ("sleep_timer", {"action": "set"}, "SleepTimerArgs", "seconds"),
    ("sleep_timer", {"action": "set"}, "SleepTimerArgs", "minutes"),
    ("announce", {"uri": "http://nas/a.mp3"}, "AnnounceArgs", "volume"),
    ("announce", {"uri": "http://nas/a.mp3"}, "AnnounceArgs", "timeout"),
    ("announce", {}, "AnnounceArgs", "text"),
    ("say", {"text": "hello"}, "SayArgs", "volume"),
    ("say", {"text": "hello"}, "SayArgs", "timeout"),
    ("say", {}, "SayArgs", "text"),
    ("playlists", {"action": "tracks", "name": "Mix"}, "PlaylistsArgs", "start"),
    ("playlists", {"action": "tracks", "name": "Mix"}, "PlaylistsArgs", "count"),
    ("library", {"category": "artists"}, "LibraryArgs", "start"),
    ("library", {"category": "artists"}, "LibraryArgs", "count"),
    ("library", {"action": "search"}, "LibraryArgs", "term"),
    ("alarms", {"action": "create", "time": "07:00", "favorite": "Mix"}, "AlarmsArgs", "volume"),
    ("alarms", {"action": "delete"}, "AlarmsArgs", "id"),
    ("sub", {}, "SubArgs", "gain"),
    ("surround", {}, "SurroundArgs", "tv_level"),
    ("surround", {}, "SurroundArgs", "music_level"),
]


def _spec_schemas() -> dict[str, Any]:
    from tests.paths import openapi_spec

    schemas: dict[str, Any] = openapi_spec()["components"]["schemas"]
    return schemas


def _numeric(schema: dict[str, Any]) -> dict[str, Any]:
    """The numeric branch of an argument's schema (``seek``'s position is a string too)."""
    for branch in schema.get("oneOf", [schema]):
        if branch.get("type") in ("integer", "number"):
            return dict(branch)
    return schema


@pytest.mark.parametrize(("command", "base", "schema", "name"), BOUNDED)
def test_documented_bounds(command: str, base: dict[str, Any], schema: str, name: str) -> None:
    """Each bound docs/openapi.yaml gives an argument is the one the daemon holds: the bound
    itself is accepted, one step past it is 400 bad_argument naming the argument."""
    spec = _spec_schemas()[schema]["properties"][name]
    if "maxLength" in spec:
        longest = spec["maxLength"]
        parse_command(command, {**base, name: "a" * longest})
        error = rejected(command, {**base, name: "a" * (longest + 1)})
        assert (error.code, error.message.split(":")[0]) == ("bad_argument", name)
        return
    bounds = _numeric(spec)
    assert "minimum" in bounds and "maximum" in bounds, f"{schema}.{name} is unbounded"
    step = 1 if bounds["type"] == "integer" else 0.001
    low, high = bounds["minimum"], bounds["maximum"]
    accepted = [high, low + step] if bounds.get("exclusiveMinimum") else [low, high]
    for value in accepted:
        parse_command(command, {**base, name: value})
    refused = [low, high + step] if bounds.get("exclusiveMinimum") else [low - step, high + step]
    for value in refused:
        error = rejected(command, {**base, name: value})
        assert (error.code, error.message.split(":")[0]) == ("bad_argument", name), value


def test_every_documented_bound_is_checked() -> None:
    """``BOUNDED`` covers every argument docs/openapi.yaml bounds (a bound added to the spec
    needs a case above)."""
    schemas = _spec_schemas()
    bounded = {
        (schema, name)
        for schema, body in schemas.items()
        if schema.endswith("Args")
        for name, spec in body.get("properties", {}).items()
        if any(key in str(spec) for key in ("minimum", "maximum", "maxLength"))
    }
    assert bounded == {(schema, name) for _, _, schema, name in BOUNDED}


@pytest.mark.parametrize(
    ("command", "base", "schema", "name"),
    [
        ("play_mode", {}, "PlayModeArgs", "repeat"),
        ("queue", {}, "QueueArgs", "action"),
        ("playlists", {"name": "Mix"}, "PlaylistsArgs", "action"),
        ("library", {}, "LibraryArgs", "category"),
        ("alarms", {"id": 1, "time": "07:00", "favorite": "Mix"}, "AlarmsArgs", "action"),
        (
            "alarms",
            {"action": "create", "time": "07:00", "favorite": "Mix"},
            "AlarmsArgs",
            "play_mode",
        ),
        ("sleep_timer", {"seconds": 60}, "SleepTimerArgs", "action"),
        ("announce", {"text": "hi"}, "AnnounceTarget", "target"),
        ("play_favorite", {"name": "Mix"}, "QueueMode", "mode"),
    ],
)
def test_documented_choices(command: str, base: dict[str, Any], schema: str, name: str) -> None:
    """Every value docs/openapi.yaml lists for a choice parses (unless the command needs more
    arguments for it, a bad_argument about another argument); another value is refused
    naming the choice."""
    spec = _spec_schemas()[schema]
    choices = spec["enum"] if "enum" in spec else spec["properties"][name]["enum"]
    for value in choices:
        try:
            parse_command(command, {**base, name: value})
        except ControlError as error:
            assert error.code == "bad_argument", (value, error.message)
            assert not error.message.startswith(f"{name}:"), (value, error.message)
    error = rejected(command, {**base, name: "bogus"})
    assert (error.code, error.message.split(":")[0]) == ("bad_argument", name)


def test_documented_defaults() -> None:
    """The defaults docs/openapi.yaml states: ``action`` list (queue, playlists, alarms) or
    browse (library), snapshot ``name`` default, announcement ``target`` group."""
    schemas = _spec_schemas()
    for command, schema, base in (
        ("queue", "QueueArgs", {}),
        ("playlists", "PlaylistsArgs", {}),
        ("alarms", "AlarmsArgs", {}),
        ("library", "LibraryArgs", {"category": "artists"}),
    ):
        default = schemas[schema]["properties"]["action"]["default"]
        assert parse_command(command, base) == parse_command(
            command, {**base, "action": default}
        ), command
    default_name = schemas["SnapshotArgs"]["properties"]["name"]["default"]
    assert parse_command("snapshot", {})[1]["name"] == default_name
    assert parse_command("restore", {})[1]["name"] == default_name
    target = schemas["AnnounceTarget"]["default"]
    assert parse_command("say", {"text": "hi"})[1]["target"] == target
    assert parse_command("announce", {"uri": "http://nas/a.mp3"})[1]["target"] == target


@pytest.mark.parametrize(
    ("command", "schema", "names", "rule"),
    [
        ("seek", "SeekArgs", ("position", "track"), "exactly one"),
        ("volume", "LevelArgs", ("volume", "delta"), "exactly one"),
        ("group_volume", "LevelArgs", ("volume", "delta"), "exactly one"),
        ("announce", "AnnounceArgs", ("uri", "text"), "exactly one"),
        ("play_mode", "PlayModeArgs", ("shuffle", "repeat", "crossfade"), "at least one"),
    ],
)
def test_documented_argument_rules(
    command: str, schema: str, names: tuple[str, ...], rule: str
) -> None:
    """The rules docs/openapi.yaml states in a schema's description ("exactly one of
    position and track", "at least one") are held: none is 400, and for "exactly one", both."""
    assert f"({rule}" in _spec_schemas()[schema]["description"]
    values = {"position": 5, "track": 2, "volume": 3, "delta": 1, "uri": "http://nas/a.mp3"}
    values.update(text="hello", shuffle=True, repeat="all", crossfade=False)
    assert rejected(command, {}).code == "bad_argument"
    for name in names:
        parse_command(command, {name: values[name]})
    if rule == "exactly one":
        error = rejected(command, {name: values[name] for name in names})
        assert error.code == "bad_argument"


#: docs/control.md's command table: ``(the words of the page, command, arguments, what the
#: parsed arguments hold)`` for each default the page states.
CONTROL_DEFAULTS = [
    ("`start`? (default true)", "play_uri", {"uri": "x-file-cifs://nas/a.mp3"}, {"start": True}),
    (
        "(`replace` default, `next`, `end`), `play`? (default true)",
        "play_favorite",
        {"name": "Jazz"},
        {"mode": "replace", "play": True},
    ),
    ("`action`: `list` (default)", "playlists", {}, {"action": "list"}),
    (
        "`add` (`mode`? `next`/`end`, default `end`)",
        "playlists",
        {"action": "add", "name": "Mix"},
        {"mode": "end"},
    ),
    ("`browse` (default;", "library", {"category": "albums"}, {"action": "browse"}),
    (
        "`category`? default `tracks`",
        "library",
        {"action": "search", "term": "x"},
        {"category": "tracks"},
    ),
    (
        "`play`? (default true), `mode`? (default `replace` when playing, else `end`)",
        "share_link",
        {"url": "https://x/y"},
        {"play": True, "mode": "replace"},
    ),
    (
        "`mode`? (default `replace` when playing, else `end`)",
        "share_link",
        {"url": "https://x/y", "play": "no"},
        {"play": False, "mode": "end"},
    ),
    (
        "`remove` (`track`, `count`? ≤ 1000, default 1)",
        "queue",
        {"action": "remove", "track": 4},
        {"count": 1},
    ),
    (
        "`move` (`track`, `to`, `count`? ≤ 1000, default 1)",
        "queue",
        {"action": "move", "track": 4, "to": 1},
        {"count": 1},
    ),
    (
        "`get` (default; `set` if `seconds`/`minutes` given)",
        "sleep_timer",
        {"seconds": 90},
        {"action": "set", "seconds": 90},
    ),
    ("`name`? (default `default`), `fade`?", "restore", {}, {"name": "default"}),
    (
        "`target`? (`group` default, `room`, `all`)",
        "announce",
        {"uri": "http://nas/a.mp3"},
        {"target": "group"},
    ),
    ("`action`: `list` (default), `create`", "alarms", {}, {"action": "list"}),
    (
        "default the speaker itself), `play`? (default true)",
        "line_in",
        {},
        {"source": None, "play": True},
    ),
    ("| `tv` | `play`? (default true)", "tv", {}, {"play": True}),
    ("`mute` (bool; left out: toggle)", "group_mute", {}, {"mute": None}),
]


@pytest.mark.parametrize(("words", "command", "args", "expected"), CONTROL_DEFAULTS)
def test_control_md_defaults(
    words: str, command: str, args: dict[str, Any], expected: dict[str, Any]
) -> None:
    """Each default docs/control.md's command table states is the one the parser fills in
    (the page's words are checked too, so that a changed page fails here)."""
    from tests.paths import ROOT

    assert words in (ROOT / "docs" / "control.md").read_text()
    _name, params = parse_command(command, args)
    assert {key: params.get(key) for key in expected} == expected


#: docs/control.md's bounds: ``(the words of the page, command, other arguments, argument,
#: lowest, highest)`` (``None``: the page states no lower bound).
CONTROL_BOUNDS = [
    ("`volume` (0..100) **or** `delta` (-100..100)", "volume", {}, "volume", 0, 100),
    ("`volume` (0..100) **or** `delta` (-100..100)", "volume", {}, "delta", -100, 100),
    ("`bass` / `treble` (-10..10)", "bass", {}, "bass", -10, 10),
    ("`bass` / `treble` (-10..10)", "treble", {}, "treble", -10, 10),
    (
        "`volume`? (0..100), `timeout`? (seconds, ≤ 600)",
        "announce",
        {"uri": "http://nas/a.mp3"},
        "volume",
        0,
        100,
    ),
    (
        "`volume`? (0..100), `timeout`? (seconds, ≤ 600)",
        "announce",
        {"uri": "http://nas/a.mp3"},
        "timeout",
        None,
        600,
    ),
    ("`gain`? (-15..15)", "sub", {}, "gain", -15, 15),
    ("`tv_level`? (-15..15)", "surround", {}, "tv_level", -15, 15),
    ("`music_level`? (-15..15)", "surround", {}, "music_level", -15, 15),
    ("`list` (`start`?, `count`? ≤ 1000)", "queue", {"action": "list"}, "count", None, 1000),
]


@pytest.mark.parametrize(("words", "command", "base", "name", "low", "high"), CONTROL_BOUNDS)
def test_control_md_bounds(
    words: str, command: str, base: dict[str, Any], name: str, low: int | None, high: int
) -> None:
    """Each bound docs/control.md states is the parser's: the bound is accepted, one past it
    is 400 bad_argument, the message starting with the argument's name."""
    from tests.paths import ROOT

    assert words in (ROOT / "docs" / "control.md").read_text()
    for value in (high,) if low is None else (low, high):
        parse_command(command, {**base, name: value})
    for value in (high + 1,) if low is None else (low - 1, high + 1):
        error = rejected(command, {**base, name: value})
        assert (error.code, error.status) == ("bad_argument", 400)
        assert error.message.startswith(f"{name}: "), error.message
