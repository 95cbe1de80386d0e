"""Rights, tested as the real roles, never judged by a superuser's view.

The rules are in docs/semantics.md ("Tenant safety", "Per-tenant views"): views run with
the reader's rights and behind a security barrier; the write functions are SECURITY
DEFINER with a fixed search_path, EXECUTE for service_role only; JWT claims count for
`authenticated` only, since any session can set them.
Roles are cluster-global: each test role gets a unique name and is dropped afterwards.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD, apply, next_version, push, rec

# the write functions: EXECUTE for service_role only (docs/semantics.md, "Tenant safety")
WRITE_FUNCTIONS = [
    ("optiqoflow", "apply_webhook"),
    ("optiqoflow", "upsert_record"),
    ("optiqoflow", "delete_record"),
    ("optiqoflow", "full_sync_batch"),
    ("optiqoflow", "replay_webhook"),
    ("optiqoflow", "record_unusable_delivery"),
    ("tenants", "regenerate_tenant_views"),
    ("tenants", "grant_tenant"),
    ("public", "invalidate_chart_cache_for_tables"),
]
BOOKKEEPING = [
    "optiqoflow.table_mappings",
    "optiqoflow.webhook_logs",
    "optiqoflow.tombstones",
    "optiqoflow.delivery_keys",
    "optiqoflow.sync_runs",
    "optiqoflow.sync_run_batches",
    "tenants.tenant_data_push_log",
]


def view(tenant: str, table: str) -> sql.Composable:
    return sql.Identifier("tenants", f"{tenant}_{table}")


@contextlib.contextmanager
def as_role(
    c: psycopg.Connection[Any], role: str, claims: dict[str, Any] | str | None = None
) -> Iterator[psycopg.Connection[Any]]:
    """A transaction run as `role` (SET LOCAL ROLE), with request.jwt.claims set as a
    gateway would (set_config(..., true) after SET LOCAL ROLE)."""
    with c.transaction():
        c.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        if claims is not None:
            text = claims if isinstance(claims, str) else json.dumps(claims)
            c.execute("SELECT set_config('request.jwt.claims', %s, true)", (text,))
        yield c


def connect_as(db_dsn: str, role: str) -> psycopg.Connection[Any]:
    return psycopg.connect(make_conninfo(db_dsn, user=role, password=PASSWORD), autocommit=True)


def titles(c: psycopg.Connection[Any], relation: sql.Composable) -> list[str]:
    return sorted(r[0] for r in c.execute(sql.SQL("SELECT title FROM {}").format(relation)))


def tenants_in(c: psycopg.Connection[Any], relation: str) -> set[str]:
    return {
        str(r[0])
        for r in c.execute(sql.SQL("SELECT DISTINCT tenant_id FROM {}").format(sql.SQL(relation)))
    }


WORK_ORDERS = sql.SQL("optiqoflow.work_orders")


def two_tenants(conn: psycopg.Connection[Any]) -> tuple[str, str, list[str]]:
    """Tenants A and B with two work orders each, under the same two ids."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    for tenant, tag in ((a, "A"), (b, "B")):
        for n, id_ in enumerate(ids):
            push(conn, tenant, record=rec(id_, next_version(), title=f"{tag} {n}"))
    return a, b, ids


# --- views keep their options --------------------------------------------------------


def assert_all_views_invoker_and_barrier(c: psycopg.Connection[Any], at_least: int) -> None:
    rows = c.execute(
        "SELECT relname, coalesce(reloptions, '{}') FROM pg_class"
        " WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' AND relname <> 'sync_status'"
    ).fetchall()
    assert len(rows) >= at_least
    for name, options in rows:
        assert {"security_invoker=true", "security_barrier=true"} <= set(options), (name, options)


