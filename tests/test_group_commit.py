"""Group commit (README "Group commit", OPTIQO_GROUP_COMMIT): queued real-time deliveries
applied by one call, optiqoflow.apply_webhook_group, and one commit, each exactly as its
own apply_webhook call would be; a group that fails as one goes one by one."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from typing import Any

import psycopg
import pytest
from conftest import apply, fresh_database
from receiver_helpers import Endpoint, metric, receiver_config, serving, zone_payload
from sync_helpers import TARGET, delete, in_opposite_orders, new_id, rec, upsert

Conn = psycopg.Connection[Any]


def group(
    c: Conn, payloads: list[dict[str, Any]], ids: list[str | None] | None = None
) -> list[Any]:
    rows = c.execute(
        "SELECT n, answer FROM optiqoflow.apply_webhook_group(%s::jsonb, %s::text[])",
        (json.dumps(payloads), ids),
    ).fetchall()
    rows.sort(key=lambda row: int(row[0]))  # rows come in the order the events were applied
    assert [n for n, _ in rows] == list(range(1, len(payloads) + 1))
    return [answer for _, answer in rows]


def events(tenant: str, a: str, b: str) -> list[dict[str, Any]]:
    """Every kind of outcome a real-time event can have."""
    return [
        upsert(tenant, rec(a, 1, title="a1")),
        upsert(tenant, rec(a, 2, title="a2"), "UPDATE"),
        upsert(tenant, rec(b, 1, title="b1", extra_note="new column")),
        upsert(tenant, rec(a, 1, title="older")),  # stale
        upsert(
            tenant, {"id": b, "updated_at": "2026-01-01T00:10:00Z", "priority": "high"}
        ),  # refused
        {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant, "record": {"id": a}},
        delete(tenant, {"id": b}, occurred_at="2026-01-01T00:05:00Z"),
        upsert(tenant, rec(a, 3, title="a3")),  # its delivery id repeats the first's: duplicate
    ]


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what names its log row (ids are given in the order of writing)."""
    out = {k: v for k, v in answer.items() if k not in ("log_id", "tenant_id")}
    if "hint" in out:
        out["hint"] = re.sub(r"replay_webhook\(\d+\)", "replay_webhook(N)", out["hint"])
    return out


