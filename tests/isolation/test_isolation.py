"""Tenant isolation: column tracking, the per-tenant views and tenant-id spellings.

The rules are in docs/semantics.md ("Tenant safety", "Per-tenant views"). Rights (who
may read or change what) are in test_privileges.py; schema evolution in
tests/sync/test_evolution.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from tests.helpers import apply, next_version, push, rec, upsert


def cols(names: str) -> list[str]:
    """Column names, space-separated, as a list."""
    return names.split()


def view_columns(c: psycopg.Connection[Any], tenant: str, table: str) -> list[str] | None:
    """Column names of tenants."{tenant}_{table}" in order, or None when it does not exist."""
    row = c.execute(
        "SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass(format('tenants.%%I', %s::text))"
        "   AND a.attnum > 0 AND NOT a.attisdropped",
        (f"{tenant}_{table}",),
    ).fetchone()
    assert row is not None
    return row[0]


def tracked(c: psycopg.Connection[Any], tenant: str, table: str) -> list[str] | None:
    row = c.execute(
        "SELECT columns FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = %s",
        (tenant, table),
    ).fetchone()
    return None if row is None else row[0]


def regenerations(c: psycopg.Connection[Any], tenant: str, table: str) -> int:
    row = c.execute(
        "SELECT view_regenerations FROM tenants.tenant_column_access"
        " WHERE tenant_id = %s AND table_name = %s",
        (tenant, table),
    ).fetchone()
    assert row is not None
    return int(row[0])


def view_rule_xmin(c: psycopg.Connection[Any], tenant: str, table: str) -> str:
    """xmin of the view's rewrite rule: it moves whenever the view is (re)defined."""
    row = c.execute(
        "SELECT r.xmin::text FROM pg_rewrite r"
        " WHERE r.ev_class = to_regclass(format('tenants.%%I', %s::text))",
        (f"{tenant}_{table}",),
    ).fetchone()
    assert row is not None
    return str(row[0])


def select_view(c: psycopg.Connection[Any], tenant: str, table: str, cols: str = "*") -> list[Any]:
    return c.execute(
        sql.SQL("SELECT {} FROM tenants.{} ORDER BY id").format(
            sql.SQL(cols), sql.Identifier(f"{tenant}_{table}")
        )
    ).fetchall()


# --- 1. column tracking ------------------------------------------------------------


def test_tracked_columns_are_the_sorted_union_of_non_null_keys(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, title="a", priority=1, status=None)
    assert tracked(conn, tenant, "work_orders") == ["id", "priority", "title", "updated_at"]

    # a later push adds its non-null keys; keys it sends as null, or leaves out, stay tracked
    push(conn, tenant, description="d", priority=None, status="open", tenant_id=tenant)
    want = ["description", "id", "priority", "status", "tenant_id", "title", "updated_at"]
    assert tracked(conn, tenant, "work_orders") == want

    # FULL_SYNC records count too, each one's keys
    answer = apply(conn, {
        "type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "offset": 0,
        "total": 2, "records": [rec(billable=True), rec(requested_by="x", billable=None)],
    })  # fmt: skip
    assert answer["status"] == "applied", answer
    assert tracked(conn, tenant, "work_orders") == sorted([*want, "billable", "requested_by"])


def test_dba_resets_tracking_and_removed_columns_leave_the_view(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, title="t", status="open", priority=2)
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id title status priority updated_at"
    )

    # reset by UPDATE: one column taken out of tracking disappears from the view
    conn.execute(
        "UPDATE tenants.tenant_column_access SET columns = array_remove(columns, 'status')"
        " WHERE tenant_id = %s AND table_name = 'work_orders'",
        (tenant,),
    )
    conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,))
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id title priority updated_at"
    )
    assert [r[0] for r in select_view(conn, tenant, "work_orders", "title")] == ["t"]

    # the next push of the same columns tracks status again (the set grew) and shows it
    push(conn, tenant, title="u", status="closed")
    assert "status" in (view_columns(conn, tenant, "work_orders") or [])


