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


def test_daemon_collector_reads_the_status() -> None:
    """Subscriptions by state, NOTIFYs by result, renewals, resubscriptions (with retired
    counters), webhooks, MQTT and callbacks come from the statuses the diagnostics show."""
    from prometheus_client import CollectorRegistry, generate_latest

    from sonosd.delivery.metrics import DaemonCollector

    def service(state: str, **counters: int) -> dict[str, object]:
        return {"state": state, "evented": state == "subscribed", **counters}

    household = {
        "speakers": [
            {
                "availability": "online",
                "services": {
                    "AVTransport": service(
                        "subscribed", subscribes=2, resubscriptions=1, renewals=3, gaps=1
                    ),
                    "Queue": service("polling", subscribes=1, polls=4),
                },
            },
            {"availability": "online", "services": {"AVTransport": service("subscribed")}},
        ],
        "notify": {"accepted": 7, "refused": {"unknown_sid": 2, "other": 1}},
        "retired": {"subscribes": 5, "resubscriptions": 4, "renewal_failures": 1},
    }
    sinks = {
        "webhooks": [
            {"url": "http://h/x", "delivered": 3, "failed": 1, "queued": 2, "failing": True}
        ],
        "mqtt": {"connected": True, "queue": 4, "published": 9},
        "callbacks": [{"name": "m:f", "delivered": 2, "queued": 0}],
    }
    registry = CollectorRegistry()
    states = ("subscribed", "polling", "backing_off")
    registry.register(DaemonCollector(lambda: household, lambda: sinks, states))
    text = generate_latest(registry).decode()
    lines = set(text.splitlines())
    for expected in (
        'sonosd_subscriptions{state="subscribed"} 2.0',
        'sonosd_subscriptions{state="polling"} 1.0',
        'sonosd_subscriptions{state="backing_off"} 0.0',
        "sonosd_speakers_evented 1.0",
        'sonosd_notifies_total{result="accepted"} 7.0',
        'sonosd_notifies_total{result="unknown_sid"} 2.0',
        'sonosd_notifies_total{result="other"} 1.0',
        'sonosd_subscribes_total{result="ok"} 8.0',
        'sonosd_renewals_total{result="ok"} 3.0',
        'sonosd_renewals_total{result="failed"} 1.0',
        "sonosd_resubscriptions_total 5.0",
        "sonosd_polls_total 4.0",
        "sonosd_event_gaps_total 1.0",
        'sonosd_webhook_deliveries_total{result="delivered",target="http://h/x"} 3.0',
        'sonosd_webhook_queue{target="http://h/x"} 2.0',
        'sonosd_webhook_failing{target="http://h/x"} 1.0',
        "sonosd_mqtt_connected 1.0",
        "sonosd_mqtt_queue 4.0",
        'sonosd_callback_calls_total{callback="m:f",result="delivered"} 2.0',
    ):
        assert expected in lines, expected
