"""Tests for sonosd.config: the YAML loader, its one-line errors, the schema and the objects."""

from __future__ import annotations

import ipaddress
import json
import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from sonosd import config as config_module
from sonosd.config import (
    DEFAULT_SERVICES,
    SCHEMA,
    SERVICES,
    AnnounceConfig,
    ApiConfig,
    Config,
    ConfigError,
    Device,
    ListenerConfig,
    LogConfig,
    MqttConfig,
    SimulateConfig,
    SinksConfig,
    SocoConfig,
    SsdpConfig,
    SubscriptionConfig,
    Token,
    Webhook,
    config_warnings,
    endpoint_problem,
    format_path,
    is_host,
    load_config,
    parse_config,
    show_value,
)
from tests.paths import ROOT


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "config.yaml", environ or {}, overrides)
    return str(caught.value)


# -- the file itself --------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    """A file that does not exist is named with the reason."""
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == (
        f"{path}: cannot read the configuration file: No such file or directory"
    )


def test_unreadable_file(tmp_path: Path) -> None:
    """A path that cannot be read as a file (here a directory) is named with the reason."""
    with pytest.raises(ConfigError) as caught:
        load_config(str(tmp_path))
    assert str(caught.value) == f"{tmp_path}: cannot read the configuration file: Is a directory"


def test_file_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 text is refused with the offending byte."""
    path = tmp_path / "config.yaml"
    path.write_bytes(b"listener:\n  port: \xff\n")
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value) == (
        f"{path}: cannot read the configuration file: not UTF-8 text (byte 18 is 0xff)"
    )


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    """A file with no settings at all is an error, not an all-defaults configuration."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    if text == "---\n":
        assert str(caught.value) == (
            f"{path}:2: expected a mapping of settings at the top level, got null"
        )
    else:
        assert str(caught.value) == f"{path}: the file is empty; expected a mapping of settings"


def test_top_level_not_a_mapping() -> None:
    """A list (or a scalar) at the top level is refused with the value."""
    assert error_of("- 1\n- 2\n") == (
        "config.yaml:1: expected a mapping of settings at the top level, got [1, 2]"
    )
    assert error_of("hello\n") == (
        'config.yaml:1: expected a mapping of settings at the top level, got "hello"'
    )


def test_invalid_yaml() -> None:
    """A YAML syntax error names its line and YAML's explanation."""
    assert error_of("listener:\n  port: [1400\n") == (
        "config.yaml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"
    )


def test_several_documents() -> None:
    """A stream of several YAML documents is refused."""
    assert error_of("a: 1\n---\nb: 2\n") == (
        "config.yaml:2: invalid YAML: expected a single document in the stream, "
        "but found another document"
    )


def test_duplicate_keys() -> None:
    """A key set twice in one mapping is an error naming both lines."""
    text = "listener:\n  port: 1400\n  interface: 0.0.0.0\n  port: 1401\n"
    assert error_of(text) == (
        "config.yaml:4: listener.port: duplicate key (first set on line 2), got 1401"
    )


def test_duplicate_top_level_keys() -> None:
    """Duplicate sections are caught too."""
    assert error_of("log: {level: info}\nlog: {level: debug}\n") == (
        'config.yaml:2: log: duplicate key (first set on line 1), got {"level": "debug"}'
    )


def test_keys_must_be_names() -> None:
    """A number or a list as a key is refused."""
    assert error_of("1: 2\n") == "config.yaml:1: keys must be names, got 1"
    assert error_of("listener:\n  ? [a]\n  : 1\n") == (
        "config.yaml:2: listener: keys must be names, got a list"
    )


def test_recursive_alias() -> None:
    """A recursive alias is refused instead of recursing forever."""
    assert error_of("devices: &d [*d]\n") == (
        "config.yaml:1: devices[0]: a recursive YAML alias is not a setting"
    )


def test_unsafe_tags_are_refused() -> None:
    """Python object tags are not constructed (safe loading)."""
    assert error_of("log: !!python/object/apply:os.system [true]\n") == (
        "config.yaml:1: invalid YAML: unsupported tag "
        "tag:yaml.org,2002:python/object/apply:os.system"
    )
    assert error_of("log: !!python/name:os.system\n").startswith(
        "config.yaml:1: invalid YAML: could not determine a constructor for the tag"
    )
    assert error_of("log: !!set {a}\n") == (
        "config.yaml:1: invalid YAML: unsupported tag tag:yaml.org,2002:set"
    )


def test_merge_keys_and_aliases() -> None:
    """YAML merge keys and anchors work; the mapping's own keys win over merged ones."""
    text = (
        "listener: &l {interface: 127.0.0.1, port: 1500}\n"
        "api:\n  listen: tcp:0:interface=127.0.0.1\n"
        "simulate:\n  <<: {speakers: 2, port: 1500}\n  speakers: 4\n"
    )
    config = parse_config(text)
    assert config.listener == ListenerConfig(interface="127.0.0.1", port=1500)
    assert config.simulate == SimulateConfig(speakers=4, port=1500)


def test_aliases_are_read_once() -> None:
    """An alias reuses the anchored value."""
    config = parse_config("listener: {advertise: &nas nas.lan}\nsinks: {mqtt: {host: *nas}}\n")
    assert config.sinks.mqtt == MqttConfig(host="nas.lan")


def laughs(levels: int = 9) -> list[str]:
    """Anchored lists each holding ten aliases of the one before: ``&a{levels - 1}`` stands
    for 10**levels values in a few hundred bytes (a "billion laughs")."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        anchors.append(f"&a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    return anchors


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "x-anchors: [" + ", ".join(laughs()) + "]\n",
            "config.yaml:1: x-anchors[4][7]: the document has more than 100000 values "
            "(aliases counted as expanded)",
        ),
        (
            "devices: [" + ", ".join(laughs()) + "]\n",
            "config.yaml:1: devices[4][7]: the document has more than 100000 values "
            "(aliases counted as expanded)",
        ),
        (
            "log: {}\nlog: [" + ", ".join(laughs()) + "]\n",
            "config.yaml:2: log: duplicate key (first set on line 1), got "
            '[["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"], [["x", "x", "x", "x", "x", '
            '"x", "x", "x", "x", "x"], ["x", "x", ...',
        ),
    ],
)
def test_alias_bombs_cost_their_size(text: str, error: str) -> None:
    """A "billion laughs" document, under an unknown key, a known one or a duplicate key, is
    one line naming the bound (its expansion is never walked, validated or printed)."""
    assert len(text) < 1000
    assert error_of(text) == error


def test_merged_keys_first_wins() -> None:
    """Among merged mappings the first one's key wins, as YAML specifies."""
    config = parse_config("listener:\n  <<: [{port: 1}, {port: 2}]\n")
    assert config.listener.port == 1


def test_document_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A document with too many values is refused instead of exhausting memory."""
    monkeypatch.setattr(config_module, "_MAX_NODES", 5)
    assert error_of("devices: [1, 2, 3, 4, 5]\n") == (
        "config.yaml:1: devices[3]: the document has more than 5 values (aliases counted as "
        "expanded)"
    )


def test_unreadable_characters() -> None:
    """Control characters YAML refuses are reported as invalid YAML."""
    assert error_of("log:\n  level: \x07\n") == (
        "config.yaml:2: invalid YAML: character #x0007 is not allowed"
    )


def test_overrides_on_a_list_document() -> None:
    """Overrides do not hide that the file is not a mapping."""
    assert error_of("- 1\n", overrides={"listen-port": 1}) == (
        "config.yaml:1: expected a mapping of settings at the top level, got [1]"
    )


# -- schema errors ------------------------------------------------------------------------------


def test_wrong_type_host() -> None:
    """The issue's own example: a number where a host is expected."""
    assert error_of("devices: [{host: 42}]\n") == (
        "config.yaml:1: devices[0].host: expected a host name or address, got 42"
    )


def test_wrong_type_names_the_line_in_block_style() -> None:
    """The line is the line of the bad value, not of its section."""
    text = "listener:\n  port: 1400\ndevices:\n  - host: 192.168.1.20\n  - host: [a]\n"
    assert error_of(text) == (
        'config.yaml:5: devices[1].host: expected a host name or address, got ["a"]'
    )


def test_wrong_type_section() -> None:
    """A scalar where a section belongs is refused."""
    assert error_of("listener: 1400\n") == "config.yaml:1: listener: expected a mapping, got 1400"


