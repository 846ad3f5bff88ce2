"""End-to-end tests of the installed commands: ``twistd sonos-sim`` and ``twistd sonosd``.

Each test runs real ``twistd`` processes on loopback (the simulator on its own 127.A.B.x block,
the daemon's API and the simulator's admin API on free ports), talks to them over HTTP and
kills whatever is still running when it ends.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sonosd.config import DEFAULT_SERVICES
from tests.daemon_helpers import daemon_yaml, free_tcp_port

TWISTD = str(Path(sys.executable).parent / "twistd")

#: The bound of every wait, in seconds.
WAIT = 30.0


class Processes:
    """Starts ``twistd`` processes, each logging to its own file; kills leftovers."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, *arguments: str) -> subprocess.Popen[bytes]:
        """Run ``twistd -n --pidfile= <arguments>`` in its own directory under the test's."""
        cwd = self.directory / name
        cwd.mkdir()
        log = cwd / "output.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [TWISTD, "-n", "--pidfile=", *arguments],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
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


def start_simulator(processes: Processes, base: str, speakers: int) -> str:
    """Run ``twistd sonos-sim``; return its admin API's URL once it answers."""
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
    )
    admin = f"http://127.0.0.1:{admin_port}"
    wait_for(
        lambda: get_json(f"{admin}/speakers") or simulator.poll() is not None,
        "the simulator's admin API",
    )
    assert simulator.poll() is None, processes.output(simulator)
    return admin


def test_sigterm_unsubscribes_and_exits_0(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """SIGTERM stops the daemon with status 0 after it UNSUBSCRIBEd from every speaker."""
    admin = start_simulator(processes, loopback_base, speakers=2)
    addresses = [speaker["address"] for speaker in get_json(f"{admin}/speakers")]
    api = f"tcp:{free_tcp_port()}:interface=127.0.0.1"
    config = tmp_path / "sonosd.yaml"
    config.write_text(daemon_yaml(loopback_base, api=api, simulate=False, devices=tuple(addresses)))
    daemon = processes.start("daemon", "sonosd", "-c", str(config))
    expected = [len(DEFAULT_SERVICES)] * len(addresses)

    def subscribed() -> bool:
        assert daemon.poll() is None, processes.output(daemon)
        return subscription_counts(admin, len(addresses)) == expected

    wait_for(subscribed, "every subscription at the simulator")
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


def test_check_config_rejects_a_bad_file_in_one_line(tmp_path: Path) -> None:
    """``--check-config`` on a wrong file prints one line naming the key and exits 1."""
    config = tmp_path / "sonosd.yaml"
    config.write_text("listener:\n  port: many\n")
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
    assert line.startswith(f"{config}:2: listener.port: "), line


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


def test_resuming_across_a_restart_resets(
    processes: Processes, loopback_base: str, tmp_path: Path
) -> None:
    """After the daemon restarts, an SSE, WebSocket or stream client resuming with an id of
    the earlier run gets a reset and a fresh snapshot of the new run, even though the new
    run has published that id too."""
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
    assert second.poll() is None, processes.output(second)
