"""Scale-out on Citus: optiqoflow.distribute() and the tenant-delegated write path.

Tests marked `citus` run against the coordinator named by OPTIQOFLOW_CITUS_DSN (a
database with the citus extension and its workers added; see docs/citus.md). They
migrate it to head and distribute it (both idempotent), then work with fresh tenants
only, so they can run again on the same cluster. Without the variable, or without the
extension there, they skip and say why.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.sql
import pytest
from optiqoflow_db import migrate
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from receiver import citus, database
from receiver.citus import payload_tenant
from tests.helpers import rec, zone_payload
from tests.http_helpers import receiver_config, serving

CITUS_DSN = os.environ.get("OPTIQOFLOW_CITUS_DSN")
NIL = "00000000-0000-0000-0000-000000000000"


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """DSN of the migrated and distributed coordinator database."""
    if not CITUS_DSN:
        pytest.skip("OPTIQOFLOW_CITUS_DSN is not set (the coordinator of a Citus cluster)")
    try:
        with psycopg.connect(CITUS_DSN, autocommit=True, connect_timeout=5) as c:
            if c.execute("SELECT FROM pg_extension WHERE extname = 'citus'").fetchone() is None:
                pytest.skip("the citus extension is not created in the OPTIQOFLOW_CITUS_DSN database")
            workers = c.execute("SELECT count(*) FROM pg_dist_node WHERE shouldhaveshards AND isactive").fetchone()
    except psycopg.OperationalError as exc:
        pytest.skip(f"the Citus coordinator at OPTIQOFLOW_CITUS_DSN does not answer: {exc}")
    if not workers or workers[0] < 1:
        pytest.skip("the Citus cluster has no worker nodes (citus_add_node)")
    migrate.upgrade(CITUS_DSN)
    with psycopg.connect(CITUS_DSN, autocommit=True) as c:
        c.execute("SELECT optiqoflow.distribute(8)")
    yield CITUS_DSN


@pytest.fixture
def cc(cluster: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(cluster, autocommit=True) as c:
        yield c


@pytest.fixture
def make_role_on_cluster(cc: psycopg.Connection[Any]) -> Iterator[Any]:
    """CREATE ROLE <prefix>_<random> LOGIN on the coordinator (Citus creates it on the
    workers too); its tenant, grants and the role removed afterwards."""
    made: list[str] = []

    def make(prefix: str = "bi") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        cc.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(name)))
        made.append(name)
        return name

    yield make
    for name in made:
        ident = psycopg.sql.Identifier(name)
        cc.execute("DELETE FROM tenants.role_tenants WHERE role_name = %s", (name,))
        cc.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(ident))
        cc.execute(psycopg.sql.SQL("DROP ROLE {}").format(ident))


def deliver(c: psycopg.Connection[Any], payload: dict[str, Any], delivery_id: str | None = None) -> tuple[dict[str, Any], str]:
    """One delivery as the receiver makes it on a cluster (receiver.citus.apply: the
    tenant's worker first); (the answer, "worker" | "coordinator")."""
    body = database.JsonBody(json.dumps(payload).encode())
    key = delivery_id or str(uuid.uuid4())
    tenant = payload_tenant(payload)

    async def run() -> tuple[Any, str]:
        conn = await database.Connection.connect(
            c.info.dsn, autocommit=True, cursor_factory=psycopg.AsyncRawCursor,
            context=database.ADAPTERS,
        )
        async with conn:
            if tenant is None:
                return await database.first_value(conn, database.APPLY_SQL, (body, key)), "coordinator"
            return await citus.apply(conn, tenant, body, key)

    text, path = asyncio.run(run())
    return json.loads(text), path


def T(day: int) -> str:
    return f"2026-03-{day:02d}T10:00:00Z"


def workers_say(c: psycopg.Connection[Any], command: str) -> list[str]:
    """run_command_on_workers: each worker's answer."""
    rows = c.execute("SELECT success, result FROM run_command_on_workers(%s)", (command,)).fetchall()
    assert all(ok for ok, _ in rows), rows
    return [r for _, r in rows]


# --- without Citus ------------------------------------------------------------------


def test_distribute_without_citus_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    notices: list[str] = []
    conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    before = conn.execute("SELECT count(*) FROM pg_constraint WHERE connamespace = 'optiqoflow'::regnamespace").fetchone()
    row = conn.execute("SELECT optiqoflow.distribute()").fetchone()
    assert row == ({"citus": False},)
    assert any("citus extension is not installed" in n for n in notices)
    after = conn.execute("SELECT count(*) FROM pg_constraint WHERE connamespace = 'optiqoflow'::regnamespace").fetchone()
    assert before == after


def test_tenant_entry_point_is_apply_webhook_without_citus(conn: psycopg.Connection[Any], tenant: str) -> None:
    rid = str(uuid.uuid4())
    payload = {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
               "record": rec(rid, T(1), title="plain")}
    answer, path = deliver(conn, payload)
    assert (answer["status"], answer["rows"], path) == ("applied", 1, "worker")
    assert conn.execute("SELECT title FROM optiqoflow.work_orders WHERE tenant_id = %s AND id = %s",
                        (tenant, rid)).fetchone() == ("plain",)


def test_refusal_without_a_tenant_is_logged_under_null_without_citus(conn: psycopg.Connection[Any]) -> None:
    answer, path = deliver(conn, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": "not-a-uuid",
                                  "record": rec(str(uuid.uuid4()), T(1))})
    assert (answer["status"], answer["sqlstate"], path) == ("refused", "OF002", "coordinator")
    assert conn.execute("SELECT tenant_id FROM optiqoflow.webhook_logs WHERE id = %s",
                        (answer["log_id"],)).fetchone() == (None,)
    assert conn.execute("SELECT tenant_id FROM optiqoflow.refused_deliveries WHERE log_id = %s",
                        (answer["log_id"],)).fetchone() == (None,)
    assert conn.execute("SELECT optiqoflow._log_tenant('{}')").fetchone() == (None,)


def test_payload_tenant_reads_like_apply_webhook() -> None:
    t = str(uuid.uuid4())
    assert payload_tenant({"tenant_id": t.upper()}) == t
    assert payload_tenant({"record": {"tenant_id": "{" + t + "}"}}) == t
    assert payload_tenant({"records": [{"tenant_id": t}]}) == t
    assert payload_tenant({"tenant_id": "nope", "record": {"tenant_id": t}}) is None
    assert payload_tenant({"tenant_id": 7}) is None
    assert payload_tenant([]) is None
    assert payload_tenant({"type": "BATCH", "tenant_id": t, "events": [{"tenant_id": "other"}]}) == t
    assert payload_tenant({"type": "batch", "events": [{"record": {"tenant_id": t}}]}) == t
    assert payload_tenant({"type": "BATCH", "events": []}) is None


# --- on the cluster -----------------------------------------------------------------


@pytest.mark.citus
def test_distribute_layout_and_idempotence(cc: psycopg.Connection[Any]) -> None:
    kinds = dict(cc.execute(
        """SELECT logicalrelid::text, CASE WHEN partmethod = 'h' THEN 'hash:' || column_to_column_name(logicalrelid, partkey)
                                        WHEN repmodel = 't' THEN 'reference' ELSE 'local' END
             FROM pg_dist_partition"""
    ).fetchall())
    targets = [t for (t,) in cc.execute("SELECT target_table FROM optiqoflow.table_mappings")]
    assert len(targets) >= 21
    for t in targets:
        assert kinds.get(f"optiqoflow.{t}") == "hash:tenant_id", t
    for t in ("optiqoflow.tombstones", "optiqoflow.sync_runs", "optiqoflow.sync_run_batches",
              "optiqoflow.webhook_logs", "tenants.tenant_column_access", "tenants.tenant_data_push_log",
              "chart_data_cache"):
        assert kinds.get(t) == "hash:tenant_id", t
    for t in ("optiqoflow.table_mappings", "tenants.role_tenants", "charts", "chart_table_dependencies"):
        assert kinds.get(t) == "reference", t
    assert kinds.get("optiqoflow.delivery_keys") == "hash:key"
    # one colocation group for everything distributed by tenant
    groups = cc.execute(
        """SELECT count(DISTINCT colocationid) FROM pg_dist_partition
            WHERE partmethod = 'h' AND column_to_column_name(logicalrelid, partkey) = 'tenant_id'"""
    ).fetchone()
    assert groups == (1,)
    fn = cc.execute(
        """SELECT distribution_argument_index, colocationid = (SELECT colocationid FROM pg_dist_partition
                                                                WHERE logicalrelid = 'optiqoflow.tombstones'::regclass)
             FROM pg_dist_object WHERE objid = 'optiqoflow.apply_tenant_webhook(uuid, jsonb, text)'::regprocedure"""
    ).fetchone()
    assert fn == (0, True)
    # what the planner inlines apply_tenant_webhook into, and Citus delegates
    inner = cc.execute(
        """SELECT distribution_argument_index FROM pg_dist_object
            WHERE objid = 'optiqoflow._apply_tenant_webhook(uuid, jsonb, text)'::regprocedure"""
    ).fetchone()
    assert inner == (0,)
    again = cc.execute("SELECT optiqoflow.distribute()").fetchone()
    assert again is not None
    assert again[0]["reference"] == [] and again[0]["distributed"] == []


