"""`optiqoflow replay` says when there is nothing to replay (a delivery that was applied,
a refusal resolved since) and exits 0; its times are ISO 8601 and nothing else."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from tests.helpers import apply, rec, upsert
from tests.operations.processes import environment, one_line, optiqoflow

Conn = psycopg.Connection[Any]


def test_an_applied_delivery_has_nothing_to_replay(conn: Conn, db_dsn: str, tenant: str) -> None:
    answer = apply(conn, upsert(tenant, rec(title="t")), "applied-1")
    assert answer["status"] == "applied"
    log_id = answer["log_id"]
    env = environment(DATABASE_URL=db_dsn)

    done = optiqoflow("replay", "--log-id", str(log_id), env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"log {log_id} (applied, work_orders, tenant {tenant}): applied, nothing to replay\n"
    )
    done = optiqoflow("replay", "--log-id", str(log_id), "--json", env=env)
    assert done.returncode == 0
    (report,) = json.loads(done.stdout)["replayed"]
    assert report["status"] == "nothing to replay"
    assert report["answer"] == {"reason": "applied"}
    # nothing was written
    assert conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone() == (1,)


def test_a_resolved_refusal_has_nothing_to_replay(conn: Conn, db_dsn: str, tenant: str) -> None:
    refused = apply(conn, upsert(tenant, rec(title="t"), table="site_inspections"), "r-1")
    assert refused["status"] == "refused"
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table)"
        " VALUES ('site_inspections', 'inspections')"
    )
    env = environment(DATABASE_URL=db_dsn)
    first = optiqoflow("replay", "--log-id", str(refused["log_id"]), env=env)
    assert first.returncode == 0 and "now applied" in first.stdout, first.stdout
    row = conn.execute(
        "SELECT resolved_by FROM optiqoflow.refused_deliveries WHERE log_id = %s",
        (refused["log_id"],),
    ).fetchone()
    assert row is not None

    again = optiqoflow("replay", "--log-id", str(refused["log_id"]), env=env)
    assert again.returncode == 0
    assert again.stdout.endswith(f"resolved by log {row[0]}, nothing to replay\n"), again.stdout


def test_a_log_id_that_does_not_exist_is_a_problem(db_dsn: str) -> None:
    done = optiqoflow("replay", "--log-id", "424242", env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 1
    assert "no delivery with log id 424242" in done.stdout
    assert "could not be replayed" in done.stdout and "still waiting" in done.stdout


@pytest.mark.parametrize(
    "value", ["yesterday", "now", "epoch", "tomorrow 10:00", "2026-13-01", "1 day ago"]
)
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_times_are_iso_8601_only(db_dsn: str, option: str, value: str) -> None:
    done = optiqoflow("replay", option, value, env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"optiqoflow replay: {option} {value!r} is not an ISO 8601 time (e.g. 2026-11-26T00:00Z)"
    )


@pytest.mark.parametrize(
    "value", ["2026-11-26T00:00Z", "2026-11-26", "2026-11-26T10:00:00+01:00", "2026-11-26 10:00"]
)
def test_iso_8601_times_are_accepted(db_dsn: str, value: str) -> None:
    done = optiqoflow("replay", "--since", value, env=environment(DATABASE_URL=db_dsn))
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == "optiqoflow replay: no waiting delivery matches\n"


def test_a_tenant_that_is_not_a_uuid(db_dsn: str) -> None:
    done = optiqoflow("replay", "--tenant", "acme", env=environment(DATABASE_URL=db_dsn))
    assert done.returncode == 2
    assert one_line(done.stderr) == "optiqoflow replay: not a tenant UUID: 'acme'"
