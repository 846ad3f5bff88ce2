"""Tests for L{sonosd.gena.httpclient}."""

from __future__ import annotations

from twisted.internet.testing import MemoryReactorClock

from sonosd.gena.httpclient import quiet_pool


def test_pool_factories_are_quiet() -> None:
    """Connections made through the pool use a factory that does not log start and stop."""
    pool = quiet_pool(MemoryReactorClock(), persistent=True)
    assert pool.persistent is True
    assert pool._factory.noisy is False