@pytest.mark.citus
def test_ordinary_delivery_is_one_call_on_the_tenants_worker(cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    first, path = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                               "record": rec(rid, T(1), title="a")})
    # a new tenant's first push creates its view: DDL, so the coordinator applies it
    assert (first["status"], path) == ("applied", "coordinator")

    notices: list[str] = []
    cc.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
    cc.execute("SET client_min_messages TO debug1")
    try:
        answer = cc.execute(
            "SELECT optiqoflow.apply_tenant_webhook(%s::uuid, %s::jsonb, %s)",
            (tenant, json.dumps({"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenant,
                                 "record": rec(rid, T(2), title="b")}), str(uuid.uuid4())),
        ).fetchone()
    finally:
        cc.execute("RESET client_min_messages")
    assert answer is not None and answer[0]["status"] == "applied"
    assert "pushing down the function call" in notices
    # ids drawn on a worker come from that node's own range (group id << 48)
    assert answer[0]["log_id"] >= 1 << 48 and first["log_id"] < 1 << 48
    assert cc.execute(f'SELECT title FROM tenants."{tenant}_work_orders"').fetchall() == [("b",)]


@pytest.mark.citus
def test_versions_delete_and_tombstones_on_the_cluster(cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    assert deliver(cc, {**base, "type": "INSERT", "record": rec(rid, T(1), title="a")})[0]["status"] == "applied"
    assert deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(3), title="c")})[0]["status"] == "applied"
    same, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(3), title="c")})
    assert (same["status"], path) == ("duplicate", "worker")
    stale, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(2), title="old")})
    assert (stale["status"], path) == ("stale", "worker")
    dup_id = str(uuid.uuid4())
    assert deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(4), title="d")}, dup_id)[0]["status"] == "applied"
    assert deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(5), title="e")}, dup_id)[0]["status"] == "duplicate"
    gone, path = deliver(cc, {**base, "type": "DELETE", "old_record": rec(rid, T(6))})
    assert (gone["status"], gone["rows"], path) == ("applied", 1, "worker")
    late, _ = deliver(cc, {**base, "type": "INSERT", "record": rec(rid, T(5), title="late")})
    assert late["status"] == "stale"
    assert cc.execute("SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,)).fetchone() == (0,)
    assert cc.execute("SELECT version FROM optiqoflow.tombstones WHERE tenant_id = %s AND id = %s",
                      (tenant, rid)).fetchone() is not None


@pytest.mark.citus
def test_full_sync_with_total_completes_on_the_worker(cc: psycopg.Connection[Any]) -> None:
    tenant = str(uuid.uuid4())
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    old = str(uuid.uuid4())
    deliver(cc, {**base, "type": "INSERT", "record": rec(old, T(1), title="old")})
    ids = [str(uuid.uuid4()) for _ in range(6)]
    paths = []
    for offset in (3, 0):   # out of order
        answer, path = deliver(cc, {**base, "type": "FULL_SYNC", "offset": offset, "total": 6, "sync_id": "run-1",
                                    "records": [rec(i, T(2), title="s") for i in ids[offset:offset + 3]]})
        assert answer["status"] == "applied"
        paths.append(path)
    assert paths == ["worker", "worker"]
    assert answer["run_state"] == "complete" and answer["removed"] == 1
    rows = {r for (r,) in cc.execute("SELECT id::text FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,))}
    assert rows == set(ids)
    fp = cc.execute("SELECT row_count FROM optiqoflow.table_fingerprint(%s, 'adhoc_work_orders')", (tenant,)).fetchone()
    assert fp == (6,)
    again, _ = deliver(cc, {**base, "type": "FULL_SYNC", "offset": 0, "total": 6, "sync_id": "run-1",
                            "records": [rec(i, T(2), title="s") for i in ids[:3]]})
    assert again["status"] == "duplicate"


@pytest.mark.citus
def test_new_column_takes_the_coordinator_path_and_reaches_the_workers(cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    column = "citus_" + uuid.uuid4().hex[:12]
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    deliver(cc, {**base, "type": "INSERT", "record": rec(rid, T(1), title="a")})
    answer, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(2), **{column: "x"})})
    assert (answer["status"], answer["added_columns"], path) == ("applied", [column], "coordinator")
    # the column exists on every shard, and the tenant's view on every worker shows it
    shards = cc.execute(
        "SELECT bool_and(result = '1') FROM run_command_on_shards('optiqoflow.work_orders', %s)",
        (f"SELECT count(*) FROM pg_attribute WHERE attrelid = '%s'::regclass AND attname = '{column}'",),
    ).fetchone()
    assert shards == (True,)
    view = f'tenants."{tenant}_work_orders"'
    assert set(workers_say(cc, f"SELECT count(*) FROM pg_attribute WHERE attrelid = to_regclass('{view}') "
                               f"AND attname = '{column}'")) == {"1"}
    # later deliveries with the column are ordinary again
    answer, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(3), **{column: "y"})})
    assert (answer["status"], path) == ("applied", "worker")
    assert cc.execute(f'SELECT {column} FROM {view}').fetchall() == [("y",)]


@pytest.mark.citus
def test_tenant_views_and_rls_on_the_cluster(cc: psycopg.Connection[Any]) -> None:
    a, b, rid = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    for t in (a, b):   # same id in two tenants
        deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t,
                     "record": rec(rid, T(1), title=t[:8])})
    # Citus opens the worker connections as the current role: the reading roles must be
    # able to log in on the workers (docs/citus.md)
    workers_say(cc, "SET citus.enable_ddl_propagation TO off; ALTER ROLE authenticated LOGIN")
    with cc.transaction():
        cc.execute("SET LOCAL citus.propagate_set_commands TO 'local'")
        cc.execute("SET LOCAL ROLE authenticated")
        # SET LOCAL reaches the workers (citus.propagate_set_commands = local); a
        # set_config() call does not, so claims set with it would not reach them
        cc.execute(psycopg.sql.SQL("SET LOCAL request.jwt.claims = {}").format(
            psycopg.sql.Literal(json.dumps({"tenant_id": a}))))
        base = cc.execute("SELECT tenant_id::text, title FROM optiqoflow.work_orders").fetchall()
        view = cc.execute(f'SELECT tenant_id::text, title FROM tenants."{a}_work_orders"').fetchall()
        other = cc.execute(f'SELECT count(*) FROM tenants."{b}_work_orders"').fetchone()
    assert base == [(a, a[:8])]
    assert view == [(a, a[:8])]
    assert other == (0,)


