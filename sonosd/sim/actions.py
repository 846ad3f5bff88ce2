# -*- test-case-name: tests.sim.test_soco -*-
"""The SOAP actions a simulated speaker carries out, by service and action name.

Each handler takes the speaker and the request's arguments (names without namespace, values
unescaped) and returns its out-arguments; the site orders them as the SCPD declares. Handlers
are lenient as speakers are (extra arguments ignored, optional ones defaulted) and fail with
the UPnP errors real firmware answers: 402 invalid args, 701 transition not available,
711 illegal seek target, 712 play mode not supported, 714 illegal MIME type, 718 invalid
instance ID, 800 transport command on a grouped non-coordinator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sonosd.sim import content, variables
from sonosd.sim.didl import format_duration, parse_duration
from sonosd.sim.soap import UPnPError
from sonosd.sim.soapargs import boolean as _bool
from sonosd.sim.soapargs import flag as _flag
from sonosd.sim.soapargs import integer as _int
from sonosd.sim.soapargs import required as _required

if TYPE_CHECKING:
    from sonosd.sim.household import Speaker

Args = Mapping[str, str]
Out = dict[str, str]
Handler = Callable[["Speaker", Args], Out]

HANDLERS: dict[tuple[str, str], Handler] = {}

#: Services whose actions carry an ``InstanceID`` (only 0 exists: 718 otherwise).
_INSTANCED = frozenset(
    {"AVTransport", "RenderingControl", "GroupRenderingControl", "VirtualLineIn"}
)

#: AVTransport actions a group member refuses with 800 (the coordinator owns the transport).
COORDINATOR_ONLY = frozenset(
    {
        "Play",
        "Pause",
        "Stop",
        "Next",
        "Previous",
        "Seek",
        "SetPlayMode",
        "SetCrossfadeMode",
        "ConfigureSleepTimer",
    }
)


def action(service: str, name: str) -> Callable[[Handler], Handler]:
    """Register a handler for ``service``'s action ``name``."""

    def register(handler: Handler) -> Handler:
        HANDLERS[(service, name)] = handler
        return handler

    return register


def run(speaker: Speaker, service: str, name: str, args: Args) -> Out:
    """Carry out one action the service declares; raises ``UPnPError``.

    A declared action the simulator does not model fails with 501 (Action Failed); the site
    answers 401 itself for actions the service does not declare at all.
    """
    handler = HANDLERS.get((service, name))
    if handler is None:
        raise UPnPError(501, f"{service} {name} is not modelled by the simulator")
    if service in _INSTANCED and args.get("InstanceID", "0").strip() != "0":
        raise UPnPError(718, "invalid instance ID")
    if service == "AVTransport" and name in COORDINATOR_ONLY and not speaker.is_coordinator:
        raise UPnPError(800, "not the group coordinator")
    if speaker.invisible and service == "AVTransport" and name in COORDINATOR_ONLY:
        raise UPnPError(800, "an invisible stereo member has no transport")
    return handler(speaker, args)


# -- argument helpers ----------------------------------------------------------------------


def _channel(args: Args) -> str:
    channel = args.get("Channel", "Master").strip() or "Master"
    if channel not in ("Master", "LF", "RF"):
        raise UPnPError(402, f"unknown channel {channel}")
    return channel


# -- DeviceProperties ----------------------------------------------------------------------


@action("DeviceProperties", "GetHouseholdID")
def _get_household_id(speaker: Speaker, args: Args) -> Out:
    return {"CurrentHouseholdID": speaker.household.household_id}


@action("DeviceProperties", "GetZoneAttributes")
def _get_zone_attributes(speaker: Speaker, args: Args) -> Out:
    return {
        "CurrentZoneName": speaker.name,
        "CurrentIcon": "x-rincon-roomicon:living",
        "CurrentConfiguration": "1",
        "CurrentTargetRoomName": speaker.name,
    }


