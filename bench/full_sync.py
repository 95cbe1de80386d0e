"""Target 1 (FULL_SYNC through HTTP) and target 5 (the receiver's peak RSS).

    python -m bench full-sync [--quick] [--reps N] [--dsn DSN]

The widest tables (work_orders 19 columns, sites 14, employees 13), batches of 5,000
realistic records. Every repetition syncs the same rows, each method under a tenant of
its own (primary key (tenant_id, id): same table, same values, no collisions), one batch
after the other, each batch its own transaction:

  ours HTTP    FULL_SYNC payloads (offset, total, sync_id) POSTed, signed, to
               `optiqoflow serve` (all bookkeeping: versions, run tracking, column
               tracking, push log, chart invalidation, webhook_logs)
  ours SQL     the same payloads as `SELECT optiqoflow.apply_webhook($1, $2)` from a bare
               psycopg client (diagnostic: what HTTP costs on top)
  SQL ceiling  one `INSERT ... SELECT FROM jsonb_populate_recordset($1) ON CONFLICT
               (tenant_id, id) DO UPDATE ... WHERE newer` per batch, bare psycopg client
  COPY         `COPY optiqoflow.<table> (...) FROM STDIN` of the same rows per batch

Bodies, JSON arrays and COPY text are all prepared before the clock starts. The order of
the methods rotates from one repetition to the next. Each of our tenants pushed one
INSERT first (its view and column tracking exist), so the timed part runs no DDL; the
DDL counter proves it. Peak RSS is the receiver's VmHWM (kernel's high-water mark).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg
from psycopg import sql

from bench import records
from bench.common import (
    Cluster,
    CpuMeter,
    Request,
    ServerProcess,
    Spread,
    ddl_snapshot,
    mib,
    ours,
    ratio_spread,
    run_load,
    self_cpu,
    signed,
    table,
    verdict,
)

BATCH = 5000
BODY_LIMIT = 16 * 1024 * 1024  # the receiver's default OPTIQO_MAX_BODY_BYTES
METHODS = ("ours HTTP", "ours SQL", "SQL ceiling", "COPY")
APPLY = "SELECT optiqoflow.apply_webhook($1::jsonb, $2)"


@dataclass
class Sample:
    seconds: float
    pg_cpu: float
    rcv_cpu: float
    client_cpu: float


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (table, method)
    rss_kib: list[tuple[str, int, int]] = field(default_factory=list)  # (moment, VmRSS, VmHWM)
    records_per_run: int = 0
    largest_body: int = 0

    def add(self, tbl: str, method: str, s: Sample) -> None:
        self.samples.setdefault((tbl, method), []).append(s)


def _columns(dsn: str, target: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = format('optiqoflow.%%I', %s::text)::regclass "
            "AND attnum > 0 AND NOT attisdropped AND attname !~ '^_of_' ORDER BY attnum",
            (target,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def ceiling_statement(target: str, columns: list[str]) -> str:
    data = [c for c in columns if c not in ("tenant_id", "id")]
    return sql.SQL(
        "INSERT INTO optiqoflow.{t} AS t (tenant_id, id, {cols}) "
        "SELECT $2::uuid, r.id, {rcols} "
        "FROM jsonb_populate_recordset(NULL::optiqoflow.{t}, $1::jsonb) r "
        "ON CONFLICT (tenant_id, id) DO UPDATE SET {sets} WHERE t.updated_at < EXCLUDED.updated_at"
    ).format(
        t=sql.Identifier(target),
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in data),
        rcols=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in data),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in data),
    ).as_string(None)


def sync_payloads(source: str, tenant: str, rows: list[records.Record]) -> list[dict[str, Any]]:
    sync_id = f"bench-{uuid.uuid4()}"
    return [
        {"type": "FULL_SYNC", "table": source, "tenant_id": tenant, "offset": off,
         "total": len(rows), "sync_id": sync_id, "records": rows[off:off + BATCH]}
        for off in range(0, len(rows), BATCH)
    ]


def warm_tenant(source: str, tenant: str, first: records.Record) -> Request:
    """One INSERT of the run's first row at an older version: creates the tenant's view
    and column tracking, so the timed FULL_SYNC runs no DDL."""
    older = {**first, "tenant_id": tenant, "updated_at": (records.BASE_TIME - timedelta(days=1)).isoformat()}
    return signed({"type": "INSERT", "table": source, "tenant_id": tenant, "record": older})


def near_limit(source: str, tenant: str, limit: int, seed: int) -> tuple[Request, int]:
    """One FULL_SYNC batch whose body is just under `limit` bytes; (request, records)."""
    rows = records.rows(source, tenant, limit // 600, seed=seed)
    budget, used, n = limit - 4096, 0, 0
    for r in rows:
        size = len(json.dumps(r, separators=(",", ":"))) + 1
        if used + size > budget:
            break
        used, n = used + size, n + 1
    req = signed({"type": "FULL_SYNC", "table": source, "tenant_id": tenant, "offset": 0,
                  "total": n, "sync_id": f"big-{uuid.uuid4()}", "records": rows[:n]})
    assert len(req.body) <= limit, len(req.body)
    return req, n


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    batches = 1 if quick else 4
    n = BATCH * batches
    dsn = cl.create_database("full_sync")
    res = Results(records_per_run=n)
    sources = records.WIDEST
    datasets = {s: records.rows(s, "00000000-0000-0000-0000-000000000000", n, seed=i)
                for i, s in enumerate(sources)}
    columns = {s: _columns(dsn, records.TABLES[s][0]) for s in sources}
    # tenants[rep][source][method]
    tenants = [{s: {m: str(uuid.uuid4()) for m in METHODS} for s in sources} for _ in range(reps)]
    postmaster = cl.postmaster()

    server: ServerProcess = ours(dsn, cl.workdir, "full_sync")
    with server:
        res.rss_kib.append(("started", server.status_kib("VmRSS"), server.status_kib("VmHWM")))
        warm = [warm_tenant(s, tenants[r][s][m], datasets[s][0])
                for r in range(reps) for s in sources for m in ("ours HTTP", "ours SQL")]
        wr = asyncio.run(run_load(server.url, warm, 4, 300))
        assert wr.ok == len(warm), wr.first_error
        res.rss_kib.append(("after warm-up", server.status_kib("VmRSS"), server.status_kib("VmHWM")))
        ddl_before = ddl_snapshot(dsn)

        with psycopg.connect(dsn, autocommit=True) as conn:
            for rep in range(reps):
                for si, s in enumerate(sources):
                    target = records.TABLES[s][0]
                    order = METHODS[(rep + si) % 4:] + METHODS[:(rep + si) % 4]
                    for method in order:
                        tenant = tenants[rep][s][method]
                        rows = records.with_tenant(datasets[s], tenant)
                        sample = _one(method, server, conn, s, target, tenant, rows,
                                      columns[s], postmaster, res)
                        res.add(target, method, sample)
                res.rss_kib.append((f"after repetition {rep + 1}", server.status_kib("VmRSS"),
                                    server.status_kib("VmHWM")))
        ddl = ddl_snapshot(dsn).minus(ddl_before)
        # target 5: bodies just under the 16 MiB limit, one alone, then two at once
        for k in (1, 2):
            big = [near_limit("adhoc_work_orders", str(uuid.uuid4()), BODY_LIMIT, seed=77 + i)
                   for i in range(k)]
            lr = asyncio.run(run_load(server.url, [b for b, _ in big], k, 600))
            if lr.ok != k:
                raise RuntimeError(f"near-limit body: {lr.statuses} {lr.first_error}")
            res.rss_kib.append((f"after {k} body(ies) of {len(big[0][0].body) / 2**20:.1f} MiB "
                                f"({big[0][1]:,} records each) at once",
                                server.status_kib("VmRSS"), server.status_kib("VmHWM")))
    return report(res, ddl, quick, reps, n)


def _one(method: str, server: ServerProcess, conn: psycopg.Connection[Any], source: str,
         target: str, tenant: str, rows: list[records.Record], columns: list[str],
         postmaster: Any, res: Results) -> Sample:
    pg = CpuMeter(postmaster, tree=True)
    rcv = CpuMeter(server.process(), tree=False)
    if method in ("ours HTTP", "ours SQL"):
        reqs = [signed(p) for p in sync_payloads(source, tenant, rows)]
        res.largest_body = max(res.largest_body, *(len(r.body) for r in reqs))
        pg.start()
        rcv.start()
        c0, t0 = self_cpu(), time.perf_counter()
        if method == "ours HTTP":
            lr = asyncio.run(run_load(server.url, reqs, 1, 600))
            if lr.ok != len(reqs) or set(lr.answers) != {"applied"}:
                raise RuntimeError(f"FULL_SYNC failed: {lr.statuses} {lr.answers} {lr.first_error}")
        else:
            cur = psycopg.RawCursor(conn)
            for r in reqs:
                row = cur.execute(APPLY, (r.body.decode(), r.headers["x-webhook-id"])).fetchone()
                assert row is not None and row[0]["status"] == "applied", row
    elif method == "SQL ceiling":
        stmt = ceiling_statement(target, columns)
        arrays = [json.dumps(rows[o:o + BATCH], separators=(",", ":")) for o in range(0, len(rows), BATCH)]
        pg.start()
        rcv.start()
        c0, t0 = self_cpu(), time.perf_counter()
        cur = psycopg.RawCursor(conn)
        for a in arrays:
            cur.execute(stmt, (a, tenant))
    else:  # COPY
        copy_sql = sql.SQL("COPY optiqoflow.{} ({}) FROM STDIN").format(
            sql.Identifier(target), sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        texts = [records.copy_text(rows[o:o + BATCH], columns) for o in range(0, len(rows), BATCH)]
        pg.start()
        rcv.start()
        c0, t0 = self_cpu(), time.perf_counter()
        for text in texts:
            with conn.transaction(), conn.cursor().copy(copy_sql) as cp:
                cp.write(text)
    seconds = time.perf_counter() - t0
    return Sample(seconds, pg.stop(), rcv.stop(), self_cpu() - c0)


def report(res: Results, ddl: Any, quick: bool, reps: int, n: int) -> tuple[str, dict[str, Any]]:
    out = [f"### FULL_SYNC, batches of {BATCH:,} records ({n:,} records per run, {reps} repetitions)\n"]
    rows = []
    ratio_rows = []
    per_method_all: dict[str, list[float]] = {}
    data: dict[str, Any] = {"records_per_run": n, "reps": reps, "tables": {}}
    targets = sorted({t for t, _ in res.samples})
    for tgt in targets:
        rate = {m: [n / s.seconds for s in res.samples[tgt, m]] for m in METHODS}
        for m in METHODS:
            ss = res.samples[tgt, m]
            sp = Spread(rate[m])
            per_method_all.setdefault(m, []).extend(rate[m])
            rows.append([tgt, m, sp.fmt(), f"{Spread([s.seconds for s in ss]).median:.2f}",
                         f"{Spread([s.pg_cpu / n * 1e6 for s in ss]).median:.0f}",
                         f"{Spread([s.rcv_cpu / n * 1e6 for s in ss]).median:.0f}" if m == "ours HTTP" else "-",
                         f"{Spread([s.client_cpu / n * 1e6 for s in ss]).median:.0f}"])
        vs_ceiling = ratio_spread(rate["ours HTTP"], rate["SQL ceiling"])
        vs_copy = ratio_spread(rate["ours HTTP"], rate["COPY"])
        sql_vs_ceiling = ratio_spread(rate["ours SQL"], rate["SQL ceiling"])
        ratio_rows.append([tgt, vs_ceiling.fmt(2) + "x", verdict(vs_ceiling.median >= 0.5),
                           vs_copy.fmt(2) + "x", verdict(vs_copy.median >= 0.25),
                           sql_vs_ceiling.fmt(2) + "x"])
        data["tables"][tgt] = {"records_per_s": rate, "ours_http_vs_ceiling": vs_ceiling.values,
                               "ours_http_vs_copy": vs_copy.values}
    out.append(table(["table", "method", "records/s median (min-max)", "s per run (median)",
                      "PostgreSQL CPU µs/record", "receiver CPU µs/record", "client CPU µs/record"],
                     rows))
    out.append("\nRatios, per repetition (ours HTTP ÷ baseline of the same repetition), "
               "median (min-max); target: ≥ 0.5x the SQL ceiling and ≥ 0.25x COPY:\n")
    out.append(table(["table", "ours HTTP ÷ SQL ceiling", "≥ 0.5x", "ours HTTP ÷ COPY", "≥ 0.25x",
                      "ours SQL ÷ SQL ceiling (no HTTP)"], ratio_rows))
    out.append(f"\nDDL during the timed runs (after each tenant's first push): "
               f"ALTER TABLE {ddl.alters()}, view regenerations {ddl.view_regenerations}, "
               f"all DDL commands {sum(ddl.commands.values())}, columns added {ddl.columns}.\n")
    out.append(f"Receiver memory (target 5; largest body {res.largest_body / 2**20:.1f} MiB, "
               f"body limit 16 MiB):\n")
    out.append(table(["moment", "RSS", "peak RSS (VmHWM)"],
                     [[m, mib(r), mib(h)] for m, r, h in res.rss_kib]))
    hwm = [h for m, _, h in res.rss_kib if m.startswith("after repetition")]
    growth = hwm[-1] - hwm[0]
    out.append(f"\nPeak RSS after the last repetition minus after the first: {growth / 1024:+.0f} MiB "
               f"over {reps - 1} more repetitions ({(reps - 1) * n * 3:,} more records); the peak "
               "follows the largest bodies in flight at once, not the run's length.\n")
    data.update({"rss_kib": res.rss_kib, "largest_body": res.largest_body,
                 "ddl": {"alters": ddl.alters(), "regenerations": ddl.view_regenerations,
                         "commands": ddl.commands}})
    return "\n".join(out), data
