"""Tests for ``twistd sonos-sim`` options and service (sonosd.sim.tap, sonosd.sim.service)."""

from __future__ import annotations

import ipaddress
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from twisted.internet import reactor
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import TestCase

from sonosd.config import SimulateConfig
from sonosd.sim.service import HouseholdService
from sonosd.sim.tap import Options
from tests.conftest import free_loopback_base
from tests.daemon_helpers import until
from tests.paths import ROOT
from tests.sim_fakes import RecordingManager


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def test_options_build_the_config() -> None:
    """Every option lands in the SimulateConfig (and seed/models beside it)."""
    options = parse(
        "--speakers",
        "5",
        "--base-address",
        "127.0.1.2",
        "--port",
        "1401",
        "--rooms",
        "A, B",
        "--activity",
        "2.5",
        "--admin",
        "tcp:0:interface=127.0.0.1",
        "--stereo-pair",
        "--seed",
        "9",
        "--models",
        "s18,s14",
    )
    assert options.config == SimulateConfig(
        speakers=5,
        base_address="127.0.1.2",
        port=1401,
        rooms=("A", "B"),
        activity=2.5,
        admin="tcp:0:interface=127.0.0.1",
        stereo_pair=True,
        models=("S18", "S14"),
    )
    assert (options.seed, options.models) == (9, ("S18", "S14"))


