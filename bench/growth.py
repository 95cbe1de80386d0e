"""Target 3: cost stays flat as data grows.

    python -m bench growth [--quick] [--reps N] [--dsn DSN]

One database, `optiqoflow serve` in its own process, table optiqoflow.sensor_readings:

1. Every one of 100 tenants pushes once (its view exists); two sweep tenants are loaded by
   FULL_SYNC: a small one (1,000 rows) and one four times larger (4,000 rows).
2. "alone": the table holds only those rows; each sweep tenant is re-synced (FULL_SYNC
   with total and sync_id, batches of 500, every row at a newer version, so the batch
   that completes the run scans the tenant's rows for removals).
3. The table is grown by COPY to 10k, 100k and 1M rows (spread over the 100 tenants),
   then VACUUM ANALYZE and CHECKPOINT. At each size: per-event latency at concurrency 1
   (half INSERTs of new rows, half UPDATEs of random existing rows of 8 tenants),
   throughput at concurrency 8, and both sweeps again.
4. Views: tracking rows for 1,000 new tenants x 21 tables are inserted and
   `tenants.regenerate_tenant_views(tenant)` creates their 21 views, tenant by tenant
   (timed, bounded); then one tenant's 21 views are regenerated with changed column sets
   (every view rebuilt) and unchanged (nothing to do), and per-event latency is measured
   again with 21,000 more views in the catalog.

Targets: p50 latency at the sizes differs by < 20%; a sweep costs in proportion to the
tenant's rows (the same at 1M rows as alone; 4x rows, about 4x time); a regeneration of
one tenant's 21 views stays under REGEN_BOUND_MS.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import timedelta
from typing import Any

import psycopg

from bench import records
from bench.common import (
    Cluster,
    LoadResult,
    Request,
    ServerProcess,
    Spread,
    ours,
    percentile,
    run_load,
    signed,
    table,
    verdict,
)

SOURCE = "sensor_readings"
COPY_COLUMNS = ("tenant_id", "id", "sensor_id", "room_id", "measured_at", "visitor_count",
                "occupancy_pct", "battery_pct", "created_at", "updated_at")
SWEEP_BATCH = 500
REGEN_BOUND_MS = 1000.0  # stated bound: one tenant's 21 views rebuilt, 21,000 views around
KEEP_IDS = 5000  # existing ids remembered per event tenant (UPDATE targets)


class Workload:
    """Events for 8 tenants: INSERTs of new rows and UPDATEs of existing ones, alternating;
    versions only increase."""

    def __init__(self, tenants: list[str], known: dict[str, list[str]]) -> None:
        self.rng = random.Random(11)
        self.tenants, self.known = tenants, known
        self.n = 0

    def make(self, count: int) -> list[Request]:
        out = []
        for _ in range(count):
            self.n += 1
            tenant = self.tenants[self.n % len(self.tenants)]
            at = records.BASE_TIME + timedelta(days=1, milliseconds=self.n)
            rec = records.sensor_reading(self.rng, tenant, at)
            kind = "INSERT"
            if self.n % 2 == 0 and self.known.get(tenant):
                rec["id"] = self.rng.choice(self.known[tenant])
                kind = "UPDATE"
            out.append(signed({"type": kind, "table": SOURCE, "tenant_id": tenant, "record": rec,
                               "occurred_at": rec["updated_at"]}))
        return out


def _bulk(conn: psycopg.Connection[Any], tenants: list[str], n: int, known: dict[str, list[str]],
          offset: int) -> None:
    """COPY n rows of sensor_readings, round-robin over tenants, all at version BASE_TIME."""
    stamp = records.BASE_TIME.isoformat()
    rooms = {t: str(uuid.uuid4()) for t in tenants}
    copy = ("COPY optiqoflow.sensor_readings (" + ", ".join(COPY_COLUMNS) + ") FROM STDIN")
    chunk = 100_000
    with conn.cursor() as cur:
        for start in range(0, n, chunk):
            lines = []
            for i in range(offset + start, offset + min(n, start + chunk)):
                t = tenants[i % len(tenants)]
                rid = str(uuid.uuid4())
                keep = known.get(t)
                if keep is not None and len(keep) < KEEP_IDS:
                    keep.append(rid)
                lines.append(f"{t}\t{rid}\tsnr-{i % 400:04d}\t{rooms[t]}\t{stamp}\t{i % 300}\t"
                             f"{(i % 10000) / 100:.2f}\t{i % 100}\t{stamp}\t{stamp}\n")
            with conn.transaction(), cur.copy(copy) as cp:
                cp.write("".join(lines).encode())


def _count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM optiqoflow.sensor_readings").fetchone()
    return int(row[0]) if row else 0


def _sweep(server: ServerProcess, tenant: str, rows: list[records.Record], version: int) -> float:
    """One FULL_SYNC of all the tenant's rows at a newer version; seconds."""
    at = records.BASE_TIME + timedelta(days=10 + version)
    fresh = records.with_version(rows, at)
    sync_id = f"sweep-{uuid.uuid4()}"
    reqs = [signed({"type": "FULL_SYNC", "table": SOURCE, "tenant_id": tenant, "offset": o,
                    "total": len(fresh), "sync_id": sync_id, "records": fresh[o:o + SWEEP_BATCH]})
            for o in range(0, len(fresh), SWEEP_BATCH)]
    lr = asyncio.run(run_load(server.url, reqs, 1, 600))
    if lr.ok != len(reqs) or set(lr.answers) != {"applied"}:
        raise RuntimeError(f"sweep failed: {lr.statuses} {lr.answers} {lr.first_error}")
    return lr.elapsed


