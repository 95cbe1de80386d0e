"""Scoped FULL_SYNC runs (docs/semantics.md, "Scoped runs: repair"): a run limited to
some buckets removes only rows of those buckets, with every rule of a whole-table run
(versions, rows written after the run began, tombstones); records outside its buckets and
batches naming other buckets are refused (OF027)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import (
    Conn,
    apply,
    full_sync,
    new_id,
    rec,
    tombstone,
    upsert,
    versions,
)


def bucket_of(c: Conn, id_: str, digits: int = 2) -> str:
    row = c.execute("SELECT left(md5(%s::uuid::text), %s)", (id_, digits)).fetchone()
    assert row is not None
    return str(row[0])


def spread(c: Conn, tenant: str, n: int = 60) -> dict[str, list[dict[str, Any]]]:
    """n rows loaded by a whole-table run; bucket -> its records."""
    records = [rec(new_id(), 1, title=f"r{i}") for i in range(n)]
    assert apply(c, full_sync(tenant, records, 0, n, "load"))["status"] == "applied"
    by: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by.setdefault(bucket_of(c, r["id"]), []).append(r)
    return by


def busiest(by: dict[str, list[dict[str, Any]]]) -> str:
    return max(sorted(by), key=lambda b: len(by[b]))


def test_completion_removes_only_rows_of_its_buckets(conn: Conn, tenant: str) -> None:
    by = spread(conn, tenant)
    b = busiest(by)
    assert len(by[b]) >= 2
    keep, gone = by[b][1:], by[b][0]  # the source deleted `gone`, and the DELETE was lost
    changed = {**keep[0], "updated_at": "2026-02-01T00:00:00Z", "title": "newer"}  # an update, lost
    sent = [changed, *keep[1:]]
    before = versions(conn, tenant)
    answer = apply(conn, full_sync(tenant, sent, 0, len(sent), "repair-1", buckets=[b]))
    assert answer["status"] == "applied" and answer["run_state"] == "complete", answer
    assert answer["removed"] == 1 and answer["upserted"] == 1
    after = versions(conn, tenant)
    assert set(before) - set(after) == {gone["id"]}  # every other bucket's rows are all there
    assert tombstone(conn, tenant, gone["id"]) is not None
    assert str(after[changed["id"]].isoformat()).startswith("2026-02-01")
    runs = conn.execute(
        "SELECT buckets, state FROM optiqoflow.sync_runs WHERE sync_id = 'repair-1'"
    ).fetchall()
    assert runs == [([b], "complete")]


def test_without_a_total_offset_0_removes_only_rows_of_its_buckets(conn: Conn, tenant: str) -> None:
    by = spread(conn, tenant)
    b = busiest(by)
    before = versions(conn, tenant)
    answer = apply(conn, full_sync(tenant, by[b][1:], 0, buckets=[b]))
    assert answer["status"] == "applied" and answer["removed"] == 1
    assert set(before) - set(versions(conn, tenant)) == {by[b][0]["id"]}


def test_sub_buckets_of_4_digits(conn: Conn, tenant: str) -> None:
    by = spread(conn, tenant, 80)
    victim = by[busiest(by)][0]["id"]
    sub = bucket_of(conn, victim, 4)
    others_in_sub = [
        r
        for rs in by.values()
        for r in rs
        if bucket_of(conn, r["id"], 4) == sub and r["id"] != victim
    ]
    before = versions(conn, tenant)
    answer = apply(
        conn, full_sync(tenant, others_in_sub, 0, len(others_in_sub), "sub", buckets=[sub])
    )
    assert answer["run_state"] == "complete" and answer["removed"] == 1
    assert set(before) - set(versions(conn, tenant)) == {victim}


def test_buckets_of_2_and_4_digits_in_one_run(conn: Conn, tenant: str) -> None:
    """A run naming buckets of both lengths removes the rows of each (its removal then
    matches both lengths; a run of one length matches with one md5 per row)."""
    by = spread(conn, tenant, 120)
    b = busiest(by)
    other = next(x for x in sorted(by, key=lambda x: -len(by[x])) if x != b)
    victim2, victim4 = by[b][0], by[other][0]
    sub = bucket_of(conn, victim4["id"], 4)
    in_sub = [r for r in by[other] if bucket_of(conn, r["id"], 4) == sub and r is not victim4]
    sent = [*by[b][1:], *in_sub]
    before = versions(conn, tenant)
    for total in (len(sent), None):  # completion with a total; offset 0 without one
        answer = apply(conn, full_sync(tenant, sent, 0, total, f"mixed-{total}", buckets=[b, sub]))
        assert answer["status"] == "applied", answer
    assert set(before) - set(versions(conn, tenant)) == {victim2["id"], victim4["id"]}
    # without a total, 4 digits only
    last = by[b][1]
    sub_b = bucket_of(conn, last["id"], 4)
    answer = apply(conn, full_sync(tenant, [], 0, buckets=[sub_b]))
    assert answer["removed"] == sum(1 for r in by[b][1:] if bucket_of(conn, r["id"], 4) == sub_b)
    assert last["id"] not in versions(conn, tenant)


def test_the_rules_of_a_run_hold(conn: Conn, tenant: str) -> None:
    """Versions: an older record does not overwrite a newer row; a row written after the
    run began is kept though the run does not carry it; a tombstone newer than a record
    keeps that row deleted."""
    by = spread(conn, tenant)
    b = busiest(by)
    rows = by[b]
    newer = {**rows[0], "updated_at": "2026-03-01T00:00:00Z", "title": "real-time, newer"}
    assert apply(conn, upsert(tenant, newer, "UPDATE"))["status"] == "applied"
    # the run's first batch: the old version of rows[0] (read before the change): stale
    first = apply(conn, full_sync(tenant, [rows[0]], 0, 2, "rules", buckets=[b]))
    assert first["stale"] == 1 and first["run_state"] == "running"
    # meanwhile a new row of that bucket arrives in real time
    late = next(i for i in iter(new_id, None) if bucket_of(conn, i) == b)
    assert apply(conn, upsert(tenant, rec(late, 5, title="late")))["status"] == "applied"
    # a row deleted at a newer version than the run's record of it stays deleted
    assert apply(conn, {"type": "DELETE", "table": "adhoc_work_orders", "tenant_id": tenant,
                        "old_record": {"id": rows[1]["id"], "updated_at": "2026-03-02T00:00:00Z"}})["rows"] == 1  # fmt: skip
    last = apply(conn, full_sync(tenant, [rows[1]], 1, 2, "rules", buckets=[b]))
    assert last["run_state"] == "complete" and last["stale"] == 1
    after = versions(conn, tenant)
    assert after[rows[0]["id"]].isoformat().startswith("2026-03-01")
    assert late in after and rows[1]["id"] not in after
    # the bucket's rows the run did not carry are gone; the others' are not
    assert {r["id"] for r in rows[2:]}.isdisjoint(after)
    assert all(r["id"] in after for bb, rs in by.items() if bb != b for r in rs)


@pytest.mark.parametrize(
    "buckets",
    [["3G"], ["abc"], [], [f"{i:02x}" for i in range(256)] + ["0000"], [1], "3f"],
)
def test_bad_buckets_are_refused(conn: Conn, tenant: str, buckets: Any) -> None:
    answer = apply(conn, full_sync(tenant, [], 0, buckets=buckets))
    assert answer["status"] == "refused" and answer["sqlstate"] == "OF027", answer
    assert answer["hint"]


def test_a_record_outside_its_buckets_is_refused(conn: Conn, tenant: str) -> None:
    by = spread(conn, tenant, 20)
    b, other = sorted(by)[:2]
    answer = apply(conn, full_sync(tenant, [by[b][0], by[other][0]], 0, 2, "out", buckets=[b]))
    assert answer["status"] == "refused" and answer["sqlstate"] == "OF027"
    assert len(versions(conn, tenant)) == 20


def test_a_batch_naming_other_buckets_than_its_run_is_refused(conn: Conn, tenant: str) -> None:
    by = spread(conn, tenant, 20)
    b, other = sorted(by)[:2]
    assert (
        apply(conn, full_sync(tenant, [by[b][0]], 0, 3, "mix", buckets=[b]))["status"] == "applied"
    )
    for named in ([other], None):
        extra = {"buckets": named} if named else {}
        answer = apply(conn, full_sync(tenant, [], 1, 3, "mix", **extra))
        assert answer["status"] == "refused" and answer["sqlstate"] == "OF027", answer
        assert "detail" in answer
