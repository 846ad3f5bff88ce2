"""pyOpenSSL deferred until TLS is used (``sonosd.tlsgate``), in a child interpreter and in a
real ``twistd sonosd`` process.

The gate changes a process's imports for good, so every test runs it in a process of its own.
``PYTHONPROFILEIMPORTTIME`` makes a daemon write one line per module it imports, as it
imports it: the proof of what it loaded, and when.
"""

from __future__ import annotations

import functools
import http.server
import json
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import types
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import ssl as twisted_ssl
from twisted.internet.interfaces import IReactorSSL
from twisted.protocols import tls as twisted_tls

from sonosd import tlsgate
from sonosd.sim.tls import self_signed_pem
from tests.daemon_helpers import free_tcp_port
from tests.process_clients import WebSocketClient
from tests.test_daemon_process import (
    Processes,
    get,
    get_json,
    processes,  # noqa: F401 (a fixture)
    set_volume,
    start_simulator,
    wait_for,
)

#: The child: gate TLS, load Twisted's networking without it, then enable it and make an
#: HTTPS request from ``Agent`` to an ``ssl:`` endpoint (the reactor's ``listenSSL``,
#: ``endpoints.wrapClientTLS`` and ``web.client``'s HTTPS policy, all loaded under the gate).
CHILD = textwrap.dedent(
    """
    import sys
    from sonosd import tlsgate

    assert tlsgate.defer() and tlsgate.deferred()
    from twisted.internet import endpoints, reactor, task
    from twisted.internet.defer import Deferred
    from twisted.web import client, resource, server

    assert "OpenSSL" not in sys.modules, "loaded under the gate"
    assert endpoints.TLSMemoryBIOFactory is None
    try:
        import OpenSSL
    except ImportError as error:
        print("refused:", error)
    tlsgate.enable()
    tlsgate.enable()
    assert not tlsgate.deferred()
    from twisted.internet import ssl
    from sonosd.sim.tls import self_signed_pem

    pem = sys.argv[1]
    with open(pem, "wb") as handle:
        handle.write(self_signed_pem())

    class Hello(resource.Resource):
        isLeaf = True

        def render_GET(self, request):
            return b"hello over TLS"

    async def main():
        port = await endpoints.serverFromString(
            reactor, "ssl:0:interface=127.0.0.1:privateKey=" + pem
        ).listen(server.Site(Hello()))
        with open(pem, "rb") as handle:
            trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(handle.read())])
        agent = client.Agent(reactor, client.BrowserLikePolicyForHTTPS(trustRoot=trust))
        url = "https://127.0.0.1:%d/" % port.getHost().port
        response = await agent.request(b"GET", url.encode())
        print("body:", (await client.readBody(response)).decode())
        await port.stopListening()

    task.react(lambda _: Deferred.fromCoroutine(main()))
    """
)


def test_enabled_after_twisted_loaded_without_it(tmp_path: Path) -> None:
    """Under the gate pyOpenSSL cannot be imported and Twisted loads without TLS; once
    enabled, an ssl: endpoint listens and Agent fetches an HTTPS URL from it."""
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "server.pem")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "refused: OpenSSL: TLS is not in use (sonosd.tlsgate)" in done.stdout
    assert "body: hello over TLS" in done.stdout


