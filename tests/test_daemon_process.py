"""End-to-end tests of the installed commands: ``twistd sonos-sim`` and ``twistd sonosd``.

Each test runs real ``twistd`` processes on loopback (the simulator on its own 127.A.B.x block,
the daemon's API and the simulator's admin API on free ports), talks to them over HTTP and
kills whatever is still running when it ends.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import http.server
import io
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from sonosd.config import DEFAULT_SERVICES
from sonosd.sim.addresses import free_loopback_base
from tests.daemon_helpers import (
    FAST_SUBSCRIPTION,
    daemon_yaml,
    free_tcp_port,
    is_volume_event,
    volume_of,
)
from tests.paths import ROOT
from tests.process_clients import FORWARD_TO, SseClient, StreamClient, WebSocketClient

TWISTD = str(Path(sys.executable).parent / "twistd")

#: The bound of every wait, in seconds.
WAIT = 30.0


class Processes:
    """Starts ``twistd`` processes, each logging to its own file; kills leftovers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(
        self,
        name: str,
        *arguments: str,
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """Run ``twistd -n --pidfile= <arguments>`` in its own directory under the test's.

        @param env: Variables added to this process's environment.
        @param prefix: A command that runs twistd (``unshare ...``, ``nsenter ...``, ending
            in an ``exec`` of it, so that the process started is twistd's).
        """
        cwd = self.directory / name
        cwd.mkdir()
        log = cwd / "output.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*prefix, TWISTD, "-n", "--pidfile=", *arguments],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
            )
        self.started.append((process, log))
        return process

    def output(self, process: subprocess.Popen[bytes]) -> str:
        """What ``process`` wrote so far (stdout and stderr)."""
        [log] = [log for started, log in self.started if started is process]
        return log.read_text(errors="replace")

    def kill_all(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """A process starter whose processes are killed when the test ends."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.kill_all()


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    """Poll ``check()`` every 50 ms until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def get_json(url: str) -> Any:
    """GET ``url`` and decode its JSON body, or ``None`` when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.load(response)
    except (ConnectionError, urllib.error.URLError):
        return None


def subscription_counts(admin: str, speakers: int) -> list[int] | None:
    """How many GENA subscriptions each simulated speaker holds, per its admin API."""
    counts = []
    for index in range(speakers):
        gena = get_json(f"{admin}/speakers/{index}/gena")
        if gena is None:
            return None
        counts.append(len(gena["subscriptions"]))
    return counts


def start_simulator(processes: Processes, base: str, speakers: int, *options: str) -> str:
    """Run ``twistd sonos-sim`` (with more ``options``); return its admin API's URL once it
    answers."""
    admin_port = free_tcp_port()
    simulator = processes.start(
        "sim",
        "sonos-sim",
        "--speakers",
        str(speakers),
        "--base-address",
        base,
        "--admin",
        f"tcp:{admin_port}:interface=127.0.0.1",
        *options,
    )
    admin = f"http://127.0.0.1:{admin_port}"
    wait_for(
        lambda: get_json(f"{admin}/speakers") or simulator.poll() is not None,
        "the simulator's admin API",
    )
    assert simulator.poll() is None, processes.output(simulator)
    return admin


def follow_subscribed(
    processes: Processes, tmp_path: Path, base: str, admin: str, addresses: Sequence[str]
) -> subprocess.Popen[bytes]:
    """Start ``twistd sonosd`` following the simulated speakers at ``addresses``; return it
    once every speaker holds a subscription to each default service."""
    api = f"tcp:{free_tcp_port()}:interface=127.0.0.1"
    config = tmp_path / "sonosd.yaml"
    config.write_text(daemon_yaml(base, api=api, simulate=False, devices=tuple(addresses)))
    daemon = processes.start("daemon", "sonosd", "-c", str(config))
    expected = [len(DEFAULT_SERVICES)] * len(addresses)

    def subscribed() -> bool:
        assert daemon.poll() is None, processes.output(daemon)
        return subscription_counts(admin, len(addresses)) == expected

    wait_for(subscribed, "every subscription at the simulator")
    return daemon


def test_sigterm_unsubscribes_and_exits_0(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGTERM stops the daemon with status 0 after it UNSUBSCRIBEd from every speaker."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    addresses = [speaker["address"] for speaker in get_json(f"{admin}/speakers")]
    daemon = follow_subscribed(processes, tmp_path, loopback_base, admin, addresses)
    daemon.send_signal(signal.SIGTERM)
    status = daemon.wait(timeout=WAIT)
    output = processes.output(daemon)
    assert status == 0, output
    wait_for(
        lambda: subscription_counts(admin, len(addresses)) == [0] * len(addresses),
        "no subscription left at the simulator",
        timeout=5.0,
    )
    assert "Traceback" not in output, output


def test_sigterm_with_hostile_unsubscribe_answers_exits_0(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGTERM while one speaker drips its UNSUBSCRIBE answers, one never answers them and one
    answers with a garbage status line: the daemon still exits with status 0 (within its
    shutdown bound: no "still stopping" warning), the well-behaved speaker is unsubscribed,
    one line per bad speaker names it and what was wrong, and nothing is a traceback or an
    unhandled error."""
    admin = start_simulator(processes, loopback_base, speakers=4)
    speakers = get_json(f"{admin}/speakers")
    addresses = [speaker["address"] for speaker in speakers]
    daemon = follow_subscribed(processes, tmp_path, loopback_base, admin, addresses)
    hostile: list[tuple[dict[str, Any], str]] = [
        ({"answer_drip": 0.5, "answer_body_bytes": 10_000}, "did not arrive within 2 s"),
        ({"unsubscribe_hang": True}, "did not arrive within 2 s"),
        ({"answer_status_line": "garbage"}, "not an HTTP answer: 'garbage'"),
    ]
    for index, (fault, _) in enumerate(hostile):
        admin_call(
            admin,
            "PATCH",
            f"/speakers/{index}/gena/faults",
            {"answer_only": "UNSUBSCRIBE", **fault},
        )
    daemon.send_signal(signal.SIGTERM)
    status = daemon.wait(timeout=WAIT)
    output = processes.output(daemon)
    assert status == 0, output
    for speaker, (_, words) in zip(speakers, hostile, strict=False):
        said = [
            line
            for line in output.splitlines()
            if f"could not unsubscribe {len(DEFAULT_SERVICES)} service(s) of "
            f"{speaker['name']} ({speaker['uid']}): " in line
        ]
        assert len(said) == 1 and words in said[0], output
    # The speaker that never answered still holds its subscriptions (it expires them); every
    # other one, the well-behaved speaker included, has none.
    counts = subscription_counts(admin, len(addresses))
    assert counts == [0, len(DEFAULT_SERVICES), 0, 0], counts
    assert speakers[3]["name"] not in "".join(
        line for line in output.splitlines() if "could not unsubscribe" in line
    ), output
    for unwanted in ("Traceback", "Unhandled", "still stopping after", "[-] error"):
        assert unwanted not in output, output


def test_check_config_prints_ok(tmp_path: Path, loopback_base: str) -> None:
    """``--check-config`` on a valid file prints ok and exits 0 without starting anything."""
    config = tmp_path / "sonosd.yaml"
    config.write_text(daemon_yaml(loopback_base))
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "sonosd", "-c", str(config), "--check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "PYTHONWARNINGS": "default"},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")
    assert os.listdir(tmp_path) == ["sonosd.yaml"]


#: A "billion laughs": ``&a8`` stands for 10**9 values in a few hundred bytes.
LAUGHS = "x-anchors: [&a0 [x, x, x, x, x, x, x, x, x, x], " + ", ".join(
    f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]" for level in range(1, 9)
)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("listener:\n  port: many\n", ":2: listener.port: "),
        # docs/security.md, The configuration file: refused at the bound, not a traceback.
        (LAUGHS + "]\n", ":1: x-anchors[4][7]: the document has more than 100000 values"),
        ("a: " + "[" * 1000 + "]" * 1000 + "\n", ":1: invalid YAML: nested over 100 levels deep"),
    ],
    ids=["a bad value", "an alias bomb", "nested too deeply"],
)
def test_check_config_rejects_a_bad_file_in_one_line(tmp_path: Path, text: str, said: str) -> None:
    """``--check-config`` on a wrong file (a bad value, an alias bomb, nesting over 100
    levels) prints one line naming what is wrong and exits 1."""
    config = tmp_path / "sonosd.yaml"
    config.write_text(text)
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "sonosd", "-c", str(config), "--check-config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"{config}{said}"), line


def test_unimportable_callback_is_one_line(tmp_path: Path, loopback_base: str) -> None:
    """A callback that cannot be imported fails --check-config and the start with one line."""
    config = tmp_path / "sonosd.yaml"
    config.write_text(daemon_yaml(loopback_base, callbacks=("sonosd_no_such_module:on_message",)))
    for extra in (["--check-config"], []):
        done = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "sonosd", "-c", str(config), *extra],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert done.returncode == 1, (extra, done.stdout, done.stderr)
        [line] = done.stderr.splitlines()
        assert "sonosd_no_such_module:on_message" in line, line


# -- fail fast -------------------------------------------------------------------------------


def run_to_exit(processes: Processes, name: str, config: Path, **env: str) -> tuple[int, str]:
    """Start the daemon on ``config``; its exit status and output once it has exited."""
    daemon = processes.start(name, "sonosd", "-c", str(config), env=env)
    status = daemon.wait(timeout=WAIT)
    return status, processes.output(daemon)


def critical_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " critical " in line]


