# -*- test-case-name: tests.test_tap -*-
"""The ``twistd sonosd`` command: its options and the service it makes.

``twistd -n sonosd -c config.yaml`` parses ``Options``; ``Options.postOptions`` loads and
validates the whole configuration before twistd builds anything, so a wrong file stops the
command with one line on stderr and exit status 1 (not twistd's usage text, which it prints
for a ``UsageError``). ``--check-config`` stops there too, with ``ok`` and exit status 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping
from types import FrameType
from typing import IO, Any

from twisted.application.service import IService
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.python import usage

from sonosd import logs, memory, tlsgate
from sonosd.config import (
    LOG_FORMATS,
    LOG_LEVELS,
    Config,
    ConfigError,
    config_warnings,
    load_config,
)

log = Logger()


class Options(usage.Options):
    """``twistd sonosd`` options: the configuration file, a check mode and quick overrides.

    @ivar config: the validated ``Config`` once ``postOptions`` has run.
    """

    synopsis = "-c PATH [--check-config] [overrides]"
    longdesc = (
        "Bridge the UPnP (GENA) events of Sonos speakers to WebSocket, Server-Sent Events, "
        "webhooks, MQTT and Python callbacks, and control the speakers through an HTTP API. "
        "Everything is set in a YAML file (see docs/configuration.md); the overrides above "
        "replace single values of it for quick runs and are validated the same way."
    )
    optFlags = [
        [
            "check-config",
            None,
            "Validate the configuration, print 'ok' (exit status 0) or the error "
            "(exit status 1), and exit without starting anything.",
        ],
    ]
    optParameters = [
        ["config", "c", None, "Path of the YAML configuration file (required)."],
        [
            "listen-interface",
            None,
            None,
            "Override listener.interface: the local IP address the NOTIFY listener binds.",
        ],
        [
            "listen-port",
            None,
            None,
            "Override listener.port: the NOTIFY listener's port (0: any free port).",
        ],
        [
            "advertise",
            None,
            None,
            "Override listener.advertise: the address speakers send NOTIFYs to "
            "(behind NAT or a Docker bridge network).",
        ],
        [
            "api",
            None,
            None,
            "Override api.listen: the API's Twisted endpoint string, "
            "e.g. tcp:8080:interface=127.0.0.1.",
        ],
        ["log-format", None, None, "Override log.format: " + " or ".join(LOG_FORMATS) + "."],
        ["log-level", None, None, "Override log.level: " + ", ".join(LOG_LEVELS) + "."],
    ]

    def __init__(
        self,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self._stdout = stdout
        self._stderr = stderr
        self._environ = environ
        self.config: Config | None = None

    def postOptions(self) -> None:
        """Load and validate the configuration; stop here for ``--check-config`` or an error."""
        path = self["config"]
        if not path:
            raise usage.UsageError("the configuration file is required: -c/--config PATH")
        if getattr(self, "parent", None) is not None:
            # Started by twistd: pyOpenSSL only once something needs TLS (sonosd.tlsgate).
            tlsgate.defer()
        try:
            config = self.load()
        except ConfigError as error:
            (self._stderr or sys.stderr).write(f"{error}\n")
            raise SystemExit(1) from None
        self.config = config
        if self["check-config"]:
            for warning in config_warnings(config):
                (self._stderr or sys.stderr).write(f"warning: {warning}\n")
            (self._stdout or sys.stdout).write("ok\n")
            raise SystemExit(0)
        self._set_up_daemon_logging(config)

    def load(self) -> Config:
        """Read and check the configuration file with the command line's overrides (at
        start, and again for each reload).

        @raise ConfigError: One line saying what is wrong.
        """
        overrides: dict[str, object] = {
            name: self[name]
            for name in ("listen-interface", "advertise", "api", "log-format", "log-level")
            if self[name] is not None
        }
        if self["listen-port"] is not None:
            port: str = self["listen-port"]
            digits = port.strip()
            # str.isdigit() accepts "²", which int() refuses.
            overrides["listen-port"] = (
                int(digits) if digits.isascii() and digits.isdigit() else port
            )
        config = load_config(
            self["config"], os.environ if self._environ is None else self._environ, overrides
        )
        check_callbacks(config)
        return config

    def _set_up_daemon_logging(self, config: Config) -> None:
        """Make twistd log with the configured format and level (see ``sonosd.logs``).

        twistd creates its observer from the factory named by its own ``--logger`` option,
        after this method and before the application runs. Unless the user chose a logger
        or syslog on the twistd command line, name ours, writing where twistd would have.
        """
        parent = getattr(self, "parent", None)
        if parent is None or "logger" not in parent:
            return
        if parent["logger"] is not None or parent.get("syslog"):
            return
        path = parent.get("logfile") or None
        if path == "-":
            path = None
        elif path is None and not parent.get("nodaemon", True):
            path = "twistd.log"
        logs.use_for_daemon(logs.DaemonLogging(config.log.format, config.log.level, path))
        parent["logger"] = f"{logs.__name__}.{logs.daemon_observer.__name__}"


def check_callbacks(config: Config) -> None:
    """Import every configured callback now, so that a wrong name is one line, not a traceback."""
    if not config.sinks.callbacks:
        return
    tlsgate.enable()  # the user's code may use TLS
    from sonosd.sinks.callbacks import CallbackLoadError, load_callable

    for index, spec in enumerate(config.sinks.callbacks):
        try:
            load_callable(spec)
        except CallbackLoadError as error:
            raise ConfigError(f"{config.path}: sinks.callbacks[{index}]: {error}") from None


def stop_cleanly_on_sigterm(reactor: Any, install: Callable[..., object] = signal.signal) -> None:
    """Once the reactor runs, make SIGTERM stop it and twistd exit with status 0.

    The reactor's own handler records the signal, and twistd then kills itself with it once
    the reactor has stopped (exit status 143), which service managers and container runtimes
    report as a failure. A requested stop that completed is a success: this handler stops
    the reactor the same way (services stop in order, within their grace periods) without
    recording the signal. It replaces the reactor's handler after the reactor installed it
    (the reactor installs its handlers during startup, ``callWhenRunning`` runs after).

    @param install: ``signal.signal``, or a recording fake in tests.
    """

    def on_sigterm(number: int, frame: FrameType | None) -> None:
        log.info("Received SIGTERM, shutting down.")
        reactor.callFromThread(_stop, reactor)

    reactor.callWhenRunning(install, signal.SIGTERM, on_sigterm)


def reload_on_sighup(
    reactor: Any,
    load: Callable[[], Config],
    apply: Callable[[Config], object],
    install: Callable[..., object] = signal.signal,
) -> Callable[[], None]:
    """Make SIGHUP reload the configuration file (systemd's ``ExecReload``, ``kill -HUP``).

    Without a handler SIGHUP ends the process silently. The file is read and checked in the
    reactor thread; a file that does not load is one error line and changes nothing.

    @param load: Reads and checks the file (``Options.load``); raises ``ConfigError``.
    @param apply: Applies a new configuration (``SonosdService.reload``); raises
        ``ConfigError``, changing nothing, for one that cannot run beside what it keeps.
    @param install: ``signal.signal``, or a recording fake in tests.
    @return: The reload itself (what the handler schedules), for tests.
    """

    def reload() -> None:
        try:
            apply(load())
        except ConfigError as error:
            log.error("reload refused, the running configuration is kept: {error}", error=error)
        except Exception:
            log.failure("reload failed")

    def on_sighup(number: int, frame: FrameType | None) -> None:
        log.info("Received SIGHUP, reloading the configuration.")
        reactor.callFromThread(reload)

    install(signal.SIGHUP, on_sighup)
    return reload


def _stop(reactor: Any) -> None:
    with contextlib.suppress(ReactorNotRunning):  # a second SIGTERM while shutting down
        reactor.stop()


def make_service(
    config: Config,
    reactor: Any,
    stdlib_root: logging.Logger | None = None,
    load: Callable[[], Config] | None = None,
    settle: Callable[[], object] | None = None,
) -> IService:
    """The daemon's service for ``config``, with logging and signal handling set up.

    The process's malloc arenas are limited here, before any thread starts (see
    ``sonosd.memory``). "sonosd running" is said only once the daemon is ready: its doors
    (the NOTIFY listener, the API, the stream) listen. A daemon that cannot start says why in
    one line and exits with status 1.

    @param stdlib_root: the stdlib logger routed into twisted.logger (default: the root).
    @param load: Reads the configuration file again for a reload (SIGHUP); ``None``: SIGHUP
        is left alone.
    @param settle: Called once the doors are open, before the household starts (see
        ``SonosdService``); ``makeService`` freezes the start-up heap there.
    """
    from sonosd.service import SonosdService, stop_process

    memory.limit_arenas()
    logs.route_stdlib_logging(config.log.level, stdlib_root)
    stop_cleanly_on_sigterm(reactor)
    service = SonosdService(
        config, reactor, on_fatal=lambda status: stop_process(reactor, status), settle=settle
    )
    if load is not None:
        reload_on_sighup(reactor, load, service.reload)

    def running() -> None:
        log.info(
            "sonosd running (pid {pid}); SIGTERM stops it, SIGHUP reloads {path}",
            pid=os.getpid(),
            path=config.path,
        )

    # Said once the reactor runs, after SIGTERM's handler is in place.
    service.ready.addCallback(lambda _: reactor.callWhenRunning(running))
    return service


def makeService(options: Options) -> IService:
    """twistd's entry point: the daemon's service on the global reactor."""
    from twisted.internet import reactor

    if options.config is None:
        raise usage.UsageError("the options were not parsed")
    return make_service(options.config, reactor, load=options.load, settle=_freeze_startup_heap)


def _freeze_startup_heap() -> None:
    """The daemon process's start-up objects, out of the cycle collector's sight (see
    ``sonosd.memory``)."""
    frozen = memory.freeze_startup_heap()
    log.debug(
        "start-up heap frozen: {objects} objects kept out of garbage collection", objects=frozen
    )
