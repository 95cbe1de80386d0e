"""Repair without peering (issue 24, point 4): what it costs to repair 10 lost changes in
a tenant's table of 1M rows, against a full re-sync of that table.

    python -m bench repair [--quick] [--dsn DSN]

The source is the simulator's (schema `optiqo`, simulator/optiqo_source_schema.sql) with
one tenant's `sensor_readings` (1,000,000 rows; --quick 100,000), filled directly (its
outbox trigger dropped). Through `optiqoflow serve`, one request at a time:

  initial load   FULL_SYNC of every row (batches of 5,000, total + sync_id), as a
                 source builds it (optiqo._pushed of each row), reading included
  lost           10 changes on the source that are never delivered: 4 updates (a newer
                 version), 3 inserts, 3 deletes
  repair         simulator/repair.py's loop for the tenant x table: the 256 buckets'
                 figures of both sides read side by side (the source runs the query
                 optiqoflow.fingerprint_query gives while a RECONCILE with "ours": true
                 reads ours), the same for the sub-buckets of the differing buckets, a
                 FULL_SYNC limited to the differing sub-buckets, and the RECONCILE of the
                 repaired buckets that finds them equal; fingerprinting on both sides
                 included
  full re-sync   the other way to repair: FULL_SYNC of every row again (the rows are there:
                 most records are duplicates)

Bytes are request bodies sent plus answer bodies received; times are wall clock of the
whole step; the repair's time also until its FULL_SYNC was answered (found and repaired,
before the RECONCILE that verifies it). Verdicts: repair under 1% of the full re-sync's
bytes and under 10% of its time; after the repair the fingerprints are equal.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp
import psycopg

from bench.common import SECRET, Cluster, ours, table, verdict
from simulator import repair as simrepair
from simulator import source as simsource

TABLE = "sensor_readings"
BATCH = 5000


def _source(cl: Cluster, rows: int, tenant: str) -> str:
    dsn = cl.create_database("repair_source")
    with psycopg.connect(dsn, autocommit=True) as c:
        simsource.create_source(c, "bench-repair", 1, {})
        c.execute(f"DROP TRIGGER capture ON optiqo.{TABLE}")
        c.execute("INSERT INTO optiqo.tenant_modules VALUES (%s, %s)", (tenant, list(simsource.MODULES)))
        c.execute(
            f"INSERT INTO optiqo.{TABLE} (id, tenant_id, sensor_id, room_id, measured_at, visitor_count, "
            "occupancy_pct, battery_pct, created_at, updated_at) "
            "SELECT gen_random_uuid(), %s, 'sensor-' || (g %% 500), NULL, "
            "       timestamptz '2026-11-01' + g * interval '1 second', g %% 40, (g %% 10000) / 100.0, "
            "       g %% 100, timestamptz '2026-11-01', timestamptz '2026-11-01' + g * interval '1 second' "
            "  FROM generate_series(1, %s) g",
            (tenant, rows),
        )
        c.execute(f"VACUUM ANALYZE optiqo.{TABLE}")
    return dsn


async def _full_sync(channel: simrepair.Channel, src: psycopg.Connection[Any], tenant: str) -> None:
    total_row = src.execute(f"SELECT count(*) FROM optiqo.{TABLE} WHERE tenant_id = %s", (tenant,)).fetchone()
    assert total_row is not None
    total, sync_id, offset = int(total_row[0]), f"full-{uuid.uuid4().hex[:8]}", 0
    with src.transaction(), src.cursor(name="rows") as cur:
        cur.execute(
            f"SELECT optiqo._pushed(%s, to_jsonb(x))::text FROM optiqo.{TABLE} x "
            "WHERE x.tenant_id = %s ORDER BY x.id",
            (TABLE, tenant),
        )
        while batch := cur.fetchmany(BATCH):
            await channel.post({"type": "FULL_SYNC", "table": TABLE, "tenant_id": tenant,
                                "sync_id": sync_id, "offset": offset, "total": total,
                                "records": [json.loads(r[0]) for r in batch]})  # fmt: skip
            offset += len(batch)


def _lose(src: psycopg.Connection[Any], tenant: str) -> None:
    """10 changes the destination never hears of."""
    src.execute(
        f"UPDATE optiqo.{TABLE} SET visitor_count = visitor_count + 1000, updated_at = now() "
        f"WHERE id IN (SELECT id FROM optiqo.{TABLE} WHERE tenant_id = %s ORDER BY id LIMIT 4)",
        (tenant,),
    )
    src.execute(
        f"DELETE FROM optiqo.{TABLE} "
        f"WHERE id IN (SELECT id FROM optiqo.{TABLE} WHERE tenant_id = %s ORDER BY id DESC LIMIT 3)",
        (tenant,),
    )
    src.execute(
        f"INSERT INTO optiqo.{TABLE} (id, tenant_id, sensor_id, measured_at, created_at, updated_at) "
        "SELECT gen_random_uuid(), %s, 'late', now(), now(), now() FROM generate_series(1, 3)",
        (tenant,),
    )


def _fingerprints(dst: str, src: str, tenant: str) -> tuple[Any, Any]:
    with psycopg.connect(dst) as t, psycopg.connect(src) as s:
        ours_row = t.execute("SELECT row_count, checksum FROM optiqoflow.table_fingerprint(%s, %s)",
                             (tenant, TABLE)).fetchone()  # fmt: skip
        query = t.execute("SELECT optiqoflow.fingerprint_query('optiqo', %s)", (TABLE,)).fetchone()
        assert query is not None
        theirs = psycopg.RawCursor(s).execute(query[0], ([tenant],)).fetchone()
    assert ours_row is not None and theirs is not None
    return (ours_row[0], ours_row[1]), (theirs[1], theirs[2])


async def _measure(cl: Cluster, rows: int) -> dict[str, Any]:
    tenant = str(uuid.uuid4())
    src_dsn = _source(cl, rows, tenant)
    dst_dsn = cl.create_database("repair")
    figures: dict[str, Any] = {"rows": rows}
    with ours(dst_dsn, cl.workdir, "repair") as server, psycopg.connect(src_dsn, autocommit=True) as src:
        timeout = aiohttp.ClientTimeout(total=600)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            queries: tuple[str, str]
            with psycopg.connect(dst_dsn) as t:
                texts = [t.execute("SELECT optiqoflow.fingerprint_query('optiqo', %s, %s)", (TABLE, d)).fetchone()
                         for d in (2, 4)]  # fmt: skip
                assert texts[0] is not None and texts[1] is not None
                queries = (str(texts[0][0]), str(texts[1][0]))
            for step in ("initial load", "lost", "repair", "full re-sync"):
                stats = simrepair.RepairStats()
                channel = simrepair.Channel(session, server.url, SECRET, stats)
                t0 = time.perf_counter()
                if step == "lost":
                    _lose(src, tenant)
                    figures["before repair"] = _fingerprints(dst_dsn, src_dsn, tenant)
                    continue
                if step == "repair":
                    figures["repaired"] = await simrepair.repair_pair(channel, src, queries, tenant, TABLE)
                else:
                    await _full_sync(channel, src, tenant)
                seconds = time.perf_counter() - t0
                figures[step] = {**stats.summary(), "seconds": seconds,
                                 "bytes": stats.bytes_sent + stats.bytes_received}  # fmt: skip
                if step == "repair" and channel.last_full_sync_at is not None:
                    # found and repaired; the rest is the RECONCILE that finds it equal
                    figures[step]["until repaired"] = channel.last_full_sync_at - t0
                if step == "repair":
                    figures["after repair"] = _fingerprints(dst_dsn, src_dsn, tenant)
    return figures


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    rows = 100_000 if quick else 1_000_000
    f = asyncio.run(_measure(cl, rows))
    full, fix, load = f["full re-sync"], f["repair"], f["initial load"]
    byte_share = fix["bytes"] / full["bytes"]
    time_share = fix["seconds"] / full["seconds"]
    repaired_share = fix.get("until repaired", fix["seconds"]) / full["seconds"]
    ours_after, theirs_after = f["after repair"]
    equal = f["repaired"] and ours_after == theirs_after
    out = [
        f"### Repairing 10 lost changes in a tenant's table of {rows:,} rows ({TABLE})\n",
        table(
            ["step", "seconds", "bytes (sent + received)", "what"],
            [
                ["initial load (FULL_SYNC)", f"{load['seconds']:.1f}", f"{load['bytes']:,}", f"{rows:,} rows"],
                ["repair (RECONCILE + scoped FULL_SYNC + verifying RECONCILE)",
                 f"{fix['seconds']:.2f} ({fix.get('until repaired', 0):.2f} until repaired)", f"{fix['bytes']:,}",
                 f"{fix['reconciles']} RECONCILE, {fix['buckets_differing']} buckets and "
                 f"{fix['sub_buckets_differing']} sub-buckets differing, {fix['rows_sent']} rows sent"],
                ["full re-sync (FULL_SYNC)", f"{full['seconds']:.1f}", f"{full['bytes']:,}", f"{rows:,} rows"],
            ],
        ),
        "",
        table(
            ["target", "figure", "verdict"],
            [
                ["repair bytes < 1% of a full re-sync's", f"{byte_share:.4%}", verdict(byte_share < 0.01)],
                ["repair time < 10% of a full re-sync's (found and repaired)", f"{repaired_share:.2%}",
                 verdict(repaired_share < 0.10)],
                ["... and with the RECONCILE that verifies it", f"{time_share:.2%}", verdict(time_share < 0.10)],
                ["fingerprints equal after the repair", f"{ours_after} = {theirs_after}", verdict(equal)],
            ],
        ),
        "",
    ]  # fmt: skip
    return "\n".join(out), f
