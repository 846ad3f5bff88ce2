"""Tests for sonosd.tap: the twistd options, config errors, logging set-up and SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python import usage
from twisted.scripts._twistd_unix import ServerOptions

from sonosd import logs, tap
from sonosd.config import Config, ConfigError, ListenerConfig
from tests.paths import ROOT

TWISTD = str(Path(sys.executable).with_name("twistd"))
EXAMPLE = str(ROOT / "etc" / "sonosd.example.yaml")


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def parse(*argv: str, environ: dict[str, str] | None = None) -> tuple[tap.Options, str, str]:
    """Parse ``argv`` with fresh options; return them with what they wrote to stdout/stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    options = tap.Options(stdout=stdout, stderr=stderr, environ=environ or {})
    options.parseOptions(list(argv))
    return options, stdout.getvalue(), stderr.getvalue()


def exit_of(*argv: str) -> tuple[int | str | None, str, str]:
    """Parse ``argv`` expecting SystemExit; return its code and the output."""
    stdout, stderr = io.StringIO(), io.StringIO()
    options = tap.Options(stdout=stdout, stderr=stderr, environ={})
    with pytest.raises(SystemExit) as caught:
        options.parseOptions(list(argv))
    return caught.value.code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(autouse=True)
def _restore_daemon_logging() -> Iterator[None]:
    previous = logs._daemon
    yield
    logs.use_for_daemon(previous)


# -- Options ------------------------------------------------------------------------------------


def test_valid_config_is_loaded(tmp_path: Path) -> None:
    """-c loads and validates the file into options.config."""
    path = write(tmp_path, "listener: {port: 1500}\n")
    options, out, err = parse("-c", path)
    assert isinstance(options.config, Config)
    assert options.config.listener.port == 1500
    assert (out, err) == ("", "")


def test_long_option(tmp_path: Path) -> None:
    """--config is the long spelling of -c."""
    options, _, _ = parse("--config", write(tmp_path, "{}\n"))
    assert options.config == Config(path=str(tmp_path / "config.yaml"))


def test_config_is_required() -> None:
    """Without -c, twistd's usage error names the option."""
    with pytest.raises(usage.UsageError) as caught:
        tap.Options().parseOptions([])
    assert str(caught.value) == "the configuration file is required: -c/--config PATH"


def test_config_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """A wrong file prints one line on stderr and exits with status 1, no usage text."""
    path = write(tmp_path, "devices: [{host: 42}]\n")
    code, out, err = exit_of("-c", path)
    assert code == 1
    assert out == ""
    assert err == f"{path}:1: devices[0].host: expected a host name or address, got 42\n"


def test_check_config_ok(tmp_path: Path) -> None:
    """--check-config prints ok and exits 0 for a valid file that follows a speaker."""
    path = write(tmp_path, "devices: [{host: 192.168.1.20}]\n")
    assert exit_of("-c", path, "--check-config") == (0, "ok\n", "")


def test_check_config_warns_when_nothing_is_followed(tmp_path: Path) -> None:
    """A valid file without devices, discovery or simulate passes with one warning line."""
    path = write(tmp_path, "{}\n")
    code, out, err = exit_of("-c", path, "--check-config")
    assert (code, out) == (0, "ok\n")
    assert err == (
        f"warning: {path}: nothing will be followed: devices is empty, discovery is off and "
        "simulate is not set; list a speaker under devices (one per household is enough)\n"
    )


def test_check_config_warns_of_an_inline_token_others_can_read(tmp_path: Path) -> None:
    """--check-config passes a file holding a token inline that group or others can read,
    with one warning naming the file; once the file is private, without it."""
    path = write(
        tmp_path,
        "devices: [{host: 192.168.1.20}]\napi: {tokens: [{name: a, token: abcdef0123456}]}\n",
    )
    os.chmod(path, 0o644)
    assert exit_of("-c", path, "--check-config") == (
        0,
        "ok\n",
        f"warning: {path}: api.tokens[0].token: a secret written in a file that group or others "
        f"can read (mode 0644): make the file private (chmod 600 {path}) or give the secret "
        "with *_env or *_file\n",
    )
    os.chmod(path, 0o600)
    assert exit_of("-c", path, "--check-config") == (0, "ok\n", "")


