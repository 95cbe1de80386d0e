"""One structured log line and one metrics update per delivery, and the JSON log format."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

import psycopg
from aiohttp import web
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from receiver.answers import Outcome
from receiver.body import delivery_id_header, label
from receiver.metrics import Metrics

log = logging.getLogger("optiqoflow.receiver")

OPERATIONS = ("INSERT", "UPDATE", "DELETE", "FULL_SYNC", "RECONCILE", "BATCH")


def account(metrics: Metrics, request: web.Request, outcome: Outcome, duration: float) -> None:
    """One metrics update and one structured log line per delivery (never the body)."""
    answer, payload = outcome.body, outcome.payload or {}
    table = label(answer.get("table"))
    operation = payload.get("type") if payload.get("type") in OPERATIONS else None
    metrics.delivered(table or "", operation or "", outcome.status, duration)
    if outcome.path is not None:
        metrics.routed(outcome.path)
    # a delivery for an erased, closed tenant (OF028) is kept nowhere: nor its tenant here
    closed = answer.get("sqlstate") == "OF028"
    tenant = None if closed else label(answer.get("tenant_id")) or label(payload.get("tenant_id"))
    fields: dict[str, Any] = {
        "event": "delivery",
        "status": outcome.status,
        "http_status": outcome.http_status,
        "table": table,
        "operation": operation,
        "tenant": tenant,
        "rows": answer.get("rows"),
        "log_id": answer.get("log_id"),
        "sqlstate": answer.get("sqlstate"),
        "path": outcome.path,
        "delivery_id": label(next(iter(delivery_id_header(request.headers)[1]), None)),
        "bytes": request.content_length,
        "duration_ms": round(duration * 1000, 2),
    }
    if outcome.http_status >= 400:
        fields["error"] = outcome.detail or str(answer.get("error", ""))[:300]
    if outcome.http_status == 503:
        level = logging.WARNING
    else:
        level = logging.ERROR if outcome.http_status >= 500 else logging.INFO
    log.log(level, "delivery %s", outcome.status, extra={"fields": fields})


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; a record's `fields` (extra=) are merged in."""

    _encode = json.JSONEncoder(default=str).encode  # json.dumps(..., default=str), built once

    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second whose text is in _second_text
        self._second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`,
        the date and time formatted once a second."""
        second = int(record.created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line)


def redacted(dsn: str) -> str:
    """A connection string fit for a log: the password replaced."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable connection string)"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)
