# -*- test-case-name: tests.control.test_context -*-
"""What the command areas (alarms, queue and library, announcements, inputs) need of the
controller, and the pieces they share.

``Controller`` (``sonosd.control.controller``) implements ``ControlContext``: finding a speaker
and its coordinator, running a SoCo call in the pool under the speaker's key (with the
controller's timeout, queue bound and error translation), the topology, snapshots. An area is
a class built with the context whose ``COMMANDS`` names the commands it runs; the controller
calls its ``do_<command>(ref, params)``.

``remap`` turns the generic ``speaker_error`` of a known UPnP code into the stable code a
command documents (``alarm_exists`` for 801, ``not_supported`` for 714 on an input...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import attrs
from twisted.internet.interfaces import IReactorTime

from sonosd.control.commandargs import ControlError, Params
from sonosd.household.state import HouseholdState, SpeakerRef
from sonosd.household.topology import Topology

T = TypeVar("T")

#: ``{UPnP code: (stable code, HTTP status, message)}`` for ``remap``.
UpnpMeanings = Mapping[int, tuple[str, int, str]]


class ControlContext(Protocol):
    """What an area of commands uses of the controller."""

    @property
    def reactor(self) -> IReactorTime:
        """Schedules waits and timers."""

    @property
    def state(self) -> HouseholdState:
        """The household as the daemon knows it."""

    @property
    def soco_factory(self) -> Callable[..., Any]:
        """Builds the SoCo object of an address."""

    def speaker(self, speaker_id: str, argument: str | None = None) -> SpeakerRef:
        """The online speaker ``speaker_id`` names (404/503 ``ControlError`` otherwise)."""

    def coordinator(self, ref: SpeakerRef) -> SpeakerRef:
        """The coordinator of ``ref``'s group."""

    async def call(
        self, ref: SpeakerRef, fn: Callable[..., T], *args: Any, slow: bool = False
    ) -> T:
        """Run ``fn(device, *args)`` in the pool for ``ref``; errors become ``ControlError``."""

    async def topology(self, ref: SpeakerRef) -> Topology:
        """The household topology (read from ``ref`` when no event gave it yet)."""


Handler = Callable[[SpeakerRef, Params], Any]


@attrs.frozen
class GroupSnapshot:
    """A group saved by ``snapshot``: its coordinator, its visible members, and SoCo's
    ``Snapshot`` of each (volume, mute, tone; the coordinator's source, position and state)."""

    name: str
    coordinator: str
    members: tuple[str, ...]
    speakers: Mapping[str, Any]
    refs: Mapping[str, SpeakerRef]

    def to_json(self) -> dict[str, Any]:
        """``{"name", "coordinator", "members"}``."""
        return {"name": self.name, "coordinator": self.coordinator, "members": list(self.members)}


class Grouping(Protocol):
    """Snapshots of groups and regrouping (the controller's ``snapshot``/``restore``/``leave``)."""

    async def take_snapshot(self, name: str, ref: SpeakerRef) -> GroupSnapshot:
        """Save ``ref``'s group (grouping, and each visible member's state) as ``name``."""

    async def restore_snapshot(self, saved: GroupSnapshot, fade: bool) -> dict[str, Any]:
        """Regroup as saved and restore every member."""

    def forget_snapshot(self, name: str) -> None:
        """Drop the snapshot ``name``."""

    async def leave(self, ref: SpeakerRef) -> dict[str, Any]:
        """Make ``ref`` a group of its own; answer once the topology shows it."""


def remap(error: ControlError, meanings: UpnpMeanings) -> ControlError:
    """``error`` with the stable code its UPnP code means here (unchanged if none)."""
    if error.code != "speaker_error" or error.upnp_error is None:
        return error
    meaning = meanings.get(error.upnp_error)
    if meaning is None:
        return error
    code, status, message = meaning
    return ControlError(code, status, message, upnp_error=error.upnp_error)


async def call_meaning(
    ctx: ControlContext,
    ref: SpeakerRef,
    meanings: UpnpMeanings,
    fn: Callable[..., T],
    *args: Any,
) -> T:
    """``ctx.call`` with the UPnP errors of ``meanings`` remapped."""
    try:
        return await ctx.call(ref, fn, *args)
    except ControlError as error:
        raise remap(error, meanings) from error
