"""Strict JSON for signed bodies (receiver.jsonguard), without a database."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from receiver.jsonguard import MAX_DEPTH, Unusable, nesting_depth, parse_payload


def refused(body: bytes) -> Unusable:
    with pytest.raises(Unusable) as caught:
        parse_payload(body)
    return caught.value


def nested(depth: int) -> bytes:
    """An object whose nesting is exactly `depth` (objects and arrays mixed)."""
    inner = b"1"
    for level in range(depth - 1):
        inner = b"[" + inner + b"]" if level % 2 else b'{"k":' + inner + b"}"
    return b'{"a":' + inner + b"}"


def test_an_object_is_returned() -> None:
    body = b' {"type": "INSERT", "record": {"id": 1, "tags": ["a"], "x": 1.5e3}} \n'
    assert parse_payload(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),  # a surrogate, UTF-8 encoded
        (b"\xef\xbb\xbf{}", "invalid JSON"),  # byte order mark
        (b"", "invalid JSON"),
        (b'{"a": 1,}', "invalid JSON"),
        (b"{'a': 1}", "invalid JSON"),
        (b'{"a": "tab\there"}', "invalid JSON"),  # raw control character in a string
        (b'{"a": 01}', "invalid JSON"),
        (b'{"a": 1} {"b": 2}', "invalid JSON"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": [-Infinity]}', "-Infinity"),
        (b'{"tenant_id": "A", "tenant_id": "B"}', "duplicate key"),
        (b'{"r": [{"id": 1, "x": 0, "id": 1}]}', "duplicate key"),
        (b'{"a": 1, "\\u0061": 2}', "duplicate key"),  # the same key, spelled differently
        (b'{"a": ' + b"9" * 1001 + b"}", "1001 digits"),
        (b'{"a": -0.' + b"1" * 1001 + b"}", "digits"),
        (b'{"a": 1e1001}', "exponent"),
        (b'{"a": 1.5E-1001}', "exponent"),
        (b'{"a": 1e' + b"0" * 1000 + b"1}", "digits"),
        (b"[]", "array"),
        (b'"text"', "string"),
        (b"12", "number"),
        (b"null", "null"),
        (b"true", "boolean"),
    ],
)
def test_bad_bodies_are_400(body: bytes, reason: str) -> None:
    err = refused(body)
    assert err.status == 400
    assert reason in err.reason


def test_numbers_up_to_the_limit_pass() -> None:
    parse_payload(b'{"a": ' + b"9" * 1000 + b', "b": 1e1000, "c": -1E-1000, "d": 0.5}')


def test_nesting_limit_is_64() -> None:
    assert nesting_depth(nested(MAX_DEPTH)) == MAX_DEPTH
    parse_payload(nested(MAX_DEPTH))
    assert "deeper than 64" in refused(nested(MAX_DEPTH + 1)).reason


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deep_nesting_never_reaches_the_recursion_limit(opener: bytes) -> None:
    # far past Python's recursion limit, also unterminated
    body = b'{"a":' + opener * 200_000
    assert refused(body).status == 400
    assert refused(body + b"1" + b"]" * 200_000 + b"}").status == 400


def test_brackets_inside_strings_do_not_count() -> None:
    deep_text = json.dumps({"s": "[" * 500, "t": '\\"[{' * 100, "u": ["\\", "]]]"]}).encode()
    assert nesting_depth(deep_text) == 2
    parse_payload(deep_text)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (b'{"a": "x\\u0000y"}', "\\u0000"),
        (b'{"k\\u0000": 1}', "\\u0000"),  # in a key
        (b'{"r": [{"a": "\\ud800"}]}', "surrogate \\ud800"),
        (b'{"a": "\\uDFFF"}', "surrogate \\udfff"),
        (b'{"a": "\\ud83d"}', "surrogate"),  # a high half without its low half
        (b'{"a": "\\ude00\\ud83d"}', "surrogate"),  # halves in the wrong order
    ],
)
def test_what_jsonb_cannot_hold_is_422(body: bytes, what: str) -> None:
    err = refused(body)
    assert err.status == 422
    assert what in err.reason


def test_escapes_that_jsonb_holds_pass() -> None:
    body = b'{"emoji": "\\ud83d\\ude00", "bs": "\\\\u0000", "e": "\\u00e9"}'
    assert parse_payload(body) == {"emoji": "\U0001f600", "bs": "\\u0000", "e": "\u00e9"}


def test_400_wins_over_422() -> None:
    assert refused(b'{"a": "\\u0000", "a": 1}').status == 400


# --- properties -------------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(alphabet='ab"\\[]{}\u00e9', max_size=4), inner, max_size=4),
    ),
    max_leaves=40,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(_values, st.booleans())
def test_any_json_value_is_measured_exactly(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert nesting_depth(body) == depth_of(value)
    if isinstance(value, dict):
        assert parse_payload(body) == value
    else:
        assert refused(body).status == 400


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(alphabet='{}[]":,\\u0aeEdD81.- \n', max_size=120).map(str.encode),
    )
)
def test_any_bytes_give_an_object_or_unusable(body: bytes) -> None:
    try:
        assert isinstance(parse_payload(body), dict)
    except Unusable as e:
        assert e.status in (400, 422)
