"""Tests for sonosd.api.sse: a real HTTP client against a real Site fed by a real Hub."""

from __future__ import annotations

import json
import socket

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.api.sse import message_block, sse_block, start_blocks
from sonosd.delivery.channel import Start
from sonosd.delivery.hub import Hub
from tests.api_helpers import (
    KITCHEN,
    OFFICE,
    READER,
    SseClient,
    connect_raw,
    flood,
    household,
    kept_send_buffer,
    publish,
    pump,
    sse_request,
    start_api,
    wait,
)


class FramingTests(SynchronousTestCase):
    def test_message_block_reuses_raw(self) -> None:
        """A message's block carries its id, its type and its serialised JSON as is."""
        hub = Hub(Clock(), run="r1")
        message = hub.publish("speaker.online", {"reason": "x"}, speaker=KITCHEN.to_json())
        block = message_block(hub.run, message)
        self.assertEqual(block, b"id: r1:1\nevent: speaker.online\ndata: " + message.raw + b"\n\n")

    def test_start_blocks_reset_then_snapshot(self) -> None:
        """A reset start sends retry, reset, then the snapshot with its run and last_id as id."""
        start = Start({"type": "snapshot", "run": "r1", "last_id": 9}, "too old", [])
        blocks = list(start_blocks("r1", start))
        self.assertTrue(blocks[0].startswith(b"retry: "))
        self.assertTrue(blocks[1].startswith(b"event: reset\ndata: {"))
        self.assertTrue(blocks[2].startswith(b"id: r1:9\nevent: snapshot\n"))

    def test_sse_block_without_id(self) -> None:
        """A block without an id leaves the browser's last event id alone."""
        self.assertEqual(sse_block("reset", b"{}"), b"event: reset\ndata: {}\n\n")


class EventStreamTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.hub = Hub(reactor, replay=50)
        self.state = household()
        self.hub.set_snapshot_provider(self.state.snapshot)

    async def open(
        self, host: str, port: int, path: str = "/api/v1/events", **headers: str
    ) -> SseClient:
        client = SseClient(sse_request(path, headers))
        await connect_raw(host, port, client, self)
        return client

    async def test_snapshot_then_messages(self) -> None:
        """A first connect gets a snapshot event (id = last_id), then every message."""
        publish(self.hub, 2)
        _, host, port = await start_api(self, self.hub, self.state)
        client = await self.open(host, port)
        await wait(lambda: len(client.events()) >= 2, "retry and snapshot")
        self.assertEqual(client.status, 200)
        self.assertIn(b"text/event-stream", client.head)
        first = client.events()[1]
        run = self.hub.run
        self.assertEqual((first["event"], first["id"]), ("snapshot", f"{run}:2"))
        ids = publish(self.hub, 3)
        await wait(lambda: len(client.events()) == 5, "three events")
        events = client.events()[2:]
        self.assertEqual([e["id"] for e in events], [f"{run}:{i}" for i in ids])
        self.assertEqual({e["event"] for e in events}, {"event"})

    async def test_messages_are_not_held_back_by_nagle(self) -> None:
        """The stream's TCP connection has Nagle's algorithm off (TCP_NODELAY) and a 256 KiB
        kernel send buffer."""
        service, host, port = await start_api(self, self.hub, self.state)
        await self.open(host, port)
        channel = service.events.channel
        await wait(lambda: len(channel.clients) == 1, "the stream")
        (peer,) = channel.clients
        sock = peer._request.channel.transport.getHandle()
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        # docs/api.md: its kernel send buffer is kept at 256 KiB.
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), kept_send_buffer())

    async def test_reverse_proxy_and_reconnect_headers(self) -> None:
        """The stream tells caches not to keep it (``Cache-Control: no-cache``), nginx not to
        buffer it (``X-Accel-Buffering: no``) and the browser to reconnect after 2 s
        (``retry: 2000``) before its first event."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await self.open(host, port)
        await wait(lambda: len(client.messages()) == 1, "the snapshot")
        self.assertIn(b"\r\nCache-Control: no-cache", client.head)
        self.assertIn(b"\r\nX-Accel-Buffering: no", client.head)
        self.assertTrue(client.body.startswith(b"retry: 2000\n\n"), client.body[:40])

    async def test_head_has_the_streams_headers(self) -> None:
        """A HEAD of the stream answers the headers a GET gets (event stream, no cache, no
        proxy buffering) and no body: no stream is opened."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = SseClient(b"HEAD /api/v1/events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await connect_raw(host, port, client, self)
        await client.closed
        self.assertEqual(client.status, 200)
        for header in (
            b"\r\nContent-Type: text/event-stream; charset=utf-8",
            b"\r\nCache-Control: no-cache",
            b"\r\nX-Accel-Buffering: no",
        ):
            self.assertIn(header, client.head)
        self.assertEqual(client.body, b"")

    async def test_http11_chunked_stream(self) -> None:
        """An HTTP/1.1 client gets a well-formed chunked stream, a turn's events in a chunk."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = SseClient(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await connect_raw(host, port, client, self)
        await wait(lambda: b"event: snapshot" in client.body, "the snapshot")
        self.assertIn(b"Transfer-Encoding: chunked", client.head)
        ids = publish(self.hub, 3) + publish(self.hub, 1, pad=70_000)
        await wait(lambda: len(_dechunk(client.body)[0].split(b"\n\n")) == 7, "four events")
        body, chunks = _dechunk(client.body)
        blocks = body.split(b"\n\n")[:-1]
        run = self.hub.run.encode()
        self.assertEqual(
            [b.split(b"\n")[0] for b in blocks[2:]], [b"id: %s:%d" % (run, i) for i in ids]
        )
        self.assertEqual(chunks, 3)  # retry + snapshot, then the turn's four events in one

    async def test_resume_with_last_event_id(self) -> None:
        """Last-Event-ID (the run:id of an id line; or last_id and run in the query) replays
        exactly what was missed."""
        _, host, port = await start_api(self, self.hub, self.state)
        first = await self.open(host, port)
        await wait(lambda: len(first.messages()) == 1, "the snapshot")
        seen = publish(self.hub, 3)
        await wait(lambda: len(first.messages()) == 4, "snapshot and three events")
        first.close()
        await first.closed
        missed = publish(self.hub, 2)
        last_event_id = first.events()[-1]["id"]
        self.assertEqual(last_event_id, f"{self.hub.run}:{seen[-1]}")
        by_header = await self.open(host, port, **{"Last-Event-ID": last_event_id})
        query = f"/api/v1/events?last_id={seen[-1]}&run={self.hub.run}"
        by_query = await self.open(host, port, query)
        later = publish(self.hub, 1)
        for client in (by_header, by_query):
            await wait(lambda c=client: len(c.messages()) == 3, "missed and live")
            self.assertEqual([m["id"] for m in client.messages()], missed + later)

    async def test_resume_as_run_colon_id_in_the_query(self) -> None:
        """``?last_id=R:N`` (docs/api.md: what a non-browser client may send instead of the
        header) replays exactly the messages after N, no snapshot."""
        _, host, port = await start_api(self, self.hub, self.state)
        seen = publish(self.hub, 3)
        missed = publish(self.hub, 2)
        client = await self.open(host, port, f"/api/v1/events?last_id={self.hub.run}:{seen[-1]}")
        await wait(lambda: len(client.messages()) == 2, "the missed messages")
        later = publish(self.hub, 1)
        await wait(lambda: len(client.messages()) == 3, "the live message")
        self.assertEqual([m["id"] for m in client.messages()], missed + later)
        self.assertNotIn("snapshot", [e.get("event") for e in client.events()])

    async def test_joining_while_messages_flow_loses_and_repeats_nothing(self) -> None:
        """docs/api.md: the snapshot (or the replay) is taken in the reactor turn the client
        starts receiving in: streams opened fresh or with Last-Event-ID while a message is
        published every turn get, after the snapshot's last_id (or theirs), every id once."""
        hub = Hub(reactor, replay=100_000)
        hub.set_snapshot_provider(self.state.snapshot)
        _, host, port = await start_api(self, hub, self.state)
        stop = pump(self, hub)

        def ids(client: SseClient) -> list[int]:
            return [m["id"] for m in client.messages() if m.get("type") != "snapshot"]

        joined, resumed = [], []
        for _ in range(3):
            fresh = await self.open(host, port)
            await wait(lambda c=fresh: len(ids(c)) >= 2, "the snapshot and live messages")
            joined.append(fresh)
            cursor = hub.last_id
            again = await self.open(host, port, **{"Last-Event-ID": f"{hub.run}:{cursor}"})
            await wait(lambda c=again: len(ids(c)) >= 2, "messages after the cursor")
            resumed.append((cursor, again))
        stop()
        last = hub.last_id
        for client in joined:
            await wait(lambda c=client: ids(c)[-1] == last, "every message")
            first = client.messages()[0]
            self.assertEqual(first["type"], "snapshot")
            self.assertEqual(ids(client), list(range(first["last_id"] + 1, last + 1)))
        for cursor, client in resumed:
            await wait(lambda c=client: ids(c)[-1] == last, "every message")
            self.assertEqual(
                [m["id"] for m in client.messages()], list(range(cursor + 1, last + 1))
            )

    async def test_an_id_without_its_run_resets(self) -> None:
        """An id that comes without its run (``?last_id=N``, or ``Last-Event-ID: N``) cannot be
        trusted, even when this run's ring holds it: a reset event (no ``id:``) and a fresh
        snapshot, then live messages. So does an id of another run (the daemon restarted)."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 5)
        for path, headers in (
            ("/api/v1/events?last_id=3", {}),
            ("/api/v1/events", {"Last-Event-ID": "3"}),
            ("/api/v1/events?last_id=0123456789ab:3", {}),
            ("/api/v1/events", {"Last-Event-ID": "0123456789ab:3"}),
        ):
            client = await self.open(host, port, path, **headers)
            await wait(lambda c=client: len(c.messages()) == 2, "reset and snapshot")
            reset, snapshot = client.events()[1:3]
            self.assertEqual(reset["event"], "reset", path)
            self.assertNotIn("id", reset)
            self.assertEqual(snapshot["id"], f"{self.hub.run}:{self.hub.last_id}")
            self.assertEqual(client.messages()[1]["last_id"], self.hub.last_id)
        later = publish(self.hub, 1)
        await wait(lambda: len(client.messages()) == 3, "the live message")
        self.assertEqual(client.messages()[2]["id"], later[0])

    async def test_odd_digits_in_last_event_id_are_a_fresh_snapshot(self) -> None:
        """A Last-Event-ID of a superscript digit (a digit to str.isdigit, not to int), sent as
        UTF-8, is garbage: the client gets a 200 and a fresh snapshot."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 2)
        for value in ("\u00b2", f"{self.hub.run}:\u00b2"):
            client = await self.open(host, port, **{"Last-Event-ID": value})
            await wait(lambda c=client: len(c.messages()) == 1, "the snapshot")
            self.assertEqual(client.status, 200)
            self.assertEqual(client.events()[1]["event"], "snapshot")
            self.assertEqual(client.messages()[0]["last_id"], 2)

    async def test_resume_too_old(self) -> None:
        """A Last-Event-ID no longer in the ring gets a reset event and a fresh snapshot."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 80)
        client = await self.open(host, port, **{"Last-Event-ID": f"{self.hub.run}:5"})
        await wait(lambda: len(client.messages()) == 2, "reset and snapshot")
        self.assertEqual([e.get("event") for e in client.events()[1:]], ["reset", "snapshot"])
        self.assertEqual(client.messages()[1]["last_id"], 80)

    async def test_filters(self) -> None:
        """Query-parameter filters select the messages (the snapshot is always sent)."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await self.open(host, port, "/api/v1/events?room=OFFICE&types=event")
        await wait(lambda: len(client.messages()) == 1, "the snapshot")
        publish(self.hub, 2, KITCHEN)
        office = publish(self.hub, 1, OFFICE)
        self.hub.publish("topology.changed", {})
        marker = publish(self.hub, 1, OFFICE)
        await wait(lambda: len(client.messages()) == 3, "snapshot and two office events")
        self.assertEqual([m["id"] for m in client.messages()[1:]], office + marker)

    async def test_the_filter_passes_reset_and_snapshot(self) -> None:
        """docs/api.md, Filters: the snapshot and a reset are never filtered: a filter that
        only speaker.online passes still gets both first, then only what it accepts."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 5)
        path = f"/api/v1/events?types=speaker.online&last_id={self.hub.run}:999"
        client = await self.open(host, port, path)
        await wait(lambda: len(client.messages()) == 2, "reset and snapshot")
        publish(self.hub, 2)
        self.hub.publish("topology.changed", {})
        marker = self.hub.publish("speaker.online", {"reason": "x"}, speaker=KITCHEN.to_json())
        await wait(lambda: len(client.messages()) == 3, "the one message it accepts")
        self.assertEqual(
            [e.get("event") for e in client.events()[1:]], ["reset", "snapshot", "speaker.online"]
        )
        self.assertEqual(client.messages()[1]["last_id"], 5)
        self.assertEqual(client.messages()[2]["id"], marker.id)

    async def test_unknown_query_key_is_refused(self) -> None:
        """An unknown parameter is a 400 bad_filter naming it, as on the WebSocket; last_id
        and access_token are not filter keys but are known."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = SseClient(sse_request("/api/v1/events?rom=Kitchen"))
        await connect_raw(host, port, client, self)
        await client.closed
        self.assertEqual(client.status, 400)
        body = json.loads(client.body)
        self.assertEqual(body["error"]["code"], "bad_filter")
        self.assertIn("unknown key 'rom'", body["error"]["message"])
        known = await self.open(host, port, "/api/v1/events?access_token=x&rooms=A")
        await wait(lambda: len(known.messages()) == 1, "the snapshot")

    async def test_empty_filter_value(self) -> None:
        """An empty filter parameter filters nothing out."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await self.open(host, port, "/api/v1/events?rooms=")
        await wait(lambda: len(client.messages()) == 1, "the snapshot")
        ids = publish(self.hub, 1, OFFICE)
        await wait(lambda: len(client.messages()) == 2, "the event")
        self.assertEqual(client.messages()[1]["id"], ids[0])

    async def test_heartbeat(self) -> None:
        """An idle stream gets keepalive comments."""
        _, host, port = await start_api(self, self.hub, self.state, heartbeat=0.05)
        client = await self.open(host, port)
        await wait(lambda: any("comments" in e for e in client.events()), "a keepalive")
        self.assertIn("keepalive", [c for e in client.events() for c in e.get("comments", [])])

    async def test_a_keepalive_at_every_beat_unless_behind(self) -> None:
        """docs/api.md: a keepalive comment goes out at every heartbeat, between messages too
        (an idle stream is never silent longer: the dashboard counts on it), and none while
        the client is behind. (The heartbeat's timer is off: the test beats by hand.)"""
        service, host, port = await start_api(self, self.hub, self.state, heartbeat=0)
        client = await self.open(host, port)
        await wait(lambda: len(client.events()) == 2, "the snapshot")
        (peer,) = service.events.channel.clients
        shape: list[str] = []

        async def publish_one() -> None:
            (sent,) = publish(self.hub, 1)
            shape.append(f"{self.hub.run}:{sent}")
            await wait(lambda: client.events()[-1].get("id") == shape[-1], "the message")

        peer.heartbeat()  # type: ignore[attr-defined]
        shape.append("keepalive")
        await publish_one()
        peer.heartbeat()  # type: ignore[attr-defined]
        peer.heartbeat()  # type: ignore[attr-defined]
        shape += ["keepalive", "keepalive"]
        await publish_one()
        peer.queue.pauseProducing()  # type: ignore[attr-defined]  # as when the client lags
        peer.heartbeat()  # type: ignore[attr-defined]
        peer.queue.resumeProducing()  # type: ignore[attr-defined]
        await publish_one()
        got = [e["comments"][0] if "comments" in e else e["id"] for e in client.events()[2:]]
        self.assertEqual(got, shape)

    async def test_auth(self) -> None:
        """No token or a wrong one is a 401 with nothing leaked; the right one streams."""
        _, host, port = await start_api(self, self.hub, self.state, tokens=(READER,))
        publish(self.hub, 1)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = await self.open(host, port, **headers)
            await refused.closed
            self.assertEqual(refused.status, 401)
            self.assertIn(b"WWW-Authenticate: Bearer", refused.head)
            self.assertNotIn(b"RINCON", refused.data)
            self.assertNotIn(b"snapshot", refused.data)
        allowed = await self.open(host, port, "/api/v1/events?access_token=read-secret")
        await wait(lambda: len(allowed.messages()) == 1, "the snapshot")

    async def test_slow_client_is_disconnected_others_continue(self) -> None:
        """A client that stops reading is told it is too slow and closed; others get all."""
        service, host, port = await start_api(self, self.hub, self.state, client_buffer=4)
        slow = await self.open(host, port)
        fast = await self.open(host, port)
        await wait(lambda: len(slow.events()) == 2 and len(fast.events()) == 2, "snapshots")
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.events.channel
        sent = await flood(self.hub, lambda: len(channel.clients) < 2)
        self.assertEqual(len(channel.clients), 1)
        await wait(lambda: len(fast.messages()) == len(sent) + 1, "every message at the fast one")
        self.assertEqual([m["id"] for m in fast.messages()[1:]], sent)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed
        self.assertTrue(slow.body.endswith(b": disconnected: too slow\n\n"))
        self.assertEqual(service.metrics.slow.labels("sse")._value.get(), 1)
        # Disconnected when more than client_buffer (4) waited, one message a turn: those 5
        # are sonosd_api_dropped_frames_total's.
        self.assertEqual(service.metrics.dropped.labels("sse")._value.get(), 5)

    async def test_a_client_closed_as_too_slow_resumes_without_loss(self) -> None:
        """docs/api.md, slow clients: a client closed as too slow reconnects with the
        Last-Event-ID it read last and gets every message it missed from the ring, then live
        ones, with no gap and no duplicate."""
        hub = Hub(reactor, replay=5000)
        hub.set_snapshot_provider(self.state.snapshot)
        service, host, port = await start_api(self, hub, self.state, client_buffer=4)
        slow = await self.open(host, port)
        await wait(lambda: len(slow.events()) == 2, "the snapshot")
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.events.channel
        sent = await flood(hub, lambda: not channel.clients)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed
        self.assertTrue(slow.body.endswith(b": disconnected: too slow\n\n"))
        got = [m["id"] for m in slow.messages()[1:]]
        self.assertEqual(got, sent[: len(got)])
        self.assertLess(len(got), len(sent))
        last_event_id = [e["id"] for e in slow.events() if "id" in e][-1]
        again = await self.open(host, port, **{"Last-Event-ID": last_event_id})
        later = publish(hub, 1)
        missed = sent[len(got) :] + later
        await wait(lambda: len(again.messages()) == len(missed), "the missed messages")
        self.assertEqual([m["id"] for m in again.messages()], missed)

    async def test_slow_client_that_keeps_not_reading_is_aborted(self) -> None:
        """A client closed as too slow that never reads its last words is aborted after the
        grace period, its connection gone on the server while it still reads nothing."""
        service, host, port = await start_api(self, self.hub, self.state, client_buffer=4)
        slow = await self.open(host, port)
        await wait(lambda: len(slow.events()) == 2, "the snapshot")
        (connection,) = service.site.channels
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.events.channel
        await flood(self.hub, lambda: not channel.clients)
        self.assertEqual(service.metrics.slow.labels("sse")._value.get(), 1)
        # Its buffers are full: only an abort ends the connection while it does not read.
        await wait(lambda: connection.lost.called, "the connection aborted")
        self.assertFalse(slow.closed.called)
        self.assertNotIn(b"too slow", slow.data)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        await slow.closed

    async def test_stop_service_closes_streams(self) -> None:
        """stopService ends every stream with a comment and closes it."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await self.open(host, port)
        await wait(lambda: len(client.events()) == 2, "the snapshot")
        await service.stopService()
        await client.closed
        self.assertTrue(client.body.endswith(b": server shutting down\n\n"))


def _dechunk(data: bytes) -> tuple[bytes, int]:
    """The complete chunks of a chunked body, joined, and how many there were."""
    body, count = b"", 0
    while True:
        size, sep, rest = data.partition(b"\r\n")
        if not sep:
            return body, count
        length = int(size, 16)
        if len(rest) < length + 2:
            return body, count
        body += rest[:length]
        count += 1
        data = rest[length + 2 :]
