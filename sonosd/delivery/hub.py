# -*- test-case-name: tests.delivery.test_hub -*-
"""The hub: every message gets a daemon-wide id, is serialised once, and reaches every sink.

A message is published once by whoever produced it (the event processor, the supervisor) and
handed to each registered sink (WebSocket and SSE clients, webhooks, MQTT, callbacks). The hub
keeps a bounded ring of recent messages so that a client that reconnects can resume from the
id it last saw without loss or duplicates.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

import attrs
import orjson
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from sonosd.delivery.ring import Kept, ReplayRing
from sonosd.logs import isotime

log = Logger()


# Mutable for speed (one per message, and one per message replayed; a frozen attrs class
# costs 5x to build): nothing assigns to it, every sink shares it.
@attrs.define(eq=False)
class Message:
    """One published message, serialised once.

    @ivar id: Daemon-wide, monotonic from 1.
    @ivar type: ``event``, ``speaker.online``, ``topology.changed``, ...
    @ivar body: The whole JSON object, including ``id``, ``time`` and ``type``.
    @ivar raw: ``body`` as compact UTF-8 JSON.
    @ivar speaker_uid: The speaker the message concerns, for filters (``None``: household).
    @ivar room: That speaker's room name at publication time, for filters.
    @ivar service: The UPnP service of an ``event`` message, for filters.
    @ivar event: The SoCo Event behind an ``event`` message (never serialised).
    """

    id: int
    type: str
    body: Mapping[str, Any]
    raw: bytes
    speaker_uid: str | None = None
    room: str | None = None
    service: str | None = None
    event: object | None = None


#: The most compressed JSON bytes the replay ring keeps by default.
REPLAY_BYTES = 32 * 1024 * 1024

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _kept_message(kept: Kept) -> Message:
    """The message a ring entry stands for: its JSON and filter fields."""
    id, (type, speaker_uid, room, service), raw = kept
    return Message(id, type, _EMPTY, raw, speaker_uid, room, service)


def new_run() -> str:
    """A fresh run identifier: 12 random hex digits, different for every start of the daemon.

    Message ids start again from 1 at each start; the run tells a resuming client whether its
    ``last_id`` belongs to this run (a replay) or to an earlier one (a ``reset`` and a
    snapshot). Hex digits only, so that it can be written ``<run>:<id>`` (an SSE ``id:``).
    """
    return secrets.token_hex(6)


@attrs.frozen
class Cursor:
    """Where a client resumes: the ``id`` it last saw and the ``run`` that id belongs to
    (``None``: the client did not say, so the id cannot be trusted)."""

    run: str | None
    id: int

    def __str__(self) -> str:
        return f"{self.run}:{self.id}" if self.run is not None else str(self.id)


#: The longest run identifier a client may send back (ours are 12 characters).
MAX_RUN = 64


def parse_cursor(last_id: bytes | str | None, run: bytes | str | None = None) -> Cursor | None:
    """A client's resume point from ``last_id`` (``N`` or ``<run>:N``, as SSE ``id:`` lines
    carry it) and an optional separate ``run``; ``None`` when absent or garbage.

    Garbage is treated as absent (a fresh snapshot), never as an error: the client then still
    gets a complete state. A run embedded in ``last_id`` wins over ``run``.
    """
    text = _text(last_id)
    if text is None:
        return None
    embedded, colon, number = text.rpartition(":")
    # str.isdigit() also accepts "²", which int() refuses.
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        return None
    given = embedded if colon else _text(run)
    return Cursor(given[:MAX_RUN] if given else None, int(number))


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return value.strip()


class ISink(Interface):
    """Something that receives every message the hub publishes."""

    def deliver(message: Message) -> None:
        """Take ``message``; return at once (buffer, never block, never raise)."""


def encode(body: Mapping[str, Any]) -> bytes:
    """Serialise a JSON object the way every channel sends it: compact UTF-8.

    orjson, because serialising is a large part of the cost of every event (about 15x
    cheaper than the standard library's encoder on a full AVTransport message). Its result
    keeps the whole buffer orjson wrote into (4 KB for a 250-byte volume event): the bytes
    are copied to their exact size, because a slow client's, webhook or MQTT queue can keep
    thousands of them (10,000 volume events: 40 MB of resident memory instead of 3).
    """
    return memoryview(orjson.dumps(body)).tobytes()


class Hub:
    """Stamps, serialises, remembers and fans out messages.

    The replay ring (``ReplayRing``) keeps each message's ``raw`` JSON, compressed, and its
    filter fields only (``body`` empty, ``event`` ``None``): a SoCo Event and the body's
    objects weigh several times the JSON, and a resuming client needs only the bytes. The
    ring is bounded by count and by the compressed bytes it keeps.

    @param clock: Provides the time stamped on each message.
    @param replay: How many recent messages are kept for resuming clients.
    @param replay_bytes: The most compressed JSON bytes the ring keeps (the oldest go first).
    @param run: This run's identifier (default: a fresh ``new_run()``), stamped next to
        ``id`` on every message and on the snapshot.
    """

    def __init__(
        self,
        clock: IReactorTime,
        replay: int = 10_000,
        replay_bytes: int = REPLAY_BYTES,
        run: str | None = None,
    ) -> None:
        self._clock = clock
        self.run = run if run is not None else new_run()
        self.ring = ReplayRing(replay, replay_bytes)
        self._sinks: list[ISink] = []
        self._snapshot_provider: Callable[[], dict[str, Any]] = lambda: {}
        self._client_observers: list[Callable[[], None]] = []
        self._last_id = 0
        self.published = 0
        self.sink_errors = 0

    @property
    def last_id(self) -> int:
        """The id of the last message published (0 before the first)."""
        return self._last_id

    def add_sink(self, sink: ISink) -> None:
        """Deliver every later message to ``sink``."""
        self._sinks.append(sink)

    def remove_sink(self, sink: ISink) -> None:
        """Stop delivering to ``sink``; unknown sinks are ignored."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def add_clients_observer(self, observer: Callable[[], None]) -> None:
        """Call ``observer`` (no arguments) whenever a client joins or leaves a streaming
        channel of this hub (systemd's status line counts them)."""
        self._client_observers.append(observer)

    def clients_changed(self) -> None:
        """A channel's clients changed (``Channel.join`` and ``Channel.leave`` say so)."""
        for observer in self._client_observers:
            observer()

    @property
    def sinks(self) -> tuple[ISink, ...]:
        """The sinks currently registered."""
        return tuple(self._sinks)

    def set_snapshot_provider(self, provider: Callable[[], dict[str, Any]]) -> None:
        """Use ``provider`` (usually ``HouseholdState.snapshot``) for ``snapshot()``."""
        self._snapshot_provider = provider

    def snapshot(self) -> dict[str, Any]:
        """The current state of every speaker and the topology, stamped with ``last_id``.

        A client that takes this snapshot and registers as a sink in the same reactor turn
        receives every message after ``last_id`` exactly once.
        """
        body = dict(self._snapshot_provider())
        body["type"] = "snapshot"
        body["run"] = self.run
        body["last_id"] = self._last_id
        body["time"] = isotime(self._clock.seconds())
        return body

    def publish(
        self,
        type: str,
        fields: Mapping[str, Any],
        *,
        speaker: Mapping[str, Any] | None = None,
        service: str | None = None,
        event: object | None = None,
    ) -> Message:
        """Stamp, serialise and deliver one message; return it.

        @param type: The message type.
        @param fields: The type-specific fields of the body.
        @param speaker: The ``{"uid", "name", "host"}`` object, when the message concerns one.
        @param service: The service, for ``event`` messages.
        @param event: The SoCo Event, for callbacks.
        """
        self._last_id += 1
        body: dict[str, Any] = {
            "id": self._last_id,
            "run": self.run,
            "time": isotime(self._clock.seconds()),
            "type": type,
        }
        if speaker is not None:
            body["speaker"] = dict(speaker)
        if service is not None:
            body["service"] = service
        body.update(fields)
        message = Message(
            id=self._last_id,
            type=type,
            body=body,
            raw=encode(body),
            speaker_uid=None if speaker is None else speaker.get("uid"),
            room=None if speaker is None else speaker.get("name"),
            service=service,
            event=event,
        )
        self._remember(message)
        self.published += 1
        for sink in tuple(self._sinks):
            try:
                sink.deliver(message)
            except Exception:
                self.sink_errors += 1
                log.failure("sink {sink!r} failed on message {id}", sink=sink, id=message.id)
        return message

    def _remember(self, message: Message) -> None:
        self.ring.add(
            message.id,
            (message.type, message.speaker_uid, message.room, message.service),
            message.raw,
        )

    def resume(self, cursor: Cursor) -> Iterator[Message] | str:
        """The messages after ``cursor``, or why the client must start again from a snapshot
        (a ``reset`` reason): another run's id, an id without a run, or one gone from the ring."""
        if cursor.run is None:
            return (
                f"last_id {cursor.id} came without the run it belongs to (this run is "
                f"{self.run}): resume with {self.run}:<id>"
            )
        if cursor.run != self.run:
            return (
                f"last_id {cursor} is from another run of the daemon (this run is {self.run}, "
                "which started again from id 1)"
            )
        replay = self.since(cursor.id)
        if replay is None:
            return f"last_id {cursor.id} is not in the replay buffer (last id is {self._last_id})"
        return replay

    def since(self, last_id: int) -> Iterator[Message] | None:
        """Messages published after ``last_id``, or ``None`` when the ring no longer has them.

        ``last_id`` equal to the current ``last_id`` gives none; an id from the future (a
        client of an earlier daemon run) gives ``None``, so the client resets. The messages
        are the ones published so far, read from the ring as they are taken
        (``ReplayRing.after``). Replayed messages carry ``raw`` and the filter fields, not
        ``body`` nor ``event``.
        """
        if last_id > self._last_id or last_id < 0:
            return None
        if last_id == self._last_id:
            return iter(())
        kept = self.ring.after(last_id)
        return None if kept is None else map(_kept_message, kept)
