# -*- test-case-name: tests.sim.test_soco -*-
"""A simulated speaker's presence on the network: the port it listens on, and how it fails.

``SpeakerPresence`` listens on ``<address>:<port>`` and can be told to go down (``refuse``:
nothing listens, connections are refused; ``hang``: connections are accepted and never
answered), to come back, or to move to another address. Going down also cuts the
connections that are open at that moment. Operations run one at a time, in order.

With ``secure(True)`` it also serves the same site over TLS on ``tls_port`` (1443, as real
speakers do; the certificate comes from ``sonosd.sim.tls``); the TLS port goes down, comes
back and moves with the plain one.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredLock
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory

from sonosd.sim.modes import DEFAULT_TLS_PORT
from sonosd.sim.tls import server_options

log = Logger()


class _Hang(Protocol):
    """Accepts a connection, reads and discards everything, never answers."""

    def connectionMade(self) -> None:
        factory: _HangFactory = self.factory
        factory.open.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        factory: _HangFactory = self.factory
        factory.open.discard(self)

    def dataReceived(self, data: bytes) -> None:
        """Swallow the request."""


class _HangFactory(Factory):
    protocol = _Hang
    noisy = False

    def __init__(self) -> None:
        self.open: set[_Hang] = set()


class SpeakerPresence:
    """Listens for one speaker; see the module docstring.

    ``reactor`` provides ``IReactorTCP``; ``factory`` is the speaker's HTTP site.
    """

    def __init__(
        self,
        reactor: Any,
        factory: IProtocolFactory,
        address: str,
        port: int,
        tls_port: int = DEFAULT_TLS_PORT,
    ) -> None:
        self._reactor = reactor
        self._site = WrappingFactory(factory)
        self._site.noisy = False
        self._hang_factory = _HangFactory()
        self.address = address
        self.port = port
        self.tls_port = tls_port
        self.secured = False
        self._port: IListeningPort | None = None
        self._hang_port: IListeningPort | None = None
        self._tls_port: IListeningPort | None = None
        self._lock = DeferredLock()
        self._mode = "down"

    @property
    def mode(self) -> str:
        """``up``, ``refuse``, ``hang``, or ``down`` (before ``listen``/after ``stop``)."""
        return self._mode

    def listen(self) -> None:
        """Start listening now; raises ``CannotListenError`` if the address is taken."""
        self._port = self._reactor.listenTCP(self.port, self._site, interface=self.address)
        self._mode = "up"
        if self.secured:
            self._listen_tls(self.address)

    def _listen_tls(self, address: str) -> None:
        self._tls_port = self._reactor.listenSSL(
            self.tls_port, self._site, server_options(), interface=address
        )

    def secure(self, on: bool) -> Deferred[None]:
        """Serve TLS on ``tls_port`` too (``on``), or stop doing so."""
        return self._run(self._secure(on))

    async def _secure(self, on: bool) -> None:
        self.secured = on
        if on and self._mode == "up" and self._tls_port is None:
            self._listen_tls(self.address)
        elif not on and self._tls_port is not None:
            port, self._tls_port = self._tls_port, None
            await _stop_listening(port)

    def go_down(self, mode: str) -> Deferred[None]:
        """Stop answering (``refuse`` or ``hang``) and cut open connections."""
        return self._run(self._go_down(mode))

    def come_up(self) -> Deferred[None]:
        """Listen normally again on the current address."""
        return self._run(self._come_up())

    def move(self, address: str) -> Deferred[None]:
        """Listen on ``address`` from now on (in the same mode)."""
        return self._run(self._move(address))

    def stop(self) -> Deferred[None]:
        """Stop listening and cut every connection (shutdown)."""
        return self._run(self._stop())

    def _run(self, coroutine: Any) -> Deferred[None]:
        def _go() -> Deferred[None]:
            return Deferred.fromCoroutine(coroutine)

        return self._lock.run(_go)

    async def _go_down(self, mode: str) -> None:
        if mode not in ("refuse", "hang"):
            raise ValueError(f"mode must be 'refuse' or 'hang', not {mode!r}")
        await self._close_ports()
        self._abort_all()
        if mode == "hang":
            self._hang_port = self._reactor.listenTCP(
                self.port, self._hang_factory, interface=self.address
            )
        self._mode = mode
        log.info("{address} is down ({mode})", address=self.address, mode=mode)

    async def _come_up(self) -> None:
        if self._mode == "up":
            return
        await self._close_ports()
        self._abort_all()
        self.listen()
        log.info("{address} is up", address=self.address)

    async def _move(self, address: str) -> None:
        old_address, self.address = self.address, address
        if self._mode in ("up", "hang"):
            factory = self._site if self._mode == "up" else self._hang_factory
            try:
                new_port = self._reactor.listenTCP(self.port, factory, interface=address)
            except Exception:
                self.address = old_address
                raise
            old_ports = [p for p in (self._port, self._hang_port, self._tls_port) if p]
            self._tls_port = None
            if self._mode == "up":
                self._port, self._hang_port = new_port, None
                if self.secured:
                    self._listen_tls(address)
            else:
                self._port, self._hang_port = None, new_port
            for port in old_ports:
                await _stop_listening(port)
            self._abort_all()
        log.info("{old} moved to {new}", old=old_address, new=address)

    async def _stop(self) -> None:
        await self._close_ports()
        self._abort_all()
        self._mode = "down"

    async def _close_ports(self) -> None:
        ports = [p for p in (self._port, self._hang_port, self._tls_port) if p is not None]
        self._port = self._hang_port = self._tls_port = None
        for port in ports:
            await _stop_listening(port)

    def _abort_all(self) -> None:
        for protocol in list(self._site.protocols):
            _abort(protocol.transport)
        for hang in list(self._hang_factory.open):
            _abort(hang.transport)


async def _stop_listening(port: IListeningPort) -> None:
    stopped = port.stopListening()
    if stopped is not None:
        await stopped


def _abort(transport: object) -> None:
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