def test_wrong_type_boolean() -> None:
    """A word where true/false is expected is refused."""
    assert error_of("discovery: maybe\n") == (
        'config.yaml:1: discovery: expected true or false, got "maybe"'
    )


def test_value_out_of_range() -> None:
    """A port above 65535 is refused with the allowed range."""
    assert error_of("listener:\n  port: 70000\n") == (
        "config.yaml:2: listener.port: expected a port number from 0 to 65535, got 70000"
    )


def test_booleans_are_not_numbers() -> None:
    """``true`` is not accepted as a port number."""
    assert error_of("listener: {port: true}\n") == (
        "config.yaml:1: listener.port: expected a port number from 0 to 65535, got true"
    )


def test_number_of_seconds_must_be_positive() -> None:
    """A zero timeout is refused."""
    assert error_of("subscription:\n  request_timeout: 0\n") == (
        "config.yaml:2: subscription.request_timeout: "
        "expected a number of seconds above 0 and up to 86400, got 0"
    )


def test_unknown_key() -> None:
    """An unknown key is an error naming the keys that exist there."""
    assert error_of("listener:\n  prot: 1400\n") == (
        "config.yaml:2: listener.prot: unknown key "
        "(known keys: interface, port, advertise, max_body, idle_timeout, request_timeout, "
        "max_connections_per_host), got 1400"
    )


def test_unknown_top_level_key() -> None:
    """A misspelt section is an error too."""
    assert error_of("device: []\n") == (
        "config.yaml:1: device: unknown key (known keys: listener, api, devices, "
        "follow_household, discovery, ssdp, services, subscription, soco, announce, sinks, "
        "log, simulate, state_dir), got []"
    )


def test_missing_required_key() -> None:
    """A device without a host is refused."""
    assert error_of("devices:\n  - name: Kitchen\n") == (
        "config.yaml:2: devices[0]: missing required key host"
    )


def test_unknown_service_name() -> None:
    """A service Sonos does not have is refused with the known names."""
    assert error_of("services: [AVTransport, Volume]\n") == (
        "config.yaml:1: services[1]: expected a Sonos service name (AVTransport, "
        "RenderingControl, GroupRenderingControl, ZoneGroupTopology, ContentDirectory, "
        "DeviceProperties, AlarmClock, Queue, SystemProperties, MusicServices, AudioIn, "
        'GroupManagement, ConnectionManager, VirtualLineIn, HTControl), got "Volume"'
    )


def test_every_sonos_service_is_accepted() -> None:
    """All fifteen service names SoCo and Sonos have are valid."""
    assert parse_config(f"services: {list(SERVICES)}\n").services == SERVICES
    assert len(SERVICES) == 15


def test_repeated_service() -> None:
    """A service listed twice is refused."""
    assert error_of("services: [Queue, Queue]\n") == (
        'config.yaml:1: services: expected no repeated items, got ["Queue", "Queue"]'
    )


def test_no_services() -> None:
    """An empty service list is refused."""
    assert error_of("services: []\n") == (
        "config.yaml:1: services: expected at least 1 item(s), got []"
    )


def test_bad_enum() -> None:
    """An unknown log level lists the valid ones."""
    assert error_of("log: {level: loud}\n") == (
        'config.yaml:1: log.level: expected one of debug, info, warn, error, critical, got "loud"'
    )


def test_bad_callback_syntax() -> None:
    """A callback must be named package.module:function."""
    assert error_of("sinks:\n  callbacks: [mypkg.handlers.on_event]\n") == (
        "config.yaml:2: sinks.callbacks[0]: expected a Python callable named "
        'package.module:function, got "mypkg.handlers.on_event"'
    )
    config = parse_config("sinks:\n  callbacks: ['mypkg.handlers:Handler.on_event']\n")
    assert config.sinks.callbacks == ("mypkg.handlers:Handler.on_event",)


def test_bad_cors_origin() -> None:
    """A CORS origin must be a scheme and host, or *."""
    assert error_of("api: {cors_origins: [homeassistant.local]}\n") == (
        "config.yaml:1: api.cors_origins[0]: expected an origin such as http://host:port, "
        'or *, got "homeassistant.local"'
    )


def test_bad_value_is_shortened() -> None:
    """A long bad value is cut so that the error stays one readable line."""
    message = error_of("devices: [{host: " + "x" * 300 + "}]\n")
    assert message.endswith('got "' + "x" * 116 + "...")


def test_schema_errors_report_the_first_line() -> None:
    """With several errors, the one nearest the top of the file is reported."""
    text = "log: {level: loud}\nlistener: {port: -1}\n"
    assert error_of(text).startswith("config.yaml:1: log.level:")


# -- semantic checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["bad host", "-kitchen", "kitchen-", "a..b", "192.168.1.300", "", "kitchen_1"]
)
def test_bad_host_name(host: str) -> None:
    """Strings that are neither an address nor a host name are refused."""
    assert error_of(f"devices: [{{host: {json.dumps(host)}}}]\n") == (
        f"config.yaml:1: devices[0].host: expected a host name or address, got {json.dumps(host)}"
    )


@pytest.mark.parametrize(
    "host", ["192.168.1.20", "kitchen.lan", "kitchen", "fe80::1", "::1", "a-b.example.com."]
)
def test_good_host_names(host: str) -> None:
    """Addresses and RFC 1123 host names are accepted."""
    assert parse_config(f"devices: [{{host: {json.dumps(host)}}}]\n").devices == (Device(host),)


@given(st.ip_addresses())
def test_every_ip_address_is_a_host(address: Any) -> None:
    """Every IPv4 and IPv6 address is accepted as a host."""
    assert is_host(str(address))


@given(
    st.lists(
        st.text(string.ascii_letters + string.digits + "-", min_size=1, max_size=63),
        min_size=1,
        max_size=5,
    )
)
def test_host_name_labels(labels: list[str]) -> None:
    """A name is a host name when its labels neither start nor end with a dash."""
    name = ".".join(labels)
    well_formed = all(not label.startswith("-") and not label.endswith("-") for label in labels)
    numeric = all(label.isdigit() for label in labels)
    assert is_host(name) == (_is_ip(name) or (well_formed and not numeric))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def test_duplicate_device() -> None:
    """The same speaker listed twice (any case) is refused."""
    assert error_of("devices: [{host: kitchen.lan}, {host: Kitchen.LAN}]\n") == (
        'config.yaml:1: devices[1].host: duplicate device (also devices[0]), got "Kitchen.LAN"'
    )


def test_listener_interface_must_be_an_address() -> None:
    """The listener binds an address, not a name."""
    assert error_of("listener:\n  interface: eth0\n") == (
        'config.yaml:2: listener.interface: expected an IP address, got "eth0"'
    )


def test_advertise_must_be_a_host() -> None:
    """The advertised address is an address or a host name."""
    assert error_of("listener: {advertise: 'my host'}\n") == (
        'config.yaml:1: listener.advertise: expected a host name or address, got "my host"'
    )
    assert parse_config("listener: {advertise: nas.lan}\n").listener.advertise == "nas.lan"


@pytest.mark.parametrize(
    ("endpoint", "problem"),
    [
        ("tcp:abc", "invalid literal for int() with base 10: 'abc'"),
        ("tcp:8080:bogus=1", "unknown option bogus"),
        ("http:8080", "Unknown endpoint type: 'http'"),
        ("8080", "Unknown endpoint type: '8080'"),
        ("tcp:99999", "port 99999 is out of range"),
        ("tcp:8080:interface=localhost", "interface localhost is not an IP address"),
    ],
)
def test_bad_endpoint_string(endpoint: str, problem: str) -> None:
    """An endpoint string Twisted cannot parse is refused with Twisted's reason."""
    assert error_of(f"api:\n  listen: {json.dumps(endpoint)}\n") == (
        "config.yaml:2: api.listen: expected a Twisted server endpoint string such as "
        f"tcp:8080:interface=127.0.0.1 ({problem}), got {json.dumps(endpoint)}"
    )


def test_endpoint_that_is_not_a_string() -> None:
    """A bare port number is not an endpoint string."""
    assert error_of("api: {listen: 8080}\n") == (
        "config.yaml:1: api.listen: expected a Twisted server endpoint string such as "
        "tcp:8080:interface=127.0.0.1, got 8080"
    )


