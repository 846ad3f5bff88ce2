# -*- test-case-name: tests.delivery.test_ring -*-
"""The replay ring: the JSON of the last messages, compressed in blocks, for resuming clients.

A resuming client needs each message's JSON and the fields its filters read, nothing else.
Consecutive messages of a household have most of their JSON in common (the keys, the
speaker object, the track's metadata from one transport event to the next), so the ring
keeps them in blocks of up to ``BLOCK_MESSAGES``: the newest block as the messages' own
JSON, each older one as one raw deflate stream (zlib level 1), compressed once when the
block is full. Benchmark 7's volume and AVTransport events take a seventeenth of their JSON
this way (10,000 of them: 0.5 MB for 9.1 MB), for 1-1.5 µs each; a message compressed alone
kept 40 % of an AVTransport event's JSON for 20-27 µs.

The filter fields of a message (type, speaker, room, service) are shared between the
messages that have the same ones, and its length sits in an array: a kept message costs a
few bytes beside its compressed JSON.

The ring is bounded by a count of messages and by the compressed bytes it keeps; the oldest
messages go first (a whole block at a time for the byte bound). A resuming client reads its
replay as its connection takes it, one block inflated at a time.
"""

from __future__ import annotations

import zlib
from array import array
from collections import deque
from collections.abc import Iterator

#: The most messages in one block. A resuming client inflates whole blocks, so a block
#: stays small; compression gains little past a few dozen messages.
BLOCK_MESSAGES = 64

#: The most JSON bytes in one block, for the rare large messages (a ZoneGroupTopology event
#: carries the whole topology: 80 KB at 200 speakers).
BLOCK_JSON = 256 * 1024

#: Raw deflate (no zlib header nor checksum: the ring reads back only what it wrote).
_WBITS = -15

#: The filter fields of a message: ``type``, ``speaker_uid``, ``room``, ``service``.
Fields = tuple[str, str | None, str | None, str | None]

#: What the ring gives back of a message: ``id``, its filter fields and its JSON.
Kept = tuple[int, Fields, bytes]

#: How many distinct filter-field tuples are shared before the table starts again (a
#: household has a few per speaker; renamed rooms add more).
_MAX_SHARED = 4096


class _Block:
    """Consecutive messages: their JSON as added while the block is open, then, sealed, in
    one deflate stream.

    @ivar first: The id of the block's first message.
    @ivar dropped: How many of its first messages have left the ring.
    @ivar fields: Each message's filter fields.
    @ivar lengths: Each message's JSON length.
    @ivar pending: The JSON of each message while the block is open (``None`` once sealed).
    @ivar data: The compressed JSON of every message, once sealed.
    @ivar size: Bytes kept: the JSON while open, the compressed stream once sealed.
    @ivar json: Bytes of JSON it holds.
    """

    __slots__ = ("data", "dropped", "fields", "first", "json", "lengths", "pending", "size")

    def __init__(self, first: int) -> None:
        self.first = first
        self.dropped = 0
        self.fields: list[Fields] = []
        self.lengths = array("L")
        self.pending: list[bytes] | None = []
        self.data = b""
        self.size = 0
        self.json = 0

    def add(self, fields: Fields, raw: bytes) -> None:
        """Take one more message (the block must be open)."""
        pending = self.pending
        assert pending is not None, "a sealed block takes no more messages"
        pending.append(raw)
        self.fields.append(fields)
        self.lengths.append(len(raw))
        self.size += len(raw)
        self.json += len(raw)

    def seal(self) -> int:
        """Take no more messages: compress them all in one stream. Return the bytes this
        saved."""
        pending = self.pending
        assert pending is not None, "a block is sealed once"
        compressor = zlib.compressobj(1, zlib.DEFLATED, _WBITS)
        self.data = compressor.compress(b"".join(pending)) + compressor.flush()
        self.pending = None
        saved = self.size - len(self.data)
        self.size = len(self.data)
        return saved

    def read(self, start: int, stop: int) -> Iterator[Kept]:
        """The block's messages from its ``start``-th to before its ``stop``-th (inflating a
        sealed block's whole stream once, when the first of them is taken)."""
        if self.pending is not None:
            pending = self.pending
            for index in range(start, stop):
                yield self.first + index, self.fields[index], pending[index]
            return
        stream = zlib.decompressobj(_WBITS).decompress(self.data)
        offset = sum(self.lengths[:start])
        for index in range(start, stop):
            end = offset + self.lengths[index]
            yield self.first + index, self.fields[index], stream[offset:end]
            offset = end


