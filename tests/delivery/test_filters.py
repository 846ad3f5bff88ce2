"""Tests for sonosd.delivery.filters: one filter meaning for every channel."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.delivery.filters import Filter, FilterError
from sonosd.delivery.hub import Message


def message(
    type: str = "event",
    uid: str | None = "RINCON_A",
    room: str | None = "Kitchen",
    service: str | None = "AVTransport",
) -> Message:
    return Message(id=1, type=type, body={}, raw=b"{}", speaker_uid=uid, room=room, service=service)


def test_empty_filter_matches_everything() -> None:
    """An empty filter accepts every message, household-wide ones included."""
    empty = Filter()
    assert empty.is_empty
    assert empty.matches(message())
    assert empty.matches(message("topology.changed", None, None, None))


def test_rooms_are_case_insensitive() -> None:
    """A room filter compares room names without regard to case."""
    kitchen = Filter(rooms=["kitchen"])
    assert kitchen.matches(message(room="KITCHEN"))
    assert not kitchen.matches(message(room="Office"))


def test_speakers_match_uids_exactly() -> None:
    """A speaker filter compares uids exactly."""
    only_a = Filter(speakers=["RINCON_A"])
    assert only_a.matches(message(uid="RINCON_A"))
    assert not only_a.matches(message(uid="rincon_a"))


def test_speakers_or_rooms() -> None:
    """Speakers and rooms together accept a message named by either."""
    both = Filter(speakers=["RINCON_B"], rooms=["Kitchen"])
    assert both.matches(message(uid="RINCON_A", room="Kitchen"))
    assert both.matches(message(uid="RINCON_B", room="Office"))
    assert not both.matches(message(uid="RINCON_C", room="Office"))


def test_services_and_types_must_both_match() -> None:
    """Every non-empty dimension must accept the message."""
    narrow = Filter(services=["renderingcontrol"], types=["event"])
    assert narrow.matches(message(service="RenderingControl"))
    assert not narrow.matches(message(service="AVTransport"))
    assert not narrow.matches(message(type="events.gap", service="RenderingControl"))


def test_missing_dimension_does_not_filter() -> None:
    """A household-wide message passes room and service filters, but not a type filter."""
    household = message("topology.changed", None, None, None)
    assert Filter(rooms=["Kitchen"], services=["AVTransport"]).matches(household)
    assert not Filter(types=["event"]).matches(household)


def test_type_family() -> None:
    """A type ending in .* accepts the whole family and nothing else."""
    family = Filter(types=["speaker.*"])
    assert family.matches(message("speaker.online"))
    assert family.matches(message("speaker.offline"))
    assert not family.matches(message("speakers"))
    assert not family.matches(message("event"))


def test_from_query_twisted_args() -> None:
    """twisted.web's request.args (bytes) with aliases and commas become a filter."""
    query = {
        b"room": [b"Kitchen,Living Room"],
        b"types": [b"event", b"speaker.*"],
        b"access_token": [b"secret"],
        b"last_id": [b"12"],
    }
    built = Filter.from_query(query)
    assert built == Filter(rooms=["kitchen", "living room"], types=["event", "speaker.*"])


def test_every_singular_alias_and_exact_types() -> None:
    """docs/api.md's aliases (speaker, room, service, type) are their keys, in a query string
    and in JSON; types are compared exactly (``Event`` is not ``event``)."""
    query = {b"speaker": [b"RINCON_A"], b"room": [b"Office"], b"service": [b"avtransport"]}
    assert Filter.from_query({**query, b"type": [b"event"]}) == Filter(
        speakers=["RINCON_A"], rooms=["office"], services=["AVTransport"], types=["event"]
    )
    json_op = {"op": "filter", "speaker": "RINCON_A", "type": ["Event"]}
    built = Filter.from_query(json_op, strict=True)
    assert built.to_json() == {"speakers": ["RINCON_A"], "types": ["Event"]}
    assert not Filter(types=["Event"]).matches(message())