def test_views_stay_security_invoker_and_barrier_after_regeneration(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    push(conn, tenant, priority=1)
    push(conn, tenant, "zone_categories", name="z")
    assert_all_views_invoker_and_barrier(conn, 2)
    push(conn, tenant, status="s")  # CREATE OR REPLACE (appends a column)
    assert_all_views_invoker_and_barrier(conn, 2)
    push(conn, tenant, title="t")  # DROP + CREATE (title comes before status)
    assert_all_views_invoker_and_barrier(conn, 2)
    conn.execute(
        "UPDATE tenants.tenant_column_access SET columns = array_remove(columns, 'status') WHERE tenant_id = %s",
        (tenant,),
    )
    conn.execute("SELECT tenants.regenerate_tenant_views(%s)", (tenant,))
    assert_all_views_invoker_and_barrier(conn, 2)


# --- authenticated, by JWT claims ----------------------------------------------------


def test_authenticated_sees_and_changes_only_the_claimed_tenant(
    conn: psycopg.Connection[Any],
) -> None:
    a, b, ids = two_tenants(conn)
    b_rows_before = conn.execute(
        "SELECT * FROM optiqoflow.work_orders WHERE tenant_id = %s ORDER BY id", (b,)
    ).fetchall()

    with as_role(conn, "authenticated", {"tenant_id": a, "role": "authenticated"}) as c:
        assert tenants_in(c, "optiqoflow.work_orders") == {a}
        assert titles(c, view(a, "work_orders")) == ["A 0", "A 1"]
        assert titles(c, view(b, "work_orders")) == []
        assert c.execute("UPDATE optiqoflow.work_orders SET title = 'changed'").rowcount == 2
        assert (
            c.execute(
                "UPDATE optiqoflow.work_orders SET title = 'x' WHERE tenant_id = %s", (b,)
            ).rowcount
            == 0
        )
        assert (
            c.execute("DELETE FROM optiqoflow.work_orders WHERE id = %s", (ids[0],)).rowcount == 1
        )
        assert (
            c.execute(
                # no updated_at: a dashboard never writes a version (it defaults to now())
                "INSERT INTO optiqoflow.work_orders (tenant_id, id, title) VALUES (%s, %s, 'new')",
                (a, str(uuid.uuid4())),
            ).rowcount
            == 1
        )
    # another spelling of the same tenant in the claims
    with as_role(conn, "authenticated", {"tenant_id": a.upper()}) as c:
        assert titles(c, view(a, "work_orders")) == ["changed", "new"]

    # writing another tenant's rows is refused by the policies' WITH CHECK
    for statement in (
        sql.SQL(
            "INSERT INTO optiqoflow.work_orders (tenant_id, id) VALUES ({}, gen_random_uuid())"
        ).format(sql.Literal(b)),
        sql.SQL("UPDATE optiqoflow.work_orders SET tenant_id = {}").format(sql.Literal(b)),
    ):
        with (
            pytest.raises(errors.InsufficientPrivilege),
            as_role(conn, "authenticated", {"tenant_id": a}) as c,
        ):
            c.execute(statement)

    # and through B's view nothing of B can change either (denied, or no row visible)
    for statement in (
        sql.SQL("UPDATE {} SET title = 'via view'").format(view(b, "work_orders")),
        sql.SQL("DELETE FROM {}").format(view(b, "work_orders")),
        sql.SQL(
            "INSERT INTO {} (id, tenant_id, title, updated_at) VALUES (gen_random_uuid(), {}, 'x', now())"
        ).format(view(b, "work_orders"), sql.Literal(b)),
    ):
        try:
            with as_role(conn, "authenticated", {"tenant_id": a}) as c:
                assert c.execute(statement).rowcount == 0
        except errors.InsufficientPrivilege:
            pass

    assert (
        conn.execute(
            "SELECT * FROM optiqoflow.work_orders WHERE tenant_id = %s ORDER BY id", (b,)
        ).fetchall()
        == b_rows_before
    )


UNUSABLE_CLAIMS = [
    None, "", "{}", "not json", '{"tenant_id": null}', '{"tenant_id": "not-a-uuid"}', '{"tenant_id": 42}',
    '{"role": "service_role"}', '{"sub": "x", "tenant": "11111111-1111-1111-1111-111111111111"}',
]  # fmt: skip


def test_authenticated_without_a_usable_claim_sees_nothing(conn: psycopg.Connection[Any]) -> None:
    a, b, _ = two_tenants(conn)
    for claims in UNUSABLE_CLAIMS:
        with as_role(conn, "authenticated", claims) as c:
            assert c.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone() == (0,), (
                claims
            )
            assert titles(c, view(a, "work_orders")) == [], claims
            assert titles(c, view(b, "work_orders")) == [], claims
            assert c.execute("UPDATE optiqoflow.work_orders SET title = 'x'").rowcount == 0, claims
            assert c.execute("DELETE FROM optiqoflow.work_orders").rowcount == 0, claims
        with (
            pytest.raises(errors.InsufficientPrivilege),
            as_role(conn, "authenticated", claims) as c,
        ):
            c.execute(
                "INSERT INTO optiqoflow.work_orders (tenant_id, id, updated_at) VALUES (%s, gen_random_uuid(), now())",
                (a,),
            )
    assert conn.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone() == (4,)


# --- a directly-connecting role given one tenant -------------------------------------


def test_role_given_one_tenant_reads_only_that_tenant(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Callable[..., str]
) -> None:
    a, b, _ = two_tenants(conn)
    push(conn, a, "zone_categories", name="A zone")
    push(conn, b, "zone_categories", name="B zone")
    bi = make_role("bi")
    with as_role(conn, "service_role") as c:
        assert c.execute("SELECT tenants.grant_tenant(%s, %s)", (bi, a)).fetchone() == (2,)

    with connect_as(db_dsn, bi) as c:
        assert titles(c, view(a, "work_orders")) == ["A 0", "A 1"]
        assert [
            r[0] for r in c.execute(sql.SQL("SELECT name FROM {}").format(view(a, "zones")))
        ] == ["A zone"]
        for relation in (view(b, "work_orders"), view(b, "zones")):
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(sql.SQL("SELECT * FROM {}").format(relation))
        assert tenants_in(c, "optiqoflow.work_orders") == {a}

        # claims it sets itself widen nothing (any session can set them)
        c.execute(
            "SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"tenant_id": b}),)
        )
        assert tenants_in(c, "optiqoflow.work_orders") == {a}
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute(sql.SQL("SELECT * FROM {}").format(view(b, "work_orders")))
        with c.transaction():
            c.execute(
                "SELECT set_config('request.jwt.claims', %s, true)", (json.dumps({"tenant_id": b}),)
            )
            assert tenants_in(c, "optiqoflow.work_orders") == {a}

        # nor can it become another role, write, or re-grant itself
        for statement in (
            "SET ROLE authenticated",
            "SET ROLE service_role",
            "UPDATE optiqoflow.work_orders SET title = 'x'",
            "DELETE FROM optiqoflow.work_orders",
            f"UPDATE tenants.role_tenants SET tenant_id = '{b}'",
            f"INSERT INTO tenants.role_tenants (role_name, tenant_id) VALUES (current_user, '{b}')",
            f"SELECT tenants.grant_tenant(current_user, '{b}')",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(statement)
        assert c.execute(
            "SELECT role_name, tenant_id::text FROM tenants.role_tenants"
        ).fetchall() == [(bi, a)]

    # views created later: the tenant's reach the role, including a dropped and recreated one
    push(conn, a, "site_rooms", name="A room")
    push(conn, b, "site_rooms", name="B room")
    push(conn, a, site_id=str(uuid.uuid4()))  # site_id comes before title: DROP + CREATE
    with connect_as(db_dsn, bi) as c:
        assert [
            r[0] for r in c.execute(sql.SQL("SELECT name FROM {}").format(view(a, "rooms")))
        ] == ["A room"]
        assert (
            len(
                c.execute(
                    sql.SQL("SELECT site_id FROM {}").format(view(a, "work_orders"))
                ).fetchall()
            )
            == 3
        )
        with pytest.raises(errors.InsufficientPrivilege):
            c.execute(sql.SQL("SELECT * FROM {}").format(view(b, "rooms")))

    # granting another tenant moves the role
    with as_role(conn, "service_role") as c:
        assert c.execute("SELECT tenants.grant_tenant(%s, %s)", (bi, b)).fetchone() == (3,)
    with connect_as(db_dsn, bi) as c:
        assert titles(c, view(b, "work_orders")) == ["B 0", "B 1"]
        assert tenants_in(c, "optiqoflow.work_orders") == {b}
        for table in ("work_orders", "zones", "rooms"):
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(sql.SQL("SELECT * FROM {}").format(view(a, table)))


def test_grant_tenant_refuses_roles_it_cannot_limit(
    conn: psycopg.Connection[Any], make_role: Callable[..., str], tenant: str
) -> None:
    shared = ["authenticated", "anon", "service_role", "optiqoflow_tenant_reader"]
    for role in [*shared, make_role("su", "SUPERUSER"), make_role("bypass", "BYPASSRLS")]:
        with pytest.raises(psycopg.Error) as caught:
            conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, tenant))
        assert caught.value.sqlstate == "OF015", (role, caught.value)
    assert conn.execute("SELECT count(*) FROM tenants.role_tenants").fetchone() == (0,)


