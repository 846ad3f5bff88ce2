# -*- test-case-name: tests.test_reload -*-
"""What a configuration reload (SIGHUP) changes, and what only a restart can.

``plan_reload(old, new)`` compares two validated configurations (pure: no I/O) and says which
parts the running daemon applies in place (``sonosd.service.SonosdService.reload`` does it)
and which settings it keeps until the next restart, because changing them would close
sockets that clients or speakers are using (the listen addresses) or rebuild what every
message passes through.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

import attrs

from sonosd.config import Config

#: Settings a reload does not apply (their paths in a ``Config``), with how to read them.
RESTART_ONLY: dict[str, Callable[[Config], object]] = {
    key: attrgetter(key)
    for key in (
        "listener.interface",
        "listener.port",
        "listener.advertise",
        "listener.idle_timeout",
        "listener.request_timeout",
        "listener.max_connections_per_host",
        "api.listen",
        "api.replay_buffer",
        "api.client_buffer",
        "api.heartbeat",
        "api.request_timeout",
        "sinks.stream",
        "discovery",
        "ssdp",
        "soco",
        "log.format",
        "simulate",
        "state_dir",
    )
}

#: The sinks a reload rebuilds when their settings change.
SINKS: dict[str, Callable[[Config], object]] = {
    "callbacks": lambda c: c.sinks.callbacks,
    "webhooks": lambda c: c.sinks.webhooks,
    "mqtt": lambda c: c.sinks.mqtt,
}


@attrs.frozen
class ReloadPlan:
    """The differences between the running configuration and the reloaded one.

    @ivar devices_added: Hosts to start following.
    @ivar devices_removed: Hosts to stop following (their subscriptions are cancelled).
    @ivar devices_renamed: Hosts still listed with another room name (``devices[].name``).
    @ivar services_added: Services to subscribe on every speaker.
    @ivar services_removed: Services to unsubscribe on every speaker.
    @ivar household: The household's settings changed (devices, ``follow_household``,
        services or timings).
    @ivar follow_household: ``follow_household`` was switched on or off.
    @ivar timings: The ``subscription`` section changed.
    @ivar auth: Tokens, ``require_auth`` or CORS origins changed.
    @ivar sinks: The sinks to rebuild (``callbacks``, ``webhooks``, ``mqtt``).
    @ivar log: ``log.level`` or ``log.messages`` changed.
    @ivar announce: The ``announce`` section changed (applied to the next announcement).
    @ivar restart: Settings that changed but apply only after a restart.
    """

    devices_added: tuple[str, ...] = ()
    devices_removed: tuple[str, ...] = ()
    devices_renamed: tuple[str, ...] = ()
    services_added: tuple[str, ...] = ()
    services_removed: tuple[str, ...] = ()
    household: bool = False
    follow_household: bool = False
    timings: bool = False
    auth: bool = False
    ready: bool = False
    sinks: tuple[str, ...] = ()
    log: bool = False
    max_body: bool = False
    announce: bool = False
    restart: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        """Whether anything at all differs."""
        return self != ReloadPlan()

    def describe(self) -> str:
        """One line saying what the reload changed (for the log)."""
        parts: list[str] = []
        if self.devices_added or self.devices_removed:
            parts.append(_delta("devices", self.devices_added, self.devices_removed))
        if self.devices_renamed:
            parts.append(f"devices renamed {' '.join(self.devices_renamed)}")
        if self.services_added or self.services_removed:
            parts.append(_delta("services", self.services_added, self.services_removed))
        if self.follow_household:
            parts.append("follow_household")
        if self.timings:
            parts.append("subscription timings")
        if self.household and not parts:
            # Only the order of the listed devices or services changed.
            parts.append("order of devices or services")
        if self.auth:
            parts.append("tokens and origins")
        if self.ready:
            parts.append("readiness")
        parts.extend(f"sinks.{name} rebuilt" for name in self.sinks)
        if self.log:
            parts.append("log")
        if self.max_body:
            parts.append("listener.max_body")
        if self.announce:
            parts.append("announce")
        return ", ".join(parts) if parts else "nothing changed"


def _delta(what: str, added: tuple[str, ...], removed: tuple[str, ...]) -> str:
    words = [f"+{item}" for item in added] + [f"-{item}" for item in removed]
    return f"{what} {' '.join(words)}"


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """What applying ``new`` to a daemon running ``old`` involves.

    Both configurations are the effective ones (a simulated household's speakers already
    listed under ``devices``).
    """
    old_names = {device.host.lower(): device.name for device in old.devices}
    new_names = {device.host.lower(): device.name for device in new.devices}
    added = tuple(d.host for d in new.devices if d.host.lower() not in old_names)
    removed = tuple(d.host for d in old.devices if d.host.lower() not in new_names)
    renamed = tuple(
        d.host
        for d in new.devices
        if d.host.lower() in old_names and old_names[d.host.lower()] != d.name
    )
    follow = old.follow_household != new.follow_household
    timings = old.subscription != new.subscription
    household = old.devices != new.devices or follow or old.services != new.services or timings
    return ReloadPlan(
        devices_added=added,
        devices_removed=removed,
        devices_renamed=renamed,
        services_added=tuple(s for s in new.services if s not in old.services),
        services_removed=tuple(s for s in old.services if s not in new.services),
        household=household,
        follow_household=follow,
        timings=timings,
        auth=(old.api.tokens, old.api.require_auth, old.api.cors_origins)
        != (new.api.tokens, new.api.require_auth, new.api.cors_origins),
        ready=old.api.ready_when_polling != new.api.ready_when_polling,
        sinks=tuple(name for name, read in SINKS.items() if read(old) != read(new)),
        log=(old.log.level, old.log.messages) != (new.log.level, new.log.messages),
        max_body=old.listener.max_body != new.listener.max_body,
        announce=old.announce != new.announce,
        restart=tuple(key for key, read in RESTART_ONLY.items() if read(old) != read(new)),
    )


def running_config(old: Config, new: Config) -> Config:
    """``new`` with the settings a reload cannot apply (``RESTART_ONLY``) kept from ``old``:
    the configuration the daemon actually runs after the reload."""
    running = new
    for key in RESTART_ONLY:
        running = _kept(running, old, key.split("."))
    return running


def _kept(into: Any, source: Any, path: list[str]) -> Any:
    """``into`` (an attrs instance) with the setting at ``path`` taken from ``source``."""
    name, *rest = path
    value = getattr(source, name)
    if rest:
        value = _kept(getattr(into, name), value, rest)
    return attrs.evolve(into, **{name: value})
