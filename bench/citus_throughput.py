"""Per-event and FULL_SYNC throughput of the database write path: single node vs Citus.

    python bench/citus_throughput.py --single DSN --citus DSN [--repeat 5]
        [--events 4000] [--conns 8] [--tenants 16] [--records 2000] [--batch 500]

--single: a PostgreSQL database migrated to head; deliveries are the receiver's one call,
`SELECT optiqoflow.apply_webhook($1::jsonb, $2)`.
--citus: the coordinator of a Citus cluster, migrated and `optiqoflow.distribute()`d;
deliveries take the receiver's two-step path (receiver.citus.apply, the receiver's own code: the
delegated apply_tenant_webhook on the tenant's worker, apply_webhook on the coordinator
when it answers coordinator_required).
Either may be left out. Each repetition runs both, one after the other (the order
alternates between repetitions), each with tenants of its own:
  warm-up:   8 rows per tenant (a tenant's first push creates its view);
  events:    C threads, each an autocommit connection, one UPDATE delivery per call,
             fresh versions, rows spread over T tenants (deliveries/s, and the latency
             of each call);
  full_sync: one FULL_SYNC run with total per tenant, R records in batches of B, the
             tenants shared among C threads (records/s).
Prints one JSON line per repetition and target, then a summary: median, min and max of
each figure per target, and the ratio of the Citus median to the single-node median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from receiver import citus as two_step
from receiver.citus import payload_tenant
from receiver.database import ADAPTERS, APPLY_SQL, Connection, JsonBody, first_value

BASE = datetime(2026, 1, 1, tzinfo=UTC)
COLUMNS = {"title": "t", "status": "open", "priority": 2}


class Caller:
    """One autocommit connection of the receiver's kind, with an event loop of its own
    (one per thread): deliveries go through the receiver's own code."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn = self.loop.run_until_complete(
            Connection.connect(dsn, autocommit=True, cursor_factory=psycopg.AsyncRawCursor,
                               context=ADAPTERS)
        )

    def __enter__(self) -> Caller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def deliver(c: Caller, payload: dict[str, Any], citus: bool) -> str:
    body, key = JsonBody(json.dumps(payload).encode()), str(uuid.uuid4())
    tenant = payload_tenant(payload)
    if citus and tenant is not None:
        text, path = c.loop.run_until_complete(two_step.apply(c.conn, tenant, body, key))
    else:
        text = c.loop.run_until_complete(first_value(c.conn, APPLY_SQL, (body, key)))
        path = "coordinator" if citus else "direct"
    answer = json.loads(text)
    assert answer["status"] in ("applied", "duplicate", "stale"), answer
    return path


def run_threads(n: int, target: Any) -> float:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def one_round(dsn: str, citus: bool, a: argparse.Namespace) -> dict[str, Any]:
    tenants = [str(uuid.uuid4()) for _ in range(a.tenants)]
    rows = {t: [str(uuid.uuid4()) for _ in range(8)] for t in tenants}
    paths: dict[str, int] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    with Caller(dsn) as c:  # warm-up: views, tracking
        for t in tenants:
            for r in rows[t]:
                deliver(
                    c,
                    {
                        "type": "INSERT",
                        "table": "adhoc_work_orders",
                        "tenant_id": t,
                        "record": {"id": r, "updated_at": BASE.isoformat(), **COLUMNS},
                    },
                    citus,
                )

    per_conn = a.events // a.conns

    def events(i: int) -> None:
        local: dict[str, int] = {}
        spent: list[float] = []
        with Caller(dsn) as c:
            for k in range(per_conn):
                t = tenants[(i + k * a.conns) % len(tenants)]
                r = rows[t][k % len(rows[t])]
                at = BASE + timedelta(seconds=1 + k * a.conns + i)
                t0 = time.perf_counter()
                p = deliver(
                    c,
                    {
                        "type": "UPDATE",
                        "table": "adhoc_work_orders",
                        "tenant_id": t,
                        "record": {"id": r, "updated_at": at.isoformat(), **COLUMNS},
                    },
                    citus,
                )
                spent.append(time.perf_counter() - t0)
                local[p] = local.get(p, 0) + 1
        with lock:
            latencies.extend(spent)
            for k2, v in local.items():
                paths[k2] = paths.get(k2, 0) + v

    secs = run_threads(a.conns, events)
    done = per_conn * a.conns
    latencies.sort()

    def full_sync(i: int) -> None:
        with Caller(dsn) as c:
            for t in tenants[i :: a.conns]:
                ids = [str(uuid.uuid4()) for _ in range(a.records)]
                at = (BASE + timedelta(days=30)).isoformat()
                for off in range(0, a.records, a.batch):
                    deliver(
                        c,
                        {
                            "type": "FULL_SYNC",
                            "table": "adhoc_work_orders",
                            "tenant_id": t,
                            "offset": off,
                            "total": a.records,
                            "sync_id": f"bench-{t}",
                            "records": [
                                {"id": x, "updated_at": at, **COLUMNS}
                                for x in ids[off : off + a.batch]
                            ],
                        },
                        citus,
                    )

    fs_secs = run_threads(a.conns, full_sync)
    return {
        "events_per_s": round(done / secs, 1),
        "event_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "event_p95_ms": round(latencies[int(len(latencies) * 0.95)] * 1000, 1),
        "full_sync_records_per_s": round(a.records * a.tenants / fs_secs),
        "event_paths": paths,
    }


def server(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT current_setting('server_version')").fetchone()
        version = f"PostgreSQL {row[0] if row else '?'}"
        if c.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone():
            citus = c.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
            ).fetchone()
            nodes = c.execute("SELECT count(*) FROM pg_dist_node WHERE shouldhaveshards").fetchone()
            version += f", Citus {citus[0] if citus else '?'}, {nodes[0] if nodes else '?'} nodes with shards"
    return version


FIGURES = ("events_per_s", "event_p50_ms", "event_p95_ms", "full_sync_records_per_s")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--single", help="a single PostgreSQL database at head")
    ap.add_argument("--citus", help="a Citus coordinator database at head, distributed")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--tenants", type=int, default=16)
    ap.add_argument("--records", type=int, default=2000, help="FULL_SYNC records per tenant")
    ap.add_argument("--batch", type=int, default=500, help="FULL_SYNC records per batch")
    a = ap.parse_args()
    targets = [(name, dsn) for name, dsn in (("single", a.single), ("citus", a.citus)) if dsn]
    if not targets:
        ap.error("give --single and/or --citus")
    print(
        json.dumps(
            {
                "servers": {name: server(dsn) for name, dsn in targets},
                "workload": {
                    k: getattr(a, k) for k in ("events", "conns", "tenants", "records", "batch")
                },
            }
        ),
        flush=True,
    )
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in targets}
    for rep in range(a.repeat):
        order = targets if rep % 2 == 0 else list(reversed(targets))
        for name, dsn in order:
            figures = one_round(dsn, name == "citus", a)
            results[name].append(figures)
            print(json.dumps({"repetition": rep + 1, "target": name, **figures}), flush=True)
    summary: dict[str, Any] = {}
    for name, runs in results.items():
        summary[name] = {
            f: {
                "median": round(statistics.median(r[f] for r in runs), 1),
                "min": min(r[f] for r in runs),
                "max": max(r[f] for r in runs),
            }
            for f in FIGURES
        }
    if len(results) == 2:
        summary["citus_over_single"] = {
            f: round(summary["citus"][f]["median"] / summary["single"][f]["median"], 3)
            for f in FIGURES
        }
    print(json.dumps({"summary": summary}, indent=2))


if __name__ == "__main__":
    main()
