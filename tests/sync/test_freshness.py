"""Dashboard freshness: the push log, chart cache invalidation and refill, live refresh.

The rules are in docs/semantics.md ("Push log", "Chart cache invalidation", "Refilling a
cache entry", "The notification channel"). Every applied delivery writes one
tenants.tenant_data_push_log row and invalidates that tenant's chart caches for the
target table it changed, in the delivery's own transaction;
public.invalidate_chart_cache_for_tables rewrites nothing that is already invalid/stale
(so a FULL_SYNC of many batches costs one invalidation) and NOTIFYs
`optiqoflow_invalidation` at commit when something became stale. A dashboard refills an
entry with the generation protocol below (docs/semantics.md documents the same SQL), so
a refill computed before an invalidation can never be marked valid after it.

Row rewrites are counted with xmin (across transactions) and pg_stat_xact_user_tables
(inside one); calls with pg_stat_xact_user_functions (track_functions = 'pl'). Live
refresh is observed on a separate autocommit LISTEN connection; "nothing arrived" is
proved with a sentinel NOTIFY sent afterwards on another channel, not with a sleep.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from tests.helpers import TARGET, apply, count, delete, full_sync, new_id, rec, upsert

SITES_SOURCE, SITES = "customer_sites", "sites"
TEAMS_SOURCE = "staff_teams"  # a table no chart reads
CHANNEL = "optiqoflow_invalidation"
SENTINEL = "optiqoflow_test_sentinel"

# The refill protocol a dashboard runs (docs/semantics.md, "Refilling a cache entry"),
# verbatim.
CLAIM = (
    "UPDATE public.chart_data_cache SET refresh_started_at = now()"
    " WHERE id = %(entry)s RETURNING generation"
)
WRITE = (
    "UPDATE public.chart_data_cache"
    "   SET data = %(data)s, is_valid = true, computed_at = now(), refresh_started_at = NULL"
    " WHERE id = %(entry)s AND generation = %(generation)s"
)
# The entries are read FOR SHARE, so a delivery that has invalidated one of them but not
# committed yet makes this wait and then see the entry invalid (a plain NOT EXISTS would
# read the old, valid version and mark the chart fresh under a stale entry).
MARK_FRESH = (
    "UPDATE public.charts SET cache_status = 'fresh', stale_since = NULL"
    " WHERE id = %(chart)s AND cache_status <> 'fresh'"
    "   AND (SELECT coalesce(bool_and(e.is_valid), true)"
    "          FROM (SELECT c.is_valid FROM public.chart_data_cache c"
    "                 WHERE c.chart_id = %(chart)s FOR SHARE) e)"
)

Conn = psycopg.Connection[Any]
WORK_ORDER = "SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s AND id = %s"


def claim(c: Conn, entry: str) -> int:
    """Step 1 of a refill: claim the entry, remember its generation."""
    row = c.execute(CLAIM, {"entry": entry}).fetchone()
    assert row is not None
    return int(row[0])


def write(c: Conn, entry: str, generation: int, data: str = "{}") -> int:
    """Step 2: store the computed data; rows updated (0: invalidated meanwhile, discard)."""
    return c.execute(WRITE, {"entry": entry, "data": data, "generation": generation}).rowcount


def mark_fresh(c: Conn, chart: str) -> int:
    """Step 3: the chart back to 'fresh' once none of its entries is invalid."""
    return c.execute(MARK_FRESH, {"chart": chart}).rowcount


# --- payloads ------------------------------------------------------------------------


def batch(n_records: int, version: int) -> list[dict[str, Any]]:
    """n_records new work orders at version n, for a FULL_SYNC batch."""
    return [rec(new_id(), version, title="x") for _ in range(n_records)]


# --- charts and cache entries --------------------------------------------------------


@dataclass
class Chart:
    id: str
    entries: dict[tuple[str, str], str] = field(
        default_factory=dict
    )  # (tenant, cache_key) -> entry id

    def entry(self, tenant: str, key: str = "") -> str:
        return self.entries[(tenant, key)]


def make_chart(
    c: Conn, owner: str | None, tables: list[str], entries: list[tuple[str, str]]
) -> Chart:
    """A chart (owner None: shared by all tenants) reading `tables`, with valid cache entries."""
    row = c.execute(
        "INSERT INTO public.charts (tenant_id, title, query) VALUES (%s, 'chart', 'SELECT 1') RETURNING id::text",
        (owner,),
    ).fetchone()
    assert row is not None
    chart = Chart(row[0])
    c.execute(
        "INSERT INTO public.chart_table_dependencies (chart_id, table_name) SELECT %s, unnest(%s::text[])",
        (chart.id, tables),
    )
    for tenant, key in entries:
        e = c.execute(
            "INSERT INTO public.chart_data_cache (chart_id, tenant_id, cache_key, data, computed_at)"
            " VALUES (%s, %s, %s, '{\"v\": 0}', now()) RETURNING id::text",
            (chart.id, tenant, key),
        ).fetchone()
        assert e is not None
        chart.entries[(tenant, key)] = e[0]
    return chart


def entry_row(c: Conn, entry_id: str) -> dict[str, Any]:
    with c.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT is_valid, generation, invalidated_at, refresh_started_at, data,"
            "       xmin::text AS xmin FROM public.chart_data_cache WHERE id = %s",
            (entry_id,),
        ).fetchone()
    assert row is not None
    return row


def chart_row(c: Conn, chart_id: str) -> dict[str, Any]:
    with c.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT cache_status, stale_since, xmin::text AS xmin FROM public.charts WHERE id = %s",
            (chart_id,),
        ).fetchone()
    assert row is not None
    return row


def snapshot(c: Conn) -> dict[str, str]:
    """xmin of every chart and cache entry: unchanged xmin = row not rewritten."""
    rows = c.execute(
        "SELECT 'chart:' || id, xmin::text FROM public.charts"
        " UNION ALL SELECT 'entry:' || id, xmin::text FROM public.chart_data_cache"
    ).fetchall()
    return dict(rows)


def push_logs(c: Conn, tenant: str | None = None) -> list[dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT tenant_id::text, tables, operation, rows, pushed_at, webhook_log_id"
            "  FROM tenants.tenant_data_push_log WHERE %(t)s::uuid IS NULL OR tenant_id = %(t)s ORDER BY id",
            {"t": tenant},
        ).fetchall()


def invalidate(c: Conn, tenant: str, tables: list[str]) -> dict[str, Any]:
    row = c.execute(
        "SELECT public.invalidate_chart_cache_for_tables(%s, %s)", (tenant, tables)
    ).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def xact_stats(c: Conn) -> dict[str, int]:
    """Row updates of the dashboard tables and invalidation calls, in the current transaction."""
    stats = dict(
        c.execute(
            "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables"
            " WHERE schemaname = 'public' AND relname IN ('charts', 'chart_data_cache')"
        ).fetchall()
    )
    calls = c.execute(
        "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions"
        " WHERE schemaname = 'public' AND funcname = 'invalidate_chart_cache_for_tables'"
    ).fetchone()
    assert calls is not None
    return {
        "charts": int(stats.get("charts", 0)),
        "entries": int(stats.get("chart_data_cache", 0)),
        "calls": int(calls[0]),
    }


# --- the world most tests use --------------------------------------------------------


@dataclass
class World:
    a: str
    b: str
    a_wo: Chart  # tenant A's chart on work_orders, two cache keys
    a_multi: Chart  # tenant A's chart on sites and work_orders
    a_sites: Chart  # tenant A's chart on sites only
    shared: Chart  # a shared chart (tenant_id NULL) on work_orders, one entry per tenant
    b_wo: Chart  # tenant B's chart on work_orders

    def a_charts_on_work_orders(self) -> list[str]:
        return sorted([self.a_wo.id, self.a_multi.id, self.shared.id])


@pytest.fixture
def world(conn: Conn, tenant: str) -> World:
    a, b = tenant, str(uuid.uuid4())
    return World(
        a=a,
        b=b,
        a_wo=make_chart(conn, a, [TARGET], [(a, ""), (a, "by-site")]),
        a_multi=make_chart(conn, a, [SITES, TARGET], [(a, "")]),
        a_sites=make_chart(conn, a, [SITES], [(a, "")]),
        shared=make_chart(conn, None, [TARGET], [(a, ""), (b, "")]),
        b_wo=make_chart(conn, b, [TARGET], [(b, "")]),
    )


def assert_a_work_orders_invalidated(c: Conn, w: World, before: dict[str, str]) -> None:
    """A's entries of the work_orders charts invalid, A's charts stale; nothing else rewritten."""
    for chart, key in ((w.a_wo, ""), (w.a_wo, "by-site"), (w.a_multi, ""), (w.shared, "")):
        e = entry_row(c, chart.entry(w.a, key))
        assert (e["is_valid"], e["generation"]) == (False, 1), (chart, key)
        assert e["invalidated_at"] is not None
    for chart in (w.a_wo, w.a_multi):
        ch = chart_row(c, chart.id)
        assert ch["cache_status"] == "stale"
        assert ch["stale_since"] is not None
    after = snapshot(c)
    untouched = [
        f"chart:{w.a_sites.id}",
        f"entry:{w.a_sites.entry(w.a)}",  # chart on another table
        f"chart:{w.shared.id}",
        f"entry:{w.shared.entry(w.b)}",  # shared chart: B's entry
        f"chart:{w.b_wo.id}",
        f"entry:{w.b_wo.entry(w.b)}",  # tenant B's chart
    ]
    assert {k: after[k] for k in untouched} == {k: before[k] for k in untouched}
    assert entry_row(c, w.shared.entry(w.b))["is_valid"] is True
    assert chart_row(c, w.b_wo.id)["cache_status"] == "fresh"
    assert chart_row(c, w.a_sites.id)["cache_status"] == "fresh"


# --- LISTEN --------------------------------------------------------------------------


@dataclass
class Listener:
    conn: Conn
    side: Conn  # another autocommit connection, for the sentinel

    def drain(self) -> list[dict[str, Any]]:
        """Every invalidation notification committed so far, in order.

        The sentinel is NOTIFYed after them (in commit order), so once it arrives every
        earlier notification has arrived too: no sleeping, no guessing a timeout.
        """
        self.side.execute(f"NOTIFY {SENTINEL}")
        got: list[dict[str, Any]] = []
        for n in self.conn.notifies(timeout=10):
            if n.channel == SENTINEL:
                return got
            assert n.channel == CHANNEL
            got.append(json.loads(n.payload))
        raise AssertionError("the sentinel notification never arrived")


@pytest.fixture
def listener(db_dsn: str) -> Iterator[Listener]:
    with (
        psycopg.connect(db_dsn, autocommit=True) as lc,
        psycopg.connect(db_dsn, autocommit=True) as side,
    ):
        lc.execute(f"LISTEN {CHANNEL}")
        lc.execute(f"LISTEN {SENTINEL}")
        yield Listener(lc, side)


@pytest.fixture
def other_conn(db_dsn: str) -> Iterator[Conn]:
    """A second autocommit connection (a dashboard, or a concurrent delivery)."""
    with psycopg.connect(db_dsn, autocommit=True) as c:
        yield c


def wait_until_blocked(observer: Conn, pid: int) -> None:
    """Return once backend `pid` waits for a lock (polls pg_blocking_pids, 10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if count(observer, "SELECT cardinality(pg_blocking_pids(%s))", pid) > 0:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


def in_thread(fn: Callable[[], Any]) -> tuple[ThreadPoolExecutor, Future[Any]]:
    pool = ThreadPoolExecutor(max_workers=1)
    return pool, pool.submit(fn)


# === 1. Push log =====================================================================


def test_push_log_one_row_per_applied_delivery(conn: Conn, tenant: str) -> None:
    a, b = new_id(), new_id()
    answers = [
        apply(conn, upsert(tenant, rec(a, 1, title="v1"))),
        apply(conn, upsert(tenant, rec(a, 2, title="v2"), "UPDATE")),
        apply(conn, delete(tenant, rec(a, 3))),
        apply(conn, delete(tenant, rec(b, 3))),  # nothing stored: applied, rows 0 (a tombstone)
        apply(conn, full_sync(tenant, batch(3, 5), 0)),
        apply(conn, full_sync(tenant, batch(2, 5), 3)),
        apply(conn, upsert(tenant, rec(new_id(), 1, name="v1"), table=SITES_SOURCE)),
    ]
    assert [x["status"] for x in answers] == ["applied"] * 7
    assert [x["rows"] for x in answers] == [1, 1, 1, 0, 3, 2, 1]

    logs = push_logs(conn)
    assert [(r["tenant_id"], r["tables"], r["operation"], r["rows"]) for r in logs] == [
        (tenant, [TARGET], "INSERT", 1),
        (tenant, [TARGET], "UPDATE", 1),
        (tenant, [TARGET], "DELETE", 1),
        (tenant, [TARGET], "DELETE", 0),
        (tenant, [TARGET], "FULL_SYNC", 3),
        (tenant, [TARGET], "FULL_SYNC", 2),
        (tenant, [SITES], "INSERT", 1),
    ]
    assert [r["webhook_log_id"] for r in logs] == [x["log_id"] for x in answers]
    for r in logs:
        wl = conn.execute(
            "SELECT tenant_id::text, target_table, outcome, rows, received_at"
            "  FROM optiqoflow.webhook_logs WHERE id = %s",
            (r["webhook_log_id"],),
        ).fetchone()
        assert wl == (tenant, r["tables"][0], "applied", r["rows"], r["pushed_at"])


def test_push_log_is_written_in_the_delivery_transaction(
    conn: Conn, other_conn: Conn, tenant: str
) -> None:
    id_ = new_id()
    with conn.transaction():
        answer = apply(conn, upsert(tenant, rec(id_, 1, title="v1")))
        row = conn.execute("SELECT pg_current_xact_id()::text, now()").fetchone()
        assert row is not None
        xid, now = row
        # the push log and the webhook log are written by this transaction itself (the
        # data row by a subtransaction of it: apply_webhook's exception block)
        assert conn.execute(
            "SELECT (SELECT xmin::text FROM tenants.tenant_data_push_log WHERE tenant_id = %(t)s),"
            "       (SELECT xmin::text FROM optiqoflow.webhook_logs WHERE id = %(l)s)",
            {"t": tenant, "l": answer["log_id"]},
        ).fetchone() == (xid, xid)
        assert push_logs(conn, tenant)[0]["pushed_at"] == now
        # nothing of it is visible to others before commit, all of it after
        assert push_logs(other_conn, tenant) == []
        assert count(other_conn, WORK_ORDER, tenant, id_) == 0
    assert len(push_logs(other_conn, tenant)) == 1
    assert count(other_conn, WORK_ORDER, tenant, id_) == 1


def test_rolled_back_delivery_leaves_neither_data_nor_push_log(conn: Conn, world: World) -> None:
    before = snapshot(conn)
    with conn.transaction():
        answer = apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
        assert answer["status"] == "applied"
        assert len(push_logs(conn)) == 1
        raise psycopg.Rollback  # leaves the block, rolled back
    assert count(conn, "SELECT count(*) FROM optiqoflow.work_orders") == 0
    assert push_logs(conn) == []
    assert count(conn, "SELECT count(*) FROM optiqoflow.webhook_logs") == 0
    assert snapshot(conn) == before  # and no cache entry or chart stays invalidated


# Each case: deliveries that set the scene (applied), then one that must write no push
# log row, invalidate nothing and notify nothing.
NOT_APPLIED: dict[
    str,
    tuple[Callable[[str, str], list[dict[str, Any]]], Callable[[str, str], dict[str, Any]], str],
] = {
    "same delivery id": (
        lambda t, i: [upsert(t, rec(i, 1, title="v1"))],
        lambda t, i: upsert(t, rec(i, 2, title="v2")),
        "duplicate",
    ),
    "same event_id": (
        lambda t, i: [upsert(t, rec(i, 1, title="v1"), event_id="ev-1")],
        lambda t, i: upsert(t, rec(i, 2, title="v2"), event_id="ev-1"),
        "duplicate",
    ),
    "same version": (
        lambda t, i: [upsert(t, rec(i, 1, title="v1"))],
        lambda t, i: upsert(t, rec(i, 1, title="v1"), "UPDATE"),
        "duplicate",
    ),
    "older version": (
        lambda t, i: [upsert(t, rec(i, 5, title="v5"))],
        lambda t, i: upsert(t, rec(i, 4, title="v4"), "UPDATE"),
        "stale",
    ),
    "older delete": (
        lambda t, i: [upsert(t, rec(i, 5, title="v5"))],
        lambda t, i: delete(t, rec(i, 4)),
        "stale",
    ),
    "write older than a tombstone": (
        lambda t, i: [upsert(t, rec(i, 1, title="v1")), delete(t, rec(i, 5))],
        lambda t, i: upsert(t, rec(i, 4, title="v4"), "UPDATE"),
        "stale",
    ),
    "full-sync batch again": (
        lambda t, i: [full_sync(t, batch(2, 1), 0, sync_id="run-1", total=4)],
        lambda t, i: full_sync(t, batch(2, 1), 0, sync_id="run-1", total=4),
        "duplicate",
    ),
    "unknown table": (
        lambda t, i: [],
        lambda t, i: {**upsert(t, rec(i, 1, title="v1")), "table": "no_such_table"},
        "refused",
    ),
    "value that does not fit": (
        lambda t, i: [],
        lambda t, i: {
            **upsert(t, rec(i, 1, title="v1")),
            "record": rec(i, 1, priority="high"),
        },
        "refused",
    ),
    "record of another tenant": (
        lambda t, i: [],
        lambda t, i: {
            **upsert(t, rec(i, 1, title="v1")),
            "record": rec(i, 1, tenant_id=new_id()),
        },
        "refused",
    ),
}


@pytest.mark.parametrize("case", list(NOT_APPLIED))
def test_not_applied_delivery_writes_no_push_log_and_invalidates_nothing(
    case: str, conn: Conn, world: World, listener: Listener
) -> None:
    scene, delivery, status = NOT_APPLIED[case]
    id_ = new_id()
    for i, p in enumerate(scene(world.a, id_)):
        assert apply(conn, p, f"scene-{i}")["status"] == "applied"
    # the scene made A's charts stale: refill everything, so a new invalidation would show
    conn.execute("UPDATE public.chart_data_cache SET is_valid = true")
    conn.execute("UPDATE public.charts SET cache_status = 'fresh', stale_since = NULL")
    listener.drain()
    logs_before, before = len(push_logs(conn)), snapshot(conn)

    conn.execute("SET track_functions = 'pl'")
    with conn.transaction():
        answer = apply(
            conn, delivery(world.a, id_), "scene-0" if case == "same delivery id" else "d-1"
        )
        calls = xact_stats(conn)["calls"]
    assert answer["status"] == status, answer
    assert calls == 0
    assert len(push_logs(conn)) == logs_before
    assert snapshot(conn) == before
    assert listener.drain() == []
    assert (
        count(conn, "SELECT count(*) FROM optiqoflow.webhook_logs WHERE id = %s", answer["log_id"])
        == 1
    )


# === 2. Cache invalidation ===========================================================


def test_invalidate_marks_that_tenants_dependent_entries_and_charts(
    conn: Conn, world: World
) -> None:
    before = snapshot(conn)
    result = invalidate(conn, world.a, [TARGET])
    assert result == {"entries": 4, "charts": world.a_charts_on_work_orders()}
    assert_a_work_orders_invalidated(conn, world, before)


def test_invalidate_any_of_several_tables(conn: Conn, world: World) -> None:
    result = invalidate(conn, world.a, [SITES, "teams"])
    assert result == {"entries": 2, "charts": sorted([world.a_multi.id, world.a_sites.id])}
    assert chart_row(conn, world.a_wo.id)["cache_status"] == "fresh"
    assert entry_row(conn, world.a_wo.entry(world.a))["is_valid"] is True
    assert entry_row(conn, world.shared.entry(world.a))["is_valid"] is True


def test_invalidate_rewrites_nothing_already_invalid_or_stale(conn: Conn, world: World) -> None:
    invalidate(conn, world.a, [TARGET])
    before = snapshot(conn)
    assert invalidate(conn, world.a, [TARGET]) == {"entries": 0, "charts": []}
    # a_multi is already stale: only the sites-only chart is touched
    assert invalidate(conn, world.a, [TARGET, SITES]) == {
        "entries": 1,
        "charts": [world.a_sites.id],
    }
    after = snapshot(conn)
    assert (
        after[f"entry:{world.a_wo.entry(world.a)}"] == before[f"entry:{world.a_wo.entry(world.a)}"]
    )
    assert after[f"chart:{world.a_wo.id}"] == before[f"chart:{world.a_wo.id}"]
    # a stale chart whose entry is valid again (refilled) gets its entry invalidated, but
    # the chart row itself is not rewritten
    conn.execute(
        "UPDATE public.chart_data_cache SET is_valid = true WHERE id = %s",
        (world.a_wo.entry(world.a),),
    )
    before = snapshot(conn)
    assert invalidate(conn, world.a, [TARGET]) == {"entries": 1, "charts": [world.a_wo.id]}
    assert snapshot(conn)[f"chart:{world.a_wo.id}"] == before[f"chart:{world.a_wo.id}"]
    assert entry_row(conn, world.a_wo.entry(world.a))["generation"] == 2


def test_apply_webhook_invalidates_its_tenant_and_table(conn: Conn, world: World) -> None:
    before = snapshot(conn)
    id_ = new_id()
    conn.execute("SET track_functions = 'pl'")
    with conn.transaction():
        answer = apply(conn, upsert(world.a, rec(id_, 1, title="v1")))
        stats = xact_stats(conn)
    assert answer["status"] == "applied"
    assert sorted(answer["charts_invalidated"]) == world.a_charts_on_work_orders()
    assert stats == {"calls": 1, "entries": 4, "charts": 2}
    assert_a_work_orders_invalidated(conn, world, before)

    # the same id for tenant B invalidates B's caches, and leaves A's as they are
    before = snapshot(conn)
    answer = apply(conn, upsert(world.b, rec(id_, 1, title="v1")))
    assert sorted(answer["charts_invalidated"]) == sorted([world.shared.id, world.b_wo.id])
    assert entry_row(conn, world.shared.entry(world.b))["is_valid"] is False
    assert entry_row(conn, world.b_wo.entry(world.b))["is_valid"] is False
    assert chart_row(conn, world.b_wo.id)["cache_status"] == "stale"
    after = snapshot(conn)
    a_rows = [
        f"chart:{world.a_wo.id}",
        f"entry:{world.a_wo.entry(world.a)}",
        f"entry:{world.shared.entry(world.a)}",
    ]
    assert {k: after[k] for k in a_rows} == {k: before[k] for k in a_rows}


def test_full_sync_batches_cost_one_invalidation(conn: Conn, world: World) -> None:
    # 20 batches in one transaction: one invalidation call each, one row update per
    # entry and per chart in all
    conn.execute("SET track_functions = 'pl'")
    with conn.transaction():
        for i in range(20):
            assert apply(conn, full_sync(world.a, batch(5, 1), i * 5, total=100))["rows"] == 5
        stats = xact_stats(conn)
    assert stats == {"calls": 20, "entries": 4, "charts": 2}

    # 20 batches, one transaction each (how the receiver applies them): after the first,
    # no entry or chart row is written again
    refill_all(conn)
    apply(conn, full_sync(world.a, batch(5, 2), 0))
    after_first = snapshot(conn)
    for i in range(1, 20):
        answer = apply(conn, full_sync(world.a, batch(5, 2), i * 5))
        assert answer["rows"] == 5
        assert answer["charts_invalidated"] == []
    assert snapshot(conn) == after_first
    assert entry_row(conn, world.a_wo.entry(world.a))["generation"] == 2


def refill_all(c: Conn) -> None:
    """Every entry refilled and every chart fresh (what a dashboard does, without the protocol)."""
    c.execute("UPDATE public.chart_data_cache SET is_valid = true, refresh_started_at = NULL")
    c.execute("UPDATE public.charts SET cache_status = 'fresh', stale_since = NULL")


def test_refill_without_intervening_invalidation_succeeds(conn: Conn, world: World) -> None:
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    chart, entry = world.a_multi, world.a_multi.entry(world.a)
    assert chart_row(conn, chart.id)["cache_status"] == "stale"

    generation = claim(conn, entry)
    assert generation == 1
    assert entry_row(conn, entry)["refresh_started_at"] is not None
    assert write(conn, entry, generation, '{"v": 1}') == 1
    e = entry_row(conn, entry)
    assert (e["is_valid"], e["data"], e["refresh_started_at"]) == (True, {"v": 1}, None)
    assert mark_fresh(conn, chart.id) == 1
    ch = chart_row(conn, chart.id)
    assert (ch["cache_status"], ch["stale_since"]) == ("fresh", None)

    # fresh again, so the next change makes it stale again
    assert apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))["charts_invalidated"] == [
        world.a_multi.id
    ]
    assert chart_row(conn, chart.id)["cache_status"] == "stale"
    assert entry_row(conn, entry)["is_valid"] is False


