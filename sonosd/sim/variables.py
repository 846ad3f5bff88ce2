# -*- test-case-name: tests.sim.test_household -*-
"""The evented variables of each service, computed from a speaker's state.

``full_state(speaker, service)`` is what a SEQ 0 NOTIFY carries (wire names, string values,
channel variables as ``{"Master": ..., "LF": ..., "RF": ...}``, DIDL and ZoneGroupState as
unescaped XML strings); the household diffs successive results to event only what changed.
``avtransport`` is also the source of the AVTransport SOAP ``Get*`` answers, so events and
polling always agree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Union

from sonosd.sim.didl import format_duration, track_didl
from sonosd.sim.models import Model
from sonosd.sim.playlists import SavedQueues
from sonosd.sim.speakerstate import Group, Rendering
from sonosd.sim.transport import Transport

EventValue = Union[str, Mapping[str, str]]  # noqa: UP007 - runtime alias for Python 3.11


class Household(Protocol):
    """What the variables read of the household (``sonosd.sim.household.Household``)."""

    household_id: str
    system_update_id: int
    favorites_update_id: int
    service_list_version: int

    @property
    def saved_queues(self) -> SavedQueues: ...

    @property
    def speakers(self) -> Sequence[Speaker]: ...

    @property
    def by_uid(self) -> Mapping[str, Speaker]: ...

    def zone_group_state(self) -> str: ...

    def zone_group_state_of(self, speaker: Any) -> str: ...

    def alarm_list_version(self) -> str: ...


class Speaker(Protocol):
    """What the variables read of a speaker (``sonosd.sim.household.Speaker``)."""

    name: str
    boot_seq: int
    invisible: bool
    channel_map: str
    model: Model
    transport: Transport
    rendering: Rendering
    container_update_ids: str | None

    @property
    def uid(self) -> str: ...

    @property
    def household(self) -> Household: ...

    @property
    def group(self) -> Group: ...

    @property
    def coordinator(self) -> Speaker: ...

    @property
    def is_coordinator(self) -> bool: ...

    @property
    def ht_sat_chan_map(self) -> str: ...

    @property
    def more_info(self) -> str: ...

    def group_volume(self) -> int: ...

    def group_mute(self) -> bool: ...


_NI = "NOT_IMPLEMENTED"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def avtransport(speaker: Speaker) -> dict[str, str]:
    """AVTransport variables; a group member reports ``x-rincon:<coordinator>`` as source."""
    coordinator = speaker.coordinator
    transport = coordinator.transport
    if coordinator is not speaker:
        member_uri = f"x-rincon:{coordinator.uid}"
        return {
            "TransportState": transport.state,
            "CurrentPlayMode": "NORMAL",
            "CurrentCrossfadeMode": "0",
            "NumberOfTracks": "1",
            "CurrentTrack": "1",
            "CurrentSection": "0",
            "CurrentTrackURI": member_uri,
            "CurrentTrackDuration": "",
            "CurrentTrackMetaData": "",
            "r:NextTrackURI": "",
            "r:NextTrackMetaData": "",
            "r:EnqueuedTransportURI": "",
            "r:EnqueuedTransportURIMetaData": "",
            "PlaybackStorageMedium": "NETWORK",
            "AVTransportURI": member_uri,
            "AVTransportURIMetaData": "",
            "NextAVTransportURI": "",
            "NextAVTransportURIMetaData": "",
            "CurrentTransportActions": "Stop, Play",
            "r:CurrentValidPlayModes": "CROSSFADE",
            **_avt_tail(speaker),
        }
    track = transport.current()
    upcoming = transport.next_track()
    if transport.on_queue:
        number_of_tracks = len(transport.queue)
        track_meta = (
            track_didl(track, f"Q:0/{transport.track_no}", "Q:0", playing=True)
            if track is not None
            else ""
        )
    else:
        number_of_tracks = 1 if track is not None else 0
        track_meta = track_didl(track, playing=True) if track is not None else ""
    duration = format_duration(track.duration) if track is not None else ""
    return {
        "TransportState": transport.state,
        "CurrentPlayMode": transport.play_mode,
        "CurrentCrossfadeMode": _flag(transport.crossfade),
        "NumberOfTracks": str(number_of_tracks),
        "CurrentTrack": str(transport.track_no if track is not None else 0),
        "CurrentSection": "0",
        "CurrentTrackURI": track.uri if track is not None else "",
        "CurrentTrackDuration": duration,
        "CurrentTrackMetaData": track_meta,
        "r:NextTrackURI": upcoming.uri if upcoming is not None else "",
        "r:NextTrackMetaData": track_didl(upcoming) if upcoming is not None else "",
        "r:EnqueuedTransportURI": "",
        "r:EnqueuedTransportURIMetaData": "",
        "PlaybackStorageMedium": "NETWORK" if transport.uri else "NONE",
        "AVTransportURI": transport.uri,
        "AVTransportURIMetaData": transport.uri_metadata,
        "NextAVTransportURI": "",
        "NextAVTransportURIMetaData": "",
        "CurrentTransportActions": transport.actions(),
        # Off the queue nothing is valid (a real line-in event: samples/events/
        # avtransport_lastchange_linein_soco.xml); with no source yet, crossfade still is.
        "r:CurrentValidPlayModes": "SHUFFLE,REPEAT,REPEATONE,CROSSFADE"
        if transport.on_queue
        else ("" if transport.uri else "CROSSFADE"),
        **_avt_tail(speaker),
    }


def _avt_tail(speaker: Speaker) -> dict[str, str]:
    transport = speaker.coordinator.transport
    error: dict[str, str] = {}
    if transport.error_uri:
        # Sent only while a track failed (node-sonos issue #175, noson-app issue #78).
        error = {
            "TransportErrorDescription": transport.error_description,
            "TransportErrorURI": transport.error_uri,
        }
    return {
        "r:DirectControlClientID": "",
        "r:DirectControlIsSuspended": "0",
        "r:DirectControlAccountID": "",
        "TransportStatus": transport.status,
        **error,
        "r:SleepTimerGeneration": str(speaker.coordinator.transport.sleep_generation),
        "r:AlarmRunning": "0",
        "r:SnoozeRunning": "0",
        "r:RestartPending": "0",
        "TransportPlaySpeed": _NI,
        "CurrentMediaDuration": _NI,
        "RecordStorageMedium": _NI,
        "PossiblePlaybackStorageMedia": "NONE, NETWORK",
        "PossibleRecordStorageMedia": _NI,
        "RecordMediumWriteStatus": _NI,
        "CurrentRecordQualityMode": _NI,
        "PossibleRecordQualityModes": _NI,
    }


def rendering_control(speaker: Speaker) -> dict[str, EventValue]:
    """RenderingControl variables (soundbars add NightMode and DialogLevel)."""
    r = speaker.rendering
    mute = _flag(r.mute)
    state: dict[str, EventValue] = {
        "Volume": {"Master": str(r.volume), "LF": str(r.balance_lf), "RF": str(r.balance_rf)},
        "Mute": {"Master": mute, "LF": "0", "RF": "0"},
        "Bass": str(r.bass),
        "Treble": str(r.treble),
        "Loudness": {"Master": _flag(r.loudness)},
        "OutputFixed": "0",
        "HeadphoneConnected": "0",
        "SpeakerSize": str(speaker.model.speaker_size),
        "SubGain": str(r.sub_gain),
        "SubCrossover": "0",
        "SubPolarity": "0",
        "SubEnabled": _flag(r.sub_enabled),
        "SonarEnabled": "1",
        "SonarCalibrationAvailable": "1",
        "PresetNameList": "FactoryDefaults",
    }
    if speaker.model.soundbar:
        state.update(
            {
                "NightMode": _flag(r.night_mode),
                "DialogLevel": _flag(r.dialog_level),
                "SpeechEnhanceEnabled": _flag(r.dialog_level),
                "SurroundEnabled": _flag(r.surround_enabled),
                "SurroundMode": str(r.surround_mode),
                "SurroundLevel": str(r.surround_level),
                "MusicSurroundLevel": str(r.music_surround_level),
                "AudioDelay": "0",
            }
        )
    return state


def group_rendering_control(speaker: Speaker) -> dict[str, EventValue]:
    """GroupRenderingControl variables of the speaker's group."""
    coordinator = speaker.coordinator
    return {
        "GroupVolume": str(coordinator.group_volume()),
        "GroupMute": _flag(coordinator.group_mute()),
        "GroupVolumeChangeable": "1",
    }


