"""The batch envelope (docs/payloads.md, "BATCH"): many real-time events, one request and
one commit, each event with its own outcome and log row. The same through the receiver
is in tests/http/test_receiver_http.py."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tests.helpers import TARGET, apply, delete, envelope, in_opposite_orders, rec, upsert

Conn = psycopg.Connection[Any]


def stored(c: Conn, tenant: str) -> dict[str, Any]:
    return {
        str(i): t
        for i, t in c.execute(
            f"SELECT id, title FROM optiqoflow.{TARGET} WHERE tenant_id = %s", (tenant,)
        )
    }


def test_events_apply_in_order_each_with_its_own_outcome(conn: Conn, tenant: str) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    answer = apply(
        conn,
        envelope(
            tenant,
            upsert(None, rec(a, 1, title="a1")),  # tenant from the envelope
            upsert(tenant, rec(a, 2, title="a2"), "UPDATE"),
            upsert(None, rec(b, 1, title="b1")),
            upsert(None, rec(a, 1, title="older")),  # stale
            upsert(None, rec(b, 10, priority="high")),  # refused
            delete(None, {"id": b}, occurred_at="2026-01-01T00:05:00Z"),
        ),
        "env-1",
    )
    assert answer["status"] == "applied" and answer["operation"] == "BATCH"
    assert [e["status"] for e in answer["events"]] == [
        "applied", "applied", "applied", "stale", "refused", "applied",
    ]  # fmt: skip
    assert answer["counts"] == {"applied": 4, "stale": 1, "refused": 1}
    assert answer["rows"] == 4
    assert stored(conn, tenant) == {a: "a2"}
    # one log row per event, with its delivery id, plus the envelope's
    logs = conn.execute(
        "SELECT delivery_id, outcome FROM optiqoflow.webhook_logs ORDER BY id"
    ).fetchall()
    assert ("env-1", "applied") in logs
    assert [d for d, _ in logs if d != "env-1"] == [f"env-1/{i}" for i in range(1, 7)]
    refused = answer["events"][4]
    assert refused["sqlstate"] == "22P02"
    assert conn.execute(
        "SELECT payload IS NOT NULL FROM optiqoflow.refused_deliveries WHERE log_id = %s",
        (refused["log_id"],),
    ).fetchone() == (True,)


def test_a_retried_envelope_is_a_duplicate_event_by_event(conn: Conn, tenant: str) -> None:
    a = str(uuid.uuid4())
    env = envelope(tenant, upsert(None, rec(a, 1, title="a1")), upsert(None, rec(a, 2, title="a2")))
    assert apply(conn, env, "env-2")["counts"] == {"applied": 2}
    again = apply(conn, env, "env-2")
    assert again["counts"] == {"duplicate": 2}
    assert stored(conn, tenant) == {a: "a2"}


def test_a_nested_envelope_or_full_sync_is_refused_and_the_rest_applies(
    conn: Conn, tenant: str
) -> None:
    a = str(uuid.uuid4())
    full_sync = {"type": "FULL_SYNC", "table": "adhoc_work_orders", "records": [], "offset": 0}
    answer = apply(
        conn, envelope(tenant, envelope(tenant), full_sync, upsert(None, rec(a, 1, title="x")))
    )
    assert [e["status"] for e in answer["events"]] == ["refused", "refused", "applied"]
    assert [e["sqlstate"] for e in answer["events"][:2]] == ["OF004", "OF004"]


def test_an_envelope_without_events_is_refused(conn: Conn) -> None:
    answer = apply(conn, {"type": "BATCH", "events": "nope"})
    assert answer["status"] == "refused" and answer["sqlstate"] == "OF004"


def test_envelopes_with_the_same_keys_in_opposite_orders_do_not_deadlock(
    db_dsn: str, tenant: str
) -> None:
    other = str(uuid.uuid4())

    def send(order: list[str], version: int) -> None:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            events = [
                upsert(t, rec(k, version, title=f"v{version}"))
                for k in order
                for t in (tenant, other)
            ]
            apply(c, envelope(None, *events))

    errors = in_opposite_orders(send, [str(uuid.uuid4()) for _ in range(40)])
    assert not errors, errors
    with psycopg.connect(db_dsn) as c:
        # the newest version of the last round won everywhere, for both tenants
        assert set(stored(c, tenant).values()) == {"v26"}
        assert set(stored(c, other).values()) == {"v26"}
