"""docs/openapi.yaml is the REST API's contract, checked on a whole daemon (``SonosdService``)
following its simulated household, with tokens on.

Every documented answer of every path but the streaming ones (/events and /ws have their own
audit) is produced here end to end, or named below as produced by another test; each answer
has a status the spec lists for its path and method, the content type it lists for that status
and a body its schema accepts (jsonschema, on the spec's schemas). The other way round, the
daemon serves exactly the spec's paths, and only the methods the spec lists for them.

The command route's contract is checked beside: a valid body of every command runs and its
result matches the answer schema and the keys ``CommandResult`` names; the examples are
valid; the error codes are docs/control.md's. (The argument bounds, choices and defaults are
held to the parser in tests/control/test_commandargs.py.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import attrs
import jsonschema
from twisted.trial.unittest import TestCase
from twisted.web.http_headers import Headers

from sonosd.api.commands import MAX_BODY
from tests.control.test_controller_daemon import Daemon, start_daemon
from tests.daemon_helpers import until
from tests.paths import ROOT, openapi_spec

SPEC: dict[str, Any] = openapi_spec()

#: The paths this module audits (the streaming ones are audited in tests/api/test_sse.py,
#: test_ws.py and test_site.py's ``StreamingRoutesInOpenApiTests``).
STREAMING = ("/events", "/ws")
AUDITED = {path: item for path, item in SPEC["paths"].items() if path not in STREAMING}
METHODS = ("get", "put", "post", "delete", "patch")

#: Documented answers another test produces end to end, rather than
#: ``test_every_documented_answer`` (they need a fault whose timing a whole daemon cannot
#: hold still: a hung speaker, a full fetch queue, an unhandled exception; or an API open
#: without tokens). Each names the test; ``test_the_named_tests_exist`` checks it does.
ELSEWHERE: dict[tuple[str, str, str], str] = {
    ("/art", "get", "503"): "tests/api/test_art.py::test_too_many_waiting_is_busy_and_timeouts",
    ("/art", "get", "504"): "tests/api/test_art.py::test_hung_speaker_times_out",
    ("/speakers/{id}/{command}", "post", "500"): (
        "tests/api/test_site.py::test_unhandled_exception_is_a_json_500_logged_once"
    ),
    **{
        (path, "get", "403"): (
            "tests/api/test_openapi_contract.py::test_an_open_api_refuses_foreign_hosts"
        )
        for path in ("/health", "/ready", "/access")
    },
    ("/speakers/{id}/{command}", "post", "504"): (
        "tests/control/test_controller_daemon.py::test_hung_speaker_times_out"
    ),
}

READ = "reader-secret-token"
CONTROL = "controller-secret-token"
OPERATE = "operator-secret-token"
TOKENS = [
    {"name": "reader", "token": READ, "scopes": ["read"]},
    {"name": "controller", "token": CONTROL, "scopes": ["control"]},
    {"name": "operator", "token": OPERATE, "scopes": ["read", "control"]},
]


def json_schema(node: Any) -> Any:
    """An OpenAPI 3.0 schema as a JSON Schema (draft 4, whose ``exclusiveMinimum`` is the
    boolean OpenAPI 3.0 uses): ``nullable: true`` admits ``null``."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            result[key] = {name: json_schema(schema) for name, schema in value.items()}
        elif key != "nullable":
            result[key] = json_schema(value)
    if node.get("nullable") is True:
        if "type" in result:
            result["type"] = [result["type"], "null"]
            if "enum" in result and None not in result["enum"]:
                result["enum"] = [*result["enum"], None]
        else:
            result = {"anyOf": [result, {"type": "null"}]}
    return result


COMPONENTS = {"schemas": json_schema(SPEC["components"]["schemas"])}

