"""Every caller runs a generated writer through optiqoflow_gen.call_writer, which calls
each table's current writer statically (no EXECUTE, so nothing is parsed or planned per
real-time delivery) and any other writer through EXECUTE. It is regenerated with every
new writer, in the same transaction; these tests hold it to that: the current writer is
named after the first delivery and after a new column, a writer it does not name still
runs, two sessions making writers at once do not wait for one another (and the switch
catches up on the next call), and what is dropped comes back.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import psycopg

from tests.helpers import TARGET, apply, new_id, rec, upsert

Conn = psycopg.Connection[Any]

ARGS = "(text, uuid, text, jsonb, text[], timestamptz, xid8, bigint)"


def _switched(c: Conn) -> set[str]:
    """The writer names call_writer calls statically."""
    row = c.execute(
        f"SELECT pg_get_functiondef('optiqoflow_gen.call_writer{ARGS}'::regprocedure)"
    ).fetchone()
    assert row is not None
    return set(re.findall(r"WHEN '([^']+)' THEN", row[0]))


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


def test_a_migrated_database_has_the_switch_and_no_writer(conn: Conn) -> None:
    assert _switched(conn) == set()
    assert _writers(conn, TARGET) == set()


def test_the_first_delivery_names_its_tables_writer(conn: Conn, tenant: str) -> None:
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    assert answer["status"] == "applied", answer
    current = _current_writer(conn, TARGET)
    assert _writers(conn, TARGET) == {current}
    assert _switched(conn) == {current}


def test_a_new_column_switches_to_the_new_writer(conn: Conn, tenant: str) -> None:
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    old = _current_writer(conn, TARGET)
    key = _new_key()
    id_ = new_id()
    answer = apply(conn, upsert(tenant, rec(id_, 2, **{key: "x"})))
    assert answer["status"] == "applied" and answer["added_columns"] == [key], answer
    new = _current_writer(conn, TARGET)
    assert new != old and _writers(conn, TARGET) == {old, new}
    assert _switched(conn) == {new}
    # the fast path after the change: through the new writer, the new column included
    answer = apply(conn, upsert(tenant, rec(id_, 3, **{key: "y"}), op="UPDATE"))
    assert answer["status"] == "applied", answer
    assert conn.execute(
        f'SELECT "{key}" FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s', (tenant, id_)
    ).fetchone() == ("y",)


def test_a_writer_the_switch_does_not_name_still_runs(conn: Conn, tenant: str) -> None:
    """A session still holding an older column list calls an older writer: EXECUTE runs
    it, with the same outcome as a static call."""
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    old = _current_writer(conn, TARGET)
    apply(conn, upsert(tenant, rec(new_id(), 2, **{_new_key(): "x"})))
    assert old not in _switched(conn)
    id_ = new_id()
    call = (
        "SELECT * FROM optiqoflow_gen.call_writer(%s, %s, %s, %s::jsonb, %s, now(), "
        "pg_current_xact_id(), NULL)"
    )
    record = json.dumps([rec(id_, 5, title="old writer")])
    present = ["id", "updated_at", "title"]
    assert conn.execute(call, (old, tenant, TARGET, record, present)).fetchone() == (1, 0, 0)
    assert conn.execute(call, (old, tenant, TARGET, record, present)).fetchone() == (0, 1, 0)
    assert conn.execute(
        f"SELECT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s", (tenant, id_)
    ).fetchone() == ("old writer",)


def _switch_version(c: Conn) -> str:
    row = c.execute(
        f"SELECT xmin::text FROM pg_proc WHERE oid = 'optiqoflow_gen.call_writer{ARGS}'::regprocedure"
    ).fetchone()
    assert row is not None
    return str(row[0])


def test_two_sessions_making_writers_at_once_both_land(db_dsn: str, tenant: str) -> None:
    """Writers of two tables made in two open transactions: the second does not wait for
    the first one's regeneration of the switch (the first may hold a table lock the second
    wants next: waiting could deadlock). Its writer runs through EXECUTE until its first
    call there, which regenerates the switch; after that, no more DDL."""
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
        # `first` holds the switch's lock until it commits; waiting for it would end in a
        # lock timeout (55P03, the DDL lock timeout) and fail this call
        assert apply(second, other(1))["status"] == "applied"
        second.commit()
        first.commit()
    with psycopg.connect(db_dsn, autocommit=True) as c:
        mine, theirs = _current_writer(c, TARGET), _current_writer(c, other_target)
        assert theirs in _writers(c, other_target)
        assert _switched(c) == {mine}  # made before the other writer existed
        assert apply(c, other(2))["status"] == "applied"  # through EXECUTE, and regenerates
        assert _switched(c) == {mine, theirs}
        version = _switch_version(c)
        assert apply(c, other(3))["status"] == "applied"  # statically now: no DDL
        assert apply(c, upsert(tenant, rec(new_id(), 2, title="b")))["status"] == "applied"
        assert _switch_version(c) == version


def test_the_generated_functions_may_be_dropped_and_come_back(conn: Conn, tenant: str) -> None:
    """docs/database.md: optiqoflow_gen is safe to drop, the next delivery makes what it
    needs."""
    apply(conn, upsert(tenant, rec(new_id(), 1, title="first")))
    for (signature,) in conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = 'optiqoflow_gen'::regnamespace"
    ).fetchall():
        conn.execute(f"DROP FUNCTION {signature}")
    id_ = new_id()
    assert apply(conn, upsert(tenant, rec(id_, 2, title="real-time")))["status"] == "applied"
    assert _switched(conn) == {_current_writer(conn, TARGET)}
    conn.execute(f"DROP FUNCTION optiqoflow_gen.call_writer{ARGS}")
    batch = {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "offset": 0,
             "records": [rec(id_, 3, title="batch"), rec(new_id(), 3, title="batch")]}  # fmt: skip
    assert apply(conn, batch)["status"] == "applied"
    assert _switched(conn) == {_current_writer(conn, TARGET)}
    assert conn.execute(
        f"SELECT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s", (tenant, id_)
    ).fetchone() == ("batch",)
