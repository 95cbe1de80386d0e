"""FULL_SYNC (docs/semantics.md, "FULL_SYNC"): runs, batches, what a run removes and
when, and how its records meet the real-time changes that arrive while it runs.

Every test runs on a fresh migrated database and reads the target table, the tombstones,
optiqoflow.sync_runs and the logs, not only the answers.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tests.helpers import (
    TARGET,
    apply,
    delete,
    full_sync,
    log_row,
    new_id,
    push_logs,
    rec,
    row,
    rows,
    sync_runs,
    tombstone,
    tombstones,
    upsert,
    v,
    versions,
    vt,
)

Conn = psycopg.Connection[Any]


def seed(c: Conn, tenant: str, n: int, version: int = 1, **cols: Any) -> list[str]:
    """n rows written in real time before any run, at `version`."""
    ids = [new_id() for _ in range(n)]
    for k in ids:
        assert apply(c, upsert(tenant, rec(k, version, **cols)))["status"] == "applied"
    return ids


def batch(ids: list[str], version: int, **cols: Any) -> list[dict[str, Any]]:
    return [rec(k, version, **cols) for k in ids]


def stored(c: Conn, tenant: str, id_: str) -> dict[str, Any]:
    r = row(c, tenant, id_)
    assert r is not None, f"no row {id_}"
    return r


def applied(ans: dict[str, Any]) -> dict[str, Any]:
    assert ans["status"] == "applied", ans
    assert ans["table"] == TARGET
    assert isinstance(ans["log_id"], int)
    return ans


# --- without total (Optiqo's sender today) ------------------------------------------------------


def test_without_total_offset_zero_replaces_the_tenants_rows_and_later_batches_add(
    conn: Conn, tenant: str
) -> None:
    old = seed(conn, tenant, 3)
    first, second = [new_id(), new_id()], [new_id()]

    ans = applied(apply(conn, full_sync(tenant, batch(first, 2, title="sync"), offset=0)))

    assert set(rows(conn, tenant)) == set(first)
    assert ans["rows"] == len(first) + len(old)  # inserted + removed
    assert all(
        r["title"] == "sync" and r["updated_at"] == vt(2) for r in rows(conn, tenant).values()
    )

    ans = applied(apply(conn, full_sync(tenant, batch(second, 2), offset=2)))
    assert ans["rows"] == 1
    assert "removed" not in ans or ans["removed"] == 0
    assert set(rows(conn, tenant)) == set(first + second)

    log = log_row(conn, ans["log_id"])
    assert (log["operation"], log["outcome"], log["rows"]) == ("FULL_SYNC", "applied", 1)
    assert [p["operation"] for p in push_logs(conn, tenant)][-2:] == ["FULL_SYNC", "FULL_SYNC"]


def test_without_total_offset_zero_keeps_a_newer_stored_copy_of_its_own_records(
    conn: Conn, tenant: str
) -> None:
    # the row was changed in real time after the sender read its snapshot
    [k] = seed(conn, tenant, 1, version=9, title="real-time")
    ans = applied(apply(conn, full_sync(tenant, [rec(k, 5, title="snapshot")], offset=0)))
    assert ans["stale"] == 1
    r = row(conn, tenant, k)
    assert r is not None and (r["title"], r["updated_at"]) == ("real-time", vt(9))


def test_without_total_a_run_survives_real_time_changes_between_batches(
    conn: Conn, tenant: str
) -> None:
    a, b, c = new_id(), new_id(), new_id()
    applied(apply(conn, full_sync(tenant, [rec(a, 1), rec(b, 1)], offset=0)))
    # real time, during the run: b deleted, a updated, d created
    d = new_id()
    apply(conn, delete(tenant, rec(b, 3)))
    apply(conn, upsert(tenant, rec(a, 3, title="live"), "UPDATE"))
    apply(conn, upsert(tenant, rec(d, 3, title="new")))

    # later batches carry older copies of a and b (read before the changes)
    ans = applied(
        apply(conn, full_sync(tenant, [rec(a, 2, title="old"), rec(b, 2), rec(c, 2)], offset=2))
    )

    assert ans["stale"] == 2
    assert set(rows(conn, tenant)) == {a, c, d}
    assert stored(conn, tenant, a)["title"] == "live"
    assert tombstone(conn, tenant, b) == vt(3)


# --- with total ----------------------------------------------------------------------------------


def test_with_total_nothing_is_removed_until_every_offset_arrived_in_any_order(
    conn: Conn, tenant: str
) -> None:
    old = seed(conn, tenant, 2)
    run = [new_id() for _ in range(6)]

    # offsets 4, 0, 2 of total 6, with a sync_id
    a1 = applied(apply(conn, full_sync(tenant, batch(run[4:], 2), offset=4, total=6, sync_id="s1")))
    assert set(rows(conn, tenant)) == set(old + run[4:])
    a2 = applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=6, sync_id="s1")))
    assert set(rows(conn, tenant)) == set(old + run[:2] + run[4:])
    assert tombstones(conn, tenant) == {}
    assert a1["removed"] == 0 and a2["removed"] == 0  # nothing removed before the run is complete
    [r] = sync_runs(conn, tenant)
    assert r["state"] == "running"

    a3 = applied(
        apply(conn, full_sync(tenant, batch(run[2:4], 2), offset=2, total=6, sync_id="s1"))
    )

    assert a3["removed"] == 2
    assert a3["rows"] == 4  # 2 written + 2 removed
    assert set(rows(conn, tenant)) == set(run)
    assert tombstones(conn, tenant) == {k: vt(1) for k in old}  # at the version they had
    [r] = sync_runs(conn, tenant)
    assert (r["state"], r["removed"], r["sync_id"], r["batches"], r["total"]) == (
        "complete",
        2,
        "s1",
        3,
        6,
    )
    assert log_row(conn, a3["log_id"])["sync_run_id"] == r["id"]


def test_completion_keeps_rows_written_after_the_run_started(conn: Conn, tenant: str) -> None:
    old_untouched, old_updated = seed(conn, tenant, 2)
    run = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=4)))

    # real time, during the run: a new row, and a newer copy of an old one
    fresh = new_id()
    apply(conn, upsert(tenant, rec(fresh, 3, title="created during the run")))
    apply(conn, upsert(tenant, rec(old_updated, 3, title="touched during the run"), "UPDATE"))

    ans = applied(apply(conn, full_sync(tenant, batch(run[2:], 2), offset=2, total=4)))

    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == set(run) | {fresh, old_updated}
    assert tombstones(conn, tenant) == {old_untouched: vt(1)}
    # a late older copy of the removed row does not bring it back
    assert apply(conn, upsert(tenant, rec(old_untouched, 1)))["status"] == "stale"
    assert row(conn, tenant, old_untouched) is None


def test_a_change_newer_than_the_source_snapshot_survives_even_if_it_arrived_first(
    conn: Conn, tenant: str
) -> None:
    # The source reads its snapshot at version 5 (occurred_at); a row created at version 6
    # is not in it, and its INSERT event reaches us before the run's first batch. Without
    # the snapshot time the completion would remove it as "written before the run started".
    gone = seed(conn, tenant, 1, version=1)[0]     # deleted at the source before the read
    after = seed(conn, tenant, 1, version=6)[0]    # created at the source after the read
    run = [new_id() for _ in range(2)]
    applied(apply(conn, full_sync(tenant, batch(run[:1], 2), offset=0, total=2, occurred_at=v(5))))
    ans = applied(apply(conn, full_sync(tenant, batch(run[1:], 2), offset=1, total=2, occurred_at=v(5))))

    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == {*run, after}
    assert tombstones(conn, tenant) == {gone: vt(1)}
    (run_row,) = sync_runs(conn, tenant)
    assert run_row["state"] == "complete"


def test_without_total_offset_zero_keeps_a_change_newer_than_the_source_snapshot(
    conn: Conn, tenant: str
) -> None:
    old, after = seed(conn, tenant, 1, version=1)[0], seed(conn, tenant, 1, version=6)[0]
    run = [new_id() for _ in range(2)]
    ans = applied(apply(conn, full_sync(tenant, batch(run, 2), offset=0, occurred_at=v(5))))
    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == {*run, after}
    assert old not in rows(conn, tenant)


def test_real_time_changes_during_a_run_are_not_undone_by_older_copies_in_later_batches(
    conn: Conn, tenant: str
) -> None:
    updated, deleted, untouched = seed(conn, tenant, 3, version=1, title="before")
    inserted = new_id()
    applied(
        apply(
            conn,
            full_sync(tenant, [rec(untouched, 2, title="sync")], offset=0, total=4, sync_id="r"),
        )
    )

    assert (
        apply(conn, upsert(tenant, rec(updated, 5, title="live"), "UPDATE"))["status"] == "applied"
    )
    assert apply(conn, delete(tenant, rec(deleted, 5)))["status"] == "applied"
    assert apply(conn, upsert(tenant, rec(inserted, 5, title="live")))["status"] == "applied"

    # the sender read these before the real-time changes
    ans = applied(apply(conn, full_sync(
        tenant, [rec(updated, 2, title="sync"), rec(deleted, 2, title="sync"), rec(inserted, 2, title="sync")],
        offset=1, total=4, sync_id="r",
    )))  # fmt: skip

    assert ans["stale"] == 3
    assert ans["removed"] == 0
    assert ans["rows"] == 0
    stored = rows(conn, tenant)
    assert set(stored) == {updated, inserted, untouched}
    assert (stored[updated]["title"], stored[updated]["updated_at"]) == ("live", vt(5))
    assert (stored[inserted]["title"], stored[inserted]["updated_at"]) == ("live", vt(5))
    assert stored[untouched]["title"] == "sync"
    assert tombstone(conn, tenant, deleted) == vt(5)
    assert sync_runs(conn, tenant)[0]["stale"] == 3


def test_a_real_time_delete_of_a_row_the_run_already_wrote_stays_deleted(
    conn: Conn, tenant: str
) -> None:
    k, other = new_id(), new_id()
    applied(apply(conn, full_sync(tenant, [rec(k, 2)], offset=0, total=2)))
    apply(conn, delete(tenant, rec(k, 3)))
    ans = applied(apply(conn, full_sync(tenant, [rec(other, 2)], offset=1, total=2)))
    assert ans["removed"] == 0
    assert set(rows(conn, tenant)) == {other}
    assert tombstone(conn, tenant, k) == vt(3)


def test_an_abandoned_run_removes_nothing(conn: Conn, tenant: str) -> None:
    old = seed(conn, tenant, 2)
    run = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=4, sync_id="a")))
    # a new run starts: "a" is abandoned
    applied(apply(conn, full_sync(tenant, batch(run[:2], 3), offset=0, total=4, sync_id="b")))
    assert {r["sync_id"]: r["state"] for r in sync_runs(conn, tenant)} == {
        "a": "abandoned",
        "b": "running",
    }

    # the rest of "a" arrives late: it covers [0, 4) of "a", but "a" is abandoned
    late = apply(conn, full_sync(tenant, batch(run[2:], 2), offset=2, total=4, sync_id="a"))

    assert late["status"] in ("applied", "duplicate", "stale"), late
    assert late.get("removed", 0) == 0
    assert set(old) <= set(rows(conn, tenant))
    assert tombstones(conn, tenant) == {}
    assert {r["sync_id"]: r["state"] for r in sync_runs(conn, tenant)} == {
        "a": "abandoned",
        "b": "running",
    }

    # "b" completes and removes what it did not carry
    ans = applied(apply(conn, full_sync(tenant, batch(run[2:], 3), offset=2, total=4, sync_id="b")))
    assert ans["removed"] == 2
    assert set(rows(conn, tenant)) == set(run)
    assert all(t == vt(3) for t in versions(conn, tenant).values())


def test_a_batch_of_a_run_that_arrives_again_is_a_duplicate(conn: Conn, tenant: str) -> None:
    ids = [new_id(), new_id()]
    applied(
        apply(conn, full_sync(tenant, batch(ids, 2, title="first"), offset=0, total=4, sync_id="s"))
    )
    before = rows(conn, tenant)

    again = apply(
        conn, full_sync(tenant, batch(ids, 3, title="again"), offset=0, total=4, sync_id="s")
    )

    assert again["status"] == "duplicate", again
    assert (again["rows"], again["stale"], again["table"]) == (0, 0, TARGET)
    assert rows(conn, tenant) == before
    assert log_row(conn, again["log_id"])["outcome"] == "duplicate"
    assert not [p for p in push_logs(conn, tenant) if p["webhook_log_id"] == again["log_id"]]
    [r] = sync_runs(conn, tenant)
    assert (r["batches"], r["state"]) == (1, "running")

    # also once the run is complete, and after rows were written since
    rest = [new_id(), new_id()]
    assert (
        applied(apply(conn, full_sync(tenant, batch(rest, 2), offset=2, total=4, sync_id="s")))[
            "removed"
        ]
        == 0
    )
    fresh = seed(conn, tenant, 1, version=5)
    again = apply(conn, full_sync(tenant, batch(rest, 2), offset=2, total=4, sync_id="s"))
    assert again["status"] == "duplicate", again
    assert set(rows(conn, tenant)) == set(ids + rest + fresh)
    assert [r["state"] for r in sync_runs(conn, tenant)] == ["complete"]


def test_a_run_without_sync_id_is_joined_by_later_offsets(conn: Conn, tenant: str) -> None:
    old = seed(conn, tenant, 1)
    run = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=4)))
    assert set(old) <= set(rows(conn, tenant))

    # the total came with the first batch only
    ans = applied(apply(conn, full_sync(tenant, batch(run[2:], 2), offset=2)))

    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == set(run)
    [r] = sync_runs(conn, tenant)
    assert (r["state"], r["batches"], r["sync_id"]) == ("complete", 2, None)


def test_without_total_a_later_offset_that_arrives_first_is_not_wiped_by_offset_zero(
    conn: Conn, tenant: str
) -> None:
    old = seed(conn, tenant, 2)
    early, zero = [new_id()], [new_id(), new_id()]
    applied(apply(conn, full_sync(tenant, batch(early, 2), offset=2)))
    ans = applied(apply(conn, full_sync(tenant, batch(zero, 2), offset=0)))
    assert set(rows(conn, tenant)) == set(early + zero)
    assert ans["rows"] == len(zero) + len(old)
    assert len(sync_runs(conn, tenant)) == 1


def test_without_sync_id_a_later_offset_that_arrives_again_is_a_duplicate(
    conn: Conn, tenant: str
) -> None:
    applied(apply(conn, full_sync(tenant, batch([new_id()], 2), offset=0)))
    k = new_id()
    applied(apply(conn, full_sync(tenant, [rec(k, 2, title="first")], offset=1)))
    again = apply(conn, full_sync(tenant, [rec(k, 3, title="again")], offset=1))
    assert again["status"] == "duplicate", again
    assert stored(conn, tenant, k)["title"] == "first"


def test_without_sync_id_a_retried_batch_of_a_completed_run_is_a_duplicate(
    conn: Conn, tenant: str
) -> None:
    ids = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(ids[:2], 2), offset=0, total=4)))
    last = full_sync(tenant, batch(ids[2:], 2), offset=2, total=4)
    assert applied(apply(conn, last))["removed"] == 0

    # the sender timed out on the last batch and sends it again (no delivery id, no sync_id)
    again = apply(conn, last)

    assert again["status"] == "duplicate", again
    assert [r["state"] for r in sync_runs(conn, tenant)] == ["complete"]


def test_without_sync_id_a_retried_batch_does_not_complete_the_next_run_early(
    conn: Conn, tenant: str
) -> None:
    ids = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(ids[:2], 2), offset=0, total=4)))
    last = full_sync(tenant, batch(ids[2:], 2), offset=2, total=4)
    applied(apply(conn, last))
    [late] = seed(conn, tenant, 1, version=3)  # real time, after the first run
    apply(conn, last)  # a retry of the first run's last batch

    # the next full sync (5 records now, `late` among them, each at its stored version):
    # nothing may be removed before its offsets [0, 5) have all arrived, and at the end
    # every record of it is stored
    ans = applied(apply(conn, full_sync(tenant, batch(ids[:2], 2), offset=0, total=5)))
    late_seen = late in rows(conn, tenant)
    applied(apply(conn, full_sync(tenant, [*batch(ids[2:], 2), rec(late, 3)], offset=2, total=5)))

    assert set(rows(conn, tenant)) == {*ids, late}
    assert tombstones(conn, tenant) == {}
    assert ans.get("removed", 0) == 0 and late_seen, ans


def test_a_run_without_sync_id_accepts_offset_zero_after_later_offsets(
    conn: Conn, tenant: str
) -> None:
    old = seed(conn, tenant, 1)
    run = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(run[2:], 2), offset=2, total=4)))
    ans = applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=4)))
    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == set(run)
    assert tombstones(conn, tenant) == {old[0]: vt(1)}
    assert [r["state"] for r in sync_runs(conn, tenant)] == ["complete"]


def test_a_new_offset_zero_starts_a_new_run_and_abandons_the_old(conn: Conn, tenant: str) -> None:
    old = seed(conn, tenant, 1)
    run = [new_id() for _ in range(4)]
    applied(apply(conn, full_sync(tenant, batch(run[:2], 2), offset=0, total=4)))
    # the sender restarted its sync: offset 0 again, now with 3 records in all
    applied(apply(conn, full_sync(tenant, batch(run[:2], 3), offset=0, total=3)))

    runs = sync_runs(conn, tenant)
    assert [r["state"] for r in runs] == ["abandoned", "running"]
    assert set(old) <= set(rows(conn, tenant))

    ans = applied(apply(conn, full_sync(tenant, batch(run[2:3], 3), offset=2)))

    assert ans["removed"] == 1
    assert set(rows(conn, tenant)) == set(run[:3])
    assert [r["state"] for r in sync_runs(conn, tenant)] == ["abandoned", "complete"]


def test_a_key_present_twice_in_a_batch_keeps_its_newest_version(conn: Conn, tenant: str) -> None:
    a, b = new_id(), new_id()
    records = [
        rec(a, 2, title="a older"), rec(a, 4, title="a newest"), rec(a, 3, title="a middle"),
        rec(b, 7, title="b newest"), rec(b.upper(), 6, title="b older, spelled otherwise"),
    ]  # fmt: skip
    ans = applied(apply(conn, full_sync(tenant, records, offset=0, total=5)))
    stored_ = rows(conn, tenant)
    assert set(stored_) == {a, b}
    assert (stored_[a]["title"], stored_[a]["updated_at"]) == ("a newest", vt(4))
    assert (stored_[b]["title"], stored_[b]["updated_at"]) == ("b newest", vt(7))
    assert ans["rows"] == 2

    # the same in the offset-0 batch of a run without total (which also wipes)
    c = new_id()
    ans = applied(
        apply(conn, full_sync(tenant, [rec(c, 3, title="new"), rec(c, 1, title="old")], offset=0))
    )
    assert set(rows(conn, tenant)) == {c}
    assert stored(conn, tenant, c)["title"] == "new"


def test_stale_and_removed_are_counted_in_the_answer_and_the_run(conn: Conn, tenant: str) -> None:
    keep = seed(conn, tenant, 3, version=5)  # newer than the run's copies
    gone = seed(conn, tenant, 2, version=1)
    fresh = [new_id(), new_id()]
    a1 = applied(
        apply(conn, full_sync(tenant, batch(keep, 3) + batch(fresh[:1], 3), offset=0, total=5))
    )
    assert (a1["stale"], a1["rows"]) == (3, 1)
    a2 = applied(apply(conn, full_sync(tenant, batch(fresh[1:], 3), offset=4, total=5)))
    assert (a2["stale"], a2["removed"], a2["rows"]) == (0, 2, 3)
    assert set(rows(conn, tenant)) == set(keep + fresh)  # stale rows count as carried by the run
    assert tombstones(conn, tenant) == {k: vt(1) for k in gone}
    assert all(versions(conn, tenant)[k] == vt(5) for k in keep)
    [r] = sync_runs(conn, tenant)
    assert (r["stale"], r["removed"], r["records"]) == (3, 2, 5)
    log = log_row(conn, a2["log_id"])
    assert (log["outcome"], log["rows"]) == ("applied", 3)

    # a run of equal copies writes nothing and removes nothing
    again = applied(
        apply(conn, full_sync(tenant, batch(keep, 5) + batch(fresh, 3), offset=0, total=5))
    )
    assert (again["rows"], again["removed"], again["stale"], again["duplicates"]) == (0, 0, 0, 5)
    assert set(rows(conn, tenant)) == set(keep + fresh)


def test_other_tenants_rows_with_the_same_ids_are_untouched(conn: Conn) -> None:
    for with_total in (True, False):
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        shared = [new_id(), new_id()]
        only_b = new_id()
        for k in [*shared, only_b]:
            apply(conn, upsert(b, rec(k, 9, title="B's")))
        apply(conn, delete(b, rec(new_id(), 9)))
        a_old = seed(conn, a, 2)
        b_rows, b_tombs = rows(conn, b), tombstones(conn, b)

        total = 2 if with_total else None
        applied(
            apply(
                conn,
                full_sync(a, batch(shared, 2, title="A's"), offset=0, total=total, sync_id="x"),
            )
        )

        assert rows(conn, b) == b_rows, with_total
        assert tombstones(conn, b) == b_tombs
        assert set(rows(conn, a)) == set(shared)
        assert all(r["title"] == "A's" for r in rows(conn, a).values())
        if with_total:
            assert set(tombstones(conn, a)) == set(a_old)
        assert sync_runs(conn, b) == []


def test_total_zero_with_no_records_removes_all_of_the_tenants_rows(
    conn: Conn, tenant: str
) -> None:
    old = seed(conn, tenant, 3)
    other = str(uuid.uuid4())
    other_ids = seed(conn, other, 2)
    zone = new_id()
    apply(
        conn,
        {"type": "INSERT", "table": "zone_categories", "tenant_id": tenant, "record": rec(zone, 1)},
    )

    ans = applied(apply(conn, full_sync(tenant, [], offset=0, total=0)))

    assert ans["removed"] == 3
    assert ans["rows"] == 3
    assert rows(conn, tenant) == {}
    assert tombstones(conn, tenant) == {k: vt(1) for k in old}
    assert set(rows(conn, other)) == set(other_ids)  # another tenant
    assert set(rows(conn, tenant, "zones")) == {zone}  # another table
    [r] = sync_runs(conn, tenant)
    assert (r["state"], r["removed"]) == ("complete", 3)
    [push] = [p for p in push_logs(conn, tenant) if p["webhook_log_id"] == ans["log_id"]]
    assert (push["operation"], push["rows"], push["tables"]) == ("FULL_SYNC", 3, [TARGET])


def test_full_sync_records_that_are_refused_start_no_run(conn: Conn, tenant: str) -> None:
    old = seed(conn, tenant, 1)
    ans = apply(conn, full_sync(tenant, [rec(new_id(), 2, priority="urgent")], offset=0))
    assert ans["status"] == "refused"
    assert set(rows(conn, tenant)) == set(old)  # offset 0 without total did not wipe
    assert sync_runs(conn, tenant) == []
    assert log_row(conn, ans["log_id"])["payload"]["records"][0]["priority"] == "urgent"


def test_a_batch_is_judged_alike_with_and_without_tombstones_of_the_tenant(conn: Conn) -> None:
    """The writer takes a shorter statement for a batch when the tenant has no tombstone in
    the table (no per-record tombstone probe); both must give the same answer and rows."""
    outcomes = []
    for with_tombstone in (False, True):
        tenant = str(uuid.uuid4())
        if with_tombstone:  # a deletion of some other row of the tenant
            assert apply(conn, delete(tenant, rec(new_id(), 1)))["status"] == "applied"
            assert len(tombstones(conn, tenant)) == 1
        equal, older, newer = (seed(conn, tenant, 2, version=4) for _ in range(3))
        fresh = [new_id(), new_id()]
        records = batch(equal, 4) + batch(older, 2) + batch(newer, 6) + batch(fresh, 3)
        ans = applied(apply(conn, full_sync(tenant, records, offset=0, total=8)))
        assert (ans["rows"], ans["duplicates"], ans["stale"], ans["removed"]) == (4, 2, 2, 0), ans
        got = versions(conn, tenant)
        assert got == {**{k: vt(4) for k in equal + older}, **{k: vt(6) for k in newer},
                       **{k: vt(3) for k in fresh}}, "stale and equal copies keep the stored row"
        [run] = sync_runs(conn, tenant)
        assert run["state"] == "complete"
        outcomes.append((ans["rows"], ans["duplicates"], ans["stale"], run["stale"], run["removed"]))
    assert outcomes[0] == outcomes[1]


def test_a_batch_names_its_first_record_whose_id_is_not_a_uuid(conn: Conn, tenant: str) -> None:
    """Ids are read by uuid's input function first and by the pattern only when one fails:
    the refusal still names the first offender, and every spelling uuid accepts passes."""
    good = [rec(new_id(), 1) for _ in range(4)]
    spelled = str(uuid.uuid4())
    good.append(rec("{" + spelled.upper().replace("-", "") + "}", 1))  # braces, upper case, no hyphens
    bad = [*good[:2], rec("42", 1), good[2], rec("not-a-uuid", 1)]
    ans = apply(conn, full_sync(tenant, bad, offset=0, total=5))
    assert (ans["status"], ans["sqlstate"]) == ("refused", "OF005"), ans
    assert ans["error"] == "record 3 has no id that is a UUID"
    assert not rows(conn, tenant)  # nothing of it written
    ok = applied(apply(conn, full_sync(tenant, good, offset=0, total=5)))
    assert ok["rows"] == 5
    assert spelled in set(rows(conn, tenant))
