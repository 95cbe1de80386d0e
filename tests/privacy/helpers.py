"""What the privacy tests share: a DBA's connection, and the search of every table of the
database for a value (README, "Privacy")."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD

# every schema of ours, and the dashboard's
SCHEMAS = ("optiqoflow", "optiqoflow_gen", "tenants", "public")


def dba(conn: psycopg.Connection[Any], dsn: str, make_role: Any) -> psycopg.Connection[Any]:
    """A new LOGIN role that is a member of optiqoflow_admin (as DBAs are), connected
    with autocommit to the test's database."""
    name = make_role("dba")
    conn.execute(sql.SQL("GRANT optiqoflow_admin TO {}").format(sql.Identifier(name)))
    return psycopg.connect(make_conninfo(dsn, user=name, password=PASSWORD), autocommit=True)


def erase(
    c: psycopg.Connection[Any], tenant: str, reason: str = "contract ended"
) -> list[dict[str, Any]]:
    """optiqoflow.erase_tenant, called until complete, each call its own transaction;
    every answer."""
    answers: list[dict[str, Any]] = []
    for _ in range(10_000):
        row = c.execute("SELECT optiqoflow.erase_tenant(%s, %s)", (tenant, reason)).fetchone()
        assert row is not None
        answers.append(row[0])
        if row[0]["complete"]:
            return answers
    raise AssertionError("erase_tenant never completed")


def search(conn: psycopg.Connection[Any], *needles: str) -> dict[str, int]:
    """Rows of every table (partitions included) of our schemas and public holding any
    needle: in the row cast to text (case-insensitive), or in the bytes of a bytea
    column; plus relations (views ...) whose name holds one. {where: count}, only hits."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = ANY (%s) AND c.relkind IN ('r', 'm') ORDER BY 1, 2",
        (list(SCHEMAS),),
    ).fetchall()
    hits: dict[str, int] = {}
    lowered = [n.lower() for n in needles]
    for schema, table in tables:
        byteas = [
            r[0]
            for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
                " AND NOT attisdropped AND atttypid = 'bytea'::regtype",
                (f'"{schema}"."{table}"',),
            ).fetchall()
        ]
        conditions: list[sql.Composable] = []
        for n in lowered:
            conditions.append(sql.SQL("strpos(lower(t::text), {}) > 0").format(sql.Literal(n)))
            for col in byteas:
                conditions.append(
                    sql.SQL("position(convert_to({}, 'UTF8') IN t.{}) > 0").format(
                        sql.Literal(n), sql.Identifier(col)
                    )
                )
        query = sql.SQL("SELECT count(*) FROM {}.{} t WHERE {}").format(
            sql.Identifier(schema), sql.Identifier(table), sql.SQL(" OR ").join(conditions)
        )
        row = conn.execute(query).fetchone()
        assert row is not None
        if row[0]:
            hits[f"{schema}.{table}"] = row[0]
    for n in lowered:
        for (name,) in conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = ANY (%s) AND strpos(lower(c.relname), %s) > 0",
            (list(SCHEMAS), n),
        ).fetchall():
            hits[f"relation {name}"] = 1
    return hits


def marker() -> str:
    """A value nobody else sends."""
    return f"MARKER-{uuid.uuid4().hex[:12]}"


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
