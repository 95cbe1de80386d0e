"""Every HTTP status the receiver answers, decided in one place.

A delivery ends as an `Outcome`: the status, the body, and what the log line and the
metrics need. The decisions, in the order a request meets them:

| what happened                                                  | status |
|----------------------------------------------------------------|--------|
| compressed body (Content-Encoding or a compressing Transfer-Encoding) | 415 |
| body larger than OPTIQO_MAX_BODY_BYTES                         | 413    |
| no room to receive the body before its signature (`admission`) | 503 + Retry-After |
| body not received within OPTIQO_READ_TIMEOUT                   | 408    |
| body cut short by the sender                                   | 400    |
| signature missing, malformed or wrong                          | 401    |
| signed, but not a JSON object we accept (kept as bytes)        | 400    |
| signed JSON that jsonb cannot hold (kept as bytes)             | 422    |
| apply_webhook answered applied, duplicate or stale             | 200    |
| apply_webhook answered refused                                 | 422    |
| a transient database fault (`is_transient`)                    | 503 + Retry-After |
| the database is not migrated: the call's own schema or function is missing (`is_not_migrated`) | 503 + Retry-After |
| anything else                                                  | 500    |

The database's answer is passed on as PostgreSQL wrote it; the status is chosen from its
`status`, never from message text. A SQLSTATE decides between 503 and 500.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from aiohttp import hdrs, web

log = logging.getLogger("optiqoflow.receiver")

# apply_webhook's answer -> HTTP status
HTTP_STATUS = {"applied": 200, "duplicate": 200, "stale": 200, "refused": 422}

# SQLSTATEs that mean "not now", not "never": 503 + Retry-After.
# 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator
# intervention (cancel, shutdown, starting up), 55P03 lock timeout, 25006 a read-only
# standby (a failover in progress).
TRANSIENT_CLASSES = ("08", "40", "53", "57")
TRANSIENT_STATES = ("55P03", "25006")
# the receiver's own call names a schema (3F000) or function (42883) the database does
# not have: not migrated (yet) to this receiver, which `optiqoflow migrate` fixes
NOT_MIGRATED_STATES = ("3F000", "42883")
# the body was signed JSON but PostgreSQL's jsonb input refused it (\u0000, surrogates)
UNSTORABLE_STATES = ("22P02", "22P05")


@dataclass(frozen=True)
class Outcome:
    http_status: int
    body: Mapping[str, Any]
    status: str  # for logs and metrics: applied ... refused, unusable, invalid_signature ...
    payload: Mapping[str, Any] | None = None  # the payload's `type` and `tenant_id` only
    close: bool = False  # the rest of the request was not read: close the connection
    detail: str | None = None  # for the log line only
    raw: str | None = None  # `body` as the database wrote it: the answer sent
    path: str | None = None  # which call answered: direct | worker | coordinator | grouped


def unsupported_encoding(encoding: str) -> Outcome:
    return Outcome(
        415,
        {"error": f"{encoding} is not accepted: send the body as signed, uncompressed"},
        "unsupported_encoding",
        close=True,
    )


def too_large(limit: int) -> Outcome:
    return Outcome(413, {"error": f"body larger than {limit} bytes"}, "too_large", close=True)


def overloaded(why: str) -> Outcome:
    """No room to receive this body before its signature is checked (receiver.admission):
    refused unread, so the connection is closed."""
    return Outcome(
        503,
        {"error": "too many request bodies being received, retry later"},
        "overloaded",
        close=True,
        detail=why,
    )


def read_timeout(seconds: float) -> Outcome:
    return Outcome(
        408, {"error": f"body not received within {seconds:g} s"}, "timeout", close=True
    )


def incomplete() -> Outcome:
    return Outcome(400, {"error": "request body incomplete"}, "incomplete", close=True)


def invalid_signature(why: str) -> Outcome:
    # `why` is logged, never answered
    return Outcome(401, {"error": "invalid signature"}, "invalid_signature", detail=why)


def unusable(status: int, reason: str, log_id: Any) -> Outcome:
    """A signed body kept as bytes by record_unusable_delivery (400 or 422)."""
    return Outcome(status, {"error": reason, "log_id": log_id}, "unusable")


def internal_error(detail: str | None = None, **fields: Any) -> Outcome:
    return Outcome(500, {"error": "internal error"}, "error", detail=detail, **fields)


def from_answer(text: Any, payload: Mapping[str, Any] | None, path: str) -> Outcome:
    """apply_webhook's answer (jsonb as text) as the sender gets it: 200 or 422."""
    try:
        answer = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        answer = text
    if not isinstance(answer, dict) or answer.get("status") not in HTTP_STATUS:
        detail = f"apply_webhook answered something unexpected: {answer!r:.300}"
        return internal_error(detail, payload=payload, path=path)
    status = answer["status"]
    return Outcome(HTTP_STATUS[status], answer, status, payload, raw=text, path=path)


def is_transient(e: psycopg.Error) -> bool:
    """A fault that a later retry of the same delivery can get past."""
    state = e.sqlstate
    if state is None:  # no answer from a server: connect failed, pool timeout, lost socket
        return isinstance(e, psycopg.OperationalError)
    return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES


def is_not_migrated(e: psycopg.Error) -> bool:
    """The statement the receiver sent names a schema or function the database does not
    have. Only when PostgreSQL refused the statement itself (no function context): the
    same SQLSTATE raised inside a function is a bug there, a 500."""
    return e.sqlstate in NOT_MIGRATED_STATES and not e.diag.context


def database_fault(e: psycopg.Error) -> Outcome:
    """A database error that is no answer of apply_webhook: 503 when transient or when the
    database is not migrated (one warning line, no traceback), else 500."""
    detail = f"{e.sqlstate or e.__class__.__name__}: {first_line(e)}"
    if is_transient(e):
        return Outcome(
            503, {"error": "database unavailable, retry later"}, "unavailable", detail=detail
        )
    if is_not_migrated(e):
        return Outcome(
            503,
            {"error": "database not ready, retry later"},
            "not_migrated",
            detail=f"database not migrated (run optiqoflow migrate): {detail}",
        )
    log.error("database error %s", detail, exc_info=e)
    return internal_error(detail)


def first_line(e: BaseException) -> str:
    return str(e).split("\n", 1)[0][:300]


def response(outcome: Outcome, retry_after: int) -> web.Response:
    """The HTTP response of an outcome: the database's own text when it answered."""
    if outcome.raw is not None:
        resp = web.Response(
            text=outcome.raw, status=outcome.http_status, content_type="application/json"
        )
    else:
        headers = {}
        if outcome.http_status == 503:
            headers[hdrs.RETRY_AFTER] = str(retry_after)
        resp = web.json_response(outcome.body, status=outcome.http_status, headers=headers)
    if outcome.close:
        resp.force_close()
    return resp