@action("DeviceProperties", "SetZoneAttributes")
def _set_zone_attributes(speaker: Speaker, args: Args) -> Out:
    name = args.get("DesiredZoneName", "").strip()
    if name and name != speaker.name:
        speaker.rename(name)
    return {}


def _stereo_map(speaker: Speaker, args: Args) -> tuple[str, str]:
    """The (left, right) UIDs of a stereo ``ChannelMapSet``:
    ``<left>:LF,LF;<right>:RF,RF`` (402 for anything else)."""
    channels: dict[str, str] = {}
    for entry in args.get("ChannelMapSet", "").split(";"):
        uid, _, channel = entry.partition(":")
        if uid not in speaker.household.by_uid or channel not in ("LF,LF", "RF,RF"):
            raise UPnPError(402, f"bad ChannelMapSet entry {entry!r}")
        channels[channel] = uid
    if len(channels) != 2 or channels["LF,LF"] == channels["RF,RF"]:
        raise UPnPError(402, "ChannelMapSet must be <left>:LF,LF;<right>:RF,RF")
    return channels["LF,LF"], channels["RF,RF"]


@action("DeviceProperties", "CreateStereoPair")
@action("DeviceProperties", "AddBondedZones")
def _create_stereo_pair(speaker: Speaker, args: Args) -> Out:
    # AddBondedZones with a stereo map is what SoCo's create_stereo_pair sends.
    left, right = _stereo_map(speaker, args)
    if left != speaker.uid:
        raise UPnPError(402, "ChannelMapSet must be <this speaker>:LF,LF;<other>:RF,RF")
    household = speaker.household
    try:
        household.pair(speaker, household.by_uid[right])
    except ValueError as e:
        raise UPnPError(800, str(e)) from None
    return {}


@action("DeviceProperties", "SeparateStereoPair")
def _separate_stereo_pair(speaker: Speaker, args: Args) -> Out:
    # The pair's own ChannelMapSet, sent to either half (node-sonos-ts documents the
    # argument as the pair's map; the apps send it to the left speaker).
    left, right = _stereo_map(speaker, args)
    if speaker.pair_partner is None:
        raise UPnPError(800, f"{speaker.name} is not in a stereo pair")
    if speaker.channel_map != f"{left}:LF,LF;{right}:RF,RF":
        raise UPnPError(800, f"ChannelMapSet is not the stereo pair of {speaker.name}")
    speaker.household.unpair(speaker)
    return {}


@action("DeviceProperties", "RemoveBondedZones")
def _remove_bonded_zones(speaker: Speaker, args: Args) -> Out:
    # What SoCo's separate_stereo_pair sends (ChannelMapSet empty, KeepGrouped 0), to
    # either half. A home theatre is taken apart with RemoveHTSatellite instead.
    if speaker.satellites or speaker.ht_primary is not None:
        raise UPnPError(501, "RemoveBondedZones on a home theatre is not modelled")
    if speaker.pair_partner is None:
        raise UPnPError(800, f"{speaker.name} is not bonded to other speakers")
    speaker.household.unpair(speaker)
    return {}


def _home_theatre_lead(speaker: Speaker, name: str) -> None:
    """401 for a home-theatre action sent to a speaker that cannot lead one (not a
    soundbar or Amp, or bonded into another room), as speakers answer (docs/simulator.md,
    "Home theatres")."""
    if not speaker.model.home_theater or speaker.invisible or speaker.pair_partner is not None:
        raise UPnPError(401, f"{name}: {speaker.name} cannot lead a home theatre")


