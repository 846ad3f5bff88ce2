# -*- test-case-name: tests.test_config -*-
"""The daemon's configuration: frozen, typed objects loaded from YAML and validated.

The loader (``load_config``) turns a YAML file into a ``Config`` or raises ``ConfigError`` with
one line naming the file, the line, the key path and the bad value. Nothing here does I/O
beyond reading the file (and secret files) it is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

DEFAULT_SERVICES: tuple[str, ...] = (
    "AVTransport",
    "RenderingControl",
    "GroupRenderingControl",
    "ZoneGroupTopology",
    "ContentDirectory",
    "DeviceProperties",
    "AlarmClock",
    "Queue",
)


class ConfigError(Exception):
    """A configuration file is wrong; ``str()`` is the one line shown to the user."""


@attrs.frozen
class ListenerConfig:
    """Where the GENA NOTIFY listener binds and what address it advertises in CALLBACK."""

    interface: str = "0.0.0.0"
    port: int = 1400
    advertise: str | None = None
    max_body: int = 1_048_576


@attrs.frozen
class Token:
    """An API bearer token and the scopes it grants (``read``, ``control``)."""

    name: str
    secret: str = attrs.field(repr=False)
    scopes: frozenset[str] = frozenset({"read"})


@attrs.frozen
class ApiConfig:
    """The HTTP API site: endpoint string, tokens, CORS and per-client buffering."""

    listen: str = "tcp:8080:interface=127.0.0.1"
    tokens: tuple[Token, ...] = ()
    require_auth: bool | None = None
    cors_origins: tuple[str, ...] = ()
    replay_buffer: int = 10_000
    client_buffer: int = 1_000
    heartbeat: float = 15.0


@attrs.frozen
class Device:
    """One configured speaker: a host name or address, and optionally its expected room name."""

    host: str
    name: str | None = None


@attrs.frozen
class SubscriptionConfig:
    """How GENA subscriptions are kept alive."""

    timeout: int = 1800
    renew_fraction: float = 0.5
    request_timeout: float = 10.0
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    no_event_grace: float = 5.0
    poll_interval: float = 10.0
    availability_interval: float = 60.0
    silence_timeout: float = 270.0
    shutdown_timeout: float = 5.0


@attrs.frozen
class SocoConfig:
    """The one thread pool that runs SoCo's blocking calls."""

    threads: int = 10
    call_timeout: float = 20.0


@attrs.frozen
class Webhook:
    """One webhook target."""

    url: str
    secret: str | None = attrs.field(default=None, repr=False)
    timeout: float = 10.0
    retries: int = 5
    queue: int = 1_000
    filter: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    ca_file: str | None = None


@attrs.frozen
class MqttConfig:
    """The MQTT broker connection and topic layout."""

    host: str = "127.0.0.1"
    port: int = 1883
    tls: bool = False
    ca_file: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    prefix: str = "sonos"
    client_id: str = "sonosd"
    homeassistant: bool = False
    discovery_prefix: str = "homeassistant"


@attrs.frozen
class SinksConfig:
    """Where messages go besides the API: Python callbacks, webhooks, MQTT, a local stream."""

    callbacks: tuple[str, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    mqtt: MqttConfig | None = None
    stream: str | None = None


@attrs.frozen
class LogConfig:
    """Log format (``text`` or ``json``) and level."""

    format: str = "text"
    level: str = "info"


@attrs.frozen
class SimulateConfig:
    """An in-process simulated household (demo and tests)."""

    speakers: int = 3
    base_address: str = "127.0.0.2"
    port: int = 1400
    rooms: tuple[str, ...] = ()
    activity: float = 0.0
    admin: str | None = None
    stereo_pair: bool = False


@attrs.frozen
class Config:
    """The whole validated configuration."""

    path: str
    listener: ListenerConfig = ListenerConfig()
    api: ApiConfig = ApiConfig()
    devices: tuple[Device, ...] = ()
    discovery: bool = False
    services: tuple[str, ...] = DEFAULT_SERVICES
    subscription: SubscriptionConfig = SubscriptionConfig()
    soco: SocoConfig = SocoConfig()
    sinks: SinksConfig = SinksConfig()
    log: LogConfig = LogConfig()
    simulate: SimulateConfig | None = None


def load_config(path: str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, validate and build the configuration at ``path``; raise ``ConfigError``."""
    raise ConfigError(f"{path}: the configuration loader is not written yet")


def _unused(value: Any) -> None:  # pragma: no cover - placeholder removed with the loader
    del value
