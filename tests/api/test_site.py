"""Tests for sonosd.api.site: the REST routes, the security gate and the service lifecycle."""

from __future__ import annotations

import json
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyRequest

from sonosd.api.site import TWISTED_INTERNALS, ApiService, access_log_line, redact
from sonosd.config import ApiConfig, Token
from sonosd.delivery.hub import Hub
from tests.api_helpers import (
    ADMIN,
    KITCHEN,
    OFFICE,
    READER,
    RawClient,
    SseClient,
    connect_raw,
    connect_ws,
    household,
    publish,
    sse_request,
    start_api,
    wait,
)
from tests.paths import ROOT

READ = {"Authorization": "Bearer read-secret"}
CONTROL = {"Authorization": "Bearer admin-secret"}


class Failing(Exception):
    def __init__(self) -> None:
        super().__init__("offline")
        self.code, self.status, self.message, self.upnp_error = "offline", 503, "offline", None


class RecordingController:
    """Records commands; fails the 'sleep' command like ControlError would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def execute(self, speaker_id: str, command: str, args: dict[str, Any]) -> Deferred[Any]:
        self.calls.append((speaker_id, command, dict(args)))
        if command == "sleep":
            return fail(Failing())
        if command == "crash":
            raise RuntimeError("bug")
        return succeed({"ok": True})


class RedactTests(SynchronousTestCase):
    def test_access_token_redacted(self) -> None:
        """Access log lines never contain a query token."""
        self.assertEqual(
            redact(b"/api/v1/events?rooms=a&access_token=s3cret&last_id=4"),
            b"/api/v1/events?rooms=a&access_token=REDACTED&last_id=4",
        )

    def test_every_spelling_of_the_token_redacted(self) -> None:
        """A token name twisted.web decodes (percent, plus, ``;``) is redacted as well."""
        for uri, expected in (
            (b"/ws?access%5Ftoken=s3cret", b"/ws?access%5Ftoken=REDACTED"),
            (b"/ws?a=1;Access_token=x;access_tok%65n=s3cret", b"/ws?a=1;Access_token=x;"),
            (b"/ws?access_token=s3cret#frag", b"/ws?access_token=REDACTED#frag"),
            (b"/ws?access_token", b"/ws?access_token"),
            (b"/ws", b"/ws"),
        ):
            self.assertEqual(redact(uri)[: len(expected)], expected, uri)
            self.assertNotIn(b"s3cret", redact(uri), uri)

    def test_access_log_line_redacts_the_referer(self) -> None:
        """The access log hides a token in the URI and in the Referer header."""
        request = DummyRequest([b"api", b"v1", b"events"])
        request.uri = b"/api/v1/events?access_token=s3cret"
        request.code = 200
        request.sentLength = 0
        request.clientproto = b"HTTP/1.1"
        request.requestHeaders.addRawHeader(b"referer", b"http://h/dash?access_token=s3cret")
        line = access_log_line("[now]", request)
        self.assertNotIn("s3cret", line)
        self.assertIn("/dash?access_token=REDACTED", line)


class RestTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.hub = Hub(reactor, replay=50)
        self.state = household()
        self.hub.set_snapshot_provider(self.state.snapshot)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)

    async def start(self, **settings: Any) -> str:
        _, host, port = await start_api(self, self.hub, self.state, **settings)
        return f"http://{host}:{port}/api/v1"

    async def call(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, Any, Any]:
        response = await self.http.request(method, url, headers=headers, data=body or None)
        content = await response.content()
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        parsed = json.loads(content) if kind.startswith(b"application/json") else content
        return response.code, parsed, response.headers

    async def test_health_open_and_secret_free(self) -> None:
        """Health needs no token and reports status, its reasons, speakers and uptime only."""
        base = await self.start(tokens=(READER,))
        code, body, _ = await self.call("GET", f"{base}/health")
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "degraded")
        self.assertEqual(body["reasons"], ["1 speaker(s) offline"])
        self.assertEqual(
            body["speakers"],
            {"online": 1, "offline": 1, "asleep": 0, "upnp_disabled": 0, "unknown": 0},
        )
        self.assertGreaterEqual(body["uptime"], 0)
        self.assertNotIn("RINCON", json.dumps(body))

    async def test_snapshot_requires_token(self) -> None:
        """Snapshot: 401 with a challenge and no data without a token, 200 with one."""
        base = await self.start(tokens=(READER,))
        publish(self.hub, 2)
        for headers in (None, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
            code, body, head = await self.call("GET", f"{base}/snapshot", headers)
            self.assertEqual(code, 401)
            self.assertEqual(body["error"]["code"], "unauthorized")
            self.assertTrue(head.getRawHeaders(b"www-authenticate")[0].startswith(b"Bearer"))
            self.assertNotIn("RINCON", json.dumps(body))
        code, body, _ = await self.call("GET", f"{base}/snapshot", READ)
        self.assertEqual((code, body["type"], body["last_id"]), (200, "snapshot", 2))

    async def test_challenges_name_the_realm_and_an_invalid_token(self) -> None:
        """A 401 challenges with realm "sonosd", adding error="invalid_token" only when a
        token (header or query) was presented."""
        base = await self.start(tokens=(READER,))
        challenges = []
        for url, headers in (
            (f"{base}/snapshot", None),
            (f"{base}/snapshot", {"Authorization": "Bearer nope"}),
            (f"{base}/snapshot?access_token=nope", None),
        ):
            code, _, head = await self.call("GET", url, headers)
            self.assertEqual(code, 401)
            challenges.append(head.getRawHeaders(b"www-authenticate"))
        self.assertEqual(
            challenges,
            [
                [b'Bearer realm="sonosd"'],
                [b'Bearer realm="sonosd", error="invalid_token"'],
                [b'Bearer realm="sonosd", error="invalid_token"'],
            ],
        )

    async def test_open_on_loopback_without_tokens(self) -> None:
        """On loopback with no token configured, reads need no token."""
        base = await self.start()
        code, body, _ = await self.call("GET", f"{base}/speakers")
        self.assertEqual(code, 200)
        self.assertEqual([s["name"] for s in body["speakers"]], ["Kitchen", "Office"])

    async def test_require_auth_explicit(self) -> None:
        """require_auth=True refuses even on loopback when no token is configured."""
        base = await self.start(require_auth=True)
        code, _, _ = await self.call("GET", f"{base}/speakers")
        self.assertEqual(code, 401)

    async def test_speaker_by_uid_or_room(self) -> None:
        """A speaker is found by uid, by room name in any case or by address; unknown ones
        are 404."""
        base = await self.start()
        code, body, _ = await self.call("GET", f"{base}/speakers/{KITCHEN.uid}")
        self.assertEqual((code, body["name"]), (200, "Kitchen"))
        self.assertEqual(
            body["services"]["AVTransport"]["variables"], {"transport_state": "PLAYING"}
        )
        code, body, _ = await self.call("GET", f"{base}/speakers/office")
        self.assertEqual((code, body["uid"]), (200, OFFICE.uid))
        code, body, _ = await self.call("GET", f"{base}/speakers/{OFFICE.host}")
        self.assertEqual((code, body["uid"]), (200, OFFICE.uid))
        code, body, _ = await self.call("GET", f"{base}/speakers/Garage")
        self.assertEqual((code, body["error"]["code"]), (404, "unknown_speaker"))

    async def test_groups(self) -> None:
        """Groups are listed (empty before the first topology)."""
        base = await self.start()
        code, body, _ = await self.call("GET", f"{base}/groups")
        self.assertEqual((code, body), (200, {"groups": []}))

    async def test_metrics(self) -> None:
        """Metrics are Prometheus text with the hub and client counters (read scope)."""
        base = await self.start(tokens=(READER,))
        publish(self.hub, 3)
        code, _, _ = await self.call("GET", f"{base}/metrics")
        self.assertEqual(code, 401)
        code, text, head = await self.call("GET", f"{base}/metrics", READ)
        self.assertEqual(code, 200)
        self.assertTrue(head.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        self.assertIn(b"sonosd_messages_published_total 3.0", text)
        self.assertIn(b'sonosd_api_clients{channel="sse"} 0.0', text)
        self.assertIn(b'sonosd_speakers{state="offline"} 1.0', text)
        self.assertIn(b'sonosd_api_auth_failures_total{status="401"} 1.0', text)

    async def test_scope_refusals_are_counted_as_403(self) -> None:
        """A valid token refused for its scope adds one to the 403 series of
        sonosd_api_auth_failures_total on /metrics; cross-origin and Host refusals add none."""
        name = "sonosd_api_auth_failures_total"
        _, host, port = await start_api(
            self, self.hub, self.state, RecordingController(), tokens=(READER,)
        )
        base = f"http://{host}:{port}/api/v1"
        before = await self.metric(base, name, status="403")
        code, _, _ = await self.call("POST", f"{base}/speakers/Kitchen/play", READ)
        self.assertEqual(code, 403)
        cross_origin = {**READ, "Origin": "http://evil.example"}
        code, body, _ = await self.call("POST", f"{base}/speakers/Kitchen/play", cross_origin)
        self.assertEqual(code, 403)
        # It names what it compared, so that a reverse proxy's missing Host shows.
        self.assertEqual(
            body["error"]["message"],
            'cross-origin request refused: Origin "http://evil.example" is neither this '
            f'API\'s Host "{host}:{port}" nor listed in api.cors_origins (behind a reverse '
            "proxy, pass the browser's Host header on)",
        )
        self.assertEqual(await self.metric(base, name, status="403"), before + 1)
        self.assertEqual(await self.metric(base, name, status="401"), 0)
        # The Host check guards an open API only (DNS rebinding).
        open_base = await self.start()
        code, body, _ = await self.call("GET", f"{open_base}/snapshot", {"Host": "evil.example"})
        self.assertEqual(code, 403)
        self.assertEqual(
            body["error"]["message"],
            'unexpected Host header "evil.example": an API open without tokens takes an '
            "address, localhost or the host of an api.cors_origins entry",
        )
        self.assertEqual(await self.metric(open_base, name, status="403"), 0)

    async def test_resets_are_counted_per_channel(self) -> None:
        """A client resuming from an id the ring no longer holds gets a reset, and
        sonosd_api_resets_total on /metrics goes up for its channel only."""
        _, host, port = await start_api(self, self.hub, self.state)
        base = f"http://{host}:{port}/api/v1"
        publish(self.hub, 80)
        name = "sonosd_api_resets_total"
        self.assertEqual(await self.metric(base, name, channel="sse"), 0)
        sse = SseClient(sse_request("/api/v1/events", {"Last-Event-ID": f"{self.hub.run}:5"}))
        await connect_raw(host, port, sse, self)
        await wait(lambda: [e.get("event") for e in sse.events()][1:] == ["reset", "snapshot"])
        self.assertEqual(await self.metric(base, name, channel="sse"), 1)
        self.assertEqual(await self.metric(base, name, channel="websocket"), 0)
        ws = await connect_ws(self, host, port, f"last_id=5&run={self.hub.run}")
        await wait(lambda: [m["type"] for m in ws.messages] == ["reset", "snapshot"])
        self.assertEqual(await self.metric(base, name, channel="websocket"), 1)
        self.assertEqual(await self.metric(base, name, channel="sse"), 1)

    async def test_frames_sent_count_messages_handed_to_clients(self) -> None:
        """sonosd_api_frames_sent_total{channel} counts the messages handed to that channel's
        clients (docs/api.md): one per client and message its filter accepts, the messages a
        resuming client is replayed included; snapshots and resets are not messages."""
        _, host, port = await start_api(self, self.hub, self.state)
        base = f"http://{host}:{port}/api/v1"
        name = "sonosd_api_frames_sent_total"
        everything = SseClient(sse_request("/api/v1/events"))
        office = SseClient(sse_request("/api/v1/events?rooms=Office"))
        for client in (everything, office):
            await connect_raw(host, port, client, self)
            await wait(lambda c=client: len(c.messages()) == 1, "the snapshot")
        first = publish(self.hub, 2, KITCHEN) + publish(self.hub, 1, OFFICE)
        await wait(lambda: len(everything.messages()) == 4 and len(office.messages()) == 2)
        self.assertEqual(await self.metric(base, name, channel="sse"), 3 + 1)
        self.assertEqual(await self.metric(base, name, channel="websocket"), 0)
        ws = await connect_ws(self, host, port, f"last_id={self.hub.run}:{first[0]}")
        await wait(lambda: len(ws.messages) == 2, "the two replayed messages")
        self.assertEqual([m["id"] for m in ws.messages], first[1:])
        self.assertEqual(await self.metric(base, name, channel="websocket"), 2)
        self.assertEqual(await self.metric(base, name, channel="sse"), 4)

    async def metric(self, base: str, name: str, **labels: str) -> float:
        """The value of the sample ``name{labels}`` on ``/metrics`` (read with a read token
        when the API requires one)."""
        code, text, _ = await self.call("GET", f"{base}/metrics", READ)
        self.assertEqual(code, 200)
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        raise AssertionError(f"no sample {name}{labels} on /metrics")

    async def test_unknown_routes(self) -> None:
        """Unknown paths are JSON 404s."""
        base = await self.start()
        code, body, _ = await self.call("GET", f"{base}/nothing")
        self.assertEqual((code, body["error"]["code"]), (404, "not_found"))

    async def test_no_state_change_over_get(self) -> None:
        """GET on a command is 405 and runs nothing; POST on a read route is 405."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        base = f"http://{host}:{port}/api/v1"
        code, _, head = await self.call("GET", f"{base}/speakers/Kitchen/play")
        self.assertEqual((code, head.getRawHeaders(b"allow")), (405, [b"POST"]))
        code, _, _ = await self.call("POST", f"{base}/snapshot")
        self.assertEqual(code, 405)
        self.assertEqual(controller.calls, [])

    async def test_other_methods_are_json_405_with_allow(self) -> None:
        """TRACE, PUT and DELETE on any route under /api/v1 are a JSON 405
        ``method_not_allowed`` whose ``Allow`` names what the route takes, not that method."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        base = f"http://{host}:{port}/api/v1"
        routes = {
            "health": b"GET",
            "access": b"GET",
            "snapshot": b"GET",
            "speakers": b"GET",
            "speakers/Kitchen": b"GET",
            "speakers/Kitchen/volume": b"POST",
            "groups": b"GET",
            "metrics": b"GET",
            "events": b"GET",
            "ws": b"GET",
        }
        for route, allowed in routes.items():
            for method in ("TRACE", "PUT", "DELETE"):
                code, body, head = await self.call(method, f"{base}/{route}")
                where = f"{method} /api/v1/{route}"
                self.assertEqual((code, body["error"]["code"]), (405, "method_not_allowed"), where)
                [allow] = head.getRawHeaders(b"allow")
                methods = [name.strip() for name in allow.split(b",")]
                self.assertIn(allowed, methods, where)
                self.assertNotIn(method.encode(), methods, where)
        self.assertEqual(controller.calls, [])

    async def test_commands(self) -> None:
        """POST runs the command with its JSON args; errors carry their status and code."""
        controller = RecordingController()
        _, host, port = await start_api(
            self, self.hub, self.state, controller, tokens=(READER, ADMIN)
        )
        base = f"http://{host}:{port}/api/v1/speakers"
        json_headers = {**CONTROL, "Content-Type": "application/json"}
        code, body, _ = await self.call(
            "POST", f"{base}/Kitchen/volume", json_headers, b'{"volume": 5}'
        )
        self.assertEqual((code, body), (200, {"result": {"ok": True}}))
        code, body, _ = await self.call("POST", f"{base}/Kitchen/play", CONTROL)
        self.assertEqual(code, 200)
        code, body, _ = await self.call("POST", f"{base}/Kitchen/sleep", CONTROL)
        self.assertEqual((code, body["error"]["code"]), (503, "offline"))
        code, body, _ = await self.call("POST", f"{base}/Kitchen/crash", CONTROL)
        self.assertEqual((code, body["error"]["code"]), (500, "internal"))
        self.assertNotIn("bug", json.dumps(body))
        self.flushLoggedErrors(RuntimeError)
        code, body, _ = await self.call("POST", f"{base}/Kitchen/volume", json_headers, b"[1]")
        self.assertEqual((code, body["error"]["code"]), (400, "bad_request"))
        code, body, _ = await self.call(
            "POST", f"{base}/Kitchen/volume", {**CONTROL, "Content-Type": "text/plain"}, b"{}"
        )
        self.assertEqual(code, 415)
        self.assertEqual(
            [call[:2] for call in controller.calls],
            [
                ("Kitchen", "volume"),
                ("Kitchen", "play"),
                ("Kitchen", "sleep"),
                ("Kitchen", "crash"),
            ],
        )
        self.assertEqual(controller.calls[0][2], {"volume": 5})

    async def test_command_scope(self) -> None:
        """A read token gets 403 insufficient_scope on commands; nothing runs."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller, tokens=(READER,))
        code, body, head = await self.call(
            "POST", f"http://{host}:{port}/api/v1/speakers/Kitchen/play", READ
        )
        self.assertEqual((code, body["error"]["code"]), (403, "forbidden"))
        self.assertIn(b"insufficient_scope", head.getRawHeaders(b"www-authenticate")[0])
        self.assertEqual(controller.calls, [])

    async def test_commands_not_available(self) -> None:
        """Without a controller, commands answer 503 not_available."""
        base = await self.start()
        code, body, _ = await self.call("POST", f"{base}/speakers/Kitchen/play")
        self.assertEqual((code, body["error"]["code"]), (503, "not_available"))

    async def test_paths_below_a_route_are_json_404s(self) -> None:
        """A path below a route (``/health/x``, ``/events/kitchen``, a command with more
        segments) is an unknown path, a JSON 404 not_found: it neither answers the route nor
        runs the command."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        base = f"http://{host}:{port}/api/v1"
        for method, path in (
            ("GET", "/health/x"),
            ("GET", "/events/kitchen"),
            ("GET", "/snapshot/speakers"),
            ("GET", "/ws/x"),
            ("POST", "/speakers/Kitchen/volume/extra"),
            ("GET", "/speakers/Kitchen/volume/extra"),
        ):
            code, body, _ = await self.call(method, base + path)
            self.assertEqual((code, body["error"]["code"]), (404, "not_found"), path)
        self.assertEqual(controller.calls, [])

    async def test_command_hook(self) -> None:
        """A custom command factory receives the speaker and command of the path."""
        from sonosd.api.resources import ErrorResource

        seen: list[tuple[str, str]] = []

        def commands(speaker: str, command: str) -> ErrorResource:
            seen.append((speaker, command))
            return ErrorResource(418, "teapot", "hooked")

        from sonosd.api.site import ApiService
        from sonosd.config import ApiConfig

        service = ApiService(
            reactor,
            ApiConfig(listen="tcp:0:interface=127.0.0.1"),
            self.hub,
            self.state,
            commands=commands,
        )
        service.startService()
        self.addCleanup(service.stopService)
        port = (await service.listening).getHost().port
        code, _, _ = await self.call(
            "POST", f"http://127.0.0.1:{port}/api/v1/speakers/Living%20Room/play"
        )
        self.assertEqual((code, seen), (418, [("Living Room", "play")]))

    async def test_cross_origin_guards(self) -> None:
        """Cross-origin POSTs and rebinding Host names are refused on an open API; an Origin
        is the API's own when its host and port are the Host asked, whatever its scheme (a
        page served over HTTPS by a TLS-terminating proxy in front of plain HTTP)."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        base = f"http://{host}:{port}/api/v1"
        for origin in ("http://evil.example", f"http://{host}:{port + 1}", f"https://{host}"):
            code, _, _ = await self.call(
                "POST", f"{base}/speakers/Kitchen/play", {"Origin": origin}
            )
            self.assertEqual(code, 403, origin)
        code, _, _ = await self.call("GET", f"{base}/snapshot", {"Host": "evil.example:8080"})
        self.assertEqual(code, 403)
        self.assertEqual(controller.calls, [])
        for origin in (f"http://{host}:{port}", f"https://{host}:{port}"):
            code, _, _ = await self.call(
                "POST", f"{base}/speakers/Kitchen/play", {"Origin": origin}
            )
            self.assertEqual(code, 200, origin)
        self.assertEqual([call[:2] for call in controller.calls], [("Kitchen", "play")] * 2)

    async def test_forwarded_headers_are_not_read(self) -> None:
        """``X-Forwarded-*`` headers are not read (docs/api.md): a forwarded Host or scheme
        that would make a foreign Origin the API's own, or a rebinding Host a local one,
        changes nothing; the refusal names the Host sonosd saw."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        base = f"http://{host}:{port}/api/v1"
        forwarded = {
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "http",
            "X-Forwarded-Port": "80",
            "X-Forwarded-For": "127.0.0.1",
        }
        code, body, _ = await self.call(
            "POST",
            f"{base}/speakers/Kitchen/play",
            {"Origin": "http://evil.example", **forwarded},
        )
        self.assertEqual(code, 403)
        self.assertIn(f'API\'s Host "{host}:{port}"', body["error"]["message"])
        code, body, _ = await self.call(
            "GET",
            f"{base}/snapshot",
            {"Host": "evil.example", "X-Forwarded-Host": f"{host}:{port}"},
        )
        self.assertEqual(code, 403)
        self.assertIn('unexpected Host header "evil.example"', body["error"]["message"])
        self.assertEqual(controller.calls, [])

    async def test_browser_guards_follow_origins_and_tokens(self) -> None:
        """An open API answers the Host of a listed origin and refuses others; once tokens
        are required any Host is answered, but a cross-origin POST is still 403 whatever
        the token; ``*`` lists every origin."""
        controller = RecordingController()
        base = await self.start(cors_origins=("http://ha.lan:8123",))
        code, _, _ = await self.call("GET", f"{base}/speakers", {"Host": "ha.lan:8080"})
        self.assertEqual(code, 200)
        code, _, _ = await self.call("GET", f"{base}/speakers", {"Host": "other.lan:8080"})
        self.assertEqual(code, 403)
        _, host, port = await start_api(
            self, self.hub, self.state, controller, tokens=(READER, ADMIN)
        )
        guarded = f"http://{host}:{port}/api/v1"
        code, _, _ = await self.call(
            "GET", f"{guarded}/speakers", {**READ, "Host": "sonos.example:8080"}
        )
        self.assertEqual(code, 200)
        code, body, _ = await self.call(
            "POST", f"{guarded}/speakers/Kitchen/play", {**CONTROL, "Origin": "http://evil.example"}
        )
        self.assertEqual((code, body["error"]["code"]), (403, "forbidden"))
        self.assertEqual(controller.calls, [])
        _, host, port = await start_api(self, self.hub, self.state, controller, cors_origins=("*",))
        anyone = f"http://{host}:{port}/api/v1"
        code, _, head = await self.call(
            "POST", f"{anyone}/speakers/Kitchen/play", {"Origin": "http://any.example"}
        )
        self.assertEqual(code, 200)
        self.assertEqual(
            head.getRawHeaders(b"access-control-allow-origin"), [b"http://any.example"]
        )
        self.assertEqual([call[:2] for call in controller.calls], [("Kitchen", "play")])

    async def test_cors(self) -> None:
        """Listed origins get CORS headers and preflight answers; others get none."""
        base = await self.start(cors_origins=("http://ha.lan:8123",))
        code, _, head = await self.call("GET", f"{base}/speakers", {"Origin": "http://ha.lan:8123"})
        self.assertEqual(
            head.getRawHeaders(b"access-control-allow-origin"), [b"http://ha.lan:8123"]
        )
        code, _, head = await self.call(
            "OPTIONS", f"{base}/speakers/Kitchen/play", {"Origin": "http://ha.lan:8123"}
        )
        self.assertEqual(code, 204)
        self.assertIn(b"Authorization", head.getRawHeaders(b"access-control-allow-headers")[0])
        code, _, head = await self.call("GET", f"{base}/speakers", {"Origin": "http://other"})
        self.assertIsNone(head.getRawHeaders(b"access-control-allow-origin"))

    async def test_cors_preflight_allows_the_headers_clients_send(self) -> None:
        """A listed origin's preflight allows exactly Authorization, Content-Type and
        Last-Event-ID, on commands and on the event stream alike."""
        base = await self.start(cors_origins=("http://ha.lan:8123",))
        for path in ("/speakers/Kitchen/play", "/events"):
            code, _, head = await self.call(
                "OPTIONS",
                base + path,
                {
                    "Origin": "http://ha.lan:8123",
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization, last-event-id",
                },
            )
            self.assertEqual(code, 204, path)
            (allowed,) = head.getRawHeaders(b"access-control-allow-headers")
            self.assertEqual(
                sorted(name.strip().lower() for name in allowed.decode().split(",")),
                ["authorization", "content-type", "last-event-id"],
                path,
            )

    async def test_stop_closes_idle_connections(self) -> None:
        """stopService closes kept-alive HTTP connections and stops listening."""
        service, host, port = await start_api(self, self.hub, self.state)
        raw = RawClient(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await connect_raw(host, port, raw, self)
        await wait(lambda: raw.data.endswith(b"}"), "the health answer")
        await service.stopService()
        await raw.closed
        self.assertIsNone(service.port)

    async def test_large_body_refused_before_auth(self) -> None:
        """A body longer than any route accepts gets 413 at once, token or not, and the
        connection closes without the body being read."""
        _, host, port = await start_api(
            self, self.hub, self.state, tokens=(Token("ha", "a" * 32, frozenset({"read"})),)
        )
        head = (
            b"POST /api/v1/speakers/Kitchen/volume HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n"
        )
        raw = RawClient(head + b"x" * 1000)
        await connect_raw(host, port, raw, self)
        await raw.closed
        self.assertTrue(raw.data.startswith(b"HTTP/1.1 413 "), raw.data)

    async def test_large_chunked_body_refused(self) -> None:
        """A chunked body that grows past the limit is cut off with 413."""
        _, host, port = await start_api(self, self.hub, self.state)
        chunk = b"%x\r\n%s\r\n" % (40_000, b"y" * 40_000)
        raw = RawClient(
            b"POST /api/v1/speakers/Kitchen/volume HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3
        )
        await connect_raw(host, port, raw, self)
        await raw.closed
        self.assertTrue(raw.data.startswith(b"HTTP/1.1 413 "), raw.data)

    async def test_requests_twisted_web_cannot_read_get_a_json_400(self) -> None:
        """A request line or header over 16 KiB, a head over 16 KiB in all or of over 500
        headers, a garbled request line, a raw byte over 0x7f in the target, a malformed
        header, a bad Content-Length and a garbled chunked body each get a JSON 400
        ``bad_request`` saying which (docs/api.md; not twisted.web's bare 400, nor a silent
        close), counted as ``rest/malformed``."""
        site, host, port = await start_api(self, self.hub, self.state)
        ok = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        requests = {
            "a line of the request head is over 16384 bytes": [
                b"GET /api/v1/snapshot?last_id=" + b"9" * 17_000 + b" HTTP/1.1\r\n\r\n",
                ok + b"X-Long: " + b"a" * 17_000 + b"\r\n\r\n",
            ],
            "its head is over 16384 bytes": [
                ok + b"".join(b"X-%d: %s\r\n" % (n, b"a" * 1000) for n in range(20)) + b"\r\n",
            ],
            "it has more than 500 headers": [
                ok + b"".join(b"X-%d: a\r\n" % n for n in range(501)) + b"\r\n",
            ],
            "its request line is not a method, a target of ASCII characters": [
                b"NOT HTTP AT ALL\r\n\r\n",
                b"GET /api/v1/speakers/K\xfcche HTTP/1.1\r\n\r\n",
            ],
            "a header line is not a name (a token), a colon": [
                ok + b"No colon here\r\n\r\n",
                ok + b"Bad Name: x\r\n\r\n",
            ],
            "its Content-Length or Transfer-Encoding is not valid": [
                ok + b"Content-Length: twelve\r\n\r\n",
            ],
            "its chunked body is not well formed": [
                b"POST /api/v1/speakers/Kitchen/play HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
            ],
        }
        for message, raws in requests.items():
            for data in raws:
                raw = RawClient(data)
                await connect_raw(host, port, raw, self)
                await raw.closed
                head, _, body = raw.data.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 400 "), raw.data[:200])
                self.assertIn(b"content-type: application/json", head.lower())
                error = json.loads(body)["error"]
                self.assertEqual(error["code"], "bad_request")
                self.assertIn(message, error["message"])
        assert site.metrics is not None
        self.assertEqual(site.metrics.client_errors["rest", "malformed"], 10)


class TwistedInternalsTests(SynchronousTestCase):
    def test_the_installed_twisted_has_what_the_named_400s_use(self) -> None:
        """The JSON 400s naming what is wrong hook into parts of twisted.web's
        ``HTTPChannel`` that Twisted does not promise (sonosd does not pin Twisted): a Twisted
        that renames one fails here, not silently in front of users (where the API would
        answer twisted.web's bare 400 instead)."""
        from twisted.web.http import HTTPChannel

        missing = [name for name in TWISTED_INTERNALS if not hasattr(HTTPChannel, name)]
        self.assertEqual(missing, [])


def answered(data: bytes) -> bool:
    """Whether ``data`` holds an HTTP answer's head and its whole Content-Length body."""
    head, found, body = data.partition(b"\r\n\r\n")
    if not found:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


class StreamingRoutesInOpenApiTests(TestCase):
    """docs/openapi.yaml lists what the streaming routes answer as docs/api.md says."""

    timeout = 30

    async def test_streaming_refusals_are_documented(self) -> None:
        """An unknown parameter (400 bad_filter), no token (401) and a read-less token (403)
        on /events and on the /ws upgrade get statuses openapi.yaml documents for them."""
        with (ROOT / "docs" / "openapi.yaml").open(encoding="utf-8") as stream:
            paths = yaml.safe_load(stream)["paths"]
        hub = Hub(reactor, replay=50)
        state = household()
        hub.set_snapshot_provider(state.snapshot)
        writer = Token("writer", "writer-secret", frozenset({"control"}))
        _, host, port = await start_api(self, hub, state, tokens=(READER, writer))
        upgrade = (
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        )
        cases = [
            ("?rooms=Kitchen&bogus=1", "Authorization: Bearer read-secret\r\n", 400),
            ("", "", 401),
            ("", "Authorization: Bearer writer-secret\r\n", 403),
        ]
        for route, extra in (("events", ""), ("ws", upgrade)):
            for query, credential, status in cases:
                raw = RawClient(
                    f"GET /api/v1/{route}{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"{extra}{credential}\r\n".encode()
                )
                await connect_raw(host, port, raw, self)
                await wait(lambda r=raw: answered(r.data), "the whole answer")
                where = f"/{route}{query} {credential.strip()}"
                self.assertTrue(raw.data.startswith(b"HTTP/1.1 %d " % status), (where, raw.data))
                if status == 400:
                    self.assertIn(b'"bad_filter"', raw.data, where)
                    self.assertIn(b"bogus", raw.data, where)
                self.assertIn(str(status), paths[f"/{route}"]["get"]["responses"], where)


class OpenApiTests(SynchronousTestCase):
    def test_every_route_is_documented(self) -> None:
        """docs/openapi.yaml parses and documents every child of /api/v1."""
        import os

        import yaml

        from sonosd.api.site import ApiService
        from sonosd.config import ApiConfig

        path = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openapi.yaml")
        with open(path) as stream:
            spec = yaml.safe_load(stream)
        self.assertEqual(spec["openapi"][:2], "3.")
        service = ApiService(reactor, ApiConfig(), Hub(reactor), household())
        served = {"/" + name.decode() for name in service.v1.children}
        self.assertLessEqual(served, set(spec["paths"]))
        self.assertIn("/speakers/{id}/{command}", spec["paths"])


class Boom(Resource):
    """A route whose rendering raises."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        raise RuntimeError("kaboom")


class OperationsRouteTests(TestCase):
    """/api/v1/ready and /api/v1/diagnostics, JSON errors under /api, the access log."""

    timeout = 30

    def setUp(self) -> None:
        self.hub = Hub(reactor, replay=50)
        self.state = household()
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)
        self.readiness: dict[str, Any] = {
            "ready": False,
            "reasons": ["Kitchen (127.0.0.2) is offline (timeout)"],
            "speakers": {"total": 1, "offline": 1},
        }

    async def start(self, **settings: Any) -> tuple[ApiService, str]:
        settings.setdefault("listen", "tcp:0:interface=127.0.0.1")
        service = ApiService(
            reactor,
            ApiConfig(**settings),
            self.hub,
            self.state,
            grace=1.0,
            readiness=lambda: self.readiness,
            diagnostics=lambda: {"speakers": [], "versions": {"sonosd": "0.1.0"}},
        )
        service.startService()
        port = await service.listening
        self.addCleanup(service.stopService)
        address: Any = port.getHost()
        return service, f"http://{address.host}:{address.port}"

    async def get(self, url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = await self.http.get(url, headers=headers)
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        content = await response.content()
        self.assertTrue(kind.startswith(b"application/json"), (kind, content))
        return response.code, json.loads(content)

    async def test_ready_is_open_and_shows_reasons_to_readers_only(self) -> None:
        """/ready needs no token: 503 while not ready, the reasons only with a read token."""
        _, base = await self.start(tokens=(READER,))
        code, body = await self.get(f"{base}/api/v1/ready")
        self.assertEqual((code, body["status"]), (503, "not_ready"))
        self.assertEqual(body["reasons"], ["1 problem(s); a read token shows them"])
        code, body = await self.get(f"{base}/api/v1/ready", READ)
        self.assertEqual(body["reasons"], ["Kitchen (127.0.0.2) is offline (timeout)"])
        self.readiness = {"ready": True, "reasons": [], "speakers": {"total": 1}}
        code, body = await self.get(f"{base}/api/v1/ready")
        self.assertEqual(
            (code, body), (200, {"status": "ready", "speakers": {"total": 1}, "reasons": []})
        )

    async def test_diagnostics_needs_read_scope(self) -> None:
        """/diagnostics is behind the token check like every other read."""
        _, base = await self.start(tokens=(READER,))
        code, body = await self.get(f"{base}/api/v1/diagnostics")
        self.assertEqual(code, 401)
        code, body = await self.get(f"{base}/api/v1/diagnostics", READ)
        self.assertEqual((code, body["versions"]), (200, {"sonosd": "0.1.0"}))

    async def test_every_path_under_api_answers_json(self) -> None:
        """/api, /api/ and /api/anything are JSON 404s, not Twisted's HTML pages."""
        _, base = await self.start()
        for path in ("/api", "/api/", "/api/v2/health", "/api/v1/nothing/here"):
            code, body = await self.get(f"{base}{path}")
            self.assertEqual((code, body["error"]["code"]), (404, "not_found"), path)

    async def test_unhandled_exception_is_a_json_500_logged_once(self) -> None:
        """A route that raises answers a JSON 500; the traceback is logged once."""
        from twisted.logger import globalLogPublisher

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        service, base = await self.start()
        service.mount(b"boom", Boom())
        code, body = await self.get(f"{base}/api/v1/boom")
        self.assertEqual((code, body["error"]["code"]), (500, "internal"))
        self.assertNotIn("kaboom", json.dumps(body))
        failures = [e for e in events if e.get("log_failure") is not None]
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["path"], "/api/v1/boom")
        self.flushLoggedErrors(RuntimeError)

    async def test_access_log_is_debug_and_redacted(self) -> None:
        """Each request is one access log line at debug level, without its token."""
        from twisted.logger import LogLevel, globalLogPublisher

        events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        _, base = await self.start(tokens=(READER,))
        await self.get(f"{base}/api/v1/health?access_token={READER.secret}")
        [line] = [e for e in events if e.get("log_namespace") == "sonosd.api.access"]
        self.assertEqual(line["log_level"], LogLevel.debug)
        self.assertIn("access_token=REDACTED", line["line"])
        legacy = [
            e.get("log_text")
            for e in events
            if e.get("log_namespace") == "log_legacy" and "GET /api/v1/health" in str(e)
        ]
        self.assertEqual(legacy, [])

    async def test_reconfigure_replaces_tokens(self) -> None:
        """A reload's new tokens apply to the next request; the old ones stop working."""
        service, base = await self.start(tokens=(READER,))
        other = Token("other", "o" * 20, frozenset({"read"}))
        service.reconfigure(ApiConfig(tokens=(other,)))
        code, _ = await self.get(f"{base}/api/v1/snapshot", READ)
        self.assertEqual(code, 401)
        code, _ = await self.get(
            f"{base}/api/v1/snapshot", {"Authorization": f"Bearer {other.secret}"}
        )
        self.assertEqual(code, 200)

    async def test_reconfigure_replaces_origins(self) -> None:
        """A reload's new CORS origins apply to the next request (docs/design.md, SIGHUP):
        the new origin gets CORS headers and its Host is answered, the old one no longer."""
        old, new = "http://old.lan:8123", "http://new.lan:8123"
        service, base = await self.start(cors_origins=(old,))

        async def seen(origin: str) -> tuple[int, int, list[bytes] | None]:
            """The status of a request with ``origin`` as its Origin, of one with its host as
            the Host, and the CORS header the first got."""
            url = f"{base}/api/v1/snapshot"
            response = await self.http.get(url, headers={"Origin": origin})
            await response.content()
            host = origin.split("//")[1].split(":")[0] + ":8080"
            by_host = await self.http.get(url, headers={"Host": host})
            await by_host.content()
            allowed = response.headers.getRawHeaders(b"access-control-allow-origin")
            return response.code, by_host.code, allowed

        self.assertEqual(await seen(old), (200, 200, [old.encode()]))
        self.assertEqual(await seen(new), (200, 403, None))
        service.reconfigure(ApiConfig(cors_origins=(new,)))
        self.assertEqual(await seen(new), (200, 200, [new.encode()]))
        self.assertEqual(await seen(old), (200, 403, None))


