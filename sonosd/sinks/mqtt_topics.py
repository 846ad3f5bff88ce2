# -*- test-case-name: tests.sinks.test_mqtt_topics -*-
"""The MQTT topic layout and the Home Assistant discovery documents: pure, no I/O.

Layout (``docs/mqtt.md``), ``<key>`` being the speaker's room name made topic-safe, or its
uid when the room is unknown or already taken by another speaker::

    <prefix>/bridge/availability              online | offline   retained, last will offline
    <prefix>/bridge/topology/<household>      topology.changed   retained, one per household
    <prefix>/bridge/alarms/<household>        alarms.changed     retained, one per household
    <prefix>/bridge/gap                       events not published while disconnected
    <prefix>/bridge/event/<type>              household-wide messages
    <prefix>/<key>/availability               online | offline   retained
    <prefix>/<key>/state/<service>            merged state       retained
    <prefix>/<key>/event/<service>            each ``event`` message
    <prefix>/<key>/event/<type>               the speaker's other messages (speaker.offline...)
    <prefix>/<key>/cmd/<command>              JSON arguments     → Controller.execute
    <prefix>/<key>/cmd/<command>/result       the command's result or error
"""

from __future__ import annotations

from typing import Any

import attrs

_UNSAFE = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


def segment(name: str) -> str:
    """``name`` as one topic level: ``/``, ``+``, ``#`` and NUL become ``_``; trimmed."""
    return name.translate(_UNSAFE).strip()


#: The longest room name (UTF-8 bytes, made topic-safe) that becomes a topic level: MQTT
#: refuses topics over 65,535 bytes, and a speaker is a remote peer; a longer name counts as
#: none (the uid is used).
MAX_ROOM_KEY = 1024


def room_key(room: str | None) -> str:
    """The topic level a room name gives, or ``""`` when it gives none (no name, nothing
    left once made topic-safe, or over ``MAX_ROOM_KEY`` bytes)."""
    key = segment(room) if room else ""
    return key if len(key.encode("utf-8", "surrogatepass")) <= MAX_ROOM_KEY else ""


