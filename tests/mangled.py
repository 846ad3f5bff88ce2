"""Byte-level strategies for the property tests of the parsers of what speakers send: a real
captured document with a piece cut out and other bytes put in, hostile pieces among them."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import strategies as st


def spliced(document: bytes, at: int, cut: int, inserted: bytes) -> bytes:
    """``document`` with ``cut`` bytes at ``at`` (modulo its length) replaced by ``inserted``."""
    at %= len(document) + 1
    return document[:at] + inserted + document[at + cut :]


def mangled(documents: Sequence[bytes], hostile: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """Any bytes (up to 3,000), or one of ``documents`` with up to 40 bytes at any place
    replaced by up to 40 random bytes or by one of the ``hostile`` pieces."""
    longest = max(len(document) for document in documents)
    return st.binary(max_size=3000) | st.builds(
        spliced,
        st.sampled_from(list(documents)),
        st.integers(0, longest),
        st.integers(0, 40),
        st.binary(max_size=40) | st.sampled_from(list(hostile)),
    )
