# -*- test-case-name: tests.sim.test_addresses -*-
"""Free blocks of loopback addresses for simulated households.

A simulated household listens on one port (1400, as real speakers) of consecutive loopback
addresses. Tests, benchmarks and demos that run at the same time each take a /24 inside
127.0.0.0/8 that nobody else uses.

``loopback_range`` is the one rule for every address the simulator takes (``--base-address``,
``Household``, an address change): loopback only, so that it never binds, announces (SSDP,
NOTIFY sources, device descriptions, ZoneGroupState ``Location``) or sends from an address off
this machine.
"""

from __future__ import annotations

import ipaddress
import random
import socket

#: The only addresses the simulator takes.
LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
#: The last of them (127.255.255.255 is the broadcast address).
LAST_LOOPBACK = ipaddress.IPv4Address("127.255.255.254")


def loopback_range(address: str, count: int = 1) -> ipaddress.IPv4Address:
    """``address`` if it and the ``count - 1`` addresses after it are loopback addresses.

    @raise ValueError: Naming the address and what is wrong with it.
    """
    try:
        first = ipaddress.IPv4Address(address)
    except ValueError:
        raise ValueError(f"expected an IPv4 address, got {address!r}") from None
    if first not in LOOPBACK:
        raise ValueError(
            f"expected a loopback address (127.0.0.0/8): the simulator takes no address off "
            f"this machine, got {address!r}"
        )
    if int(first) + count - 1 > int(LAST_LOOPBACK):
        raise ValueError(f"{count} speakers from {address} run past {LAST_LOOPBACK}")
    return first


def loopback_host(host: str) -> bool:
    """Whether the simulator may connect to ``host`` (a 127.0.0.0/8 address or localhost):
    the URIs a speaker fetches, the callbacks it sends NOTIFYs to."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host) in LOOPBACK
    except ValueError:
        return False


def on_this_machine(host: str) -> bool:
    """Whether ``host`` is a loopback host (``loopback_host``) or an address of one of this
    machine's interfaces (a daemon in a container advertises its bridge address): what the
    simulator sends there never leaves the machine. Names other than localhost are not
    resolved, and are not."""
    if loopback_host(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if address.is_unspecified or address.is_multicast or host == "255.255.255.255":
        return False
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, 0))
        except OSError:
            return False
    return True


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
