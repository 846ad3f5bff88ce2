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

    transport = {"subscribes": 2, "resubscriptions": 1, "renewals": 3, "gaps": 1, "events": 6}
    transport.update(duplicates=2, resyncs=1, subscribe_failures=1)
    household = {
        "speakers": [
            {
                "availability": "online",
                "services": {
                    "AVTransport": service("subscribed", **transport),
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
        "mqtt": {"connected": True, "queue": 4, "published": 9, "missed": 3, "connects": 2},
        "callbacks": [{"name": "m:f", "delivered": 2, "failed": 1, "dropped": 5, "queued": 7}],
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
        'sonosd_callback_calls_total{callback="m:f",result="failed"} 1.0',
        'sonosd_callback_calls_total{callback="m:f",result="dropped"} 5.0',
        'sonosd_callback_queue{callback="m:f"} 7.0',
        "sonosd_events_total 6.0",
        "sonosd_event_duplicates_total 2.0",
        "sonosd_resyncs_total 1.0",
        'sonosd_subscribes_total{result="failed"} 1.0',
        'sonosd_webhook_deliveries_total{result="failed",target="http://h/x"} 1.0',
        "sonosd_mqtt_published_total 9.0",
        "sonosd_mqtt_missed_total 3.0",
        "sonosd_mqtt_connects_total 2.0",
    ):
        assert expected in lines, expected


def test_sink_errors_count_exceptions_raised_by_sinks() -> None:
    """sonosd_sink_errors_total counts each exception a sink raises (docs/api.md); the
    other sinks still get the message."""
    from zope.interface import implementer

    from sonosd.delivery.hub import ISink, Message

    @implementer(ISink)
    class Broken:
        def deliver(self, message: Message) -> None:
            raise RuntimeError("boom")

    @implementer(ISink)
    class Keeping:
        def __init__(self) -> None:
            self.ids: list[int] = []

        def deliver(self, message: Message) -> None:
            self.ids.append(message.id)

    hub = Hub(Clock())
    keeping = Keeping()
    hub.add_sink(Broken())
    hub.add_sink(keeping)
    metrics = ApiMetrics(hub, lambda: 0.0, lambda: {})
    assert b"sonosd_sink_errors_total 0.0" in metrics.render()
    hub.publish("event", {})
    hub.publish("event", {})
    assert b"sonosd_sink_errors_total 2.0" in metrics.render()
    assert keeping.ids == [1, 2]
