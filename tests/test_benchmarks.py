"""Smoke runs of the benchmark suite: every benchmark runs with tiny sizes and yields figures.

No timing is asserted (the figures of a smoke run mean nothing); this only keeps the harness
from rotting.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import payloads, run, scale
from sonosd.config import load_config
from sonosd.gena.eventxml import parse_event_xml
from tests.conftest import free_loopback_base
from tests.paths import ROOT
from tests.stdlib_http import serving


def test_bodies_vary_and_parse() -> None:
    """Every kind of body differs from one call to the next and parses to the same kind."""
    maker = payloads.BodyMaker()
    for kind in payloads.KINDS:
        first, second = maker.body(kind), maker.body(kind)
        assert first != second
        assert parse_event_xml(first).keys() == parse_event_xml(second).keys()


@pytest.mark.parametrize("name", sorted(set(run.BENCHMARKS) - {"daemon"}))
def test_smoke(name: str, tmp_path: Path) -> None:
    """Each benchmark runs at smoke size and the report shows its figures."""
    results = run.run([name], smoke=True)
    assert results[name]["seconds"] >= 0
    text = run.report(results, run.machine(), smoke=True)
    out = tmp_path / "benchmarks.md"
    out.write_text(text)
    assert "## Results" in text
    assert len(run.table(results)) > 3


def test_daemon_smoke_counts_every_message() -> None:
    """Benchmark 7 at smoke size: a real twistd sonosd and sonos-sim; every NOTIFY answered is
    delivered to the SSE client as its event, SEQ contiguous per subscription, no id missing;
    RSS is sampled before, during and after the load; the report shows its rows."""
    results = run.run(["daemon"], smoke=True)
    r = results["daemon"]
    sizes = run.SMOKE["daemon"]
    assert r["events"] == r["sent"] == sizes["count"]
    assert r["delivered"] == r["events"]
    assert r["sources"]["notify"] == r["events"]
    assert r["seq_gaps"] == 0 and r["missing_ids"] == 0 and r["id_gaps"] == 0
    assert r["sse_subscriptions"] == r["subscriptions"] == 2 * sizes["speakers"]
    assert r["initial_events_missing"] == 0 and r["gap_reasons"] == {}
    assert r["all_delivered"]
    assert r["daemon_running"]
    for key in ("rss_subscribed_mb", "rss_load_max_mb", "rss_end_mb", "rss_after_mb"):
        assert r[key] > 10
    assert len(r["rss_every_5s"]) >= 2
    assert set(r["rates"]) == {"sonosd", "bare", "soco_twisted"}
    assert all(value > 0 for value in r["cpu_us_per_event"].values())
    assert r["daemon_log"].get("info", 0) >= r["events"]
    text = "\n".join(run.report(results, run.machine(), smoke=True).splitlines())
    assert "## 7. The real daemon under load" in text
    assert "| 7 | real daemon: CPU per event vs soco.events_twisted" in text


def test_daemon_load_waits_for_the_initial_events_at_the_daemon() -> None:
    """Benchmark 7 counts a subscription ready once the daemon's diagnostics show its SID
    notified up to the simulator's SEQ, not once the simulator had an answer (a 412 too)."""
    import http.server
    import json

    from benchmarks import daemon
    from benchmarks.common import FakeSubscription

    services = {
        "RenderingControl": {"sid": "uuid:a", "notified": True, "seq": 0},
        "AVTransport": {"sid": "uuid:b", "notified": False, "seq": None},
    }
    body = json.dumps({"speakers": [{"services": services}]}).encode()

    class Diagnostics(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/v1/diagnostics" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Diagnostics) as url:
        port = int(url.rsplit(":", 1)[1])
        subs = [FakeSubscription("uuid:a", "U", "h", "RenderingControl", 0)]
        assert daemon.missing_at_daemon(port, subs) == 0
        subs.append(FakeSubscription("uuid:b", "U", "h", "AVTransport", 0))
        assert daemon.missing_at_daemon(port, subs) == 1
        subs[0] = FakeSubscription("uuid:a", "U", "h", "RenderingControl", 3)
        assert daemon.missing_at_daemon(port, subs) == 2
    assert daemon.missing_at_daemon(port, subs) == 2


def test_daemon_rounds_compared_with_the_runs_around_them() -> None:
    """Each daemon round is compared with the mean of the contender runs before and after it;
    delivery is complete only with every answered NOTIFY delivered and no gap."""
    from benchmarks import daemon

    def run(rate: float, cpu: float, **extra: object) -> dict[str, object]:
        return {"rate": rate, "cpu_us": cpu, **extra}

    ours = {"ok": 10, "sent": 10, "delivered": 10, "types": {}, "sources": {"notify": 10}}
    runs = {
        "sonosd": [run(100.0, 300.0, **ours), run(100.0, 200.0, **ours)],
        "soco_twisted": [run(50.0, 500.0), run(100.0, 300.0), run(50.0, 500.0)],
    }
    final = {"gap_reasons": {}, "id_gaps": 0, "missing": 0, "seq_gaps": 0, "subscriptions": 2}
    final |= {"types": {"event": 20}, "last_id": 20}
    figures = daemon._figures(runs, final)
    assert figures["ratios"]["cpu sonosd/soco_twisted"] == pytest.approx((0.75 + 0.5) / 2)
    assert figures["ratios"]["rate sonosd/soco_twisted"] == pytest.approx(4 / 3)
    assert figures["all_delivered"] and figures["events"] == 20
    final["seq_gaps"] = 1
    assert not daemon._figures(runs, final)["all_delivered"]


def test_daemon_tally_counts_sources_and_seq_gaps() -> None:
    """The SSE client counts events by source, SEQ gaps per subscription and gap reasons."""
    from benchmarks.sseclient import Tally

    def block(ident: int, kind: str, body: str) -> bytes:
        return f"id: abc:{ident}\nevent: {kind}\ndata: {body}\n\n".encode()

    def event(uid: str, seq: int | None, source: str = "notify") -> str:
        return (
            f'{{"speaker": {{"uid": "{uid}"}}, "service": "AVTransport", '
            f'"seq": {"null" if seq is None else seq}, "source": "{source}"}}'
        )

    tally = Tally()
    tally.feed(block(1, "event", event("A", 5)) + block(2, "event", event("B", 9)))
    tally.feed(block(3, "event", event("A", 6)) + block(4, "event", event("A", None, "position")))
    tally.feed(block(6, "event", event("A", 8)) + block(7, "events.gap", '{"reason": "x"}'))
    result = tally.result()
    assert result["sources"] == {"notify": 4, "position": 1}
    assert result["seq_gaps"] == 1
    assert result["missing"] == 1
    assert result["gap_reasons"] == {"x": 1}
    assert result["subscriptions"] == 2


def test_grants_tell_renewals_from_repeated_answers() -> None:
    """A SID's grant moment comes from timeout - expires_in; a later grant is a renewal."""
    grants = scale.Grants(per_speaker=1)
    sub = {"sid": "uuid:a", "service": "Queue", "timeout": 60, "expires_in": 59.5}
    answer = {"subscriptions": [sub], "stats": {"sent": 1, "failed": 0}}
    grants.record(0, 1000.0, answer)
    grants.record(0, 1010.0, {**answer, "subscriptions": [{**sub, "expires_in": 49.5}]})
    grants.record(0, 1040.0, {**answer, "subscriptions": [{**sub, "expires_in": 48.0}]})
    assert grants.times["uuid:a"] == [999.5, 1028.0]
    assert grants.renewals() == [1028.0]
    assert grants.nth_renewals() == [[1028.0]]
    assert grants.service_of == {"uuid:a": "Queue"}
    assert grants.done(0) and not grants.short(0)


def test_spread_and_slope() -> None:
    """The spread of moments and the least-squares slope are computed as documented."""
    times = [10.0 + 0.1 * i for i in range(21)]
    result = scale.spread(times)
    assert result["count"] == 21
    assert result["width"] == pytest.approx(2.0)
    assert result["max_per_second"] == 10
    assert scale.slope([(t, 3 * t + 1) for t in range(5)]) == pytest.approx(3.0)
    assert scale.slope([(1.0, 2.0)]) == 0.0


def test_daemon_config_is_valid_and_takes_extras(tmp_path: Path) -> None:
    """The scale benchmark's configuration loads, with extra keys merged into sections."""
    text = scale.daemon_config(
        ["127.0.0.2", "127.0.0.3"], 8123, 60, 0.5, {"api": {"replay_buffer": 0}}
    )
    path = tmp_path / "sonosd.yaml"
    path.write_text(text)
    config = load_config(str(path))
    assert [device.host for device in config.devices] == ["127.0.0.2", "127.0.0.3"]
    assert config.api.replay_buffer == 0
    assert config.api.listen == "tcp:8123:interface=127.0.0.1"
    assert config.subscription.timeout == 60


def test_notify_failures_are_counted_by_service_and_reason(tmp_path: Path) -> None:
    """The simulator's failed-NOTIFY warnings are counted per service and reason."""
    log = tmp_path / "sim.log"
    log.write_text(
        "2026-11-24T18:00:24+0000 [sonosd.sim.gena#warn] RINCON_A: NOTIFY uuid:A_sub1 SEQ 0 "
        "to http://127.0.0.1:1/ failed: connection closed before a status line\n"
        "2026-11-24T18:00:24+0000 [sonosd.sim.gena#warn] RINCON_A: NOTIFY uuid:A_sub2 SEQ 3 "
        "to http://127.0.0.1:1/ answered 412\n"
        "2026-11-24T18:00:24+0000 [sonosd.sim.gena#info] RINCON_A: uuid:A_sub1 expired\n"
    )
    counts = scale.notify_failures(str(log), {"uuid:A_sub1": "ZoneGroupTopology"})
    assert counts == {
        "ZoneGroupTopology: connection closed before a status line": 1,
        "?: 412": 1,
    }


def test_cpu_decomposition_states_what_twice_soco_needs() -> None:
    """sonosd's CPU splits into its HTTP (``lean``) and its event work; 2x SoCo's rate is half
    SoCo's CPU per event."""
    text = " ".join(
        run._cpu_decomposition({"bare": 90.0, "lean": 45.0, "sonosd": 150.0, "soco_twisted": 240.0})
    )
    assert "45 µs + its event work 105 µs" in text
    assert "twisted.web (`bare`) 90 µs + SoCo's parse and `Event` 150 µs" in text
    assert "sonosd at 120 µs per event: event work of 75 µs at most" in text
    assert run._cpu_decomposition({"bare": 90.0, "sonosd": 150.0}) == []


def _ws_frame(opcode: int, payload: bytes, wide: bool = False) -> bytes:
    """An unmasked server frame (the 64-bit length form when ``wide``)."""
    if wide:
        return bytes([0x80 | opcode, 127]) + len(payload).to_bytes(8, "big") + payload
    if len(payload) < 126:
        return bytes([0x80 | opcode, len(payload)]) + payload
    return bytes([0x80 | opcode, 126]) + len(payload).to_bytes(2, "big") + payload


def test_raw_websocket_client_counts_events_across_reads() -> None:
    """The raw WebSocket client of the latency benchmarks counts each event frame once,
    whole or split across reads (16- and 64-bit lengths too), skips other messages, and puts
    its latency (receive time minus the send time in SEQ) in the histogram."""
    import time

    from twisted.internet.testing import StringTransport

    from benchmarks.wsclients import BUCKETS_PER_SECOND, RawClient, Tally

    t0 = time.monotonic() - 10.0  # SEQ 100,000 = sent at t0 + 1 s, 9 s before now
    tally = Tally(t0, 1)
    client = RawClient(tally, "h", "/")
    client.makeConnection(StringTransport())
    event = b'{"type":"event","seq":100000,"variables":{"x":"' + b"y" * 300 + b'"}}'
    stream = (
        b"HTTP/1.1 101 Switching Protocols\r\n\r\n"
        + _ws_frame(1, b'{"type":"snapshot","seq":5,"x":1}')
        + _ws_frame(1, event)
        + _ws_frame(1, b'{"type":"speaker","seq":7,"x":1}')
        + _ws_frame(1, event, wide=True)
        + _ws_frame(1, event)
    )
    for cut in range(0, len(stream), 7):
        client.dataReceived(stream[cut : cut + 7])
    result = tally.result()
    assert result["ready"] == 1 and result["events"] == 3
    assert result["per_client_min"] == result["per_client_max"] == 3
    assert sum(result["hist"].values()) == 3
    for bucket in result["hist"]:
        assert 9.0 <= int(bucket) / BUCKETS_PER_SECOND <= result["max"] < 60.0
    assert client.buffer == b""


def _scripted_ws_server(sock: Any, stream: bytes, pongs: list[bytes]) -> None:
    """Serve two WebSocket clients one after the other: the handshake, ``stream`` in pieces
    cut inside frames and headers (each its own read), a ping whose pong is kept, a close."""
    import time

    for _ in range(2):
        connection, _ = sock.accept()
        connection.settimeout(30)
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(4096)
            assert request.startswith(b"GET /api/v1/ws HTTP/1.1\r\n")
            assert b"Upgrade: websocket" in request
            whole = b"HTTP/1.1 101 Switching Protocols\r\n\r\n" + stream
            for start, end in ((0, 41), (41, 90), (90, 200), (200, 461), (461, len(whole))):
                connection.sendall(whole[start:end])
                time.sleep(0.03)
            connection.sendall(_ws_frame(9, b"hi"))
            pong = b""
            while len(pong) < 8:
                pong += connection.recv(64)
            mask = pong[2:6]
            pongs.append(pong[:2] + bytes(b ^ mask[i % 4] for i, b in enumerate(pong[6:8])))
            connection.sendall(_ws_frame(8, b""))


@pytest.mark.parametrize("impl", ["c", "raw"])
def test_websocket_clients_count_events_across_reads(impl: str) -> None:
    """The latency benchmarks' WebSocket clients, the C ones (``benchmarks/wsclients.c``) as
    the Python ones: each event frame counted once, whole or split across reads (16- and
    64-bit lengths too), other messages skipped, its latency (receive time minus the send
    time in SEQ) in the histogram, pings answered, closes counted; ready once every client
    has its snapshot, the result line once stdin closes."""
    import socket
    import threading
    import time

    from benchmarks.common import Child
    from benchmarks.wsclients import BUCKETS_PER_SECOND

    event = b'{"type":"event","seq":100000,"variables":{"x":"' + b"y" * 300 + b'"}}'
    stream = (
        _ws_frame(1, b'{"type":"snapshot","seq":5,"x":1}')
        + _ws_frame(1, event)
        + _ws_frame(1, b'{"type":"speaker","seq":7,"x":1}')
        + _ws_frame(1, event, wide=True)
        + _ws_frame(1, event)
    )
    t0 = time.monotonic() - 10.0  # SEQ 100,000 = sent at t0 + 1 s, 9 s before now
    pongs: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(30)  # a client that never connects ends the server, not the suite
        server = threading.Thread(
            target=_scripted_ws_server, args=(sock, stream, pongs), daemon=True
        )
        server.start()
        url = f"ws://127.0.0.1:{sock.getsockname()[1]}/api/v1/ws"
        child = Child(
            "benchmarks.wsclients",
            "--url",
            url,
            "--clients",
            "2",
            "--t0",
            repr(t0),
            "--impl",
            impl,
            "--max-duration",
            "60",
        )
        try:
            assert child.read() == {"ready": 2}
            server.join(30)
            time.sleep(0.2)  # the close frames and the ends of the connections arrive
            result = child.finish()
        finally:
            child.kill()
    assert pongs == [b"\x8a\x82hi", b"\x8a\x82hi"]
    assert (result["ready"], result["events"], result["closed"]) == (2, 6, 4)
    assert result["per_client_min"] == result["per_client_max"] == 3
    assert sum(result["hist"].values()) == 6
    for bucket in result["hist"]:
        assert 9.0 <= int(bucket) / BUCKETS_PER_SECOND <= result["max"] < 60.0
    assert result["first"] <= result["last"] and result["cpu"] > 0


def test_sim_scale_smoke() -> None:
    """benchmarks/sim_scale.py (docs/simulator.md's scale figures) runs at smoke size on its
    own loopback addresses and prints every figure; its ZoneGroupState lists each speaker."""
    script = str(ROOT / "benchmarks" / "sim_scale.py")
    base = free_loopback_base(count=3)
    done = subprocess.run(
        [sys.executable, script, "--speakers", "3", "--calls", "2", "--base-address", base],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = dict(line.split(": ") for line in done.stdout.splitlines())
    assert set(figures) == {
        *("build_ms", "listen_ms", "start_ms", "rss_growth_kib", "topology_change_ms"),
        *("zgs_bytes", "get_volume_ms"),
    }
    assert 3 * 400 < float(figures["zgs_bytes"]) < 3 * 2000


@pytest.mark.parametrize("mode", [[], ["--inline", "--avt-share", "1"]])
def test_sim_notify_rate_smoke(mode: list[str]) -> None:
    """benchmarks/sim_notify_rate.py (docs/simulator-gena.md, Performance) runs at smoke
    size, with the subscriber in a second process or inline and with only track changes,
    and prints its two lines; every NOTIFY it sent was answered 200."""
    script = str(ROOT / "benchmarks" / "sim_notify_rate.py")
    done = subprocess.run(
        [sys.executable, script, "--speakers", "3", "--duration", "0.2", "--warmup", "0.1", *mode],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    where = "inline" if mode else "separate process"
    head, rate = done.stdout.splitlines()
    assert head == f"speakers=3 subscriptions=6 subscriber={where}"
    pattern = (
        r"NOTIFY/s=[\d,]+ \(answered [\d,]+ in [\d.]+ s, failed 0\); changes/s=[\d,]+ "
        r"\(moderation 0 s\); simulator CPU \d+% of one core; max RSS \d+ MB"
    )
    assert re.fullmatch(pattern, rate), rate


def test_sim_body_cost_smoke() -> None:
    """benchmarks/sim_body_cost.py (docs/simulator-gena.md, Performance) runs at smoke size
    and prints its three figures."""
    script = str(ROOT / "benchmarks" / "sim_body_cost.py")
    done = subprocess.run(
        [sys.executable, script, "--count", "20", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    figures = dict(line.split(": ") for line in done.stdout.splitlines())
    assert set(figures) == {"volume_change_us", "track_change_us", "zone_group_state_us"}
    assert all(float(value) > 0 for value in figures.values())
