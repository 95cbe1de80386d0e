"""One stuck table or tenant never stalls the others. A session that holds a lock a
delivery needs (authenticated may LOCK a target table in ACCESS EXCLUSIVE MODE on
PostgreSQL 15, it has UPDATE and DELETE; or leave SELECT ... FOR UPDATE open; any login
role may take advisory locks) made deliveries wait without limit, pinning the receiver's
connections until every tenant got 503. The locks of deliveries are now rows only the
owner may lock, so a role without grants blocks nothing; and every lock wait is bounded
(OPTIQO_LOCK_TIMEOUT_SECONDS): those that need the held lock answer 503 with Retry-After
having committed nothing, and deliveries to other tables and tenants answer 200 all the
while, through a pool of two connections."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import PASSWORD, full_sync, new_id, rec, upsert, zone_payload
from tests.http_helpers import receiver_config, serving


@pytest.fixture
def holder(db_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A second session, in an open transaction, that holds whatever the test takes."""
    with psycopg.connect(db_dsn) as c:
        yield c
        c.rollback()


def _logged(dsn: str, tenant: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute("SELECT count(*) FROM optiqoflow.webhook_logs WHERE tenant_id = %s", (tenant,)).fetchone()
    assert row is not None
    return int(row[0])


async def _while_held(db_dsn: str, stuck: dict[str, Any], free: list[dict[str, Any]]) -> None:
    async with serving(receiver_config(db_dsn, pool_max=2, lock_timeout=0.5)) as ep:
        answers = [await ep.post(stuck)]
        for payload in free * 3:  # more deliveries than connections: none is pinned
            answers.append(await ep.post(payload))
    blocked, rest = answers[0], answers[1:]
    assert blocked.status == 503 and blocked.headers.get("Retry-After") == "7", blocked
    assert [r.status for r in rest] == [200] * len(rest), [r.body for r in rest]


async def test_a_table_locked_by_a_dashboard_user_stalls_only_deliveries_to_it(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    other = str(uuid.uuid4())
    holder.execute("SET ROLE authenticated")
    holder.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"tenant_id": tenant}),))
    holder.execute("LOCK TABLE optiqoflow.work_orders IN ACCESS EXCLUSIVE MODE")
    stuck = upsert(tenant, rec(new_id(), 1, title="waits"))
    await _while_held(db_dsn, stuck, [zone_payload(tenant), zone_payload(other)])
    assert _logged(db_dsn, tenant) == 3  # the three zones; nothing of the stuck one


async def test_a_row_held_for_update_stalls_only_its_own_delivery(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    rid = new_id()
    async with serving(receiver_config(db_dsn)) as ep:
        assert (await ep.post(upsert(tenant, rec(rid, 1, title="first")))).status == 200
    holder.execute("SET ROLE authenticated")
    holder.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"tenant_id": tenant}),))
    holder.execute("SELECT * FROM optiqoflow.work_orders WHERE id = %s FOR UPDATE", (rid,))
    await _while_held(db_dsn, upsert(tenant, rec(rid, 2, title="second"), "UPDATE"),
                      [upsert(str(uuid.uuid4()), rec(new_id(), 1, title="other tenant"))])


async def test_a_role_without_grants_cannot_block_any_delivery(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    """The locks of deliveries are rows of optiqoflow.lock_slots, which only the owner may
    lock. A login role with no grants takes every advisory key a delivery for one tenant
    and table ever used (its 64 row buckets, the FULL_SYNC, DDL, views and prune locks)
    and holds them: that tenant's real-time changes, a new column, a FULL_SYNC and a
    prune all go through at once."""
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    holder.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    holder.commit()
    names = [f"sync/{tenant}/work_orders", "ddl/work_orders", f"views/{tenant}", "prune_logs"]
    try:
        row = holder.execute(
            "SELECT optiqoflow._row_lock_space(%s, 'work_orders'),"
            "       ARRAY(SELECT optiqoflow._lock_key(n) FROM unnest(%s::text[]) n)",
            (tenant, names),
        ).fetchone()
        assert row is not None
        holder.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        holder.execute("SELECT pg_advisory_xact_lock(%s, b) FROM generate_series(0, 63) b", (row[0],))
        holder.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) k", (row[1],))
        async with serving(receiver_config(db_dsn, pool_max=2, lock_timeout=0.5)) as ep:
            first, later = rec(new_id(), 1, title="first"), rec(new_id(), 1, title="later")
            answers = [
                await ep.post(upsert(tenant, first)),
                await ep.post(upsert(tenant, {**later, "brand_new_column": "x"})),
                await ep.post(full_sync(tenant, [first, later], 0, total=2)),
            ]
        assert [a.status for a in answers] == [200, 200, 200], [a.body for a in answers]
        with psycopg.connect(db_dsn) as c:
            c.execute("SELECT optiqoflow.prune_logs()")
    finally:
        holder.rollback()
        holder.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        holder.commit()


