"""GET /healthz (the process is alive), /readyz (the database answers and is migrated to
the head this package ships) and /metrics (Prometheus text format, with the database's
own figures from receiver.figures)."""

from __future__ import annotations

import logging
import time

import psycopg
from aiohttp import hdrs, web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from receiver.database import READY_SQL
from receiver.figures import FIGURES
from receiver.state import POOL, RECEIVER

log = logging.getLogger("optiqoflow.receiver")

READY_TIMEOUT = 2.0  # seconds /readyz waits for a connection


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def handle_readyz(request: web.Request) -> web.Response:
    rcv = request.app[RECEIVER]
    try:
        expected = rcv.expected_revision or _head_revision()
    except Exception:
        log.exception("cannot determine the migrations' head revision")
        return web.json_response({"status": "not ready", "reason": "no head revision"}, status=503)
    rcv.expected_revision = expected
    try:
        async with request.app[POOL].connection(
            timeout=min(READY_TIMEOUT, rcv.config.pool_timeout)
        ) as conn:
            cursor = await conn.execute(READY_SQL)
            found = sorted(str(row[0]) for row in await cursor.fetchall())
            conn.answered_at = time.monotonic()
    except psycopg.errors.UndefinedTable:
        found = []
    except psycopg.Error as e:
        return web.json_response({"status": "not ready", "reason": _reason(e)}, status=503)
    if found != [expected]:
        return web.json_response(
            {
                "status": "not ready",
                "reason": "database not migrated to head",
                "database_revision": found,
                "expected_revision": expected,
            },
            status=503,
        )
    return web.json_response({"status": "ready", "revision": expected})


def _reason(e: psycopg.Error) -> str:
    """Why reading public.alembic_version failed, as an operator fixes it."""
    state = e.sqlstate
    if state is None or state.startswith("08"):  # no connection: refused, lost, pool timeout
        return f"database unreachable: {state or e.__class__.__name__}"
    if state == "42501":
        return (
            "permission denied reading public.alembic_version: grant SELECT on it (and USAGE "
            "on schema public) to the receiver's role"
        )
    return f"reading public.alembic_version failed: {state}"


def _head_revision() -> str:
    from optiqoflow_db.migrate import head_revision  # alembic: loaded on first use only

    return str(head_revision())


async def handle_metrics(request: web.Request) -> web.Response:
    """The metrics; the database's figures (receiver.figures) read first when they are
    older than a few seconds, and left out when the database cannot give them."""
    rcv = request.app[RECEIVER]
    await request.app[FIGURES].refresh(request.app.get(POOL), rcv.gate, rcv.config.pool_timeout)
    data = generate_latest(rcv.metrics.registry)
    return web.Response(body=data, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})
