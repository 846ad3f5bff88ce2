"""Tests for control.context: UPnP codes remapped to the stable codes a command documents."""

from __future__ import annotations

from sonosd.control.commandargs import ControlError
from sonosd.control.context import remap

MEANINGS = {800: ("service_unavailable", 409, "no account")}


def test_remap() -> None:
    """A speaker_error of a known code takes its meaning; anything else stays as it is."""
    mapped = remap(ControlError("speaker_error", 502, "refused", upnp_error=800), MEANINGS)
    assert (mapped.code, mapped.status, mapped.message, mapped.upnp_error) == (
        "service_unavailable",
        409,
        "no account",
        800,
    )
    other = ControlError("speaker_error", 502, "refused", upnp_error=701)
    assert remap(other, MEANINGS) is other
    offline = ControlError("offline", 503, "gone")
    assert remap(offline, MEANINGS) is offline
