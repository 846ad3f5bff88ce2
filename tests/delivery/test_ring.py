"""Tests for L{sonosd.delivery.ring}."""

from __future__ import annotations

import json
import random
import secrets
import zlib

from twisted.internet.task import Clock

from benchmarks.payloads import BodyMaker
from sonosd.delivery import ring as ring_module
from sonosd.delivery.hub import Hub
from sonosd.delivery.ring import Fields, ReplayRing
from sonosd.gena.eventxml import parse_event_xml, variables_to_json


def event_json(id: int, rng: random.Random) -> bytes:
    """The JSON of a volume or transport event as the hub writes it, values varied."""
    speaker = rng.randrange(20)
    body: dict[str, object] = {
        "id": id,
        "run": "0123456789ab",
        "time": f"2026-12-06T23:{id // 60 % 60:02d}:{id % 60:02d}.{rng.randrange(1000):03d}Z",
        "type": "event",
        "speaker": {
            "uid": f"RINCON_000E58{speaker:06d}01400",
            "name": f"Room {speaker}",
            "host": f"127.0.0.{speaker + 2}",
        },
    }
    if rng.random() < 0.66:
        body["service"] = "RenderingControl"
        body["volume"] = {"Master": rng.randrange(101), "LF": 100, "RF": 100}
        body["mute"] = {"Master": False}
    else:
        body["service"] = "AVTransport"
        body["transport_state"] = rng.choice(["PLAYING", "PAUSED_PLAYBACK", "STOPPED"])
        body["current_track"] = rng.randrange(1, 52)
        body["current_track_meta_data"] = {
            "title": f"Track {rng.randrange(10**9)}",
            "artist": "Bass Modulators",
            "album": "Survive (feat. Bram Boender)",
            "album_art_uri": "http://127.0.0.2:1400/getaa?s=1&u=x-sonos-spotify%3aspotify",
            "duration": "0:03:24",
            "upnp_class": "object.item.audioItem.musicTrack",
        }
    return json.dumps(body, separators=(",", ":")).encode()


def fields_of(raw: bytes) -> Fields:
    body = json.loads(raw)
    return ("event", body["speaker"]["uid"], body["speaker"]["name"], body["service"])


def fill(ring: ReplayRing, count: int, seed: int = 1) -> list[bytes]:
    """Add messages 1..count to ``ring``; return their JSON."""
    rng = random.Random(seed)
    kept = []
    for id in range(1, count + 1):
        raw = event_json(id, rng)
        ring.add(id, fields_of(raw), raw)
        kept.append(raw)
    return kept


def test_after_gives_back_every_later_message_exactly() -> None:
    """From any id the ring still has, ``after`` gives every later message's id, filter
    fields and JSON as added, across blocks sealed and open."""
    ring = ReplayRing(1_000, 1 << 30, block_messages=16)
    published = fill(ring, 150)
    assert len(ring) == 150 and ring.oldest == 1
    for last_id in (0, 1, 15, 16, 17, 100, 149):
        kept = list(ring.after(last_id) or [])
        assert [id for id, _, _ in kept] == list(range(last_id + 1, 151))
        assert [raw for _, _, raw in kept] == published[last_id:]
        assert [fields for _, fields, _ in kept] == [fields_of(raw) for raw in published[last_id:]]
    assert list(ring.after(150) or [0]) == []


def test_after_reads_one_block_at_a_time() -> None:
    """A resume inflates a sealed block only when its first message is taken, one block at
    a time, so a replay from far back is never all in memory at once."""
    ring = ReplayRing(1_000, 1 << 30, block_messages=16)
    published = fill(ring, 100)
    inflated: list[bytes] = []
    real = ring_module.zlib.decompressobj

    class Counting:
        def __init__(self, wbits: int) -> None:
            self._inner = real(wbits)

        def decompress(self, data: bytes) -> bytes:
            out = self._inner.decompress(data)
            inflated.append(out)
            return out

    ring_module.zlib.decompressobj = Counting  # type: ignore[assignment]
    try:
        kept = ring.after(0)
        assert kept is not None and inflated == []
        first = [next(kept) for _ in range(16)]
        assert len(inflated) == 1 and [raw for _, _, raw in first] == published[:16]
        next(kept)
        assert len(inflated) == 2
        rest = [raw for _, _, raw in kept]
    finally:
        ring_module.zlib.decompressobj = real  # type: ignore[assignment]
    # Six sealed blocks of 16; the last four messages are the open block's own JSON.
    assert len(inflated) == 6 and rest == published[17:]


