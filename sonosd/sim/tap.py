# -*- test-case-name: tests.sim.test_tap -*-
"""``twistd -n sonos-sim``: a simulated Sonos household as a standalone daemon.

Options are validated in ``postOptions`` (one line per mistake, no traceback); ``makeService``
is the only place that imports the global reactor.
"""

from __future__ import annotations

import sys
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from sonosd.config import (
    LOCAL_ADMIN,
    SimulateConfig,
    endpoint_is_local,
    endpoint_problem,
    layout_problem,
)
from sonosd.sim.addresses import loopback_range
from sonosd.sim.gena import DEFAULT_MODERATION
from sonosd.sim.models import MODELS
from sonosd.sim.modes import (
    DEFAULT_LARGE_HOUSEHOLD_PLAYERS,
    DEFAULT_TLS_PORT,
    DEFAULT_UPNP_OFF_FORBIDDEN,
    SSDP_WHEN_UPNP_OFF,
    UPNP_KINDS,
)
from sonosd.sim.neighbourhood import split
from sonosd.sim.propertyset import check_chars


class Options(usage.Options):
    """Command-line options of ``twistd sonos-sim``."""

    synopsis = "[options]"
    longdesc = (
        "Run a simulated Sonos household: each speaker listens on its own address and port "
        "(device description, SCPDs, SOAP control, GENA eventing), so unmodified SoCo and "
        "sonosd can drive it. Example: twistd -n sonos-sim --speakers 3 "
        "--admin tcp:8400:interface=127.0.0.1"
    )

    optParameters = [
        ["speakers", "n", "3", "Number of speakers (1-1000)."],
        [
            "base-address",
            "b",
            "127.0.0.2",
            "Address of the first speaker; the others take the following addresses.",
        ],
        ["port", "p", "1400", "Port every speaker listens on (real speakers: 1400)."],
        [
            "rooms",
            "r",
            "",
            "Comma-separated room names, in speaker order (default: Living Room, Kitchen...).",
        ],
        ["models", "m", "", f"Comma-separated model numbers per speaker ({', '.join(MODELS)})."],
        ["activity", "a", "0", "Autonomous changes per second across the household (0: none)."],
        [
            "admin",
            None,
            None,
            "Endpoint of the JSON admin API, e.g. tcp:8400:interface=127.0.0.1 (default: none).",
        ],
        ["seed", "s", None, "Seed for identities and activity (default: from the base address)."],
        [
            "ssdp-port",
            None,
            None,
            "Answer SSDP searches on this port of 239.255.255.250, on loopback only "
            "(1900 for soco.discover(interface_addr='127.0.0.1'); default: no SSDP).",
        ],
        [
            "households",
            None,
            "1",
            "Split the speakers into this many households (own household ID and topology).",
        ],
        [
            "moderation",
            None,
            str(DEFAULT_MODERATION),
            "LastChange moderation window in seconds (changes within it make one event; "
            "0: every change at once).",
        ],
        [
            "large-household-players",
            None,
            str(DEFAULT_LARGE_HOUSEHOLD_PLAYERS),
            "The most players for which GetZoneGroupState answers (UPnP 501 above, as real "
            "households do; see --no-large-household).",
        ],
        [
            "upnp-off-ssdp",
            None,
            "answer",
            f"What SSDP does while UPnP is off: {' or '.join(SSDP_WHEN_UPNP_OFF)}.",
        ],
        [
            "upnp-off-forbidden",
            None,
            ",".join(DEFAULT_UPNP_OFF_FORBIDDEN),
            f"While UPnP is off, these kinds of request answer 403 ({', '.join(UPNP_KINDS)}).",
        ],
        [
            "https-only",
            None,
            "",
            "Comma-separated speaker indexes (or 'all') that answer 403 to SOAP over HTTP and "
            "take it over TLS on --tls-port.",
        ],
        ["tls-port", None, str(DEFAULT_TLS_PORT), "HTTPS port of HTTPS-only speakers."],
    ]
    optFlags = [
        ["stereo-pair", None, "Make the first two speakers a stereo pair (the second invisible)."],
        [
            "home-theatre",
            None,
            "Make the last four speakers a soundbar with a sub and two surrounds.",
        ],
        [
            "large-household",
            None,
            "GetZoneGroupState answers UPnP 501 above --large-household-players players "
            "(the default).",
        ],
        [
            "no-large-household",
            None,
            "GetZoneGroupState answers however many players the household has (kinder than "
            "real households).",
        ],
        [
            "upnp-off",
            None,
            "Start with the Sonos app's UPnP setting off: UPnP requests answer 403.",
        ],
    ]

    def postOptions(self) -> None:
        """Validate the options; a mistake is one line on stderr and exit status 1 (twistd
        would print its whole usage text around it)."""
        try:
            self._validate()
        except usage.UsageError as error:
            sys.stderr.write(f"sonos-sim: {error}\n")
            raise SystemExit(1) from None

    def _validate(self) -> None:
        """Build ``self.config`` (a ``SimulateConfig``), ``self.seed``, ``self.models``."""
        speakers = _integer("--speakers", self["speakers"], 1, 1000)
        port = _integer("--port", self["port"], 1, 65535)
        try:
            base = loopback_range(self["base-address"], speakers)
        except ValueError as error:
            raise usage.UsageError(f"--base-address: {error}") from None
        try:
            activity = float(self["activity"])
        except ValueError:
            activity = -1.0
        if not 0 <= activity <= 1000:
            raise usage.UsageError(
                f"--activity: expected changes per second from 0 to 1000, got {self['activity']!r}"
            )
        rooms = tuple(r.strip() for r in self["rooms"].split(",") if r.strip())
        for room in rooms:
            try:
                check_chars(room)
            except ValueError as error:
                raise usage.UsageError(f"--rooms: {room!r}: {error}") from None
        # Model numbers in any case, spelled back as MODELS has them (``sub`` is ``Sub``).
        by_case = {number.upper(): number for number in MODELS}
        given = [m.strip() for m in self["models"].split(",") if m.strip()]
        unknown = [m for m in given if m.upper() not in by_case]
        if unknown:
            raise usage.UsageError(
                f"--models: unknown model {unknown[0]!r}; known: {', '.join(MODELS)}"
            )
        models = tuple(by_case[m.upper()] for m in given)
        households = _integer("--households", self["households"], 1, speakers)
        # The pair and the home theatre belong to the first household, the largest one.
        first = split(speakers, households)[0]
        lacking = layout_problem(
            first, households > 1, bool(self["stereo-pair"]), bool(self["home-theatre"])
        )
        if lacking is not None:
            which, words = lacking
            raise usage.UsageError(f"--{which.replace('_', '-')}: {words}")
        moderation = _number("--moderation", self["moderation"], 0, 10)
        players = _integer("--large-household-players", self["large-household-players"], 1, 1000)
        if self["large-household"] and self["no-large-household"]:
            raise usage.UsageError("--large-household and --no-large-household: choose one")
        if self["upnp-off-ssdp"] not in SSDP_WHEN_UPNP_OFF:
            raise usage.UsageError(
                f"--upnp-off-ssdp: expected {' or '.join(SSDP_WHEN_UPNP_OFF)}, "
                f"got {self['upnp-off-ssdp']!r}"
            )
        forbidden = tuple(k.strip() for k in self["upnp-off-forbidden"].split(",") if k.strip())
        unknown_kinds = [kind for kind in forbidden if kind not in UPNP_KINDS]
        if unknown_kinds:
            raise usage.UsageError(
                f"--upnp-off-forbidden: expected kinds among {', '.join(UPNP_KINDS)}, "
                f"got {unknown_kinds[0]!r}"
            )
        admin = self["admin"]
        if admin is not None:
            problem = endpoint_problem(admin)
            if problem is not None:
                raise usage.UsageError(
                    f"--admin: expected a Twisted server endpoint string such as "
                    f"tcp:8400:interface=127.0.0.1 ({problem}), got {admin!r}"
                )
            if not endpoint_is_local(admin):
                raise usage.UsageError(f"--admin: {LOCAL_ADMIN}, got {admin!r}")
        https_only = _indexes("--https-only", self["https-only"], speakers)
        tls_port = _integer("--tls-port", self["tls-port"], 1, 65535)
        self.seed = None if self["seed"] is None else _integer("--seed", self["seed"], 0, 2**32)
        self.models = models
        self.ssdp_port = (
            None
            if self["ssdp-port"] is None
            else _integer("--ssdp-port", self["ssdp-port"], 1, 65535)
        )
        self.config = SimulateConfig(
            speakers=speakers,
            base_address=str(base),
            port=port,
            rooms=rooms,
            activity=activity,
            admin=self["admin"],
            stereo_pair=bool(self["stereo-pair"]),
            models=models,
            households=households,
            home_theatre=bool(self["home-theatre"]),
            moderation=moderation,
            large_household=not self["no-large-household"],
            large_household_players=players,
            upnp=not self["upnp-off"],
            upnp_off_ssdp=self["upnp-off-ssdp"],
            upnp_off_forbidden=forbidden,
            https_only=https_only,
            tls_port=tls_port,
        )


def _integer(option: str, text: Any, low: int, high: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = low - 1
    if not low <= value <= high:
        raise usage.UsageError(f"{option}: expected an integer from {low} to {high}, got {text!r}")
    return value


def _number(option: str, text: Any, low: float, high: float) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = low - 1
    if not low <= value <= high:
        raise usage.UsageError(f"{option}: expected a number from {low} to {high}, got {text!r}")
    return value


def _indexes(option: str, text: str, speakers: int) -> tuple[int, ...]:
    """Speaker indexes from ``0,2`` or ``all``."""
    if text.strip().lower() == "all":
        return tuple(range(speakers))
    indexes = []
    for part in (p.strip() for p in text.split(",")):
        if part:
            indexes.append(_integer(option, part, 0, speakers - 1))
    return tuple(sorted(set(indexes)))


def makeService(options: Options) -> IService:
    """The household service for ``twistd``."""
    from twisted.internet import reactor

    from sonosd.sim.service import HouseholdService

    return HouseholdService(
        reactor,
        options.config,
        seed=options.seed,
        models=options.models,
        ssdp_port=options.ssdp_port,
    )
