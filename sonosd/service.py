# -*- test-case-name: tests.test_daemon -*-
"""The daemon's top service: builds every part from the configuration and orders them.

Children start in the order they are added and stop in the reverse order:

1. systemd's notifications (``sonosd.systemd``: ``READY=1`` once the doors are open);
2. the SoCo thread pool (stops last, once nothing can submit work), and the memory trimmer
   (``sonosd.memory``);
3. the simulated household, when ``simulate:`` is configured (it must outlive the
   supervisor so that the final UNSUBSCRIBEs reach it);
4. the NOTIFY listener;
5. the sinks and the API site (they flush and close their clients), the local stream;
6. the household supervisor (stops first: every subscription is UNSUBSCRIBEd, bounded).

The outlets of 5 (the push sinks, the API, the stream) stop together, once the supervisor
has stopped: each has then received everything published (the speakers going away), and a
clean stop takes the UNSUBSCRIBEs' bound plus the longest outlet's, whatever their number.

The *doors* (the NOTIFY listener, the API and the stream) must all listen before anything
else happens: the household supervisor is started, and the daemon said to be ready, only
then. When one cannot listen, the daemon logs one line and exits with status 1 at once
(``on_fatal``), so that systemd's ``Restart=on-failure`` and container restart policies see
the failure. ``reload`` applies a changed configuration file (SIGHUP) without dropping a
client.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

import attrs
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError
from twisted.logger import Logger
from twisted.python.failure import Failure

from sonosd import hostinfo, lazysoco, logs, tlsgate
from sonosd.api.site import VERSION, ApiService
from sonosd.blocking import SocoRunner
from sonosd.config import (
    ApiConfig,
    Config,
    ConfigError,
    Device,
    SimulateConfig,
    open_without_token,
    redacted,
)
from sonosd.delivery.hub import Hub
from sonosd.delivery.metrics import DaemonCollector
from sonosd.gena import eventxml
from sonosd.gena.listener import NotifyListener
from sonosd.gena.media import MediaStore
from sonosd.household.alarms import AlarmWatcher
from sonosd.household.events import EventProcessor
from sonosd.household.keepalive import PHASES
from sonosd.household.readiness import health_reasons, readiness, summary_line
from sonosd.household.soap import SoapClient
from sonosd.household.state import HouseholdState
from sonosd.household.supervisor import HouseholdSupervisor, build_household
from sonosd.memory import MemoryTrimmer
from sonosd.reload import plan_reload, running_config
from sonosd.sinks.logsink import LogSink
from sonosd.sinks.stream import StreamService
from sonosd.systemd import Notifier, SystemdService, watchdog_interval

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


def effective_config(config: Config) -> Config:
    """``config`` with a simulated household's speakers as its devices (when none are listed)."""
    if config.simulate is not None and not config.devices:
        return attrs.evolve(config, devices=simulated_devices(config.simulate))
    return config


def configure_soco(config: Config) -> None:
    """Set SoCo's process-wide settings the daemon relies on (this imports SoCo: the daemon
    has ``sonosd.lazysoco`` call it when SoCo is first needed).

    SoCo's own ``requests`` timeout is kept within the pool's call timeout so that a hung
    speaker frees its thread, and its HTTP is bounded (``sonosd.household.socohttp``: size,
    whole-answer deadline, no DTD); speakers that refuse SOAP over HTTP get it over HTTPS
    (``sonosd.securesoap``, in front of the bounded HTTP); the ZoneGroupTopology event
    fallback is not implemented for Twisted listeners and would raise, so it is off
    (topology comes from our own events).
    """
    import soco.config

    from sonosd import securesoap
    from sonosd.household import socohttp

    soco.config.REQUEST_TIMEOUT = config.soco.call_timeout
    soco.config.ZGT_EVENT_FALLBACK = False
    # Every answer SoCo reads from a speaker: at most 4 MiB, whole within the call timeout,
    # no DTD (sonosd.household.socohttp); SOAP of HTTPS-only speakers over 1443.
    bounded = socohttp.BoundedRequests(deadline=config.soco.call_timeout)
    socohttp.install(bounded)
    securesoap.install(bounded)


