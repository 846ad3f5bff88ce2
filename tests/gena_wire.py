"""A raw GENA subscriber for simulator tests: SUBSCRIBE by hand, record NOTIFYs as sent."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers


@attrs.frozen
class Notify:
    """A NOTIFY request taken apart."""

    request_line: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def header(self) -> dict[str, str]:
        return {name.upper(): value for name, value in self.headers}

    @property
    def seq(self) -> int:
        return int(self.header["SEQ"])

    @property
    def sid(self) -> str:
        return self.header["SID"]


def parse_notify(raw: bytes) -> Notify:
    """Split a raw NOTIFY request into request line, ordered headers and body."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = [tuple(line.split(": ", 1)) for line in lines[1:]]
    return Notify(lines[0], headers, body)  # type: ignore[arg-type]


@attrs.frozen
class Received:
    """A NOTIFY as the subscriber saw it: the peer address and the request."""

    peer: str
    notify: Notify


class _ReceiverProtocol(Protocol):
    def __init__(self, factory: Receiver) -> None:
        self.factory = factory
        self.data = b""

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        head, sep, body = self.data.partition(b"\r\n\r\n")
        if not sep:
            return
        length = re.search(rb"(?im)^content-length: *(\d+)", head)
        if length is not None and len(body) < int(length.group(1)):
            return
        assert self.transport is not None
        notify = parse_notify(self.data)
        status = self.factory.answer(notify)
        self.transport.write(
            b"HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status
        )
        self.transport.loseConnection()
        self.factory.record(Received(self.transport.getPeer().host, notify))


class Receiver(Factory):
    """A raw HTTP subscriber that records NOTIFYs and answers each with answer(notify)."""

    noisy = False

    def __init__(self, answer: Callable[[Notify], int] = lambda notify: 200) -> None:
        self.answer = answer
        self.received: list[Received] = []
        self._waiters: list[tuple[int, Deferred[list[Received]]]] = []

    def buildProtocol(self, addr: Any) -> Protocol:
        return _ReceiverProtocol(self)

    def record(self, received: Received) -> None:
        self.received.append(received)
        for count, waiter in list(self._waiters):
            if len(self.received) >= count:
                self._waiters.remove((count, waiter))
                waiter.callback(self.received)

    def wait_for(self, count: int) -> Deferred[list[Received]]:
        """Fire once ``count`` NOTIFYs have arrived (failing after 10 s, not to hang)."""
        from twisted.internet import reactor

        waiter: Deferred[list[Received]] = Deferred()
        if len(self.received) >= count:
            waiter.callback(self.received)
        else:
            self._waiters.append((count, waiter))
        return waiter.addTimeout(10, reactor)

    def seqs(self) -> list[int]:
        return [received.notify.seq for received in self.received]


async def gena_call(
    method: bytes, url: bytes, headers: Mapping[bytes, bytes]
) -> tuple[int, Headers]:
    """Send a GENA request with a non-persistent Agent; return status and headers."""
    from twisted.internet import reactor

    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    response = await agent.request(
        method, url, Headers({name: [value] for name, value in headers.items()})
    ).addTimeout(10, reactor)
    return response.code, response.headers


def first(headers: Headers, name: bytes) -> str | None:
    values = headers.getRawHeaders(name)
    return None if values is None else values[0].decode("latin-1")


def notify_request(sid: str, seq: int, body: bytes) -> bytes:
    """A NOTIFY request as a speaker sends it."""
    head = (
        f"NOTIFY / HTTP/1.1\r\nHOST: 127.0.0.1\r\nCONNECTION: close\r\nCONTENT-TYPE: text/xml\r\n"
        f"CONTENT-LENGTH: {len(body)}\r\nNT: upnp:event\r\nNTS: upnp:propchange\r\n"
        f"SID: {sid}\r\nSEQ: {seq}\r\n\r\n"
    )
    return head.encode() + body


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 when there is none)."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