def test_defer_changes_nothing_once_loaded(tmp_path: Path) -> None:
    """A process that already loaded pyOpenSSL is not gated: defer says so."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import OpenSSL; from sonosd import tlsgate; "
            "print(tlsgate.defer(), tlsgate.deferred()); tlsgate.enable()",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_gate_refuses_only_openssl() -> None:
    """The gate refuses OpenSSL and its submodules by name and lets every other name through."""
    gate = tlsgate._Gate()
    for name in ("OpenSSL", "OpenSSL.SSL"):
        with pytest.raises(ImportError, match="TLS is not in use"):
            gate.find_spec(name)
    assert gate.find_spec("OpenSSLish") is None
    assert gate.find_spec("twisted.internet.ssl") is None


def _refused() -> None:
    raise NotImplementedError


def test_enable_gives_loaded_modules_their_tls_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """enable() removes the gate and fills in what Twisted's reactor base, endpoints and web
    client set when their pyOpenSSL import failed (modules stood in for by fakes here)."""

    class ReactorBase:
        pass

    posixbase = types.ModuleType("twisted.internet.posixbase")
    posixbase.tls = None
    posixbase.ssl = None
    posixbase.PosixReactorBase = ReactorBase
    endpoints = types.ModuleType("twisted.internet.endpoints")
    endpoints.TLSMemoryBIOFactory = None
    client = types.ModuleType("twisted.web.client")
    client.SSL = None

    def creator_for_netloc(self: object, hostname: bytes, port: int) -> str:
        return "creator"

    def raiseNotImplemented(*args: object) -> None:  # the name _requireSSL's wrapper has
        raise NotImplementedError

    class Policy:
        creatorForNetloc = functools.wraps(creator_for_netloc)(raiseNotImplemented)
        other = staticmethod(_refused)

    Policy.__module__ = client.__name__
    client.Policy = Policy
    for module in (posixbase, endpoints, client):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(sys, "meta_path", [tlsgate._gate, *sys.meta_path])
    assert tlsgate.deferred()
    tlsgate.enable()
    assert not tlsgate.deferred()
    assert posixbase.tls is twisted_tls and posixbase.ssl is twisted_ssl
    assert IReactorSSL.implementedBy(ReactorBase)
    assert endpoints.TLSMemoryBIOFactory is twisted_tls.TLSMemoryBIOFactory
    assert endpoints.optionsForClientTLS is twisted_ssl.optionsForClientTLS
    assert client.platformTrust is twisted_ssl.platformTrust
    assert Policy().creatorForNetloc(b"host", 443) == "creator"
    assert Policy.other is _refused
    tlsgate.enable()  # again: nothing to do


def test_defer_installs_the_gate_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where pyOpenSSL is not loaded yet, defer() installs the gate, once."""
    monkeypatch.delitem(sys.modules, "OpenSSL")
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    assert tlsgate.defer() and tlsgate.defer()
    assert sys.meta_path.count(tlsgate._gate) == 1
    sys.meta_path.remove(tlsgate._gate)


def imported(output: str, module: str) -> bool:
    """Whether ``-X importtime`` output says ``module`` was imported (a refused import has
    its line too: under the gate, ``OpenSSL`` and ``OpenSSL.SSL`` are tried and refused, while
    ``OpenSSL.crypto`` is only imported by pyOpenSSL itself)."""
    return any(
        line.startswith("import time:") and line.rsplit("|", 1)[-1].strip() == module
        for line in output.splitlines()
    )


class HttpsHooks:
    """A webhook receiver over HTTPS (Python's ssl and http.server) with a self-signed
    certificate for 127.0.0.1, written to ``pem`` (the daemon's ``ca_file``)."""

    def __init__(self, pem: Path) -> None:
        pem.write_bytes(self_signed_pem())
        self.pem = pem
        self.bodies: list[dict[str, Any]] = []
        bodies = self.bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_daemon_loads_tls_and_websocket_only_when_used(
    processes: Processes,  # noqa: F811
    loopback_base: str,
    tmp_path: Path,
) -> None:
    """A running daemon without TLS or WebSocket clients has not imported pyOpenSSL,
    cryptography or autobahn; the first WebSocket client loads autobahn, and a reload that
    adds an HTTPS webhook loads TLS, which then delivers."""
    admin = start_simulator(processes, loopback_base, speakers=1)
    address = get_json(f"{admin}/speakers")[0]["address"]
    api_port = free_tcp_port()
    api = f"http://127.0.0.1:{api_port}"
    document: dict[str, Any] = {
        "listener": {"interface": "127.0.0.1", "port": 0},
        "api": {"listen": f"tcp:{api_port}:interface=127.0.0.1"},
        "devices": [{"host": address}],
        "services": ["RenderingControl"],
    }
    config = tmp_path / "sonosd.yaml"
    config.write_text(json.dumps(document))
    daemon = processes.start(
        "daemon", "sonosd", "-c", str(config), env={"PYTHONPROFILEIMPORTTIME": "1"}
    )

    def alive() -> None:
        assert daemon.poll() is None, processes.output(daemon)

    wait_for(lambda: alive() or get(f"{api}/api/v1/ready")[0] == 200, "ready")
    output = processes.output(daemon)
    for module in ("OpenSSL.crypto", "cryptography", "autobahn", "paho"):
        assert not imported(output, module), module
    client = WebSocketClient(api_port)
    hooks = HttpsHooks(tmp_path / "hooks.pem")
    try:
        client.wait(lambda ms: ms and ms[0]["type"] == "snapshot", "the snapshot")
        output = processes.output(daemon)
        assert imported(output, "autobahn")
        assert not imported(output, "OpenSSL.crypto")
        document["sinks"] = {"webhooks": [{"url": hooks.url, "ca_file": str(hooks.pem)}]}
        config.write_text(json.dumps(document))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: alive() or "reloaded " in processes.output(daemon), "the reload")
        assert imported(processes.output(daemon), "OpenSSL.crypto")
        set_volume(admin, 0, 37)
        wait_for(
            lambda: alive() or any((b.get("variables") or {}).get("volume") for b in hooks.bodies),
            "the volume change over HTTPS",
        )
    finally:
        client.close()
        hooks.close()
