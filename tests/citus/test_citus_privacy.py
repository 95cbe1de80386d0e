"""Privacy on Citus (README, "Privacy"; issue 23 point 6): erase_tenant, the closed
tenant's refusal on the worker path, readmit_tenant, erase_record and column policies on
a cluster, driven as optiqoflow_admin through the coordinator.

Like tests/citus/test_citus.py: marked `citus`, they run against OPTIQOFLOW_CITUS_DSN
(migrated to head and distributed by the module's fixture) with fresh tenants only, and
skip without it. Column policies are database-wide: each test sets back what it set."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.citus.test_citus import NIL, T, cc, cluster, deliver  # noqa: F401 (fixtures)
from tests.helpers import rec

pytestmark = pytest.mark.citus


def as_admin(c: psycopg.Connection[Any], query: str, params: tuple[Any, ...]) -> Any:
    """One call as a member of optiqoflow_admin would make it (SET LOCAL ROLE)."""
    with c.transaction():
        c.execute("SET LOCAL ROLE optiqoflow_admin")
        row = c.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def erase(c: psycopg.Connection[Any], tenant: str) -> dict[str, Any]:
    for _ in range(1000):
        receipt: dict[str, Any] = as_admin(
            c, "SELECT optiqoflow.erase_tenant(%s, 'left')", (tenant,)
        )
        if receipt["complete"]:
            return receipt
    raise AssertionError("erase_tenant never completed")


def holding(c: psycopg.Connection[Any], needle: str) -> dict[str, int]:
    """Rows of our tables (through the coordinator) whose text holds `needle`."""
    hits: dict[str, int] = {}
    for (rel,) in c.execute(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('optiqoflow', 'tenants', 'public') AND c.relkind IN ('r', 'p')"
        "   AND NOT c.relispartition ORDER BY 1"
    ).fetchall():
        row = c.execute(
            f"SELECT count(*) FROM {rel} t WHERE strpos(lower(t::text), %s) > 0", (needle.lower(),)
        ).fetchone()
        if row and row[0]:
            hits[rel] = row[0]
    return hits


@pytest.fixture
def policies(cc: psycopg.Connection[Any]) -> Iterator[list[tuple[str, str]]]:  # noqa: F811
    """Column policies a test sets, set back to keep afterwards (the cluster is shared)."""
    made: list[tuple[str, str]] = []
    yield made
    for table, column in made:
        as_admin(cc, "SELECT optiqoflow.set_column_policy(%s, %s, 'keep')", (table, column))


def test_erase_tenant_on_the_cluster(cc: psycopg.Connection[Any]) -> None:  # noqa: F811
    tenant, mark = str(uuid.uuid4()), f"MARKER-{uuid.uuid4().hex[:10]}"
    rid = str(uuid.uuid4())
    answer, path = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                                "event_id": f"ev-{rid}", "record": rec(rid, T(1), title=mark)})  # fmt: skip
    assert (answer["status"], path) == ("applied", "coordinator")  # its first push makes its view
    refused, _ = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                              "record": rec(None, T(2), priority=mark)})  # fmt: skip
    assert refused["status"] == "refused"
    deliver(cc, {"type": "DELETE", "table": "adhoc_work_orders", "tenant_id": tenant,
                 "old_record": {"id": str(uuid.uuid4())}, "occurred_at": T(3)})  # fmt: skip
    assert holding(cc, mark)

    receipt = erase(cc, tenant)
    assert receipt["removed"]["optiqoflow.work_orders"] == 1
    assert holding(cc, mark) == {}
    assert set(holding(cc, tenant)) == {"optiqoflow.tenant_erasures"}

    # closed: refused on the tenant's worker, logged under the nil UUID without payload
    again, path = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                               "event_id": f"ev-{rid}", "record": rec(rid, T(1), title=mark)})  # fmt: skip
    assert (again["status"], again["sqlstate"]) == ("refused", "OF028"), (again, path)
    logged = cc.execute(
        "SELECT tenant_id::text, payload, delivery_id FROM optiqoflow.webhook_logs WHERE id = %s",
        (again["log_id"],),
    ).fetchone()
    assert logged == (NIL, None, None)

    back = as_admin(cc, "SELECT optiqoflow.readmit_tenant(%s)", (tenant,))
    assert back["receipt"]["complete"]
    applied, _ = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                              "event_id": f"ev-{rid}", "record": rec(rid, T(1), title="back")})  # fmt: skip
    assert applied["status"] == "applied"


def test_erase_record_on_the_cluster(cc: psycopg.Connection[Any]) -> None:  # noqa: F811
    tenant, person, mark = str(uuid.uuid4()), str(uuid.uuid4()), f"MARKER-{uuid.uuid4().hex[:10]}"
    deliver(cc, {"type": "INSERT", "table": "staff_members", "tenant_id": tenant,
                 "record": rec(person, T(1), first_name=mark)})  # fmt: skip
    receipt = as_admin(
        cc, "SELECT optiqoflow.erase_record(%s, 'staff_members', %s, 'asked')", (tenant, person)
    )
    assert receipt["removed"]["optiqoflow.employees"] == 1
    assert holding(cc, mark) == {}
    late, _ = deliver(cc, {"type": "INSERT", "table": "staff_members", "tenant_id": tenant,
                           "record": rec(person, T(1), first_name=mark)})  # fmt: skip
    assert late["status"] == "stale"


def test_column_policies_on_the_cluster(
    cc: psycopg.Connection[Any],  # noqa: F811
    policies: list[tuple[str, str]],
) -> None:
    tenant, mail = str(uuid.uuid4()), f"MARKER-{uuid.uuid4().hex[:10]}@example.com"
    for column, policy in (("email", "block"), ("last_name", "hash")):
        as_admin(
            cc, "SELECT optiqoflow.set_column_policy('staff_members', %s, %s)", (column, policy)
        )
        policies.append(("staff_members", column))
    answer, path = deliver(cc, {"type": "INSERT", "table": "staff_members", "tenant_id": tenant,
                                "record": rec(None, T(1), email=mail, last_name="Virtanen")})  # fmt: skip
    assert (answer["status"], path) == ("applied", "coordinator")  # its first push makes its view
    assert holding(cc, mail) == {} and holding(cc, "Virtanen") == {}
    hashed = cc.execute(
        "SELECT last_name FROM optiqoflow.employees WHERE tenant_id = %s", (tenant,)
    ).fetchone()
    assert hashed is not None and hashed[0].startswith("h:")
    done = as_admin(cc, "SELECT optiqoflow.apply_column_policies('staff_members')", ())
    assert "complete" in done
