# -*- test-case-name: tests.control.test_inputs -*-
"""Inputs and home-theatre sound: ``line_in``, ``tv``, ``speech_enhancement``, ``sub``,
``surround``.

``line_in`` plays a speaker's line-in (its own, or ``source``'s) on the group's coordinator;
``tv`` switches a soundbar to its TV input. A speaker without that input refuses (UPnP 714),
which becomes ``409 not_supported``. The sound settings are RenderingControl ``SetEQ`` values
(``DialogLevel``, ``SubEnable``/``SubGain``, ``SurroundEnable``/``SurroundLevel``/
``MusicSurroundLevel``/``SurroundMode``) set on the speaker itself and read back; a speaker
without a sub or surrounds refuses them (UPnP 402), which becomes ``409 not_supported``. Given
no setting, ``sub`` and ``surround`` only read.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sonosd.control.commandargs import Params
from sonosd.control.context import ControlContext, call_meaning
from sonosd.household.state import SpeakerRef

_SUB = (("enabled", "SubEnable", bool), ("gain", "SubGain", int))
_SURROUND = (
    ("enabled", "SurroundEnable", bool),
    ("tv_level", "SurroundLevel", int),
    ("music_level", "MusicSurroundLevel", int),
    ("full_volume", "SurroundMode", bool),
)
_SPEECH = (("speech_enhancement", "DialogLevel", bool),)


def _set_source(device: Any, uri: str, play: bool) -> None:
    device.avTransport.SetAVTransportURI(
        [("InstanceID", 0), ("CurrentURI", uri), ("CurrentURIMetaData", "")]
    )
    if play:
        device.avTransport.Play([("InstanceID", 0), ("Speed", 1)])


def _eq(device: Any, table: tuple[tuple[str, str, type], ...], params: Params) -> dict[str, Any]:
    """Set the ``params`` of ``table`` with SetEQ, then read every one back with GetEQ."""
    control = device.renderingControl
    for name, eq_type, kind in table:
        if name in params:
            value = int(params[name]) if kind is bool else params[name]
            control.SetEQ([("InstanceID", 0), ("EQType", eq_type), ("DesiredValue", value)])
    result: dict[str, Any] = {}
    for name, eq_type, kind in table:
        answer = control.GetEQ([("InstanceID", 0), ("EQType", eq_type)])
        value = int(answer["CurrentValue"])
        result[name] = bool(value) if kind is bool else value
    return result


class InputCommands:
    """See the module docstring and docs/control.md."""

    COMMANDS: ClassVar[tuple[str, ...]] = (
        "line_in",
        "tv",
        "speech_enhancement",
        "sub",
        "surround",
    )

    def __init__(self, ctx: ControlContext) -> None:
        self._ctx = ctx

    async def do_line_in(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Play a line-in on the group's coordinator."""
        source = ref if params["source"] is None else self._ctx.speaker(params["source"], "source")
        coordinator = self._ctx.coordinator(ref)
        meanings = {714: ("not_supported", 409, f"{source.name} has no line-in")}
        uri = f"x-rincon-stream:{source.uid}"
        await call_meaning(self._ctx, coordinator, meanings, _set_source, uri, params["play"])
        return {"coordinator": coordinator.uid, "source": source.uid, "uri": uri}

    async def do_tv(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Switch a soundbar to its TV input (it leaves its group, as speakers do)."""
        meanings = {714: ("not_supported", 409, f"{ref.name} has no TV input")}
        uri = f"x-sonos-htastream:{ref.uid}:spdif"
        await call_meaning(self._ctx, ref, meanings, _set_source, uri, params["play"])
        return {"coordinator": ref.uid, "uri": uri}

    async def _settings(
        self, ref: SpeakerRef, table: tuple[tuple[str, str, type], ...], params: Params, what: str
    ) -> dict[str, Any]:
        meanings = {402: ("not_supported", 409, f"{ref.name} has no {what}")}
        return await call_meaning(self._ctx, ref, meanings, _eq, table, params)

    async def do_speech_enhancement(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """Speech enhancement (dialog level) on a soundbar."""
        return await self._settings(ref, _SPEECH, params, "speech enhancement")

    async def do_sub(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """The sub: on or off, its gain."""
        return {"sub": await self._settings(ref, _SUB, params, "sub")}

    async def do_surround(self, ref: SpeakerRef, params: Params) -> dict[str, Any]:
        """The surrounds: on or off, TV and music levels, full volume."""
        return {"surround": await self._settings(ref, _SURROUND, params, "surround speakers")}