def queue(speaker: Speaker) -> dict[str, EventValue]:
    """Queue LastChange variables (queue 0)."""
    return {
        "UpdateID": str(speaker.transport.queue_update_id),
        "Curated": "0",
        "QueueOwnerID": "",
    }


def zone_group_topology(speaker: Speaker) -> dict[str, EventValue]:
    """ZoneGroupTopology variables; the group ones describe this speaker's group."""
    household = speaker.household
    group = speaker.group
    coordinator = household.by_uid[group.coordinator]
    visible = [household.by_uid[uid] for uid in group.members]
    others = sum(1 for s in visible if s is not coordinator and not s.invisible)
    group_name = coordinator.name if others == 0 else f"{coordinator.name} + {others}"
    return {
        "ZoneGroupState": household.zone_group_state_of(speaker),
        "ThirdPartyMediaServersX": "",
        "AvailableSoftwareUpdate": (
            '<UpdateItem xmlns="urn:schemas-rinconnetworks-com:update-1-0" Type="Software" '
            f'Version="{speaker.model.software_version}" UpdateURL="" DownloadSize="0" '
            'ManifestURL=""/>'
        ),
        "AlarmRunSequence": f"{speaker.uid}:{speaker.boot_seq}:0",
        "MuseHouseholdId": household.household_id,
        "ZoneGroupName": group_name,
        "ZoneGroupID": group.group_id,
        "ZonePlayerUUIDsInGroup": ",".join(group.members),
        "AreasUpdateID": "",
        "SourceAreasUpdateID": "",
        "NetsettingsUpdateID": "",
    }