def test_check_config_warns_of_a_state_dir_it_cannot_write(tmp_path: Path) -> None:
    """A state_dir that is not a writable directory passes --check-config with one warning
    naming it (exit 0 still); a writable one, without it."""
    missing = tmp_path / "no-such-dir"
    path = write(tmp_path, f"devices: [{{host: 192.168.1.20}}]\nstate_dir: {missing}\n")
    assert exit_of("-c", path, "--check-config") == (
        0,
        "ok\n",
        f"warning: {path}: state_dir: {missing} is not a directory the daemon can write: "
        "pending alarm skips will not survive a restart\n",
    )
    missing.mkdir()
    assert exit_of("-c", path, "--check-config") == (0, "ok\n", "")


@pytest.mark.parametrize(
    "listen", ["tcp:8080", "tcp:8080:interface=0.0.0.0", "tcp6:8080:interface=\\:\\:"]
)
def test_check_config_refuses_an_open_network_api(tmp_path: Path, listen: str) -> None:
    """An API beyond loopback without tokens is refused unless require_auth: false is written."""
    path = write(tmp_path, f"devices: [{{host: 192.168.1.20}}]\napi: {{listen: '{listen}'}}\n")
    code, out, err = exit_of("-c", path, "--check-config")
    assert (code, out) == (1, "")
    assert err == (
        f"{path}:2: api.listen: the API listens beyond loopback and needs a token, but "
        "api.tokens is empty: add a token, or write require_auth: false to leave it open to "
        f"the network, got {json.dumps(listen)}\n"
    )
    open_on_purpose = write(
        tmp_path,
        f"devices: [{{host: 192.168.1.20}}]\napi: {{listen: '{listen}', require_auth: false}}\n",
    )
    assert exit_of("-c", open_on_purpose, "--check-config") == (0, "ok\n", "")


def test_check_config_refuses_required_auth_without_tokens(tmp_path: Path) -> None:
    """require_auth: true without any token would refuse every request: refused at once."""
    path = write(tmp_path, "devices: [{host: 192.168.1.20}]\napi: {require_auth: true}\n")
    code, _, err = exit_of("-c", path, "--check-config")
    assert code == 1
    assert "api.require_auth: every request needs a token, but api.tokens is empty" in err


def test_check_config_accepts_unix_and_loopback_apis_without_tokens(tmp_path: Path) -> None:
    """A unix socket or a loopback address is local: no token is needed."""
    for listen in ("unix:/run/sonosd/api.sock", "tcp:8080:interface=127.0.0.5"):
        path = write(tmp_path, f"devices: [{{host: 192.168.1.20}}]\napi: {{listen: '{listen}'}}\n")
        assert exit_of("-c", path, "--check-config") == (0, "ok\n", ""), listen


def test_check_config_error(tmp_path: Path) -> None:
    """--check-config prints the error and exits 1 for a wrong file."""
    path = write(tmp_path, "listener: {port: -1}\n")
    code, out, err = exit_of("-c", path, "--check-config")
    assert (code, out) == (1, "")
    assert err == f"{path}:1: listener.port: expected a port number from 0 to 65535, got -1\n"


def test_overrides(tmp_path: Path) -> None:
    """The quick-run options replace single values of the file."""
    path = write(tmp_path, "listener: {port: 1400, advertise: old.lan}\n")
    options, _, _ = parse(
        "-c",
        path,
        "--listen-port",
        "0",
        "--listen-interface",
        "127.0.0.1",
        "--advertise",
        "192.168.1.10",
        "--api",
        "tcp:0:interface=127.0.0.1",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    )
    assert options.config is not None
    assert options.config.listener == ListenerConfig("127.0.0.1", 0, "192.168.1.10")
    assert options.config.api.listen == "tcp:0:interface=127.0.0.1"
    assert (options.config.log.format, options.config.log.level) == ("json", "debug")


def test_bad_override_is_one_line(tmp_path: Path) -> None:
    """A bad override is reported like a bad file value, naming the option."""
    path = write(tmp_path, "{}\n")
    code, _, err = exit_of("-c", path, "--listen-port", "http")
    assert code == 1
    assert err == (
        f"{path}: listener.port (from --listen-port): expected a port number from 0 to "
        '65535, got "http"\n'
    )


