"""docs/api.md states defaults and bounds in its prose; each is the one the code has. (The
behaviour behind each is tested where it lives: tests/api/, tests/delivery/, tests/sinks/.)"""

from __future__ import annotations

import re

import pytest
from twisted.internet import abstract

from sonosd import config
from sonosd.api import commands, sse, ws
from sonosd.delivery import clientjson, flow, hub
from tests.paths import ROOT

#: The page with its line breaks folded into spaces (a phrase may wrap).
TEXT = re.sub(r"\s+", " ", (ROOT / "docs" / "api.md").read_text(encoding="utf-8"))

API = config.ApiConfig()

CASES: list[tuple[str, object, object]] = [
    ("default `tcp:8080:interface=127.0.0.1`", API.listen, "tcp:8080:interface=127.0.0.1"),
    ("within `api.request_timeout` (15 s)", API.request_timeout, 15.0),
    ("bodies are at most 64 KiB", commands.MAX_BODY, 64 * 1024),
    ("JSON at most 32 levels deep", clientjson.MAX_DEPTH, 32),
    ("Operations are JSON of at most 64 KiB", clientjson.MAX_BYTES, 64 * 1024),
    ("A frame over 64 KiB closes the socket (1009)", ws.MAX_INCOMING, 64 * 1024),
    ("`api.replay_buffer` messages (default 10,000)", API.replay_buffer, 10_000),
    ("at most 32 MiB of their JSON compressed", hub.REPLAY_BYTES, 32 * 1024 * 1024),
    ("retry: 2000", sse.RETRY_MS, 2000),
    ("every `api.heartbeat` seconds (default 15)", API.heartbeat, 15.0),
    ("`api.client_buffer` messages (default 1,000)", API.client_buffer, 1000),
    ("is kept at 256 KiB", flow.SEND_BUFFER, 256 * 1024),
    # Twisted's, not sonosd's: a transport pauses its producer above it.
    ("the transport's own buffer (64 KiB)", abstract.FileDescriptor.bufferSize, 64 * 1024),
    ("`1001` server shutting down", ws.CLOSE_GOING_AWAY, 1001),
    ("`1008` too slow", ws.CLOSE_TOO_SLOW, 1008),
]


@pytest.mark.parametrize(("phrase", "actual", "stated"), CASES, ids=[c[0] for c in CASES])
def test_the_page_states_the_codes_default(phrase: str, actual: object, stated: object) -> None:
    """The phrase is on the page, and the value it states is the code's."""
    assert phrase in TEXT
    assert actual == stated
