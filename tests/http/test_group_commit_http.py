"""Group commit through the receiver (docs/group-commit.md, OPTIQO_GROUP_COMMIT): real-time
deliveries queued at the gate while no connection is free are applied together by one
call and one commit, each answered as it would be alone; a group that fails as one goes
one by one. What optiqoflow.apply_webhook_group itself does is tests/sync/test_group_commit.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from tests.helpers import hold_row_bucket, zone_payload
from tests.http_helpers import Endpoint, metric, plain_delivery_id, receiver_config, serving


async def _metric(ep: Endpoint, name: str) -> float:
    return metric((await ep.get("/metrics")).body, name)


async def _until(probe: Any, what: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await probe():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _blocked(dsn: str, query_like: str) -> Any:
    async def probe() -> bool:
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as c:
            cur = await c.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                "'optiqoflow-receiver' AND wait_event_type = 'Lock' AND query LIKE %s"
                " AND datname = current_database()",
                (query_like,),
            )
            row = await cur.fetchone()
            return bool(row and row[0])

    return probe


def _bucket(c: psycopg.Connection[Any], payload: dict[str, Any]) -> int:
    """The row bucket (optiqoflow._row_lock_bucket) of a payload's record."""
    row = c.execute("SELECT optiqoflow._row_lock_bucket(%s)", (payload["record"]["id"],)).fetchone()
    assert row is not None
    return int(row[0])


async def _queue(ep: Endpoint, deliveries: list[tuple[dict[str, Any], str | None]]) -> list[Any]:
    """Post the deliveries one at a time, each once the one before is queued: the queue
    holds them in this order."""
    posts = []
    for i, (payload, delivery_id) in enumerate(deliveries, 1):
        posts.append(asyncio.ensure_future(ep.post(payload, delivery_id=delivery_id)))

        async def queued(n: int = i) -> bool:
            return await _metric(ep, "optiqoflow_db_requests_waiting") == n

        await _until(queued, f"delivery {i} to queue")
    return posts


async def test_queued_deliveries_commit_together_each_with_its_own_answer(
    db_dsn: str, tenant: str
) -> None:
    config = receiver_config(db_dsn, pool_max=1, pool_timeout=20.0, group_commit=16)
    first = zone_payload(tenant, name="first")
    same = zone_payload(tenant, name="v1")
    queued = [
        (zone_payload(tenant, name=f"zone {i}"), f"d-{i}") for i in range(6)
    ] + [
        (zone_payload(tenant, name="v2", id=same["record"]["id"], updated_at="2026-01-01T11:00:00Z"), "d-v2"),
        (same, "d-v1"),  # older than d-v2, queued before it: stale
        (zone_payload(tenant, table="no_such_table"), "d-refused"),
    ]  # fmt: skip
    # a delivery seen in the group (its id, bound to the same body): duplicate
    queued.append(queued[0])
    async with serving(config) as ep:
        with psycopg.connect(db_dsn) as blocker:
            # the only connection's first delivery waits on this lock; the rest queue
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")
            head = asyncio.ensure_future(ep.post(first, delivery_id="d-first"))
            await _until(_blocked(db_dsn, "%apply_webhook(%"), "the first delivery to wait")
            rest = await _queue(ep, queued)
            blocker.commit()
        replies = [await head, *[await r for r in rest]]
        sizes = (
            await _metric(ep, "optiqoflow_group_commit_size_count"),
            await _metric(ep, "optiqoflow_group_commit_size_sum"),
        )
        grouped = await _metric(ep, 'optiqoflow_delivery_paths_total{path="grouped"}')
    assert [r.status for r in replies] == [200] * 9 + [422, 200]
    assert [r.body["status"] for r in replies] == (
        ["applied"] * 8 + ["stale", "refused", "duplicate"]
    )
    assert replies[9].body["sqlstate"] == "OF001"
    assert sizes == (2, 1 + len(queued))  # the first alone, then the queue as one group
    assert grouped == 1 + len(queued)
    with psycopg.connect(db_dsn) as c:
        logs = c.execute(
            "SELECT delivery_id, outcome FROM optiqoflow.webhook_logs ORDER BY id"
        ).fetchall()
        names = c.execute(
            "SELECT name FROM optiqoflow.zones WHERE tenant_id = %s ORDER BY name",
            (tenant,),
        ).fetchall()
    ids = {d: plain_delivery_id(d, p) for p, d in [(first, "d-first"), *queued]}
    # the group is applied table by table, in arrival order within a table
    assert logs == [(ids["d-first"], "applied"), (ids["d-refused"], "refused")] + [
        (ids[d], "applied") for _, d in queued[:7]
    ] + [(ids["d-v1"], "stale"), (ids["d-0"], "duplicate")]
    assert [n for (n,) in names] == sorted(["first", "v2"] + [f"zone {i}" for i in range(6)])


