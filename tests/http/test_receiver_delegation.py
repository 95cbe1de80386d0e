"""The receiver's Citus switch (OPTIQO_CITUS_DELEGATION) on plain PostgreSQL.

On plain PostgreSQL the receiver must keep making exactly one database call per
delivery, `SELECT optiqoflow.apply_webhook($1::jsonb, $2)` (docs/payloads.md, "The
endpoint"): the two-step path (receiver.citus) is only taken where Citus delegates
optiqoflow.apply_tenant_webhook. Every statement the receiver's connections run is
recorded here, on a real receiver over loopback HTTP with a real database. The same
two-step code is also forced on (`on`) against functions replaced in the test's
database, to check its fallback, status mapping, retries, metrics and log line without
a cluster; tests/citus/test_citus.py runs it against a real one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest

from receiver import citus, database, figures
from tests.helpers import rec, zone_payload
from tests.http_helpers import Endpoint, receiver_config, serving

PATHS = "optiqoflow_delivery_paths_total"


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement run on the receiver's pooled connections, in order (the pool's
    empty liveness checks and the database figures a /metrics scrape reads left out)."""
    seen: list[str] = []
    original = database.Connection.execute

    async def execute(self: database.Connection, query: Any, *args: Any, **kwargs: Any) -> Any:
        if (
            query != ""
            and not str(query).startswith("SET lock_timeout")  # set once per connection
            and query != figures.FIGURES_SQL
        ):
            seen.append(str(query))
        return await original(self, query, *args, **kwargs)

    monkeypatch.setattr(database.Connection, "execute", execute)
    yield seen


@pytest.fixture
async def auto(db_dsn: str, statements: list[str]) -> AsyncIterator[Endpoint]:
    async with serving(receiver_config(db_dsn, pool_max=1)) as ep:  # the default: auto
        yield ep


def deliveries(tenant: str) -> list[dict[str, Any]]:
    """One of each kind: INSERT, UPDATE, DELETE, FULL_SYNC, a refusal, no tenant."""
    first = zone_payload(tenant)
    rid = first["record"]["id"]
    update = {**first, "type": "UPDATE",
              "record": {**first["record"], "name": "Hall", "updated_at": "2026-01-02T10:00:00Z"}}
    delete = {"type": "DELETE", "table": "zone_categories", "tenant_id": tenant,
              "old_record": rec(rid, "2026-01-03T10:00:00Z")}
    full_sync = {"type": "FULL_SYNC", "table": "zone_categories", "tenant_id": tenant, "offset": 0,
                 "total": 1, "records": [zone_payload(tenant, updated_at="2026-01-04T10:00:00Z")["record"]]}
    refused = {**zone_payload(tenant), "table": "no_such_table"}
    no_tenant = {**zone_payload(tenant), "tenant_id": "not-a-tenant"}
    no_tenant["record"] = {k: v for k, v in no_tenant["record"].items() if k != "tenant_id"}
    return [first, update, delete, full_sync, refused, no_tenant]  # fmt: skip


async def test_plain_postgres_gets_one_apply_webhook_call_per_delivery(
    auto: Endpoint, statements: list[str]
) -> None:
    tenant = str(uuid.uuid4())
    await auto.post(zone_payload(tenant))  # opens the one connection
    assert statements[0] == citus.CATALOG_SQL  # the check, once, when it was opened
    statements.clear()
    replies = [await auto.post(p) for p in deliveries(tenant)]
    assert [r.status for r in replies] == [200, 200, 200, 200, 422, 422], [r.body for r in replies]
    assert [r.body["status"] for r in replies[:4]] == ["applied"] * 4
    assert statements == [database.APPLY_SQL] * 6
    assert database.APPLY_SQL == "SELECT optiqoflow.apply_webhook($1::jsonb, $2)::text"
    text = (await auto.get("/metrics")).body
    assert f'{PATHS}{{path="direct"}} 7.0' in text
    assert 'path="worker"' not in text and 'path="coordinator"' not in text


async def test_off_runs_no_check_at_all(db_dsn: str, statements: list[str]) -> None:
    async with serving(receiver_config(db_dsn, citus_delegation="off")) as ep:
        reply = await ep.post(zone_payload(str(uuid.uuid4())))
    assert reply.status == 200
    assert statements == [database.APPLY_SQL]


# --- the two-step path, forced on ----------------------------------------------------------


def replace_tenant_entry_point(dsn: str, answer_sql: str) -> None:
    """apply_tenant_webhook answers `answer_sql` (evaluated with p_tenant_id, p_payload,
    p_delivery_id in scope) and counts its calls."""
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE SEQUENCE IF NOT EXISTS public.test_tenant_calls")
        c.execute(
            f"""CREATE OR REPLACE FUNCTION optiqoflow.apply_tenant_webhook(
                    p_tenant_id uuid, p_payload jsonb, p_delivery_id text DEFAULT NULL)
                RETURNS jsonb LANGUAGE plpgsql AS $$
                BEGIN
                    PERFORM nextval('public.test_tenant_calls');
                    RETURN {answer_sql};
                END $$"""
        )


