"""Tests for L{sonosd.sim.addresses}."""

from __future__ import annotations

import socket

import pytest

from sonosd.sim.addresses import free_loopback_base, port_free


def test_block_is_free_and_in_one_slash_24() -> None:
    """The block returned has the port free on every address, all in one 127.A.B.0/24."""
    base = free_loopback_base(count=200)
    prefix, _, first = base.rpartition(".")
    assert base.startswith("127.") and first == "2"
    assert all(port_free(f"{prefix}.{i}", 1400) for i in range(2, 202))


def test_taken_port_is_not_free() -> None:
    """A port bound by someone else is reported taken."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert not port_free("127.0.0.1", holder.getsockname()[1])


def test_count_must_fit() -> None:
    """A block larger than a /24 allows is refused with the count named."""
    with pytest.raises(ValueError, match="count"):
        free_loopback_base(count=254)
