"""Tests for L{sonosd.sim.addresses}."""

from __future__ import annotations

import re
import socket

import pytest
from twisted.internet.task import Clock

from sonosd.config import SimulateConfig
from sonosd.sim.addresses import free_loopback_base, loopback_range, on_this_machine, port_free
from sonosd.sim.household import Household
from sonosd.sim.service import HouseholdService


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


@pytest.mark.parametrize(
    ("address", "count", "problem"),
    [
        ("192.168.1.20", 1, "expected a loopback address (127.0.0.0/8)"),
        ("10.0.0.2", 3, "expected a loopback address (127.0.0.0/8)"),
        ("126.255.255.255", 1, "expected a loopback address (127.0.0.0/8)"),
        ("128.0.0.0", 1, "expected a loopback address (127.0.0.0/8)"),
        ("127.255.255.255", 1, "1 speakers from 127.255.255.255 run past 127.255.255.254"),
        ("127.255.255.200", 56, "56 speakers from 127.255.255.200 run past 127.255.255.254"),
        ("kitchen", 1, "expected an IPv4 address, got 'kitchen'"),
    ],
)
def test_only_loopback_ranges_are_taken(address: str, count: int, problem: str) -> None:
    """An address off 127.0.0.0/8, or a range running past 127.255.255.254, is refused with
    the address named; the household, an address change and the embedding API all refuse it."""
    with pytest.raises(ValueError) as raised:
        loopback_range(address, count)
    assert problem in str(raised.value) and address in str(raised.value)
    with pytest.raises(ValueError, match=re.escape(problem)):
        Household(Clock(), speakers=count, base_address=address)
    with pytest.raises(ValueError, match=re.escape(problem)):
        HouseholdService(Clock(), SimulateConfig(speakers=count, base_address=address))


@pytest.mark.parametrize("admin", ["tcp:8400", "tcp:8400:interface=192.168.1.20"])
def test_the_embedding_api_refuses_an_admin_endpoint_off_this_machine(admin: str) -> None:
    """``SimulateConfig(admin=...)`` built in Python is checked as the YAML and the command
    line are: an admin API reachable from the network is refused, naming the endpoint."""
    with pytest.raises(ValueError) as raised:
        HouseholdService(Clock(), SimulateConfig(speakers=1, base_address="127.9.9.2", admin=admin))
    assert str(raised.value).startswith("admin: expected an endpoint on this machine only")
    assert repr(admin) in str(raised.value)
    local = SimulateConfig(speakers=1, base_address="127.9.9.2", admin="tcp:0:interface=127.0.0.1")
    assert HouseholdService(Clock(), local).config.admin == "tcp:0:interface=127.0.0.1"


def test_loopback_ranges_up_to_the_last_address() -> None:
    """127.0.0.0/8 is taken up to 127.255.255.254, and a speaker moves only within it."""
    assert str(loopback_range("127.255.255.200", 55)) == "127.255.255.200"
    assert str(loopback_range("127.0.0.2")) == "127.0.0.2"
    household = Household(Clock(), speakers=2, base_address="127.255.255.253")
    assert [s.address for s in household.speakers] == ["127.255.255.253", "127.255.255.254"]
    speaker = household.speakers[0]
    with pytest.raises(ValueError, match=r"^address: expected a loopback address .*'10\.1\.2\.3'"):
        speaker.change_address("10.1.2.3")
    assert speaker.address == "127.255.255.253"


def test_hosts_on_this_machine() -> None:
    """Loopback hosts are on this machine, and so is an address of one of its interfaces
    (the docker bridge test of test_daemon_process has one); documentation addresses, names,
    the unspecified and multicast addresses are not."""
    for host in ("127.0.0.1", "127.200.3.4", "localhost"):
        assert on_this_machine(host), host
    for host in ("192.0.2.20", "198.51.100.7", "kitchen.lan", "0.0.0.0", "224.0.0.1", "::"):
        assert not on_this_machine(host), host
    assert not on_this_machine("255.255.255.255")
