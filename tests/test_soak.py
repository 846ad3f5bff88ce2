"""The chaos soak, 30 seconds of it, on every change (``make soak`` runs 15 minutes).

``benchmarks.soak`` runs a real ``twistd sonosd`` against a real ``twistd sonos-sim`` with
activity, a webhook target, an MQTT broker and the stream, injects a random fault every few
seconds and checks what issue 18 requires (contiguous ids everywhere, every loss reported,
the final state equal to the speakers', flat memory and open files). Its report goes to a
temporary file here: only ``make soak`` rewrites ``docs/soak.md``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import Logger

from benchmarks.soak import (
    PREFIX,
    SPEAKERS,
    FaultRecord,
    MqttObserver,
    Sample,
    Soak,
    Tracker,
    free_port,
    parse_args,
)
from sonosd.logs import make_observer
from tests.paths import ROOT


@pytest.mark.long
def test_soak_30_seconds(tmp_path: Path) -> None:
    """A 30-second soak with a fault every 2.5 seconds passes every check.

    Half of the 60 seconds with a fault every 5 s this ran before, at the same rate of
    faults: the checks are the same (ids, losses reported, final state, memory and files
    after the warm-up, the log), and faults come back to back either way (most last seconds,
    and the next one starts at least 1 s after the last ended), so the run sees the first
    of the same seeded faults. It is no leak hunt: ``make soak`` runs 15 minutes for that,
    and the tests below show that each check fails when its promise breaks."""
    report = tmp_path / "soak.md"
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.soak",
            "--duration",
            "30",
            "--fault-interval",
            "2.5",
            "--report",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = report.read_text() if report.exists() else process.stdout
    assert process.returncode == 0, text + process.stderr[-3000:]
    assert "**Result: passed.**" in text
    assert "| at (s) | fault |" in text


# -- what makes the soak fail -----------------------------------------------------------------
#
# docs/soak.md promises that the soak fails on any id an observer never received and was never
# told about, on a speaker's loss that no message reported, on memory or open files growing
# after the warm-up, and on a critical log line. The 30-second run above shows that a healthy
# daemon passes; the tests below show that each of those checks fails when its promise breaks.


@pytest.fixture(scope="module")
def mqtt_observer() -> Iterator[MqttObserver]:
    """The soak's MQTT subscriber, connecting to a port nothing listens on (the tests hand it
    its messages); one for the module, as its client thread takes a second to stop."""
    observer = MqttObserver("127.0.0.1", free_port())
    yield observer
    observer.stop()


@pytest.fixture
def soak(tmp_path: Path, mqtt_observer: MqttObserver) -> Iterator[Soak]:
    """A soak whose run went well: every observer saw ids 1 to 100, memory and open files
    stayed flat, the log is clean; each test then breaks one thing."""
    run = Soak(MemoryReactorClock(), parse_args([]))
    run.uids = [f"RINCON_{n:012d}01400" for n in range(SPEAKERS)]
    run.final_id = 100
    run.daemon_log = str(tmp_path / "daemon.log")
    with open(run.daemon_log, "w") as handle:
        log = Logger(namespace="sonosd.service", observer=make_observer("text", "info", handle))
        log.info("sonosd running")
    for name in ("ws-stable", "sse-stable"):
        run.trackers[name] = Tracker(name)
    run.stream_trackers.append(Tracker("stream-1"))
    for tracker in [*run.trackers.values(), *run.stream_trackers]:
        tracker.snapshot({"last_id": 0, "speakers": []}, reset=False)
        for ident in range(1, 101):
            tracker.message({"id": ident, "type": "event"})
    run.mqtt = mqtt_observer
    with mqtt_observer.lock:
        mqtt_observer.ids.clear()
        mqtt_observer.gap_ranges.clear()
    for ident in range(1, 101):
        mqtt_message(run.mqtt, f"{PREFIX}/kitchen/event/event", {"id": ident})
    run.webhook.ids.update(range(1, 101))
    run.warm_at = 60.0
    run.samples = [Sample(60.0 + 2 * n, 80.0, 18) for n in range(40)]
    run.final_sample = Sample(140.0, 80.0, 18)
    yield run
    shutil.rmtree(run.directory, ignore_errors=True)


def mqtt_message(observer: MqttObserver, topic: str, body: dict[str, Any]) -> None:
    """Hand ``observer`` a message as paho would."""
    message = paho.MQTTMessage(topic=topic.encode())
    message.payload = json.dumps(body).encode()
    observer._on_message(None, None, message)


def test_a_healthy_run_passes(soak: Soak) -> None:
    """Contiguous ids everywhere, flat memory and a clean log: no failure, a passed report."""
    soak.verify()
    assert soak.failures == []
    assert "**Result: passed.**" in soak.report()


def test_an_id_never_received_fails_the_soak(soak: Soak) -> None:
    """An id the stable WebSocket client skipped is a gap: the soak fails and names it."""
    tracker = Tracker("ws-stable")
    for ident in (*range(1, 50), *range(51, 101)):
        tracker.message({"id": ident, "type": "event"})
    soak.trackers["ws-stable"] = tracker
    soak.verify()
    assert soak.failures == ["ws-stable: ids missing [(50, 51)]"]
    report = soak.report()
    assert "**Result: FAILED.**" in report
    assert "- ws-stable: ids missing [(50, 51)]" in report


def test_an_observer_that_stopped_receiving_fails_the_soak(soak: Soak) -> None:
    """A stable observer whose ids stop before the last message (its connection died and
    never came back) has no gap, and still fails the soak."""
    tracker = Tracker("sse-stable")
    tracker.snapshot({"last_id": 0, "speakers": []}, reset=False)
    for ident in range(1, 91):
        tracker.message({"id": ident, "type": "event"})
    soak.trackers["sse-stable"] = tracker
    soak.verify()
    assert soak.failures == ["sse-stable: received up to id 90, the last is 100"]


def test_duplicates_and_told_resets_are_not_gaps(soak: Soak) -> None:
    """Ids received twice (a retry) and ids skipped after a ``reset`` and its snapshot (a
    loss told in-band) are counted, not failed."""
    tracker = soak.trackers["sse-stable"]
    tracker.message({"id": 100, "type": "event"})
    tracker.resets += 1
    tracker.snapshot({"last_id": 150, "speakers": []}, reset=True)
    tracker.message({"id": 151, "type": "event"})
    soak.verify()
    assert soak.failures == []
    assert (tracker.duplicates, tracker.resets, tracker.gaps) == (1, 1, [])


def test_mqtt_may_miss_only_the_ids_bridge_gap_reported(soak: Soak) -> None:
    """Ids the MQTT subscriber never got pass when ``bridge/gap`` reported them and fail
    when it did not."""
    assert soak.mqtt is not None
    soak.mqtt.ids -= set(range(40, 51))
    soak.verify()
    assert soak.failures == [f"mqtt: ids missing and not reported: {list(range(40, 50))}"]
    soak.failures.clear()
    mqtt_message(soak.mqtt, f"{PREFIX}/bridge/gap", {"missed": 11, "first_id": 40, "last_id": 50})
    soak.verify()
    assert soak.failures == []


def test_an_id_the_webhook_never_got_fails_the_soak(soak: Soak) -> None:
    """An id missing at the webhook receiver fails the soak (retries may repeat, not skip)."""
    soak.webhook.ids.discard(77)
    soak.verify()
    assert soak.failures == ["webhook: ids missing [77]"]


def test_a_speaker_loss_nobody_reported_fails_the_soak(soak: Soak) -> None:
    """A dropped NOTIFY, an outage or a reboot of a speaker must be followed by an
    ``events.gap`` or ``subscription.lost`` of that speaker; one of another speaker, or from
    before the fault, does not count."""
    soak.started = 1000.0
    for kind in ("drop", "outage-hang", "reboot"):
        soak.faults.append(FaultRecord(30.0, kind, "speaker 2", ""))
    soak.faults.append(FaultRecord(30.0, "duplicate", "speaker 3", ""))
    losses = soak.trackers["ws-stable"].losses
    losses += [(1010.0, soak.uids[2]), (1031.0, soak.uids[1])]
    soak.verify()
    assert len(soak.failures) == 3
    assert all("on speaker 2: no events.gap or subscription.lost" in f for f in soak.failures)
    assert [r.lost_reported for r in soak.faults] == [False, False, False, None]
    soak.failures.clear()
    losses.append((1031.0, soak.uids[2]))
    soak.verify()
    assert soak.failures == []
    assert [r.lost_reported for r in soak.faults] == [True, True, True, None]


def test_memory_or_open_files_growing_after_the_warm_up_fail_the_soak(soak: Soak) -> None:
    """Resident memory may grow by 8 MB or 15 % after the warm-up, open files by 8; more
    fails the soak."""
    soak.samples = [Sample(60.0 + 2 * n, 80.0 + n * 0.2, 18) for n in range(40)]
    soak.verify()
    assert soak.failures == []
    soak.samples = [Sample(60.0 + 2 * n, 80.0 + n * 0.5, 18) for n in range(40)]
    soak.verify()
    assert len(soak.failures) == 1
    assert soak.failures[0].startswith("resident memory grew from 82.5 MB to 97.5 MB")
    soak.failures.clear()
    soak.samples = [Sample(60.0 + 2 * n, 80.0, 18) for n in range(40)]
    soak.final_sample = Sample(140.0, 80.0, 27)
    soak.verify()
    assert soak.failures == ["open files grew from 18 to 27"]


def test_a_critical_line_in_the_daemons_log_fails_the_soak(soak: Soak) -> None:
    """A critical line, as the daemon's own log observer writes it (an unhandled error in a
    Deferred is one), fails the soak; lines that only mention the word do not."""
    with open(soak.daemon_log, "a") as handle:
        log = Logger(namespace="sonosd.household", observer=make_observer("text", "info", handle))
        log.info("a room named critical [sic]")
        log.critical("Unhandled error in Deferred")
    soak.verify()
    assert soak.failures == ["1 critical log lines (unhandled errors)"]
    assert "- Critical log lines: 1." in soak.report()


def sim_speaker(name: str, uid: str, volume: int) -> dict[str, Any]:
    """A speaker as the simulator's admin API lists it."""
    return {
        "uid": uid,
        "name": name,
        "volume": volume,
        "mute": False,
        "transport": "PLAYING",
        "play_mode": "NORMAL",
        "track": 3,
        "uri": "x-rincon-queue:RINCON_1#0",
    }


