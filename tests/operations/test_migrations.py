"""Alembic owns the schema; db/functions is the only source of a function.

Drift is caught three ways: a source file that differs from its latest frozen copy, a
migrated database whose functions (definition, comment, privileges) differ from the
sources, and a function in our schemas that has no source file (or the reverse). A
database of the pre-release history is adopted by the baseline only at that history's
head with its functions untouched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from optiqoflow_db import functions_dir, migrate
from optiqoflow_db.migrations import freeze

from operations import cli
from tests.helpers import push

OUR_SCHEMAS = ("optiqoflow", "tenants", "public")

FUNCTIONS_SQL = """
SELECT n.nspname || '/' || p.proname AS key,
       pg_get_functiondef(p.oid) || E'\\n-- comment: ' || coalesce(obj_description(p.oid, 'pg_proc'), '(none)')
           || E'\\n-- acl: ' || coalesce(p.proacl::text, '(default)') AS def
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
        # forget what the migration gave beyond the files: every grant, every comment
        for signature, grantee in c.execute(GRANTS_SQL, (list(OUR_SCHEMAS),)).fetchall():
            c.execute(  # type: ignore[call-overload]
                f"REVOKE ALL ON FUNCTION {signature} FROM {grantee}"
            )
        for signature in {sig for sig, _ in c.execute(GRANTS_SQL, (list(OUR_SCHEMAS),))}:
            c.execute(f"COMMENT ON FUNCTION {signature} IS NULL")  # type: ignore[call-overload]
        for path in freeze.source_files().values():
            c.execute(path.read_text())  # type: ignore[call-overload]
        assert _functions(c) == migrated, (
            "a migrated function differs from its source file (body, comment or privileges)"
        )
        c.rollback()


