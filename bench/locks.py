"""A real-time delivery's PostgreSQL cost at head against earlier revisions, in one run.

    python -m bench.locks --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--before 0013_column_grants_one_by_one[,REV...]] [--events 500] [--rounds 8]

One fresh database per revision of --before (e.g. 0013, the last one whose locks of
deliveries were advisory locks; 0001_baseline, the SQL of the pre-release history) and
one at head (rows of optiqoflow.lock_slots), on the server named by --dsn (a superuser
DSN). Each round applies --events single INSERT deliveries (new ids, one tenant, one
`SELECT optiqoflow.apply_webhook(...)` each, on one connection) to each database in turn,
the order reversed every other round; the sessions run with synchronous_commit off, so
the time is the database's work rather than the disk's flush. Reports the median and
spread of the per-round µs per delivery, and the backend's CPU time per delivery (from
/proc, when the server runs on this machine; counted in 10 ms ticks). Prints Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from optiqoflow_db import migrate
from psycopg import sql

from bench.envelope import BASE, _dsn


def backend_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) of a backend on this machine, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ)


def new_record() -> dict[str, str]:
    """A new work order (a new id) at version BASE: what each delivery here writes."""
    return {"id": str(uuid.uuid4()), "updated_at": BASE, "title": "t", "status": "open"}


def insert_body(tenant: str) -> str:
    """The body of a single INSERT delivery of a new_record() for `tenant`."""
    return json.dumps({"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                       "record": new_record()})


def round_of(conn: psycopg.Connection[tuple[object, ...]], tenant: str, n: int) -> tuple[float, float | None]:
    """n deliveries on conn: (wall µs per delivery, backend CPU µs per delivery or None)."""
    bodies = [insert_body(tenant) for _ in range(n)]
    return measured(conn, n, lambda i: conn.execute("SELECT optiqoflow.apply_webhook(%s::jsonb)", (bodies[i],)))


def measured(conn: psycopg.Connection[Any], n: int, one: Callable[[int], object]) -> tuple[float, float | None]:
    """one(0) ... one(n - 1), each a delivery on conn: (wall µs per delivery, the backend's
    CPU µs per delivery or None)."""
    cpu0 = backend_cpu(conn.info.backend_pid)
    t0 = time.perf_counter()
    for i in range(n):
        one(i)
    wall = (time.perf_counter() - t0) / n * 1e6
    cpu1 = backend_cpu(conn.info.backend_pid)
    return wall, (None if cpu0 is None or cpu1 is None else (cpu1 - cpu0) / n * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--before", default="0013_column_grants_one_by_one")
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=8)
    a = ap.parse_args()
    befores = a.before.split(",")
    names = {rev: f"bench_locks_{i}_{uuid.uuid4().hex[:6]}" for i, rev in enumerate(befores)}
    names["head"] = f"bench_locks_head_{uuid.uuid4().hex[:6]}"
    wall: dict[str, list[float]] = {k: [] for k in names}
    cpu: dict[str, list[float]] = {k: [] for k in names}
    with psycopg.connect(a.dsn, autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        for rev in befores:
            migrate.upgrade(_dsn(a.dsn, names[rev]), rev)
        migrate.upgrade(_dsn(a.dsn, names["head"]))
        tenant = str(uuid.uuid4())
        conns = {k: psycopg.connect(_dsn(a.dsn, n), autocommit=True) for k, n in names.items()}
        try:
            for c in conns.values():
                c.execute("SET synchronous_commit = off")
                round_of(c, tenant, 50)  # warm-up: the tenant's views, the writer, caches
            take_rounds(a.rounds, lambda r: list(names) if r % 2 == 0 else list(reversed(names)),
                        lambda k: round_of(conns[k], tenant, a.events), wall, cpu)
        finally:
            for c in conns.values():
                c.close()
    finally:
        with psycopg.connect(a.dsn, autocommit=True) as admin:
            for name in names.values():
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    print(f"Single INSERT deliveries, {a.rounds} rounds of {a.events} per database, alternating "
          "(synchronous_commit off)\n")
    report("revision", "head", wall, cpu)


def take_rounds(rounds: int, order: Callable[[int], list[str]],
                one: Callable[[str], tuple[float, float | None]],
                wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """`rounds` rounds of one(k) for each k in order(round), its figures appended."""
    for r in range(rounds):
        for k in order(r):
            w, u = one(k)
            wall[k].append(w)
            if u is not None:
                cpu[k].append(u)


def report(what: str, base: str, wall: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """Print the Markdown table of per-round figures: one row per key of `wall`, the CPU
    also as a ratio to `base`'s."""

    def spread(xs: list[float]) -> str:
        return f"{statistics.median(xs):.0f} ({min(xs):.0f}-{max(xs):.0f})" if xs else "n/a"

    print(f"| {what} | µs per delivery, median (min-max) | backend CPU µs per delivery | CPU ÷ {base}'s |")
    print("|---|---|---|---|")
    for k in wall:
        ratio = (f"{statistics.median(cpu[k]) / statistics.median(cpu[base]):.2f}x"
                 if cpu[k] and cpu[base] else "n/a")
        print(f"| {k} | {spread(wall[k])} | {spread(cpu[k])} | {ratio} |")


if __name__ == "__main__":
    main()