def test_non_ascii_digit_port_override_is_one_line(tmp_path: Path) -> None:
    """A --listen-port of digits int() cannot read ("²") is a one-line error, not a traceback."""
    path = write(tmp_path, "devices: [{host: 10.0.0.5}]\n")
    code, _, err = exit_of("-c", path, "--listen-port", "\u00b2")
    assert code == 1
    assert err == (
        f"{path}: listener.port (from --listen-port): expected a port number from 0 to "
        '65535, got "\u00b2"\n'
    )


def test_secrets_come_from_the_given_environment(tmp_path: Path) -> None:
    """Options look *_env secrets up in the environment they are given."""
    path = write(tmp_path, "api:\n  tokens: [{name: a, token_env: SONOSD_T}]\n")
    options, _, _ = parse("-c", path, environ={"SONOSD_T": "0123456789abcdef"})
    assert options.config is not None
    assert options.config.api.tokens[0].secret == "0123456789abcdef"


def test_every_option_is_documented() -> None:
    """Each option has help text, and --help shows all of them."""
    options = tap.Options()
    for name, *_rest, doc in options.optParameters:
        assert doc, name
    text = str(options)
    for name in (
        "--config",
        "--check-config",
        "--listen-interface",
        "--listen-port",
        "--advertise",
        "--api",
        "--log-format",
        "--log-level",
    ):
        assert name in text


# -- twistd logging ------------------------------------------------------------------------------


def twistd_parse(*argv: str) -> ServerOptions:
    """Parse a whole twistd command line, as ``twistd`` does."""
    config = ServerOptions()
    config.parseOptions(list(argv))
    return config


def test_twistd_uses_the_configured_log_format(tmp_path: Path) -> None:
    """Under twistd, the configured format and level become twistd's log observer."""
    path = write(tmp_path, "log: {format: json, level: warn}\n")
    config = twistd_parse("-n", "sonosd", "-c", path)
    assert config["logger"] is logs.daemon_observer
    assert logs._daemon == logs.DaemonLogging("json", "warn", None)


def test_twistd_log_override(tmp_path: Path) -> None:
    """--log-format on the sonosd command line wins over the file."""
    config = twistd_parse("-n", "sonosd", "-c", write(tmp_path, "{}\n"), "--log-format", "json")
    assert config["logger"] is logs.daemon_observer
    assert logs._daemon.format == "json"


def test_twistd_logfile_is_kept(tmp_path: Path) -> None:
    """twistd's --logfile still chooses where the log goes."""
    log_path = str(tmp_path / "sonosd.log")
    twistd_parse("-n", "--logfile", log_path, "sonosd", "-c", write(tmp_path, "{}\n"))
    assert logs._daemon.path == log_path
    twistd_parse("-n", "--logfile", "-", "sonosd", "-c", write(tmp_path, "{}\n"))
    assert logs._daemon.path is None


def test_twistd_daemon_mode_logs_to_twistd_log(tmp_path: Path) -> None:
    """Without -n (daemonized), the log goes where twistd puts it: twistd.log."""
    twistd_parse("sonosd", "-c", write(tmp_path, "{}\n"))
    assert logs._daemon.path == "twistd.log"


def test_twistd_user_logger_wins(tmp_path: Path) -> None:
    """A --logger chosen on the twistd command line is left alone."""
    config = twistd_parse(
        "-n",
        "--logger",
        "twisted.logger.globalLogPublisher",
        "sonosd",
        "-c",
        write(tmp_path, "{}\n"),
    )
    from twisted.logger import globalLogPublisher

    assert config["logger"] is globalLogPublisher


def test_twistd_syslog_wins(tmp_path: Path) -> None:
    """--syslog on the twistd command line is left alone."""
    config = twistd_parse("-n", "--syslog", "sonosd", "-c", write(tmp_path, "{}\n"))
    assert config["logger"] is None


# -- the service and SIGTERM ---------------------------------------------------------------------


class ThreadedMemoryReactor(MemoryReactorClock):
    """A memory reactor that also records ``callFromThread``."""

    def __init__(self) -> None:
        super().__init__()
        self.from_thread: list[tuple[Callable[..., object], tuple[Any, ...]]] = []

    def callFromThread(self, f: Callable[..., object], *args: Any, **kwargs: Any) -> None:
        self.from_thread.append((f, args))


