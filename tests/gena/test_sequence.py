"""Tests for sonosd.gena.sequence: SEQ classification (initial, next, duplicate, gap, wrap)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sonosd.gena.sequence import SEQ_MAX, SeqKind, SeqTracker, next_seq, skipped


def kinds(seqs: list[int]) -> list[SeqKind]:
    tracker = SeqTracker()
    return [tracker.observe(seq).kind for seq in seqs]


def test_in_order() -> None:
    """0, 1, 2 are the initial event and two next ones."""
    assert kinds([0, 1, 2]) == [SeqKind.INITIAL, SeqKind.NEXT, SeqKind.NEXT]


def test_duplicates_and_old() -> None:
    """A repeated SEQ, an older one and a second SEQ 0 are duplicates."""
    assert kinds([0, 1, 1, 0, 2, 1]) == [
        SeqKind.INITIAL,
        SeqKind.NEXT,
        SeqKind.DUPLICATE,
        SeqKind.DUPLICATE,
        SeqKind.NEXT,
        SeqKind.DUPLICATE,
    ]


def test_gap_counts_missed() -> None:
    """Jumping from 2 to 6 misses 3 events."""
    tracker = SeqTracker()
    for seq in (0, 1, 2):
        tracker.observe(seq)
    verdict = tracker.observe(6)
    assert (verdict.kind, verdict.expected, verdict.missed) == (SeqKind.GAP, 3, 3)


def test_first_event_not_initial() -> None:
    """A first SEQ above 0 is a gap: the initial full state was lost."""
    verdict = SeqTracker().observe(4)
    assert (verdict.kind, verdict.expected, verdict.missed) == (SeqKind.GAP, 0, 4)


def test_wrap() -> None:
    """After SEQ_MAX comes 1, not 0."""
    assert next_seq(SEQ_MAX) == 1
    tracker = SeqTracker(last=SEQ_MAX - 1)
    assert tracker.observe(SEQ_MAX).kind is SeqKind.NEXT
    assert tracker.observe(1).kind is SeqKind.NEXT
    tracker = SeqTracker(last=SEQ_MAX)
    verdict = tracker.observe(3)
    assert (verdict.kind, verdict.missed) == (SeqKind.GAP, 2)


def test_reset() -> None:
    """After reset the tracker expects SEQ 0 again."""
    tracker = SeqTracker(last=7)
    tracker.reset()
    assert tracker.observe(0).kind is SeqKind.INITIAL


def test_out_of_range() -> None:
    """Negative or too large SEQs are rejected."""
    with pytest.raises(ValueError):
        SeqTracker().observe(-1)
    with pytest.raises(ValueError):
        SeqTracker().observe(SEQ_MAX + 1)


@given(start=st.integers(0, SEQ_MAX), steps=st.lists(st.integers(1, 50), max_size=30))
def test_missed_adds_up(start: int, steps: list[int]) -> None:
    """Walking forward by arbitrary steps, the missed counts add up to the events skipped."""
    tracker = SeqTracker(last=start)
    seq = start
    for step in steps:
        for _ in range(step):
            seq = next_seq(seq)
        verdict = tracker.observe(seq)
        assert verdict.kind in (SeqKind.NEXT, SeqKind.GAP)
        assert verdict.missed == step - 1


@given(seqs=st.lists(st.integers(0, 1000), max_size=50))
def test_last_never_goes_back(seqs: list[int]) -> None:
    """Whatever arrives, the remembered SEQ only moves forward (duplicates change nothing)."""
    tracker = SeqTracker()
    for seq in seqs:
        before = tracker.last
        verdict = tracker.observe(seq)
        if verdict.kind is SeqKind.DUPLICATE:
            assert tracker.last == before
        else:
            assert tracker.last == seq
            assert before is None or seq > before


@given(st.integers(0, SEQ_MAX), st.integers(1, SEQ_MAX))
def test_skipped_is_what_a_gap_missed(last: int, seq: int) -> None:
    """skipped(expected, got) is the tracker's count of missed NOTIFYs for every gap, across
    the wrap from SEQ_MAX to 1 included."""
    tracker = SeqTracker(last=last)
    verdict = tracker.observe(seq)
    if verdict.kind is SeqKind.GAP:
        assert verdict.expected is not None
        assert skipped(verdict.expected, seq) == verdict.missed


def test_skipped_across_the_wrap() -> None:
    """From 4294967294 due to 2 arriving, 4294967294, 4294967295 and 1 were skipped."""
    assert skipped(SEQ_MAX - 1, 2) == 3
    assert skipped(0, 4) == 4
