"""Tests for sonosd.hostinfo: interfaces, containers and Docker bridge networks."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from typing import Any

import attrs

from sonosd.hostinfo import (
    IFREQ_SIZE,
    container,
    host_info,
    interfaces,
    lan_addresses,
    parse_ifconf,
    prefix_length,
)


@attrs.frozen
class FakeIP:
    ip: Any
    network_prefix: int


@attrs.frozen
class FakeAdapter:
    nice_name: str
    ips: list[FakeIP]


def adapters(*pairs: tuple[str, list[FakeIP]]) -> Any:
    return lambda: [FakeAdapter(name, ips) for name, ips in pairs]


BRIDGE = adapters(
    ("lo", [FakeIP("127.0.0.1", 8), FakeIP(("::1", 0, 0), 128)]),
    ("eth0", [FakeIP("172.17.0.2", 16)]),
)
HOST = adapters(
    ("lo", [FakeIP("127.0.0.1", 8)]),
    ("eth0", [FakeIP("192.168.1.10", 24), FakeIP("169.254.3.4", 16)]),
    ("wlan0", [FakeIP("10.0.0.5", 24)]),
)


def test_interfaces_and_lan_addresses() -> None:
    """Every interface with its addresses; LAN addresses leave out loopback and link-local."""
    found = interfaces(HOST)
    assert found[1] == {"name": "eth0", "addresses": ["192.168.1.10/24", "169.254.3.4/16"]}
    assert lan_addresses(found) == ["192.168.1.10", "10.0.0.5"]
    assert interfaces(BRIDGE)[0]["addresses"] == ["127.0.0.1/8", "::1/128"]


def test_container_detection(tmp_path: Path) -> None:
    """/.dockerenv means Docker, /run/.containerenv Podman, nothing of that a plain host."""
    assert container(tmp_path) is None
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".containerenv").write_text("")
    assert container(tmp_path) == "podman"
    (tmp_path / ".dockerenv").write_text("")
    assert container(tmp_path) == "docker"
    other = tmp_path / "k8s"
    (other / "proc" / "1").mkdir(parents=True)
    (other / "proc" / "1" / "cgroup").write_text("0::/kubepods/besteffort/pod1\n")
    assert container(other) == "container"


def test_bridge_network_is_recognised(tmp_path: Path) -> None:
    """In a container whose only LAN address is Docker's, the network is a bridge."""
    (tmp_path / ".dockerenv").write_text("")
    bridged = host_info(BRIDGE, tmp_path)
    assert (bridged["container"], bridged["bridge_network"]) == ("docker", True)
    assert bridged["lan_addresses"] == ["172.17.0.2"]
    hosted = host_info(HOST, tmp_path)
    assert (hosted["container"], hosted["bridge_network"]) == ("docker", False)
    plain = host_info(HOST, tmp_path / "none")
    assert (plain["container"], plain["bridge_network"]) == (None, False)


def ifreq(name: bytes, family: int, address: bytes, size: int = 40) -> bytes:
    """One ``struct ifreq`` as ``SIOCGIFCONF`` writes it (40 bytes on 64-bit Linux, 32 on
    32-bit)."""
    sockaddr = struct.pack("H", family) + b"\0\0" + address
    return name.ljust(16, b"\0") + sockaddr.ljust(size - 16, b"\0")


def test_the_kernels_interface_list_is_read() -> None:
    """A ``SIOCGIFCONF`` answer gives each IPv4 interface's name and address (anything else
    in it is skipped); a netmask gives its prefix length."""
    answer = (
        ifreq(b"lo", socket.AF_INET, socket.inet_aton("127.0.0.1"))
        + ifreq(b"eth0", socket.AF_INET6, b"\x20\x01")
        + ifreq(b"eth0", socket.AF_INET, socket.inet_aton("192.168.1.10"))
    )
    assert parse_ifconf(answer, 40) == [("lo", "127.0.0.1"), ("eth0", "192.168.1.10")]
    assert parse_ifconf(answer[:-1], 40) == [("lo", "127.0.0.1")]
    assert [prefix_length(socket.inet_aton(mask)) for mask in ("255.0.0.0", "255.255.240.0")] == [
        8,
        20,
    ]


def test_the_record_size_is_this_systems() -> None:
    """``struct ifreq`` is 40 bytes on a 64-bit system and 32 on a 32-bit one (a Raspberry Pi
    running a 32-bit image): records of either size are read at their own stride, and the
    default is this system's."""
    assert {8: 40, 4: 32}[struct.calcsize("P")] == IFREQ_SIZE
    for size in (32, 40):
        answer = ifreq(b"wlan0", socket.AF_INET, socket.inet_aton("10.0.0.5"), size) + ifreq(
            b"eth0", socket.AF_INET, socket.inet_aton("192.168.1.10"), size
        )
        assert len(answer) == 2 * size
        assert parse_ifconf(answer, size) == [("wlan0", "10.0.0.5"), ("eth0", "192.168.1.10")]
    # Read at the other stride, the second record is garbage: the size matters.
    assert parse_ifconf(answer, 32) != parse_ifconf(answer, 40)


def test_interfaces_without_netlink_come_from_the_kernel() -> None:
    """When ``getifaddrs()`` fails (it needs a netlink socket, which the systemd unit's
    RestrictAddressFamilies refuses), the IPv4 interfaces are asked of the kernel through an
    AF_INET socket: this host's loopback is there; when that fails too, no interface."""

    def refused() -> Any:
        raise OSError(97, "Address family not supported by protocol")

    found = interfaces(refused)
    assert {"name": "lo", "addresses": ["127.0.0.1/8"]} in found, found
    assert all(":" not in address for i in found for address in i["addresses"]), found
    assert interfaces(refused, fallback=refused) == []
    assert interfaces(HOST, fallback=refused)[0] == {"name": "lo", "addresses": ["127.0.0.1/8"]}
