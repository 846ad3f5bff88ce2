# -*- test-case-name: tests.delivery.test_metrics -*-
"""Prometheus metrics of the API and the hub, in the service's own registry.

The registry is per ``ApiService`` (not prometheus-client's global one) so that several
services can run in one process (tests) and so that other parts of the daemon (webhooks,
MQTT, subscriptions) register their collectors on ``ApiMetrics.registry`` to be exported by
``/api/v1/metrics``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sonosd.delivery.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CHANNELS = ("websocket", "sse", "stream")

#: Why the NOTIFY listener refuses a request (``sonosd.gena.listener.NotifyDispatcher``).
NOTIFY_REFUSALS = (
    "malformed",
    "unparsable",
    "source",
    "method",
    "unknown_sid",
    "ended_sid",
    "too_large",
    "bad_request",
    "dtd",
    "encoding",
    "over_budget",
    "value_too_large",
    "too_slow",
    "too_many_connections",
)

#: Command durations, in seconds: from a quick volume change to an announcement.
COMMAND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)


class _HubCollector:
    """Reads the hub's and the household's counters at scrape time."""

    def __init__(self, hub: Hub, speakers: Callable[[], Mapping[str, int]]) -> None:
        self._hub = hub
        self._speakers = speakers

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "sonosd_messages_published", "Messages published by the hub.", self._hub.published
        )
        yield CounterMetricFamily(
            "sonosd_sink_errors", "Exceptions raised by sinks.", self._hub.sink_errors
        )
        yield GaugeMetricFamily(
            "sonosd_last_message_id", "Id of the last message.", self._hub.last_id
        )
        speakers = GaugeMetricFamily(
            "sonosd_speakers", "Known speakers by state.", labels=["state"]
        )
        for state, count in sorted(self._speakers().items()):
            speakers.add_metric([state], count)
        yield speakers


#: Counts by label value (one label) or by a tuple of label values.
Counts = Mapping[Any, int]


class _CountsCollector:
    """Exports a mapping of counts, read at scrape time, as one labelled counter."""

    def __init__(
        self, name: str, documentation: str, labels: tuple[str, ...], read: Callable[[], Counts]
    ) -> None:
        self._name = name
        self._documentation = documentation
        self._labels = labels
        self._read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(self._name, self._documentation, labels=list(self._labels))
        for key, count in sorted(self._read().items()):
            family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
        yield family


class ApiMetrics:
    """The API's counters and gauges.

    @param hub: The hub whose counters are exported.
    @param uptime: Returns the daemon's uptime in seconds.
    @param speakers: Returns ``{"online": n, "offline": m}``.
    @param registry: Where to register (a new ``CollectorRegistry`` when ``None``).
    """

    def __init__(
        self,
        hub: Hub,
        uptime: Callable[[], float],
        speakers: Callable[[], Mapping[str, int]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.clients = Gauge(
            "sonosd_api_clients",
            "Connected streaming clients per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.frames = Counter(
            "sonosd_api_frames_sent",
            "Messages handed to streaming clients (one per client and message).",
            ["channel"],
            registry=self.registry,
        )
        self.slow = Counter(
            "sonosd_api_slow_disconnects",
            "Clients disconnected because they could not keep up.",
            ["channel"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "sonosd_api_dropped_frames",
            "Messages discarded from the queues of clients disconnected for slowness.",
            ["channel"],
            registry=self.registry,
        )
        self.resets = Counter(
            "sonosd_api_resets",
            "Resuming clients sent a reset and a snapshot (last id too old or unknown).",
            ["channel"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "sonosd_api_auth_failures",
            "Requests refused: 401 (no or wrong token) and 403 (scope).",
            ["status"],
            registry=self.registry,
        )
        self.commands = Histogram(
            "sonosd_command_duration_seconds",
            "Commands (REST, WebSocket, MQTT) by command and result (ok or the error code).",
            ["command", "result"],
            buckets=COMMAND_BUCKETS,
            registry=self.registry,
        )
        self.uptime = Gauge(
            "sonosd_uptime_seconds", "Seconds since the API started.", registry=self.registry
        )
        self.uptime.set_function(uptime)
        for channel in CHANNELS:
            for metric in (self.frames, self.slow, self.dropped, self.resets):
                metric.labels(channel)
        for status in ("401", "403"):
            self.auth_failures.labels(status)
        self.registry.register(_HubCollector(hub, speakers))
        #: Refused client input by ``(channel, reason)``: the channels count here.
        self.client_errors: collections.Counter[tuple[str, str]] = collections.Counter()
        self._client_error_sources: list[Callable[[], Counts]] = [lambda: self.client_errors]
        self.count_by(
            "sonosd_client_errors",
            "Client input refused (bad or oversized JSON, unknown operations), by channel "
            "and reason.",
            ("channel", "reason"),
            self._all_client_errors,
        )

    def add_client_errors(self, read: Callable[[], Counts]) -> None:
        """Export the counts ``read()`` gives (by ``(channel, reason)``) as client errors too
        (for a channel that keeps its own counter, such as MQTT)."""
        self._client_error_sources.append(read)

    def _all_client_errors(self) -> Counts:
        total: collections.Counter[tuple[str, str]] = collections.Counter()
        for read in self._client_error_sources:
            total.update(read())
        return total

    def count_by(
        self, name: str, documentation: str, labels: tuple[str, ...], read: Callable[[], Counts]
    ) -> None:
        """Export ``read()`` (counts by label value, or by a tuple of values) as the counter
        ``name`` at scrape time: for counters other parts keep themselves (the NOTIFY
        listener's refusals, the channels' refused client input)."""
        self.registry.register(_CountsCollector(name, documentation, labels, read))

    def observe_command(self, command: str, result: str, seconds: float) -> None:
        """Record one command's duration (``Controller.on_done``)."""
        self.commands.labels(command, result).observe(seconds)

    def track_clients(self, channel: str, count: Callable[[], int]) -> None:
        """Export ``count()`` as the number of ``channel`` clients at scrape time."""
        self.clients.labels(channel).set_function(count)

    def render(self) -> bytes:
        """The exposition text."""
        return bytes(generate_latest(self.registry))


