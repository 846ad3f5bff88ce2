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

import attrs

from sonosd.config import Config

#: Settings a reload does not apply, with how to read them from a ``Config``.
RESTART_ONLY: dict[str, Callable[[Config], object]] = {
    "listener.interface": lambda c: c.listener.interface,
    "listener.port": lambda c: c.listener.port,
    "listener.advertise": lambda c: c.listener.advertise,
    "listener.idle_timeout": lambda c: c.listener.idle_timeout,
    "listener.request_timeout": lambda c: c.listener.request_timeout,
    "listener.max_connections_per_host": lambda c: c.listener.max_connections_per_host,
    "api.listen": lambda c: c.api.listen,
    "api.replay_buffer": lambda c: c.api.replay_buffer,
    "api.client_buffer": lambda c: c.api.client_buffer,
    "api.heartbeat": lambda c: c.api.heartbeat,
    "api.request_timeout": lambda c: c.api.request_timeout,
    "sinks.stream": lambda c: c.sinks.stream,
    "discovery": lambda c: c.discovery,
    "ssdp": lambda c: c.ssdp,
    "soco": lambda c: c.soco,
    "log.format": lambda c: c.log.format,
    "simulate": lambda c: c.simulate,
    "state_dir": lambda c: c.state_dir,
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
    @ivar services_added: Services to subscribe on every speaker.
    @ivar services_removed: Services to unsubscribe on every speaker.
    @ivar household: The household's settings changed (devices, ``follow_household``,
        services or timings).
    @ivar follow_household: ``follow_household`` was switched on or off.
    @ivar auth: Tokens, ``require_auth`` or CORS origins changed.
    @ivar sinks: The sinks to rebuild (``callbacks``, ``webhooks``, ``mqtt``).
    @ivar log: ``log.level`` or ``log.messages`` changed.
    @ivar announce: The ``announce`` section changed (applied to the next announcement).
    @ivar restart: Settings that changed but apply only after a restart.
    """

    devices_added: tuple[str, ...] = ()
    devices_removed: tuple[str, ...] = ()
    services_added: tuple[str, ...] = ()
    services_removed: tuple[str, ...] = ()
    household: bool = False
    follow_household: bool = False
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
        if self.services_added or self.services_removed:
            parts.append(_delta("services", self.services_added, self.services_removed))
        if self.follow_household:
            parts.append("follow_household")
        if (
            self.household
            and not (self.devices_added or self.devices_removed or self.services_added)
            and not (self.services_removed or self.follow_household)
        ):
            parts.append("subscription timings")
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
    old_hosts = [device.host.lower() for device in old.devices]
    new_hosts = [device.host.lower() for device in new.devices]
    added = tuple(d.host for d in new.devices if d.host.lower() not in old_hosts)
    removed = tuple(d.host for d in old.devices if d.host.lower() not in new_hosts)
    follow = old.follow_household != new.follow_household
    household = (
        old.devices != new.devices
        or follow
        or old.services != new.services
        or old.subscription != new.subscription
    )
    return ReloadPlan(
        devices_added=added,
        devices_removed=removed,
        services_added=tuple(s for s in new.services if s not in old.services),
        services_removed=tuple(s for s in old.services if s not in new.services),
        household=household,
        follow_household=follow,
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
    return attrs.evolve(
        new,
        listener=attrs.evolve(
            new.listener,
            interface=old.listener.interface,
            port=old.listener.port,
            advertise=old.listener.advertise,
            idle_timeout=old.listener.idle_timeout,
            request_timeout=old.listener.request_timeout,
            max_connections_per_host=old.listener.max_connections_per_host,
        ),
        api=attrs.evolve(
            new.api,
            listen=old.api.listen,
            replay_buffer=old.api.replay_buffer,
            client_buffer=old.api.client_buffer,
            heartbeat=old.api.heartbeat,
            request_timeout=old.api.request_timeout,
        ),
        sinks=attrs.evolve(new.sinks, stream=old.sinks.stream),
        discovery=old.discovery,
        ssdp=old.ssdp,
        soco=old.soco,
        log=attrs.evolve(new.log, format=old.log.format),
        simulate=old.simulate,
    )