def daemon_speaker(uid: str, volume: int) -> dict[str, Any]:
    """A speaker as the daemon's snapshot gives it."""
    return {
        "uid": uid,
        "availability": {"status": "online"},
        "services": {
            "RenderingControl": {
                "variables": {"volume": {"Master": volume}, "mute": {"Master": False}}
            },
            "AVTransport": {
                "variables": {
                    "transport_state": "PLAYING",
                    "current_play_mode": "NORMAL",
                    "current_track": 3,
                    "av_transport_uri": "x-rincon-queue:RINCON_1#0",
                }
            },
        },
    }


def test_the_final_state_differs_for_a_changed_value_or_a_speaker_not_followed(
    soak: Soak,
) -> None:
    """The final comparison names a value where the daemon and the speaker differ, and a
    speaker the daemon does not follow at all."""
    speakers = [sim_speaker("Kitchen", "RINCON_K", 20), sim_speaker("Office", "RINCON_O", 30)]
    snapshot = {"speakers": [daemon_speaker("RINCON_K", 20), daemon_speaker("RINCON_O", 30)]}

    async def admin(method: str, path: str, body: Any = None) -> Any:
        return speakers

    async def api(path: str) -> Any:
        return snapshot

    soak.admin = admin  # type: ignore[method-assign]
    soak.api = api  # type: ignore[method-assign]

    def compare() -> list[str]:
        d = Deferred.fromCoroutine(soak.compare())
        results: list[list[str]] = []
        d.addCallback(results.append)
        return results[0]

    assert compare() == []
    speakers[0]["volume"] = 25
    assert compare() == ["Kitchen volume: daemon 20, speaker 25"]
    speakers[0]["volume"] = 20
    snapshot["speakers"] = snapshot["speakers"][:1]
    assert compare() == ["Office: not in the daemon's snapshot"]