def _left(c: Conn, tenant: str) -> dict[str, Any]:
    """What the deliveries left for a tenant: rows, tombstones, log rows, push log."""
    return {
        "rows": c.execute(
            f"SELECT id, title, updated_at, extra_note FROM optiqoflow.{TARGET}"
            " WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        ).fetchall(),
        "tombstones": c.execute(
            "SELECT id FROM optiqoflow.tombstones WHERE tenant_id = %s ORDER BY id", (tenant,)
        ).fetchall(),
        "logs": c.execute(
            "SELECT operation, outcome, rows, sqlstate, split_part(delivery_id, ':', 2),"
            " payload IS NOT NULL FROM optiqoflow.webhook_logs"
            " WHERE delivery_id LIKE %s ORDER BY split_part(delivery_id, ':', 2), id",
            (tenant + ":%",),
        ).fetchall(),
        "pushes": c.execute(
            "SELECT tables, operation, rows FROM tenants.tenant_data_push_log"
            " WHERE tenant_id = %s ORDER BY id",
            (tenant,),
        ).fetchall(),
    }


def test_a_group_leaves_what_its_calls_one_by_one_leave(
    conn: Conn, pg_admin_dsn: str, template_db: str
) -> None:
    """The same deliveries, as one group in one database and one by one in another."""
    tenant, a, b = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    ids = [f"{tenant}:{k}" for k in ("1", "2", "3", "4", "5", "6", "7", "1")]

    answers = group(conn, events(tenant, a, b), ids)
    with fresh_database(pg_admin_dsn, template_db) as other, psycopg.connect(other) as c:
        one_by_one = [
            apply(c, payload, d) for payload, d in zip(events(tenant, a, b), ids, strict=True)
        ]
        left_alone = _left(c, tenant)

    assert [x["status"] for x in answers] == [
        "applied", "applied", "applied", "stale", "refused", "refused", "applied", "duplicate",
    ]  # fmt: skip
    assert [_comparable(x) for x in answers] == [_comparable(x) for x in one_by_one]
    assert _left(conn, tenant) == left_alone
    assert left_alone["rows"][0][1] == "a2"  # the one row left: a, at version 2


def test_events_of_one_key_keep_their_order_whatever_the_tenant_spelling(
    conn: Conn, tenant: str
) -> None:
    key = new_id()
    braced = "{" + tenant.upper() + "}"  # a spelling PostgreSQL's uuid input accepts
    answers = group(
        conn,
        [upsert(braced, rec(key, 2, title="newer")), upsert(tenant, rec(key, 1, title="older"))],
    )
    assert [x["status"] for x in answers] == ["applied", "stale"]
    assert conn.execute(
        f"SELECT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id = %s", (tenant, key)
    ).fetchone() == ("newer",)


def test_a_group_holds_real_time_events_only(conn: Conn, tenant: str) -> None:
    logs = conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone()
    for odd in (
        {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": tenant, "records": []},
        {"type": "batch", "events": []},
    ):
        with pytest.raises(psycopg.Error) as e:
            group(conn, [upsert(tenant, rec(str(uuid.uuid4()), 1)), odd])
        assert e.value.sqlstate == "OF020"
        assert e.value.diag.message_hint and "on its own" in e.value.diag.message_hint
    # nothing of those groups was applied, not even their first event
    assert conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone() == logs


@pytest.mark.parametrize(
    ("payloads", "ids"),
    [('{"type": "INSERT"}', None), ("[{}, {}]", ["only-one"])],
    ids=["not an array", "ids do not match"],
)
def test_a_malformed_group_is_an_error_with_a_hint(
    conn: Conn, payloads: str, ids: list[str] | None
) -> None:
    with pytest.raises(psycopg.Error) as e:
        conn.execute("SELECT * FROM optiqoflow.apply_webhook_group(%s::jsonb, %s)", (payloads, ids))
    assert e.value.sqlstate == "OF020" and e.value.diag.message_hint


def test_groups_with_the_same_keys_in_opposite_orders_do_not_deadlock(
    db_dsn: str, tenant: str
) -> None:
    def send(order: list[str], version: int) -> None:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            answers = group(
                c, [upsert(tenant, rec(k, version, title=f"v{version}")) for k in order]
            )
            assert {x["status"] for x in answers} <= {"applied", "stale"}

    errors = in_opposite_orders(send, [str(uuid.uuid4()) for _ in range(30)])
    assert not errors, errors
    with psycopg.connect(db_dsn) as c:
        titles = c.execute(
            f"SELECT DISTINCT title FROM optiqoflow.{TARGET} WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    assert titles == [("v26",)]  # the newest version of every key, whatever the order


def test_groups_adding_columns_to_two_tables_in_opposite_orders_do_not_deadlock(
    db_dsn: str, tenant: str
) -> None:
    """A new column takes its table's DDL lock and ACCESS EXCLUSIVE until the group
    commits; a group applies its events table by table, so two groups that add columns
    to the same two tables in opposite arrival orders take those locks in one order."""
    errors: list[BaseException] = []

    def send(round_: int, side: int, barrier: threading.Barrier) -> None:
        column = f"extra_r{round_}_s{side}"  # new in both tables
        work_order = upsert(tenant, rec(new_id(), 1, **{column: "x"}))
        zone = zone_payload(tenant)
        zone["record"][column] = "y"
        try:
            with psycopg.connect(db_dsn, autocommit=True) as c:
                barrier.wait()
                answers = group(c, [work_order, zone] if side else [zone, work_order])
            assert [x["status"] for x in answers] == ["applied", "applied"], answers
        except BaseException as e:
            errors.append(e)

    for round_ in range(3):
        barrier = threading.Barrier(2)
        threads = [threading.Thread(target=send, args=(round_, side, barrier)) for side in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors


# --- through the receiver ------------------------------------------------------------------


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
                "'optiqoflow-receiver' AND wait_event_type = 'Lock' AND query LIKE %s",
                (query_like,),
            )
            row = await cur.fetchone()
            return bool(row and row[0])

    return probe


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
        (zone_payload(tenant, name="again"), "d-0"),  # a delivery id seen in the group: duplicate
    ]  # fmt: skip
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
    # the group is applied table by table, in arrival order within a table
    assert logs == [("d-first", "applied"), ("d-refused", "refused")] + [
        (d, "applied") for _, d in queued[:7]
    ] + [("d-v1", "stale"), ("d-0", "duplicate")]
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
    async with serving(config) as ep:
        with psycopg.connect(db_dsn) as blocker:
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")
            head = asyncio.ensure_future(
                ep.post(zone_payload(tenant, name="first"), delivery_id="first")
            )
            await _until(_blocked(db_dsn, "%apply_webhook(%"), "the first delivery to wait")
            (realtime,) = await _queue(ep, [(zone_payload(tenant, name="queued"), "queued")])
            batch = asyncio.ensure_future(ep.post(envelope, delivery_id="batch"))

            async def batch_waits() -> bool:
                return await _metric(ep, "optiqoflow_db_requests_waiting") == 2

            await _until(batch_waits, "the envelope to wait")
            blocker.commit()
        replies = [await head, await realtime, await batch]
    assert [r.status for r in replies] == [200, 200, 200]
    with psycopg.connect(db_dsn) as c:
        order = c.execute(
            "SELECT delivery_id FROM optiqoflow.webhook_logs WHERE delivery_id NOT LIKE 'batch/%%'"
            " ORDER BY id"
        ).fetchall()
    assert order == [("first",), ("queued",), ("batch",)]  # arrival order


async def test_a_group_that_fails_as_one_goes_one_by_one(db_dsn: str, tenant: str) -> None:
    config = receiver_config(db_dsn, pool_max=1, pool_timeout=20.0, group_commit=16)
    queued = [zone_payload(tenant, name=f"zone {i}") for i in range(5)]
    key = queued[2]["record"]["id"]
    async with serving(config) as ep:
        with psycopg.connect(db_dsn, autocommit=True) as holder, psycopg.connect(db_dsn) as blocker:
            # the group will wait for one of its row locks, and be cancelled there
            holder.execute(
                "SELECT pg_advisory_lock(optiqoflow._row_lock_space(%s, 'zones'),"
                " optiqoflow._row_lock_bucket(%s))",
                (tenant, key),
            )
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")
            head = asyncio.ensure_future(ep.post(zone_payload(tenant, name="first")))
            await _until(_blocked(db_dsn, "%apply_webhook(%"), "the first delivery to wait")
            rest = await _queue(ep, [(p, None) for p in queued])
            blocker.commit()
            await _until(_blocked(db_dsn, "%apply_webhook_group%"), "the group to wait")
            holder.execute(
                "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE"
                " '%%apply_webhook_group%%' AND application_name = 'optiqoflow-receiver'"
            )

            async def ungrouped() -> bool:
                return await _metric(ep, "optiqoflow_group_commit_ungrouped_total") == 1

            await _until(ungrouped, "the group to fail")
            holder.execute("SELECT pg_advisory_unlock_all()")
        replies = [await head, *[await r for r in rest]]
        groups = await _metric(ep, "optiqoflow_group_commit_size_count")
    assert groups == 1  # the first delivery alone; the failed group was not tried again as one
    assert [(r.status, r.body["status"]) for r in replies] == [(200, "applied")] * 6
    with psycopg.connect(db_dsn) as c:
        (applied,) = c.execute(
            "SELECT count(*) FROM optiqoflow.webhook_logs WHERE outcome = 'applied'"
        ).fetchone() or (0,)
    assert applied == 6  # each once: the cancelled group committed nothing
