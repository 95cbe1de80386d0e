"""What a real-time delivery must cost PostgreSQL, beside what the naive receiver and ours cost.

    python -m bench.floor --dsn postgresql://postgres@127.0.0.1:5432/postgres \
        [--events 1000] [--rounds 6] [--sync on|off]

One fresh database at head on the server named by --dsn (a superuser DSN), one tenant,
one connection per kind; each round sends --events single INSERTs (new ids) through each
kind in turn, the order rotating every round:

naive   the naive receiver's statement (bench/baselines.py naive): one parameterised
        `INSERT ... ON CONFLICT (tenant_id, id) DO UPDATE` of the row.
floor   the least a delivery may write when each is answered after its own commit: the
        row (newer version only), its de-duplication key, its webhook_logs row and its
        push log row, in ONE plain SQL statement (data-modifying CTEs, no PL/pgSQL, no
        validation, no locks, no checks): what any receiver keeping the log, the keys and
        the push log pays before doing anything of its own.
ours    `SELECT optiqoflow.apply_webhook(payload, delivery_id)`.

Reports, per kind, the median and spread of the per-round µs per delivery and the
backend's CPU µs per delivery (from /proc, so the server must run on this machine;
counted in 10 ms ticks), and each kind's CPU over the naive one's. Prints Markdown.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
from optiqoflow_db import migrate
from psycopg import sql

from bench.envelope import _dsn
from bench.locks import insert_body, measured, new_record, report, take_rounds

NAIVE = (
    "INSERT INTO optiqoflow.work_orders (tenant_id, id, updated_at, title, status) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (tenant_id, id) DO UPDATE SET "
    "updated_at = EXCLUDED.updated_at, title = EXCLUDED.title, status = EXCLUDED.status"
)

FLOOR = """
WITH log AS (SELECT nextval('optiqoflow.webhook_logs_id_seq'::regclass) AS id),
key AS (
    INSERT INTO optiqoflow.delivery_keys (key, webhook_log_id)
    SELECT 'd:' || %(delivery)s, log.id FROM log
    ON CONFLICT (key) DO NOTHING
    RETURNING webhook_log_id
),
row AS (
    INSERT INTO optiqoflow.work_orders AS t (tenant_id, id, updated_at, title, status, _of_log_id)
    SELECT %(tenant)s, %(id)s, %(updated_at)s, %(title)s, %(status)s, key.webhook_log_id FROM key
    ON CONFLICT (tenant_id, id) DO UPDATE SET
        updated_at = EXCLUDED.updated_at, title = EXCLUDED.title, status = EXCLUDED.status,
        _of_log_id = EXCLUDED._of_log_id
    WHERE t.updated_at < EXCLUDED.updated_at
    RETURNING 1
),
push AS (
    INSERT INTO tenants.tenant_data_push_log (tenant_id, tables, operation, rows, webhook_log_id)
    SELECT %(tenant)s, ARRAY['work_orders'], 'INSERT', (SELECT count(*) FROM row), key.webhook_log_id
      FROM key
)
INSERT INTO optiqoflow.webhook_logs
    (id, tenant_id, source_table, target_table, operation, outcome, rows, delivery_id)
SELECT log.id, %(tenant)s, 'adhoc_work_orders', 'work_orders', 'INSERT',
       CASE WHEN EXISTS (SELECT FROM key) THEN 'applied' ELSE 'duplicate' END,
       (SELECT count(*) FROM row), %(delivery)s
  FROM log
"""

OURS = "SELECT optiqoflow.apply_webhook(%s::jsonb, %s)"

Conn = psycopg.Connection[tuple[Any, ...]]


def naive(conn: Conn, tenant: str) -> None:
    e = new_record()
    conn.execute(NAIVE, (tenant, e["id"], e["updated_at"], e["title"], e["status"]))


def floor(conn: Conn, tenant: str) -> None:
    conn.execute(FLOOR, {"tenant": tenant, "delivery": str(uuid.uuid4()), **new_record()})


def ours(conn: Conn, tenant: str) -> None:
    conn.execute(OURS, (insert_body(tenant), str(uuid.uuid4())))


KINDS: dict[str, Callable[[Conn, str], None]] = {"naive": naive, "floor": floor, "ours": ours}


def round_of(conn: Conn, kind: str, tenant: str, n: int) -> tuple[float, float | None]:
    """n deliveries of `kind` on conn: (wall µs, backend CPU µs or None) per delivery."""
    send = KINDS[kind]
    return measured(conn, n, lambda _: send(conn, tenant))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sync", choices=("on", "off"), default="off", help="synchronous_commit")
    a = ap.parse_args()
    name = f"bench_floor_{uuid.uuid4().hex[:6]}"
    wall: dict[str, list[float]] = {k: [] for k in KINDS}
    cpu: dict[str, list[float]] = {k: [] for k in KINDS}
    with psycopg.connect(a.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        dsn = _dsn(a.dsn, name)
        migrate.upgrade(dsn)
        tenant = str(uuid.uuid4())
        conns = {k: psycopg.connect(dsn, autocommit=True) for k in KINDS}
        try:
            ours(conns["ours"], tenant)  # the tenant's first push: its view, the table's columns
            for k, c in conns.items():
                c.execute(sql.SQL("SET synchronous_commit = {}").format(sql.Literal(a.sync)))
                round_of(c, k, tenant, 50)  # warm-up: plans and caches
            names = list(KINDS)
            take_rounds(a.rounds, lambda r: names[r % 3:] + names[:r % 3],
                        lambda k: round_of(conns[k], k, tenant, a.events), wall, cpu)
        finally:
            for c in conns.values():
                c.close()
    finally:
        with psycopg.connect(a.dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    print(f"Single INSERT deliveries, {a.rounds} rounds of {a.events} per kind, rotating "
          f"(synchronous_commit {a.sync})\n")
    report("kind", "naive", wall, cpu)


if __name__ == "__main__":
    main()
