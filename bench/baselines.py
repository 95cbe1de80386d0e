"""The HTTP baselines our receiver is compared with, each run as a process of its own:

    python -m bench.baselines ceiling --port P --table sensor_readings
    python -m bench.baselines naive   --port P

Environment: DATABASE_URL, OPTIQO_WEBHOOK_SECRET, OPTIQO_POOL_MIN / OPTIQO_POOL_MAX
(the same pool size as our receiver).

ceiling  The HTTP ceiling for per-event traffic: read the body, verify the HMAC (hex
         SHA-256 in x-webhook-signature, constant time), then ONE static single-row
         upsert of the payload's `record` into the target table through an
         AsyncConnectionPool: `INSERT ... SELECT FROM jsonb_populate_record($1::jsonb ->
         'record') ON CONFLICT (tenant_id, id) DO UPDATE ... WHERE newer`. No parsing in
         Python, no log, no tracking, no versions beyond the WHERE, no DDL.
naive    A receiver written the way most teams would: verify the HMAC, json.loads the
         body in Python, map the table with a dict, then one INSERT ... ON CONFLICT DO
         UPDATE per record from Python (a FULL_SYNC batch: one per record in one
         transaction). No logs, no tracking, no tombstones, no views.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from aiohttp import web
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

POOL = web.AppKey("pool", AsyncConnectionPool)
MAX_BODY = 16 * 1024 * 1024


def _verified(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    given = header.strip().lower().removeprefix("sha256=").encode("ascii", "replace")
    return hmac.compare_digest(hmac.new(secret, body, hashlib.sha256).hexdigest().encode(), given)


def _pool(dsn: str) -> AsyncConnectionPool[Any]:
    return AsyncConnectionPool(
        dsn,
        min_size=int(os.environ.get("OPTIQO_POOL_MIN", "8")),
        max_size=int(os.environ.get("OPTIQO_POOL_MAX", "8")),
        timeout=30,
        kwargs={"autocommit": True, "application_name": "bench-baseline"},
        open=False,
    )


def _columns(dsn: str, table: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = format('optiqoflow.%%I', %s::text)::regclass "
            "AND attnum > 0 AND NOT attisdropped AND attname NOT IN ('id', 'tenant_id') "
            "AND attname !~ '^_of_' ORDER BY attnum",
            (table,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def ceiling_sql(table: str, columns: list[str]) -> sql.Composed:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    return sql.SQL(
        "INSERT INTO optiqoflow.{t} AS t (tenant_id, id, {cols}) "
        "SELECT (x.p ->> 'tenant_id')::uuid, r.id, {rcols} "
        "FROM (SELECT $1::jsonb AS p) x, "
        "     jsonb_populate_record(NULL::optiqoflow.{t}, x.p -> 'record') r "
        "ON CONFLICT (tenant_id, id) DO UPDATE SET {sets} "
        "WHERE t.updated_at < EXCLUDED.updated_at"
    ).format(
        t=sql.Identifier(table),
        cols=cols,
        rcols=sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in columns),
        sets=sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns),
    )


def _app(dsn: str) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)

    async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
        pool = _pool(dsn)
        await pool.open(wait=True)
        app[POOL] = pool
        yield
        await pool.close()

    async def readyz(request: web.Request) -> web.Response:
        async with request.app[POOL].connection() as conn:
            await conn.execute("SELECT 1")
        return web.json_response({"status": "ready"})

    app.cleanup_ctx.append(pool_ctx)
    app.router.add_get("/readyz", readyz)
    return app


def ceiling_app(dsn: str, secret: bytes, table: str) -> web.Application:
    app = _app(dsn)
    query = ceiling_sql(table, _columns(dsn, table)).as_string(None)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not _verified(secret, body, request.headers.get("x-webhook-signature")):
            return web.json_response({"error": "invalid signature"}, status=401)
        async with request.app[POOL].connection() as conn:
            cur = psycopg.AsyncRawCursor(conn)
            await cur.execute(query, (body.decode(),))
        return web.json_response({"status": "applied", "rows": cur.rowcount})

    app.router.add_post("/api/optiqo-webhook", handle)
    return app


def naive_app(dsn: str, secret: bytes) -> web.Application:
    app = _app(dsn)
    with psycopg.connect(dsn) as c:
        mapping = {str(s): str(t) for s, t in c.execute(
            "SELECT source_table, target_table FROM optiqoflow.table_mappings")}
    statements: dict[tuple[str, tuple[str, ...]], sql.Composed] = {}

    def upsert(table: str, keys: tuple[str, ...]) -> sql.Composed:
        if (table, keys) not in statements:
            others = [k for k in keys if k not in ("tenant_id", "id")]
            statements[table, keys] = sql.SQL(
                "INSERT INTO optiqoflow.{t} ({cols}) VALUES ({vals}) "
                "ON CONFLICT (tenant_id, id) DO UPDATE SET {sets}"
            ).format(
                t=sql.Identifier(table),
                cols=sql.SQL(", ").join(sql.Identifier(k) for k in keys),
                vals=sql.SQL(", ").join(sql.Placeholder() for _ in keys),
                sets=sql.SQL(", ").join(
                    sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(k)) for k in others),
            )
        return statements[table, keys]

    def values(record: dict[str, Any]) -> list[Any]:
        return [Jsonb(v) if isinstance(v, dict) else v for v in record.values()]

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if not _verified(secret, body, request.headers.get("x-webhook-signature")):
            return web.json_response({"error": "invalid signature"}, status=401)
        try:
            payload = json.loads(body)
            table = mapping[payload["table"]]
            kind = str(payload["type"]).upper()
        except (ValueError, KeyError, TypeError):
            return web.json_response({"error": "bad payload"}, status=400)
        tenant = payload.get("tenant_id")
        rows = 0
        async with request.app[POOL].connection() as conn:
            if kind in ("INSERT", "UPDATE"):
                record = {"tenant_id": tenant, **payload["record"]}
                await conn.execute(upsert(table, tuple(record)), values(record))
                rows = 1
            elif kind == "DELETE":
                await conn.execute(
                    sql.SQL("DELETE FROM optiqoflow.{} WHERE tenant_id = %s AND id = %s").format(
                        sql.Identifier(table)),
                    (tenant, payload["old_record"]["id"]))
                rows = 1
            else:
                async with conn.transaction():
                    for r in payload["records"]:
                        record = {"tenant_id": tenant, **r}
                        await conn.execute(upsert(table, tuple(record)), values(record))
                        rows += 1
        return web.json_response({"status": "applied", "rows": rows})

    app.router.add_post("/api/optiqo-webhook", handle)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.baselines", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=("ceiling", "naive"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--table", default="sensor_readings", help="ceiling: the target table")
    a = ap.parse_args()
    dsn = os.environ["DATABASE_URL"]
    secret = os.environ["OPTIQO_WEBHOOK_SECRET"].encode()
    app = ceiling_app(dsn, secret, a.table) if a.kind == "ceiling" else naive_app(dsn, secret)
    web.run_app(app, host="127.0.0.1", port=a.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
