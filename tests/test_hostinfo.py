"""Tests for sonosd.hostinfo: interfaces, containers and Docker bridge networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from sonosd.hostinfo import container, host_info, interfaces, lan_addresses


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
