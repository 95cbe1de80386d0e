"""The batch envelope is bounded and does not stall other tenants: more than 10,000
events is refused (OF024) before any is applied, and while a large envelope runs, an
unrelated tenant's deliveries are applied. (Its cost is linear in its events: the
answers were once appended to a jsonb array event by event, copying it each time;
bench/envelope.py measures it.)"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import psycopg

from tests.helpers import apply, envelope, new_id, rec, upsert


def test_an_envelope_over_10000_events_is_refused_whole(conn: psycopg.Connection[Any], tenant: str) -> None:
    events = [upsert(None, {"id": new_id(), "updated_at": "2026-01-01T00:00:00Z", "title": "t"})
              for _ in range(10_001)]  # fmt: skip
    answer = apply(conn, envelope(tenant, *events))
    assert (answer["status"], answer["sqlstate"]) == ("refused", "OF024"), {k: answer.get(k) for k in ("status", "error")}
    assert "10,000" in answer["error"] and answer["hint"]
    assert conn.execute("SELECT count(*) FROM optiqoflow.work_orders").fetchone() == (0,)
    ok = apply(conn, envelope(tenant, *events[:10_000]))
    assert ok["counts"] == {"applied": 10_000}


def test_other_tenants_are_applied_while_a_large_envelope_runs(db_dsn: str) -> None:
    big, other = str(uuid.uuid4()), str(uuid.uuid4())
    events = [upsert(None, rec(new_id(), 1, title=f"e{i}")) for i in range(4_000)]
    answers: list[dict[str, Any]] = []

    def run_envelope() -> None:
        with psycopg.connect(db_dsn, autocommit=True) as c:
            answers.append(apply(c, envelope(big, *events)))

    with psycopg.connect(db_dsn, autocommit=True) as c:
        apply(c, upsert(big, rec(new_id(), 1, title="warm")))  # the tenant's view exists
        apply(c, upsert(other, rec(new_id(), 1, title="warm")))
        worker = threading.Thread(target=run_envelope)
        worker.start()
        while not c.execute(
            "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE query LIKE 'SELECT optiqoflow.apply_webhook%%' AND state = 'active' AND pid <> pg_backend_pid() AND datname = current_database())"
        ).fetchone()[0]:  # type: ignore[index]
            pass
        during = [apply(c, upsert(other, rec(new_id(), 2, title=f"o{i}")))["status"] for i in range(5)]
        still_running = worker.is_alive()
        worker.join()
    assert during == ["applied"] * 5
    assert still_running, "the envelope ended before the other tenant's deliveries: make it larger"
    assert answers and answers[0]["counts"] == {"applied": 4_000}