def test_mark_fresh_waits_until_every_entry_of_the_chart_is_valid(conn: Conn, world: World) -> None:
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    chart = world.a_wo  # two entries (two cache keys)
    assert write(conn, chart.entry(world.a), claim(conn, chart.entry(world.a))) == 1
    assert mark_fresh(conn, chart.id) == 0  # "by-site" is still invalid
    by_site = chart.entry(world.a, "by-site")
    assert write(conn, by_site, claim(conn, by_site)) == 1
    assert mark_fresh(conn, chart.id) == 1


def test_invalidation_between_claim_and_write_discards_the_refill(
    conn: Conn, world: World, listener: Listener
) -> None:
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    chart, entry = world.a_multi, world.a_multi.entry(world.a)
    listener.drain()

    generation = claim(conn, entry)
    # new data arrives while the dashboard computes: the entry was already invalid and the
    # chart already stale, but the refill in progress is outdated now
    answer = apply(conn, upsert(world.a, rec(new_id(), 2, name="v2"), table=SITES_SOURCE))
    assert world.a_multi.id in answer["charts_invalidated"]
    e = entry_row(conn, entry)
    assert (e["is_valid"], e["generation"]) == (False, generation + 1)
    assert e["refresh_started_at"] is None
    assert [n["charts"] for n in listener.drain()] == [answer["charts_invalidated"]]

    assert write(conn, entry, generation, '{"v": "outdated"}') == 0
    e = entry_row(conn, entry)
    assert (e["is_valid"], e["data"]) == (False, {"v": 0})
    assert mark_fresh(conn, chart.id) == 0
    assert chart_row(conn, chart.id)["cache_status"] == "stale"

    # the next refill, with nothing in between, goes through
    assert write(conn, entry, claim(conn, entry), '{"v": 2}') == 1
    assert entry_row(conn, entry)["data"] == {"v": 2}