@action("DeviceProperties", "AddHTSatellite")
def _add_ht_satellite(speaker: Speaker, args: Args) -> Out:
    # Sent to the soundbar with its map and one new satellite (<bar>:LF,RF;<sat>:SW, the
    # bar also as CC); satellites it has already may be listed again at their channels.
    _home_theatre_lead(speaker, "AddHTSatellite")
    household = speaker.household
    entries: dict[str, str] = {}
    for entry in args.get("HTSatChanMapSet", "").split(";"):
        uid, _, channels = entry.partition(":")
        if uid not in household.by_uid or not channels or uid in entries:
            raise UPnPError(800, f"bad HTSatChanMapSet entry {entry!r}")
        entries[uid] = channels.split(",")[0]
    if entries.pop(speaker.uid, None) not in ("LF", "CC"):
        raise UPnPError(402, "HTSatChanMapSet must name this soundbar LF,RF (or CC)")
    new = {
        uid: channel
        for uid, channel in entries.items()
        if not (uid in speaker.satellites and household.by_uid[uid].ht_channel == channel)
    }
    if len(new) > 1:
        raise UPnPError(800, "one satellite at a time")
    for uid, channel in new.items():
        try:
            household.add_satellite(speaker, household.by_uid[uid], channel)
        except NotImplementedError as e:
            raise UPnPError(501, str(e)) from None
        except ValueError as e:
            raise UPnPError(800, str(e)) from None
    return {}


@action("DeviceProperties", "RemoveHTSatellite")
def _remove_ht_satellite(speaker: Speaker, args: Args) -> Out:
    _home_theatre_lead(speaker, "RemoveHTSatellite")
    uid = _required(args, "SatRoomUUID").strip()
    if uid not in speaker.satellites:
        raise UPnPError(800, f"{uid} is not a satellite of {speaker.name}")
    speaker.household.remove_satellite(speaker.household.by_uid[uid])
    return {}


@action("DeviceProperties", "GetZoneInfo")
def _get_zone_info(speaker: Speaker, args: Args) -> Out:
    return {
        "SerialNumber": speaker.identity.serial,
        "SoftwareVersion": speaker.model.software_version,
        "DisplaySoftwareVersion": speaker.model.display_version,
        "HardwareVersion": speaker.model.hardware_version,
        "IPAddress": speaker.address,
        "MACAddress": speaker.identity.mac,
        "CopyrightInfo": "© 2003-2026, Sonos, Inc. All rights reserved.",
        "ExtraInfo": "",
        "HTAudioIn": "0",
        "Flags": "0",
    }


@action("DeviceProperties", "GetLEDState")
def _get_led_state(speaker: Speaker, args: Args) -> Out:
    return {"CurrentLEDState": "On" if speaker.led_on else "Off"}


@action("DeviceProperties", "SetLEDState")
def _set_led_state(speaker: Speaker, args: Args) -> Out:
    state = _required(args, "DesiredLEDState")
    if state not in ("On", "Off"):
        raise UPnPError(402, "LED state must be On or Off")
    speaker.set_led(state == "On")
    return {}


@action("DeviceProperties", "GetButtonLockState")
def _get_button_lock(speaker: Speaker, args: Args) -> Out:
    return {"CurrentButtonLockState": "On" if speaker.buttons_locked else "Off"}


@action("DeviceProperties", "SetButtonLockState")
def _set_button_lock(speaker: Speaker, args: Args) -> Out:
    state = _required(args, "DesiredButtonLockState")
    if state not in ("On", "Off"):
        raise UPnPError(402, "button lock state must be On or Off")
    speaker.buttons_locked = state == "On"
    return {}


# -- ZoneGroupTopology ---------------------------------------------------------------------


@action("ZoneGroupTopology", "GetZoneGroupState")
def _get_zone_group_state(speaker: Speaker, args: Args) -> Out:
    household = speaker.household
    players = sum(not s.left_household for s in household.speakers)
    if household.modes.zone_group_state_refused(players):
        # Large households: real speakers fail the action (SoCo #518, HA #70194).
        raise UPnPError(501, "GetZoneGroupState fails in a large household")
    return {"ZoneGroupState": household.zone_group_state_of(speaker)}


