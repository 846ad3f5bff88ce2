# -*- test-case-name: tests.test_api_channel -*-
"""The fan-out shared by the streaming channels (WebSocket, SSE, the local stream).

Each channel registers *one* sink with the hub and keeps its own set of clients. A message is
turned into the channel's frame (an SSE block, a prepared WebSocket frame, a JSON line) at
most once, and only if some client's filter wants it, then offered to each wanting client's
``ClientQueue``.

A client joins with ``Channel.join``: in one call (so in one reactor turn, with no message
published in between) it takes the snapshot or the replay from the hub's ring and becomes a
recipient, so the client sees every message after the snapshot exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import attrs
from twisted.logger import Logger
from zope.interface import implementer

from sonosd.api.metrics import ApiMetrics
from sonosd.filters import Filter
from sonosd.hub import Hub, ISink, Message, encode

log = Logger()

F = TypeVar("F")


class Client(Protocol):
    """One connected client of a channel."""

    filter: Filter

    def offer(self, frame: Any) -> None:
        """Queue or write one frame (never blocks)."""

    def shutdown(self) -> None:
        """The server is stopping: close the connection politely."""


@attrs.frozen
class Start:
    """What a joining client is sent before live messages.

    @ivar snapshot: A snapshot body (``type`` ``snapshot``, ``last_id``), or ``None`` when the
        client resumes from the ring.
    @ivar reset: Why the client's ``last_id`` could not be resumed (a ``reset`` message
        precedes the snapshot), or ``None``.
    @ivar replay: Messages after the client's ``last_id`` (already filtered).
    """

    snapshot: dict[str, Any] | None
    reset: str | None
    replay: list[Message]


def parse_last_id(value: bytes | str | None) -> int | None:
    """A client's ``last_id``/``Last-Event-ID`` as an int; ``None`` when absent or garbage.

    Garbage is treated as absent (a fresh snapshot), never as an error: the client then still
    gets a complete state.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    value = value.strip()
    if not value.isdigit() or len(value) > 18:
        return None
    return int(value)


def reset_body(reason: str) -> dict[str, Any]:
    """The body of a ``reset`` message."""
    return {"type": "reset", "reason": reason}


@implementer(ISink)
class Channel(Generic[F]):
    """One hub sink fanning out to the clients of one channel kind.

    @param hub: The hub.
    @param name: The channel's name in metrics and logs (``websocket``, ``sse``, ``stream``).
    @param frame: Turns a message into this channel's frame; called once per message.
    @param metrics: Where client counts and slow disconnects are counted, or ``None``.
    """

    def __init__(
        self,
        hub: Hub,
        name: str,
        frame: Callable[[Message], F],
        metrics: ApiMetrics | None = None,
    ) -> None:
        self.hub = hub
        self.name = name
        self._frame = frame
        self._metrics = metrics
        self.clients: list[Client] = []
        if metrics is not None:
            metrics.track_clients(name, lambda: len(self.clients))

    def start(self) -> None:
        """Receive the hub's messages."""
        self.hub.add_sink(self)

    def stop(self) -> None:
        """Stop receiving messages and close every client."""
        self.hub.remove_sink(self)
        for client in list(self.clients):
            self.leave(client)
            client.shutdown()

    def join(self, client: Client, last_id: int | None) -> Start:
        """Make ``client`` a recipient and say what it must be sent first.

        @param last_id: The id the client last saw (resume), or ``None`` (fresh snapshot).
        """
        reset: str | None = None
        if last_id is not None:
            replay = self.hub.since(last_id)
            if replay is not None:
                self.clients.append(client)
                return Start(None, None, [m for m in replay if client.filter.matches(m)])
            reset = f"last_id {last_id} is not in the replay buffer (last id is {self.hub.last_id})"
            if self._metrics is not None:
                self._metrics.resets.labels(self.name).inc()
        snapshot = self.hub.snapshot()
        self.clients.append(client)
        return Start(snapshot, reset, [])

    def leave(self, client: Client) -> None:
        """Stop sending to ``client`` (it disconnected)."""
        if client in self.clients:
            self.clients.remove(client)

    def too_slow(self, client: Client, dropped: int) -> None:
        """``client`` could not keep up: forget it and count the frames it lost."""
        self.leave(client)
        log.warn(
            "{channel} client too slow: disconnected, {dropped} messages dropped",
            channel=self.name,
            dropped=dropped,
        )
        if self._metrics is not None:
            self._metrics.slow.labels(self.name).inc()
            self._metrics.dropped.labels(self.name).inc(dropped)

    def frame(self, message: Message) -> F:
        """This channel's frame for ``message`` (for replays)."""
        return self._frame(message)

    def deliver(self, message: Message) -> None:
        """Offer ``message`` to every client whose filter wants it, framed once."""
        framed: F | None = None
        count = 0
        for client in tuple(self.clients):
            if client.filter.matches(message):
                if framed is None:
                    framed = self._frame(message)
                client.offer(framed)
                count += 1
        if count and self._metrics is not None:
            self._metrics.frames.labels(self.name).inc(count)


def json_line(body: dict[str, Any]) -> bytes:
    """A JSON object as one newline-terminated line (the stream's framing)."""
    return encode(body) + b"\n"