def interleave(
    db_dsn: str,
    first: Callable[[psycopg.Connection[Any]], Any],
    second: Callable[[psycopg.Connection[Any]], Any],
) -> Any:
    """Run first(c1) in a transaction left open, then second(c2) on another connection;
    commit c1 once second has finished or waits on a lock. Deterministic, no sleeps to
    order things. Returns second's result, or the exception it raised."""
    result: dict[str, Any] = {}
    pids: list[int] = []

    def run() -> None:
        try:
            with psycopg.connect(db_dsn, autocommit=True, options="-c statement_timeout=20s") as c2:
                pids.append(c2.info.backend_pid)
                result["value"] = second(c2)
        except BaseException as e:
            result["value"] = e

    with psycopg.connect(db_dsn) as c1, psycopg.connect(db_dsn, autocommit=True) as monitor:
        first(c1)
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while thread.is_alive() and time.monotonic() < deadline:
            waiting = pids and monitor.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (pids[0],)
            ).fetchone() == (True,)
            if waiting:
                break
            time.sleep(0.01)
        c1.commit()
        thread.join(timeout=20)
    assert not thread.is_alive(), "the second connection hung"
    return result["value"]


@pytest.mark.parametrize("push_kind", ["first_view", "recreated_view"])
@pytest.mark.parametrize("order", ["push_then_grant", "grant_then_push"])
def test_grant_tenant_racing_a_push_loses_no_view(
    conn: psycopg.Connection[Any],
    db_dsn: str,
    make_role: Callable[..., str],
    order: str,
    push_kind: str,
) -> None:
    """A push that creates or recreates one of the tenant's views while a DBA grants the
    tenant to a role: no error either side, and the role reads every view afterwards."""
    a = str(uuid.uuid4())
    push(conn, a, title="t")
    bi = make_role("bi")

    def do_push(c: psycopg.Connection[Any]) -> Any:
        if push_kind == "first_view":
            return push(c, a, "site_rooms", name="room")["status"]
        # site_id comes before title in the table: the view is dropped and recreated
        return push(c, a, site_id=str(uuid.uuid4()))["status"]

    def do_grant(c: psycopg.Connection[Any]) -> Any:
        return c.execute("SELECT tenants.grant_tenant(%s, %s)", (bi, a)).fetchone()

    if order == "push_then_grant":
        outcome = interleave(db_dsn, do_push, do_grant)
    else:
        outcome = interleave(db_dsn, do_grant, do_push)
    assert not isinstance(outcome, BaseException), repr(outcome)

    views = [r[0] for r in conn.execute(
        "SELECT relname FROM pg_class WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' AND relname <> 'sync_status'"
    )]  # fmt: skip
    assert len(views) == (2 if push_kind == "first_view" else 1)
    with connect_as(db_dsn, bi) as c:
        for name in views:
            c.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier("tenants", name)))


