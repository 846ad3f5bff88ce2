# -*- test-case-name: tests.api.test_views -*-
"""Pure views of the household snapshot for the REST routes (speakers, groups, health).

Everything is read from ``HouseholdState.snapshot()`` (``{"speakers": [{"uid", "name",
"host", "port", "availability": {"status", ...}, "services": {...}}], "topology": {"groups":
[...], "vanished": [...]} | None}``); nothing here does I/O. The snapshot is read
defensively (a mapping of speakers keyed by uid works too) so that a field added or missing
never turns into a 500.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol


class SpeakerKey(Protocol):
    """What the API reads of a ``SpeakerRef``."""

    @property
    def uid(self) -> str:
        """The speaker's uid."""


class SpeakerAddress(SpeakerKey, Protocol):
    """What the API reads of a followed speaker's address (album art)."""

    @property
    def host(self) -> str:
        """The speaker's address."""

    @property
    def port(self) -> int:
        """The speaker's port."""


class StateView(Protocol):
    """What the API needs from ``sonosd.household.state.HouseholdState``."""

    def snapshot(self) -> dict[str, Any]:
        """Every speaker's merged state and the topology, as plain JSON."""

    def find(self, key: str) -> SpeakerKey | None:
        """The speaker ``key`` names: a uid, else a room name, else a host."""

    def speakers(self) -> Iterable[SpeakerAddress]:
        """Every followed speaker."""

    def availability_counts(self) -> dict[str, int]:
        """How many speakers have each availability status (without a copy of the state:
        health checks and metrics scrapes ask often)."""


def speakers(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every speaker of the snapshot, each with its ``uid``, in a stable order."""
    raw = snapshot.get("speakers") or {}
    result: list[dict[str, Any]] = []
    if isinstance(raw, Mapping):
        for uid, speaker in raw.items():
            if isinstance(speaker, Mapping):
                entry = dict(speaker)
                entry.setdefault("uid", uid)
                result.append(entry)
    elif isinstance(raw, list):
        result = [dict(speaker) for speaker in raw if isinstance(speaker, Mapping)]
    return sorted(result, key=lambda speaker: (_name(speaker).casefold(), str(speaker["uid"])))


def _name(speaker: Mapping[str, Any]) -> str:
    name = speaker.get("name") or speaker.get("room") or ""
    return str(name)


def find_speaker(snapshot: Mapping[str, Any], ident: str) -> dict[str, Any] | None:
    """The speaker whose uid is ``ident`` or, failing that, whose room name is (any case).

    ``HouseholdState.find`` is the better lookup (it prefers a room's coordinator); this one
    serves when the state cannot name a uid.
    """
    every = speakers(snapshot)
    for speaker in every:
        if speaker.get("uid") == ident:
            return speaker
    folded = ident.casefold()
    for speaker in every:
        if _name(speaker).casefold() == folded:
            return speaker
    return None


def groups(snapshot: Mapping[str, Any]) -> list[Any]:
    """The household's groups (coordinator and members), as the state reports them."""
    found = snapshot.get("groups")
    topology = snapshot.get("topology")
    if found is None and isinstance(topology, Mapping):
        found = topology.get("groups")
    if isinstance(found, Mapping):
        return [dict(group, id=key) for key, group in found.items() if isinstance(group, Mapping)]
    return list(found or [])


def lookup(state: StateView, ident: str) -> dict[str, Any] | None:
    """The snapshot entry of the speaker ``ident`` names (uid, room name or host)."""
    snapshot = state.snapshot()
    ref = state.find(ident)
    if ref is not None:
        for speaker in speakers(snapshot):
            if speaker.get("uid") == ref.uid:
                return speaker
    return find_speaker(snapshot, ident)


#: Availability statuses, as ``sonosd.household.state.STATUSES``.
STATUSES = ("online", "offline", "asleep", "upnp_disabled", "unknown")


def health(
    counts: Mapping[str, int], uptime: float, version: str, problems: Sequence[str] = ()
) -> dict[str, Any]:
    """The ``/health`` body: status and its reasons, speaker counts and uptime; nothing secret.

    ``status`` is ``degraded`` while something is wrong: a speaker offline or with UPnP
    switched off, or any of ``problems`` (a service polling, lost or backing off, a speaker
    not identified); else ``starting`` while no speaker is known or some are not yet decided;
    else ``ok``. An asleep speaker is not a problem. ``reasons`` says what is wrong, one
    sentence each.

    @param counts: Speakers per availability status (``availability_counts``).
    @param problems: Why the household is degraded (``readiness.health_reasons`` of the
        household supervisor's status).
    """
    counts = {key: int(counts.get(key, 0)) for key in STATUSES}
    reasons = list(problems)
    if not reasons:
        for key, what in (("offline", "offline"), ("upnp_disabled", "with UPnP switched off")):
            if counts[key]:
                reasons.append(f"{counts[key]} speaker(s) {what}")
    if reasons or counts["offline"] or counts["upnp_disabled"]:
        overall = "degraded"
    elif counts["unknown"] or not (counts["online"] or counts["asleep"]):
        overall = "starting"
    else:
        overall = "ok"
    return {
        "status": overall,
        "reasons": reasons,
        "version": version,
        "uptime": round(uptime, 3),
        "speakers": counts,
    }
