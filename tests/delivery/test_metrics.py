"""Tests for sonosd.delivery.metrics: the exported families, in a registry of their own."""

from __future__ import annotations

from twisted.internet.task import Clock

from sonosd.delivery.hub import Hub
from sonosd.delivery.metrics import ApiMetrics


def test_families_and_values() -> None:
    """Hub counters, speaker states, uptime and per-channel counters are exported."""
    hub = Hub(Clock())
    hub.publish("event", {})
    metrics = ApiMetrics(hub, lambda: 12.5, lambda: {"online": 2, "offline": 1})
    metrics.track_clients("websocket", lambda: 4)
    metrics.slow.labels("sse").inc()
    text = metrics.render()
    for line in (
        b"sonosd_messages_published_total 1.0",
        b"sonosd_last_message_id 1.0",
        b'sonosd_speakers{state="online"} 2.0',
        b"sonosd_uptime_seconds 12.5",
        b'sonosd_api_clients{channel="websocket"} 4.0',
        b'sonosd_api_slow_disconnects_total{channel="sse"} 1.0',
        b'sonosd_api_dropped_frames_total{channel="stream"} 0.0',
    ):
        assert line in text


def test_registries_are_separate() -> None:
    """Two services in one process do not clash (no global registry)."""
    hub = Hub(Clock())
    first = ApiMetrics(hub, lambda: 0.0, lambda: {})
    second = ApiMetrics(hub, lambda: 0.0, lambda: {})
    assert first.registry is not second.registry
