"""Tests for L{sonosd.sinks.logsink}."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.logger import LogEvent, globalLogPublisher

from sonosd.delivery.hub import Hub
from sonosd.sinks.logsink import LogSink, summarise


def test_event_line_names_speaker_service_and_values() -> None:
    """An event becomes one line with the room, the service, the seq and the values."""
    line = summarise(
        {
            "id": 7,
            "type": "event",
            "speaker": {"uid": "RINCON_1", "name": "Kitchen"},
            "service": "RenderingControl",
            "seq": 3,
            "variables": {"volume": {"Master": 23, "LF": 100}, "mute": {"Master": False}},
        }
    )
    assert line == "#7 Kitchen RenderingControl seq=3 volume=23 mute=False"


def test_long_events_are_shortened() -> None:
    """Metadata shows title and artist, long values are cut and extra variables counted."""
    variables = {f"v{i}": "x" * 100 for i in range(8)}
    variables["v0"] = {"title": "Song", "artist": "Band", "album": None}  # type: ignore[assignment]
    line = summarise({"id": 1, "type": "event", "service": "AVTransport", "variables": variables})
    assert "v0=Song / Band" in line
    assert "(+2 more)" in line
    assert "x" * 100 not in line


def test_daemon_messages_show_their_fields() -> None:
    """A daemon message shows its type and fields; without a speaker it is the household."""
    line = summarise({"id": 2, "type": "speaker.offline", "reason": "timeout"})
    assert line == "#2 household speaker.offline reason=timeout"


def test_sink_logs_one_line_per_message() -> None:
    """Every published message produces one log event carrying the readable line."""
    seen: list[LogEvent] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        hub = Hub(Clock())
        hub.add_sink(LogSink())
        hub.publish("topology.changed", {"groups": []})
    finally:
        globalLogPublisher.removeObserver(seen.append)
    lines = [e["line"] for e in seen if "line" in e]
    assert lines == ["#1 household topology.changed groups=[0]"]


def test_topology_and_xml_values_are_summarised() -> None:
    """A topology shows its group count and an XML document is not dumped into the log."""
    line = summarise(
        {
            "id": 3,
            "type": "event",
            "speaker": {"name": "Office"},
            "service": "ZoneGroupTopology",
            "seq": 0,
            "variables": {
                "zone_group_state": {"groups": [{}, {}], "vanished": []},
                "available_software_update": '<UpdateItem xmlns="urn:x"/>',
            },
        }
    )
    assert line == "#3 Office ZoneGroupTopology full state, 2 variables"
    changed = summarise(
        {
            "id": 4,
            "type": "event",
            "speaker": {"name": "Office"},
            "service": "ZoneGroupTopology",
            "seq": 5,
            "variables": {
                "zone_group_state": {"groups": [{}, {}], "vanished": []},
                "available_software_update": '<UpdateItem xmlns="urn:x"/>',
            },
        }
    )
    assert changed == (
        "#4 Office ZoneGroupTopology seq=5 zone_group_state=2 groups "
        "available_software_update=<xml>"
    )


def test_supervisor_messages_and_disabled_sink_log_nothing() -> None:
    """Availability, removal, subscription and gap messages are the supervisor's lines, not
    the sink's; a position read is a debug line; a disabled sink (log.messages: false) logs
    nothing at all."""
    seen: list[LogEvent] = []
    globalLogPublisher.addObserver(seen.append)
    try:
        hub = Hub(Clock())
        sink = LogSink()
        hub.add_sink(sink)
        for kind in (
            "speaker.online",
            "speaker.offline",
            "speaker.asleep",
            "speaker.upnp_disabled",
            "speaker.removed",
            "subscription.lost",
            "subscription.restored",
            "events.gap",
        ):
            hub.publish(kind, {"reason": "x"})
        hub.publish("event", {"source": "position", "variables": {"position": "0:00:01"}})
        sink.enabled = False
        hub.publish("topology.changed", {"groups": []})
    finally:
        globalLogPublisher.removeObserver(seen.append)
    lines = [e for e in seen if "line" in e]
    assert [e["log_level"].name for e in lines] == ["debug"]


def test_full_state_is_one_short_line() -> None:
    """A full state (SEQ 0, a resync, a poll) says how many variables, not their values."""
    body = {
        "id": 9,
        "type": "event",
        "speaker": {"name": "Den"},
        "service": "Queue",
        "variables": {"a": 1, "b": 2},
    }
    assert summarise({**body, "seq": 0}) == "#9 Den Queue full state, 2 variables"
    assert summarise({**body, "seq": None, "source": "poll"}) == (
        "#9 Den Queue polled state, 2 variables"
    )
    assert summarise({**body, "seq": None, "source": "resync"}) == (
        "#9 Den Queue resynced state, 2 variables"
    )
