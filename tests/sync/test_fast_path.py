"""The real-time fast path of optiqoflow.upsert_record (one record of a known shape,
checked by _record_fault, the one validation) must decide exactly as the general path
(_analyse_records, evolution, _write_records) does. Every record below is sent twice:
once as the fast path takes it, once with a harmless difference that sends it down the
general path (its version in the envelope's occurred_at instead of its own updated_at),
and the stored rows, answers and tracking must agree. And what the fast path must never let
through (another tenant, bookkeeping keys, an id or version that is not one) is refused
with the same SQLSTATE whether apply_webhook or a DBA's direct call brings it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.helpers import SOURCE, TARGET, apply, new_id, rec, row, upsert, v

Conn = psycopg.Connection[Any]

BOOKKEEPING = ("_of_written_at", "_of_xid", "_of_sync_run", "_of_log_id")


def _tracked(c: Conn, tenant: str) -> list[str]:
    got = c.execute(
        "SELECT columns FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = %s",
        (tenant, TARGET),
    ).fetchone()
    return list(got[0]) if got else []


def _data(r: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored row without its bookkeeping, tenant or the general path's extra column."""
    if r is None:
        return None
    return {k: val for k, val in r.items() if k not in (*BOOKKEEPING, "id", "tenant_id")}


def _apply_counting(c: Conn, payload: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """apply_webhook's answer, and how often it called _analyse_records (the general
    path's validation): the backend's not yet reported calls, before and after."""
    calls = (
        "SELECT coalesce(pg_stat_get_xact_function_calls("
        "'optiqoflow._analyse_records(uuid, jsonb, timestamptz)'::regprocedure), 0)"
    )
    with c.transaction():
        c.execute("SET LOCAL track_functions = 'all'")
        before = c.execute(calls).fetchone()
        answer = apply(c, payload)
        after = c.execute(calls).fetchone()
    assert before is not None and after is not None
    return answer, int(after[0]) - int(before[0])


def test_fast_and_general_paths_store_the_same(conn: Conn, tenant: str) -> None:
    # the "general" records carry their version as the envelope's occurred_at: the same
    # version to the general path; the fast path takes only a record's own updated_at
    steps = [
        ("INSERT", 1, {"title": "a", "priority": 2}, "applied"),
        ("UPDATE", 1, {"title": "again"}, "duplicate"),
        ("UPDATE", 0, {"title": "older"}, "stale"),
        ("UPDATE", 2, {"title": None, "priority": 5}, "applied"),
        ("UPDATE", 3, {"priority": 7}, "applied"),  # title absent: keeps its stored value
    ]
    id_fast, id_general = new_id(), new_id()
    apply(conn, upsert(tenant, rec(new_id(), 0, title="first")))  # creates the table: general
    for op, n, cols, status in steps:
        fast, fast_calls = _apply_counting(
            conn, upsert(tenant, rec(id_fast, n, tenant_id=tenant, **cols), op)
        )
        general, general_calls = _apply_counting(
            conn, upsert(tenant, rec(id_general, None, tenant_id=tenant, **cols), op, occurred_at=v(n))
        )
        assert (fast_calls, general_calls) == (0, 1)  # each took the path it is here for
        assert fast["status"] == general["status"] == status, (fast, general)
        assert fast["rows"] == general["rows"]
        stored_fast = _data(row(conn, tenant, id_fast))
        stored_general = _data(row(conn, tenant, id_general))
        assert stored_fast is not None and stored_fast == stored_general
    assert "title" in _tracked(conn, tenant) and "priority" in _tracked(conn, tenant)


def test_tombstones_bind_the_fast_path(conn: Conn, tenant: str) -> None:
    id_ = new_id()
    assert apply(conn, upsert(tenant, rec(id_, 1, title="a")))["status"] == "applied"
    gone = {"type": "DELETE", "table": SOURCE, "tenant_id": tenant, "old_record": rec(id_, 5)}
    assert apply(conn, gone)["status"] == "applied"
    assert apply(conn, upsert(tenant, rec(id_, 4, title="late")))["status"] == "stale"
    assert row(conn, tenant, id_) is None
    assert apply(conn, upsert(tenant, rec(id_, 6, title="back")))["status"] == "applied"
    assert (row(conn, tenant, id_) or {})["title"] == "back"
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.tombstones WHERE tenant_id = %s AND id = %s",
        (tenant, id_),
    ).fetchone() == (0,)


@pytest.mark.parametrize(
    ("record", "sqlstate"),
    [
        ({"_of_xid": "1"}, "OF013"),  # a bookkeeping column: a column, but never a key
        ({"_of_sync_run": None}, "OF013"),
        ({"tenant_id": "other"}, "OF003"),
        ({"id": "not-a-uuid"}, "OF005"),
        ({"updated_at": "now"}, "OF006"),
    ],
)
def test_what_the_fast_path_must_not_let_through(
    conn: Conn, tenant: str, record: dict[str, Any], sqlstate: str
) -> None:
    apply(conn, upsert(tenant, rec(new_id(), 1, title="warm")))  # table, columns, writer exist
    r = rec(new_id(), 2, title="x")
    if record.get("tenant_id") == "other":
        record = {"tenant_id": str(uuid.uuid4())}
    r.update(record)
    # through apply_webhook (refused and logged) ...
    answer = apply(conn, upsert(tenant, r))
    assert answer["status"] == "refused" and answer["sqlstate"] == sqlstate, answer
    # ... and called directly, as a DBA would
    with pytest.raises(psycopg.Error) as raised:
        conn.execute(
            "SELECT optiqoflow.upsert_record(%s, %s, %s::jsonb)", (tenant, SOURCE, json.dumps(r))
        )
    assert raised.value.sqlstate == sqlstate
    assert conn.execute(
        f"SELECT count(*) FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND title = 'x'", (tenant,)
    ).fetchone() == (0,)


def test_a_new_key_leaves_the_fast_path_and_evolves(conn: Conn, tenant: str) -> None:
    apply(conn, upsert(tenant, rec(new_id(), 1, title="warm")))
    answer = apply(conn, upsert(tenant, rec(new_id(), 2, brand_new_field=v(3))))
    assert answer["status"] == "applied" and answer["added_columns"] == ["brand_new_field"], answer
    assert "brand_new_field" in _tracked(conn, tenant)
