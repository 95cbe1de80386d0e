"""Issue 23, point 5: erasing a big tenant while the others deliver.

    python -m bench erasure [--quick] [--reps N] [--dsn DSN]

One database, one receiver (`optiqoflow serve`, pool of 8). A tenant of ROWS rows
(1,000,000; 100,000 with --quick) in optiqoflow.sensor_readings, written by SQL (as
FULL_SYNC would leave them: its view, column tracking, some tombstones and log rows),
and 16 other tenants delivering signed real-time INSERTs of sensor readings through HTTP
at concurrency 8 (client connections), measured in windows of WINDOW seconds:

  without   the others deliver, nothing else runs (before the erasure);
  during    the same, while `optiqoflow.erase_tenant` is called until complete (the
            default 10,000 rows per call, each call its own transaction, as
            `optiqoflow erase-tenant` does) on a connection of its own;
  after     the same again, once the erasure is done (VACUUM not run).

The others' p99 latency during the erasure must stay within 2x of their p99 without it
(the median of without and after, so drift on a shared machine counts on both sides).
Latency is measured by the client, request sent to answer read. The machine is shared:
other processes' CPU use shows up in both phases alike only if it is steady, so the
report gives every window.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import uuid
from typing import Any

import psycopg

from bench.common import Cluster, ours, percentile, run_load, table, verdict
from bench.realtime import EventSource

TENANTS = 16
CONCURRENCY = 8
WINDOW = 5.0  # seconds per load window
TOMBSTONES = 10_000
LOG_ROWS = 20_000


def rows(quick: bool) -> int:
    return 100_000 if quick else 1_000_000


def load_tenant(dsn: str, tenant: str, n: int) -> float:
    """The big tenant's data, written by SQL; seconds taken."""
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(
            "INSERT INTO optiqoflow.sensor_readings (id, tenant_id, sensor_id, room_id, measured_at,"
            " visitor_count, occupancy_pct, battery_pct, created_at, updated_at)"
            " SELECT gen_random_uuid(), %s, 'snr-' || (i %% 400), gen_random_uuid(),"
            "        '2026-01-01'::timestamptz + i * interval '1 second', i %% 50, (i %% 100),"
            "        (i %% 100), '2026-01-01', '2026-01-01'::timestamptz + i * interval '1 second'"
            "   FROM generate_series(1, %s) i",
            (tenant, n),
        )
        c.execute(
            "INSERT INTO optiqoflow.tombstones (tenant_id, target_table, id, version)"
            " SELECT %s, 'sensor_readings', gen_random_uuid(), now() FROM generate_series(1, %s)",
            (tenant, TOMBSTONES),
        )
        c.execute(
            "INSERT INTO optiqoflow.webhook_logs (tenant_id, source_table, target_table, operation,"
            " outcome, rows, delivery_id, event_id)"
            " SELECT %s, 'sensor_readings', 'sensor_readings', 'INSERT', 'applied', 1,"
            "        'bench-' || i, 'ev-' || i FROM generate_series(1, %s) i",
            (tenant, LOG_ROWS),
        )
        c.execute(
            "INSERT INTO tenants.tenant_column_access (tenant_id, table_name, columns)"
            " VALUES (%s, 'sensor_readings', '{battery_pct,created_at,measured_at,occupancy_pct,"
            "room_id,sensor_id,updated_at,visitor_count}')",
            (tenant,),
        )
        c.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,))
        c.execute("VACUUM ANALYZE optiqoflow.sensor_readings")
    return time.perf_counter() - t0