@attrs.frozen
class Topics:
    """Every topic of one prefix."""

    prefix: str = "sonos"

    @property
    def bridge_availability(self) -> str:
        """``online`` while the daemon is connected; the broker's last will sets ``offline``."""
        return f"{self.prefix}/bridge/availability"

    def bridge_topology(self, household: str | None) -> str:
        """One household's topology (its last ``topology.changed`` message), retained; a
        topology of a household not known yet goes under ``unknown``."""
        return f"{self.prefix}/bridge/topology/{segment(household or '') or 'unknown'}"

    def bridge_alarms(self, household: str | None) -> str:
        """One household's alarms (its last ``alarms.changed`` message), retained."""
        return f"{self.prefix}/bridge/alarms/{segment(household or '') or 'unknown'}"

    @property
    def bridge_gap(self) -> str:
        """Says how many messages were not published while the broker was unreachable."""
        return f"{self.prefix}/bridge/gap"

    def bridge_event(self, kind: str) -> str:
        """A household-wide message (no speaker)."""
        return f"{self.prefix}/bridge/event/{segment(kind)}"

    def availability(self, key: str) -> str:
        """A speaker's availability, retained."""
        return f"{self.prefix}/{key}/availability"

    def state(self, key: str, service: str) -> str:
        """A speaker's merged state of one service, retained."""
        return f"{self.prefix}/{key}/state/{segment(service)}"

    def event(self, key: str, name: str) -> str:
        """A speaker's message: ``name`` is the service of an ``event``, else the type."""
        return f"{self.prefix}/{key}/event/{segment(name)}"

    @property
    def commands(self) -> str:
        """The subscription that receives every command."""
        return f"{self.prefix}/+/cmd/+"

    def command(self, key: str, command: str) -> str:
        """Where a command for speaker ``key`` is published."""
        return f"{self.prefix}/{key}/cmd/{command}"

    def result(self, key: str, command: str) -> str:
        """Where the result of a command is published."""
        return f"{self.prefix}/{key}/cmd/{command}/result"

    def parse_command(self, topic: str) -> tuple[str, str] | None:
        """``(key, command)`` of a command topic, or ``None`` for any other topic."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        parts = topic[len(head) :].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or not parts[0] or not parts[2]:
            return None
        return parts[0], parts[2]


#: Sensors published for Home Assistant: (object id, name, service, value template, extras).
_SENSORS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    (
        "volume",
        "Volume",
        "RenderingControl",
        "{{ value_json.variables.volume.Master }}",
        {"unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:volume-high"},
    ),
    (
        "transport_state",
        "Transport state",
        "AVTransport",
        "{{ value_json.variables.transport_state }}",
        {"icon": "mdi:play-pause"},
    ),
    (
        "play_mode",
        "Play mode",
        "AVTransport",
        "{{ value_json.variables.current_play_mode }}",
        {"icon": "mdi:shuffle-variant", "entity_category": "diagnostic"},
    ),
    (
        "title",
        "Title",
        "AVTransport",
        "{{ (value_json.variables.current_track_meta_data or {}).title or '' }}",
        {"icon": "mdi:music"},
    ),
    (
        "artist",
        "Artist",
        "AVTransport",
        "{{ (value_json.variables.current_track_meta_data or {}).artist or '' }}",
        {"icon": "mdi:account-music"},
    ),
    (
        "album",
        "Album",
        "AVTransport",
        "{{ (value_json.variables.current_track_meta_data or {}).album or '' }}",
        {"icon": "mdi:album"},
    ),
)

#: Buttons published when commands are available: (object id, name, command, icon).
_BUTTONS: tuple[tuple[str, str, str, str], ...] = (
    ("play", "Play", "play", "mdi:play"),
    ("pause", "Pause", "pause", "mdi:pause"),
    ("next", "Next", "next", "mdi:skip-next"),
    ("previous", "Previous", "previous", "mdi:skip-previous"),
)


def discovery(
    discovery_prefix: str,
    topics: Topics,
    uid: str,
    key: str,
    room: str | None,
    *,
    commands: bool,
) -> list[tuple[str, dict[str, Any]]]:
    """Home Assistant MQTT discovery documents for one speaker: ``(topic, config)`` pairs.

    HA has no MQTT ``media_player``; the speaker becomes a device with sensors (volume,
    transport state, play mode, title, artist, album), a mute binary sensor, an album art
    image and, when commands are available, a volume number, a mute switch and
    play/pause/next/previous buttons. Every entity is available only while both the
    daemon and the speaker are.
    """
    node = "sonosd_" + segment(uid)
    device = {
        "identifiers": [f"sonosd_{uid}"],
        "name": room or uid,
        "manufacturer": "Sonos",
        "via_device": "sonosd_bridge",
    }
    common: dict[str, Any] = {
        "device": device,
        "availability": [
            {"topic": topics.bridge_availability},
            {"topic": topics.availability(key)},
        ],
        "availability_mode": "all",
        "origin": {"name": "sonosd"},
    }

    def config(component: str, object_id: str, fields: dict[str, Any]) -> tuple[str, dict]:
        body = {"unique_id": f"{node}_{object_id}", **common, **fields}
        return f"{discovery_prefix}/{component}/{node}/{object_id}/config", body

    documents = [
        config(
            "sensor",
            object_id,
            {
                "name": name,
                "state_topic": topics.state(key, service),
                "value_template": template,
                **extras,
            },
        )
        for object_id, name, service, template, extras in _SENSORS
    ]
    mute_state = "{{ 'ON' if value_json.variables.mute.Master else 'OFF' }}"
    documents.append(
        config(
            "binary_sensor",
            "muted",
            {
                "name": "Muted",
                "state_topic": topics.state(key, "RenderingControl"),
                "value_template": mute_state,
                "icon": "mdi:volume-off",
            },
        )
    )
    documents.append(
        config(
            "image",
            "album_art",
            {
                "name": "Album art",
                "url_topic": topics.state(key, "AVTransport"),
                "url_template": (
                    "{{ (value_json.variables.current_track_meta_data or {}).album_art_uri or '' }}"
                ),
            },
        )
    )
    if commands:
        documents.append(
            config(
                "number",
                "volume_set",
                {
                    "name": "Volume level",
                    "state_topic": topics.state(key, "RenderingControl"),
                    "value_template": "{{ value_json.variables.volume.Master }}",
                    "command_topic": topics.command(key, "volume"),
                    "command_template": '{"volume": {{ value | int }}}',
                    "min": 0,
                    "max": 100,
                    "step": 1,
                    "mode": "slider",
                    "icon": "mdi:volume-high",
                },
            )
        )
        documents.append(
            config(
                "switch",
                "mute",
                {
                    "name": "Mute",
                    "state_topic": topics.state(key, "RenderingControl"),
                    "value_template": mute_state,
                    "command_topic": topics.command(key, "mute"),
                    "payload_on": '{"mute": true}',
                    "payload_off": '{"mute": false}',
                    "state_on": "ON",
                    "state_off": "OFF",
                    "icon": "mdi:volume-off",
                },
            )
        )
        for object_id, name, command, icon in _BUTTONS:
            documents.append(
                config(
                    "button",
                    object_id,
                    {
                        "name": name,
                        "command_topic": topics.command(key, command),
                        "payload_press": "{}",
                        "icon": icon,
                    },
                )
            )
    return documents


def bridge_discovery(discovery_prefix: str, topics: Topics) -> tuple[str, dict[str, Any]]:
    """The daemon itself as an HA device: a connectivity binary sensor."""
    return (
        f"{discovery_prefix}/binary_sensor/sonosd_bridge/connectivity/config",
        {
            "unique_id": "sonosd_bridge_connectivity",
            "name": "Connected",
            "device_class": "connectivity",
            "state_topic": topics.bridge_availability,
            "payload_on": "online",
            "payload_off": "offline",
            "device": {"identifiers": ["sonosd_bridge"], "name": "sonosd", "model": "sonosd"},
            "origin": {"name": "sonosd"},
        },
    )