def test_ssl_endpoint_reads_its_files(tmp_path: Path) -> None:
    """An ssl: endpoint whose key file is missing is refused at load time, naming the file
    even when its path is too long for the value shown after "got"."""
    key = tmp_path / ("long-directory-name-" * 6) / "key.pem"
    message = error_of(f"api: {{listen: 'ssl:8443:privateKey={key}'}}\n")
    assert message.startswith("config.yaml:1: api.listen: expected a Twisted server endpoint")
    assert f"({key}: No such file or directory)" in message


def _tls_files(tmp_path: Path) -> dict[str, Path]:
    """A certificate and its key in two files, another key, a key with a passphrase and a
    file that is no PEM at all."""
    from cryptography.hazmat.primitives import serialization

    from sonosd.sim.tls import self_signed_pem

    files = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "other", "locked", "junk")}
    pem, other = self_signed_pem(), self_signed_pem()
    split = pem.index(b"-----BEGIN EC PRIVATE KEY-----")
    files["cert"].write_bytes(pem[:split])
    files["key"].write_bytes(pem[split:])
    files["other"].write_bytes(other[other.index(b"-----BEGIN EC PRIVATE KEY-----") :])
    locked = serialization.load_pem_private_key(pem[split:], password=None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )
    files["locked"].write_bytes(locked)
    files["junk"].write_bytes(b"not a key\n")
    return files


@pytest.mark.parametrize(
    ("key", "cert", "problem"),
    [
        ("key", None, "{key} holds no PEM certificate (name the certificate's file with certKey)"),
        ("junk", "cert", "neither {cert} nor {key} holds a PEM private key"),
        ("key", "junk", "neither {cert} nor {key} holds a PEM certificate"),
        ("other", "cert", "the certificate in {cert} is not for the private key in {key}"),
        (
            "locked",
            "cert",
            "the private key in {key} is encrypted: sonosd cannot ask for its "
            "passphrase (keep it unencrypted, readable by sonosd only)",
        ),
    ],
)
def test_ssl_endpoint_files_that_are_wrong_are_named(
    tmp_path: Path, key: str, cert: str | None, problem: str
) -> None:
    """An ssl: endpoint whose files hold no key, no certificate, a key with a passphrase (which
    OpenSSL would ask for on the terminal) or a certificate for another key is refused at
    load time, naming the file and the fault."""
    files = _tls_files(tmp_path)
    listen = f"ssl:8443:privateKey={files[key]}" + (f":certKey={files[cert]}" if cert else "")
    message = error_of(f"api: {{listen: '{listen}'}}\n")
    assert message.startswith("config.yaml:1: api.listen: expected a Twisted server endpoint")
    shown = problem.format(key=files[key], cert=files[cert] if cert else "")
    assert f"({shown})" in message, message


def test_ssl_endpoint_files_as_twisted_takes_them(tmp_path: Path) -> None:
    """The key and the certificate in one file, or in two files either way round (Twisted
    reads them put together), are accepted."""
    files = _tls_files(tmp_path)
    both = tmp_path / "both.pem"
    both.write_bytes(files["cert"].read_bytes() + files["key"].read_bytes())
    for listen in (
        f"ssl:8443:privateKey={both}",
        f"ssl:8443:privateKey={files['key']}:certKey={files['cert']}",
        f"ssl:8443:privateKey={files['cert']}:certKey={files['key']}",
    ):
        assert endpoint_problem(listen) is None, listen


def test_ssl_endpoint_beyond_loopback_needs_tokens(tmp_path: Path) -> None:
    """api.md's TLS example (``ssl:8443:interface=0.0.0.0:...``) listens beyond loopback as
    ``tcp:`` would: refused without tokens, taken with one; on loopback it may stay open."""
    files = _tls_files(tmp_path)
    tls = f"privateKey={files['key']}:certKey={files['cert']}"
    message = error_of(f"api: {{listen: 'ssl:8443:interface=0.0.0.0:{tls}'}}\n")
    assert "api.listen: the API listens beyond loopback and needs a token" in message, message
    token = "{name: ha, token: a-token-long-enough-0123456789}"
    config = parse_config(
        f"api: {{listen: 'ssl:8443:interface=0.0.0.0:{tls}', tokens: [{token}]}}\n"
    )
    assert config.api.listen.startswith("ssl:8443:interface=0.0.0.0:")
    assert parse_config(f"api: {{listen: 'ssl:8443:interface=127.0.0.1:{tls}'}}\n").api.tokens == ()


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp:8080:interface=127.0.0.1",
        "tcp:0",
        "tcp6:8080:interface=\\:\\:1",
        "unix:/run/sonosd/stream.sock",
        "unix:/run/sonosd/stream.sock:mode=660",
    ],
)
def test_good_endpoint_strings(endpoint: str) -> None:
    """Usual endpoint strings parse without anything listening."""
    assert endpoint_problem(endpoint) is None


def test_stream_and_admin_endpoints_are_checked() -> None:
    """The stream sink and the simulator's admin API are endpoint strings too."""
    assert error_of("sinks: {stream: 'unix'}\n").startswith(
        "config.yaml:1: sinks.stream: expected a Twisted server endpoint string"
    )
    assert error_of("simulate: {admin: 'tcp:x'}\n").startswith(
        "config.yaml:1: simulate.admin: expected a Twisted server endpoint string"
    )
    for admin in ("tcp:8400", "tcp:8400:interface=192.168.1.20"):
        assert error_of(f"simulate: {{admin: '{admin}'}}\n") == (
            "config.yaml:1: simulate.admin: expected an endpoint on this machine only "
            "(tcp:PORT:interface=127.x.y.z, or a unix socket): the admin API changes the "
            f'simulated household and takes no token, got "{admin}"'
        )
    local = "tcp:8400:interface=127.0.0.1"
    assert parse_config(f"simulate: {{admin: '{local}'}}\n").simulate == SimulateConfig(admin=local)


def test_backoff_order() -> None:
    """The first backoff delay cannot exceed the longest."""
    assert error_of("subscription: {backoff_initial: 500}\n") == (
        "config.yaml:1: subscription.backoff_initial: expected at most backoff_max (300), got 500"
    )


def test_webhook_url() -> None:
    """A webhook needs an http(s) URL with a host."""
    assert error_of("sinks:\n  webhooks: [{url: 'ftp://x'}]\n") == (
        'config.yaml:2: sinks.webhooks[0].url: expected an http:// or https:// URL, got "ftp://x"'
    )
    assert error_of("sinks:\n  webhooks: [{url: 'http://:80/x'}]\n") == (
        "config.yaml:2: sinks.webhooks[0].url: expected an http:// or https:// URL with a host, "
        'got "http://:80/x"'
    )
    assert error_of("sinks:\n  webhooks: [{url: 'http://h:99999/'}]\n").endswith(
        'URL with a host, got "http://h:99999/"'
    )


def test_webhook_ca_file_must_exist(tmp_path: Path) -> None:
    """A CA file that does not exist is refused at load time."""
    missing = tmp_path / "ca.pem"
    assert error_of(f"sinks:\n  webhooks: [{{url: 'https://h/', ca_file: '{missing}'}}]\n") == (
        f'config.yaml:2: sinks.webhooks[0].ca_file: no such file, got "{missing}"'
    )


def test_webhook_filter() -> None:
    """A webhook filter is read into tuples; unknown filter keys are refused."""
    config = parse_config(
        "sinks:\n  webhooks:\n    - url: https://hooks.lan/sonos\n"
        "      filter: {rooms: [Kitchen], services: [AVTransport]}\n"
    )
    webhook = config.sinks.webhooks[0]
    assert dict(webhook.filter) == {"rooms": ("Kitchen",), "services": ("AVTransport",)}
    assert error_of("sinks:\n  webhooks: [{url: 'https://h/', filter: {room: [K]}}]\n") == (
        "config.yaml:2: sinks.webhooks[0].filter.room: unknown key "
        '(known keys: speakers, rooms, services, types), got ["K"]'
    )


