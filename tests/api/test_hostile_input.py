"""Property tests of the API at the byte level: whatever a client sends (JSON and non-JSON
bodies, deep nesting, huge numbers, odd Unicode, bad query strings, odd headers, WebSocket
operations), the answer is a JSON error naming what is wrong with a 4xx status (never a 500,
never a traceback in the log), the documented bounds hold (docs/security.md: 64 KiB, 32
levels), and the daemon keeps serving.

The real site (``ApiService.site``, twisted.web's ``HTTPChannel`` with the daemon's gate and
routes) is fed raw bytes on a ``StringTransport`` with a ``MemoryReactorClock``; commands go
through a controller that checks their arguments with the real ``control.commandargs``.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import struct
from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import quote_from_bytes

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.testing import MemoryReactorClock, StringTransport
from txaio.tx import _BatchedTimer

from sonosd.api.commands import MAX_BODY
from sonosd.api.site import ApiService
from sonosd.config import ApiConfig
from sonosd.control.commandargs import COMMANDS, parse_command
from sonosd.delivery.clientjson import MAX_DEPTH
from sonosd.delivery.hub import Hub, parse_cursor
from tests.api_helpers import ADMIN, READER, household, publish
from tests.log_capture import captured_failures

TOKEN = "Bearer admin-secret"
ARG_NAMES = [
    "volume",
    "mute",
    "mode",
    "uri",
    "position",
    "seconds",
    "title",
    "index",
    "track",
    "start",
    "level",
    "name",
    "members",
    "room",
    "speaker",
    "duration",
    "id",
    "x",
]


class CheckingController:
    """Runs nothing: checks each command's arguments with ``control.commandargs`` (what the
    real controller does first) and answers ``{"ok": true}`` when they pass."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, Mapping[str, Any]]] = []

    def execute(
        self, speaker_id: str, command: str, args: Mapping[str, Any]
    ) -> Deferred[dict[str, Any]]:
        try:
            name, _ = parse_command(command, args)
        except Exception as error:
            return fail(error)
        self.accepted.append((name, args))
        return succeed({"ok": True})


class TcpLikeTransport(StringTransport):
    """A ``StringTransport`` that, as a TCP transport, lets a producer be unregistered when
    none is (twisted.web's channel does so when it times a connection out)."""

    def unregisterProducer(self) -> None:
        self.producer = None
        self.streaming = None


class Api:
    """The daemon's API site in memory, with tokens required."""

    def __init__(self) -> None:
        self.reactor = MemoryReactorClock()
        hub = Hub(self.reactor, replay=50)
        state = household()
        hub.set_snapshot_provider(state.snapshot)
        publish(hub, 3)
        self.controller = CheckingController()
        config = ApiConfig(listen="tcp:0:interface=127.0.0.1", tokens=(READER, ADMIN), heartbeat=0)
        self.service = ApiService(self.reactor, config, hub, state, self.controller, grace=1.0)
        self.service.auth.required = True

    def connect(self) -> tuple[Any, StringTransport]:
        address = IPv4Address("TCP", "127.0.0.1", 50000)
        channel = self.service.site.buildProtocol(address)
        transport = TcpLikeTransport(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080), peerAddress=address
        )
        # Where a WebSocket upgrade puts its protocol (as on a TCP transport).
        transport.protocol = channel  # type: ignore[attr-defined]
        channel.makeConnection(transport)
        return channel, transport

    def raw(self, data: bytes) -> bytes:
        """Send ``data`` on a new connection; everything written back."""
        channel, transport = self.connect()
        channel.dataReceived(data)
        return transport.value()

    def request(
        self,
        method: str,
        target: bytes,
        body: bytes = b"",
        headers: dict[bytes, bytes] | None = None,
    ) -> bytes:
        fields = {
            b"Host": b"127.0.0.1:8080",
            b"Connection": b"close",
            b"Authorization": TOKEN.encode(),
        }
        fields.update(headers or {})
        if body or method == "POST":
            fields[b"Content-Length"] = b"%d" % len(body)
        head = b"%s %s HTTP/1.1\r\n" % (method.encode(), target)
        head += b"".join(b"%s: %s\r\n" % item for item in fields.items())
        return self.raw(head + b"\r\n" + body)


