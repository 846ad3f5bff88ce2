# -*- test-case-name: tests.sim.test_modes -*-
"""Household and firmware modes of the simulator, and what a speaker answers under them.

Each mode is something real households do that a kind simulator would hide (sources in
``docs/simulator.md``, "Household and firmware modes"):

- **large household**: ``GetZoneGroupState`` answers UPnP 501 once a household has more than
  ``large_household_players`` players (SoCo #518: fine with 22, 501 beyond; Home Assistant
  #70194 with 23, #89128 with 27; sonos2mqtt #134 and homebridge-zp #131 with about 30), while
  ZoneGroupTopology events still carry the whole document;
- **UPnP off** (the Sonos app's Account > Privacy & Security > UPnP setting, off by default on
  systems set up with firmware from late 2025): the device description (bonob #224; "403
  when trying to read device_description.xml will happen if you disable UPnP",
  audiobookshelf-sonos #10), SOAP control (Home Assistant #151258 and PR #159330: "403 Client
  Error: Forbidden for url: http://<ip>:1400/DeviceProperties/Control") and GENA (no report;
  taken to follow SOAP) answer ``403 Forbidden`` with Sonos's own error page. SCPDs stay
  served by default: SoCo only sends that SOAP request after reading the DeviceProperties SCPD,
  so the reported error implies it was read. Which kinds of request answer 403 is
  configurable (``upnp_off_forbidden``), and so is SSDP (``upnp_off_ssdp``: still ``answer``,
  the default, or stay ``silent``);
- **HTTPS-only control** (per speaker; reported for some S2 models): SOAP over HTTP on 1400
  answers 403, SOAP over TLS on 1443 works;
- **slow regroup** (``regroup_delay``, off by default): a speaker answers ``SetAVTransportURI
  x-rincon:...`` and ``BecomeCoordinatorOfStandaloneGroup`` at once, and its household shows
  the new groups (ZoneGroupTopology events, ``GetZoneGroupState``) only later; clients wait
  for the topology for that reason (Home Assistant's ``join_multi`` up to 5 s:
  ``landscape.md`` row 33; ``sonos-protocol.md`` §5). How long real households take is not
  on record: the delay is a choice, 0 by default;
- **topology settle** (``topology_settle``, off by default): after a join, unjoin or bond
  change, the household's players learn the new ZoneGroupState one after another over that many
  seconds, each eventing (and answering ``GetZoneGroupState`` with) its own view meanwhile
  (docs/simulator.md, "Topology settle", for the sources and what is a choice).

Pure decisions and values; ``sonosd.sim.site`` applies them to requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import attrs

#: The longest topology settle (seconds) a household may be given.
MAX_TOPOLOGY_SETTLE: Final = 60.0
#: Players above which GetZoneGroupState answers 501 (SoCo issue #518: 22 worked).
DEFAULT_LARGE_HOUSEHOLD_PLAYERS: Final = 22
#: What SSDP does while UPnP is off: still ``answer`` searches, or stay ``silent``.
SSDP_WHEN_UPNP_OFF: Final = ("answer", "silent")
#: The longest regroup delay (seconds) a household may be given.
MAX_REGROUP_DELAY: Final = 60.0
#: The port real speakers serve HTTPS on (``SSLPort`` in the device description and ZGS).
DEFAULT_TLS_PORT: Final = 1443

#: Sonos's own 403 page (as bonob issue #239 quotes a speaker's answer on port 1400).
FORBIDDEN_BODY: Final = (
    b"<HTML><HEAD><TITLE>Error 403</TITLE></HEAD><BODY><H1>Error 403</H1><P>Forbidden</P>"
    b"</BODY></HTML>"
)

#: Kinds of request a speaker's HTTP port receives.
DESCRIPTION, SCPD, CONTROL, EVENT, OTHER = "description", "scpd", "control", "event", "other"
#: The kinds of UPnP request that may be refused while UPnP is off.
UPNP_KINDS: Final = (DESCRIPTION, SCPD, CONTROL, EVENT)
#: The kinds refused by default (see the module docstring for why SCPDs are not).
DEFAULT_UPNP_OFF_FORBIDDEN: Final = (DESCRIPTION, CONTROL, EVENT)


def _kinds(kinds: Iterable[str]) -> tuple[str, ...]:
    return tuple(kinds)


@attrs.frozen
class HouseholdModes:
    """The household-wide modes (the admin API switches them: ``Household.set_modes``)."""

    large_household: bool = True
    """Whether GetZoneGroupState fails with 501 above ``large_household_players`` (as in real
    households)."""
    large_household_players: int = DEFAULT_LARGE_HOUSEHOLD_PLAYERS
    """The most players for which GetZoneGroupState still answers."""
    upnp: bool = True
    """The Sonos app's UPnP setting; off: UPnP requests answer 403."""
    upnp_off_ssdp: str = "answer"
    """What SSDP does while UPnP is off: ``answer`` or ``silent``."""
    upnp_off_forbidden: tuple[str, ...] = attrs.field(
        default=DEFAULT_UPNP_OFF_FORBIDDEN, converter=_kinds
    )
    """The kinds of request (:data:`UPNP_KINDS`) that answer 403 while UPnP is off."""
    regroup_delay: float = 0.0
    """Seconds a household takes to regroup after a speaker accepted a join or unjoin: the
    answer comes at once, the ZoneGroupState (events and GetZoneGroupState) shows the new
    groups only then (0: at once)."""
    topology_settle: float = 0.0
    """Seconds over which the players learn a new ZoneGroupState one after another (in
    household order, the first after ``topology_settle / players``, the last after
    ``topology_settle``); each shows its own view meanwhile (0: all at once)."""

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
    if not 0 <= modes.regroup_delay <= MAX_REGROUP_DELAY:
        raise ValueError(
            f"regroup_delay: expected 0 to {MAX_REGROUP_DELAY:g} seconds, "
            f"got {modes.regroup_delay!r}"
        )
    if not 0 <= modes.topology_settle <= MAX_TOPOLOGY_SETTLE:
        raise ValueError(
            f"topology_settle: expected 0 to {MAX_TOPOLOGY_SETTLE:g} seconds, "
            f"got {modes.topology_settle!r}"
        )
    unknown = [kind for kind in modes.upnp_off_forbidden if kind not in UPNP_KINDS]
    if unknown:
        raise ValueError(
            f"upnp_off_forbidden: expected kinds among {', '.join(UPNP_KINDS)}, got {unknown[0]!r}"
        )
    if modes.upnp_off_ssdp not in SSDP_WHEN_UPNP_OFF:
        raise ValueError(
            f"upnp_off_ssdp: expected one of {', '.join(SSDP_WHEN_UPNP_OFF)}, "
            f"got {modes.upnp_off_ssdp!r}"
        )


def refusal(kind: str, modes: HouseholdModes, *, https_only: bool, secure: bool) -> int | None:
    """The status a speaker answers a request of ``kind`` with instead of serving it, if any.

    :param kind: :data:`DESCRIPTION`, :data:`SCPD`, :data:`CONTROL`, :data:`EVENT` or
        :data:`OTHER` (album art, icons, status pages).
    :param modes: the household's modes (its UPnP setting and what is forbidden without it).
    :param https_only: whether the speaker wants SOAP over TLS.
    :param secure: whether the request came over TLS (port 1443).
    """
    if not modes.upnp and kind in modes.upnp_off_forbidden:
        return 403
    if https_only and kind == CONTROL and not secure:
        return 403
    return None
