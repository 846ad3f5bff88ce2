"""Tests for sonosd.reload: what a SIGHUP applies and what needs a restart."""

from __future__ import annotations

from pathlib import Path

import attrs

from sonosd.config import parse_config
from sonosd.reload import RESTART_ONLY, ReloadPlan, plan_reload, running_config

BASE = """
devices: [{host: 192.168.1.20}, {host: 192.168.1.21}]
api: {tokens: [{name: a, token: aaaaaaaaaaaaaaaa}]}
"""


def test_nothing_changed() -> None:
    """The same file twice is an empty plan."""
    config = parse_config(BASE)
    plan = plan_reload(config, parse_config(BASE))
    assert plan == ReloadPlan()
    assert not plan.changed
    assert plan.describe() == "nothing changed"


def test_devices_services_tokens_sinks_and_log() -> None:
    """Each live setting lands in the plan, with the hosts and services added and removed."""
    old = parse_config(BASE)
    new = parse_config(
        """
devices: [{host: 192.168.1.21}, {host: 192.168.1.22}]
services: [AVTransport, RenderingControl, SystemProperties]
api: {tokens: [{name: b, token: bbbbbbbbbbbbbbbb}], ready_when_polling: true}
sinks: {webhooks: [{url: "http://127.0.0.1:9/hook"}]}
log: {level: debug, messages: false}
listener: {max_body: 2048}
announce: {volume: 30}
"""
    )
    plan = plan_reload(old, new)
    assert plan.announce and "announce" in plan.describe()
    assert plan.devices_added == ("192.168.1.22",)
    assert plan.devices_removed == ("192.168.1.20",)
    assert plan.services_added == ("SystemProperties",)
    assert "ZoneGroupTopology" in plan.services_removed
    assert plan.household and plan.auth and plan.ready and plan.log and plan.max_body
    assert plan.sinks == ("webhooks",)
    assert plan.restart == ()
    assert plan.describe().startswith(
        "devices +192.168.1.22 -192.168.1.20, services +SystemProperties -GroupRenderingControl"
    )
    assert "sinks.webhooks rebuilt" in plan.describe()


def test_listen_addresses_need_a_restart() -> None:
    """Listen addresses, buffers, the thread pool and the log format are kept until restart."""
    old = parse_config(BASE)
    new = parse_config(
        BASE
        + """
listener: {port: 1401, advertise: 192.168.1.10}
soco: {threads: 3}
log: {format: json}
sinks: {stream: "unix:/tmp/sonosd.sock"}
"""
    )
    plan = plan_reload(old, new)
    assert plan.restart == (
        "listener.port",
        "listener.advertise",
        "sinks.stream",
        "soco",
        "log.format",
    )
    kept = running_config(old, new)
    assert kept.listener.port == 1400
    assert kept.listener.advertise is None
    assert kept.sinks.stream is None
    assert kept.soco == old.soco
    assert kept.log.format == "text"
    assert plan_reload(old, kept).restart == ()


def test_subscription_timings_alone() -> None:
    """Changed timings alone are a household change described as such."""
    old = parse_config(BASE)
    new = attrs.evolve(old, subscription=attrs.evolve(old.subscription, poll_interval=3.0))
    plan = plan_reload(old, new)
    assert plan.household
    assert plan.describe() == "subscription timings"


def test_follow_household_alone() -> None:
    """Switching follow_household alone is a household change, named as such."""
    old = parse_config(BASE)
    new = attrs.evolve(old, follow_household=False)
    plan = plan_reload(old, new)
    assert plan.household and plan.follow_household
    assert plan.describe() == "follow_household"


def test_listener_and_api_limits_need_a_restart() -> None:
    """The NOTIFY listener's idle and request timeouts and per-address connection limit, and
    the API's request timeout, are kept until a restart (and said to be), not taken silently
    into the running configuration while the old ones still apply."""
    old = parse_config(BASE)
    new = attrs.evolve(
        old,
        listener=attrs.evolve(
            old.listener, idle_timeout=3.0, request_timeout=4.0, max_connections_per_host=5
        ),
        api=attrs.evolve(old.api, request_timeout=6.0),
    )
    plan = plan_reload(old, new)
    assert plan.restart == (
        "listener.idle_timeout",
        "listener.request_timeout",
        "listener.max_connections_per_host",
        "api.request_timeout",
    )
    kept = running_config(old, new)
    assert kept.listener == old.listener
    assert kept.api == old.api


def test_every_restart_only_setting_is_kept() -> None:
    """Every setting a reload does not apply, ``state_dir`` and ``simulate`` included, is kept
    from the running configuration, so that reloading the same file again still says it needs
    a restart."""
    old = parse_config(BASE)
    new = parse_config(
        """
devices: [{host: 192.168.1.20}, {host: 192.168.1.21}]
listener: {interface: 127.0.0.1, port: 1401, advertise: 192.168.1.10, idle_timeout: 3,
  request_timeout: 4, max_connections_per_host: 5}
discovery: true
ssdp: {interval: 60}
api: {tokens: [{name: a, token: aaaaaaaaaaaaaaaa}], listen: "tcp:8081:interface=127.0.0.1",
  replay_buffer: 5, client_buffer: 6, heartbeat: 7,
  request_timeout: 8}
soco: {threads: 3}
log: {format: json}
sinks: {stream: "unix:/tmp/sonosd.sock"}
simulate: {}
state_dir: /var/lib/sonosd-elsewhere
"""
    )
    plan = plan_reload(old, new)
    kept = running_config(old, new)
    for key in plan.restart:
        assert RESTART_ONLY[key](kept) == RESTART_ONLY[key](old), key
    assert plan_reload(old, kept).restart == ()
    assert plan_reload(kept, new).restart == plan.restart
    assert plan.restart == tuple(RESTART_ONLY)


def test_the_line_names_what_changed_in_the_household() -> None:
    """The reload's log line says what changed (docs/configuration.md): a listed speaker's
    room name is named as such, not as subscription timings; timings changed with devices
    are named too; a new order alone is named as that."""
    old = parse_config(BASE)
    renamed = parse_config(BASE.replace("{host: 192.168.1.20}", "{host: 192.168.1.20, name: Den}"))
    plan = plan_reload(old, renamed)
    assert plan.household and plan.devices_renamed == ("192.168.1.20",)
    assert plan.describe() == "devices renamed 192.168.1.20"
    assert plan_reload(old, attrs.evolve(old, devices=old.devices[:1])).describe() == (
        "devices -192.168.1.21"
    )
    both = attrs.evolve(
        old,
        devices=old.devices[:1],
        subscription=attrs.evolve(old.subscription, poll_interval=3.0),
    )
    assert plan_reload(old, both).describe() == "devices -192.168.1.21, subscription timings"
    reordered = attrs.evolve(old, devices=old.devices[::-1])
    assert plan_reload(old, reordered).describe() == "order of devices or services"


def test_a_rotated_token_file_is_a_change(tmp_path: Path) -> None:
    """A token file is read again at each reload (docs/configuration.md, Secrets): a new
    token in the same file is a change of tokens, applied, though the file's text is the
    same."""
    secret = tmp_path / "token"
    secret.write_text("a" * 16 + "\n")
    text = f"api: {{tokens: [{{name: a, token_file: {secret}}}]}}\n"
    old = parse_config(text)
    assert plan_reload(old, parse_config(text)) == ReloadPlan()
    secret.write_text("b" * 16 + "\n")
    new = parse_config(text)
    plan = plan_reload(old, new)
    assert plan.auth and plan.describe() == "tokens and origins"
    assert running_config(old, new).api.tokens[0].secret == "b" * 16
