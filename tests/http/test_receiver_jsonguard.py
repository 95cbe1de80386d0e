"""Strict JSON for signed bodies (receiver.jsonguard), without a database."""

from __future__ import annotations

import itertools
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


# --- the fast path's shortcuts never change a verdict ------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"s": "' + b"7" * 5000 + b'"}',  # a long digit run inside a string is text
        b'{"s": "' + b"1" * 1001 + b'", "n": 12}',  # ... also beside a short number
        b'{"k' + b"9" * 2000 + b'": 1}',  # ... or inside a key
        b'{"s": "1e1001", "t": "x, 2E-5000", "u": "[1e99999]"}',  # exponents in strings
        b'{"id": "53e12345-e29b-41d4-a716-446655440000"}',  # hex that reads like 53e12345
        b'{"a": ' + b"9" * 1000 + b', "b": -' + b"9" * 1000 + b"}",  # 1,000 digits, signed
        b'{"a": 1.' + b"5" * 999 + b"}",  # a float of exactly 1,000 digits
        b'{"a": 1e1000, "b": 1E-1000, "c": 1e+1000, "d": 2e0001000}',  # leading zeros
        b'{"a": 1.5e-05, "b": 6.02E23, "c": -0.0}',
    ],
)
def test_numbers_within_the_limits_and_digits_in_strings_pass(body: bytes) -> None:
    assert parse_payload(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"s": "' + b"1" * 2000 + b'", "n": ' + b"1" * 1001 + b"}", "1001 digits"),
        (b'{"n": [' + b"1" * 5000 + b"]}", "5000 digits"),  # past Python's own int limit
        (b'{"n": -' + b"2" * 1001 + b"}", "1001 digits"),
        (b'{"n": 0.' + b"0" * 600 + b"1" + b"0" * 600 + b"}", "digits"),  # no run of 1,001
        (b'{"n": ' + b"1" * 600 + b"." + b"1" * 600 + b"}", "digits"),
        (b'{"n": 1' + b"0" * 500 + b"e" + b"1" * 501 + b"}", "digits"),
        (b'{"n": 1e1001}', "exponent 1001"),
        (b'{"n": 1E+1001}', "exponent +1001"),
        (b'{"n": 1e-1001}', "exponent -1001"),
        (b'{"n": 1.5e0001001}', "exponent 0001001"),
        (b'{"n": [0.5, 1e99999]}', "exponent 99999"),
        (b'{"n": 1e' + b"9" * 1000 + b"}", "digits"),
    ],
)
def test_long_number_tokens_and_big_exponents_are_400(body: bytes, reason: str) -> None:
    err = refused(body)
    assert err.status == 400
    assert reason in err.reason


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "\\ud800"}',  # an escaped backslash, then the text "ud800"
        rb'{"a": "\\\\u0000"}',
        rb'{"a": "\ud83d\ude00 \uD83D\uDE00 \ud83d\uDc00"}',  # pairs, any case
        rb'{"a": "\\\ud83d\ude00"}',  # an escaped backslash, then a pair
        rb'{"a": "\u00e9\u20ac\\n"}',
    ],
)
def test_escapes_that_only_look_unstorable_pass(body: bytes) -> None:
    assert parse_payload(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        rb'{"a": "\\\ud800"}',  # an escaped backslash, then a lone high half
        rb'{"a": "\\ud83d\ude00"}',  # the text "ud83d", then a lone low half
        rb'{"a": "\ud83d\ud83d\ude00"}',  # a high half before a pair
        rb'{"a": "\ud83d\u0041"}',
        rb'{"a": "\ud83d x \ude00"}',
        rb'{"a": ["ok", {"b": "\\\\\u0000"}]}',
    ],
)
def test_unstorable_escapes_behind_backslashes_are_422(body: bytes) -> None:
    assert refused(body).status == 422


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (rb'{"a": "\\", "b": [[1]]}', 3),  # an escaped backslash before a closing quote
        (rb'{"a": "\"[[[", "b": "]]]\""}', 1),
        (b'{"a": "[", "b": "]", "c": [{}]}', 3),  # brackets split over two strings
        (b'{"a": "", "b": "", "c": [""]}', 2),
        (b"{}", 1),
        (b"", 0),
    ],
)
def test_nesting_depth_of_tricky_strings(body: bytes, depth: int) -> None:
    assert nesting_depth(body) == depth


def reference_depth(body: bytes) -> int:
    """The first implementation of nesting_depth, kept as the reference: one step per
    bracket, in Python."""
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    tokens = unescaped.translate(None, delete=bytes(sorted(set(range(256)) - set(b'"[]{}'))))
    outside = b"".join(tokens.split(b'"')[::2])
    step = {ord("{"): 1, ord("["): 1, ord("}"): -1, ord("]"): -1}
    return max(itertools.accumulate(step[b] for b in outside), default=0)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet='{}[]"\\ab:,', max_size=150).map(str.encode))
def test_nesting_depth_matches_the_reference_on_any_bytes(body: bytes) -> None:
    assert nesting_depth(body) == reference_depth(body)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, MAX_DEPTH + 2, 200, 5000])
def test_balanced_nesting_past_the_limit_is_measured_exactly(depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    assert nesting_depth(body) == depth
    assert nesting_depth(b'{"a": ' + body + b"}") == depth + 1


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