def test_simulate_limits() -> None:
    """The simulated household fits in its loopback /24 and pairs need two speakers."""
    assert error_of("simulate: {speakers: 201}\n") == (
        "config.yaml:1: simulate.speakers: expected a speaker count from 1 to 200, got 201"
    )
    assert error_of("simulate:\n  speakers: 200\n  base_address: 127.0.0.100\n") == (
        "config.yaml:3: simulate.base_address: 200 speakers from this address run past the "
        "end of its /24 (the first usable address is x.y.z.1, the last x.y.z.254), "
        'got "127.0.0.100"'
    )
    assert error_of("simulate: {base_address: 10.0.0.2}\n") == (
        "config.yaml:1: simulate.base_address: expected an IPv4 loopback address (127.x.y.z), "
        'got "10.0.0.2"'
    )
    assert error_of("simulate: {base_address: 192.168.1.20}\n") == (
        "config.yaml:1: simulate.base_address: expected an IPv4 loopback address (127.x.y.z), "
        'got "192.168.1.20"'
    )
    assert error_of("simulate: {base_address: nope}\n").endswith('got "nope"')
    assert error_of("simulate: {speakers: 1, stereo_pair: true}\n") == (
        "config.yaml:1: simulate.stereo_pair: a stereo pair needs at least 2 speakers, got true"
    )
    assert parse_config("simulate: {speakers: 200, base_address: 127.9.9.2}\n").simulate
    # "all speakers must fit before x.y.z.255": the last one may be x.y.z.254.
    assert parse_config("simulate: {speakers: 200, base_address: 127.0.0.55}\n").simulate
    assert "run past the end" in error_of("simulate: {speakers: 200, base_address: 127.0.0.56}\n")


def test_simulate_modes() -> None:
    """The household and firmware mode keys load, and their limits name the key."""
    config = parse_config(
        "simulate:\n  speakers: 8\n  models: [S18, S27]\n  households: 2\n"
        "  home_theatre: true\n  moderation: 0\n  large_household: true\n"
        "  large_household_players: 4\n  upnp: false\n  upnp_off_ssdp: silent\n"
        "  upnp_off_forbidden: [scpd, control]\n"
        "  https_only: [0, 3]\n  tls_port: 1543\n"
    ).simulate
    assert config == SimulateConfig(
        speakers=8,
        models=("S18", "S27"),
        households=2,
        home_theatre=True,
        moderation=0,
        large_household=True,
        large_household_players=4,
        upnp=False,
        upnp_off_ssdp="silent",
        upnp_off_forbidden=("scpd", "control"),
        https_only=(0, 3),
        tls_port=1543,
    )
    assert error_of("simulate: {speakers: 3, home_theatre: true}\n") == (
        "config.yaml:1: simulate.home_theatre: a home theatre needs 4 speakers "
        "(soundbar, sub, two surrounds), got true"
    )
    assert error_of("simulate: {speakers: 5, stereo_pair: true, home_theatre: true}\n").startswith(
        "config.yaml:1: simulate.home_theatre: a home theatre needs 6 speakers"
    )
    # The pair and the home theatre belong to the first household: it must hold them.
    assert parse_config("simulate: {speakers: 7, households: 2, home_theatre: true}\n").simulate
    assert error_of("simulate: {speakers: 5, households: 2, home_theatre: true}\n") == (
        "config.yaml:1: simulate.home_theatre: a home theatre needs 4 speakers in the first "
        "household (it has 3) (soundbar, sub, two surrounds), got true"
    )
    assert parse_config("simulate: {speakers: 3, households: 2, stereo_pair: true}\n").simulate
    assert error_of("simulate: {speakers: 3, households: 3, stereo_pair: true}\n") == (
        "config.yaml:1: simulate.stereo_pair: a stereo pair needs at least 2 speakers in the "
        "first household (it has 1), got true"
    )
    assert error_of("simulate: {speakers: 2, households: 3}\n") == (
        "config.yaml:1: simulate.households: 2 speakers cannot make 3 households, got 3"
    )
    assert error_of("simulate: {speakers: 2, https_only: [0, 2]}\n") == (
        "config.yaml:1: simulate.https_only[1]: expected a speaker index below 2, got 2"
    )
    assert error_of("simulate: {models: [S99]}\n").startswith(
        "config.yaml:1: simulate.models[0]: expected a model number (S18,"
    )
    assert error_of("simulate: {upnp_off_ssdp: loud}\n").startswith(
        "config.yaml:1: simulate.upnp_off_ssdp: expected answer or silent"
    )


def test_simulate_models_are_the_simulators() -> None:
    """The schema's model numbers are exactly the simulator's, and the defaults agree."""
    from sonosd.sim.gena import DEFAULT_MODERATION
    from sonosd.sim.models import MODELS

    models = SCHEMA["$defs"]["simulate"]["properties"]["models"]["items"]["enum"]
    assert set(models) == set(MODELS)
    assert SimulateConfig().moderation == DEFAULT_MODERATION


# -- secrets ---------------------------------------------------------------------------------------


def test_token_inline_env_and_file(tmp_path: Path) -> None:
    """A token can be inline, from an environment variable or from a file (newline dropped)."""
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file-0123456789\n")
    text = (
        "api:\n  tokens:\n"
        "    - {name: inline, token: inline-0123456789, scopes: [read, control]}\n"
        "    - {name: env, token_env: SONOSD_TEST_TOKEN}\n"
        f"    - {{name: file, token_file: '{token_file}'}}\n"
    )
    config = parse_config(text, environ={"SONOSD_TEST_TOKEN": "from-the-env-0123"})
    tokens = {token.name: token for token in config.api.tokens}
    assert tokens["inline"].secret == "inline-0123456789"
    assert tokens["inline"].scopes == frozenset({"read", "control"})
    assert tokens["env"].secret == "from-the-env-0123"
    assert tokens["env"].scopes == frozenset({"read"})
    assert tokens["file"].secret == "from-a-file-0123456789"
    assert "0123" not in repr(config)


@pytest.mark.parametrize(
    ("content", "secret"),
    [
        (b"abcdef-012345\n", "abcdef-012345"),
        (b"abcdef-012345\r\n", "abcdef-012345"),
        (b"abcdef-012345\n\n", "abcdef-012345"),
        (b"abcdef-012345\r\n\r\n", "abcdef-012345"),
        (b"abcdef-012345\r", "abcdef-012345"),
        (b"abcdef-012345", "abcdef-012345"),
        (b"abcdef-012345 \t\n", "abcdef-012345 \t"),
    ],
)
def test_secret_file_drops_every_line_end_at_its_end(
    tmp_path: Path, content: bytes, secret: str
) -> None:
    """A secret file loses every line end at its end (LF, CRLF, CR, however many), nothing else."""
    path = tmp_path / "token"
    path.write_bytes(content)
    hook = tmp_path / "hook"
    hook.write_bytes(content)
    config = parse_config(
        f"api:\n  tokens:\n    - {{name: ha, token_file: '{path}'}}\n"
        f"sinks:\n  webhooks:\n    - {{url: 'http://a.lan/', secret_file: '{hook}'}}\n"
    )
    assert config.api.tokens[0].secret == secret
    assert config.sinks.webhooks[0].secret == secret


def test_secret_file_of_white_space_is_empty(tmp_path: Path) -> None:
    """A secret file holding nothing but white space and line ends is refused as empty."""
    blank = tmp_path / "token"
    blank.write_bytes(b" \t\r\n\n")
    assert error_of(f"api:\n  tokens:\n    - {{name: ha, token_file: '{blank}'}}\n") == (
        f'config.yaml:3: api.tokens[0].token_file: the secret file is empty, got "{blank}"'
    )


def test_token_from_env_or_file_is_as_long_as_an_inline_one(tmp_path: Path) -> None:
    """A token read from the environment or a file is refused when shorter than 12 characters."""
    message = error_of("api:\n  tokens:\n    - {name: ha, token_env: T}\n", environ={"T": "short"})
    assert message == (
        "config.yaml:3: api.tokens[0].token_env: expected a token of at least 12 characters, "
        'got "T"'
    )
    short = tmp_path / "token"
    short.write_text("short\n")
    assert error_of(f"api:\n  tokens:\n    - {{name: ha, token_file: '{short}'}}\n") == (
        "config.yaml:3: api.tokens[0].token_file: expected a token of at least 12 characters, "
        f'got "{short}"'
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "api: {heartbeat: .nan}\n",
            "api.heartbeat: expected a number of seconds above 0 and up to 86400, got NaN",
        ),
        (
            "subscription: {renew_fraction: .NaN}\n",
            "subscription.renew_fraction: expected a fraction from 0.1 to 0.9, got NaN",
        ),
        (
            "listener: {port: 1400.0}\n",
            "listener.port: expected a port number from 0 to 65535, got 1400.0",
        ),
        (
            "simulate: {speakers: 3.0}\n",
            "simulate.speakers: expected a speaker count from 1 to 200, got 3.0",
        ),
    ],
)
def test_nan_and_whole_floats_are_refused(text: str, expected: str) -> None:
    """NaN (which passes every bound) and 3.0 where a count is expected are one-line errors."""
    assert error_of(text) == f"config.yaml:1: {expected}"