# --- service_role ------------------------------------------------------------------


def test_service_role_sees_everything_and_applies_deliveries(conn: psycopg.Connection[Any]) -> None:
    a, b, _ = two_tenants(conn)
    fresh = str(uuid.uuid4())
    with as_role(conn, "service_role") as c:
        # the receiver's role: a first push with a new column (ALTER, CREATE VIEW, GRANT)
        answer = apply(c, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": fresh,
                           "record": rec(title="C", service_note="n")})  # fmt: skip
        assert answer["status"] == "applied", answer
        assert tenants_in(c, "optiqoflow.work_orders") == {a, b, fresh}
        assert titles(c, view(a, "work_orders")) == ["A 0", "A 1"]
        assert titles(c, view(b, "work_orders")) == ["B 0", "B 1"]
        assert titles(c, view(fresh, "work_orders")) == ["C"]
        for table in BOOKKEEPING:
            c.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table)))
        logs = c.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone()
        assert logs is not None and logs[0] == 5


# --- functions and bookkeeping tables --------------------------------------------------


def write_functions(c: psycopg.Connection[Any]) -> list[tuple[int, str, sql.Composable]]:
    """(oid, signature, a call with NULL arguments) of every overload of the write functions."""
    found = []
    for schema, name in WRITE_FUNCTIONS:
        rows = c.execute(
            """
            SELECT p.oid, p.oid::regprocedure::text,
                   ARRAY(SELECT format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, o) ORDER BY o)
              FROM pg_proc p WHERE p.pronamespace = %s::regnamespace AND p.proname = %s
            """,
            (schema, name),
        ).fetchall()
        assert rows, f"{schema}.{name} is missing"
        for oid, signature, types in rows:
            call = sql.SQL("SELECT {}({})").format(
                sql.Identifier(schema, name),
                sql.SQL(", ").join(sql.SQL("NULL::" + t) for t in types),
            )
            found.append((oid, signature, call))
    return found


