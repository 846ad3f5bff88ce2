"""Tests for the per-service resend rules (sonosd.sim.eventrules)."""

from __future__ import annotations

from sonosd.sim.eventrules import AVT_TRACK_BLOCK, RC_SUB_BLOCK, event_for

AVT = {
    "TransportState": "STOPPED",
    "CurrentPlayMode": "NORMAL",
    "CurrentCrossfadeMode": "0",
    "NumberOfTracks": "8",
    "CurrentTrack": "1",
    "CurrentSection": "0",
    "CurrentTrackURI": "x-file-cifs://nas/a.flac",
    "CurrentTrackDuration": "0:03:00",
    "CurrentTrackMetaData": "<DIDL-Lite/>",
    "r:NextTrackURI": "x-file-cifs://nas/b.flac",
    "r:NextTrackMetaData": "<DIDL-Lite/>",
    "r:EnqueuedTransportURI": "",
    "r:EnqueuedTransportURIMetaData": "",
    "PlaybackStorageMedium": "NETWORK",
    "AVTransportURI": "x-rincon-queue:RINCON_000E58AAAAAA01400#0",
    "AVTransportURIMetaData": "",
    "CurrentTransportActions": "Set, Play, Stop, Pause, Seek, Next, Previous",
    "r:SleepTimerGeneration": "0",
    "TransportStatus": "OK",
}


def test_nothing_changed_nothing_evented() -> None:
    """The same state twice gives an empty event."""
    assert event_for("AVTransport", AVT, dict(AVT)) == {}
    assert event_for("DeviceProperties", {"ZoneName": "A"}, {"ZoneName": "A"}) == {}


def test_transport_change_resends_the_track_block() -> None:
    """A new transport state resends the whole track block, in body order, and only that."""
    event = event_for("AVTransport", AVT, {**AVT, "TransportState": "PLAYING"})
    assert tuple(event) == AVT_TRACK_BLOCK
    assert event["TransportState"] == "PLAYING"


def test_track_change_with_other_changes() -> None:
    """A track change carries the block plus the other variables that changed with it."""
    event = event_for(
        "AVTransport", AVT, {**AVT, "CurrentTrack": "2", "CurrentTransportActions": "Set"}
    )
    assert set(event) == {*AVT_TRACK_BLOCK, "CurrentTransportActions"}
    assert list(event)[-1] == "CurrentTransportActions"


def test_new_source_resends_everything() -> None:
    """A change of AVTransportURI resends the whole AVTransport state."""
    current = {**AVT, "AVTransportURI": "x-rincon-mp3radio://radio.example/stream"}
    assert event_for("AVTransport", AVT, current) == current


def test_avtransport_change_outside_the_block() -> None:
    """A sleep timer change alone is evented alone."""
    event = event_for("AVTransport", AVT, {**AVT, "r:SleepTimerGeneration": "1"})
    assert event == {"r:SleepTimerGeneration": "1"}


def test_rendering_channels_whole_and_sub_block() -> None:
    """A volume change sends every channel; a sub setting sends the whole sub block."""
    previous = {
        "Volume": {"Master": "20", "LF": "100", "RF": "100"},
        "Bass": "0",
        **dict.fromkeys(RC_SUB_BLOCK, "0"),
    }
    event = event_for(
        "RenderingControl", previous, {**previous, "Volume": {**previous["Volume"], "Master": "30"}}
    )
    assert event == {"Volume": {"Master": "30", "LF": "100", "RF": "100"}}
    event = event_for("RenderingControl", previous, {**previous, "SubGain": "-3"})
    assert tuple(event) == RC_SUB_BLOCK and event["SubGain"] == "-3"


def test_group_rendering_and_queue_send_everything() -> None:
    """GroupRenderingControl and Queue resend all their variables on any change."""
    group = {"GroupVolume": "14", "GroupMute": "0", "GroupVolumeChangeable": "1"}
    assert event_for("GroupRenderingControl", group, {**group, "GroupMute": "1"}) == {
        **group,
        "GroupMute": "1",
    }
    queue = {"UpdateID": "2", "Curated": "0", "QueueOwnerID": ""}
    assert event_for("Queue", queue, {**queue, "UpdateID": "3"}) == {**queue, "UpdateID": "3"}


def test_plain_services_send_what_changed() -> None:
    """DeviceProperties (and every other plain service) events the changed variables only."""
    previous = {"ZoneName": "A", "Icon": "x", "Invisible": "0"}
    assert event_for("DeviceProperties", previous, {**previous, "ZoneName": "B"}) == {
        "ZoneName": "B"
    }
    assert event_for("DeviceProperties", {}, previous) == previous
