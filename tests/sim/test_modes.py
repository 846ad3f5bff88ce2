"""Tests for the household and firmware modes (sonosd.sim.modes)."""

from __future__ import annotations

import attrs
import pytest

from sonosd.config import SimulateConfig
from sonosd.sim import modes
from sonosd.sim.modes import HouseholdModes, refusal


def test_defaults_match_the_config_defaults() -> None:
    """The simulator's own defaults are the ones the daemon's ``simulate:`` section documents."""
    config = SimulateConfig()
    assert HouseholdModes() == HouseholdModes(
        large_household=config.large_household,
        large_household_players=config.large_household_players,
        upnp=config.upnp,
        upnp_off_ssdp=config.upnp_off_ssdp,
        upnp_off_forbidden=config.upnp_off_forbidden,
    )
    assert config.tls_port == modes.DEFAULT_TLS_PORT


def test_large_household_refuses_above_the_limit() -> None:
    """GetZoneGroupState is refused above the limit, only while the mode is on."""
    on = HouseholdModes(large_household=True, large_household_players=22)
    assert not on.zone_group_state_refused(22)
    assert on.zone_group_state_refused(23)
    assert HouseholdModes().zone_group_state_refused(200)  # on by default, as in real households
    assert not HouseholdModes(large_household=False).zone_group_state_refused(200)


def test_bad_modes_are_refused() -> None:
    """A limit out of range or an unknown SSDP behaviour raises ValueError naming it."""
    with pytest.raises(ValueError, match="large_household_players"):
        HouseholdModes(large_household_players=0)
    with pytest.raises(ValueError, match="upnp_off_ssdp"):
        attrs.evolve(HouseholdModes(), upnp_off_ssdp="shout")
    with pytest.raises(ValueError, match="upnp_off_forbidden"):
        HouseholdModes(upnp_off_forbidden=["control", "album art"])
    with pytest.raises(ValueError, match="regroup_delay"):
        HouseholdModes(regroup_delay=-1.0)
    with pytest.raises(ValueError, match="topology_settle"):
        HouseholdModes(topology_settle=61.0)


def test_ssdp_silent_only_when_upnp_is_off_and_asked() -> None:
    """SSDP goes silent only with UPnP off and ``upnp_off_ssdp: silent``."""
    assert not HouseholdModes(upnp_off_ssdp="silent").ssdp_silent()
    assert not HouseholdModes(upnp=False).ssdp_silent()
    assert HouseholdModes(upnp=False, upnp_off_ssdp="silent").ssdp_silent()


OFF = HouseholdModes(upnp=False)
ON = HouseholdModes()


@pytest.mark.parametrize("kind", [modes.DESCRIPTION, modes.CONTROL, modes.EVENT])
def test_upnp_off_refuses_description_soap_and_gena(kind: str) -> None:
    """With UPnP off, description, SOAP and GENA answer 403, over HTTP and TLS."""
    for secure in (False, True):
        assert refusal(kind, OFF, https_only=False, secure=secure) == 403
        assert refusal(kind, ON, https_only=False, secure=secure) is None


def test_upnp_off_serves_scpds_unless_configured() -> None:
    """SCPDs stay served by default; ``upnp_off_forbidden`` decides which kinds answer 403."""
    assert refusal(modes.SCPD, OFF, https_only=False, secure=False) is None
    strict = HouseholdModes(upnp=False, upnp_off_forbidden=modes.UPNP_KINDS)
    assert refusal(modes.SCPD, strict, https_only=False, secure=False) == 403
    lenient = HouseholdModes(upnp=False, upnp_off_forbidden=["control"])
    assert refusal(modes.DESCRIPTION, lenient, https_only=False, secure=False) is None


def test_upnp_off_leaves_other_pages() -> None:
    """Album art, icons and status pages are not UPnP: they still answer."""
    strict = HouseholdModes(upnp=False, upnp_off_forbidden=modes.UPNP_KINDS)
    assert refusal(modes.OTHER, strict, https_only=True, secure=False) is None


def test_https_only_refuses_soap_over_http_only() -> None:
    """An HTTPS-only speaker refuses SOAP over HTTP, serves it over TLS, serves the rest."""
    assert refusal(modes.CONTROL, ON, https_only=True, secure=False) == 403
    assert refusal(modes.CONTROL, ON, https_only=True, secure=True) is None
    for kind in (modes.DESCRIPTION, modes.SCPD, modes.EVENT):
        assert refusal(kind, ON, https_only=True, secure=False) is None
    assert refusal(modes.CONTROL, ON, https_only=False, secure=False) is None