def test_only_service_role_executes_the_write_functions(
    conn: psycopg.Connection[Any], make_role: Callable[..., str]
) -> None:
    nobody = make_role("nobody")  # holds nothing but what PUBLIC holds
    for oid, signature, call in write_functions(conn):
        granted_to_public = conn.execute(
            "SELECT EXISTS (SELECT FROM pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x"
            "                WHERE p.oid = %s AND x.grantee = 0 AND x.privilege_type = 'EXECUTE')",
            (oid,),
        ).fetchone()
        assert granted_to_public == (False,), f"PUBLIC can execute {signature}"
        for role in ("anon", "authenticated", nobody):
            assert conn.execute(
                "SELECT has_function_privilege(%s, %s, 'EXECUTE')", (role, oid)
            ).fetchone() == (False,), (role, signature)
            with (
                pytest.raises(errors.InsufficientPrivilege),
                as_role(conn, role, {"tenant_id": str(uuid.uuid4())}) as c,
            ):
                c.execute(call)
        assert conn.execute(
            "SELECT has_function_privilege('service_role', %s, 'EXECUTE')", (oid,)
        ).fetchone() == (True,), signature


def test_bookkeeping_tables_are_not_readable_by_tenants(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Callable[..., str], tenant: str
) -> None:
    push(conn, tenant, title="t")
    bi = make_role("bi")
    nobody = make_role("nobody")
    conn.execute("SELECT tenants.grant_tenant(%s, %s)", (bi, tenant))
    for table in BOOKKEEPING:
        for role in ("anon", "authenticated", bi, nobody):
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                assert conn.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)
                ).fetchone() == (False,), (role, table, privilege)
            with (
                pytest.raises(errors.InsufficientPrivilege),
                as_role(conn, role, {"tenant_id": tenant}) as c,
            ):
                c.execute(sql.SQL("SELECT * FROM {}").format(sql.SQL(table)))
        assert conn.execute(
            "SELECT has_table_privilege('service_role', %s, 'SELECT')", (table,)
        ).fetchone() == (True,)
    # the same, on a real login of the tenant's role
    with connect_as(db_dsn, bi) as c:
        for table in BOOKKEEPING:
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(sql.SQL("SELECT * FROM {}").format(sql.SQL(table)))