@pytest.mark.citus
def test_tenant_claim_under_app_metadata_and_charts_on_the_cluster(cc: psycopg.Connection[Any]) -> None:
    """set_tenant_claim reaches the policies on the workers; authenticated reads its
    charts and cache entries through the coordinator."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for t in (a, b):
        deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t,
                     "record": rec(str(uuid.uuid4()), T(1), title=t[:8])})
    chart = cc.execute("INSERT INTO public.charts (tenant_id, title) VALUES (%s, 'c') RETURNING id", (a,)).fetchone()
    assert chart is not None
    cc.execute("INSERT INTO public.chart_data_cache (chart_id, tenant_id, data) VALUES (%s, %s, '[1]')", (chart[0], a))
    workers_say(cc, "SET citus.enable_ddl_propagation TO off; ALTER ROLE authenticated LOGIN")
    with cc.transaction():
        cc.execute("SET LOCAL ROLE optiqoflow_admin")
        cc.execute("SELECT optiqoflow.set_tenant_claim('app_metadata.tenant_id')")
    try:
        with cc.transaction():
            cc.execute("SET LOCAL citus.propagate_set_commands TO 'local'")
            cc.execute("SET LOCAL ROLE authenticated")
            cc.execute(psycopg.sql.SQL("SET LOCAL request.jwt.claims = {}").format(
                psycopg.sql.Literal(json.dumps({"app_metadata": {"tenant_id": a}, "tenant_id": b}))))
            seen = {t for (t,) in cc.execute("SELECT DISTINCT tenant_id::text FROM optiqoflow.work_orders")}
            charts = cc.execute("SELECT count(*) FROM public.charts WHERE tenant_id IS NOT NULL").fetchone()
            cache = cc.execute("SELECT count(*) FROM public.chart_data_cache").fetchone()
        assert seen == {a}
        assert charts == (1,) and cache == (1,)
    finally:
        with cc.transaction():
            cc.execute("SET LOCAL ROLE optiqoflow_admin")
            cc.execute("SELECT optiqoflow.set_tenant_claim('tenant_id')")


@pytest.mark.citus
def test_refused_delivery_with_a_tenant_is_logged_on_its_worker(cc: psycopg.Connection[Any]) -> None:
    tenant = str(uuid.uuid4())
    answer, path = deliver(cc, {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant,
                                "record": rec(str(uuid.uuid4()), T(1))})
    assert (answer["status"], answer["sqlstate"], path) == ("refused", "OF001", "worker")
    logged = cc.execute("SELECT l.outcome, r.payload IS NOT NULL FROM optiqoflow.webhook_logs l "
                        "JOIN optiqoflow.refused_deliveries r ON r.log_id = l.id WHERE l.tenant_id = %s",
                        (tenant,)).fetchall()
    assert logged == [("refused", True)]  # the payload kept once, in refused_deliveries


@pytest.mark.citus
def test_refused_delivery_without_a_tenant_is_logged(cc: psycopg.Connection[Any]) -> None:
    for payload in ({"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": "not-a-uuid",
                     "record": rec(str(uuid.uuid4()), T(1))},
                    {"type": "INSERT", "table": "no_such_table", "record": rec(str(uuid.uuid4()), T(1))}):
        answer, path = deliver(cc, payload)
        assert (answer["status"], answer["sqlstate"][:3], path) == ("refused", "OF0", "coordinator")
        # webhook_logs.tenant_id is the distribution column: the nil UUID stands for none
        assert cc.execute("SELECT tenant_id::text, outcome FROM optiqoflow.webhook_logs "
                          "WHERE id = %s", (answer["log_id"],)).fetchone() == (NIL, "refused")
        # refused_deliveries is a reference table: no tenant is NULL there, as on PostgreSQL;
        # it keeps the payload (once)
        assert cc.execute("SELECT tenant_id, payload IS NOT NULL FROM optiqoflow.refused_deliveries WHERE log_id = %s",
                          (answer["log_id"],)).fetchone() == (None, True)


@pytest.mark.citus
def test_unusable_body_is_logged_under_the_nil_uuid(cc: psycopg.Connection[Any]) -> None:
    log_id = cc.execute("SELECT optiqoflow.record_unusable_delivery(%s, %s, 'duplicated key')",
                        (b'{"a": 1, "a": 2}', str(uuid.uuid4()))).fetchone()
    assert log_id is not None
    assert cc.execute("SELECT tenant_id::text, outcome FROM optiqoflow.webhook_logs WHERE id = %s",
                      log_id).fetchone() == (NIL, "unusable")


@pytest.mark.citus
def test_batch_envelope_of_one_tenant_on_its_worker_of_two_on_the_coordinator(cc: psycopg.Connection[Any]) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    ra, rb, rn = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    for t, r in ((a, ra), (b, rb)):   # first pushes: the views (coordinator)
        deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t, "record": rec(r, T(1), title="1")})
    one = {"type": "BATCH", "tenant_id": a, "events": [
        {"type": "UPDATE", "table": "adhoc_work_orders", "record": rec(ra, T(2), title="2")},
        {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": a, "record": rec(rn, T(2), title="n")}]}
    answer, path = deliver(cc, one)
    assert (answer["counts"], path) == ({"applied": 2}, "worker")
    two = {"type": "BATCH", "tenant_id": a, "events": [
        {"type": "UPDATE", "table": "adhoc_work_orders", "record": rec(ra, T(3), title="3")},
        {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": b, "record": rec(rb, T(3), title="3")}]}
    answer, path = deliver(cc, two)
    assert (answer["counts"], path) == ({"applied": 2}, "coordinator")
    rows = cc.execute("SELECT tenant_id::text, id::text, title FROM optiqoflow.work_orders WHERE tenant_id IN (%s, %s)",
                      (a, b)).fetchall()
    assert sorted(rows) == sorted([(a, ra, "3"), (a, rn, "n"), (b, rb, "3")])
    # the envelopes' own log rows name no tenant: the nil UUID
    assert cc.execute("SELECT count(*) FROM optiqoflow.webhook_logs WHERE tenant_id = %s AND operation = 'BATCH' "
                      "AND id = ANY(%s)", (NIL, [answer["log_id"]])).fetchone() == (1,)


@pytest.mark.citus
async def test_receiver_takes_the_two_step_path_on_the_cluster(cluster: str, caplog: pytest.LogCaptureFixture) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    caplog.set_level(logging.INFO, logger="optiqoflow.receiver")
    async with serving(receiver_config(cluster)) as ep:   # OPTIQO_CITUS_DELEGATION: auto
        assert (await ep.get("/readyz")).status == 200
        first = await ep.post(zone_payload(tenant, id=rid))          # the tenant's view: coordinator
        second = await ep.post(zone_payload(tenant, id=rid, name="Hall", updated_at=T(2)))   # worker
        refused = await ep.post({**zone_payload(tenant), "table": "no_such_table"})          # worker
        no_tenant = await ep.post({**zone_payload(tenant), "tenant_id": 7})                   # coordinator
        unusable = await ep.post(b'{"type": "INSERT", "type": "DELETE"}')
        metrics = (await ep.get("/metrics")).body
    assert [r.status for r in (first, second, refused, no_tenant, unusable)] == [200, 200, 422, 422, 400]
    assert (second.body["status"], second.body["log_id"] >= 1 << 48) == ("applied", True)   # a worker's id range
    paths = [r.fields["path"] for r in caplog.records if r.getMessage().startswith("delivery ")]  # type: ignore[attr-defined]
    assert paths == ["coordinator", "worker", "worker", "coordinator", None]
    assert 'optiqoflow_delivery_paths_total{path="worker"} 2.0' in metrics
    assert 'optiqoflow_delivery_paths_total{path="coordinator"} 2.0' in metrics
    with psycopg.connect(cluster) as c:
        assert c.execute(f'SELECT name FROM tenants."{tenant}_zones" WHERE id = %s', (rid,)).fetchone() == ("Hall",)
        assert c.execute("SELECT tenant_id::text FROM optiqoflow.webhook_logs WHERE id = %s",
                         (unusable.body["log_id"],)).fetchone() == (NIL,)


# --- FULL_SYNC completion when a run's deliveries take both paths ------------------------


def node_dsns(c: psycopg.Connection[Any], dsn: str) -> dict[str, str]:
    """DSN of the coordinator and of every worker ('127.0.0.1:9701' -> dsn), same login."""
    params = conninfo_to_dict(dsn)
    nodes = c.execute("SELECT nodename, nodeport, groupid = 0 FROM pg_dist_node WHERE noderole = 'primary'").fetchall()
    return {("coordinator" if coord else f"{host}:{port}"): make_conninfo("", **{**params, "host": host, "port": port})
            for host, port, coord in nodes}


def current_xid(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def burn_xids(dsn: str, n: int) -> None:
    """Let `n` transactions with an xid commit on that node (its xid counter moves on)."""
    if n > 0:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(f"DO $$ BEGIN FOR i IN 1..{n} LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$")


def workers_ahead_of_the_coordinator(c: psycopg.Connection[Any], dsn: str, margin: int = 2000) -> None:
    """Every worker's xid counter at least `margin` past the coordinator's: as on a cluster
    whose deliveries mostly take the worker path (each costs a worker xid only)."""
    nodes = node_dsns(c, dsn)
    coordinator = current_xid(nodes.pop("coordinator"))
    for worker in nodes.values():
        burn_xids(worker, coordinator + margin - current_xid(worker))


def work_order(rid: str, at: str, **cols: Any) -> dict[str, Any]:
    return {"type": "INSERT", "table": "adhoc_work_orders", "record": rec(rid, at, **cols)}


def stored(c: psycopg.Connection[Any], tenant: str) -> set[str]:
    return {r for (r,) in c.execute("SELECT id::text FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,))}


@pytest.mark.citus
def test_full_sync_started_on_the_worker_keeps_a_row_written_through_the_coordinator(
        cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant = str(uuid.uuid4())
    old, a, b, new = (str(uuid.uuid4()) for _ in range(4))
    column = "xid_" + uuid.uuid4().hex[:12]
    base = {"tenant_id": tenant}
    assert deliver(cc, {**base, **work_order(old, T(1), title="old")})[1] == "coordinator"   # the view
    workers_ahead_of_the_coordinator(cc, cluster)
    run = {**base, "type": "FULL_SYNC", "table": "adhoc_work_orders", "total": 2, "sync_id": "mixed-1"}
    answer, path = deliver(cc, {**run, "offset": 0, "records": [rec(a, T(2), title="a")]})
    assert (answer["run_state"], path) == ("running", "worker")            # start snapshot: the worker's
    # after the run started: a new row, with a new column, so on the coordinator path
    answer, path = deliver(cc, {**base, **work_order(new, T(3), **{column: "x"})})
    assert (answer["status"], path) == ("applied", "coordinator")
    answer, path = deliver(cc, {**run, "offset": 1, "records": [rec(b, T(2), title="b")]})
    assert (answer["run_state"], path) == ("complete", "worker")
    # `old` was there before the run and is not in it: removed. `new` was written after the
    # run started: kept.
    assert stored(cc, tenant) == {a, b, new}
    assert answer["removed"] == 1


@pytest.mark.citus
def test_full_sync_started_on_the_coordinator_removes_a_row_written_on_the_worker(
        cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant = str(uuid.uuid4())
    first, old, a, b = (str(uuid.uuid4()) for _ in range(4))
    column = "xid_" + uuid.uuid4().hex[:12]
    base = {"tenant_id": tenant}
    assert deliver(cc, {**base, **work_order(first, T(1), title="first")})[1] == "coordinator"   # the view
    workers_ahead_of_the_coordinator(cc, cluster)
    assert deliver(cc, {**base, **work_order(old, T(1), title="old")})[1] == "worker"
    run = {**base, "type": "FULL_SYNC", "table": "adhoc_work_orders", "total": 2, "sync_id": "mixed-2"}
    # the run's first batch brings a new column: the coordinator path starts the run
    answer, path = deliver(cc, {**run, "offset": 0, "records": [rec(a, T(2), **{column: "a"})]})
    assert (answer["run_state"], path) == ("running", "coordinator")
    answer, path = deliver(cc, {**run, "offset": 1, "records": [rec(b, T(2), **{column: "b"})]})
    assert (answer["run_state"], path) == ("complete", "worker")
    # neither `first` nor `old` is in the run, both were written before it started
    assert stored(cc, tenant) == {a, b}
    assert answer["removed"] == 2


def test_tenant_xid_and_snapshot_are_this_nodes_without_citus(conn: psycopg.Connection[Any], tenant: str) -> None:
    with conn.transaction():
        row = conn.execute("SELECT optiqoflow._tenant_xid(%s) = pg_current_xact_id(), "
                           "optiqoflow._tenant_snapshot(%s)::text = pg_current_snapshot()::text",
                           (tenant, tenant)).fetchone()
    assert row == (True, True)


@pytest.mark.citus
def test_tenant_xid_and_snapshot_are_the_tenants_workers_on_the_coordinator(cc: psycopg.Connection[Any]) -> None:
    # the fix proposed for the two tests above: _of_xid and a run's start snapshot taken
    # on the node that holds the tenant's rows, whichever path the delivery took
    tenant = str(uuid.uuid4())
    with cc.transaction():
        xid, snapshot = cc.execute("SELECT optiqoflow._tenant_xid(%s)::text, optiqoflow._tenant_snapshot(%s)::text",
                                   (tenant, tenant)).fetchone() or (None, None)
        # what a router query on another of the tenant's tables sees on its worker
        seen = cc.execute("SELECT pg_current_xact_id()::text, pg_current_snapshot()::text, count(*) "
                          "FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,)).fetchone()
        coordinator = cc.execute("SELECT pg_current_xact_id()::text").fetchone()
    assert seen is not None and coordinator is not None
    assert xid == seen[0]
    assert int(snapshot.split(":")[1]) <= int(seen[1].split(":")[1])   # taken first, same counter


def lock_waits(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
    return int(row[0]) if row else 0


@pytest.mark.citus
def test_row_locks_hold_across_the_two_paths(cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"tenant_id": tenant}
    deliver(cc, {**base, **work_order(rid, T(1), title="a")})
    done: list[str] = []
    with psycopg.connect(cluster) as holder:
        # a coordinator-path delivery of this key, between its row locks and its commit
        holder.execute("SELECT optiqoflow._lock_rows(%s, 'work_orders', %s::jsonb)",
                       (tenant, json.dumps([{"id": rid}])))

        def worker_path() -> None:
            with psycopg.connect(cluster, autocommit=True) as c:
                done.append(deliver(c, {**base, "type": "DELETE", "table": "adhoc_work_orders",
                                        "old_record": rec(rid, T(2))})[1])

        thread = threading.Thread(target=worker_path)
        thread.start()
        waited = False   # blocked on an advisory lock on some node, not merely slow
        deadline = time.monotonic() + 5
        while thread.is_alive() and not waited and time.monotonic() < deadline:
            time.sleep(0.1)
            waited = any(lock_waits(dsn) for dsn in node_dsns(cc, cluster).values())
        holder.rollback()
    thread.join()
    assert done == ["worker"]
    assert waited, "the worker-path delivery did not wait for the coordinator path's row lock"


def key_node(c: psycopg.Connection[Any], key: str) -> Any:
    row = c.execute("SELECT nodename || ':' || nodeport FROM citus_shards "
                    "WHERE shardid = get_shard_id_for_distribution_column('optiqoflow.delivery_keys', %s::text)",
                    (key,)).fetchone()
    return row[0] if row else None


@pytest.mark.citus
def test_two_dedup_keys_on_two_nodes_then_ddl_on_the_coordinator(cc: psycopg.Connection[Any]) -> None:
    # a delivery id and an event_id are two delivery_keys rows; on two nodes they are
    # written in parallel, and the same transaction then creates distributed objects (a
    # new column, so a new generated writer function): Citus accepts that only because
    # apply_webhook runs in sequential mode (distribute())
    delivery_id = str(uuid.uuid4())
    event_id = next(e for e in (str(uuid.uuid4()) for _ in range(100))
                    if key_node(cc, "e:" + e) != key_node(cc, "d:" + delivery_id))
    tenant, column = str(uuid.uuid4()), "keys_" + uuid.uuid4().hex[:12]
    answer, path = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                                "event_id": event_id, "record": rec(str(uuid.uuid4()), T(1), **{column: "a"})},
                           delivery_id)
    assert (answer["status"], answer["added_columns"], path) == ("applied", [column], "coordinator")
    again, _ = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                            "event_id": event_id, "record": rec(str(uuid.uuid4()), T(1))})
    assert again["status"] == "duplicate"


def test_tenant_locks_are_this_sessions_without_citus(
    db_dsn: str, conn: psycopg.Connection[Any], tenant: str
) -> None:
    """Without Citus the row buckets are rows of optiqoflow.lock_slots, held by this
    session: another session finds exactly those rows locked."""
    slots = "ARRAY[optiqoflow._row_lock_slot(4242, 1), optiqoflow._row_lock_slot(4242, 2), optiqoflow._row_lock_slot(4242, 3)]"
    with conn.transaction():
        conn.execute("SELECT optiqoflow._tenant_locks(%s, 4242, ARRAY[3, 1, 3])", (tenant,))
        with psycopg.connect(db_dsn) as other:
            free = other.execute(f"SELECT s.slot = optiqoflow._row_lock_slot(4242, 2) "
                                 f"FROM optiqoflow.lock_slots s WHERE s.slot = ANY ({slots}) "
                                 "FOR UPDATE SKIP LOCKED").fetchall()
    assert free == [(True,)]


@pytest.mark.citus
def test_tenant_locks_are_taken_on_the_tenants_worker(cluster: str, cc: psycopg.Connection[Any]) -> None:
    # what the row locks need (see test_row_locks_hold_across_the_two_paths)
    tenant = str(uuid.uuid4())
    owner = cc.execute("SELECT nodename || ':' || nodeport FROM citus_shards WHERE shardid = "
                       "get_shard_id_for_distribution_column('optiqoflow.tombstones', %s::uuid)", (tenant,)).fetchone()
    assert owner is not None
    space = 4243
    with cc.transaction():
        cc.execute("SELECT optiqoflow._tenant_locks(%s, %s, ARRAY[5, 7])", (tenant, space))
        held = {}
        for node, dsn in node_dsns(cc, cluster).items():
            with psycopg.connect(dsn, autocommit=True) as c:
                row = c.execute("SELECT array_agg(objid ORDER BY objid) FROM pg_locks WHERE locktype = 'advisory' "
                                "AND classid = %s AND objsubid = 2", (space,)).fetchone()
                held[node] = row[0] if row else None
    assert held.pop(owner[0]) == [5, 7]
    assert set(map(str, held.values())) == {"None"}


# --- operations on the cluster: status, prune, replay ---------------------


def cli(dsn: str, *args: str) -> Any:
    """`python -m operations.cli <args> --json` as an operator runs it, DATABASE_URL = the
    coordinator; its JSON output."""
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": dsn}
    done = subprocess.run([sys.executable, "-m", "operations.cli", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.citus
def test_sync_health_and_status_on_the_cluster(cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    deliver(cc, {**base, "type": "INSERT", "record": rec(rid, T(1), title="a")})
    assert deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(2), title="b")})[1] == "worker"
    deliver(cc, {**base, "type": "FULL_SYNC", "offset": 0, "total": 1, "sync_id": "health-1",
                 "records": [rec(rid, T(3), title="c")]})
    deliver(cc, {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant, "record": rec(rid, T(1))})
    everything = cc.execute("SELECT count(*) FROM optiqoflow.sync_health").fetchone()
    assert everything is not None and everything[0] >= 2
    rows = cc.execute("SELECT target_table, source_table, rows, last_push_at IS NOT NULL, full_sync_id, "
                      "full_sync_state, deliveries_1h, applied_1h, refused_waiting "
                      "FROM optiqoflow.sync_health WHERE tenant_id = %s ORDER BY target_table NULLS LAST",
                      (tenant,)).fetchall()
    assert rows == [("work_orders", "adhoc_work_orders", 1, True, "health-1", "complete", 3, 3, 0),
                    (None, None, None, False, None, None, 0, 0, 1)]
    status = cli(cluster, "status", "--tenant", tenant)
    assert [(r["target_table"], r["rows"], r["refused_waiting"]) for r in status] == [
        ("work_orders", 1, 0), (None, None, 1)]


@pytest.mark.citus
def test_prune_on_the_cluster(cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenants = [str(uuid.uuid4()) for _ in range(3)]
    for t in tenants:
        deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t,
                     "record": rec(str(uuid.uuid4()), T(1), title="p")})
        cc.execute("INSERT INTO tenants.tenant_data_push_log (tenant_id, tables, operation, rows, pushed_at) "
                   "VALUES (%s, '{work_orders}', 'INSERT', 1, now() - interval '20 days')", (t,))
    # a partition ahead that is missing (dropped here) is created again
    ahead = cc.execute("SELECT 'webhook_logs_p' || to_char((now() AT TIME ZONE 'UTC') + interval '3 days', "
                       "'YYYYMMDD')").fetchone()
    assert ahead is not None
    cc.execute(f"DROP TABLE IF EXISTS optiqoflow.{ahead[0]}")
    answer = cc.execute("SELECT optiqoflow.prune_logs('10 days')").fetchone()
    assert answer is not None
    assert answer[0]["push_log_deleted"] >= 3 and ahead[0] in answer[0]["partitions_created"]
    left = cc.execute("SELECT count(*) FROM tenants.tenant_data_push_log WHERE tenant_id = ANY (%s::uuid[])",
                      (tenants,)).fetchone()
    assert left == (3,)   # the deliveries' own pushes, not the old ones
    assert cc.execute("SELECT to_regclass(%s) IS NOT NULL", (f"optiqoflow.{ahead[0]}",)).fetchone() == (True,)
    assert cc.execute("SELECT optiqoflow._citus_table_kind(%s::regclass)",
                      (f"optiqoflow.{ahead[0]}",)).fetchone() == ("distributed",)
    report = cli(cluster, "prune", "--retention", "10 days")
    assert report is not None


@pytest.mark.citus
def test_replay_on_the_cluster(cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant,
                 "record": rec(str(uuid.uuid4()), T(1), title="first")})
    refused = []
    for title in ("r1", "r2"):
        answer, _ = deliver(cc, {"type": "INSERT", "table": "no_such_table", "tenant_id": tenant,
                                 "record": rec(rid if title == "r1" else str(uuid.uuid4()), T(1), title=title)})
        assert answer["status"] == "refused"
        refused.append(answer["log_id"])
    # repaired by a DBA, then replayed: in SQL, then with the CLI
    cc.execute("UPDATE optiqoflow.refused_deliveries SET payload = jsonb_set(payload, '{table}', "
               "'\"adhoc_work_orders\"') WHERE log_id = ANY (%s)", (refused,))
    answer = cc.execute("SELECT optiqoflow.replay_webhook(%s)", (refused[0],)).fetchone()
    assert answer is not None and (answer[0]["status"], answer[0]["replay_of"]) == ("applied", refused[0])
    report = cli(cluster, "replay", "--log-id", str(refused[1]))
    assert "applied" in json.dumps(report)
    resolved = cc.execute("SELECT count(*) FROM optiqoflow.refused_deliveries WHERE log_id = ANY (%s) "
                          "AND resolved_at IS NOT NULL AND replays = 1", (refused,)).fetchone()
    assert resolved == (2,)
    logs = cc.execute("SELECT count(*) FROM optiqoflow.webhook_logs WHERE tenant_id = %s AND id = ANY (%s) "
                      "AND resolved_at IS NOT NULL", (tenant, refused)).fetchone()
    assert logs == (2,)
    assert cc.execute(f'SELECT count(*) FROM tenants."{tenant}_work_orders"').fetchone() == (3,)



# --- chart invalidations: NOTIFY on the node that applied the delivery ---------------------


@pytest.mark.citus
def test_invalidation_notifications_listened_for_on_every_node(cluster: str, cc: psycopg.Connection[Any]) -> None:
    """docs/citus.md, "Chart invalidations on a cluster": a dashboard LISTENs on every
    node that pg_dist_node lists (the coordinator included) and re-reads the cache through
    the coordinator; a worker-path delivery notifies on the tenant's worker, a
    coordinator-path one on the coordinator."""
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    deliver(cc, {**base, "type": "INSERT", "record": rec(rid, T(1), title="a")})   # the view: coordinator
    chart = cc.execute("INSERT INTO public.charts (tenant_id, title) VALUES (%s, 'notified') RETURNING id::text",
                       (tenant,)).fetchone()
    assert chart is not None
    cc.execute("INSERT INTO public.chart_table_dependencies (chart_id, table_name) VALUES (%s, 'work_orders')",
               (chart[0],))
    owner = cc.execute("SELECT nodename || ':' || nodeport FROM citus_shards WHERE shardid = "
                       "get_shard_id_for_distribution_column('optiqoflow.tombstones', %s::uuid)", (tenant,)).fetchone()
    assert owner is not None
    # what the dashboard does: the nodes from the coordinator, one LISTEN connection each
    listeners = {node: psycopg.connect(dsn, autocommit=True) for node, dsn in node_dsns(cc, cluster).items()}
    try:
        for listener in listeners.values():
            listener.execute("LISTEN optiqoflow_invalidation")

        def heard() -> dict[str, list[Any]]:
            seen: dict[str, list[Any]] = {}
            for node, listener in listeners.items():
                for note in listener.notifies(timeout=0.5, stop_after=1):
                    seen.setdefault(node, []).append(json.loads(note.payload))
            return seen

        cc.execute("INSERT INTO public.chart_data_cache (chart_id, tenant_id, data) VALUES (%s, %s, '[1]')",
                   (chart[0], tenant))
        answer, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(2), title="b")})
        assert (answer["charts_invalidated"], path) == ([chart[0]], "worker")
        seen = heard()
        assert list(seen) == [owner[0]]
        assert seen[owner[0]][0]["tenant_id"] == tenant and seen[owner[0]][0]["charts"] == [chart[0]]
        # the coordinator sees what went stale, whichever node applied the delivery
        assert cc.execute("SELECT is_valid FROM public.chart_data_cache WHERE chart_id = %s",
                          (chart[0],)).fetchone() == (False,)

        cc.execute("UPDATE public.chart_data_cache SET is_valid = true WHERE chart_id = %s AND tenant_id = %s",
                   (chart[0], tenant))
        cc.execute("UPDATE public.charts SET cache_status = 'fresh' WHERE id = %s", (chart[0],))
        column = "notify_" + uuid.uuid4().hex[:12]
        answer, path = deliver(cc, {**base, "type": "UPDATE", "record": rec(rid, T(3), **{column: "x"})})
        assert (answer["charts_invalidated"], path) == ([chart[0]], "coordinator")
        assert list(heard()) == ["coordinator"]
    finally:
        for listener in listeners.values():
            listener.close()


# --- a delivery without a tenant ------------------------------------------------------------


@pytest.mark.citus
def test_a_null_tenant_is_refused_on_the_coordinator_which_survives(cc: psycopg.Connection[Any]) -> None:
    # Citus 13.0.5 crashed the backend (segfault; every session restarted) planning the
    # delegation of a NULL distribution argument. apply_tenant_webhook is inlined and its
    # CASE folded first: a NULL tenant is apply_webhook on the coordinator
    pid = cc.execute("SELECT pg_backend_pid()").fetchone()
    record = rec(str(uuid.uuid4()), T(1))
    payload = json.dumps({"type": "INSERT", "table": "adhoc_work_orders", "record": record})
    literal = cc.execute(f"SELECT optiqoflow.apply_tenant_webhook(NULL, '{payload}'::jsonb)").fetchone()
    bound = cc.execute("SELECT optiqoflow.apply_tenant_webhook(%s::uuid, %s::jsonb, %s)",
                       (None, payload, str(uuid.uuid4()))).fetchone()
    assert cc.execute("SELECT pg_backend_pid()").fetchone() == pid   # the same session
    for answer in (literal, bound):
        assert answer is not None
        assert (answer[0]["status"], answer[0]["sqlstate"]) == ("refused", "OF002")
        assert answer[0]["log_id"] < 1 << 48   # logged on the coordinator
        assert cc.execute("SELECT tenant_id::text FROM optiqoflow.webhook_logs WHERE id = %s",
                          (answer[0]["log_id"],)).fetchone() == (NIL,)
    # a tenant that is there is still delegated after the plan cache settles (prepared)
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant, "record": rec(rid, T(1))})
    with psycopg.connect(cc.info.dsn, autocommit=True, prepare_threshold=0) as c:
        for day in range(2, 14):
            answer = c.execute("SELECT optiqoflow.apply_tenant_webhook(%s::uuid, %s::jsonb, %s)",
                               (tenant, json.dumps({"type": "UPDATE", "table": "adhoc_work_orders",
                                                    "tenant_id": tenant, "record": rec(rid, T(day))}),
                                str(uuid.uuid4()))).fetchone()
            assert answer is not None and answer[0]["status"] == "applied"
            assert answer[0]["log_id"] >= 1 << 48, day   # a worker's id range


# --- what a tenant and a DBA read and run on the cluster -------------------------------


def as_authenticated(c: psycopg.Connection[Any], claims: dict[str, Any], sql: str,
                     params: Any = None) -> list[Any]:
    """`sql` read as a dashboard reads it: SET LOCAL ROLE authenticated and the JWT claims
    set as PostgREST sets them (set_config, local to the transaction)."""
    with c.transaction():
        c.execute("SET LOCAL ROLE authenticated")
        c.execute("SELECT set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        return c.execute(sql, params).fetchall()


@pytest.mark.citus
def test_sync_status_read_as_authenticated_and_as_a_role_given_a_tenant(cc: psycopg.Connection[Any], make_role_on_cluster: Any) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": a,
                 "record": rec(str(uuid.uuid4()), T(1), title="a")})
    answer, path = deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": a,
                                "record": rec(str(uuid.uuid4()), T(2), title="a2")})
    assert (answer["status"], path) == ("applied", "worker")
    deliver(cc, {"type": "FULL_SYNC", "table": "zone_categories", "tenant_id": a, "offset": 0, "total": 1,
                 "sync_id": "status-1", "records": [rec(str(uuid.uuid4()), T(1), name="Hall")]})
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": a,
                 "record": rec(str(uuid.uuid4()), T(1), priority="not a number")})   # refused, waiting
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": b,
                 "record": rec(str(uuid.uuid4()), T(1), title="b")})
    query = ("SELECT tenant_id::text, table_name, source_table, as_of, full_sync_state, refusals_waiting "
             "FROM tenants.sync_status ORDER BY table_name")
    mine = as_authenticated(cc, {"tenant_id": a}, query)
    assert [(t, n, s, f, r) for t, n, s, _, f, r in mine] == [
        (a, "work_orders", "adhoc_work_orders", None, 1), (a, "zones", "zone_categories", "complete", 0)]
    # as_of: the source time of the newest applied change (T(2), not T(1); to the
    # precision of lag_ms, measured against the delivery's start on its node)
    assert abs((mine[0][3] - dt.datetime(2026, 3, 2, 10, tzinfo=dt.UTC)).total_seconds()) < 1
    assert [r[1] for r in as_authenticated(cc, {"tenant_id": b}, query)] == ["work_orders"]
    assert as_authenticated(cc, {"tenant_id": "not-a-uuid"}, query) == []
    assert cc.execute("SELECT count(*) FROM tenants.sync_status").fetchone() == (0,)   # postgres: no tenant
    # a role given a tenant (tenants.grant_tenant) sees that tenant's rows
    role = make_role_on_cluster()
    cc.execute("SELECT tenants.grant_tenant(%s, %s)", (role, b))
    with cc.transaction():
        cc.execute(psycopg.sql.SQL("SET LOCAL ROLE {}").format(psycopg.sql.Identifier(role)))
        rows = cc.execute("SELECT tenant_id::text, table_name FROM tenants.sync_status").fetchall()
    assert rows == [(b, "work_orders")]


def local_bytes(c: psycopg.Connection[Any], table: str) -> int:
    """Bytes of the coordinator's own heap of a (shell) table: 0 when its rows all live in
    the shards."""
    row = c.execute("SELECT pg_relation_size(%s::regclass)", (table,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.citus
def test_a_table_mapped_at_run_time_is_distributed_by_its_first_push(cc: psycopg.Connection[Any]) -> None:
    """docs/sources.md: a new mapping is one INSERT and its table is made on the first
    push. On the cluster that push distributes it (colocated by tenant_id), whichever way
    it arrives: by the receiver's two steps (the worker answers coordinator_required) or
    by apply_webhook on the coordinator; later pushes take the worker path."""
    anchor = cc.execute("SELECT colocationid FROM pg_dist_partition "
                        "WHERE logicalrelid = 'optiqoflow.tombstones'::regclass").fetchone()
    for first_by in ("receiver", "sql"):
        suffix = uuid.uuid4().hex[:10]
        source, target = f"rt_items_{suffix}", f"rt_{suffix}"
        cc.execute("INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES (%s, %s)",
                   (source, target))
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        ra = str(uuid.uuid4())
        first = {"type": "INSERT", "table": source, "tenant_id": a, "record": rec(ra, T(1), label="one")}
        if first_by == "receiver":
            answer, path = deliver(cc, first)
            assert (answer["status"], path) == ("applied", "coordinator")
        else:
            row = cc.execute("SELECT optiqoflow.apply_webhook(%s::jsonb, %s)",
                             (json.dumps(first), str(uuid.uuid4()))).fetchone()
            assert row is not None and row[0]["status"] == "applied"
        table = f"optiqoflow.{target}"
        assert cc.execute("SELECT partmethod::text, column_to_column_name(logicalrelid, partkey), colocationid "
                          "FROM pg_dist_partition WHERE logicalrelid = %s::regclass",
                          (table,)).fetchone() == ("h", "tenant_id", anchor[0] if anchor else None)
        # the tenant's next push, and another tenant's after its first (its view)
        answer, path = deliver(cc, {"type": "UPDATE", "table": source, "tenant_id": a,
                                    "record": rec(ra, T(2), label="two")})
        assert (answer["status"], path) == ("applied", "worker")
        deliver(cc, {"type": "INSERT", "table": source, "tenant_id": b, "record": rec(str(uuid.uuid4()), T(1), label="b")})
        answer, path = deliver(cc, {"type": "INSERT", "table": source, "tenant_id": b,
                                    "record": rec(str(uuid.uuid4()), T(2), label="b")})
        assert (answer["status"], path) == ("applied", "worker")
        # the rows are in the shards on the workers, none on the coordinator's heap
        on_shards = cc.execute("SELECT sum(result::int) FROM run_command_on_shards(%s, 'SELECT count(*) FROM %%s')",
                               (table,)).fetchone()
        assert on_shards == (3,)
        workers = {f"{h}:{p}" for h, p in cc.execute(
            "SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'")}
        holders = {n for (n,) in cc.execute("SELECT DISTINCT nodename || ':' || nodeport FROM citus_shards "
                                            "WHERE table_name = %s::regclass", (table,))}
        assert holders <= workers
        assert local_bytes(cc, table) == 0
        assert cc.execute(f'SELECT label FROM tenants."{a}_{target}"').fetchall() == [("two",)]
        assert cc.execute(f"SELECT count(*) FROM {table}").fetchone() == (3,)


def ours_snapshot(c: psycopg.Connection[Any]) -> dict[str, Any]:
    """What a run of distribute() could change: every relation, view and function of
    ours with its oid and row version (xmin), the function settings, and Citus's
    metadata of them."""
    rels = c.execute("SELECT c.oid::regclass::text, c.oid::int8, c.xmin::text FROM pg_class c "
                     "WHERE c.relnamespace IN ('optiqoflow'::regnamespace, 'tenants'::regnamespace) "
                     "AND c.relkind IN ('r', 'p', 'v') ORDER BY 1").fetchall()
    procs = c.execute("SELECT p.oid::regprocedure::text, p.xmin::text, p.proconfig FROM pg_proc p "
                      "WHERE p.pronamespace IN ('optiqoflow'::regnamespace, 'tenants'::regnamespace) "
                      "ORDER BY 1").fetchall()
    objects = c.execute("SELECT classid::int8, objid::int8, distribution_argument_index, colocationid "
                        "FROM pg_dist_object ORDER BY 1, 2").fetchall()
    partitions = c.execute("SELECT logicalrelid::text, partmethod::text, colocationid, repmodel::text "
                           "FROM pg_dist_partition ORDER BY 1").fetchall()
    return {"relations": rels, "functions": procs, "objects": objects, "partitions": partitions}


def coordinator_heap(c: psycopg.Connection[Any]) -> dict[str, int]:
    """Bytes in the coordinator's own heap of each distributed or reference table of ours
    (partitions summed into their parent): all 0 when no row was left behind."""
    return dict(c.execute(
        """SELECT c.oid::regclass::text,
                  pg_relation_size(c.oid) + coalesce((SELECT sum(pg_relation_size(i.inhrelid))
                                                        FROM pg_inherits i WHERE i.inhparent = c.oid), 0)
             FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
            WHERE NOT c.relispartition
              AND c.relnamespace IN ('optiqoflow'::regnamespace, 'tenants'::regnamespace, 'public'::regnamespace)"""
    ).fetchall())


@pytest.mark.citus
def test_distribute_moves_existing_rows_and_a_second_run_changes_nothing(cluster: str, cc: psycopg.Connection[Any]) -> None:
    """A database that already holds data (a one-node deployment growing into a cluster):
    distribute() copies every row into the shards and truncates the coordinator's own,
    invisible copy (create_distributed_table leaves it on disk); run again, it re-creates
    no view, alters no function, registers nothing, truncates nothing, and is quick."""
    name = "of_distribute_" + uuid.uuid4().hex[:8]
    nodes = node_dsns(cc, cluster)
    params = conninfo_to_dict(cluster)
    dsns = {node: make_conninfo(dsn, dbname=name) for node, dsn in nodes.items()}
    try:
        for node, dsn in nodes.items():
            with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as c:
                c.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
            with psycopg.connect(dsns[node], autocommit=True) as c:
                c.execute("CREATE EXTENSION citus")
        coordinator = dsns["coordinator"]
        with psycopg.connect(coordinator, autocommit=True) as c:
            c.execute("SELECT citus_set_coordinator_host(%s, %s)", (params.get("host", "127.0.0.1"),
                                                                     int(params.get("port", 5432))))
            for node in nodes:
                if node != "coordinator":
                    host, port = node.rsplit(":", 1)
                    c.execute("SELECT citus_add_node(%s, %s)", (host, int(port)))
        migrate.upgrade(coordinator)
        tenants = [str(uuid.uuid4()) for _ in range(4)]
        with psycopg.connect(coordinator, autocommit=True) as c:
            for i, t in enumerate(tenants):   # before distribution: plain tables on the coordinator
                for table, record in (("adhoc_work_orders", rec(str(uuid.uuid4()), T(1), title=f"w{i}")),
                                      ("zone_categories", rec(str(uuid.uuid4()), T(1), name=f"z{i}"))):
                    row = c.execute("SELECT optiqoflow.apply_webhook(%s::jsonb, %s)",
                                    (json.dumps({"type": "INSERT", "table": table, "tenant_id": t, "record": record}),
                                     str(uuid.uuid4()))).fetchone()
                    assert row is not None and row[0]["status"] == "applied"
            before = c.execute("SELECT (SELECT count(*) FROM optiqoflow.work_orders), (SELECT count(*) FROM optiqoflow.zones), "
                               "(SELECT count(*) FROM optiqoflow.webhook_logs), "
                               "(SELECT count(*) FROM tenants.tenant_data_push_log)").fetchone()
            first = c.execute("SELECT optiqoflow.distribute(4)").fetchone()
            assert first is not None
            assert "optiqoflow.work_orders" in first[0]["distributed"]
            assert {"optiqoflow.work_orders", "optiqoflow.zones", "optiqoflow.webhook_logs",
                    "optiqoflow.table_mappings"} <= set(first[0]["truncated"])
            assert first[0]["views"] == 2 * len(tenants)
            # the views made before distribution are on every worker with their grants
            granted = ("SELECT count(*) FROM pg_class WHERE relnamespace = 'tenants'::regnamespace AND relkind = 'v' "
                       "AND relname <> 'sync_status' AND relacl::text LIKE '%authenticated=r/%'")
            assert set(workers_say(c, granted)) == {str(2 * len(tenants))}
            heap = coordinator_heap(c)
            assert {t: n for t, n in heap.items() if n} == {}
            assert "optiqoflow.work_orders" in heap and "optiqoflow.webhook_logs" in heap
            after = c.execute("SELECT (SELECT count(*) FROM optiqoflow.work_orders), (SELECT count(*) FROM optiqoflow.zones), "
                              "(SELECT count(*) FROM optiqoflow.webhook_logs), "
                              "(SELECT count(*) FROM tenants.tenant_data_push_log)").fetchone()
            assert after == before and before is not None and before[0] == len(tenants)

            snapshot = ours_snapshot(c)
            started = time.monotonic()
            again = c.execute("SELECT optiqoflow.distribute()").fetchone()
            elapsed = time.monotonic() - started
            assert again == ({"citus": True, "reference": [], "distributed": [], "functions": 0, "views": 0,
                              "truncated": []},)
            assert ours_snapshot(c) == snapshot
            assert elapsed < 2.0, elapsed
            # and the cluster delivers: a tenant's view, a worker-path update
            answer, path = deliver(c, {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenants[0],
                                       "record": rec(str(uuid.uuid4()), T(2), title="after")})
            assert (answer["status"], path) == ("applied", "worker")
            assert c.execute(f'SELECT count(*) FROM tenants."{tenants[0]}_work_orders"').fetchone() == (2,)
    finally:
        for dsn in nodes.values():
            with psycopg.connect(make_conninfo(dsn, dbname="postgres"), autocommit=True) as c:
                c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


REFILL_CLAIM = "UPDATE public.chart_data_cache SET refresh_started_at = now() WHERE id = %s AND tenant_id = %s RETURNING generation"
REFILL_STORE = ("UPDATE public.chart_data_cache SET data = %s, is_valid = true, computed_at = now(), refresh_started_at = NULL "
                "WHERE id = %s AND tenant_id = %s AND generation = %s")
REFILL_LOCK = ("SELECT coalesce(bool_and(e.is_valid), true) FROM (SELECT c.is_valid FROM public.chart_data_cache c "
               "WHERE c.chart_id = %s AND c.tenant_id = %s FOR SHARE) e")
REFILL_FRESH = "UPDATE public.charts SET cache_status = 'fresh', stale_since = NULL WHERE id = %s AND cache_status <> 'fresh'"


def refill_mark_fresh(c: psycopg.Connection[Any], chart: str, tenant: str) -> bool:
    """Step 3 of docs/semantics.md's cluster-safe refill recipe, in one transaction."""
    with c.transaction():
        row = c.execute(REFILL_LOCK, (chart, tenant)).fetchone()
        assert row is not None
        if row[0]:
            c.execute(REFILL_FRESH, (chart,))
        return bool(row[0])