def test_token_env_missing() -> None:
    """A token whose environment variable is not set is a one-line error."""
    assert error_of("api:\n  tokens:\n    - {name: ha, token_env: SONOSD_HA_TOKEN}\n") == (
        "config.yaml:3: api.tokens[0].token_env: environment variable is not set, "
        'got "SONOSD_HA_TOKEN"'
    )


def test_token_env_empty() -> None:
    """An empty environment variable is not a token."""
    message = error_of("api:\n  tokens:\n    - {name: ha, token_env: T}\n", environ={"T": ""})
    assert (
        message == 'config.yaml:3: api.tokens[0].token_env: environment variable is empty, got "T"'
    )


def test_token_file_missing(tmp_path: Path) -> None:
    """A token file that cannot be read is a one-line error with the reason."""
    missing = tmp_path / "token"
    assert error_of(f"api:\n  tokens:\n    - {{name: ha, token_file: '{missing}'}}\n") == (
        "config.yaml:3: api.tokens[0].token_file: cannot read the secret file "
        f'(No such file or directory), got "{missing}"'
    )


def test_token_file_not_utf8(tmp_path: Path) -> None:
    """A secret file is read as UTF-8: one that is not is refused naming the byte, as the
    configuration file itself is."""
    path = tmp_path / "token"
    path.write_bytes(b"abcdefghijkl\xff\n")
    assert error_of(f"api:\n  tokens:\n    - {{name: ha, token_file: '{path}'}}\n") == (
        "config.yaml:3: api.tokens[0].token_file: cannot read the secret file "
        f'(not UTF-8 text: byte 12 is 0xff), got "{path}"'
    )


def test_token_file_empty(tmp_path: Path) -> None:
    """An empty token file is refused."""
    empty = tmp_path / "token"
    empty.write_text("\n")
    assert error_of(f"api:\n  tokens:\n    - {{name: ha, token_file: '{empty}'}}\n") == (
        f'config.yaml:3: api.tokens[0].token_file: the secret file is empty, got "{empty}"'
    )


def test_token_needs_exactly_one_source() -> None:
    """A token with none, or two, of token / token_env / token_file is refused."""
    expected = (
        "config.yaml:3: api.tokens[0]: expected exactly one of token, token_env or token_file"
    )
    assert error_of("api:\n  tokens:\n    - {name: a}\n") == expected
    assert error_of("api:\n  tokens:\n    - {name: a, token: abcdefabcdef12, token_env: X}\n") == (
        expected
    )


def test_short_token_is_refused_without_showing_it() -> None:
    """A too-short token is refused and the error does not print it."""
    assert error_of("api:\n  tokens:\n    - {name: a, token: hunter2}\n") == (
        "config.yaml:3: api.tokens[0].token: expected a token of at least 12 characters, "
        "got <hidden>"
    )


def test_duplicate_token_names() -> None:
    """Token names are unique."""
    text = (
        "api:\n  tokens:\n    - {name: a, token: abcdefabcdef12}\n"
        "    - {name: a, token: abcdefabcdef13}\n"
    )
    assert error_of(text) == (
        'config.yaml:4: api.tokens[1].name: duplicate token name (also tokens[0]), got "a"'
    )


def test_unknown_scope() -> None:
    """Scopes are read and control."""
    assert error_of(
        "api:\n  tokens:\n    - {name: a, token: abcdefabcdef12, scopes: [admin]}\n"
    ) == ('config.yaml:3: api.tokens[0].scopes[0]: expected read or control, got "admin"')


def test_webhook_and_mqtt_secrets(tmp_path: Path) -> None:
    """Webhook secrets and the MQTT password come inline, from the environment or a file."""
    password = tmp_path / "mqtt"
    password.write_text("pw-from-file")
    text = (
        "sinks:\n  webhooks:\n    - {url: 'https://a.lan/x', secret: s1}\n"
        "    - {url: 'https://b.lan/x', secret_env: HOOK}\n    - {url: 'http://c.lan/'}\n"
        f"  mqtt: {{host: broker.lan, username: sonosd, password_file: '{password}'}}\n"
    )
    config = parse_config(text, environ={"HOOK": "s2"})
    assert [hook.secret for hook in config.sinks.webhooks] == ["s1", "s2", None]
    assert config.sinks.mqtt == MqttConfig(
        host="broker.lan", username="sonosd", password="pw-from-file"
    )
    assert "pw-from-file" not in repr(config)


def test_secret_alternatives_are_exclusive() -> None:
    """Two sources for one secret are refused."""
    assert error_of("sinks:\n  webhooks: [{url: 'http://x/', secret: a, secret_env: B}]\n") == (
        "config.yaml:2: sinks.webhooks[0]: expected at most one of secret, secret_env "
        "or secret_file"
    )
    assert error_of("sinks:\n  mqtt: {password: a, password_env: B}\n") == (
        "config.yaml:2: sinks.mqtt: expected at most one of password, password_env or password_file"
    )


def test_mqtt_password_env_missing() -> None:
    """A missing MQTT password variable is a one-line error."""
    assert error_of("sinks:\n  mqtt:\n    password_env: MQTT_PW\n") == (
        'config.yaml:3: sinks.mqtt.password_env: environment variable is not set, got "MQTT_PW"'
    )


def test_mqtt_keepalive() -> None:
    """``mqtt.keepalive`` defaults to 30 s, takes whole seconds from 1 to 65535 (MQTT's
    16-bit field), and anything else is a one-line error naming the key."""
    assert parse_config("sinks: {mqtt: {}}\n").sinks.mqtt == MqttConfig(keepalive=30)
    assert parse_config("sinks: {mqtt: {keepalive: 5}}\n").sinks.mqtt == MqttConfig(keepalive=5)
    for bad in ("0", "65536", "2.5", "fast"):
        assert error_of(f"sinks: {{mqtt: {{keepalive: {bad}}}}}\n").startswith(
            "config.yaml:1: sinks.mqtt.keepalive: expected a whole number of seconds from 1 to "
            "65535, got "
        ), bad


def test_secret_values_are_never_shown() -> None:
    """A secret of the wrong type is refused without echoing it."""
    assert error_of("sinks:\n  mqtt: {password: 123456}\n") == (
        "config.yaml:2: sinks.mqtt.password: expected a non-empty password, got <hidden>"
    )


SECRET = "s3cr3t-0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            f"api: {{tokens: [{{name: a, tokne: {SECRET}}}]}}\n",
            "api.tokens[0].tokne: unknown key (known keys: name, token, token_env, token_file, "
            "scopes), got <hidden>",
        ),
        (
            f"sinks: {{webhooks: [{{url: 'http://h', secert: {SECRET}}}]}}\n",
            "sinks.webhooks[0].secert: unknown key (known keys: url, secret, secret_env, "
            "secret_file, timeout, retries, queue, filter, ca_file), got <hidden>",
        ),
        (
            f"sinks: {{mqtt: {{pasword: {SECRET}}}}}\n",
            "sinks.mqtt.pasword: unknown key (known keys: host, port, tls, ca_file, username, "
            "password, password_env, password_file, prefix, client_id, keepalive, "
            "homeassistant, discovery_prefix), got <hidden>",
        ),
        (f"api: {{tokens: {SECRET}}}\n", "api.tokens: expected a list of tokens, got <hidden>"),
        (
            f"api: {{tokens: [{SECRET}]}}\n",
            "api.tokens[0]: expected a mapping with a name and a token, got <hidden>",
        ),
        (
            f"api: {{tokens: [{{name: a, token: {SECRET}}}], tokens: []}}\n",
            "api.tokens: duplicate key (first set on line 1), got <hidden>",
        ),
        (
            f"sinks: {{}}\nsinks: {{mqtt: {{password: {SECRET}}}}}\n",
            'sinks: duplicate key (first set on line 1), got {"mqtt": {"password": "<hidden>"}}',
        ),
    ],
)
def test_secrets_are_never_in_an_error(text: str, error: str) -> None:
    """A secret is not echoed when the error is next to it: under a misspelt key beside the
    secrets (``tokne:``), a token written without its keys, a mapping shown whole."""
    message = error_of(text, environ={})
    assert SECRET not in message
    assert message.split(": ", 1)[1] == error


