"""The operator's side of bounded refusals and careful replays: `prune` expires
unresolved refusals after their own retention and says how many; a bulk `replay` holds
back what would remove rows until asked with --allow-removals; `status` names the tenant
claim row-level security reads."""

from __future__ import annotations

from typing import Any

import psycopg

from tests.helpers import apply, new_id, rec, upsert
from tests.operations.processes import environment, one_line, optiqoflow

Conn = psycopg.Connection[Any]


def test_prune_expires_unresolved_refusals_after_their_retention(conn: Conn, db_dsn: str, tenant: str) -> None:
    old = apply(conn, upsert(tenant, rec(new_id(), 1, priority="not a number")))["log_id"]
    conn.execute("UPDATE optiqoflow.refused_deliveries SET received_at = now() - interval '20 days' WHERE log_id = %s", (old,))
    env = environment(DATABASE_URL=db_dsn)
    kept = optiqoflow("prune", env=env)
    assert kept.returncode == 0 and "0 refusals unresolved past 30 days" in kept.stdout, kept.stdout
    done = optiqoflow("prune", "--refused-retention", "14 days", env=env)
    assert done.returncode == 0 and "1 refusals unresolved past 14 days" in done.stdout, done.stdout
    shorter = optiqoflow("prune", "--refused-retention", "1 day", env=env)
    assert shorter.returncode == 1 and "shorter than the log retention" in one_line(shorter.stderr)


def test_a_bulk_replay_holds_back_what_would_remove_rows(conn: Conn, db_dsn: str, tenant: str) -> None:
    gone = apply(conn, {"type": "DELETE", "table": "equipment_items", "tenant_id": tenant,
                        "old_record": {"id": new_id()}})  # fmt: skip
    kept = apply(conn, upsert(tenant, rec(new_id(), 1, title="t"), table="equipment_items"))
    assert gone["status"] == kept["status"] == "refused"
    conn.execute("INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES ('equipment_items', 'equipment')")
    env = environment(DATABASE_URL=db_dsn)
    first = optiqoflow("replay", "--tenant", tenant, env=env)
    assert first.returncode == 1
    assert f"log {gone['log_id']}: not replayed: a DELETE would remove rows" in first.stdout, first.stdout
    assert "1 held back" in first.stdout and "--allow-removals" in first.stdout
    waiting = {r for (r,) in conn.execute("SELECT log_id FROM optiqoflow.refused_deliveries WHERE resolved_at IS NULL")}
    assert waiting == {gone["log_id"]}  # the INSERT was replayed and applied, the DELETE waits
    second = optiqoflow("replay", "--tenant", tenant, "--allow-removals", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert conn.execute("SELECT count(*) FROM optiqoflow.refused_deliveries WHERE resolved_at IS NULL").fetchone() == (0,)


def test_status_names_the_tenant_claim(conn: Conn, db_dsn: str, tenant: str) -> None:
    apply(conn, upsert(tenant, rec(new_id(), 1, title="t")))
    env = environment(DATABASE_URL=db_dsn)
    assert "tenant claim (row-level security): tenant_id" in optiqoflow("status", env=env).stdout
    conn.execute("SELECT optiqoflow.set_tenant_claim('app_metadata.tenant_id')")
    assert "tenant claim (row-level security): app_metadata.tenant_id" in optiqoflow("status", env=env).stdout