# (function, grantee) for every privilege on our functions, the owner's own left out
GRANTS_SQL = """
SELECT p.oid::regprocedure::text,
       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
       LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
 WHERE n.nspname = ANY(%s) AND a.grantee <> p.proowner
   AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""


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


def _generate_every_writer(c: psycopg.Connection[Any], tenant: str) -> int:
    """Every target table, and its generated writer (optiqoflow._writer's one template):
    a table of one data column per JSON type for one of them, the bare columns for the
    rest. Returns how many writers optiqoflow_gen holds."""
    push(c, tenant, note="n", amount=2.5, count=3, done=True, extra={"a": 1}, tags=["x"])
    c.execute(
        "SELECT optiqoflow._ensure_target_table(m.target_table),"
        "       optiqoflow._writer(m.target_table, optiqoflow._columns(m.target_table))"
        "  FROM optiqoflow.table_mappings m ORDER BY m.target_table"
    )
    got = c.execute(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = 'optiqoflow_gen'::regnamespace"
        " AND proname <> 'tenant_claim_path'"
    ).fetchone()
    assert got is not None
    return int(got[0])


def test_generated_writers_are_functions_like_any_other(conn: psycopg.Connection[Any], tenant: str) -> None:
    """The generated writers come from one template; their output, and every other
    generated function, is held to the rules of every function: documented, search_path
    pinned (or a SQL-standard body), not executable by PUBLIC."""
    assert _generate_every_writer(conn, tenant) >= conn.execute(
        "SELECT count(*) FROM optiqoflow.table_mappings").fetchone()[0]  # type: ignore[index]
    bad = conn.execute(
        """
        SELECT p.proname
          FROM pg_proc p
         WHERE p.pronamespace = 'optiqoflow_gen'::regnamespace
           AND (obj_description(p.oid, 'pg_proc') IS NULL
                OR (coalesce(array_to_string(p.proconfig, ','), '') NOT LIKE '%%search_path=pg_catalog, pg_temp%%'
                    AND p.prosqlbody IS NULL)   -- set_tenant_claim's constant: a SQL-standard body
                OR EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
                            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'))
        """
    ).fetchall()
    assert bad == []


def test_plpgsql_check_finds_nothing(conn: psycopg.Connection[Any], tenant: str) -> None:
    if conn.execute("SELECT FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone() is None:
        pytest.skip("plpgsql_check is not installed on this server (apt: postgresql-15-plpgsql-check)")
    conn.execute("CREATE EXTENSION plpgsql_check")
    # the generated writers are checked too: one per target table, from the one template
    _generate_every_writer(conn, tenant)
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
        ([*OUR_SCHEMAS, "optiqoflow_gen"],),
    ).fetchall()
    # Reviewed and accepted: _writer fills its template's holes with replace(); each is a
    # name quoted by quote_ident or a list built element by element with format('%I',
    # ...) from catalog column names, which plpgsql_check cannot follow.
    # Likewise optiqoflow.distribute (Citus only): it runs a primary key column list built
    # with format('%I', ...), and foreign-key and view definitions produced by the catalog
    # (pg_get_constraintdef, pg_get_viewdef) of our own tables and views.
    accepted = {
        ("optiqoflow._writer", "security", "the expression is not SQL injection safe"),
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
    assert "optiqoflow_db/migrations/versions/0001_baseline.sql" in names
    assert "optiqoflow_db/migrations/pre_release.json" in names
    assert any(n.startswith("optiqoflow_db/migrations/frozen/") for n in names)
    for module in ("receiver/app.py", "operations/cli.py", "simulator/simulate.py"):
        assert module in names
    assert "simulator/optiqo_source_schema.sql" in names


# --- the pre-release history ---------------------------------------------------------


@pytest.fixture
def pre_release_db(empty_db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database as the pre-release head left it: at 0023_static_writer_calls, its
    schema the baseline's (which equals that head's), its functions those that
    db/migrations/pre_release.json describes (here: this database's own, written into a
    copy of db/ that the code under test reads)."""
    db_dsn = empty_db_dsn
    migrate.upgrade(db_dsn, migrate.BASELINE)
    copy = tmp_path / "db"
    shutil.copytree(functions_dir().parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("OPTIQOFLOW_DB_DIR", str(copy))
    history = json.loads((copy / "migrations" / "pre_release.json").read_text())
    with psycopg.connect(db_dsn, autocommit=True) as c:
        history["functions"] = dict(c.execute(migrate._LIVE_FUNCTIONS).fetchall())
        c.execute("UPDATE public.alembic_version SET version_num = %s", (history["head"],))
    (copy / "migrations" / "pre_release.json").write_text(json.dumps(history))
    return db_dsn


def _revision(dsn: str) -> Any:
    with psycopg.connect(dsn) as c:
        return c.execute("SELECT version_num FROM public.alembic_version").fetchall()


def test_the_pre_release_head_is_stamped_to_the_baseline_and_keeps_its_data(
    pre_release_db: str,
) -> None:
    with psycopg.connect(pre_release_db, autocommit=True) as c:
        c.execute(
            "SELECT optiqoflow.apply_webhook(%s::jsonb)",
            (json.dumps({"type": "INSERT", "table": "zones", "tenant_id": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                         "record": {"id": "0b9f3a56-5d4e-4c3b-9a1e-0f6e2d4c8b7a", "name": "Hall",
                                    "updated_at": "2026-01-01T00:00:00Z"}}),),
        )
    migrate.upgrade(pre_release_db)
    assert _revision(pre_release_db) == [(migrate.head_revision(),)]
    with psycopg.connect(pre_release_db) as c:
        assert c.execute("SELECT name FROM optiqoflow.zones").fetchall() == [("Hall",)]


def test_a_pre_release_head_with_changed_functions_is_refused_in_one_line(
    pre_release_db: str,
) -> None:
    with psycopg.connect(pre_release_db, autocommit=True) as c:
        c.execute("CREATE FUNCTION public.hand_made() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    with pytest.raises(migrate.MigrationError) as refused:
        migrate.upgrade(pre_release_db)
    assert "1 of its functions differ" in str(refused.value)
    assert "public.hand_made()" in str(refused.value) and "\n" not in str(refused.value)
    assert _revision(pre_release_db) == [("0023_static_writer_calls",)]


def test_another_pre_release_revision_is_told_what_to_do(
    pre_release_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(pre_release_db, autocommit=True) as c:
        c.execute("UPDATE public.alembic_version SET version_num = '0017_group_commit'")
    monkeypatch.setenv("DATABASE_URL", pre_release_db)
    assert cli.main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "pre-release revision 0017_group_commit" in err and "0023_static_writer_calls" in err
    assert _revision(pre_release_db) == [("0017_group_commit",)]
