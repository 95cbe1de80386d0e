"""The version table (docs/semantics.md): what optiqoflow.apply_webhook does to the rows,
tombstones and logs for INSERT / UPDATE / DELETE, de-duplication and refusals.

Every test runs on a fresh migrated database (fixture `conn`) and calls the function as
the receiver does (`apply`), then reads the tables themselves.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    SOURCE,
    TARGET,
    apply,
    count,
    delete,
    log_row,
    new_id,
    push_logs,
    rec,
    row,
    rows,
    tombstone,
    tombstones,
    upsert,
    v,
    vt,
)

Conn = psycopg.Connection[Any]


def assert_answer(ans: dict[str, Any], status: str, n: int | None = None) -> None:
    assert ans["status"] == status, ans
    assert ans["table"] == TARGET, ans
    assert isinstance(ans["log_id"], int), ans
    assert isinstance(ans["rows"], int), ans
    if n is not None:
        assert ans["rows"] == n, ans


def assert_logged(
    c: Conn, ans: dict[str, Any], outcome: str, tenant: str | None, op: str
) -> dict[str, Any]:
    log = log_row(c, ans["log_id"])
    assert log["outcome"] == outcome
    assert log["operation"] == op
    assert log["target_table"] == TARGET
    assert log["rows"] == ans["rows"]
    assert (str(log["tenant_id"]) if log["tenant_id"] else None) == tenant
    return log


def stored(c: Conn, tenant: str, id_: str) -> dict[str, Any]:
    r = row(c, tenant, id_)
    assert r is not None, f"no row {id_}"
    return r


def pushes_for(c: Conn, log_id: int) -> list[dict[str, Any]]:
    return [p for p in push_logs(c) if p["webhook_log_id"] == log_id]


# --- INSERT / UPDATE ----------------------------------------------------------------------


def test_insert_of_a_new_key_inserts_the_row(conn: Conn, tenant: str) -> None:
    k = new_id()
    ans = apply(conn, upsert(tenant, rec(k, 1, title="mop floor 3", priority=2, billable=True)))

    assert_answer(ans, "applied", 1)
    r = row(conn, tenant, k)
    assert r is not None
    assert (r["title"], r["priority"], r["billable"], r["updated_at"]) == (
        "mop floor 3",
        2,
        True,
        vt(1),
    )
    assert str(r["tenant_id"]) == tenant
    log = assert_logged(conn, ans, "applied", tenant, "INSERT")
    assert log["source_table"] == SOURCE
    [push] = pushes_for(conn, ans["log_id"])
    assert (str(push["tenant_id"]), push["tables"], push["operation"], push["rows"]) == (
        tenant, [TARGET], "INSERT", 1,
    )  # fmt: skip
    assert tombstones(conn, tenant) == {}


def test_newer_update_keeps_absent_keys_and_nulls_null_keys(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 1, title="t", status="open", priority=3, description="d",
                                   metadata={"a": 1})))  # fmt: skip

    ans = apply(
        conn, upsert(tenant, rec(k, 2, status="done", description=None, metadata=None), "UPDATE")
    )

    assert_answer(ans, "applied", 1)
    r = row(conn, tenant, k)
    assert r is not None
    assert r["title"] == "t" and r["priority"] == 3  # absent: kept
    assert r["description"] is None and r["metadata"] is None  # present with null: nulled
    assert r["status"] == "done"
    assert r["updated_at"] == vt(2)
    assert_logged(conn, ans, "applied", tenant, "UPDATE")
    assert len(pushes_for(conn, ans["log_id"])) == 1


def test_insert_and_update_of_a_stored_key_obey_the_version_not_the_operation(
    conn: Conn, tenant: str
) -> None:
    k = new_id()
    # an UPDATE of an unknown row inserts it, an INSERT of a known row updates it
    apply(conn, upsert(tenant, rec(k, 5, title="first"), "UPDATE"))
    ans = apply(conn, upsert(tenant, rec(k, 6, title="second"), "INSERT"))
    assert_answer(ans, "applied", 1)
    r = row(conn, tenant, k)
    assert r is not None and (r["title"], r["updated_at"]) == ("second", vt(6))
    assert (
        count(conn, "SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", tenant) == 1
    )


def test_equal_version_is_a_duplicate_and_changes_nothing(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 60, title="kept")))  # 01:00Z
    before = row(conn, tenant, k)

    ans = apply(conn, upsert(tenant, rec(k, 60, title="other", priority=9), "UPDATE"))

    assert_answer(ans, "duplicate", 0)
    assert row(conn, tenant, k) == before  # bookkeeping columns included
    assert_logged(conn, ans, "duplicate", tenant, "UPDATE")
    assert pushes_for(conn, ans["log_id"]) == []
    # the same instant spelled with another offset is equal too
    same = rec(k, "2026-01-01T03:00:00+02:00", title="other")
    assert_answer(apply(conn, upsert(tenant, same, "UPDATE")), "duplicate", 0)
    assert row(conn, tenant, k) == before


def test_older_version_is_stale_and_changes_nothing(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 4, title="kept")))
    before = row(conn, tenant, k)

    ans = apply(conn, upsert(tenant, rec(k, 3, title="older", priority=1), "UPDATE"))

    assert_answer(ans, "stale", 0)
    assert row(conn, tenant, k) == before
    assert_logged(conn, ans, "stale", tenant, "UPDATE")
    assert pushes_for(conn, ans["log_id"]) == []


def test_write_not_newer_than_a_tombstone_is_stale(conn: Conn, tenant: str) -> None:
    for n in (5, 4):  # equal to the tombstone, older than it
        k = new_id()
        apply(conn, upsert(tenant, rec(k, 1, title="x")))
        apply(conn, delete(tenant, rec(k, 5)))
        assert tombstone(conn, tenant, k) == vt(5)

        ans = apply(conn, upsert(tenant, rec(k, n, title="late")))

        assert_answer(ans, "stale", 0)
        assert row(conn, tenant, k) is None
        assert tombstone(conn, tenant, k) == vt(5)
        assert pushes_for(conn, ans["log_id"]) == []


def test_newer_write_clears_the_tombstone(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 1, title="x", priority=1)))
    apply(conn, delete(tenant, rec(k, 2)))

    ans = apply(conn, upsert(tenant, rec(k, 3, title="back")))

    assert_answer(ans, "applied", 1)
    r = row(conn, tenant, k)
    assert r is not None and (r["title"], r["updated_at"]) == ("back", vt(3))
    assert r["priority"] is None  # the deleted row's values do not come back
    assert tombstone(conn, tenant, k) is None


def test_version_is_updated_at_else_occurred_at(conn: Conn, tenant: str) -> None:
    a, b = new_id(), new_id()
    apply(conn, upsert(tenant, rec(a, None, title="from occurred_at"), occurred_at=v(7)))
    apply(conn, upsert(tenant, rec(b, 3, title="updated_at wins"), occurred_at=v(9)))
    assert stored(conn, tenant, a)["updated_at"] == vt(7)
    assert stored(conn, tenant, b)["updated_at"] == vt(3)
    # and the versions so taken are compared like any other
    assert (
        apply(conn, upsert(tenant, rec(a, None, title="older"), occurred_at=v(6)))["status"]
        == "stale"
    )
    assert (
        apply(conn, upsert(tenant, rec(b, 4, title="newer"), occurred_at=v(1)))["status"]
        == "applied"
    )
    assert stored(conn, tenant, b)["title"] == "newer"


# --- DELETE -------------------------------------------------------------------------------


def test_delete_at_or_above_the_stored_version_removes_the_row_and_keeps_a_tombstone(
    conn: Conn, tenant: str
) -> None:
    for n in (5, 6):  # equal to the stored version, newer
        k = new_id()
        apply(conn, upsert(tenant, rec(k, 5, title="x")))

        ans = apply(conn, delete(tenant, rec(k, n)))

        assert_answer(ans, "applied", 1)
        assert row(conn, tenant, k) is None
        assert tombstone(conn, tenant, k) == vt(n)
        assert_logged(conn, ans, "applied", tenant, "DELETE")
        [push] = pushes_for(conn, ans["log_id"])
        assert (push["operation"], push["rows"], push["tables"]) == ("DELETE", 1, [TARGET])


def test_delete_of_an_unknown_row_keeps_a_tombstone_that_blocks_a_late_older_insert(
    conn: Conn, tenant: str
) -> None:
    k = new_id()
    ans = apply(conn, delete(tenant, rec(k, 5)))

    assert_answer(ans, "applied", 0)
    assert tombstone(conn, tenant, k) == vt(5)
    assert rows(conn, tenant) == {}
    assert len(pushes_for(conn, ans["log_id"])) == 1

    late = apply(conn, upsert(tenant, rec(k, 3, title="created before the delete")))
    assert_answer(late, "stale", 0)
    assert row(conn, tenant, k) is None
    assert tombstone(conn, tenant, k) == vt(5)

    newer = apply(conn, upsert(tenant, rec(k, 6, title="re-created")))
    assert_answer(newer, "applied", 1)
    assert row(conn, tenant, k) is not None
    assert tombstone(conn, tenant, k) is None


def test_delete_older_than_the_stored_row_is_stale(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 5, title="x")))
    before = row(conn, tenant, k)

    ans = apply(conn, delete(tenant, rec(k, 4)))

    assert_answer(ans, "stale", 0)
    assert row(conn, tenant, k) == before
    assert tombstone(conn, tenant, k) is None
    assert_logged(conn, ans, "stale", tenant, "DELETE")
    assert pushes_for(conn, ans["log_id"]) == []


def test_a_second_delete_never_lowers_the_tombstone(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, delete(tenant, rec(k, 8)))
    apply(conn, delete(tenant, rec(k, 3)))
    assert tombstone(conn, tenant, k) == vt(8)
    apply(conn, delete(tenant, rec(k, 9)))
    assert tombstone(conn, tenant, k) == vt(9)


def test_delete_version_is_old_record_updated_at_then_occurred_at_then_the_stored_row(
    conn: Conn, tenant: str, subtests: pytest.Subtests
) -> None:
    with subtests.test("old_record.updated_at before occurred_at"):
        k = new_id()
        apply(conn, upsert(tenant, rec(k, 5, title="x")))
        assert_answer(apply(conn, delete(tenant, rec(k, 4), occurred_at=v(9))), "stale", 0)
        assert row(conn, tenant, k) is not None
        assert_answer(apply(conn, delete(tenant, rec(k, 6), occurred_at=v(1))), "applied", 1)
        assert tombstone(conn, tenant, k) == vt(6)

    with subtests.test("occurred_at when old_record has no updated_at"):
        k = new_id()
        apply(conn, upsert(tenant, rec(k, 5, title="x")))
        assert_answer(apply(conn, delete(tenant, {"id": k}, occurred_at=v(4))), "stale", 0)
        assert row(conn, tenant, k) is not None
        assert_answer(
            apply(conn, delete(tenant, {"id": k, "updated_at": None}, occurred_at=v(7))),
            "applied",
            1,
        )
        assert row(conn, tenant, k) is None
        assert tombstone(conn, tenant, k) == vt(7)

    with subtests.test("the stored row's version when the payload has none"):
        k = new_id()
        apply(conn, upsert(tenant, rec(k, 5, title="x")))
        assert_answer(apply(conn, delete(tenant, {"id": k})), "applied", 1)
        assert row(conn, tenant, k) is None
        assert tombstone(conn, tenant, k) == vt(5)
        # the tombstone holds the row's version: an equal copy is stale, a newer one applies
        assert apply(conn, upsert(tenant, rec(k, 5, title="again")))["status"] == "stale"
        assert apply(conn, upsert(tenant, rec(k, 6, title="again")))["status"] == "applied"

    with subtests.test("no version at all and no row: applied, rows 0"):
        k = new_id()
        assert_answer(apply(conn, delete(tenant, {"id": k})), "applied", 0)
        assert row(conn, tenant, k) is None


# --- de-duplication -------------------------------------------------------------------------


def test_a_delivery_id_seen_before_is_a_duplicate(conn: Conn, tenant: str) -> None:
    k = new_id()
    first = apply(conn, upsert(tenant, rec(k, 1, title="first")), "dlv-1")
    assert_answer(first, "applied", 1)

    # the same delivery again, even with a newer body, is not applied a second time
    again = apply(conn, upsert(tenant, rec(k, 2, title="retry")), "dlv-1")

    assert_answer(again, "duplicate", 0)
    r = row(conn, tenant, k)
    assert r is not None and (r["title"], r["updated_at"]) == ("first", vt(1))
    log = assert_logged(conn, again, "duplicate", tenant, "INSERT")
    assert log["delivery_id"] == "dlv-1"
    assert pushes_for(conn, again["log_id"]) == []
    assert len(push_logs(conn, tenant)) == 1

    # a stale delivery counts as seen too
    assert apply(conn, upsert(tenant, rec(k, 0)), "dlv-stale")["status"] == "stale"
    assert apply(conn, upsert(tenant, rec(k, 0)), "dlv-stale")["status"] == "duplicate"


def test_an_event_id_seen_before_is_a_duplicate_whatever_the_delivery_id(
    conn: Conn, tenant: str
) -> None:
    k = new_id()
    assert (
        apply(conn, upsert(tenant, rec(k, 1, title="a"), event_id="ev-1"), "d-1")["status"]
        == "applied"
    )

    again = apply(conn, delete(tenant, rec(k, 2), event_id="ev-1"), "d-2")

    assert_answer(again, "duplicate", 0)
    assert row(conn, tenant, k) is not None
    assert tombstone(conn, tenant, k) is None
    assert log_row(conn, again["log_id"])["event_id"] == "ev-1"

    # a numeric event_id is an event_id too
    assert apply(conn, upsert(tenant, rec(new_id(), 1), event_id=42))["status"] == "applied"
    assert apply(conn, upsert(tenant, rec(new_id(), 1), event_id=42))["status"] == "duplicate"
    assert (
        count(conn, "SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", tenant) == 2
    )


def test_de_duplication_is_global_across_tenants(conn: Conn) -> None:
    for key in ("event_id", "delivery_id"):
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        ka, kb = new_id(), new_id()
        env = {"event_id": "shared-1"} if key == "event_id" else {}
        dlv = "shared-1" if key == "delivery_id" else None

        assert apply(conn, upsert(a, rec(ka, 1, title="a"), **env), dlv)["status"] == "applied"
        ans = apply(conn, upsert(b, rec(kb, 1, title="b"), **env), dlv)

        assert_answer(ans, "duplicate", 0)
        assert rows(conn, b) == {}, key
        assert set(rows(conn, a)) == {ka}
        assert push_logs(conn, b) == []


# --- refusals ---------------------------------------------------------------------------------

OTHER = "0b1d2c3e-4f50-4617-8829-3a4b5c6d7e8f"


def _refusals(t: str, k: str) -> list[tuple[str, dict[str, Any], str]]:
    """(case, payload, sqlstate or its class) for payloads that can never be applied."""
    ok = rec(k, 1, title="x")
    return [
        ("unknown table", {**upsert(t, ok), "table": "no_such_table"}, "OF001"),
        ("no table", {k_: v_ for k_, v_ in upsert(t, ok).items() if k_ != "table"}, "OF004"),
        ("unknown type", upsert(t, ok, op="MERGE"), "OF004"),
        ("no tenant anywhere", upsert(None, ok), "OF002"),
        ("tenant not a UUID", upsert("tenant-7", ok), "OF002"),
        ("tenant a number", upsert(None, ok, tenant_id=7), "OF002"),
        ("record names another tenant", upsert(t, {**ok, "tenant_id": OTHER}), "OF003"),
        ("old_record names another tenant", delete(t, rec(k, 2, tenant_id=OTHER)), "OF003"),
        ("UPDATE old_record names another tenant",
         {**upsert(None, {**ok, "tenant_id": t}, "UPDATE"), "old_record": {"id": k, "tenant_id": OTHER}}, "OF003"),
        ("record tenant not a UUID", upsert(t, {**ok, "tenant_id": "nope"}), "OF00"),
        ("missing id", upsert(t, {"updated_at": v(1), "title": "x"}), "OF005"),
        ("id not a UUID", upsert(t, rec("42", 1)), "OF005"),
        ("id a number", upsert(t, {"id": 42, "updated_at": v(1)}), "OF005"),
        ("DELETE without id", delete(t, {"updated_at": v(1)}), "OF005"),
        ("no version", upsert(t, rec(k, None, title="x")), "OF006"),
        ("version not a timestamp", upsert(t, {"id": k, "updated_at": "yesterday-ish"}), "OF006"),
        ("occurred_at not a timestamp", upsert(t, rec(k, None), occurred_at="soon"), "OF006"),
        ("version at infinity", upsert(t, {"id": k, "updated_at": "infinity"}), "OF006"),
        ("occurred_at 'now'", upsert(t, rec(k, None), occurred_at="now"), "OF006"),
        ("occurred_at at infinity", upsert(t, rec(k, None), occurred_at="infinity"), "OF006"),
        ("_of_ key", upsert(t, {**ok, "_of_sync_run": 1}), "OF013"),
        ("_of_ key in DELETE", delete(t, {"id": k, "_of_xid": "1"}), "OF013"),
        ("upper-case column name", upsert(t, {**ok, "Title": "x"}), "OF007"),
        ("hyphen in column name", upsert(t, {**ok, "due-at": "x"}), "OF007"),
        ("quote in column name", upsert(t, {**ok, 'x"; drop table y; --': 1}), "OF007"),
        ("column name of 64 bytes", upsert(t, {**ok, "a" * 64: 1}), "OF007"),
        ("column name starting with a digit", upsert(t, {**ok, "1st": 1}), "OF007"),
        ("text into smallint", upsert(t, {**ok, "priority": "high"}), "22"),
        ("new column beside a bad value", upsert(t, {**ok, "brand_new_col": "x", "priority": "high"}), "22"),
        ("number out of smallint range", upsert(t, {**ok, "priority": 70000}), "22"),
        ("text into uuid column", upsert(t, {**ok, "site_id": "main site"}), "22"),
        ("text into timestamptz column", upsert(t, {**ok, "due_at": "tomorrow morning"}), "22"),
        ("INSERT without record", {**upsert(t, ok), "record": None}, "OF004"),
        ("DELETE without old_record", {**delete(t, {"id": k}), "old_record": None}, "OF004"),
        ("record not an object", {**upsert(t, ok), "record": [ok]}, "OF004"),
    ]  # fmt: skip


def test_a_payload_that_can_never_be_applied_is_refused_written_nowhere_and_kept(
    conn: Conn, subtests: pytest.Subtests
) -> None:
    # one database for every case (a fresh one costs ~0.5 s); each case has its own tenant
    for i, (case, _, _) in enumerate(_refusals(OTHER, OTHER)):
        with subtests.test(case=case):
            tenant, k = str(uuid.uuid4()), new_id()
            _, payload, state = _refusals(tenant, k)[i]
            # the other tenant holds a row with the same id, which nothing may touch
            apply(conn, upsert(OTHER, rec(k, 1, title="B's")))
            before_other, tombs_other = rows(conn, OTHER), tombstones(conn, OTHER)
            logs_before = count(conn, "SELECT count(*) FROM optiqoflow.webhook_logs")
            columns_before = count(conn, "SELECT count(*) FROM information_schema.columns "
                                         "WHERE table_schema = 'optiqoflow'")  # fmt: skip

            ans = apply(conn, payload, f"dlv-{case}")

            assert ans["status"] == "refused", ans
            assert ans["rows"] == 0
            assert ans["sqlstate"].startswith(state), ans
            assert ans["error"]
            assert isinstance(ans["log_id"], int)
            # nothing of it is written ...
            assert rows(conn, tenant) == {}
            assert tombstones(conn, tenant) == {}
            assert push_logs(conn, tenant) == []
            assert rows(conn, OTHER) == before_other
            assert tombstones(conn, OTHER) == tombs_other
            assert count(conn, "SELECT count(*) FROM tenants.tenant_column_access WHERE tenant_id = %s",
                         tenant) == 0  # fmt: skip
            assert count(conn, "SELECT count(*) FROM information_schema.columns "
                               "WHERE table_schema = 'optiqoflow'") == columns_before  # fmt: skip
            assert count(conn, "SELECT count(*) FROM optiqoflow.delivery_keys WHERE key = %s",
                         f"d:dlv-{case}") == 0  # fmt: skip
            # ... but the delivery is logged, with its payload, once
            assert count(conn, "SELECT count(*) FROM optiqoflow.webhook_logs") == logs_before + 1
            log = log_row(conn, ans["log_id"])
            assert log["outcome"] == "refused"
            assert log["sqlstate"] == ans["sqlstate"]
            assert log["error"] == ans["error"]
            assert log["payload"] == json.loads(json.dumps(payload))
            assert log["delivery_id"] == f"dlv-{case}"


def test_one_bad_record_refuses_the_whole_full_sync_batch(conn: Conn, tenant: str) -> None:
    good, bad = new_id(), new_id()
    payload = {
        "type": "FULL_SYNC", "table": SOURCE, "tenant_id": tenant, "offset": 0,
        "records": [rec(good, 1, title="fine"), rec(bad, 1, tenant_id=OTHER)],
    }  # fmt: skip
    ans = apply(conn, payload)
    assert ans["status"] == "refused" and ans["sqlstate"] == "OF003"
    assert rows(conn, tenant) == {}
    assert (
        count(conn, "SELECT count(*) FROM optiqoflow.sync_runs WHERE tenant_id = %s", tenant) == 0
    )
    assert log_row(conn, ans["log_id"])["payload"] == payload


def test_tenant_from_the_record_and_in_another_spelling_is_the_same_tenant(
    conn: Conn, tenant: str
) -> None:
    k = new_id()
    # a record naming the envelope's tenant in another spelling
    assert_answer(
        apply(conn, upsert(tenant, rec(k, 1, tenant_id="{" + tenant.upper() + "}"))), "applied", 1
    )
    # no envelope tenant: the record's, then the old_record's
    assert_answer(
        apply(conn, upsert(None, rec(k, 2, tenant_id=tenant.upper()), "UPDATE")), "applied", 1
    )
    ans = apply(conn, delete(None, rec(k, 3, tenant_id=tenant)))
    assert_answer(ans, "applied", 1)
    assert ans["tenant_id"] == tenant
    assert rows(conn, tenant) == {}
    assert tombstone(conn, tenant, k) == vt(3)
    assert {str(p["tenant_id"]) for p in push_logs(conn)} == {tenant}


# --- UUID spellings ----------------------------------------------------------------------------


def _spellings(u: str) -> list[str]:
    return [u.upper(), "{" + u + "}", u.replace("-", ""), "{" + u.upper().replace("-", "") + "}"]


def test_uuid_spellings_reach_the_same_rows(conn: Conn, tenant: str) -> None:
    k = new_id()
    apply(conn, upsert(tenant, rec(k, 1, title="v1")))

    for n, (t, i) in enumerate(zip(_spellings(tenant), _spellings(k), strict=True), start=2):
        ans = apply(conn, upsert(t, rec(i, n, title=f"v{n}"), "UPDATE"))
        assert_answer(ans, "applied", 1)
        assert ans["tenant_id"] == tenant
        assert str(log_row(conn, ans["log_id"])["tenant_id"]) == tenant

    assert count(conn, "SELECT count(*) FROM optiqoflow.work_orders") == 1
    r = row(conn, tenant, k)
    assert r is not None and (r["title"], r["updated_at"]) == ("v5", vt(5))
    # one tenant, one view, named from the canonical spelling
    views = [n for (n,) in conn.execute(
        "SELECT viewname FROM pg_views WHERE schemaname = 'tenants' AND viewname LIKE %s", ("%_work_orders",)
    ).fetchall()]  # fmt: skip
    assert views == [f"{tenant}_work_orders"]

    # a DELETE spelled otherwise removes it and tombstones the canonical key
    ans = apply(
        conn,
        delete(tenant.replace("-", "").upper(), rec("{" + k.upper() + "}", 9)),
    )
    assert_answer(ans, "applied", 1)
    assert rows(conn, tenant) == {}
    assert tombstone(conn, tenant, k) == vt(9)
    assert count(conn, "SELECT count(*) FROM optiqoflow.tombstones") == 1


# --- tenant safety -----------------------------------------------------------------------------


def test_a_payload_for_tenant_a_never_changes_tenant_bs_rows_or_tombstones(conn: Conn) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    shared, gone = new_id(), new_id()
    apply(conn, upsert(b, rec(shared, 5, title="B's", priority=1)))
    apply(conn, delete(b, rec(gone, 5)))
    b_rows, b_tombs = rows(conn, b), tombstones(conn, b)

    # B's newer row does not make A's older write stale, B's tombstone does not block A
    assert apply(conn, upsert(a, rec(shared, 3, title="A's")))["status"] == "applied"
    assert apply(conn, upsert(a, rec(gone, 1, title="A's")))["status"] == "applied"
    assert apply(conn, upsert(a, rec(shared, 9, title=None), "UPDATE"))["status"] == "applied"
    assert apply(conn, delete(a, rec(shared, 10)))["rows"] == 1
    assert apply(conn, delete(a, {"id": gone}))["rows"] == 1
    never_seen = new_id()
    assert apply(conn, delete(a, rec(never_seen, 10)))["rows"] == 0
    assert apply(conn, {"type": "FULL_SYNC", "table": SOURCE, "tenant_id": a, "offset": 0, "total": 1,
                        "records": [rec(gone, 20, title="A again")]})["status"] == "applied"  # fmt: skip

    assert rows(conn, b) == b_rows
    assert tombstones(conn, b) == b_tombs
    assert set(rows(conn, a)) == {gone}
    assert tombstones(conn, a) == {shared: vt(10), never_seen: vt(10)}
    assert {str(p["tenant_id"]) for p in push_logs(conn)} == {a, b}
    assert len(push_logs(conn, b)) == 2
