"""Tests for L{sonosd.gena.httpclient}."""

from __future__ import annotations

import pytest
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.testing import MemoryReactorClock
from twisted.web.client import URI
from twisted.web.error import SchemeNotSupported

from sonosd.gena.core import build_http_client
from sonosd.gena.httpclient import SpeakerEndpoints, quiet_pool


def test_pool_factories_are_quiet() -> None:
    """Connections made through the pool use a factory that does not log start and stop."""
    pool = quiet_pool(MemoryReactorClock(), persistent=True)
    assert pool.persistent is True
    assert pool._factory.noisy is False


def test_connections_go_straight_to_the_address() -> None:
    """Addresses are connected to directly (no name resolution), names through
    HostnameEndpoint, https wrapped in TLS when a TLS creator is given."""
    reactor = MemoryReactorClock()
    plain = SpeakerEndpoints(reactor)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://127.0.0.2:1400/x"))
    assert isinstance(endpoint, TCP4ClientEndpoint)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://[fe80::1]:1400/x"))
    assert isinstance(endpoint, TCP6ClientEndpoint)
    endpoint = plain.endpointForURI(URI.fromBytes(b"http://kitchen.lan:1400/x"))
    assert isinstance(endpoint, HostnameEndpoint)
    secure = SpeakerEndpoints(reactor, tls=object())
    endpoint = secure.endpointForURI(URI.fromBytes(b"https://127.0.0.2:1443/x"))
    assert not isinstance(endpoint, TCP4ClientEndpoint)


def test_gena_requests_connect_without_resolving() -> None:
    """A GENA request to a speaker's address connects to it at once: no getaddrinfo in the
    reactor's thread pool (a queue behind ten threads while a large household starts)."""
    reactor = MemoryReactorClock()
    http = build_http_client(reactor)
    http.request("SUBSCRIBE", "http://127.0.0.5:1400/MediaRenderer/AVTransport/Event")
    assert [(host, port) for host, port, *_ in reactor.tcpClients] == [("127.0.0.5", 1400)]


def test_https_without_a_tls_creator_is_refused() -> None:
    """An https URL through endpoints without a TLS creator fails with SchemeNotSupported
    instead of speaking plain HTTP to a TLS port."""
    endpoints = SpeakerEndpoints(MemoryReactorClock())
    with pytest.raises(SchemeNotSupported, match=r"https://127\.0\.0\.2:1443/x"):
        endpoints.endpointForURI(URI.fromBytes(b"https://127.0.0.2:1443/x"))