@pytest.mark.parametrize("who", ["service_role", "authenticated", "no grants"])
def test_only_the_owner_can_lock_a_lock_slot(
    db_dsn: str, conn: psycopg.Connection[Any], make_role: Any, who: str
) -> None:
    role = make_role("locker", "" if who == "no grants" else f"IN ROLE {who}")
    conn.commit()
    with psycopg.connect(db_dsn, user=role, password=PASSWORD) as c:
        if who != "no grants":
            c.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(who)))
        for statement in ("SELECT FROM optiqoflow.lock_slots WHERE slot = 0 FOR UPDATE",
                          "LOCK TABLE optiqoflow.lock_slots IN ACCESS EXCLUSIVE MODE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                c.execute(statement)
            c.rollback()
            if who != "no grants":
                c.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(who)))


async def test_a_locked_table_under_load_takes_only_its_share_of_the_pool(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    """Many deliveries to a table a dashboard user keeps locked, at once, beside
    deliveries to another table: the locked table's deliveries hold at most their lane's
    share of the pool (OPTIQO_TABLE_CONNECTIONS), so the others are all applied while
    every delivery to the locked table gets 503 with Retry-After and commits nothing.
    Without lanes the stuck deliveries took every connection and the others got 503."""
    holder.execute("SET ROLE authenticated")
    holder.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"tenant_id": tenant}),))
    holder.execute("LOCK TABLE optiqoflow.work_orders IN ACCESS EXCLUSIVE MODE")
    config = receiver_config(db_dsn, pool_max=4, pool_timeout=1.0, lock_timeout=1.0)
    assert config.table_share == 2
    async with serving(config) as ep:
        stuck = [ep.post(upsert(str(uuid.uuid4()), rec(new_id(), 1, title=f"waits {i}"))) for i in range(12)]
        free = [ep.post(zone_payload(str(uuid.uuid4()))) for _ in range(12)]
        answers = await asyncio.gather(*stuck, *free)
    blocked, applied = answers[:12], answers[12:]
    assert [a.status for a in applied] == [200] * 12, [a.body for a in applied]
    assert {a.status for a in blocked} == {503}, [a.body for a in blocked]
    assert all(a.headers.get("Retry-After") == "7" for a in blocked)
    holder.rollback()
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone()
    assert row == (0,)


async def test_a_held_row_under_load_stalls_only_its_tenant(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    """Many updates of one row a session holds FOR UPDATE, at once, beside other tenants'
    deliveries to the same table: the stuck tenant's deliveries hold at most its lane's
    share of the table's places, so the table's other tenants are all applied."""
    rid = new_id()
    config = receiver_config(db_dsn, pool_max=4, pool_timeout=1.0, lock_timeout=1.0)
    async with serving(config) as ep:
        assert (await ep.post(upsert(tenant, rec(rid, 1, title="first")))).status == 200
        holder.execute("SELECT * FROM optiqoflow.work_orders WHERE id = %s FOR UPDATE", (rid,))
        stuck = [ep.post(upsert(tenant, rec(rid, 2 + i, title=f"update {i}"), "UPDATE")) for i in range(8)]
        others = [ep.post(upsert(str(uuid.uuid4()), rec(new_id(), 1, title="other"))) for _ in range(8)]
        answers = await asyncio.gather(*stuck, *others)
    blocked, applied = answers[:8], answers[8:]
    assert [a.status for a in applied] == [200] * 8, [a.body for a in applied]
    assert {a.status for a in blocked} == {503}, [a.body for a in blocked]
