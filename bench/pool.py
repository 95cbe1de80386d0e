"""Where deliveries wait for a connection: the receiver's gate (receiver.database.Gate, a
counter of the pool's size, with a FIFO of waiters, in front of the pool) against waiting in
psycopg_pool's own queue.

    python -m bench pool [--quick] [--reps N] [--dsn DSN]

One process, no HTTP: 32 concurrent tasks share an AsyncConnectionPool of 8 connections
(as the receiver under the real-time benchmark at concurrency 32), each task taking a
connection for one statement at a time, either straight from the pool or through a Gate
first. Two statements: `apply_webhook` of a real-time INSERT (what the receiver runs)
and a trivial `SELECT` (the cheapest call a pool can serve). The two ways take turns
within each repetition; the figure is this process's CPU (user + system) per call, which
is what the receiver spends in the pool and psycopg per delivery, and calls per second.
"""

from __future__ import annotations

import asyncio
import json
import random
import resource
import time
import uuid
from datetime import timedelta
from typing import Any

from psycopg_pool import AsyncConnectionPool

from bench import records
from bench.common import POOL_MAX, Cluster, Spread, table

try:
    from receiver.database import Gate
except ImportError:  # a commit before release 1.0's layout, measured with --at
    from receiver.groupcommit import Gate  # type: ignore[no-redef,attr-defined]

CONCURRENCY = 32
TENANTS = 16
STATEMENTS = {
    "apply_webhook": "SELECT optiqoflow.apply_webhook(%s::jsonb, %s)::text",
    "trivial SELECT": "SELECT length(%s) + length(%s)",
}
WAYS = ("pool queue", "gate + pool")


def _bodies(n: int, seed: int) -> list[str]:
    """n payload bodies: real-time INSERTs of new sensor readings, 16 tenants."""
    rng = random.Random(seed)
    tenants = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(TENANTS)]
    out = []
    for i in range(n):
        tenant = tenants[i % TENANTS]
        rec = records.sensor_reading(rng, tenant, records.BASE_TIME + timedelta(milliseconds=i))
        out.append(json.dumps({"type": "INSERT", "table": "sensor_readings", "tenant_id": tenant,
                               "record": rec, "occurred_at": rec["updated_at"]}))
    return out


async def _run(pool: AsyncConnectionPool[Any], query: str, bodies: list[str],
               gate: Gate | None) -> tuple[float, float]:
    """(calls per second, CPU µs per call) of this process for the bodies."""
    pending = iter(bodies)

    async def worker() -> None:
        for body in pending:
            if gate is not None:
                await gate.acquire()
            try:
                async with pool.connection() as conn:
                    cur = await conn.execute(query, (body, str(uuid.uuid4())))
                    await cur.fetchone()
            finally:
                if gate is not None:
                    gate.release()

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return len(bodies) / (t1 - t0), cpu / len(bodies) * 1e6


Samples = dict[tuple[str, str], list[tuple[float, float]]]  # (statement, way) -> (rate, cpu)


async def _measure(dsn: str, quick: bool, reps: int) -> Samples:
    n = 1_000 if quick else 3_000
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        dsn, min_size=POOL_MAX, max_size=POOL_MAX, kwargs={"autocommit": True}, open=False)
    await pool.open(wait=True)
    samples: Samples = {}
    try:
        await _run(pool, STATEMENTS["apply_webhook"], _bodies(200, 0), None)  # views, plans
        for rep in range(reps):
            for name, query in STATEMENTS.items():
                order = WAYS if rep % 2 == 0 else WAYS[::-1]
                for way in order:
                    gate = Gate(POOL_MAX, 30.0) if way == "gate + pool" else None
                    bodies = _bodies(n, seed=1 + rep * 10 + WAYS.index(way))
                    samples.setdefault((name, way), []).append(await _run(pool, query, bodies, gate))
    finally:
        await pool.close()
    return samples


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    dsn = cl.create_database("pool")
    samples = asyncio.run(_measure(dsn, quick, reps))
    rows = []
    for name in STATEMENTS:
        queue_cpu = [cpu for _, cpu in samples[name, "pool queue"]]
        gate_cpu = [cpu for _, cpu in samples[name, "gate + pool"]]
        for way in WAYS:
            rate = Spread([r for r, _ in samples[name, way]])
            cpu = Spread([c for _, c in samples[name, way]])
            rows.append([name, way, rate.fmt(0), cpu.fmt(0)])
        saved = Spread([q - g for q, g in zip(queue_cpu, gate_cpu, strict=True)])
        rows.append([name, "**saved by the gate**", "", saved.fmt(0)])
    out = [
        f"### Waiting for a connection: the gate against the pool's queue ({reps} repetitions, "
        f"{CONCURRENCY} tasks, pool of {POOL_MAX})\n",
        table(["statement", "way", "calls/s median (min-max)",
               "this process's CPU µs/call median (min-max)"], rows),
        "",
    ]
    raw = {f"{name} / {way}": v for (name, way), v in samples.items()}
    return "\n".join(out), raw
