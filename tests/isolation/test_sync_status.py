"""Freshness a tenant can see: tenants.sync_status, read as authenticated, gives one row
per table of the caller's tenant (never another's): the source time of its newest
applied change (as_of) and that change's lag, its last FULL_SYNC, its refusals waiting.
chart_data_cache.data_as_of records what a cache entry was computed from, and
optiqoflow.health_metrics() gives the receiver the figures it exports, with no label per
tenant."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import psycopg
import psycopg.sql

from tests.helpers import apply, full_sync, new_id, rec, upsert


def _status(c: psycopg.Connection[Any], claims: dict[str, Any]) -> dict[str, dict[str, Any]]:
    with c.transaction(), c.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute("SET LOCAL ROLE authenticated")
        cur.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        return {r["table_name"]: r for r in cur.execute("SELECT * FROM tenants.sync_status")}


def test_a_tenant_sees_the_freshness_of_its_own_tables_only(conn: psycopg.Connection[Any]) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    source_time = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=30)
    apply(conn, upsert(a, rec(new_id(), source_time.isoformat(), title="t")))
    apply(conn, full_sync(a, [rec(new_id(), 1, name="Hall")], offset=0, total=1, table="zone_categories"))
    apply(conn, upsert(a, rec(new_id(), 1, priority="not a number")))  # refused, waiting
    apply(conn, upsert(b, rec(new_id(), 1, title="b")))
    mine = _status(conn, {"tenant_id": a})
    assert set(mine) == {"work_orders", "zones"}
    wo = mine["work_orders"]
    assert str(wo["tenant_id"]) == a and wo["source_table"] == "adhoc_work_orders"
    assert abs((wo["as_of"] - source_time).total_seconds()) < 0.01
    assert 29 <= float(wo["lag_seconds"]) < 120
    assert wo["refusals_waiting"] == 1
    synced = next(r for r in mine.values() if r["full_sync_state"] is not None)
    assert synced["full_sync_state"] == "complete" and synced["last_full_sync_at"] is not None
    assert all(str(r["tenant_id"]) == a for r in mine.values())
    assert _status(conn, {"tenant_id": "not-a-uuid"}) == {}
    assert set(_status(conn, {"tenant_id": b})) == {"work_orders"}


def test_cache_entries_record_the_as_of_of_their_data(conn: psycopg.Connection[Any]) -> None:
    assert conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.chart_data_cache'::regclass AND attname = 'data_as_of'"
    ).fetchone() == ("timestamp with time zone",)


def test_health_metrics_are_bounded_figures_without_tenants(conn: psycopg.Connection[Any], tenant: str) -> None:
    source_time = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=90)
    apply(conn, upsert(tenant, rec(new_id(), source_time.isoformat(), title="t")))
    apply(conn, upsert(tenant, rec(new_id(), 1, priority="not a number")))
    with conn.transaction():  # a replay (as replay_webhook marks it) of a change two days old
        conn.execute("SELECT set_config('optiqoflow.replay_of', '1', true)")
        old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).isoformat()
        assert apply(conn, upsert(tenant, rec(new_id(), old, title="replayed")))["status"] == "applied"
    conn.execute("SELECT optiqoflow.prune_logs()")
    conn.execute("SET ROLE service_role")
    (figures,) = conn.execute("SELECT optiqoflow.health_metrics()").fetchone()  # type: ignore[misc]
    conn.execute("RESET ROLE")
    assert figures["refused_waiting"] == 1
    assert 89 <= float(figures["worst_lag_seconds"]) < 300  # the replay's two days left out
    assert figures["log_partitions_ahead_days"] == 3
    assert set(figures) == {"refused_waiting", "worst_lag_seconds", "log_partitions_ahead_days"}


def test_a_role_given_a_tenant_sees_that_tenant_and_claims_do_not_count_for_it(
    conn: psycopg.Connection[Any], make_role: Any
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    apply(conn, upsert(a, rec(new_id(), 1, title="a")))
    apply(conn, upsert(b, rec(new_id(), 1, title="b")))
    role = make_role("bi")
    conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, a))
    with conn.transaction():
        conn.execute(psycopg.sql.SQL("SET LOCAL ROLE {}").format(psycopg.sql.Identifier(role)))
        # claims name a tenant only for authenticated: this role sets them in vain
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"tenant_id": b}),))
        seen = conn.execute("SELECT tenant_id::text, table_name FROM tenants.sync_status").fetchall()
        direct = conn.execute("SELECT tenant_id::text FROM optiqoflow._sync_status()").fetchall()
    assert seen == [(a, "work_orders")] and direct == [(a,)]
    # service_role (no claims, no tenant given) sees no rows
    with conn.transaction():
        conn.execute("SET LOCAL ROLE service_role")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"tenant_id": b}),))
        assert conn.execute("SELECT count(*) FROM tenants.sync_status").fetchone() == (0,)