@action("ZoneGroupTopology", "GetZoneGroupAttributes")
def _get_zone_group_attributes(speaker: Speaker, args: Args) -> Out:
    state = variables.zone_group_topology(speaker)
    return {
        "CurrentZoneGroupName": str(state["ZoneGroupName"]),
        "CurrentZoneGroupID": str(state["ZoneGroupID"]),
        "CurrentZonePlayerUUIDsInGroup": str(state["ZonePlayerUUIDsInGroup"]),
        "CurrentMuseHouseholdId": speaker.household.household_id,
    }


# -- RenderingControl ----------------------------------------------------------------------


@action("RenderingControl", "GetVolume")
def _get_volume(speaker: Speaker, args: Args) -> Out:
    channel = _channel(args)
    r = speaker.rendering
    value = {"Master": r.volume, "LF": r.balance_lf, "RF": r.balance_rf}[channel]
    return {"CurrentVolume": str(value)}


@action("RenderingControl", "SetVolume")
def _set_volume(speaker: Speaker, args: Args) -> Out:
    speaker.set_volume(_int(args, "DesiredVolume"), _channel(args))
    return {}


@action("RenderingControl", "SetRelativeVolume")
def _set_relative_volume(speaker: Speaker, args: Args) -> Out:
    adjustment = _int(args, "Adjustment")
    return {"NewVolume": str(speaker.set_volume(speaker.rendering.volume + adjustment))}


@action("RenderingControl", "RampToVolume")
def _ramp_to_volume(speaker: Speaker, args: Args) -> Out:
    target = _int(args, "DesiredVolume")
    ramp_type = args.get("RampType", "SLEEP_TIMER_RAMP_TYPE").strip() or "SLEEP_TIMER_RAMP_TYPE"
    seconds = speaker.ramp.start(speaker.rendering.volume, target, ramp_type)
    return {"RampTime": str(seconds)}


@action("RenderingControl", "GetMute")
def _get_mute(speaker: Speaker, args: Args) -> Out:
    channel = _channel(args)
    return {"CurrentMute": _flag(speaker.rendering.mute) if channel == "Master" else "0"}


@action("RenderingControl", "SetMute")
def _set_mute(speaker: Speaker, args: Args) -> Out:
    if _channel(args) == "Master":
        speaker.set_mute(_bool(args, "DesiredMute"))
    return {}


@action("RenderingControl", "GetBass")
def _get_bass(speaker: Speaker, args: Args) -> Out:
    return {"CurrentBass": str(speaker.rendering.bass)}


@action("RenderingControl", "SetBass")
def _set_bass(speaker: Speaker, args: Args) -> Out:
    speaker.set_bass(_int(args, "DesiredBass"))
    return {}


@action("RenderingControl", "GetTreble")
def _get_treble(speaker: Speaker, args: Args) -> Out:
    return {"CurrentTreble": str(speaker.rendering.treble)}


@action("RenderingControl", "SetTreble")
def _set_treble(speaker: Speaker, args: Args) -> Out:
    speaker.set_treble(_int(args, "DesiredTreble"))
    return {}


@action("RenderingControl", "GetLoudness")
def _get_loudness(speaker: Speaker, args: Args) -> Out:
    return {"CurrentLoudness": _flag(speaker.rendering.loudness)}


@action("RenderingControl", "SetLoudness")
def _set_loudness(speaker: Speaker, args: Args) -> Out:
    speaker.set_loudness(_bool(args, "DesiredLoudness"))
    return {}


@action("RenderingControl", "GetEQ")
def _get_eq(speaker: Speaker, args: Args) -> Out:
    return {"CurrentValue": str(speaker.get_eq(_required(args, "EQType")))}


@action("RenderingControl", "SetEQ")
def _set_eq(speaker: Speaker, args: Args) -> Out:
    speaker.set_eq(_required(args, "EQType"), _int(args, "DesiredValue"))
    return {}


@action("RenderingControl", "GetOutputFixed")
def _get_output_fixed(speaker: Speaker, args: Args) -> Out:
    return {"CurrentFixed": "0"}


