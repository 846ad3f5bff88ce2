# -*- test-case-name: tests.gena.test_sequence -*-
"""GENA event sequence numbers: telling the initial event, the next one, a duplicate and a gap.

Each GENA subscription numbers its NOTIFYs: ``SEQ: 0`` is the initial event (the full state),
then 1, 2, ... and, per UPnP, 4294967295 wraps to 1 (never back to 0). A speaker delivers the
NOTIFYs of one subscription one at a time and in order, so a number that is not the next one
means a NOTIFY was lost (a gap: re-read the state) or is a repeat or a late arrival (drop it).
This module is pure: no I/O, no clock.
"""

from __future__ import annotations

import enum

import attrs

SEQ_MAX = 4_294_967_295
"""The largest SEQ; the one after it is 1 (UPnP Device Architecture 1.1, 4.3.2)."""


class SeqKind(enum.Enum):
    """What an observed SEQ means for its subscription."""

    INITIAL = "initial"
    NEXT = "next"
    DUPLICATE = "duplicate"
    GAP = "gap"


# Mutable for speed (one per event; a frozen attrs class costs 5x to build): nothing
# assigns to it.
@attrs.define
class SeqVerdict:
    """The verdict on one SEQ: its kind, the SEQ that was expected, and how many were missed.

    ``expected`` is ``None`` for the first event of a subscription when it is the initial one.
    ``missed`` is the number of NOTIFYs lost before this one (0 unless ``kind`` is ``GAP``).
    """

    kind: SeqKind
    seq: int
    expected: int | None
    missed: int = 0


def _position(seq: int) -> int:
    """Place ``seq`` on the ring 0 .. SEQ_MAX-1 where 0 and SEQ_MAX both come just before 1."""
    return SEQ_MAX - 1 if seq == 0 else seq - 1


def skipped(expected: int, got: int) -> int:
    """How many SEQs lie from ``expected`` up to ``got`` (excluded), counting across the wrap
    from ``SEQ_MAX`` to 1: the NOTIFYs lost when ``got`` arrived while ``expected`` was due."""
    return (_position(got) - _position(expected)) % SEQ_MAX


def next_seq(seq: int) -> int:
    """Return the SEQ that follows ``seq`` (wrapping from ``SEQ_MAX`` to 1)."""
    return 1 if seq >= SEQ_MAX else seq + 1


@attrs.define
class SeqTracker:
    """The SEQ state of one subscription: feed it every SEQ received, in arrival order.

    A fresh tracker expects ``SEQ 0``; a first event numbered above 0 is a gap (the initial full
    state was lost). Afterwards a SEQ at most half the ring ahead of the last one is new (the
    next one or a gap); anything else (the same number, or one behind) is a duplicate.
    """

    last: int | None = None

    def observe(self, seq: int) -> SeqVerdict:
        """Classify ``seq`` and, unless it is a duplicate, remember it as the last one seen."""
        if seq < 0 or seq > SEQ_MAX:
            raise ValueError(f"SEQ out of range: {seq}")
        last = self.last
        if last is None:
            self.last = seq
            if seq == 0:
                return SeqVerdict(SeqKind.INITIAL, seq, None)
            return SeqVerdict(SeqKind.GAP, seq, 0, missed=seq)
        expected = next_seq(last)
        if seq == 0:
            return SeqVerdict(SeqKind.DUPLICATE, seq, expected)
        forward = (_position(seq) - _position(last)) % SEQ_MAX
        if forward == 0 or forward > SEQ_MAX // 2:
            return SeqVerdict(SeqKind.DUPLICATE, seq, expected)
        self.last = seq
        if forward == 1:
            return SeqVerdict(SeqKind.NEXT, seq, expected)
        return SeqVerdict(SeqKind.GAP, seq, expected, missed=forward - 1)

    @property
    def expected(self) -> int | None:
        """The SEQ due next (``None`` before the first event)."""
        return None if self.last is None else next_seq(self.last)

    def reset(self) -> None:
        """Forget the last SEQ: the next subscription starts again at 0."""
        self.last = None