def test_environ_defaults_to_the_process_environment(tmp_path: Path, monkeypatch: Any) -> None:
    """Without an explicit environ, ``*_env`` secrets come from os.environ."""
    monkeypatch.setenv("SONOSD_TEST_SECRET", "s3cret")
    path = write(
        tmp_path, "sinks:\n  webhooks: [{url: 'http://x/', secret_env: SONOSD_TEST_SECRET}]\n"
    )
    assert load_config(path).sinks.webhooks[0].secret == "s3cret"


# -- overrides -------------------------------------------------------------------------------------


def test_overrides_replace_file_values() -> None:
    """Command-line overrides replace values of the file and fill missing sections."""
    config = parse_config(
        "listener: {port: 1400}\n",
        overrides={
            "listen-port": 0,
            "listen-interface": "127.0.0.1",
            "advertise": "192.168.1.10",
            "api": "tcp:9000:interface=127.0.0.1",
            "log-format": "json",
            "log-level": "debug",
        },
    )
    assert config.listener == ListenerConfig(
        interface="127.0.0.1", port=0, advertise="192.168.1.10"
    )
    assert config.api.listen == "tcp:9000:interface=127.0.0.1"
    assert config.log == LogConfig(format="json", level="debug")


def test_overrides_are_validated_and_named() -> None:
    """A bad override names the option it came from."""
    assert error_of("listener: {port: 1400}\n", overrides={"listen-port": 70000}) == (
        "config.yaml: listener.port (from --listen-port): expected a port number from 0 to "
        "65535, got 70000"
    )
    assert error_of("{}\n", overrides={"log-format": "xml"}) == (
        'config.yaml: log.format (from --log-format): expected text or json, got "xml"'
    )
    assert error_of("{}\n", overrides={"api": "tcp:x"}).startswith(
        "config.yaml: api.listen (from --api): expected a Twisted server endpoint string"
    )


def test_none_overrides_are_ignored() -> None:
    """Options not given (None) leave the file's values alone."""
    config = parse_config("listener: {port: 1500}\n", overrides={"listen-port": None})
    assert config.listener.port == 1500


# -- the whole file ------------------------------------------------------------------------------


def test_defaults() -> None:
    """An empty mapping (and null sections) give the documented defaults."""
    expected = Config(path="config.yaml")
    # No environment: systemd's STATE_DIRECTORY would set state_dir.
    assert parse_config("{}\n", environ={}) == expected
    nulls = "listener:\napi:\ndevices:\nsubscription:\nsoco:\nsinks:\nlog:\nsimulate:\n"
    assert parse_config(nulls, environ={}) == expected
    # Every section (a mapping of keys in the schema), however many there are.
    sections = [key for key, prop in SCHEMA["properties"].items() if "properties" in _resolve(prop)]
    assert {"announce", "ssdp"} < set(sections)
    assert parse_config("".join(f"{key}:\n" for key in sections), environ={}) == expected
    assert expected.services == DEFAULT_SERVICES
    assert expected.simulate is None


def test_simulate_with_every_default() -> None:
    """``simulate: {}`` enables the simulated household with every default, where
    ``simulate:`` (null) leaves it off."""
    assert parse_config("simulate: {}\n", environ={}).simulate == SimulateConfig()
    assert parse_config("simulate:\n", environ={}).simulate is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "simulate: {rooms: [Den, Den]}\n",
            'simulate.rooms: expected no repeated items, got ["Den", "Den"]',
        ),
        (
            'sinks: {mqtt: {prefix: "home sonos"}}\n',
            'sinks.mqtt.prefix: expected a topic prefix without spaces, # or +, got "home sonos"',
        ),
        (
            'sinks: {mqtt: {prefix: "sonos/#"}}\n',
            'sinks.mqtt.prefix: expected a topic prefix without spaces, # or +, got "sonos/#"',
        ),
        (
            'sinks: {mqtt: {prefix: "sonos/+"}}\n',
            'sinks.mqtt.prefix: expected a topic prefix without spaces, # or +, got "sonos/+"',
        ),
        (
            'sinks: {mqtt: {client_id: ""}}\n',
            'sinks.mqtt.client_id: expected a client id of 1 to 128 characters, got ""',
        ),
    ],
)
def test_documented_refusals(text: str, error: str) -> None:
    """What the key tables forbid is refused naming the key: repeated simulated rooms
    ("Unique"), an MQTT prefix with a space, # or +, an empty client id."""
    assert error_of(text) == f"config.yaml:1: {error}"


def test_full_configuration(tmp_path: Path) -> None:
    """Every section is read into its typed object."""
    text = """
listener: {interface: "::", port: 1401, advertise: 192.168.1.10, max_body: 2048}
api:
  listen: tcp:8081:interface=0.0.0.0
  require_auth: true
  ready_when_polling: true
  tokens: [{name: ha, token: a-long-random-token, scopes: [read]}]
  cors_origins: ["http://ha.lan:8123", "*"]
  replay_buffer: 5
  client_buffer: 6
  heartbeat: 7.5
devices:
  - host: 192.168.1.20
  - {host: kitchen.lan, name: Kitchen}
discovery: true
services: [AVTransport, HTControl]
subscription: {timeout: 600, renew_fraction: 0.8, shutdown_timeout: 2}
soco: {threads: 4, call_timeout: 3}
sinks:
  callbacks: ["pkg.mod:fn"]
  mqtt: {host: 127.0.0.1, port: 8883, tls: true, prefix: home/sonos, homeassistant: true}
  stream: unix:/run/sonosd/stream.sock
log: {format: json, level: warn}
simulate:
  {speakers: 5, rooms: [A, B], activity: 2, admin: "tcp:0:interface=127.0.0.1", stereo_pair: true}
"""
    config = load_config(write(tmp_path, text))
    assert config.listener == ListenerConfig("::", 1401, "192.168.1.10", 2048)
    assert config.api == ApiConfig(
        listen="tcp:8081:interface=0.0.0.0",
        tokens=(Token("ha", "a-long-random-token", frozenset({"read"})),),
        require_auth=True,
        ready_when_polling=True,
        cors_origins=("http://ha.lan:8123", "*"),
        replay_buffer=5,
        client_buffer=6,
        heartbeat=7.5,
    )
    assert config.devices == (Device("192.168.1.20"), Device("kitchen.lan", "Kitchen"))
    assert config.discovery is True
    assert config.services == ("AVTransport", "HTControl")
    assert config.subscription == SubscriptionConfig(
        timeout=600, renew_fraction=0.8, shutdown_timeout=2
    )
    assert config.soco == SocoConfig(threads=4, call_timeout=3)
    assert config.log.messages is True
    assert config.sinks == SinksConfig(
        callbacks=("pkg.mod:fn",),
        mqtt=MqttConfig(port=8883, tls=True, prefix="home/sonos", homeassistant=True),
        stream="unix:/run/sonosd/stream.sock",
    )
    assert config.log == LogConfig("json", "warn")
    assert config.simulate == SimulateConfig(
        speakers=5,
        rooms=("A", "B"),
        activity=2,
        admin="tcp:0:interface=127.0.0.1",
        stereo_pair=True,
    )
    assert config.path == str(tmp_path / "config.yaml")


def test_state_dir_from_the_file_or_systemd(tmp_path: Path) -> None:
    """state_dir is the file's; left out, systemd's STATE_DIRECTORY (its first directory);
    null keeps nothing even under systemd."""
    systemd = {"STATE_DIRECTORY": "/var/lib/sonosd:/var/lib/other"}
    assert parse_config("{}\n", environ={}).state_dir is None
    assert parse_config("{}\n", environ=systemd).state_dir == "/var/lib/sonosd"
    assert parse_config("state_dir: /srv/s\n", environ=systemd).state_dir == "/srv/s"
    assert parse_config("state_dir: null\n", environ=systemd).state_dir is None
    assert error_of("state_dir: 5\n") == (
        "config.yaml:1: state_dir: expected a directory path or null, got 5"
    )
    devices = "devices: [{host: 192.168.1.20}]\n"
    ok = parse_config(f"{devices}state_dir: {tmp_path}\n", environ={})
    assert config_warnings(ok) == []
    missing = parse_config(f"{devices}state_dir: {tmp_path / 'no'}\n", "c.yaml", environ={})
    assert config_warnings(missing) == [
        f"c.yaml: state_dir: {tmp_path / 'no'} is not a directory the daemon can write: "
        "pending alarm skips will not survive a restart"
    ]


