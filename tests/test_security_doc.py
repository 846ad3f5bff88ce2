"""docs/security.md states the bounds the code enforces: each number it gives is checked
against the constant or default that enforces it (the behaviour behind each is tested where
the bound lives, and end to end in tests/test_hostile.py), and every number in its tables of
bounds is one of those checked here, so that a bound added to the page, or changed in the
code, cannot go unchecked."""

from __future__ import annotations

import http.client
import inspect
import re
import sys

import pytest
from twisted.internet import reactor
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource

import sonosd.household.soap
from sonosd import backoff, config, logs, peerlog
from sonosd.api import art, commands, deadline, ws
from sonosd.api.site import ApiSite
from sonosd.control import controller
from sonosd.delivery import clientjson, flow, hub
from sonosd.gena import (
    _shape,
    core,
    eventxml,
    httpclient,
    listener,
    notifyport,
    notifyproto,
    xmlguard,
)
from sonosd.household import discovery, probe, socohttp, supervisor
from sonosd.sinks import mqtt, mqtt_topics, stream
from tests.paths import ROOT

TEXT = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
SUMMARY = TEXT[TEXT.index("## Every peer at a glance") : TEXT.index("## Every bound")]
BOUNDS = TEXT[TEXT.index("## Every bound") : TEXT.index("## Losses that are not an attack")]


def table_rows(text: str) -> dict[str, str]:
    """The rows of the tables in ``text``, by their first cell."""
    rows = {}
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and cells[0] not in ("input", "---"):
            rows[cells[0]] = line
    return rows


ROWS = table_rows(BOUNDS)
_SHAPE_ROW = "the compiled reader (`sonosd/gena/_shape.c`)"
NUMBER = r"\d(?:[\d,.]*\d)?"


def _default(function: object, name: str) -> object:
    return inspect.signature(function).parameters[name].default  # type: ignore[arg-type]


def _encoding_refused(document: bytes) -> bool:
    try:
        xmlguard.check_document(document)
    except xmlguard.UnsafeXml as refused:
        return refused.reason == "encoding"
    return False


