"""RECONCILE through the receiver's normal path (docs/payloads.md, "Repair without
peering"): signed like any delivery, answered 200 `applied` with operation RECONCILE and
the differing buckets, never a duplicate however often it is sent with one delivery id,
with or without group commit; a forged one is a 401 like any other."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest

from tests.helpers import apply, full_sync, new_id, rec
from tests.http_helpers import receiver_config, serving


def _figures(dsn: str, tenant: str) -> dict[str, Any]:
    with psycopg.connect(dsn, autocommit=True) as c:
        records = [rec(new_id(), 1, title=f"r{i}") for i in range(30)]
        assert apply(c, full_sync(tenant, records, 0, 30, "load"))["status"] == "applied"
        figures = {
            b: {"rows": int(n), "checksum": str(s)}
            for b, n, s in c.execute(
                "SELECT * FROM optiqoflow.bucket_fingerprints(%s, 'adhoc_work_orders')", (tenant,)
            )
        }
        c.execute(
            "DELETE FROM optiqoflow.work_orders WHERE tenant_id = %s AND id = %s",
            (tenant, records[0]["id"]),
        )
        bucket = c.execute("SELECT left(md5(%s::uuid::text), 2)", (records[0]["id"],)).fetchone()
    assert bucket is not None
    return {"figures": figures, "bucket": bucket[0]}


@pytest.mark.parametrize("group_commit", [1, 8])
async def test_signed_reconcile_is_applied_every_time(
    db_dsn: str, tenant: str, group_commit: int
) -> None:
    known = _figures(db_dsn, tenant)
    payload = {"type": "RECONCILE", "table": "adhoc_work_orders", "tenant_id": tenant,
               "read_at": "2026-12-07T10:00:00Z", "buckets": known["figures"]}  # fmt: skip
    async with serving(receiver_config(db_dsn, group_commit=group_commit)) as ep:
        replies = await asyncio.gather(
            *(
                ep.post(payload, delivery_id="rec-1", scheme=s)
                for s in ("plain", "standard", "plain")
            )
        )
        for r in replies:
            assert r.status == 200, r
            assert r.body["status"] == "applied" and r.body["operation"] == "RECONCILE"
            assert [b["bucket"] for b in r.body["buckets"]] == [known["bucket"]]
        assert len({r.body["log_id"] for r in replies}) == 3
        forged = await ep.post(payload, secret="not-the-secret")
        assert forged.status == 401
        refused = await ep.post({**payload, "digits": 3})
        assert refused.status == 422 and refused.body["sqlstate"] == "OF026"
    with psycopg.connect(db_dsn) as c:
        rows = c.execute(
            "SELECT outcome, count(*) FROM optiqoflow.webhook_logs WHERE operation = 'RECONCILE' GROUP BY 1"
        ).fetchall()
    assert dict(rows) == {"applied": 3, "refused": 1}
