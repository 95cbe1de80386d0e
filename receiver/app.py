"""The receiver as an aiohttp application, and the handler of POST /api/optiqo-webhook.

`handle_webhook` admits the body (`receiver.admission`: bounded room for bodies before
their signature), reads it (`receiver.body`), verifies its signature
(`receiver.signatures`), checks it as strict JSON, and makes the one call
(`receiver.database`), through group commit or the Citus two-step when those are on
(`receiver.groupcommit`, `receiver.citus`). `receiver.answers` decides the status.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from aiohttp import web

from receiver import answers, citus, groupcommit, openapi
from receiver import body as bodies
from receiver.admission import Admission, NoRoom
from receiver.answers import Outcome
from receiver.config import Config
from receiver.database import (
    APPLY_SQL,
    UNUSABLE_SQL,
    Connection,
    Freshness,
    Gate,
    JsonBody,
    call,
    first_value,
    make_pool,
    one_value,
)
from receiver.figures import FIGURES, DatabaseFigures
from receiver.health import handle_healthz, handle_metrics, handle_readyz
from receiver.jsonguard import Unusable
from receiver.lanes import Lanes
from receiver.logs import account
from receiver.metrics import Metrics
from receiver.signatures import Verifier
from receiver.state import POOL, RECEIVER, Receiver

WEBHOOK_PATH = openapi.WEBHOOK_PATH  # "/api/optiqo-webhook", as the published contract says

log = logging.getLogger("optiqoflow.receiver")


def runner_options(config: Config) -> dict[str, Any]:
    """How the app is run (`web.run_app` / `web.AppRunner` keyword arguments)."""
    return {
        "shutdown_timeout": config.shutdown_timeout,  # in-flight deliveries may finish
        "access_log": None,  # one structured line per delivery instead
        "auto_decompress": False,  # bodies are refused compressed (415), never inflated
        "handler_cancellation": False,  # a sender that hangs up does not abort a delivery
    }


def make_app(config: Config, *, expected_revision: str | None = None) -> web.Application:
    """The receiver as an aiohttp application; its pool opens with the app.

    `expected_revision` is what /readyz wants in public.alembic_version (default: the
    head revision of the migrations shipped with this package)."""
    if not config.database_url:
        raise ValueError("make_app needs config.database_url")
    app = web.Application(client_max_size=config.max_body_bytes)
    freshness = Freshness()
    rcv = app[RECEIVER] = Receiver(
        config=config,
        verifier=Verifier(config.secrets, config.timestamp_tolerance),
        metrics=Metrics(),
        large_parses=asyncio.Semaphore(config.large_body_parses),
        freshness=freshness,
        gate=Gate(config.pool_max, config.pool_timeout),
        admission=Admission(
            config.unauthenticated_bytes,
            config.unauthenticated_small_bodies,
            unknown_length_bytes=config.max_body_bytes,
        ),
        lanes=Lanes(config.table_share, config.pool_timeout),
        tenant_lanes=Lanes(max(1, config.table_share // 2), config.pool_timeout),
        expected_revision=expected_revision,
    )
    figures = app[FIGURES] = DatabaseFigures()
    rcv.metrics.watch_database(figures.current)
    app[openapi.CONTRACT] = openapi.Contract()
    rcv.metrics.watch_admission(
        lambda: rcv.admission.reserved_bytes, lambda: rcv.admission.small_admitted
    )
    if config.group_commit > 1:
        rcv.group = groupcommit.GroupCommit(
            rcv.gate,
            config.group_commit,
            config.pool_timeout,
            groupcommit.apply_group(freshness),
            groupcommit.rolled_back,
        )
        rcv.group.on_group = rcv.metrics.group_size.observe
        rcv.group.on_ungrouped = rcv.metrics.groups_ungrouped.inc
    app.cleanup_ctx.append(_pool_context)
    app.router.add_post(WEBHOOK_PATH, handle_webhook)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    app.router.add_get(openapi.PATH, openapi.handle_openapi)
    return app


async def _pool_context(app: web.Application) -> AsyncIterator[None]:
    rcv = app[RECEIVER]
    config = rcv.config
    delegation = (
        None if config.citus_delegation == "off" else citus.Delegation(config.citus_delegation)
    )
    pool = make_pool(
        config.database_url or "",
        min_size=config.pool_min,
        max_size=config.pool_max,
        timeout=config.pool_timeout,
        freshness=rcv.freshness,
        configure=None if delegation is None else delegation.configure,
        lock_timeout=config.lock_timeout,
    )
    await pool.open(wait=False)  # an unreachable database is 503 and /readyz, not a crash
    app[POOL] = pool
    if rcv.group is not None:
        rcv.group.pool = pool
    rcv.metrics.watch_pool(lambda: _pool_stats(pool, rcv))
    try:
        yield
    finally:
        rcv.metrics.watch_pool(None)
        await pool.close()


def _pool_stats(pool: Any, rcv: Receiver) -> dict[str, int]:
    """The pool's statistics, deliveries waiting at the gate, in a table's lane or for a
    group counted as waiting."""
    stats: dict[str, int] = pool.get_stats()
    waiting = rcv.gate.waiting + rcv.lanes.waiting + rcv.tenant_lanes.waiting
    if rcv.group is not None:  # queued deliveries, not the drainers waiting for them
        waiting += rcv.group.waiting - rcv.group.drainers_at_gate
    stats["requests_waiting"] = stats.get("requests_waiting", 0) + waiting
    return stats


async def handle_webhook(request: web.Request) -> web.Response:
    rcv = request.app[RECEIVER]
    started = time.perf_counter()
    try:
        outcome = await _deliver(request, rcv)
    except Exception:
        log.exception("unexpected error while handling a delivery")
        outcome = answers.internal_error()
    account(rcv.metrics, request, outcome, time.perf_counter() - started)
    return answers.response(outcome, rcv.config.retry_after)


async def _deliver(request: web.Request, rcv: Receiver) -> Outcome:
    config = rcv.config
    refused = bodies.refused_unread(request, config.max_body_bytes)  # 415, 413
    if refused is not None:
        return refused
    try:  # room to receive the body, before anyone knows who sent it
        ticket = rcv.admission.admit(request.content_length, bodies.chunked(request))
    except NoRoom as full:
        return answers.overloaded(str(full))
    with ticket:  # given back once the body is read and its signature judged
        body = await bodies.read(request, config.max_body_bytes, config.read_timeout)
        if isinstance(body, Outcome):
            return body
        verdict = rcv.verifier.verify(request.headers, body)

    if not verdict.ok:
        rcv.metrics.signature_failures.labels(verdict.scheme, verdict.reason).inc()
        return answers.invalid_signature(f"{verdict.scheme} scheme: {verdict.reason}")

    # signed: from here on every answer is backed by a row in webhook_logs
    try:
        delivery_id = bodies.delivery_id(request.headers)
    except Unusable as unusable:
        return await _record_unusable(request, body, None, unusable)
    if verdict.scheme == "plain":  # the id header is not signed: bind it to the body
        delivery_id = bodies.bound_to_body(delivery_id, body)
    if len(body) <= bodies.PARSE_IN_THREAD_BYTES:
        try:
            checked = bodies.done(bodies.checked(body))
        except Unusable as unusable:
            return await _record_unusable(request, body, delivery_id, unusable)
        return await _apply(request, body, checked, delivery_id)
    # A large body (a FULL_SYNC batch): the strict check runs in a thread while the
    # database applies the body in an open transaction, which commits only once the
    # check has passed (_apply). Its parsed tree takes ~4x its size: a few at a time.
    async with rcv.large_parses:
        check = bodies.ThreadCheck(body)
        try:
            return await _apply(request, body, check.future, delivery_id, check.start)
        except Unusable as unusable:
            return await _record_unusable(request, body, delivery_id, unusable)
        finally:
            check.start()  # not started when no connection came: the answer still needs it
            await check.finished()  # the tree is gone before the next parse


async def _apply(
    request: web.Request,
    body: bytes,
    check: asyncio.Future[bodies.Checked],
    delivery_id: str | None,
    start_check: Callable[[], None] = lambda: None,
) -> Outcome:
    """Apply a signed body whose strict JSON check (`check`: payload labels and tenant,
    or Unusable) has finished, or runs in a thread once `start_check` is called. Raises
    Unusable when the check refuses the body; then nothing of it was committed."""
    rcv = request.app[RECEIVER]
    jsonb = JsonBody(body)

    async def apply(conn: Connection) -> tuple[Any, str]:
        if not check.done() and not conn.delegated:
            # being checked: the one call inside a transaction that commits only when
            # the check passed; an Unusable raised here rolls it back
            async with conn.transaction():
                start_check()  # now, so that the thread does not slow the steps before
                text = await first_value(conn, APPLY_SQL, (jsonb, delivery_id))
                await check
            return text, "direct"
        start_check()
        _, tenant = await check
        if conn.delegated and tenant is not None:
            return await citus.apply(conn, tenant, jsonb, delivery_id)
        # the one call; on Citus also a payload without a tenant
        text = await first_value(conn, APPLY_SQL, (jsonb, delivery_id))
        return text, ("coordinator" if conn.delegated else "direct")

    async def alone() -> tuple[Any, str]:
        """The one call on a connection of its own: a large body (its table not known
        yet) as it is, held to a few at a time; any other within its table's lane."""
        if not check.done():
            return await call(request.app[POOL], rcv.gate, rcv.freshness, apply)
        labels = check.result()[0]
        table = labels.get("table") or ""
        # one pool timeout for the three waits; the tenant's lane first: while one
        # tenant's deliveries wait (a row it is writing held by a session), the ones
        # behind them hold no place of the table's
        deadline = asyncio.get_running_loop().time() + rcv.config.pool_timeout
        async with (
            rcv.tenant_lanes.lane(f"{table}/{labels.get('tenant_id') or ''}", deadline),
            rcv.lanes.lane(table, deadline),
        ):
            return await call(request.app[POOL], rcv.gate, rcv.freshness, apply, deadline)

    try:
        if check.done() and groupcommit.joins(rcv.group, check.result()[0].get("type")):
            assert rcv.group is not None
            try:  # a group takes one connection whatever its tables: no lane
                text, path = await rcv.group.apply(body, delivery_id), "grouped"
            except groupcommit.Ungrouped:  # its group could not be applied as one
                text, path = await alone()
        else:
            text, path = await alone()
    except psycopg.Error as e:
        start_check()
        await check  # a body the check refuses is answered as such, whatever the database said
        if e.sqlstate in answers.UNSTORABLE_STATES:
            reason = f"PostgreSQL cannot store the body as jsonb: {e.diag.message_primary}"
            return await _record_unusable(request, body, delivery_id, Unusable(reason, 422))
        return answers.database_fault(e)
    payload, _ = await check
    return answers.from_answer(text, payload, path)


async def _record_unusable(
    request: web.Request, body: bytes, delivery_id: str | None, unusable: Unusable
) -> Outcome:
    """A signed body that cannot become jsonb: kept as bytes, answered 400 or 422."""
    rcv = request.app[RECEIVER]
    try:
        log_id = await call(
            request.app[POOL],
            rcv.gate,
            rcv.freshness,
            one_value(UNUSABLE_SQL, (body, delivery_id, unusable.reason)),
        )
    except psycopg.Error as e:
        return answers.database_fault(e)
    return answers.unusable(unusable.status, unusable.reason, log_id)
