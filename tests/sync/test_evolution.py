"""Schema evolution: policies, inferred types, concurrency, bad names and bad values.

The rules are in docs/semantics.md ("Columns and schema evolution", "Refusals").
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.helpers import apply, next_version, rec, upsert


def column_types(
    c: psycopg.Connection[Any], relation: str = "optiqoflow.work_orders"
) -> dict[str, str]:
    return {
        name: typ
        for name, typ in c.execute(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (relation,),
        )
    }


def set_policy(c: psycopg.Connection[Any], policy: str, source: str = "adhoc_work_orders") -> None:
    c.execute(
        "UPDATE optiqoflow.table_mappings SET schema_evolution = %s WHERE source_table = %s",
        (policy, source),
    )


def tracked(
    c: psycopg.Connection[Any], tenant: str, table: str = "work_orders"
) -> list[str] | None:
    row = c.execute(
        "SELECT columns FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = %s",
        (tenant, table),
    ).fetchone()
    return None if row is None else row[0]


def logged(c: psycopg.Connection[Any], log_id: int) -> tuple[Any, ...]:
    row = c.execute(
        # the payload of a refusal is kept once, in refused_deliveries
        "SELECT l.outcome, l.sqlstate, coalesce(l.payload, r.payload), l.detail, l.error"
        " FROM optiqoflow.webhook_logs l LEFT JOIN optiqoflow.refused_deliveries r ON r.log_id = l.id"
        " WHERE l.id = %s",
        (log_id,),
    ).fetchone()
    assert row is not None
    return tuple(row)


def catalog(c: psycopg.Connection[Any]) -> list[Any]:
    """Everything a push could create, drop or change: relations of our schemas with their
    columns, options, rights and view definitions; policies; mappings; tracking."""
    rels = c.execute(
        """
        SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text, c.relacl::text,
               c.reloptions::text, c.relrowsecurity,
               ARRAY(SELECT a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                       FROM pg_attribute a
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum),
               (SELECT r.xmin::text FROM pg_rewrite r WHERE r.ev_class = c.oid AND c.relkind = 'v')
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('optiqoflow', 'tenants', 'public')
         ORDER BY 2, 3
        """
    ).fetchall()
    policies = c.execute(
        "SELECT polrelid::bigint, polname::text, xmin::text FROM pg_policy ORDER BY 1, 2"
    ).fetchall()
    mappings = c.execute("SELECT * FROM optiqoflow.table_mappings ORDER BY 1").fetchall()
    tracking = c.execute("SELECT * FROM tenants.tenant_column_access ORDER BY 1, 2").fetchall()
    return [rels, policies, mappings, tracking]


# --- policies and types --------------------------------------------------------------


def test_policy_add_infers_types(conn: psycopg.Connection[Any], tenant: str) -> None:
    answer = apply(conn, upsert(tenant, rec(
        ev_text="x", ev_number=1.5, ev_integer=7, ev_bool=False, ev_object={"a": 1}, ev_array=[1, "two"],
        ev_empty_array=[], ev_only_null=None,
    )))  # fmt: skip
    assert answer["status"] == "applied", answer
    types = column_types(conn)
    assert {k: v for k, v in types.items() if k.startswith("ev_")} == {
        "ev_text": "text", "ev_number": "numeric", "ev_integer": "numeric", "ev_bool": "boolean",
        "ev_object": "jsonb", "ev_array": "jsonb", "ev_empty_array": "jsonb",
    }  # fmt: skip
    assert "ev_only_null" not in tracked(conn, tenant)  # type: ignore[operator]
    row = conn.execute(
        "SELECT ev_text, ev_number, ev_integer, ev_bool, ev_object, ev_array FROM optiqoflow.work_orders WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    assert row is not None
    assert (row[0], str(row[1]), str(row[2]), row[3], row[4], row[5]) == (
        "x",
        "1.5",
        "7",
        False,
        {"a": 1},
        [1, "two"],
    )
    # the tenant's view shows them, typed as in the table
    view_types = column_types(conn, f'tenants."{tenant}_work_orders"')
    assert {k: v for k, v in view_types.items() if k.startswith("ev_")} == {
        k: v for k, v in types.items() if k.startswith("ev_")
    }

    # a key that has only ever been null is added once a value arrives
    assert apply(conn, upsert(tenant, rec(ev_only_null=None)))["status"] == "applied"
    assert "ev_only_null" not in column_types(conn)
    assert apply(conn, upsert(tenant, rec(ev_only_null="now a value")))["status"] == "applied"
    assert column_types(conn)["ev_only_null"] == "text"
    assert "ev_only_null" in (tracked(conn, tenant) or [])

    # a FULL_SYNC batch types each new key from all its records
    answer = apply(conn, {"type": "FULL_SYNC", "table": "zone_categories", "tenant_id": tenant, "offset": 0,
                          "records": [rec(fs_flag=None, fs_n=None), rec(fs_flag=True, fs_n=3)]})  # fmt: skip
    assert answer["status"] == "applied", answer
    types = column_types(conn, "optiqoflow.zones")
    assert (types["fs_flag"], types["fs_n"]) == ("boolean", "numeric")


def test_policy_ignore_drops_new_keys_and_says_so(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    set_policy(conn, "ignore")
    before = column_types(conn)
    record = rec(title="kept", surprise="dropped", surprise_n=1)
    answer = apply(conn, upsert(tenant, record))
    assert answer["status"] == "applied", answer
    assert column_types(conn) == before
    assert conn.execute(
        "SELECT title FROM optiqoflow.work_orders WHERE id = %s", (record["id"],)
    ).fetchone() == ("kept",)
    assert tracked(conn, tenant) == ["id", "title", "updated_at"]
    outcome, _, _, detail, _ = logged(conn, answer["log_id"])
    assert outcome == "applied"
    assert "surprise" in json.dumps(detail) and "surprise_n" in json.dumps(detail), detail


def test_policy_refuse_refuses_the_delivery(conn: psycopg.Connection[Any], tenant: str) -> None:
    set_policy(conn, "refuse")
    before = catalog(conn)
    payload = {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
               "record": rec(title="t", not_yet_a_column="x")}  # fmt: skip
    answer = apply(conn, payload)
    assert answer["status"] == "refused", answer
    assert answer["sqlstate"].startswith("OF"), answer
    assert catalog(conn) == before
    assert conn.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone() == (0,)
    outcome, _, kept, _, _ = logged(conn, answer["log_id"])
    assert (outcome, kept) == ("refused", payload)
    # keys the table has are still welcome
    assert apply(conn, upsert(tenant, rec(title="t")))["status"] == "applied"
    # and once the DBA switches to add, the refused delivery replays
    set_policy(conn, "add")
    replayed = conn.execute("SELECT optiqoflow.replay_webhook(%s)", (answer["log_id"],)).fetchone()
    assert replayed is not None and replayed[0]["status"] == "applied", replayed
    assert column_types(conn)["not_yet_a_column"] == "text"


# --- concurrency -----------------------------------------------------------------------


def run_together(db_dsn: str, jobs: list[Any]) -> list[Any]:
    """Run each job(conn) on its own connection, all released at once; returns results."""
    barrier = threading.Barrier(len(jobs))
    results: list[Any] = [None] * len(jobs)

    def worker(i: int) -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True, options="-c statement_timeout=20s") as c:
                barrier.wait(timeout=20)
                results[i] = jobs[i](c)
        except BaseException as e:
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a push hung"
    return results


def test_two_tenants_add_columns_to_one_table_at_once(
    db_dsn: str, conn: psycopg.Connection[Any]
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    # both tenants have rows already, so each push also touches existing data
    for t in (a, b):
        assert apply(conn, upsert(t, rec(title="seed")))["status"] == "applied"
    for n in range(5):
        results = run_together(db_dsn, [
            lambda c, n=n: apply(c, upsert(a, rec(**{f"a_col_{n}": "a", f"both_{n}": 1, "title": "a"}))),
            lambda c, n=n: apply(c, upsert(b, rec(**{f"b_col_{n}": True, f"both_{n}": 2, "title": "b"}))),
            lambda c, n=n: apply(c, {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": a,
                                     "sync_id": f"run-{n}", "offset": 0, "total": 100,
                                     "records": [rec(**{f"fs_col_{n}": [n]})]}),
        ])  # fmt: skip
        assert [r if isinstance(r, BaseException) else r["status"] for r in results] == [
            "applied"
        ] * 3, results
        types = column_types(conn)
        assert (
            types[f"a_col_{n}"],
            types[f"b_col_{n}"],
            types[f"both_{n}"],
            types[f"fs_col_{n}"],
        ) == ("text", "boolean", "numeric", "jsonb")
    assert "both_4" in (tracked(conn, a) or []) and "b_col_4" not in (tracked(conn, a) or [])
    assert "a_col_4" not in (tracked(conn, b) or [])


def test_a_tenant_adds_a_column_another_tenants_uncommitted_push_is_adding(
    db_dsn: str, conn: psycopg.Connection[Any]
) -> None:
    """Deterministic: A's push has added `aa_shared` and not committed; B pushes `aa_shared`
    and `b_only`. B waits, then applies (no duplicate-column error, no deadlock). The shared
    key sorts first, so B looks for it before it holds any lock on the table."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for t in (a, b):
        assert apply(conn, upsert(t, rec(title="seed")))["status"] == "applied"
    result: dict[str, Any] = {}
    pids: list[int] = []

    def b_push() -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True, options="-c statement_timeout=20s") as c:
                pids.append(c.info.backend_pid)
                result["b"] = apply(c, upsert(b, rec(aa_shared=2, b_only="y", title="b")))
        except BaseException as e:
            result["b"] = e

    with psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn, autocommit=True) as monitor:
        assert (
            apply(first, upsert(a, rec(aa_shared=1, a_only=True, title="a")))["status"] == "applied"
        )
        thread = threading.Thread(target=b_push)
        thread.start()
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            if pids and monitor.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pids[0],)
            ).fetchone() == (True,):
                break
            time.sleep(0.01)
        first.commit()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert not isinstance(result["b"], BaseException), repr(result["b"])
    assert result["b"]["status"] == "applied", result["b"]
    types = column_types(conn)
    assert (types["aa_shared"], types["a_only"], types["b_only"]) == ("numeric", "boolean", "text")
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.work_orders WHERE aa_shared IS NOT NULL"
    ).fetchone() == (2,)


