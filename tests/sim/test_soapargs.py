"""Tests for sim.soapargs: action arguments read leniently, refused with UPnP 402."""

from __future__ import annotations

import pytest

from sonosd.sim.soap import UPnPError
from sonosd.sim.soapargs import boolean, flag, integer, required


def test_required_and_missing() -> None:
    """A present argument is returned as sent; a missing one is 402."""
    assert required({"A": " x "}, "A") == " x "
    with pytest.raises(UPnPError) as raised:
        required({}, "A")
    assert raised.value.code == 402


def test_integer_defaults_and_refuses_words() -> None:
    """Integers are parsed with surrounding blanks, defaulted when missing, 402 otherwise."""
    assert integer({"N": " 7 "}, "N") == 7
    assert integer({}, "N", 3) == 3
    for args in ({"N": "seven"}, {}):
        with pytest.raises(UPnPError) as raised:
            integer(args, "N")
        assert raised.value.code == 402


def test_boolean_forms() -> None:
    """1/0, true/false and yes/no are booleans; anything else is 402."""
    assert boolean({"B": "1"}, "B") and boolean({"B": "True"}, "B")
    assert not boolean({"B": "0"}, "B") and not boolean({"B": "no"}, "B")
    with pytest.raises(UPnPError):
        boolean({"B": "maybe"}, "B")
    assert (flag(True), flag(False)) == ("1", "0")
