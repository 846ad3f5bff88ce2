"""docs/deployment.md says what the shipped files hold: the systemd unit's hardening, the
graces a clean stop fits in, the Compose bridge configuration it prints and the credentials
example. Each statement is checked against the file or the default it describes (what the
daemon does with them runs on a real ``twistd sonosd`` in tests/test_daemon_process.py)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import yaml

from sonosd.api.site import ApiService
from sonosd.config import SubscriptionConfig, parse_config
from sonosd.sinks.stream import StreamService
from tests.paths import ROOT
from tests.test_packaging import _unit_settings

TEXT = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
UNIT = (ROOT / "etc" / "sonosd.service").read_text(encoding="utf-8")


def unit_settings() -> dict[str, list[str]]:
    """Every ``Key=value`` of the unit, values in order."""
    return _unit_settings(UNIT)


def block_after(marker: str, kind: str) -> str:
    """The first ``kind`` code block of the page after ``marker``."""
    rest = TEXT[TEXT.index(marker) :]
    found = re.search(rf"```{kind}\n(.*?)```", rest, re.S)
    assert found, (marker, kind)
    return found.group(1)


def test_the_unit_has_the_hardening_the_page_lists() -> None:
    """ "hardened: NoNewPrivileges, no capabilities, ProtectSystem=strict, ProtectHome,
    PrivateTmp, PrivateDevices, RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX,
    kernel/clock/hostname/cgroup protections, SystemCallFilter=@system-service, ...
    PrivateMounts"; MemoryDenyWriteExecute left off, and what the exposure still counts
    "each said in the unit's comments"."""
    settings = unit_settings()
    expected = {
        "NoNewPrivileges": ["yes"],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "PrivateMounts": ["yes"],
        "RestrictAddressFamilies": ["AF_INET AF_INET6 AF_UNIX"],
        "ProtectKernelTunables": ["yes"],
        "ProtectKernelModules": ["yes"],
        "ProtectKernelLogs": ["yes"],
        "ProtectClock": ["yes"],
        "ProtectHostname": ["yes"],
        "ProtectControlGroups": ["yes"],
        "DynamicUser": ["yes"],
        "RuntimeDirectory": ["sonosd"],
        "StateDirectory": ["sonosd"],
        "ConfigurationDirectory": ["sonosd"],
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert settings["SystemCallFilter"][0] == "@system-service", settings["SystemCallFilter"]
    assert "MemoryDenyWriteExecute" not in settings
    comments = " ".join(line for line in UNIT.splitlines() if line.startswith("#"))
    for said in ("MemoryDenyWriteExecute", "AF_INET", "ProtectClock", "RootDirectory"):
        assert said in comments, said
    # The page's paths are the directories these settings make.
    for path in ("`/var/lib/sonosd`", "`/run/sonosd`", "`/etc/sonosd`"):
        assert path in TEXT, path


def test_a_clean_stop_fits_the_graces_the_page_gives() -> None:
    """ "up to shutdown_timeout + 0.5 s for the UNSUBSCRIBEs, then shutdown_timeout again for
    the push sinks, the API and the stream ...: 10.5 s with the defaults (the API's and the
    stream's clients get 3 s to close, which matters only with a shutdown_timeout below
    3.5 s). That is just over Docker's default 10 s grace: ... stop_grace_period: 30s (the
    systemd unit has TimeoutStopSec=30s), which also leaves room for a shutdown_timeout of up
    to 14 s"."""
    timeout = SubscriptionConfig().shutdown_timeout

    def longest(shutdown_timeout: float) -> float:
        return shutdown_timeout + 0.5 + shutdown_timeout

    said = re.search(r"drain together however many sinks there are: ([\d.]+) s with", TEXT)
    assert said, "the page gives no clean stop with the defaults"
    assert float(said.group(1)) == longest(timeout) > 10.0
    # The API's clients get 3 s; the stream waits half a second more for its own.
    api_grace = inspect.signature(ApiService).parameters["grace"].default
    stream_grace = inspect.signature(StreamService).parameters["grace"].default
    assert (api_grace, stream_grace + 0.5) == (3.0, 3.5)
    assert "get 3 s to close, which matters only with a `shutdown_timeout` below\n3.5 s" in TEXT
    # 30 s, in the unit and in both Compose services, and room for up to 14 s.
    assert unit_settings()["TimeoutStopSec"] == ["30s"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {s["stop_grace_period"] for s in compose["services"].values()} == {"30s"}
    assert longest(14) <= 30 < longest(15)
    assert "`shutdown_timeout` of up to 14 s" in TEXT
    # Both `docker run` lines give the same grace.
    runs = [block for block in re.findall(r"```sh\n(.*?)```", TEXT, re.S) if "docker run" in block]
    assert len(runs) == 2 and all("--stop-timeout 30 " in block for block in runs), runs


def test_the_bridge_configuration_shown_is_the_compose_file() -> None:
    """The page prints etc/compose/bridge.yaml: the same document."""
    shown = yaml.safe_load(
        block_after("[`etc/compose/bridge.yaml`](../etc/compose/bridge.yaml):", "yaml")
    )
    shipped = yaml.safe_load((ROOT / "etc" / "compose" / "bridge.yaml").read_text())
    assert shown == shipped


def test_the_credentials_example_reads_the_secrets_systemd_hands_over(tmp_path: Path) -> None:
    """The LoadCredential lines name the files the configuration example reads under
    /run/credentials/sonosd.service/, and that configuration takes its token and its MQTT
    password from them."""
    unit = block_after("let systemd hand it over.", "ini")
    credentials = dict(re.findall(r"^LoadCredential=(\w+):(\S+)$", unit, re.M))
    assert credentials == {
        "ha_token": "/etc/sonosd/ha_token",
        "mqtt_password": "/etc/sonosd/mqtt_password",
    }
    example = block_after("LoadCredential=mqtt_password", "yaml")
    read = re.findall(r"/run/credentials/sonosd\.service/(\w+)", example)
    assert sorted(read) == sorted(credentials)
    for name in read:
        (tmp_path / name).write_text(f"secret of {name}\n")
        example = example.replace(f"/run/credentials/sonosd.service/{name}", str(tmp_path / name))
    config = parse_config(example, "config.yaml", {})
    [token] = config.api.tokens
    assert (token.name, token.secret, token.scopes) == (
        "home-assistant",
        "secret of ha_token",
        frozenset({"read", "control"}),
    )
    assert config.sinks.mqtt is not None
    assert config.sinks.mqtt.password == "secret of mqtt_password"
    assert config.inline_secrets == ()


def test_the_network_list_gives_the_codes_defaults() -> None:
    """ "TCP `listener.port` (default 1400)" and "the API (`api.listen`, default 8080 on
    loopback only)": what a file that leaves them out listens on."""
    defaults = parse_config("{}\n", environ={})
    assert "TCP `listener.port` (default 1400)" in TEXT
    assert defaults.listener.port == 1400
    assert "the API (`api.listen`, default 8080 on loopback only)" in TEXT
    assert defaults.api.listen == "tcp:8080:interface=127.0.0.1"
