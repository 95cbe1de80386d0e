"""Monitoring: the database's figures on /metrics (receiver/figures.py)."""

from __future__ import annotations

import asyncio
import datetime as dt

import psycopg
import pytest

from receiver import figures
from tests.helpers import rec, upsert
from tests.http_helpers import Endpoint, counting_listener, metric, receiver_config, serving

DATABASE_GAUGES = (
    "optiqoflow_refused_waiting",
    "optiqoflow_worst_lag_seconds",
    "optiqoflow_log_partitions_ahead_days",
)


# --- the database's figures on /metrics ------------------------------------------------------


def _iso(t: dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


async def _scrape(ep: Endpoint) -> str:
    reply = await ep.get("/metrics")
    assert reply.status == 200
    assert isinstance(reply.body, str)
    return reply.body


async def test_metrics_export_the_database_figures(db_dsn: str, tenant: str) -> None:
    async with serving(receiver_config(db_dsn)) as ep:
        refused = await ep.post(upsert(tenant, rec(), table="no_such_source_table"))
        assert refused.status == 422
        changed = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60)
        applied = await ep.post(upsert(tenant, rec(None, _iso(changed), title="a minute old")))
        assert applied.status == 200 and applied.body["status"] == "applied"
        text = await _scrape(ep)
    assert metric(text, "optiqoflow_refused_waiting") == 1
    assert 59.9 <= metric(text, "optiqoflow_worst_lag_seconds") < 120
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT optiqoflow.health_metrics()").fetchone()
    assert row is not None
    assert (
        metric(text, "optiqoflow_log_partitions_ahead_days") == row[0]["log_partitions_ahead_days"]
    )
    # one gauge each, no label (no tenant anywhere)
    for name in DATABASE_GAUGES:
        assert len([line for line in text.splitlines() if line.startswith(name)]) == 1
    assert tenant not in text


async def test_a_scrape_storm_asks_the_database_once(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("CREATE SEQUENCE figures_asked")
    monkeypatch.setattr(figures, "MAX_AGE", 3600.0)  # the storm is within one MAX_AGE
    monkeypatch.setattr(
        figures,
        "FIGURES_SQL",
        "SELECT (optiqoflow.health_metrics() || jsonb_build_object("
        "'asked', nextval('public.figures_asked')))::text",
    )
    async with serving(receiver_config(db_dsn)) as ep:
        texts = await asyncio.gather(*(_scrape(ep) for _ in range(20)))
    assert all("optiqoflow_refused_waiting 0.0" in text for text in texts)
    with psycopg.connect(db_dsn) as c:
        row = c.execute("SELECT last_value FROM public.figures_asked").fetchone()
    assert row == (1,)


async def test_metrics_without_the_figures_when_the_database_is_down() -> None:
    async with (
        counting_listener() as (dsn, attempts),
        serving(receiver_config(dsn, pool_timeout=1.0)) as ep,
    ):
        text = await _scrape(ep)
    assert attempts  # it did ask
    assert "optiqoflow_deliveries_total" in text
    for name in DATABASE_GAUGES:
        assert name not in text


async def test_metrics_without_the_figures_when_the_database_is_not_migrated(
    empty_db_dsn: str,
) -> None:
    async with serving(receiver_config(empty_db_dsn)) as ep:
        text = await _scrape(ep)
    assert "optiqoflow_db_pool_size" in text
    for name in DATABASE_GAUGES:
        assert name not in text
