"""Answers written as a broken device writes them (``sonosd.sim.badanswers``)."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from sonosd.sim.badanswers import PIECE, drip, garbage_answer, pad_head


def test_garbage_answer_puts_the_line_where_the_status_line_belongs() -> None:
    """The garbage line comes first, then the request's headers and the body, and the
    connection is closed."""
    request = DummyRequest([b""])
    request.channel = DummyChannel()
    request.responseHeaders.setRawHeaders(b"content-length", [b"4"])
    assert garbage_answer(request, "garbage", b"body") == NOT_DONE_YET
    written = request.channel.transport.written.getvalue()
    assert written == b"garbage\r\nContent-Length: 4\r\n\r\nbody"
    assert request.channel.transport.disconnected


def test_drip_writes_a_piece_every_interval_then_finishes() -> None:
    """A body of two and a half pieces takes three writes, ``every`` seconds apart."""
    clock = Clock()
    request = DummyRequest([b""])
    body = b"x" * (2 * PIECE + PIECE // 2)
    assert drip(request, body, 2.0, clock) == NOT_DONE_YET
    assert b"".join(request.written) == body[:PIECE]
    clock.advance(2.0)
    assert b"".join(request.written) == body[: 2 * PIECE]
    assert not request.finished
    clock.advance(2.0)
    assert b"".join(request.written) == body
    assert request.finished


def test_drip_stops_when_the_request_is_gone() -> None:
    """A client that goes away stops the drip: nothing more is written, no timer is left."""
    clock = Clock()
    request = DummyRequest([b""])
    drip(request, b"x" * (3 * PIECE), 1.0, clock)
    request.processingFailed(Failure(ConnectionError("gone")))
    assert not clock.getDelayedCalls()
    assert len(request.written) == 1


def test_pad_head_adds_header_lines_of_one_kib() -> None:
    """Three KiB of padding are three ``X-Padding`` lines of 1 KiB each on the wire."""
    request = DummyRequest([b""])
    pad_head(request, 3 * PIECE)
    lines = request.responseHeaders.getRawHeaders(b"x-padding")
    assert lines is not None and len(lines) == 3
    assert all(len(b"X-Padding: " + line + b"\r\n") == PIECE for line in lines)
