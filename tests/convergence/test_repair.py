"""Repair without peering, end to end: the simulator loses deliveries silently (vanish
chaos: never sent, never retried, no FULL_SYNC of the workload to repair them), then its
reconcile loop (simulator/repair.py: RECONCILE, sub-buckets, scoped FULL_SYNC) finds and
repairs them over the signed webhook channel; the convergence check passes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import psycopg
import pytest

from simulator import converge, repair, simulate
from simulator import source as simsource
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


@pytest.mark.timeout(300)
async def test_more_than_16_buckets_and_256_sub_buckets(source_dsn: str, db_dsn: str) -> None:
    """A table the destination never received (600 rows: every bucket differs, and some
    600 sub-buckets): the sub-buckets are compared 16 buckets at a time and repaired by
    scoped runs of at most 256 sub-buckets each; then a RECONCILE of every bucket finds
    the table equal."""
    tenant = str(uuid.uuid4())
    with psycopg.connect(source_dsn, autocommit=True) as c:
        simsource.create_source(c, "many-subs", 1, {})
        c.execute("DROP TRIGGER capture ON optiqo.sensor_readings")
        c.execute("INSERT INTO optiqo.tenant_modules VALUES (%s, %s)", (tenant, list(simsource.MODULES)))
        c.execute(
            "INSERT INTO optiqo.sensor_readings (id, tenant_id, sensor_id, measured_at, created_at, updated_at) "
            "SELECT gen_random_uuid(), %s, 's' || g, now(), now(), now() FROM generate_series(1, 600) g",
            (tenant,),
        )
    with psycopg.connect(db_dsn) as t:
        queries = tuple(
            str(t.execute("SELECT optiqoflow.fingerprint_query('optiqo', 'sensor_readings', %s)", (d,)).fetchone()[0])  # type: ignore[index]
            for d in (2, 4)
        )
    stats = repair.RepairStats()
    async with (
        serving(receiver_config(db_dsn, pool_max=6)) as ep,
        aiohttp.ClientSession() as session,
    ):
        channel = repair.Channel(session, ep.url(), SECRET, stats)
        with psycopg.connect(source_dsn, autocommit=True) as src:
            ok = await repair.repair_pair(channel, src, (queries[0], queries[1]), tenant, "sensor_readings")
    assert ok, stats.summary()
    assert stats.buckets_differing > 16 and stats.sub_buckets_differing > 256
    assert stats.scoped_runs == -(-stats.sub_buckets_differing // 256) and stats.rows_sent == 600
    with psycopg.connect(db_dsn) as t:
        assert count_rows(t, tenant) == 600
        runs = t.execute(
            "SELECT max(cardinality(buckets)), count(*) FILTER (WHERE state = 'complete') "
            "FROM optiqoflow.sync_runs WHERE tenant_id = %s",
            (tenant,),
        ).fetchone()
    assert runs == (256, stats.scoped_runs)


def count_rows(t: psycopg.Connection[Any], tenant: str) -> int:
    row = t.execute(
        "SELECT count(*) FROM optiqoflow.sensor_readings WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    assert row is not None
    return int(row[0])