def test_a_delivery_that_cannot_get_the_ddl_lock_raises_55P03(
    db_dsn: str, conn: psycopg.Connection[Any], tenant: str
) -> None:
    assert apply(conn, upsert(tenant, rec(title="seed")))["status"] == "applied"
    conn.execute("SET optiqoflow.ddl_lock_timeout = '200ms'")
    conn.execute("SET statement_timeout = '5s'")  # a push that queues fails the test, not hangs it
    before = catalog(conn)
    logs = conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone()
    record = rec(title="new", brand_new="x")
    with psycopg.connect(db_dsn) as dashboard:
        # a long dashboard query: its transaction holds ACCESS SHARE on the table
        dashboard.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone()
        t0 = time.monotonic()
        with pytest.raises(errors.LockNotAvailable):
            apply(conn, upsert(tenant, record))
        assert time.monotonic() - t0 < 2.0, "the push queued behind the reader"
        # meanwhile pushes without new columns go on
        assert apply(conn, upsert(tenant, rec(title="meanwhile")))["status"] == "applied"
        dashboard.rollback()
    assert catalog(conn) == before
    assert "brand_new" not in column_types(conn)
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.work_orders WHERE id = %s", (record["id"],)
    ).fetchone() == (0,)
    new_logs = conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone()
    assert logs is not None and new_logs == (logs[0] + 1,)  # only the push that went through
    # the retry succeeds once the reader is gone
    assert apply(conn, upsert(tenant, record))["status"] == "applied"
    assert column_types(conn)["brand_new"] == "text"


