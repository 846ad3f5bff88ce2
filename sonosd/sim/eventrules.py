# -*- test-case-name: tests.sim.test_eventrules -*-
"""What a speaker puts in an event after a change: the resend rules of each service.

A real speaker does not always event only the variables that changed
(``sonos-protocol.md`` §3.5 and the captured events in ``reference/samples/events``):

- **AVTransport**: a change of the source (``AVTransportURI``) resends the whole state; a
  transport or track change (any variable of :data:`AVT_TRACK_BLOCK`: state, play mode,
  crossfade, number of tracks, track, its URI, duration and metadata, the next track, the
  enqueued container) resends that whole block, as the captured PLAYING and STOPPED events of
  a Sonos queue do (``avtransport_full_PLAYING_node-sonos-ts.xml``, ``..._STOPPED_...``), plus
  whatever else changed. Clients that keep their state from events (jishi's sonos-discovery,
  node-sonos-ts for sonos2mqtt) rely on it: play mode and queue length come with every play.
- **RenderingControl**: a channel variable goes with all its channels (``Volume`` Master, LF
  and RF: ``renderingcontrol_lastchange_volume_jishi.xml`` and the modern capture); the
  subwoofer settings go together (``renderingcontrol_lastchange_sub_jishi.xml``).
- **GroupRenderingControl**: all three variables (the shape every client's fixtures show).
- **Queue**: the whole ``QueueID`` block (``UpdateID``, ``Curated``, ``QueueOwnerID``).
- every other service: the variables that changed.

Pure functions; the household calls :func:`event_for` with what it last evented and the state
now. Moderation (at most one LastChange event per 0.2 s) is the GENA manager's business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final, Union

EventValue = Union[str, Mapping[str, str]]  # noqa: UP007 - runtime alias for Python 3.11
State = Mapping[str, EventValue]

#: AVTransport variables resent together on any transport or track change, in body order.
AVT_TRACK_BLOCK: Final = (
    "TransportState",
    "CurrentPlayMode",
    "CurrentCrossfadeMode",
    "NumberOfTracks",
    "CurrentTrack",
    "CurrentSection",
    "CurrentTrackURI",
    "CurrentTrackDuration",
    "CurrentTrackMetaData",
    "r:NextTrackURI",
    "r:NextTrackMetaData",
    "r:EnqueuedTransportURI",
    "r:EnqueuedTransportURIMetaData",
)
#: AVTransport variables whose change (a new source) resends the whole state.
AVT_SOURCE: Final = frozenset({"AVTransportURI", "AVTransportURIMetaData"})
#: RenderingControl subwoofer settings, resent together.
RC_SUB_BLOCK: Final = ("SpeakerSize", "SubGain", "SubCrossover", "SubPolarity", "SubEnabled")


def changed_names(previous: State, current: State) -> set[str]:
    """The names whose value differs (or that are new) in ``current``."""
    return {name for name, value in current.items() if previous.get(name) != value}


def _select(current: State, names: set[str]) -> dict[str, EventValue]:
    """``current``'s entries named in ``names``, in ``current``'s (body) order."""
    return {name: value for name, value in current.items() if name in names}


def _avtransport(previous: State, changed: set[str], current: State) -> dict[str, EventValue]:
    if changed & AVT_SOURCE:
        return dict(current)
    if changed.intersection(AVT_TRACK_BLOCK):
        changed = changed | set(AVT_TRACK_BLOCK)
    return _select(current, changed)


def _rendering_control(previous: State, changed: set[str], current: State) -> dict[str, EventValue]:
    if changed.intersection(RC_SUB_BLOCK):
        changed = changed | set(RC_SUB_BLOCK)
    return _select(current, changed)


def _whole(previous: State, changed: set[str], current: State) -> dict[str, EventValue]:
    return dict(current)


def _changed_only(previous: State, changed: set[str], current: State) -> dict[str, EventValue]:
    return _select(current, changed)


_RULES: Final[dict[str, Callable[[State, set[str], State], dict[str, EventValue]]]] = {
    "AVTransport": _avtransport,
    "RenderingControl": _rendering_control,
    "GroupRenderingControl": _whole,
    "Queue": _whole,
}


def event_for(service: str, previous: State, current: State) -> dict[str, EventValue]:
    """The variables of ``service`` a speaker events when its state goes from ``previous``
    to ``current``; empty when nothing changed."""
    changed = changed_names(previous, current)
    if not changed:
        return {}
    return _RULES.get(service, _changed_only)(previous, changed, current)
