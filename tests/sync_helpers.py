"""Payload builders and table readers shared by the version, FULL_SYNC and concurrency tests.

Everything reads the database directly: the tests assert rows, tombstones and log rows,
not only the answer of optiqoflow.apply_webhook.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.rows import dict_row

SOURCE = "adhoc_work_orders"  # Optiqo's name ...
TARGET = "work_orders"  # ... and ours
BASE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def v(n: int) -> str:
    """Version number n as the ISO 8601 text a sender puts in updated_at / occurred_at."""
    return (BASE + dt.timedelta(minutes=n)).isoformat().replace("+00:00", "Z")


def vt(n: int) -> dt.datetime:
    """Version number n as the timestamptz PostgreSQL hands back."""
    return BASE + dt.timedelta(minutes=n)


def new_id() -> str:
    return str(uuid.uuid4())


def rec(id_: str, n: int | None, **cols: Any) -> dict[str, Any]:
    """A work-order record at version n (None: no updated_at)."""
    r: dict[str, Any] = {"id": id_}
    if n is not None:
        r["updated_at"] = v(n)
    r.update(cols)
    return r


def upsert(
    tenant: str | None, record: dict[str, Any], op: str = "INSERT", **env: Any
) -> dict[str, Any]:
    p: dict[str, Any] = {"type": op, "table": SOURCE, "record": record}
    if tenant is not None:
        p["tenant_id"] = tenant
    p.update(env)
    return p


def delete(tenant: str | None, old_record: dict[str, Any], **env: Any) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": "DELETE",
        "table": SOURCE,
        "record": None,
        "old_record": old_record,
    }
    if tenant is not None:
        p["tenant_id"] = tenant
    p.update(env)
    return p


def full_sync(
    tenant: str,
    records: list[dict[str, Any]],
    offset: int,
    total: int | None = None,
    sync_id: str | None = None,
    **env: Any,
) -> dict[str, Any]:
    p: dict[str, Any] = {
        "type": "FULL_SYNC", "table": SOURCE, "tenant_id": tenant, "records": records, "offset": offset,
    }  # fmt: skip
    if total is not None:
        p["total"] = total
    if sync_id is not None:
        p["sync_id"] = sync_id
    p.update(env)
    return p


# --- readers -----------------------------------------------------------------------------


def row(
    c: psycopg.Connection[Any], tenant: str, id_: str, table: str = TARGET
) -> dict[str, Any] | None:
    """The stored row (every column, bookkeeping included), or None."""
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT * FROM optiqoflow.{table} WHERE tenant_id = %s AND id = %s",
            (tenant, id_),
            prepare=False,
        ).fetchone()


def rows(c: psycopg.Connection[Any], tenant: str, table: str = TARGET) -> dict[str, dict[str, Any]]:
    """The tenant's rows of a target table, by id (text)."""
    with c.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            f"SELECT * FROM optiqoflow.{table} WHERE tenant_id = %s ORDER BY id",
            (tenant,),
            prepare=False,
        ).fetchall()
    return {str(r["id"]): r for r in found}


def versions(
    c: psycopg.Connection[Any], tenant: str, table: str = TARGET
) -> dict[str, dt.datetime]:
    return {k: r["updated_at"] for k, r in rows(c, tenant, table).items()}


def tombstone(
    c: psycopg.Connection[Any], tenant: str, id_: str, table: str = TARGET
) -> dt.datetime | None:
    found = c.execute(
        "SELECT version FROM optiqoflow.tombstones WHERE tenant_id = %s AND target_table = %s AND id = %s",
        (tenant, table, id_),
    ).fetchone()
    return None if found is None else found[0]


def tombstones(
    c: psycopg.Connection[Any], tenant: str, table: str = TARGET
) -> dict[str, dt.datetime]:
    found = c.execute(
        "SELECT id::text, version FROM optiqoflow.tombstones WHERE tenant_id = %s AND target_table = %s",
        (tenant, table),
    ).fetchall()
    return dict(found)


def log_row(c: psycopg.Connection[Any], log_id: int) -> dict[str, Any]:
    with c.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            "SELECT * FROM optiqoflow.webhook_logs WHERE id = %s", (log_id,)
        ).fetchone()
    assert found is not None, f"no webhook_logs row {log_id}"
    return found


def push_logs(c: psycopg.Connection[Any], tenant: str | None = None) -> list[dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        if tenant is None:
            return cur.execute("SELECT * FROM tenants.tenant_data_push_log ORDER BY id").fetchall()
        return cur.execute(
            "SELECT * FROM tenants.tenant_data_push_log WHERE tenant_id = %s ORDER BY id", (tenant,)
        ).fetchall()


def count(c: psycopg.Connection[Any], query: str, *params: Any) -> int:
    found = c.execute(query, params).fetchone()
    assert found is not None
    return int(found[0])


def sync_runs(c: psycopg.Connection[Any], tenant: str, table: str = TARGET) -> list[dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM optiqoflow.sync_runs WHERE tenant_id = %s AND target_table = %s ORDER BY id",
            (tenant, table),
        ).fetchall()


def in_opposite_orders(
    send: Callable[[list[str], int], None], ids: list[str]
) -> list[BaseException]:
    """Three rounds of six threads, each calling send(ids in one order or the reverse, a
    version number unique to the thread, newest in the last round); the errors raised."""
    import threading

    errors: list[BaseException] = []

    def run(order: list[str], version: int) -> None:
        try:
            send(order, version)
        except BaseException as e:
            errors.append(e)

    for round_ in range(3):
        threads = [
            threading.Thread(target=run, args=(ids if i % 2 else ids[::-1], round_ * 10 + i + 1))
            for i in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return errors