def test_dba_resets_tracking_by_deleting_the_row(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, title="t", status="open")
    push(conn, tenant, "zone_categories", name="z")
    conn.execute(
        "DELETE FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = 'work_orders'",
        (tenant,),
    )
    conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,))
    # every column left tracking, so none of the pushed columns may still be shown
    assert view_columns(conn, tenant, "work_orders") in (None, ["id", "tenant_id"]), (
        "after DELETE of the tracking row and regenerate_tenant_views, the view still shows "
        f"untracked columns: {view_columns(conn, tenant, 'work_orders')}"
    )
    # the other table of the tenant is untouched
    assert view_columns(conn, tenant, "zones") == ["id", "tenant_id", "name", "updated_at"]

    # tracking starts afresh from the next push
    push(conn, tenant, priority=1)
    assert tracked(conn, tenant, "work_orders") == ["id", "priority", "updated_at"]
    assert view_columns(conn, tenant, "work_orders") == cols("id tenant_id priority updated_at")


# --- 2. the views ------------------------------------------------------------------


def test_views_per_tenant_and_table_show_own_rows_and_pushed_columns(
    conn: psycopg.Connection[Any],
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    shared_id = str(uuid.uuid4())
    v = next_version()
    # the same id in both tenants: two rows, one per tenant
    push(conn, a, record=rec(shared_id, v, title="A title", priority=1))
    push(conn, b, record=rec(shared_id, v, status="B status", cost_eur=9.5))
    push(conn, a, title="A second")
    push(conn, a, "zone_categories", name="A zone", active=True)

    views = {
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' AND relname <> 'sync_status'"
        )
    }
    assert views == {f"{a}_work_orders", f"{a}_zones", f"{b}_work_orders"}

    # only the tenant's rows, only id, tenant_id and the pushed columns, in table order
    assert view_columns(conn, a, "work_orders") == cols("id tenant_id title priority updated_at")
    assert view_columns(conn, b, "work_orders") == cols("id tenant_id status cost_eur updated_at")
    rows_a = select_view(conn, a, "work_orders", "tenant_id::text, title, priority")
    assert sorted(rows_a, key=str) == sorted([(a, "A title", 1), (a, "A second", None)], key=str)
    rows_b = select_view(conn, b, "work_orders", "id::text, tenant_id::text, status, cost_eur")
    assert [tuple(map(str, r)) for r in rows_b] == [(shared_id, b, "B status", "9.50")]

    # typed exactly as the base table
    mismatched = conn.execute(
        """
        SELECT v.relname, va.attname, format_type(va.atttypid, va.atttypmod),
               format_type(ta.atttypid, ta.atttypmod)
          FROM pg_class v
          JOIN pg_attribute va ON va.attrelid = v.oid AND va.attnum > 0
          JOIN pg_attribute ta ON ta.attrelid = format('optiqoflow.%I',
                                      substr(v.relname, 38))::regclass AND ta.attname = va.attname
         WHERE v.relnamespace = 'tenants'::regnamespace AND v.relkind = 'v' AND v.relname <> 'sync_status'
           AND (va.atttypid, va.atttypmod) IS DISTINCT FROM (ta.atttypid, ta.atttypmod)
        """
    ).fetchall()
    assert mismatched == []
    n_typed = conn.execute(
        "SELECT count(*) FROM pg_attribute a JOIN pg_class v ON v.oid = a.attrelid"
        " WHERE v.relnamespace = 'tenants'::regnamespace AND v.relkind = 'v' AND v.relname <> 'sync_status' AND a.attnum > 0"
    ).fetchone()
    assert n_typed is not None and n_typed[0] == 5 + 5 + 5