def test_security_definer_functions_fix_their_search_path(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        """
        SELECT p.oid::regprocedure::text, p.proconfig,
               EXISTS (SELECT FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x
                        WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE')
          FROM pg_proc p
         WHERE p.prosecdef
           AND p.pronamespace IN ('optiqoflow'::regnamespace, 'tenants'::regnamespace, 'public'::regnamespace)
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                             AND d.objid = p.oid AND d.deptype = 'e')
        """
    ).fetchall()
    definers = {signature for signature, _, _ in rows}
    writes = {signature for _, signature, _ in write_functions(conn)}
    assert writes <= definers, f"write functions that are not SECURITY DEFINER: {writes - definers}"
    for signature, config, public_execute in rows:
        paths = [c.split("=", 1)[1] for c in config or [] if c.startswith("search_path=")]
        assert paths, f"{signature} has no fixed search_path"
        schemas = [s.strip().strip('"') for s in paths[0].split(",")]
        # pg_temp last (else it is searched first), nothing a caller could create objects in
        assert schemas[-1] == "pg_temp" and set(schemas) <= {"pg_catalog", "pg_temp"}, (
            signature,
            paths[0],
        )
        assert not public_execute, f"PUBLIC can execute the SECURITY DEFINER function {signature}"


def test_callers_temp_tables_named_like_ours_capture_nothing(db_dsn: str, tenant: str) -> None:
    """Every object a SECURITY DEFINER function touches is schema-qualified: a caller's
    temporary tables named like ours capture nothing."""
    ours = {
        "webhook_logs": "optiqoflow", "tombstones": "optiqoflow", "delivery_keys": "optiqoflow",
        "table_mappings": "optiqoflow", "work_orders": "optiqoflow", "zones": "optiqoflow",
        "tenant_column_access": "tenants", "tenant_data_push_log": "tenants",
    }  # fmt: skip
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("SET ROLE service_role")  # the receiver's role
        for name, schema in ours.items():
            c.execute(
                sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING ALL)").format(
                    sql.Identifier(name), sql.Identifier(schema, name)
                )
            )
        # a temp mapping that would send work orders into zones, were it read
        c.execute(
            "INSERT INTO pg_temp.table_mappings SELECT * FROM optiqoflow.table_mappings WHERE source_table <> 'zone_categories'"
        )
        c.execute(
            "UPDATE pg_temp.table_mappings SET target_table = 'zones' WHERE source_table = 'adhoc_work_orders'"
        )
        c.execute("SET search_path = pg_temp, optiqoflow, tenants, public")

        record = rec(title="t", temp_probe="p")
        answers = [
            apply(
                c,
                {
                    "type": "INSERT",
                    "table": "adhoc_work_orders",
                    "tenant_id": tenant,
                    "record": record,
                    "event_id": "ev-1",
                },
                "d-1",
            ),
            apply(
                c,
                {
                    "type": "DELETE",
                    "table": "adhoc_work_orders",
                    "tenant_id": tenant,
                    "old_record": rec(),
                },
            ),
            apply(
                c,
                {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant, "record": rec()},
            ),
        ]
        assert [a["status"] for a in answers] == ["applied", "applied", "refused"], answers

        for name in ours:
            expected = 20 if name == "table_mappings" else 0
            assert c.execute(
                sql.SQL("SELECT count(*) FROM pg_temp.{}").format(sql.Identifier(name))
            ).fetchone() == (expected,), name
        assert c.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone() == (3,)
        assert c.execute(
            "SELECT count(*) FROM optiqoflow.tombstones WHERE tenant_id = %s", (tenant,)
        ).fetchone() == (1,)
        assert c.execute("SELECT count(*) FROM optiqoflow.delivery_keys").fetchone() == (2,)
        assert c.execute(
            "SELECT title FROM optiqoflow.work_orders WHERE id = %s", (record["id"],)
        ).fetchone() == ("t",)
        assert c.execute("SELECT count(*) FROM optiqoflow.zones").fetchone() == (0,)
        assert c.execute(
            "SELECT count(*) FROM tenants.tenant_column_access WHERE tenant_id = %s", (tenant,)
        ).fetchone() == (1,)
        assert c.execute(
            "SELECT count(*) FROM tenants.tenant_data_push_log WHERE tenant_id = %s", (tenant,)
        ).fetchone() == (2,)


