"""What the per-tenant views cost with many tenants: 21 views per tenant, at 1,000 and
5,000 tenants (21,000 and 105,000 views), each level in a fresh database.

    python -m bench.scale [--dsn DSN] [--tenants 1000,5000] [--out FILE.md]
                          [--setup regenerate|push] [--postgrest-source SchemaCache.hs] [--keep]

Without --dsn an embedded PostgreSQL 18 is started in a temporary folder (bench/common.py);
--dsn names a superuser DSN of an existing server, where databases `scale_<pid>_<n>` are
created and dropped. For each level:

- setup: a fresh database migrated to head, then the tenants' views, timed. `--setup
  push` makes each tenant the way a sender does: one `optiqoflow.apply_webhook` call per
  tenant with a BATCH of 21 INSERTs, one per mapped source table, each record carrying
  every column; each INSERT creates the tenant's view of its table. That takes longer per
  tenant the more views there are (see the report), so the default, `--setup
  regenerate`, writes the tracking rows those pushes leave and calls
  `tenants.regenerate_tenant_views(tenant)` (the function each first push calls) once
  per tenant: the same views, once per tenant instead of once per table.
- catalog: rows and on-disk size of the catalogs the views live in (pg_class,
  pg_attribute, pg_type, pg_depend, pg_rewrite, pg_description; pg_shdepend is shared),
  every pg_catalog relation of the database together, and the database.
- reads: one tenant view read on a fresh connection (cold caches) and warm (median).
- first push: a brand-new tenant's first INSERT (one table: creates one view), a new
  tenant's first BATCH of 21 INSERTs (creates its 21 views), against an INSERT of a known
  tenant (no DDL); a push that adds a column to a table (schema evolution) last.
- PostgREST-style introspection: the catalog queries PostgREST runs when it (re)loads its
  schema cache, with `tenants` as the exposed schema, then with `public, optiqoflow`
  (the same without the views), on a fresh connection each; wall time, rows, and the
  backend's memory afterwards. The queries here read the same catalogs the same way as
  PostgREST's (`src/PostgREST/SchemaCache.hs`: every relation with its columns, keys
  and updatability; every exposed view's rewrite rule parsed for the key columns it
  passes through; the foreign keys), written for this bench. `--postgrest-source FILE`
  also runs PostgREST's own queries read from that file of a PostgREST checkout.
- `pg_dump --schema-only`: wall time and size of its output (the pg_dump of the
  server's major version: /usr/lib/postgresql/N/bin, else the embedded binaries).
- migration: `optiqoflow migrate` at head (nothing to do; the command, Python start-up
  included), the newest revision downgraded and upgraded back (deploying a release onto
  a populated database), and `db/migrations/ownership.sql` alone (the step every revision
  ends with, which walks every view).

Prints Markdown; --out also writes it to a file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from optiqoflow_db import migrate, migrations_dir
from psycopg import sql

from bench import common

EXPOSED = ["tenants"]
WITHOUT_VIEWS = ["public", "optiqoflow"]
EXTRA_SEARCH_PATH = ["public"]  # PostgREST's db-extra-search-path default
PUSH_SAMPLES = 7
AT = "2026-11-26T10:00:00Z"


# --- records -----------------------------------------------------------------------------


def table_shapes(conn: psycopg.Connection[Any]) -> dict[str, list[tuple[str, str]]]:
    """source table -> [(column, PostgreSQL type)], the columns a sender may push."""
    shapes: dict[str, list[tuple[str, str]]] = {}
    rows = conn.execute("""
        SELECT m.source_table, a.attname::text, format_type(a.atttypid, a.atttypmod)
          FROM optiqoflow.table_mappings m
          JOIN pg_attribute a ON a.attrelid = format('optiqoflow.%I', m.target_table)::regclass
         WHERE a.attnum > 0 AND NOT a.attisdropped AND a.attname !~ '^_of_'
         ORDER BY m.source_table, a.attnum""").fetchall()
    for source, column, typ in rows:
        shapes.setdefault(str(source), []).append((str(column), str(typ)))
    return shapes


def _value(column: str, typ: str, tenant: str, n: int) -> Any:
    if column == "tenant_id":
        return tenant
    if column == "id" or typ == "uuid":
        return str(uuid.uuid4())
    if typ.startswith("timestamp"):
        return AT
    if typ == "date":
        return "2026-11-26"
    if typ.endswith("[]"):
        return [1, 2] if typ.startswith(("smallint", "integer")) else ["a", "b"]
    if typ in ("smallint", "integer", "bigint"):
        return 1 + n % 5
    if typ.startswith("numeric") or typ == "double precision":
        return 12.5
    if typ == "boolean":
        return True
    if typ == "jsonb":
        return {"k": n}
    return f"{column} {n}"


def record(shape: list[tuple[str, str]], tenant: str, n: int) -> dict[str, Any]:
    """A record with every column of the table, each non-null: the view gets them all."""
    return {c: _value(c, t, tenant, n) for c, t in shape}


def first_batch(shapes: dict[str, list[tuple[str, str]]], tenant: str) -> str:
    """A BATCH envelope with one INSERT per source table: the tenant's first push."""
    events = [{"type": "INSERT", "table": s, "record": record(shape, tenant, i)}
              for i, (s, shape) in enumerate(sorted(shapes.items()))]
    return json.dumps({"type": "BATCH", "tenant_id": tenant, "events": events})


