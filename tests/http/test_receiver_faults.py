"""The receiver when PostgreSQL goes away, and `optiqoflow serve` as a process:
start-up checks, graceful shutdown, the embedded database.

Tests that stop or kill PostgreSQL use `own_server`, never the shared one (every other
test of the session is using it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from operations.embedded import EmbeddedPostgres, free_port
from receiver.app import WEBHOOK_PATH
from receiver.database import CHECK_IDLE_SECONDS, Connection, Freshness
from tests.helpers import hold_row_bucket, zone_payload
from tests.http_helpers import SECRET, receiver_config, serving, signed_headers

# the fault tests below hold with and without group commit (docs/group-commit.md)
GROUP_COMMIT = pytest.mark.parametrize("group_commit", [1, 8], ids=["alone", "group commit"])


@GROUP_COMMIT
async def test_database_stopped_killed_and_back(
    own_server: EmbeddedPostgres, group_commit: int
) -> None:
    dsn = own_server.dsn
    config = receiver_config(dsn, pool_min=1, pool_timeout=1.0, group_commit=group_commit)
    async with serving(config) as ep:
        assert (await ep.post(zone_payload(str(uuid.uuid4())))).status == 200
        assert (await ep.get("/readyz")).status == 200

        await asyncio.to_thread(own_server.stop)
        down = await ep.post(zone_payload(str(uuid.uuid4())))
        assert down.status == 503
        assert down.headers["Retry-After"] == "7"
        assert (await ep.get("/readyz")).status == 503
        assert (await ep.get("/healthz")).status == 200

        await asyncio.to_thread(own_server.start)
        started = time.monotonic()
        while (back := await ep.post(zone_payload(str(uuid.uuid4())))).status != 200:
            assert back.status == 503  # the pool still waits to reconnect
            assert time.monotonic() - started < 10, "deliveries did not resume"
        assert back.body["status"] == "applied"

        # killed while a delivery is inside the database: never a 2xx, nothing committed
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE public.test_marker (n int)")
            c.execute(
                """CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
                   RETURNS jsonb LANGUAGE plpgsql AS $$
                   BEGIN
                       INSERT INTO public.test_marker VALUES (1);
                       PERFORM pg_sleep(30);
                       RETURN '{"status": "applied", "table": "zones", "rows": 1, "log_id": 0}';
                   END $$"""
            )
        inflight = asyncio.create_task(ep.post(zone_payload(str(uuid.uuid4()))))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(own_server.kill)
        lost = await asyncio.wait_for(inflight, 20)
        assert lost.status == 503
        assert lost.headers["Retry-After"] == "7"

    await asyncio.to_thread(own_server.start)
    with psycopg.connect(dsn) as c:
        assert c.execute("SELECT count(*) FROM public.test_marker").fetchone() == (0,)


async def test_restart_with_warm_connections_costs_one_503_then_recovers(
    own_server: EmbeddedPostgres,
) -> None:
    """Connections that answered a moment ago are not checked before use: after a
    restart the first delivery meets a dead one (503, nothing claimed), and that
    makes the pool check the others, so deliveries resume at once."""
    dsn = own_server.dsn
    config = receiver_config(dsn, pool_min=3, pool_max=3, pool_timeout=8.0)
    async with serving(config) as ep:
        warm = [ep.post(zone_payload(str(uuid.uuid4()))) for _ in range(6)]
        assert {r.status for r in await asyncio.gather(*warm)} == {200}

        await asyncio.to_thread(own_server.stop)
        await asyncio.to_thread(own_server.start)
        first = await ep.post(zone_payload(str(uuid.uuid4())))
        assert first.status in (200, 503)
        if first.status == 503:
            assert first.headers["Retry-After"] == "7"
        started = time.monotonic()
        for _ in range(5):  # every later delivery is applied: no stale connection left
            again = await ep.post(zone_payload(str(uuid.uuid4())))
            assert (again.status, again.body["status"]) == (200, "applied")
        assert time.monotonic() - started < 10


@GROUP_COMMIT
async def test_a_full_pool_queues_deliveries_at_the_gate_then_503(
    db_dsn: str, group_commit: int
) -> None:
    """With every connection busy, a delivery waits at the receiver's gate, or in the
    group-commit queue (counted in optiqoflow_db_requests_waiting either way), and gets
    503 with Retry-After once the pool timeout has passed; the busy one still commits
    when it can."""
    config = receiver_config(
        db_dsn, pool_min=1, pool_max=1, pool_timeout=1.0, group_commit=group_commit
    )
    async with serving(config) as ep:
        tenant, key = str(uuid.uuid4()), str(uuid.uuid4())
        assert (await ep.post(zone_payload(tenant))).status == 200  # views exist
        with psycopg.connect(db_dsn) as holder:  # holds the row bucket of `key`
            hold_row_bucket(holder, tenant, "zones", key)
            busy = asyncio.ensure_future(ep.post(zone_payload(tenant, id=key, name="busy")))
            with psycopg.connect(db_dsn, autocommit=True) as watch:
                deadline = time.monotonic() + 10
                while watch.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND application_name = 'optiqoflow-receiver' AND datname = current_database()"
                ).fetchone() != (1,):
                    assert time.monotonic() < deadline, "the first delivery never waited"
                    await asyncio.sleep(0.05)
            started = time.monotonic()
            queued = asyncio.ensure_future(ep.post(zone_payload(tenant, name="queued")))
            await asyncio.sleep(0.3)
            metrics = await ep.session.get(ep.url("/metrics"))
            assert "optiqoflow_db_requests_waiting 1.0" in await metrics.text()
            refused = await queued
            assert (refused.status, refused.headers["Retry-After"]) == (503, "7")
            assert 0.9 < time.monotonic() - started < 5
            holder.rollback()  # the lock goes: the busy delivery commits
        done = await busy
        assert (done.status, done.body["status"]) == (200, "applied")


async def test_terminated_backends_are_503_once_then_replaced(db_dsn: str) -> None:
    config = receiver_config(db_dsn, pool_min=2, pool_max=2, pool_timeout=8.0)
    async with serving(config) as ep:
        tenant = str(uuid.uuid4())
        assert (await ep.post(zone_payload(tenant, name="before"))).status == 200
        with psycopg.connect(db_dsn, autocommit=True) as c:
            killed = c.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database()"
                " AND application_name = 'optiqoflow-receiver'"
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        lost = await ep.post(zone_payload(tenant, name="lost"))
        assert lost.status in (200, 503)  # 200 only if it got the unused connection
        for name in ("after-1", "after-2", "after-3"):
            reply = await ep.post(zone_payload(tenant, name=name))
            assert (reply.status, reply.body["status"]) == (200, "applied")
    with psycopg.connect(db_dsn) as c:
        names = {
            r[0]
            for r in c.execute("SELECT name FROM optiqoflow.zones WHERE tenant_id = %s", (tenant,))
        }
    assert {"before", "after-1", "after-2", "after-3"} <= names
    assert ("lost" in names) == (lost.status == 200)  # never a 503 for a committed change


# --- the pool's check: only for connections that may be stale ----------------------------


class FakeConnection(Connection):
    """Just enough of a connection for AsyncConnectionPool.check_connection."""

    def __init__(self) -> None:  # no real connection behind it
        self.queries: list[str] = []

    @property
    def autocommit(self) -> bool:  # type: ignore[override]
        return True

    async def execute(self, query: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.queries.append(query)


async def test_freshness_checks_only_connections_that_may_be_stale() -> None:
    freshness, conn = Freshness(), FakeConnection()
    await freshness.check(conn)  # never answered: checked
    assert conn.queries == [""]
    await freshness.check(conn)  # the check counts as an answer
    conn.answered_at = time.monotonic()
    await freshness.check(conn)
    assert conn.queries == [""]

    conn.answered_at = time.monotonic() - CHECK_IDLE_SECONDS - 0.1  # idle too long
    await freshness.check(conn)
    assert conn.queries == ["", ""]

    conn.answered_at = time.monotonic()
    await asyncio.sleep(0.01)
    freshness.broken()  # another connection broke after this one last answered
    await freshness.check(conn)
    assert conn.queries == ["", "", ""]
    await freshness.check(conn)  # checked since: trusted again
    assert conn.queries == ["", "", ""]


# --- optiqoflow serve, as a process -------------------------------------------------------


def serve_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTIQO", "DATABASE_URL"))}
    env.update({"OPTIQO_WEBHOOK_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}, **extra)
    return env


@pytest.fixture
def start_serve(tmp_path: Path) -> Iterator[Any]:
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str]) -> tuple[subprocess.Popen[str], int]:
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "operations.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc, port

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # reaps it and closes its pipes


def wait_for(port: int, path: str, proc: subprocess.Popen[str], seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    last: object = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {proc.communicate()[1][-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2):
                return
        except urllib.error.HTTPError as e:
            with e:
                last = (e.code, e.read())
        except (urllib.error.URLError, ConnectionError) as e:
            last = e
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        f"{path} never answered 200 (last: {last}): {proc.communicate()[1][-3000:]}"
    )


def post(port: int, payload: dict[str, Any], delivery_id: str | None = None) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{WEBHOOK_PATH}",
        data=body,
        headers=signed_headers(body, "plain", delivery_id=delivery_id),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read())


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path) -> None:
    env = serve_env()
    del env["OPTIQO_WEBHOOK_SECRET"]
    done = subprocess.run(
        [sys.executable, "-m", "operations.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "OPTIQO_WEBHOOK_SECRET is not set" in done.stderr
    assert "export OPTIQO_WEBHOOK_SECRET=" in done.stderr


@pytest.mark.parametrize("url", ["not a url", "http://example.com/db"])
def test_serve_refuses_a_malformed_database_url_in_one_line(tmp_path: Path, url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "operations.cli", "serve"],
        env=serve_env(DATABASE_URL=url),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()  # no "receiver listening", no pool warnings
    assert line.startswith("optiqoflow serve: DATABASE_URL ")


def test_sigterm_lets_the_delivery_in_flight_finish(db_dsn: str, start_serve: Any) -> None:
    proc, port = start_serve(serve_env(DATABASE_URL=db_dsn))
    wait_for(port, "/readyz", proc)
    assert post(port, zone_payload(str(uuid.uuid4())))[0] == 200

    async def run() -> tuple[int, Any]:
        slow_payload = zone_payload(str(uuid.uuid4()))
        with psycopg.connect(db_dsn, autocommit=True) as c:  # the next delivery takes 1.5 s
            c.execute(
                """CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(p_payload jsonb, p_delivery_id text DEFAULT NULL)
                   RETURNS jsonb LANGUAGE plpgsql AS $$
                   BEGIN
                       PERFORM pg_sleep(1.5);
                       RETURN '{"status": "applied", "table": "zones", "rows": 1, "log_id": 0}';
                   END $$"""
            )
        inflight = asyncio.create_task(asyncio.to_thread(post, port, slow_payload))
        await asyncio.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        return await inflight

    status, answer = asyncio.run(run())
    assert (status, answer["status"]) == (200, "applied")
    assert proc.wait(timeout=20) == 0
    stderr = proc.communicate()[1]
    deliveries = [json.loads(line) for line in stderr.splitlines() if '"event": "delivery"' in line]
    assert [d["status"] for d in deliveries] == ["applied", "applied"]
    assert SECRET not in stderr


def test_sigterm_answers_every_delivery_queued_for_group_commit(db_dsn: str, start_serve: Any) -> None:
    """Group commit's drainers at shutdown: deliveries queued behind a busy connection when
    SIGTERM comes are still applied, in groups, and answered 200 before the process ends;
    nothing queued is dropped or answered without its commit."""
    proc, port = start_serve(serve_env(DATABASE_URL=db_dsn, OPTIQO_GROUP_COMMIT="8",
                                       OPTIQO_POOL_MAX="1", OPTIQO_POOL_MIN="1"))
    wait_for(port, "/readyz", proc)
    tenant = str(uuid.uuid4())
    assert post(port, zone_payload(tenant))[0] == 200

    async def run() -> list[tuple[int, Any]]:
        with psycopg.connect(db_dsn) as blocker, psycopg.connect(db_dsn, autocommit=True) as watch:
            blocker.execute("LOCK TABLE optiqoflow.webhook_logs IN SHARE MODE")  # every delivery waits
            first = asyncio.create_task(asyncio.to_thread(post, port, zone_payload(tenant, name="first")))
            deadline = time.monotonic() + 15
            while watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND application_name = 'optiqoflow-receiver' AND datname = current_database()"
            ).fetchone() != (1,):
                assert time.monotonic() < deadline, "the first delivery never waited"
                await asyncio.sleep(0.05)
            queued = [asyncio.create_task(asyncio.to_thread(post, port, zone_payload(tenant, name=f"q{i}")))
                      for i in range(5)]  # fmt: skip
            await asyncio.sleep(0.5)  # in the queue: the one connection is busy
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            blocker.commit()
        return [await first, *[await q for q in queued]]

    answers = asyncio.run(run())
    assert [(status, a["status"]) for status, a in answers] == [(200, "applied")] * 6
    assert proc.wait(timeout=30) == 0
    with psycopg.connect(db_dsn) as c:
        assert c.execute(
            "SELECT count(*) FROM optiqoflow.webhook_logs WHERE tenant_id = %s AND outcome = 'applied'",
            (tenant,),
        ).fetchone() == (7,)


def test_serve_without_database_url_runs_an_embedded_postgresql(
    tmp_path: Path, start_serve: Any
) -> None:
    env = serve_env(OPTIQOFLOW_DATA_DIR=str(tmp_path / "state"))
    tenant, delivery = str(uuid.uuid4()), f"dlv-{uuid.uuid4()}"
    payload = zone_payload(tenant)

    proc, port = start_serve(env)
    wait_for(port, "/readyz", proc)
    assert post(port, payload, delivery)[1]["status"] == "applied"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    stderr = proc.communicate()[1]
    assert "embedded PostgreSQL ready at postgresql://" in stderr
    pgdata = tmp_path / "state" / "pgdata"
    assert not EmbeddedPostgres(pgdata, 0).is_running()  # stopped with the receiver

    proc, port = start_serve(env)  # data survives the restart
    wait_for(port, "/readyz", proc)
    assert post(port, payload, delivery)[1]["status"] == "duplicate"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0


def test_serve_leaves_a_database_url_unmigrated(empty_db_dsn: str, start_serve: Any) -> None:
    # migrating is `optiqoflow migrate`'s job (a role that may run DDL); serve only says so
    proc, port = start_serve(serve_env(DATABASE_URL=empty_db_dsn))
    wait_for(port, "/healthz", proc)
    with pytest.raises(urllib.error.HTTPError) as not_ready:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
    with not_ready.value as answer:
        assert answer.code == 503
        assert json.loads(answer.read())["reason"] == "database not migrated to head"
    with psycopg.connect(empty_db_dsn) as c:
        assert c.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