def test_sigterm_stops_the_reactor_without_recording_the_signal() -> None:
    """Once running, SIGTERM stops the reactor through a handler that keeps exit status 0."""
    reactor = ThreadedMemoryReactor()
    installed: dict[int, Callable[..., object]] = {}
    tap.stop_cleanly_on_sigterm(
        reactor, lambda number, handler: installed.update({number: handler})
    )
    assert installed == {}
    reactor.running = True
    for hook, args, kwargs in reactor.whenRunningHooks:
        hook(*args, **kwargs)
    handler = installed[signal.SIGTERM]
    handler(signal.SIGTERM, None)
    ((function, args),) = reactor.from_thread
    function(*args)
    assert reactor.hasStopped
    function(*args)  # a second SIGTERM while stopping is harmless
    assert not hasattr(reactor, "_exitSignal") or reactor._exitSignal is None


def test_a_reload_its_service_refuses_is_one_refusal_line() -> None:
    """SIGHUP reads the file and gives it to the service; a file the service refuses (one
    that cannot run beside what a reload keeps) is the same one error line as a file that
    does not load, and the service's other failures are logged, never raised."""
    reactor = ThreadedMemoryReactor()
    installed: dict[int, Callable[..., object]] = {}
    loaded = Config(path="x.yaml")
    failures: list[BaseException] = [ConfigError("x.yaml: api.tokens: refused"), KeyError("k")]
    applied: list[Config] = []

    def apply(config: Config) -> None:
        applied.append(config)
        raise failures[len(applied) - 1]

    tap.reload_on_sighup(
        reactor, lambda: loaded, apply, lambda number, handler: installed.update({number: handler})
    )
    with capturedLogs() as events:
        for _ in failures:
            installed[signal.SIGHUP](signal.SIGHUP, None)
            (function, args), *_ = reactor.from_thread[::-1]
            function(*args)
    assert applied == [loaded, loaded]
    said = [(e["log_level"], formatEvent(e)) for e in events]
    assert said[:2] == [
        (LogLevel.info, "Received SIGHUP, reloading the configuration."),
        (
            LogLevel.error,
            "reload refused, the running configuration is kept: x.yaml: api.tokens: refused",
        ),
    ]
    assert said[3] == (LogLevel.critical, "reload failed")


def test_make_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_service builds the lead's SonosdService and routes stdlib logging."""
    import soco.config

    from sonosd.service import SonosdService

    for name in ("REQUEST_TIMEOUT", "ZGT_EVENT_FALLBACK"):  # set process-wide by the service
        monkeypatch.setattr(soco.config, name, getattr(soco.config, name))

    reactor = ThreadedMemoryReactor()
    config = Config(path="x.yaml")
    stdlib = logging.getLogger("sonosd-test-make-service")
    stdlib.propagate = False
    service = tap.make_service(config, reactor, stdlib)
    assert isinstance(service, SonosdService)
    assert service.config is config
    assert any(isinstance(h, logs.StdlibHandler) for h in stdlib.handlers)
    assert len(reactor.whenRunningHooks) >= 1


