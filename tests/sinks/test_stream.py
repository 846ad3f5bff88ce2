"""Tests for sonosd.sinks.stream: newline-delimited JSON over a unix socket."""

from __future__ import annotations

import json
import os
import socket
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from sonosd.delivery.hub import Hub
from sonosd.delivery.metrics import ApiMetrics
from sonosd.sinks.stream import StreamService
from tests.api_helpers import (
    KITCHEN,
    OFFICE,
    flood,
    household,
    kept_send_buffer,
    publish,
    wait,
)


class LineClient(Protocol):
    """Reads JSON lines; can write operations."""

    def __init__(self) -> None:
        self.buffer = b""
        self.closed: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.split(b"\n")[:-1]]

    def events(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line.get("type") == "event"]

    def send(self, body: dict[str, Any]) -> None:
        self.transport.write(json.dumps(body).encode() + b"\n")  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.closed.callback(None)


class StreamTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.hub = Hub(reactor, replay=50)
        self.state = household()
        self.hub.set_snapshot_provider(self.state.snapshot)
        self.directory = tempfile.mkdtemp()
        self.path = os.path.join(self.directory, "events.sock")
        self.addCleanup(os.rmdir, self.directory)

    async def start(self, limit: int = 1000) -> StreamService:
        self.metrics = ApiMetrics(self.hub, lambda: 0.0, lambda: {})
        service = StreamService(
            reactor, f"unix:{self.path}:mode=600", self.hub, limit, grace=1.0, metrics=self.metrics
        )
        service.startService()
        await service.listening
        self.addCleanup(service.stopService)
        return service

    async def connect(self) -> LineClient:
        client = LineClient()
        await connectProtocol(UNIXClientEndpoint(reactor, self.path), client)

        def close() -> Deferred[None] | None:
            if client.closed.called:
                return None
            client.transport.abortConnection()  # type: ignore[union-attr]
            return client.closed

        self.addCleanup(close)
        await wait(lambda: len(client.lines()) >= 1, "the snapshot")
        return client

    async def test_snapshot_then_messages(self) -> None:
        """A client gets a snapshot line, then every message as one line, in order; its
        socket's kernel send buffer is kept at 256 KiB (docs/api.md)."""
        publish(self.hub, 2)
        service = await self.start()
        client = await self.connect()
        self.assertEqual(client.lines()[0]["type"], "snapshot")
        self.assertEqual(client.lines()[0]["last_id"], 2)
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o600)
        (peer,) = service.factory.channel.clients
        sock = peer.transport.getHandle()  # type: ignore[attr-defined]
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), kept_send_buffer())
        ids = publish(self.hub, 3)
        await wait(lambda: len(client.events()) == 3, "three events")
        self.assertEqual([m["id"] for m in client.events()], ids)

    async def test_a_tcp_endpoint_streams_the_same_lines(self) -> None:
        """``sinks.stream`` may be a TCP endpoint (docs/api.md: ``tcp:7070:interface=...``):
        the client gets the snapshot line at once, then one line per message, without
        sending anything."""
        publish(self.hub, 1)
        service = StreamService(
            reactor, "tcp:0:interface=127.0.0.1", self.hub, 1000, grace=1.0, metrics=None
        )
        service.startService()
        port = await service.listening
        self.addCleanup(service.stopService)
        client = LineClient()
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port)
        await connectProtocol(endpoint, client)
        self.addCleanup(lambda: client.closed if client.closed.called else _abort(client))
        await wait(lambda: len(client.lines()) == 1, "the snapshot")
        self.assertEqual((client.lines()[0]["type"], client.lines()[0]["last_id"]), ("snapshot", 1))
        ids = publish(self.hub, 2)
        await wait(lambda: len(client.events()) == 2, "two events")
        self.assertEqual([m["id"] for m in client.events()], ids)
        self.assertTrue(client.buffer.endswith(b"\n"))
        # Each line leaves at once: Nagle's algorithm is off on the connection.
        (peer,) = service.factory.channel.clients
        sock = peer.transport.getHandle()
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        # docs/api.md: its kernel send buffer is kept at 256 KiB.
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), kept_send_buffer())

    async def test_filter_line(self) -> None:
        """A filter operation line is acknowledged and applies to later messages."""
        await self.start()
        client = await self.connect()
        client.send({"op": "filter", "rooms": ["office"]})
        await wait(lambda: client.lines()[-1]["type"] == "filter", "the acknowledgement")
        publish(self.hub, 2, KITCHEN)
        office = publish(self.hub, 1, OFFICE)
        await wait(lambda: len(client.events()) == 1, "the office event")
        self.assertEqual(client.events()[0]["id"], office[0])

    async def test_resume_replays_what_was_missed(self) -> None:
        """A resume operation of this run is answered with resumed and every message after
        its id (given as last_id and run, or as run:id), then live messages."""
        await self.start()
        seen = publish(self.hub, 2)
        missed = publish(self.hub, 3)
        run = self.hub.run
        for resume in (
            {"op": "resume", "id": 7, "run": run, "last_id": seen[-1]},
            {"op": "resume", "id": 7, "last_id": f"{run}:{seen[-1]}"},
        ):
            client = await self.connect()
            client.send(resume)
            await wait(lambda c=client: any(m["type"] == "resumed" for m in c.lines()), "resumed")
            later = publish(self.hub, 1)
            lines = client.lines()
            answer = next(i for i, m in enumerate(lines) if m["type"] == "resumed")
            self.assertEqual(
                lines[answer], {"type": "resumed", "id": 7, "run": run, "last_id": seen[-1]}
            )
            count = answer + 1 + len(missed) + len(later)
            await wait(lambda c=client, n=count: len(c.lines()) == n, "missed and live")
            after = client.lines()[answer + 1 :]
            self.assertEqual([m["id"] for m in after], missed + later)
            missed += later

    async def test_resume_from_another_run_resets(self) -> None:
        """A resume with an id of another run (or a bad one) gets reset and a fresh snapshot."""
        await self.start()
        publish(self.hub, 3)
        client = await self.connect()
        client.send({"op": "resume", "run": "0123456789ab", "last_id": 2})
        await wait(lambda: any(m["type"] == "reset" for m in client.lines()), "the reset")
        await wait(lambda: len(client.lines()) == 3, "the fresh snapshot")
        reset, snapshot = client.lines()[1:]
        self.assertIn("another run", reset["reason"])
        self.assertEqual((snapshot["type"], snapshot["run"]), ("snapshot", self.hub.run))
        self.assertEqual(snapshot["last_id"], 3)
        # sonosd_api_resets_total counts it for the stream (docs/api.md).
        self.assertEqual(self.metrics.resets.labels("stream")._value.get(), 1)
        client.send({"op": "resume", "id": 1, "last_id": True})
        client.send({"op": "resume", "id": 2, "last_id": "x"})
        await wait(lambda: len(client.lines()) == 5, "two errors")
        self.assertEqual([m["error"]["code"] for m in client.lines()[3:]], ["bad_request"] * 2)

    async def test_resume_is_filtered_and_resets_as_documented(self) -> None:
        """A resume after a filter line replays only the messages the filter accepts; an id
        without its run, or one gone from the ring, gets reset and a fresh snapshot."""
        await self.start()
        first = publish(self.hub, 1, KITCHEN)
        publish(self.hub, 2, KITCHEN)
        office = publish(self.hub, 2, OFFICE)
        client = await self.connect()
        client.send({"op": "filter", "id": 1, "rooms": ["office"]})
        client.send({"op": "resume", "id": 2, "run": self.hub.run, "last_id": first[0]})
        await wait(lambda: any(m["type"] == "resumed" for m in client.lines()), "resumed")
        later = publish(self.hub, 1, KITCHEN) + publish(self.hub, 1, OFFICE)
        await wait(lambda: len(client.events()) == 3, "the office messages")
        self.assertEqual([m["id"] for m in client.events()], [*office, later[1]])
        publish(self.hub, 60)
        for resume in (
            {"op": "resume", "id": 3, "last_id": office[0]},
            {"op": "resume", "id": 4, "run": self.hub.run, "last_id": first[0]},
        ):
            other = await self.connect()
            other.send(resume)
            await wait(lambda c=other: len(c.lines()) == 3, "reset and snapshot")
            self.assertEqual([m["type"] for m in other.lines()], ["snapshot", "reset", "snapshot"])
            self.assertEqual(other.lines()[2]["last_id"], self.hub.last_id)

    async def test_a_filter_passes_snapshot_reset_and_replies(self) -> None:
        """docs/api.md, Filters: a filter no message passes still lets through the reset, the
        fresh snapshot and the filter, resumed and error replies; a filter operation with an
        unknown key is a bad_filter error naming it and leaves the filter in force."""
        await self.start()
        publish(self.hub, 3)
        client = await self.connect()
        client.send({"op": "filter", "id": 1, "types": ["nothing"]})
        await wait(lambda: len(client.lines()) == 2, "the acknowledgement")
        client.send({"op": "resume", "id": 2, "run": "0123456789ab", "last_id": 2})
        client.send({"op": "filter", "id": 3, "colour": ["red"]})
        client.send({"op": "resume", "id": 4, "run": self.hub.run, "last_id": 1})
        await wait(lambda: len(client.lines()) == 6, "reset, snapshot, error and resumed")
        publish(self.hub, 2)
        client.send({"op": "dance", "id": 5})
        await wait(lambda: len(client.lines()) == 7, "the last error")
        lines = client.lines()
        self.assertEqual(
            [(line["type"], line.get("id")) for line in lines[1:]],
            [
                ("filter", 1),
                ("reset", None),
                ("snapshot", None),
                ("error", 3),
                ("resumed", 4),
                ("error", 5),
            ],
        )
        self.assertEqual(lines[1]["filter"], {"types": ["nothing"]})
        self.assertEqual(lines[3]["last_id"], 3)
        self.assertEqual(lines[4]["error"]["code"], "bad_filter")
        self.assertIn("colour", lines[4]["error"]["message"])
        self.assertEqual(client.events(), [])

    async def test_resume_with_odd_digits_is_an_error_line(self) -> None:
        """A resume whose last_id is a superscript or Arabic-Indic digit (digits to
        str.isdigit, not to int) gets a bad_request line; the stream goes on."""
        await self.start()
        client = await self.connect()
        for index, last_id in enumerate(("\u00b2", "r:\u00b2", "\u0661\u0662")):
            client.send({"op": "resume", "id": index, "last_id": last_id})
        client.send({"op": "filter", "id": 9, "rooms": ["Office"]})
        await wait(lambda: any(line.get("type") == "filter" for line in client.lines()), "ack")
        errors = [line for line in client.lines() if line.get("type") == "error"]
        self.assertEqual([e["error"]["code"] for e in errors], ["bad_request"] * 3)
        self.assertFalse(client.closed.called)

    async def test_bad_lines(self) -> None:
        """Malformed operations get error lines and the stream goes on; lines that are no
        JSON object and an unknown op are counted by reason (docs/security.md, Metrics)."""
        await self.start()
        client = await self.connect()
        client.transport.write(b'nonsense\n[]\n{"op": "x"}\n{"op": "filter", "rooms": 1}\n')  # type: ignore[union-attr]
        await wait(lambda: len(client.lines()) == 5, "four errors")
        self.assertEqual(
            [line["error"]["code"] for line in client.lines()[1:]],
            ["bad_request", "bad_request", "bad_request", "bad_filter"],
        )
        # ``nonsense`` and ``[]`` (JSON, but no object).
        self.assertEqual(self.metrics.client_errors["stream", "not_json"], 2)
        self.assertEqual(self.metrics.client_errors["stream", "unknown_op"], 1)

    async def test_overlong_and_nested_lines_are_refused_and_counted(self) -> None:
        """A line without end (a megabyte in pieces) gets one error and is never buffered; a
        deeply nested line gets an error; the next operation still works."""
        service = await self.start()
        client = await self.connect()
        transport: Any = client.transport
        for _ in range(16):
            transport.write(b"x" * 65_536)
        await wait(lambda: len(client.lines()) >= 2, "the error")
        [protocol] = service.factory.channel.clients
        self.assertLessEqual(len(protocol._buffer), 65_536)  # type: ignore[attr-defined]
        transport.write(b"tail\n" + b"[" * 5000 + b"]" * 5000 + b"\n")
        client.send({"op": "filter", "id": 3, "rooms": ["Office"]})
        await wait(lambda: any(line.get("type") == "filter" for line in client.lines()), "ack")
        errors = [
            line["error"]["message"] for line in client.lines() if line.get("type") == "error"
        ]
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("line longer than 65536 bytes", errors[0])
        self.assertIn("nested 5000 levels deep", errors[1])
        self.assertEqual(
            dict(self.metrics.client_errors),
            {("stream", "too_large"): 1, ("stream", "too_deep"): 1},
        )

    async def test_slow_reader_is_disconnected(self) -> None:
        """A client that stops reading gets a final line and is closed; others get all."""
        service = await self.start(limit=4)
        slow = await self.connect()
        fast = await self.connect()
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.factory.channel
        sent = await flood(self.hub, lambda: len(channel.clients) < 2)
        self.assertEqual(len(channel.clients), 1)
        await wait(lambda: len(fast.events()) == len(sent), "every message at the fast one")
        self.assertEqual([m["id"] for m in fast.events()], sent)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed
        last = slow.lines()[-1]
        self.assertEqual(last["type"], "disconnected")
        self.assertEqual(last["reason"], "too slow: more than 4 messages behind")
        self.assertEqual(self.metrics.slow.labels("stream")._value.get(), 1)
        self.assertEqual(self.metrics.dropped.labels("stream")._value.get(), 5)

    async def test_a_reader_closed_as_too_slow_resumes_without_loss(self) -> None:
        """docs/api.md, slow clients: a stream client closed as too slow connects again, sends
        a resume with the last id it read and gets every message it missed from the ring,
        then live ones, with no gap and no duplicate."""
        self.hub = Hub(reactor, replay=5000)
        self.hub.set_snapshot_provider(self.state.snapshot)
        service = await self.start(limit=4)
        slow = await self.connect()
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.factory.channel
        sent = await flood(self.hub, lambda: not channel.clients)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed
        self.assertEqual(slow.lines()[-1]["type"], "disconnected")
        got = [m["id"] for m in slow.events()]
        self.assertEqual(got, sent[: len(got)])
        self.assertLess(len(got), len(sent))
        again = await self.connect()
        again.send({"op": "resume", "id": 1, "last_id": f"{self.hub.run}:{got[-1] if got else 0}"})
        await wait(lambda: any(m["type"] == "resumed" for m in again.lines()), "resumed")
        later = publish(self.hub, 1)
        missed = sent[len(got) :] + later
        lines = again.lines()
        answer = next(i for i, m in enumerate(lines) if m["type"] == "resumed")
        count = answer + 1 + len(missed)
        await wait(lambda: len(again.lines()) == count, "the missed messages")
        self.assertEqual([m["id"] for m in again.lines()[answer + 1 :]], missed)

    async def test_slow_reader_that_keeps_not_reading_is_aborted(self) -> None:
        """A client closed as too slow that never reads its last line is aborted after the
        grace period, its connection gone on the server while it still reads nothing."""
        service = await self.start(limit=4)
        slow = await self.connect()
        channel = service.factory.channel
        (peer,) = channel.clients
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        await flood(self.hub, lambda: not channel.clients)
        self.assertEqual(self.metrics.slow.labels("stream")._value.get(), 1)
        # Its buffers are full: only an abort ends the connection while it does not read.
        await wait(lambda: peer.lost.called, "the connection aborted")  # type: ignore[attr-defined]
        self.assertFalse(slow.closed.called)
        self.assertNotIn(b"disconnected", slow.buffer)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed

    async def test_stop_closes_clients(self) -> None:
        """stopService sends a last line, closes clients and removes the socket file."""
        service = await self.start()
        client = await self.connect()
        await service.stopService()
        await client.closed
        self.assertEqual(
            client.lines()[-1], {"type": "disconnected", "reason": "server shutting down"}
        )
        self.assertFalse(os.path.exists(self.path))


def _abort(client: LineClient) -> Deferred[None]:
    """Abort ``client``'s connection; fire when it is gone."""
    client.transport.abortConnection()  # type: ignore[union-attr]
    return client.closed