def test_inline_secrets_in_a_file_others_can_read_are_a_warning(tmp_path: Path) -> None:
    """A file holding a token, webhook secret or MQTT password inline is a warning naming the
    file, the keys and its mode while group or others can read it; private, or with every
    secret from the environment or a file, it is not."""
    token = tmp_path / "token"
    token.write_text("from-a-file-0123456789\n")
    inline = (
        "devices: [{host: 192.168.1.20}]\n"
        "api:\n  tokens:\n    - {name: a, token: inline-0123456789}\n"
        f"    - {{name: b, token_file: '{token}'}}\n"
        "sinks:\n  webhooks: [{url: 'http://a.lan/', secret: s1}]\n"
        "  mqtt: {username: u, password: pw}\n"
    )
    path = write(tmp_path, inline)
    for mode in (0o644, 0o640, 0o604):
        os.chmod(path, mode)
        assert config_warnings(load_config(path, environ={})) == [
            f"{path}: api.tokens[0].token, sinks.webhooks[0].secret, sinks.mqtt.password: "
            f"a secret written in a file that group or others can read (mode {mode:04o}): "
            f"make the file private (chmod 600 {path}) or give the secret with *_env or *_file"
        ]
    os.chmod(path, 0o600)
    assert config_warnings(load_config(path, environ={})) == []
    referenced = write(
        tmp_path,
        "devices: [{host: 192.168.1.20}]\n"
        f"api:\n  tokens:\n    - {{name: b, token_file: '{token}'}}\n"
        "    - {name: c, token_env: T}\n",
        "referenced.yaml",
    )
    os.chmod(referenced, 0o644)
    assert config_warnings(load_config(referenced, environ={"T": "from-the-env-0123"})) == []


@pytest.mark.parametrize("name", ["sonosd.example.yaml", "sonosd.demo.yaml"])
def test_shipped_configurations_load(name: str) -> None:
    """The example and demo configurations are valid."""
    config = load_config(str(ROOT / "etc" / name), environ={})
    assert isinstance(config, Config)


def test_example_documents_every_key() -> None:
    """Every key of the schema appears in the example configuration (active or commented)."""
    text = (ROOT / "etc" / "sonosd.example.yaml").read_text()
    for path in _schema_keys(SCHEMA):
        assert f"{path[-1]}:" in text, path


def test_example_values_are_the_defaults() -> None:
    """ "every option, with its default": the example's settings are the defaults, section by
    section (not just keys that load)."""
    path = str(ROOT / "etc" / "sonosd.example.yaml")
    assert load_config(path, environ={}) == Config(path=path)


def test_demo_simulates_a_richer_household() -> None:
    """The demo follows a household with a home-theatre room and a portable, API on loopback."""
    from twisted.internet.task import Clock

    from sonosd.sim.neighbourhood import Neighbourhood

    config = load_config(str(ROOT / "etc" / "sonosd.demo.yaml"), environ={})
    assert config.simulate is not None and config.simulate.activity > 0
    household = Neighbourhood.build(Clock(), config.simulate, seed=1).household
    rooms = {s.name: s for s in household.speakers if not s.invisible}
    assert set(rooms) == {"Kitchen", "Office", "Garden", "Living Room"}
    assert len(rooms["Living Room"].satellites) == 3 and rooms["Living Room"].model.soundbar
    assert rooms["Garden"].model.portable
    # README: speakers on 127.0.0.2-8, the API on http://127.0.0.1:8080/.
    assert [s.address for s in household.speakers] == [f"127.0.0.{n}" for n in range(2, 9)]
    assert config.api.listen == "tcp:8080:interface=127.0.0.1"
    assert config.listener.interface == "127.0.0.1"


# -- the schema ------------------------------------------------------------------------------------


def test_schema_is_valid_json_schema() -> None:
    """The shipped schema is itself a valid draft 2020-12 schema."""
    Draft202012Validator.check_schema(dict(SCHEMA))


def test_published_schema_equals_the_packaged_one() -> None:
    """docs/config.schema.json is a copy of sonosd/config.schema.json."""
    packaged = (ROOT / "sonosd" / "config.schema.json").read_text()
    published = (ROOT / "docs" / "config.schema.json").read_text()
    assert published == packaged


def _schema_keys(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for name, prop in schema.get("properties", {}).items():
        keys.append((*path, name))
        keys.extend(_schema_keys(_resolve(prop), (*path, name)))
    items = schema.get("items")
    if isinstance(items, dict):
        keys.extend(_schema_keys(_resolve(items), path))
    return keys


def _resolve(schema: Any) -> Any:
    if "$ref" in schema:
        return _resolve(SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]])
    for branch in schema.get("anyOf", ()):
        if "$ref" in branch or "properties" in branch:
            return _resolve(branch)
    return schema


_SECTION_CLASSES: dict[tuple[str, ...], type] = {
    ("listener",): ListenerConfig,
    ("api",): ApiConfig,
    ("api", "tokens"): Token,
    ("devices",): Device,
    ("ssdp",): SsdpConfig,
    ("subscription",): SubscriptionConfig,
    ("soco",): SocoConfig,
    ("announce",): AnnounceConfig,
    ("sinks",): SinksConfig,
    ("log",): LogConfig,
    ("simulate",): SimulateConfig,
    ("sinks", "mqtt"): MqttConfig,
    ("sinks", "webhooks"): Webhook,
}

# Schema keys that are spellings of one attrs field (``token_env`` -> ``secret``).
_SECRET_KEYS = {"token", "token_env", "token_file", "secret", "secret_env", "secret_file"}
_SECRET_KEYS |= {"password", "password_env", "password_file"}


def _normalise(value: Any) -> Any:
    if isinstance(value, frozenset):
        return tuple(sorted(value))
    if isinstance(value, list | tuple):
        return tuple(value)
    if isinstance(value, dict):
        return dict(value)
    return value


@pytest.mark.parametrize("section", sorted(_SECTION_CLASSES))
def test_schema_matches_the_config_classes(section: tuple[str, ...]) -> None:
    """Each section's keys and defaults in the schema are the attrs class's fields and defaults."""
    kind = _SECTION_CLASSES[section]
    schema: Any = SCHEMA
    for name in section:
        schema = _resolve(schema["properties"][name])
        if "items" in schema:
            schema = _resolve(schema["items"])
    properties = schema["properties"]
    fields = {field.name: field for field in attrs.fields(kind)}
    keys = {key for key in properties if key not in _SECRET_KEYS}
    field_names = {name for name in fields if name not in {"secret", "password"}}
    assert keys == field_names
    for key in keys:
        field = fields[key]
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        if default is attrs.NOTHING:
            assert "default" not in properties[key], key
            continue
        if attrs.has(type(default)):
            continue
        assert _normalise(properties[key].get("default")) == _normalise(default), key


