# -*- test-case-name: tests.sim.test_addresses -*-
"""Free blocks of loopback addresses for simulated households.

A simulated household listens on one port (1400, as real speakers) of consecutive loopback
addresses. Tests, benchmarks and demos that run at the same time each take a /24 inside
127.0.0.0/8 that nobody else uses.
"""

from __future__ import annotations

import random
import socket


def free_loopback_base(port: int = 1400, count: int = 4) -> str:
    """Return ``127.A.B.2`` such that ``127.A.B.2`` .. ``127.A.B.(1+count)`` have ``port`` free.

    @raise ValueError: ``count`` does not fit in a /24 after ``.1``.
    @raise RuntimeError: No free block was found.
    """
    if not 1 <= count <= 253:
        raise ValueError(f"count: expected 1 to 253 addresses, got {count}")
    rng = random.SystemRandom()
    for _ in range(200):
        prefix = f"127.{rng.randint(1, 254)}.{rng.randint(0, 254)}"
        addresses = [f"{prefix}.{i}" for i in range(2, 2 + count)]
        if all(port_free(address, port) for address in addresses):
            return addresses[0]
    raise RuntimeError("no free loopback block found")


def port_free(address: str, port: int) -> bool:
    """Whether ``port`` of ``address`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True
