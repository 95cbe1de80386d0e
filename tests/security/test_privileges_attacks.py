"""Reproductions of attacks on the database's rights, each asserting the outcome that
stops it: a member of service_role attaching a trigger that would run as the owner; a
dashboard user pinning a row with a version of 'infinity'; grant_tenant limiting a role
that can act as a shared role; keys named like system columns vanishing; a migration
that needs a superuser; the least-privilege receiver role unable to read its revision.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from optiqoflow_db import migrate
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from tests.helpers import apply, delete, full_sync, new_id, rec, row, upsert, v


def _as(conn: psycopg.Connection[Any], role: str, claims: dict[str, Any] | None = None) -> Any:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    if claims is not None:
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps(claims),))


# --- point 1: nobody climbs to the owner's powers -------------------------------------


def test_a_member_of_service_role_cannot_attach_a_trigger_that_runs_as_the_owner(
    conn: psycopg.Connection[Any], make_role: Callable[..., str], tenant: str
) -> None:
    attacker = make_role("attacker", "IN ROLE service_role")
    _as(conn, attacker)
    conn.execute(
        sql.SQL(
            "CREATE FUNCTION pg_temp.climb() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN EXECUTE 'ALTER ROLE {} SUPERUSER'; RETURN NEW; END $$"
        ).format(sql.Identifier(attacker))
    )
    for table in ("optiqoflow.delivery_keys", "optiqoflow.work_orders", "optiqoflow.webhook_logs",
                  "tenants.tenant_data_push_log", "public.chart_data_cache"):  # fmt: skip
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(
                f"CREATE TRIGGER zz BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION pg_temp.climb()"
            )
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"TRUNCATE {table}")
    # the receiver's one call still works for it, and it stays what it was
    assert apply(conn, upsert(tenant, rec(new_id(), 1, title="t")))["status"] == "applied"
    conn.execute("RESET ROLE")
    assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", (attacker,)).fetchone() == (False,)


def test_the_definer_functions_run_as_a_role_that_is_not_a_superuser(
    conn: psycopg.Connection[Any],
) -> None:
    rows = conn.execute(
        """SELECT p.oid::regprocedure::text, r.rolname, r.rolsuper
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             JOIN pg_roles r ON r.oid = p.proowner
            WHERE p.prosecdef AND n.nspname IN ('optiqoflow', 'tenants', 'public', 'optiqoflow_gen')"""
    ).fetchall()
    assert rows and {(owner, superuser) for _, owner, superuser in rows} == {("optiqoflow_owner", False)}


def test_a_role_with_createrole_but_no_superuser_migrates_a_database(
    pg_admin_dsn: str, make_role: Callable[..., str], tenant: str
) -> None:
    """As on hosted Supabase: `postgres` has CREATEROLE, owns the database, and the API
    roles exist beforehand."""
    migrator = make_role("migrator", "CREATEROLE")
    name = f"optiqoflow_nosuper_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(migrator)))
        # from PostgreSQL 16 on, a CREATEROLE role administers the roles it created: the
        # shared test cluster's optiqoflow_owner was created by a superuser, so hand it over
        for role in ("optiqoflow_owner", "optiqoflow_tenant_reader"):
            if admin.execute("SELECT to_regrole(%s)", (role,)).fetchone() != (None,):
                admin.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(role), sql.Identifier(migrator)))
    dsn = make_conninfo(pg_admin_dsn, dbname=name, user=migrator)
    try:
        migrate.upgrade(dsn)
        with psycopg.connect(dsn, autocommit=True) as c:
            assert c.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            assert c.execute(
                "SELECT pg_get_userbyid(proowner) FROM pg_proc WHERE oid = 'optiqoflow.apply_webhook(jsonb, text)'::regprocedure"
            ).fetchone() == ("optiqoflow_owner",)
        with psycopg.connect(make_conninfo(pg_admin_dsn, dbname=name), autocommit=True) as c:
            c.execute("SET ROLE service_role")  # the receiver's role
            answer = c.execute(
                "SELECT optiqoflow.apply_webhook(%s::jsonb)", (json.dumps(upsert(tenant, rec(new_id(), 1, title="t"))),)
            ).fetchone()
            assert answer is not None and answer[0]["status"] == "applied"
            assert c.execute(
                "SELECT version_num FROM public.alembic_version"
            ).fetchone() == (migrate.head_revision(),)
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --- point 7: a dashboard user cannot pin a row out of sync ---------------------------


def test_authenticated_writes_data_columns_only_and_never_a_version(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    rid = new_id()
    claims = {"tenant_id": tenant, "role": "authenticated"}
    _as(conn, "authenticated", claims)
    for statement in (
        "INSERT INTO optiqoflow.work_orders (tenant_id, id, title, updated_at) VALUES (%s, %s, 'pin', 'infinity')",
        "INSERT INTO optiqoflow.work_orders (tenant_id, id, title, _of_written_at) VALUES (%s, %s, 'pin', now())",
        "INSERT INTO optiqoflow.work_orders (tenant_id, id, title, _of_sync_run) VALUES (%s, %s, 'pin', 1)",
    ):
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute(statement, (tenant, rid))
    # what it may do: its own row, the version the time of the insert
    conn.execute("INSERT INTO optiqoflow.work_orders (tenant_id, id, title) VALUES (%s, %s, 'mine')", (tenant, rid))
    with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
        conn.execute("UPDATE optiqoflow.work_orders SET updated_at = 'infinity' WHERE id = %s", (rid,))
    conn.execute("UPDATE optiqoflow.work_orders SET title = 'edited' WHERE id = %s", (rid,))
    conn.execute("RESET ROLE")
    stored = row(conn, tenant, rid)
    assert stored is not None and stored["title"] == "edited"
    # the sender's later changes and a FULL_SYNC with total still win over the row
    newer = "2999-01-01T00:00:00Z"
    assert apply(conn, upsert(tenant, rec(rid, newer, title="sender"), "UPDATE"))["status"] == "applied"
    assert apply(conn, delete(tenant, {"id": rid, "updated_at": "2999-01-02T00:00:00Z"}))["status"] == "applied"
    assert row(conn, tenant, rid) is None
    other = new_id()
    _as(conn, "authenticated", claims)
    conn.execute("INSERT INTO optiqoflow.work_orders (tenant_id, id, title) VALUES (%s, %s, 'orphan')", (tenant, other))
    conn.execute("RESET ROLE")
    answer = apply(conn, full_sync(tenant, [rec(new_id(), v(1), title="kept")], offset=0, total=1))
    assert answer["status"] == "applied" and answer.get("removed", 0) >= 1
    assert row(conn, tenant, other) is None


def test_no_role_stores_a_non_finite_version(conn: psycopg.Connection[Any], tenant: str) -> None:
    _as(conn, "service_role")
    for value in ("infinity", "-infinity"):
        with pytest.raises(errors.CheckViolation), conn.transaction():
            conn.execute(
                "INSERT INTO optiqoflow.work_orders (tenant_id, id, title, updated_at) VALUES (%s, %s, 'x', %s)",
                (tenant, new_id(), value),
            )
    conn.execute("RESET ROLE")
    answer = apply(conn, upsert(tenant, rec(new_id(), "infinity", title="x")))
    assert answer["status"] == "refused"


def test_a_column_added_by_schema_evolution_is_writable_by_the_dashboard(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    rid = new_id()
    assert apply(conn, upsert(tenant, rec(rid, 1, title="t", evolved_note="n")))["added_columns"] == ["evolved_note"]
    _as(conn, "authenticated", {"tenant_id": tenant})
    assert conn.execute("UPDATE optiqoflow.work_orders SET evolved_note = 'dash' WHERE id = %s", (rid,)).rowcount == 1
    conn.execute("RESET ROLE")


# --- point 8: grant_tenant refuses roles it cannot limit ------------------------------


@pytest.mark.parametrize("shared", ["authenticated", "service_role", "optiqoflow_owner"])
def test_grant_tenant_refuses_a_role_that_can_act_as_a_shared_role(
    conn: psycopg.Connection[Any], make_role: Callable[..., str], tenant: str, shared: str
) -> None:
    member = make_role("member", f"IN ROLE {shared}")
    indirect_group = make_role("group", f"IN ROLE {shared}")
    indirect = make_role("indirect", f"IN ROLE {indirect_group}")
    for role in (member, indirect, shared):
        with pytest.raises(psycopg.Error) as refused, conn.transaction():
            conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, tenant))
        assert refused.value.sqlstate == "OF015", role
    assert conn.execute("SELECT count(*) FROM tenants.role_tenants WHERE role_name IN (%s, %s)", (member, indirect)).fetchone() == (0,)


# --- point 9: nothing is silently dropped ---------------------------------------------


@pytest.mark.parametrize("key", ["xmin", "xmax", "cmin", "cmax", "ctid", "tableoid"])
def test_a_key_named_like_a_system_column_is_refused(
    conn: psycopg.Connection[Any], tenant: str, key: str
) -> None:
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, title="t", **{key: "42"})))
    assert (answer["status"], answer["sqlstate"]) == ("refused", "OF007"), answer
    assert key in answer["error"]
    kept = conn.execute(
        "SELECT payload -> 'record' ->> %s FROM optiqoflow.refused_deliveries WHERE log_id = %s",
        (key, answer["log_id"]),
    ).fetchone()
    assert kept == ("42",)  # the value is kept with the refusal, not lost


# --- point 12: the least-privilege receiver role reads the revision ----------------------


def test_service_role_reads_the_migrated_revision(conn: psycopg.Connection[Any]) -> None:
    _as(conn, "service_role")
    assert conn.execute("SELECT version_num FROM public.alembic_version").fetchone() == (migrate.head_revision(),)
    conn.execute("RESET ROLE")
