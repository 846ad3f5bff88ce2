# -*- test-case-name: tests.household.test_resync -*-
"""A service's state read with control calls, in the shape of its events.

The supervisor reads state this way after a SEQ gap (resync) and when NOTIFYs do not arrive
(polling); ``EventProcessor.on_state`` merges the result like an event. So every variable
read here carries the name SoCo's event parser gives it (``camel_to_underscore`` of the
evented variable, quirks included: ``zone_player_uui_ds_in_group``) and the string value the
speaker would event; channel variables are ``{"Master": "23"}``; DIDL-Lite metadata of the
LastChange services is a ``sonosd.gena.eventxml.LazyDidl`` (equal to SoCo's ``DidlObject``), as
``sonosd.gena.eventxml.parse_event_xml`` gives it.

What each service's reads cover is ``READS`` (one SOAP action per entry); what cannot be read
is documented in ``docs/control.md`` ("State reads"). The reads are sent by the reactor
(``household.soap``: no SoCo, no thread), one action after the other; the client gives a
speaker one call at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd.backoff import SlowAnswer
from sonosd.gena.eventxml import LazyDidl, camel_to_underscore
from sonosd.household.soap import AnswerCut, SoapCaller, UpnpFault
from sonosd.household.state import SpeakerRef

log = Logger()


class ZoneGroupStateUnavailable(Exception):
    """``GetZoneGroupState`` failed with UPnP 501: large households (firmware caps the SOAP
    answer's size) do not answer it; only ZoneGroupTopology events carry the topology there.

    @ivar error_code: ``"501"``, as ``UpnpFault`` (and SoCo's ``SoCoUPnPException``) has it.
    @ivar variables: The other ZoneGroupTopology variables, which could be read.
    """

    def __init__(self, variables: Mapping[str, Any]) -> None:
        super().__init__(
            "GetZoneGroupState failed with UPnP error 501 (a large household): the topology "
            "can only be learnt from ZoneGroupTopology events"
        )
        self.error_code = "501"
        self.variables = dict(variables)


class UnreadableService(ValueError):
    """No control call reads the state of this service."""


@attrs.frozen
class Read:
    """One SOAP action and where its out-arguments go.

    @ivar action: The action (``GetVolume``).
    @ivar args: Its arguments.
    @ivar outputs: ``(out-argument, evented variable, channel or None)`` for each value kept.
    @ivar optional: A UPnP error skips the action (and it is not tried again on that speaker):
        for actions only some models or firmware have.
    """

    action: str
    args: tuple[tuple[str, Any], ...]
    outputs: tuple[tuple[str, str, str | None], ...]
    optional: bool = False


_I = (("InstanceID", 0),)
_MASTER = (("InstanceID", 0), ("Channel", "Master"))

#: Per service, the actions that read its state.
READS: Mapping[str, tuple[Read, ...]] = {
    "AVTransport": (
        Read(
            "GetTransportInfo",
            _I,
            (
                ("CurrentTransportState", "TransportState", None),
                ("CurrentTransportStatus", "TransportStatus", None),
            ),
        ),
        Read(
            "GetPositionInfo",
            _MASTER,
            (
                ("Track", "CurrentTrack", None),
                ("TrackURI", "CurrentTrackURI", None),
                ("TrackDuration", "CurrentTrackDuration", None),
                ("TrackMetaData", "CurrentTrackMetaData", None),
            ),
        ),
        Read(
            "GetMediaInfo",
            _I,
            (
                ("NrTracks", "NumberOfTracks", None),
                ("CurrentURI", "AVTransportURI", None),
                ("CurrentURIMetaData", "AVTransportURIMetaData", None),
                ("NextURI", "NextAVTransportURI", None),
                ("NextURIMetaData", "NextAVTransportURIMetaData", None),
                ("PlayMedium", "PlaybackStorageMedium", None),
                ("MediaDuration", "CurrentMediaDuration", None),
            ),
        ),
        Read(
            "GetTransportSettings",
            _I,
            (
                ("PlayMode", "CurrentPlayMode", None),
                ("RecQualityMode", "CurrentRecordQualityMode", None),
            ),
        ),
        Read("GetCrossfadeMode", _I, (("CrossfadeMode", "CurrentCrossfadeMode", None),)),
        Read(
            "GetCurrentTransportActions",
            _I,
            (("Actions", "CurrentTransportActions", None),),
        ),
        Read(
            "GetRemainingSleepTimerDuration",
            _I,
            (("CurrentSleepTimerGeneration", "SleepTimerGeneration", None),),
            optional=True,
        ),
    ),
    "RenderingControl": (
        Read("GetVolume", _MASTER, (("CurrentVolume", "Volume", "Master"),)),
        Read("GetMute", _MASTER, (("CurrentMute", "Mute", "Master"),)),
        Read("GetBass", _I, (("CurrentBass", "Bass", None),)),
        Read("GetTreble", _I, (("CurrentTreble", "Treble", None),)),
        Read("GetLoudness", _MASTER, (("CurrentLoudness", "Loudness", "Master"),)),
        Read(
            "GetEQ",
            (("InstanceID", 0), ("EQType", "NightMode")),
            (("CurrentValue", "NightMode", None),),
            optional=True,
        ),
        Read(
            "GetEQ",
            (("InstanceID", 0), ("EQType", "DialogLevel")),
            (("CurrentValue", "DialogLevel", None),),
            optional=True,
        ),
    ),
    "GroupRenderingControl": (
        Read("GetGroupVolume", _I, (("CurrentVolume", "GroupVolume", None),)),
        Read("GetGroupMute", _I, (("CurrentMute", "GroupMute", None),)),
    ),
    "ZoneGroupTopology": (
        Read(
            "GetZoneGroupAttributes",
            (),
            (
                ("CurrentZoneGroupName", "ZoneGroupName", None),
                ("CurrentZoneGroupID", "ZoneGroupID", None),
                ("CurrentZonePlayerUUIDsInGroup", "ZonePlayerUUIDsInGroup", None),
                ("CurrentMuseHouseholdId", "MuseHouseholdId", None),
            ),
            optional=True,
        ),
        Read("GetZoneGroupState", (), (("ZoneGroupState", "ZoneGroupState", None),)),
    ),
    "DeviceProperties": (
        Read(
            "GetZoneAttributes",
            (),
            (
                ("CurrentZoneName", "ZoneName", None),
                ("CurrentIcon", "Icon", None),
                ("CurrentConfiguration", "Configuration", None),
            ),
        ),
    ),
    "AlarmClock": (
        Read(
            "ListAlarms",
            (),
            (("CurrentAlarmListVersion", "AlarmListVersion", None),),
        ),
        Read("GetTimeServer", (), (("CurrentTimeServer", "TimeServer", None),), optional=True),
        Read(
            "GetFormat",
            (),
            (
                ("CurrentTimeFormat", "TimeFormat", None),
                ("CurrentDateFormat", "DateFormat", None),
            ),
            optional=True,
        ),
        Read(
            "GetDailyIndexRefreshTime",
            (),
            (("CurrentDailyIndexRefreshTime", "DailyIndexRefreshTime", None),),
            optional=True,
        ),
        Read("GetTimeNow", (), (("CurrentTimeGeneration", "TimeGeneration", None),), optional=True),
    ),
    "ContentDirectory": (
        Read("GetSystemUpdateID", (), (("Id", "SystemUpdateID", None),)),
        Read(
            "GetShareIndexInProgress",
            (),
            (("IsIndexing", "ShareIndexInProgress", None),),
            optional=True,
        ),
        Read("GetBrowseable", (), (("IsBrowseable", "Browseable", None),), optional=True),
    ),
    "Queue": (
        Read(
            "Browse",
            (("QueueID", 0), ("StartingIndex", 0), ("RequestedCount", 1)),
            (("UpdateID", "UpdateID", None),),
        ),
    ),
}


def _only(service: str, action: str, *arguments: str) -> Read:
    """``READS``'s ``action`` of ``service`` keeping only the out-``arguments`` named."""
    [read] = [read for read in READS[service] if read.action == action]
    kept = tuple(output for output in read.outputs if output[0] in arguments)
    return attrs.evolve(read, outputs=kept)


#: Per service, the cheap reads of the consistency check (``StateReader.check``): values that
#: change often and that every event of the service carries. Which of them are compared
#: depends on the speaker's source (``comparable``).
CHECKS: Mapping[str, tuple[Read, ...]] = {
    "RenderingControl": READS["RenderingControl"][:2],
    "AVTransport": (
        _only("AVTransport", "GetTransportInfo", "CurrentTransportState"),
        _only("AVTransport", "GetPositionInfo", "TrackURI"),
        _only("AVTransport", "GetTransportSettings", "PlayMode"),
    ),
}

#: Sources (``av_transport_uri``) whose track URI the events and ``GetPositionInfo`` give
#: alike, and which changes only with an event: the queue (its items' URIs, as in
#: samples/events/avtransport_lastchange_spotify_queue_jishi.xml and
#: samples/soap/AVTransport_GetPositionInfo_response_jishi.xml) and a group member's
#: ``x-rincon:<coordinator>`` (samples/parsed/ha_fixture_av_transport_event_variables_groupmember
#: .json). A stream's track URI may change between its events (radio), and no sample shows what
#: line-in or TV sources read: those are left out.
_TRACKED_SOURCES = ("x-rincon-queue:", "x-rincon:")

#: The source (and track URI) of a group member: ``x-rincon:<coordinator uid>``.
_MEMBER = "x-rincon:"


def comparable(service: str, known: Mapping[str, Any], read: Mapping[str, Any]) -> dict[str, Any]:
    """The values of a consistency check's ``read`` that can be compared with ``known``, the
    state kept from events (both as JSON, ``variables_to_json``'s shape): a value whose read
    form may legitimately differ from the evented one is left out, since a false
    ``events.gap`` is worse than a lost NOTIFY found late.

    AVTransport's ``current_track_uri`` is compared only while the state's source is one of
    ``_TRACKED_SOURCES`` and neither side is ``TRANSITIONING``; ``current_play_mode`` is not
    compared for a group member (its events say ``NORMAL`` whatever its coordinator plays,
    ``GetTransportSettings`` may answer the coordinator's mode).
    """
    if service != "AVTransport":
        return dict(read)
    values = dict(read)
    source = known.get("av_transport_uri")
    uris = (source, known.get("current_track_uri"), read.get("current_track_uri"))
    if any(isinstance(uri, str) and uri.startswith(_MEMBER) for uri in uris):
        values.pop("current_play_mode", None)
    transitioning = "TRANSITIONING" in (known.get("transport_state"), read.get("transport_state"))
    if transitioning or not (isinstance(source, str) and source.startswith(_TRACKED_SOURCES)):
        values.pop("current_track_uri", None)
    return values


#: Services whose events carry a ``LastChange`` document (DIDL values are parsed there only).
LAST_CHANGE_SERVICES = frozenset({"AVTransport", "RenderingControl", "Queue"})

#: Per service, the names (SoCo's) of the variables a read gives.
VARIABLES: Mapping[str, frozenset[str]] = {
    service: frozenset(camel_to_underscore(wire) for read in reads for _, wire, _ in read.outputs)
    for service, reads in READS.items()
}

#: UPnP error of a GroupRenderingControl read on a speaker that is not its group's coordinator.
_NOT_COORDINATOR = "701"


def _value(service: str, wire: str, text: Any) -> Any:
    if service in LAST_CHANGE_SERVICES and isinstance(text, str) and text.startswith("<DIDL-Lite"):
        return LazyDidl(text, camel_to_underscore(wire))
    return text


class StateReader:
    """Reads services' state with control calls; see the module docstring.

    @param soap: Sends the calls (``household.soap.SoapClient``).
    @param clock: Times whole reads.
    @param timeout: Seconds for a whole read (all its actions); each call's own timeout is
        the client's (``soco.call_timeout``).
    """

    def __init__(self, soap: SoapCaller, clock: IReactorTime, timeout: float | None = None) -> None:
        self._soap = soap
        self._clock = clock
        self._timeout = timeout
        # (speaker uid, service, action, args) of optional actions a speaker refused.
        self._unsupported: set[tuple[str, str, str, tuple[tuple[str, Any], ...]]] = set()

    def read(self, speaker: SpeakerRef, service: str) -> Deferred[dict[str, Any]]:
        """Read ``service``'s state from ``speaker``.

        @return: A Deferred firing with the variables in ``parse_event_xml``'s shape; it
            fails with ``UnreadableService`` for a service not in ``READS``, with
            ``ZoneGroupStateUnavailable`` on a large household, with ``UpnpFault`` or the
            client's other errors otherwise; past the reader's timeout, with ``SlowAnswer``
            naming the answer that was arriving (``AnswerCut``), else ``TimeoutError``.
            A GroupRenderingControl read on a group member (not the coordinator) gives
            ``{}``: only the coordinator answers for the group.
        """
        if service not in READS:
            error = UnreadableService(f"no control call reads {service}")
            failed: Deferred[dict[str, Any]] = Deferred()
            failed.errback(error)
            return failed
        return self._timed(Deferred.fromCoroutine(self._read(speaker, service, READS[service])))

    def check(
        self, speaker: SpeakerRef, services: Iterable[str]
    ) -> Deferred[dict[str, dict[str, Any]]]:
        """Read the few values the consistency check compares (``CHECKS``) of ``services``.

        @return: A Deferred firing with ``{service: variables}`` (``parse_event_xml``'s
            shape) for each of ``services`` that ``CHECKS`` covers.
        """
        wanted = [service for service in services if service in CHECKS]
        return self._timed(Deferred.fromCoroutine(self._check(speaker, wanted)))

    def _timed(self, reading: Deferred[Any]) -> Deferred[Any]:
        if self._timeout is not None:
            reading.addTimeout(self._timeout, self._clock, onTimeoutCancel=_timed_out)
        return reading

    async def _check(self, speaker: SpeakerRef, services: list[str]) -> dict[str, dict[str, Any]]:
        return {
            service: await self._read(speaker, service, CHECKS[service]) for service in services
        }

    async def _read(
        self, speaker: SpeakerRef, service: str, reads: Iterable[Read]
    ) -> dict[str, Any]:
        variables: dict[str, Any] = {}
        for read in reads:
            marker = (speaker.uid, service, read.action, read.args)
            if marker in self._unsupported:
                continue
            try:
                out = await self._soap.call(
                    speaker.host, speaker.port, service, read.action, read.args
                )
            except UpnpFault as error:
                code = str(error.error_code)
                if service == "GroupRenderingControl" and code == _NOT_COORDINATOR:
                    return {}
                if read.action == "GetZoneGroupState" and code == "501":
                    raise ZoneGroupStateUnavailable(variables) from error
                if not read.optional:
                    raise
                log.debug(
                    "{speaker} does not answer {service} {action}: UPnP {code}",
                    speaker=speaker.name or speaker.uid,
                    service=service,
                    action=read.action,
                    code=code,
                )
                self._unsupported.add(marker)
                continue
            for argument, wire, channel in read.outputs:
                if argument not in out:
                    continue
                name = camel_to_underscore(wire)
                value = _value(service, wire, out[argument])
                if channel is None:
                    variables[name] = value
                else:
                    variables.setdefault(name, {})[channel] = value
        if service == "AVTransport":
            _event_duration(variables)
        return variables


def _timed_out(result: Any, seconds: float) -> Any:
    """A whole read cut at its bound: ``SlowAnswer`` naming the answer that was arriving
    then (``AnswerCut``), else Twisted's plain ``TimeoutError``."""
    if isinstance(result, Failure) and result.check(AnswerCut):
        cut = result.value
        assert isinstance(cut, AnswerCut)
        return Failure(SlowAnswer.began(cut.what, cut.host, seconds))
    if isinstance(result, Failure):
        result.trap(CancelledError)
        return Failure(defer.TimeoutError(seconds, "Deferred"))
    return result


#: Track URIs whose event has an empty duration: none, a group member following its
#: coordinator, line-in (samples/events/avtransport_lastchange_linein_soco.xml).
_NO_DURATION = ("x-rincon:", "x-rincon-stream:")


def _event_duration(variables: dict[str, Any]) -> None:
    """``GetPositionInfo`` says ``0:00:00`` where the event has an empty duration."""
    uri = variables.get("current_track_uri") or ""
    if (not uri or uri.startswith(_NO_DURATION)) and variables.get("current_track_duration") in (
        "0:00:00",
        "NOT_IMPLEMENTED",
    ):
        variables["current_track_duration"] = ""
