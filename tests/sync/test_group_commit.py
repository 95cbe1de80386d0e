"""Group commit's SQL side (docs/group-commit.md): queued real-time deliveries applied by
one call, optiqoflow.apply_webhook_group, and one commit, each exactly as its own
apply_webhook call would be. The receiver's queue, and a group that fails as one going
one by one, are tests/http/test_group_commit_http.py."""

from __future__ import annotations

import json
import re
import threading
import uuid
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    TARGET,
    apply,
    delete,
    fresh_database,
    in_opposite_orders,
    new_id,
    rec,
    upsert,
    zone_payload,
)

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
        upsert(tenant, rec(b, 10, priority="high")),  # refused
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


def _in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run work() in a thread; its value (or error) lands in the dict it returns."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = work()
        except BaseException as e:  # handed to the test
            out["error"] = e

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _waits(c: Conn, pid: int) -> bool:
    row = c.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return row is not None and row[0] == "Lock"


def _until_waiting(watch: Conn, pid: int) -> None:
    for _ in range(500):
        if _waits(watch, pid):
            return
        threading.Event().wait(0.02)
    raise AssertionError("the second call never waited")


def test_two_groups_adding_the_same_column_to_one_table(db_dsn: str, tenant: str) -> None:
    """Two groups, open at once, both bring one new key of one table: the second waits for
    the first's column (its table's DDL lock), then finds the column there and writes
    into it; both commit, nothing is added twice."""
    column = f"extra_{uuid.uuid4().hex[:8]}"
    a, b = new_id(), new_id()
    with (psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn, autocommit=True) as second,
          psycopg.connect(db_dsn, autocommit=True) as watch):
        assert [x["status"] for x in group(first, [upsert(tenant, rec(a, 1, **{column: "a"}))])] == ["applied"]
        thread, out = _in_thread(lambda: group(second, [upsert(tenant, rec(b, 1, **{column: "b"})),
                                                        upsert(tenant, rec(new_id(), 1, title="t"))]))
        _until_waiting(watch, second.info.backend_pid)
        first.commit()
        thread.join(30)
        assert "error" not in out, out
        answers = out["value"]
        assert [x["status"] for x in answers] == ["applied", "applied"], answers
        assert answers[0]["added_columns"] == []  # the first group's column, found
        stored = dict(watch.execute(
            f"SELECT id::text, {column} FROM optiqoflow.{TARGET} WHERE tenant_id = %s AND id IN (%s, %s)",
            (tenant, a, b)).fetchall())  # fmt: skip
    assert stored == {a: "a", b: "b"}


@pytest.mark.parametrize("first_ends", ["commit", "rollback"])
def test_a_duplicate_retried_while_its_first_copy_sits_in_a_group(
    db_dsn: str, tenant: str, first_ends: str
) -> None:
    """A sender retries a delivery (same delivery id) while its first copy is in a group
    that has not committed: the retry waits for that group's key. The group commits: the
    retry is a duplicate. The group fails as a whole (rolled back): the retry applies.
    Either way the change is applied exactly once."""
    payload = upsert(tenant, rec(new_id(), 1, title="once"))
    delivery = f"retry-{uuid.uuid4().hex[:8]}"
    with (psycopg.connect(db_dsn) as first, psycopg.connect(db_dsn, autocommit=True) as retry,
          psycopg.connect(db_dsn, autocommit=True) as watch):
        answers = group(first, [payload, upsert(tenant, rec(new_id(), 1, title="other"))], [delivery, None])
        assert [x["status"] for x in answers] == ["applied", "applied"]
        thread, out = _in_thread(lambda: apply(retry, payload, delivery_id=delivery))
        _until_waiting(watch, retry.info.backend_pid)
        first.commit() if first_ends == "commit" else first.rollback()
        thread.join(30)
        assert "error" not in out, out
        assert out["value"]["status"] == ("duplicate" if first_ends == "commit" else "applied"), out
        (applied,) = watch.execute(
            "SELECT count(*) FROM optiqoflow.webhook_logs WHERE delivery_id = %s AND outcome = 'applied'",
            (delivery,)).fetchone() or (0,)  # fmt: skip
    assert applied == 1
