"""Per-event and FULL_SYNC throughput of the database write path, single node vs Citus.

    python bench/citus_throughput.py DSN [--citus] [--events N] [--conns C] [--tenants T]

DSN: a database migrated to head (on Citus: the coordinator, after optiqoflow.distribute()).
With --citus each delivery goes through receiver.citus.apply_delivery (the delegated
apply_tenant_webhook, coordinator path when needed); without, through apply_webhook as
the receiver calls it. Warm-up first (each tenant's first push creates its view), then:
  events:    C threads, each an autocommit connection, one UPDATE delivery per call, fresh
             versions, rows spread over T tenants;
  full_sync: one FULL_SYNC run per tenant with total, batches of 500 records, C threads.
Prints JSON: events/s, records/s, and how many deliveries took the coordinator path.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from receiver.citus import apply_delivery

APPLY = "SELECT optiqoflow.apply_webhook($1::jsonb, $2)"


def deliver(conn: psycopg.Connection[Any], payload: dict[str, Any], citus: bool) -> str:
    body = json.dumps(payload)
    if citus:
        answer, path = apply_delivery(conn, body, payload, str(uuid.uuid4()))
    else:
        row = psycopg.RawCursor(conn).execute(APPLY, (body, str(uuid.uuid4()))).fetchone()
        assert row is not None
        answer, path = row[0], "single"
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dsn")
    ap.add_argument("--citus", action="store_true")
    ap.add_argument("--events", type=int, default=4000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--tenants", type=int, default=16)
    ap.add_argument("--records", type=int, default=5000, help="FULL_SYNC records per tenant")
    a = ap.parse_args()
    base = datetime(2026, 1, 1, tzinfo=UTC)
    tenants = [str(uuid.uuid4()) for _ in range(a.tenants)]
    rows = {t: [str(uuid.uuid4()) for _ in range(8)] for t in tenants}
    cols = {"title": "t", "status": "open", "priority": 2}

    with psycopg.connect(a.dsn, autocommit=True) as c:   # warm-up: views, tracking
        for t in tenants:
            for r in rows[t]:
                deliver(c, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t,
                            "record": {"id": r, "updated_at": base.isoformat(), **cols}}, a.citus)

    paths: dict[str, int] = {}
    lock = threading.Lock()

    def events(i: int) -> None:
        local: dict[str, int] = {}
        with psycopg.connect(a.dsn, autocommit=True) as c:
            for k in range(a.events // a.conns):
                t = tenants[(i + k * a.conns) % len(tenants)]
                r = rows[t][k % len(rows[t])]
                at = base + timedelta(seconds=1 + k * a.conns + i)
                p = deliver(c, {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": t,
                                "record": {"id": r, "updated_at": at.isoformat(), **cols}}, a.citus)
                local[p] = local.get(p, 0) + 1
        with lock:
            for k2, v in local.items():
                paths[k2] = paths.get(k2, 0) + v

    secs = run_threads(a.conns, events)
    done = (a.events // a.conns) * a.conns

    def full_sync(i: int) -> None:
        with psycopg.connect(a.dsn, autocommit=True) as c:
            for t in tenants[i::a.conns]:
                ids = [str(uuid.uuid4()) for _ in range(a.records)]
                at = (base + timedelta(days=30)).isoformat()
                for off in range(0, a.records, 500):
                    deliver(c, {"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": t,
                                "offset": off, "total": a.records, "sync_id": f"bench-{t}",
                                "records": [{"id": x, "updated_at": at, **cols} for x in ids[off:off + 500]]},
                            a.citus)

    fs_secs = run_threads(a.conns, full_sync)
    print(json.dumps({
        "mode": "citus" if a.citus else "single", "conns": a.conns, "tenants": a.tenants,
        "events": done, "events_per_s": round(done / secs), "paths": paths,
        "full_sync_records": a.records * a.tenants,
        "full_sync_records_per_s": round(a.records * a.tenants / fs_secs),
    }))


if __name__ == "__main__":
    main()