@action("RenderingControl", "GetSupportsOutputFixed")
def _get_supports_output_fixed(speaker: Speaker, args: Args) -> Out:
    return {"CurrentSupportsFixed": "0"}


@action("RenderingControl", "GetHeadphoneConnected")
def _get_headphone_connected(speaker: Speaker, args: Args) -> Out:
    return {"CurrentHeadphoneConnected": "0"}


@action("RenderingControl", "GetRoomCalibrationStatus")
def _get_room_calibration(speaker: Speaker, args: Args) -> Out:
    return {"RoomCalibrationEnabled": "0", "RoomCalibrationAvailable": "0"}


# -- GroupRenderingControl (coordinator only: 701 elsewhere) -------------------------------


def _group_coordinator(speaker: Speaker) -> Speaker:
    if not speaker.is_coordinator:
        raise UPnPError(701, "player is not the group coordinator")
    return speaker


@action("GroupRenderingControl", "GetGroupVolume")
def _get_group_volume(speaker: Speaker, args: Args) -> Out:
    return {"CurrentVolume": str(_group_coordinator(speaker).group_volume())}


@action("GroupRenderingControl", "SetGroupVolume")
def _set_group_volume(speaker: Speaker, args: Args) -> Out:
    _group_coordinator(speaker).set_group_volume(_int(args, "DesiredVolume"))
    return {}


@action("GroupRenderingControl", "SetRelativeGroupVolume")
def _set_relative_group_volume(speaker: Speaker, args: Args) -> Out:
    coordinator = _group_coordinator(speaker)
    adjustment = _int(args, "Adjustment")
    return {"NewVolume": str(coordinator.set_group_volume(coordinator.group_volume() + adjustment))}


@action("GroupRenderingControl", "GetGroupMute")
def _get_group_mute(speaker: Speaker, args: Args) -> Out:
    return {"CurrentMute": _flag(_group_coordinator(speaker).group_mute())}


@action("GroupRenderingControl", "SetGroupMute")
def _set_group_mute(speaker: Speaker, args: Args) -> Out:
    _group_coordinator(speaker).set_group_mute(_bool(args, "DesiredMute"))
    return {}


@action("GroupRenderingControl", "SnapshotGroupVolume")
def _snapshot_group_volume(speaker: Speaker, args: Args) -> Out:
    _group_coordinator(speaker)
    return {}


# -- AVTransport ---------------------------------------------------------------------------


@action("AVTransport", "SetAVTransportURI")
def _set_av_transport_uri(speaker: Speaker, args: Args) -> Out:
    uri = _required(args, "CurrentURI").strip()
    metadata = args.get("CurrentURIMetaData", "")
    household = speaker.household
    if uri.startswith("x-rincon:"):
        target = household.by_uid.get(uri.removeprefix("x-rincon:"))
        if target is None:
            raise UPnPError(402, f"unknown player {uri}")
        if target is speaker:
            raise UPnPError(701, "a player cannot join itself")
        household.join(speaker, target)
        return {}
    if uri.startswith("x-rincon-queue:") and uri != speaker.transport.queue_uri:
        raise UPnPError(402, "not this player's queue")
    track = None
    if uri != speaker.transport.queue_uri:
        track = content.input_track(household, uri) or content.single_track(
            household, uri, metadata
        )
    if speaker.invisible:
        raise UPnPError(800, "an invisible stereo member has no transport")
    if not speaker.is_coordinator:
        household.unjoin(speaker)
    speaker.transport.set_uri(uri, metadata, track)
    return {}


@action("AVTransport", "GetTransportInfo")
def _get_transport_info(speaker: Speaker, args: Args) -> Out:
    transport = speaker.coordinator.transport
    return {
        "CurrentTransportState": transport.state,
        "CurrentTransportStatus": transport.status,
        "CurrentSpeed": "1",
    }


