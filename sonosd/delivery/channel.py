# -*- test-case-name: tests.delivery.test_channel -*-
"""The fan-out shared by the streaming channels (WebSocket, SSE, the local stream).

Each channel registers *one* sink with the hub and keeps its own set of clients. A message is
turned into the channel's frame (an SSE block, a prepared WebSocket frame, a JSON line) at
most once, and only if some client's filter wants it, then offered to each wanting client's
``ClientQueue``.

A client joins with ``Channel.join``: in one call (so in one reactor turn, with no message
published in between) it takes the snapshot or the replay from the hub's ring and becomes a
recipient, so the client sees every message after the snapshot exactly once.

Fan-out is the daemon's hottest loop (issue 7: 100 clients x 1,000 messages/s), so a channel
keeps its clients in groups, one per *distinct* filter (clients' filters are interned), and
per message evaluates each group's filter once, without a step per client. A channel given a
clock collects each group's frames of one reactor turn and hands them to every client of the
group at the end of the turn (``offer_many``: one write per client per turn, however many
messages were published in it). Recipients are those of the message's moment: a client that
joins or changes its filter while frames wait has them handed over first, and one that leaves
is not written to, so joining, leaving and filter changes behave exactly as with immediate
delivery. A client's filter is changed through the channel (``set_filter``, ``refilter``),
never by assigning it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Generic, Protocol, TypeVar

import attrs
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from sonosd.delivery.clientjson import JsonRefused, decode_object
from sonosd.delivery.filters import Filter, FilterError
from sonosd.delivery.flow import ClientQueue
from sonosd.delivery.hub import Cursor, Hub, ISink, Message, encode
from sonosd.delivery.metrics import ApiMetrics

log = Logger()

F = TypeVar("F")


class Client(Protocol):
    """One connected client of a channel."""

    filter: Filter

    def offer(self, frame: Any) -> None:
        """Queue or write one frame (never blocks)."""

    def offer_many(self, frames: Sequence[Any]) -> None:
        """Queue or write several frames in order, in one write if possible (never blocks)."""

    def shutdown(self) -> None:
        """The server is stopping: close the connection politely."""


class QueuedClient:
    """A connection that writes through its ``ClientQueue`` (``None`` until it is open)."""

    queue: ClientQueue[bytes] | None = None

    def offer(self, frame: bytes) -> None:
        """Write or queue one frame."""
        if self.queue is not None:
            self.queue.offer(frame)

    def offer_many(self, frames: Sequence[bytes]) -> None:
        """Write or queue several frames, in one write when the transport accepts data."""
        if self.queue is not None:
            self.queue.offer_many(frames)


class BadOperation(ValueError):
    """A client sent something that is not a JSON object within the bounds; ``str()`` tells
    the client.

    @ivar reason: ``not_json``, ``too_large`` or ``too_deep`` (for counters).
    """

    def __init__(self, message: str, reason: str = "not_json") -> None:
        super().__init__(message)
        self.reason = reason


def read_operation(payload: bytes) -> dict[str, Any]:
    """A client's JSON operation (``{"op": ..., "id": ..., ...}``), as the WebSocket and the
    stream accept them, decoded within ``sonosd.delivery.clientjson``'s bounds.

    @raise BadOperation: The payload is not JSON, not an object, too large or too deep.
    """
    try:
        return decode_object(payload)
    except JsonRefused as refused:
        raise BadOperation(str(refused), refused.reason) from None


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The error object every channel uses: ``{"error": {"code", "message", ...}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    error.update({key: value for key, value in extra.items() if value is not None})
    return {"error": error}


def error_reply(request_id: Any, code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The ``error`` message answering a client's operation ``request_id``."""
    return {"type": "error", "id": request_id, **error_body(code, message, **extra)}


@attrs.frozen
class Start:
    """What a joining client is sent before live messages.

    @ivar snapshot: A snapshot body (``type`` ``snapshot``, ``last_id``), or ``None`` when the
        client resumes from the ring.
    @ivar reset: Why the client's ``last_id`` could not be resumed (a ``reset`` message
        precedes the snapshot), or ``None``.
    @ivar replay: Messages after the client's ``last_id``, filtered by its filter when it
        joined; read from the ring as they are taken (once), so that a long replay is never
        in memory at once.
    """

    snapshot: dict[str, Any] | None
    reset: str | None
    replay: Iterator[Message]


