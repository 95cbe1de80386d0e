"""RECONCILE deliveries (docs/payloads.md, "RECONCILE"): a source's bucket figures of one
tenant x table against ours. It changes no data, is never a duplicate, is logged like
any delivery, answers the differing buckets with our figures, goes one level deeper on
request, and is bounded whatever the sender sends."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.helpers import (
    SOURCE,
    Conn,
    apply,
    count,
    envelope,
    full_sync,
    log_row,
    new_id,
    push_logs,
    rec,
)

READ_AT = "2026-12-07T10:00:00Z"


def figures(
    c: Conn, tenant: str, digits: int = 2, within: list[str] | None = None
) -> dict[str, Any]:
    """Our figures as a source would send them: {"bucket": {"rows", "checksum"}}."""
    return {
        b: {"rows": int(n), "checksum": str(s)}
        for b, n, s in c.execute(
            "SELECT * FROM optiqoflow.bucket_fingerprints(%s, %s, %s, %s)",
            (tenant, SOURCE, digits, within),
        )
    }


def reconcile(tenant: str, buckets: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "RECONCILE", "table": SOURCE, "tenant_id": tenant, "read_at": READ_AT,
            "buckets": buckets, **extra}  # fmt: skip


def bucket_of(c: Conn, id_: str, digits: int = 2) -> str:
    row = c.execute("SELECT left(md5(%s::uuid::text), %s)", (id_, digits)).fetchone()
    assert row is not None
    return str(row[0])


def loaded(c: Conn, tenant: str, n: int = 40) -> list[dict[str, Any]]:
    records = [rec(new_id(), i % 7, title=f"t{i}") for i in range(n)]
    assert apply(c, full_sync(tenant, records, 0, n, "load"))["status"] == "applied"
    return records


def data_snapshot(c: Conn) -> tuple[Any, ...]:
    return (
        c.execute(
            "SELECT coalesce(sum(hashtext(w::text)), 0) FROM optiqoflow.work_orders w"
        ).fetchone(),
        count(c, "SELECT count(*) FROM optiqoflow.tombstones"),
        count(c, "SELECT count(*) FROM optiqoflow.delivery_keys"),
        count(c, "SELECT count(*) FROM optiqoflow.sync_runs"),
        count(c, "SELECT count(*) FROM tenants.tenant_data_push_log"),
    )


def test_equal_figures_answer_no_bucket(conn: Conn, tenant: str) -> None:
    loaded(conn, tenant)
    answer = apply(conn, reconcile(tenant, figures(conn, tenant)), "rec-1")
    assert answer["status"] == "applied" and answer["operation"] == "RECONCILE"
    assert answer["buckets"] == [] and answer["differing"] == 0 and answer["compared"] == 256
    assert (
        answer["rows"] == 0 and answer["tenant_id"] == tenant and answer["table"] == "work_orders"
    )
    assert answer["read_at"] == READ_AT


def test_it_changes_nothing_is_never_a_duplicate_and_is_logged(conn: Conn, tenant: str) -> None:
    records = loaded(conn, tenant)
    theirs = figures(conn, tenant)
    lost = records[3]["id"]
    conn.execute(
        "DELETE FROM optiqoflow.work_orders WHERE tenant_id = %s AND id = %s", (tenant, lost)
    )
    before = data_snapshot(conn)
    payload = reconcile(tenant, theirs, event_id="same-event")
    answers = [apply(conn, payload, "same-delivery") for _ in range(3)]
    assert data_snapshot(conn) == before
    assert [a["status"] for a in answers] == ["applied"] * 3
    bucket = bucket_of(conn, lost)
    for a in answers:
        assert [b["bucket"] for b in a["buckets"]] == [bucket]
        ours = a["buckets"][0]
        assert ours["rows"] == theirs[bucket]["rows"] - 1  # ours, not theirs
        assert Decimal(ours["checksum"]) != Decimal(theirs[bucket]["checksum"])
    assert len({a["log_id"] for a in answers}) == 3
    log = log_row(conn, answers[0]["log_id"])
    assert log["operation"] == "RECONCILE" and log["outcome"] == "applied" and log["rows"] == 0
    assert log["delivery_id"] == "same-delivery" and log["event_id"] == "same-event"
    assert log["detail"]["differing"] == 1 and log["detail"]["read_at"] == READ_AT
    assert not [p for p in push_logs(conn, tenant) if p["operation"] == "RECONCILE"]


def test_a_bucket_the_source_leaves_out_has_no_rows_there(conn: Conn, tenant: str) -> None:
    records = loaded(conn, tenant, 10)
    theirs = figures(conn, tenant)
    gone = bucket_of(conn, records[0]["id"])
    del theirs[gone]  # deleted at the source, never told
    answer = apply(conn, reconcile(tenant, theirs))
    assert [b["bucket"] for b in answer["buckets"]] == [gone]
    # and a bucket where only the source has rows: ours are 0 and "0"
    extra = next(f"{i:02x}" for i in range(256) if f"{i:02x}" not in theirs)
    answer = apply(
        conn, reconcile(tenant, {**figures(conn, tenant), extra: {"rows": 1, "checksum": "5"}})
    )
    assert answer["buckets"] == [{"bucket": extra, "rows": 0, "checksum": "0"}]


def test_one_level_deeper_then_the_pairs(conn: Conn, tenant: str) -> None:
    records = loaded(conn, tenant, 60)
    theirs2 = figures(conn, tenant)
    changed = records[5]["id"]
    bucket = bucket_of(conn, changed)
    theirs4 = figures(conn, tenant, 4, [bucket])
    # the source has a newer version of that row: its figures differ from ours there
    conn.execute(
        "UPDATE optiqoflow.work_orders SET updated_at = updated_at - interval '1 hour' "
        "WHERE tenant_id = %s AND id = %s",
        (tenant, changed),
    )
    first = apply(conn, reconcile(tenant, theirs2))
    assert [b["bucket"] for b in first["buckets"]] == [bucket]
    deeper = apply(conn, reconcile(tenant, theirs4, digits=4, within=[bucket], pairs=True))
    assert deeper["compared"] == 256 and deeper["digits"] == 4 and deeper["within"] == [bucket]
    sub = bucket_of(conn, changed, 4)
    assert [b["bucket"] for b in deeper["buckets"]] == [sub]
    pairs = deeper["buckets"][0]["pairs"]
    stored = {
        str(i): v
        for i, v in conn.execute(
            "SELECT id, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
            "FROM optiqoflow.work_orders WHERE tenant_id = %s AND left(md5(id::text), 4) = %s",
            (tenant, sub),
        )
    }
    assert dict(map(tuple, pairs)) == stored and changed in stored
    assert deeper["pairs_left_out"] == 0
    # pairs are asked for at 2 digits too (small tables)
    shallow = apply(conn, reconcile(tenant, theirs2, pairs=True))
    assert changed in dict(map(tuple, shallow["buckets"][0]["pairs"]))


def test_pairs_are_bounded(conn: Conn, tenant: str) -> None:
    """At most 64 buckets get pairs, only buckets of at most 64 of our rows; the answer
    says how many differing buckets it left without."""
    loaded(conn, tenant, 300)
    theirs = {b: {"rows": f["rows"] + 1, "checksum": "1"} for b, f in figures(conn, tenant).items()}
    answer = apply(conn, reconcile(tenant, theirs, pairs=True))
    with_pairs = [b for b in answer["buckets"] if "pairs" in b]
    assert len(with_pairs) == 64
    assert answer["pairs_left_out"] == answer["differing"] - 64 > 0
    assert sum(len(b["pairs"]) for b in with_pairs) <= 64 * 64


def test_ours_answers_our_figures_and_compares_nothing(conn: Conn, tenant: str) -> None:
    """ "ours": true answers our figures of every non-empty bucket of the scope (the
    source reads its rows meanwhile and compares); nothing is compared, nothing changes."""
    loaded(conn, tenant, 60)
    before = data_snapshot(conn)
    payload = {k: v for k, v in reconcile(tenant, {}).items() if k != "buckets"}
    answer = apply(conn, {**payload, "ours": True})
    assert answer["status"] == "applied" and answer["ours"] is True and answer["digits"] == 2
    assert "differing" not in answer and "compared" not in answer
    assert {b["bucket"]: {"rows": b["rows"], "checksum": b["checksum"]}
            for b in answer["buckets"]} == figures(conn, tenant)  # fmt: skip
    assert [b["bucket"] for b in answer["buckets"]] == sorted(figures(conn, tenant))
    within = sorted(figures(conn, tenant))[:3]
    deeper = apply(conn, {**payload, "ours": True, "digits": 4, "within": within})
    assert {b["bucket"]: {"rows": b["rows"], "checksum": b["checksum"]}
            for b in deeper["buckets"]} == figures(conn, tenant, 4, within)  # fmt: skip
    assert deeper["within"] == within
    assert data_snapshot(conn) == before
    log = log_row(conn, answer["log_id"])
    assert log["operation"] == "RECONCILE" and log["outcome"] == "applied"
    assert "differing" not in log["detail"] and log["detail"]["read_at"] == READ_AT
    # with "ours": false it is an ordinary RECONCILE
    plain = apply(conn, reconcile(tenant, figures(conn, tenant), ours=False))
    assert plain["differing"] == 0 and "ours" not in plain
    # an empty table: no figures
    other = new_id()
    empty = apply(conn, {**payload, "tenant_id": other, "ours": True})
    assert empty["status"] == "applied" and empty["buckets"] == []


@pytest.mark.parametrize(
    "change",
    [{"ours": "yes"}, {"ours": True, "buckets": {}}, {"ours": True, "pairs": True},
     {"ours": True, "sub_buckets": True}, {"ours": True, "digits": 4}],
)  # fmt: skip
def test_ours_compares_nothing(conn: Conn, tenant: str, change: dict[str, Any]) -> None:
    payload = {k: v for k, v in reconcile(tenant, {}).items() if k != "buckets"}
    answer = apply(conn, {**payload, **change})
    assert answer["status"] == "refused", (change, answer)
    assert answer["sqlstate"] == "OF026" and answer["hint"], (change, answer)


def test_sub_buckets_are_bounded_by_within(conn: Conn, tenant: str) -> None:
    loaded(conn, tenant, 5)
    within = [f"{i:02x}" for i in range(16)]
    answer = apply(conn, reconcile(tenant, {}, digits=4, within=within))
    assert answer["status"] == "applied" and answer["compared"] == 16 * 256
    assert answer["differing"] == count(
        conn,
        "SELECT count(DISTINCT left(md5(id::text), 4)) FROM optiqoflow.work_orders "
        "WHERE tenant_id = %s AND left(md5(id::text), 2) = ANY (%s)",
        tenant,
        within,
    )


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"read_at": None}, "no read_at"),
        ({"read_at": "yesterday"}, "read_at not ISO"),
        ({"digits": 3}, "digits 3"),
        ({"digits": "2"}, "digits a string"),
        ({"digits": 4}, "sub-buckets without within"),
        ({"within": [f"{i:02x}" for i in range(17)], "digits": 4}, "17 buckets within"),
        ({"within": ["3G"]}, "within not hex"),
        ({"pairs": "yes"}, "pairs not boolean"),
        ({"buckets": []}, "buckets an array"),
        ({"buckets": {"3f": {"rows": 1}}}, "no checksum"),
        ({"buckets": {"3f": {"rows": -1, "checksum": "1"}}}, "negative rows"),
        ({"buckets": {"3f": {"rows": 1.5, "checksum": "1"}}}, "fractional rows"),
        ({"buckets": {"3f": {"rows": 1, "checksum": "1e9"}}}, "checksum not decimal digits"),
        ({"buckets": {"3f0": {"rows": 1, "checksum": "1"}}}, "3 digits"),
        ({"buckets": {"3f00": {"rows": 1, "checksum": "1"}}}, "4 digits at level 2"),
        (
            {"buckets": {"aa00": {"rows": 1, "checksum": "1"}}, "digits": 4, "within": ["3f"]},
            "out of within",
        ),
    ],
)
def test_malformed_figures_are_refused(
    conn: Conn, tenant: str, change: dict[str, Any], what: str
) -> None:
    payload = {**reconcile(tenant, {}), **change}
    if payload.get("read_at") is None:
        del payload["read_at"]
    answer = apply(conn, payload)
    assert answer["status"] == "refused", (what, answer)
    assert answer["sqlstate"] == "OF026" and answer["hint"], (what, answer)


def test_not_inside_an_envelope_nor_a_group(conn: Conn, tenant: str) -> None:
    answer = apply(conn, envelope(tenant, reconcile(tenant, {})))
    assert answer["events"][0]["status"] == "refused" and answer["events"][0]["sqlstate"] == "OF004"
    import psycopg

    with pytest.raises(psycopg.Error) as caught:
        conn.execute(
            "SELECT * FROM optiqoflow.apply_webhook_group(%s::jsonb)",
            (json.dumps([reconcile(tenant, {})]),),
        )
    assert caught.value.sqlstate == "OF020"


def test_a_source_name_or_a_target_name_and_an_unknown_table(conn: Conn, tenant: str) -> None:
    loaded(conn, tenant, 3)
    by_target = apply(conn, {**reconcile(tenant, figures(conn, tenant)), "table": "work_orders"})
    assert by_target["status"] == "applied" and by_target["differing"] == 0
    unknown = apply(conn, {**reconcile(tenant, {}), "table": "no_such_table"})
    assert unknown["status"] == "refused" and unknown["sqlstate"] == "OF001"


def test_sub_buckets_in_the_same_read(conn: Conn, tenant: str) -> None:
    """ "sub_buckets": true answers, beside the differing buckets, our figures of their
    sub-buckets (the first 16 differing buckets), from the same one read."""
    records = loaded(conn, tenant, 60)
    theirs = figures(conn, tenant)
    changed = records[7]["id"]
    bucket = bucket_of(conn, changed)
    ours4 = figures(conn, tenant, 4, [bucket])
    theirs[bucket] = {"rows": theirs[bucket]["rows"] + 1, "checksum": "12345"}
    answer = apply(conn, reconcile(tenant, theirs, sub_buckets=True))
    assert [b["bucket"] for b in answer["buckets"]] == [bucket]
    assert answer["sub_buckets_of"] == [bucket]
    assert answer["sub_buckets"] == ours4
    # at most 16 buckets get their sub-buckets
    wrong = {f"{i:02x}": {"rows": 1, "checksum": "1"} for i in range(256)}
    many = apply(conn, reconcile(tenant, wrong, sub_buckets=True))
    assert many["differing"] == 256 and len(many["sub_buckets_of"]) == 16
    assert all(k[:2] in many["sub_buckets_of"] for k in many["sub_buckets"])
    assert len(many["sub_buckets"]) <= 16 * 256
    for bad in ({"sub_buckets": "yes"}, {"sub_buckets": True, "digits": 4, "within": ["00"]}):
        refused = apply(conn, reconcile(tenant, {}, **bad))
        assert refused["status"] == "refused" and refused["sqlstate"] == "OF026"
