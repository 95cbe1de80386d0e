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
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any, NoReturn

MAX_DEPTH = 64
MAX_NUMBER_DIGITS = 1000
MAX_EXPONENT = 1000

_KEEP = b'"[]{}'
_DROP_ALL_BUT_KEEP = bytes(sorted(set(range(256)) - set(_KEEP)))
_DEPTH_STEP = {ord("{"): 1, ord("["): 1, ord("}"): -1, ord("]"): -1}
# a cheap pre-filter: only bodies with these escapes can hold what jsonb refuses
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
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
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object_without_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_guarded_int,
            parse_float=_guarded_float,
        )
    except json.JSONDecodeError as e:
        raise Unusable(f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(value, dict):
        raise Unusable(f"the body is a JSON {_kind(value)}, not an object")
    if _SUSPECT_ESCAPE.search(body):
        _refuse_unstorable_strings(value)
    return value


def nesting_depth(body: bytes) -> int:
    """Deepest nesting of objects and arrays; brackets inside strings do not count.

    Exact on every prefix of the body that is valid JSON, which is all the parser ever
    descends into, so the parser never nests deeper than this. Works on bytes: UTF-8
    never puts an ASCII byte inside a multi-byte character."""
    # escapes first, left to right as JSON reads them: "\\" pairs, then "\"" quotes;
    # every quote left delimits a string, so the even parts between quotes are outside
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    tokens = unescaped.translate(None, delete=_DROP_ALL_BUT_KEEP)
    outside = b"".join(tokens.split(b'"')[::2])
    return max(itertools.accumulate(_DEPTH_STEP[b] for b in outside), default=0)


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Unusable(f"duplicate key {_short(key)} in one JSON object")
            seen.add(key)
    return obj


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
    _check_number(literal)
    return int(literal)


def _guarded_float(literal: str) -> float:
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