def test_a_message_without_the_key_passes_it() -> None:
    """speaker.online (no service) passes a services filter; topology.changed and
    alarms.changed (no speaker) pass speakers and rooms filters; types exclude them."""
    online = message("speaker.online", service=None)
    assert Filter(services=["RenderingControl"]).matches(online)
    assert not Filter(services=["RenderingControl"], types=["event"]).matches(online)
    for kind in ("topology.changed", "alarms.changed"):
        wide = message(kind, None, None, None)
        assert Filter(speakers=["RINCON_B"], rooms=["Office"]).matches(wide)
        assert not Filter(rooms=["Office"], types=["event"]).matches(wide)


def test_a_configured_filter_is_the_same_filter() -> None:
    """A webhook's configured filter (tuples, docs/configuration.md) takes speakers as uids
    compared exactly, so a room name there matches nothing of that room; rooms any case."""
    assert Filter.from_query({"speakers": ("RINCON_A",)}, strict=True).matches(message())
    assert not Filter.from_query({"speakers": ("Kitchen",)}, strict=True).matches(message())
    assert Filter.from_query({"rooms": ("KITCHEN",)}, strict=True).matches(message())


def test_from_query_json_object() -> None:
    """A JSON object with lists or single strings becomes a filter."""
    built = Filter.from_query(
        {"op": "filter", "id": 3, "speakers": "RINCON_A", "services": ["AVTransport"]},
        strict=True,
    )
    assert built.to_json() == {"speakers": ["RINCON_A"], "services": ["avtransport"]}


def test_from_query_strict_rejects_unknown_keys() -> None:
    """In strict mode an unknown key is an error naming it."""
    with pytest.raises(FilterError, match="roms"):
        Filter.from_query({"roms": ["Kitchen"]}, strict=True)


def test_from_query_rejects_non_strings() -> None:
    """Values must be strings or lists of strings."""
    with pytest.raises(FilterError, match="rooms"):
        Filter.from_query({"rooms": 3})
    with pytest.raises(FilterError, match="rooms"):
        Filter.from_query({"rooms": ["Kitchen", 4]})


names = st.text(alphabet=st.characters(blacklist_characters=","), min_size=1, max_size=12).filter(
    lambda text: text.strip() == text
)


@given(rooms=st.lists(names, max_size=4), room=names)
def test_room_filter_is_membership(rooms: list[str], room: str) -> None:
    """A room filter from a JSON list accepts exactly the listed rooms (any case)."""
    built = Filter.from_query({"rooms": rooms})
    expected = not rooms or room.casefold() in {name.casefold() for name in rooms}
    assert built.matches(message(room=room, uid="X")) == expected


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.text(), st.lists(st.text()))))
def test_from_query_never_crashes(query: dict[str, object]) -> None:
    """Arbitrary query mappings either build a filter or raise FilterError."""
    try:
        built = Filter.from_query(query)
    except FilterError:
        return
    assert isinstance(built.to_json(), dict)


@given(st.one_of(st.integers(), st.none(), st.dictionaries(st.text(), st.text())))
def test_json_values_of_wrong_type(value: object) -> None:
    """A filter value that is not a string or a list is rejected (None is empty)."""
    if value is None:
        assert Filter.from_query({"rooms": value}).is_empty
        return
    with pytest.raises(FilterError):
        Filter.from_query({"rooms": value})


_PARTS = st.text(alphabet="ab.", max_size=5)


@given(patterns=st.lists(_PARTS.map(lambda p: p + ".*") | _PARTS, max_size=6), kind=_PARTS)
def test_type_families_match_as_prefixes(patterns: list[str], kind: str) -> None:
    """A type matches a ``family.*`` pattern exactly when it starts with ``family.`` (looked
    up by the type's own prefixes, whatever the number of patterns)."""
    expected = kind in patterns or any(
        p.endswith(".*") and kind.startswith(p[:-1]) for p in patterns
    )
    assert Filter(types=patterns)._type_matches(kind) == expected


def test_thousands_of_patterns_still_match() -> None:
    """A filter of 9,000 type families (a 64 KiB operation) matches the one the message is
    of, and no other."""
    patterns = [f"t{i}.*" for i in range(9000)]
    assert Filter(types=[*patterns, "speaker.*"])._type_matches("speaker.volume")
    assert not Filter(types=patterns)._type_matches("speaker.volume")
    assert Filter(types=patterns)._type_matches("t8999.x")
