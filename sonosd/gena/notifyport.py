# -*- test-case-name: tests.gena.test_notifyport -*-
"""The NOTIFY listener's port: a request already whole when its connection is accepted is
served there and then, without a Twisted transport.

A speaker opens a connection, writes one small NOTIFY and waits for the answer; under load,
by the time the daemon accepts the connection the whole request is already in the socket.
For such a connection Twisted's TCP machinery (a ``Server`` transport, registering it with
the reactor, a read event, a write event, the orderly close) cost about as much as the
rest of the listener (issue 17). :class:`NotifyPort` is Twisted's listening ``Port`` with one
change: after accepting, it reads once without waiting (``MSG_DONTWAIT``). When the
:class:`~sonosd.gena.notifyproto.NotifyProtocol` built for the connection answers and closes
from that one read, the answer is written on the socket, the socket closed and the protocol
told, as a Twisted transport would have done. Anything else (no data yet, a partial
request, a request held by the handler, a refusal whose body is read and dropped, an answer
the socket cannot take at once) hands the socket, the protocol and whatever the protocol
wrote to a regular Twisted ``Server`` transport, which carries on as usual: the limits,
deadlines and per-host bounds of ``NotifyServerFactory`` apply on both paths, because the
same protocol and factory do the work.

:func:`listen` binds a ``NotifyPort`` on a reactor that runs real sockets and falls back to
``listenTCP`` on any other (the memory reactors of tests).
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from twisted.internet import tcp
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger()

_READ = 65_536
"""Bytes read at once (Twisted's ``Connection.bufferSize``)."""

DEFER_ACCEPT = 1
"""Seconds the kernel waits for a connection's first bytes before handing it over anyway."""

MAX_ACCEPTS = 40
"""The most connections accepted (and so, most often, served) in one turn of the reactor:
Twisted's port accepts more and more while they keep coming, which is cheap when each
connection is then read in turn with the reactor's other work; here each one is a whole
request, and the API's clients must get their turn."""

_WRITE, _LOSE, _LOSE_WRITE, _ABORT = range(4)


class _FirstRead:
    """The transport a protocol has while its connection's first read is handled: it records
    what the protocol does, for :class:`NotifyPort` to carry out or hand over."""

    __slots__ = ("ops", "socket")

    def __init__(self, skt: socket.socket) -> None:
        self.socket = skt
        self.ops: list[tuple[int, bytes]] = []

    def write(self, data: bytes) -> None:
        self.ops.append((_WRITE, data))

    def writeSequence(self, data: list[bytes]) -> None:
        self.ops.append((_WRITE, b"".join(data)))

    def loseConnection(self) -> None:
        self.ops.append((_LOSE, b""))

    def loseWriteConnection(self) -> None:
        self.ops.append((_LOSE_WRITE, b""))

    def abortConnection(self) -> None:
        self.ops.append((_ABORT, b""))

    def answer(self) -> bytes | None:
        """Everything written, when the protocol's last act was to close after it."""
        ops = self.ops
        if len(ops) == 2 and ops[0][0] == _WRITE and ops[1][0] == _LOSE:
            return ops[0][1]  # the usual: one pre-built answer, then close
        if not ops or ops[-1][0] != _LOSE or any(op != _WRITE for op, _ in ops[:-1]):
            return None
        return b"".join([data for _, data in ops[:-1]])


class NotifyPort(tcp.Port):
    """Twisted's TCP listening port, serving requests that are whole on arrival at once.

    @ivar served_at_once: Connections answered and closed from their first read.
    @ivar handed_over: Connections given a Twisted transport after a first read with data.
    """

    served_at_once = 0
    handed_over = 0

    def startListening(self) -> None:
        """Bind and listen; on Linux, have the kernel hand over connections once they have
        data (``TCP_DEFER_ACCEPT``), so that the first read finds the request."""
        super().startListening()
        defer = getattr(socket, "TCP_DEFER_ACCEPT", None)
        if defer is not None:
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, defer, DEFER_ACCEPT)

    def doRead(self) -> None:
        """Accept the waiting connections (as many as Twisted's port would, at most
        ``MAX_ACCEPTS``), each served at once or handed to a transport."""
        accepted = 0
        try:
            while accepted < self.numberAccepts:
                try:
                    skt, addr = self.socket.accept()
                except BlockingIOError:
                    break
                except OSError:
                    # Out of descriptors, an aborted handshake...: Twisted's own accept loop
                    # knows how to shed load and what to log.
                    super().doRead()
                    return
                accepted += 1
                self._connection(skt, addr)
        except Exception:
            log.failure("NOTIFY port failed to accept")
        if accepted == self.numberAccepts:
            self.numberAccepts = min(self.numberAccepts + 20, MAX_ACCEPTS)
        else:
            self.numberAccepts = max(1, accepted)

    def _connection(self, skt: socket.socket, addr: Any) -> None:
        if len(addr) == 4:
            # IPv6: keep the scope id, as Twisted's port does.
            host = socket.getnameinfo(addr, socket.NI_NUMERICHOST | socket.NI_NUMERICSERV)
            addr = (host[0], *addr[1:])
        factory: Any = self.factory
        protocol: Protocol | None = factory.buildProtocol(self._buildAddr(addr))
        if protocol is None:
            skt.close()
            return
        try:
            data = skt.recv(_READ, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            skt.close()
            return
        if data is None:
            self._hand_over(skt, protocol, addr, None)
            return
        if not data:
            # Connected and closed at once: nothing to answer.
            skt.close()
            return
        first = _FirstRead(skt)
        try:
            protocol.makeConnection(first)
            protocol.dataReceived(data)
        except Exception:
            log.failure("NOTIFY connection failed")
            skt.close()
            protocol.connectionLost(Failure(ConnectionLost()))
            return
        answer = first.answer()
        if answer is None:
            self._hand_over(skt, protocol, addr, first.ops)
            return
        try:
            sent = skt.send(answer, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            skt.close()
            protocol.connectionLost(Failure(ConnectionLost()))
            return
        if sent < len(answer):
            self._hand_over(skt, protocol, addr, [(_WRITE, answer[sent:]), (_LOSE, b"")])
            return
        # Python's sockets are close-on-exec: close() alone ends the connection (Twisted
        # also calls shutdown() "just to be safe").
        skt.close()
        self.served_at_once += 1
        protocol.connectionLost(connectionDone)

    def _hand_over(
        self,
        skt: socket.socket,
        protocol: Protocol,
        addr: Any,
        ops: list[tuple[int, bytes]] | None,
    ) -> None:
        """Give the connection a Twisted transport, doing what the protocol asked so far."""
        session = self.sessionno
        self.sessionno = session + 1
        transport = self.transport(skt, protocol, addr, self, session, self.reactor)
        if ops is None:
            protocol.makeConnection(transport)
            return
        self.handed_over += 1
        protocol.transport = transport
        for op, data in ops:
            if op == _WRITE:
                transport.write(data)
            elif op == _LOSE:
                transport.loseConnection()
            elif op == _LOSE_WRITE:
                transport.loseWriteConnection()
            else:
                transport.abortConnection()


def listen(
    reactor: IReactorTCP, port: int, factory: ServerFactory, backlog: int, interface: str
) -> IListeningPort:
    """Bind ``factory`` on ``interface:port``: a :class:`NotifyPort` on a reactor of real
    sockets, else ``reactor.listenTCP``.

    @raise twisted.internet.error.CannotListenError: When the port cannot be bound.
    """
    if isinstance(reactor, PosixReactorBase):
        listening = NotifyPort(port, factory, backlog, interface, reactor)
        listening.startListening()
        return listening
    return reactor.listenTCP(port, factory, backlog=backlog, interface=interface)