def device_properties(speaker: Speaker) -> dict[str, EventValue]:
    """DeviceProperties variables."""
    state = speaker.coordinator.transport.state
    return {
        "SettingsReplicationState": "",
        "ZoneName": speaker.name,
        "Icon": "x-rincon-roomicon:living",
        "Configuration": "1",
        "Invisible": _flag(speaker.invisible),
        "IsZoneBridge": "0",
        "AirPlayEnabled": "0",
        "SupportsAudioIn": _flag(speaker.model.line_in),
        "SupportsAudioClip": "1",
        "IsIdle": _flag(state != "PLAYING"),
        "MoreInfo": speaker.more_info,
        "ChannelMapSet": speaker.channel_map,
        "HTSatChanMapSet": speaker.ht_sat_chan_map,
        "HTBondedZoneCommitState": "0",
        "Orientation": "0",
        "LastChangedPlayState": f"{state},,,",
        "RoomCalibrationState": "4",
        "AvailableRoomCalibration": "",
        "TVConfigurationError": "0",
        "HdmiCecAvailable": _flag(speaker.model.home_theater),
        "WirelessMode": "0",
        "WirelessLeafOnly": "0",
        "HasConfiguredSSID": "1",
        "ChannelFreq": "2412",
        "BehindWifiExtender": "0",
        "WifiEnabled": "1",
        "EthLink": "1",
        "ConfigMode": "",
        "SecureRegState": "3",
        "VoiceConfigState": "0",
        "MicEnabled": "0",
    }


