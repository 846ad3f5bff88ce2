"""Tests for sonosd.gena.event: the SoCo-free event has SoCo's ``Event`` API."""

from __future__ import annotations

import pytest
from soco.events_base import Event as SocoEvent

from sonosd.gena.event import Event


@pytest.mark.parametrize("kind", [Event, SocoEvent])
def test_same_api_as_soco(kind: type) -> None:
    """Fields, variables as attributes, AttributeError for what was not sent and TypeError
    on assignment: the same for ours and SoCo's."""
    event = kind("uuid:sid", "3", "service", 12.5, {"volume": {"Master": "20"}})
    assert (event.sid, event.seq, event.service, event.timestamp) == (
        "uuid:sid",
        "3",
        "service",
        12.5,
    )
    assert event.volume == {"Master": "20"} and event.variables == {"volume": {"Master": "20"}}
    with pytest.raises(AttributeError, match="No such attribute: mute"):
        _ = event.mute
    with pytest.raises(TypeError, match="does not support attribute assignment"):
        event.seq = "4"
    assert kind("s", "0", None, 0.0).variables == {}


def test_repr_names_sid_and_seq() -> None:
    """An event's repr says which subscription and SEQ it is."""
    assert repr(Event("uuid:x", "7", None, 0.0)) == "<Event uuid:x seq 7>"
