# -*- test-case-name: tests.sim.test_badanswers -*-
"""Answers written as a broken device writes them, for the simulator's faults: a garbage
status line where the status line belongs, a head padded with header lines, a body dripped
1 KiB at a time, and a body cut off halfway.

The speaker's SOAP and description faults (``sim.site``) and the GENA manager's answer faults
(``sim.gena``) both write them.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET

#: The size of each piece of a dripped body.
PIECE = 1024


def garbage_answer(request: IRequest, status_line: str, body: bytes) -> int:
    """Write ``status_line`` where the status line belongs, then the headers set on
    ``request`` and ``body``, straight to the connection, and close it."""
    transport: Any = request.channel.transport  # type: ignore[attr-defined]
    lines = [status_line.encode("utf-8", "replace")]
    lines += [
        name + b": " + value
        for name, values in request.responseHeaders.getAllRawHeaders()
        for value in values
    ]
    transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    transport.loseConnection()
    return NOT_DONE_YET


def cut_short(request: IRequest, body: bytes) -> int:
    """Announce ``body``'s length, write its first half and close the connection."""
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body[: len(body) // 2])
    transport: Any = request.channel.transport  # type: ignore[attr-defined]
    transport.loseConnection()
    return NOT_DONE_YET


def pad_head(request: IRequest, size: int) -> None:
    """Add ``size`` bytes of ``X-Padding`` header lines (1 KiB each) to ``request``'s answer."""
    for _ in range(0, size, PIECE):
        request.responseHeaders.addRawHeader(b"X-Padding", b"x" * (PIECE - 13))


def drip(request: IRequest, body: bytes, every: float, clock: IReactorTime) -> int:
    """Write ``body`` ``PIECE`` bytes at a time, ``every`` seconds apart, then finish; stop
    when the request is gone (the client closed, or the simulator aborted it)."""
    pieces = [body[i : i + PIECE] for i in range(0, len(body), PIECE)]
    pending: list[IDelayedCall] = []

    def gone(_: object) -> None:
        pieces.clear()
        for call in pending:
            if call.active():
                call.cancel()

    request.notifyFinish().addBoth(gone)  # type: ignore[attr-defined]

    def next_piece() -> None:
        pending.clear()
        if not pieces:
            return
        request.write(pieces.pop(0))
        if pieces:
            pending.append(clock.callLater(every, next_piece))
        else:
            request.finish()

    next_piece()
    return NOT_DONE_YET
