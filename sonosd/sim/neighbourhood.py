# -*- test-case-name: tests.sim.test_neighbourhood -*-
"""Several simulated households on one loopback range, as on a network with two Sonos systems.

``Neighbourhood.build`` splits the configured speakers over ``households`` households on
consecutive addresses (the first ones get one more when the count does not divide): each has
its own household ID, identities (UIDs never repeat across households), topology and alarms,
and each speaker's ZoneGroupState lists only its own household's members. A stereo pair (the
first two speakers) and a home theatre (the last four) belong to the first household. With one
household (the default) everything is as before: ``neighbourhood.households[0]`` is the
household.

The admin API and the activity generator see every speaker through ``speakers`` and
``speaker(key)`` (a global index, a UID, an address or a room name).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sonosd.config import SimulateConfig
from sonosd.sim.addresses import loopback_range
from sonosd.sim.household import Household, Speaker
from sonosd.sim.modes import HouseholdModes


def split(speakers: int, households: int) -> list[int]:
    """How many speakers each of ``households`` households gets (first ones get the extra)."""
    if not 1 <= households <= speakers:
        raise ValueError(f"households: expected 1 to {speakers} (one speaker each at least)")
    size, extra = divmod(speakers, households)
    return [size + (1 if n < extra else 0) for n in range(households)]


def household_seed(seed: int, number: int) -> int:
    """The seed of household ``number`` (the first keeps the service's own seed)."""
    return seed if number == 0 else (seed + 1_000_003 * number) % 2**32


class Neighbourhood:
    """The simulated households that share one loopback range; see the module docstring."""

    def __init__(self, households: Sequence[Household]) -> None:
        if not households:
            raise ValueError("a neighbourhood needs a household")
        self.households = list(households)

    @classmethod
    def build(
        cls,
        clock: Any,
        config: SimulateConfig,
        *,
        seed: int,
        models: Sequence[str] = (),
        transition_delay: float = 0.1,
    ) -> Neighbourhood:
        """The households ``config`` describes (``models`` override ``config.models``)."""
        models = tuple(models) or config.models
        base = loopback_range(config.base_address, config.speakers)
        https_only = set(config.https_only)
        taken: set[str] = set()
        households = []
        offset = 0
        for number, size in enumerate(split(config.speakers, config.households)):
            first = number == 0
            households.append(
                Household(
                    clock,
                    speakers=size,
                    base_address=str(base + offset),
                    port=config.port,
                    rooms=config.rooms[offset : offset + size],
                    models=models[offset : offset + size],
                    stereo_pair=config.stereo_pair and first,
                    home_theatre=config.home_theatre and first,
                    seed=household_seed(seed, number),
                    transition_delay=transition_delay,
                    modes=HouseholdModes(
                        large_household=config.large_household,
                        large_household_players=config.large_household_players,
                        upnp=config.upnp,
                        upnp_off_ssdp=config.upnp_off_ssdp,
                        upnp_off_forbidden=config.upnp_off_forbidden,
                    ),
                    https_only=[i - offset for i in https_only if offset <= i < offset + size],
                    first_index=offset,
                    taken_uids=taken,
                )
            )
            offset += size
        return cls(households)

    @property
    def household(self) -> Household:
        """The first household."""
        return self.households[0]

    @property
    def speakers(self) -> list[Speaker]:
        """Every speaker of every household, in global index order."""
        return [speaker for household in self.households for speaker in household.speakers]

    def speaker(self, key: str | int) -> Speaker:
        """A speaker by global index, UID, address or room name (a visible one first);
        ``KeyError``."""
        speakers = self.speakers
        if isinstance(key, int) or key.isdigit():
            index = int(key)
            if 0 <= index < len(speakers):
                return speakers[index]
            raise KeyError(key)
        for household in self.households:
            found = household.by_uid.get(key) or household.by_address.get(key)
            if found is not None:
                return found
        matches = [s for s in speakers if s.name.lower() == key.lower()]
        if matches:
            return sorted(matches, key=lambda s: s.invisible)[0]
        raise KeyError(key)

    def household_by_key(self, key: str) -> Household:
        """A household by number (``0``) or household ID; ``KeyError``."""
        if key.isdigit() and int(key) < len(self.households):
            return self.households[int(key)]
        for household in self.households:
            if household.household_id == key:
                return household
        raise KeyError(key)

    def shutdown(self) -> None:
        """Stop every timer of every household."""
        for household in self.households:
            household.shutdown()