def test_after_answers_for_the_messages_kept_when_asked() -> None:
    """A replay being read is not changed by what the ring does meanwhile: later messages
    are not in it (the client gets them live), and blocks dropped from the ring are still
    read whole, the open block included once it is sealed."""
    ring = ReplayRing(40, 1 << 30, block_messages=16)
    published = fill(ring, 40)
    kept = ring.after(9)
    assert kept is not None
    rng = random.Random(2)
    for id in range(41, 141):
        raw = event_json(id, rng)
        ring.add(id, fields_of(raw), raw)
    assert ring.oldest == 101
    assert [(id, raw) for id, _, raw in kept] == list(
        zip(range(10, 41), published[9:], strict=True)
    )
    # The same while the block stays open.
    tail = ring.after(138)
    assert tail is not None
    ring.add(141, ("event", None, None, None), b"{}")
    assert [id for id, _, _ in tail] == [139, 140]


def test_count_bound_drops_the_oldest_one_at_a_time() -> None:
    """Beyond ``count`` messages the oldest goes, even from the middle of a block, and a
    client resuming from before it learns that messages are missing."""
    ring = ReplayRing(50, 1 << 30, block_messages=16)
    published = fill(ring, 137)
    assert len(ring) == 50 and ring.oldest == 88
    assert ring.after(86) is None
    assert [raw for _, _, raw in ring.after(87) or []] == published[87:]


def test_byte_bound_drops_whole_old_blocks_and_keeps_the_newest() -> None:
    """Over ``max_bytes`` of compressed JSON the oldest blocks go whole; the newest block
    stays even when it alone is over the bound."""
    ring = ReplayRing(10_000, 8_000, block_messages=8)
    for id in range(1, 101):
        ring.add(id, ("event", None, None, None), secrets.token_hex(200).encode())
    assert ring.stored_bytes <= 8_000
    oldest = ring.oldest
    assert oldest is not None and (oldest - 1) % 8 == 0 and oldest > 1
    assert len(ring) == 101 - oldest
    alone = ReplayRing(10_000, 100, block_messages=8)
    for id in range(1, 4):
        alone.add(id, ("event", None, None, None), secrets.token_hex(200).encode())
    assert alone.oldest == 1 and len(alone) == 3 and alone.stored_bytes > 100


def test_messages_of_a_household_take_a_fraction_of_their_json() -> None:
    """A household's volume and transport events, compressed against each other, take about
    a tenth of their JSON; messages with the same filter fields share one tuple of them."""
    ring = ReplayRing(10_000, 1 << 30)
    published = fill(ring, 2_000)
    json_bytes = sum(map(len, published))
    assert ring.json_bytes == json_bytes
    assert ring.stored_bytes < json_bytes / 8
    kept = ring.after(0)
    assert kept is not None
    by_fields: dict[Fields, Fields] = {}
    for _, fields, _ in kept:
        assert by_fields.setdefault(fields, fields) is fields


def test_a_large_message_seals_its_block() -> None:
    """A message of more JSON than a block takes ends its block; the ones after it start
    another, and all replay whole."""
    ring = ReplayRing(100, 1 << 30)
    large = json.dumps({"pad": secrets.token_hex(ring_module.BLOCK_JSON)}).encode()
    ring.add(1, ("event", None, None, None), b'{"id":1}')
    ring.add(2, ("topology.changed", None, None, None), large)
    ring.add(3, ("event", None, None, None), b'{"id":3}')
    assert [(id, raw) for id, _, raw in ring.after(0) or []] == [
        (1, b'{"id":1}'),
        (2, large),
        (3, b'{"id":3}'),
    ]
    assert [id for id, _, _ in ring.after(2) or []] == [3]


def test_an_id_that_does_not_follow_starts_a_block() -> None:
    """Ids that skip (messages the ring was never given) start a new block; a client that
    would need the missing ones is told they are not kept, one after them gets the rest."""
    ring = ReplayRing(100, 1 << 30)
    ring.add(1, ("event", None, None, None), b"1")
    ring.add(2, ("event", None, None, None), b"2")
    ring.add(5, ("event", None, None, None), b"5")
    ring.add(6, ("event", None, None, None), b"6")
    assert ring.after(0) is None
    assert ring.after(2) is None
    assert ring.after(3) is None
    assert [(id, raw) for id, _, raw in ring.after(4) or []] == [(5, b"5"), (6, b"6")]
    assert [id for id, _, _ in ring.after(5) or []] == [6]
    assert ring.after(1) is None


def test_an_empty_ring_has_nothing_to_give() -> None:
    """An empty ring has no oldest id and cannot resume anyone."""
    ring = ReplayRing(10, 1000)
    assert (len(ring), ring.oldest, ring.stored_bytes, ring.after(0)) == (0, None, 0, None)


def test_shared_fields_table_is_bounded() -> None:
    """Distinct filter fields beyond the shared table's size start it again rather than grow
    it without bound."""
    ring = ReplayRing(10, 1 << 30)
    for id in range(1, ring_module._MAX_SHARED + 100):
        ring.add(id, ("event", f"RINCON_{id}", f"Room {id}", None), b"{}")
    assert len(ring._shared) <= ring_module._MAX_SHARED
    assert [fields[1] for _, fields, _ in ring.after(ring_module._MAX_SHARED + 95) or []] == [
        f"RINCON_{ring_module._MAX_SHARED + 96 + i}" for i in range(4)
    ]