#: (the row of a table of bounds, or None for the page's text; a phrase of it; the value the
#: code enforces; the value the phrase states).
CHECKS: list[tuple[str | None, str, object, object]] = [
    # The NOTIFY listener.
    ("request line and headers", "16 KiB, 100 lines", notifyproto.MAX_HEAD, 16 * 1024),
    ("request line and headers", "16 KiB, 100 lines", notifyproto.MAX_HEADERS, 100),
    ("body", "`listener.max_body` (1 MiB)", config.ListenerConfig().max_body, 1024 * 1024),
    ("chunk-size and trailer lines", "1 KiB each", notifyproto.MAX_CHUNK_LINE, 1024),
    ("chunk-size and trailer lines", "100 trailer lines", notifyproto.MAX_HEADERS, 100),
    ("the rest of a refused request", "up to 16 x `max_body`", notifyproto.DISCARD_FACTOR, 16),
    (
        "a connection that sends nothing",
        "`listener.idle_timeout` (30 s)",
        config.ListenerConfig().idle_timeout,
        30.0,
    ),
    ("a connection that sends nothing", "about 1 s at most", notifyport.DEFER_ACCEPT, 1),
    (
        "a whole request, however steadily it drips",
        "`listener.request_timeout` (15 s)",
        config.ListenerConfig().request_timeout,
        15.0,
    ),
    (
        "connections from one address at once",
        "`listener.max_connections_per_host` (64)",
        config.ListenerConfig().max_connections_per_host,
        64,
    ),
    (
        "NOTIFYs held for a SUBSCRIBE in flight",
        "2 per SUBSCRIBE in flight to their sender",
        listener.HELD_PER_SUBSCRIBE,
        2,
    ),
    (
        "NOTIFYs held for a SUBSCRIBE in flight",
        "128 in all",
        _default(listener.NotifyListener, "max_held"),
        128,
    ),
    (
        "NOTIFYs held for a SUBSCRIBE in flight",
        "for 5 s each",
        _default(listener.NotifyListener, "hold_timeout"),
        5.0,
    ),
    ("SIDs remembered as ended", "10,000, each until", listener.MAX_ENDED, 10_000),
    ("SIDs remembered as ended", "a day at most", listener.ENDED_MEMORY, 86400.0),
    (
        "a body's encoding",
        "UTF-8, US-ASCII or ISO-8859-1",
        {"utf-8", "us-ascii", "iso-8859-1"} <= xmlguard._ENCODINGS,
        True,
    ),
    (
        "a body's encoding",
        "(`latin-1`, `latin1`, `l1`, `cp819`...",
        [
            _encoding_refused(b'<?xml version="1.0" encoding="' + name + b'"?><a/>')
            for name in (b"latin-1", b"latin1", b"l1", b"cp819")
        ],
        [False, False, False, False],
    ),
    (
        "a body's encoding",
        "UTF-16/32 and other declared encodings",
        [
            _encoding_refused(document)
            for document in (
                "<a/>".encode("utf-16"),
                "<a/>".encode("utf-32"),
                b'<?xml version="1.0" encoding="utf-7"?><a/>',
            )
        ],
        [True, True, True],
    ),
    (
        "nested documents (LastChange, ZoneGroupState, DIDL)",
        "2 x its size + 4 KiB characters",
        xmlguard.Budget.for_body(b"x" * 1000).size,
        2 * 1000 + 4096,
    ),
    (
        "nested documents (LastChange, ZoneGroupState, DIDL)",
        "and 50,000 elements",
        xmlguard.MAX_ELEMENTS,
        50_000,
    ),
    ("one variable's value", "64 Ki characters (`eventxml.MAX_VALUE`)", eventxml.MAX_VALUE, 65_536),
    # The API.
    (
        "request line, headers",
        "16 KiB for the line and all headers, 500 headers",
        HTTPChannel.totalHeadersSize,
        16 * 1024,
    ),
    (
        "request line, headers",
        "16 KiB for the line and all headers, 500 headers",
        HTTPChannel.maxHeaders,
        500,
    ),
    ("request line, headers", "16 KiB a line", HTTPChannel.MAX_LENGTH, 16 * 1024),
    ("request body", "64 KiB (`api.commands.MAX_BODY`)", commands.MAX_BODY, 65_536),
    (
        "a whole request (line, headers, body), once started",
        "`api.request_timeout` (15 s)",
        config.ApiConfig().request_timeout,
        15.0,
    ),
    (
        "a whole request (line, headers, body), once started",
        "`api.request_timeout` (15 s)",
        deadline.REQUEST_TIMEOUT,
        15.0,
    ),
    ("an idle connection", "twisted.web's 60 s", ApiSite(Resource(), reactor).timeOut, 60),
    (
        "JSON from any client: REST command bodies, WebSocket operations, stream lines, MQTT "
        "command payloads",
        "one decoder (`clientjson`): 64 KiB",
        clientjson.MAX_BYTES,
        65_536,
    ),
    (
        "JSON from any client: REST command bodies, WebSocket operations, stream lines, MQTT "
        "command payloads",
        "UTF-8, 32 levels of nesting",
        clientjson.MAX_DEPTH,
        32,
    ),
    (
        "JSON from any client: REST command bodies, WebSocket operations, stream lines, MQTT "
        "command payloads",
        "integers beyond 64 bits become floats",
        [type(clientjson.decode(str(2**63 - 1))), type(clientjson.decode(str(2**64)))],
        [int, float],
    ),
    ("WebSocket frames and messages", "64 KiB (autobahn)", ws.MAX_INCOMING, 65_536),
    ("stream lines", "64 KiB", stream.StreamProtocol.MAX_LENGTH, 65_536),
    (
        "query strings",
        "within the request line (16 KiB)",
        HTTPChannel.totalHeadersSize,
        16 * 1024,
    ),
    (
        "query strings",
        "`last_id` 18 digits (garbage is a fresh snapshot)",
        [hub.parse_cursor("9" * 18), hub.parse_cursor("9" * 19)],
        [hub.Cursor(None, 10**18 - 1), None],
    ),
    (
        "a client that stops reading (WebSocket, SSE, stream)",
        "`api.client_buffer` (1,000)",
        config.ApiConfig().client_buffer,
        1000,
    ),
    (
        "a client that stops reading (WebSocket, SSE, stream)",
        "at most 256 KiB in the kernel",
        flow.SEND_BUFFER,
        256 * 1024,
    ),
    (
        "a client that stops reading (WebSocket, SSE, stream)",
        "Linux would grow it to 4 MiB",
        flow.SEND_BUFFER < 4 * 1024 * 1024,
        True,
    ),
    (
        "replay ring",
        "`api.replay_buffer` (10,000) messages",
        config.ApiConfig().replay_buffer,
        10_000,
    ),
    ("replay ring", "and 32 MiB", hub.REPLAY_BYTES, 32 * 1024 * 1024),
    ("commands waiting or running per speaker", "| 32 |", controller.MAX_PENDING, 32),
    ("album art (`/api/v1/art`)", "2 MiB per image", art.MAX_IMAGE, 2 * 1024 * 1024),
    ("album art (`/api/v1/art`)", "4 fetches at once", art.MAX_FETCHES, 4),
    ("album art (`/api/v1/art`)", "64 waiting", art.MAX_WAITING, 64),
    # Speakers' answers to SoCo.
    ("an answer's size", "| 4 MiB", socohttp.MAX_ANSWER, 4 * 1024 * 1024),
    ("an answer's size", "| 4 MiB", sonosd.household.soap.MAX_ANSWER, 4 * 1024 * 1024),
    ("an answer's time", "`soco.call_timeout` (20 s)", sonosd.household.soap.DEFAULT_TIMEOUT, 20.0),
    ("an answer's time", "`soco.call_timeout` (20 s)", config.SocoConfig().call_timeout, 20.0),
    ("a DTD or an entity declaration", "(up to 3 levels", socohttp.NESTING, 3),
    ("a DTD or an entity declaration", "(up to 3 levels", xmlguard.NESTING, 3),
    (
        "threads a slow speaker can hold",
        "(at most 32 with the one running)",
        controller.MAX_PENDING,
        32,
    ),
    (
        "the device description and the identification reads",
        "256 KiB",
        probe.MAX_ANSWER,
        256 * 1024,
    ),
    (
        "an answer's tags",
        "100,000 tags (`<`)",
        xmlguard.MAX_ANSWER_TAGS,
        100_000,
    ),
    (
        "an answer's head (status line and headers)",
        "64 KiB for every client of the daemon's own",
        httpclient.MAX_HEAD,
        64 * 1024,
    ),
    (
        "an answer's head (status line and headers)",
        "SoCo's `http.client`: 100 header lines",
        http.client._MAXHEADERS,  # type: ignore[attr-defined]
        100,
    ),
    (
        "the device description and the identification reads",
        "256 KiB and 10,000 tags",
        probe.MAX_DESCRIPTION_TAGS,
        10_000,
    ),
    (
        "the device description and the identification reads",
        "within `subscription.request_timeout` (10 s)",
        config.SubscriptionConfig().request_timeout,
        10.0,
    ),
    ("album art (`/api/v1/art`)", "within 10 s (`FETCH_TIMEOUT`)", art.FETCH_TIMEOUT, 10.0),
    # GENA subscriptions.
    ("a GENA answer's head", "64 KiB (`gena.httpclient.MAX_HEAD`", httpclient.MAX_HEAD, 65_536),
    (
        "a GENA answer's body",
        "64 KiB (`gena.core.MAX_RESPONSE_BODY`)",
        core.MAX_RESPONSE_BODY,
        65_536,
    ),
    (
        "a whole GENA exchange",
        "`subscription.request_timeout` (10 s)",
        config.SubscriptionConfig().request_timeout,
        10.0,
    ),
    (
        "a whole GENA exchange",
        "`subscription.shutdown_timeout` (5 s)",
        config.SubscriptionConfig().shutdown_timeout,
        5.0,
    ),
    (
        "the `SID` granted",
        "then 1 to 250 printable ASCII characters",
        [bool(core._SID.fullmatch("uuid:" + "x" * n)) for n in (0, 1, 250, 251)],
        [False, True, True, False],
    ),
    (
        "the `SID` granted",
        "`uuid:RINCON_<uid>_sub<10 digits>`",
        bool(core._SID.fullmatch("uuid:RINCON_000E58A0123401400_sub0000000123")),
        True,
    ),
    (
        "the `SID` granted",
        "'<its first 40 characters>'",
        core._SHOWN,
        40,
    ),
    (
        "the `TIMEOUT` granted",
        "`Second-N` with N from 1 and at most 18 digits",
        [core.parse_timeout("Second-1"), core.parse_timeout("Second-" + "9" * 18)],
        [1, 10**18 - 1],
    ),
    (
        "the `TIMEOUT` granted",
        "longer than `subscription.timeout` (1800 s)",
        config.SubscriptionConfig().timeout,
        1800,
    ),
    ("the `TIMEOUT` granted", "never sooner than 1 s after", backoff.MIN_RENEW_DELAY, 1.0),
    # The summary (numbers the tables do not give).
    (None, "| 10 s an attempt, the body included |", _default(config.Webhook, "timeout"), 10.0),
    # MQTT.
    ("a command payload", "64 KiB and 32 levels", clientjson.MAX_BYTES, 65_536),
    ("a command payload", "64 KiB and 32 levels", clientjson.MAX_DEPTH, 32),
    (
        "the size of a packet the broker delivers",
        "MQTT 3.1.1 lets a client declare no maximum",
        "protocol=paho.MQTTv311" in inspect.getsource(mqtt),
        True,
    ),
    (
        "the size of a packet the broker delivers",
        "(e.g. `65536`)",
        clientjson.MAX_BYTES,
        65_536,
    ),
    (
        "messages waiting for a broker that stops reading or acknowledging",
        "| 10,000",
        mqtt.MAX_UNSENT,
        10_000,
    ),
    (
        "a speaker's room name, as its topic level",
        "1,024 bytes once made topic-safe",
        [mqtt_topics.MAX_ROOM_KEY, mqtt_topics.room_key("x" * 1025)],
        [1024, ""],
    ),
    (
        "retained topics to clear once the broker is back (speakers removed, rooms renamed, "
        "while it was away)",
        "| 10,000",
        _default(mqtt.MqttSink, "max_unsent"),
        10_000,
    ),
    # The text around the tables.
    (None, "read up to 8 KiB (`MAX_DATAGRAM`", discovery.MAX_DATAGRAM, 8 * 1024),
    (
        None,
        "4,300-digit limit are ignored",
        [sys.get_int_max_str_digits(), discovery._int("1" * 4301)],
        [4300, None],
    ),
    (None, "At most 1 MiB and 100,000 values", config.MAX_FILE, 1024 * 1024),
    (None, "At most 1 MiB and 100,000 values", config._MAX_NODES, 100_000),
    (None, "once per source and reason per minute", peerlog.DEFAULT_INTERVAL, 60.0),
    (None, "At most 256 sources and reasons", peerlog.MAX_KEYS, 256),
    (None, "is cut at 2,000 characters (`logs.MAX_RECORD`)", logs.MAX_RECORD, 2000),
    (None, "repeats at most 200 characters", controller.SHOWN, 200),
    (
        None,
        "`subscription.check_interval` (300 s)",
        config.SubscriptionConfig().check_interval,
        300.0,
    ),
    (None, "a difference still there 2 s later", supervisor.CONFIRM_DELAY, 2.0),
    (_SHAPE_ROW, "more than 32 attributes on an element", _shape.MAX_ATTRS, 32),
    (_SHAPE_ROW, "32 namespace declarations in scope", _shape.MAX_NS, 32),
    (_SHAPE_ROW, "bytes that are not UTF-8", _shape.tree3(b"<a>\xff</a>"), None),
]