# --- leaky functions -----------------------------------------------------------------

LEAK = """
CREATE FUNCTION public.leak(anyelement) RETURNS bool LANGUAGE plpgsql COST 0.0000001
AS $$BEGIN RAISE NOTICE 'leak %', $1; RETURN true; END$$
"""


@pytest.mark.parametrize("reader", ["authenticated_of_b", "role_given_b", "bypassrls_role"])
def test_a_leaky_function_never_sees_other_tenants_rows(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Callable[..., str], reader: str
) -> None:
    """security_barrier: a cheap function in the WHERE clause of a query on A's view, by a
    role that could otherwise see B's rows, must be called with A's rows only."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for n in range(3):
        push(conn, a, title=f"A-{n}")
        push(conn, b, title=f"B-secret-{n}")
    conn.execute(LEAK)
    a_view = view(a, "work_orders")
    # the same view without security_barrier, to show the test would catch one
    row = conn.execute(
        "SELECT pg_get_viewdef(to_regclass(format('tenants.%%I', %s::text)))", (f"{a}_work_orders",)
    ).fetchone()
    assert row is not None and row[0]
    conn.execute(
        sql.SQL("CREATE VIEW public.no_barrier WITH (security_invoker = true) AS {}").format(
            sql.SQL(row[0])
        )
    )

    role = "authenticated"
    claims: dict[str, str] | None = None
    if reader == "authenticated_of_b":
        claims = {"tenant_id": b}
        conn.execute("GRANT SELECT ON public.no_barrier TO authenticated")
    elif reader == "role_given_b":
        role = make_role("bi")
        conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, b))
        # a DBA's slip: A's view granted too
        conn.execute(
            sql.SQL("GRANT SELECT ON {}, public.no_barrier TO {}").format(
                a_view, sql.Identifier(role)
            )
        )
    else:
        role = make_role("reporting", "BYPASSRLS")
        conn.execute(
            sql.SQL(
                "GRANT USAGE ON SCHEMA optiqoflow, tenants TO {0};"
                " GRANT SELECT ON optiqoflow.work_orders, {1}, public.no_barrier TO {0}"
            ).format(sql.Identifier(role), a_view)
        )

    def leaked(c: psycopg.Connection[Any], relation: sql.Composable) -> tuple[list[str], list[str]]:
        notices: list[str] = []
        c.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        with c.transaction():
            if role == "authenticated":
                c.execute("SET LOCAL ROLE authenticated")
                c.execute(
                    "SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),)
                )
            # the attacker picks the plan most likely to call the function first
            c.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off;"
                      " SET LOCAL enable_indexonlyscan = off")  # fmt: skip
            rows = [
                r[0]
                for r in c.execute(
                    sql.SQL("SELECT v.title FROM {} v WHERE public.leak(v.title)").format(relation)
                )
            ]
            c.execute(sql.SQL("SELECT 1 FROM {} v WHERE public.leak(v.tenant_id)").format(relation))
        return rows, notices

    if role == "authenticated":
        rows, notices = leaked(conn, a_view)
    else:
        with connect_as(db_dsn, role) as c:
            rows, notices = leaked(c, a_view)
    assert all(t.startswith("A-") for t in rows), rows
    assert not [n for n in notices if "B-secret" in n or b in n], notices

    if reader == "bypassrls_role":
        assert sorted(rows) == ["A-0", "A-1", "A-2"]
        with connect_as(db_dsn, role) as c:
            _, control = leaked(c, sql.SQL("public.no_barrier"))
        assert [n for n in control if "B-secret" in n], (
            "the control view without security_barrier did not leak"
        )
