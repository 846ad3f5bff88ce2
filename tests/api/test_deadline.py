"""Tests for sonosd.api.deadline: an API request must arrive whole within request_timeout."""

from __future__ import annotations

import json

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.trial.unittest import TestCase

from sonosd.api.deadline import timeout_response
from sonosd.delivery.hub import Hub
from tests.api_helpers import DripClient, household, reactor, start_api

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
