# -*- test-case-name: tests.test_hostinfo -*-
"""What the host looks like from inside the daemon: its addresses and whether it is a container.

The diagnostics (``/api/v1/diagnostics``) report this so that ``sonosctl doctor`` can explain
why the speakers' NOTIFYs do not arrive: a Docker bridge network (the container's private
address is what the speakers would be told, unless ``listener.advertise`` is set), or several
interfaces (the speakers may be on a network the advertised address is not on).
Interfaces are read with ``ifaddr`` (pure Python; SoCo's own dependency for discovery). Its
``getifaddrs()`` needs a netlink socket, which the systemd unit's
``RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX`` refuses: the IPv4 interfaces are then
asked of the kernel through an AF_INET socket (``SIOCGIFCONF``, ``SIOCGIFNETMASK``).
"""

from __future__ import annotations

import array
import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ifaddr

#: The address pools Docker gives bridge networks by default (172.17.0.0/16 for the default
#: bridge, the rest of 172.16.0.0/12 and 192.168.0.0/16 for user-defined networks).
DOCKER_POOLS = (ipaddress.ip_network("172.16.0.0/12"),)


#: ``ioctl`` requests of an AF_INET socket: every interface's IPv4 address, one's netmask.
SIOCGIFCONF, SIOCGIFNETMASK = 0x8912, 0x891B
#: ``struct ifreq`` on Linux: the name (16 bytes), then a union of a ``struct sockaddr``
#: (16 bytes) and a ``struct ifmap`` (two ``unsigned long``, an ``unsigned short``, three
#: ``unsigned char``, padded to ``long``'s alignment). The union is 24 bytes on a 64-bit
#: system (40 in all) and 16 on a 32-bit one, such as Raspberry Pi OS's 32-bit images (32).
IFNAMSIZ = 16
IFREQ_SIZE = IFNAMSIZ + max(16, struct.calcsize("@LLHBBB0L"))
#: The most interfaces ``SIOCGIFCONF`` is asked for.
MAX_INTERFACES = 256


def parse_ifconf(data: bytes, size: int = IFREQ_SIZE) -> list[tuple[str, str]]:
    """The ``(name, IPv4 address)`` of each ``struct ifreq`` (``size`` bytes: this system's)
    in a ``SIOCGIFCONF`` answer."""
    found = []
    for start in range(0, len(data) - size + 1, size):
        record = data[start : start + size]
        family = struct.unpack_from("H", record, IFNAMSIZ)[0]
        if family == socket.AF_INET:
            name = record[:IFNAMSIZ].split(b"\0", 1)[0].decode(errors="replace")
            found.append((name, socket.inet_ntoa(record[IFNAMSIZ + 4 : IFNAMSIZ + 8])))
    return found


def prefix_length(netmask: bytes) -> int:
    """The prefix length of an IPv4 netmask (``255.255.255.0``: 24)."""
    return bin(int.from_bytes(netmask, "big")).count("1")


def ipv4_adapters() -> list[ifaddr.Adapter]:
    """The IPv4 interfaces, asked of the kernel through an AF_INET socket (no netlink)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        # struct ifconf: the buffer's length, then where it is; the kernel fills it in.
        records = array.array("B", bytes(IFREQ_SIZE * MAX_INTERFACES))
        address, size = records.buffer_info()
        answer = fcntl.ioctl(probe.fileno(), SIOCGIFCONF, struct.pack("iP", size, address))
        length = struct.unpack("iP", answer)[0]
        adapters: dict[str, ifaddr.Adapter] = {}
        for name, ip in parse_ifconf(records.tobytes()[:length]):
            asked = struct.pack(f"{IFNAMSIZ}s{IFREQ_SIZE - IFNAMSIZ}x", name.encode())
            mask = fcntl.ioctl(probe.fileno(), SIOCGIFNETMASK, asked)
            prefix = prefix_length(mask[IFNAMSIZ + 4 : IFNAMSIZ + 8])
            adapter = adapters.setdefault(name, ifaddr.Adapter(name, name, []))
            adapter.ips.append(ifaddr.IP(ip, prefix, name))
        return list(adapters.values())


def interfaces(
    adapters: Callable[[], Iterable[Any]] = ifaddr.get_adapters,
    fallback: Callable[[], Iterable[Any]] = ipv4_adapters,
) -> list[dict[str, Any]]:
    """Every network interface with its addresses (``"192.168.1.10/24"``), loopback included;
    the IPv4 ones only when ``adapters`` cannot read them (no netlink socket under systemd),
    none when neither can."""
    try:
        found = list(adapters())
    except OSError:
        try:
            found = list(fallback())
        except OSError:
            found = []
    result = []
    for adapter in found:
        addresses = []
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            addresses.append(f"{address}/{ip.network_prefix}")
        if addresses:
            result.append({"name": str(adapter.nice_name), "addresses": addresses})
    return result


def lan_addresses(found: Iterable[dict[str, Any]]) -> list[str]:
    """The IPv4 addresses of ``found`` that are not loopback or link-local."""
    result = []
    for interface in found:
        for text in interface["addresses"]:
            address = ipaddress.ip_interface(text).ip
            if address.version == 4 and not (address.is_loopback or address.is_link_local):
                result.append(str(address))
    return result


def container(root: Path = Path("/")) -> str | None:
    """``docker``, ``podman`` or ``container`` when the daemon runs in one, else ``None``."""
    if (root / ".dockerenv").exists():
        return "docker"
    if (root / "run" / ".containerenv").exists():
        return "podman"
    try:
        cgroup = (root / "proc" / "1" / "cgroup").read_text(errors="replace")
    except OSError:
        return None
    if "docker" in cgroup:
        return "docker"
    if "kubepods" in cgroup or "containerd" in cgroup:
        return "container"
    return None


def host_info(
    adapters: Callable[[], Iterable[Any]] = ifaddr.get_adapters, root: Path = Path("/")
) -> dict[str, Any]:
    """The host as the diagnostics report it.

    ``bridge_network`` is true in a container whose only LAN addresses are in Docker's
    private pools: the speakers cannot reach those addresses.
    """
    found = interfaces(adapters)
    lan = lan_addresses(found)
    kind = container(root)
    bridged = (
        bool(kind)
        and bool(lan)
        and all(
            any(ipaddress.ip_address(address) in pool for pool in DOCKER_POOLS) for address in lan
        )
    )
    return {
        "hostname": socket.gethostname(),
        "container": kind,
        "bridge_network": bridged,
        "interfaces": found,
        "lan_addresses": lan,
    }
