"""docs/supervisor.md gives every timer of the supervisor and its default: each default and
constant it writes is checked here against the code that holds it (the behaviour behind each
is tested where it lives: tests/household/), so that a changed default or constant cannot
leave the page saying the old one."""

from __future__ import annotations

import inspect
import re

import attrs
import pytest

from sonosd import backoff
from sonosd.config import SsdpConfig, SubscriptionConfig
from sonosd.household import discovery, events, position, resync, supervisor
from sonosd.household.keepalive import SupervisorContext
from tests.paths import ROOT
from tests.test_security_doc import table_rows

TEXT = (ROOT / "docs" / "supervisor.md").read_text(encoding="utf-8")
TIMERS = TEXT[TEXT.index("## Timers and their settings") : TEXT.index("Activity is anything")]


def timer_rows() -> dict[str, list[str]]:
    """The timers table's rows, by their first cell: each row's cells."""
    return {
        name: [cell.strip() for cell in line.strip().strip("|").split("|")]
        for name, line in table_rows(TIMERS).items()
    }


ROWS = timer_rows()

#: ``key`` (N...) in the table's last column: the setting and the default written.
KEY_DEFAULT = re.compile(r"`(\w+)` \((\d+(?:\.\d+)?)")


def written_defaults() -> dict[str, float]:
    """``{key: default}`` as the timers table writes them."""
    return {
        key: float(value) for cells in ROWS.values() for key, value in KEY_DEFAULT.findall(cells[2])
    }


def test_every_subscription_setting_is_in_the_timers_table() -> None:
    """The page describes every timer and the setting that controls it: each key of
    ``subscription:`` has its default in the table, and the table names no other key."""
    assert set(written_defaults()) == {field.name for field in attrs.fields(SubscriptionConfig)}


@pytest.mark.parametrize("key", sorted(written_defaults()))
def test_each_default_written_is_the_codes(key: str) -> None:
    """A default in the timers table is SubscriptionConfig's."""
    assert written_defaults()[key] == getattr(SubscriptionConfig(), key)


def test_state_read_timeout() -> None:
    """Resync and poll reads are bounded by the 30 s the table gives."""
    assert ROWS["state read timeout"][2] == "30 s"
    [field] = [f for f in attrs.fields(SupervisorContext) if f.name == "read_timeout"]
    assert field.default == 30.0


def test_renewal_spread_and_bounds() -> None:
    """The first renewal between 25 % and 100 % of the target, the later ones up to 10 %
    before it, never sooner than 1 s (MIN_RENEW_DELAY), as the renewal row and the
    section on spreading renewals say."""
    row = ROWS["renewal"][1]
    assert "between 25 % and 100 % of the target" in row
    assert 1.0 - backoff.FIRST_RENEW_SPREAD == 0.25
    assert "minus up to 10 % jitter" in row and backoff.RENEW_JITTER == 0.1
    assert "at least 1 s" in row and backoff.MIN_RENEW_DELAY == 1.0
    assert "`MIN_RENEW_DELAY` (1 s)" in TEXT


def test_constants_the_page_names() -> None:
    """The request slots (64), the consistency check's confirmation (2 s), the reboot merge
    window (60 s), the position reads' spacing (2 s) and SSDP's search (every 300 s, two
    copies per socket) are the code's."""
    assert "`GENA_CONCURRENCY` (64)" in TEXT and "64 request slots" in ROWS["request timeout"][1]
    assert supervisor.GENA_CONCURRENCY == 64
    assert "(`CONFIRM_DELAY`" in TEXT and "confirmed 2 s later" in ROWS["consistency check"][1]
    assert supervisor.CONFIRM_DELAY == 2.0
    assert "within 60 s after" in ROWS["reboot merge window"][1]
    assert supervisor.REBOOT_MERGE_WINDOW == 60.0
    assert "`MIN_SPACING` (2 s)" in TEXT and position.MIN_SPACING == 2.0
    assert "every `interval` (300 s), two copies\nper socket" in TEXT
    assert SsdpConfig().interval == 300.0
    repeats = inspect.signature(discovery.SsdpDiscovery).parameters["repeats"]
    assert repeats.default == 2


def test_every_test_the_page_names_exists() -> None:
    """Each test file, class and test the page points to as the proof of a behaviour is
    there (a renamed test leaves no pointer to nothing)."""
    sources = "\n".join(path.read_text() for path in (ROOT / "tests").rglob("test_*.py"))
    named = re.findall(r"(tests/[\w/]+\.py)((?:::\w+)*)", TEXT)
    assert len(named) >= 7
    for path, parts in named:
        text = (ROOT / path).read_text()
        for part in parts.split("::")[1:]:
            assert re.search(rf"(class|def) {part}\b", text), (path, part)
    bare = re.findall(r"`(\w+Tests|test_\w+)`", TEXT)
    assert len(bare) >= 4
    for name in bare:
        assert re.search(rf"(class|def) {name}\b", sources), name


def test_topology_settle_timeout() -> None:
    """A speaker that stays behind holds the household's topology back for
    ``SETTLE_TIMEOUT`` (10 s) at most, which is also how often a household whose speakers
    disagree for good changes its topology at most: the page's 10 s is the code's."""
    assert "`SETTLE_TIMEOUT` (10 s)" in TEXT
    assert "most speakers still behind after 10 s" in TEXT
    assert "changing its topology at most once every 10 s" in TEXT
    assert events.SETTLE_TIMEOUT == 10.0
    default = inspect.signature(events.EventProcessor).parameters["settle_timeout"].default
    assert default == events.SETTLE_TIMEOUT


def test_consistency_check_reads() -> None:
    """The consistency check makes at most five calls per speaker and interval, the ones the
    page names: GetVolume and GetMute, GetTransportInfo, GetPositionInfo and
    GetTransportSettings."""
    assert "at most five calls per speaker and interval" in TEXT
    actions = [read.action for reads in resync.CHECKS.values() for read in reads]
    assert actions == [
        "GetVolume",
        "GetMute",
        "GetTransportInfo",
        "GetPositionInfo",
        "GetTransportSettings",
    ]
    for action in actions:
        assert f"`{action}`" in TEXT
