"""End to end: a simulated Optiqo source, chaos, a real receiver on loopback, real
signatures, a destination PostgreSQL restarted mid-run; then the convergence check.

The destination is `own_server` (a throwaway server this test may stop); the source is
a fresh database on the shared test server, which is never stopped (every other test of
the session is using it).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web

from operations.cli import main as cli_main
from operations.embedded import EmbeddedPostgres, free_port
from receiver.app import make_app
from receiver.config import Config
from simulator import converge, simulate
from tests.helpers import fresh_database
from tests.http_helpers import metric

SECRET = "sim-secret-\u00e4\u00f6"  # non-ASCII on purpose: the key is its UTF-8 bytes


@pytest.fixture
def source_dsn(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, None) as dsn:
        yield dsn


@pytest.fixture(params=[1, 16], ids=["one call per delivery", "group commit"])
def group_commit(request: pytest.FixtureRequest) -> int:
    """OPTIQO_GROUP_COMMIT of the receiver (docs/group-commit.md)."""
    return int(request.param)


@pytest.fixture
async def receiver_url(own_server: EmbeddedPostgres, group_commit: int) -> AsyncIterator[str]:
    """The receiver (make_app) on a loopback port, in front of own_server."""
    config = Config(
        webhook_secret=SECRET,
        database_url=own_server.dsn,
        pool_min=1,
        pool_max=8 if group_commit == 1 else 2,  # fewer connections: deliveries queue
        group_commit=group_commit,
        pool_timeout=1.0,  # shorter than the restart below: deliveries meet 503s
        retry_after=1,
    )
    runner = web.AppRunner(make_app(config), access_log=None)
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield f"http://127.0.0.1:{port}/api/optiqo-webhook"
    finally:
        await runner.cleanup()


async def test_chaotic_run_converges(
    source_dsn: str, receiver_url: str, own_server: EmbeddedPostgres, group_commit: int
) -> None:
    async def restart() -> None:
        await asyncio.to_thread(own_server.stop, "fast")
        await asyncio.sleep(2.0)
        await asyncio.to_thread(own_server.start)

    opts = simulate.SimOptions(
        url=receiver_url,
        secret=SECRET,
        tenants=3,
        events=400,
        seed=7,
        batch_size=8,
        concurrency=4 if group_commit == 1 else 8,
        chaos=frozenset(simulate.CHAOS),
        full_syncs=3,
        window=12,
        restarts=1,
        lose_rate=0.25,
        max_backoff=0.5,
    )
    result = await simulate.run(opts, source_dsn, restart)
    report = await asyncio.to_thread(converge.check, source_dsn, own_server.dsn)
    print(report.render())
    print(result.summary())
    assert result.send.undelivered == []
    assert report.ok, report.render()
    internal = [a for a in result.send.attempts if a.http_status == 500]
    assert internal == [], internal  # retried like any 5xx, but a 500 is a bug

    # the chaos really happened
    summary = result.summary()
    assert result.send.restarts == 1
    assert summary["answers"].get("duplicate", 0) > 0
    assert summary["retries"] > 0
    assert any(
        a.http_status == 503 or (a.error and a.error != "timeout") for a in result.send.attempts
    ), "the restart did not reach any delivery"
    assert any(a.error == "timeout" for a in result.send.attempts)
    assert result.dropped > 0
    assert result.workload.full_sync_runs >= 3
    with psycopg.connect(own_server.dsn, autocommit=True) as t:
        states: dict[str, int] = dict(
            t.execute("SELECT state, count(*) FROM optiqoflow.sync_runs GROUP BY 1").fetchall()
        )
        evolved = t.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'optiqoflow' "
            "AND column_name IN ('humidity_pct', 'external_ref')"
        ).fetchone()
    assert states.get("complete", 0) >= 1, states
    assert states.get("running", 0) + states.get("abandoned", 0) >= 1, states
    assert evolved is not None and evolved[0] >= 1  # Optiqo added a column mid-run
    if group_commit > 1:  # deliveries were applied in groups, not only one by one
        async with aiohttp.ClientSession() as session:
            metrics_url = receiver_url.replace("/api/optiqo-webhook", "/metrics")
            async with session.get(metrics_url) as r:
                metrics = await r.text()
        assert metric(metrics, "optiqoflow_group_commit_size_sum") > metric(
            metrics, "optiqoflow_group_commit_size_count"
        ), metrics
    with psycopg.connect(source_dsn, autocommit=True) as s:
        no_total = s.execute(
            "SELECT count(*) FROM optiqo.outbox WHERE payload ->> 'type' = 'FULL_SYNC' "
            "AND NOT payload ? 'total'"
        ).fetchone()
        tenants_columns = s.execute(
            "SELECT count(DISTINCT modules) FROM optiqo.tenant_modules"
        ).fetchone()
    assert no_total is not None and no_total[0] >= 1
    assert tenants_columns is not None and tenants_columns[0] >= 2

    # ... and the check is not blind: drift in the destination is found and named
    _drift(source_dsn, own_server.dsn)


def _drift(source_dsn: str, target_dsn: str) -> None:
    with psycopg.connect(target_dsn, autocommit=True) as t:
        changed = t.execute(
            "UPDATE optiqoflow.sensor_readings SET visitor_count = coalesce(visitor_count, 0) + 1 "
            "WHERE (tenant_id, id) = (SELECT tenant_id, id FROM optiqoflow.sensor_readings LIMIT 1) "
            "RETURNING id"
        ).fetchone()
        removed = t.execute(
            "DELETE FROM optiqoflow.time_entries WHERE (tenant_id, id) = "
            "(SELECT tenant_id, id FROM optiqoflow.time_entries LIMIT 1) RETURNING id"
        ).fetchone()
    assert changed is not None and removed is not None
    with psycopg.connect(source_dsn, autocommit=True) as s:
        tenant = s.execute("SELECT tenant_id FROM optiqo.tenant_modules LIMIT 1").fetchone()
        assert tenant is not None
        s.execute("ALTER TABLE optiqo.staff_teams DISABLE TRIGGER capture")
        s.execute(
            "INSERT INTO optiqo.staff_teams (id, tenant_id, name, created_at, updated_at) "
            "VALUES (%s, %s, 'never sent', now(), now())",
            (uuid.uuid4(), tenant[0]),
        )
    report = converge.check(source_dsn, target_dsn)
    text = report.render()
    by_table = {t.target_table: t for t in report.tables}
    assert not report.ok
    assert by_table["sensor_readings"].differing == 1, text
    assert by_table["time_entries"].missing == 1, text
    assert by_table["teams"].missing == 1, text
    assert by_table["work_orders"].ok, text
    assert "DRIFT" in text and str(changed[0]) in text
    assert cli_main(["converge-check", "--source-dsn", source_dsn, "--target-dsn", target_dsn]) == 1


def test_normalise_compares_values_not_spellings() -> None:
    from datetime import UTC, datetime, timedelta, timezone
    from decimal import Decimal

    n = converge.normalise
    assert n(Decimal("12.30")) == n(Decimal("12.3")) == n(12.3)
    assert n(5) == n(Decimal("5.00"))
    assert n(datetime(2026, 1, 1, 12, tzinfo=UTC)) == n(
        datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    )
    assert n({"a": [1, 2.5], "b": None}) == n({"b": None, "a": [1, Decimal("2.5")]})
    assert n(["x", "y"]) != n(["y", "x"])
    assert n(Decimal("1.5")) != n(Decimal("1.50001"))


def test_schedule_is_reproducible(source_dsn: str) -> None:
    """The same seed gives the same workload and the same delivery plan, whatever the
    run id (which only names tenants, event ids and delivery ids)."""
    from simulator import source as simsource

    def plan(run_id: str) -> list[tuple[Any, ...]]:
        opts = simulate.SimOptions(
            url="http://127.0.0.1:1/",
            secret="s",
            events=150,
            seed=3,
            chaos=frozenset(simulate.CHAOS),
            run_id=run_id,
            batch_size=5,
        )
        with psycopg.connect(source_dsn, autocommit=True) as c:
            simsource.create_source(c, opts.run_id, opts.seed, {})
            simsource.run_workload(
                c,
                simsource.WorkloadOptions(run_id=run_id, events=150, seed=3, batch_size=5),
            )
            schedule = simulate.build_schedule(c, opts)
        return [
            (
                s.barrier,
                [
                    (i.outbox_id, i.delivery_id.replace(run_id, "R"), i.role, i.short_timeout)
                    for i in s.items
                ],
            )
            for s in schedule.steps
        ]

    assert plan("one") == plan("one") == plan("another")


def test_the_shipped_command_runs_its_own_destination_and_converges(tmp_path: Path) -> None:
    """`optiqoflow simulate --own-destination` as an operator runs it: a throwaway source
    and destination, the receiver started as `optiqoflow serve` in front of it, a small
    workload, convergence checked; exit 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "OPTIQOFLOW_TEST_DSN")}
    env["OPTIQO_WEBHOOK_SECRET"] = "shipped-command-secret"
    done = subprocess.run(
        [sys.executable, "-m", "operations.cli", "simulate", "--own-destination", "--tenants", "2",
         "--events", "40", "--full-syncs", "1", "--restarts", "0", "--seed", "7"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