def _sum(services: Iterable[Mapping[str, Any]], key: str) -> int:
    return sum(int(service.get(key) or 0) for service in services)


class DaemonCollector:
    """Subscriptions, NOTIFYs and sinks, read at scrape time from the same status the
    diagnostics show (``HouseholdSupervisor.status()`` and the sinks' ``status()``).

    @param household: Returns ``{"speakers": [...], "notify": {...}, "retired": {...}}``.
    @param sinks: Returns ``{"webhooks": [...], "mqtt": {...}, "callbacks": [...]}`` (each
        only when configured).
    @param states: Every state a subscription can be in
        (``sonosd.household.keepalive.PHASES``), each exported even when none is in it.
    """

    def __init__(
        self,
        household: Callable[[], Mapping[str, Any]],
        sinks: Callable[[], Mapping[str, Any]],
        states: Iterable[str],
    ) -> None:
        self._household = household
        self._sinks = sinks
        self._states = tuple(states)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        status = self._household()
        yield from self._subscriptions(status)
        yield from self._notifies(status.get("notify") or {})
        sinks = self._sinks()
        if "webhooks" in sinks:
            yield from self._webhooks(sinks["webhooks"])
        yield from self._mqtt(sinks.get("mqtt"))
        if "callbacks" in sinks:
            yield from self._callbacks(sinks["callbacks"])

    def _subscriptions(self, status: Mapping[str, Any]) -> Iterator[Metric]:
        speakers = status.get("speakers") or []
        services = [s for speaker in speakers for s in (speaker.get("services") or {}).values()]
        retired = status.get("retired") or {}
        states = GaugeMetricFamily(
            "sonosd_subscriptions",
            "Subscriptions (speaker and service) by state.",
            labels=["state"],
        )
        for state in self._states:
            states.add_metric([state], sum(1 for s in services if s.get("state") == state))
        yield states
        evented = sum(
            1
            for speaker in speakers
            if speaker.get("availability") == "online"
            and speaker.get("services")
            and all(s.get("evented") for s in speaker["services"].values())
        )
        yield GaugeMetricFamily(
            "sonosd_speakers_evented",
            "Speakers whose every subscription receives NOTIFYs.",
            evented,
        )

        def total(key: str) -> int:
            return _sum(services, key) + int(retired.get(key) or 0)

        for name, key, text in (
            ("sonosd_events", "events", "Events received (NOTIFYs in order, duplicates dropped)."),
            ("sonosd_event_duplicates", "duplicates", "Duplicate NOTIFYs dropped."),
            ("sonosd_event_gaps", "gaps", "SEQ gaps (events lost by the speaker or network)."),
            ("sonosd_resyncs", "resyncs", "State reads after a SEQ gap."),
            ("sonosd_polls", "polls", "State reads while NOTIFYs do not arrive."),
        ):
            yield CounterMetricFamily(name, text, total(key))
        subscribes = CounterMetricFamily(
            "sonosd_subscribes", "SUBSCRIBE requests by result.", labels=["result"]
        )
        subscribes.add_metric(["ok"], total("subscribes"))
        subscribes.add_metric(["failed"], total("subscribe_failures"))
        yield subscribes
        renewals = CounterMetricFamily(
            "sonosd_renewals", "Subscription renewals by result.", labels=["result"]
        )
        renewals.add_metric(["ok"], total("renewals"))
        renewals.add_metric(["failed"], total("renewal_failures"))
        yield renewals
        yield CounterMetricFamily(
            "sonosd_resubscriptions",
            "Subscriptions made again after one was lost (reboot, failure, offline).",
            total("resubscriptions"),
        )

    def _notifies(self, notify: Mapping[str, Any]) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "sonosd_notifies",
            "NOTIFY requests by result: accepted, or the reason they were refused.",
            labels=["result"],
        )
        family.add_metric(["accepted"], int(notify.get("accepted") or 0))
        refused = dict(notify.get("refused") or {})
        for reason in (*NOTIFY_REFUSALS, *sorted(set(refused) - set(NOTIFY_REFUSALS))):
            family.add_metric([reason], int(refused.get(reason) or 0))
        yield family

    def _webhooks(self, targets: Iterable[Mapping[str, Any]]) -> Iterator[Metric]:
        deliveries = CounterMetricFamily(
            "sonosd_webhook_deliveries",
            "Webhook messages by target and result (delivered, retried, refused, failed, "
            "dropped, lost_at_shutdown).",
            labels=["target", "result"],
        )
        queue = GaugeMetricFamily(
            "sonosd_webhook_queue", "Messages waiting per webhook target.", labels=["target"]
        )
        failing = GaugeMetricFamily(
            "sonosd_webhook_failing",
            "1 while a webhook target's last attempt failed.",
            labels=["target"],
        )
        for target in targets:
            url = str(target.get("url"))
            for result in ("delivered", "retried", "refused", "failed", "dropped"):
                deliveries.add_metric([url, result], int(target.get(result) or 0))
            deliveries.add_metric(
                [url, "lost_at_shutdown"], int(target.get("lost_at_shutdown") or 0)
            )
            queue.add_metric([url], int(target.get("queued") or 0))
            failing.add_metric([url], 1 if target.get("failing") else 0)
        yield deliveries
        yield queue
        yield failing

    def _mqtt(self, mqtt: Mapping[str, Any] | None) -> Iterator[Metric]:
        if mqtt is None:
            return
        yield GaugeMetricFamily(
            "sonosd_mqtt_connected",
            "1 while connected to the MQTT broker.",
            int(bool(mqtt.get("connected"))),
        )
        yield GaugeMetricFamily(
            "sonosd_mqtt_queue",
            "Messages waiting in the MQTT client's outgoing queue.",
            int(mqtt.get("queue") or 0),
        )
        yield CounterMetricFamily(
            "sonosd_mqtt_published", "MQTT messages published.", int(mqtt.get("published") or 0)
        )
        yield CounterMetricFamily(
            "sonosd_mqtt_missed",
            "Messages not published while the broker was away or stalled.",
            int(mqtt.get("missed") or 0),
        )
        yield CounterMetricFamily(
            "sonosd_mqtt_connects",
            "Connections made to the broker.",
            int(mqtt.get("connects") or 0),
        )

    def _callbacks(self, callbacks: Iterable[Mapping[str, Any]]) -> Iterator[Metric]:
        calls = CounterMetricFamily(
            "sonosd_callback_calls",
            "Python callback calls by callback and result (delivered, failed, dropped).",
            labels=["callback", "result"],
        )
        queue = GaugeMetricFamily(
            "sonosd_callback_queue", "Messages waiting per Python callback.", labels=["callback"]
        )
        for callback in callbacks:
            name = str(callback.get("name"))
            for result in ("delivered", "failed", "dropped"):
                calls.add_metric([name, result], int(callback.get(result) or 0))
            queue.add_metric([name], int(callback.get("queued") or 0))
        yield calls
        yield queue