@pytest.mark.citus
def test_cluster_safe_refill_recipe_waits_for_an_uncommitted_invalidation(cluster: str, cc: psycopg.Connection[Any]) -> None:
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant, "record": rec(rid, T(1), title="old")})
    row = cc.execute("INSERT INTO public.charts (tenant_id, title) VALUES (%s, 'refill') RETURNING id::text",
                     (tenant,)).fetchone()
    assert row is not None
    chart = row[0]
    cc.execute("INSERT INTO public.chart_table_dependencies (chart_id, table_name) VALUES (%s, 'work_orders')", (chart,))
    entry = cc.execute("INSERT INTO public.chart_data_cache (chart_id, tenant_id, data) VALUES (%s, %s, '[0]') "
                       "RETURNING id", (chart, tenant)).fetchone()
    assert entry is not None
    # the one-node recipe's step 3 is what Citus refuses
    with pytest.raises(psycopg.errors.FeatureNotSupported):
        cc.execute("UPDATE public.charts SET cache_status = 'fresh' WHERE id = %s AND (SELECT coalesce(bool_and(e.is_valid), "
                   "true) FROM (SELECT c.is_valid FROM public.chart_data_cache c WHERE c.chart_id = %s FOR SHARE) e)",
                   (chart, chart))
    answer, path = deliver(cc, {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenant,
                                "record": rec(rid, T(2), title="new")})
    assert (answer["charts_invalidated"], path) == ([chart], "worker")

    def status() -> Any:
        return cc.execute("SELECT c.cache_status, e.is_valid FROM public.charts c JOIN public.chart_data_cache e "
                          "ON e.chart_id = c.id AND e.tenant_id = %s WHERE c.id = %s", (tenant, chart)).fetchone()

    assert status() == ("stale", False)
    # the refill: claim, compute, store, mark fresh
    generation = cc.execute(REFILL_CLAIM, (entry[0], tenant)).fetchone()
    assert generation is not None
    assert cc.execute(REFILL_STORE, ('[1]', entry[0], tenant, generation[0])).rowcount == 1
    assert refill_mark_fresh(cc, chart, tenant)
    assert status() == ("fresh", True)

    # a delivery's invalidation not committed yet: step 3 waits for it, then sees it
    with psycopg.connect(cluster) as delivery:
        delivery.execute("SELECT public.invalidate_chart_cache_for_tables(%s, ARRAY['work_orders'])", (tenant,))
        result: list[bool] = []
        with psycopg.connect(cluster, autocommit=True) as dashboard:
            thread = threading.Thread(target=lambda: result.append(refill_mark_fresh(dashboard, chart, tenant)))
            thread.start()
            thread.join(1.0)
            assert thread.is_alive(), "step 3 did not wait for the uncommitted invalidation"
            delivery.commit()
            thread.join(10)
    assert result == [False]
    assert status() == ("stale", False)


