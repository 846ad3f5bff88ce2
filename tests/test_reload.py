"""Tests for sonosd.reload: what a SIGHUP applies and what needs a restart."""

from __future__ import annotations

import attrs

from sonosd.config import parse_config
from sonosd.reload import ReloadPlan, plan_reload, running_config

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
