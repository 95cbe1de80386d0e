"""Deliveries on a Citus cluster: the tenant-delegated call, and the coordinator path.

After `SELECT optiqoflow.distribute()`, Citus runs

    SELECT optiqoflow.apply_tenant_webhook($1::uuid, $2::jsonb, $3)

on the one worker that owns tenant $1, as one round trip, when it is called on its own
(autocommit; Citus does not delegate inside an open transaction). A delivery that needs
DDL there (a new column, a tenant view to create or change) or whose payload does not
name that tenant writes nothing and answers {"status": "coordinator_required"}; it is
then repeated as an ordinary `apply_webhook` call, which the coordinator applies (or
refuses and logs) in full. The sender sees one answer either way.

A payload without a readable tenant never goes to the delegated call: Citus 13.2 cannot
route a NULL distribution argument (the coordinator backend crashes on it), and such a
payload is refused and logged by `apply_webhook` on the coordinator anyway.

On plain PostgreSQL and on the coordinator `apply_tenant_webhook` is `apply_webhook`, so
this path is correct everywhere; it is only faster on a cluster. The receiver takes it
where `delegation_registered` says Citus delegates the call (OPTIQO_CITUS_DELEGATION);
elsewhere it makes its one `apply_webhook` call per delivery.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

APPLY_TENANT_SQL = "SELECT optiqoflow.apply_tenant_webhook($1::uuid, $2::jsonb, $3)"
APPLY_SQL = "SELECT optiqoflow.apply_webhook($1::jsonb, $2)"
COORDINATOR_REQUIRED = "coordinator_required"

_ENTRY_POINT = "optiqoflow.apply_tenant_webhook(uuid, jsonb, text)"
# Citus's catalog exists only where the extension does: looked for first
CATALOG_SQL = (
    "SELECT to_regclass('pg_catalog.pg_dist_object') IS NOT NULL"
    f" AND to_regprocedure('{_ENTRY_POINT}') IS NOT NULL"
)
# registered with create_distributed_function(..., distribution_arg_name => ...)
DELEGATED_SQL = (
    "SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_object o"
    " WHERE o.classid = 'pg_catalog.pg_proc'::regclass"
    f" AND o.objid = to_regprocedure('{_ENTRY_POINT}')"
    " AND o.distribution_argument_index IS NOT NULL)"
)


async def delegation_registered(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether Citus delegates apply_tenant_webhook by its tenant argument in this
    database (optiqoflow.distribute() has run). One query where Citus is absent."""
    cur = await conn.execute(CATALOG_SQL)
    row = await cur.fetchone()
    if not (row and row[0]):
        return False
    cur = await conn.execute(DELEGATED_SQL)
    row = await cur.fetchone()
    return bool(row and row[0])


def is_coordinator_required(answer: Any) -> bool:
    """apply_tenant_webhook's answer (jsonb as text, or parsed) says: repeat it with
    apply_webhook on the coordinator."""
    if isinstance(answer, str):
        if COORDINATOR_REQUIRED not in answer:
            return False  # the common case, without parsing
        try:
            answer = json.loads(answer)
        except ValueError:
            return False
    return isinstance(answer, dict) and answer.get("status") == COORDINATOR_REQUIRED


def payload_tenant(payload: Any) -> str | None:
    """The tenant a payload names, as apply_webhook looks for it (envelope, record,
    old_record, first of records; a batch envelope: its tenant_id, else its first
    event's), canonical; None when absent or not a UUID."""
    if not isinstance(payload, dict):
        return None
    candidates: list[Any] = [payload.get("tenant_id")]
    if candidates[0] is None and str(payload.get("type")).upper() == "BATCH":
        events = payload.get("events")
        if isinstance(events, list) and events and isinstance(events[0], dict):
            return payload_tenant({**events[0], "type": None})
        return None
    for key in ("record", "old_record"):
        inner = payload.get(key)
        candidates.append(inner.get("tenant_id") if isinstance(inner, dict) else None)
    records = payload.get("records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        candidates.append(records[0].get("tenant_id"))
    for value in candidates:
        if value is None:
            continue
        if not isinstance(value, str):
            return None  # apply_webhook refuses it: the coordinator path logs that
        try:
            return str(uuid.UUID(value.strip().strip("{}")))
        except ValueError:
            return None
    return None


def apply_delivery(
    conn: psycopg.Connection[Any], body: str, payload: Any, delivery_id: str | None
) -> tuple[dict[str, Any], str]:
    """Apply one delivery (body: its JSON text) on an autocommit connection; returns
    (apply_webhook's answer, path) with path "worker" or "coordinator"."""
    cur = psycopg.RawCursor(conn)  # $n placeholders, server-side parameters
    tenant = payload_tenant(payload)
    if tenant is not None:
        row = cur.execute(APPLY_TENANT_SQL, (tenant, body, delivery_id)).fetchone()
        assert row is not None
        answer: dict[str, Any] = row[0]
        if not is_coordinator_required(answer):
            return answer, "worker"
    row = cur.execute(APPLY_SQL, (body, delivery_id)).fetchone()
    assert row is not None
    return row[0], "coordinator"

