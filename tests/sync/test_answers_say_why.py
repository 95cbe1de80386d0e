"""Answers say why: a duplicate names what made it one, a FULL_SYNC batch counts what it
upserted and removed, a refusal names the tenant it read and the table to map, and a
version means the same instant whatever the session's TimeZone."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.helpers import apply, full_sync, new_id, rec, row, upsert, v


def test_a_duplicate_says_which_key_was_seen(conn: psycopg.Connection[Any], tenant: str) -> None:
    first = upsert(tenant, rec(new_id(), 1, title="t"), event_id="ev-1")
    assert apply(conn, first, "dl-1")["status"] == "applied"
    by_both = apply(conn, first, "dl-1")
    by_event = apply(conn, first, "dl-2")
    by_delivery = apply(conn, upsert(tenant, rec(new_id(), 1, title="u"), event_id="ev-2"), "dl-1")
    assert (by_both["status"], by_both["reason"]) == ("duplicate", "delivery id and event_id seen before")
    assert (by_event["status"], by_event["reason"]) == ("duplicate", "event_id seen before")
    assert (by_delivery["status"], by_delivery["reason"]) == ("duplicate", "delivery id seen before")
    alone = apply(conn, upsert(tenant, rec(new_id(), 1, title="w")), "dl-3")
    assert apply(conn, upsert(tenant, rec(new_id(), 1, title="x")), "dl-3")["reason"] == "delivery id seen before"
    assert alone["status"] == "applied"


def test_an_equal_version_says_whether_the_content_is_the_same(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    rid = new_id()
    assert apply(conn, upsert(tenant, rec(rid, 1, title="t", cost_eur=2.5)))["status"] == "applied"
    # the same values, spelled otherwise: 2.50 is 2.5, +01:00 names the same instant
    same = apply(conn, upsert(tenant, rec(rid, "2026-01-01T01:01:00+01:00", title="t", cost_eur="2.50"), "UPDATE"))
    assert (same["status"], same["reason"]) == ("duplicate", "same version, same content")
    other = apply(conn, upsert(tenant, rec(rid, 1, title="changed"), "UPDATE"))
    assert other["status"] == "duplicate"
    assert other["reason"].startswith("same version, different content")
    stored = row(conn, tenant, rid)
    assert stored is not None and stored["title"] == "t"  # an equal version never overwrites


def test_full_sync_answers_count_upserted_and_removed_beside_rows(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    old = [rec(new_id(), 1, title=f"old {n}") for n in range(3)]
    first = apply(conn, full_sync(tenant, old, offset=0, total=3))
    assert (first["rows"], first["upserted"], first["removed"]) == (3, 3, 0)
    second = apply(conn, full_sync(tenant, [rec(new_id(), 2, title="new")], offset=0, total=1))
    assert (second["rows"], second["upserted"], second["removed"]) == (4, 1, 3)


def test_a_refusal_names_the_tenant_it_read_and_the_table_to_map(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, title="t"), table="equipment_items"))
    assert (answer["status"], answer["sqlstate"]) == ("refused", "OF001")
    assert answer["tenant_id"] == tenant
    assert "VALUES ('equipment_items', 'equipment_items')" in answer["hint"]
    conflict = apply(conn, upsert(tenant, rec(new_id(), 1, tenant_id=new_id())))
    assert (conflict["status"], conflict["tenant_id"]) == ("refused", tenant)


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Asia/Kolkata"])
def test_a_version_without_an_offset_is_utc_whatever_the_session_says(
    conn: psycopg.Connection[Any], tenant: str, zone: str
) -> None:
    conn.execute(f"SET TimeZone = '{zone}'")
    rid = new_id()
    assert apply(conn, upsert(tenant, rec(rid, "2026-12-07T12:00:00", title="t")))["status"] == "applied"
    conn.execute("SET TimeZone = 'UTC'")
    stored = conn.execute(
        "SELECT updated_at = '2026-12-07T12:00:00Z'::timestamptz FROM optiqoflow.work_orders WHERE id = %s", (rid,)
    ).fetchone()
    assert stored == (True,)
    # and the same instant with an offset is that version, not a newer one
    conn.execute(f"SET TimeZone = '{zone}'")
    again = apply(conn, upsert(tenant, rec(rid, "2026-12-07T12:00:00Z", title="t"), "UPDATE"))
    assert again["status"] == "duplicate"


def test_the_same_unknown_table_gets_the_same_error_everywhere(
    conn: psycopg.Connection[Any], tenant: str
) -> None:
    assert apply(conn, upsert(tenant, rec(new_id(), v(1), title="t")))["status"] == "applied"
    for call in ("SELECT tenants.regenerate_tenant_views(%s, 'bogus')",
                 "SELECT * FROM optiqoflow.table_fingerprint(%s, 'bogus')"):  # fmt: skip
        with pytest.raises(psycopg.Error) as raised, conn.transaction():
            conn.execute(call, (tenant,))
        assert raised.value.sqlstate == "OF001", call
