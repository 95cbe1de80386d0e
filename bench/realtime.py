"""Target 2 (real-time events through HTTP) and target 4 (steady state runs no DDL).

    python -m bench realtime [--quick] [--reps N] [--dsn DSN]

Four servers, each a process of its own with a pool of 8 connections, all on the same
database and table (optiqoflow.sensor_readings):
  ours     `optiqoflow serve`: verify, strict parse, `apply_webhook` with every piece of
           bookkeeping (de-duplication key, versions, tombstone check, column tracking,
           push log, chart invalidation, webhook_logs, JSON log line)
  ours, grouped  the same with OPTIQO_GROUP_COMMIT=32 (docs/group-commit.md): deliveries
           that find every connection busy are applied together, one call and one commit
  ceiling  verify the HMAC, one static single-row upsert (bench/baselines.py)
  naive    verify, json.loads, one INSERT ... ON CONFLICT per record (bench/baselines.py)
Also "ours, batched": the same events in BATCH envelopes of 50 (docs/payloads.md, "BATCH").
Every request is a signed INSERT of a new sensor reading (unique id, increasing
updated_at) for one of 16 tenants, with a delivery id (x-webhook-id). Concurrency 1, 8
and 32 (client connections); the servers take turns in a rotating order within each
repetition, so drift on this noisy machine hits them alike. Latency is measured by the
client, request sent to answer read.

DDL: after warm-up (each tenant's first push creates its view), the counters are read;
after the timed runs they are read again: ALTER TABLE and every other DDL command
(event trigger), view regenerations (tenant_column_access.view_regenerations), and
calls of regenerate_tenant_views (pg_stat_user_functions).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bench import records
from bench.common import (
    Cluster,
    CpuMeter,
    Request,
    ServerProcess,
    Spread,
    baseline,
    ddl_snapshot,
    mib,
    ours,
    percentile,
    ratio_spread,
    run_load,
    self_cpu,
    signed,
    table,
    verdict,
)

CONCURRENCY = (1, 8, 32)
SERVERS = ("ours", "ours, grouped", "ceiling", "naive")
GROUP = 32  # OPTIQO_GROUP_COMMIT of "ours, grouped"
TENANTS = 16
SOURCE = "sensor_readings"


@dataclass
class Sample:
    rate: float
    p50: float
    p99: float
    ok: int
    pg_cpu: float
    rcv_cpu: float
    client_cpu: float


class EventSource:
    """Signed INSERT events: unique ids, versions that only increase."""

    def __init__(self, tenants: list[str], seed: int) -> None:
        import random

        self.rng = random.Random(seed)
        self.tenants = tenants
        self.n = 0

    def payload(self) -> dict[str, Any]:
        """The next INSERT payload: the next tenant in turn, a version 1 ms newer."""
        self.n += 1
        tenant = self.tenants[self.n % len(self.tenants)]
        at = records.BASE_TIME + timedelta(milliseconds=self.n)
        rec = records.sensor_reading(self.rng, tenant, at)
        return {"type": "INSERT", "table": SOURCE, "tenant_id": tenant,
                "record": rec, "occurred_at": rec["updated_at"]}  # fmt: skip

    def make(self, count: int) -> list[Request]:
        return [signed(self.payload()) for _ in range(count)]

    def make_batches(self, count: int, size: int) -> list[Request]:
        """`count` events as BATCH envelopes of `size` events each (docs/payloads.md, "BATCH")."""
        return [signed({"type": "BATCH", "events": [self.payload() for _ in range(size)]})
                for _ in range(count // size)]  # fmt: skip


BATCH = 50  # events per envelope in the "ours, batched" runs


def counts(quick: bool) -> dict[int, int]:
    return {1: 150, 8: 500, 32: 800} if quick else {1: 600, 8: 2500, 32: 4000}


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    dsn = cl.create_database("realtime")
    tenants = [str(uuid.uuid4()) for _ in range(TENANTS)]
    src = EventSource(tenants, seed=7)
    postmaster = cl.postmaster()
    servers: dict[str, ServerProcess] = {
        "ours": ours(dsn, cl.workdir, "realtime"),
        "ours, grouped": ours(dsn, cl.workdir, "grouped", {"OPTIQO_GROUP_COMMIT": str(GROUP)},
                              name="ours, grouped"),
        "ceiling": baseline("ceiling", dsn, cl.workdir, SOURCE),
        "naive": baseline("naive", dsn, cl.workdir, SOURCE),
    }
    samples: dict[tuple[str, int], list[Sample]] = {}
    n = counts(quick)
    try:
        for s in servers.values():
            s.start()
        for name, s in servers.items():  # warm-up: views, pools, caches
            wr = asyncio.run(run_load(s.url, src.make(300 if name.startswith("ours") else 200), 8, 120))
            assert wr.ok == wr.sent, (name, wr.first_error)
        time.sleep(11)  # idle backends flush their function statistics
        ddl_before = ddl_snapshot(dsn)
        for rep in range(reps):
            for c in CONCURRENCY:
                order = SERVERS[rep % len(SERVERS):] + SERVERS[:rep % len(SERVERS)]
                for name in order:
                    samples.setdefault((name, c), []).append(
                        _one(servers[name], src.make(n[c]), c, postmaster))
                samples.setdefault(("ours, batched", c), []).append(
                    _one(servers["ours"], src.make_batches(n[c], BATCH), c, postmaster, BATCH))
            print(f"  realtime: repetition {rep + 1}/{reps} done", flush=True)
        rss = {k: (s.status_kib("VmRSS"), s.status_kib("VmHWM")) for k, s in servers.items()}
    finally:
        for s in servers.values():
            s.stop()
    ddl = ddl_snapshot(dsn).minus(ddl_before)  # servers stopped: statistics flushed
    return report(samples, ddl, rss, reps, n)


def _one(server: ServerProcess, reqs: list[Request], c: int, postmaster: Any,
         per_request: int = 1) -> Sample:
    """One timed run; rates and CPU are per event (`per_request` events in each request)."""
    pg = CpuMeter(postmaster, tree=True)
    rcv = CpuMeter(server.process(), tree=False)
    pg.start()
    rcv.start()
    c0 = self_cpu()
    lr = asyncio.run(run_load(server.url, reqs, c, 120))
    client = self_cpu() - c0
    if lr.ok != lr.sent or (server.name.startswith("ours") and set(lr.answers) != {"applied"}):
        raise RuntimeError(f"{server.name}: {lr.statuses} {lr.answers} {lr.first_error}")
    events = lr.ok * per_request
    return Sample(lr.rate * per_request, percentile(lr.latencies, 50) * 1000,
                  percentile(lr.latencies, 99) * 1000, events,
                  pg.stop() / events * 1e6, rcv.stop() / events * 1e6, client / events * 1e6)


def report(samples: dict[tuple[str, int], list[Sample]], ddl: Any, rss: dict[str, tuple[int, int]],
           reps: int, n: dict[int, int]) -> tuple[str, dict[str, Any]]:
    out = [f"### Real-time events through HTTP ({reps} repetitions; events per run: "
           + ", ".join(f"{n[c]:,} at concurrency {c}" for c in CONCURRENCY) + ")\n"]
    rows = []
    data: dict[str, Any] = {"reps": reps, "events": n, "runs": {}}
    for c in CONCURRENCY:
        for name in (*SERVERS, "ours, batched"):
            ss = samples[name, c]
            rows.append([c, name, Spread([s.rate for s in ss]).fmt(),
                         Spread([s.p50 for s in ss]).fmt(2), Spread([s.p99 for s in ss]).fmt(2),
                         f"{Spread([s.pg_cpu for s in ss]).median:.0f}",
                         f"{Spread([s.rcv_cpu for s in ss]).median:.0f}",
                         f"{Spread([s.client_cpu for s in ss]).median:.0f}"])
            data["runs"][f"{name}@{c}"] = [s.__dict__ for s in ss]
    out.append(table(["concurrency", "server", "events/s median (min-max)", "p50 ms median (min-max)",
                      "p99 ms median (min-max)", "PostgreSQL CPU µs/event", "server CPU µs/event",
                      "client CPU µs/event"], rows))
    ratio_rows = []
    for c in CONCURRENCY:
        o = [s.rate for s in samples["ours", c]]
        vc = ratio_spread(o, [s.rate for s in samples["ceiling", c]])
        vn = ratio_spread(o, [s.rate for s in samples["naive", c]])
        g = [s.rate for s in samples["ours, grouped", c]]
        gc = ratio_spread(g, [s.rate for s in samples["ceiling", c]])
        gn = ratio_spread(g, [s.rate for s in samples["naive", c]])
        ratio_rows.append([c, vc.fmt(2) + "x", verdict(vc.median >= 0.6) if c == 32 else "-",
                           vn.fmt(2) + "x", verdict(vn.median > 1.0) if c == 32 else "-",
                           gc.fmt(2) + "x", verdict(gc.median >= 0.6) if c == 32 else "-",
                           gn.fmt(2) + "x", verdict(gn.median > 1.0) if c == 32 else "-"])
        data[f"ratios@{c}"] = {"ceiling": vc.values, "naive": vn.values,
                               "grouped/ceiling": gc.values, "grouped/naive": gn.values}
    out.append("\nThroughput ratios per repetition (ours ÷ baseline of the same repetition), "
               "median (min-max); targets at concurrency 32: ≥ 0.6x the HTTP ceiling, > 1x naive. "
               f"\"grouped\": the same receiver with OPTIQO_GROUP_COMMIT={GROUP} (README \"Group "
               "commit\"):\n")
    out.append(table(["concurrency", "ours ÷ HTTP ceiling", "≥ 0.6x", "ours ÷ naive", "> 1x",
                      "grouped ÷ HTTP ceiling", "≥ 0.6x", "grouped ÷ naive", "> 1x"], ratio_rows))
    batched = [[c, ratio_spread([s.rate for s in samples["ours, batched", c]],
                                [s.rate for s in samples["ceiling", c]]).fmt(2) + "x",
                ratio_spread([s.rate for s in samples["ours, batched", c]],
                             [s.rate for s in samples["naive", c]]).fmt(2) + "x"]
               for c in CONCURRENCY]
    out.append(f"\nThe same events sent as BATCH envelopes of {BATCH} (one request and one commit "
               "each; every event still logged, versioned, tracked and invalidated), in events/s "
               "against the single-event baselines of the same repetition (p50/p99 above are per "
               "envelope):\n")
    out.append(table(["concurrency", "batched ÷ HTTP ceiling", "batched ÷ naive"], batched))
    calls = ddl.function_calls.get("tenants.regenerate_tenant_views", 0)
    zero = ddl.alters() == 0 and ddl.view_regenerations == 0 and calls == 0 and not ddl.commands
    out.append(
        f"\nDDL during the timed runs (target 4, {sum(s.ok for v in samples.values() for s in v):,} "
        f"events, no new columns): ALTER TABLE **{ddl.alters()}**, view regenerations "
        f"**{ddl.view_regenerations}**, regenerate_tenant_views calls **{calls}**, all DDL "
        f"commands **{sum(ddl.commands.values())}**, columns added {ddl.columns}, views created "
        f"{ddl.views} — {verdict(zero)}\n")
    out.append("Peak RSS of each server process over the run: "
               + ", ".join(f"{k} {mib(h)}" for k, (_, h) in rss.items()) + ".\n")
    data["ddl"] = {"alters": ddl.alters(), "regenerations": ddl.view_regenerations,
                   "regenerate_calls": calls, "commands": ddl.commands}
    return "\n".join(out), data
