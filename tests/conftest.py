"""Shared pytest fixtures: private loopback address blocks for tests that start servers."""

from __future__ import annotations

import pytest

from sonosd.sim.addresses import free_loopback_base

__all__ = ["free_loopback_base"]


@pytest.fixture
def loopback_base() -> str:
    """A base address (``127.A.B.2``) of a loopback block whose port 1400 is free."""
    return free_loopback_base()