def test_mark_fresh_waits_for_a_delivery_in_flight(
    conn: Conn, other_conn: Conn, world: World
) -> None:
    """A delivery has invalidated the entry but not committed; the dashboard, having just
    written the entry, marks the chart fresh: it must wait, then leave the chart stale.
    (A plain `NOT EXISTS (... NOT is_valid)` would not wait: it reads the entry's old,
    valid version and marks the chart fresh over an invalid entry.)"""
    chart, entry = world.a_multi, world.a_multi.entry(world.a)
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    assert write(conn, entry, claim(conn, entry)) == 1

    with conn.transaction():  # the delivery
        assert apply(conn, upsert(world.a, rec(new_id(), 2, title="v2")))["charts_invalidated"]
        pool, marked = in_thread(lambda: mark_fresh(other_conn, chart.id))
        wait_until_blocked(conn, other_conn.info.backend_pid)
    assert marked.result(timeout=10) == 0
    pool.shutdown()
    assert entry_row(conn, entry)["is_valid"] is False
    assert chart_row(conn, chart.id)["cache_status"] == "stale"


def test_delivery_racing_a_mark_fresh_leaves_the_chart_stale(
    conn: Conn, other_conn: Conn, world: World, listener: Listener
) -> None:
    """The dashboard's mark-fresh holds its locks (a transaction here, to hold them long
    enough to be sure; in autocommit the window is the statement's run time); a delivery
    reaches the invalidation and waits for the entry. After both commit the entry is
    invalid, so the chart must be stale, not 'fresh' over an invalid entry."""
    chart, entry = world.a_multi, world.a_multi.entry(world.a)
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    assert write(conn, entry, claim(conn, entry)) == 1
    listener.drain()

    with other_conn.transaction():  # the dashboard
        assert mark_fresh(other_conn, chart.id) == 1
        pool, delivered = in_thread(
            lambda: apply(conn, upsert(world.a, rec(new_id(), 2, title="v2")))
        )
        wait_until_blocked(other_conn, conn.info.backend_pid)
    answer = delivered.result(timeout=10)
    pool.shutdown()
    assert answer["status"] == "applied"
    assert entry_row(conn, entry)["is_valid"] is False
    assert [n["charts"] for n in listener.drain()] == [answer["charts_invalidated"]]
    assert chart_row(conn, chart.id)["cache_status"] == "stale"