# --- names and values that are refused --------------------------------------------------

BAD_NAMES = [
    'id"; drop table x; --',
    'title" text); DROP TABLE x; --',
    '"quoted"',
    "Title",
    "UPPER",
    "camelCase",
    "a" * 64,
    "b" * 100,
    "_of_written_at",
    "_of_sync_run",
    "_of_new",
    "",
    "with space",
    "dash-ed",
    "1starts_with_digit",
    "ümlaut",
    "semi;colon",
    "new\ncolumn",
]


def test_bad_column_names_are_refused_and_nothing_changes(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    conn.execute("CREATE TABLE public.x (v int)")
    assert apply(conn, upsert(tenant, rec(title="seed")))["status"] == "applied"
    before = catalog(conn)
    rows_before = conn.execute("SELECT * FROM optiqoflow.work_orders ORDER BY id").fetchall()
    for name in BAD_NAMES:
        for payload in (
            {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
             "record": rec(title="changed", fresh_column="x", **{name: "v"})},
            {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "offset": 0,
             "records": [rec(fresh_column="x"), rec(**{name: 1})]},
        ):  # fmt: skip
            answer = apply(conn, payload)
            assert answer["status"] == "refused", (name, answer)
            assert answer["sqlstate"].startswith("OF"), (name, answer)
            outcome, _, kept, _, _ = logged(conn, answer["log_id"])
            assert (outcome, kept) == ("refused", payload), name
        assert catalog(conn) == before, f"the catalog changed for {name!r}"
    assert (
        conn.execute("SELECT * FROM optiqoflow.work_orders ORDER BY id").fetchall() == rows_before
    )
    assert conn.execute("SELECT to_regclass('public.x') IS NOT NULL").fetchone() == (True,)

    # a 63-character name is fine, and arrives whole (PostgreSQL cuts longer ones silently:
    # ours are refused instead)
    longest = "c" * 63
    assert apply(conn, upsert(tenant, rec(**{longest: "v"})))["status"] == "applied"
    assert column_types(conn)[longest] == "text"
    assert longest in (tracked(conn, tenant) or [])


BAD_VALUES = [
    ("priority", "abc"),  # text into smallint
    ("priority", 99999),  # out of range
    ("cost_eur", "12,50"),  # text into numeric
    ("cost_eur", 1e15),  # numeric(12,2) overflow
    ("due_at", "yesterday-ish"),  # not a timestamp
    ("billable", "maybe"),
    ("site_id", "not-a-uuid"),
    ("evolved_n", "twelve"),  # text into a numeric column schema evolution added
]


def test_a_value_that_does_not_fit_is_refused_and_kept(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    first = rec(title="first", priority=1, evolved_n=1)
    assert apply(conn, upsert(tenant, first))["status"] == "applied"
    before = catalog(conn)
    rows_before = conn.execute("SELECT * FROM optiqoflow.work_orders ORDER BY id").fetchall()
    for column, bad_value in BAD_VALUES:
        # an update of the stored row, with a good new column beside the bad value
        payload = {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenant,
                   "record": {**first, "updated_at": next_version(), "title": "second", "fresh_col": "x", column: bad_value}}  # fmt: skip
        answer = apply(conn, payload)
        assert answer["status"] == "refused", (column, bad_value, answer)
        assert answer["sqlstate"][:2] in ("22", "OF"), answer
        # no column added; tracking, views and rights as they were
        assert catalog(conn) == before, (column, bad_value)
        assert (
            conn.execute("SELECT * FROM optiqoflow.work_orders ORDER BY id").fetchall()
            == rows_before
        )
        outcome, sqlstate, kept, _, error = logged(conn, answer["log_id"])
        assert (outcome, sqlstate, kept) == ("refused", answer["sqlstate"], payload)
        assert error

        # one bad record refuses a whole FULL_SYNC batch
        payload = {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "offset": 0,
                   "records": [rec(title="ok"), rec(**{column: bad_value})]}  # fmt: skip
        answer = apply(conn, payload)
        assert answer["status"] == "refused", (column, bad_value, answer)
        assert (
            conn.execute("SELECT * FROM optiqoflow.work_orders ORDER BY id").fetchall()
            == rows_before
        )
        assert logged(conn, answer["log_id"])[:3] == ("refused", answer["sqlstate"], payload)


def test_a_new_mapping_gets_its_table_on_the_first_push(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    """docs/sources.md, "Adding a source table": a DBA adds a mapping with one INSERT; the
    first push creates the target (tenant_id, id, updated_at, bookkeeping), which then
    grows by evolution, secured like the 21 others."""
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table)"
        " VALUES ('equipment_items', 'equipment')"
    )
    assert column_types(conn, "optiqoflow.equipment") == {}
    answer = apply(
        conn, upsert(tenant, rec(name="vacuum", watts=1200, tags=["a"]), table="equipment_items")
    )
    assert answer["status"] == "applied" and answer["table"] == "equipment", answer

    types = column_types(conn, "optiqoflow.equipment")
    assert {k: types[k] for k in ("tenant_id", "id", "updated_at")} == {
        "tenant_id": "uuid", "id": "uuid", "updated_at": "timestamp with time zone",
    }  # fmt: skip
    assert {k: types[k] for k in ("name", "watts", "tags")} == {
        "name": "text", "watts": "numeric", "tags": "jsonb",
    }  # fmt: skip
    assert {k for k in types if k.startswith("_of_")} == {
        "_of_written_at", "_of_xid", "_of_sync_run", "_of_log_id",
    }  # fmt: skip
    rls, policies = conn.execute(
        "SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)"
        " FROM pg_class c WHERE c.oid = 'optiqoflow.equipment'::regclass"
    ).fetchone()  # type: ignore[misc]
    assert rls and policies == 2
    assert conn.execute(
        "SELECT has_table_privilege('authenticated', 'optiqoflow.equipment', 'SELECT'),"
        " has_table_privilege('anon', 'optiqoflow.equipment', 'SELECT')"
    ).fetchone() == (True, False)
    assert conn.execute(
        "SELECT name, watts FROM optiqoflow.equipment WHERE tenant_id = %s", (tenant,)
    ).fetchall() == [("vacuum", 1200)]
