"""Offboarding a tenant (README, "Privacy"): optiqoflow.erase_tenant and readmit_tenant,
driven as an operator does, as a member of optiqoflow_admin.

The proof: a tenant that arrived by every path (real-time, FULL_SYNC, BATCH, a refused
delivery, an unusable body, a cached chart, a role given it) is erased, then every table
of the database is searched for its id and a marker value it sent: nothing but the
receipt remains. Another tenant's data is untouched."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import errors

from tests.helpers import SOURCE, apply, delete, envelope, full_sync, rec, upsert
from tests.privacy.helpers import dba, dumps, erase, marker, search

CHART_SQL = "SELECT status, count(*) FROM optiqoflow.work_orders GROUP BY status"


def everything(
    conn: psycopg.Connection[Any], tenant: str, mark: str, role: str | None = None
) -> None:
    """The tenant arrives by every path, each carrying the marker."""
    kept_id, pre = str(uuid.uuid4()), uuid.uuid4().hex[:8]  # delivery ids are opaque
    answers = [
        apply(conn, upsert(tenant, rec(kept_id, 1, title=mark, status="open"), event_id=f"ev-{tenant}-1"), f"{pre}-d-1"),
        apply(conn, upsert(tenant, rec(kept_id, 2, title=mark, status="done"), "UPDATE"), f"{pre}-d-2"),
        apply(conn, delete(tenant, rec(None, 3)), f"{pre}-d-3"),  # a tombstone
        apply(conn, full_sync(tenant, [rec(None, 1, name=mark), rec(None, 1, name="b")], 0, 2, "run-1",
                              table="zone_categories"), f"{pre}-d-4"),
        apply(conn, envelope(tenant, upsert(None, rec(None, 4, description=mark)),
                             upsert(None, rec(None, 4, first_name=mark, email=f"{mark}@example.com"),
                                    table="staff_members")), f"{pre}-d-5"),
    ]  # fmt: skip
    assert [a["status"] for a in answers] == ["applied"] * 5, answers
    refused = apply(
        conn, upsert(tenant, rec(None, 5, priority=mark)), f"{pre}-d-6"
    )  # smallint: 22P02
    assert refused["status"] == "refused"
    body = (
        b'{"type": "INSERT", "tenant_id": "'
        + tenant.encode()
        + b'", "x": "'
        + mark.encode()
        + b'", "x": 1}'
    )
    conn.execute(
        "SELECT optiqoflow.record_unusable_delivery(%s, %s, 'duplicated key')", (body, f"{pre}-d-7")
    )
    # the dashboard: a chart of the tenant's, a shared one, and their cache entries
    conn.execute(
        "WITH ch AS (INSERT INTO public.charts (tenant_id, title, query) VALUES (%(t)s, %(m)s, %(q)s),"
        "                                                                      (NULL, 'shared', %(q)s)"
        "            RETURNING id, tenant_id),"
        "     dep AS (INSERT INTO public.chart_table_dependencies SELECT id, 'work_orders' FROM ch)"
        " INSERT INTO public.chart_data_cache (chart_id, tenant_id, data)"
        " SELECT id, %(t)s, jsonb_build_object('rows', jsonb_build_array(%(m)s)) FROM ch",
        {"t": tenant, "m": mark, "q": CHART_SQL},
    )
    if role is not None:
        conn.execute("SELECT tenants.grant_tenant(%s, %s)", (role, tenant))


def test_erasure_leaves_only_the_receipt(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, other = str(uuid.uuid4()), str(uuid.uuid4())
    mark, other_mark = marker(), marker()
    reader = make_role("bi")
    everything(conn, tenant, mark, reader)
    everything(conn, other, other_mark)
    before = search(conn, tenant, mark)
    assert {"optiqoflow.work_orders", "optiqoflow.refused_deliveries", "optiqoflow.zones",
            "optiqoflow.employees", "public.chart_data_cache", "optiqoflow.tombstones",
            "tenants.role_tenants", "optiqoflow.sync_runs"} <= set(before), before  # fmt: skip
    others_before = search(conn, other, other_mark)

    with dba(conn, db_dsn, make_role) as admin:
        one = conn.execute(
            "SELECT id FROM optiqoflow.employees WHERE tenant_id = %s", (tenant,)
        ).fetchone()
        assert one is not None  # a record erased before: its receipt goes with the tenant
        admin.execute(
            "SELECT optiqoflow.erase_record(%s, 'employees', %s, 'asked')", (tenant, one[0])
        )
        admin.execute("SET optiqoflow.erase_chunk_rows = 4")  # many calls: every step resumes
        answers = erase(admin, tenant)
    receipt = answers[-1]
    stored = {k: v for k, v in receipt.items() if k not in ("rows_this_call", "closed_now")}
    assert len(answers) > 3 and all(a["rows_this_call"] <= 4 for a in answers)
    assert answers[0]["closed_now"] and not any(a["closed_now"] for a in answers[1:])
    removed = receipt["removed"]
    assert removed["optiqoflow.work_orders"] == 2 and removed["optiqoflow.zones"] == 2
    assert removed["optiqoflow.employees"] == 0 and removed["optiqoflow.tombstones"] == 2
    assert removed["optiqoflow.record_erasures"] == 1
    assert removed["optiqoflow.refused_deliveries"] == 2  # the refused payload and the bytes
    assert removed["public.charts"] == 1 and removed["public.chart_data_cache"] == 2
    assert removed["tenants.role_tenants"] == 1 and removed["tenant views"] >= 3
    assert removed["optiqoflow.sync_runs"] == 1 and removed["optiqoflow.delivery_keys"] >= 5
    assert receipt["scrubbed"]["optiqoflow.webhook_logs"] >= 6

    # nothing but the receipt names the tenant; nothing holds the marker
    assert search(conn, tenant, mark) == {"optiqoflow.tenant_erasures": 1}
    row = conn.execute(
        "SELECT reason, erased_at IS NOT NULL, receipt = %s::jsonb FROM optiqoflow.tenant_erasures"
        " WHERE tenant_id = %s", (dumps(stored).decode(), tenant),
    ).fetchone()  # fmt: skip
    assert row == ("contract ended", True, True)
    # the role given it is no reader any more; the other tenant is whole
    assert not conn.execute(
        "SELECT pg_has_role(%s, 'optiqoflow_tenant_reader', 'MEMBER')", (reader,)
    ).fetchone()[0]  # type: ignore[index]
    assert search(conn, other, other_mark) == others_before
    # log rows of its deliveries: time, table, outcome; no payload, ids or errors
    logs = conn.execute(
        "SELECT count(*) FROM optiqoflow.webhook_logs WHERE tenant_id IS NULL AND outcome = 'applied'"
        " AND target_table = 'work_orders' AND delivery_id IS NULL AND payload IS NULL"
    ).fetchone()
    assert logs is not None and logs[0] >= 2

    # a second call returns the receipt, changing nothing
    with dba(conn, db_dsn, make_role) as admin:
        again = admin.execute("SELECT optiqoflow.erase_tenant(%s, 'again')", (tenant,)).fetchone()
    assert again is not None and again[0] == stored | {"rows_this_call": 0, "closed_now": False}


def test_closed_tenant_is_refused_and_kept_nowhere_until_readmitted(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant, mark = str(uuid.uuid4()), marker()
    record = rec(None, 1, title=mark)
    assert apply(conn, upsert(tenant, record, event_id="ev-1"), "d-1")["status"] == "applied"
    with dba(conn, db_dsn, make_role) as admin:
        erase(admin, tenant)

    # every path: real-time, a malformed one, FULL_SYNC, RECONCILE, BATCH, an unusable body
    answers = [
        apply(conn, upsert(tenant, record, event_id="ev-1"), "d-1"),  # the old retry
        apply(conn, upsert(tenant, {"title": mark})),  # no id: refused anyway
        apply(conn, full_sync(tenant, [rec(None, 1, name=mark)], 0, 1, table="zone_categories")),
        apply(conn, {"type": "RECONCILE", "table": SOURCE, "tenant_id": tenant,
                     "read_at": "2026-01-01T00:00:00Z", "buckets": {}}),
    ]
    for a in answers:
        assert (a["status"], a["sqlstate"]) == ("refused", "OF028"), a
        assert "tenant_id" not in a
    batch = apply(conn, envelope(tenant, upsert(None, rec(None, 2, title=mark))), "d-9")
    assert [e["sqlstate"] for e in batch["events"]] == ["OF028"]
    conn.execute(
        "SELECT optiqoflow.record_unusable_delivery(%s, 'd-10', 'not JSON')",
        (f'{{"tenant_id": "{tenant}", "x": "{mark}", '.encode(),),
    )
    assert search(conn, tenant, mark) == {"optiqoflow.tenant_erasures": 1}
    logged = conn.execute(
        "SELECT count(*) FROM optiqoflow.webhook_logs WHERE sqlstate = 'OF028'"
        " AND tenant_id IS NULL AND payload IS NULL AND raw_body IS NULL AND delivery_id IS NULL"
    ).fetchone()
    assert logged is not None and logged[0] == 6
    assert conn.execute("SELECT count(*) FROM optiqoflow.refused_deliveries").fetchone() == (0,)

    with dba(conn, db_dsn, make_role) as admin:
        back = admin.execute("SELECT optiqoflow.readmit_tenant(%s)", (tenant,)).fetchone()
        assert back is not None and back[0]["receipt"]["complete"]
        with pytest.raises(psycopg.Error) as e:  # OF030: not closed any more
            admin.execute("SELECT optiqoflow.readmit_tenant(%s)", (tenant,))
        assert e.value.sqlstate == "OF030"
    # old event ids are new again: the keys went with the tenant
    again = apply(conn, upsert(tenant, record, event_id="ev-1"), "d-1")
    assert again["status"] == "applied", again
    kept = conn.execute(
        "SELECT count(*), count(readmitted_at) FROM optiqoflow.tenant_erasures WHERE tenant_id = %s",
        (tenant,),
    ).fetchone()
    assert kept == (1, 1)


def test_only_optiqoflow_admin_erases(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    service = make_role("svc", "IN ROLE service_role")
    tenant = str(uuid.uuid4())
    from psycopg.conninfo import make_conninfo

    from tests.helpers import PASSWORD

    with psycopg.connect(
        make_conninfo(db_dsn, user=service, password=PASSWORD), autocommit=True
    ) as c:
        for call in (
            "SELECT optiqoflow.erase_tenant(%s, 'x')",
            "SELECT optiqoflow.readmit_tenant(%s)",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                c.execute(call, (tenant,))
    with dba(conn, db_dsn, make_role) as admin:
        with pytest.raises(psycopg.Error) as e:
            admin.execute("SELECT optiqoflow.erase_tenant(%s, ' ')", (tenant,))
        assert e.value.sqlstate == "OF029"
        with pytest.raises(psycopg.Error) as e:
            admin.execute("SELECT optiqoflow.readmit_tenant(%s)", (tenant,))
        assert e.value.sqlstate == "OF030"


def test_readmit_waits_for_a_complete_erasure(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    tenant = str(uuid.uuid4())
    for n in range(5):
        apply(conn, upsert(tenant, rec(None, n + 1, title=f"t{n}")))
    with dba(conn, db_dsn, make_role) as admin:
        admin.execute("SET optiqoflow.erase_chunk_rows = 2")
        first = admin.execute("SELECT optiqoflow.erase_tenant(%s, 'x')", (tenant,)).fetchone()
        assert first is not None and not first[0]["complete"]
        with pytest.raises(psycopg.Error) as e:
            admin.execute("SELECT optiqoflow.readmit_tenant(%s)", (tenant,))
        assert e.value.sqlstate == "OF030"
        # closed already: a delivery is refused while the erasure goes on
        assert apply(conn, upsert(tenant, rec(None, 9)))["sqlstate"] == "OF028"
        erase(admin, tenant)


def test_a_crashed_call_leaves_a_state_the_next_call_completes(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    """A call that fails (here: cancelled by statement_timeout mid-way) rolls back alone."""
    tenant, mark = str(uuid.uuid4()), marker()
    apply(conn, full_sync(tenant, [rec(None, 1, title=mark) for _ in range(3000)], 0, 3000))
    with dba(conn, db_dsn, make_role) as admin:
        admin.execute("SET optiqoflow.erase_chunk_rows = 1000")
        erase_once = "SELECT optiqoflow.erase_tenant(%s, 'x')"
        admin.execute(erase_once, (tenant,))  # closes it, 1000 rows
        admin.execute("SET statement_timeout = '1ms'")
        with pytest.raises(errors.QueryCanceled):
            for _ in range(100):
                admin.execute(erase_once, (tenant,))
        admin.execute("SET statement_timeout = 0")
        erase(admin, tenant)
    assert search(conn, tenant, mark) == {"optiqoflow.tenant_erasures": 1}


def test_the_first_call_waits_for_the_tenants_deliveries_in_flight_not_for_others(
    conn: psycopg.Connection[Any], db_dsn: str, make_role: Any
) -> None:
    """The close: a delivery of the tenant in flight finishes first (its row is erased),
    one that comes during the first call waits for it and is then refused; another
    tenant's delivery does not wait."""
    tenant = str(uuid.uuid4())
    apply(conn, upsert(tenant, rec(None, 1)))
    held = conn.execute(
        "SELECT array_agg(optiqoflow._row_lock_slot(optiqoflow._row_lock_space(%s, m.target_table), b))"
        "  FROM optiqoflow.table_mappings m, generate_series(0, 63) b", (tenant,),
    ).fetchone()[0]  # type: ignore[index]  # fmt: skip
    other, other_id = str(uuid.uuid4()), str(uuid.uuid4())
    while conn.execute(
        "SELECT optiqoflow._row_lock_slot(optiqoflow._row_lock_space(%s, 'work_orders'),"
        " optiqoflow._row_lock_bucket(%s)) = ANY (%s)", (other, other_id, held),
    ).fetchone()[0]:  # type: ignore[index]  # fmt: skip
        other_id = str(uuid.uuid4())

    with (
        psycopg.connect(db_dsn) as in_flight,
        psycopg.connect(db_dsn) as late,
        dba(conn, db_dsn, make_role) as admin,
    ):
        apply(in_flight, upsert(tenant, rec(None, 2)))  # uncommitted: holds its bucket
        result: dict[str, Any] = {}

        def first_call() -> None:
            with admin.transaction():
                result["first"] = admin.execute(
                    "SELECT optiqoflow.erase_tenant(%s, 'x')", (tenant,)
                ).fetchone()
                time.sleep(0.5)  # the late delivery arrives meanwhile
                t0 = time.monotonic()
                while "other" not in result and time.monotonic() - t0 < 5:
                    time.sleep(0.05)

        worker = threading.Thread(target=first_call)
        worker.start()
        time.sleep(0.5)
        assert "first" not in result  # waiting for the delivery in flight
        in_flight.commit()
        t0 = time.monotonic()
        while "first" not in result and time.monotonic() - t0 < 10:
            time.sleep(0.05)

        def late_delivery() -> None:
            result["late"] = apply(late, upsert(tenant, rec(None, 3)))
            late.commit()

        late_worker = threading.Thread(target=late_delivery)
        late_worker.start()
        with psycopg.connect(db_dsn, autocommit=True) as o:
            o.execute("SET lock_timeout = '2s'")
            result["other"] = apply(o, upsert(other, rec(other_id, 1)))
        worker.join(10)
        late_worker.join(10)
        assert result["other"]["status"] == "applied"
        assert (result["late"]["status"], result["late"]["sqlstate"]) == ("refused", "OF028")
        erase(admin, tenant)
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,)
    ).fetchone() == (0,)
