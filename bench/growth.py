"""Target 3: cost stays flat as data grows.

    python -m bench growth [--quick] [--reps N] [--dsn DSN]

One database per size, each with `optiqoflow serve` in its own process, table
optiqoflow.sensor_readings: "alone" (only what step 1 writes), 10k, 100k and 1M rows.

1. In each database every one of 100 tenants pushes once (its view exists) and two sweep
   tenants are loaded by FULL_SYNC: a small one (1,000 rows) and one four times larger
   (4,000 rows). The rest of the rows are loaded by COPY (spread over the 100 tenants),
   then VACUUM ANALYZE and CHECKPOINT.
2. Measured in turn, database after database in a rotating order, so that the machine's
   drift hits every size alike (a first round is an unmeasured warm-up): per-event latency
   at concurrency 1 (half INSERTs of new rows, half UPDATEs of random existing rows of 8
   tenants; each size's sample taken in five slices, size after size, within each
   repetition), throughput at concurrency 8, and a sweep of each sweep tenant (FULL_SYNC with
   total and sync_id, batches of 500, every row at a newer version, so the batch that
   completes the run scans the tenant's rows for removals).
3. Views, in the 1M-row database: tracking rows for 1,000 new tenants x 21 tables are
   inserted and `tenants.regenerate_tenant_views(tenant)` creates their 21 views, tenant
   by tenant (timed, bounded); then one tenant's 21 views are regenerated with changed
   column sets (every view rebuilt) and unchanged (nothing to do); then per-event latency
   there again, in turn with the 10k-row database.

Targets: p50 latency at the sizes differs by < 20%; a sweep costs in proportion to the
tenant's rows (the same at 1M rows as alone; 4x rows, about 4x time); a regeneration of
one tenant's 21 views stays under REGEN_BOUND_MS.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass, field
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
LAT_SLICES = 5  # each repetition's latency sample, per size, in this many interleaved slices
REGEN_BOUND_MS = 100.0  # stated bound: one tenant's 21 views rebuilt, 21,000 views around (a delivery can afford it)
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


@dataclass
class Level:
    """One database holding the target table at one size, with its own receiver."""

    label: str
    target: int
    dsn: str
    server: ServerProcess
    work: Workload
    known: dict[str, list[str]]
    small: str
    large: str
    rows: int = 0
    lat: list[dict[str, float]] = field(default_factory=list)
    tput: list[float] = field(default_factory=list)
    sweeps: dict[str, list[float]] = field(default_factory=lambda: {"small": [], "large": []})


def _latency(latencies: list[float]) -> dict[str, float]:
    return {"p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
            "mean": sum(latencies) / len(latencies) * 1000}


def _prepare(cl: Cluster, label: str, target: int, sweep_rows: dict[str, list[records.Record]],
             small: str, large: str) -> Level:
    """A database with 100 tenants' views, the two sweep tenants, and COPY up to `target`."""
    dsn = cl.create_database("growth_" + label.replace(",", ""))
    tenants = [str(uuid.uuid4()) for _ in range(100)]
    known: dict[str, list[str]] = {t: [] for t in tenants[:8]}
    server = ours(dsn, cl.workdir, "growth_" + label.replace(",", ""))
    server.start()
    lv = Level(label, target, dsn, server, Workload(tenants[:8], known), known, small, large)
    _load(server, [signed({"type": "INSERT", "table": SOURCE, "tenant_id": t,
                           "record": records.sensor_reading(random.Random(i), t, records.BASE_TIME)})
                   for i, t in enumerate(tenants)], 4)
    for t, rows in sweep_rows.items():
        _sweep(server, t, rows, 0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        have = _count(conn)
        if target > have:
            t0 = time.perf_counter()
            _bulk(conn, tenants, target - have, known, 0)
            print(f"  growth: {label}: {target - have:,} rows loaded by COPY in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        conn.execute("VACUUM ANALYZE optiqoflow.sensor_readings")
        conn.execute("CHECKPOINT")
        lv.rows = _count(conn)
    _load(server, lv.work.make(200), 8)  # unmeasured: caches and plans, as in steady traffic
    return lv


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    levels = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    n_lat, n_tput = (150, 400) if quick else (500, 1500)
    small_n = 500 if quick else 1000
    view_tenants = 100 if quick else 1000
    view_budget = 300.0 if quick else 1800.0
    small, large = str(uuid.uuid4()), str(uuid.uuid4())
    sweep_rows = {small: records.rows(SOURCE, small, small_n, seed=21),
                  large: records.rows(SOURCE, large, 4 * small_n, seed=22)}
    all_levels: list[Level] = []
    version = 0
    try:
        for label, target in [("alone", 0)] + [(f"{lv:,}", lv) for lv in levels]:
            all_levels.append(_prepare(cl, label, target, sweep_rows, small, large))
        # interleaved: every repetition visits every size, in a rotating order, so the
        # machine's drift hits all sizes alike
        for rep in range(reps + 1):
            k = rep % len(all_levels)
            order = all_levels[k:] + all_levels[:k]
            # the latency sample of each size is taken in LAT_SLICES slices, size after
            # size, so that a few seconds of the machine's drift fall on every size alike
            # instead of on whichever was being measured (the verdict is a spread of ~2 ms
            # medians, most of each the commit's WAL flush)
            taken: dict[str, list[float]] = {lv.label: [] for lv in order}
            for _ in range(LAT_SLICES):
                for lv in order:
                    taken[lv.label] += _load(lv.server, lv.work.make(n_lat // LAT_SLICES), 1).latencies
            for lv in order:
                lat = _latency(taken[lv.label])
                rate = _load(lv.server, lv.work.make(n_tput), 8).rate
                sw = {}
                for kind, t in (("small", small), ("large", large)):
                    version += 1
                    sw[kind] = _sweep(lv.server, t, sweep_rows[t], version)
                if rep == 0:
                    continue  # the first round is a warm-up
                lv.lat.append(lat)
                lv.tput.append(rate)
                for kind in sw:
                    lv.sweeps[kind].append(sw[kind])
            print(f"  growth: repetition {rep}/{reps} done" if rep else "  growth: warm-up round done",
                  flush=True)

        # views: 1,000 tenants x 21 tables, in the largest database
        big, ref = all_levels[-1], all_levels[1]
        with psycopg.connect(big.dsn, autocommit=True) as conn:
            views = _views(conn, view_tenants, view_budget, reps)
            conn.execute("CHECKPOINT")
        with_views: list[dict[str, float]] = []
        ref_again: list[dict[str, float]] = []
        for rep in range(reps):
            pair = [(big, with_views), (ref, ref_again)]
            for lv, sink in pair if rep % 2 == 0 else pair[::-1]:
                sink.append(_latency(_load(lv.server, lv.work.make(n_lat), 1).latencies))
    finally:
        for lv in all_levels:
            lv.server.stop()
    return _report(all_levels, levels, views, with_views, ref_again, small_n, view_budget, reps)


def _report(all_levels: list[Level], levels: list[int], views: dict[str, Any],
            with_views: list[dict[str, float]], ref_again: list[dict[str, float]], small_n: int,
            view_budget: float, reps: int) -> tuple[str, dict[str, Any]]:
    out = [f"### Growth: sensor_readings at {', '.join(lv.label for lv in all_levels)} rows, one "
           f"database and receiver each, measured in turn ({reps} repetitions)\n"]
    ref = all_levels[1]
    base_p50 = Spread([x["p50"] for x in ref.lat]).median
    lrows: list[list[str]] = []
    for lv in all_levels:
        p50 = Spread([x["p50"] for x in lv.lat])
        lrows.append([lv.label, f"{lv.rows:,}", p50.fmt(2), Spread([x["p99"] for x in lv.lat]).fmt(2),
                      Spread([x["mean"] for x in lv.lat]).fmt(2), f"{p50.median / base_p50:.2f}x",
                      Spread(lv.tput).fmt()])
    big = all_levels[-1]
    wv, ra = Spread([x["p50"] for x in with_views]), Spread([x["p50"] for x in ref_again])
    lrows.append([f"{big.label} + {views['created']:,} views", f"{big.rows:,}", wv.fmt(2),
                  Spread([x["p99"] for x in with_views]).fmt(2),
                  Spread([x["mean"] for x in with_views]).fmt(2),
                  f"{wv.median / ra.median:.2f}x (vs {ra.median:.2f} ms at {ref.label}, measured in turn)",
                  "-"])
    out.append(table(["table size", "rows", "p50 ms, c=1", "p99 ms, c=1", "mean ms, c=1",
                      f"p50 ÷ p50 at {ref.label}", "events/s, c=8"], lrows))
    level_p50 = [Spread([x["p50"] for x in lv.lat]).median for lv in all_levels[1:]]
    spread = max(level_p50) / min(level_p50) - 1
    out.append(f"\nPer-event p50 latency across {', '.join(f'{lv:,}' for lv in levels)} rows differs by "
               f"{spread * 100:.0f}% (largest ÷ smallest - 1; target < 20%): {verdict(spread < 0.2)}\n")

    srows = []
    alone_small = Spread(all_levels[0].sweeps["small"]).median
    for lv in all_levels:
        sm, lg = Spread(lv.sweeps["small"]), Spread(lv.sweeps["large"])
        srows.append([lv.label, f"{lv.rows:,}", sm.fmt(3, " s"), f"{sm.median / alone_small:.2f}x",
                      lg.fmt(3, " s"), f"{lg.median / sm.median:.2f}x"])
    out.append(table(["table size", "rows", f"sweep of a {small_n:,}-row tenant",
                      "÷ alone", f"sweep of a {4 * small_n:,}-row tenant", "large ÷ small"], srows))
    last = Spread(big.sweeps["small"]).median / alone_small
    ratio = Spread(big.sweeps["large"]).median / Spread(big.sweeps["small"]).median
    ok = last < 1.2 and 2.5 <= ratio <= 5.0
    out.append(f"\nFULL_SYNC sweep (every row at a newer version, batches of {SWEEP_BATCH}, with total): "
               f"at {big.label} rows the small tenant's sweep costs {last:.2f}x what it costs alone, and "
               f"4x the rows cost {ratio:.2f}x the time (target: ≈ 1x and ≈ 4x, i.e. < 1.2x and "
               f"2.5-5x): {verdict(ok)}\n")

    out.append(f"Views: {views['tenants']:,} tenants x 21 tables in the {big.label}-row database "
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
    data = {"levels": {lv.label: {"rows": lv.rows, "latency": lv.lat, "throughput": lv.tput,
                                  "sweeps": lv.sweeps} for lv in all_levels},
            "with_views": with_views, "ref_again": ref_again, "views": views,
            "latency_spread": spread, "sweep_vs_alone": last, "sweep_large_vs_small": ratio}
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