# === 3. Live refresh (NOTIFY) ========================================================


def test_notification_is_delivered_at_commit(conn: Conn, world: World, listener: Listener) -> None:
    with conn.transaction():
        answer = apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
        assert listener.drain() == []  # data not committed: nothing announced yet
    assert listener.drain() == [
        {"tenant_id": world.a, "tables": [TARGET], "charts": world.a_charts_on_work_orders()}
    ]
    assert sorted(answer["charts_invalidated"]) == world.a_charts_on_work_orders()


def test_rolled_back_delivery_notifies_nothing(
    conn: Conn, world: World, listener: Listener
) -> None:
    with conn.transaction():
        assert apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))["charts_invalidated"]
        raise psycopg.Rollback  # leaves the block, rolled back
    assert listener.drain() == []


def test_one_notification_per_delivery_and_tenant(
    conn: Conn, world: World, listener: Listener
) -> None:
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    apply(conn, upsert(world.b, rec(new_id(), 1, title="v1")))
    apply(conn, upsert(world.a, rec(new_id(), 1, name="v1"), table=SITES_SOURCE))
    assert listener.drain() == [
        {"tenant_id": world.a, "tables": [TARGET], "charts": world.a_charts_on_work_orders()},
        {
            "tenant_id": world.b,
            "tables": [TARGET],
            "charts": sorted([world.shared.id, world.b_wo.id]),
        },
        # a_multi (sites and work_orders) is stale already: only the sites chart is new
        {"tenant_id": world.a, "tables": [SITES], "charts": [world.a_sites.id]},
    ]