def test_api_port_taken_exits_1_in_one_line(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A taken API port: one line, exit 1, before anything says running or follows a speaker."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "sonosd.yaml"
        config.write_text(daemon_yaml(loopback_base, api=f"tcp:{port}:interface=127.0.0.1"))
        notify = NotifySocket(tmp_path / "notify")
        status, output = run_to_exit(processes, "daemon", config, NOTIFY_SOCKET=notify.path)
    assert status == 1, output
    [line] = critical_lines(output)
    assert line.endswith(
        f"cannot start: the API cannot listen on tcp:{port}:interface=127.0.0.1: "
        "Address already in use"
    ), line
    assert "sonosd running" not in output
    assert " is online" not in output
    assert "Traceback" not in output
    assert not [m for m in notify.messages() if "READY=1" in m]


def test_stream_that_cannot_listen_exits_1(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A stream socket in a missing directory: one line naming it, exit 1."""
    document = json.loads(daemon_yaml(loopback_base))
    document["sinks"] = {"stream": f"unix:{tmp_path}/missing/stream.sock"}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    status, output = run_to_exit(processes, "daemon", config)
    assert status == 1, output
    [line] = critical_lines(output)
    assert f"cannot start: the stream cannot listen on unix:{tmp_path}/missing/stream.sock" in line
    assert "sonosd running" not in output


#: Each door on an address this host does not have: the section and what the line names.
ABSENT_ADDRESS = {
    "listener": (
        {"interface": "198.51.100.7", "port": 1400},
        "the NOTIFY listener cannot listen on 198.51.100.7:1400",
    ),
    "api": (
        {"listen": "tcp:8080:interface=198.51.100.7", "require_auth": False},
        "the API cannot listen on tcp:8080:interface=198.51.100.7",
    ),
}


@pytest.mark.parametrize("door", sorted(ABSENT_ADDRESS))
def test_a_door_on_an_address_this_host_does_not_have_exits_1(
    processes: Processes, loopback_base: str, tmp_path: Path, door: str
) -> None:
    """The listener or the API on an address this host does not have (docs/deployment.md):
    one line naming it and why (the listener tries no port after port), exit 1."""
    section, named = ABSENT_ADDRESS[door]
    document = json.loads(daemon_yaml(loopback_base, speakers=1))
    document[door] = section
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    status, output = run_to_exit(processes, "daemon", config)
    assert status == 1, output
    [line] = critical_lines(output)
    assert line.endswith(f"cannot start: {named}: Cannot assign requested address"), line
    assert "trying the next port" not in output
    assert "sonosd running" not in output
    assert "Traceback" not in output


@pytest.mark.parametrize("what", ["tls", "token", "tls key alone"])
def test_unreadable_files_fail_in_one_line(tmp_path: Path, loopback_base: str, what: str) -> None:
    """A TLS key or a token file that cannot be read, or a TLS key without its certificate
    (no ``certKey``): one line naming it and what is wrong, exit 1."""
    document = json.loads(daemon_yaml(loopback_base))
    missing = tmp_path / "missing.pem"
    why = "No such file or directory"
    if what == "tls":
        document["api"] = {
            "listen": f"ssl:0:interface=127.0.0.1:privateKey={missing}:certKey={missing}"
        }
    elif what == "tls key alone":
        from sonosd.sim.tls import self_signed_pem

        pem = self_signed_pem()
        missing.write_bytes(pem[pem.index(b"-----BEGIN EC PRIVATE KEY-----") :])
        document["api"] = {"listen": f"ssl:0:interface=127.0.0.1:privateKey={missing}"}
        why = "holds no PEM certificate"
    else:
        document["api"]["tokens"] = [{"name": "ha", "token_file": str(missing)}]
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    done = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "sonosd", "-c", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert (done.returncode, done.stdout) == (1, ""), done.stderr
    [line] = done.stderr.splitlines()
    assert str(missing) in line
    assert why in line


# -- systemd ---------------------------------------------------------------------------------


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.socket.setblocking(False)
        self.received: list[str] = []

    def messages(self) -> list[str]:
        """Every datagram received so far."""
        while True:
            try:
                self.received.append(self.socket.recv(4096).decode())
            except BlockingIOError:
                return list(self.received)


def test_systemd_notify(processes: Processes, loopback_base: str, tmp_path: Path) -> None:
    """READY=1 once the API listens, STATUS with speakers evented, WATCHDOG=1 from the
    reactor, RELOADING=1 and READY=1 around SIGHUP, STOPPING=1 at SIGTERM."""
    notify = NotifySocket(tmp_path / "notify")
    api_port = free_tcp_port()
    config = tmp_path / "sonosd.yaml"
    config.write_text(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=2)
    )
    daemon = processes.start(
        "daemon",
        "sonosd",
        "-c",
        str(config),
        env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"},
    )

    def ready() -> str | None:
        assert daemon.poll() is None, processes.output(daemon)
        return next((m for m in notify.messages() if m.startswith("READY=1")), None)

    first = wait_for(ready, "READY=1")
    # Ready means listening: the API answers at once, and the NOTIFY listener takes a
    # connection on the port the diagnostics give.
    assert get_json(f"http://127.0.0.1:{api_port}/api/v1/health") is not None
    listener = get_json(f"http://127.0.0.1:{api_port}/api/v1/diagnostics")["listener"]
    socket.create_connection(("127.0.0.1", listener["port"]), timeout=5).close()
    assert f"MAINPID={daemon.pid}\n" in first
    assert "\nSTATUS=2 speakers: " in first
    wait_for(
        lambda: (
            "STATUS=2 speakers: 2 evented, 0 polling, 2 online; 0 clients\n" in notify.messages()
        ),
        "the status line with both speakers evented",
    )
    wait_for(lambda: notify.messages().count("WATCHDOG=1\n") >= 5, "watchdog pings")
    daemon.send_signal(signal.SIGHUP)
    wait_for(
        lambda: any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in notify.messages()),
        "RELOADING=1",
    )
    wait_for(lambda: len([m for m in notify.messages() if m.startswith("READY=1")]) == 2, "READY")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)
    assert "STOPPING=1\nSTATUS=stopping\n" in notify.messages()


def test_diagnostics_and_the_doctor_work_in_the_units_sandbox(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """Under etc/sonosd.service's ``RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`` (the
    same seccomp filter, tests/address_families.py), where ``getifaddrs()`` cannot open its
    netlink socket, and with its ``ProcSubset=pid`` and ``ProtectProc=invisible`` (a /proc of
    its own mounted so), /api/v1/diagnostics still answers, with the IPv4 interfaces, so do
    the metrics, and ``sonosctl doctor`` says all is well: nothing is an unhandled error."""
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    pid_only_proc = 'mount -t proc -o subset=pid,hidepid=invisible proc /proc && exec "$0" "$@"'
    restricted = (
        *("unshare", "-m", "sh", "-c", pid_only_proc),
        *(sys.executable, str(ROOT / "tests" / "address_families.py")),
    )
    daemon = start_configured(processes, tmp_path, document, prefix=restricted)
    wait_for(lambda: daemon.poll() is not None or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    assert daemon.poll() is None, processes.output(daemon)
    status, body = get(f"{api}/api/v1/diagnostics")
    assert status == 200, body
    # IPv4 only (docs/deployment.md): this host's ::1 is not there.
    assert {"name": "lo", "addresses": ["127.0.0.1/8"]} in body["host"]["interfaces"], body
    with urllib.request.urlopen(f"{api}/api/v1/metrics", timeout=10) as metrics:
        assert b"sonosd_speakers_evented 1.0" in metrics.read()
    status, text = doctor(api)
    assert status == 0, text
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)
    output = processes.output(daemon)
    assert not critical_lines(output) and "Traceback" not in output, output


# -- readiness, liveness and the doctor ------------------------------------------------------


def get(url: str, token: str | None = None) -> tuple[int, Any]:
    """GET ``url``: its status and JSON body, errors included."""
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    return answer_of(request)


def post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST ``body`` as JSON to ``url``: its status and JSON answer, errors included."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    return answer_of(request)


def answer_of(request: urllib.request.Request) -> tuple[int, Any]:
    """Send ``request``: the status and the JSON body (``(0, None)`` when nothing answers)."""
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")
    except (ConnectionError, urllib.error.URLError):
        return 0, None


def doctor(api: str, *extra: str) -> tuple[int, str]:
    """Run ``sonosctl doctor`` against ``api``: its exit status and output."""
    from sonosd import ctl

    out, err = io.StringIO(), io.StringIO()
    status = ctl.main(["--url", api, *extra, "doctor"], stdout=out, stderr=err, environ={})
    return status, out.getvalue() + err.getvalue()


def admin_call(admin: str, method: str, path: str, body: dict[str, Any]) -> None:
    """A request to the simulator's admin API."""
    request = urllib.request.Request(
        f"{admin}{path}", data=json.dumps(body).encode(), method=method
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def following(base: str, devices: Sequence[str]) -> tuple[dict[str, Any], int]:
    """A daemon configuration following ``devices`` with its API on a free loopback port:
    the document and that port."""
    api_port = free_tcp_port()
    document = json.loads(
        daemon_yaml(
            base,
            api=f"tcp:{api_port}:interface=127.0.0.1",
            simulate=False,
            devices=tuple(devices),
        )
    )
    return document, api_port


def follow(
    processes: Processes, tmp_path: Path, base: str, devices: Sequence[str], **subscription: float
) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``twistd sonosd`` following ``devices`` (with these ``subscription`` settings):
    the process and its API's URL."""
    document, api_port = following(base, devices)
    document["subscription"].update(subscription)
    return start_configured(processes, tmp_path, document), f"http://127.0.0.1:{api_port}"


def start_configured(
    processes: Processes,
    tmp_path: Path,
    document: dict[str, Any],
    *arguments: str,
    prefix: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Write ``document`` to ``sonosd.yaml`` and start ``twistd sonosd`` with it (and these
    command-line ``arguments``, run through ``prefix``)."""
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    return processes.start("daemon", "sonosd", "-c", str(config), *arguments, prefix=prefix)


def docker_health(api: str) -> int:
    """The exit status of the Dockerfile's HEALTHCHECK command, run here with
    ``SONOSD_READY_URL`` pointing at ``api``'s readiness (0: healthy)."""
    dockerfile = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [check] = [line for line in dockerfile.splitlines() if line.startswith("HEALTHCHECK")]
    command = json.loads(check[check.index(" CMD ") + 5 :])
    assert command[0] == "python", command
    done = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "SONOSD_READY_URL": f"{api}/api/v1/ready"},
        capture_output=True,
        timeout=WAIT,
    )
    return done.returncode


def test_ready_health_and_doctor_follow_an_offline_speaker(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """/ready is 503 naming an offline speaker while /health stays 200; sonosctl doctor names
    it and exits 1, and the Docker image's health check fails; once it is back, ready is 200,
    the doctor exits 0 and the health check passes."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    simulated = get_json(f"{admin}/speakers")
    addresses = [speaker["address"] for speaker in simulated]
    first, second = (f"{s['name']} ({s['address']})" for s in simulated)
    daemon, api = follow(processes, tmp_path, loopback_base, addresses, silence_timeout=1.0)

    def ready_is(code: int) -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        status, body = get(f"{api}/api/v1/ready")
        return body if status == code else None

    wait_for(lambda: ready_is(200), "ready")
    assert doctor(api)[0] == 0
    admin_call(admin, "POST", "/speakers/1/offline", {"mode": "refuse"})
    body = wait_for(lambda: ready_is(503), "not ready")
    assert body["status"] == "not_ready"
    assert body["speakers"]["offline"] == 1
    [reason] = body["reasons"]
    assert reason.startswith(f"{second} is offline")
    assert get(f"{api}/api/v1/health")[0] == 200
    status, text = doctor(api)
    assert status == 1, text
    assert f"problem: {second} is offline" in text
    assert f"ok: {first}: 8 subscriptions, NOTIFYs arrive" in text
    assert docker_health(api) != 0
    admin_call(admin, "POST", "/speakers/1/online", {})
    wait_for(lambda: ready_is(200), "ready again")
    assert docker_health(api) == 0
    status, text = doctor(api)
    assert status == 0, text
    assert text.endswith("All is well: every followed speaker delivers its events.\n")


def test_doctor_names_a_upnp_off_and_an_offline_speaker(
    processes: Processes, tmp_path: Path
) -> None:
    """Two simulated households, one speaker of each configured: with UPnP switched off in
    one household (a per-system setting) and a speaker of the other taken offline, the
    ``sonosctl doctor`` command names each of them and what to do, and exits 1."""
    base = free_loopback_base(count=4)
    admin = start_simulator(processes, base, 4, "--households", "2")
    simulated = get_json(f"{admin}/speakers")
    one, two = dict.fromkeys(speaker["household_id"] for speaker in simulated)
    first = [s for s in simulated if s["household_id"] == one]
    second = [s for s in simulated if s["household_id"] == two]
    devices = (first[0]["address"], second[0]["address"])
    daemon, api = follow(processes, tmp_path, base, devices, silence_timeout=1.0)

    def ready() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        status, body = get(f"{api}/api/v1/ready")
        return status == 200 and body["speakers"]["evented"] == len(simulated)

    wait_for(ready, "every speaker of both households evented")
    offline = first[0]
    admin_call(admin, "POST", f"/speakers/{offline['uid']}/offline", {"mode": "refuse"})
    admin_call(admin, "PATCH", f"/households/{two}/modes", {"upnp": False})

    def diagnosed() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        status, body = get(f"{api}/api/v1/diagnostics")
        found = {s["uid"]: s["availability"] for s in body["speakers"]} if status == 200 else {}
        wanted = {offline["uid"]: "offline", **{s["uid"]: "upnp_disabled" for s in second}}
        return all(found.get(uid) == state for uid, state in wanted.items())

    wait_for(diagnosed, "the offline and UPnP-off speakers known as such")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "sonosctl"), "--url", api, "doctor"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "SONOSD_TOKEN": ""},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    # docs/deployment.md's example, word for word, with this household's names, addresses
    # and system: the same four lines, in the same order.
    page = (ROOT / "docs" / "deployment.md").read_text()
    example = page.split("sonosctl doctor` names the speakers in that state", 1)[1]
    shown = example.split("```text\n", 1)[1].split("```", 1)[0]
    fine = first[1]
    for doc, real in (
        ("Living Room (192.168.1.20)", f"{offline['name']} ({offline['address']})"),
        ("reaches 192.168.1.20 on", f"reaches {offline['address']} on"),
        ("Bedroom (192.168.1.31)", f"{second[0]['name']} ({second[0]['address']})"),
        ("Office (192.168.1.32)", f"{second[1]['name']} ({second[1]['address']})"),
        ("(Sonos_...)", f"({two})"),
        ("Kitchen (192.168.1.21)", f"{fine['name']} ({fine['address']})"),
    ):
        assert doc in shown, doc
        shown = shown.replace(doc, real)
    shown_lines = [line.strip() for line in shown.strip().splitlines()]
    assert f": {len(DEFAULT_SERVICES)} subscriptions, NOTIFYs arrive" in shown_lines[2]
    assert done.stdout.splitlines() == shown_lines, done.stdout


def follow_by_name(
    processes: Processes, tmp_path: Path, base: str, names: dict[str, str], *devices: str
) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start ``twistd sonosd`` following ``devices`` with an /etc/hosts of its own (a
    private mount namespace) that gives ``names`` their addresses, so that the system's
    resolver answers for them without touching the machine's: the process, its API's URL
    and that hosts file (rewritten in place, it answers differently).

    The namespace's resolver reads only that file (``hosts: files``, and a nameserver on
    loopback besides): a name it does not hold is not found without a DNS query leaving the
    machine."""
    hosts = tmp_path / "hosts"
    write_hosts(hosts, names)
    nsswitch = tmp_path / "nsswitch.conf"
    nsswitch.write_text("hosts: files\n")
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    private_hosts = (
        f"mount --bind {hosts} /etc/hosts && mount --bind {nsswitch} /etc/nsswitch.conf"
        f' && mount --bind {resolv} /etc/resolv.conf && exec "$0" "$@"'
    )
    document, api_port = following(base, devices)
    document["subscription"]["silence_timeout"] = 1.0
    daemon = start_configured(
        processes, tmp_path, document, prefix=("unshare", "-m", "sh", "-c", private_hosts)
    )
    return daemon, f"http://127.0.0.1:{api_port}", hosts


def write_hosts(hosts: Path, names: dict[str, str]) -> None:
    """Write an /etc/hosts (in place: a bind mount of it follows) giving ``names``."""
    lines = ["127.0.0.1 localhost", *(f"{address} {name}" for name, address in names.items())]
    hosts.write_text("\n".join(lines) + "\n")


def test_devices_by_host_name_resolve_or_say_host_not_found(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A speaker listed by a host name (resolved by the system's resolver, from the daemon's
    /etc/hosts) is identified and evented; a name that does not resolve is said in the log,
    in /health and by ``sonosctl doctor`` as ``host not found``."""
    admin = start_simulator(processes, loopback_base, 1)
    [simulated] = get_json(f"{admin}/speakers")
    name = "kitchen.sonos.test"
    missing = "no-such-speaker.invalid"  # RFC 6761: never resolves (and not asked of DNS)
    daemon, api, _ = follow_by_name(
        processes, tmp_path, loopback_base, {name: simulated["address"]}, name, missing
    )

    def evented() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        status, body = get(f"{api}/api/v1/diagnostics")
        found = [s for s in body["speakers"] if s["uid"]] if status == 200 else []
        services = found[0]["services"].values() if found else ()
        return (
            found if len([s for s in services if s["evented"]]) == len(DEFAULT_SERVICES) else None
        )

    [speaker] = wait_for(evented, f"the speaker named {name} identified and evented")
    assert (speaker["uid"], speaker["configured_host"], speaker["host"]) == (
        simulated["uid"],
        name,
        simulated["address"],
    )
    reason = f"{missing} cannot be identified (host not found)"
    health = wait_for(
        lambda: (lambda body: body if reason in body["reasons"] else None)(
            get(f"{api}/api/v1/health")[1]
        ),
        "the unresolvable name in /health",
    )
    assert health["status"] == "degraded", health
    status, text = doctor(api)
    assert status == 1, text
    assert f"cannot reach the speaker configured as {missing} (host not found)" in text
    said = f"cannot identify speaker {missing}: host not found; trying again until it answers"
    assert processes.output(daemon).count(said) == 1, processes.output(daemon)


def test_a_speaker_listed_by_name_is_found_at_the_address_its_name_gets(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A speaker listed by a host name (resolved by the system's resolver from an /etc/hosts
    private to the daemon) that moves to another address while it is off, unseen by sonosd,
    is followed there once its name resolves to the new address: online and evented again."""
    admin = start_simulator(processes, loopback_base, 1)
    [speaker] = get_json(f"{admin}/speakers")
    old = speaker["address"]
    new = free_loopback_base(count=1)
    name = "kitchen.sonos.test"
    daemon, api, hosts = follow_by_name(processes, tmp_path, loopback_base, {name: old}, name)

    def evented_at(address: str) -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        status, body = get(f"{api}/api/v1/diagnostics")
        [found] = body["speakers"] if status == 200 else [{}]
        services = (found.get("services") or {}).values()
        return (
            found.get("host") == address
            and found.get("availability") == "online"
            and len([s for s in services if s["evented"] and s["state"] == "subscribed"])
            == len(DEFAULT_SERVICES)
        )

    wait_for(lambda: evented_at(old), f"kitchen.sonos.test followed at {old}")
    # Off the network, it comes back at a new address (a new DHCP lease): its subscriptions
    # are gone and nothing tells sonosd where it went but its name.
    admin_call(admin, "POST", "/speakers/0/offline", {"mode": "refuse"})
    wait_for(lambda: get(f"{api}/api/v1/ready")[0] == 503, "the speaker offline")
    admin_call(admin, "POST", "/speakers/0/address", {"address": new})
    admin_call(admin, "POST", "/speakers/0/reboot", {"downtime": 0})
    admin_call(admin, "POST", "/speakers/0/online", {})
    write_hosts(hosts, {name: new})
    wait_for(lambda: evented_at(new), f"kitchen.sonos.test followed at {new}")
    assert "(kitchen.sonos.test resolved again)" in processes.output(daemon)


#: What ``/proc/1/cgroup`` holds in a Docker container (cgroup v2, systemd driver).
DOCKER_CGROUP = "0::/system.slice/docker-4f2a9c1e.scope\n"

#: The container's address on Docker's default bridge network.
BRIDGE_ADDRESS = "172.17.0.2"


def inside(pid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the network and mount namespaces of process ``pid``."""
    return subprocess.run(
        ["nsenter", "-t", str(pid), "-n", "-m", *argv],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


#: A request from inside the namespaces: its JSON answer, or ``null`` when nothing answers.
_REQUEST = """
import json, sys, urllib.error, urllib.request
method, url, body = sys.argv[1:]
request = urllib.request.Request(url, data=body.encode() or None, method=method)
request.add_header("Content-Type", "application/json")
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.read().decode() or "null")
except (ConnectionError, urllib.error.URLError):
    print("null")
"""


def request_inside(pid: int, method: str, url: str, body: Any = None) -> Any:
    """An HTTP request made in ``pid``'s namespaces: its decoded JSON answer."""
    text = "" if body is None else json.dumps(body)
    done = inside(pid, sys.executable, "-c", _REQUEST, method, url, text)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_doctor_in_a_docker_bridge_container_says_what_to_change(
    processes: Processes, tmp_path: Path
) -> None:
    """In namespaces that look like a Docker bridge container to what sonosd reads (its only
    LAN address 172.17.0.2, /proc/1/cgroup of a Docker container), a daemon whose speaker's
    NOTIFYs never arrive is told by ``sonosctl doctor``, run beside it as in ``docker compose
    exec``, the callback URL, the container's private address and what to change."""
    cgroup = tmp_path / "cgroup"
    cgroup.write_text(DOCKER_CGROUP)
    container = (
        "ip link set lo up"
        f" && ip addr add {BRIDGE_ADDRESS}/16 dev lo"
        # As behind Docker's NAT, the container's address is the source towards the speakers.
        f" && ip route change local 127.0.0.0/8 dev lo table local src {BRIDGE_ADDRESS}"
        f" && mount --bind {cgroup} /proc/1/cgroup"
        ' && exec "$0" "$@"'
    )
    base, admin_port, api_port, listener_port = "127.1.0.2", 8081, 8080, 1500
    simulator = processes.start(
        "sim",
        "sonos-sim",
        "--speakers",
        "1",
        "--base-address",
        base,
        "--admin",
        f"tcp:{admin_port}:interface=127.0.0.1",
        prefix=("unshare", "-m", "-n", "sh", "-c", container),
    )
    admin = f"http://127.0.0.1:{admin_port}"

    def simulated() -> Any:
        assert simulator.poll() is None, processes.output(simulator)
        return request_inside(simulator.pid, "GET", f"{admin}/speakers")

    [speaker] = wait_for(simulated, "the simulator in its namespaces")
    # The speakers cannot reach the container: none of their NOTIFYs arrives.
    request_inside(
        simulator.pid, "PATCH", f"{admin}/speakers/0/gena/faults", {"drop_next": 1_000_000}
    )
    document, _ = following(base, [speaker["address"]])
    document["listener"] = {"interface": "0.0.0.0", "port": listener_port}
    document["api"] = {"listen": f"tcp:{api_port}:interface=127.0.0.1"}
    daemon = start_configured(
        processes, tmp_path, document, prefix=("nsenter", "-t", str(simulator.pid), "-n", "-m")
    )
    api = f"http://127.0.0.1:{api_port}"

    def polled() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        body = request_inside(simulator.pid, "GET", f"{api}/api/v1/diagnostics")
        services = body["speakers"][0]["services"].values() if body else ()
        return body if services and all(s["state"] == "polling" for s in services) else None

    diagnostics = wait_for(polled, "every subscription polling, no NOTIFY having arrived")
    host = diagnostics["host"]
    assert (host["container"], host["bridge_network"], host["lan_addresses"]) == (
        "docker",
        True,
        [BRIDGE_ADDRESS],
    ), host
    callback = diagnostics["speakers"][0]["callback_url"]
    assert callback == f"http://{BRIDGE_ADDRESS}:{listener_port}/"
    sonosctl = str(Path(sys.executable).parent / "sonosctl")
    done = inside(simulator.pid, "env", "SONOSD_TOKEN=", sonosctl, "--url", api, "doctor")
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    assert f"No NOTIFY has arrived from {speaker['name']} ({speaker['address']})" in text, text
    assert f"cannot reach sonosd's callback URL {callback}" in text, text
    assert (
        f"sonosd runs in a docker on a bridge network: its address ({BRIDGE_ADDRESS}) is "
        "private to the container host, so the speakers cannot reach it. Use host networking "
        f"(network_mode: host), or publish the port ({listener_port}:{listener_port}) and set "
        "listener.advertise to the host's LAN address."
    ) in text, text


def test_the_example_configuration_is_never_ready(processes: Processes) -> None:
    """The Docker image's default, etc/sonosd.example.yaml, follows nothing: the daemon says
    so in its log, /ready is 503 with that reason (the image's health check fails: the
    container stays unhealthy) while /health answers, and the doctor names it and exits 1."""
    port = free_tcp_port()
    example = str(ROOT / "etc" / "sonosd.example.yaml")
    daemon = processes.start(
        "daemon",
        "sonosd",
        "-c",
        example,
        "--api",
        f"tcp:{port}:interface=127.0.0.1",
        "--listen-interface",
        "127.0.0.1",
        "--listen-port",
        "0",
    )
    api = f"http://127.0.0.1:{port}"

    def answered() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        return get(f"{api}/api/v1/ready")[0]

    assert wait_for(answered, "the API") == 503
    status, body = get(f"{api}/api/v1/ready")
    assert body["reasons"] == [
        "no speaker is followed: list one under devices (or set discovery: true)"
    ]
    assert get(f"{api}/api/v1/health")[0] == 200
    assert docker_health(api) != 0
    assert f"warn [sonosd.service] {example}: nothing will be followed" in processes.output(daemon)
    status, text = doctor(api)
    assert status == 1, text
    assert f"problem: No speaker is followed: list one under devices in {example}" in text


def test_start_warns_of_an_inline_token_others_can_read(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A daemon started (and reloaded) from a file that holds a token inline and that group
    can read logs one warning naming the file and the key each time, and runs all the same;
    so does a state_dir it cannot write (the same warnings as --check-config's)."""
    api_port = free_tcp_port()
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    document["api"]["tokens"] = [{"name": "a", "token": "t" * 24}]
    document["state_dir"] = str(tmp_path / "no-such-dir")
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    config.chmod(0o640)
    daemon = processes.start("daemon", "sonosd", "-c", str(config))
    warning = (
        f"warn [sonosd.service] {config}: api.tokens[0].token: a secret written in a file that "
        f"group or others can read (mode 0640): make the file private (chmod 600 {config})"
    )

    def warned() -> bool:
        assert daemon.poll() is None, processes.output(daemon)
        return warning in processes.output(daemon)

    wait_for(warned, "the warning")
    assert get(f"http://127.0.0.1:{api_port}/api/v1/health", "t" * 24)[0] == 200
    assert processes.output(daemon).count(warning) == 1
    assert (
        processes.output(daemon).count(
            f"warn [sonosd.service] {config}: state_dir: {tmp_path / 'no-such-dir'} is not a "
            "directory the daemon can write: pending alarm skips will not survive a restart"
        )
        == 1
    )
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: warned() and processes.output(daemon).count(warning) == 2, "again")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


# -- the log ---------------------------------------------------------------------------------


def test_log_at_info_says_each_thing_once(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """At info the log has no access log, no Twisted factory or port lines and no raw
    variables: one line per message (a full state as its number of variables), a reboot as
    one line of the daemon's and the fresh states, nothing said twice; ``log.messages: false``
    (applied by SIGHUP) leaves only the daemon's own lines."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    simulated = get_json(f"{admin}/speakers")
    daemon, api = follow(processes, tmp_path, loopback_base, [s["address"] for s in simulated])

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    def lines() -> list[str]:
        return processes.output(daemon).splitlines()

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    for path in ("health", "ready", "snapshot", "speakers", "diagnostics", "metrics", "nope"):
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(f"{api}/api/v1/{path}", timeout=10).close()
    volume = 37 if simulated[0]["volume"] != 37 else 38
    set_volume(admin, 0, volume)
    change = f"{simulated[0]['name']} RenderingControl seq="
    wait_for(lambda: alive() or [line for line in lines() if change in line], "the volume's line")
    assert len([line for line in lines() if f" volume={volume}" in line]) == 1, lines()
    rebooted = simulated[1]["name"]
    before = len(lines())
    admin_call(admin, "POST", "/speakers/1/reboot", {"downtime": 1})
    wait_for(
        lambda: (
            alive()
            or len(
                [
                    line
                    for line in lines()[before:]
                    if f"{rebooted} " in line and "full state" in line
                ]
            )
            == len(DEFAULT_SERVICES)
        ),
        "the rebooted speaker's fresh states",
    )
    own = [
        line.split(" ", 1)[1] for line in lines()[before:] if "[sonosd.sinks.logsink]" not in line
    ]
    assert [line for line in own if "rebooted" in line], own
    assert len(own) == len(set(own)) and len(own) < len(DEFAULT_SERVICES), own
    output = processes.output(daemon)
    assert "factory" not in output.lower(), output
    assert " HTTP/1.1" not in output, output
    assert "Traceback" not in output, output
    assert max(len(line) for line in lines()) < 300, output
    assert len([line for line in lines() if "full state, " in line and " variables" in line]) == (
        3 * len(DEFAULT_SERVICES)
    ), output

    config = tmp_path / "sonosd.yaml"
    document = json.loads(config.read_text())
    document["log"]["messages"] = False
    config.write_text(json.dumps(document))
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: alive() or "reloaded " in processes.output(daemon), "the reload")
    after = len(lines())
    set_volume(admin, 0, volume + 1)
    uid = simulated[0]["uid"]

    def daemon_volume() -> Any:
        status, body = get(f"{api}/api/v1/speakers/{uid}")
        return status == 200 and body["services"]["RenderingControl"]["variables"]["volume"]

    wait_for(lambda: (daemon_volume() or {}).get("Master") == volume + 1, "the new volume")
    assert [line for line in lines()[after:] if "[sonosd.sinks.logsink]" in line] == []
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


# -- reload on SIGHUP ------------------------------------------------------------------------


class Hooks:
    """A webhook receiver on Python's http.server (HTTP/1.0: one connection per request).

    @param gate: While cleared, each request is held (unanswered, not recorded) until it is
        set again.

    @ivar holding: How many requests are held at the gate right now.
    """

    def __init__(self, gate: threading.Event | None = None) -> None:
        received: list[tuple[str, dict[str, Any]]] = []
        self.received = received
        self.holding = 0
        hooks = self
        lock = threading.Lock()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if gate is not None and not gate.is_set():
                    with lock:
                        hooks.holding += 1
                    gate.wait(WAIT)
                    with lock:
                        hooks.holding -= 1
                received.append((self.headers["X-Sonosd-Attempt"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def set_volume(admin: str, index: int, volume: int) -> None:
    """Change a simulated speaker's volume through the simulator's admin API."""
    request = urllib.request.Request(
        f"{admin}/speakers/{index}/state",
        data=json.dumps({"volume": volume}).encode(),
        method="PATCH",
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).close()


def test_sigterm_flushes_the_webhooks_before_exiting_0(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGTERM delivers the webhook messages still queued behind a slow receiver, after the
    subscriptions are cancelled, and then the daemon exits with status 0."""
    admin = start_simulator(processes, loopback_base, speakers=1)
    [speaker] = get_json(f"{admin}/speakers")
    gate = threading.Event()
    gate.set()
    hooks = Hooks(gate)
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document = json.loads(
        daemon_yaml(
            loopback_base,
            api=f"tcp:{api_port}:interface=127.0.0.1",
            simulate=False,
            devices=(speaker["address"],),
        )
    )
    document["subscription"]["shutdown_timeout"] = 20.0
    document["sinks"] = {"webhooks": [{"url": f"http://127.0.0.1:{hooks.port}/hook"}]}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    daemon = processes.start("daemon", "sonosd", "-c", str(config))

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    def ids() -> list[int]:
        return [body["id"] for _, body in hooks.received]

    try:
        wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
        wait_for(ids, "the first message at the webhook")
        # From now on the receiver answers nothing: the daemon's queue fills up.
        gate.clear()
        for volume in (41, 42, 43, 44, 45):
            set_volume(admin, 0, volume)

        def daemon_volume() -> object:
            status, body = get(f"{api}/api/v1/speakers/{speaker['uid']}")
            return status == 200 and volume_of(body["services"]["RenderingControl"])

        wait_for(lambda: daemon_volume() == 45, "the last volume at the daemon")
        last_id = get(f"{api}/api/v1/snapshot")[1]["last_id"]
        assert last_id not in ids()
        daemon.send_signal(signal.SIGTERM)
        # The subscriptions are cancelled first; the sinks flush after that.
        wait_for(lambda: subscription_counts(admin, 1) == [0], "no subscription left")
        gate.set()
        status = daemon.wait(timeout=WAIT)
    finally:
        gate.set()
        hooks.close()
    output = processes.output(daemon)
    assert status == 0, output
    # Every message published before SIGTERM arrived, once, at its first attempt.
    assert sorted(ids())[:last_id] == list(range(1, last_id + 1)), output
    assert len(set(ids())) == len(ids()), output
    assert {attempt for attempt, _ in hooks.received} == {"1"}, output
    assert any(
        (body.get("speaker") or {}).get("uid") == speaker["uid"] and volume_of(body) == 45
        for _, body in hooks.received
    ), output
    assert "at shutdown" not in output, output
    assert "Traceback" not in output, output


class SlowSinks:
    """A daemon following one simulated speaker with two push sinks, a webhook and a
    callback, each posting to its own receiver; both receivers hold every request from
    ``hold()`` on, with several messages queued behind the held one.

    @param shutdown_timeout: The daemon's ``subscription.shutdown_timeout``.
    """

    def __init__(
        self, processes: Processes, base: str, directory: Path, shutdown_timeout: float
    ) -> None:
        self.processes = processes
        self.admin = start_simulator(processes, base, speakers=1)
        [self.speaker] = get_json(f"{self.admin}/speakers")
        self.webhook_gate = threading.Event()
        self.callback_gate = threading.Event()
        self.webhook_gate.set()
        self.callback_gate.set()
        self.webhook = Hooks(self.webhook_gate)
        self.callback = Hooks(self.callback_gate)
        self.callback_held_at_exit = 0
        api_port = free_tcp_port()
        self.api = f"http://127.0.0.1:{api_port}"
        document = json.loads(
            daemon_yaml(
                base,
                api=f"tcp:{api_port}:interface=127.0.0.1",
                simulate=False,
                devices=(self.speaker["address"],),
            )
        )
        document["subscription"]["shutdown_timeout"] = shutdown_timeout
        document["sinks"] = {
            "webhooks": [{"url": f"http://127.0.0.1:{self.webhook.port}/hook"}],
            "callbacks": ["tests.process_clients:forward_callback"],
        }
        config = directory / "sonosd.yaml"
        config.write_text(json.dumps(document))
        self.daemon = processes.start(
            "daemon",
            "sonosd",
            "-c",
            str(config),
            env={FORWARD_TO: f"http://127.0.0.1:{self.callback.port}/callback"},
        )

    def alive(self) -> None:
        assert self.daemon.poll() is None, self.output()

    def output(self) -> str:
        return self.processes.output(self.daemon)

    def hold(self) -> int:
        """Once both receivers have a message, hold them and queue five volume changes;
        return the last message id published (none of them delivered yet)."""
        api = self.api
        wait_for(lambda: self.alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
        wait_for(lambda: self.webhook.received and self.callback.received, "a first message")
        self.webhook_gate.clear()
        self.callback_gate.clear()
        for volume in (41, 42, 43, 44, 45):
            set_volume(self.admin, 0, volume)

        def daemon_volume() -> object:
            status, body = get(f"{api}/api/v1/speakers/{self.speaker['uid']}")
            return status == 200 and volume_of(body["services"]["RenderingControl"])

        wait_for(lambda: daemon_volume() == 45, "the last volume at the daemon")
        wait_for(lambda: self.webhook.holding and self.callback.holding, "both held")
        last_id: int = get(f"{api}/api/v1/snapshot")[1]["last_id"]
        return last_id

    def sigterm(self, during_stop: Callable[[], None]) -> tuple[int, str]:
        """``hold()``, send SIGTERM, run ``during_stop`` and wait for the daemon to exit with
        status 0 (no traceback); return the last id published before SIGTERM and the
        daemon's output. ``callback_held_at_exit``: the callback's requests still held when
        the daemon had exited."""
        try:
            last_id = self.hold()
            self.daemon.send_signal(signal.SIGTERM)
            during_stop()
            status = self.daemon.wait(timeout=WAIT)
            self.callback_held_at_exit = self.callback.holding
        finally:
            self.webhook_gate.set()
            self.callback_gate.set()
            self.webhook.close()
            self.callback.close()
        output = self.output()
        assert status == 0, output
        assert "Traceback" not in output, output
        return last_id, output


def test_sigterm_flushes_two_slow_sinks_together_before_exiting_0(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGTERM lets a slow webhook and a slow callback drain at the same time, each receiving
    every message published before it, and then the daemon exits with status 0."""
    sinks = SlowSinks(processes, loopback_base, tmp_path, shutdown_timeout=20.0)

    def during_stop() -> None:
        wait_for(lambda: subscription_counts(sinks.admin, 1) == [0], "no subscription left")
        # Both sinks are draining now: each receiver holds a request of its own.
        assert sinks.webhook.holding and sinks.callback.holding
        sinks.webhook_gate.set()
        sinks.callback_gate.set()

    last_id, output = sinks.sigterm(during_stop)
    for receiver in (sinks.webhook, sinks.callback):
        ids = [body["id"] for _, body in receiver.received]
        assert sorted(ids)[:last_id] == list(range(1, last_id + 1)), output
        assert len(set(ids)) == len(ids), output
    assert "at shutdown" not in output, output


def test_sigterm_gives_the_sinks_one_shared_bound(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """At SIGTERM the push sinks' shutdown_timeout runs out for all of them at once: a
    callback that could finish only after the webhook's bound expired is cut off too (one
    after another, it would have had a bound of its own and finished), and the daemon still
    exits with status 0."""
    sinks = SlowSinks(processes, loopback_base, tmp_path, shutdown_timeout=2.0)

    def during_stop() -> None:
        # The webhook's receiver never answers: its bound expires and the rest is dropped.
        wait_for(
            lambda: "messages not delivered at shutdown" in sinks.output(),
            "the webhook to give up",
        )
        sinks.callback_gate.set()

    _, output = sinks.sigterm(during_stop)
    assert (
        "callback tests.process_clients:forward_callback did not finish within 2.0 s at shutdown"
    ) in output, output


def test_sigterm_abandons_a_callback_that_never_returns(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """At SIGTERM a callback still running once shutdown_timeout has passed is abandoned (its
    thread is a daemon thread): the daemon exits with status 0 while the call is still held,
    and logs how many messages the callback did not receive (docs/callbacks.md)."""
    sinks = SlowSinks(processes, loopback_base, tmp_path, shutdown_timeout=2.0)
    # Only the webhook's receiver answers: the callback's call is never answered.
    _, output = sinks.sigterm(sinks.webhook_gate.set)
    # The process is gone, and the callback's call is still waiting for its answer.
    assert sinks.callback_held_at_exit == 1, output
    [line] = [
        line
        for line in output.splitlines()
        if "callback tests.process_clients:forward_callback did not finish within 2.0 s" in line
    ]
    assert "messages not delivered" in line, line
    assert int(line.split(": ")[-1].split()[0]) >= 1, line


def test_sigterm_counts_the_events_a_stalled_broker_never_acknowledged(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """docs/deployment.md (SIGTERM): what the push sinks still hold when shutdown_timeout
    runs out "is dropped and counted in a warning". An MQTT broker that stops reading
    (SIGSTOP) never acknowledges the QoS 1 events sent to it: at SIGTERM the daemon waits
    shutdown_timeout for them, exits 0 and says how many it leaves undelivered."""
    from tests.sinks.test_mqtt import Broker
    from tests.sinks.test_mqtt_daemon import done_with

    broker = Broker(None, tempfile.mkdtemp(prefix="sonosd-mqtt-stop-"))
    broker.launch()
    try:
        wait_for(broker.listening, "mosquitto listening")
        api_port = free_tcp_port()
        document = json.loads(
            daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
        )
        document["sinks"] = {"mqtt": {"host": broker.host, "port": broker.port}}
        # The stop waits this long for the acknowledgements that never come.
        document["subscription"]["shutdown_timeout"] = 1.0
        daemon = start_configured(processes, tmp_path, document)
        api = f"http://127.0.0.1:{api_port}/api/v1"

        def connected() -> bool:
            assert daemon.poll() is None, processes.output(daemon)
            status, body = get(f"{api}/diagnostics")
            return status == 200 and body["sinks"]["mqtt"]["connected"]

        wait_for(lambda: connected() and get(f"{api}/ready")[0] == 200, "ready, MQTT connected")
        before = get(f"{api}/snapshot")[1]["last_id"]
        assert broker.process is not None
        broker.process.send_signal(signal.SIGSTOP)
        for volume in (21, 22, 23):
            assert post(f"{api}/speakers/Kitchen/volume", {"volume": volume})[0] == 200

        def kitchen_volume() -> object:
            [speaker] = get(f"{api}/snapshot")[1]["speakers"]
            return volume_of(speaker["services"]["RenderingControl"])

        wait_for(lambda: kitchen_volume() == 23, "the last volume's event at the daemon")
        after = get(f"{api}/snapshot")[1]["last_id"]
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(timeout=WAIT)
    finally:
        if broker.process is not None and broker.process.poll() is None:
            broker.process.send_signal(signal.SIGCONT)
        done_with(broker)
    output = processes.output(daemon)
    assert status == 0, output
    said = [line for line in output.splitlines() if "not delivered at shutdown" in line]
    assert len(said) == 1, output
    [line] = said
    assert " warn [sonosd.sinks.mqtt] " in line, line
    count = re.search(
        rf"mqtt broker {broker.host}:{broker.port}: (\d+) messages not delivered", line
    )
    assert count, line
    # Every message published while the broker was stopped, and none it had acknowledged.
    assert after - before <= int(count.group(1)) <= after, (before, after, line)
    assert "Traceback" not in output, output


def test_sighup_reloads_without_losing_a_client_or_a_message(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGHUP applies devices, services, sinks, tokens and the log level; SSE, WebSocket and
    stream clients stay connected and see every message id; listen addresses are said to
    need a restart; a wrong file keeps the running configuration with one error line."""
    admin = start_simulator(processes, loopback_base, speakers=3)
    addresses = [speaker["address"] for speaker in get_json(f"{admin}/speakers")]
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    stream = str(tmp_path / "stream.sock")
    document: dict[str, Any] = {
        "listener": {"interface": "127.0.0.1", "port": 0},
        "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1", "heartbeat": 300},
        "devices": [{"host": addresses[0]}, {"host": addresses[1]}],
        # The listed speakers only: the reload below moves the configuration between them.
        "follow_household": False,
        "services": ["AVTransport", "RenderingControl"],
        "subscription": FAST_SUBSCRIPTION,
        "soco": {"threads": 4, "call_timeout": 5.0},
        "sinks": {"stream": f"unix:{stream}"},
        "log": {"level": "info"},
    }
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    daemon = processes.start("daemon", "sonosd", "-c", str(config))

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    clients = [SseClient(api_port), WebSocketClient(api_port), StreamClient(stream)]
    hooks = Hooks()
    try:
        for client in clients:
            client.wait(lambda ms: ms and ms[0]["type"] == "snapshot", "the snapshot")
        set_volume(admin, 1, 31)
        token = "t" * 24
        document["devices"] = [{"host": addresses[1]}, {"host": addresses[2]}]
        document["services"] = ["AVTransport", "RenderingControl", "Queue"]
        document["api"]["tokens"] = [{"name": "test", "token": token, "scopes": ["read"]}]
        document["api"]["listen"] = f"tcp:{free_tcp_port()}:interface=127.0.0.1"
        document["sinks"]["webhooks"] = [{"url": f"http://127.0.0.1:{hooks.port}/hook"}]
        document["log"]["level"] = "debug"
        config.write_text(json.dumps(document))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: alive() or "reloaded " in processes.output(daemon), "the reload")
        output = processes.output(daemon)
        assert (
            f"reloaded {config}: devices +{addresses[2]} -{addresses[0]}, services +Queue, "
            "tokens and origins, sinks.webhooks rebuilt, log"
        ) in output
        assert f"{config}: api.listen changed: restart sonosd to apply" in output
        wait_for(lambda: subscription_counts(admin, 3) == [0, 3, 3], "subscriptions moved")
        wait_for(lambda: get(f"{api}/api/v1/ready")[0] == 200, "ready after the reload")
        # The new token is required from now on (the API is still where it was).
        assert get(f"{api}/api/v1/snapshot")[0] == 401
        assert get(f"{api}/api/v1/snapshot", token)[0] == 200
        for volume in (32, 33, 34):
            set_volume(admin, 1, volume)
        for client in clients:
            client.wait(
                lambda ms: any(
                    m.get("service") == "RenderingControl"
                    and (m.get("variables") or {}).get("volume", {}).get("Master") == 34
                    for m in ms
                ),
                "the last volume change",
            )
        # Each client saw every message from its snapshot on: no id missing, none twice.
        for client in clients:
            ids = client.ids()
            assert ids == list(range(ids[0], ids[0] + len(ids))), (type(client), ids)
            assert not client.closed
        types = {m["type"] for m in clients[0].snapshot()}
        assert {"speaker.removed", "speaker.online", "event"} <= types
        # The webhook added by the reload gets the later messages, each at its first attempt
        # (the receiver is HTTP/1.0: it closes every connection).
        wait_for(
            lambda: any(
                (body.get("variables") or {}).get("volume", {}).get("Master") == 34
                for _, body in hooks.received
            ),
            "the webhook",
        )
        assert {attempt for attempt, _ in hooks.received} == {"1"}
        # log.level debug now: the access log (debug) shows requests.
        assert '"GET /api/v1/snapshot HTTP/1.1" 200' in processes.output(daemon)

        # Wrong files, each one error line that changes nothing (docs/deployment.md): a bad
        # value, a callback that cannot be imported, a token file that cannot be read (the
        # two a start refuses too).
        missing = tmp_path / "no-such-token"
        wrong = [
            ("devices: [{host: 42}]\n", f"{config}:1: devices[0].host: expected a host name"),
            (
                json.dumps({**document, "sinks": {"callbacks": ["sonosd_no_such_module:f"]}}),
                "callback 'sonosd_no_such_module:f': cannot import",
            ),
            (
                json.dumps(
                    {**document, "api": {"tokens": [{"name": "a", "token_file": str(missing)}]}}
                ),
                f'cannot read the secret file (No such file or directory), got "{missing}"',
            ),
        ]
        for count, (text, said) in enumerate(wrong, 1):
            config.write_text(text)
            daemon.send_signal(signal.SIGHUP)

            def refusals() -> list[str]:
                lines = processes.output(daemon).splitlines()
                return [line for line in lines if "reload refused" in line]

            wait_for(lambda count=count: alive() or len(refusals()) == count, "refusal")
            refused = refusals()[-1]
            assert " error " in refused and said in refused, (said, refused)
            assert get(f"{api}/api/v1/ready")[0] == 200
            assert subscription_counts(admin, 3) == [0, 3, 3]
            # The running tokens are kept.
            assert get(f"{api}/api/v1/snapshot", token)[0] == 200
    finally:
        hooks.close()
        for client in clients:
            client.close()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0
    assert "Traceback" not in processes.output(daemon)


def test_the_start_up_heap_is_frozen_once_before_the_household_starts(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """``twistd sonosd`` keeps its start-up objects out of the garbage collector (sonosd.memory,
    docs/design.md): once, when its doors are open and before any speaker is followed."""
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    document["log"] = {"level": "debug"}
    daemon = start_configured(processes, tmp_path, document)

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    lines = processes.output(daemon).splitlines()
    frozen = [i for i, line in enumerate(lines) if "start-up heap frozen: " in line]
    assert len(frozen) == 1, lines
    count = int(lines[frozen[0]].split("start-up heap frozen: ")[1].split()[0])
    assert count > 20_000, lines[frozen[0]]
    household = [i for i, line in enumerate(lines) if "[sonosd.household." in line]
    assert household and frozen[0] < household[0], lines
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


def test_sighup_keeps_the_command_line_overrides(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGHUP reads the file again with the same command-line overrides, so a reload neither
    undoes them nor calls them changes that need a restart."""
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document = json.loads(daemon_yaml(loopback_base, speakers=1))
    # What the command line replaces: none of it is what the daemon runs with.
    document["listener"] = {"interface": "0.0.0.0", "port": 1400}
    document["api"] = {"listen": "tcp:8080:interface=127.0.0.1"}
    document["log"] = {"level": "info"}
    config = tmp_path / "sonosd.yaml"
    daemon = start_configured(
        processes,
        tmp_path,
        document,
        "--listen-interface",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--advertise",
        "127.0.0.1",
        "--api",
        f"tcp:{api_port}:interface=127.0.0.1",
        "--log-level",
        "debug",
    )

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    document["api"]["ready_when_polling"] = True
    config.write_text(json.dumps(document))
    daemon.send_signal(signal.SIGHUP)
    wait_for(lambda: alive() or "reloaded " in processes.output(daemon), "the reload")
    output = processes.output(daemon)
    [reloaded] = [line for line in output.splitlines() if "reloaded " in line]
    assert reloaded.endswith(f"reloaded {config}: readiness"), reloaded
    assert "restart sonosd to apply" not in output, output
    status, diagnostics = get(f"{api}/api/v1/diagnostics")
    assert status == 200, diagnostics
    assert diagnostics["log"]["level"] == "debug"
    assert diagnostics["listener"]["advertise"] == "127.0.0.1"
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


# -- resuming across a restart ------------------------------------------------------------


def sse_blocks(port: int, headers: dict[str, str], count: int) -> list[dict[str, str]]:
    """The first ``count`` blocks (``{"id", "event", "data"}``) of ``/api/v1/events``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        connection.request("GET", "/api/v1/events", headers=headers)
        response = connection.getresponse()
        assert response.status == 200, response.status
        blocks: list[dict[str, str]] = []
        block: dict[str, str] = {}
        while len(blocks) < count:
            line = response.readline().decode().rstrip("\n")
            if not line:
                if block:
                    blocks.append(block)
                block = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                block[name] = value
        return blocks
    finally:
        connection.close()


def ws_messages(port: int, query: str, count: int) -> list[dict[str, Any]]:
    """The first ``count`` JSON messages of ``/api/v1/ws?<query>`` (a bare RFC 6455 client)."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /api/v1/ws?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reader = sock.makefile("rb")
        status = reader.readline()
        assert b" 101 " in status, status
        while reader.readline() not in (b"\r\n", b""):
            pass
        messages: list[dict[str, Any]] = []
        while len(messages) < count:
            first, second = reader.read(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", reader.read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", reader.read(8))
            payload = reader.read(length)
            if first & 0x0F == 0x1:
                messages.append(json.loads(payload))
        return messages


def stream_lines(path: Path, operation: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The first ``count`` lines of the local stream after sending ``operation``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(str(path))
        sock.sendall(json.dumps(operation).encode() + b"\n")
        reader = sock.makefile("rb")
        return [json.loads(reader.readline()) for _ in range(count)]


def stream_answers(path: Path) -> list[dict[str, Any]] | None:
    """The local stream's snapshot and its answer to a filter operation, or ``None`` while
    nothing listens on ``path``."""
    try:
        return stream_lines(path, {"op": "filter", "id": 1}, 2)
    except OSError:
        return None


def test_a_stream_socket_left_by_a_crash_is_cleared_with_lockfile(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """docs/api.md, The local stream: with ``lockfile=1`` a daemon that crashed (SIGKILL:
    nothing removed its socket file) does not stop the next one from listening there."""
    socket_path = tmp_path / "stream.sock"
    document = json.loads(daemon_yaml(loopback_base, speakers=1))
    document["sinks"] = {"stream": f"unix:{socket_path}:mode=660:lockfile=1"}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    first = processes.start("daemon-1", "sonosd", "-c", str(config))
    before = wait_for(lambda: stream_answers(socket_path), "the first run's stream")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=WAIT)
    assert socket_path.exists()
    assert stream_answers(socket_path) is None
    second = processes.start("daemon-2", "sonosd", "-c", str(config))
    after = wait_for(lambda: stream_answers(socket_path), "the second run's stream")
    assert [line["type"] for line in after] == ["snapshot", "filter"]
    assert after[0]["run"] != before[0]["run"]
    assert socket_path.stat().st_mode & 0o777 == 0o660
    assert second.poll() is None, processes.output(second)


def test_resuming_across_a_restart_resets(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """After the daemon restarts, an SSE, WebSocket or stream client resuming with an id of
    the earlier run gets a reset and a fresh snapshot of the new run, even though the new
    run has published that id too (its ids start again at 1)."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    addresses = [speaker["address"] for speaker in get_json(f"{admin}/speakers")]
    port = free_tcp_port()
    socket_path = tmp_path / "events.sock"
    document = json.loads(
        daemon_yaml(
            loopback_base,
            api=f"tcp:{port}:interface=127.0.0.1",
            simulate=False,
            devices=tuple(addresses),
        )
    )
    document["sinks"] = {"stream": f"unix:{socket_path}:lockfile=1"}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    snapshot_url = f"http://127.0.0.1:{port}/api/v1/snapshot"

    def snapshot_from(last_id: int) -> Any:
        snapshot = get_json(snapshot_url)
        return snapshot if snapshot is not None and snapshot["last_id"] >= last_id else None

    first = processes.start("daemon-1", "sonosd", "-c", str(config))
    before = wait_for(lambda: snapshot_from(10), "the first run's messages")
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=WAIT) == 0, processes.output(first)

    second = processes.start("daemon-2", "sonosd", "-c", str(config))
    after = wait_for(lambda: snapshot_from(before["last_id"]), "the second run's messages")
    old_run, old_id = before["run"], before["last_id"]
    assert after["run"] != old_run

    reset, snapshot = sse_blocks(port, {"Last-Event-ID": f"{old_run}:{old_id}"}, 3)[1:]
    assert reset["event"] == "reset" and "another run" in json.loads(reset["data"])["reason"]
    assert snapshot["event"] == "snapshot"
    assert json.loads(snapshot["data"])["run"] == after["run"]
    assert snapshot["id"].startswith(after["run"] + ":")

    messages = ws_messages(port, f"last_id={old_id}&run={old_run}", 2)
    assert [m["type"] for m in messages] == ["reset", "snapshot"]
    assert messages[1]["run"] == after["run"]

    lines = stream_lines(socket_path, {"op": "resume", "run": old_run, "last_id": old_id}, 3)
    assert [line["type"] for line in lines] == ["snapshot", "reset", "snapshot"]
    assert "another run" in lines[1]["reason"]
    assert lines[2]["run"] == after["run"]
    # README: ids start again at 1 in each run (a client resuming the new run from its
    # start gets that run's message 1 first).
    first_of_run = ws_messages(port, f"last_id=0&run={after['run']}", 1)
    assert [(m["run"], m["id"]) for m in first_of_run] == [(after["run"], 1)], first_of_run
    assert second.poll() is None, processes.output(second)


# -- networking: the callback URL the speakers are given ---------------------------------------


def taken_ports(address: str, count: int) -> tuple[int, list[socket.socket]]:
    """``count`` consecutive ports of ``address``, each held by a listening socket."""
    for first in range(20_000, 60_000, count):
        held: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                held.append(sock)
                sock.bind((address, port))
                sock.listen()
        except OSError:
            for sock in held:
                sock.close()
            continue
        return first, held
    raise RuntimeError(f"no {count} free consecutive ports on {address}")


def test_listener_with_every_port_taken_exits_1(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """When listener.port and the 99 ports above it are all taken on the listener's address,
    the daemon exits 1 with one line naming those ports, before anything says running."""
    address = free_loopback_base(count=1)
    first, held = taken_ports(address, 100)
    try:
        document = json.loads(daemon_yaml(loopback_base))
        document["listener"] = {"interface": address, "port": first}
        config = tmp_path / "sonosd.yaml"
        config.write_text(json.dumps(document))
        status, output = run_to_exit(processes, "daemon", config)
    finally:
        for sock in held:
            sock.close()
    assert status == 1, output
    [line] = critical_lines(output)
    assert line.endswith(
        f"cannot start: the NOTIFY listener cannot listen on {address} ports {first} to "
        f"{first + 99}: Address already in use"
    ), line
    assert "sonosd running" not in output
    assert "Traceback" not in output


def test_a_taken_listener_port_falls_back_and_the_advertised_url_is_given(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """With ``--listen-port`` taken, the listener binds a port above it with one warning, and
    every SUBSCRIBE gives the speakers ``http://<--advertise>:<that port>/``, where their
    NOTIFYs arrive (the daemon becomes ready)."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    addresses = [speaker["address"] for speaker in get_json(f"{admin}/speakers")]
    # An address of the speakers' loopback block that is no speaker's and that the daemon
    # does not bind by name: the speakers reach it only through the wildcard bind.
    advertised = loopback_base.rsplit(".", 1)[0] + ".1"
    document, api_port = following(loopback_base, addresses)
    api = f"http://127.0.0.1:{api_port}"
    document["listener"] = {"interface": "0.0.0.0", "port": 1400}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        requested = taken.getsockname()[1]
        daemon = processes.start(
            "daemon",
            "sonosd",
            "-c",
            str(config),
            "--listen-port",
            str(requested),
            "--advertise",
            advertised,
        )

        def ready() -> bool:
            assert daemon.poll() is None, processes.output(daemon)
            return get(f"{api}/api/v1/ready")[0] == 200

        wait_for(ready, "every speaker's NOTIFYs arriving")
    status, diagnostics = get(f"{api}/api/v1/diagnostics")
    assert status == 200, diagnostics
    port = diagnostics["listener"]["port"]
    assert requested < port < requested + 100
    assert diagnostics["listener"]["requested_port"] == requested
    callbacks = {
        subscription["callback"]
        for index in range(len(addresses))
        for subscription in get_json(f"{admin}/speakers/{index}/gena")["subscriptions"]
    }
    assert callbacks == {f"http://{advertised}:{port}/"}
    [warning] = [line for line in processes.output(daemon).splitlines() if " warn " in line]
    assert warning.endswith(f"NOTIFY listener on 0.0.0.0:{port} (port {requested} is taken)")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


def test_json_log_format_is_one_object_per_line(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """With ``--log-format json`` every line the daemon writes, from start to exit, is one JSON
    object with time, level, namespace and message, and a message's line carries its id."""
    api_port = free_tcp_port()
    config = tmp_path / "sonosd.yaml"
    config.write_text(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    daemon = processes.start("daemon", "sonosd", "-c", str(config), "--log-format", "json")

    def ready() -> bool:
        assert daemon.poll() is None, processes.output(daemon)
        return get(f"http://127.0.0.1:{api_port}/api/v1/ready")[0] == 200

    wait_for(ready, "ready")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)
    lines = processes.output(daemon).splitlines()
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) for r in records), lines
    assert all({"time", "level", "namespace", "message"} <= set(r) for r in records), lines
    messages = [r for r in records if r["namespace"] == "sonosd.sinks.logsink"]
    assert messages and all(isinstance(r["message_id"], int) for r in messages), lines
    assert [r for r in records if r["message"].startswith("sonosd running")], lines


def test_systemd_status_counts_the_connected_clients(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """The ``STATUS=`` line systemctl status shows counts the SSE, WebSocket and stream
    clients connected, and drops them once they leave."""
    notify = NotifySocket(tmp_path / "notify")
    api_port = free_tcp_port()
    socket_path = tmp_path / "events.sock"
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    document["sinks"] = {"stream": f"unix:{socket_path}"}
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    daemon = processes.start(
        "daemon", "sonosd", "-c", str(config), env={"NOTIFY_SOCKET": notify.path}
    )

    def clients_said(count: int) -> bool:
        assert daemon.poll() is None, processes.output(daemon)
        wanted = f"; {count} clients\n"
        return any(m.startswith("STATUS=") and m.endswith(wanted) for m in notify.messages())

    wait_for(lambda: get(f"http://127.0.0.1:{api_port}/api/v1/health")[0] == 200, "the API")
    clients = [SseClient(api_port), WebSocketClient(api_port), StreamClient(str(socket_path))]
    for client in clients:
        client.wait(lambda messages: messages, "the snapshot")
    wait_for(lambda: clients_said(3), "the status line with 3 clients")
    notify.messages()
    notify.received.clear()
    for client in clients:
        client.close()
    wait_for(lambda: clients_said(0), "the status line without them")
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


# -- state kept across restarts ----------------------------------------------------------------


def test_alarm_skips_are_kept_in_systemds_state_directory(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """Without ``state_dir`` in the file, a daemon started with systemd's ``$STATE_DIRECTORY``
    writes a pending alarm skip there, and the daemon started next with it holds that skip
    (switching the alarm on through it cancels the skip and removes the file)."""
    admin = start_simulator(processes, loopback_base, speakers=1)
    [speaker] = get_json(f"{admin}/speakers")
    state = tmp_path / "state"
    state.mkdir()
    document, api_port = following(loopback_base, [speaker["address"]])
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    alarms = f"http://127.0.0.1:{api_port}/api/v1/speakers/{speaker['uid']}/alarms"
    skips = state / "alarm-skips.json"

    def start(name: str) -> subprocess.Popen[bytes]:
        daemon = processes.start(
            name, "sonosd", "-c", str(config), env={"STATE_DIRECTORY": str(state)}
        )

        def listed() -> Any:
            assert daemon.poll() is None, processes.output(daemon)
            status, body = post(alarms, {"action": "list"})
            return body["result"]["alarms"] if status == 200 and body["result"] else None

        wait_for(listed, "the alarm list")
        return daemon

    first = start("daemon-1")
    alarm_id = post(alarms, {"action": "list"})[1]["result"]["alarms"][0]["id"]
    assert post(alarms, {"action": "enable", "id": alarm_id})[0] == 200
    status, body = post(alarms, {"action": "skip", "id": alarm_id})
    assert status == 200, body
    assert [skip["alarm"] for skip in json.loads(skips.read_text())["skips"]] == [alarm_id]
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=WAIT) == 0, processes.output(first)

    second = start("daemon-2")
    assert skips.exists()
    status, body = post(alarms, {"action": "enable", "id": alarm_id})
    assert status == 200, body
    wait_for(lambda: not skips.exists(), "the finished skip's file removed")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=WAIT) == 0, processes.output(second)


# -- README: the API over TLS, SoCo's own log lines -------------------------------------------


def test_the_api_listens_over_tls_with_an_ssl_endpoint(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """``api.listen: ssl:...`` with the key and the certificate in two files, as api.md's TLS
    example has them (README: ``ssl:`` for TLS), serves over HTTPS with that certificate the
    REST API, the event stream and the dashboard, takes a command the dashboard posts from its
    own ``https://`` origin, and speaks ``wss://`` (a command too); nothing over plain HTTP."""
    import ssl

    from sonosd.api.dashboard import CONTENT_SECURITY_POLICY
    from sonosd.sim.tls import self_signed_pem

    pem = self_signed_pem()
    split = pem.index(b"-----BEGIN EC PRIVATE KEY-----")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    key.write_bytes(pem[split:])
    cert.write_bytes(pem[:split])
    api_port = free_tcp_port()
    config = tmp_path / "sonosd.yaml"
    config.write_text(
        daemon_yaml(
            loopback_base,
            api=f"ssl:{api_port}:interface=127.0.0.1:privateKey={key}:certKey={cert}",
            speakers=1,
        )
    )
    daemon = processes.start("daemon", "sonosd", "-c", str(config))
    trusted = ssl.create_default_context(cafile=str(cert))
    site = f"https://127.0.0.1:{api_port}"
    base = f"{site}/api/v1"

    def ready() -> Any:
        assert daemon.poll() is None, processes.output(daemon)
        try:
            with urllib.request.urlopen(f"{base}/ready", timeout=5, context=trusted) as answer:
                return answer.status == 200 and json.load(answer)
        except (ConnectionError, urllib.error.URLError):
            return None

    body = wait_for(ready, "ready over HTTPS")
    assert body["status"] == "ready", body
    with urllib.request.urlopen(f"{base}/snapshot", timeout=5, context=trusted) as answer:
        snapshot = json.load(answer)
    assert [s["name"] for s in snapshot["speakers"]] == ["Kitchen"], snapshot
    uid = snapshot["speakers"][0]["uid"]
    # The event stream too: its first event is the snapshot.
    with urllib.request.urlopen(f"{base}/events", timeout=5, context=trusted) as stream:
        lines = [stream.readline().decode().strip() for _ in range(4)]
    assert "event: snapshot" in lines, lines
    # The dashboard, and a command posted from its origin (https, this host and port).
    with urllib.request.urlopen(f"{site}/", timeout=5, context=trusted) as page:
        assert page.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert b'<base href="dashboard/">' in page.read()
    command = urllib.request.Request(
        f"{base}/speakers/Kitchen/volume",
        data=json.dumps({"volume": 23}).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Origin": site},
    )
    with urllib.request.urlopen(command, timeout=10, context=trusted) as answer:
        assert answer.status == 200
    # wss://: the snapshot, then a command's result and the event it causes.
    client = WebSocketClient(api_port, headers=f"Origin: {site}\r\n", tls=trusted)
    try:
        client.wait(lambda ms: any(m.get("type") == "snapshot" for m in ms), "the snapshot")
        client.send(
            {
                "op": "command",
                "id": "c1",
                "speaker": "Kitchen",
                "command": "volume",
                "args": {"volume": 31},
            }
        )
        client.wait(
            lambda ms: any(m.get("type") == "result" and m.get("id") == "c1" for m in ms),
            "the command's result",
        )
        client.wait(lambda ms: any(is_volume_event(m, uid, 31) for m in ms), "volume 31")
    finally:
        client.close()
    # Plain HTTP on the same port gets no answer.
    assert get(f"http://127.0.0.1:{api_port}/api/v1/health") == (0, None)
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


def test_the_access_log_keeps_query_tokens_out(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """A token in the query, as the dashboard's album art and browser event streams carry it
    (dashboard.md, api.md: "sonosd redacts access_token from its own access log"), is
    answered and logged at debug level with the token replaced."""
    secret = "page-token-kept-out-of-the-log-0123"
    api_port = free_tcp_port()
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    document["log"] = {"level": "debug"}
    document["api"]["tokens"] = [{"name": "page", "token": secret, "scopes": ["read"]}]
    daemon = start_configured(processes, tmp_path, document)
    api = f"http://127.0.0.1:{api_port}/api/v1"
    wait_for(lambda: daemon.poll() is not None or get(f"{api}/ready")[0] == 200, "ready")
    assert daemon.poll() is None, processes.output(daemon)
    status, snapshot = get(f"{api}/snapshot?access_token={secret}")
    assert status == 200, snapshot
    [speaker] = snapshot["speakers"]
    meta = speaker["services"]["AVTransport"]["variables"]["current_track_meta_data"]
    query = urllib.parse.urlencode(
        {"url": meta["album_art_uri"], "speaker": speaker["uid"], "access_token": secret}
    )
    with urllib.request.urlopen(f"{api}/art?{query}", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("image/")

    def logged() -> list[str]:
        lines = processes.output(daemon).splitlines()
        return [line for line in lines if "GET /api/v1/art?" in line]

    [line] = wait_for(logged, "the art request's access log line")
    assert "access_token=REDACTED" in line, line
    output = processes.output(daemon)
    assert "GET /api/v1/snapshot?access_token=REDACTED" in output, output
    assert secret not in output
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


def test_socos_own_log_lines_go_where_the_daemons_go(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SoCo's stdlib logging (README: "SoCo's own logging goes to the same place") comes out
    in the daemon's log as its own lines, JSON objects under SoCo's namespace."""
    api_port = free_tcp_port()
    document = json.loads(
        daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1", speakers=1)
    )
    document["log"] = {"level": "debug", "format": "json"}
    daemon = start_configured(processes, tmp_path, document)
    api = f"http://127.0.0.1:{api_port}/api/v1"
    wait_for(lambda: daemon.poll() is not None or get(f"{api}/ready")[0] == 200, "ready")
    assert daemon.poll() is None, processes.output(daemon)
    # A command runs through SoCo, which logs the SOAP action it sends at debug level.
    assert post(f"{api}/speakers/Kitchen/volume", {"volume": 23})[0] == 200

    def soco_lines() -> list[dict[str, Any]]:
        records = [json.loads(line) for line in processes.output(daemon).splitlines()]
        return [r for r in records if r["namespace"].startswith("soco.")]

    said = wait_for(
        lambda: [r for r in soco_lines() if "Sending SetVolume" in r["message"]], "SoCo's line"
    )
    assert said[0]["namespace"] == "soco.services" and said[0]["level"] == "debug", said
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)


def test_the_readmes_control_examples_work_on_a_simulated_household(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """Each command of the README's Control section, typed as written (the API's address and
    token aside) against a simulated household like the demo's (its first room, Kitchen,
    holds the simulator's 07:00 weekday alarm), succeeds: the curl volume, every ``sonosctl``
    line, and ``sonosctl events --room Kitchen`` printing the Kitchen's next change."""
    import shlex

    readme = (ROOT / "README.md").read_text()
    control = readme[readme.index("## Control") : readme.index("## The simulator")]
    block = control.split("```sh\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    token = "r" * 24
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document = json.loads(daemon_yaml(loopback_base, api=f"tcp:{api_port}:interface=127.0.0.1"))
    document["api"]["tokens"] = [{"name": "readme", "token": token, "scopes": ["read", "control"]}]
    daemon = start_configured(processes, tmp_path, document)
    wait_for(lambda: daemon.poll() is not None or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    assert daemon.poll() is None, processes.output(daemon)
    env = {**os.environ, "SONOSD_URL": api, "SONOSD_TOKEN": token}
    sonosctl = str(Path(TWISTD).parent / "sonosctl")

    [curl] = [command for command in commands if command[0] == "curl"]
    url = curl[-1].replace("http://127.0.0.1:8080", api)
    request = urllib.request.Request(
        url, data=curl[curl.index("-d") + 1].encode(), method=curl[curl.index("-X") + 1]
    )
    for header in (curl[i + 1] for i, word in enumerate(curl) if word == "-H"):
        name, value = header.split(": ", 1)
        request.add_header(name, value.replace("$TOKEN", token))
    assert answer_of(request) == (200, {"result": {"volume": 30}})

    said = {}
    for command in commands:
        if command[0] != "sonosctl" or command[1] == "events":
            continue
        done = subprocess.run(
            [sonosctl, *command[1:]], capture_output=True, text=True, env=env, timeout=WAIT
        )
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        said[" ".join(command[1:3])] = done.stdout
    assert said["kitchen volume"] == "kitchen: volume 35\n"
    assert said["kitchen join"] == "kitchen: group Living Room + Kitchen\n"
    time_of_day, recurrence = next(c for c in commands if c[2:4] == ["alarm", "add"])[4:]
    added = re.fullmatch(
        r"kitchen: alarm \d+ added: (\S+) (\S+) in Kitchen, on\n", said["kitchen alarm"]
    )
    assert added is not None, said["kitchen alarm"]
    assert added.groups() == (time_of_day, recurrence), said["kitchen alarm"]

    [events] = [command for command in commands if command[:2] == ["sonosctl", "events"]]
    # The Clients section's Server-Sent Events line (rooms=Kitchen), typed as written too.
    clients = readme[readme.index("## Clients") : readme.index("## Control")]
    [sse_line] = [line for line in clients.splitlines() if line.startswith("curl -N ")]
    sse = [
        word.replace("$TOKEN", token).replace("http://127.0.0.1:8080", api)
        for word in shlex.split(sse_line)
    ]
    lines: list[str] = []
    streamed: list[str] = []

    def data() -> list[dict[str, Any]]:
        return [json.loads(line[6:]) for line in list(streamed) if line.startswith("data: ")]

    with (
        subprocess.Popen(
            [sonosctl, *events[1:]], stdout=subprocess.PIPE, text=True, env=env
        ) as following,
        subprocess.Popen(sse, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as curl,
    ):
        for process, into in ((following, lines), (curl, streamed)):
            threading.Thread(
                target=lambda out=process.stdout, into=into: into.extend(out or ()), daemon=True
            ).start()
        try:

            def connected() -> bool:
                assert following.poll() is None, lines
                assert curl.poll() is None, streamed
                status, body = get(f"{api}/api/v1/diagnostics", token)
                return status == 200 and body["sinks"]["clients"]["sse"] == 2

            wait_for(connected, "sonosctl events and curl connected")
            # The Living Room's change first, its event published (neither Kitchen-only client
            # may show it), then the Kitchen's.
            for room, volume in (("Living Room", 17), ("Kitchen", 12)):
                request = urllib.request.Request(
                    f"{api}/api/v1/speakers/{urllib.parse.quote(room)}/volume",
                    data=json.dumps({"volume": volume}).encode(),
                    method="POST",
                )
                request.add_header("Authorization", f"Bearer {token}")
                request.add_header("Content-Type", "application/json")
                assert answer_of(request)[0] == 200
                wait_for(
                    lambda room=room, volume=volume: (
                        volume_of(
                            get(f"{api}/api/v1/speakers/{urllib.parse.quote(room)}", token)[1][
                                "services"
                            ]["RenderingControl"]
                        )
                        == volume
                    ),
                    f"the {room}'s event",
                )
            wait_for(
                lambda: [
                    line
                    for line in lines
                    if " event Kitchen RenderingControl " in line and "volume=12" in line
                ],
                "the Kitchen's volume change from sonosctl events",
            )
            wait_for(
                lambda: [
                    m
                    for m in data()
                    if m.get("service") == "RenderingControl"
                    and (m.get("speaker") or {}).get("name") == "Kitchen"
                    and volume_of(m) == 12
                ],
                "the Kitchen's volume change from curl",
            )
        finally:
            following.terminate()
            curl.terminate()
    messages = data()
    assert messages[0]["type"] == "snapshot", messages[0]
    rooms = {(m.get("speaker") or {}).get("name") for m in messages[1:]} - {None}
    assert rooms == {"Kitchen"}, messages
    assert not [line for line in lines if " Living Room " in line], lines
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=WAIT) == 0, processes.output(daemon)