def test_views_regenerated_exactly_when_the_column_set_grows(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, title="a", status="open")
    assert regenerations(conn, tenant, "work_orders") == 1
    rule = view_rule_xmin(conn, tenant, "work_orders")
    row = conn.execute(
        "SELECT xmin::text FROM tenants.tenant_column_access WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    assert row is not None
    tracking_xmin = row[0]

    # same columns, a subset, keys sent as null, an update of a known row: no new column
    push(conn, tenant, title="b", status="closed")
    push(conn, tenant, title="c")
    push(conn, tenant, title="d", priority=None, description=None)
    r = rec(status="x")
    apply(conn, upsert(tenant, r))
    assert apply(conn, {
        "type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenant,
        "record": {**r, "updated_at": next_version(), "status": "y"},
    })["status"] == "applied"  # fmt: skip
    assert regenerations(conn, tenant, "work_orders") == 1
    assert view_rule_xmin(conn, tenant, "work_orders") == rule, "the view was redefined"
    row = conn.execute(
        "SELECT xmin::text FROM tenants.tenant_column_access WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    assert row is not None and row[0] == tracking_xmin, (
        "the tracking row was rewritten although no column was new"
    )

    # a new column: exactly one regeneration
    push(conn, tenant, title="e", priority=3)
    assert regenerations(conn, tenant, "work_orders") == 2
    assert view_rule_xmin(conn, tenant, "work_orders") != rule
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id title status priority updated_at"
    )

    # another tenant's new columns never regenerate this tenant's view
    push(conn, str(uuid.uuid4()), title="x", billable=True)
    assert regenerations(conn, tenant, "work_orders") == 2


def test_reordered_and_removed_columns_drop_recreate_and_regrant(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, priority=1)
    assert view_columns(conn, tenant, "work_orders") == cols("id tenant_id priority updated_at")
    oid_before = conn.execute(
        "SELECT to_regclass(format('tenants.%%I', %s::text))::oid", (f"{tenant}_work_orders",)
    ).fetchone()

    # title comes before priority in the base table: CREATE OR REPLACE cannot insert it (42P16)
    push(conn, tenant, title="t")
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id title priority updated_at"
    )
    oid_after = conn.execute(
        "SELECT to_regclass(format('tenants.%%I', %s::text))::oid", (f"{tenant}_work_orders",)
    ).fetchone()
    assert oid_before != oid_after, "expected the view to be dropped and recreated"
    assert_view_rights(conn, tenant, "work_orders")

    # a column removed from tracking: dropped and recreated, rights and options kept
    conn.execute(
        "UPDATE tenants.tenant_column_access SET columns = array_remove(columns, 'title')"
        " WHERE tenant_id = %s",
        (tenant,),
    )
    assert conn.execute(
        "SELECT tenants.regenerate_tenant_views(%s, 'work_orders')", (tenant,)
    ).fetchone() == (1,)
    assert view_columns(conn, tenant, "work_orders") == cols("id tenant_id priority updated_at")
    assert_view_rights(conn, tenant, "work_orders")
    assert len(select_view(conn, tenant, "work_orders")) == 2


def assert_view_rights(c: psycopg.Connection[Any], tenant: str, table: str) -> None:
    name = f"{tenant}_{table}"
    row = c.execute(
        """
        SELECT c.reloptions,
               has_table_privilege('authenticated', c.oid, 'SELECT'),
               has_table_privilege('service_role', c.oid, 'SELECT'),
               has_table_privilege('anon', c.oid, 'SELECT'),
               EXISTS (SELECT FROM aclexplode(c.relacl) x WHERE x.grantee = 0)
          FROM pg_class c WHERE c.oid = to_regclass(format('tenants.%%I', %s::text))
        """,
        (name,),
    ).fetchone()
    assert row is not None
    options, authenticated, service, anon, public = row
    assert set(options) >= {"security_invoker=true", "security_barrier=true"}
    assert (authenticated, service, anon, public) == (True, True, False, False)