@pytest.mark.parametrize("total", [None, 100])
def test_full_sync_announces_once_per_refill(
    conn: Conn, world: World, listener: Listener, total: int | None
) -> None:
    env = {} if total is None else {"total": total, "sync_id": "run-1"}
    for i in range(20):
        apply(conn, full_sync(world.a, batch(5, 1), i * 5, **env))
    assert [n["charts"] for n in listener.drain()] == [world.a_charts_on_work_orders()]

    # a dashboard refills one entry half-way through the next run: one more announcement
    env = {} if total is None else {"total": total, "sync_id": "run-2"}
    entry = world.a_wo.entry(world.a)
    for i in range(20):
        if i == 10:
            assert write(conn, entry, claim(conn, entry)) == 1
        apply(conn, full_sync(world.a, batch(5, 2), i * 5, **env))
    # (the run's first batch announced nothing: everything was still stale)
    assert [n["charts"] for n in listener.drain()] == [[world.a_wo.id]]


def test_no_notification_when_nothing_became_stale(
    conn: Conn, world: World, listener: Listener
) -> None:
    no_chart_reads_it = upsert(world.a, rec(new_id(), 1, name="v1"), table=TEAMS_SOURCE)
    assert apply(conn, no_chart_reads_it)["status"] == "applied"
    assert apply(conn, delete(world.a, rec(new_id(), 1)))["rows"] == 0  # nothing was stored
    assert listener.drain() == []
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
    assert len(listener.drain()) == 1
    apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))  # everything already stale
    assert invalidate(conn, world.a, [TARGET]) == {"entries": 0, "charts": []}
    assert listener.drain() == []