def versions() -> dict[str, str]:
    """The versions the diagnostics report."""
    found = {"sonosd": VERSION, "python": platform.python_version()}
    for package in ("twisted", "soco", "paho-mqtt", "autobahn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    found["platform"] = platform.platform()
    return found


def stop_process(reactor: Any, status: int) -> None:
    """Stop the reactor (now, or as soon as it runs) and make the process exit with
    ``status`` once twistd has finished (``sonosd.tap`` passes this as ``on_fatal``)."""
    import atexit

    def exit_with_status() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    # After twistd has returned (services stopped, pid file removed, log flushed): only the
    # interpreter's own exit is skipped, which would report status 0.
    atexit.register(exit_with_status)
    if reactor.running:
        reactor.stop()
    else:
        reactor.callWhenRunning(reactor.stop)


class SonosdService(MultiService):
    """Everything the daemon runs, built from a validated ``Config``.

    @param config: The validated configuration.
    @param reactor: The reactor every part is given.
    @param household_factory: Builds the simulated household (tests pass their own).
    @param on_fatal: Called with the exit status when the daemon cannot start (default:
        stop nothing; ``sonosd.tap`` stops the process).
    @param environ: Where systemd's variables are read (``NOTIFY_SOCKET``, ``WATCHDOG_USEC``).
    @param notifier: Sends systemd notifications (default: from ``environ``).
    @param settle: Called once the doors are open, just before the household starts, while no
        request to a speaker is in flight (``twistd sonosd`` freezes its start-up heap there,
        ``sonosd.memory``; the default does nothing, as a test process must not be frozen).

    @ivar ready: Fires once the doors are open and the household is started; never fails.
    """

    def __init__(
        self,
        config: Config,
        reactor: Any,
        *,
        household_factory: Callable[[Any, SimulateConfig], IService] | None = None,
        on_fatal: Callable[[int], None] | None = None,
        environ: Mapping[str, str] | None = None,
        notifier: Notifier | None = None,
        settle: Callable[[], object] | None = None,
    ) -> None:
        super().__init__()
        self.exit_status = 0
        self._settle = settle
        self.reactor = reactor
        self.ready: Deferred[None] = Deferred()
        self._on_fatal = on_fatal
        self._started_at = time.time()
        env = os.environ if environ is None else environ
        # SoCo (with requests and lxml: ~11 MB) is loaded when something first needs it.
        lazysoco.on_load(lambda _: configure_soco(config))
        self.systemd = SystemdService(
            reactor,
            notifier if notifier is not None else Notifier(env),
            self.status_line,
            watchdog_interval(env, os.getpid()),
        )
        self.systemd.setServiceParent(self)
        self.runner = SocoRunner(
            reactor, threads=config.soco.threads, timeout=config.soco.call_timeout
        )
        self.runner.setServiceParent(self)
        # The daemon's own reads of the speakers (position, resync, polls, the consistency
        # check, alarms): SOAP from the reactor, no SoCo (sonosd.household.soap). Stopped
        # just before the pool: the calls still in flight then are cancelled.
        self.soap = SoapClient(reactor, config.soco.call_timeout)
        self.soap.setServiceParent(self)
        MemoryTrimmer(reactor).setServiceParent(self)

        self.simulator: IService | None = None
        if config.simulate is not None:
            if household_factory is None:
                tlsgate.enable()  # the simulated speakers' HTTPS (sim.tls)
                from sonosd.sim.service import HouseholdService

                household_factory = HouseholdService
            self.simulator = household_factory(reactor, config.simulate)
            self.simulator.setServiceParent(self)
        config = effective_config(config)
        self.config = config

        #: Clips the daemon serves to the speakers (spoken announcements), on the listener.
        self.media = MediaStore(reactor)
        self.listener = NotifyListener(
            reactor,
            interface=config.listener.interface,
            port=config.listener.port,
            advertise=config.listener.advertise,
            max_body=config.listener.max_body,
            idle_timeout=config.listener.idle_timeout,
            request_timeout=config.listener.request_timeout,
            max_per_host=config.listener.max_connections_per_host,
            media=self.media.lookup,
        )
        self.listener.setServiceParent(self)

        self.hub = Hub(reactor, replay=config.api.replay_buffer)
        self.hub.add_clients_observer(self.systemd.changed)
        self.state = HouseholdState()
        self.hub.set_snapshot_provider(self.state.snapshot)
        self.processor = EventProcessor(self.hub, self.state, reactor)
        self.alarm_watcher = AlarmWatcher(
            self.soap, self.state, self.processor, config.soco.call_timeout
        )
        self.processor.add_variables_observer(self.alarm_watcher.on_variables)
        self.log_sink = LogSink(enabled=config.log.messages)
        self.hub.add_sink(self.log_sink)

        self.controller = self._controller()
        self.sinks: dict[str, Any] = {}
        self.api = ApiService(
            reactor,
            config.api,
            self.hub,
            self.state,
            self.controller,
            readiness=self.readiness,
            diagnostics=self.diagnostics,
        )
        self._doors: list[tuple[Deferred[Any], str]] = [
            (self.api.listening, f"the API cannot listen on {config.api.listen}")
        ]
        self.api.metrics.add_client_errors(self._sink_refusals)
        for name, sink in self._build_sinks(config).items():
            self._add_sink(name, sink)
        self.api.setServiceParent(self)
        self.stream: StreamService | None = None
        if config.sinks.stream:
            self.stream = StreamService(
                reactor,
                config.sinks.stream,
                self.hub,
                config.api.client_buffer,
                metrics=self.api.metrics,
            )
            self.stream.setServiceParent(self)
            self._doors.append(
                (self.stream.listening, f"the stream cannot listen on {config.sinks.stream}")
            )
        # Each door's outcome, watched from now on (a failure is consumed by ``listen``).
        self._opened = [self._watch(listening, what) for listening, what in self._doors]

        self.household: HouseholdSupervisor = build_household(
            reactor,
            config,
            runner=self.runner,
            processor=self.processor,
            reader=self._reader(),
            listener=self.listener,
            state=self.state,
            soap=self.soap,
            status_changed=self.systemd.changed,
        )
        self.api.metrics.registry.register(
            DaemonCollector(lambda: self.household.status(), self.sink_status, PHASES)
        )
        self.controller.on_done = self.api.metrics.observe_command
        # A command that gets no answer is a sign the availability check hears at once; a
        # transport command (a seek) moves the position, which no event says.
        self.controller.unreachable = self.household.command_failed
        self.controller.transport_commanded = self.household.transport_commanded
        # A skipped alarm another controller switches on or deletes ends its skip.
        self.alarm_watcher.observers.append(self.controller.alarms.list_read)
        self.api.problems = self.health_reasons

    # -- starting: the doors first ---------------------------------------------------------

    def _watch(self, listening: Deferred[Any], what: str) -> Deferred[bool]:
        opened: Deferred[bool] = Deferred()

        def ok(port: Any) -> Any:
            opened.callback(True)
            return port

        def failed(failure: Failure) -> None:
            opened.callback(False)
            self.fatal(f"{what}: {_reason(failure.value)}")

        listening.addCallbacks(ok, failed)
        return opened

    def startService(self) -> None:
        """Start every child; once the doors are open, the household (see the docstring)."""
        Service.startService(self)
        for child in list(self):
            if self.exit_status:
                return
            try:
                child.startService()
            except CannotListenError as error:
                config = self.config.listener
                # The listener tries the ports above a taken one; the error is the last one's.
                last = error.port if isinstance(error.port, int) else config.port
                where = (
                    f"{config.interface}:{config.port}"
                    if last == config.port
                    else f"{config.interface} ports {config.port} to {last}"
                )
                self.fatal(f"the NOTIFY listener cannot listen on {where}: {_reason(error)}")
                return
        Deferred.fromCoroutine(self._open())

    async def _open(self) -> None:
        for opened in self._opened:
            if not await opened:
                return
        if self.exit_status or not self.running:
            return
        for warning in self._warnings():
            log.warn("{warning}", warning=warning)
        if self._settle is not None:
            self._settle()
        self.household.setServiceParent(self)
        self.systemd.ready()
        self.ready.callback(None)

    def _warnings(self) -> list[str]:
        from sonosd.config import config_warnings

        return config_warnings(self.config)

    def fatal(self, line: str) -> None:
        """The daemon cannot run: log ``line`` (once) and exit with status 1."""
        if self.exit_status:
            return
        self.exit_status = 1
        log.critical("cannot start: {line}", line=line)
        if self._on_fatal is not None:
            self._on_fatal(1)

    # -- stopping ----------------------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        """Stop the children stage after stage, the last added first (see the module
        docstring); the outlets are one stage.

        ``MultiService.stopService`` would call every child's ``stopService`` in the same
        turn: the simulator and the listener would close while the supervisor's UNSUBSCRIBEs
        are still on their way, and the pool would stop under work still being submitted.
        """
        self.systemd.stopping()
        Service.stopService(self)
        stop = getattr(self.controller, "stop", None)
        if stop is not None:
            stop()
        return Deferred.fromCoroutine(self._stop_children())

    def stop_stages(self) -> list[list[IService]]:
        """The running children in the order they stop: one at a time, the last added first,
        except the outlets (push sinks, API, stream), which drain together in one stage.

        Each sink bounds its own drain (``subscription.shutdown_timeout``), so draining them
        together keeps a clean stop within two bounds however many sinks are configured; each
        still takes every message published before its stage, and nothing once it stopped.
        """
        outlets = [*self.sinks.values(), self.api, self.stream]
        stages: list[list[IService]] = []
        for child in reversed(list(self)):
            if not child.running:
                continue
            if child in outlets and stages and stages[-1][0] in outlets:
                stages[-1].append(child)
            else:
                stages.append([child])
        return stages

    async def _stop_children(self) -> None:
        for stage in self.stop_stages():
            await gatherResults([Deferred.fromCoroutine(_stop_child(child)) for child in stage])

    # -- sinks -------------------------------------------------------------------------------

    def _build_sinks(self, config: Config) -> dict[str, Any]:
        """The push sinks that ``config`` asks for, by name (``callbacks``, ``webhooks``,
        ``mqtt``): each is a hub sink and a child service (stopped before the pool).

        Each sink's module is imported only when it is configured: the MQTT client (paho) and
        the webhooks' TLS stack are megabytes of resident memory a daemon without them never
        uses (issues #7 and #17).
        """
        sinks: dict[str, Any] = {}
        # docs/deployment.md: sinks flush within subscription.shutdown_timeout at SIGTERM.
        bound = config.subscription.shutdown_timeout
        if config.sinks.callbacks or config.sinks.webhooks:
            # Webhooks speak HTTPS; a user's callback may too (sonosd.tlsgate).
            tlsgate.enable()
        if config.sinks.callbacks:
            from sonosd.sinks.callbacks import CallbackSink

            sinks["callbacks"] = CallbackSink(
                self.reactor, config.sinks.callbacks, drain_timeout=bound
            )
        if config.sinks.webhooks:
            from sonosd.sinks.webhooks import WebhookSink

            sinks["webhooks"] = WebhookSink.from_config(
                self.reactor, config.sinks.webhooks, drain_timeout=bound
            )
        if config.sinks.mqtt is not None:
            from sonosd.sinks.mqtt import MqttSink

            sinks["mqtt"] = MqttSink(
                self.reactor,
                config.sinks.mqtt,
                lambda fn: self.runner.run(fn, key="mqtt-connect", timeout=15.0),
                controller=self.controller,
                drain_timeout=bound,
            )
        return sinks

    def _bound_sinks(self, seconds: float) -> None:
        """Give every running push sink ``seconds`` to flush at shutdown (a reload that
        changes ``subscription.shutdown_timeout`` keeps the sinks themselves)."""
        for sink in self.sinks.values():
            sink.drain_timeout = seconds

    def _add_sink(self, name: str, sink: Any) -> None:
        """Deliver to ``sink`` from now on; it starts just before the API and stops with it."""
        self.sinks[name] = sink
        self.hub.add_sink(sink)
        children = self.services
        anchor = children.index(self.api) if self.api in children else len(children)
        sink.parent = self
        children.insert(anchor, sink)
        if self.running:
            sink.startService()

    def _sink_refusals(self) -> dict[tuple[str, str], int]:
        """Client input the push sinks refused (MQTT command payloads), by channel and
        reason, for ``sonosd_client_errors_total``."""
        total: dict[tuple[str, str], int] = {}
        for sink in self.sinks.values():
            for key, count in getattr(sink, "refused", {}).items():
                total[key] = total.get(key, 0) + count
        return total

    def _remove_sink(self, name: str) -> Deferred[None]:
        """Stop delivering to the sink ``name``; it drains what it holds, then stops."""
        sink = self.sinks.pop(name)
        self.hub.remove_sink(sink)
        return maybeDeferred(sink.disownServiceParent)

    def sink_status(self) -> dict[str, Any]:
        """Every push sink's queues and failures, and the clients of each channel."""
        status: dict[str, Any] = {name: sink.status() for name, sink in self.sinks.items()}
        status["clients"] = self.clients()
        return status

    def clients(self) -> dict[str, int]:
        """Connected clients per channel (``websocket``, ``sse``, ``stream``)."""
        counts = {
            "websocket": self.api.websocket_clients(),
            "sse": len(self.api.events.channel.clients),
        }
        if self.stream is not None:
            counts["stream"] = len(self.stream.factory.channel.clients)
        return counts

    # -- what the daemon tells about itself --------------------------------------------------

    def health_reasons(self) -> list[str]:
        """Why ``/api/v1/health`` says ``degraded``, one sentence each (empty: it does not)."""
        return list(health_reasons(self.household.status()))

    def readiness(self) -> dict[str, Any]:
        """``/api/v1/ready``: whether every followed speaker is evented, and why not."""
        found = readiness(self.household.status(), allow_polling=self.config.api.ready_when_polling)
        return {"ready": found.ready, "reasons": list(found.reasons), "speakers": found.counts}

    def status_line(self) -> str:
        """systemd's ``STATUS=`` line."""
        return summary_line(self.household.status(), sum(self.clients().values()))

    def diagnostics(self) -> dict[str, Any]:
        """``/api/v1/diagnostics``: everything needed to tell why events do not arrive (the
        shape is documented in docs/api.md)."""
        config = self.config
        household = self.household.status(callback=True)
        return {
            "versions": versions(),
            "pid": os.getpid(),
            "uptime": round(time.time() - self._started_at, 3),
            "config": redacted(config),
            "ready": self.readiness(),
            "host": hostinfo.host_info(),
            "listener": {
                "interface": self.listener.interface,
                "port": self.listener.port,
                "requested_port": self.listener.requested_port,
                "advertise": self.listener.advertise,
                "notify": household["notify"],
                "reader": eventxml.reader(),
            },
            "speakers": household["speakers"],
            "retired": household["retired"],
            "sinks": self.sink_status(),
            "hub": {"last_id": self.hub.last_id, "published": self.hub.published},
            "log": {"level": logs.current_level(), "messages": self.log_sink.enabled},
        }

    # -- reloading -----------------------------------------------------------------------------

    def reload(self, new: Config) -> list[str]:
        """Apply ``new`` (SIGHUP): devices, services and timings, sinks, tokens, origins,
        readiness and log settings; keep the listen addresses and say they need a restart.

        Clients stay connected: sinks that did not change are kept, a changed sink is
        replaced in one reactor turn (the old one drains what it holds), so no message is
        lost between them.

        @return: The settings that changed but need a restart.
        @raise ConfigError: ``new`` cannot run beside what a reload keeps (the API beyond
            loopback without a token); nothing is changed.
        """
        old = self.config
        # The simulated household runs until a restart: its speakers stay the devices of a
        # file that lists none, whatever its new ``simulate`` section says.
        effective = effective_config(running_config(old, new))
        _check_running_api(effective.api, new.path)
        self.systemd.reloading()
        plan = attrs.evolve(plan_reload(old, effective), restart=plan_reload(old, new).restart)
        self.config = effective
        if plan.household:
            self._reload_household(old, effective)
        if plan.auth or plan.ready:
            self.api.reconfigure(effective.api)
        if plan.sinks:
            built = self._build_sinks(effective)
            for name in plan.sinks:
                replaced = self.sinks.get(name)
                # The MQTT sink carries the retained state and the gap over (docs/mqtt.md),
                # before the old one's stop counts what it leaves undelivered.
                take_over = getattr(built.get(name), "take_over", None)
                if replaced is not None and take_over is not None:
                    take_over(replaced)
                if replaced is not None:
                    self._remove_sink(name).addErrback(_stop_failed, name)
                if name in built:
                    self._add_sink(name, built[name])
        self._bound_sinks(effective.subscription.shutdown_timeout)
        if plan.max_body:
            self.listener.site.max_body = effective.listener.max_body
        if plan.announce:
            reconfigure = getattr(self.controller, "reconfigure_announce", None)
            if reconfigure is not None:
                reconfigure(effective.announce)
        log.info("reloaded {path}: {changes}", path=new.path, changes=plan.describe())
        if plan.restart:
            log.warn(
                "{path}: {keys} changed: restart sonosd to apply (kept as they were)",
                path=new.path,
                keys=", ".join(plan.restart),
            )
        for warning in self._warnings():
            log.warn("{warning}", warning=warning)
        if plan.log:
            # Last, so that the lines above are written at the level they were asked at.
            logs.set_level(effective.log.level)
            self.log_sink.enabled = effective.log.messages
        self.systemd.reloaded()
        return list(plan.restart)

    def _reload_household(self, old: Config, new: Config) -> None:
        removed = {
            speaker.config_device.host.lower(): speaker.ref
            for speaker in self.household.speakers()
            if speaker.configured and not speaker.discovered
        }
        gone_services = [s for s in old.services if s not in new.services]
        refs = [speaker.ref for speaker in self.household.speakers() if speaker.ref is not None]
        _, removed_hosts = self.household.apply(new)
        for host in removed_hosts:
            ref = removed.get(host.lower())
            if ref is not None:
                # Still a member of a followed household, it is already followed again as
                # such (follow_household: HouseholdSupervisor.apply).
                self.processor.speaker_removed(ref, "removed from the configuration")
        for ref in refs:
            for service in gone_services:
                self.state.clear(ref.uid, service)

    # -- parts ---------------------------------------------------------------------------------

    def _controller(self) -> Any:
        from sonosd.control.controller import Controller

        return Controller(
            self.runner,
            self.state,
            self.reactor,
            timeout=self.config.soco.call_timeout,
            announce=self.config.announce,
            media=self.media,
            media_url=self.listener.media_url,
            state_dir=self.config.state_dir,
        )

    def _reader(self) -> Any:
        from sonosd.household.resync import StateReader

        return StateReader(self.soap, self.reactor, self.config.soco.call_timeout)


async def _stop_child(child: IService) -> None:
    """Stop ``child``; a failure is logged, never raised (the next stage still stops)."""
    try:
        await maybeDeferred(child.stopService)
    except Exception:
        log.failure("{child} did not stop cleanly", child=type(child).__name__)


def _check_running_api(api: ApiConfig, path: str) -> None:
    """Refuse a reload that would leave the API, where it listens until a restart, beyond
    loopback without a token (the check a start makes, ``sonosd.config``): every request
    would get 401.

    @raise ConfigError: One line saying what is wrong.
    """
    if not open_without_token(api):
        return
    raise ConfigError(
        f"{path}: api.tokens: the API listens beyond loopback ({api.listen}) until a restart "
        "and needs a token, but api.tokens is empty: keep a token until the restart, or write "
        "require_auth: false"
    )


def _stop_failed(failure: Failure, name: str) -> None:
    log.failure("the old {name} sink did not stop cleanly", failure, name=name)


def _reason(error: BaseException) -> str:
    """A listen failure in a few words: ``Address already in use``, not the whole repr."""
    socket_error = getattr(error, "socketError", None)
    if isinstance(socket_error, OSError) and socket_error.strerror:
        return socket_error.strerror
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
