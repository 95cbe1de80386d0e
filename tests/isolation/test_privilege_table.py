"""The README's privilege table is the truth: every grant in a migrated database (after
deliveries that create a tenant's views, a log partition, a new column and a table
mapped at run time) is in the table, and every privilege in the table is granted. A
stray GRANT, or a missing one, fails here. Also: the owner of everything is the NOLOGIN,
non-superuser role optiqoflow_owner.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import apply, new_id, rec, upsert

README = Path(__file__).resolve().parents[2] / "README.md"
ROLES = ("service_role", "authenticated", "optiqoflow_tenant_reader", "optiqoflow_admin", "anon", "PUBLIC")
OUR_SCHEMAS = ("optiqoflow", "tenants", "optiqoflow_gen")
DASHBOARD = ("charts", "chart_data_cache", "chart_table_dependencies")
PRIVILEGE_WORDS = {"SELECT", "INSERT", "UPDATE", "DELETE", "USAGE", "EXECUTE", "TRUNCATE",
                   "REFERENCES", "TRIGGER", "CREATE"}  # fmt: skip

Grant = tuple[str, str, str]  # (object, grantee, privilege), privilege may name a column


def _rows() -> list[list[str]]:
    text = README.read_text()
    table = text.split("<!-- privilege table", 1)[1].split("<!-- end of privilege table -->")[0]
    lines = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| object")]
    return [[cell.strip() for cell in ln.strip("|").split("|")] for ln in lines]


def _privileges(cell: str) -> set[str]:
    if "for a role" in cell:  # granted to roles a DBA limits to a tenant, not to the group
        return set()
    return {w for w in re.findall(r"[A-Z]+", cell) if w in PRIVILEGE_WORDS}


def _objects(c: psycopg.Connection[Any]) -> dict[str, str]:
    """Every object of ours -> its kind (schema, table, view, sequence, function), named
    schema.name (a function by schema.name(args))."""
    out = {f"schema {n}": "schema" for n in OUR_SCHEMAS}
    for name, kind in c.execute(
        """SELECT n.nspname || '.' || c.relname, c.relkind::text
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE (n.nspname = ANY(%s) OR (n.nspname = 'public' AND c.relname = ANY(%s)))
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')""",
        (list(OUR_SCHEMAS), list(DASHBOARD)),
    ):
        out[name] = {"v": "view", "m": "view", "S": "sequence"}.get(kind, "table")
    out["public.alembic_version"] = "table"
    for (name,) in c.execute(
        """SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')'
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE (n.nspname = ANY(%s) OR (n.nspname = 'public' AND p.proname = 'invalidate_chart_cache_for_tables'))
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
        (list(OUR_SCHEMAS),),
    ):
        out[name] = "function"
    return out


def _actual(c: psycopg.Connection[Any]) -> set[Grant]:
    """Every privilege of ours held by a role other than the object's owner."""
    grantee = "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END"
    grants: set[Grant] = set()
    queries = [
        f"""SELECT 'schema ' || n.nspname, {grantee}, a.privilege_type
              FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
             WHERE n.nspname = ANY(%(schemas)s) AND a.grantee <> n.nspowner""",
        f"""SELECT n.nspname || '.' || c.relname, {grantee}, a.privilege_type
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                   aclexplode(coalesce(c.relacl, acldefault(CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) a
             WHERE (n.nspname = ANY(%(schemas)s) OR (n.nspname = 'public' AND c.relname = ANY(%(dashboard)s::text[] || ARRAY['alembic_version'])))
               AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND a.grantee <> c.relowner""",
        f"""SELECT n.nspname || '.' || c.relname, {grantee}, a.privilege_type || ' (' || att.attname || ')'
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute att ON att.attrelid = c.oid AND att.attnum > 0 AND att.attacl IS NOT NULL,
                   aclexplode(att.attacl) a
             WHERE (n.nspname = ANY(%(schemas)s) OR (n.nspname = 'public' AND c.relname = ANY(%(dashboard)s)))
               AND a.grantee <> c.relowner""",
        f"""SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
                   {grantee}, a.privilege_type
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace,
                   aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
             WHERE (n.nspname = ANY(%(schemas)s) OR (n.nspname = 'public' AND p.proname = 'invalidate_chart_cache_for_tables'))
               AND a.grantee <> p.proowner
               AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')""",
    ]
    for query in queries:
        for obj, role, privilege in c.execute(
            query,  # type: ignore[arg-type]
            {"schemas": list(OUR_SCHEMAS), "dashboard": list(DASHBOARD)},
        ):
            grants.add((obj, role, privilege))
    return grants


def _expected(c: psycopg.Connection[Any], objects: dict[str, str]) -> set[Grant]:
    targets = {f"optiqoflow.{t}" for (t,) in c.execute(
        "SELECT m.target_table FROM optiqoflow.table_mappings m WHERE to_regclass('optiqoflow.' || m.target_table) IS NOT NULL")}  # fmt: skip
    partitions = {f"optiqoflow.{t}" for (t,) in c.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'optiqoflow.webhook_logs'::regclass")}  # fmt: skip
    covered: dict[str, str] = {}
    expected: set[Grant] = set()
    rows = _rows()
    # an object a row names is that row's, not also an "every ..." row's
    named = {o for cells in rows for name in re.findall(r"`([^`]+)`", cells[0])
             for o in objects if o == name or o.split("(")[0] == name}
    assert len(rows) >= 10, "the README's privilege table is missing or cut"
    for cells in rows:
        label, per_role = cells[0], dict(zip((*ROLES[:4], "anon, PUBLIC"), cells[1:], strict=True))
        names = set(re.findall(r"`([^`]+)`", label))
        if label.startswith("every target table"):
            members = targets
        elif label.startswith("every tenant view"):
            members = {o for o, k in objects.items() if k == "view" and o.startswith("tenants.")} - named
        elif label.startswith("every log partition"):
            members = partitions | {o for o, k in objects.items() if k == "sequence"}
        elif label.startswith("every other function"):
            members = {o for o, k in objects.items() if k == "function" and o not in covered}
        elif label.startswith("schema "):
            members = {f"schema {n}" for n in names}
        else:
            members = set()
            for name in names:
                matched = {o for o in objects if o == name or o.split("(")[0] == name}
                assert matched, f"README privilege table names {name}, which the database lacks"
                members |= matched
        for obj in members:
            assert obj not in covered, f"{obj} is in two rows: {covered[obj]!r} and {label!r}"
            covered[obj] = label
        for role_cell, cell in per_role.items():
            roles = ("anon", "PUBLIC") if role_cell == "anon, PUBLIC" else (role_cell,)
            table_level = _privileges(cell.split(";")[0])
            column_level = _privileges(cell.split(";")[1]) if ";" in cell else set()
            for obj in members:
                for role in roles:
                    expected |= {(obj, role, p) for p in table_level}
                    if column_level:
                        schema, table = obj.split(".")
                        for (column,) in c.execute(
                            """SELECT a.attname FROM pg_attribute a
                                WHERE a.attrelid = format('%%I.%%I', %s::text, %s::text)::regclass
                                  AND a.attnum > 0 AND NOT a.attisdropped
                                  AND a.attname <> 'updated_at' AND a.attname !~ '^_of_'""",
                            (schema, table),
                        ):
                            expected |= {(obj, role, f"{p} ({column})") for p in column_level}
    missing = set(objects) - set(covered)
    assert not missing, f"objects the README's privilege table does not cover: {sorted(missing)}"
    return expected


def test_every_grant_is_in_the_readme_table_and_every_entry_is_granted(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    # what deliveries create: a tenant's views, a new column, a table mapped at run time
    assert apply(conn, upsert(tenant, rec(new_id(), 1, title="t", brand_new_key="x")))["status"] == "applied"
    conn.execute("INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES ('equipment_items', 'equipment')")
    assert apply(conn, upsert(tenant, rec(new_id(), 1, serial="S-1"), table="equipment_items"))["status"] == "applied"
    conn.execute("SELECT optiqoflow.prune_logs()")  # the log partitions of the coming days

    objects = _objects(conn)
    actual = _actual(conn)
    expected = _expected(conn, objects)
    assert sorted(actual - expected) == [], "granted, but not in the README's privilege table"
    assert sorted(expected - actual) == [], "in the README's privilege table, but not granted"


def test_the_owner_owns_everything_and_is_neither_superuser_nor_login(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    assert apply(conn, upsert(tenant, rec(new_id(), 1, title="t")))["status"] == "applied"
    role = conn.execute(
        "SELECT rolsuper, rolcanlogin, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'optiqoflow_owner'"
    ).fetchone()
    assert role == (False, False, False, False, False)
    others = conn.execute(
        """SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = ANY(%(s)s) AND nspowner <> 'optiqoflow_owner'::regrole
           UNION ALL
           SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE (n.nspname = ANY(%(s)s) OR (n.nspname = 'public' AND c.relname = ANY(%(d)s)))
              AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relowner <> 'optiqoflow_owner'::regrole
           UNION ALL
           SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE (n.nspname = ANY(%(s)s) OR p.oid = 'public.invalidate_chart_cache_for_tables(uuid, text[])'::regprocedure)
              AND p.proowner <> 'optiqoflow_owner'::regrole""",
        {"s": list(OUR_SCHEMAS), "d": list(DASHBOARD)},
    ).fetchall()
    assert others == []


def test_a_stray_grant_is_caught(conn: psycopg.Connection[Any]) -> None:
    conn.execute("GRANT TRIGGER ON optiqoflow.delivery_keys TO service_role")
    conn.execute("GRANT EXECUTE ON FUNCTION optiqoflow._tenant_uuid(jsonb, text) TO authenticated")
    objects = _objects(conn)
    stray = _actual(conn) - _expected(conn, objects)
    assert ("optiqoflow.delivery_keys", "service_role", "TRIGGER") in stray
    assert ("optiqoflow._tenant_uuid(p_value jsonb, p_where text)", "authenticated", "EXECUTE") in stray
