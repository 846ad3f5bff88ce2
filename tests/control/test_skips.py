"""Tests for control.skips: the file of pending alarm skips (round trip, bounds, failures)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from twisted.logger import capturedLogs

from sonosd.control.skips import FILE_NAME, MAX_BYTES, MAX_SKIPS, Skip, SkipFile, parse_skips

SKIP = Skip(
    "Sonos_1",
    2,
    "RINCON_A",
    dt.datetime(2026, 11, 24, 7, 0),
    dt.datetime(2026, 11, 24, 7, 1),
)


def test_round_trip(tmp_path: Path) -> None:
    """Skips written are read back equal; writing none removes the file."""
    skips = SkipFile(str(tmp_path))
    other = Skip(None, 7, "RINCON_B", SKIP.skipped, SKIP.resumes)
    assert skips.save([SKIP, other])
    assert skips.load() == [SKIP, other]
    assert not (tmp_path / f"{FILE_NAME}.tmp").exists()
    assert skips.save([])
    assert not (tmp_path / FILE_NAME).exists()
    assert skips.save([]) and skips.load() == []


def test_without_a_state_dir_nothing_is_kept() -> None:
    """Without a state directory nothing is written or read."""
    skips = SkipFile(None)
    assert skips.path is None
    assert not skips.save([SKIP])
    assert skips.load() == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"[]", 'expected {"skips": [...]}'),
        (b'{"skips": [1]}', "skips[0]: expected an object"),
        (b'{"skips": [{"household": 1}]}', "skips[0]: household"),
        (b'{"skips": [{"alarm": true, "speaker": "R"}]}', "skips[0]: alarm"),
        (b'{"skips": [{"alarm": 1}]}', "skips[0]: speaker"),
        (b'{"skips": [{"alarm": 1, "speaker": "R", "skipped": 5}]}', "skips[0]: skipped"),
        (
            b'{"skips": [{"alarm": 1, "speaker": "R", "skipped": "x", "resumes": "y"}]}',
            "Invalid isoformat",
        ),
        (b" " * (MAX_BYTES + 1), f"over {MAX_BYTES} bytes"),
        (json.dumps({"skips": [{}] * (MAX_SKIPS + 1)}).encode(), f"over {MAX_SKIPS} skips"),
    ],
)
def test_bad_content_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    """What is wrong with a file is named (and nothing of it used)."""
    with pytest.raises(ValueError) as raised:
        parse_skips(data)
    assert reason in str(raised.value)


def test_a_bad_file_is_logged_and_ignored(tmp_path: Path) -> None:
    """A file that cannot be parsed gives no skips and one warning naming it."""
    (tmp_path / FILE_NAME).write_bytes(b'{"skips": 3}')
    with capturedLogs() as events:
        assert SkipFile(str(tmp_path)).load() == []
    assert [e["log_level"].name for e in events] == ["warn"]
    assert events[0]["path"] == str(tmp_path / FILE_NAME)


def test_an_unreadable_file_is_logged(tmp_path: Path) -> None:
    """A path that cannot be read (here a directory) gives no skips and a warning."""
    os.mkdir(tmp_path / FILE_NAME)
    with capturedLogs() as events:
        assert SkipFile(str(tmp_path)).load() == []
    assert len(events) == 1 and "cannot read" in events[0]["log_format"]


def test_a_failed_write_is_said_once(tmp_path: Path) -> None:
    """A state directory that cannot be written makes save fail with one warning, however
    often it is tried; a later success resets it."""
    missing = SkipFile(str(tmp_path / "missing"))
    with capturedLogs() as events:
        assert not missing.save([SKIP])
        assert not missing.save([SKIP])
    assert len(events) == 1 and "a restart" in events[0]["log_format"]
    os.mkdir(tmp_path / "missing")
    assert missing.save([SKIP])
    assert missing.load() == [SKIP]
