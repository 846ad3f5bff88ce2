"""SoCo loaded only when needed (``sonosd.lazysoco``): the hooks, and a real idle
``twistd sonosd`` that follows a speaker without SoCo, requests, urllib3, lxml or xmltodict
until a control command needs SoCo.

``PYTHONPROFILEIMPORTTIME`` makes a daemon write one line per module it imports, as it
imports it (see tests/test_tlsgate.py): the proof of what it loaded, and when.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.testing import MemoryReactorClock

from sonosd import lazysoco, securesoap
from sonosd.config import DEFAULT_SERVICES, Config, SocoConfig
from sonosd.household import socohttp
from sonosd.service import SonosdService
from tests.daemon_helpers import free_tcp_port
from tests.test_daemon_process import (
    Processes,
    get,
    get_json,
    processes,  # noqa: F401 (a fixture)
    start_simulator,
    wait_for,
)

#: What SoCo brings in, none of which an idle daemon needs (issue 17).
SOCO_STACK = ("soco", "requests", "urllib3", "lxml", "xmltodict")


def loaded(output: str, package: str) -> bool:
    """Whether ``-X importtime`` output shows ``package`` or a module of it imported.

    A module imported with ``importlib.import_module`` (as ``sonosd.lazysoco`` imports
    ``soco``) gets no line of its own; the modules it imports do (``soco.core``)."""
    for line in output.splitlines():
        if line.startswith("import time:"):
            module = line.rsplit("|", 1)[-1].strip()
            if module == package or module.startswith(package + "."):
                return True
    return False


#: The child: hooks registered before SoCo is loaded run once, in order, before ``load()``
#: returns; one registered afterwards runs at once; ``speaker`` builds a configured SoCo.
CHILD = textwrap.dedent(
    """
    import sys
    import threading
    from sonosd import lazysoco

    seen = []
    lazysoco.on_load(lambda soco: seen.append(("first", soco.__name__)))
    lazysoco.on_load(lambda soco: seen.append(("second", soco.config.REQUEST_TIMEOUT)))
    lazysoco.on_load(lambda soco: setattr(soco.config, "REQUEST_TIMEOUT", 7.5))
    assert not lazysoco.loaded() and "soco" not in sys.modules
    assert lazysoco.loaded_module("soco.exceptions") is None
    threads = [threading.Thread(target=lazysoco.load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(seen)
    lazysoco.on_load(lambda soco: print("late", soco.config.REQUEST_TIMEOUT))
    device = lazysoco.speaker("127.0.0.9")
    print(type(device).__name__, device.ip_address, lazysoco.loaded())
    print(lazysoco.loaded_module("soco.exceptions").__name__)
    """
)


def test_hooks_run_once_before_soco_is_used() -> None:
    """SoCo is not loaded by importing the module; the first load() (from four threads at
    once) runs every hook once, in order; a later hook runs at once; speaker() builds a
    SoCo object."""
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[('first', 'soco'), ('second', 20.0)]",
        "late 7.5",
        "SoCo 127.0.0.9 True",
        "soco.exceptions",
    ]


def post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """POST ``body`` as JSON: the status and the decoded answer."""
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_idle_daemon_loads_soco_only_for_a_command(
    processes: Processes,  # noqa: F811
    loopback_base: str,
    tmp_path: Path,
) -> None:
    """A daemon that follows a speaker, every subscription with its initial event in, has
    not imported SoCo, requests, urllib3, lxml or xmltodict; a volume command then loads
    SoCo, configured when it loads: the speaker takes SOAP over HTTPS only (the daemon's
    ``securesoap`` shim), and its volume is set."""
    admin = start_simulator(processes, loopback_base, 1, "--https-only", "0")
    address = get_json(f"{admin}/speakers")[0]["address"]
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    # Every default service: the reads their first events cause (a playing speaker's track
    # position, the alarm list) are the daemon's own SOAP (household.soap), not SoCo's.
    services = list(DEFAULT_SERVICES)
    config = tmp_path / "sonosd.yaml"
    config.write_text(
        json.dumps(
            {
                "listener": {"interface": "127.0.0.1", "port": 0},
                "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1"},
                "devices": [{"host": address}],
                "services": services,
                "soco": {"call_timeout": 17},
            }
        )
    )
    daemon = processes.start(
        "daemon", "sonosd", "-c", str(config), env={"PYTHONPROFILEIMPORTTIME": "1"}
    )

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    def evented() -> bool:
        # Every service's initial event is in the daemon's state.
        status, speaker = get(f"{api}/api/v1/speakers/{address}")
        return status == 200 and set(services) <= set(speaker.get("services") or ())

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    wait_for(lambda: alive() or evented(), "the initial events")
    status, snapshot = get(f"{api}/api/v1/speakers")
    assert status == 200, snapshot
    output = processes.output(daemon)
    assert loaded(output, "sonosd.household.supervisor"), output[-2000:]
    for package in SOCO_STACK:
        assert not loaded(output, package), package

    status, answer = post_json(f"{api}/api/v1/speakers/{address}/volume", {"volume": 23})
    assert status == 200, answer
    assert get_json(f"{admin}/speakers")[0]["volume"] == 23
    output = processes.output(daemon)
    for package in ("soco", "requests", "sonosd.securesoap", "sonosd.household.socohttp"):
        assert loaded(output, package), package
    assert f"{address} refuses SOAP over HTTP: its control requests go over HTTPS" in output


def test_daemon_configures_soco_when_it_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon's settings reach SoCo through ``on_load``: its call timeout, its bounded
    HTTP (deadline = the call timeout) and, in front of it, SOAP over HTTPS."""
    import soco.config
    import soco.core
    import soco.services

    for module, name in (
        (soco.config, "REQUEST_TIMEOUT"),
        (soco.config, "ZGT_EVENT_FALLBACK"),
        (soco.services, "requests"),
        (soco.core, "requests"),
        (soco.services, "prettify"),
    ):
        monkeypatch.setattr(module, name, getattr(module, name))
    config = Config(path="x.yaml", soco=SocoConfig(call_timeout=13.0))
    SonosdService(config, MemoryReactorClock())
    assert lazysoco.load() is soco
    assert soco.config.REQUEST_TIMEOUT == 13.0
    assert soco.config.ZGT_EVENT_FALLBACK is False
    shim = soco.services.requests
    assert isinstance(shim, securesoap.SecureSoap)
    assert isinstance(shim._http, socohttp.BoundedRequests) and shim._http.deadline == 13.0
    assert soco.core.requests is shim._http