def test_concurrent_first_pushes_of_one_tenant(db_dsn: str) -> None:
    """Several connections create one tenant's first views at once: the per-tenant lock
    serialises the view DDL, so no push fails and every view ends with every column."""
    tables = [
        ("adhoc_work_orders", {"title": "t"}),
        ("adhoc_work_orders", {"status": "s"}),
        ("adhoc_work_orders", {"priority": 1}),
        ("adhoc_work_orders", {"billable": True, "title": "u"}),
        ("zone_categories", {"name": "z"}),
        ("customer_accounts", {"name": "c"}),
        ("customer_sites", {"city": "x"}),
        ("site_floors", {"level": 2}),
        ("site_rooms", {"room_number": "1"}),
        ("cleaning_tasks", {}),
    ]
    for _round in range(3):
        tenant = str(uuid.uuid4())
        barrier = threading.Barrier(len(tables))
        errors_seen: list[BaseException] = []
        answers: list[dict[str, Any]] = []

        def worker(
            source: str,
            fields: dict[str, Any],
            tenant: str = tenant,
            barrier: threading.Barrier = barrier,
            answers: list[dict[str, Any]] = answers,
            errors_seen: list[BaseException] = errors_seen,
        ) -> None:
            try:
                with psycopg.connect(
                    db_dsn, autocommit=True, options="-c statement_timeout=20s"
                ) as c:
                    barrier.wait(timeout=20)
                    answers.append(apply(c, upsert(tenant, rec(**fields), table=source)))
            except BaseException as e:
                errors_seen.append(e)

        threads = [threading.Thread(target=worker, args=t) for t in tables]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads), "a push hung"
        assert errors_seen == []
        assert [a["status"] for a in answers] == ["applied"] * len(tables)

        with psycopg.connect(db_dsn, autocommit=True) as c:
            assert view_columns(c, tenant, "work_orders") == cols(
                "id tenant_id title status priority billable updated_at"
            )
            for target in ("zones", "customers", "sites", "floors", "rooms", "tasks"):
                shown = view_columns(c, tenant, target)
                assert shown is not None and shown[:2] == ["id", "tenant_id"], target
            assert len(select_view(c, tenant, "work_orders")) == 4


def test_long_reader_of_a_view_makes_a_regenerating_push_fail_fast(
    db_dsn: str, conn: psycopg.Connection[Any], tenant: str
) -> None:
    """DDL waiting behind a dashboard query gives up after optiqoflow.ddl_lock_timeout
    with a retryable 55P03: were it to wait, every later reader of the view would queue
    behind it."""
    push(conn, tenant, priority=1)
    view = sql.Identifier("tenants", f"{tenant}_work_orders")
    conn.execute("SET optiqoflow.ddl_lock_timeout = '200ms'")
    conn.execute("SET statement_timeout = '5s'")  # a push that queues fails the test, not hangs it
    logs_before = conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone()

    # (a) a transaction that locked the view; the push needs CREATE OR REPLACE (status is new)
    with psycopg.connect(db_dsn) as reader:
        reader.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(view))
        record = rec(status="waiting")
        t0 = time.monotonic()
        with pytest.raises(errors.LockNotAvailable):
            apply(conn, upsert(tenant, record))
        assert time.monotonic() - t0 < 2.0, "the push queued instead of failing fast"
        reader.rollback()
    assert view_columns(conn, tenant, "work_orders") == cols("id tenant_id priority updated_at")
    assert tracked(conn, tenant, "work_orders") == ["id", "priority", "updated_at"]
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.work_orders WHERE id = %s", (record["id"],)
    ).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone() == logs_before
    assert apply(conn, upsert(tenant, record))["status"] == "applied"  # the sender's retry

    # (b) an open cursor on the view; the push needs DROP + CREATE (title comes before status)
    with psycopg.connect(db_dsn) as reader:
        cur = reader.cursor(name="dashboard")
        cur.execute(sql.SQL("SELECT * FROM {}").format(view))
        assert cur.fetchone() is not None
        record = rec(title="waiting")
        t0 = time.monotonic()
        with pytest.raises(errors.LockNotAvailable):
            apply(conn, upsert(tenant, record))
        assert time.monotonic() - t0 < 2.0, "the push queued instead of failing fast"
        assert cur.fetchone() is not None  # the reader was not disturbed
        cur.close()
        reader.rollback()
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id status priority updated_at"
    )
    assert apply(conn, upsert(tenant, record))["status"] == "applied"
    assert view_columns(conn, tenant, "work_orders") == cols(
        "id tenant_id title status priority updated_at"
    )


