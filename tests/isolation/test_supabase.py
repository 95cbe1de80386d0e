"""Supabase as its users meet it: the tenant claim where a Supabase project keeps it (a
top-level claim, or app_metadata; never user_metadata), the dashboard's charts read from
the browser under row-level security, and a migration of a database set up like hosted
Supabase (no superuser, the API roles and auth.jwt() there beforehand, a
supabase_realtime publication). Claims are set as PostgREST sets them: SET LOCAL ROLE
and request.jwt.claims for the transaction."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from optiqoflow_db import migrate
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from tests.helpers import apply, new_id, rec, upsert


@contextlib.contextmanager
def as_user(c: psycopg.Connection[Any], claims: dict[str, Any]) -> Iterator[psycopg.Connection[Any]]:
    with c.transaction():
        c.execute("SET LOCAL ROLE authenticated")
        c.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield c


def seen(c: psycopg.Connection[Any], claims: dict[str, Any]) -> set[str]:
    with as_user(c, claims) as u:
        return {str(t) for (t,) in u.execute("SELECT DISTINCT tenant_id FROM optiqoflow.work_orders")}


def set_claim(c: psycopg.Connection[Any], path: str) -> Any:
    with c.transaction():
        c.execute("SET LOCAL ROLE optiqoflow_admin")
        row = c.execute("SELECT optiqoflow.set_tenant_claim(%s)", (path,)).fetchone()
    return row[0] if row else None


def two_tenants(c: psycopg.Connection[Any]) -> tuple[str, str]:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for t in (a, b):
        assert apply(c, upsert(t, rec(new_id(), 1, title="t")))["status"] == "applied"
    return a, b


def test_the_tenant_claim_top_level_by_default_or_under_app_metadata(conn: psycopg.Connection[Any]) -> None:
    a, _ = two_tenants(conn)
    top, app = {"tenant_id": a, "role": "authenticated"}, {"app_metadata": {"tenant_id": a}, "role": "authenticated"}
    assert seen(conn, top) == {a}
    assert seen(conn, app) == set()
    assert set_claim(conn, "app_metadata.tenant_id") == "app_metadata.tenant_id"
    assert seen(conn, app) == {a}
    assert seen(conn, top) == set()  # only one place counts
    # the views run with the reader's rights: they follow
    with as_user(conn, app) as u:
        assert u.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("tenants", f"{a}_work_orders"))).fetchone() == (1,)
    assert conn.execute("SELECT value FROM optiqoflow.settings WHERE key = 'tenant_claim'").fetchone() == ("app_metadata.tenant_id",)
    assert set_claim(conn, "tenant_id") == "tenant_id"
    assert seen(conn, top) == {a}


def test_user_metadata_never_decides_a_tenant(conn: psycopg.Connection[Any]) -> None:
    a, b = two_tenants(conn)
    for path in ("user_metadata.tenant_id", "user_metadata", "sub", "app_metadata.x;drop", ""):
        with pytest.raises(psycopg.Error) as refused:
            set_claim(conn, path)
        assert refused.value.sqlstate == "OF023", path
    set_claim(conn, "app_metadata.tenant_id")
    forged = {"app_metadata": {"tenant_id": a}, "user_metadata": {"tenant_id": b}, "tenant_id": b}
    assert seen(conn, forged) == {a}
    assert seen(conn, {"user_metadata": {"tenant_id": b}}) == set()


def test_only_the_admin_role_chooses_the_claim(conn: psycopg.Connection[Any]) -> None:
    for role in ("service_role", "authenticated", "anon"):
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            conn.execute("SELECT optiqoflow.set_tenant_claim('app_metadata.tenant_id')")
    assert conn.execute("SELECT value FROM optiqoflow.settings WHERE key = 'tenant_claim'").fetchone() == ("tenant_id",)


def test_authenticated_reads_its_charts_and_cache_entries_and_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    a, b = two_tenants(conn)
    own, other, shared = (conn.execute(
        "INSERT INTO public.charts (tenant_id, title) VALUES (%s, %s) RETURNING id", (t, title)).fetchone()[0]  # type: ignore[index]
        for t, title in ((a, "own"), (b, "other"), (None, "shared")))  # fmt: skip
    for chart, tenant in ((own, a), (other, b), (shared, a), (shared, b)):
        conn.execute("INSERT INTO public.chart_data_cache (chart_id, tenant_id, data) VALUES (%s, %s, '[1]')", (chart, tenant))
    with as_user(conn, {"tenant_id": a}) as u:
        assert {t for (t,) in u.execute("SELECT title FROM public.charts")} == {"own", "shared"}
        entries = u.execute("SELECT chart_id, tenant_id FROM public.chart_data_cache").fetchall()
        assert {(c, str(t)) for c, t in entries} == {(own, a), (shared, a)}
    for statement in ("UPDATE public.charts SET cache_status = 'fresh'",
                      "UPDATE public.chart_data_cache SET is_valid = true",
                      "DELETE FROM public.chart_data_cache",
                      f"INSERT INTO public.chart_data_cache (chart_id, tenant_id) VALUES ('{own}', '{a}')"):  # fmt: skip
        with pytest.raises(errors.InsufficientPrivilege), as_user(conn, {"tenant_id": a}) as u:
            u.execute(statement)
    with as_user(conn, {}) as u:  # no claim: nothing but the shared charts' definitions
        assert u.execute("SELECT count(*) FROM public.chart_data_cache").fetchone() == (0,)
    with conn.transaction():
        conn.execute("SET LOCAL ROLE anon")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.charts")


def _ensure_role(admin: psycopg.Connection[Any], name: str, options: str) -> None:
    if admin.execute("SELECT to_regrole(%s)", (name,)).fetchone() == (None,):
        with contextlib.suppress(errors.DuplicateObject):
            admin.execute(sql.SQL("CREATE ROLE {} {}").format(sql.Identifier(name), sql.SQL(options)))


def test_a_database_set_up_like_hosted_supabase_migrates_and_serves_both_claim_shapes(
    pg_admin_dsn: str, tenant: str
) -> None:
    migrator = f"supa_{uuid.uuid4().hex[:10]}"
    name = f"optiqoflow_supa_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
        for role, options in (("anon", "NOLOGIN"), ("authenticated", "NOLOGIN"),
                              ("service_role", "NOLOGIN BYPASSRLS"), ("authenticator", "NOINHERIT LOGIN")):  # fmt: skip
            _ensure_role(admin, role, options)
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(migrator)))
        admin.execute(sql.SQL("GRANT authenticated, anon, service_role TO authenticator"))
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(migrator)))
        # PostgreSQL 16+: a CREATEROLE role administers the roles it created (the shared
        # test cluster's were created by a superuser)
        for role in ("optiqoflow_owner", "optiqoflow_tenant_reader", "optiqoflow_admin"):
            if admin.execute("SELECT to_regrole(%s)", (role,)).fetchone() != (None,):
                admin.execute(sql.SQL("GRANT {} TO {} WITH ADMIN OPTION").format(sql.Identifier(role), sql.Identifier(migrator)))
    dsn = make_conninfo(pg_admin_dsn, dbname=name, user=migrator)
    try:
        with psycopg.connect(dsn, autocommit=True) as c:  # what a Supabase project has
            c.execute("CREATE SCHEMA auth")
            c.execute("CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS "
                      "$$ SELECT coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}')::jsonb $$")
            c.execute("GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role")
            c.execute("CREATE PUBLICATION supabase_realtime")
        migrate.upgrade(dsn)
        with psycopg.connect(make_conninfo(pg_admin_dsn, dbname=name), autocommit=True) as c:
            assert c.execute(
                "SELECT count(*) FROM pg_publication_tables WHERE pubname = 'supabase_realtime' AND tablename = 'charts'"
            ).fetchone() == (1,)
            assert c.execute("SELECT relreplident FROM pg_class WHERE oid = 'public.charts'::regclass").fetchone() == ("f",)
            with c.transaction():
                c.execute("SET LOCAL ROLE service_role")
                c.execute("SELECT optiqoflow.apply_webhook(%s::jsonb)", (json.dumps(upsert(tenant, rec(new_id(), 1, title="t"))),))
            # as PostgREST does it: the authenticator switches to authenticated per request
            assert seen(c, {"tenant_id": tenant, "role": "authenticated"}) == {tenant}
            with as_user(c, {"tenant_id": tenant}) as u:
                assert u.execute("SELECT auth.jwt() ->> 'tenant_id'").fetchone() == (tenant,)
            set_claim(c, "app_metadata.tenant_id")
            assert seen(c, {"app_metadata": {"tenant_id": tenant}, "role": "authenticated"}) == {tenant}
            assert seen(c, {"tenant_id": tenant, "role": "authenticated"}) == set()
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(migrator)))