#: The formats the spec uses (jsonschema checks ``date-time`` only with an extra package).
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    """An RFC 3339 date and time, with its offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str):
        return True
    if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value):
        raise ValueError(value)
    datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


def validator_for(schema: Any) -> jsonschema.Draft4Validator:
    """A validator of ``schema`` (an OpenAPI one, with ``$ref`` into the spec's schemas)."""
    return jsonschema.Draft4Validator(
        {"allOf": [json_schema(schema)], "components": COMPONENTS}, format_checker=FORMATS
    )


def resolved(node: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node``, or what its ``$ref`` (within the spec) points to."""
    while "$ref" in node:
        found: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            found = found[part]
        node = found
    return node


def documented(path: str, method: str) -> Mapping[str, Any]:
    """The responses the spec documents for ``method`` on ``path``, by status."""
    responses: Mapping[str, Any] = AUDITED[path][method]["responses"]
    return {status: resolved(response) for status, response in responses.items()}


def is_open(path: str, method: str) -> bool:
    """Whether the spec lets ``method`` on ``path`` go without a token (``security: []``)."""
    return AUDITED[path][method].get("security", SPEC["security"]) == []


def conformance_errors(path: str, method: str, status: int, kind: str, body: bytes) -> list[str]:
    """What in an answer the spec does not allow: its status, its content type, its body."""
    responses = documented(path, method)
    response = responses.get(str(status))
    if response is None:
        return [f"{status} is not documented (only {sorted(responses)})"]
    content: Mapping[str, Any] = response.get("content") or {}
    if not content:
        return [] if not body else [f"{status} documents no body, got {body[:200]!r}"]
    media = kind.split(";")[0].strip().lower()
    matches = [
        name
        for name in content
        if name == media or (name.endswith("/*") and media.startswith(name[:-1]))
    ]
    if not matches:
        return [f"{status} is documented as {sorted(content)}, not {kind!r}"]
    schema = content[matches[0]].get("schema")
    if schema is None or media != "application/json":
        return []
    validator = validator_for(schema)
    return [
        f"{error.message} at /{'/'.join(map(str, error.absolute_path))}"
        for error in validator.iter_errors(json.loads(body))
    ]


@attrs.define
class Answer:
    status: int
    headers: Headers
    body: bytes

    @property
    def kind(self) -> str:
        return (self.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def code(self) -> str | None:
        """The ``error.code`` of a JSON error."""
        if not self.kind.startswith("application/json"):
            return None
        error = self.json().get("error")
        return error.get("code") if isinstance(error, dict) else None


@attrs.define
class Auditor:
    """Sends requests to a daemon and checks each answer against the spec."""

    case: TestCase
    daemon: Daemon
    #: ``(path, method, status)`` of every answer checked.
    seen: set[tuple[str, str, str]] = attrs.Factory(set)

    async def send(
        self,
        path: str,
        target: str,
        *,
        method: str = "get",
        token: str | None = OPERATE,
        body: bytes | None = None,
        kind: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """``method`` on ``target`` (under /api/v1), a request to the spec's ``path``."""
        sent = {name: [value] for name, value in (headers or {}).items()}
        if token is not None:
            sent["Authorization"] = [f"Bearer {token}"]
        if body is not None:
            sent["Content-Type"] = [kind]
        response = await self.daemon.http.request(
            method.upper(), self.daemon.url("/api/v1" + target), headers=Headers(sent), data=body
        )
        return Answer(response.code, response.headers, await response.content())

    async def expect(
        self,
        path: str,
        target: str,
        status: int,
        code: str | None = None,
        **request: Any,
    ) -> Answer:
        """Send the request; fail unless it gets ``status`` (and ``error.code`` ``code``)
        and the answer is as the spec documents it for ``path``."""
        method = request.get("method", "get")
        answer = await self.send(path, target, **request)
        where = f"{method.upper()} {target}"
        self.case.assertEqual(answer.status, status, (where, answer.body[:500]))
        if code is not None:
            self.case.assertEqual(answer.code, code, (where, answer.body[:500]))
        errors = conformance_errors(path, method, answer.status, answer.kind, answer.body)
        self.case.assertEqual(errors, [], (where, answer.body[:500]))
        challenged = status == 401 or b"scope" in answer.body
        for header in documented(path, method)[str(status)].get("headers") or {}:
            # Both refusals of a token document their challenge.
            if challenged:
                self.case.assertTrue(answer.headers.hasHeader(header.encode("ascii")), where)
        if status == 403 and challenged:
            challenge = answer.headers.getRawHeaders(b"www-authenticate", [b""])[0]
            self.case.assertIn(b'error="insufficient_scope"', challenge, where)
        self.seen.add((path, method, str(status)))
        return answer


def all_documented() -> set[tuple[str, str, str]]:
    """``(path, method, status)`` of every answer the spec documents outside streaming."""
    return {
        (path, method, status)
        for path, item in AUDITED.items()
        for method in METHODS
        if method in item
        for status in item[method]["responses"]
    }


class OpenApiContractTests(TestCase):
    """The daemon answers as docs/openapi.yaml says."""

    timeout = 120

    async def start(self) -> tuple[Daemon, Auditor, dict[str, str]]:
        daemon = await start_daemon(self, api={"tokens": TOKENS})
        kitchen = daemon.speaker(0)
        names = {"kitchen": kitchen.uid, "kitchen_host": kitchen.address}
        return daemon, Auditor(self, daemon), names

    async def test_every_documented_answer(self) -> None:
        """Each answer the spec documents for a path, method and status is produced (or
        named in ``ELSEWHERE``), with the content type and body schema documented for it."""
        daemon, audit, _ = await self.start()
        kitchen, office = daemon.speaker(0), daemon.speaker(2)
        await until(lambda: daemon.service.readiness()["ready"], "readiness")
        # Open routes.
        health = await audit.expect("/health", "/health", 200, token=None)
        self.assertEqual(health.json()["status"], "ok")
        ready = await audit.expect("/ready", "/ready", 200, token=None)
        schemas = SPEC["components"]["schemas"]
        counted = schemas["Ready"]["properties"]["speakers"]["description"]
        self.assertEqual(set(ready.json()["speakers"]), set(re.findall(r"`(\w+)`", counted)))
        self.assertEqual(
            set(health.json()["speakers"]),
            set(schemas["Health"]["properties"]["speakers"]["properties"]),
        )
        anonymous = await audit.expect("/access", "/access", 200, token=None)
        self.assertEqual(anonymous.json()["granted"], False)
        self.assertNotIn("endpoints", anonymous.json())
        wrong = await audit.expect("/access", "/access", 200, token="not-a-token")
        self.assertEqual((wrong.json()["granted"], wrong.json()["token"]), (False, None))
        reader = await audit.expect("/access", "/access", 200, token=READ)
        self.assertEqual((reader.json()["token"], reader.json()["scopes"]), ("reader", ["read"]))
        commands = SPEC["components"]["schemas"]["CommandName"]["enum"]
        self.assertEqual(sorted(reader.json()["commands"]), sorted(commands))
        # The token as ``access_token`` where headers cannot be set; a wrong one is a 401.
        await audit.expect("/snapshot", f"/snapshot?access_token={READ}", 200, token=None)
        await audit.expect("/snapshot", "/snapshot", 401, "unauthorized", token="not-a-token")
        # join, leave and party wait at most 5 s for the topology to show the new group.
        self.assertEqual(daemon.service.controller.confirm_timeout, 5.0)
        # Read routes.
        for path in ("/diagnostics", "/snapshot", "/speakers", "/groups"):
            await audit.expect(path, path, 200)
            await audit.expect(path, path, 401, "unauthorized", token=None)
            await audit.expect(path, path, 403, "forbidden", token=CONTROL)
        # The parts of the diagnostics the spec names.
        diagnostics = (await audit.expect("/diagnostics", "/diagnostics", 200)).json()
        parts = schemas["Diagnostics"]["properties"]
        for part, names in (
            ("host", {"hostname", "container", "bridge_network", "interfaces", "lan_addresses"}),
            ("listener", {"interface", "port", "requested_port", "advertise", "notify"}),
            ("ready", {"ready", "reasons", "speakers"}),
        ):
            self.assertTrue(all(name in parts[part]["description"] for name in names), part)
            self.assertLessEqual(names, set(diagnostics[part]), part)
        notify = diagnostics["listener"]["notify"]
        self.assertEqual(set(notify), {"accepted", "refused", "held"})
        self.assertIn("clients", diagnostics["sinks"])
        speaker = diagnostics["speakers"][0]
        self.assertLessEqual(set(schemas["SpeakerStatus"]["properties"]), set(speaker))
        for service in speaker["services"].values():
            self.assertLessEqual(set(schemas["SubscriptionStatus"]["properties"]), set(service))
        metrics = await audit.expect("/metrics", "/metrics", 200)
        self.assertIn(b"sonosd_", metrics.body)
        # "Prometheus text exposition format 0.0.4".
        self.assertEqual(metrics.kind.replace(" ", ""), "text/plain;version=0.0.4;charset=utf-8")
        await audit.expect("/metrics", "/metrics", 401, token=None)
        await audit.expect("/metrics", "/metrics", 403, token=CONTROL)
        listed = (await audit.expect("/speakers", "/speakers", 200)).json()["speakers"]
        self.assertEqual([s["name"] for s in listed], sorted(s["name"] for s in listed))
        groups = (await audit.expect("/groups", "/groups", 200)).json()["groups"]
        self.assertTrue(groups)
        # One speaker: by uid, by room in any case, by address; or 404.
        for ident in (kitchen.uid, kitchen.name.upper(), kitchen.address):
            one = await audit.expect("/speakers/{id}", f"/speakers/{quote(ident)}", 200)
            self.assertEqual(one.json()["uid"], kitchen.uid, ident)
        await audit.expect("/speakers/{id}", "/speakers/Attic", 404, "unknown_speaker")
        await audit.expect("/speakers/{id}", f"/speakers/{kitchen.uid}", 401, token=None)
        await audit.expect("/speakers/{id}", f"/speakers/{kitchen.uid}", 403, token=CONTROL)
        # Album art.
        art = f"http://{kitchen.address}:1400/getaa?s=1&u=x-file-cifs%3A%2F%2Fa.flac"
        image = await audit.expect("/art", f"/art?url={quote(art, safe='')}", 200)
        self.assertEqual(image.headers.getRawHeaders(b"cache-control"), [b"private, max-age=86400"])
        etag = image.headers.getRawHeaders(b"etag")[0].decode("ascii")
        await audit.expect(
            "/art", f"/art?url={quote(art, safe='')}", 304, headers={"If-None-Match": etag}
        )
        relative = quote("/getaa?s=1&u=abc", safe="")
        # ``speaker``: a uid, a room or an address.
        for ident in (kitchen.name, kitchen.uid, kitchen.address):
            await audit.expect("/art", f"/art?url={relative}&speaker={quote(ident)}", 200)
        await audit.expect("/art", "/art", 400, "bad_url")
        await audit.expect("/art", f"/art?url={relative}", 400, "bad_url")
        await audit.expect("/art", f"/art?url={relative}&speaker=Attic", 404, "unknown_speaker")
        decoy = quote("http://127.0.0.1:9/x.png", safe="")
        await audit.expect("/art", f"/art?url={decoy}", 403, "not_a_speaker")
        page = quote(f"http://{kitchen.address}:1400/xml/device_description.xml", safe="")
        await audit.expect("/art", f"/art?url={page}", 502, "speaker_error")
        await audit.expect("/art", f"/art?url={quote(art, safe='')}", 401, token=None)
        # Commands.
        command = "/speakers/{id}/{command}"

        async def post(target: str, status: int, code: str | None = None, **args: Any) -> Answer:
            args.setdefault("body", b"{}")
            return await audit.expect(command, target, status, code, method="post", **args)

        done = await post(f"/speakers/{kitchen.uid}/volume", 200, body=b'{"volume": 30}')
        self.assertEqual(done.json()["result"]["volume"], 30)
        self.assertEqual(kitchen.rendering.volume, 30)
        # Case-insensitive, and "-" reads as "_" (the command and the room alike).
        done = await post(f"/speakers/{kitchen.name.lower()}/VOLUME", 200, body=b'{"delta": 1}')
        self.assertEqual(kitchen.rendering.volume, 31)
        # The body is optional.
        await post(f"/speakers/{kitchen.uid}/favorites", 200, body=None)
        done = await post(f"/speakers/{office.uid}/Group-Volume", 200, body=b'{"volume": 20}')
        self.assertEqual(done.json()["result"]["group_volume"], 20)
        refused = await post(
            f"/speakers/{kitchen.uid}/volume", 400, "bad_argument", body=b'{"volume": 3, "x": 1}'
        )
        self.assertTrue(refused.json()["error"]["message"].startswith("x"), refused.body)
        await post(f"/speakers/{kitchen.uid}/volume", 400, "bad_request", body=b'{"volume"')
        self.assertEqual(kitchen.rendering.volume, 31)
        await post(f"/speakers/{kitchen.uid}/play", 401, token=None)
        await post(f"/speakers/{kitchen.uid}/play", 403, "forbidden", token=READ)
        await post(f"/speakers/{kitchen.uid}/explode", 404, "unknown_command")
        await post("/speakers/Attic/play", 404, "unknown_speaker")
        await post(
            f"/speakers/{kitchen.uid}/play_favorite",
            404,
            "unknown_favorite",
            body=b'{"name": "No Such Favorite"}',
        )
        await post(
            f"/speakers/{kitchen.uid}/restore",
            404,
            "unknown_snapshot",
            body=b'{"name": "never-taken"}',
        )
        # A Sonos One has no night mode (the Living Room's Beam has).
        await post(
            f"/speakers/{kitchen.uid}/night_mode",
            409,
            "not_supported",
            body=b'{"night_mode": true}',
        )
        too_large = b'{"text": "' + b"a" * MAX_BODY + b'"}'
        await post(f"/speakers/{kitchen.uid}/say", 413, "too_large", body=too_large)
        await post(
            f"/speakers/{kitchen.uid}/volume",
            415,
            "bad_content_type",
            body=b'{"volume": 3}',
            kind="text/plain",
        )
        self.assertEqual(kitchen.rendering.volume, 31)
        kitchen.transport.clear_queue()
        fault = await post(f"/speakers/{kitchen.uid}/play", 502, "speaker_error")
        self.assertEqual(fault.json()["error"]["upnp_error"], 701)
        # An offline speaker: its commands 503 (which has it checked at once), health
        # degraded, not ready.
        await office.go_offline("refuse")
        await post(f"/speakers/{office.uid}/volume", 503, "offline", body=b'{"volume": 3}')
        await until(
            lambda: daemon.service.state.availability(office.uid).status == "offline", "offline"
        )
        health = await audit.expect("/health", "/health", 200, token=None)
        self.assertEqual(health.json()["status"], "degraded")
        named = await audit.expect("/ready", "/ready", 503, token=READ)
        self.assertTrue(any(office.name in reason for reason in named.json()["reasons"]))
        counted = await audit.expect("/ready", "/ready", 503, token=None)
        self.assertFalse(any(office.name in r for r in counted.json()["reasons"]), counted.body)
        self.assertTrue(counted.json()["reasons"])
        missing = all_documented() - audit.seen - set(ELSEWHERE)
        self.assertEqual(missing, set(), "documented answers no test produces")

    async def test_an_open_api_refuses_foreign_hosts_and_origins(self) -> None:
        """Without tokens on loopback every route answers without one, but a foreign Host
        (DNS rebinding) gets the documented 403 on every path, open ones too, and a command
        from a foreign browser origin gets the documented 403."""
        daemon = await start_daemon(self)
        audit = Auditor(self, daemon)
        kitchen = daemon.speaker(0)
        await audit.expect("/speakers", "/speakers", 200, token=None)
        concrete = {
            "/speakers/{id}": f"/speakers/{kitchen.uid}",
            "/speakers/{id}/{command}": f"/speakers/{kitchen.uid}/volume",
            "/art": "/art?url=" + quote(f"http://{kitchen.address}:1400/getaa?s=1", safe=""),
        }
        for path, item in AUDITED.items():
            for method in (method for method in METHODS if method in item):
                await audit.expect(
                    path,
                    concrete.get(path, path),
                    403,
                    "forbidden",
                    method=method,
                    token=None,
                    body=b'{"volume": 9}' if method == "post" else None,
                    headers={"Host": "rebound.example"},
                )
        await audit.expect(
            "/speakers/{id}/{command}",
            f"/speakers/{kitchen.uid}/volume",
            403,
            "forbidden",
            method="post",
            token=None,
            body=b'{"volume": 9}',
            headers={"Origin": "http://rebound.example"},
        )
        self.assertNotEqual(kitchen.rendering.volume, 9)
        await audit.expect(
            "/speakers/{id}/{command}",
            f"/speakers/{kitchen.uid}/volume",
            200,
            method="post",
            token=None,
            body=b'{"volume": 9}',
        )
        self.assertEqual(kitchen.rendering.volume, 9)

    async def test_routes_and_methods_are_the_documented_ones(self) -> None:
        """The daemon serves the spec's paths and no other, each for the spec's methods only:
        another method gets a JSON 405."""
        daemon, audit, names = await self.start()
        served = {"/" + name.decode() for name in daemon.service.api.v1.children}
        self.assertEqual(served, {"/" + path.split("/")[1] for path in SPEC["paths"]})
        granted = await audit.expect("/access", "/access", 200)
        self.assertEqual({"/" + e for e in granted.json()["endpoints"]}, served)
        concrete = {
            "/speakers/{id}": f"/speakers/{names['kitchen']}",
            "/speakers/{id}/{command}": f"/speakers/{names['kitchen']}/volume",
        }
        for path, item in AUDITED.items():
            target = concrete.get(path, path)
            for method in METHODS:
                answer = await audit.send(path, target, method=method, body=b"{}")
                where = f"{method.upper()} {target}"
                if method in item:
                    self.assertNotEqual(answer.status, 405, where)
                else:
                    self.assertEqual(
                        (answer.status, answer.code), (405, "method_not_allowed"), where
                    )
        for path in STREAMING:
            for method in ("put", "post", "delete", "patch"):
                answer = await audit.send(path, path, method=method, body=b"{}")
                self.assertEqual(answer.status, 405, f"{method.upper()} {path}")

    async def test_scopes_are_the_documented_ones(self) -> None:
        """Without a token, only the operations the spec marks ``security: []`` answer; a
        token without the scope (``read`` for GET, ``control`` for commands) gets the
        documented 403 ``insufficient_scope``."""
        daemon, audit, names = await self.start()
        concrete = {
            "/art": "/art?url=" + quote(f"http://{names['kitchen_host']}:1400/getaa?s=1", safe=""),
            "/speakers/{id}": f"/speakers/{names['kitchen']}",
            "/speakers/{id}/{command}": f"/speakers/{names['kitchen']}/volume",
        }
        for path, item in AUDITED.items():
            target = concrete.get(path, path)
            for method in METHODS:
                if method not in item:
                    continue
                body = b'{"volume": 12}' if method == "post" else None
                anonymous = await audit.send(path, target, method=method, token=None, body=body)
                where = f"{method.upper()} {target}"
                if is_open(path, method):
                    self.assertIn(anonymous.status, (200, 503), where)
                    continue
                self.assertEqual((anonymous.status, anonymous.code), (401, "unauthorized"), where)
                lacking = CONTROL if method == "get" else READ
                await audit.expect(
                    path,
                    target,
                    403,
                    "forbidden",
                    method=method,
                    token=lacking,
                    body=body,
                )
        self.assertNotEqual(daemon.speaker(0).rendering.volume, 12)


def test_the_named_tests_exist() -> None:
    """Every test ``ELSEWHERE`` names is there."""
    for where in ELSEWHERE.values():
        module, name = where.split("::")
        source = (ROOT / module).read_text("utf-8")
        assert re.search(rf"def {name}\w*\(", source), where


def test_the_converted_schemas_are_valid() -> None:
    """The spec's schemas, as JSON Schema, are valid draft 4 schemas."""
    jsonschema.Draft4Validator.check_schema({"allOf": [{}], "components": COMPONENTS})


#: A valid request body for each command (docs/control.md).
COMMAND_BODIES: dict[str, dict[str, Any]] = {
    "play": {},
    "pause": {},
    "toggle": {},
    "stop": {},
    "next": {},
    "previous": {},
    "seek": {"position": "0:01:00"},
    "play_mode": {"shuffle": True, "repeat": "all"},
    "volume": {"volume": 30},
    "mute": {"mute": "on"},
    "bass": {"bass": 2},
    "treble": {"treble": -2},
    "loudness": {"loudness": 1},
    "night_mode": {"night_mode": True},
    "dialog_mode": {"dialog_mode": "yes"},
    "group_volume": {"delta": -5},
    "group_mute": {},
    "join": {"coordinator": "Living Room"},
    "leave": {},
    "party": {},
    "play_uri": {"uri": "x-rincon-mp3radio://radio.example/live", "title": "Live"},
    "play_favorite": {"name": "Morning Mix", "mode": "next"},
    "favorites": {},
    "playlists": {"action": "tracks", "name": "morning mix", "count": 10},
    "library": {"action": "search", "term": "abba"},
    "share_link": {"url": "https://open.spotify.com/album/6wiUBliPe76YAVpNEdidpY"},
    "queue": {"action": "move", "track": 3, "to": 1, "count": 2},
    "sleep_timer": {"minutes": 30},
    "snapshot": {"name": "evening"},
    "restore": {"name": "evening", "fade": True},
    "announce": {"text": "the door", "target": "room", "timeout": 12.5},
    "say": {"text": "dinner is ready", "volume": 40},
    "alarms": {"action": "disable", "id": 1},
    "line_in": {"source": "Office"},
    "tv": {"play": False},
    "speech_enhancement": {"speech_enhancement": True},
    "sub": {"gain": -3},
    "surround": {"enabled": True, "tv_level": 2},
}

#: The command each request example of the spec is for.
EXAMPLE_COMMANDS = {
    "volume": "volume",
    "relative": "volume",
    "join": "join",
    "announce": "announce",
    "say": "say",
    "alarm": "alarms",
    "share_link": "share_link",
}


def command_body_errors(body: Any) -> list[str]:
    """What in a command's request body the spec's request schema does not allow."""
    operation = SPEC["paths"]["/speakers/{id}/{command}"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    validator = validator_for(schema)
    return [error.message for error in validator.iter_errors(body)]


def test_every_command_body_is_a_documented_one() -> None:
    """A valid body of each command (one per command the spec names) is accepted by the
    daemon's parser and by the spec's request schema."""
    from sonosd.control.commandargs import parse_command

    assert set(COMMAND_BODIES) == set(SPEC["components"]["schemas"]["CommandName"]["enum"])
    for command, body in COMMAND_BODIES.items():
        parse_command(command, body)
        assert command_body_errors(body) == [], command


def test_the_examples_are_valid() -> None:
    """The spec's request examples parse for their command and match the request schema;
    its answer examples match the answer schema."""
    from sonosd.control.commandargs import parse_command

    operation = SPEC["paths"]["/speakers/{id}/{command}"]["post"]
    examples = operation["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == set(EXAMPLE_COMMANDS)
    for name, example in examples.items():
        parse_command(EXAMPLE_COMMANDS[name], example["value"])
        assert command_body_errors(example["value"]) == [], name
    answers = operation["responses"]["200"]["content"]["application/json"]["examples"]
    for name, example in answers.items():
        body = json.dumps(example["value"]).encode()
        errors = conformance_errors(
            "/speakers/{id}/{command}", "post", 200, "application/json", body
        )
        assert errors == [], name


def spec_command_errors() -> dict[str, int]:
    """The error codes docs/openapi.yaml names for a failed command, with their status."""
    text = SPEC["components"]["responses"]["CommandError"]["description"]
    codes: dict[str, int] = {}
    for status, part in re.findall(r"(\d{3}) (.*?)(?=; \d{3} |$)", text, re.S):
        for code in re.findall(r"`([a-z_]+)`", part):
            if code != "upnp_error":
                codes[code] = int(status)
    return codes


def control_errors() -> dict[str, int]:
    """The error codes of docs/control.md's "Errors" table, with their status."""
    text = (ROOT / "docs" / "control.md").read_text("utf-8")
    table = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    codes: dict[str, int] = {}
    for row in re.findall(r"^\| (.*?) \| (\d{3}) \|", table, re.M):
        for code in re.findall(r"`([a-z_]+)`", row[0]):
            codes[code] = int(row[1])
    return codes


def test_command_errors_are_those_of_control_md() -> None:
    """A failed command's codes and statuses in docs/openapi.yaml are docs/control.md's,
    plus the REST layer's own (a malformed, too large or non-JSON body), each status among
    the documented answers of the command route."""
    rest = {"bad_request": 400, "too_large": 413, "bad_content_type": 415}
    assert control_errors(), "docs/control.md has no Errors table"
    assert spec_command_errors() == {**control_errors(), **rest}
    documented_statuses = documented("/speakers/{id}/{command}", "post")
    for code, status in spec_command_errors().items():
        assert str(status) in documented_statuses, code


def test_every_raised_code_is_documented() -> None:
    """Every error code the controller raises is one docs/openapi.yaml names, with the same
    status."""
    raised: dict[str, int] = {}
    for path in (ROOT / "sonosd" / "control").glob("*.py"):
        source = path.read_text("utf-8")
        for code, status in re.findall(r'ControlError\(\s*"([a-z_]+)",\s*(\d{3})', source):
            raised[code] = int(status)
    assert raised
    documented_codes = spec_command_errors()
    for code, status in raised.items():
        assert documented_codes.get(code) == status, code


#: The keys docs/openapi.yaml's ``CommandResult`` names for a command's result.
RESULT_KEYS: dict[str, list[tuple[str, ...]]] = {
    "volume": [("volume",)],
    "mute": [("mute",)],
    "group_volume": [("coordinator", "group_volume")],
    "group_mute": [("coordinator", "group_mute")],
    "play_mode": [("play_mode", "shuffle", "repeat", "crossfade")],
    "join": [("group", "confirmed", "source")],
    "leave": [("group", "confirmed", "source")],
    "party": [("group", "confirmed", "source"), ("joined",)],
    "sleep_timer": [("remaining",)],
    "snapshot": [("name", "coordinator", "members")],
    "restore": [("name", "coordinator", "members"), ("regrouped",)],
    "announce": [("coordinator", "uri", "ended", "seconds", "target", "members")],
    "say": [("coordinator", "uri", "ended", "seconds", "target", "members")],
    "favorites": [("favorites",)],
    "play_favorite": [("coordinator", "favorite", "kind", "uri", "queued", "position")],
    "toggle": [("coordinator",), ("action",)],
    **{name: [("coordinator",)] for name in ("play", "pause", "stop", "next", "previous")},
    **{name: [(name,)] for name in ("bass", "treble", "loudness", "night_mode", "dialog_mode")},
}


def test_result_keys_are_the_documented_ones() -> None:
    """Each key set of ``RESULT_KEYS`` is written in ``CommandResult``'s description (as
    ``{"a", "b"}``, or ``adds `a``` for a key one command adds)."""
    text = " ".join(SPEC["components"]["schemas"]["CommandResult"]["description"].split())
    for command, sets in RESULT_KEYS.items():
        for keys in sets:
            listed = "`{" + ", ".join(f'"{key}"' for key in keys) + "}`"
            added = f"adds `{keys[0]}`"
            tone = "`{<name>: value}`" if keys == (command,) else None
            assert listed in text or added in text or (tone and tone in text), (command, keys)


#: Which room runs each command in ``test_every_command_answers_as_documented`` (the Living
#: Room is a home theatre; the Office has a line-in): in this order.
COMMAND_ROOMS = {"join": "Kitchen", "leave": "Kitchen", "line_in": "Kitchen"}


class CommandAnswerTests(TestCase):
    """Each command's answer, through the REST route of a whole daemon."""

    timeout = 120

    async def test_every_command_answers_as_documented(self) -> None:
        """A valid body of each command gets 200 and a result that matches the spec's
        answer schema, on a household with a home theatre and a line-in."""
        from tests.control.daemon_commands import start

        daemon, _ = await start(self)
        audit = Auditor(self, daemon)
        path = "/speakers/{id}/{command}"
        for command in sorted(COMMAND_BODIES, key=["snapshot", "restore"].__contains__):
            room = COMMAND_ROOMS.get(command, "Living Room")
            answer = await audit.send(
                path,
                f"/speakers/{quote(room)}/{command}",
                method="post",
                token=None,
                body=json.dumps(COMMAND_BODIES[command]).encode(),
            )
            where = f"{command}: {answer.body[:300]!r}"
            self.assertEqual(answer.status, 200, where)
            errors = conformance_errors(path, "post", 200, answer.kind, answer.body)
            self.assertEqual(errors, [], where)
            result = answer.json()["result"]
            for keys in RESULT_KEYS.get(command, ()):
                self.assertLessEqual(set(keys), set(result), where)
            if command in ("join", "leave", "party"):
                self.assertIn(result["source"], ("event", "read"), where)
            if command == "line_in":
                self.assertEqual(result["source"], daemon.household.speaker("Office").uid)


def test_server_and_version_are_the_daemons() -> None:
    """The spec's server is the default ``api.listen`` under /api/v1, and its version the
    daemon's (which /health reports)."""
    from sonosd.api.site import VERSION
    from sonosd.config import ApiConfig

    match = re.fullmatch(r"tcp:(\d+):interface=([\d.]+)", ApiConfig().listen)
    assert match, ApiConfig().listen
    port, interface = match.groups()
    assert [server["url"] for server in SPEC["servers"]] == [f"http://{interface}:{port}/api/v1"]
    assert SPEC["info"]["version"] == VERSION