class AccessTests(TestCase):
    """``GET /api/v1/access``: what a token may do, answered without refusing."""

    timeout = 20

    def setUp(self) -> None:
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool))
        self.addCleanup(pool.closeCachedConnections)

    async def access(self, base: str, headers: dict[str, str] | None = None) -> Any:
        response = await self.http.get(f"{base}/access", headers=headers)
        self.assertEqual(response.code, 200)
        return json.loads(await response.content())

    async def test_tells_scopes_endpoints_and_commands(self) -> None:
        """No token: not granted (200, no detail); a read token: read only; an admin token:
        both scopes, the endpoints and the command names."""
        _, host, port = await start_api(
            self, Hub(reactor), household(), RecordingController(), tokens=(READER, ADMIN)
        )
        base = f"http://{host}:{port}/api/v1"
        body = await self.access(base)
        self.assertEqual(
            body,
            {
                "auth_required": True,
                "granted": False,
                "token": None,
                "scopes": [],
                "reason": "a valid bearer token is required",
            },
        )
        wrong = await self.access(base, {"Authorization": "Bearer nope"})
        self.assertEqual(wrong["granted"], False)
        self.assertEqual(wrong["reason"], "the token is not valid here")
        reader = await self.access(base, READ)
        self.assertEqual((reader["token"], reader["scopes"]), ("reader", ["read"]))
        admin = await self.access(base, CONTROL)
        self.assertEqual(admin["scopes"], ["control", "read"])
        self.assertIn("snapshot", admin["endpoints"])
        self.assertIn("art", admin["endpoints"])
        self.assertIn("volume", admin["commands"])

    async def test_open_api_and_no_controller(self) -> None:
        """An open API grants everything; without a controller there are no commands."""
        _, host, port = await start_api(self, Hub(reactor), household())
        body = await self.access(f"http://{host}:{port}/api/v1")
        self.assertEqual((body["auth_required"], body["granted"]), (False, True))
        self.assertEqual(body["commands"], [])
