"""Tests for sonosd.control.dispatch: argument parsing and error mapping."""

from __future__ import annotations

import pytest
from twisted.python.failure import Failure

from sonosd.control.dispatch import failure_fields, parse_args


class ControlError(Exception):
    """Shaped like sonosd.control.controller.ControlError."""

    def __init__(self) -> None:
        super().__init__("speaker said no")
        self.code = "speaker_error"
        self.status = 502
        self.message = "speaker said no"
        self.upnp_error = 402


def test_parse_args() -> None:
    """An empty body is no arguments; a JSON object is the arguments; anything else fails."""
    assert parse_args(b"") == {}
    assert parse_args(b' {"volume": 3} ') == {"volume": 3}
    with pytest.raises(ValueError):
        parse_args(b"[1, 2]")
    with pytest.raises(ValueError):
        parse_args(b"{")


def test_control_error_is_reported_as_is() -> None:
    """A ControlError's status, code, message and UPnP error reach the client."""
    status, error = failure_fields(Failure(ControlError()))
    assert status == 502
    assert error == {"code": "speaker_error", "message": "speaker said no", "upnp_error": 402}


def test_other_errors_are_internal_and_opaque() -> None:
    """An unexpected exception is a 500 that says nothing about its cause."""
    status, error = failure_fields(Failure(RuntimeError("secret detail")))
    assert status == 500
    assert error["code"] == "internal"
    assert "secret" not in error["message"]
