"""One stuck table or tenant never stalls the others. A session that holds a lock a
delivery needs (authenticated may LOCK a target table in ACCESS EXCLUSIVE MODE on
PostgreSQL 15, it has UPDATE and DELETE; or leave SELECT ... FOR UPDATE open; any login
role may take advisory locks) made deliveries wait without limit, pinning the receiver's
connections until every tenant got 503. Every delivery's lock wait is now bounded
(OPTIQO_LOCK_TIMEOUT_SECONDS): those that need the held lock answer 503 with Retry-After
having committed nothing, and deliveries to other tables and tenants answer 200 all the
while, through a pool of two connections."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.helpers import new_id, rec, upsert, zone_payload
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


async def test_advisory_locks_of_a_role_without_grants_hold_no_connection(
    db_dsn: str, holder: psycopg.Connection[Any], tenant: str
) -> None:
    """The bucket keys are computable by anyone: a role with no grants takes every one of
    a tenant's 64 row buckets of work_orders. That tenant's deliveries to the table wait
    at most the lock timeout; everyone else's go on."""
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    holder.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    holder.commit()
    try:
        space = holder.execute("SELECT optiqoflow._row_lock_space(%s, 'work_orders')", (tenant,)).fetchone()
        assert space is not None
        holder.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        holder.execute("SELECT pg_advisory_xact_lock(%s, b) FROM generate_series(0, 63) b", (space[0],))
        await _while_held(db_dsn, upsert(tenant, rec(new_id(), 1, title="waits")),
                          [upsert(str(uuid.uuid4()), rec(new_id(), 1, title="other")), zone_payload(tenant)])
    finally:
        holder.rollback()
        holder.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        holder.commit()