def window(url: str, src: EventSource) -> list[float]:
    """One WINDOW of the others' load; the latencies (s) of their answers."""
    result = asyncio.run(run_load(url, src.make(20_000), CONCURRENCY, WINDOW))
    assert result.ok == result.sent, result.first_error
    return result.latencies


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    dsn = cl.create_database("erasure")
    big = str(uuid.uuid4())
    n = rows(quick)
    loaded = load_tenant(dsn, big, n)
    src = EventSource([str(uuid.uuid4()) for _ in range(TENANTS)], seed=11)
    server = ours(dsn, cl.workdir, "erasure")
    phases: dict[str, list[list[float]]] = {"without": [], "during": [], "after": []}
    erasure: dict[str, Any] = {}
    with server:
        asyncio.run(run_load(server.url, src.make(400), CONCURRENCY, 120))  # warm-up: views, pools
        windows = max(3, reps * 2)
        for _ in range(windows):
            phases["without"].append(window(server.url, src))

        def erase() -> None:
            t0 = time.perf_counter()
            calls, longest = 0, 0.0
            with psycopg.connect(dsn, autocommit=True) as c:
                while True:
                    s = time.perf_counter()
                    row = c.execute("SELECT optiqoflow.erase_tenant(%s, 'bench')", (big,)).fetchone()
                    longest = max(longest, time.perf_counter() - s)
                    calls += 1
                    assert row is not None
                    if row[0]["complete"]:
                        erasure["receipt"] = row[0]
                        break
            erasure.update(seconds=time.perf_counter() - t0, calls=calls, longest_call=longest)

        worker = threading.Thread(target=erase)
        worker.start()
        while worker.is_alive():
            phases["during"].append(window(server.url, src))
        worker.join()
        for _ in range(windows):
            phases["after"].append(window(server.url, src))

    flat = {k: [x for w in v for x in w] for k, v in phases.items()}
    p99 = {k: percentile(v, 99) * 1000 for k, v in flat.items()}
    reference = statistics.median([p99["without"], p99["after"]])
    ratio = p99["during"] / reference if reference else float("nan")
    removed = erasure["receipt"]["removed"]
    out = [
        "## Erasing a big tenant while the others deliver (issue 23, point 5)\n",
        f"A tenant of **{n:,}** rows in optiqoflow.sensor_readings (plus {TOMBSTONES:,} tombstones, "
        f"{LOG_ROWS:,} log rows, its view and column tracking; loaded by SQL in {loaded:.0f} s), "
        f"erased by `optiqoflow.erase_tenant` called until complete (10,000 rows per call) while "
        f"{TENANTS} other tenants deliver real-time INSERTs through HTTP at concurrency {CONCURRENCY}, "
        f"in windows of {WINDOW:g} s.\n",
        f"Erasure: **{erasure['seconds']:.1f} s**, {erasure['calls']} calls, longest call "
        f"{erasure['longest_call'] * 1000:.0f} ms; removed {removed['optiqoflow.sensor_readings']:,} rows, "
        f"{removed['optiqoflow.tombstones']:,} tombstones; log rows kept without tenant: "
        f"{erasure['receipt']['scrubbed'].get('optiqoflow.webhook_logs', 0):,}.\n",
        table(
            ["phase", "windows", "deliveries", "p50 ms", "p99 ms", "max ms"],
            [
                [k, len(phases[k]), len(v), f"{percentile(v, 50) * 1000:.1f}", f"{p99[k]:.1f}",
                 f"{max(v) * 1000:.1f}" if v else "-"]
                for k, v in flat.items()
            ],
        ),
        "",
        table(
            ["p99 during ÷ p99 without (median of before and after)", "≤ 2x"],
            [[f"{ratio:.2f}x", verdict(ratio <= 2.0)]],
        ),
        "",
        "p99 per window (ms): "
        + "; ".join(
            f"{k} " + ", ".join(f"{percentile(w, 99) * 1000:.0f}" for w in v) for k, v in phases.items()
        ),
    ]
    return "\n".join(out) + "\n", {
        "rows": n, "p99_ms": p99, "ratio": ratio, "erasure": {k: v for k, v in erasure.items() if k != "receipt"},
        "removed": removed,
    }  # fmt: skip
