# -*- test-case-name: tests.sim.test_scpd -*-
"""Sonos product models the simulator can pretend to be, and speaker identities.

A model decides what the device description says (names, versions), which optional services
the speaker offers (line-in, home theatre), whether SoCo treats it as a soundbar (night
mode, dialog mode: SoCo looks at the end of the model name) and whether it runs on a battery
(Move, Roam: battery state, sleep, Bluetooth). Model numbers are the ones real devices report
(``S27`` is the Roam, ``S17`` the Move, ``S19`` the Arc, ``Sub`` the Sub: svrooij/sonos-api-docs
scrapes, Home Assistant and community scripts). Identities (MAC, UID, serial number, household
ID) are drawn from a seeded ``random.Random`` so that a household started twice with the same
seed has the same speakers.
"""

from __future__ import annotations

import random
import string

import attrs

#: Real Sonos MAC prefixes (OUIs).
_OUIS = ("000E58", "5CAAFD", "48A6B8", "347E5C", "B8E937", "949F3E", "542A1B", "7828CA")


@attrs.frozen
class Model:
    """One Sonos product as its device description and SoCo see it."""

    number: str
    name: str
    display_name: str
    software_version: str = "79.1-53290"
    display_version: str = "16.4"
    hardware_version: str = "1.26.1.7-2.2"
    soundbar: bool = False
    line_in: bool = False
    home_theater: bool = False
    speaker_size: int = 5
    portable: bool = False
    subwoofer: bool = False

    @property
    def server_header(self) -> str:
        """The ``SERVER`` header real firmware sends: ``Linux UPnP/1.0 Sonos/<v> (ZPS<n>)``."""
        digits = self.number[1:]
        code = digits if digits.isdigit() else self.number
        return f"Linux UPnP/1.0 Sonos/{self.software_version} (ZPS{code})"


MODELS: dict[str, Model] = {
    "S18": Model("S18", "Sonos One", "One"),
    "S14": Model("S14", "Sonos Beam", "Beam", soundbar=True, home_theater=True, speaker_size=4),
    "S9": Model("S9", "Sonos Playbar", "Playbar", soundbar=True, home_theater=True, speaker_size=4),
    "S16": Model(
        "S16", "Sonos Amp", "Amp", soundbar=True, line_in=True, home_theater=True, speaker_size=0
    ),
    "S6": Model("S6", "Sonos Play:5", "Play:5", line_in=True, speaker_size=7),
    "S19": Model("S19", "Sonos Arc", "Arc", soundbar=True, home_theater=True, speaker_size=4),
    "Sub": Model("Sub", "Sonos Sub", "Sub", subwoofer=True, speaker_size=1),
    "S17": Model("S17", "Sonos Move", "Move", line_in=True, portable=True, speaker_size=7),
    "S27": Model("S27", "Sonos Roam", "Roam", portable=True, speaker_size=3),
}
#: Models that run on a battery.
PORTABLE_MODELS = tuple(key for key, model in MODELS.items() if model.portable)
DEFAULT_MODEL = "S18"


@attrs.frozen
class Identity:
    """The fixed identity of one speaker: MAC address, UID and serial number."""

    mac: str
    uid: str
    serial: str

    @classmethod
    def draw(cls, rng: random.Random) -> Identity:
        """A new identity: ``RINCON_<MAC hex>01400``, serial ``<MAC with dashes>:<n>``."""
        hex_mac = rng.choice(_OUIS) + f"{rng.getrandbits(24):06X}"
        pairs = [hex_mac[i : i + 2] for i in range(0, 12, 2)]
        return cls(
            mac=":".join(pairs),
            uid=f"RINCON_{hex_mac}01400",
            serial="-".join(pairs) + f":{rng.randint(1, 9)}",
        )


def household_id(rng: random.Random) -> str:
    """A household ID as real households have: ``Sonos_`` and 26 letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return "Sonos_" + "".join(rng.choice(alphabet) for _ in range(26))