def test_benchmark_events_take_under_a_twelfth_of_their_json() -> None:
    """Benchmark 7's mix (two volume changes to one full AVTransport event, from real
    captured bodies, values varied) published through the hub keeps under a twelfth of its
    JSON in the ring (docs/design.md: 0.5 MB for 9.1 MB)."""
    maker = BodyMaker(seed=3)
    hub = Hub(Clock())
    for n in range(3_000):
        kind, service = (
            ("avt_full", "AVTransport") if n % 3 == 0 else ("rc_volume", "RenderingControl")
        )
        fields = variables_to_json(
            service, parse_event_xml(maker.body(kind)), "http://127.0.0.2:1400"
        )
        speaker = {
            "uid": f"RINCON_000E58A0{n % 100:04d}01400",
            "name": f"Room {n % 100}",
            "host": f"127.0.0.{n % 100 + 2}",
        }
        hub.publish("event", fields, speaker=speaker, service=service)
    assert len(hub.ring) == 3_000
    assert hub.ring.stored_bytes < hub.ring.json_bytes / 12


def test_the_hubs_ring_keeps_at_most_32_mib_of_compressed_json() -> None:
    """A hub built with its defaults keeps at most 32 MiB of compressed JSON, the oldest
    messages going first, and keeps close to that much (docs/design.md, "Replay ring")."""
    hub = Hub(Clock())
    pad = secrets.token_urlsafe(1 << 20)  # 1 MiB that deflate barely shrinks
    for n in range(48):
        # Each message different from the one before, so that no block shares its text.
        hub.publish("event", {"pad": pad[n:] + pad[:n]})
    ring = hub.ring
    assert ring.stored_bytes <= 32 * 1024 * 1024
    assert ring.stored_bytes > 28 * 1024 * 1024
    assert ring.oldest is not None and ring.oldest > 1
    assert [m.id for m in hub.since(ring.oldest - 1) or []] == list(range(ring.oldest, 49))


def test_blocks_hold_64_messages_or_256_kb_of_json() -> None:
    """A ring built with its defaults seals a block at 64 messages, or sooner once it holds
    256 KB of JSON: the byte bound drops whole blocks, so the oldest id kept moves in steps
    of that size."""
    small = ReplayRing(100_000, 10_000)
    oldest_seen = set()
    for id in range(1, 401):
        small.add(id, ("event", None, None, None), secrets.token_hex(100).encode())
        oldest_seen.add(small.oldest)
    assert len(oldest_seen) > 2
    assert all((oldest - 1) % 64 == 0 for oldest in oldest_seen if oldest is not None)
    large = ReplayRing(100_000, 400 * 1024)
    oldest_seen = set()
    for id in range(1, 31):
        # 100 KB messages: a block reaches 256 KB, and is sealed, with its third.
        large.add(id, ("event", None, None, None), secrets.token_hex(50 * 1024).encode())
        oldest_seen.add(large.oldest)
    assert len(oldest_seen) > 2
    assert all((oldest - 1) % 3 == 0 for oldest in oldest_seen if oldest is not None)
    oldest = large.oldest
    assert oldest is not None
    assert [id for id, _, _ in large.after(oldest - 1) or []] == list(range(oldest, 31))


def test_a_full_block_is_one_raw_deflate_stream_at_level_1() -> None:
    """A full block (64 messages) keeps one raw deflate stream of their JSON at zlib level 1
    (docs/design.md, Replay ring: the fastest level; consecutive messages share most of
    their text), and the newest block its messages' JSON as it came."""
    raws = [
        json.dumps(
            {
                "id": n,
                "type": "event",
                "speaker": {"uid": "RINCON_1", "name": "Kitchen"},
                "variables": {"volume": {"Master": n % 100}, "mute": {"Master": n % 2}},
            }
        ).encode()
        for n in range(1, 66)
    ]
    ring = ReplayRing(1000, 10**9)
    for n, raw in enumerate(raws[:64], 1):
        ring.add(n, ("event", "RINCON_1", "Kitchen", "RenderingControl"), raw)

    def deflated(level: int) -> int:
        compressor = zlib.compressobj(level, zlib.DEFLATED, -15)
        return len(compressor.compress(b"".join(raws[:64])) + compressor.flush())

    assert deflated(1) != deflated(zlib.Z_DEFAULT_COMPRESSION)
    assert ring.stored_bytes == deflated(1)
    ring.add(65, ("event", "RINCON_1", "Kitchen", "RenderingControl"), raws[64])
    assert ring.stored_bytes == deflated(1) + len(raws[64])
    assert [raw for _, _, raw in ring.after(0) or []] == raws
