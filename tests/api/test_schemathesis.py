"""A schema-driven fuzz of the REST API (schemathesis, from docs/openapi.yaml) against a real
``twistd sonosd`` with a simulated household, tokens on: no request, however malformed, gets a
server error, an undocumented status, a non-JSON error or a response that breaks the schema,
and the daemon logs nothing critical meanwhile."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import free_loopback_base
from tests.daemon_helpers import free_tcp_port
from tests.paths import ROOT

TOKEN = "schemathesis-control-token"
BIN = Path(sys.executable).parent


@pytest.mark.long
def test_openapi_fuzz(tmp_path: Path) -> None:
    """schemathesis finds no failing check in 30 seconds of generated requests (every
    documented operation, examples, coverage, fuzzing and stateful phases).

    The budget was 40 s: the examples and coverage phases (every operation, the same cases
    on every run) come first and take about 20 s on a busy machine; the fuzzing phase, which
    repeats until the budget is spent, is what draws fewer requests. What it looks for
    besides the schema, that no request however malformed gets a 500 or a non-JSON error,
    the byte-level property tests of tests/api/test_hostile_input.py check as well, with
    hundreds of requests on every run."""
    port = free_tcp_port()
    config = {
        "listener": {"interface": "127.0.0.1", "port": 0},
        "api": {
            "listen": f"tcp:{port}:interface=127.0.0.1",
            "require_auth": True,
            "tokens": [{"name": "fuzz", "token": TOKEN, "scopes": ["read", "control"]}],
        },
        "simulate": {"speakers": 2, "base_address": free_loopback_base(count=2)},
        "subscription": {"request_timeout": 2.0},
        "soco": {"threads": 4, "call_timeout": 5.0},
        "log": {"level": "info"},
    }
    (tmp_path / "fuzz.yaml").write_text(json.dumps(config))
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen(
        [str(BIN / "twistd"), "-n", "--pidfile=", f"--logfile={log}", "sonosd", "-c", "fuzz.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the daemon did not start"
                time.sleep(0.2)
        run = subprocess.run(
            [
                str(BIN / "schemathesis"),
                "run",
                str(ROOT / "docs" / "openapi.yaml"),
                "--url",
                f"http://127.0.0.1:{port}/api/v1",
                "-H",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                "all",
                # These two judge the schema's precision, not the server's robustness: the
                # arguments of a command depend on the command in the path (one schema covers
                # them all), and /art accepts only the album art URLs of followed speakers.
                "--exclude-checks",
                "positive_data_acceptance,negative_data_rejection",
                "--max-time",
                "30",
                "--seed",
                "18",
                "--no-color",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
        assert daemon.poll() is None, "the daemon exited"
    finally:
        daemon.terminate()
        daemon.wait(20)
    text = log.read_text(errors="replace")
    assert " critical [" not in text, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
