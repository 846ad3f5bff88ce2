"""Realistic NOTIFY bodies that differ from one request to the next.

Every kind starts from a real captured body in ``../shared/reference/samples/events`` and
has its values varied (volume numbers, DIDL titles and track numbers, update ids, software
build numbers) so that no two bodies are equal: SoCo's ``parse_event_xml`` has an
``lru_cache`` keyed on the body, and an identical body would only measure that cache.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "samples" / "events"

#: (kind, UPnP service, sample file)
KINDS: dict[str, tuple[str, str]] = {
    "avt_full": ("AVTransport", "avtransport_full_PLAYING_node-sonos-ts.xml"),
    "rc_volume": ("RenderingControl", "renderingcontrol_lastchange_volume_jishi.xml"),
    "rc_full": ("RenderingControl", "rendering-control_node-sonos-ts.xml"),
    "zgt": ("ZoneGroupTopology", "zonegrouptopology_zgs_oldformat_31.8_anonymized_jishi.xml"),
    "content_directory": ("ContentDirectory", "contentdirectory_queue_changed_jishi.xml"),
    "device_properties": ("DeviceProperties", "device-properties_node-sonos-ts.xml"),
    "queue": ("Queue", "queue_node-sonos-ts.xml"),
    "alarm_clock": ("AlarmClock", "alarm-clock_node-sonos-ts.xml"),
}

#: The mixed payload of the throughput and latency runs: mostly volume and track changes,
#: as a household in use produces them.
MIX: tuple[tuple[str, float], ...] = (
    ("rc_volume", 0.50),
    ("avt_full", 0.25),
    ("content_directory", 0.08),
    ("queue", 0.07),
    ("device_properties", 0.05),
    ("zgt", 0.05),
)

_VOLUME = re.compile(r"(Volume channel=&quot;Master&quot; val=&quot;)\d+")
_TITLE = re.compile(r"(dc:title&amp;gt;)([^&]+)")
_TRACK = re.compile(r"(CurrentTrack val=&quot;)\d+")
_BUILD = re.compile(r"(SoftwareVersion=&quot;\d+\.\d+-)\d+")
_REPLICATION = re.compile(r"(<SettingsReplicationState>.*,)(\d+)(</SettingsReplicationState>)")
_UPDATE = re.compile(r"(UpdateID val=&quot;)\d+")
_ALARMS = re.compile(r"(AlarmListVersion>RINCON_xxx01400:)\d+")


def _sample(kind: str) -> str:
    return (SAMPLES / KINDS[kind][1]).read_text(encoding="utf-8")


def _varier(kind: str) -> Callable[[random.Random], str]:
    text = _sample(kind)
    if kind in ("rc_volume", "rc_full"):
        return lambda rng: _VOLUME.sub(lambda m: m.group(1) + str(rng.randint(0, 100)), text)
    if kind == "avt_full":

        def avt(rng: random.Random) -> str:
            n = rng.randrange(10**9)
            varied = _TITLE.sub(lambda m: f"{m.group(1)}{m.group(2)} {n}", text)
            return _TRACK.sub(lambda m: m.group(1) + str(n % 51 + 1), varied)

        return avt
    if kind == "zgt":
        return lambda rng: _BUILD.sub(lambda m: m.group(1) + str(rng.randrange(10**6)), text)
    if kind == "content_directory":

        def cd(rng: random.Random) -> str:
            n = rng.randrange(10**6)
            return text.replace(">53<", f">{n}<").replace("Q:0,52", f"Q:0,{n - 1}")

        return cd
    if kind == "device_properties":
        return lambda rng: _REPLICATION.sub(
            lambda m: m.group(1) + str(rng.randrange(10**6)) + m.group(3), text
        )
    if kind == "queue":
        return lambda rng: _UPDATE.sub(lambda m: m.group(1) + str(rng.randrange(10**6)), text)
    if kind == "alarm_clock":
        return lambda rng: _ALARMS.sub(lambda m: m.group(1) + str(rng.randrange(10**6)), text)
    raise KeyError(kind)


class BodyMaker:
    """Makes varied bodies of one kind, or of the mix.

    @param kinds: The kinds to draw from with their weights (default: ``MIX``).
    @param seed: Seeds the values (runs are reproducible).
    """

    def __init__(self, kinds: Sequence[tuple[str, float]] = MIX, seed: int = 1) -> None:
        self._rng = random.Random(seed)
        self._kinds = [kind for kind, _ in kinds]
        self._weights = [weight for _, weight in kinds]
        self._variers = {kind: _varier(kind) for kind in KINDS}

    def make(self) -> tuple[str, bytes]:
        """One ``(kind, body)``: a kind drawn by weight, its body with fresh values."""
        kind = self._rng.choices(self._kinds, self._weights)[0]
        return kind, self.body(kind)

    def body(self, kind: str) -> bytes:
        """A fresh body of ``kind``."""
        return self._variers[kind](self._rng).encode("utf-8")


def service_of(kind: str) -> str:
    """The UPnP service a kind of body belongs to."""
    return KINDS[kind][0]


def notify_request(host: str, port: int, sid: str, seq: int, service: str, body: bytes) -> bytes:
    """A NOTIFY request as Sonos speakers write it (headers as in the modern capture)."""
    service_type = "ConnectionManager" if service.endswith("ConnectionManager") else service
    head = (
        f"NOTIFY / HTTP/1.1\r\nHOST: {host}:{port}\r\nCONNECTION: close\r\n"
        f"CONTENT-TYPE: text/xml\r\nCONTENT-LENGTH: {len(body)}\r\nNT: upnp:event\r\n"
        f"NTS: upnp:propchange\r\nSID: {sid}\r\nSEQ: {seq}\r\n"
        f"X-SONOS-SERVICETYPE: {service_type}\r\n\r\n"
    )
    return head.encode("latin-1") + body