def test_target_names_that_would_not_fit_view_names_are_refused(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    """PostgreSQL cuts identifiers at 63 bytes and "{uuid}_" takes 37 of them, so a target
    name has at most 26: a view name is never silently cut."""
    with pytest.raises(errors.CheckViolation):
        conn.execute(
            "INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES ('long_one', %s)",
            ("t" * 27,),
        )
    longest_a, longest_b = "t" * 25 + "a", "t" * 25 + "b"
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table)"
        " VALUES ('long_a', %s), ('long_b', %s)",
        (longest_a, longest_b),
    )
    push(conn, tenant, "long_a", label="a")
    push(conn, tenant, "long_b", label="b")
    names = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'tenants'::regnamespace"
            " AND relkind = 'v' AND relname <> 'sync_status' ORDER BY 1"
        )
    ]
    assert names == [f"{tenant}_{longest_a}", f"{tenant}_{longest_b}"]
    assert all(len(n.encode()) == 63 for n in names)
    assert [r[0] for r in select_view(conn, tenant, longest_a, "label")] == ["a"]
    assert [r[0] for r in select_view(conn, tenant, longest_b, "label")] == ["b"]


# --- 5. tenant id spellings --------------------------------------------------------


def test_tenant_id_spellings_reach_the_same_views(conn: psycopg.Connection[Any]) -> None:
    tenant = uuid.uuid4()
    canonical = str(tenant)
    spellings = [
        canonical.upper(),
        "{" + canonical + "}",
        tenant.hex,
        "{" + tenant.hex.upper() + "}",
        canonical,
    ]
    for i, spelling in enumerate(spellings):
        answer = apply(conn, upsert(spelling, rec(title=f"t{i}", tenant_id=spellings[-1 - i])))
        assert answer["status"] == "applied", answer
        assert answer.get("tenant_id", canonical) == canonical
    # the tenant only in the record, in yet another spelling
    answer = apply(conn, {
        "type": "INSERT", "table": "adhoc_work_orders",
        "record": rec(status="s", tenant_id=tenant.hex.upper()),
    })  # fmt: skip
    assert answer["status"] == "applied", answer

    views = [
        r[0]
        for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' AND relname <> 'sync_status'"
        )
    ]
    assert views == [f"{canonical}_work_orders"]
    assert len(select_view(conn, canonical, "work_orders")) == len(spellings) + 1
    assert conn.execute(
        "SELECT array_agg(DISTINCT tenant_id::text) FROM optiqoflow.work_orders"
    ).fetchone() == ([canonical],)
    assert conn.execute(
        "SELECT count(*), array_agg(DISTINCT tenant_id::text) FROM tenants.tenant_column_access"
    ).fetchone() == (1, [canonical])
    assert tracked(conn, canonical, "work_orders") == cols("id status tenant_id title updated_at")


BAD_TENANTS = [
    "tenant-a", "", "11111111-1111-1111-1111-11111111111", "11111111-1111-1111-1111-1111111111111", 42,
    "11111111-1111-1111-1111-111111111111; DROP TABLE x", "../11111111-1111-1111-1111-111111111111",
]  # fmt: skip


def test_a_tenant_that_is_not_a_uuid_is_refused(conn: psycopg.Connection[Any]) -> None:
    for bad in BAD_TENANTS:
        for payload in (
            {
                "type": "INSERT",
                "table": "adhoc_work_orders",
                "tenant_id": bad,
                "record": rec(title="x"),
            },
            {
                "type": "INSERT",
                "table": "adhoc_work_orders",
                "record": rec(title="x", tenant_id=bad),
            },
        ):
            answer = apply(conn, payload)
            assert (answer["status"], answer.get("sqlstate")) == ("refused", "OF002"), (bad, answer)
            logged = conn.execute(
                "SELECT outcome, payload FROM optiqoflow.refused_deliveries WHERE log_id = %s",
                (answer["log_id"],),
            ).fetchone()
            assert logged == ("refused", payload), bad
    assert conn.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM tenants.tenant_column_access").fetchone() == (0,)
    assert conn.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' AND relname <> 'sync_status'"
    ).fetchone() == (0,)


def test_request_time_ddl_leaves_the_callers_lock_timeout_as_it_was(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    """The short DDL lock_timeout is for the DDL only: the rest of the caller's transaction
    keeps its own (a push that creates a view, a DBA's regeneration, grant_tenant)."""
    role = f"bi_{uuid.uuid4().hex[:12]}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        with conn.transaction():
            conn.execute("SET LOCAL lock_timeout = '7s'")
            push(conn, tenant, title="first push: a view and a new column set")
            conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,))
            conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, tenant))
            assert conn.execute("SHOW lock_timeout").fetchone() == ("7s",)
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
