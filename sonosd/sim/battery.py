# -*- test-case-name: tests.sim.test_battery -*-
"""The battery of a portable speaker (Move, Roam) and how the speaker reports it.

Two places carry it, as on real speakers:

- DeviceProperties ``MoreInfo``: ``BattChg:NOT_CHARGING,RawBattPct:87,BattPct:87,BattTmp:25``
  (the shape of Home Assistant's test fixture of a real event; ``BattChg`` is ``CHARGING`` or
  ``NOT_CHARGING``), evented when it changes;
- ``GET /status/batterystatus``: a ``ZPSupportInfo`` document with ``Health``, ``Level``,
  ``Temperature`` and ``PowerSource`` (SoCo's ``get_battery_info()``; the document as SoCo's
  tests and a Roam capture show it). ``PowerSource`` is ``BATTERY``, ``SONOS_CHARGING_RING``
  (wireless charging, Qi included) or ``USB_POWER`` (Home Assistant's documentation); charging
  means any source but ``BATTERY``. A speaker without a battery answers the same page with an
  empty ``ZPSupportInfo`` (SoCo then raises ``NotSupportedException``).

Pure values and formatting.
"""

from __future__ import annotations

from typing import Final

import attrs

POWER_SOURCES: Final = ("BATTERY", "SONOS_CHARGING_RING", "USB_POWER")

_HEAD: Final = '<?xml version="1.0" ?>\n<?xml-stylesheet type="text/xsl" href="/xml/review.xsl"?>'
#: What a speaker without a battery answers on ``/status/batterystatus``.
NO_BATTERY_STATUS: Final = f"{_HEAD}<ZPSupportInfo></ZPSupportInfo>".encode()


@attrs.frozen
class Battery:
    """A battery's state: level in percent, temperature in °C, power source."""

    level: int = 100
    temperature: int = 25
    power_source: str = "BATTERY"

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.level <= 100:
            raise ValueError(f"battery level: expected 0 to 100, got {self.level!r}")
        if self.power_source not in POWER_SOURCES:
            raise ValueError(
                f"power source: expected one of {', '.join(POWER_SOURCES)}, "
                f"got {self.power_source!r}"
            )

    @property
    def charging(self) -> bool:
        """Whether an external source powers the speaker."""
        return self.power_source != "BATTERY"

    def more_info(self) -> str:
        """The DeviceProperties ``MoreInfo`` value."""
        state = "CHARGING" if self.charging else "NOT_CHARGING"
        return (
            f"BattChg:{state},RawBattPct:{self.level},BattPct:{self.level},"
            f"BattTmp:{self.temperature}"
        )

    def status_page(self) -> bytes:
        """The ``/status/batterystatus`` document."""
        return (
            f"{_HEAD}<ZPSupportInfo><LocalBatteryStatus>\n"
            '<Data name="Health">GREEN</Data>\n'
            f'<Data name="Level">{self.level}</Data>\n'
            '<Data name="Temperature">NORMAL</Data>\n'
            f'<Data name="PowerSource">{self.power_source}</Data>\n'
            "</LocalBatteryStatus><!-- SDT: 0 ms --></ZPSupportInfo>"
        ).encode()
