"""Tests for a portable's battery and how it is reported (sonosd.sim.battery)."""

from __future__ import annotations

import pytest
import xmltodict

from sonosd.sim.battery import NO_BATTERY_STATUS, Battery


def test_more_info_has_home_assistants_fields() -> None:
    """MoreInfo splits into the key:value pairs Home Assistant reads (BattChg, BattPct)."""
    pairs = dict(item.split(":") for item in Battery(level=87).more_info().split(","))
    assert pairs == {
        "BattChg": "NOT_CHARGING",
        "RawBattPct": "87",
        "BattPct": "87",
        "BattTmp": "25",
    }
    charging = dict(
        item.split(":") for item in Battery(power_source="USB_POWER").more_info().split(",")
    )
    assert charging["BattChg"] == "CHARGING"


def test_status_page_parses_like_socos() -> None:
    """The status page has LocalBatteryStatus with Health, Level, Temperature, PowerSource."""
    info = xmltodict.parse(Battery(level=42, power_source="SONOS_CHARGING_RING").status_page())
    data = {d["@name"]: d["#text"] for d in info["ZPSupportInfo"]["LocalBatteryStatus"]["Data"]}
    assert data == {
        "Health": "GREEN",
        "Level": "42",
        "Temperature": "NORMAL",
        "PowerSource": "SONOS_CHARGING_RING",
    }


def test_no_battery_page_is_empty() -> None:
    """A speaker without a battery answers an empty ZPSupportInfo."""
    assert xmltodict.parse(NO_BATTERY_STATUS) == {"ZPSupportInfo": None}


def test_bad_values_are_refused() -> None:
    """A level outside 0..100 or an unknown power source raises ValueError."""
    with pytest.raises(ValueError, match="level"):
        Battery(level=101)
    with pytest.raises(ValueError, match="power source"):
        Battery(power_source="SOLAR")
    assert not Battery().charging