def _load(server: ServerProcess, reqs: list[Request], c: int) -> LoadResult:
    lr = asyncio.run(run_load(server.url, reqs, c, 300))
    if lr.ok != lr.sent or set(lr.answers) - {"applied"}:
        raise RuntimeError(f"events failed: {lr.statuses} {lr.answers} {lr.first_error}")
    return lr


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    levels = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    n_lat, n_tput = (150, 400) if quick else (400, 1500)
    small_n = 500 if quick else 1000
    view_tenants = 100 if quick else 1000
    view_budget = 300.0 if quick else 1800.0
    dsn = cl.create_database("growth")
    tenants = [str(uuid.uuid4()) for _ in range(100)]
    event_tenants = tenants[:8]
    known: dict[str, list[str]] = {t: [] for t in event_tenants}
    small, large = str(uuid.uuid4()), str(uuid.uuid4())
    sweep_rows = {small: records.rows(SOURCE, small, small_n, seed=21),
                  large: records.rows(SOURCE, large, 4 * small_n, seed=22)}
    work = Workload(event_tenants, known)
    lat: dict[str, list[dict[str, float]]] = {}
    tput: dict[str, list[float]] = {}
    sweeps: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, int] = {}
    version = 0
    out: list[str] = []
    data: dict[str, Any] = {}

    server = ours(dsn, cl.workdir, "growth")
    with server, psycopg.connect(dsn, autocommit=True) as conn:
        warm = [signed({"type": "INSERT", "table": SOURCE, "tenant_id": t,
                        "record": records.sensor_reading(random.Random(i), t, records.BASE_TIME)})
                for i, t in enumerate(tenants)]
        _load(server, warm, 4)
        _load(server, work.make(200), 8)
        for t, rows in sweep_rows.items():
            version += 1
            _sweep(server, t, rows, version)

        def measure(label: str, with_events: bool = True) -> None:
            nonlocal version
            sizes[label] = _count(conn)
            sweeps[label] = {"small": [], "large": []}
            # unmeasured first: caches and plans after the load, as in steady traffic
            if with_events:
                _load(server, work.make(100), 1)
            for t in (small, large):
                version += 1
                _sweep(server, t, sweep_rows[t], version)
            for _ in range(reps):
                if with_events:
                    lr = _load(server, work.make(n_lat), 1)
                    lat.setdefault(label, []).append({
                        "p50": percentile(lr.latencies, 50) * 1000,
                        "p99": percentile(lr.latencies, 99) * 1000,
                        "mean": sum(lr.latencies) / len(lr.latencies) * 1000})
                    tput.setdefault(label, []).append(_load(server, work.make(n_tput), 8).rate)
                for kind, t in (("small", small), ("large", large)):
                    version += 1
                    sweeps[label][kind].append(_sweep(server, t, sweep_rows[t], version))
            print(f"  growth: {label} ({sizes[label]:,} rows) measured", flush=True)

        measure("alone", with_events=False)
        offset = 0
        for level in levels:
            have = _count(conn)
            if level > have:
                t0 = time.perf_counter()
                _bulk(conn, tenants, level - have, known, offset)
                offset += level - have
                conn.execute("VACUUM ANALYZE optiqoflow.sensor_readings")
                conn.execute("CHECKPOINT")
                print(f"  growth: loaded {level - have:,} rows by COPY in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
            measure(f"{level:,}")

        # views: 1,000 tenants x 21 tables
        views = _views(conn, view_tenants, view_budget, reps)
        conn.execute("CHECKPOINT")
        label = f"{levels[-1]:,} + {views['created']:,} views"
        sizes[label] = _count(conn)
        for _ in range(reps):
            lr = _load(server, work.make(n_lat), 1)
            lat.setdefault(label, []).append({
                "p50": percentile(lr.latencies, 50) * 1000,
                "p99": percentile(lr.latencies, 99) * 1000,
                "mean": sum(lr.latencies) / len(lr.latencies) * 1000})
            tput.setdefault(label, []).append(_load(server, work.make(n_tput), 8).rate)

    # --- report
    out.append(f"### Growth: sensor_readings from 10k to {levels[-1]:,} rows ({reps} repetitions)\n")
    lrows: list[list[str]] = []
    base_p50 = Spread([x["p50"] for x in lat[f"{levels[0]:,}"]]).median
    for label in lat:
        p50 = Spread([x["p50"] for x in lat[label]])
        lrows.append([label, f"{sizes[label]:,}", p50.fmt(2), Spread([x["p99"] for x in lat[label]]).fmt(2),
                     Spread([x["mean"] for x in lat[label]]).fmt(2), f"{p50.median / base_p50:.2f}x",
                     Spread(tput[label]).fmt()])
    out.append(table(["table size", "rows", "p50 ms, c=1", "p99 ms, c=1", "mean ms, c=1",
                      f"p50 ÷ p50 at {levels[0]:,}", "events/s, c=8"], lrows))
    level_p50 = [Spread([x["p50"] for x in lat[f"{lv:,}"]]).median for lv in levels]
    spread = max(level_p50) / min(level_p50) - 1
    out.append(f"\nPer-event p50 latency across {', '.join(f'{lv:,}' for lv in levels)} rows differs by "
               f"{spread * 100:.0f}% (largest ÷ smallest - 1; target < 20%): {verdict(spread < 0.2)}\n")

    srows = []
    alone_small = Spread(sweeps["alone"]["small"]).median
    for label, sw in sweeps.items():
        s, lg = Spread(sw["small"]), Spread(sw["large"])
        srows.append([label, f"{sizes[label]:,}", s.fmt(3, " s"), f"{s.median / alone_small:.2f}x",
                      lg.fmt(3, " s"), f"{lg.median / s.median:.2f}x"])
    out.append(table(["table size", "rows", f"sweep of a {small_n:,}-row tenant",
                      "÷ alone", f"sweep of a {4 * small_n:,}-row tenant", "large ÷ small"], srows))
    last = Spread(sweeps[f"{levels[-1]:,}"]["small"]).median / alone_small
    ratio = (Spread(sweeps[f"{levels[-1]:,}"]["large"]).median
             / Spread(sweeps[f"{levels[-1]:,}"]["small"]).median)
    ok = last < 1.2 and 2.5 <= ratio <= 5.0
    out.append(f"\nFULL_SYNC sweep (batches of {SWEEP_BATCH}, with total): at {levels[-1]:,} rows the "
               f"small tenant's sweep costs {last:.2f}x what it costs alone, and 4x the rows cost "
               f"{ratio:.2f}x the time (target: ≈ 1x and ≈ 4x, i.e. < 1.2x and 2.5-5x): {verdict(ok)}\n")

    out.append(f"Views: {views['tenants']:,} tenants x 21 tables "
               f"(tracking rows inserted, then `regenerate_tenant_views(tenant)` per tenant):\n")
    created = Spread(views["per_tenant_ms"])
    out.append(table(["what", "figure"], [
        ["views created", f"{views['created']:,} in {views['seconds']:.0f} s "
                          f"({views['created'] / views['seconds']:.0f} views/s)"],
        ["one tenant's 21 views, first creation, ms", f"median {created.median:.0f}, "
                                                      f"p99 {percentile(views['per_tenant_ms'], 99):.0f}, "
                                                      f"max {created.max:.0f}"],
        ["first 10% of tenants ÷ last 10% (median ms)", views["first_last"]],
        ["regenerate one tenant, 21 views rebuilt (columns changed), ms",
         Spread(views["regen_ms"]).fmt(0)],
        ["regenerate one tenant, nothing to do, ms", Spread(views["noop_ms"]).fmt(1)],
        ["views in schema tenants / relations in pg_class", f"{views['views']:,} / {views['pg_class']:,}"],
    ]))
    worst = max(views["regen_ms"])
    out.append(f"\nStated bound: a regeneration of one tenant's 21 views < {REGEN_BOUND_MS:.0f} ms with "
               f"{views['created']:,} views in the database; worst measured {worst:.0f} ms: "
               f"{verdict(worst < REGEN_BOUND_MS)}"
               + ("" if views["complete"] else f" (creation stopped by its {view_budget:.0f} s budget)")
               + "\n")
    data.update({"sizes": sizes, "latency": lat, "throughput": tput, "sweeps": sweeps, "views": views,
                 "latency_spread": spread, "sweep_vs_alone": last, "sweep_large_vs_small": ratio})
    return "\n".join(out), data


def _views(conn: psycopg.Connection[Any], n: int, budget: float, reps: int) -> dict[str, Any]:
    tenants = [str(uuid.uuid4()) for _ in range(n)]
    conn.execute("""
        INSERT INTO tenants.tenant_column_access (tenant_id, table_name, columns, updated_at)
        SELECT t::uuid, m.target_table,
               ARRAY(SELECT a.attname::text FROM pg_attribute a
                      WHERE a.attrelid = format('optiqoflow.%%I', m.target_table)::regclass
                        AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attname NOT IN ('id', 'tenant_id') AND a.attname !~ '^_of_'
                      ORDER BY a.attname), now()
          FROM unnest(%s::text[]) t, optiqoflow.table_mappings m
        ON CONFLICT DO NOTHING""", (tenants,))
    per: list[float] = []
    created = 0
    t0 = time.perf_counter()
    for i, t in enumerate(tenants):
        if time.perf_counter() - t0 > budget:
            break
        s = time.perf_counter()
        row = conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (t,)).fetchone()
        per.append((time.perf_counter() - s) * 1000)
        created += int(row[0]) if row else 0
        if (i + 1) % 100 == 0:
            print(f"  growth: views for {i + 1:,} tenants ({created:,} views, "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
    seconds = time.perf_counter() - t0
    tenth = max(1, len(per) // 10)
    first_last = (f"{Spread(per[:tenth]).median:.0f} ms ÷ {Spread(per[-tenth:]).median:.0f} ms")

    # one tenant, in the middle: its columns shrink and grow back, so every call rebuilds
    who = tenants[min(len(per), n) // 2]
    regen, noop = [], []
    for r in range(max(reps, 3) * 2):
        shrink = r % 2 == 0
        conn.execute(
            "UPDATE tenants.tenant_column_access SET columns = "
            + ("columns[1:cardinality(columns) - 1]" if shrink else
               "ARRAY(SELECT a.attname::text FROM pg_attribute a "
               "WHERE a.attrelid = format('optiqoflow.%%I', table_name)::regclass AND a.attnum > 0 "
               "AND NOT a.attisdropped AND a.attname NOT IN ('id', 'tenant_id') "
               "AND a.attname !~ '^_of_' ORDER BY a.attname)")
            + " WHERE tenant_id = %s", (who,))
        s = time.perf_counter()
        row = conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (who,)).fetchone()
        regen.append((time.perf_counter() - s) * 1000)
        assert row is not None and row[0] == 21, row
        s = time.perf_counter()
        row = conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (who,)).fetchone()
        noop.append((time.perf_counter() - s) * 1000)
        assert row is not None and row[0] == 0, row
    counts = conn.execute(
        "SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'tenants'::regnamespace "
        "AND relkind = 'v'), (SELECT count(*) FROM pg_class)").fetchone()
    assert counts is not None
    return {"tenants": len(per), "created": created, "seconds": seconds, "per_tenant_ms": per,
            "first_last": first_last, "regen_ms": regen, "noop_ms": noop,
            "views": int(counts[0]), "pg_class": int(counts[1]), "complete": len(per) == n}
