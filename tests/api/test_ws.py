"""Tests for sonosd.api.ws: real autobahn clients against a real Site fed by a real Hub."""

from __future__ import annotations

import json
import socket
from typing import Any

from autobahn.websocket.protocol import PreparedMessage
from twisted.internet import reactor
from twisted.internet.defer import Deferred, fail, succeed
from twisted.trial.unittest import SynchronousTestCase, TestCase

from sonosd.api.ws import text_frame
from sonosd.delivery.hub import Hub
from tests.api_helpers import (
    ADMIN,
    KITCHEN,
    OFFICE,
    READER,
    RawClient,
    WsClient,
    connect_raw,
    connect_ws,
    flood,
    household,
    kept_send_buffer,
    publish,
    pump,
    start_api,
    wait,
)


class ControlError(Exception):
    """Shaped like sonosd.control.controller.ControlError."""

    def __init__(self, code: str, status: int, message: str, upnp_error: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.upnp_error = upnp_error


class RecordingController:
    """Records commands; answers from a table."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def execute(self, speaker_id: str, command: str, args: dict[str, Any]) -> Deferred[Any]:
        self.calls.append((speaker_id, command, dict(args)))
        if command == "explode":
            return fail(ControlError("speaker_error", 502, "UPnP error 701", 701))
        return succeed({"volume": args.get("volume", 0)})


class DeafClient(WsClient):
    """A client whose peer has gone away: it counts the server's pings and answers none."""

    def onPing(self, payload: bytes) -> None:
        self.pings += 1


class FramingTests(SynchronousTestCase):
    def test_text_frame_matches_autobahn(self) -> None:
        """A frame is what autobahn prepares for an unmasked text message, at every length."""
        for length in (0, 1, 125, 126, 65_535, 65_536, 70_000):
            payload = b"x" * length
            expected = PreparedMessage(payload, False, False, True).payloadHybi
            self.assertEqual(text_frame(payload), expected, length)


class WebSocketTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        self.hub = Hub(reactor, replay=50)
        self.state = household()
        self.hub.set_snapshot_provider(self.state.snapshot)

    async def test_snapshot_then_messages(self) -> None:
        """A client gets the snapshot stamped with last_id, then each later message once."""
        publish(self.hub, 2)
        _, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        await wait(lambda: len(client.messages) == 1, "snapshot")
        snapshot = client.messages[0]
        self.assertEqual(snapshot["type"], "snapshot")
        self.assertEqual(snapshot["last_id"], 2)
        self.assertEqual(
            [s["uid"] for s in snapshot["speakers"]], sorted([KITCHEN.uid, OFFICE.uid])
        )
        ids = publish(self.hub, 3)
        await wait(lambda: len(client.events()) == 3, "three events")
        self.assertEqual([m["id"] for m in client.events()], ids)

    async def test_messages_are_not_held_back_by_nagle(self) -> None:
        """A WebSocket connection has Nagle's algorithm off (TCP_NODELAY) and a 256 KiB kernel
        send buffer."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        await wait(lambda: len(client.messages) == 1, "snapshot")
        (peer,) = service.websocket.channel.clients
        sock = peer.transport.getHandle()
        self.assertEqual(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1)
        # docs/api.md: its kernel send buffer is kept at 256 KiB.
        self.assertEqual(sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF), kept_send_buffer())

    async def test_resume_without_loss_or_duplicate(self) -> None:
        """A reconnect with last_id and run (separately or as run:id) gets exactly the messages
        it missed, no snapshot."""
        _, host, port = await start_api(self, self.hub, self.state)
        first = await connect_ws(self, host, port)
        publish(self.hub, 3)
        await wait(lambda: len(first.events()) == 3, "three events")
        last_seen, run = first.events()[-1]["id"], first.events()[-1]["run"]
        first.dropConnection(abort=True)
        await first.closed
        missed = publish(self.hub, 4)
        second = await connect_ws(self, host, port, f"last_id={last_seen}&run={run}")
        third = await connect_ws(self, host, port, f"last_id={run}:{last_seen}")
        for client in (second, third):
            await wait(lambda c=client: len(c.messages) == 4, "the missed messages")
        later = publish(self.hub, 1)
        for client in (second, third):
            await wait(lambda c=client: len(c.messages) == 5, "the live message")
            self.assertEqual([m["id"] for m in client.messages], missed + later)
            self.assertNotIn("snapshot", [m["type"] for m in client.messages])

    async def test_joining_while_messages_flow_loses_and_repeats_nothing(self) -> None:
        """docs/api.md: the snapshot (or the replay) is taken in the reactor turn the client
        starts receiving in: clients that join or resume while a message is published every
        turn get, after the snapshot's last_id (or their own), every later id exactly once."""
        hub = Hub(reactor, replay=100_000)
        hub.set_snapshot_provider(self.state.snapshot)
        _, host, port = await start_api(self, hub, self.state)
        stop = pump(self, hub)
        joined, resumed = [], []
        for _ in range(3):
            joined.append(await connect_ws(self, host, port))
            cursor = hub.last_id
            resumed.append(
                (cursor, await connect_ws(self, host, port, f"last_id={hub.run}:{cursor}"))
            )
        stop()
        last = hub.last_id
        for client in joined:
            await wait(lambda c=client: c.messages and c.messages[-1].get("id") == last, "all")
            snapshot, *rest = client.messages
            self.assertEqual(snapshot["type"], "snapshot")
            after = [m["id"] for m in rest]
            self.assertEqual(after, list(range(snapshot["last_id"] + 1, last + 1)))
        for cursor, client in resumed:
            await wait(lambda c=client: c.messages and c.messages[-1].get("id") == last, "all")
            self.assertEqual([m["id"] for m in client.messages], list(range(cursor + 1, last + 1)))

    async def test_resume_too_old_resets(self) -> None:
        """A last_id older than the ring (or from the future) gets reset, then a snapshot;
        so does one the ring holds that comes without its run or with another run's
        (docs/api.md, Resuming without loss, 3)."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 60)
        run = self.hub.run
        for query, said in (
            (f"last_id=3&run={run}", "not in the replay buffer"),
            (f"last_id=999&run={run}", "not in the replay buffer"),
            ("last_id=55", "came without the run"),
            ("last_id=0123456789ab:55", "from another run"),
            ("last_id=55&run=0123456789ab", "from another run"),
        ):
            client = await connect_ws(self, host, port, query)
            await wait(lambda c=client: len(c.messages) == 2, "reset and snapshot")
            self.assertEqual([m["type"] for m in client.messages], ["reset", "snapshot"], query)
            self.assertEqual(set(client.messages[0]), {"type", "reason"})
            self.assertIn(said, client.messages[0]["reason"], query)
            self.assertEqual((client.messages[1]["run"], client.messages[1]["last_id"]), (run, 60))

    async def test_the_filter_passes_snapshot_reset_and_replies(self) -> None:
        """A filter that no message passes still lets through the reset, the snapshot, and
        the filter, result and error replies; the filter reply lists rooms as compared
        (case-folded) and types as given."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller)
        publish(self.hub, 60)
        query = f"last_id=3&run={self.hub.run}&types=nothing"
        client = await connect_ws(self, host, port, query)
        await wait(lambda: len(client.messages) == 2, "reset and snapshot")
        self.assertEqual([m["type"] for m in client.messages], ["reset", "snapshot"])
        client.send({"op": "filter", "id": 1, "rooms": ["Kitchen"], "types": ["nothing"]})
        client.send({"op": "command", "id": 2, "speaker": "Office", "command": "play"})
        client.send({"op": "dance", "id": 3})
        publish(self.hub, 2, OFFICE)
        await wait(lambda: len(client.messages) == 5, "three replies")
        self.assertEqual(
            client.messages[2],
            {"type": "filter", "id": 1, "filter": {"rooms": ["kitchen"], "types": ["nothing"]}},
        )
        self.assertEqual(
            [(m["type"], m["id"]) for m in client.messages[3:]], [("result", 2), ("error", 3)]
        )
        self.assertEqual(client.events(), [])

    async def test_odd_digits_in_last_id_are_a_fresh_snapshot(self) -> None:
        """A last_id of a superscript digit (a digit to str.isdigit, not to int) is garbage:
        the client gets a fresh snapshot, as for any unreadable last_id."""
        _, host, port = await start_api(self, self.hub, self.state)
        publish(self.hub, 2)
        for query in ("last_id=%C2%B2", f"last_id={self.hub.run}:%C2%B2"):
            client = await connect_ws(self, host, port, query)
            await wait(lambda c=client: len(c.messages) == 1, "the snapshot")
            self.assertEqual(client.messages[0]["type"], "snapshot", query)
            self.assertEqual(client.messages[0]["last_id"], 2)

    async def test_filters_at_connect_and_on_the_socket(self) -> None:
        """Query filters apply from the start; a filter op replaces them."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port, "rooms=office")
        publish(self.hub, 2, KITCHEN)
        office = publish(self.hub, 1, OFFICE)
        await wait(lambda: len(client.events()) == 1, "the office event")
        self.assertEqual([m["id"] for m in client.events()], office)
        client.send({"op": "filter", "id": 7, "speakers": [KITCHEN.uid]})
        await wait(lambda: client.messages[-1]["type"] == "filter", "the acknowledgement")
        self.assertEqual(
            client.messages[-1], {"type": "filter", "id": 7, "filter": {"speakers": [KITCHEN.uid]}}
        )
        publish(self.hub, 1, OFFICE)
        kitchen = publish(self.hub, 1, KITCHEN)
        await wait(lambda: len(client.events()) == 2, "the kitchen event")
        self.assertEqual(client.events()[-1]["id"], kitchen[0])

    async def test_an_empty_filter_op_lets_everything_through(self) -> None:
        """A filter op without keys replaces a narrow filter with everything: its reply's
        ``filter`` is an empty object (docs/api.md), and every message follows."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port, "rooms=office&types=event")
        client.send({"op": "filter", "id": "all"})
        await wait(lambda: len(client.messages) == 2, "the snapshot and the acknowledgement")
        self.assertEqual(client.messages[-1], {"type": "filter", "id": "all", "filter": {}})
        ids = publish(self.hub, 1, KITCHEN)
        ids.append(self.hub.publish("topology.changed", {}).id)
        await wait(lambda: len(client.messages) == 4, "both messages")
        self.assertEqual([m["id"] for m in client.messages[2:]], ids)

    async def test_bad_filter_op(self) -> None:
        """A malformed filter op is answered with an error and changes nothing."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        client.send({"op": "filter", "id": 1, "roms": ["Kitchen"]})
        client.sendMessage(b"not json")
        client.send({"op": "dance", "id": 2})
        await wait(lambda: len(client.messages) == 4, "three errors")
        codes = [(m["id"], m["error"]["code"]) for m in client.messages[1:]]
        self.assertEqual(codes, [(1, "bad_filter"), (None, "bad_request"), (2, "bad_request")])

    async def test_commands(self) -> None:
        """A command op calls controller.execute and answers result or error by id."""
        controller = RecordingController()
        _, host, port = await start_api(
            self, self.hub, self.state, controller, tokens=(READER, ADMIN)
        )
        client = await connect_ws(self, host, port, "access_token=admin-secret")
        client.send(
            {
                "op": "command",
                "id": "a",
                "speaker": "Kitchen",
                "command": "volume",
                "args": {"volume": 20},
            }
        )
        client.send({"op": "command", "id": "b", "speaker": "Kitchen", "command": "explode"})
        client.send({"op": "command", "id": "c", "speaker": 3, "command": "x"})
        await wait(lambda: len(client.messages) == 4, "three replies")
        replies = {m["id"]: m for m in client.messages[1:]}
        self.assertEqual(replies["a"], {"type": "result", "id": "a", "result": {"volume": 20}})
        self.assertEqual(
            replies["b"]["error"],
            {"code": "speaker_error", "message": "UPnP error 701", "upnp_error": 701},
        )
        self.assertEqual(replies["c"]["error"]["code"], "bad_request")
        self.assertEqual(
            controller.calls, [("Kitchen", "volume", {"volume": 20}), ("Kitchen", "explode", {})]
        )

    async def test_command_needs_control_scope(self) -> None:
        """A read token cannot run commands over the socket."""
        controller = RecordingController()
        _, host, port = await start_api(self, self.hub, self.state, controller, tokens=(READER,))
        client = await connect_ws(self, host, port, headers={"Authorization": "Bearer read-secret"})
        client.send({"op": "command", "id": 1, "speaker": "Kitchen", "command": "play"})
        await wait(lambda: len(client.messages) == 2, "the refusal")
        self.assertEqual(client.messages[1]["error"]["code"], "forbidden")
        self.assertEqual(controller.calls, [])

    async def test_commands_without_controller(self) -> None:
        """Without a controller every command op is answered not_available."""
        _, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        client.send({"op": "command", "id": 1, "speaker": "Kitchen", "command": "play"})
        await wait(lambda: len(client.messages) == 2, "the refusal")
        self.assertEqual(client.messages[1]["error"]["code"], "not_available")

    async def test_missing_or_wrong_token(self) -> None:
        """Without a valid token the upgrade is refused with 401 before any message."""
        _, host, port = await start_api(self, self.hub, self.state, tokens=(READER,))
        for credential in ("", "Authorization: Bearer nope\r\n"):
            raw = RawClient(
                (
                    "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    f"Sec-WebSocket-Version: 13\r\n{credential}\r\n"
                ).encode()
            )
            await connect_raw(host, port, raw, self)
            await wait(lambda r=raw: b"\r\n\r\n" in r.data and r.data.endswith(b"}"), "401")
            self.assertTrue(raw.data.startswith(b"HTTP/1.1 401"))
            self.assertIn(b"WWW-Authenticate: Bearer", raw.data)
            self.assertNotIn(b"snapshot", raw.data)
            self.assertNotIn(b"RINCON", raw.data)

    async def test_unknown_query_key_refused(self) -> None:
        """An unknown query parameter refuses the upgrade (400), as SSE does."""
        _, host, port = await start_api(self, self.hub, self.state)
        raw = RawClient(
            b"GET /api/v1/ws?rom=Kitchen HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await connect_raw(host, port, raw, self)
        await wait(lambda: raw.data.startswith(b"HTTP/1.1 400"), "400")
        self.assertIn(b"unknown key 'rom'", raw.data)

    async def test_cross_origin_refused(self) -> None:
        """A browser page from another origin cannot open the socket."""
        _, host, port = await start_api(self, self.hub, self.state)
        with self.assertRaises(ConnectionError):
            await connect_ws(self, host, port, headers={"Origin": "http://evil.example"})

    async def test_slow_client_is_disconnected_others_continue(self) -> None:
        """A client that stops reading is closed with 1008; a reading client gets everything."""
        service, host, port = await start_api(self, self.hub, self.state, client_buffer=4)
        slow = await connect_ws(self, host, port)
        fast = await connect_ws(self, host, port)
        slow.transport.pauseProducing()  # stop reading: the server's buffers fill up
        channel = service.websocket.channel
        sent = await flood(self.hub, lambda: not _has_peer(channel, slow))
        self.assertFalse(_has_peer(channel, slow))
        await wait(lambda: len(fast.events()) == len(sent), "every message at the fast client")
        self.assertEqual([m["id"] for m in fast.events()], sent)
        slow.transport.resumeProducing()
        code, reason = await slow.closed
        self.assertEqual(code, 1008)
        self.assertEqual(reason, "too slow: more than 4 messages behind")
        self.assertEqual(service.metrics.slow.labels("websocket")._value.get(), 1)
        # The 5 that waited when it went over client_buffer (one message a turn).
        self.assertEqual(service.metrics.dropped.labels("websocket")._value.get(), 5)

    async def test_a_client_closed_as_too_slow_resumes_without_loss(self) -> None:
        """docs/api.md, slow clients: a client closed with 1008 reconnects with the last id
        it read and gets every message it missed from the ring, then live ones, with no gap
        and no duplicate."""
        hub = Hub(reactor, replay=5000)
        hub.set_snapshot_provider(self.state.snapshot)
        service, host, port = await start_api(self, hub, self.state, client_buffer=4)
        slow = await connect_ws(self, host, port)
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.websocket.channel
        sent = await flood(hub, lambda: not channel.clients)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        code, _ = await slow.closed
        self.assertEqual(code, 1008)
        got = [m["id"] for m in slow.events()]
        self.assertEqual(got, sent[: len(got)])
        self.assertLess(len(got), len(sent))
        cursor = f"{hub.run}:{got[-1] if got else 0}"
        again = await connect_ws(self, host, port, f"last_id={cursor}")
        later = publish(hub, 1)
        missed = sent[len(got) :] + later
        await wait(lambda: len(again.messages) == len(missed), "the missed messages")
        self.assertEqual([m["id"] for m in again.messages], missed)

    async def test_a_reply_follows_the_messages_waiting_before_it(self) -> None:
        """docs/api.md: replies to operations come in order with the messages; a reply to a
        client that stopped reading waits behind the messages already queued for it."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        (peer,) = service.websocket.channel.clients
        client.transport.pauseProducing()  # type: ignore[union-attr]
        queue: Any = peer.queue  # type: ignore[attr-defined]
        sent = await flood(self.hub, lambda: len(queue) >= 2, most=200)
        self.assertGreaterEqual(len(queue), 2)
        client.send({"op": "filter", "id": "f", "rooms": ["Kitchen"]})
        await wait(lambda: peer.filter.to_json() == {"rooms": ["kitchen"]}, "the filter read")  # type: ignore[attr-defined]
        later = publish(self.hub, 1, OFFICE) + publish(self.hub, 1, KITCHEN)
        client.transport.resumeProducing()  # type: ignore[union-attr]
        await wait(lambda: len(client.messages) == len(sent) + 3, "every message and the reply")
        after = [(m["type"], m["id"]) for m in client.messages[1:]]
        expected = [("event", i) for i in sent] + [("filter", "f"), ("event", later[1])]
        self.assertEqual(after, expected)

    async def test_slow_client_that_keeps_not_reading_is_aborted(self) -> None:
        """A client closed as too slow that never reads its close frame is aborted once
        the close handshake times out, while it still reads nothing."""
        service, host, port = await start_api(self, self.hub, self.state, client_buffer=4)
        slow = await connect_ws(self, host, port)
        (peer,) = service.websocket.channel.clients
        slow.transport.pauseProducing()  # type: ignore[union-attr]
        channel = service.websocket.channel
        await flood(self.hub, lambda: not channel.clients)
        self.assertEqual(service.metrics.slow.labels("websocket")._value.get(), 1)
        # autobahn's close handshake timeout (5 s) ends it: wait well beyond that.
        await wait(lambda: peer.lost.called, "the connection aborted", deadline=20.0)  # type: ignore[attr-defined]
        self.assertTrue(peer.wasCloseHandshakeTimeout)  # type: ignore[attr-defined]
        self.assertFalse(slow.closed.called)
        slow.transport.resumeProducing()  # type: ignore[union-attr]
        code, _ = await slow.closed
        self.assertEqual(code, 1006)  # abnormal closure: no close frame came through

    async def test_one_turn_of_messages_of_every_size(self) -> None:
        """Messages published in one turn (7-, 16- and 64-bit lengths) arrive intact, in order."""
        _, host, port = await start_api(self, self.hub, self.state)
        clients = [await connect_ws(self, host, port) for _ in range(3)]
        ids = [publish(self.hub, 1, pad=pad)[0] for pad in (0, 200, 70_000, 10, 0)]
        for client in clients:
            await wait(lambda c=client: len(c.events()) == len(ids), "every message")
            self.assertEqual([m["id"] for m in client.events()], ids)
            self.assertEqual(len(client.events()[2]["pad"]), 70_000)

    async def test_after_autobahns_own_queued_writes(self) -> None:
        """Frames follow whatever autobahn queued for delayed sending (here a ping)."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        (peer,) = service.websocket.channel.clients
        for _ in range(2):  # the first goes out at once, the second waits in send_queue
            peer.sendData(bytes((0x89, 0)), sync=True)  # type: ignore[attr-defined]
        self.assertTrue(peer.send_queue)  # type: ignore[attr-defined]
        ids = publish(self.hub, 2)
        service.websocket.channel.flush()  # written now, while the ping still waits
        await wait(lambda: len(client.events()) == 2, "both messages")
        self.assertEqual([m["id"] for m in client.events()], ids)
        self.assertEqual(client.pings, 2)

    async def test_nothing_after_the_close_frame(self) -> None:
        """Once the server has sent its close frame, no message frame follows it."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        (peer,) = service.websocket.channel.clients
        peer.sendCloseFrame(code=1000)  # type: ignore[attr-defined]
        publish(self.hub, 3)
        code, _ = await client.closed
        self.assertEqual(code, 1000)
        self.assertEqual(client.events(), [])

    async def test_keepalive_pings(self) -> None:
        """The server pings (at least a second apart); a client that answers stays connected."""
        service, host, port = await start_api(self, self.hub, self.state, heartbeat=0.01)
        client = await connect_ws(self, host, port)
        await wait(lambda: client.pings >= 2, "two pings")
        self.assertEqual(len(service.websocket.channel.clients), 1)

    async def test_a_client_that_does_not_answer_pings_is_dropped(self) -> None:
        """A client that stops answering the server's pings is dropped and no longer counted."""
        service, host, port = await start_api(self, self.hub, self.state, heartbeat=0.01)
        client = await connect_ws(self, host, port, protocol=DeafClient)
        await wait(lambda: client.closed.called, "the server dropping the silent client")
        self.assertGreaterEqual(client.pings, 1)
        await wait(lambda: not service.websocket.channel.clients, "the channel forgetting it")

    async def test_a_frame_over_64_kib_closes_the_socket_with_1009(self) -> None:
        """An operation of exactly 64 KiB is answered; a frame one byte longer closes the
        socket with 1009 and the channel lets the client go."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        await wait(lambda: len(client.messages) == 1, "the snapshot")
        operation = b'{"op": "filter", "id": 1}'
        client.sendMessage(operation + b" " * (65_536 - len(operation)))
        await wait(lambda: len(client.messages) == 2, "the filter reply")
        self.assertEqual(client.messages[1], {"type": "filter", "id": 1, "filter": {}})
        client.sendMessage(b'{"op": "filter", "id": 2}' + b" " * 65_536)
        code, _ = await client.closed
        self.assertEqual(code, 1009)
        await wait(lambda: not service.websocket.channel.clients, "the channel forgetting it")
        self.assertEqual(len(client.messages), 2)

    async def test_plain_get_is_a_json_426(self) -> None:
        """A GET of /api/v1/ws that asks for no upgrade is a JSON 426 naming the upgrade."""
        _, host, port = await start_api(self, self.hub, self.state)
        raw = RawClient(b"GET /api/v1/ws HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        await connect_raw(host, port, raw, self)
        await raw.closed
        head, _, body = raw.data.partition(b"\r\n\r\n")
        self.assertEqual(head.split(b" ")[1], b"426", head)
        self.assertIn(b"\r\nUpgrade: websocket", head)
        self.assertIn(b"\r\nContent-Type: application/json", head)
        self.assertEqual(json.loads(body)["error"]["code"], "upgrade_required")

    async def test_malformed_upgrades_are_json_400s(self) -> None:
        """An upgrade without Sec-WebSocket-Key, with a key that is not 16 bytes in base64,
        or with a WebSocket version the server does not speak is a JSON 400 bad_request
        naming the header (every path under /api answers JSON), not autobahn's bare status
        line; an unsupported version also gets the versions the server speaks."""
        _, host, port = await start_api(self, self.hub, self.state)
        key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        cases = [
            ("Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Key"),
            ("Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Key"),
            (key, "Sec-WebSocket-Version"),
            (key + "Sec-WebSocket-Version: 99\r\n", "Sec-WebSocket-Version"),
        ]
        for headers, named in cases:
            raw = RawClient(
                (
                    "GET /api/v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade, close\r\n{headers}\r\n"
                ).encode()
            )
            await connect_raw(host, port, raw, self)
            await raw.closed
            head, _, body = raw.data.partition(b"\r\n\r\n")
            self.assertEqual(head.split(b" ")[1], b"400", raw.data)
            self.assertIn(b"\r\nContent-Type: application/json", head)
            error = json.loads(body)["error"]
            self.assertEqual(error["code"], "bad_request", headers)
            self.assertIn(named, error["message"], headers)
            if "99" in headers:
                self.assertIn(b"\r\nsec-websocket-version: 13", head.lower())

    async def test_stop_service_closes_clients(self) -> None:
        """stopService closes every socket with 1001."""
        service, host, port = await start_api(self, self.hub, self.state)
        client = await connect_ws(self, host, port)
        await service.stopService()
        code, _ = await client.closed
        self.assertEqual(code, 1001)

    async def test_stop_service_aborts_a_client_that_does_not_close(self) -> None:
        """A client that never answers the close frame is aborted once the grace period ends."""
        service, host, port = await start_api(self, self.hub, self.state)
        # No close handshake timeout of autobahn's own: only the service's grace ends it.
        service.websocket.setProtocolOptions(closeHandshakeTimeout=0)
        client = await connect_ws(self, host, port)
        (peer,) = service.websocket.channel.clients
        client.transport.pauseProducing()  # type: ignore[union-attr]
        started = reactor.seconds()
        await service.stopService()
        await wait(lambda: peer.state == peer.STATE_CLOSED, "the server side closed")  # type: ignore[attr-defined]
        # Once the service's grace (1 s) is over.
        self.assertLess(reactor.seconds() - started, 3.0)
        self.assertIsNone(self.successResultOf(peer.lost))  # type: ignore[attr-defined]
        client.transport.resumeProducing()  # type: ignore[union-attr]
        await client.closed


def _has_peer(channel: Any, client: Any) -> bool:
    """Whether the server still has a client for ``client``'s local address."""
    mine = client.transport.getHost()
    return any(
        peer.transport is not None and peer.transport.getPeer() == mine for peer in channel.clients
    )