@pytest.mark.parametrize("count", [1, 1000])
def test_speakers_limits_are_accepted(count: int) -> None:
    """--speakers takes 1 and 1000, the ends of its documented range."""
    assert parse("--speakers", str(count)).config.speakers == count


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--speakers", "0"), "--speakers: expected an integer from 1 to 1000, got '0'"),
        (("--speakers", "x"), "--speakers: expected an integer from 1 to 1000, got 'x'"),
        (("--speakers", "1001"), "--speakers: expected an integer from 1 to 1000, got '1001'"),
        (("--base-address", "kitchen"), "--base-address: expected an IPv4 address"),
        (
            ("--base-address", "192.168.1.20"),
            "--base-address: expected a loopback address (127.0.0.0/8): the simulator takes "
            "no address off this machine, got '192.168.1.20'",
        ),
        (
            ("--speakers", "5", "--base-address", "127.255.255.251"),
            "--base-address: 5 speakers from 127.255.255.251 run past 127.255.255.254",
        ),
        (("--activity", "-1"), "--activity: expected changes per second"),
        (("--models", "S99"), "--models: unknown model 'S99'"),
        (("--rooms", "Den, Kit\ufffechen"), "--rooms: 'Kit\\ufffechen': character"),
        (("--speakers", "1", "--stereo-pair"), "--stereo-pair: needs at least 2 speakers"),
        (("--port", "70000"), "--port: expected an integer from 1 to 65535"),
        (("--speakers", "3", "--home-theatre"), "--home-theatre: needs 4 speakers"),
        (
            ("--speakers", "5", "--stereo-pair", "--home-theatre"),
            "--home-theatre: needs 6 speakers",
        ),
        (("--speakers", "2", "--households", "3"), "--households: expected an integer from 1 to 2"),
        (
            ("--speakers", "5", "--households", "2", "--home-theatre"),
            "--home-theatre: needs 4 speakers in the first household (it has 3)",
        ),
        (
            ("--speakers", "3", "--households", "3", "--stereo-pair"),
            "--stereo-pair: needs at least 2 speakers in the first household (it has 1)",
        ),
        (("--moderation", "-0.1"), "--moderation: expected a number from 0 to 10"),
        (("--moderation", "soon"), "--moderation: expected a number"),
        (("--large-household-players", "0"), "--large-household-players: expected an integer"),
        (("--large-household", "--no-large-household"), "--large-household and --no-large-"),
        (("--upnp-off-ssdp", "loud"), "--upnp-off-ssdp: expected answer or silent"),
        (("--upnp-off-forbidden", "art"), "--upnp-off-forbidden: expected kinds among"),
        (("--https-only", "3"), "--https-only: expected an integer from 0 to 2"),
        (("--https-only", "x"), "--https-only: expected an integer"),
        (("--tls-port", "0"), "--tls-port: expected an integer from 1 to 65535"),
        (("--admin", "tcp:x"), "--admin: expected a Twisted server endpoint string such as"),
        (
            ("--admin", "tcp:8400"),
            "--admin: expected an endpoint on this machine only (tcp:PORT:interface=127.x.y.z, "
            "or a unix socket): the admin API changes the simulated household and takes no "
            "token, got 'tcp:8400'",
        ),
        (
            ("--admin", "tcp:8400:interface=192.168.1.20"),
            "--admin: expected an endpoint on this machine only",
        ),
    ],
)
def test_bad_options(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong option is one line on stderr naming it, and exit status 1 (no usage text)."""
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"sonos-sim: {message}"), line


def test_the_last_loopback_addresses_are_taken() -> None:
    """A household may end on 127.255.255.254, the last loopback address, and start on
    127.0.0.0, the first."""
    options = parse("--speakers", "4", "--base-address", "127.255.255.251")
    assert options.config.base_address == "127.255.255.251"
    assert parse("--base-address", "127.0.0.0").config.base_address == "127.0.0.0"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--speakers", "x"), "--speakers: expected an integer from 1 to 1000, got 'x'"),
        (
            ("--base-address", "192.168.1.20"),
            "--base-address: expected a loopback address (127.0.0.0/8): the simulator takes "
            "no address off this machine, got '192.168.1.20'",
        ),
    ],
)
def test_twistd_sonos_sim_bad_option_is_one_line(
    tmp_path: Path, argv: tuple[str, ...], message: str
) -> None:
    """`twistd -n sonos-sim` with a wrong option (a count that is no number, an address off
    this machine) prints one line and exits 1, writing nothing and listening nowhere."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "twistd"), "-n", "sonos-sim", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"sonos-sim: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_every_documented_model_is_taken_in_any_case() -> None:
    """--models takes every model number the options table lists (``Sub`` among them), in
    any case, and the household's speakers are those models."""
    text = (ROOT / "docs" / "simulator.md").read_text()
    [row] = [line for line in text.splitlines() if line.startswith("| `--models`")]
    numbers = re.findall(r"`(S\d+|Sub)`", row)
    assert len(numbers) == 9
    for spelled in (numbers, [n.lower() for n in numbers]):
        options = parse("--speakers", str(len(numbers)), "--models", ",".join(spelled))
        service = HouseholdService(MemoryReactorClock(), options.config, models=options.models)
        assert [s.model.number for s in service.household.speakers] == numbers


def test_a_pair_and_a_home_theatre_fit_the_first_household() -> None:
    """The options that pass build a household: the first household (the largest) holds the
    stereo pair and the home theatre."""
    options = parse("--speakers", "11", "--households", "2", "--stereo-pair", "--home-theatre")
    first, second = HouseholdService(MemoryReactorClock(), options.config).households
    assert [s.invisible for s in first.speakers] == [False, True, False, True, True, True]
    assert len(first.speakers[2].satellites) == 3 and len(second.speakers) == 5


def test_mode_options_build_the_config() -> None:
    """Household and firmware mode options land in the SimulateConfig."""
    options = parse(
        "--speakers",
        "8",
        "--households",
        "2",
        "--home-theatre",
        "--moderation",
        "0",
        "--large-household",
        "--large-household-players",
        "5",
        "--upnp-off",
        "--upnp-off-ssdp",
        "silent",
        "--upnp-off-forbidden",
        "control, scpd",
        "--https-only",
        "2, 0,2",
        "--tls-port",
        "1543",
    )
    config = options.config
    assert (config.households, config.home_theatre, config.moderation) == (2, True, 0.0)
    assert (config.large_household, config.large_household_players) == (True, 5)
    assert (config.upnp, config.upnp_off_ssdp) == (False, "silent")
    assert config.upnp_off_forbidden == ("control", "scpd")
    assert (config.https_only, config.tls_port) == ((0, 2), 1543)
    assert parse("--speakers", "3", "--https-only", "all").config.https_only == (0, 1, 2)
    defaults = parse().config
    assert defaults == SimulateConfig()
    # Large households refuse GetZoneGroupState by default, as real ones do.
    assert defaults.large_household
    assert not parse("--no-large-household").config.large_household


def test_service_listens_per_speaker_and_stops() -> None:
    """startService listens on each speaker's address and port; stopService closes them."""
    reactor = MemoryReactorClock()
    service = HouseholdService(
        reactor,
        SimulateConfig(speakers=100, base_address="127.0.0.2"),
        manager_factory=RecordingManager,
    )
    service.startService()
    listened = [(port, interface) for port, _, _, interface in reactor.tcpServers]
    assert listened == [(1400, f"127.0.0.{n}") for n in range(2, 102)]
    assert service.addresses[0] == "127.0.0.2"
    assert all(s.manager is not None for s in service.household.speakers)
    service.stopService()
    assert all(m.calls[-1] == "stop" for m in (s.manager for s in service.household.speakers))  # type: ignore[union-attr]
    assert not reactor.getDelayedCalls()


def test_seed_follows_base_address() -> None:
    """Without a seed the identities depend on the base address (stable across restarts)."""
    a = HouseholdService(MemoryReactorClock(), SimulateConfig(base_address="127.0.0.2"))
    b = HouseholdService(MemoryReactorClock(), SimulateConfig(base_address="127.0.0.2"))
    c = HouseholdService(MemoryReactorClock(), SimulateConfig(base_address="127.0.9.2"))
    assert a.household.household_id == b.household.household_id != c.household.household_id


def test_https_only_speakers_also_listen_for_tls() -> None:
    """An HTTPS-only speaker listens on the TLS port of its address too; others do not."""
    reactor = MemoryReactorClock()
    service = HouseholdService(
        reactor,
        SimulateConfig(speakers=3, base_address="127.0.0.2", https_only=(1,), tls_port=1543),
        manager_factory=RecordingManager,
    )
    service.startService()
    assert [(port, interface) for port, _, _, _, interface in reactor.sslServers] == [
        (1543, "127.0.0.3")
    ]
    service.stopService()


def documented_options() -> dict[str, str]:
    """Each option of the ``twistd sonos-sim`` table in docs/simulator.md -> its default
    cell (``--large-household`` / ``--no-large-household`` under its first name)."""
    text = (ROOT / "docs" / "simulator.md").read_text()
    section = text.split("## Running it", 1)[1].split("\n### ", 1)[0]
    options = {}
    for line in section.splitlines():
        if line.startswith("| `--"):
            name, default = (cell.strip() for cell in line.split("|")[1:3])
            options[re.findall(r"`(--[a-z-]+)`", name)[0]] = default.strip("`")
    return options


def effective_defaults(service: HouseholdService) -> dict[str, str]:
    """What a household started with no option does, in the words of the options table."""
    household, speakers = service.household, service.household.speakers
    modes = household.modes
    [model] = {speaker.model.number for speaker in speakers}
    [tls_port] = {presence.tls_port for presence in service.presences}
    [moderation] = {speaker.gena.moderation for speaker in speakers}  # type: ignore[union-attr]
    return {
        "--speakers": str(len(service.neighbourhood.speakers)),
        "--base-address": service.addresses[0],
        "--port": str(speakers[0].port),
        "--rooms": ", ".join(speaker.name for speaker in speakers) + ", ...",
        "--models": f"{model} for all",
        "--activity": f"{service.activity.rate:g}",
        "--admin": "none" if service.admin_ready is None else "an endpoint",
        "--stereo-pair": "on" if any(s.invisible for s in speakers) else "off",
        "--home-theatre": "on" if any(s.satellites for s in speakers) else "off",
        "--households": str(len(service.households)),
        "--moderation": f"{moderation:g}",
        "--large-household": "on" if modes.large_household else "off",
        "--large-household-players": str(modes.large_household_players),
        "--upnp-off": "off" if modes.upnp else "on",
        "--upnp-off-forbidden": ",".join(modes.upnp_off_forbidden),
        "--upnp-off-ssdp": modes.upnp_off_ssdp,
        "--https-only": "none" if not any(s.https_only for s in speakers) else "some",
        "--tls-port": str(tls_port),
        "--ssdp-port": "none" if service.ssdp is None else "a port",
        # test_seed_follows_base_address shows what a seed derived from the address does.
        "--seed": "from the base address" if parse().seed is None else "given",
    }


def test_documented_defaults_are_what_a_bare_household_does() -> None:
    """The options table of docs/simulator.md names every option of ``twistd sonos-sim``
    (both ways), and each default it gives is what a household started with no option does:
    read from the running household, not from the config."""
    documented = documented_options()
    flags = {f"--{flag[0]}" for flag in Options.optFlags if not flag[0].startswith("no-")}
    assert set(documented) == {f"--{p[0]}" for p in Options.optParameters} | flags
    options = parse()
    service = HouseholdService(
        MemoryReactorClock(),
        options.config,
        seed=options.seed,
        models=options.models,
        ssdp_port=options.ssdp_port,
    )
    service.startService()
    try:
        assert effective_defaults(service) == documented
    finally:
        service.stopService()


def bindable(address: str, port: int) -> bool:
    """Whether ``address:port`` can be bound (nobody listens there any more)."""
    with socket.socket() as probe:
        try:
            probe.bind((address, port))
        except OSError:
            return False
        return True


class TakenAddressTests(TestCase):
    async def test_start_raises_when_an_address_is_taken_and_leaves_nothing_listening(
        self,
    ) -> None:
        """startService raises CannotListenError when a speaker's address and port are taken
        (docs/simulator.md, Embedding), and closes what it had opened: the speaker before
        the taken one stops listening."""
        base = free_loopback_base(count=3)
        second = str(ipaddress.IPv4Address(base) + 1)
        with socket.socket() as taken:
            taken.bind((second, 0))
            taken.listen()
            port = taken.getsockname()[1]
            service = HouseholdService(
                reactor,
                SimulateConfig(speakers=3, base_address=base, port=port),
                manager_factory=RecordingManager,
            )
            with pytest.raises(CannotListenError):
                service.startService()
            [logged] = self.flushLoggedErrors(CannotListenError)
            assert second in str(logged.value)
            assert service.presences == []
            await until(lambda: bindable(base, port), "the first speaker's port to close")
