"""The sync semantics (docs/semantics.md) under real concurrency: several psycopg
connections, one per thread, released together by a barrier, each calling
optiqoflow.apply_webhook as the receiver does. Each race is repeated (new keys or
tenants each round) so that the interleavings vary; the outcome asserted is the one
every interleaving must reach.

No sleeps: the barrier starts the calls together, and PostgreSQL's locks decide the order.
"""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.helpers import (
    TARGET,
    apply,
    count,
    delete,
    full_sync,
    new_id,
    push_logs,
    rec,
    row,
    rows,
    sync_runs,
    tombstone,
    tombstones,
    upsert,
    vt,
)

Conn = psycopg.Connection[Any]
Answer = dict[str, Any] | BaseException


class Racer:
    """n autocommit connections, each driven by its own thread."""

    def __init__(self, dsn: str, n: int) -> None:
        self.conns = [psycopg.connect(dsn, autocommit=True) for _ in range(n)]
        self.pool = ThreadPoolExecutor(max_workers=n)

    def close(self) -> None:
        self.pool.shutdown(wait=True)
        for c in self.conns:
            c.close()

    def race(self, jobs: list[Callable[[Conn], Any]]) -> list[Any]:
        """Run job i on connection i, all released at once; results (or the exception) in order."""
        assert len(jobs) <= len(self.conns)
        barrier = threading.Barrier(len(jobs))

        def run(job: Callable[[Conn], Any], c: Conn) -> Any:
            barrier.wait(timeout=30)
            try:
                return job(c)
            except BaseException as e:  # reported, not raised in the worker
                return e

        futures = [self.pool.submit(run, j, c) for j, c in zip(jobs, self.conns, strict=False)]
        return [f.result(timeout=60) for f in futures]

    def apply_all(self, payloads: list[tuple[dict[str, Any], str | None]]) -> list[Answer]:
        return self.race([lambda c, p=p, d=d: apply(c, p, d) for p, d in payloads])


@pytest.fixture
def racer(db_dsn: str) -> Iterator[Callable[[int], Racer]]:
    made: list[Racer] = []

    def make(n: int) -> Racer:
        r = Racer(db_dsn, n)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def statuses(answers: list[Answer]) -> Counter[str]:
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert not errors, f"errors under concurrency: {errors!r}"
    return Counter(a["status"] for a in answers)  # type: ignore[index]


# --- one event, many deliveries ---------------------------------------------------------------


