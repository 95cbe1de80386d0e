"""A/B of the database's CPU per real-time event, for a change to the SQL functions.

    python -m bench.experiments.ab_backend_cpu DSN_A DSN_B [--group 6] [--rounds 16]

DSN_A and DSN_B: two databases migrated to head on the same server, on this machine
(for example `createdb -h 127.0.0.1 -U postgres ab_a`, then `DATABASE_URL=... optiqoflow
migrate`, the same for ab_b), one of them changed by hand to the version to try
(`psql DSN_B -f db/functions/optiqoflow/upsert_record.sql`). One backend per database
applies sensor_readings INSERT payloads through `optiqoflow.apply_webhook_group` in groups of `--group` (1: one
`apply_webhook` per event), one commit per group, in chunks of 300 events that alternate
between A and B (the order flips every round), so the machine's drift falls on both
alike. Each chunk's CPU is the backend's own, read from /proc/PID/schedstat (ns, the
server must run on this machine). Prints the median CPU per event of each and the
median of the per-round B/A ratios. An A/A run (the same functions on both) differed by
up to 4-7% on a 2-core machine (BENCHMARKS.md "Tried this session and not kept").
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import uuid
from typing import Any

import psycopg

from bench.realtime import EventSource

CHUNK = 300


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def _apply(conn: psycopg.Connection[Any], events: list[dict[str, Any]], group: int) -> None:
    for i in range(0, len(events), group):
        part = events[i : i + group]
        ids = [str(uuid.uuid4()) for _ in part]
        if group == 1:
            conn.execute("SELECT optiqoflow.apply_webhook(%s::jsonb, %s)::text",
                         (json.dumps(part[0]), ids[0]))  # fmt: skip
        else:
            conn.execute("SELECT * FROM optiqoflow.apply_webhook_group(%s::jsonb, %s::text[])",
                         (json.dumps(part), ids)).fetchall()  # fmt: skip
        conn.commit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dsn_a")
    ap.add_argument("dsn_b")
    ap.add_argument("--group", type=int, default=6, help="events per group (1: apply_webhook)")
    ap.add_argument("--rounds", type=int, default=16)
    args = ap.parse_args()
    # new tenants, so new ids, on every run: the databases can be reused
    source = EventSource([str(uuid.uuid4()) for _ in range(16)], seed=random.randrange(2**32))
    conns = {"A": psycopg.connect(args.dsn_a), "B": psycopg.connect(args.dsn_b)}
    pids = {k: int(c.info.backend_pid) for k, c in conns.items()}
    for c in conns.values():  # warm-up: writers, plans, caches
        _apply(c, [source.payload() for _ in range(300)], args.group)
    per_event: dict[str, list[float]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for k in ("A", "B") if r % 2 == 0 else ("B", "A"):
            events = [source.payload() for _ in range(CHUNK)]
            t0 = _cpu_seconds(pids[k])
            _apply(conns[k], events, args.group)
            per_event[k].append((_cpu_seconds(pids[k]) - t0) / CHUNK * 1e6)
    for k, v in per_event.items():
        print(f"{k}: median {statistics.median(v):.0f} µs/event (min {min(v):.0f}, max {max(v):.0f})")
    ratios = [b / a for a, b in zip(per_event["A"], per_event["B"], strict=True)]
    print(f"B/A: median of the rounds' ratios {statistics.median(ratios):.3f}")
    for c in conns.values():
        c.close()


if __name__ == "__main__":
    main()