@action("AVTransport", "GetPositionInfo")
def _get_position_info(speaker: Speaker, args: Args) -> Out:
    view = variables.avtransport(speaker)
    transport = speaker.coordinator.transport
    has_track = transport.current() is not None
    return {
        "Track": view["CurrentTrack"],
        "TrackDuration": view["CurrentTrackDuration"] or "0:00:00",
        "TrackMetaData": view["CurrentTrackMetaData"],
        "TrackURI": view["CurrentTrackURI"],
        "RelTime": format_duration(transport.position()) if has_track else "0:00:00",
        "AbsTime": "NOT_IMPLEMENTED",
        "RelCount": "2147483647",
        "AbsCount": "2147483647",
    }


@action("AVTransport", "GetMediaInfo")
def _get_media_info(speaker: Speaker, args: Args) -> Out:
    view = variables.avtransport(speaker)
    return {
        "NrTracks": view["NumberOfTracks"],
        "MediaDuration": "NOT_IMPLEMENTED",
        "CurrentURI": view["AVTransportURI"],
        "CurrentURIMetaData": view["AVTransportURIMetaData"],
        "NextURI": "",
        "NextURIMetaData": "",
        "PlayMedium": view["PlaybackStorageMedium"],
        "RecordMedium": "NOT_IMPLEMENTED",
        "WriteStatus": "NOT_IMPLEMENTED",
    }


@action("AVTransport", "GetTransportSettings")
def _get_transport_settings(speaker: Speaker, args: Args) -> Out:
    return {
        "PlayMode": speaker.coordinator.transport.play_mode,
        "RecQualityMode": "NOT_IMPLEMENTED",
    }


@action("AVTransport", "GetCrossfadeMode")
def _get_crossfade_mode(speaker: Speaker, args: Args) -> Out:
    return {"CrossfadeMode": _flag(speaker.coordinator.transport.crossfade)}


@action("AVTransport", "GetCurrentTransportActions")
def _get_current_transport_actions(speaker: Speaker, args: Args) -> Out:
    return {"Actions": variables.avtransport(speaker)["CurrentTransportActions"]}


@action("AVTransport", "GetDeviceCapabilities")
def _get_device_capabilities(speaker: Speaker, args: Args) -> Out:
    return {
        "PlayMedia": "NONE, NETWORK",
        "RecMedia": "NOT_IMPLEMENTED",
        "RecQualityModes": "NOT_IMPLEMENTED",
    }


@action("AVTransport", "Play")
def _play(speaker: Speaker, args: Args) -> Out:
    speaker.transport.play()
    return {}


@action("AVTransport", "Pause")
def _pause(speaker: Speaker, args: Args) -> Out:
    speaker.transport.pause()
    return {}


@action("AVTransport", "Stop")
def _stop(speaker: Speaker, args: Args) -> Out:
    speaker.transport.stop()
    return {}


@action("AVTransport", "Next")
def _next(speaker: Speaker, args: Args) -> Out:
    speaker.transport.next()
    return {}


@action("AVTransport", "Previous")
def _previous(speaker: Speaker, args: Args) -> Out:
    speaker.transport.previous()
    return {}


@action("AVTransport", "Seek")
def _seek(speaker: Speaker, args: Args) -> Out:
    unit = _required(args, "Unit").strip()
    target = _required(args, "Target").strip()
    if unit == "REL_TIME":
        speaker.transport.seek_time(parse_duration(target))
    elif unit == "TRACK_NR":
        speaker.transport.seek_track(int(target) if target.isdigit() else None)
    else:
        raise UPnPError(711, f"seek unit {unit} not supported")
    return {}


@action("AVTransport", "SetPlayMode")
def _set_play_mode(speaker: Speaker, args: Args) -> Out:
    speaker.transport.set_play_mode(_required(args, "NewPlayMode").strip().upper())
    return {}