def test_the_same_event_from_eight_connections_is_applied_exactly_once(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    r = racer(8)
    tenant = str(uuid.uuid4())
    for round_ in range(12):
        k = new_id()
        by = ("event_id", "delivery id")[round_ % 2]
        payload = upsert(tenant, rec(k, 1, title=f"round {round_}"))
        if by == "event_id":
            payload["event_id"] = f"ev-{round_}"
        dlv = f"dlv-{round_}" if by == "delivery id" else None

        got = statuses(r.apply_all([(payload, dlv)] * 8))

        assert got == {"applied": 1, "duplicate": 7}, (round_, by, got)
        assert row(conn, tenant, k) is not None
        key = payload.get("event_id") or dlv
        outcomes = conn.execute(
            "SELECT outcome, count(*) FROM optiqoflow.webhook_logs "
            "WHERE coalesce(event_id, delivery_id) = %s GROUP BY 1", (key,),
        ).fetchall()  # fmt: skip
        assert dict(outcomes) == {"applied": 1, "duplicate": 7}

    assert (
        count(conn, "SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", tenant)
        == 12
    )
    assert len(push_logs(conn, tenant)) == 12


def test_the_same_full_sync_batch_from_eight_connections_is_applied_exactly_once(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    r = racer(8)
    for round_ in range(6):
        tenant = str(uuid.uuid4())
        ids = [new_id() for _ in range(20)]
        payload = full_sync(
            tenant, [rec(k, 1) for k in ids], offset=20, total=40, sync_id=f"s{round_}"
        )

        got = statuses(r.apply_all([(payload, None)] * 8))

        assert got == {"applied": 1, "duplicate": 7}, (round_, got)
        [run] = sync_runs(conn, tenant)
        assert (run["batches"], run["records"], run["state"]) == (1, 20, "running")
        assert set(rows(conn, tenant)) == set(ids)


# --- one key: INSERT, DELETE, INSERT at once --------------------------------------------------


def test_insert_delete_insert_of_one_key_racing_end_in_the_newest_version(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    """Both tenants use the same ids at the same time: each ends in its own newest version."""
    r = racer(6)
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    rng = random.Random(5)
    for _ in range(25):
        k = new_id()
        # A: the newest change is an insert (v3); B: the newest change is the delete (v3)
        jobs = [
            (upsert(a, rec(k, 1, title="a1")), None),
            (delete(a, rec(k, 2)), None),
            (upsert(a, rec(k, 3, title="a3")), None),
            (upsert(b, rec(k, 1, title="b1")), None),
            (upsert(b, rec(k, 2, title="b2"), "UPDATE"), None),
            (delete(b, rec(k, 3)), None),
        ]
        rng.shuffle(jobs)

        got = statuses(r.apply_all(jobs))

        assert set(got) <= {"applied", "stale"}, got
        ra = row(conn, a, k)
        assert ra is not None and (ra["title"], ra["updated_at"]) == ("a3", vt(3))
        assert tombstone(conn, a, k) is None
        assert row(conn, b, k) is None
        assert tombstone(conn, b, k) == vt(3)


def test_deletes_and_writes_of_many_keys_at_once_leave_no_row_beside_its_tombstone(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    r = racer(8)
    tenant = str(uuid.uuid4())
    keys = [new_id() for _ in range(6)]
    rng = random.Random(7)
    newest: dict[str, tuple[int, str]] = {}
    for round_ in range(1, 13):
        jobs: list[tuple[dict[str, Any], str | None]] = []
        for i in range(8):
            k = rng.choice(keys)
            n = round_ * 10 + i
            if rng.random() < 0.4:
                jobs.append((delete(tenant, rec(k, n)), None))
                kind = "delete"
            else:
                jobs.append((upsert(tenant, rec(k, n, title=str(n))), None))
                kind = "write"
            if k not in newest or newest[k][0] < n:
                newest[k] = (n, kind)
        statuses(r.apply_all(jobs))

    stored, tombs = rows(conn, tenant), tombstones(conn, tenant)
    assert not set(stored) & set(tombs)
    for k, (n, kind) in newest.items():
        if kind == "write":
            assert stored[k]["updated_at"] == vt(n), k
        else:
            assert k not in stored and tombs[k] == vt(n), k


# --- FULL_SYNC batches from two connections ---------------------------------------------------


def test_full_sync_batches_of_one_tenant_and_table_from_two_connections(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    r = racer(2)
    size, n_batches = 5, 8
    total = size * n_batches
    for mode, round_ in itertools.product(["sync_id", "no-sync_id", "no-total"], range(5)):
        tenant = str(uuid.uuid4())
        old = [new_id() for _ in range(3)]
        for k in old:
            apply(conn, upsert(tenant, rec(k, 1, title="old")))
        ids = [new_id() for _ in range(total)]
        payloads = [
            full_sync(
                tenant, [rec(k, 2, title="sync") for k in ids[o : o + size]], offset=o,
                total=None if mode == "no-total" else total,
                sync_id=f"run-{round_}" if mode == "sync_id" else None,
            )
            for o in range(0, total, size)
        ]  # fmt: skip
        # the sender's two workers: even batches on one connection, odd on the other; with
        # a sync_id the first worker also repeats its first batch at the end (a retry). In
        # the modes without a total, offset 0 and offset 5 race to start the run.
        mine, theirs = payloads[0::2], payloads[1::2]
        if mode == "sync_id":
            mine.append(payloads[0])
        if round_ % 2:
            mine, theirs = theirs, mine

        def send(batches: list[dict[str, Any]]) -> Callable[[Conn], list[dict[str, Any]]]:
            return lambda c: [apply(c, p) for p in batches]

        results = r.race([send(mine), send(theirs)])
        errors = [x for x in results if isinstance(x, BaseException)]
        assert not errors, errors
        answers = [a for res in results for a in res]

        got = Counter(a["status"] for a in answers)
        if mode == "sync_id":
            assert got == {"applied": n_batches, "duplicate": 1}, got
        else:
            assert got == {"applied": n_batches}, got
        assert set(rows(conn, tenant)) == set(ids), (mode, round_)
        assert all(x["title"] == "sync" for x in rows(conn, tenant).values())
        if mode != "no-total":
            assert sum(a.get("removed", 0) for a in answers) == 3
            assert set(tombstones(conn, tenant)) == set(old)
            completed = [x for x in sync_runs(conn, tenant) if x["state"] == "complete"]
            assert len(completed) == 1
            assert completed[0]["removed"] == 3


def test_full_sync_batches_racing_while_one_of_them_adds_a_column(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    """Two workers of one sender per tenant, four tenants at once: beside each plain batch
    runs a batch of the same run that brings a new column (schema evolution). None may
    fail (a deadlock or lock timeout here would be a 503 and a retry for the sender)."""
    pairs, size = 4, 50
    r = racer(2 * pairs)
    for round_ in range(10):
        tenants = [str(uuid.uuid4()) for _ in range(pairs)]
        ids = {t: [new_id() for _ in range(2 * size)] for t in tenants}
        jobs: list[tuple[dict[str, Any], str | None]] = []
        for p, t in enumerate(tenants):
            col = f"fs_col_{round_}_{p}"
            jobs.append((full_sync(t, [rec(k, 1) for k in ids[t][:size]], 0, 2 * size, "s"), None))
            jobs.append(
                (
                    full_sync(
                        t, [rec(k, 1, **{col: "x"}) for k in ids[t][size:]], size, 2 * size, "s"
                    ),
                    None,
                )
            )

        got = statuses(r.apply_all(jobs))

        assert got == {"applied": 2 * pairs}, (round_, got)
        for t in tenants:
            assert set(rows(conn, t)) == set(ids[t])
            assert [x["state"] for x in sync_runs(conn, t)] == ["complete"]


def test_real_time_changes_racing_the_batch_that_completes_a_run(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    r = racer(4)
    for _ in range(15):
        tenant = str(uuid.uuid4())
        before, doomed, in_run, created = new_id(), new_id(), new_id(), new_id()
        gone_later = new_id()
        apply(conn, upsert(tenant, rec(before, 1, title="before")))
        apply(conn, upsert(tenant, rec(doomed, 1, title="before")))
        apply(conn, upsert(tenant, rec(gone_later, 1, title="before")))
        apply(conn, full_sync(tenant, [rec(in_run, 2)], offset=0, total=3, sync_id="s"))

        got = statuses(r.apply_all([
            # completes the run: carries gone_later (older than the delete below), not `before`
            (full_sync(tenant, [rec(gone_later, 2), rec(new_id(), 2)], offset=1, total=3, sync_id="s"), None),
            (upsert(tenant, rec(created, 5, title="live")), None),
            (upsert(tenant, rec(before, 5, title="live"), "UPDATE"), None),
            (delete(tenant, rec(gone_later, 5)), None),
        ]))  # fmt: skip

        assert got["applied"] >= 3, got
        stored = rows(conn, tenant)
        # written after the run started: kept whichever commits first
        assert stored[created]["title"] == "live"
        assert (stored[before]["title"], stored[before]["updated_at"]) == ("live", vt(5))
        # deleted during the run: stays deleted
        assert gone_later not in stored
        assert tombstone(conn, tenant, gone_later) == vt(5)
        # neither in the run nor written after it started: removed
        assert doomed not in stored
        assert tombstone(conn, tenant, doomed) == vt(1)
        assert in_run in stored
        assert [x["state"] for x in sync_runs(conn, tenant)] == ["complete"]


# --- schema evolution from many tenants at once -----------------------------------------------


def test_many_tenants_pushing_new_columns_to_one_table_at_once(
    conn: Conn, racer: Callable[[int], Racer]
) -> None:
    n = 10
    r = racer(n + 2)
    tenants = [str(uuid.uuid4()) for _ in range(n)]
    for round_ in range(4):
        shared, ids = f"shared_col_{round_}", [new_id() for _ in range(n)]
        jobs: list[tuple[dict[str, Any], str | None]] = [
            (upsert(t, rec(ids[i], round_ + 1, **{shared: f"{i}", f"t{i}_col_{round_}": i})), None)
            for i, t in enumerate(tenants)
        ]
        # plain writes to the same table (no new column) and a FULL_SYNC batch with one
        jobs.append((upsert(tenants[0], rec(new_id(), 1, title="plain")), None))
        jobs.append((full_sync(str(uuid.uuid4()), [rec(new_id(), 1, **{shared: "fs"})], offset=0,
                               sync_id=f"evo-{round_}"), None))  # fmt: skip

        got = statuses(r.apply_all(jobs))

        assert got == {"applied": n + 2}, got
        with conn.cursor(row_factory=dict_row) as cur:
            cols = {
                x["column_name"]: x["data_type"]
                for x in cur.execute(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'optiqoflow' AND table_name = %s", (TARGET,),
                ).fetchall()
            }  # fmt: skip
        assert cols[shared] == "text"
        for i, t in enumerate(tenants):
            assert cols[f"t{i}_col_{round_}"] == "numeric"
            stored = row(conn, t, ids[i])
            assert stored is not None
            assert (stored[shared], stored[f"t{i}_col_{round_}"]) == (f"{i}", i)
            tracked = conn.execute(
                "SELECT columns FROM tenants.tenant_column_access WHERE tenant_id = %s AND table_name = %s",
                (t, TARGET),
            ).fetchone()
            assert tracked is not None and {shared, f"t{i}_col_{round_}"} <= set(tracked[0])
            view_cols = {
                c for (c,) in conn.execute(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'tenants' AND table_name = %s", (f"{t}_{TARGET}",),
                ).fetchall()
            }  # fmt: skip
            assert {shared, f"t{i}_col_{round_}"} <= view_cols
            # another tenant's column is not in this tenant's view
            assert f"t{(i + 1) % n}_col_{round_}" not in view_cols
