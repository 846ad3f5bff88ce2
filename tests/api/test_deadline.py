"""Tests for sonosd.api.deadline: an API request must arrive whole within request_timeout."""

from __future__ import annotations

import json

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from sonosd.api.deadline import timeout_response
from sonosd.delivery.hub import Hub
from tests.api_helpers import (
    DripClient,
    SseClient,
    connect_raw,
    connect_ws,
    household,
    publish,
    reactor,
    sse_request,
    start_api,
    wait,
)

REQUEST = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def test_timeout_response() -> None:
    """The 408 is a complete HTTP answer with a JSON error body, closing the connection."""
    answer = timeout_response(2.5)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert b"Connection: close" in head
    assert f"Content-Length: {len(body)}".encode() in head
    assert json.loads(body) == {
        "error": {"code": "request_timeout", "message": "the request did not arrive within 2.5 s"}
    }


class DeadlineTests(TestCase):
    """The deadline on a real API site."""

    async def drip(self, pieces: list[bytes], every: float, timeout: float) -> DripClient:
        service, host, port = await start_api(
            self, Hub(reactor), household(), request_timeout=timeout
        )
        client = DripClient(pieces, every)
        await connectProtocol(TCP4ClientEndpoint(reactor, host, port), client)
        self.addCleanup(client.close)
        await client.done
        self.service = service
        return client

    async def test_a_dripping_request_gets_408(self) -> None:
        """Bytes arriving steadily but too slowly: 408 at the deadline, counted."""
        pieces = [bytes([byte]) for byte in REQUEST + b"X-Pad: 1\r\n" * 10 + b"\r\n"]
        client = await self.drip(pieces, every=0.1, timeout=0.5)
        self.assertLess(client.sent, len(pieces))
        self.assertTrue(client.received.startswith(b"HTTP/1.1 408 "))
        self.assertEqual(self.service.metrics.client_errors["rest", "too_slow"], 1)

    async def test_a_prompt_request_is_served_and_the_next_one_has_its_own_deadline(
        self,
    ) -> None:
        """Requests that each arrive within the deadline are answered, on one connection."""
        pieces = [REQUEST + b"\r\n", REQUEST + b"Connection: close\r\n\r\n"]
        client = await self.drip(pieces, every=0.4, timeout=0.5)
        self.assertEqual(client.received.count(b"HTTP/1.1 200 OK"), 2)
        self.assertEqual(self.service.metrics.client_errors["rest", "too_slow"], 0)


class StreamsAreNotLimitedTests(TestCase):
    """``api.request_timeout`` bounds a request's arrival, not an open stream."""

    async def test_sse_and_websocket_outlive_the_request_timeout(self) -> None:
        """An SSE stream and a WebSocket (with a frame sent after the upgrade) stay open past
        the 0.3 s request deadline and still get the messages published then."""
        hub = Hub(reactor)
        _, host, port = await start_api(self, hub, household(), request_timeout=0.3)
        sse = SseClient(sse_request("/api/v1/events"))
        await connect_raw(host, port, sse, self)
        ws = await connect_ws(self, host, port)
        ws.send({"type": "no-such-command"})
        await wait(lambda: len(ws.messages) >= 2, "the WebSocket's answer to its frame")
        await deferLater(reactor, 1.0, lambda: None)
        [message_id] = publish(hub)
        await wait(lambda: message_id in [m.get("id") for m in sse.messages()], "SSE message")
        await wait(lambda: message_id in [m.get("id") for m in ws.messages], "WS message")
        self.assertFalse(ws.closed.called)
        self.assertNotIn(b" 408 ", sse.data)
