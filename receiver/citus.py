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
elsewhere it makes its one `apply_webhook` call per delivery. `apply` is the one
implementation of the two steps; tests and benchmarks use it too.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import psycopg

from receiver.answers import first_line
from receiver.database import APPLY_SQL, Connection, JsonBody, first_value

log = logging.getLogger("optiqoflow.receiver")

# Citus delegates only a bare call (no cast around it): its jsonb answer is read as text
# by the loader of receiver.database.ADAPTERS
APPLY_TENANT_SQL = "SELECT optiqoflow.apply_tenant_webhook($1::uuid, $2::jsonb, $3)"
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


async def apply(
    conn: Connection, tenant: str, body: JsonBody, delivery_id: str | None
) -> tuple[Any, str]:
    """The two steps on an autocommit connection: apply_tenant_webhook, run by the worker
    that owns `tenant` in one round trip; when it answers coordinator_required (it wrote
    nothing), apply_webhook on the coordinator. Returns (the answer as text, "worker" |
    "coordinator")."""
    text = await first_value(conn, APPLY_TENANT_SQL, (tenant, body, delivery_id))
    if not is_coordinator_required(text):
        return text, "worker"
    return await first_value(conn, APPLY_SQL, (body, delivery_id)), "coordinator"


class Delegation:
    """The pool's `configure` (OPTIQO_CITUS_DELEGATION): decide once per new connection
    whether its deliveries take the two-step path (`auto`: apply_tenant_webhook is
    registered as a Citus distributed function there; `on`: always). Logs each change."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.logged: bool | None = None  # the last state logged

    async def configure(self, conn: Connection) -> None:
        if self.mode == "on":
            conn.delegated = True
            return
        try:
            conn.delegated = await delegation_registered(conn)
        except psycopg.OperationalError:
            raise  # the connection is unusable: the pool discards it and tries again
        except psycopg.Error as e:  # e.g. no right to read Citus's catalog
            conn.delegated = False
            if self.logged is not False:
                log.warning(
                    "cannot tell whether Citus delegates apply_tenant_webhook (%s): "
                    "one apply_webhook call per delivery",
                    first_line(e),
                )
        if self.logged is not conn.delegated:
            self.logged = conn.delegated
            if conn.delegated:
                log.info(
                    "Citus: apply_tenant_webhook is delegated; deliveries go to the "
                    "tenant's worker first",
                    extra={"fields": {"citus_delegation": True}},
                )
