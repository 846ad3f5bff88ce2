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
    import yaml

    from tests.paths import ROOT

    spec = yaml.safe_load((ROOT / "docs" / "openapi.yaml").read_text())
    assert set(spec["components"]["schemas"]["CommandName"]["enum"]) == set(COMMANDS)
    control = (ROOT / "docs" / "control.md").read_text()
    for command in COMMANDS:
        assert f"`{command}`" in control, command