async def test_the_queue_waits_its_turn_beside_other_calls(db_dsn: str, tenant: str) -> None:
    """With no connection free, queued real-time deliveries wait at the gate in arrival
    order beside calls that never queue (here a BATCH envelope): neither starves."""
    config = receiver_config(db_dsn, pool_max=1, pool_timeout=20.0, group_commit=16)
    envelope = {
        "type": "BATCH",
        "tenant_id": tenant,
        "events": [zone_payload(tenant, name="in a batch")],
    }
    first, queued = zone_payload(tenant, name="first"), zone_payload(tenant, name="queued")
    async with serving(config) as ep:
        with psycopg.connect(db_dsn) as blocker:
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")
            head = asyncio.ensure_future(ep.post(first, delivery_id="first"))
            await _until(_blocked(db_dsn, "%apply_webhook(%"), "the first delivery to wait")
            (realtime,) = await _queue(ep, [(queued, "queued")])
            batch = asyncio.ensure_future(ep.post(envelope, delivery_id="batch"))

            async def batch_waits() -> bool:
                return await _metric(ep, "optiqoflow_db_requests_waiting") == 2

            await _until(batch_waits, "the envelope to wait")
            blocker.commit()
        replies = [await head, await realtime, await batch]
    assert [r.status for r in replies] == [200, 200, 200]
    with psycopg.connect(db_dsn) as c:
        order = c.execute(
            "SELECT delivery_id FROM optiqoflow.webhook_logs WHERE delivery_id NOT LIKE '%%/%%'"
            " ORDER BY id"  # not the envelope's events, `<envelope's id>/<i>`
        ).fetchall()
    assert order == [  # arrival order
        (plain_delivery_id("first", first),),
        (plain_delivery_id("queued", queued),),
        (plain_delivery_id("batch", envelope),),
    ]


async def test_a_group_that_fails_as_one_goes_one_by_one(db_dsn: str, tenant: str) -> None:
    # the group fails by the cancel below only, never by a lock timeout first (under load
    # the wait could outlast the default 5 s before the test sees it)
    config = receiver_config(db_dsn, pool_max=1, pool_timeout=20.0, group_commit=16, lock_timeout=60.0)
    queued = [zone_payload(tenant, name=f"zone {i}") for i in range(5)]
    key = queued[2]["record"]["id"]
    async with serving(config) as ep:
        with (psycopg.connect(db_dsn, autocommit=True) as holder, psycopg.connect(db_dsn) as locker,
              psycopg.connect(db_dsn) as blocker):
            # the group will wait for one of its row locks, and be cancelled there
            hold_row_bucket(locker, tenant, "zones", key)
            first = zone_payload(tenant, name="first")
            while _bucket(holder, first) == _bucket(holder, queued[2]):  # 1 in 64: it would wait too
                first = zone_payload(tenant, name="first")
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")
            head = asyncio.ensure_future(ep.post(first))
            await _until(_blocked(db_dsn, "%apply_webhook(%"), "the first delivery to wait")
            rest = await _queue(ep, [(p, None) for p in queued])
            blocker.commit()
            await _until(_blocked(db_dsn, "%apply_webhook_group%"), "the group to wait")
            holder.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE"
                " '%%apply_webhook_group%%' AND application_name = 'optiqoflow-receiver'"
                " AND datname = current_database()"
            )

            async def ungrouped() -> bool:
                return await _metric(ep, "optiqoflow_group_commit_ungrouped_total") == 1

            await _until(ungrouped, "the group to fail")
            locker.rollback()
        replies = [await head, *[await r for r in rest]]
        groups = await _metric(ep, "optiqoflow_group_commit_size_count")
    assert groups == 1  # the first delivery alone; the failed group was not tried again as one
    assert [(r.status, r.body["status"]) for r in replies] == [(200, "applied")] * 6
    with psycopg.connect(db_dsn) as c:
        (applied,) = c.execute(
            "SELECT count(*) FROM optiqoflow.webhook_logs WHERE outcome = 'applied'"
        ).fetchone() or (0,)
    assert applied == 6  # each once: the cancelled group committed nothing