def _object_paths(schema: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The key path of every mapping with keys of its own in the schema, however nested (a
    list's items under the list's path)."""
    paths = []
    for name, prop in schema.get("properties", {}).items():
        inner = _resolve(prop)
        if "items" in inner:
            inner = _resolve(inner["items"])
        if "properties" in inner:
            paths.append((*path, name))
            paths.extend(_object_paths(inner, (*path, name)))
    return paths


def test_every_mapping_of_the_schema_is_checked_against_its_class() -> None:
    """Each section or list entry of the schema with keys of its own, at every depth, is
    compared with its attrs class above (a webhook's filter is a mapping of lists, no class),
    so that a key added to one and not the other fails."""
    assert set(_object_paths(SCHEMA)) == {*_SECTION_CLASSES, ("sinks", "webhooks", "filter")}
    [webhook] = [field for field in attrs.fields(Webhook) if field.name == "filter"]
    keys = set(_resolve(SCHEMA["$defs"]["filter"])["properties"])
    assert keys == {"speakers", "rooms", "services", "types"}
    assert webhook.default.factory() == {}  # type: ignore[union-attr]


def test_top_level_schema_matches_config() -> None:
    """The top-level keys of the schema are the fields of Config (besides its path and its
    record of inline secrets)."""
    # inline_secrets records where the file wrote secrets: not a key of the file.
    fields = {field.name for field in attrs.fields(Config)} - {"path", "inline_secrets"}
    assert set(SCHEMA["properties"]) == fields
    assert tuple(SCHEMA["properties"]["services"]["default"]) == DEFAULT_SERVICES
    assert tuple(SCHEMA["$defs"]["service"]["enum"]) == SERVICES


# -- formatting helpers ----------------------------------------------------------------------------


def test_format_path() -> None:
    """Key paths read like the YAML they point into."""
    assert format_path(("devices", 0, "host")) == "devices[0].host"
    assert format_path(("api", "tokens", 2)) == "api.tokens[2]"
    assert format_path(()) == ""


def test_show_value_of_a_circular_value() -> None:
    """A circular value is cut short, as any value too large to show, never followed."""
    circular: list[object] = []
    circular.append(circular)
    shown = show_value(circular)
    assert shown.startswith("[[[[") and shown.endswith("...") and len(shown) == 120


def test_show_value_of_a_value_json_cannot_show() -> None:
    """A value JSON cannot show (a mapping with a tuple key) is shown with repr()."""
    assert show_value({(1, 2): 3}) == "{(1, 2): 3}"


@pytest.mark.parametrize("name", [".", "a" * 64, ("a" * 60 + ".") * 5, "a.-b"])
def test_bad_host_shapes(name: str) -> None:
    """Empty, over-long labels or names, and bad labels are not host names."""
    assert not is_host(name)


def test_mqtt_ca_file(tmp_path: Path) -> None:
    """The MQTT CA file must exist."""
    ca = tmp_path / "ca.pem"
    assert error_of(f"sinks: {{mqtt: {{tls: true, ca_file: '{ca}'}}}}\n") == (
        f'config.yaml:1: sinks.mqtt.ca_file: no such file, got "{ca}"'
    )
    ca.write_text("pem")
    config = parse_config(f"sinks: {{mqtt: {{tls: true, ca_file: '{ca}'}}}}\n")
    assert config.sinks.mqtt == MqttConfig(tls=True, ca_file=str(ca))


def test_show_value() -> None:
    """Bad values are shown as JSON, shortened, or hidden when secret."""
    assert show_value(42) == "42"
    assert show_value("x") == '"x"'
    assert show_value(None) == "null"
    assert show_value("s", secret=True) == "<hidden>"
    assert show_value("y" * 100, limit=10) == '"yyyyyy...'


# -- properties ------------------------------------------------------------------------------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_keys = st.sampled_from(
    [
        "listener",
        "api",
        "devices",
        "host",
        "port",
        "interface",
        "services",
        "log",
        "level",
        "format",
        "simulate",
        "speakers",
        "sinks",
        "tokens",
        "name",
        "token",
        "unknown",
    ]
)
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_documents)
def test_any_document_gives_a_config_or_one_line(document: Any) -> None:
    """Whatever the YAML holds, the loader returns a Config or raises one line naming the file."""
    text = yaml.safe_dump(document)
    try:
        config = parse_config(text, "any.yaml", {})
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith("any.yaml")
    else:
        assert isinstance(config, Config)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80)
    | st.from_regex(
        r"\A(listener|api|devices|log|simulate):( |\n  )[-\[\]{}:,&*!|>'\"#%@` a-z0-9\n]{0,40}\Z"
    )
)
def test_any_text_gives_a_config_or_one_line(text: str) -> None:
    """Whatever the file's text, the loader returns a Config or raises one line naming it."""
    try:
        config = parse_config(text, "any.yaml", {})
    except ConfigError as error:
        message = str(error)
        assert "\n" not in message
        assert message.startswith("any.yaml")
    else:
        assert isinstance(config, Config)


@given(st.integers(min_value=0, max_value=65535), st.ip_addresses(v=4))
def test_valid_listener_values_round_trip(port: int, address: Any) -> None:
    """Any valid port and IPv4 address is read back unchanged."""
    config = parse_config(f"listener: {{port: {port}, interface: '{address}'}}\n")
    assert config.listener == ListenerConfig(interface=str(address), port=port)


@given(st.integers().filter(lambda port: not 0 <= port <= 65535))
def test_invalid_ports_are_refused(port: int) -> None:
    """Any port outside 0..65535 is refused with the value."""
    assert error_of(f"listener: {{port: {port}}}\n").endswith(f"got {port}")


def test_module_reads_the_schema_from_package_data() -> None:
    """The schema is read from the package (so an installed sonosd validates too)."""
    assert json.loads(config_module.schema_text()) == SCHEMA
    assert os.path.basename(config_module.__file__ or "") == "config.py"


def test_announce_section() -> None:
    """The announce section reads the TTS command as an argument list and checks the URL."""
    config = parse_config(
        'announce: {tts_command: [piper, --output_file, "{file}"], volume: 30, media_ttl: 60}\n',
        "config.yaml",
    )
    assert config.announce.tts_command == ("piper", "--output_file", "{file}")
    assert (config.announce.volume, config.announce.media_ttl) == (30, 60)
    assert parse_config("{}\n", "config.yaml").announce.tts_command[0] == "espeak-ng"
    assert error_of('announce: {tts_url: "http://tts.lan/speak"}\n') == (
        "config.yaml:1: announce.tts_url: expected an http(s) URL containing {text}, "
        'got "http://tts.lan/speak"'
    )
    assert "announce.volume" in error_of("announce: {volume: 101}\n")


@pytest.mark.parametrize(
    "text",
    [
        "a: " + "[" * 1000 + "]" * 1000,
        "- " * 3000 + "x",
        "{" * 1000 + "}" * 1000,
        "a: " + "[" * 5000 + "]" * 5000,
        "api:\n  tokens:\n    - " + "[" * 99 + "]" * 99,
    ],
)
def test_deep_nesting_is_one_line(text: str) -> None:
    """A document nested over 100 levels is one line naming the line, found before it is
    composed (PyYAML would end in RecursionError past about 1,000 levels, and its scanner is
    quadratic in the depth of flow collections: 5,000 levels took 9 s to refuse)."""
    assert (
        error_of(text)
        == f"config.yaml:{text.count(chr(10)) + 1}: invalid YAML: nested over 100 levels deep"
    )


def test_nesting_up_to_100_levels_is_read() -> None:
    """100 levels are composed and checked as settings (the error is about the setting)."""
    assert config_module.MAX_DEPTH == 100
    error = error_of("a: " + "[" * 99 + "]" * 99)
    assert error.startswith("config.yaml:1: a: unknown key"), error
    error = error_of("- " * 100 + "x")
    assert "expected a mapping of settings at the top level" in error, error


def test_aliases_nested_deeper_than_the_text_are_one_line() -> None:
    """Aliases can nest deeper than the text (each line one level more than the last): the
    value bound ends it in one line, never a traceback."""
    text = "x:\n- &a0 [1]\n" + "".join(f"- &a{i} [*a{i - 1}]\n" for i in range(1, 1500))
    assert error_of(text) == (
        "config.yaml:446: x[445][0]: the document has more than 100000 values "
        "(aliases counted as expanded)"
    )


def test_files_over_the_size_bound_are_refused(tmp_path: Path) -> None:
    """A configuration file over MAX_FILE bytes is refused without being parsed."""
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * config_module.MAX_FILE + "\n{}\n")
    with pytest.raises(ConfigError) as refused:
        load_config(str(path), {})
    assert str(refused.value) == f"{path}: the configuration file is over 1048576 bytes"


def test_configured_filters_take_the_four_keys_and_mqtt_none() -> None:
    """docs/api.md, Filters: a configuration file's filter takes ``speakers``, ``rooms``,
    ``services`` and ``types`` (the singular aliases are for query strings and operations),
    and the MQTT sink has no filter in the configuration (it publishes every message)."""
    webhook = 'sinks: {webhooks: [{url: "http://hooks.lan/x", filter: {%s: [Kitchen]}}]}\n'
    assert parse_config(webhook % "rooms", "config.yaml").sinks.webhooks[0].filter == {
        "rooms": ("Kitchen",)
    }
    assert error_of(webhook % "room") == (
        "config.yaml:1: sinks.webhooks[0].filter.room: unknown key "
        '(known keys: speakers, rooms, services, types), got ["Kitchen"]'
    )
    error = error_of("sinks: {mqtt: {host: 127.0.0.1, filter: {rooms: [Kitchen]}}}\n")
    assert error.startswith("config.yaml:1: sinks.mqtt.filter: unknown key"), error
