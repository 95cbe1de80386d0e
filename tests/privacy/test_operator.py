"""Offboarding as an operator does it: the receiver's answer to a closed tenant (HTTP
422 with a log_id whose row names neither the tenant nor holds the payload), and the
command line (`optiqoflow erase-tenant`, `optiqoflow readmit-tenant`)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD, apply, rec, upsert
from tests.http_helpers import receiver_config, serving
from tests.operations.processes import environment, one_line, optiqoflow
from tests.privacy.helpers import dba, erase, marker, search


async def test_a_closed_tenants_delivery_is_422_and_logged_without_it(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="optiqoflow.receiver")
    tenant, mark = str(uuid.uuid4()), marker()
    async with serving(receiver_config(db_dsn)) as ep:
        first = await ep.post(upsert(tenant, rec(None, 1, title=mark)))
        assert first.status == 200, first.body
        with dba(conn, db_dsn, make_role) as admin:
            erase(admin, tenant)
        reply = await ep.post(upsert(tenant, rec(None, 2, title=mark)), delivery_id="retry-1")
    assert reply.status == 422, reply.body
    assert reply.body["sqlstate"] == "OF028" and "tenant_id" not in reply.body
    row = conn.execute(
        "SELECT to_jsonb(l) FROM optiqoflow.webhook_logs l WHERE id = %s", (reply.body["log_id"],)
    ).fetchone()
    assert row is not None
    logged = row[0]
    assert logged["outcome"] == "refused" and logged["tenant_id"] is None
    assert logged["payload"] is None and logged["delivery_id"] is None
    assert tenant not in json.dumps(logged) and mark not in json.dumps(logged)
    assert search(conn, tenant, mark) == {"optiqoflow.tenant_erasures": 1}
    # the receiver's own log line of it names no tenant either
    (line,) = [
        r for r in caplog.records if getattr(r, "fields", {}).get("log_id") == reply.body["log_id"]
    ]
    assert line.fields["tenant"] is None and line.fields["http_status"] == 422  # type: ignore[attr-defined]
    assert tenant not in str(line.fields) and mark not in str(line.fields)  # type: ignore[attr-defined]


def test_the_command_line_erases_and_readmits(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, mark = str(uuid.uuid4()), marker()
    for n in range(7):
        apply(conn, upsert(tenant, rec(None, n + 1, title=mark)))
    name = make_role("dba")
    conn.execute(sql.SQL("GRANT optiqoflow_admin TO {}").format(sql.Identifier(name)))
    env = environment(DATABASE_URL=make_conninfo(db_dsn, user=name, password=PASSWORD))

    unconfirmed = optiqoflow("erase-tenant", tenant, "--reason", "left", env=env)
    assert unconfirmed.returncode == 2
    assert "--yes" in one_line(unconfirmed.stderr)
    assert conn.execute("SELECT count(*) FROM optiqoflow.tenant_erasures").fetchone() == (0,)

    done = optiqoflow(
        "erase-tenant", tenant, "--reason", "left", "--yes", "--chunk-rows", "3", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert receipt["complete"] and receipt["removed"]["optiqoflow.work_orders"] == 7
    assert receipt["calls"] >= 3
    assert search(conn, tenant, mark) == {"optiqoflow.tenant_erasures": 1}

    human = optiqoflow("erase-tenant", tenant, "--reason", "left", "--yes", env=env)
    assert human.returncode == 0 and "erased at" in human.stdout

    back = optiqoflow("readmit-tenant", tenant, env=env)
    assert back.returncode == 0, back.stderr
    assert "readmitted" in back.stdout
    again = optiqoflow("readmit-tenant", tenant, env=env)
    assert again.returncode == 1
    assert "[OF030]" in one_line(again.stderr)

    service = make_role("svc", "IN ROLE service_role")
    refused = optiqoflow(
        "erase-tenant", tenant, "--reason", "x", "--yes",
        env=environment(DATABASE_URL=make_conninfo(db_dsn, user=service, password=PASSWORD)),
    )  # fmt: skip
    assert refused.returncode == 1
    assert "42501" in one_line(refused.stderr)
    bad = optiqoflow("erase-tenant", "not-a-uuid", "--reason", "x", "--yes", env=env)
    assert bad.returncode == 2 and "not a tenant UUID" in one_line(bad.stderr)


def test_a_view_held_by_a_dashboard_makes_a_call_fail_and_the_next_one_finish(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    """Dropping the tenant's views waits at most optiqoflow.ddl_lock_timeout (2s) for a
    dashboard query holding one; that call rolls back alone and the command tries again."""
    import threading
    import time

    from operations.privacy import erase_tenant

    tenant = str(uuid.uuid4())
    apply(conn, upsert(tenant, rec(None, 1, title="x")))
    with psycopg.connect(db_dsn) as dashboard, dba(conn, db_dsn, make_role) as admin:
        dashboard.execute(f'SELECT count(*) FROM tenants."{tenant}_work_orders"')  # holds it
        release = threading.Timer(3.5, dashboard.rollback)
        release.start()
        t0 = time.monotonic()
        receipt = erase_tenant(admin, tenant, "left")
        took = time.monotonic() - t0
        release.join()
    assert receipt["complete"] and receipt["removed"]["tenant views"] == 1
    assert 3 < took < 15, took
    assert search(conn, tenant) == {"optiqoflow.tenant_erasures": 1}
