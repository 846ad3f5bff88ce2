"""docs/security.md states the bounds the code enforces: each number it gives is checked
against the constant or default that enforces it (the behaviour behind each is tested where
the bound lives, and end to end in tests/test_hostile.py)."""

from __future__ import annotations

import pytest

from sonosd import config, peerlog
from sonosd.api import commands, deadline, ws
from sonosd.delivery import clientjson, flow
from sonosd.gena import eventxml, notifyproto, xmlguard
from sonosd.household import socohttp, supervisor
from sonosd.sinks import mqtt
from tests.paths import ROOT

TEXT = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("phrase", "value", "expected"),
    [
        ("request line and headers | 16 KiB, 100 lines", notifyproto.MAX_HEAD, 16 * 1024),
        ("request line and headers | 16 KiB, 100 lines", notifyproto.MAX_HEADERS, 100),
        ("`listener.max_body` (1 MiB)", config.ListenerConfig().max_body, 1024 * 1024),
        ("1 KiB each, 100 trailer lines", notifyproto.MAX_CHUNK_LINE, 1024),
        ("up to 16 x `max_body`", notifyproto.DISCARD_FACTOR, 16),
        ("`listener.idle_timeout` (30 s)", config.ListenerConfig().idle_timeout, 30.0),
        ("`listener.request_timeout` (15 s)", config.ListenerConfig().request_timeout, 15.0),
        (
            "`listener.max_connections_per_host` (64)",
            config.ListenerConfig().max_connections_per_host,
            64,
        ),
        ("2 x its size + 4 KiB characters", xmlguard.NESTING_FACTOR, 2),
        ("and 50,000 elements", xmlguard.MAX_ELEMENTS, 50_000),
        ("64 Ki characters (`eventxml.MAX_VALUE`)", eventxml.MAX_VALUE, 65_536),
        ("| request body | 64 KiB", commands.MAX_BODY, 65_536),
        ("`api.request_timeout` (15 s)", config.ApiConfig().request_timeout, 15.0),
        ("`api.request_timeout` (15 s)", deadline.REQUEST_TIMEOUT, 15.0),
        ("one decoder (`clientjson`): 64 KiB", clientjson.MAX_BYTES, 65_536),
        ("32 levels of nesting", clientjson.MAX_DEPTH, 32),
        ("WebSocket frames and messages | 64 KiB", ws.MAX_INCOMING, 65_536),
        ("at most 256 KiB in the kernel", flow.SEND_BUFFER, 256 * 1024),
        ("`api.client_buffer` (1,000)", config.ApiConfig().client_buffer, 1000),
        ("`api.replay_buffer` (10,000)", config.ApiConfig().replay_buffer, 10_000),
        ("| an answer's size | 4 MiB", socohttp.MAX_ANSWER, 4 * 1024 * 1024),
        ("escaped in it (up to 3 levels", socohttp.NESTING, 3),
        ("`soco.call_timeout` (20 s)", config.SocoConfig().call_timeout, 20.0),
        (
            "messages waiting for a broker that stops reading or acknowledging | 10,000",
            mqtt.MAX_UNSENT,
            10_000,
        ),
        ("At most 1 MiB and 100,000 values", config.MAX_FILE, 1024 * 1024),
        ("once per source and reason per minute", peerlog.DEFAULT_INTERVAL, 60.0),
        ("At most 256 sources and reasons", peerlog.MAX_KEYS, 256),
        (
            "`subscription.check_interval` (300 s)",
            config.SubscriptionConfig().check_interval,
            300.0,
        ),
        ("a difference still there 2 s later", supervisor.CONFIRM_DELAY, 2.0),
        ("At most 1 MiB and 100,000 values", config._MAX_NODES, 100_000),
    ],
)
def test_the_page_states_the_bound_the_code_enforces(
    phrase: str, value: object, expected: object
) -> None:
    """The page says it, and the code enforces that value."""
    assert phrase in TEXT
    assert value == expected


def test_the_readme_links_the_page() -> None:
    """README's documentation list links security.md and soak.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/security.md)" in readme and "(docs/soak.md)" in readme
