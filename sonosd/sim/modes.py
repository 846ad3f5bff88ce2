# -*- test-case-name: tests.sim.test_modes -*-
"""Household and firmware modes of the simulator, and what a speaker answers under them.

Each mode is something real households do that a kind simulator would hide (sources in
``docs/simulator.md``, "Household and firmware modes"):

- **large household**: ``GetZoneGroupState`` answers UPnP 501 once a household has more than
  ``large_household_players`` players (SoCo #518: fine with 22, 501 beyond; Home Assistant
  #70194 with 23, #89128 with 27; sonos2mqtt #134 and homebridge-zp #131 with about 30), while
  ZoneGroupTopology events still carry the whole document;
- **UPnP off** (the Sonos app's Account > Privacy & Security > UPnP setting, off by default on
  systems set up with firmware from late 2025): HTTP requests for the device description,
  the SCPDs, SOAP control and GENA on port 1400 (and 1443) answer ``403 Forbidden`` with
  Sonos's own error page; SSDP either still answers (default) or is silent;
- **HTTPS-only control** (per speaker; reported for some S2 models): SOAP over HTTP on 1400
  answers 403, SOAP over TLS on 1443 works.

Pure decisions and values; ``sonosd.sim.site`` applies them to requests.
"""

from __future__ import annotations

from typing import Final

import attrs

#: Players above which GetZoneGroupState answers 501 (SoCo issue #518: 22 worked).
DEFAULT_LARGE_HOUSEHOLD_PLAYERS: Final = 22
#: What SSDP does while UPnP is off: still ``answer`` searches, or stay ``silent``.
SSDP_WHEN_UPNP_OFF: Final = ("answer", "silent")
#: The port real speakers serve HTTPS on (``SSLPort`` in the device description and ZGS).
DEFAULT_TLS_PORT: Final = 1443

#: Sonos's own 403 page (as bonob issue #239 quotes a speaker's answer on port 1400).
FORBIDDEN_BODY: Final = (
    b"<HTML><HEAD><TITLE>Error 403</TITLE></HEAD><BODY><H1>Error 403</H1><P>Forbidden</P>"
    b"</BODY></HTML>"
)

#: Kinds of request a speaker's HTTP port receives.
DESCRIPTION, SCPD, CONTROL, EVENT, OTHER = "description", "scpd", "control", "event", "other"
_UPNP_KINDS: Final = frozenset({DESCRIPTION, SCPD, CONTROL, EVENT})


@attrs.frozen
class HouseholdModes:
    """The household-wide modes (the admin API switches them: ``Household.set_modes``)."""

    large_household: bool = False
    """Whether GetZoneGroupState fails with 501 above ``large_household_players``."""
    large_household_players: int = DEFAULT_LARGE_HOUSEHOLD_PLAYERS
    """The most players for which GetZoneGroupState still answers."""
    upnp: bool = True
    """The Sonos app's UPnP setting; off: UPnP requests answer 403."""
    upnp_off_ssdp: str = "answer"
    """What SSDP does while UPnP is off: ``answer`` or ``silent``."""

    def __attrs_post_init__(self) -> None:
        check_modes(self)

    def zone_group_state_refused(self, players: int) -> bool:
        """Whether a household of ``players`` answers GetZoneGroupState with UPnP 501."""
        return self.large_household and players > self.large_household_players

    def ssdp_silent(self) -> bool:
        """Whether the speakers stay silent on SSDP."""
        return not self.upnp and self.upnp_off_ssdp == "silent"


def check_modes(modes: HouseholdModes) -> None:
    """Raise ``ValueError`` naming the first mode value that is out of range."""
    if not 1 <= modes.large_household_players <= 1000:
        raise ValueError(
            f"large_household_players: expected 1 to 1000, got {modes.large_household_players!r}"
        )
    if modes.upnp_off_ssdp not in SSDP_WHEN_UPNP_OFF:
        raise ValueError(
            f"upnp_off_ssdp: expected one of {', '.join(SSDP_WHEN_UPNP_OFF)}, "
            f"got {modes.upnp_off_ssdp!r}"
        )


def refusal(kind: str, *, upnp: bool, https_only: bool, secure: bool) -> int | None:
    """The status a speaker answers a request of ``kind`` with instead of serving it, if any.

    :param kind: :data:`DESCRIPTION`, :data:`SCPD`, :data:`CONTROL`, :data:`EVENT` or
        :data:`OTHER` (album art, icons, status pages).
    :param upnp: the household's UPnP setting.
    :param https_only: whether the speaker wants SOAP over TLS.
    :param secure: whether the request came over TLS (port 1443).
    """
    if not upnp and kind in _UPNP_KINDS:
        return 403
    if https_only and kind == CONTROL and not secure:
        return 403
    return None