def test_a_log_that_is_not_the_daemons_fails_the_soak(soak: Soak) -> None:
    """Without the daemon's log (no "sonosd running" line in the file read), no critical line
    could be counted: the soak fails rather than report none."""
    Path(soak.daemon_log).unlink()
    soak.verify()
    assert soak.failures == [f"no 'sonosd running' line in {soak.daemon_log}"]


def test_make_soak_runs_15_minutes_and_rewrites_docs_soak_md() -> None:
    """``make soak`` runs the soak of docs/soak.md's first line (900 s, a fault every 20 s)
    and writes its report there."""
    # Not as a sub-make of ``make test``: its flags would change what is printed.
    outer = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    env = {name: value for name, value in os.environ.items() if name not in outer}
    process = subprocess.run(
        ["make", "--no-print-directory", "-n", "soak"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert process.returncode == 0, process.stderr
    lines = process.stdout.replace("\\\n", " ").splitlines()
    [command] = [" ".join(line.split()) for line in lines if "-m benchmarks.soak" in line]
    assert command.endswith(
        "-m benchmarks.soak --duration 900 --fault-interval 20 --report docs/soak.md"
    )
    args = parse_args(command.split("-m benchmarks.soak", 1)[1].split())
    first = (ROOT / "docs" / "soak.md").read_text().splitlines()[2]
    assert first.startswith(
        f"`python -m benchmarks.soak --duration {args.duration:g} "
        f"--fault-interval {args.fault_interval:g}` (`make soak`; seed {args.seed})"
    )


def test_the_log_is_read_across_the_files_twistd_rotated_it_into(soak: Soak) -> None:
    """twistd starts a new log file every MB: a long soak's "sonosd running" line and
    critical lines are in ``daemon.log.N``, and still count."""
    path = Path(soak.daemon_log)
    path.rename(path.with_name("daemon.log.2"))
    with open(path.with_name("daemon.log.1"), "w") as handle:
        log = Logger(namespace="sonosd.household", observer=make_observer("text", "info", handle))
        log.critical("Unhandled error in Deferred")
    path.write_text("")
    path.with_name("daemon.log.old").write_text("2026-12-07T00:00:00Z critical [x] not ours\n")
    soak.verify()
    assert soak.failures == ["1 critical log lines (unhandled errors)"]


def test_the_broker_keeps_the_observers_session_across_a_restart(soak: Soak) -> None:
    """The soak's broker keeps its database where it can write it, so a QoS 1 message
    published after a restart, before the observer is back (the daemon's ``bridge/gap``),
    still reaches the observer (mosquitto runs as its own user when started as root: it
    could not reach the soak's 0700 directory, and every restart lost the session)."""
    broker = soak.broker
    broker.start()
    observer: MqttObserver | None = None
    try:
        wait_until(broker.listening)
        observer = MqttObserver(broker.host, broker.port)
        wait_until(lambda: observer is not None and observer.client.is_connected())
        observer.client.loop_stop()  # mosquitto saves the session as it stops
        broker.stop()
        broker.start()
        wait_until(broker.listening)
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="soak-test")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        gap = {"missed": 2, "first_id": 7, "last_id": 8}
        publisher.publish(f"{PREFIX}/bridge/gap", json.dumps(gap), qos=1).wait_for_publish(10)
        publisher.loop_stop()
        publisher.disconnect()
        observer.client.reconnect()
        observer.client.loop_start()
        wait_until(lambda: observer is not None and observer.gap_ranges == [(7, 8)])
        assert broker.persisting()
    finally:
        if observer is not None:
            observer.stop()
        broker.stop()


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Poll ``condition`` until it holds (or fail after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.05)
