# -*- test-case-name: tests.delivery.test_filters -*-
"""Message filters: which speakers, rooms, services and message types a client wants.

One implementation is shared by every channel (WebSocket, SSE, the local stream, webhooks and
MQTT), so a filter written once means the same thing everywhere.

Rules (documented in ``docs/api.md``):

- each dimension is a set of accepted values; an empty dimension accepts everything;
- a message must be accepted by every non-empty dimension; ``speakers`` and ``rooms`` both
  name speakers and together form one dimension (a message from a listed uid *or* a listed
  room passes);
- a dimension the message does not have (``room`` of a household-wide ``topology.changed``,
  ``service`` of a ``speaker.online``) does not filter it out: household-wide messages reach
  every room-filtered client unless ``types`` excludes them;
- speakers are compared by uid (exactly), rooms and services case-insensitively;
- a type ending in ``.*`` accepts a family (``speaker.*`` = ``speaker.online``,
  ``speaker.offline``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from sonosd.delivery.hub import Message

#: The accepted keys of a filter object and their singular aliases (query parameters).
_KEYS: Mapping[str, str] = {
    "speakers": "speakers",
    "speaker": "speakers",
    "rooms": "rooms",
    "room": "rooms",
    "services": "services",
    "service": "services",
    "types": "types",
    "type": "types",
}


class FilterError(ValueError):
    """A filter object or query is malformed; ``str()`` says which key and why."""


def _frozen(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _folded(values: Iterable[str]) -> frozenset[str]:
    return frozenset(value.casefold() for value in values)


@attrs.frozen
class Filter:
    """Which messages a client wants; empty dimensions accept everything.

    @ivar speakers: Speaker uids (``RINCON_...``), compared exactly.
    @ivar rooms: Room names, compared case-insensitively.
    @ivar services: UPnP service names (``AVTransport``), compared case-insensitively.
    @ivar types: Message types (``event``), or families (``speaker.*``).
    """

    speakers: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    rooms: frozenset[str] = attrs.field(default=frozenset(), converter=_folded)
    services: frozenset[str] = attrs.field(default=frozenset(), converter=_folded)
    types: frozenset[str] = attrs.field(default=frozenset(), converter=_frozen)
    #: The families of ``types`` (``speaker.`` for ``speaker.*``): a message's type is looked
    #: up by its own few prefixes, so matching costs the same however many patterns a client
    #: sends (a 64 KiB WebSocket op holds thousands).
    _families: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        families = frozenset(p[:-1] for p in self.types if p.endswith(".*"))
        object.__setattr__(self, "_families", families)

    @property
    def is_empty(self) -> bool:
        """True when the filter accepts every message."""
        return not (self.speakers or self.rooms or self.services or self.types)

    def matches(self, message: Message) -> bool:
        """Whether ``message`` passes this filter."""
        if self.types and not self._type_matches(message.type):
            return False
        if (
            self.services
            and message.service is not None
            and message.service.casefold() not in self.services
        ):
            return False
        if self.speakers or self.rooms:
            if message.speaker_uid is None and message.room is None:
                return True
            by_uid = bool(self.speakers) and message.speaker_uid in self.speakers
            by_room = (
                bool(self.rooms)
                and message.room is not None
                and message.room.casefold() in self.rooms
            )
            return by_uid or by_room
        return True

    def _type_matches(self, kind: str) -> bool:
        if kind in self.types:
            return True
        if not self._families:
            return False
        dot = kind.find(".")
        while dot != -1:
            if kind[: dot + 1] in self._families:
                return True
            dot = kind.find(".", dot + 1)
        return False

    def to_json(self) -> dict[str, list[str]]:
        """The filter as a JSON object (sorted lists; empty dimensions left out)."""
        result: dict[str, list[str]] = {}
        for name in ("speakers", "rooms", "services", "types"):
            values = getattr(self, name)
            if values:
                result[name] = sorted(values)
        return result

    @classmethod
    def from_query(
        cls, mapping: Mapping[Any, Any], *, strict: bool = False, allowed: Iterable[str] = ()
    ) -> Filter:
        """Build a filter from query parameters or a JSON object.

        Accepts what ``twisted.web`` gives (``request.args``: bytes keys, lists of bytes
        values), what autobahn gives (str keys, lists of str), a parsed JSON object (lists of
        strings, or one string) and configuration mappings (tuples). Singular aliases
        (``room=Kitchen``) are accepted; a single string may hold several comma-separated
        values (``rooms=Kitchen,Office``).

        @param mapping: The parameters.
        @param strict: Reject keys that are not filter keys (JSON objects, configuration;
            ``op`` and ``id`` of a WebSocket operation are allowed); otherwise other keys
            are ignored.
        @param allowed: With ``strict``, other keys that are not an error (a query string's
            ``last_id`` and ``access_token``).
        @raise FilterError: A value is not a string or a list of strings, or (``strict``) a
            key is unknown.
        """
        collected: dict[str, set[str]] = {
            "speakers": set(),
            "rooms": set(),
            "services": set(),
            "types": set(),
        }
        for raw_key, raw_value in mapping.items():
            key = raw_key.decode("utf-8", "replace") if isinstance(raw_key, bytes) else raw_key
            if not isinstance(key, str) or key not in _KEYS:
                if strict and key not in ("op", "id") and key not in allowed:
                    known = ", ".join(sorted(_KEYS))
                    raise FilterError(f"filter: unknown key {key!r} (known: {known})")
                continue
            for value in _values(key, raw_value):
                collected[_KEYS[key]].update(_split(value))
        return cls(
            speakers=frozenset(collected["speakers"]),
            rooms=frozenset(collected["rooms"]),
            services=frozenset(collected["services"]),
            types=frozenset(collected["types"]),
        )


def _values(key: str, raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str | bytes):
        raw = [raw]
    if not isinstance(raw, list | tuple | set | frozenset):
        raise FilterError(f"filter: {key}: expected a string or a list of strings, got {raw!r}")
    values: list[str] = []
    for item in raw:
        if isinstance(item, bytes):
            item = item.decode("utf-8", "replace")
        if not isinstance(item, str):
            raise FilterError(f"filter: {key}: expected strings, got {item!r}")
        values.append(item)
    return values


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
