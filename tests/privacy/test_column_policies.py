"""Column policies for personal data (README, "Privacy"): `block` keeps a key out of the
table, kept payloads, tracking and views; `hash` stores a keyed hash that still groups;
both from the next delivery, and optiqoflow.apply_column_policies rewrites what was
stored before, in bounded calls."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from tests.helpers import PASSWORD, apply, full_sync, rec, upsert
from tests.privacy.helpers import dba, marker, search

STAFF = "staff_members"


def policy(admin: psycopg.Connection[Any], table: str, column: str, value: str) -> dict[str, Any]:
    row = admin.execute(
        "SELECT optiqoflow.set_column_policy(%s, %s, %s)", (table, column, value)
    ).fetchone()
    assert row is not None
    answer: dict[str, Any] = row[0]
    return answer


def rewrite(admin: psycopg.Connection[Any], table: str) -> list[dict[str, Any]]:
    answers = []
    for _ in range(1000):
        row = admin.execute("SELECT optiqoflow.apply_column_policies(%s)", (table,)).fetchone()
        assert row is not None
        answers.append(row[0])
        if row[0]["complete"]:
            return answers
    raise AssertionError("apply_column_policies never completed")


def view_columns(conn: psycopg.Connection[Any], tenant: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = format('tenants.%%I', %s::text)::regclass"
            " AND attnum > 0 ORDER BY attnum",
            (f"{tenant}_employees",),
        ).fetchall()
    ]


def test_block_and_hash_from_the_next_delivery_and_rewritten_before(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant = str(uuid.uuid4())
    old_mail, new_mail = f"{marker()}@example.com", f"{marker()}@example.com"
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    # before any policy: stored in clear, tracked, in the view, kept in a refused payload
    apply(conn, upsert(tenant, rec(a, 1, email=old_mail, last_name="Virtanen"), table=STAFF))
    refused = apply(
        conn, upsert(tenant, rec(a, 2, email=old_mail, hourly_cost_eur="x"), table=STAFF)
    )
    assert refused["status"] == "refused"
    assert "email" in view_columns(conn, tenant)
    with dba(conn, db_dsn, make_role) as admin:
        assert policy(admin, STAFF, "email", "block")["was"] == "keep"
        assert policy(admin, "employees", "last_name", "hash")["policy"] == "hash"
        for bad in (("employees", "hourly_cost_eur", "hash"), ("employees", "id", "block"),
                    ("employees", "tenant_id", "hash"), ("employees", "updated_at", "block"),
                    ("employees", "email", "mask")):  # fmt: skip
            with pytest.raises(psycopg.Error) as e:
                policy(admin, *bad)
            assert e.value.sqlstate == "OF031", bad

        # the next deliveries: real-time, FULL_SYNC, a refused one
        apply(conn, upsert(tenant, rec(b, 1, email=new_mail, last_name="Virtanen"), table=STAFF))
        # a FULL_SYNC batch past offset 0 without a total: no run completes, no row goes
        synced = apply(conn, full_sync(tenant, [rec(None, 1, email=new_mail, last_name="Korhonen")], 5,
                                       table=STAFF))  # fmt: skip
        assert synced["status"] == "applied", synced
        apply(conn, upsert(tenant, rec(b, 3, email=new_mail, hourly_cost_eur="y"), table=STAFF))
        assert search(conn, new_mail) == {}
        names = conn.execute(
            "SELECT last_name, count(*) FROM optiqoflow.employees WHERE id <> %s GROUP BY 1 ORDER BY 2 DESC",
            (a,),
        ).fetchall()  # fmt: skip
        assert [n for _, n in names] == [1, 1] and all(v.startswith("h:") for v, _ in names)
        # the row written before still holds the old value: rewritten on demand
        assert "optiqoflow.employees" in search(conn, old_mail)
        admin.execute("SET optiqoflow.erase_chunk_rows = 1")
        calls = rewrite(admin, STAFF)
    assert len(calls) >= 2 and all(c["rows"] <= 1 for c in calls)
    assert search(conn, old_mail) == {} and search(conn, "Virtanen") == {}
    assert "email" not in view_columns(conn, tenant) and "last_name" in view_columns(conn, tenant)
    # equal values hash equally: the two Virtanens group together
    grouped = conn.execute(
        "SELECT count(DISTINCT last_name), count(*) FILTER (WHERE email IS NOT NULL)"
        " FROM optiqoflow.employees WHERE tenant_id = %s", (tenant,),
    ).fetchone()  # fmt: skip
    assert grouped == (2, 0)
    # the key: nobody but the owner
    for role in ("svc", "dba"):
        name = make_role(
            role, "IN ROLE service_role" if role == "svc" else "IN ROLE optiqoflow_admin"
        )
        with (
            psycopg.connect(make_conninfo(db_dsn, user=name, password=PASSWORD)) as c,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            c.execute("SELECT * FROM optiqoflow.column_hash_key")


def test_back_to_keep_stores_again(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, mail = str(uuid.uuid4()), f"{marker()}@example.com"
    with dba(conn, db_dsn, make_role) as admin:
        policy(admin, STAFF, "email", "block")
        apply(conn, upsert(tenant, rec(None, 1, email=mail), table=STAFF))
        assert search(conn, mail) == {}
        assert policy(admin, STAFF, "email", "keep")["was"] == "block"
        apply(conn, upsert(tenant, rec(None, 2, email=mail), table=STAFF))
    assert "optiqoflow.employees" in search(conn, mail)