def test_make_service_limits_malloc_arenas_before_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon limits its malloc arenas (``memory.limit_arenas``, 2 by default) before it
    builds the service whose thread pool would take arenas of their own (docs/design.md,
    Resident memory)."""
    import soco.config

    from sonosd import memory, service

    for name in ("REQUEST_TIMEOUT", "ZGT_EVENT_FALLBACK"):
        monkeypatch.setattr(soco.config, name, getattr(soco.config, name))
    order: list[str] = []
    monkeypatch.setattr(memory, "limit_arenas", lambda *args: order.append(f"arenas{args}"))
    built = service.SonosdService

    def building(*args: Any, **kwargs: Any) -> Any:
        order.append("service")
        return built(*args, **kwargs)

    monkeypatch.setattr(service, "SonosdService", building)
    stdlib = logging.getLogger("sonosd-test-arenas")
    stdlib.propagate = False
    tap.make_service(Config(path="x.yaml"), ThreadedMemoryReactor(), stdlib)
    assert order == ["arenas()", "service"]
    assert memory.ARENAS == 2


def test_make_service_needs_parsed_options() -> None:
    """makeService refuses options that were never parsed."""
    with pytest.raises(usage.UsageError):
        tap.makeService(tap.Options())


# -- the real command ----------------------------------------------------------------------------


def run_twistd(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TWISTD, *argv], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_check_config_command_ok(tmp_path: Path) -> None:
    """`twistd -n sonosd -c etc/sonosd.example.yaml --check-config` prints ok and exits 0."""
    result = run_twistd("-n", "sonosd", "-c", EXAMPLE, "--check-config", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "ok\n")
    # The example lists every default: no device, so it says that nothing will be followed.
    assert result.stderr.startswith(f"warning: {EXAMPLE}: nothing will be followed"), result.stderr
    assert not (tmp_path / "twistd.pid").exists()


def test_bad_config_command(tmp_path: Path) -> None:
    """A wrong file makes twistd exit 1 with exactly one line and no usage text."""
    path = write(tmp_path, "devices: [{host: 42}]\n")
    result = run_twistd("-n", "sonosd", "-c", path, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == f"{path}:1: devices[0].host: expected a host name or address, got 42\n"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "the file is empty; expected a mapping of settings"),
        (
            "api: {listen: 'tcp:8080:interface=0.0.0.0'}\n",
            "1: api.listen: the API listens beyond loopback and needs a token, but api.tokens is "
            "empty",
        ),
    ],
)
def test_a_wrong_file_stops_the_start_in_one_line(tmp_path: Path, text: str, error: str) -> None:
    """Starting (not only checking) with a wrong file: exit status 1 and one line on
    standard error naming the file, the line and the key, before anything listens."""
    path = write(tmp_path, text)
    result = run_twistd("-n", "--pidfile=", "sonosd", "-c", path, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    [line] = result.stderr.splitlines()
    separator = ": " if error.startswith("the file") else ":"
    assert line.startswith(f"{path}{separator}{error}"), line


def read_until(process: subprocess.Popen[str], wanted: str, deadline: float) -> list[str]:
    """Lines of ``process``'s stdout up to the first containing ``wanted`` (or EOF/deadline).

    Lines are read by a thread: waiting for the pipe to be readable would miss lines that
    arrived in the same chunk and already sit in the file object's buffer.
    """
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if wanted in line:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(max(0.0, deadline - time.monotonic()))
    return list(lines)


def test_sigterm_exits_0(tmp_path: Path) -> None:
    """The real daemon (no devices, API on a free loopback port) stops on SIGTERM with status 0."""
    # Port 0 (the kernel's choice when the daemon binds): a port found free beforehand may be
    # taken by then on a busy machine (any connection's local port), and the daemon would
    # exit 1 instead of starting.
    path = write(
        tmp_path,
        "listener: {interface: 127.0.0.1, port: 0}\n"
        "api: {listen: 'tcp:0:interface=127.0.0.1'}\n"
        "log: {format: json}\n",
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", "sonosd", "-c", path],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        started = read_until(process, "SIGTERM stops it", time.monotonic() + 60)
        if not started or "SIGTERM stops it" not in started[-1]:
            process.kill()
            pytest.fail(f"the daemon did not start: {started} {process.communicate()}")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    lines = [*started, *out.splitlines(keepends=True)]
    records = [json.loads(line) for line in lines]
    messages = [record["message"] for record in records]
    assert "Received SIGTERM, shutting down." in messages
    assert messages[-1] == "Server Shut Down."
    assert not [r for r in records if r["level"] in {"error", "critical"}], records


def test_only_the_taps_import_the_global_reactor() -> None:
    """The daemon's code gets its reactor passed in: only ``makeService`` of ``sonosd.tap``
    imports the global one (and, outside the daemon, the simulator's own tap and the
    ``EVENTS_MODULE`` path of ``gena.subscription``), as docs/design.md's module map says."""
    import ast

    importers = set()
    for path in sorted((ROOT / "sonosd").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "twisted.internet":
                names = {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                names = {alias.name.removeprefix("twisted.internet.") for alias in node.names}
            else:
                continue
            if "reactor" in names:
                importers.add(path.relative_to(ROOT).as_posix())
    assert importers == {"sonosd/tap.py", "sonosd/sim/tap.py", "sonosd/gena/subscription.py"}