def test_many_dependent_charts_still_apply_and_announce(
    conn: Conn, tenant: str, listener: Listener
) -> None:
    """NOTIFY payloads are limited to 8000 bytes; a tenant with hundreds of charts on one
    table must still be able to sync it, and the dashboard must still hear about it."""
    conn.execute(
        "WITH ch AS (INSERT INTO public.charts (tenant_id) SELECT %(t)s FROM generate_series(1, 250)"
        "            RETURNING id),"
        "     dep AS (INSERT INTO public.chart_table_dependencies SELECT id, %(table)s FROM ch)"
        " INSERT INTO public.chart_data_cache (chart_id, tenant_id, data) SELECT id, %(t)s, '{}' FROM ch",
        {"t": tenant, "table": TARGET},
    )
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, title="v1")))
    assert answer["status"] == "applied"
    assert count(conn, "SELECT count(*) FROM public.chart_data_cache WHERE NOT is_valid") == 250
    notes = listener.drain()
    assert len(notes) == 1
    assert notes[0]["tenant_id"] == tenant
    assert notes[0]["tables"] == [TARGET]


def documented_listener() -> str:
    """The listener example of docs/semantics.md ("The notification channel"), as written."""
    text = (Path(__file__).parents[2] / "docs" / "semantics.md").read_text()
    section = text[text.index("## The notification channel") :]
    return section[section.index("```python\n") + len("```python\n") : section.index("\n```\n")]


