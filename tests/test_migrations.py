"""Alembic owns the schema; db/functions is the only source of a function.

Drift is caught three ways: a source file that differs from its latest frozen copy, a
migrated database whose functions differ from the sources, and a function in our
schemas that has no source file (or the reverse).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from receiver import freeze, migrate
from receiver.paths import functions_dir

OUR_SCHEMAS = ("optiqoflow", "tenants", "public")

FUNCTIONS_SQL = """
SELECT n.nspname || '/' || p.proname AS key, pg_get_functiondef(p.oid) AS def
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = ANY(%s)
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
 ORDER BY 1, 2
"""


def _functions(c: psycopg.Connection[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, definition in c.execute(FUNCTIONS_SQL, (list(OUR_SCHEMAS),)):
        out.setdefault(key, []).append(definition)
    return out


def test_every_source_file_is_frozen() -> None:
    changed = freeze.changed_sources()
    assert not changed, (
        f"function files changed since their last frozen copy: {sorted(changed)}; "
        "run `optiqoflow freeze -m 'why'`"
    )


def test_migrated_database_matches_sources(db_dsn: str) -> None:
    with psycopg.connect(db_dsn) as c:
        migrated = _functions(c)
        sources = {key.removesuffix(".sql") for key in freeze.source_files()}
        assert set(migrated) == sources, "functions without a source file, or the reverse"
        for path in freeze.source_files().values():
            c.execute(path.read_text())  # type: ignore[call-overload]
        assert _functions(c) == migrated, "a migrated function differs from its source file"
        c.rollback()


def test_downgrade_base_then_upgrade_head(empty_db_dsn: str) -> None:
    migrate.upgrade(empty_db_dsn)
    migrate.downgrade(empty_db_dsn, "base")
    with psycopg.connect(empty_db_dsn) as c:
        assert c.execute("SELECT to_regnamespace('optiqoflow')").fetchone() == (None,)
        assert c.execute("SELECT to_regclass('public.charts')").fetchone() == (None,)
    migrate.upgrade(empty_db_dsn)
    with psycopg.connect(empty_db_dsn) as c:
        row = c.execute("SELECT version_num FROM public.alembic_version").fetchone()
        assert row == (migrate.head_revision(),)
        assert c.execute("SELECT count(*) FROM optiqoflow.table_mappings").fetchone() == (21,)


def test_every_function_is_documented_pinned_and_not_public(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        """
        SELECT n.nspname || '.' || p.proname,
               obj_description(p.oid, 'pg_proc') IS NOT NULL,
               coalesce(array_to_string(p.proconfig, ','), '') LIKE '%%search_path=pg_catalog, pg_temp%%'
                   -- a SQL-standard body (RETURN ...) is bound when it is created, so no
                   -- search_path can reach it at run time; without a SET it can be inlined
                   OR (p.prosqlbody IS NOT NULL AND p.proconfig IS NULL),
               EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'),
               p.prosecdef
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = ANY(%s)
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
        """,
        (list(OUR_SCHEMAS),),
    ).fetchall()
    assert len(rows) == len(freeze.source_files())
    for name, documented, pinned, public, _definer in rows:
        assert documented, f"{name} has no COMMENT ON FUNCTION"
        assert pinned, f"{name} neither fixes search_path = pg_catalog, pg_temp nor has a SQL-standard body"
        assert not public, f"PUBLIC can execute {name}"


def test_plpgsql_check_finds_nothing(conn: psycopg.Connection[Any]) -> None:
    if conn.execute("SELECT FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone() is None:
        pytest.skip("plpgsql_check is not installed on this server (apt: postgresql-15-plpgsql-check)")
    conn.execute("CREATE EXTENSION plpgsql_check")
    findings = conn.execute(
        """
        SELECT p.oid::regprocedure::text, r.level, r.message, r.lineno
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
          JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql',
          LATERAL plpgsql_check_function_tb(p.oid, security_warnings => true,
                                            fatal_errors => false) r
         WHERE n.nspname = ANY(%s) AND p.prorettype <> 'trigger'::regtype
           AND r.level IN ('error', 'warning', 'security')
        """,
        (list(OUR_SCHEMAS),),
    ).fetchall()
    # Reviewed and accepted: _writer passes its column lists to format() with %s;
    # each list is built element by element with format('%I', ...) from catalog column
    # names, which plpgsql_check cannot follow through string_agg.
    # Likewise _generate_call_writer: the body it passes with %s is built from writer
    # names quoted with %L and %I.
    # Likewise optiqoflow.distribute (Citus only): it runs a primary key column list built
    # with format('%I', ...), and foreign-key and view definitions produced by the catalog
    # (pg_get_constraintdef, pg_get_viewdef) of our own tables and views.
    accepted = {
        ("optiqoflow._writer", "security", "text type variable is not sanitized"),
        ("optiqoflow._generate_call_writer", "security", "text type variable is not sanitized"),
        ("optiqoflow.distribute", "security", "text type variable is not sanitized"),
    }
    findings = [f for f in findings if (f[0].split("(")[0], f[1], f[2]) not in accepted]
    assert findings == []


def test_wheel_carries_sql_and_migrations(tmp_path: Path) -> None:
    root = functions_dir().parent.parent
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(root)],
        check=True,
    )
    (wheel,) = tmp_path.glob("optiqoflow-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for key in freeze.source_files():
        assert f"optiqoflow_db/functions/{key}" in names
    assert "optiqoflow_db/migrations/env.py" in names
    assert "optiqoflow_db/migrations/versions/0001_schema.sql" in names
    assert any(n.startswith("optiqoflow_db/migrations/frozen/") for n in names)
    assert "receiver/cli.py" in names