def apply(conn: psycopg.Connection[Any], payload: str) -> tuple[float, dict[str, Any]]:
    """One `SELECT optiqoflow.apply_webhook(...)` in its own transaction; (seconds, answer)."""
    t0 = time.perf_counter()
    row = conn.execute("SELECT optiqoflow.apply_webhook(%s::jsonb)", (payload,)).fetchone()
    took = time.perf_counter() - t0
    assert row is not None
    answer: dict[str, Any] = row[0]
    return took, answer


def _check(answer: dict[str, Any], events: int | None = None) -> None:
    if answer.get("status") != "applied" or (events is not None and answer.get("counts") != {"applied": events}):
        raise RuntimeError(f"push not applied: {json.dumps(answer)[:500]}")


# --- setup -------------------------------------------------------------------------------


def create_database(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return common.dsn_with_db(admin, name)


def drop_database(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


TRACK_ALL_COLUMNS = """
INSERT INTO tenants.tenant_column_access (tenant_id, table_name, columns, updated_at)
SELECT t::uuid, m.target_table,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = format('optiqoflow.%%I', m.target_table)::regclass
                AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attname NOT IN ('id', 'tenant_id') AND a.attname !~ '^_of_'
              ORDER BY a.attname), now()
  FROM unnest(%s::text[]) t, optiqoflow.table_mappings m
"""


def make_tenants(dsn: str, n: int, how: str) -> dict[str, Any]:
    """n tenants with 21 views each; timed. `push`: each tenant's first push, one BATCH
    of 21 INSERTs (every column) per tenant, as a sender makes a tenant; each INSERT
    tracks its columns and calls tenants.regenerate_tenant_views(tenant, table).
    `regenerate`: the tracking rows those pushes leave, written in one statement, then
    one tenants.regenerate_tenant_views(tenant) per tenant (the same function building
    the same views, once per tenant instead of once per table; no data rows)."""
    per: list[float] = []
    t0 = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        shapes = table_shapes(conn)
        tenants = [str(uuid.uuid4()) for _ in range(n)]
        if how == "regenerate" and tenants:
            conn.execute(TRACK_ALL_COLUMNS, (tenants,))
        for i, tenant in enumerate(tenants):
            if how == "push":
                took, answer = apply(conn, first_batch(shapes, tenant))
                _check(answer, len(shapes))
            else:
                s = time.perf_counter()
                row = conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,)).fetchone()
                took = time.perf_counter() - s
                if not row or row[0] != len(shapes):
                    raise RuntimeError(f"regenerate_tenant_views({tenant}) = {row}")
            per.append(took)
            if (i + 1) % 500 == 0:
                print(f"  scale: {i + 1:,} tenants in {time.perf_counter() - t0:.0f} s "
                      f"(last: {took * 1000:.0f} ms)", flush=True)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"seconds": seconds, "tables": len(shapes), "how": how}
    if per:
        tenth = max(1, len(per) // 10)
        out |= {"median_ms": statistics.median(per) * 1000,
                "first_tenth_ms": statistics.median(per[:tenth]) * 1000,
                "last_tenth_ms": statistics.median(per[-tenth:]) * 1000}
    return out


# --- catalog -----------------------------------------------------------------------------

CATALOGS = ["pg_class", "pg_attribute", "pg_type", "pg_depend", "pg_rewrite", "pg_description",
            "pg_shdepend"]


def catalog(dsn: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as c:
        out: dict[str, Any] = {}
        row = c.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'tenants'::regnamespace "
                        "AND relkind = 'v'").fetchone()
        out["views"] = int(row[0]) if row else 0
        for cat in CATALOGS:
            where = " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())" \
                if cat == "pg_shdepend" else ""
            row = c.execute(sql.SQL("SELECT count(*), pg_total_relation_size({}) FROM {}{}").format(
                sql.Literal(f"pg_catalog.{cat}"), sql.Identifier("pg_catalog", cat), sql.SQL(where))).fetchone()
            assert row is not None
            out[cat] = {"rows": int(row[0]), "bytes": int(row[1])}
        row = c.execute("""
            SELECT coalesce(sum(pg_total_relation_size(c.oid)) FILTER (WHERE NOT c.relisshared), 0),
                   pg_database_size(current_database())
              FROM pg_class c
             WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind IN ('r', 't')""").fetchone()
        assert row is not None
        out["pg_catalog_bytes"], out["database_bytes"] = int(row[0]), int(row[1])
    return out


# --- reads -------------------------------------------------------------------------------


def reads(dsn: str, tenant: str) -> dict[str, float]:
    view = sql.Identifier("tenants", f"{tenant}_work_orders")
    query = sql.SQL("SELECT id, title, status, updated_at FROM {} ORDER BY updated_at DESC LIMIT 20").format(view)
    cold: list[float] = []
    for _ in range(5):
        with psycopg.connect(dsn, autocommit=True) as c:
            t0 = time.perf_counter()
            c.execute(query).fetchall()
            cold.append(time.perf_counter() - t0)
    warm: list[float] = []
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as c:
        for _ in range(20):
            c.execute(query).fetchall()
        for _ in range(200):
            t0 = time.perf_counter()
            c.execute(query).fetchall()
            warm.append(time.perf_counter() - t0)
    return {"cold_ms": statistics.median(cold) * 1000, "warm_ms": statistics.median(warm) * 1000}


# --- pushes ------------------------------------------------------------------------------


def pushes(dsn: str, known: str) -> dict[str, list[float]]:
    """Seconds per push: a new tenant's first INSERT, a known tenant's INSERT, a new
    tenant's first BATCH of 21, and a push that adds a column (last: it alters a table)."""
    out: dict[str, list[float]] = {"first_insert": [], "known_insert": [], "first_batch": [],
                                   "new_column": []}
    with psycopg.connect(dsn, autocommit=True) as conn:
        shapes = table_shapes(conn)
        wo = shapes["adhoc_work_orders"]

        def insert(tenant: str, extra: dict[str, Any] | None = None) -> tuple[float, dict[str, Any]]:
            rec = record(wo, tenant, 1) | (extra or {})
            return apply(conn, json.dumps({"type": "INSERT", "table": "adhoc_work_orders",
                                           "tenant_id": tenant, "record": rec}))

        insert(known)  # warm: the writer's plan is cached in this session, as in a receiver
        for _ in range(PUSH_SAMPLES):
            took, answer = insert(str(uuid.uuid4()))
            _check(answer)
            out["first_insert"].append(took)
            took, answer = insert(known)
            _check(answer)
            out["known_insert"].append(took)
        for _ in range(max(3, PUSH_SAMPLES // 2)):
            took, answer = apply(conn, first_batch(shapes, str(uuid.uuid4())))
            _check(answer, len(shapes))
            out["first_batch"].append(took)
        for i in range(3):
            took, answer = insert(known, {f"scale_extra_{os.getpid()}_{i}": "x"})
            _check(answer)
            assert answer.get("added_columns"), answer
            out["new_column"].append(took)
    return out


# --- PostgREST-style introspection ---------------------------------------------------------

# Every relation of every schema but the system ones, with its primary key and whether a
# view can take INSERT / UPDATE / DELETE (pg_relation_is_updatable opens each view), and
# for the exposed schemas its columns: name, comment, nullability, type (a domain's base
# type), default (an identity column's sequence), enum labels.
RELATIONS_SQL = r"""
WITH cols AS (
    SELECT a.attrelid AS relid,
           array_agg(ROW(a.attname::text, dsc.description,
                         NOT (a.attnotnull OR (t.typtype = 'd' AND t.typnotnull)),
                         format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), a.atttypmod),
                         format_type(a.atttypid, a.atttypmod),
                         CASE WHEN a.attidentity = 'd' THEN 'nextval(' || quote_literal(seq.objid::regclass::text) || ')'
                              WHEN a.attgenerated = 's' THEN NULL
                              ELSE coalesce(pg_get_expr(def.adbin, def.adrelid),
                                            pg_get_expr(t.typdefaultbin, 0)) END,
                         (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e
                           WHERE e.enumtypid = coalesce(nullif(t.typbasetype, 0), a.atttypid)))
                     ORDER BY a.attnum) AS columns
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      JOIN pg_type t ON t.oid = a.atttypid
      LEFT JOIN pg_description dsc
             ON dsc.objoid = a.attrelid AND dsc.objsubid = a.attnum AND dsc.classoid = 'pg_class'::regclass
      LEFT JOIN pg_attrdef def ON def.adrelid = a.attrelid AND def.adnum = a.attnum
      LEFT JOIN pg_depend seq
             ON seq.refobjid = a.attrelid AND seq.refobjsubid = a.attnum AND seq.deptype = 'i'
     WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'f', 'm', 'p')
       AND NOT pg_is_other_temp_schema(c.relnamespace)
       AND c.relnamespace = ANY (%(schemas)s::text[]::regnamespace[])
     GROUP BY a.attrelid
), pks AS (
    SELECT con.conrelid AS relid, array_agg(a.attname::text ORDER BY a.attname) AS cols
      FROM pg_constraint con
      JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = ANY (con.conkey)
     WHERE con.contype = 'p' AND NOT a.attisdropped
     GROUP BY con.conrelid
)
SELECT n.nspname, c.relname, d.description, c.relkind IN ('v', 'm') AS is_view,
       c.relkind IN ('r', 'p') OR (c.relkind IN ('v', 'f') AND pg_relation_is_updatable(c.oid, true) & 8 = 8),
       c.relkind IN ('r', 'p') OR (c.relkind IN ('v', 'f') AND pg_relation_is_updatable(c.oid, true) & 4 = 4),
       c.relkind IN ('r', 'p') OR (c.relkind IN ('v', 'f') AND pg_relation_is_updatable(c.oid, true) & 16 = 16),
       coalesce(pks.cols, '{}'), coalesce(cols.columns, '{}')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_description d ON d.objoid = c.oid AND d.objsubid = 0 AND d.classoid = 'pg_class'::regclass
  LEFT JOIN pks ON pks.relid = c.oid
  LEFT JOIN cols ON cols.relid = c.oid
 WHERE c.relkind IN ('v', 'r', 'm', 'f', 'p') AND NOT c.relispartition
   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
 ORDER BY 1, 2
"""

# Which primary / foreign key columns each exposed view passes through: every view's
# rewrite rule (pg_rewrite.ev_action, a pg_node_tree) read as text for its target
# entries' (resno, resorigtbl, resorigcol), followed through views of views, matched
# with the key columns of pg_constraint; keys whose every column the view shows.
VIEW_KEYS_SQL = r"""
WITH RECURSIVE keys AS (
    SELECT con.conname, con.contype::text AS kind, cardinality(con.conkey) AS ncol,
           con.conrelid AS tbl, k.col, k.ord
      FROM pg_constraint con, unnest(con.conkey) WITH ORDINALITY AS k(col, ord)
     WHERE con.contype IN ('p', 'f')
    UNION
    SELECT con.conname, 'f_ref', cardinality(con.confkey), con.confrelid, k.col, k.ord
      FROM pg_constraint con, unnest(con.confkey) WITH ORDINALITY AS k(col, ord)
     WHERE con.contype = 'f'
), views AS (
    SELECT c.oid AS view_id, c.relnamespace AS nsp, r.ev_action::text AS tree
      FROM pg_class c JOIN pg_rewrite r ON r.ev_class = c.oid
     WHERE c.relkind IN ('v', 'm')
       AND c.relnamespace = ANY (%(schemas)s::text[]::regnamespace[] || %(extra)s::text[]::regnamespace[])
), entries AS (
    SELECT v.view_id, v.nsp, m[1]::int AS view_col, m[2]::oid AS src_tbl, m[3]::int AS src_col
      FROM views v,
           regexp_matches(v.tree, ':resno (\d+) :resname \S+ :ressortgroupref \d+ :resorigtbl (\d+) :resorigcol (\d+)', 'g') AS m
), chain (view_id, view_col, src_tbl, src_col, path) AS (
    SELECT view_id, view_col, src_tbl, src_col, ARRAY[src_tbl] FROM entries
     WHERE nsp = ANY (%(schemas)s::text[]::regnamespace[])
    UNION ALL
    SELECT ch.view_id, ch.view_col, e.src_tbl, e.src_col, ch.path || e.src_tbl
      FROM chain ch JOIN entries e ON e.view_id = ch.src_tbl AND e.view_col = ch.src_col
     WHERE e.src_tbl <> ALL (ch.path)
), refs AS (
    SELECT ch.view_id, ch.src_tbl, ch.src_col, array_agg(va.attname::text) AS view_cols
      FROM chain ch JOIN pg_attribute va ON va.attrelid = ch.view_id AND va.attnum = ch.view_col
     GROUP BY ch.view_id, ch.src_tbl, ch.src_col
)
SELECT tn.nspname, t.relname, vn.nspname, v.relname, k.conname, k.kind,
       array_agg(ROW(ta.attname::text, refs.view_cols) ORDER BY k.ord)
  FROM refs
  JOIN keys k ON k.tbl = refs.src_tbl AND k.col = refs.src_col
  JOIN pg_class t ON t.oid = refs.src_tbl
  JOIN pg_namespace tn ON tn.oid = t.relnamespace
  JOIN pg_attribute ta ON ta.attrelid = t.oid AND ta.attnum = refs.src_col
  JOIN pg_class v ON v.oid = refs.view_id
  JOIN pg_namespace vn ON vn.oid = v.relnamespace
 GROUP BY tn.nspname, t.relname, vn.nspname, v.relname, k.conname, k.kind, k.ncol
HAVING count(*) = k.ncol
"""

# Every foreign key, with its columns and whether it is also a primary key / unique (1:1).
FOREIGN_KEYS_SQL = r"""
WITH uniques AS (
    SELECT conrelid, array_agg(k ORDER BY k) AS cols
      FROM pg_constraint, unnest(conkey) AS k
     WHERE contype IN ('p', 'u') AND connamespace <> 'pg_catalog'::regnamespace
     GROUP BY oid, conrelid
)
SELECT n1.nspname, tab.relname, n2.nspname, other.relname, con.conrelid = con.confrelid,
       con.conname, cols.pairs, cols.nums IN (SELECT u.cols FROM uniques u WHERE u.conrelid = con.conrelid)
  FROM pg_constraint con
  JOIN LATERAL (
      SELECT array_agg(ROW(a.attname, r.attname) ORDER BY o) AS pairs, array_agg(a.attnum ORDER BY a.attnum) AS nums
        FROM unnest(con.conkey, con.confkey) WITH ORDINALITY AS x(col, ref, o)
        JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = x.col
        JOIN pg_attribute r ON r.attrelid = con.confrelid AND r.attnum = x.ref) cols ON true
  JOIN pg_namespace n1 ON n1.oid = con.connamespace
  JOIN pg_class tab ON tab.oid = con.conrelid
  JOIN pg_class other ON other.oid = con.confrelid
  JOIN pg_namespace n2 ON n2.oid = other.relnamespace
 WHERE con.contype = 'f' AND con.conparentid = 0
 ORDER BY con.conrelid, con.conname
"""

OWN_QUERIES = {"relations and columns": RELATIONS_SQL, "view key dependencies": VIEW_KEYS_SQL,
               "foreign keys": FOREIGN_KEYS_SQL}


def postgrest_queries(path: Path, server_major: int) -> dict[str, str]:
    """PostgREST's own schema-cache queries, read from its SchemaCache.hs at run time
    (tables, view key dependencies, foreign keys), with its `$1` / `$2` as our named
    parameters. Nothing of PostgREST is kept in this repository."""
    text = path.read_text()

    def block(name: str) -> str:
        m = re.search(rf"^{name}\b.*?\[trimming\|(.*?)\|\]", text, re.S | re.M)
        if not m:
            raise SystemExit(f"{path}: no query {name}")
        return m.group(1)

    base = re.search(r"^baseTypesCte\b.*?\|\s*pgVer >= pgVersion170 = \[trimming\|(.*?)\|\]"
                     r".*?\|\s*otherwise = \[trimming\|(.*?)\|\]", text, re.S | re.M)
    if not base:
        raise SystemExit(f"{path}: no baseTypesCte")
    base_cte = base.group(1) if server_major >= 17 else base.group(2)

    def adapt(q: str) -> str:
        q = q.replace("$baseCte", base_cte).replace("%", "%%").replace("$$", "$")
        return q.replace("$1", "%(schemas)s::text[]").replace("$2", "%(extra)s::text[]")

    return {"relations and columns": adapt(block("tablesSqlQuery")),
            "view key dependencies": adapt(block("allViewsKeyDependencies")),
            "foreign keys": adapt(block("allM2OandO2ORels"))}


def introspect(dsn: str, queries: dict[str, str], schemas: list[str], reps: int = 3,
               budget: float = 60.0) -> dict[str, Any]:
    """The queries in one transaction with an empty search_path, as PostgREST runs them,
    on a fresh connection each repetition (fewer than `reps` once `budget` seconds are
    spent); seconds per query (median), rows, and the backend's memory after the last."""
    params = {"schemas": [f'"{s}"' for s in schemas], "extra": [f'"{s}"' for s in EXTRA_SEARCH_PATH]}
    times: dict[str, list[float]] = {k: [] for k in queries}
    totals: list[float] = []
    rows: dict[str, int] = {}
    memory = {}
    start = time.perf_counter()
    for _ in range(reps):
        if totals and time.perf_counter() - start > budget:
            break
        with psycopg.connect(dsn) as c:
            t_all = time.perf_counter()
            c.execute("SET LOCAL search_path = ''")
            for name, q in queries.items():
                t0 = time.perf_counter()
                rows[name] = len(c.execute(q, params).fetchall())
                times[name].append(time.perf_counter() - t0)
            c.commit()
            totals.append(time.perf_counter() - t_all)
            row = c.execute("SELECT sum(total_bytes), sum(total_bytes) FILTER (WHERE name = 'CacheMemoryContext') "
                            "FROM pg_backend_memory_contexts").fetchone()
            assert row is not None
            memory = {"backend_bytes": int(row[0] or 0), "cache_bytes": int(row[1] or 0)}
    return {"seconds": {k: statistics.median(v) for k, v in times.items()},
            "total": statistics.median(totals), "rows": rows, "reps": len(totals)} | memory


# --- pg_dump -----------------------------------------------------------------------------


def pg_dump_binary(server_major: int) -> str:
    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin/pg_dump")]
    with contextlib.suppress(Exception):
        from operations.embedded import bin_dir
        candidates.append(bin_dir() / "pg_dump")
    for c in candidates:
        if c.exists():
            out = subprocess.run([str(c), "--version"], capture_output=True, text=True).stdout
            m = re.search(r"(\d+)\.", out)
            if m and int(m.group(1)) >= server_major:
                return str(c)
    found = shutil.which("pg_dump")
    if not found:
        raise SystemExit("no pg_dump for this server")
    return found


def dump(dsn: str, binary: str, workdir: Path, reps: int = 3) -> dict[str, Any]:
    out = workdir / "schema.sql"
    times: list[float] = []
    size = 0
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.run([binary, "--schema-only", "-f", str(out), "-d", dsn],
                           capture_output=True, text=True)
        took = time.perf_counter() - t0
        if p.returncode != 0:
            lines = [ln.removeprefix("pg_dump: ") for ln in p.stderr.splitlines()
                     if ln.startswith(("pg_dump: error:", "pg_dump: detail:", "pg_dump: hint:"))]
            return {"error": " ".join(lines) or f"exit {p.returncode}", "seconds": took}
        times.append(took)
        size = out.stat().st_size
        out.unlink()
        if took > 120:
            break
    return {"seconds": statistics.median(times), "bytes": size, "reps": len(times)}


# --- migration ---------------------------------------------------------------------------


def migration(dsn: str) -> dict[str, Any]:
    head = migrate.head_revision()
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("postgresql://unused"))
    rev = script.get_revision(head)
    assert rev is not None
    previous = str(rev.down_revision)
    out: dict[str, Any] = {"head": head, "previous": previous}
    env = os.environ | {"DATABASE_URL": dsn}
    cli = [sys.executable, "-m", "operations.cli", "migrate"]
    noop = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(cli, env=env, cwd=common.REPO, check=True, capture_output=True)
        noop.append(time.perf_counter() - t0)
    out["noop_cli"] = statistics.median(noop)
    t0 = time.perf_counter()
    migrate.upgrade(dsn)
    out["noop_inprocess"] = time.perf_counter() - t0
    down, up = [], []
    for _ in range(2):
        t0 = time.perf_counter()
        migrate.downgrade(dsn, previous)
        down.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        migrate.upgrade(dsn)
        up.append(time.perf_counter() - t0)
    out["down"], out["up"] = statistics.median(down), statistics.median(up)
    own = []
    with psycopg.connect(dsn) as c:
        for _ in range(3):
            t0 = time.perf_counter()
            c.execute((migrations_dir() / "ownership.sql").read_text())
            c.commit()
            own.append(time.perf_counter() - t0)
    out["ownership"] = statistics.median(own)
    return out


# --- the run -----------------------------------------------------------------------------


def level(admin: str, n: int, label: str, workdir: Path, pgrst: dict[str, str] | None,
          server_major: int, keep: bool, how: str) -> dict[str, Any]:
    name = f"scale_{os.getpid()}_{label}"
    dsn = create_database(admin, name)
    try:
        r: dict[str, Any] = {"tenants": n, "database": name}
        t0 = time.perf_counter()
        migrate.upgrade(dsn)
        r["fresh_migrate"] = time.perf_counter() - t0
        print(f"  scale: {label}: migrated in {r['fresh_migrate']:.1f} s", flush=True)
        r["setup"] = make_tenants(dsn, n, how)
        known = str(uuid.uuid4())
        with psycopg.connect(dsn, autocommit=True) as c:
            _check(apply(c, first_batch(table_shapes(c), known))[1], None)
            t0 = time.perf_counter()
            c.execute("VACUUM ANALYZE")
            r["vacuum"] = time.perf_counter() - t0
            c.execute("CHECKPOINT")
        print(f"  scale: {label}: {n:,} tenants in {r['setup']['seconds']:.0f} s", flush=True)
        r["catalog"] = catalog(dsn)
        r["reads"] = reads(dsn, known)
        r["introspection"] = introspect(dsn, OWN_QUERIES, EXPOSED)
        r["introspection_without_views"] = introspect(dsn, OWN_QUERIES, WITHOUT_VIEWS)
        if pgrst:
            r["postgrest"] = introspect(dsn, pgrst, EXPOSED)
            r["postgrest_without_views"] = introspect(dsn, pgrst, WITHOUT_VIEWS)
        print(f"  scale: {label}: introspection {r['introspection']['total']:.1f} s", flush=True)
        r["dump"] = dump(dsn, pg_dump_binary(server_major), workdir)
        print(f"  scale: {label}: pg_dump {r['dump'].get('seconds', 0):.1f} s", flush=True)
        r["migration"] = migration(dsn)
        r["pushes"] = pushes(dsn, known)
        print(f"  scale: {label}: done", flush=True)
        return r
    finally:
        if not keep:
            drop_database(admin, name)


def _mib(b: int) -> str:
    return f"{b / 2**20:,.1f} MiB"


def _ms(seconds: list[float] | float) -> str:
    if isinstance(seconds, list):
        return f"{statistics.median(seconds) * 1000:,.1f} ({min(seconds) * 1000:,.1f}-{max(seconds) * 1000:,.1f})"
    return f"{seconds * 1000:,.1f}"


def report(levels: list[dict[str, Any]], pgrst: bool) -> str:
    cols = [f"{lv['tenants']:,} tenants" for lv in levels]
    out: list[str] = []

    def tab(title: str, rows: list[list[str]]) -> None:
        out.append(f"\n### {title}\n")
        out.append(common.table(["what", *cols], rows))

    tab("Setup", [
        ["views in schema tenants (the tenants', a reference tenant's 21, tenants.sync_status)",
         *[f"{lv['catalog']['views']:,}" for lv in levels]],
        ["`optiqoflow migrate` of the empty database, s", *[f"{lv['fresh_migrate']:.1f}" for lv in levels]],
        ["tenants made (`--setup " + levels[0]["setup"]["how"] + "`), s",
         *[f"{lv['setup']['seconds']:,.0f}" for lv in levels]],
        ["per tenant, median ms (first 10% / last 10%)",
         *[f"{lv['setup']['median_ms']:.0f} ({lv['setup']['first_tenth_ms']:.0f} / {lv['setup']['last_tenth_ms']:.0f})"
           if "median_ms" in lv["setup"] else "-" for lv in levels]],
        ["`VACUUM ANALYZE` of the database after, s", *[f"{lv['vacuum']:.1f}" for lv in levels]],
    ])
    cat_rows = [[f"{c} (rows, size)", *[f"{lv['catalog'][c]['rows']:,}, {_mib(lv['catalog'][c]['bytes'])}"
                                         for lv in levels]] for c in CATALOGS]
    cat_rows[-1][0] = "pg_shdepend, this database's rows (shared catalog: size of the whole)"
    tab("Catalog", [
        *cat_rows,
        ["every pg_catalog table of the database, with indexes and TOAST",
         *[_mib(lv["catalog"]["pg_catalog_bytes"]) for lv in levels]],
        ["database size (pg_database_size)", *[_mib(lv["catalog"]["database_bytes"]) for lv in levels]],
    ])
    tab("Migration", [
        ["head revision", *[f"`{lv['migration']['head']}`" for lv in levels]],
        ["`optiqoflow migrate` at head (nothing to do; CLI start-up included), s",
         *[f"{lv['migration']['noop_cli']:.2f}" for lv in levels]],
        ["the same in-process (`migrate.upgrade`), s", *[f"{lv['migration']['noop_inprocess']:.2f}" for lv in levels]],
        ["newest revision downgraded, s", *[f"{lv['migration']['down']:.2f}" for lv in levels]],
        ["... and upgraded back to head (a release deployed onto the database), s",
         *[f"{lv['migration']['up']:.2f}" for lv in levels]],
        ["`ownership.sql` alone (ends every revision; walks every view), s",
         *[f"{lv['migration']['ownership']:.2f}" for lv in levels]],
    ])
    tab(f"Pushes (ms, median (min-max) of {PUSH_SAMPLES}, one `apply_webhook` call and its commit each)", [
        ["a new tenant's first INSERT (creates its work_orders view)",
         *[_ms(lv["pushes"]["first_insert"]) for lv in levels]],
        ["an INSERT of a known tenant (no DDL)", *[_ms(lv["pushes"]["known_insert"]) for lv in levels]],
        ["a new tenant's first BATCH of 21 INSERTs (creates its 21 views)",
         *[_ms(lv["pushes"]["first_batch"]) for lv in levels]],
        ["an INSERT that adds a column to work_orders (ALTER TABLE, the tenant's view rebuilt), 3",
         *[_ms(lv["pushes"]["new_column"]) for lv in levels]],
    ])

    def intro(key: str, title: str) -> None:
        rows = [[f"{q}, s (rows)", *[f"{lv[key]['seconds'][q]:.2f} ({lv[key]['rows'][q]:,})" for lv in levels]]
                for q in levels[0][key]["seconds"]]
        rows += [["all, in one transaction on a fresh connection, s (repetitions)",
                  *[f"{lv[key]['total']:.2f} ({lv[key]['reps']})" for lv in levels]],
                 ["backend memory after (of which CacheMemoryContext)",
                  *[f"{_mib(lv[key]['backend_bytes'])} ({_mib(lv[key]['cache_bytes'])})" for lv in levels]]]
        tab(title, rows)

    intro("introspection", "PostgREST-style schema introspection, exposed schema `tenants` (median)")
    intro("introspection_without_views",
          "The same, exposed schemas `public, optiqoflow` (the tenant views not exposed)")
    if pgrst:
        intro("postgrest", "PostgREST's own queries (read from its SchemaCache.hs), exposed schema `tenants`")
        intro("postgrest_without_views", "PostgREST's own queries, exposed schemas `public, optiqoflow`")
    tab("pg_dump --schema-only and reads", [
        ["pg_dump --schema-only, s",
         *[f"{lv['dump']['seconds']:.1f}" if "bytes" in lv["dump"] else f"failed: {lv['dump']['error']}"
           for lv in levels]],
        ["its output", *[_mib(lv["dump"]["bytes"]) if "bytes" in lv["dump"] else "-" for lv in levels]],
        ["one tenant view (`ORDER BY updated_at DESC LIMIT 20`), first query on a new connection, ms (median of 5)",
         *[f"{lv['reads']['cold_ms']:.2f}" for lv in levels]],
        ["the same query again on that connection, ms (median of 200)",
         *[f"{lv['reads']['warm_ms']:.3f}" for lv in levels]],
    ])
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", help="a superuser DSN of an existing server (default: embedded PostgreSQL 18)")
    ap.add_argument("--tenants", default="1000,5000", help="comma-separated tenant counts")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--postgrest-source", type=Path,
                    help="src/library/PostgREST/SchemaCache.hs of a PostgREST checkout: also run its queries")
    ap.add_argument("--setup", choices=["regenerate", "push"], default="regenerate",
                    help="how tenants are made (see make_tenants); push is the sender's way, slower")
    ap.add_argument("--keep", action="store_true", help="keep the databases")
    a = ap.parse_args(argv)
    counts = [int(x) for x in a.tenants.split(",")]
    started = datetime.now(UTC)
    with common.cluster(a.dsn, keep=a.keep) as cl:
        version = cl.version()
        major = int(version.split(".")[0])
        pgrst = postgrest_queries(a.postgrest_source, major) if a.postgrest_source else None
        levels = [level(cl.admin_dsn, n, str(n), cl.workdir, pgrst, major, a.keep, a.setup) for n in counts]
        settings = cl.settings()
        with psycopg.connect(cl.admin_dsn, autocommit=True) as c:
            row = c.execute("SHOW max_locks_per_transaction").fetchone()
            settings["max_locks_per_transaction"] = str(row[0]) if row else "?"
        server = (f"PostgreSQL {version} " + ("embedded" if cl.embedded else "through --dsn")
                  + ", " + ", ".join(f"{k} = {v}" for k, v in sorted(settings.items())))
    m = common.machine()
    from bench.__main__ import source
    cmd = "python -m bench.scale " + " ".join(argv if argv is not None else sys.argv[1:])
    text = (f"## Scale: {', '.join(f'{n:,}' for n in counts)} tenants x 21 views\n\n"
            f"- command: `{cmd}`\n- code: {source()}\n"
            f"- started {started:%Y-%m-%d %H:%M} UTC, took {(datetime.now(UTC) - started).total_seconds() / 60:.0f} min\n"
            f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory']}, {m['os']}, Python {m['python']}\n"
            f"- server: {server}\n"
            + report(levels, pgrst is not None))
    print(text)
    if a.out:
        a.out.write_text(text)
    if a.keep:
        print("kept: " + ", ".join(lv["database"] for lv in levels), file=sys.stderr)


if __name__ == "__main__":
    main()
