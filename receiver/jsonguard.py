"""Strict JSON for a signed body, before it goes near the database.

`parse_payload(body)` returns the top-level object or raises `Unusable` with the HTTP
status the contract gives the case:

- 400: not valid UTF-8, not JSON, NaN/Infinity, a key twice in one object (at any
  level), nesting deeper than 64, a number literal with more than 1,000 digits or an
  exponent beyond +-1,000, a top-level value that is not an object;
- 422: valid JSON that PostgreSQL's jsonb cannot hold: a string (or key) with `\\u0000`
  or a lone UTF-16 surrogate escape such as `\\ud800`.

The nesting depth is measured on the bytes before parsing, so Python's recursive
parser never gets near its recursion limit.

Cost: the checks that need no parser run over the bytes at C speed (bytes.translate,
bytes.replace, substring search); the parse itself is `json.loads` with the smallest
hooks that keep the rules exact (duplicate keys; exponents and long literals of
floats). Only when a cheap test finds a candidate (a run of over 1,000 digits, which
may be inside a string; an escape that may be `\\u0000` or a lone surrogate) does the
exact, slower check run, so a candidate inside a string is never refused.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, NoReturn

MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 1000
MAX_EXPONENT = 1000

# --- nesting depth: brackets outside strings, at C speed --------------------------------
# every opening bracket becomes "[", every closing one "]", quotes stay, the rest goes
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_DROP_ALL_BUT_KEEP = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_DEPTH_STEP = {ord("["): 1, ord("]"): -1}
# the escapes that can hide a quote, read left to right as JSON reads them
_ESCAPED_BACKSLASH_OR_QUOTE = re.compile(rb'\\[\\"]')

# --- numbers -------------------------------------------------------------------------------
# An integer literal over MAX_NUMBER_DIGITS digits is a run of that many digits in the
# body (only floats, which go through a hook, can spread their digits over several runs).
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGIT_RUN = b"0" * (MAX_NUMBER_DIGITS + 1)

# --- what jsonb cannot hold ------------------------------------------------------------------
# A superset of the escapes that decode to U+0000 or to a lone surrogate: \u0000; a high
# half not followed by a low half; a low half not preceded by a high half; and a pair
# preceded by a backslash (then which backslash escapes what needs the exact check).
# A pair such as \ud83d\ude00 (an emoji) is not a candidate.
_SUSPECT_ESCAPE = re.compile(
    rb"\\(?:"  # every alternative starts with a backslash: a fast scan for it
    rb"u0000"
    rb"|u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\)u[dD][c-fC-F]"
    rb"|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]"
    rb")"
)
_UNSTORABLE_CHAR = re.compile("[\x00\ud800-\udfff]")


class Unusable(Exception):
    """A signed body that cannot become a payload; `status` is 400 or 422."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def parse_payload(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Unusable(f"body is not valid UTF-8 (byte {e.start})") from None
    if nesting_depth(body) > MAX_DEPTH:
        raise Unusable(f"JSON nested deeper than {MAX_DEPTH} levels")
    # integer literals go through a hook only when the body has a long digit run
    exact_ints = _LONG_DIGIT_RUN in body.translate(_DIGITS_AS_ZERO)
    try:
        value = (_EXACT_DECODER if exact_ints else _DECODER).decode(text)
    except json.JSONDecodeError as e:
        raise Unusable(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(value, dict):
        raise Unusable(f"the body is a JSON {_kind(value)}, not an object")
    if b"\\" in body and _SUSPECT_ESCAPE.search(body):
        _refuse_unstorable_strings(value)
    return value


def nesting_depth(body: bytes) -> int:
    """Deepest nesting of objects and arrays; brackets inside strings do not count.

    Exact on every prefix of the body that is valid JSON, which is all the parser ever
    descends into, so the parser never nests deeper than this. Works on bytes: UTF-8
    never puts an ASCII byte inside a multi-byte character."""
    # escapes first (a backslash and the quote or backslash it escapes), then every
    # quote left delimits a string: what lies between an odd and the next even quote
    # is inside one
    if b"\\" in body:
        body = _ESCAPED_BACKSLASH_OR_QUOTE.sub(b"", body)
    tokens = body.translate(_BRACKETS, delete=_DROP_ALL_BUT_KEEP)
    # dropping two adjacent quotes changes no byte's side (inside or outside): this
    # removes every string without a bracket in it, i.e. nearly all of them
    tokens = tokens.replace(b'""', b"")
    if b'"' in tokens:
        tokens = b"".join(tokens.split(b'"')[::2])
    # balanced brackets: each pass removes the innermost pairs, one level of nesting
    rest, depth = tokens, 0
    while rest and depth <= MAX_DEPTH:
        shorter = rest.replace(b"[]", b"")
        if len(shorter) == len(rest):
            break
        rest, depth = shorter, depth + 1
    if not rest:
        return depth
    # unbalanced (not JSON) or deeper than the limit: the running count, exactly
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, tokens)), default=0)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        _refuse_duplicate(pairs)
    return obj


def _refuse_duplicate(pairs: list[tuple[str, Any]]) -> NoReturn:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise Unusable(f"duplicate key {_short(key)} in one JSON object")
        seen.add(key)
    raise AssertionError("no duplicate key")  # pragma: no cover


def _refuse_constant(name: str) -> NoReturn:
    raise Unusable(f"{name} is not a JSON number")


def _check_number(literal: str) -> None:
    digits = sum(c.isdigit() for c in literal)
    if digits > MAX_NUMBER_DIGITS:
        raise Unusable(f"a number literal has {digits} digits (at most {MAX_NUMBER_DIGITS})")
    _, e, exponent = literal.lower().partition("e")
    if e and abs(int(exponent)) > MAX_EXPONENT:
        raise Unusable(f"a number literal has exponent {exponent} (at most +-{MAX_EXPONENT})")


def _guarded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_DIGITS:
        _check_number(literal)
    return int(literal)


def _guarded_float(literal: str) -> float:
    # a literal within the limits has at most 1,000 digits and, when it has an
    # exponent, one of at most 4 digits (or more, if they are leading zeros)
    if len(literal) > MAX_NUMBER_DIGITS or "e" in literal or "E" in literal:
        _check_number(literal)
    return float(literal)


def _refuse_unstorable_strings(value: dict[str, Any]) -> None:
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            bad = _UNSTORABLE_CHAR.search(item)
            if bad is None:
                continue
            if bad.group() == "\x00":
                raise Unusable("a string holds \\u0000, which PostgreSQL jsonb cannot store", 422)
            raise Unusable(
                f"a string holds a lone surrogate \\u{ord(bad.group()):04x}, "
                "which PostgreSQL jsonb cannot store",
                422,
            )


# shared like json's own default decoder: the scanner keeps no state between calls
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_constant=_refuse_constant,
    parse_float=_guarded_float,
)
_EXACT_DECODER = json.JSONDecoder(
    object_pairs_hook=_object_without_duplicates,
    parse_constant=_refuse_constant,
    parse_float=_guarded_float,
    parse_int=_guarded_int,
)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "number"


def _short(key: str) -> str:
    shown = json.dumps(key)
    return shown if len(shown) <= 80 else shown[:77] + '..."'