def coordinator_required() -> str:
    return ("jsonb_build_object('status', 'coordinator_required', 'tenant_id', p_tenant_id, "
            "'reason', 'test')")  # fmt: skip


def count_of(dsn: str, sequence: str) -> int:
    with psycopg.connect(dsn) as c:
        row = c.execute(f"SELECT last_value, is_called FROM public.{sequence}").fetchone()
    assert row is not None
    return int(row[0]) if row[1] else 0


async def test_forced_two_step_path_answers_from_the_worker_call(
    db_dsn: str, statements: list[str]
) -> None:
    # on plain PostgreSQL apply_tenant_webhook is apply_webhook: the first step answers
    tenant = str(uuid.uuid4())
    async with serving(receiver_config(db_dsn, citus_delegation="on")) as ep:
        first = await ep.post(zone_payload(tenant))
        refused = await ep.post({**zone_payload(tenant), "table": "no_such_table"})
        no_tenant = await ep.post({**zone_payload(tenant), "tenant_id": 7})
        text = (await ep.get("/metrics")).body
    assert (first.status, first.body["status"], first.body["tenant_id"]) == (200, "applied", tenant)
    assert (refused.status, refused.body["sqlstate"]) == (422, "OF001")
    assert (no_tenant.status, no_tenant.body["sqlstate"]) == (422, "OF002")
    assert statements == [citus.APPLY_TENANT_SQL, citus.APPLY_TENANT_SQL, database.APPLY_SQL]
    assert f'{PATHS}{{path="worker"}} 2.0' in text
    assert f'{PATHS}{{path="coordinator"}} 1.0' in text  # no readable tenant: never delegated


async def test_coordinator_required_is_repeated_as_apply_webhook(
    db_dsn: str, statements: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    replace_tenant_entry_point(db_dsn, coordinator_required())
    tenant = str(uuid.uuid4())
    caplog.set_level(logging.INFO, logger="optiqoflow.receiver")
    async with serving(receiver_config(db_dsn, citus_delegation="on")) as ep:
        reply = await ep.post(zone_payload(tenant))
        again = await ep.post(zone_payload(tenant))
        text = (await ep.get("/metrics")).body
    assert (reply.status, reply.body["status"], reply.body["rows"]) == (200, "applied", 1)
    assert again.status == 200
    assert statements == [citus.APPLY_TENANT_SQL, database.APPLY_SQL] * 2
    assert count_of(db_dsn, "test_tenant_calls") == 2
    assert f'{PATHS}{{path="coordinator"}} 2.0' in text
    assert 'optiqoflow_deliveries_total{operation="INSERT",status="applied",table="zones"} 2.0' in text
    lines = [r for r in caplog.records if r.getMessage() == "delivery applied"]
    assert [r.fields["path"] for r in lines] == ["coordinator", "coordinator"]  # type: ignore[attr-defined]


async def test_two_step_path_keeps_retries_and_status_mapping(db_dsn: str) -> None:
    # the coordinator step fails twice with a serialization failure: the whole delivery
    # (both steps) is retried, as a single call is, then answered
    replace_tenant_entry_point(db_dsn, coordinator_required())
    with psycopg.connect(db_dsn, autocommit=True) as c:
        c.execute("CREATE SEQUENCE public.test_apply_calls")
        c.execute(
            """CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
               RETURNS jsonb LANGUAGE plpgsql AS $$
               BEGIN
                   IF nextval('public.test_apply_calls') <= 2 THEN
                       RAISE EXCEPTION 'injected' USING ERRCODE = '40001';
                   END IF;
                   RETURN jsonb_build_object('status', 'applied', 'table', 'zones', 'rows', 1, 'log_id', 0);
               END $$"""
        )
    async with serving(receiver_config(db_dsn, citus_delegation="on")) as ep:
        reply = await ep.post(zone_payload(str(uuid.uuid4())))
        assert (reply.status, reply.body["status"]) == (200, "applied")
        assert (count_of(db_dsn, "test_tenant_calls"), count_of(db_dsn, "test_apply_calls")) == (3, 3)
        # a lock timeout in the first step is a 503, as it is for apply_webhook
        with psycopg.connect(db_dsn, autocommit=True) as c:
            c.execute(
                """CREATE FUNCTION public.test_lock_timeout() RETURNS jsonb LANGUAGE plpgsql AS $$
                   BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '55P03'; END $$"""
            )
        replace_tenant_entry_point(db_dsn, "public.test_lock_timeout()")
        busy = await ep.post(zone_payload(str(uuid.uuid4())))
        assert busy.status == 503 and busy.headers["Retry-After"] == "7"
