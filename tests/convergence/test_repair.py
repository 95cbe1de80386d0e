"""Repair without peering, end to end: the simulator loses deliveries silently (vanish
chaos: never sent, never retried, no FULL_SYNC of the workload to repair them), then its
reconcile loop (simulator/repair.py: RECONCILE, sub-buckets, scoped FULL_SYNC) finds and
repairs them over the signed webhook channel; the convergence check passes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from simulator import converge, simulate
from tests.helpers import fresh_database
from tests.http_helpers import SECRET, receiver_config, serving


@pytest.fixture
def source_dsn(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, None) as dsn:
        yield dsn


@pytest.mark.timeout(300)
async def test_lost_deliveries_are_found_and_repaired(source_dsn: str, db_dsn: str) -> None:
    async with serving(receiver_config(db_dsn, pool_max=6)) as ep:
        opts = simulate.SimOptions(
            url=ep.url(),
            secret=SECRET,
            tenants=3,
            events=500,
            seed=11,
            batch_size=20,
            concurrency=4,
            chaos=frozenset({"vanish", "duplicate", "reorder"}),
            full_syncs=0,
            vanish_rate=0.1,
        )
        result = await simulate.run(opts, source_dsn, target_dsn=db_dsn)
    report = await asyncio.to_thread(converge.check, source_dsn, db_dsn)
    print(report.render())
    print(result.summary())
    assert result.send.undelivered == []
    assert result.dropped >= 20  # deliveries really were lost
    stats = result.repair
    assert stats is not None
    assert stats.still_differing == []
    assert stats.buckets_differing > 0 and stats.sub_buckets_differing > 0 and stats.scoped_runs > 0
    assert report.ok, report.render()
    with psycopg.connect(source_dsn) as s:
        live = s.execute(
            "SELECT sum(n_live_tup) FROM pg_stat_user_tables WHERE schemaname = 'optiqo'"
        ).fetchone()
    assert live is not None
    with psycopg.connect(db_dsn) as t:
        logged = t.execute(
            "SELECT count(*) FILTER (WHERE operation = 'RECONCILE'), "
            "count(*) FILTER (WHERE operation = 'RECONCILE' AND outcome <> 'applied') "
            "FROM optiqoflow.webhook_logs"
        ).fetchone()
        scoped = t.execute(
            "SELECT count(*) FROM optiqoflow.sync_runs WHERE buckets IS NOT NULL AND state = 'complete'"
        ).fetchone()
    assert logged == (stats.reconciles, 0)
    assert scoped == (stats.scoped_runs,)


def test_vanish_needs_the_destination(source_dsn: str) -> None:
    opts = simulate.SimOptions(url="http://127.0.0.1:1/", secret="s", chaos=frozenset({"vanish"}))
    with pytest.raises(ValueError, match="vanish"):
        asyncio.run(simulate.run(opts, source_dsn))
    assert "vanish" not in simulate.parse_chaos("all")
