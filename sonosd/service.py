# -*- test-case-name: tests.test_daemon -*-
"""The daemon's top service: builds every part from the configuration and orders them.

Children start in the order they are added and stop in the reverse order:

1. the SoCo thread pool (stops last, once nothing can submit work), and the memory trimmer
   (``sonosd.memory``);
2. the simulated household, when ``simulate:`` is configured (it must outlive the
   supervisor so that the final UNSUBSCRIBEs reach it);
3. the NOTIFY listener;
4. the sinks and the API site (they flush and close their clients);
5. the household supervisor (stops first: every subscription is UNSUBSCRIBEd, bounded).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import soco.config
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd.api.site import ApiService
from sonosd.blocking import SocoRunner
from sonosd.config import Config, Device, SimulateConfig
from sonosd.delivery.hub import Hub
from sonosd.gena.listener import NotifyListener
from sonosd.household.events import EventProcessor
from sonosd.household.state import HouseholdState
from sonosd.household.supervisor import HouseholdSupervisor, build_household
from sonosd.memory import MemoryTrimmer
from sonosd.sinks.logsink import LogSink
from sonosd.sinks.stream import StreamService

log = Logger()


def simulated_devices(simulate: SimulateConfig) -> tuple[Device, ...]:
    """The speakers of a simulated household, as configured devices (one per address)."""
    first, second, third, last = (int(part) for part in simulate.base_address.split("."))
    rooms = simulate.rooms
    devices = []
    for index in range(simulate.speakers):
        address = f"{first}.{second}.{third}.{last + index}"
        name = rooms[index] if index < len(rooms) else None
        devices.append(Device(host=address, name=name))
    return tuple(devices)


def configure_soco(config: Config) -> None:
    """Set SoCo's process-wide settings the daemon relies on.

    SoCo's own ``requests`` timeout is kept within the pool's call timeout so that a hung
    speaker frees its thread; the ZoneGroupTopology event fallback is not implemented for
    Twisted listeners and would raise, so it is off (topology comes from our own events).
    """
    soco.config.REQUEST_TIMEOUT = config.soco.call_timeout
    soco.config.ZGT_EVENT_FALLBACK = False


class SonosdService(MultiService):
    """Everything the daemon runs, built from a validated ``Config``.

    @param config: The validated configuration.
    @param reactor: The reactor every part is given.
    @param household_factory: Builds the simulated household (tests pass their own).
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        *,
        household_factory: Callable[[Any, SimulateConfig], IService] | None = None,
    ) -> None:
        super().__init__()
        self.exit_status = 0
        configure_soco(config)
        self.reactor = reactor
        self.runner = SocoRunner(
            reactor, threads=config.soco.threads, timeout=config.soco.call_timeout
        )
        self.runner.setServiceParent(self)
        MemoryTrimmer(reactor).setServiceParent(self)

        self.simulator: IService | None = None
        if config.simulate is not None:
            if household_factory is None:
                from sonosd.sim.service import HouseholdService

                household_factory = HouseholdService
            self.simulator = household_factory(reactor, config.simulate)
            self.simulator.setServiceParent(self)
            if not config.devices:
                config = attrs.evolve(config, devices=simulated_devices(config.simulate))
        self.config = config

        self.listener = NotifyListener(
            reactor,
            interface=config.listener.interface,
            port=config.listener.port,
            advertise=config.listener.advertise,
            max_body=config.listener.max_body,
            idle_timeout=config.listener.idle_timeout,
            request_timeout=config.listener.request_timeout,
            max_per_host=config.listener.max_connections_per_host,
        )
        self.listener.setServiceParent(self)

        self.hub = Hub(reactor, replay=config.api.replay_buffer)
        self.state = HouseholdState()
        self.hub.set_snapshot_provider(self.state.snapshot)
        self.processor = EventProcessor(self.hub, self.state, reactor)
        self.hub.add_sink(LogSink())

        self.controller = self._controller()
        self._add_sinks(config)
        self.api = ApiService(reactor, config.api, self.hub, self.state, self.controller)
        self.api.setServiceParent(self)
        self.api.listening.addErrback(self._fatal, "the API cannot listen on " + config.api.listen)
        self._export_refusals()
        if config.sinks.stream:
            stream = StreamService(
                reactor,
                config.sinks.stream,
                self.hub,
                config.api.client_buffer,
                metrics=self.api.metrics,
            )
            stream.setServiceParent(self)
            stream.listening.addErrback(
                self._fatal, "the stream cannot listen on " + config.sinks.stream
            )

        self.household: HouseholdSupervisor = build_household(
            reactor,
            config,
            runner=self.runner,
            processor=self.processor,
            reader=self._reader(),
            listener=self.listener,
            state=self.state,
        )
        self.household.setServiceParent(self)

    def stopService(self) -> Deferred[None]:
        """Stop the children one after another, the last added first (see the module docstring).

        ``MultiService.stopService`` would call every child's ``stopService`` in the same
        turn: the simulator and the listener would close while the supervisor's UNSUBSCRIBEs
        are still on their way, and the pool would stop under work still being submitted.
        """
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            try:
                await maybeDeferred(child.stopService)
            except Exception:
                log.failure("{child} did not stop cleanly", child=type(child).__name__)

    def _add_sinks(self, config: Config) -> None:
        """The push sinks: each is a hub sink and a child service (stopped before the pool).

        Each sink's module is imported only when it is configured: the MQTT client (paho) and
        the webhooks' TLS stack are megabytes of resident memory a daemon without them never
        uses (issue #7).
        """
        sinks: list[Any] = []
        if config.sinks.callbacks:
            from sonosd.sinks.callbacks import CallbackSink

            sinks.append(CallbackSink(self.reactor, config.sinks.callbacks))
        if config.sinks.webhooks:
            from sonosd.sinks.webhooks import WebhookSink

            sinks.append(WebhookSink.from_config(self.reactor, config.sinks.webhooks))
        if config.sinks.mqtt is not None:
            from sonosd.sinks.mqtt import MqttSink

            sinks.append(
                MqttSink(
                    self.reactor,
                    config.sinks.mqtt,
                    lambda fn: self.runner.run(fn, key="mqtt-connect", timeout=15.0),
                    controller=self.controller,
                )
            )
        for sink in sinks:
            self.hub.add_sink(sink)
            sink.setServiceParent(self)
        self.sinks = sinks

    def _export_refusals(self) -> None:
        """Export what remote peers had refused: NOTIFYs by reason, MQTT command payloads."""
        metrics = self.api.metrics
        listener = self.listener
        metrics.count_by(
            "sonosd_notify_accepted",
            "NOTIFY requests delivered to a subscription.",
            (),
            lambda: {(): listener.accepted},
        )
        metrics.count_by(
            "sonosd_notify_rejected",
            "NOTIFY requests (and connections) refused, by reason (docs/security.md).",
            ("reason",),
            lambda: listener.rejected,
        )
        for sink in self.sinks:
            refused: Mapping[tuple[str, str], int] | None = getattr(sink, "refused", None)
            if refused is not None:
                metrics.add_client_errors(functools.partial(dict, refused))

    def _fatal(self, failure: Failure, what: str) -> None:
        """Log a start-up failure as one line, stop the daemon and exit with status 1.

        A daemon that cannot serve its clients must not look healthy to its service manager
        (systemd's ``Restart=on-failure``, a container's restart policy).
        """
        log.critical("{what}: {error}", what=what, error=failure.getErrorMessage())
        self.exit_status = 1
        self.reactor.addSystemEventTrigger("after", "shutdown", os._exit, 1)
        with contextlib.suppress(ReactorNotRunning):
            self.reactor.stop()

    def _controller(self) -> Any:
        from sonosd.control.controller import Controller

        return Controller(
            self.runner, self.state, self.reactor, timeout=self.config.soco.call_timeout
        )

    def _reader(self) -> Any:
        from sonosd.household.resync import StateReader

        return StateReader(self.runner)