class _Socket:
    def __init__(self, data: bytes) -> None:
        self._file = io.BytesIO(data)

    def makefile(self, *args: Any, **kwargs: Any) -> io.BytesIO:
        return self._file


def parse(response: bytes, stream: bool = False, method: str = "GET") -> tuple[int, str, bytes]:
    """Status, content type and body of one raw HTTP answer (the head only for a stream)."""
    answer = http.client.HTTPResponse(_Socket(response), method=method)  # type: ignore[arg-type]
    answer.begin()
    kind = answer.getheader("content-type") or ""
    if stream and answer.status < 300:
        return answer.status, kind, b""
    return answer.status, kind, answer.read()


def assert_json_error(status: int, kind: str, body: bytes, what: object = "") -> dict[str, Any]:
    """A 4xx in the API's one error shape, naming what is wrong; the error object."""
    assert 400 <= status < 500, (status, body[:300], what)
    assert kind == "application/json", (status, kind, body[:300], what)
    error = json.loads(body)["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    return cast(dict[str, Any], error)


def still_serving(api: Api) -> None:
    """A valid command and a snapshot read are still answered 200."""
    status, _, body = parse(
        api.request(
            "POST",
            b"/api/v1/speakers/Kitchen/volume",
            b'{"volume": 10}',
            {b"Content-Type": b"application/json"},
        )
    )
    assert (status, json.loads(body)["result"]) == (200, {"ok": True})
    status, _, body = parse(api.request("GET", b"/api/v1/snapshot"))
    assert (status, json.loads(body)["type"]) == (200, "snapshot")


def json_values() -> st.SearchStrategy[Any]:
    """JSON values with huge integers, extreme floats and odd Unicode."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**40), max_value=10**40)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=30)
        | st.sampled_from(["\u202e", "\x00", "\ufeff", "\U0001f50a", "a\u0301", "\ud7ff"])
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


def nested(depth: int, kind: str) -> bytes:
    """A JSON object whose ``volume`` is nested ``depth`` levels deep in total."""
    inner = depth - 1
    if kind == "list":
        return b'{"volume": ' + b"[" * inner + b"1" + b"]" * inner + b"}"
    return b'{"volume": ' + b'{"a": ' * inner + b"1" + b"}" * inner + b"}"


@st.composite
def command_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """A command body and what the documented bounds make of it (``ok``: nothing refused
    before the arguments are checked)."""
    kind = draw(
        st.sampled_from(["args", "value", "bytes", "text", "deep", "number", "escape", "large"])
    )
    if kind == "args":
        args = draw(st.dictionaries(st.sampled_from(ARG_NAMES), json_values(), max_size=4))
        return json.dumps(args, ensure_ascii=draw(st.booleans())).encode(), "ok"
    if kind == "value":
        value = draw(json_values().filter(lambda v: not isinstance(v, dict)))
        return json.dumps(value).encode(), "not_object"
    if kind == "bytes":
        return draw(st.binary(min_size=1, max_size=200)), "any"
    if kind == "text":
        return draw(st.text(min_size=1, max_size=100)).encode("utf-8", "surrogatepass"), "any"
    if kind == "deep":
        depth = draw(st.integers(1, 3 * MAX_DEPTH))
        return nested(depth, draw(st.sampled_from(["list", "object"]))), (
            "too_deep" if depth > MAX_DEPTH else "ok"
        )
    if kind == "number":
        digits = draw(st.integers(1, 6000))
        sign = draw(st.sampled_from(["", "-"]))
        tail = draw(st.sampled_from(["", ".5", "e999", "e-999"]))
        return f'{{"volume": {sign}{"9" * digits}{tail}}}'.encode(), "any"
    if kind == "escape":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\u0000", "\\ud83d\\ude00", "\\x41"]))
        return f'{{"title": "{escape}"}}'.encode(), "any"
    padding = draw(st.integers(MAX_BODY - 20, MAX_BODY + 100))
    return b'{"title": "' + b"a" * padding + b'"}', "sized"


@settings(max_examples=150, derandomize=True)
@given(command_bodies(), st.sampled_from([*COMMANDS[:20], "nope", "", "%ff", "volume%00"]))
def test_command_bodies_get_a_json_answer_never_a_500(
    case: tuple[bytes, str], command: str
) -> None:
    """Any command body is answered 200 or a JSON 4xx naming what is wrong, within the
    documented bounds (over 64 KiB: 413; over 32 levels: 400 saying so), never a 500 or a
    traceback; the API keeps serving."""
    body, expected = case
    api = Api()
    with captured_failures() as failures:
        target = b"/api/v1/speakers/Kitchen/" + command.encode("utf-8", "surrogatepass")
        status, kind, answer = parse(
            api.request("POST", target, body, {b"Content-Type": b"application/json"})
        )
        if status != 200:
            error = assert_json_error(status, kind, answer)
            if expected == "too_deep" and command:
                assert (status, error["code"]) == (400, "bad_request")
                assert "nest" in error["message"] or "deep" in error["message"], error
            if expected == "not_object" and command:
                assert (status, error["code"]) == (400, "bad_request")
        if expected == "sized" and len(body) > MAX_BODY:
            # Refused by the channel, before the route (and the command name) is looked at.
            assert (status, json.loads(answer)["error"]["code"]) == (413, "too_large")
        still_serving(api)
    assert failures == []


QUERY_NAMES = [
    b"last_id",
    b"run",
    b"type",
    b"speaker",
    b"service",
    b"access_token",
    b"room",
    b"uid",
    b"",
    b"%ff",
    b"a[]",
    b"x",
]
PATHS = [
    b"/api/v1/snapshot",
    b"/api/v1/speakers",
    b"/api/v1/speakers/Kitchen",
    b"/api/v1/groups",
    b"/api/v1/health",
    b"/api/v1/access",
    b"/api/v1/metrics",
    b"/api/v1/events",
    b"/api/v1/art",
    b"/api/v1/ws",
    b"/api/v1/nope",
    b"/api/v2",
    b"/api/v1/speakers/%ff%00",
]


@st.composite
def query_strings(draw: st.DrawFn) -> bytes:
    """A query string: known and unknown names, odd values, percent-encoded or raw (a raw byte
    over 0x7f, or a request line over 16 KiB, is a JSON 400, docs/security.md)."""
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(st.sampled_from(QUERY_NAMES))
        value = draw(
            st.binary(max_size=30).map(lambda raw: quote_from_bytes(raw).encode())
            | st.sampled_from(
                [
                    b"9" * 5000,
                    b"\xb2",
                    b"-1",
                    b"1e9",
                    b"%",
                    b"%zz",
                    b"a*",
                    b"*",
                    b"RINCON_1:99",
                    b"",
                    b"\xff\xfe",
                ]
            ).map(lambda raw: quote_from_bytes(raw, safe="%*:").encode())
            | st.sampled_from([b"\xb2", b"\xff\xfe", b"9" * 17_000])
        )
        pairs.append(name + draw(st.sampled_from([b"=", b""])) + value)
    return b"&".join(pairs).replace(b" ", b"+").replace(b"#", b"%23")


@settings(max_examples=150, derandomize=True)
@given(st.sampled_from(PATHS), query_strings(), st.sampled_from(["GET", "HEAD", "DELETE"]))
def test_query_strings_get_a_json_answer_never_a_500(
    path: bytes, query: bytes, method: str
) -> None:
    """Any query string on any route is answered 2xx or a JSON 4xx naming what is wrong, never a
    500 or a traceback; the API keeps serving."""
    api = Api()
    with captured_failures() as failures:
        target = path + (b"?" + query if query else b"")
        events = path == b"/api/v1/events" and method == "GET"
        answer = api.request(method, target)
        assert answer, (method, target)
        status, kind, body = parse(answer, events, method)
        if status >= 400 and method != "HEAD":
            assert_json_error(status, kind, body, (method, target))
        assert status < 500, (status, body[:300])
        still_serving(api)
    assert failures == []


HEADER_NAMES = [
    b"Authorization",
    b"Last-Event-ID",
    b"Origin",
    b"Host",
    b"If-None-Match",
    b"Content-Type",
    b"Accept",
    b"X-Odd",
    b"Sec-WebSocket-Key",
    b"Upgrade",
]


@settings(max_examples=150, derandomize=True)
@given(
    st.sampled_from([b"/api/v1/snapshot", b"/api/v1/events", b"/api/v1/speakers/Kitchen/play"]),
    st.dictionaries(
        st.sampled_from(HEADER_NAMES),
        st.binary(max_size=60).map(lambda raw: bytes(b for b in raw if b not in b"\r\n\x00"))
        | st.sampled_from(
            [
                b"Bearer",
                b"Bearer \xff",
                b"Basic Og==",
                b"9" * 5000,
                b"\xb2",
                b"RINCON_1:7",
                b"http://evil.example",
                b"null",
                b"websocket",
            ]
        ),
        max_size=4,
    ),
)
def test_odd_headers_get_a_json_answer_never_a_500(
    path: bytes, headers: dict[bytes, bytes]
) -> None:
    """Odd authorization, Last-Event-ID, Origin, Host and other header values are answered 2xx or
    a JSON 4xx naming what is wrong, never a 500 or a traceback; the API keeps serving."""
    api = Api()
    method = "POST" if path.endswith(b"/play") else "GET"
    with captured_failures() as failures:
        answer = api.request(method, path, headers=headers)
        status, kind, body = parse(answer, stream=path.endswith(b"/events"))
        # Over twisted.web's 16 KiB for all headers too: a JSON 400 (security.md).
        if status >= 400:
            assert_json_error(status, kind, body, headers)
        still_serving(api)
    assert failures == []


STREAM_PIECES = [
    b"POST /api/v1/speakers/Kitchen/volume HTTP/1.1\r\n",
    b"GET /api/v1/events HTTP/1.1\r\n",
    b"GET /api/v1/snapshot HTTP/1.0\r\n",
    b"Host: 127.0.0.1\r\n",
    b"Authorization: " + TOKEN.encode() + b"\r\n",
    b"Content-Type: application/json\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 12\r\n",
    b"Content-Length: 99999999999\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: keep-alive\r\n",
    b"Last-Event-ID: 3\r\n",
    b"Upgrade: websocket\r\n",
    b" folded\r\n",
    b"X: \xff\r\n",
    b"\r\n",
    b'{"volume": 5}',
    b"ffffffffff\r\n",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"[" * 40,
]


@settings(max_examples=200, derandomize=True)
@given(st.lists(st.sampled_from(STREAM_PIECES) | st.binary(max_size=20), max_size=14))
def test_any_byte_stream_gets_no_500_and_the_api_keeps_serving(pieces: list[bytes]) -> None:
    """Pieces of HTTP and random bytes in any order, pipelined requests included, then the
    request deadline passing, never get a 5xx or a traceback, and the API keeps serving."""
    api = Api()
    with captured_failures() as failures:
        channel, transport = api.connect()
        for piece in pieces:
            if not transport.disconnecting:  # a TCP transport stops reading once closing
                channel.dataReceived(piece)
        api.reactor.advance(3 * api.service.site.request_timeout)
        statuses = [int(status) for status in re.findall(rb"HTTP/1.1 (\d{3})", transport.value())]
        assert all(status < 500 for status in statuses), transport.value()[:400]
        still_serving(api)
    assert failures == []


@settings(max_examples=100, derandomize=True)
@given(
    st.text(max_size=40).map(lambda text: text.encode("utf-8", "surrogatepass"))
    | st.sampled_from([b"9" * 19, b"9" * 18, b"0", b"x:3", b"\xb2", b" 2 ", b"a\tb:1"])
    | st.integers(0, 10).map(lambda number: b"%d" % number),
    st.sampled_from(["header", "query"]),
)
def test_any_last_event_id_opens_a_well_formed_stream(value: bytes, where: str) -> None:
    """Any ``Last-Event-ID`` (header or ``last_id`` query) opens the SSE stream with well-formed
    blocks (each ``data:`` line one JSON object), garbage with a fresh snapshot; a header that
    is not UTF-8 is a JSON 400 naming it; never a 500 or a traceback."""
    api = Api()
    value = bytes(byte for byte in value if byte not in b"\r\n\x00")
    target, header = b"/api/v1/events", b""
    if where == "query":
        target += b"?last_id=" + quote_from_bytes(value).encode()
    else:
        header = b"Last-Event-ID: " + value + b"\r\n"
    with captured_failures() as failures:
        channel, transport = api.connect()
        channel.dataReceived(
            b"GET %s HTTP/1.0\r\nAuthorization: %s\r\n%s\r\n" % (target, TOKEN.encode(), header)
        )
        answer = transport.value()
        if where == "header" and not is_utf8(value):
            error = assert_json_error(*parse(answer))
            assert "last-event-id" in error["message"].lower()
            return
        head, _, stream = answer.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] == b"200" and b"text/event-stream" in head, head
        blocks = stream.split(b"\n\n")
        assert blocks[0].startswith(b"retry: ") and blocks[-1] == b"", blocks
        events = []
        for block in blocks[1:-1]:
            fields = dict(line.split(b": ", 1) for line in block.split(b"\n"))
            json.loads(fields[b"data"])
            events.append(fields[b"event"])
        # As the stream reads it: the header decoded, the query's bytes as they are.
        if parse_cursor(value if where == "query" else value.decode("utf-8")) is None:
            assert events == [b"snapshot"], (value, events)
        still_serving(api)
    assert failures == []


def is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_every_header_not_utf8_is_named() -> None:
    """A header value that is not UTF-8 is a JSON 400 naming that header, on every route."""
    api = Api()
    for path in (b"/api/v1/snapshot", b"/api/v1/events", b"/api/v1/health"):
        status, kind, body = parse(api.request("GET", path, headers={b"X-Odd": b"\xff\xfe"}))
        error = assert_json_error(status, kind, body)
        assert status == 400 and "X-Odd" in error["message"]


# -- WebSocket operations -----------------------------------------------------------------


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A masked client frame."""
    mask = os.urandom(4)
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return head + mask + masked


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """The (opcode, payload) of each whole unmasked server frame in ``data``."""
    frames = []
    while len(data) >= 2:
        opcode, length = data[0] & 0x0F, data[1] & 0x7F
        start = 2
        if length == 126:
            (length,) = struct.unpack("!H", data[2:4])
            start = 4
        elif length == 127:
            (length,) = struct.unpack("!Q", data[2:10])
            start = 10
        if len(data) < start + length:
            break
        frames.append((opcode, data[start : start + length]))
        data = data[start + length :]
    return frames


class Socket:
    """One WebSocket client of the in-memory site, past its handshake."""

    def __init__(self, api: Api) -> None:
        # autobahn times handshakes on txaio's loop (the global reactor): on the test's clock
        # instead, so that no timer outlives the test.
        factory: Any = api.service.websocket
        factory._batched_timer = _BatchedTimer(
            200.0,
            1000,
            seconds_provider=api.reactor.seconds,
            delayed_call_creator=api.reactor.callLater,
        )
        channel, self.transport = api.connect()
        channel.dataReceived(
            b"GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\nAuthorization: " + TOKEN.encode() + b"\r\n\r\n"
        )
        head = self.transport.value()
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        self.protocol: Any = self.transport.protocol  # type: ignore[attr-defined]
        self.transport.clear()

    def send(self, payload: bytes, opcode: int = 1) -> list[tuple[int, bytes]]:
        """Send one message (text unless ``opcode`` says binary); the frames written back."""
        self.transport.clear()
        self.protocol.dataReceived(client_frame(payload, opcode))
        return server_frames(self.transport.value())


@st.composite
def operations(draw: st.DrawFn) -> tuple[bytes, int]:
    """A WebSocket message and its opcode: odd operations (unknown ops, filters and commands
    with any fields), arbitrary JSON, any bytes in a binary frame (a text frame must be UTF-8,
    or the protocol closes with 1007), deep nesting."""
    kind = draw(st.sampled_from(["op", "json", "bytes", "deep"]))
    if kind == "op":
        op: dict[str, Any] = {"op": draw(st.sampled_from(["filter", "command", "nope", 7, None]))}
        op.update(
            draw(
                st.dictionaries(
                    st.sampled_from(
                        [
                            "id",
                            "speaker",
                            "command",
                            "args",
                            "type",
                            "service",
                            "speakers",
                            "types",
                            "services",
                            "x",
                        ]
                    ),
                    json_values(),
                    max_size=4,
                )
            )
        )
        return json.dumps(op).encode(), 1
    if kind == "json":
        return json.dumps(draw(json_values())).encode(), 1
    if kind == "bytes":
        return draw(st.binary(max_size=200)), 2
    depth = draw(st.integers(MAX_DEPTH - 2, 3 * MAX_DEPTH))
    return b'{"op": "filter", "types": ' + b"[" * depth + b"]" * depth + b"}", 1


@settings(max_examples=100, derandomize=True)
@given(st.lists(operations(), min_size=1, max_size=4))
def test_websocket_operations_get_an_answer_and_the_connection_stays(
    messages: list[tuple[bytes, int]],
) -> None:
    """Every WebSocket message, whatever it holds, gets one JSON answer (a result or an
    ``error`` naming what is wrong), never a close or a traceback; the connection then still
    answers a valid command."""
    api = Api()
    with captured_failures() as failures:
        socket = Socket(api)
        for message, opcode in messages:
            frames = socket.send(message, opcode)
            assert [opcode for opcode, _ in frames] == [1], frames
            answer = json.loads(frames[0][1])
            assert answer["type"] in ("result", "error", "filter"), answer
            if answer["type"] == "error":
                assert answer["error"]["code"] and answer["error"]["message"], answer
        [(opcode, payload)] = socket.send(
            b'{"op": "command", "id": 1, "speaker": "Kitchen", "command": "volume",'
            b' "args": {"volume": 5}}'
        )
        assert json.loads(payload) == {"type": "result", "id": 1, "result": {"ok": True}}
    assert failures == []


def test_websocket_operations_at_and_over_the_nesting_bound() -> None:
    """A WebSocket operation nested 32 levels is read; one nested 33 gets a ``bad_request``
    error saying so, and the socket stays open."""
    socket = Socket(Api())
    for depth, code in ((MAX_DEPTH, "bad_filter"), (MAX_DEPTH + 1, "bad_request")):
        inner = depth - 1
        [(opcode, payload)] = socket.send(
            b'{"op": "filter", "types": ' + b"[" * inner + b"]" * inner + b"}"
        )
        error = json.loads(payload)["error"]
        assert (opcode, error["code"]) == (1, code), error
        if code == "bad_request":
            assert "nest" in error["message"] or "deep" in error["message"], error


def test_a_text_frame_not_utf8_closes_with_1007() -> None:
    """A text frame that is not UTF-8 closes the socket with 1007 and a reason saying so (the
    WebSocket protocol's rule; the same bytes in a binary frame are a bad_request error)."""
    api = Api()
    [(opcode, payload)] = Socket(api).send(b"\xff\xfe", 2)
    assert opcode == 1 and json.loads(payload)["error"]["code"] == "bad_request"
    [(opcode, payload)] = Socket(api).send(b"\xff\xfe", 1)
    assert opcode == 8 and struct.unpack("!H", payload[:2]) == (1007,)
    assert b"UTF-8" in payload