@action("AVTransport", "SetCrossfadeMode")
def _set_crossfade_mode(speaker: Speaker, args: Args) -> Out:
    speaker.transport.set_crossfade(_bool(args, "CrossfadeMode"))
    return {}


@action("AVTransport", "BecomeCoordinatorOfStandaloneGroup")
def _become_standalone(speaker: Speaker, args: Args) -> Out:
    delegated, group_id = speaker.household.unjoin(speaker)
    return {"DelegatedGroupCoordinatorID": delegated, "NewGroupID": group_id}


@action("AVTransport", "ConfigureSleepTimer")
def _configure_sleep_timer(speaker: Speaker, args: Args) -> Out:
    text = args.get("NewSleepTimerDuration", "").strip()
    if not text:
        speaker.transport.configure_sleep(None)
        return {}
    seconds = parse_duration(text)
    if seconds is None:
        raise UPnPError(402, "bad sleep timer duration")
    speaker.transport.configure_sleep(seconds)
    return {}


@action("AVTransport", "GetRemainingSleepTimerDuration")
def _get_remaining_sleep(speaker: Speaker, args: Args) -> Out:
    transport = speaker.coordinator.transport
    remaining = transport.remaining_sleep()
    return {
        "RemainingSleepTimerDuration": "" if remaining is None else format_duration(remaining),
        "CurrentSleepTimerGeneration": str(transport.sleep_generation),
    }


# -- AlarmClock ----------------------------------------------------------------------------


@action("AlarmClock", "GetFormat")
def _get_format(speaker: Speaker, args: Args) -> Out:
    return {"CurrentTimeFormat": "INV", "CurrentDateFormat": "INV"}


@action("AlarmClock", "GetTimeZone")
def _get_time_zone(speaker: Speaker, args: Args) -> Out:
    return {"Index": "0", "AutoAdjustDst": "1"}


@action("AlarmClock", "GetTimeServer")
def _get_time_server(speaker: Speaker, args: Args) -> Out:
    return {"CurrentTimeServer": str(variables.alarm_clock(speaker)["TimeServer"])}


@action("AlarmClock", "GetDailyIndexRefreshTime")
def _get_daily_index_refresh_time(speaker: Speaker, args: Args) -> Out:
    return {"CurrentDailyIndexRefreshTime": "02:00:00"}


# -- small services ------------------------------------------------------------------------


def _connection_manager(service: str) -> None:
    @action(service, "GetProtocolInfo")
    def _get_protocol_info(speaker: Speaker, args: Args) -> Out:
        state = variables.full_state(speaker, service)
        return {"Source": str(state["SourceProtocolInfo"]), "Sink": str(state["SinkProtocolInfo"])}

    @action(service, "GetCurrentConnectionIDs")
    def _get_connection_ids(speaker: Speaker, args: Args) -> Out:
        return {"ConnectionIDs": ""}


_connection_manager("MS_ConnectionManager")
_connection_manager("MR_ConnectionManager")


@action("AudioIn", "GetAudioInputAttributes")
def _get_audio_input_attributes(speaker: Speaker, args: Args) -> Out:
    return {"CurrentName": "Line-In", "CurrentIcon": ""}


@action("AudioIn", "GetLineInLevel")
def _get_line_in_level(speaker: Speaker, args: Args) -> Out:
    return {"CurrentLeftLineInLevel": "1", "CurrentRightLineInLevel": "1"}


@action("HTControl", "GetIRRepeaterState")
def _get_ir_repeater_state(speaker: Speaker, args: Args) -> Out:
    return {"CurrentIRRepeaterState": "Disabled"}


@action("HTControl", "GetLEDFeedbackState")
def _get_led_feedback_state(speaker: Speaker, args: Args) -> Out:
    return {"LEDFeedbackState": "On"}


@action("SystemProperties", "GetString")
def _get_string(speaker: Speaker, args: Args) -> Out:
    _required(args, "VariableName")
    return {"StringValue": ""}
