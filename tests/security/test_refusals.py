"""Refused deliveries cost one copy and have a bound; a replay never bypasses what the
receiver refused. Before: every refused body was stored twice (log and
refused_deliveries) and kept forever until resolved; and a body refused with 400 for a
duplicated key was applied by replay_webhook, since jsonb keeps the last duplicate."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.helpers import apply, new_id, rec, row, upsert


def test_a_refused_payload_is_kept_once(conn: psycopg.Connection[Any], tenant: str) -> None:
    answer = apply(conn, upsert(tenant, rec(new_id(), 1, priority="not a number")))
    assert answer["status"] == "refused"
    logged = conn.execute("SELECT payload, raw_body, error FROM optiqoflow.webhook_logs WHERE id = %s",
                          (answer["log_id"],)).fetchone()  # fmt: skip
    kept = conn.execute("SELECT payload -> 'record' ->> 'priority' FROM optiqoflow.refused_deliveries WHERE log_id = %s",
                        (answer["log_id"],)).fetchone()  # fmt: skip
    assert logged is not None and logged[:2] == (None, None) and logged[2]
    assert kept == ("not a number",)


def test_unusable_bytes_are_kept_once(conn: psycopg.Connection[Any]) -> None:
    body = b'{"type": "INSERT", "type": "DELETE"}'
    (log_id,) = conn.execute("SELECT optiqoflow.record_unusable_delivery(%s, 'd-1', 'duplicated key')", (body,)).fetchone()  # type: ignore[misc]
    assert conn.execute("SELECT raw_body FROM optiqoflow.webhook_logs WHERE id = %s", (log_id,)).fetchone() == (None,)
    kept = conn.execute("SELECT raw_body FROM optiqoflow.refused_deliveries WHERE log_id = %s", (log_id,)).fetchone()
    assert kept is not None and bytes(kept[0]) == body


def test_a_body_refused_for_its_bytes_is_never_replayed_as_is(conn: psycopg.Connection[Any], tenant: str) -> None:
    rid = new_id()
    good = json.dumps(upsert(tenant, rec(rid, 1, title="t")))
    # the same key twice: the receiver refused it (400); jsonb would keep the second
    body = (good[:-1] + f', "tenant_id": "{new_id()}"}}').encode()
    (log_id,) = conn.execute("SELECT optiqoflow.record_unusable_delivery(%s, NULL, 'duplicated key tenant_id')", (body,)).fetchone()  # type: ignore[misc]
    with pytest.raises(psycopg.Error) as refused, conn.transaction():
        conn.execute("SELECT optiqoflow.replay_webhook(%s)", (log_id,))
    assert refused.value.sqlstate == "OF012"
    assert "dismiss" in (refused.value.diag.message_hint or "")
    assert row(conn, tenant, rid) is None
    # repaired by a DBA, it applies; or dismissed, it waits no more
    conn.execute("UPDATE optiqoflow.refused_deliveries SET payload = %s::jsonb WHERE log_id = %s", (good, log_id))
    (answer,) = conn.execute("SELECT optiqoflow.replay_webhook(%s)", (log_id,)).fetchone()  # type: ignore[misc]
    assert answer["status"] == "applied" and row(conn, tenant, rid) is not None
    (other,) = conn.execute("SELECT optiqoflow.record_unusable_delivery('{\"a\":1,\"a\":2}', NULL, 'dup')").fetchone()  # type: ignore[misc]
    conn.execute("SET ROLE service_role")
    assert conn.execute("UPDATE optiqoflow.refused_deliveries SET resolved_at = now() WHERE log_id = %s", (other,)).rowcount == 1
    conn.execute("RESET ROLE")


def test_waiting_refusals_expire_after_their_own_retention(conn: psycopg.Connection[Any], tenant: str) -> None:
    old, recent = (apply(conn, upsert(tenant, rec(new_id(), 1, priority="x")))["log_id"] for _ in range(2))
    conn.execute("UPDATE optiqoflow.refused_deliveries SET received_at = now() - interval '40 days' WHERE log_id = %s", (old,))
    (done,) = conn.execute("SELECT optiqoflow.prune_logs()").fetchone()  # type: ignore[misc]
    assert (done["refused_retention"], done["refused_expired"]) == ("30 days", 1)
    left = {r for (r,) in conn.execute("SELECT log_id FROM optiqoflow.refused_deliveries")}
    assert old not in left and recent in left
    with pytest.raises(psycopg.Error) as shorter, conn.transaction():
        conn.execute("SELECT optiqoflow.prune_logs('7 days', '1 day')")
    assert shorter.value.sqlstate == "OF017"
    (longer,) = conn.execute("SELECT optiqoflow.prune_logs('60 days')").fetchone()  # type: ignore[misc]
    assert longer["refused_retention"] == "60 days"  # never shorter than the logs
