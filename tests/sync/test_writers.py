"""The generated writers (optiqoflow._writer, one template) and how they are run: one per
target table and column list, made on first use, run by optiqoflow._run_writer (an
EXECUTE of one function call) from every path. These tests hold them to that: a migrated
database has none, the first delivery makes its table's, a new column makes a new one
and the old one still runs, two sessions making writers at once do not wait for one
another, and what is dropped comes back.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg

from tests.helpers import TARGET, apply, new_id, rec, upsert

Conn = psycopg.Connection[Any]


def _current_writer(c: Conn, table: str) -> str:
    row = c.execute(
        "SELECT optiqoflow._writer_name(%s, optiqoflow._columns(%s))", (table, table)
    ).fetchone()
    assert row is not None
    return str(row[0])


def _writers(c: Conn, table: str) -> set[str]:
    return {
        str(r[0])
        for r in c.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'optiqoflow_gen'::regnamespace "
            "AND proname LIKE %s",
            (table + "\\_%",),
        )
    }


def _new_key() -> str:
    return "f_" + uuid.uuid4().hex[:12]


def test_a_migrated_database_has_no_writer(conn: Conn) -> None:
    assert _writers(conn, TARGET) == set()
    assert conn.execute(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'optiqoflow_gen'::regnamespace"
        " AND proname = 'call_writer'"
    ).fetchone() == (0,)  # the generated dispatcher of earlier releases is gone


def test_the_first_delivery_makes_its_tables_writer(conn: Conn, tenant: str) -> None:
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    assert answer["status"] == "applied", answer
    assert _writers(conn, TARGET) == {_current_writer(conn, TARGET)}


def test_a_new_column_makes_a_new_writer(conn: Conn, tenant: str) -> None:
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    old = _current_writer(conn, TARGET)
    key = _new_key()
    id_ = new_id()
    answer = apply(conn, upsert(tenant, rec(id_, 2, **{key: "x"})))
    assert answer["status"] == "applied" and answer["added_columns"] == [key], answer
    new = _current_writer(conn, TARGET)
    assert new != old and _writers(conn, TARGET) == {old, new}
    # the fast path after the change: through the new writer, the new column included
    answer = apply(conn, upsert(tenant, rec(id_, 3, **{key: "y"}), op="UPDATE"))
    assert answer["status"] == "applied", answer
    assert conn.execute(
        f'SELECT "{key}" FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s', (tenant, id_)
    ).fetchone() == ("y",)


def test_an_older_writer_still_runs(conn: Conn, tenant: str) -> None:
    """A session still holding an older column list runs an older writer, with the same
    outcome as the current one."""
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    old = _current_writer(conn, TARGET)
    apply(conn, upsert(tenant, rec(new_id(), 2, **{_new_key(): "x"})))
    assert old != _current_writer(conn, TARGET)
    id_ = new_id()
    call = (
        "SELECT * FROM optiqoflow._run_writer(%s, %s, %s, %s::jsonb, %s, now(), "
        "pg_current_xact_id(), NULL)"
    )
    record = json.dumps([rec(id_, 5, title="old writer")])
    present = ["id", "updated_at", "title"]
    assert conn.execute(call, (old, tenant, TARGET, record, present)).fetchone() == (1, 0, 0)
    assert conn.execute(call, (old, tenant, TARGET, record, present)).fetchone() == (0, 1, 0)
    assert conn.execute(
        f"SELECT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s", (tenant, id_)
    ).fetchone() == ("old writer",)


def test_two_sessions_making_writers_at_once_both_land(db_dsn: str, tenant: str) -> None:
    """Writers of two tables made in two open transactions: the second does not wait for
    the first (each takes its own table's DDL lock only)."""
    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn) as second:
        other_source, other_target = first.execute(
            "SELECT source_table, target_table FROM optiqoflow.table_mappings "
            "WHERE target_table <> %s ORDER BY 1 LIMIT 1",
            (TARGET,),
        ).fetchone() or ("", "")

        def other(n: int) -> dict[str, Any]:
            return {"type": "INSERT", "table": other_source, "tenant_id": str(uuid.uuid4()),
                    "record": rec(new_id(), n)}  # fmt: skip

        assert apply(first, upsert(tenant, rec(new_id(), 1, title="a")))["status"] == "applied"
        # waiting for `first` would end in a lock timeout (55P03) and fail this call
        assert apply(second, other(1))["status"] == "applied"
        second.commit()
        first.commit()
    with psycopg.connect(db_dsn, autocommit=True) as c:
        assert _current_writer(c, TARGET) in _writers(c, TARGET)
        assert _current_writer(c, other_target) in _writers(c, other_target)
        assert apply(c, other(2))["status"] == "applied"


def test_the_generated_functions_may_be_dropped_and_come_back(conn: Conn, tenant: str) -> None:
    """docs/database.md: the writers are safe to drop, the next delivery makes what it
    needs, real-time or FULL_SYNC."""
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))

    def drop_writers() -> None:
        for (signature,) in conn.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p "
            "WHERE p.pronamespace = 'optiqoflow_gen'::regnamespace AND p.proname <> 'tenant_claim_path'"
        ).fetchall():
            conn.execute(f"DROP FUNCTION {signature}")

    drop_writers()
    id_ = new_id()
    assert apply(conn, upsert(tenant, rec(id_, 2, title="real-time")))["status"] == "applied"
    assert _writers(conn, TARGET) == {_current_writer(conn, TARGET)}
    drop_writers()
    batch = {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "offset": 0,
             "records": [rec(id_, 3, title="batch"), rec(new_id(), 3, title="batch")]}  # fmt: skip
    assert apply(conn, batch)["status"] == "applied"
    assert _writers(conn, TARGET) == {_current_writer(conn, TARGET)}
    assert conn.execute(
        f"SELECT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s", (tenant, id_)
    ).fetchone() == ("batch",)