def cli_status(dsn: str, *args: str) -> tuple[int, Any]:
    """Like cli(), for a command whose exit status says something (reconcile: 1 on
    drift): (exit status, its JSON output)."""
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": dsn}
    done = subprocess.run([sys.executable, "-m", "operations.cli", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode, json.loads(done.stdout)


@pytest.fixture
def source_on_the_cluster_host(cluster: str) -> Iterator[str]:
    """A plain database (no citus extension) beside the coordinator's, holding the
    simulator's source schema `optiqo`: the source `optiqoflow reconcile` reads."""
    from simulator import source as simsource

    name = "of_source_" + uuid.uuid4().hex[:8]
    admin = make_conninfo(cluster, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    dsn = make_conninfo(cluster, dbname=name)
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(simsource.schema_sql())
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


@pytest.mark.citus
def test_fingerprints_and_reconcile_on_the_cluster(cluster: str, cc: psycopg.Connection[Any],
                                                   source_on_the_cluster_host: str) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    with psycopg.connect(source_on_the_cluster_host, autocommit=True) as src:
        src.execute(
            """INSERT INTO optiqo.adhoc_work_orders (id, tenant_id, site_id, title, status, priority, created_at, updated_at)
               SELECT gen_random_uuid(), t, gen_random_uuid(), 'wo ' || i, 'open', 3, now(),
                      now() - i * interval '1 minute' + interval '0.123456 seconds'
                 FROM unnest(%s::uuid[]) t, generate_series(1, 3) i""", ([a, b],))
        src.execute(
            """INSERT INTO optiqo.zone_categories (id, tenant_id, name, active, created_at, updated_at)
               SELECT gen_random_uuid(), %s, 'zone ' || i, true, now(), now() FROM generate_series(1, 2) i""", (a,))
        paths = []
        for table in ("adhoc_work_orders", "zone_categories"):   # as Optiqo sends them, through the two steps
            for (record,) in src.execute(f"SELECT jsonb_strip_nulls(to_jsonb(t)) FROM optiqo.{table} t ORDER BY t.updated_at"):
                answer, path = deliver(cc, {"type": "INSERT", "table": table, "record": record})
                assert answer["status"] == "applied", answer
                paths.append(path)
        assert "worker" in paths
        # the fingerprint on the coordinator is the source's, by the one formula
        query = cc.execute("SELECT optiqoflow.fingerprint_query('optiqo', 'adhoc_work_orders')").fetchone()
        assert query is not None
        theirs = {str(t): (n, s) for t, n, s in psycopg.RawCursor(src).execute(query[0], ([a, b],))}
        ours = {t: tuple(cc.execute("SELECT row_count, checksum FROM optiqoflow.table_fingerprint(%s, 'adhoc_work_orders')",
                                    (t,)).fetchone() or ()) for t in (a, b)}
        assert ours == theirs and ours[a][0] == 3
        # the same query on the cluster's table, for several tenants at once (a multi-shard query)
        mine = cc.execute("SELECT optiqoflow.fingerprint_query('optiqoflow', 'work_orders')").fetchone()
        assert mine is not None
        assert {str(t): (n, s) for t, n, s in psycopg.RawCursor(cc).execute(mine[0], ([a, b],))} == theirs

        code, report = cli_status(cluster, "reconcile", "--source-dsn", source_on_the_cluster_host,
                                  "--tenant", a, "--tenant", b)
        assert (code, report["checked"], report["drifted"]) == (0, 3, []), report
        # a change of tenant b's work orders that never arrived
        src.execute("UPDATE optiqo.adhoc_work_orders SET updated_at = updated_at + interval '1 microsecond' "
                    "WHERE id = (SELECT id FROM optiqo.adhoc_work_orders WHERE tenant_id = %s LIMIT 1)", (b,))
    code, report = cli_status(cluster, "reconcile", "--source-dsn", source_on_the_cluster_host,
                              "--tenant", a, "--tenant", b)
    assert code == 1
    assert [(d["tenant_id"], d["source_table"], d["target_table"]) for d in report["drifted"]] == [
        (b, "adhoc_work_orders", "work_orders")]
    code, report = cli_status(cluster, "reconcile", "--source-dsn", source_on_the_cluster_host,
                              "--tenant", a, "--table", "zone_categories")
    assert (code, report["checked"]) == (0, 1)


@pytest.mark.citus
def test_chart_dependencies_command_on_the_cluster(cluster: str, cc: psycopg.Connection[Any]) -> None:
    """`optiqoflow charts deps` rewrites the reference table chart_table_dependencies on the
    coordinator, and a worker-path delivery invalidates the charts it names."""
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": tenant, "record": rec(rid, T(1), title="a")})
    charts = {}
    for title, query in (("by view", f'SELECT count(*) FROM tenants."{tenant}_work_orders"'),
                         ("joined", "SELECT z.name, count(*) FROM optiqoflow.zones z JOIN work_orders w ON w.tenant_id = z.tenant_id "
                                    "GROUP BY 1")):
        row = cc.execute("INSERT INTO public.charts (tenant_id, title, query) VALUES (%s, %s, %s) RETURNING id::text",
                         (tenant, title, query)).fetchone()
        assert row is not None
        charts[title] = row[0]
    report = cli(cluster, "charts", "deps")
    mine = {c["id"]: c["tables"] for c in report["charts"] if c["id"] in charts.values()}
    assert mine == {charts["by view"]: ["work_orders"], charts["joined"]: ["work_orders", "zones"]}
    assert cc.execute("SELECT chart_id::text, table_name FROM public.chart_table_dependencies WHERE chart_id = ANY (%s::uuid[]) "
                      "ORDER BY 2, 1", (list(charts.values()),)).fetchall() == sorted(
        [(charts["by view"], "work_orders"), (charts["joined"], "work_orders"), (charts["joined"], "zones")],
        key=lambda r: (r[1], r[0]))
    answer, path = deliver(cc, {"type": "UPDATE", "table": "adhoc_work_orders", "tenant_id": tenant,
                                "record": rec(rid, T(2), title="b")})
    assert (sorted(answer["charts_invalidated"]), path) == (sorted(charts.values()), "worker")
    # a chart's SQL changes: the next run removes what it no longer reads
    cc.execute("UPDATE public.charts SET query = 'SELECT count(*) FROM optiqoflow.zones' WHERE id = %s", (charts["joined"],))
    report = cli(cluster, "charts", "deps")
    assert report["removed"] >= 1
    assert cc.execute("SELECT table_name FROM public.chart_table_dependencies WHERE chart_id = %s",
                      (charts["joined"],)).fetchall() == [("zones",)]


@pytest.mark.citus
def test_grant_tenant_and_moving_a_role_on_the_cluster(cc: psycopg.Connection[Any], make_role_on_cluster: Any) -> None:
    """tenants.grant_tenant on the coordinator: the role (created there, so on every node)
    reads its tenant's view and, through row-level security, its tenant's rows of the base
    table; granting another tenant moves it (the first tenant's views are revoked)."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    for t in (a, b):
        deliver(cc, {"type": "INSERT", "table": "adhoc_work_orders", "tenant_id": t,
                     "record": rec(str(uuid.uuid4()), T(1), title=t[:8])})
    role = make_role_on_cluster()
    assert cc.execute("SELECT tenants.grant_tenant(%s, %s)", (role, a)).fetchone() == (1,)

    def read(sql: str) -> Any:
        with cc.transaction():
            cc.execute(psycopg.sql.SQL("SET LOCAL ROLE {}").format(psycopg.sql.Identifier(role)))
            return cc.execute(sql).fetchall()

    def denied(sql: str) -> bool:
        try:
            read(sql)
        except psycopg.errors.InsufficientPrivilege:
            return True
        return False

    assert read(f'SELECT title FROM tenants."{a}_work_orders"') == [(a[:8],)]
    assert read("SELECT DISTINCT tenant_id::text FROM optiqoflow.work_orders") == [(a,)]
    assert denied(f'SELECT title FROM tenants."{b}_work_orders"')
    assert cc.execute("SELECT tenants.grant_tenant(%s, %s)", (role, b)).fetchone() == (1,)
    assert denied(f'SELECT title FROM tenants."{a}_work_orders"')
    assert read(f'SELECT title FROM tenants."{b}_work_orders"') == [(b[:8],)]
    assert read("SELECT DISTINCT tenant_id::text FROM optiqoflow.work_orders") == [(b,)]
    # a role that cannot be limited is refused on the cluster too
    with pytest.raises(psycopg.Error) as refused:
        cc.execute("SELECT tenants.grant_tenant('authenticated', %s)", (a,))
    assert refused.value.sqlstate == "OF015"


# --- repair without peering on the cluster (issue 24, point 6) ------------------------


@pytest.mark.citus
def test_bucket_figures_lineage_reconcile_and_a_scoped_full_sync_on_the_cluster(
    cc: psycopg.Connection[Any],
) -> None:
    """bucket_fingerprints through the coordinator equals the whole-table fingerprint;
    every row records its delivery (_of_log_id, written on the tenant's worker); a
    RECONCILE runs on the tenant's worker, changes nothing and is never a duplicate; a
    FULL_SYNC limited to one bucket removes only that bucket's row, on the worker."""
    tenant = str(uuid.uuid4())
    base = {"table": "adhoc_work_orders", "tenant_id": tenant}
    ids = [str(uuid.uuid4()) for _ in range(40)]
    # the tenant's first push makes its view, on the coordinator; the rest go to its worker
    first, path = deliver(cc, {**base, "type": "INSERT", "record": rec(ids[0], T(1), title="first")})
    assert (first["status"], path) == ("applied", "coordinator")
    answer, path = deliver(cc, {**base, "type": "FULL_SYNC", "offset": 0, "total": 40, "sync_id": "load",
                                "records": [rec(i, T(2), title="s") for i in ids]})
    assert (answer["status"], answer["run_state"], path) == ("applied", "complete", "worker")
    lineage = cc.execute("SELECT DISTINCT _of_log_id FROM optiqoflow.work_orders WHERE tenant_id = %s",
                         (tenant,)).fetchall()
    assert lineage == [(answer["log_id"],)]

    figures = {b: {"rows": int(n), "checksum": str(s)} for b, n, s in cc.execute(
        "SELECT * FROM optiqoflow.bucket_fingerprints(%s, 'adhoc_work_orders')", (tenant,))}
    whole = cc.execute("SELECT row_count, checksum FROM optiqoflow.table_fingerprint(%s, 'adhoc_work_orders')",
                       (tenant,)).fetchone()
    assert whole == (40, sum(int(f["checksum"]) for f in figures.values()))

    lost = ids[0]
    bucket = cc.execute("SELECT left(md5(%s::uuid::text), 2)", (lost,)).fetchone()[0]  # type: ignore[index]
    # the source deleted `lost` and the DELETE never arrived: its figures lack the row
    theirs = dict(figures)
    same_bucket = [i for i in ids[1:] if cc.execute("SELECT left(md5(%s::uuid::text), 2)", (i,)).fetchone()[0] == bucket]  # type: ignore[index]
    if same_bucket:
        row = cc.execute(
            "SELECT count(*), sum(('x' || left(md5(id::text || '|' || to_char(updated_at AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS.US')), 16))::bit(64)::bigint)::numeric "
            "FROM optiqoflow.work_orders WHERE tenant_id = %s AND id = ANY (%s::uuid[])",
            (tenant, same_bucket)).fetchone()
        assert row is not None
        theirs[bucket] = {"rows": int(row[0]), "checksum": str(row[1])}
    else:
        del theirs[bucket]
    payload = {**base, "type": "RECONCILE", "read_at": T(3), "buckets": theirs}
    answers = [deliver(cc, payload, "reconcile-same-id") for _ in range(2)]
    for a, path in answers:
        assert (a["status"], a["operation"], path) == ("applied", "RECONCILE", "worker")
        assert [b["bucket"] for b in a["buckets"]] == [bucket]
    assert cc.execute("SELECT count(*) FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,)).fetchone() == (40,)

    repair, path = deliver(cc, {**base, "type": "FULL_SYNC", "offset": 0, "total": len(same_bucket),
                                "sync_id": "repair", "buckets": [bucket], "occurred_at": T(3),
                                "records": [rec(i, T(2), title="s") for i in same_bucket]})
    assert (repair["status"], repair["run_state"], repair["removed"], path) == ("applied", "complete", 1, "worker")
    left = {r for (r,) in cc.execute("SELECT id::text FROM optiqoflow.work_orders WHERE tenant_id = %s", (tenant,))}
    assert left == set(ids[1:])
    assert cc.execute("SELECT count(*) FROM optiqoflow.tombstones WHERE tenant_id = %s AND id = %s",
                      (tenant, lost)).fetchone() == (1,)
    final, _ = deliver(cc, {**payload, "read_at": T(4)})
    assert final["differing"] == 0
    # "ours": our figures, read on the worker, equal to the source's after the repair
    ours, path = deliver(cc, {**base, "type": "RECONCILE", "read_at": T(4), "ours": True})
    assert (ours["status"], ours["ours"], path) == ("applied", True, "worker")
    assert {b["bucket"]: {"rows": b["rows"], "checksum": b["checksum"]} for b in ours["buckets"]} == theirs
