"""Tests for gena.media and the listener's GET/HEAD of served clips."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from sonosd.gena.media import PREFIX, MediaStore
from sonosd.gena.notifyproto import RESPONSES, NotifyServerFactory
from tests.gena.test_notifyproto import RecordingHandler


def test_clips_expire_and_are_removed() -> None:
    """A clip is served under an unguessable path until removed or expired."""
    clock = Clock()
    store = MediaStore(clock)
    path = store.add(b"RIFF....", "audio/wav", ttl=10)
    other = store.add(b"ID3", "audio/mpeg", ttl=10, suffix=".mp3")
    assert path.startswith(PREFIX) and path.endswith(".wav") and len(path) > len(PREFIX) + 20
    assert path != other and len(store) == 2
    clip = store.lookup(path + "?x=1")
    assert clip is not None and (clip.body, clip.mime) == (b"RIFF....", "audio/wav")
    assert store.fetches[path] == 1
    store.remove(path)
    assert store.lookup(path) is None
    clock.advance(10)
    assert store.lookup(other) is None and len(store) == 0


def test_store_is_bounded() -> None:
    """Beyond its clip count or byte size the oldest clip goes; a clip too big is refused."""
    store = MediaStore(Clock(), max_clips=2, max_bytes=10)
    first = store.add(b"aaaa", "audio/wav", 60)
    store.add(b"bbbb", "audio/wav", 60)
    store.add(b"cccc", "audio/wav", 60)
    assert store.lookup(first) is None and len(store) == 2 and store.size == 8
    store.add(b"dddddddd", "audio/wav", 60)
    assert len(store) == 1
    with pytest.raises(ValueError, match="over 10"):
        store.add(b"x" * 11, "audio/wav", 60)


def _serve(store: MediaStore | None, request: bytes) -> StringTransport:
    media = None if store is None else store.lookup
    factory = NotifyServerFactory(RecordingHandler(200), Clock(), 1000, 8.0, media=media)
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 5000))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(request)
    return transport


def test_listener_serves_get_and_head() -> None:
    """GET answers the clip with its type and length, HEAD the headers only, and closes."""
    store = MediaStore(Clock())
    path = store.add(b"RIFFdata", "audio/wav", 60)
    got = _serve(store, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()).value()
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"Content-Type: audio/wav" in head
    assert b"Content-Length: 8" in head and body == b"RIFFdata"
    headed = _serve(store, f"HEAD {path} HTTP/1.1\r\n\r\n".encode()).value()
    assert headed.endswith(b"\r\n\r\n") and b"Content-Length: 8" in headed
    assert store.fetches[path] == 2
    missing = _serve(store, b"GET /media/nothing.wav HTTP/1.1\r\n\r\n")
    assert missing.value() == RESPONSES[404] and missing.disconnecting


def test_without_a_store_get_is_405() -> None:
    """A listener that serves no clips answers GET like any method but NOTIFY."""
    transport = _serve(None, b"GET /media/x.wav HTTP/1.1\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 405")
