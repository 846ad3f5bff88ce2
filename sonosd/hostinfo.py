# -*- test-case-name: tests.test_hostinfo -*-
"""What the host looks like from inside the daemon: its addresses and whether it is a container.

The diagnostics (``/api/v1/diagnostics``) report this so that ``sonosctl doctor`` can explain
why the speakers' NOTIFYs do not arrive: a Docker bridge network (the container's private
address is what the speakers would be told, unless ``listener.advertise`` is set), or several
interfaces (the speakers may be on a network the advertised address is not on).
Interfaces are read with ``ifaddr`` (pure Python; SoCo's own dependency for discovery).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import ifaddr

#: The address pools Docker gives bridge networks by default (172.17.0.0/16 for the default
#: bridge, the rest of 172.16.0.0/12 and 192.168.0.0/16 for user-defined networks).
DOCKER_POOLS = (ipaddress.ip_network("172.16.0.0/12"),)


def interfaces(adapters: Callable[[], Iterable[Any]] = ifaddr.get_adapters) -> list[dict[str, Any]]:
    """Every network interface with its addresses (``"192.168.1.10/24"``), loopback included."""
    result = []
    for adapter in adapters():
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
