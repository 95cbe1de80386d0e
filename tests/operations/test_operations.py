"""Operations: log retention (prune_logs), refused deliveries kept until resolved, the
replay / status / reconcile commands.

Everything runs against a real PostgreSQL; the commands run in-process through
`operations.cli.main`, with DATABASE_URL pointing at the test's database.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from operations import cli
from simulator import source as simsource
from tests.helpers import SOURCE, apply, fresh_database, rec, upsert

Conn = psycopg.Connection[Any]
NEW_SOURCE = "site_inspections"  # no mapping until the DBA adds one


@pytest.fixture
def database_url(db_dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DATABASE_URL", db_dsn)
    return db_dsn


def iso(t: dt.datetime) -> str:
    return t.isoformat()


def now(c: Conn) -> dt.datetime:
    row = c.execute("SELECT now()").fetchone()
    assert row is not None
    result: dt.datetime = row[0]
    return result


def work_order(
    tenant: str, *, age: dt.timedelta = dt.timedelta(seconds=2), **cols: Any
) -> dict[str, Any]:
    """An INSERT of a new work order changed `age` ago at the source."""
    return upsert(tenant, rec(None, iso(dt.datetime.now(dt.UTC) - age), title="t", **cols))


def partitions(c: Conn) -> dict[str, str]:
    """name -> bound of every partition of webhook_logs."""
    return dict(
        c.execute(
            """
            SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid)
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'optiqoflow.webhook_logs'::regclass
            """
        ).fetchall()
    )


def day_name(t: dt.datetime) -> str:
    return "webhook_logs_p" + t.astimezone(dt.UTC).strftime("%Y%m%d")


def prune(c: Conn, retention: str = "7 days") -> dict[str, Any]:
    row = c.execute("SELECT optiqoflow.prune_logs(%s::interval)", (retention,)).fetchone()
    assert row is not None
    result: dict[str, Any] = row[0]
    return result


def log_at(c: Conn, received_at: dt.datetime, **cols: Any) -> int:
    names = ["received_at", "outcome", *cols]
    row = c.execute(
        f"INSERT INTO optiqoflow.webhook_logs ({', '.join(names)}) "
        f"VALUES ({', '.join(['%s'] * len(names))}) RETURNING id",
        [received_at, "applied", *cols.values()],
    ).fetchone()
    assert row is not None
    return int(row[0])


def refused(c: Conn, log_id: int) -> dict[str, Any] | None:
    with c.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT * FROM optiqoflow.refused_deliveries WHERE log_id = %s", (log_id,)
        ).fetchone()


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main(argv)
    return code, capsys.readouterr().out


# --- retention ---------------------------------------------------------------------------


def test_migration_creates_daily_partitions_and_a_default(conn: Conn) -> None:
    parts = partitions(conn)
    assert parts.pop("webhook_logs_default") == "DEFAULT"
    t = now(conn)
    # the retention window of 0004's prune_logs() .. 3 days ahead (2: the template may
    # have been migrated before midnight)
    for days in range(-6, 3):
        assert day_name(t + dt.timedelta(days=days)) in parts
    # a log row far outside every partition still goes in (the DEFAULT partition)
    log_id = log_at(conn, t + dt.timedelta(days=400))
    where = conn.execute(
        "SELECT tableoid::regclass::text FROM optiqoflow.webhook_logs WHERE id = %s", (log_id,)
    ).fetchone()
    assert where == ("optiqoflow.webhook_logs_default",)


def test_pruning_drops_only_the_partitions_past_the_retention(conn: Conn) -> None:
    t = now(conn)
    # an operator who kept 30 days of logs ...
    created = prune(conn, "30 days")["partitions_created"]
    assert day_name(t - dt.timedelta(days=29)) in created
    old = log_at(conn, t - dt.timedelta(days=20))
    edge = log_at(conn, t - dt.timedelta(days=8))
    recent = log_at(conn, t - dt.timedelta(days=3))
    current = log_at(conn, t)
    # ... goes back to the default, 7 days
    report = prune(conn)
    dropped = set(report["partitions_dropped"])
    assert day_name(t - dt.timedelta(days=20)) in dropped
    assert day_name(t - dt.timedelta(days=8)) in dropped
    assert not dropped & {day_name(t - dt.timedelta(days=d)) for d in range(0, 7)}
    cutoff = dt.datetime.fromisoformat(report["cutoff"])
    for name in dropped:  # every dropped day ended before the cut-off
        day = dt.datetime.strptime(name.removeprefix("webhook_logs_p"), "%Y%m%d").replace(
            tzinfo=dt.UTC
        )
        assert day + dt.timedelta(days=1) <= cutoff
    assert report["partitions_locked"] == []
    left = {r[0] for r in conn.execute("SELECT id FROM optiqoflow.webhook_logs")}
    assert old not in left and edge not in left
    assert {recent, current} <= left
    # the partition holding the cut-off stays (rows kept at least the retention)
    assert day_name(cutoff) in partitions(conn)
    assert prune(conn)["partitions_dropped"] == []  # nothing more to do


def test_rows_waiting_in_the_default_partition_move_into_their_new_day(conn: Conn) -> None:
    t = now(conn)
    tomorrow = day_name(t + dt.timedelta(days=1))
    conn.execute(f"DROP TABLE optiqoflow.{tomorrow}")  # pruning was not scheduled
    waiting = log_at(conn, t + dt.timedelta(days=1))
    ancient = log_at(conn, t - dt.timedelta(days=100))  # in the DEFAULT partition too
    report = prune(conn)
    assert tomorrow in report["partitions_created"]
    assert report["default_rows_moved"] == 1
    assert report["default_rows_deleted"] == 1
    where = conn.execute(
        "SELECT tableoid::regclass::text FROM optiqoflow.webhook_logs WHERE id = %s", (waiting,)
    ).fetchone()
    assert where == (f"optiqoflow.{tomorrow}",)
    assert (
        conn.execute("SELECT FROM optiqoflow.webhook_logs WHERE id = %s", (ancient,)).fetchone()
        is None
    )


def test_refused_deliveries_outlive_their_log_until_resolved(conn: Conn, tenant: str) -> None:
    payload = work_order(tenant) | {"table": NEW_SOURCE}
    answer = apply(conn, payload, "delivery-1")
    assert answer["status"] == "refused" and answer["sqlstate"] == "OF001"
    log_id = answer["log_id"]
    kept = refused(conn, log_id)
    assert kept is not None and kept["payload"] == payload and kept["resolved_at"] is None
    # refused before its tenant was read (unknown table), still filed under it
    assert kept["tenant_id"] == uuid.UUID(tenant) and kept["delivery_id"] == "delivery-1"
    unusable = conn.execute(
        "SELECT optiqoflow.record_unusable_delivery('\\x7b22613a'::bytea, 'delivery-2', 'bad JSON')"
    ).fetchone()
    assert unusable is not None
    assert refused(conn, unusable[0])["raw_body"] == b'{"a:'  # type: ignore[index]

    # twenty days later (the rows move with their received_at), pruned with 7 days
    conn.execute(
        """
        SELECT optiqoflow.prune_logs('30 days');
        UPDATE optiqoflow.webhook_logs SET received_at = received_at - interval '20 days';
        UPDATE optiqoflow.refused_deliveries SET received_at = received_at - interval '20 days';
        """
    )
    prune(conn)
    assert conn.execute("SELECT count(*) FROM optiqoflow.webhook_logs").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM optiqoflow.refused_deliveries").fetchone() == (2,)

    # the DBA adds the mapping; the delivery replays from refused_deliveries alone
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES (%s, 'inspections')",
        (NEW_SOURCE,),
    )
    replayed = conn.execute("SELECT optiqoflow.replay_webhook(%s)", (log_id,)).fetchone()
    assert replayed is not None and replayed[0]["status"] == "applied", replayed
    new_log = replayed[0]["log_id"]
    kept = refused(conn, log_id)
    assert kept is not None and kept["resolved_at"] is not None and kept["resolved_by"] == new_log
    link = conn.execute(
        "SELECT replay_of, delivery_id FROM optiqoflow.webhook_logs WHERE id = %s", (new_log,)
    ).fetchone()
    assert link == (log_id, "delivery-1")
    assert conn.execute("SELECT count(*) FROM optiqoflow.inspections").fetchone() == (1,)

    # resolved refusals go after the retention; the waiting one stays
    assert prune(conn)["refused_deleted"] == 0
    conn.execute(
        "UPDATE optiqoflow.refused_deliveries SET resolved_at = now() - interval '8 days' WHERE resolved_at IS NOT NULL"
    )
    assert prune(conn)["refused_deleted"] == 1
    left = conn.execute("SELECT log_id FROM optiqoflow.refused_deliveries").fetchall()
    assert left == [(unusable[0],)]


def test_delivery_keys_and_push_log_live_as_long_as_the_retention(conn: Conn, tenant: str) -> None:
    other = str(uuid.uuid4())
    for i in range(3):
        assert apply(conn, work_order(tenant), f"old-{i}")["status"] == "applied"
    assert apply(conn, work_order(other), "old-other")["status"] == "applied"
    assert apply(conn, work_order(tenant), "recent")["status"] == "applied"
    conn.execute(
        """
        UPDATE optiqoflow.delivery_keys SET seen_at = now() - interval '8 days' WHERE key LIKE 'd:old-%';
        UPDATE tenants.tenant_data_push_log p SET pushed_at = now() - interval '8 days'
          FROM optiqoflow.webhook_logs l
         WHERE l.id = p.webhook_log_id AND l.delivery_id LIKE 'old-%';
        """
    )
    report = prune(conn)
    assert report["delivery_keys_deleted"] == 4
    assert report["push_log_deleted"] == 4
    assert report["more"] is False
    keys = [k for (k,) in conn.execute("SELECT key FROM optiqoflow.delivery_keys")]
    assert keys == ["d:recent"]
    assert conn.execute("SELECT count(*) FROM tenants.tenant_data_push_log").fetchone() == (1,)
    # inside the window a retry is still a duplicate
    assert apply(conn, work_order(tenant), "recent")["status"] == "duplicate"


def test_retention_shorter_than_a_day_is_refused(conn: Conn) -> None:
    with pytest.raises(psycopg.Error) as e:
        prune(conn, "2 hours")
    assert e.value.sqlstate == "OF017"
    assert e.value.diag.message_hint


def test_prune_command(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(["prune", "--retention", "30 days", "--json"], capsys)
    assert code == 0
    report = json.loads(out)
    assert report["retention"] == "30 days" and report["more"] is False
    assert len(report["partitions_created"]) >= 20


# --- replay ------------------------------------------------------------------------------


@pytest.fixture
def waiting(conn: Conn, tenant: str) -> dict[str, Any]:
    """Three refused deliveries: two of tenant A for a table with no mapping yet (fixable),
    one of tenant B with an id that is not a UUID (never fixable)."""
    other = str(uuid.uuid4())
    first = apply(conn, work_order(tenant) | {"table": NEW_SOURCE}, "a-1")
    second = apply(conn, work_order(tenant) | {"table": NEW_SOURCE}, "a-2")
    broken = apply(conn, work_order(other, id="not-a-uuid"), "b-1")
    assert [a["status"] for a in (first, second, broken)] == ["refused"] * 3
    conn.execute(
        "INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES (%s, 'inspections')",
        (NEW_SOURCE,),
    )
    return {
        "tenant": tenant,
        "other": other,
        "ids": [first["log_id"], second["log_id"]],
        "broken": broken["log_id"],
    }


def state(c: Conn) -> tuple[Any, ...]:
    """Everything a replay could change."""
    return (
        c.execute("SELECT count(*), max(id) FROM optiqoflow.webhook_logs").fetchone(),
        c.execute(
            "SELECT array_agg(log_id ORDER BY log_id) FROM optiqoflow.refused_deliveries WHERE resolved_at IS NULL"
        ).fetchone(),
        c.execute("SELECT sum(replays) FROM optiqoflow.refused_deliveries").fetchone(),
        c.execute("SELECT to_regclass('optiqoflow.inspections')").fetchone(),
        c.execute("SELECT count(*) FROM optiqoflow.delivery_keys").fetchone(),
    )


def test_replay_dry_run_reports_and_changes_nothing(
    conn: Conn, waiting: dict[str, Any], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = state(conn)
    code, out = run(
        ["replay", "--tenant", waiting["tenant"].upper(), "--dry-run", "--json"], capsys
    )
    assert code == 0, out
    report = json.loads(out)
    assert report["dry_run"] is True
    assert [r["log_id"] for r in report["replayed"]] == waiting["ids"]
    assert [r["status"] for r in report["replayed"]] == ["applied", "applied"]
    assert all(r["answer"]["table"] == "inspections" for r in report["replayed"])
    assert state(conn) == before

    code, out = run(["replay", "--since", "2000-01-01", "--dry-run"], capsys)
    assert code == 1  # the broken one would still be refused
    assert "would be applied" in out and "would be refused" in out and "nothing changed" in out
    assert state(conn) == before


def test_replay_by_log_id_resolves_and_links(
    conn: Conn, waiting: dict[str, Any], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first = waiting["ids"][0]
    code, out = run(["replay", "--log-id", str(first)], capsys)
    assert code == 0, out
    assert f"log {first}" in out and "now applied" in out
    kept = refused(conn, first)
    assert kept is not None and kept["resolved_at"] is not None and kept["replays"] == 1
    original = conn.execute(
        "SELECT resolved_at IS NOT NULL, resolved_by FROM optiqoflow.webhook_logs WHERE id = %s",
        (first,),
    ).fetchone()
    assert original == (True, kept["resolved_by"])
    replay_log = conn.execute(
        "SELECT replay_of, outcome FROM optiqoflow.webhook_logs WHERE id = %s",
        (kept["resolved_by"],),
    ).fetchone()
    assert replay_log == (first, "applied")
    # the second one is still waiting; the first is no longer chosen by a filter
    code, out = run(["replay", "--table", "inspections", "--json"], capsys)
    assert code == 0
    assert [r["log_id"] for r in json.loads(out)["replayed"]] == [waiting["ids"][1]]
    assert conn.execute("SELECT count(*) FROM optiqoflow.inspections").fetchone() == (2,)


def test_replay_by_time_range_and_tenant(
    conn: Conn, waiting: dict[str, Any], database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    t = now(conn)
    # nothing in a range before the deliveries
    code, out = run(["replay", "--until", iso(t - dt.timedelta(hours=1))], capsys)
    assert code == 0 and "no waiting delivery" in out
    code, out = run(
        [
            "replay",
            "--since",
            iso(t - dt.timedelta(hours=1)),
            "--until",
            iso(t + dt.timedelta(hours=1)),
            "--json",
        ],
        capsys,
    )
    assert code == 1  # the broken delivery is refused again
    report = {r["log_id"]: r for r in json.loads(out)["replayed"]}
    assert set(report) == {*waiting["ids"], waiting["broken"]}
    assert report[waiting["broken"]]["status"] == "refused"
    broken = refused(conn, waiting["broken"])
    assert broken is not None and broken["resolved_at"] is None and broken["replays"] == 1
    assert broken["last_replay_log_id"] == report[waiting["broken"]]["answer"]["log_id"]
    # a refusal of a replay does not add a second waiting row
    assert conn.execute(
        "SELECT count(*) FROM optiqoflow.refused_deliveries WHERE resolved_at IS NULL"
    ).fetchone() == (1,)
    code, out = run(["replay", "--tenant", waiting["other"]], capsys)
    assert code == 1 and "now refused" in out


def test_replay_needs_a_selection(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["replay"]) == 2
    assert cli.main(["replay", "--tenant", "not-a-uuid"]) == 2
    assert cli.main(["replay", "--log-id", "1", "--tenant", str(uuid.uuid4())]) == 2
    assert "say what to replay" in capsys.readouterr().err


# --- status ------------------------------------------------------------------------------


def health(c: Conn, tenant: str) -> dict[str, dict[str, Any]]:
    with c.cursor(row_factory=dict_row) as cur:
        found = cur.execute(
            "SELECT * FROM optiqoflow.sync_health WHERE tenant_id = %s", (tenant,)
        ).fetchall()
    return {r["target_table"]: r for r in found}


def test_sync_health_and_status_json(
    conn: Conn, tenant: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a = work_order(tenant, age=dt.timedelta(seconds=2))
    assert apply(conn, a, "d-1")["status"] == "applied"
    assert apply(conn, a, "d-1")["status"] == "duplicate"  # a retry
    newer = work_order(tenant, age=dt.timedelta(seconds=30))
    assert apply(conn, newer)["status"] == "applied"
    older = dict(
        newer,
        record=dict(
            newer["record"], updated_at=iso(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        ),
    )
    assert apply(conn, older)["status"] == "stale"
    assert apply(conn, work_order(tenant, id="nope"))["status"] == "refused"
    zones = {
        "type": "FULL_SYNC",
        "table": "zone_categories",
        "tenant_id": tenant,
        "total": 2,
        "sync_id": "z1",
    }
    zone = rec(None, iso(dt.datetime.now(dt.UTC)), name="z")
    assert apply(conn, zones | {"records": [zone], "offset": 0})["status"] == "applied"
    assert health(conn, tenant)["zones"]["full_sync_state"] == "running"
    zone2 = dict(zone, id=str(uuid.uuid4()))
    assert apply(conn, zones | {"records": [zone2], "offset": 1})["status"] == "applied"

    h = health(conn, tenant)
    assert set(h) == {"work_orders", "zones"}
    wo, z = h["work_orders"], h["zones"]
    assert wo["source_table"] == SOURCE and wo["rows"] == 2 and z["rows"] == 2
    assert wo["last_push_at"] is not None and wo["full_sync_state"] is None
    assert (
        wo["deliveries_1h"],
        wo["applied_1h"],
        wo["duplicate_1h"],
        wo["stale_1h"],
        wo["refused_1h"],
    ) == (5, 2, 1, 1, 1)
    assert wo["refused_waiting"] == 1 and z["refused_waiting"] == 0
    # lag: 2 s, 30 s and 5 min (the stale one) behind; the duplicate by key has none
    assert 25_000 <= wo["lag_ms_p50_1h"] <= 60_000
    assert 290_000 <= wo["lag_ms_max_1h"] <= 400_000
    assert z["full_sync_state"] == "complete" and z["full_sync_id"] == "z1"
    assert z["lag_ms_p50_1h"] is None  # a FULL_SYNC is a snapshot, not a change

    code, out = run(["status", "--json", "--tenant", tenant], capsys)
    assert code == 0
    rows = json.loads(out)
    assert [(r["tenant_id"], r["target_table"]) for r in rows] == [
        (tenant, "work_orders"),
        (tenant, "zones"),
    ]
    assert (
        rows[0]["rows"] == 2
        and rows[0]["stale_1h"] == 1
        and rows[1]["full_sync_state"] == "complete"
    )
    code, out = run(["status"], capsys)
    assert code == 0
    line = next(
        line for line in out.splitlines() if line.startswith(tenant) and "work_orders" in line
    )
    assert " 2 " in line and "s ago" in line
    assert "1 refused deliveries waiting" in out


def test_sync_health_is_for_service_role_only(conn: Conn) -> None:
    for role, allowed in (("service_role", True), ("authenticated", False), ("anon", False)):
        for obj in ("optiqoflow.sync_health", "optiqoflow.refused_deliveries"):
            got = conn.execute(
                "SELECT has_table_privilege(%s, %s, 'SELECT')", (role, obj)
            ).fetchone()
            assert got == (allowed,), (role, obj)
    conn.execute("SET ROLE service_role")
    conn.execute("SELECT * FROM optiqoflow.sync_health").fetchall()
    conn.execute("SELECT optiqoflow.prune_logs()")
    conn.execute("RESET ROLE")


# --- reconcile ---------------------------------------------------------------------------


@pytest.fixture
def source_dsn(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, None) as dsn:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(simsource.schema_sql())
        yield dsn


def test_reconcile_finds_exactly_the_drifted_pair(
    conn: Conn, source_dsn: str, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(source_dsn, autocommit=True) as src:
        src.execute(
            """
            INSERT INTO optiqo.adhoc_work_orders (id, tenant_id, site_id, title, status, priority, created_at, updated_at)
            SELECT gen_random_uuid(), t, gen_random_uuid(), 'wo ' || i, 'open', 3, now(),
                   now() - i * interval '1 minute' + interval '0.123456 seconds'
              FROM unnest(%s::uuid[]) t, generate_series(1, 3) i
            """,
            ([a, b],),
        )
        src.execute(
            """
            INSERT INTO optiqo.zone_categories (id, tenant_id, name, active, created_at, updated_at)
            SELECT gen_random_uuid(), %s, 'zone ' || i, true, now(), now() FROM generate_series(1, 2) i
            """,
            (a,),
        )
        # every source row goes through apply_webhook, as Optiqo would send it
        for table in ("adhoc_work_orders", "zone_categories"):
            for (record,) in src.execute(
                f"SELECT jsonb_strip_nulls(to_jsonb(t)) FROM optiqo.{table} t"
            ):
                answer = apply(conn, {"type": "INSERT", "table": table, "record": record})
                assert answer["status"] == "applied", answer
        code, out = run(["reconcile", "--source-dsn", source_dsn], capsys)
        assert code == 0, out
        assert "0 drifted" in out

        # a change of tenant b's work orders that never arrived
        src.execute(
            "UPDATE optiqo.adhoc_work_orders SET updated_at = updated_at + interval '1 microsecond'"
            " WHERE id = (SELECT id FROM optiqo.adhoc_work_orders WHERE tenant_id = %s LIMIT 1)",
            (b,),
        )
    code, out = run(["reconcile", "--source-dsn", source_dsn, "--json"], capsys)
    assert code == 1
    report = json.loads(out)
    assert [(d["tenant_id"], d["source_table"], d["target_table"]) for d in report["drifted"]] == [
        (b, "adhoc_work_orders", "work_orders")
    ]
    assert report["drifted"][0]["source_rows"] == report["drifted"][0]["target_rows"] == 3
    assert report["checked"] == 3  # a x work_orders, b x work_orders, a x zones
    code, out = run(["reconcile", "--source-dsn", source_dsn, "--tenant", a], capsys)
    assert code == 0, out
    code, out = run(["reconcile", "--source-dsn", source_dsn, "--table", "work_orders"], capsys)
    assert code == 1 and f"DRIFT tenant {b} adhoc_work_orders -> work_orders" in out