@pytest.mark.parametrize(("row", "phrase", "value", "expected"), CHECKS)
def test_the_page_states_the_bound_the_code_enforces(
    row: str | None, phrase: str, value: object, expected: object
) -> None:
    """The page says it (in that row of its tables), and the code enforces that value."""
    assert phrase in (TEXT if row is None else ROWS[row])
    assert value == expected


def test_every_number_in_the_tables_is_checked() -> None:
    """Each number in a table's bound column is part of a phrase checked above, and each
    checked row is still in the page."""
    checked: dict[str, list[str]] = {}
    for row, phrase, _, _ in CHECKS:
        if row is not None:
            checked.setdefault(row, []).append(phrase)
    assert set(checked) <= set(ROWS), set(checked) - set(ROWS)
    unchecked = []
    for name, line in ROWS.items():
        bound = line.strip().strip("|").split("|")[1]
        stated = {n for phrase in checked.get(name, []) for n in re.findall(NUMBER, phrase)}
        unchecked += [(name, n) for n in re.findall(NUMBER, bound) if n not in stated]
    assert unchecked == []


def test_the_readme_links_the_page() -> None:
    """README's documentation list links security.md and soak.md."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/security.md)" in readme and "(docs/soak.md)" in readme


def summary_rows() -> list[list[str]]:
    """The cells of the summary table's rows (peer, what, size, depth, time, beyond, tests)."""
    rows = []
    for line in SUMMARY.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 7 and cells[0] not in ("peer", "---"):
            rows.append(cells)
    return rows


def test_every_peer_in_the_summary_has_tests_that_exist() -> None:
    """Each row of the summary names tests (``tests/x.py::test_name``), and each exists."""
    rows = summary_rows()
    assert len(rows) >= 13
    for cells in rows:
        named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", cells[6])
        assert named, cells[0]
        for path, name in named:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"def {name}\(", source), (path, name)


def test_every_number_in_the_summary_is_a_checked_bound() -> None:
    """Each number of the summary's size, depth and time columns is one a checked phrase
    above states (the code enforcing it is checked there)."""
    checked = {n for _, phrase, _, _ in CHECKS for n in re.findall(NUMBER, phrase)}
    unchecked = [
        (cells[0], n)
        for cells in summary_rows()
        for cell in cells[2:5]
        for n in re.findall(NUMBER, cell)
        if n not in checked
    ]
    assert unchecked == []
