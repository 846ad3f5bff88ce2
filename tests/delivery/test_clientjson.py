"""Tests for sonosd.delivery.clientjson: every client's JSON within a size and a depth bound."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sonosd.delivery.clientjson import (
    MAX_BYTES,
    MAX_DEPTH,
    JsonRefused,
    decode,
    decode_object,
    nesting_depth,
)

scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    """The nesting depth of a decoded value (containers only)."""
    if isinstance(value, list):
        return 1 + max((depth_of(item) for item in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth_of(item) for item in value.values()), default=0)
    return 0


@given(documents)
def test_depth_is_measured_on_the_text(value: Any) -> None:
    """The depth read from the text is the depth of the value, brackets in strings ignored."""
    text = json.dumps(value)
    assert nesting_depth(text) == depth_of(value)


@given(documents)
def test_documents_within_the_bounds_decode_as_json_does(value: Any) -> None:
    """A document within the bounds decodes to what json.loads gives."""
    text = json.dumps(value)
    if depth_of(value) <= MAX_DEPTH:
        assert decode(text.encode()) == json.loads(text)


@settings(max_examples=200)
@given(st.binary(max_size=2_000))
def test_any_bytes_decode_or_are_refused(data: bytes) -> None:
    """Whatever the bytes, the result is a value that can be encoded again, or JsonRefused."""
    try:
        value = decode(data)
    except JsonRefused as refused:
        assert refused.reason in ("too_large", "too_deep", "not_json")
        return
    orjson.dumps(value)
    assert depth_of(value) <= MAX_DEPTH


@settings(max_examples=50)
@given(st.integers(MAX_DEPTH + 1, 40_000), st.sampled_from(["[", '{"a":']))
def test_deep_documents_are_refused_before_decoding(depth: int, opener: str) -> None:
    """Any nesting beyond the bound is refused by name, never a RecursionError."""
    closer = "]" if opener == "[" else "}"
    text = opener * depth + "1" + closer * depth
    if len(text) > MAX_BYTES:
        with pytest.raises(JsonRefused) as refused:
            decode(text)
        assert refused.value.reason == "too_large"
        return
    with pytest.raises(JsonRefused) as refused:
        decode(text)
    assert refused.value.reason == "too_deep"
    assert f"nested {depth} levels deep, over the limit of {MAX_DEPTH}" in str(refused.value)


def test_size_is_refused_before_anything_else() -> None:
    """A document over max_bytes is refused without being read."""
    with pytest.raises(JsonRefused) as refused:
        decode(b" " * (MAX_BYTES + 1))
    assert refused.value.reason == "too_large"
    assert decode(b"[1]", max_bytes=3) == [1]


def test_values_that_could_not_be_echoed_are_refused() -> None:
    """Lone surrogates, NaN and invalid UTF-8 are refused; huge integers become floats."""
    for data in (b'"\\ud800"', b"NaN", b'"\xff"'):
        with pytest.raises(JsonRefused):
            decode(data)
    assert decode(b"1" + b"0" * 30) == 1e30


def test_decode_object() -> None:
    """decode_object requires an object."""
    assert decode_object('{"op": "filter"}') == {"op": "filter"}
    with pytest.raises(JsonRefused, match="expected a JSON object"):
        decode_object("[]")


def test_brackets_in_strings_do_not_count() -> None:
    """Brackets and escaped quotes inside strings do not count towards the depth."""
    assert nesting_depth('["[[[[", "\\"[[[", {"a": "]]]"}]') == 2
    assert nesting_depth("") == 0