class StopDashboard(Exception):
    """Ends the documented listener's endless loop (raised from the test's refill)."""


def test_documented_listener_looks_again_and_trusts_no_notification(
    db_dsn: str, conn: Conn, world: World
) -> None:
    """The listener example of docs/semantics.md runs as written, with this test's
    `refill`. Each notification makes it re-read public.chart_data_cache; one forged
    with pg_notify by a role without any privilege makes it re-read and refill nothing
    the table does not say is invalid, and leaves the charts and entries it names as they
    were; a delivery's makes it refill what the delivery invalidated.

    A marker entry, the last in the listener's ORDER BY id, stays invalid: its refill
    is the last of every look, so each look is seen whole without timing."""
    (marker,) = conn.execute(
        "UPDATE public.chart_data_cache SET is_valid = false, generation = generation + 1"
        " WHERE id = (SELECT id FROM public.chart_data_cache ORDER BY id DESC LIMIT 1)"
        " RETURNING id::text"
    ).fetchone() or (None,)
    looks: list[list[str]] = []
    current: list[str] = []
    looked = threading.Semaphore(0)

    def refill(db: Conn, entry_id: Any, chart_id: Any, tenant_id: Any) -> None:
        entry = str(entry_id)
        current.append(entry)
        if entry != marker:  # the generation protocol above
            assert write(db, entry, claim(db, entry)) == 1
            mark_fresh(db, str(chart_id))
            return
        looks.append(current[:])  # the marker's chart query "fails": invalid, next look
        current.clear()
        looked.release()
        if len(looks) == 3:
            raise StopDashboard

    def dashboard() -> None:
        exec(documented_listener(), {"DATABASE_URL": db_dsn, "refill": refill})

    pool, done = in_thread(dashboard)
    try:
        assert looked.acquire(timeout=15), "no catch-up look after LISTEN"
        assert looks == [[marker]]

        # forged, by a role that may read or write nothing: another tenant's valid chart
        # entry named "stale"
        chart = world.b_wo if world.b_wo.entry(world.b) != marker else world.shared
        forger = f"forger_{uuid.uuid4().hex[:12]}"
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(forger)))
        before = snapshot(conn)
        try:
            with psycopg.connect(
                make_conninfo(db_dsn, options=f"-c role={forger}"), autocommit=True
            ) as as_forger:
                assert as_forger.execute("SELECT current_user").fetchone() == (forger,)
                forged = {"tenant_id": world.b, "tables": [TARGET], "charts": [chart.id]}
                as_forger.execute(
                    "SELECT pg_notify('optiqoflow_invalidation', %s)", (json.dumps(forged),)
                )
        finally:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(forger)))
        assert looked.acquire(timeout=15), "the forged notification made no look"
        assert looks[1] == [marker]  # looked again; nothing but what the table says
        assert snapshot(conn) == before  # no chart, no entry rewritten
        assert entry_row(conn, chart.entry(world.b))["is_valid"] is True
        assert chart_row(conn, chart.id)["cache_status"] == "fresh"

        # a delivery's notification: its invalidated entries are refilled
        apply(conn, upsert(world.a, rec(new_id(), 1, title="v1")))
        assert looked.acquire(timeout=15), "the delivery's notification made no look"
        invalidated = sorted(
            [
                world.a_wo.entry(world.a),
                world.a_wo.entry(world.a, "by-site"),
                world.a_multi.entry(world.a),
                world.shared.entry(world.a),
            ]
        )
        assert looks[2] == [*[e for e in invalidated if e != marker], marker]
        for entry in invalidated:
            assert entry_row(conn, entry)["is_valid"] is (entry != marker)
        with pytest.raises(StopDashboard):
            done.result(timeout=15)
    finally:  # on a failure the listener may still wait: the database's drop ends it
        pool.shutdown(wait=False, cancel_futures=True)
