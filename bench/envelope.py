"""The batch envelope's cost against its size, before and after a change, in one run.

    python -m bench.envelope --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--before 0008_payload_schemas] [--sizes 1000,8000] [--tenants 50] [--reps 3]

Two fresh databases on the server named by --dsn (a superuser DSN): one migrated to the
revision --before, one to head. For each size, a BATCH envelope of that many INSERT
events (spread over --tenants tenants, 8 columns each) is applied with one
`SELECT optiqoflow.apply_webhook(...)` per repetition, alternating the two databases; the
median time is reported. While the largest envelope runs at head, another connection
sends single deliveries of an unrelated tenant: their latencies are reported too (they
must keep answering). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
import uuid
from typing import Any

import psycopg
from optiqoflow_db import migrate
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

BASE = "2026-01-01T00:00:00Z"


def _dsn(admin: str, name: str) -> str:
    params = conninfo_to_dict(admin)
    params["dbname"] = name
    return make_conninfo("", **params)


def envelope(n: int, tenants: list[str]) -> str:
    events = [
        {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenants[i % len(tenants)],
         "record": {"id": str(uuid.uuid4()), "updated_at": BASE, "title": f"w{i}", "status": "open",
                    "priority": i % 5, "description": "x" * 40, "cost_eur": 12.5}}
        for i in range(n)
    ]  # fmt: skip
    return json.dumps({"type": "BATCH", "events": events})


def apply_once(dsn: str, body: str) -> tuple[float, dict[str, Any]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        t0 = time.perf_counter()
        row = c.execute("SELECT optiqoflow.apply_webhook(%s::jsonb, %s)", (body, str(uuid.uuid4()))).fetchone()
        took = time.perf_counter() - t0
    assert row is not None
    return took, row[0]


def bystander(dsn: str, stop: threading.Event, out: list[float]) -> None:
    tenant = str(uuid.uuid4())
    with psycopg.connect(dsn, autocommit=True) as c:
        while not stop.is_set():
            body = json.dumps({"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                               "record": {"id": str(uuid.uuid4()), "updated_at": BASE, "title": "b"}})
            t0 = time.perf_counter()
            (answer,) = c.execute("SELECT optiqoflow.apply_webhook(%s::jsonb)", (body,)).fetchone()  # type: ignore[misc]
            out.append(time.perf_counter() - t0)
            assert answer["status"] == "applied", answer
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--before", default="0008_payload_schemas")
    ap.add_argument("--sizes", default="1000,8000")
    ap.add_argument("--tenants", type=int, default=50)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    names = {"before": f"bench_env_before_{uuid.uuid4().hex[:6]}", "head": f"bench_env_head_{uuid.uuid4().hex[:6]}"}
    with psycopg.connect(a.dsn, autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate.upgrade(_dsn(a.dsn, names["before"]), a.before)
        migrate.upgrade(_dsn(a.dsn, names["head"]))
        tenants = [str(uuid.uuid4()) for _ in range(a.tenants)]
        # warm-up: tenants' views and writers exist before the timed envelopes
        for name in names.values():
            apply_once(_dsn(a.dsn, name), envelope(a.tenants, tenants))
        times: dict[tuple[str, int], list[float]] = {}
        for _ in range(a.reps):
            for size in sizes:
                body = envelope(size, tenants)
                for which, name in names.items():
                    took, answer = apply_once(_dsn(a.dsn, name), body)
                    assert answer["counts"] == {"applied": size}, answer["counts"]
                    times.setdefault((which, size), []).append(took)
        others: list[float] = []
        stop = threading.Event()
        t = threading.Thread(target=bystander, args=(_dsn(a.dsn, names["head"]), stop, others))
        t.start()
        took, _ = apply_once(_dsn(a.dsn, names["head"]), envelope(max(sizes), tenants))
        stop.set()
        t.join()
    finally:
        with psycopg.connect(a.dsn, autocommit=True) as admin:
            for name in names.values():
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    print(f"Batch envelope, median of {a.reps} (seconds per envelope; events over {a.tenants} tenants)\n")
    print(f"| events | {a.before} | head | head / before |")
    print("|---|---|---|---|")
    for size in sizes:
        b, h = statistics.median(times[("before", size)]), statistics.median(times[("head", size)])
        print(f"| {size:,} | {b:.2f} | {h:.2f} | {h / b:.2f}x |")
    small, large = sizes[0], sizes[-1]
    for which in ("before", "head"):
        ratio = statistics.median(times[(which, large)]) / statistics.median(times[(which, small)])
        print(f"\n{which}: {large:,} events take {ratio:.1f}x the time of {small:,}")
    others.sort()
    if others:
        p50 = others[len(others) // 2] * 1000
        worst = others[-1] * 1000
        print(f"\nWhile a {max(sizes):,}-event envelope ran at head ({took:.2f} s), an unrelated tenant's "
              f"{len(others)} single deliveries answered applied: p50 {p50:.1f} ms, worst {worst:.1f} ms.")


if __name__ == "__main__":
    main()