#: Query parameters of the streaming channels (SSE, WebSocket) that are not filter keys; any
#: other unknown parameter is refused (``bad_filter``) on both, as in a filter operation.
QUERY_PARAMETERS = ("last_id", "run", "access_token")


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
    @param clock: Batch each reactor turn's frames per client (``Client.offer_many`` at the
        end of the turn); ``None``: offer each frame as its message is delivered.
    """

    def __init__(
        self,
        hub: Hub,
        name: str,
        frame: Callable[[Message], F],
        metrics: ApiMetrics | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        self.hub = hub
        self.name = name
        self._frame = frame
        self._metrics = metrics
        self._clock = clock
        self.clients: list[Client] = []
        self._filters: dict[Filter, Filter] = {}
        # Interned filter -> its group, in the order the groups were made.
        self._groups: dict[Filter, _Group[F]] = {}
        # id(client) -> the group it is in.
        self._group_of: dict[int, _Group[F]] = {}
        # Scheduled while frames wait in the groups (a channel with a clock only).
        self._flush_call: IDelayedCall | None = None
        # The channel's child of the frames counter, looked up once (labels() costs more than
        # the increment, and is needed for every message).
        self._frames_sent = None if metrics is None else metrics.frames.labels(name)
        if metrics is not None:
            metrics.track_clients(name, lambda: len(self.clients))

    def start(self) -> None:
        """Receive the hub's messages."""
        self.hub.add_sink(self)

    def stop(self) -> None:
        """Stop receiving messages and close every client (after this turn's frames)."""
        self.hub.remove_sink(self)
        self.flush()
        for client in list(self.clients):
            self.leave(client)
            client.shutdown()

    def join(self, client: Client, cursor: Cursor | None) -> Start:
        """Make ``client`` a recipient and say what it must be sent first.

        The frames of this turn still waiting go to the clients that were there before it
        (its snapshot or replay holds their messages).

        @param cursor: Where the client resumes (the run and id it last saw), or ``None``
            (a fresh snapshot).
        """
        self.flush()
        client.filter = self.intern(client.filter)
        self._enter_group(client)
        self.clients.append(client)
        self.hub.clients_changed()
        return self.opening(client, cursor)

    def _enter_group(self, client: Client) -> None:
        group = self._groups.get(client.filter)
        if group is None:
            group = self._groups[client.filter] = _Group(client.filter)
        group.clients.append(client)
        self._group_of[id(client)] = group

    def _leave_group(self, client: Client) -> None:
        group = self._group_of.pop(id(client), None)
        if group is None:
            return
        group.clients.remove(client)
        if not group.clients and self._groups.get(group.filter) is group:
            del self._groups[group.filter]

    def opening(self, client: Client, cursor: Cursor | None) -> Start:
        """What a recipient must be sent before live messages to resume at ``cursor``: the
        missed messages, or a reset and a snapshot (also used by a stream client that asks to
        resume after it joined)."""
        reset: str | None = None
        if cursor is not None:
            replay = self.hub.resume(cursor)
            if not isinstance(replay, str):
                return Start(None, None, self._replayed(replay, client.filter))
            reset = replay
            if self._metrics is not None:
                self._metrics.resets.labels(self.name).inc()
        return Start(self.hub.snapshot(), reset, iter(()))

    def _replayed(self, replay: Iterable[Message], wanted: Filter) -> Iterator[Message]:
        """The messages of ``replay`` that ``wanted`` accepts, each counted as sent as the
        client's queue pulls it (a replay is produced lazily, as the connection takes data)."""
        sent = self._frames_sent
        for message in replay:
            if wanted.matches(message):
                if sent is not None:
                    sent.inc()
                yield message

    def intern(self, filter: Filter) -> Filter:
        """The channel's one object equal to ``filter``, so that it is evaluated once per message.

        Clients set ``filter`` to what this returns (``join`` does it for them).
        """
        filters = self._filters
        if len(filters) > 2 * len(self.clients) + 16:
            # Forget the filters no client uses any more.
            filters.clear()
            for client in self.clients:
                filters.setdefault(client.filter, client.filter)
        return filters.setdefault(filter, filter)

    def refilter(self, client: Client, filter: Filter) -> None:
        """Give ``client`` ``filter`` from the next message on (the frames waiting for it
        under its old filter are handed over first)."""
        self.flush()
        member = id(client) in self._group_of
        if member:
            self._leave_group(client)
        client.filter = self.intern(filter)
        if member:
            self._enter_group(client)

    def set_filter(self, client: Client, request: dict[str, Any]) -> dict[str, Any]:
        """Apply a ``filter`` operation to ``client``; return the reply (the filter now in
        force, or a ``bad_filter`` error that leaves the old one)."""
        request_id = request.get("id")
        try:
            filter = Filter.from_query(request, strict=True)
        except FilterError as error:
            return error_reply(request_id, "bad_filter", str(error))
        self.refilter(client, filter)
        return {"type": "filter", "id": request_id, "filter": client.filter.to_json()}

    def leave(self, client: Client) -> None:
        """Stop sending to ``client`` (it disconnected); frames still waiting are not written
        to it."""
        if client in self.clients:
            self._leave_group(client)
            self.clients.remove(client)
            self.hub.clients_changed()

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
        """Offer ``message`` to every client whose filter wants it, framed once.

        With a clock the frame is collected in each wanting group for the end of the reactor
        turn (``flush``).
        """
        framed: F | None = None
        count = 0
        clock = self._clock
        # A copy: a client written to at once may leave, and take its group with it.
        for group in tuple(self._groups.values()):
            if not group.filter.matches(message):
                continue
            if framed is None:
                framed = self._frame(message)
            count += len(group.clients)
            if clock is not None:
                group.frames.append(framed)
                continue
            for client in tuple(group.clients):
                client.offer(framed)
        if count:
            if clock is not None and self._flush_call is None:
                self._flush_call = clock.callLater(0, self.flush)
            if self._frames_sent is not None:
                self._frames_sent.inc(count)

    def flush(self) -> None:
        """Hand every client the frames collected for its group in this turn, in one
        ``offer_many``.

        Called at the end of the turn, and by a client before it sends something of its own
        (a reply) so that the reply follows the messages delivered before it.
        """
        call = self._flush_call
        if call is None:
            return
        self._flush_call = None
        if call.active():
            call.cancel()
        for group in tuple(self._groups.values()):
            frames = group.frames
            if not frames:
                continue
            group.frames = []
            for client in tuple(group.clients):
                try:
                    client.offer_many(frames)
                except Exception:
                    log.failure("{channel}: writing to a client failed", channel=self.name)


@attrs.define(eq=False)
class _Group(Generic[F]):
    """A channel's clients that share one (interned) filter, and the frames of this turn
    that the filter accepted."""

    filter: Filter
    clients: list[Client] = attrs.Factory(list)
    frames: list[F] = attrs.Factory(list)


def json_line(body: dict[str, Any]) -> bytes:
    """A JSON object as one newline-terminated line (the stream's framing)."""
    return encode(body) + b"\n"
