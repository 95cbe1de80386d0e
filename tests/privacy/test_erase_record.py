"""A data subject's request (README, "Privacy"): optiqoflow.erase_record removes one
record and its traces, keeps a tombstone, and records a receipt; then no table of the
database holds a value it sent."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD, apply, full_sync, rec, upsert
from tests.operations.processes import environment, one_line, optiqoflow
from tests.privacy.helpers import dba, marker, search


def test_a_record_and_its_traces_go_and_a_tombstone_stays(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, person, other = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    name, email = marker(), f"{marker()}@example.com"
    apply(conn, upsert(tenant, rec(person, 1, first_name=name, email=email), table="staff_members"))
    apply(conn, upsert(tenant, rec(other, 1, first_name="Kept"), table="staff_members"))
    apply(conn, full_sync(tenant, [rec(person, 2, first_name=name, email=email),
                                   rec(other, 2, first_name="Kept")], 0, 2, table="staff_members"))  # fmt: skip
    # a refused update of it (hourly_cost_eur is numeric) keeps its payload, and its error text
    refused = apply(conn, upsert(tenant, rec(person, 3, first_name=name, hourly_cost_eur=name),
                                 table="staff_members"))  # fmt: skip
    assert refused["status"] == "refused" and name in refused["error"]
    conn.execute(
        "WITH ch AS (INSERT INTO public.charts (tenant_id, title, query) VALUES (%(t)s, 'staff', 'x')"
        "            RETURNING id),"
        "     dep AS (INSERT INTO public.chart_table_dependencies SELECT id, 'employees' FROM ch)"
        " INSERT INTO public.chart_data_cache (chart_id, tenant_id, data)"
        " SELECT id, %(t)s, jsonb_build_array(%(m)s::text, %(e)s::text) FROM ch",
        {"t": tenant, "m": name, "e": email},
    )
    assert {
        "optiqoflow.employees",
        "optiqoflow.refused_deliveries",
        "public.chart_data_cache",
    } <= set(search(conn, name))

    with dba(conn, db_dsn, make_role) as admin:
        row = admin.execute(
            "SELECT optiqoflow.erase_record(%s, 'staff_members', %s, 'request of 2026-12-07')",
            (tenant, person),
        ).fetchone()
    assert row is not None
    receipt = row[0]
    assert receipt["table"] == "employees" and receipt["removed"] == {
        "optiqoflow.employees": 1, "optiqoflow.refused_deliveries": 1, "public.chart_data_cache": 1,
    }  # fmt: skip
    assert search(conn, name) == {} and search(conn, email) == {}
    # the other record stays; the tombstone and the receipt name the id, no value
    assert conn.execute(
        "SELECT first_name FROM optiqoflow.employees WHERE tenant_id = %s", (tenant,)
    ).fetchall() == [("Kept",)]
    assert set(search(conn, person)) == {"optiqoflow.tombstones", "optiqoflow.record_erasures"}
    # an old retry, or the FULL_SYNC batch again, cannot bring it back
    late = apply(conn, upsert(tenant, rec(person, 3, first_name=name), table="staff_members"))
    assert late["status"] == "stale", late
    assert search(conn, name) == {}


def test_erase_record_as_the_operator(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, record, mark = str(uuid.uuid4()), str(uuid.uuid4()), marker()
    apply(conn, upsert(tenant, rec(record, 1, title=mark)))
    name = make_role("dba")
    conn.execute(sql.SQL("GRANT optiqoflow_admin TO {}").format(sql.Identifier(name)))
    env = environment(DATABASE_URL=make_conninfo(db_dsn, user=name, password=PASSWORD))
    no = optiqoflow("erase-record", tenant, "adhoc_work_orders", record, "--reason", "r", env=env)
    assert no.returncode == 2 and "--yes" in one_line(no.stderr)
    unknown = optiqoflow("erase-record", tenant, "nope", record, "--reason", "r", "--yes", env=env)
    assert unknown.returncode == 1 and "[OF001]" in one_line(unknown.stderr)
    done = optiqoflow(
        "erase-record", tenant, "work_orders", record, "--reason", "r", "--yes", "--json", env=env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["removed"]["optiqoflow.work_orders"] == 1
    assert search(conn, mark) == {}
    service = make_role("svc", "IN ROLE service_role")
    with (
        psycopg.connect(make_conninfo(db_dsn, user=service, password=PASSWORD)) as c,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        c.execute("SELECT optiqoflow.erase_record(%s, 'work_orders', %s, 'r')", (tenant, record))
