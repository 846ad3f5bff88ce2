"""Shared pytest fixtures: private loopback address blocks for tests that start servers."""

from __future__ import annotations

import random
import socket

import pytest


def free_loopback_base(port: int = 1400, count: int = 4) -> str:
    """Return ``127.A.B.2`` such that ``127.A.B.2`` .. ``127.A.B.(1+count)`` have ``port`` free.

    Tests that start simulated speakers take their own /24 inside 127.0.0.0/8 so that several
    test runs (and the demo) can use port 1400 at the same time without clashing.
    """
    rng = random.SystemRandom()
    for _ in range(200):
        prefix = f"127.{rng.randint(1, 254)}.{rng.randint(0, 254)}"
        addresses = [f"{prefix}.{i}" for i in range(2, 2 + count)]
        if all(_port_free(address, port) for address in addresses):
            return addresses[0]
    raise RuntimeError("no free loopback block found")


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


@pytest.fixture
def loopback_base() -> str:
    """A base address (``127.A.B.2``) of a loopback block whose port 1400 is free."""
    return free_loopback_base()
