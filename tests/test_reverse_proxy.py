"""sonosd behind a real nginx that serves it under ``/sonos/``, with the configuration that
docs/deployment.md gives ("Behind a reverse proxy"), read from the doc itself so that the doc
cannot drift: a real ``twistd sonosd`` and a simulated household behind it, reached through
the proxy by REST, Server-Sent Events, the WebSocket and the dashboard in headless Chromium.

Each test's nginx runs in the foreground (``daemon off``) with its pid file, logs and
temporary files in the test's directory, on a free loopback port, and is stopped after it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.api.test_dashboard_browser import (
    Daemon,
    browser,  # noqa: F401 (a fixture)
    card,
    finish,
    log_in,
    open_page,
    run_daemon,
)
from tests.daemon_helpers import ROOMS, free_tcp_port, is_volume_event
from tests.paths import ROOT
from tests.process_clients import SseClient, WebSocketClient
from tests.test_daemon_process import answer_of, wait_for

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
ADMIN_TOKEN = "proxied-admin-token-0123"
READ_TOKEN = "proxied-read-token-4567"
PREFIX = "/sonos"


def documented_config() -> str:
    """The nginx configuration of docs/deployment.md's "Behind a reverse proxy" section."""
    text = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = text.split("\n## Behind a reverse proxy\n", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```nginx\n(.*?)```", section, re.DOTALL)
    assert found, "no nginx block in the section"
    return found.group(1)


class Proxy:
    """An nginx running the documented configuration in front of ``api_port``."""

    def __init__(self, directory: Path, api_port: int, without: str = "") -> None:
        """@param without: A line of the documented configuration to leave out."""
        assert Path(NGINX).exists(), "nginx is missing: `make sysdeps` installs it"
        self.directory = directory
        self.port = free_tcp_port()
        self.url = f"http://127.0.0.1:{self.port}{PREFIX}"
        snippet = documented_config()
        if without:
            assert snippet.count(without) == 1, without
            snippet = snippet.replace(without, "")
        # Only the ports and the log's folder change; the rest runs as the doc says.
        for documented, here in (
            ("listen 80;", f"listen 127.0.0.1:{self.port};"),
            ("http://127.0.0.1:8080/", f"http://127.0.0.1:{api_port}/"),
            ("/var/log/nginx/", f"{directory}/"),
        ):
            assert snippet.count(documented) == 1, documented
            snippet = snippet.replace(documented, here)
        temporary = "\n".join(
            f"    {kind}_temp_path {directory}/{kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        config = directory / "nginx.conf"
        config.write_text(
            f"daemon off;\nuser root;\nworker_processes 1;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log {directory}/access.log;\n{temporary}\n{snippet}\n}}\n"
        )
        self._output = open(directory / "nginx.out", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [NGINX, "-p", f"{directory}/", "-e", f"{directory}/error.log", "-c", str(config)],
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )

        def up() -> bool:
            assert self.process.poll() is None, self.errors()
            return answer_of(urllib.request.Request(f"{self.url}/api/v1/health"))[0] == 200

        wait_for(up, "the daemon's health through nginx")

    def errors(self) -> str:
        """nginx's own output and error log."""
        return "".join(
            path.read_text(errors="replace")
            for path in (self.directory / "nginx.out", self.directory / "error.log")
            if path.exists()
        )

    def log(self) -> str:
        """The documented access log of the ``/sonos/`` location."""
        path = self.directory / "sonosd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop nginx (SIGQUIT, a graceful stop; SIGKILL if it lingers)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self._output.close()


class Proxied:
    """The daemon and the proxy in front of it."""

    def __init__(self, daemon: Daemon, proxy: Proxy) -> None:
        self.daemon = daemon
        self.proxy = proxy
        #: The daemon as the browser sees it: through the proxy, under its prefix.
        self.page = Daemon(proxy.url, daemon.admin, daemon.restart)

    def get(self, path: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
        """GET ``path`` through the proxy: its status and JSON body."""
        request = urllib.request.Request(self.proxy.url + path, headers=headers)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        return answer_of(request)

    def volume(self, uid: str) -> object:
        """The volume the daemon holds for ``uid`` (from its events), through the proxy."""
        speaker = self.get(f"/api/v1/speakers/{uid}", READ_TOKEN)[1]
        return speaker["services"]["RenderingControl"]["variables"]["volume"]["Master"]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """``twistd sonosd`` (three simulated rooms, a read and an admin token, the API on
    loopback) behind nginx at ``/sonos/``."""

    def configure(config: dict[str, Any]) -> None:
        config["api"]["tokens"] = [
            {"name": "admin", "token_env": "PROXIED_ADMIN", "scopes": ["read", "control"]},
            {"name": "reader", "token_env": "PROXIED_READ", "scopes": ["read"]},
        ]
        # No keep-alive within a test: it would push out what a buffering proxy holds back.
        config["api"]["heartbeat"] = 3600.0

    os.environ["PROXIED_ADMIN"] = ADMIN_TOKEN
    os.environ["PROXIED_READ"] = READ_TOKEN
    directory = tmp_path_factory.mktemp("proxied")
    try:
        for daemon in run_daemon(directory, len(ROOMS), configure):
            nginx = directory / "nginx"
            nginx.mkdir()
            proxy = Proxy(nginx, int(daemon.url.rsplit(":", 1)[1]))
            try:
                yield Proxied(daemon, proxy)
            finally:
                proxy.stop()
    finally:
        del os.environ["PROXIED_ADMIN"], os.environ["PROXIED_READ"]


def bearer(token: str) -> str:
    """An ``Authorization`` header line for a raw request."""
    return f"Authorization: Bearer {token}\r\n"


def test_rest_needs_its_token_through_the_proxy(proxied: Proxied) -> None:
    """Under the prefix the API answers as it does directly: health open, the speakers 401
    without a token (sonosd's own refusal) and listed with one, a command 403 without the
    control scope."""
    assert proxied.get("/api/v1/health")[0] == 200
    status, body = proxied.get("/api/v1/speakers")
    assert (status, body["error"]["code"]) == (401, "unauthorized"), body
    assert proxied.get("/api/v1/speakers", "not-the-token")[0] == 401
    status, body = proxied.get("/api/v1/speakers", READ_TOKEN)
    assert status == 200, body
    assert sorted(speaker["name"] for speaker in body["speakers"]) == sorted(ROOMS)
    status, access = proxied.get("/api/v1/access", ADMIN_TOKEN)
    assert (status, access["token"], access["granted"]) == (200, "admin", True)
    # A command: the reader may not, the admin may (the proxy passes Authorization and the
    # body on; no Origin, as from a script).
    uid = proxied.daemon.uids["Kitchen"]
    for token, expected in ((READ_TOKEN, 403), (ADMIN_TOKEN, 200)):
        request = urllib.request.Request(
            f"{proxied.proxy.url}/api/v1/speakers/{uid}/volume",
            data=json.dumps({"volume": 31}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert answer_of(request)[0] == expected
    wait_for(lambda: proxied.daemon.speaker("Kitchen")["volume"] == 31, "the kitchen at 31")
    # docs/deployment.md: "/sonos (no slash) is redirected to /sonos/ by nginx itself".
    connection = http.client.HTTPConnection("127.0.0.1", proxied.proxy.port, timeout=10)
    try:
        connection.request("GET", PREFIX)
        answer = connection.getresponse()
        location = urllib.parse.urlsplit(answer.getheader("Location") or "").path
        assert (answer.status, location) == (301, f"{PREFIX}/")
    finally:
        connection.close()


def _volume(proxied: Proxied, room: str, volume: int) -> None:
    """Set ``room``'s volume at the simulated speaker (not through the daemon)."""
    proxied.daemon.call("PATCH", f"/speakers/{proxied.daemon.uids[room]}/state", {"volume": volume})


def _has_volume(uid: str, volume: int) -> Any:
    return lambda messages: any(is_volume_event(m, uid, volume) for m in messages)


def test_sse_resumes_after_a_drop_through_the_proxy(proxied: Proxied) -> None:
    """Events arrive through the proxy as they happen (unbuffered); a client whose
    connection dropped reconnects with ``Last-Event-ID`` and gets exactly the messages it
    missed, then live ones: no gap, no duplicate."""
    uid = proxied.daemon.uids["Office"]
    first = SseClient(proxied.proxy.port, prefix=PREFIX, headers=bearer(READ_TOKEN))
    try:
        first.wait(lambda messages: bool(messages), "the snapshot")
        assert b" 200 " in first.head.split(b"\r\n", 1)[0], first.head
        assert b"text/event-stream" in first.head, first.head
        run = first.snapshot()[0]["run"]
        _volume(proxied, "Office", 11)
        first.wait(_has_volume(uid, 11), "the office at 11, live through the proxy")
    finally:
        first.close()
    seen = first.ids()
    assert seen == list(range(seen[0], seen[0] + len(seen))), seen
    # Missed while away: the daemon has them (its own view of the speaker says so).
    for volume in (12, 13):
        _volume(proxied, "Office", volume)
    wait_for(lambda: proxied.volume(uid) == 13, "the daemon holding the office at 13")
    again = SseClient(
        proxied.proxy.port,
        prefix=PREFIX,
        headers=bearer(READ_TOKEN) + f"Last-Event-ID: {run}:{seen[-1]}\r\n",
    )
    try:
        again.wait(_has_volume(uid, 13), "the missed office at 13")
        _volume(proxied, "Office", 14)
        again.wait(_has_volume(uid, 14), "the office at 14, live again")
        messages = again.snapshot()
    finally:
        again.close()
    assert all(m["type"] not in ("snapshot", "reset") for m in messages), messages[:2]
    ids = [m["id"] for m in messages]
    assert ids == list(range(seen[-1] + 1, seen[-1] + 1 + len(ids))), (seen[-1], ids)


def test_events_are_live_through_a_proxy_that_buffers(proxied: Proxied, tmp_path: Path) -> None:
    """nginx buffers a proxied answer unless told not to; the event stream tells it so
    itself (``X-Accel-Buffering: no``, which nginx keeps to itself), so with the documented
    configuration less its ``proxy_buffering off`` (nginx's default, buffering on) the
    snapshot and then a change arrive while the stream is open. The WebSocket, a connection
    nginx tunnels once upgraded, gets the change too."""
    api_port = int(proxied.daemon.url.rsplit(":", 1)[1])
    proxy = Proxy(tmp_path, api_port, without="proxy_buffering off;")
    uid = proxied.daemon.uids["Kitchen"]
    # Only the kitchen's events: nothing else fills nginx's buffers and pushes them out.
    stream = SseClient(
        proxy.port, "?rooms=Kitchen&types=event", prefix=PREFIX, headers=bearer(READ_TOKEN)
    )
    websocket = WebSocketClient(proxy.port, prefix=PREFIX, headers=bearer(READ_TOKEN))
    try:
        stream.wait(lambda messages: bool(messages), "the snapshot through a buffering nginx")
        head = stream.head.split(b"\r\n")
        assert b" 200 " in head[0] and b"x-accel-buffering" not in stream.head.lower(), head
        websocket.wait(lambda messages: bool(messages), "the WebSocket's snapshot")
        volume = proxied.volume(uid)
        assert isinstance(volume, int)
        changed = (volume + 7) % 100
        _volume(proxied, "Kitchen", changed)
        stream.wait(_has_volume(uid, changed), "the change, live through nginx")
        websocket.wait(_has_volume(uid, changed), "the change on the WebSocket")
        assert not stream.closed and not websocket.closed
    finally:
        stream.close()
        websocket.close()
        proxy.stop()


def test_websocket_subscribes_and_commands_through_the_proxy(proxied: Proxied) -> None:
    """The WebSocket upgrade passes the proxy: a filter is acknowledged and applied, and a
    command sets the simulated speaker's volume, whose event follows on the socket; a page
    of another origin is refused."""
    uid = proxied.daemon.uids["Living Room"]
    origin = f"Origin: http://127.0.0.1:{proxied.proxy.port}\r\n"
    client = WebSocketClient(
        proxied.proxy.port, prefix=PREFIX, headers=bearer(ADMIN_TOKEN) + origin
    )
    try:
        client.wait(lambda messages: bool(messages), "the snapshot")
        client.send({"op": "filter", "id": 1, "rooms": ["Living Room"], "types": ["event"]})
        client.wait(lambda ms: any(m.get("type") == "filter" for m in ms), "the filter's reply")
        command = {"volume": 27}
        client.send(
            {
                "op": "command",
                "id": "c1",
                "speaker": "Living Room",
                "command": "volume",
                "args": command,
            }
        )
        client.wait(
            lambda ms: any(m.get("type") == "result" and m.get("id") == "c1" for m in ms),
            "the command's result",
        )
        wait_for(lambda: proxied.daemon.speaker("Living Room")["volume"] == 27, "the room at 27")
        client.wait(_has_volume(uid, 27), "the room's event at 27")
        _volume(proxied, "Kitchen", 9)
        _volume(proxied, "Living Room", 28)
        client.wait(_has_volume(uid, 28), "the room's event at 28")
        messages = client.snapshot()
        after = next(i for i, m in enumerate(messages) if m.get("type") == "filter")
        rooms = {m["speaker"]["name"] for m in messages[after:] if m.get("type") == "event"}
        assert rooms == {"Living Room"}, rooms
    finally:
        client.close()
    status, body = proxied.get(
        "/api/v1/ws",
        ADMIN_TOKEN,
        Origin="http://sonos.example",
        Upgrade="websocket",
        Connection="Upgrade",
    )
    assert status == 403, body
    assert "http://sonos.example" in body["error"]["message"], body


def test_forwarded_headers_are_not_trusted(proxied: Proxied) -> None:
    """What a user sees of client addresses behind the proxy: sonosd names the proxy's
    address in its refusal lines, never the client's nor an ``X-Forwarded-For`` it wrote,
    while the proxy's documented log has the client, and no token."""
    forged, client_address = "203.0.113.77", "127.0.0.77"
    client = WebSocketClient(
        proxied.proxy.port,
        prefix=PREFIX,
        headers=bearer(READ_TOKEN) + f"X-Forwarded-For: {forged}\r\n",
        source=client_address,
    )
    try:
        client.wait(lambda messages: bool(messages), "the snapshot")
        client.send({"op": "no-such-op", "id": 5})
        client.wait(lambda ms: any(m.get("type") == "error" for m in ms), "the refusal")
    finally:
        client.close()
    line = wait_for(
        lambda: next(
            (
                text
                for text in proxied.daemon.output().splitlines()
                if "websocket client" in text and "no-such-op" in text
            ),
            None,
        ),
        "the daemon's refusal line",
    )
    assert "websocket client 127.0.0.1: unknown op 'no-such-op'" in line, line
    assert forged not in line and client_address not in line, line
    # nginx writes a WebSocket's line when it closes, after the lines of earlier tests'
    # WebSockets (from 127.0.0.1): wait for this one's.
    wait_for(
        lambda: [
            text
            for text in proxied.proxy.log().splitlines()
            if "/api/v1/ws" in text and text.startswith(f"{client_address} - ")
        ],
        "the proxy's log line naming the client",
    )
    # The proxy's log has the path, never the query (where browsers put their token).
    status, _ = proxied.get(f"/api/v1/speakers?access_token={READ_TOKEN}")
    assert status == 200
    wait_for(lambda: "/sonos/api/v1/speakers" in proxied.proxy.log(), "the speakers' line")
    assert READ_TOKEN not in proxied.proxy.log()


def test_dashboard_under_the_prefix(browser: Browser, proxied: Proxied) -> None:  # noqa: F811
    """The dashboard loads under ``/sonos/``, lists every room, sets a volume the simulated
    speaker then has, and shows album art through the daemon's art proxy, under the prefix."""
    page, console = open_page(browser, proxied.page)
    log_in(page, ADMIN_TOKEN)
    for room in ROOMS:
        expect(card(page, room)).to_be_visible()
    assert page.url == f"{proxied.proxy.url}/", page.url
    office = card(page, "Office")
    slider = office.get_by_role("slider", name="Volume of Office")
    slider.fill("42")
    wait_for(lambda: proxied.daemon.speaker("Office")["volume"] == 42, "the office at 42")
    proxied.daemon.call(
        "PATCH", f"/speakers/{proxied.daemon.uids['Office']}/state", {"transport": "PLAYING"}
    )
    art = office.get_by_role("img", name="Album art", exact=False)
    expect(art).to_be_visible()
    wait_for(
        lambda: page.evaluate(
            "(img) => img.complete && img.naturalWidth > 0", art.element_handle()
        ),
        "the album art loaded",
    )
    source = page.evaluate("(img) => img.src", art.element_handle())
    assert source.startswith(f"{proxied.proxy.url}/api/v1/art?"), source
    expect(page.locator("#connection")).to_have_text("Live")
    finish(page, console)


def test_a_proxy_that_drops_the_host_is_named_in_the_refusal(
    proxied: Proxied, tmp_path: Path
) -> None:
    """Without the documented ``proxy_set_header Host``, nginx sends its upstream's address
    as ``Host``: the dashboard's WebSocket is refused 403, and the message names the page's
    ``Origin`` and the ``Host`` sonosd saw, so that the cause shows."""
    api_port = int(proxied.daemon.url.rsplit(":", 1)[1])
    proxy = Proxy(tmp_path, api_port, without="proxy_set_header Host $http_host;")
    try:
        origin = f"http://127.0.0.1:{proxy.port}"
        request = urllib.request.Request(
            f"{proxy.url}/api/v1/ws",
            headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}",
                "Origin": origin,
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
        )
        status, body = answer_of(request)
    finally:
        proxy.stop()
    assert status == 403, body
    message = body["error"]["message"]
    assert f'Origin "{origin}"' in message and f'Host "127.0.0.1:{api_port}"' in message, body