class ReplayRing:
    """The last ``count`` messages, at most ``max_bytes`` of them compressed.

    Messages are added in id order; ``after`` gives back the ones after an id.

    @param count: How many messages are kept (at least 1).
    @param max_bytes: The most compressed bytes kept; a whole block of the oldest messages
        goes when they are exceeded (the newest block always stays).
    @param block_messages: The most messages in one block.
    """

    def __init__(self, count: int, max_bytes: int, block_messages: int = BLOCK_MESSAGES) -> None:
        self._limit = max(1, count)
        self._max_bytes = max_bytes
        self._block_messages = max(1, block_messages)
        self._blocks: deque[_Block] = deque()
        # The block taking messages (None: the next message starts one), and the id it expects.
        self._open: _Block | None = None
        self._next_id = 0
        self._count = 0
        self._size = 0
        self._shared: dict[Fields, Fields] = {}

    def __len__(self) -> int:
        return self._count

    @property
    def oldest(self) -> int | None:
        """The id of the oldest message kept (``None``: none is)."""
        if not self._count:
            return None
        block = self._blocks[0]
        return block.first + block.dropped

    @property
    def stored_bytes(self) -> int:
        """The compressed bytes kept."""
        return self._size

    @property
    def json_bytes(self) -> int:
        """The JSON bytes the kept blocks hold (messages already dropped from a block that
        still has others count until it goes)."""
        return sum(block.json for block in self._blocks)

    def add(self, id: int, fields: Fields, raw: bytes) -> None:
        """Keep message ``id``'s filter fields and JSON; drop the oldest beyond the bounds.

        An id that does not follow the last one starts a new block (ids are daemon-wide and
        consecutive, so that happens only after a message went unkept).
        """
        blocks = self._blocks
        block = self._open
        if block is None or id != self._next_id:
            if block is not None:
                self._size -= block.seal()
            block = self._open = _Block(id)
            blocks.append(block)
        self._next_id = id + 1
        shared = self._shared.get(fields)
        if shared is None:
            if len(self._shared) >= _MAX_SHARED:
                self._shared.clear()
            shared = self._shared[fields] = fields
        block.add(shared, raw)
        self._size += len(raw)
        self._count += 1
        if len(block.fields) >= self._block_messages or block.json >= BLOCK_JSON:
            self._size -= block.seal()
            self._open = None
        while self._count > self._limit:
            first = blocks[0]
            first.dropped += 1
            self._count -= 1
            if first.dropped == len(first.fields):
                self._drop_first()
        while self._size > self._max_bytes and len(blocks) > 1:
            self._count -= len(blocks[0].fields) - blocks[0].dropped
            self._drop_first()

    def _drop_first(self) -> None:
        # Never the newest block: the newest message is always kept.
        self._size -= self._blocks.popleft().size

    def after(self, last_id: int) -> Iterator[Kept] | None:
        """The kept messages whose id is above ``last_id``, oldest first, or ``None`` when
        some of them are no longer kept.

        The messages are read as they are taken, one block inflated at a time, so that a
        resume from far back costs one block of memory, not the whole ring. They are the ones
        kept when ``after`` was called: messages added later are not in it, and it stays
        whole if the ring drops its blocks meanwhile (they stay alive until it is read).
        """
        oldest = self.oldest
        if oldest is None or last_id + 1 < oldest:
            return None
        parts: list[tuple[_Block, int, int]] = []
        wanted = last_id + 1
        for block in self._blocks:
            end = block.first + len(block.fields)
            if end <= wanted:
                continue
            start = max(block.dropped, wanted - block.first)
            if block.first + start > wanted:
                # Ids the ring was never given: those messages are not here either.
                return None
            parts.append((block, start, len(block.fields)))
            wanted = end
        return _read(parts)


def _read(parts: list[tuple[_Block, int, int]]) -> Iterator[Kept]:
    for block, start, stop in parts:
        yield from block.read(start, stop)
