"""Smoke runs of the benchmark suite: every benchmark runs with tiny sizes and yields figures.

No timing is asserted (the figures of a smoke run mean nothing); this only keeps the harness
from rotting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import payloads, run
from sonosd.eventxml import parse_event_xml


def test_bodies_vary_and_parse() -> None:
    """Every kind of body differs from one call to the next and parses to the same kind."""
    maker = payloads.BodyMaker()
    for kind in payloads.KINDS:
        first, second = maker.body(kind), maker.body(kind)
        assert first != second
        assert parse_event_xml(first).keys() == parse_event_xml(second).keys()


@pytest.mark.parametrize("name", sorted(run.BENCHMARKS))
def test_smoke(name: str, tmp_path: Path) -> None:
    """Each benchmark runs at smoke size and the report shows its figures."""
    results = run.run([name], smoke=True)
    assert results[name]["seconds"] >= 0
    text = run.report(results, run.machine(), smoke=True)
    out = tmp_path / "benchmarks.md"
    out.write_text(text)
    assert "## Results" in text
    assert len(run.table(results)) > 3