def content_directory(speaker: Speaker) -> dict[str, EventValue]:
    """ContentDirectory variables: update IDs of the queue, the Sonos playlists and the
    favorites; ``ContainerUpdateIDs`` names what changed last."""
    household = speaker.household
    owner = household.speakers[0].uid
    queue_update = f"Q:0,{speaker.transport.queue_update_id}"
    return {
        "SystemUpdateID": str(household.system_update_id + speaker.transport.queue_update_id),
        "ContainerUpdateIDs": speaker.container_update_ids or queue_update,
        "ShareIndexInProgress": "0",
        "ShareIndexLastError": "",
        "UserRadioUpdateID": f"{owner},1",
        "SavedQueuesUpdateID": f"{owner},{household.saved_queues.update_id}",
        "ShareListUpdateID": f"{owner},1",
        "RecentlyPlayedUpdateID": f"{owner},1",
        "Browseable": "1",
        "RadioFavoritesUpdateID": f"{owner},1",
        "RadioLocationUpdateID": f"{owner},1",
        "FavoritesUpdateID": f"{owner},{household.favorites_update_id}",
    }


def alarm_clock(speaker: Speaker) -> dict[str, EventValue]:
    """AlarmClock variables (household-wide alarm list version)."""
    return {
        "TimeZone": "0000000000000000000000000000",
        "TimeServer": "0.sonostime.pool.ntp.org,1.sonostime.pool.ntp.org",
        "TimeGeneration": "1",
        "AlarmListVersion": speaker.household.alarm_list_version(),
        "DailyIndexRefreshTime": "02:00:00",
        "TimeFormat": "INV",
        "DateFormat": "INV",
    }


def group_management(speaker: Speaker) -> dict[str, EventValue]:
    """GroupManagement variables."""
    return {
        "GroupCoordinatorIsLocal": _flag(speaker.is_coordinator),
        "LocalGroupUUID": speaker.group.group_id,
        "VirtualLineInGroupID": "",
        "ResetVolumeAfter": "0",
        "VolumeAVTransportURI": "",
    }


_SINK = "http-get:*:audio/mpeg:*,http-get:*:audio/flac:*,x-file-cifs:*:audio/flac:*," + (
    "x-rincon:*:*:*,x-rincon-mp3radio:*:*:*,x-rincon-queue:*:*:*,x-rincon-stream:*:*:*"
)


def _static(values: Mapping[str, str]) -> Callable[[Speaker], dict[str, EventValue]]:
    return lambda speaker: dict(values)


_SERVICES: dict[str, Callable[[Speaker], Mapping[str, EventValue]]] = {
    "AVTransport": avtransport,
    "RenderingControl": rendering_control,
    "GroupRenderingControl": group_rendering_control,
    "Queue": queue,
    "ZoneGroupTopology": zone_group_topology,
    "DeviceProperties": device_properties,
    "ContentDirectory": content_directory,
    "AlarmClock": alarm_clock,
    "GroupManagement": group_management,
    "SystemProperties": _static(
        {
            "CustomerID": "",
            "UpdateID": "0",
            "UpdateIDX": "0",
            "VoiceUpdateID": "0",
            "ThirdPartyHash": "",
        }
    ),
    "MusicServices": lambda s: {
        "ServiceListVersion": f"{s.uid}:{s.household.service_list_version}"
    },
    "AudioIn": _static(
        {
            "AudioInputName": "Line-In",
            "Icon": "",
            "LineInConnected": "0",
            "LeftLineInLevel": "1",
            "RightLineInLevel": "1",
            "Playing": "0",
        }
    ),
    "HTControl": _static({"TOSLinkConnected": "0", "IRRepeaterState": "Disabled"}),
    "MS_ConnectionManager": _static(
        {"SourceProtocolInfo": "", "SinkProtocolInfo": "", "CurrentConnectionIDs": ""}
    ),
    "MR_ConnectionManager": _static(
        {"SourceProtocolInfo": "", "SinkProtocolInfo": _SINK, "CurrentConnectionIDs": ""}
    ),
    "VirtualLineIn": _static({"CurrentTrackMetaData": ""}),
    "QPlay": _static({}),
}


def full_state(speaker: Speaker, service: str) -> Mapping[str, EventValue]:
    """Every evented variable of ``service`` on ``speaker``; ``KeyError`` for unknown ones."""
    return _SERVICES[service](speaker)
