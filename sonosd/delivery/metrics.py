# -*- test-case-name: tests.delivery.test_metrics -*-
"""Prometheus metrics of the API and the hub, in the service's own registry.

The registry is per ``ApiService`` (not prometheus-client's global one) so that several
services can run in one process (tests) and so that other parts of the daemon (webhooks,
MQTT, subscriptions) register their collectors on ``ApiMetrics.registry`` to be exported by
``/api/v1/metrics``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from sonosd.delivery.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

CHANNELS = ("websocket", "sse", "stream")


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

    def track_clients(self, channel: str, count: Callable[[], int]) -> None:
        """Export ``count()`` as the number of ``channel`` clients at scrape time."""
        self.clients.labels(channel).set_function(count)

    def render(self) -> bytes:
        """The exposition text."""
        return bytes(generate_latest(self.registry))
