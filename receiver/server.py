"""The webhook receiver (CONTRACT section 2): verify, forward, map the answer.

    POST /api/optiqo-webhook
      1. refuse a compressed body (415): the signature covers the bytes as sent, and a
         compressed body is never inflated here;
      2. read the body, at most OPTIQO_MAX_BODY_BYTES (413) within the read timeout (408);
      3. verify the signature on those raw bytes (401), before anything else;
      4. strict JSON (jsonguard): a signed body that cannot become jsonb is kept as bytes
         by optiqoflow.record_unusable_delivery, answered 400 or 422; bodies over 1 MiB
         are checked in a worker thread, at most OPTIQO_LARGE_BODY_PARSES at once;
      5. one call, optiqoflow.apply_webhook, with the body's bytes as they came (with
         OPTIQO_GROUP_COMMIT above 1 a real-time delivery may share one
         optiqoflow.apply_webhook_group call with others queued beside it:
         receiver.groupcommit); its
         answer, passed on as PostgreSQL wrote it, decides 200 or 422 (on a Citus cluster
         whose apply_tenant_webhook is delegated: that call on the tenant's worker first,
         and apply_webhook only when it answers coordinator_required; receiver.citus);
      6. database faults by SQLSTATE class: transient ones are 503 + Retry-After.
    GET /healthz, /readyz, /metrics

The receiver knows no table: everything about data lives in PL/pgSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar

import psycopg
from aiohttp import hdrs, web
from aiohttp.http import HttpProcessingError
from multidict import MultiMapping
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from psycopg.adapt import AdaptersMap, Buffer, Dumper
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool

from receiver import citus
from receiver.config import ENVIRONMENT, Config, ConfigError
from receiver.groupcommit import Gate, GroupCommit, Queued, Ungrouped
from receiver.jsonguard import Unusable, parse_payload
from receiver.metrics import Metrics
from receiver.signatures import STANDARD_ID_HEADER, Verifier

WEBHOOK_PATH = "/api/optiqo-webhook"

# the answer as text: passed on to the sender unchanged, parsed once for the log line
APPLY_SQL = "SELECT optiqoflow.apply_webhook($1::jsonb, $2)::text"
# group commit (OPTIQO_GROUP_COMMIT): queued deliveries, $1 a JSON array of their bodies
GROUP_SQL = "SELECT n, answer FROM optiqoflow.apply_webhook_group($1::jsonb, $2::text[])"
REAL_TIME = ("INSERT", "UPDATE", "DELETE")  # the types a group may hold
# Citus: the same delivery on the worker that owns tenant $1 (citus.APPLY_TENANT_SQL).
# Citus delegates only a bare call (no cast around it): its jsonb answer is read as text
# by the loader registered in ADAPTERS.
APPLY_TENANT_SQL = citus.APPLY_TENANT_SQL
UNUSABLE_SQL = "SELECT optiqoflow.record_unusable_delivery($1::bytea, $2, $3)"
READY_SQL = "SELECT version_num FROM public.alembic_version"

# apply_webhook's answer -> HTTP status
HTTP_STATUS = {"applied": 200, "duplicate": 200, "stale": 200, "refused": 422}

# SQLSTATEs that mean "not now", not "never": 503 + Retry-After.
# 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator
# intervention (cancel, shutdown, starting up), 55P03 lock timeout, 25006 a read-only
# standby (a failover in progress).
TRANSIENT_CLASSES = ("08", "40", "53", "57")
TRANSIENT_STATES = ("55P03", "25006")
RETRY_STATES = ("40001", "40P01")  # retried here first: the statement was rolled back
RETRIES = 3
# the body was signed JSON but PostgreSQL's jsonb input refused it (\u0000, surrogates)
UNSTORABLE_STATES = ("22P02", "22P05")

DELIVERY_ID_HEADERS = (STANDARD_ID_HEADER, "x-webhook-id")
MAX_DELIVERY_ID_CHARS = 255
OPERATIONS = ("INSERT", "UPDATE", "DELETE", "FULL_SYNC", "BATCH")
PARSE_IN_THREAD_BYTES = 1024 * 1024  # larger bodies are parsed off the event loop
READY_TIMEOUT = 2.0  # seconds /readyz waits for a connection
# psycopg_pool backs off exponentially while the database is down, up to this many
# seconds, then starts afresh on the next request: so once the database is back,
# deliveries resume within a few seconds, not after a minute of backoff
RECONNECT_TIMEOUT = 5.0
# A connection that answered less than this many seconds ago is handed out without a
# round trip to check it (a busy receiver never pays for the check); older ones, and
# every one that was idle when another connection was found broken, are checked first.
CHECK_IDLE_SECONDS = 2.0

log = logging.getLogger("optiqoflow.receiver")


class Connection(psycopg.AsyncConnection[Any]):
    """A pooled connection that remembers when it last answered, and whether deliveries
    on it take the Citus two-step path (OPTIQO_CITUS_DELEGATION)."""

    answered_at = 0.0  # time.monotonic(); 0: not yet
    delegated = False  # apply_tenant_webhook first (set once, when the pool opens it)


T = TypeVar("T")


class Freshness:
    """The pool's `check`: a round trip only for a connection that may be stale.

    A connection is checked when it has not answered for CHECK_IDLE_SECONDS, or when
    it has not answered since some connection of the pool was found broken (the
    server restarted, a proxy dropped its connections): after a restart, the delivery
    that meets the first dead connection gets 503 and the ones after it are given
    checked or new connections. A statement on a connection that broke anyway fails
    with OperationalError: 503, never an answer without a commit."""

    def __init__(self) -> None:
        self.lost_at = 0.0  # time.monotonic() when a connection was last found broken

    async def check(self, conn: Connection) -> None:
        if conn.answered_at > self.lost_at and (
            time.monotonic() - conn.answered_at < CHECK_IDLE_SECONDS
        ):
            return
        await AsyncConnectionPool.check_connection(conn)
        conn.answered_at = time.monotonic()

    def broken(self) -> None:
        self.lost_at = time.monotonic()

    async def run(self, conn: Connection, work: Callable[[Connection], Awaitable[T]]) -> T:
        """`work` on a pooled connection: when it answered, noted; when it broke, every
        idle connection doubted."""
        try:
            value = await work(conn)
        except psycopg.Error:
            if conn.broken:  # the server went away: doubt the idle ones too
                self.broken()
            raise
        conn.answered_at = time.monotonic()
        return value


class _JsonBody:
    """A body that passed the strict JSON check (valid UTF-8): sent to PostgreSQL as
    the jsonb text it is, without a decode to str, an encode back, or a copy."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _JsonBodyDumper(Dumper):
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: _JsonBody) -> Buffer:
        return obj.data


ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(_JsonBody, _JsonBodyDumper)
# a jsonb answer as the text PostgreSQL wrote, like `::text` (passed on unchanged)
ADAPTERS.register_loader("jsonb", TextLoader)


@dataclass
class Receiver:
    """What the handlers share: built by make_app, the pool added at start-up."""

    config: Config
    verifier: Verifier
    metrics: Metrics
    large_parses: asyncio.Semaphore
    freshness: Freshness
    gate: Gate
    group: GroupCommit | None = None  # OPTIQO_GROUP_COMMIT > 1
    expected_revision: str | None = None
    delegation_logged: bool | None = None  # the last delegation state logged


RECEIVER = web.AppKey("receiver", Receiver)
POOL = web.AppKey("pool", AsyncConnectionPool)


@dataclass(frozen=True)
class Outcome:
    http_status: int
    body: Mapping[str, Any]
    status: str  # for logs and metrics: applied ... refused, unusable, invalid_signature ...
    payload: Mapping[str, Any] | None = None  # the payload's `type` and `tenant_id` only
    close: bool = False  # the rest of the request was not read: close the connection
    detail: str | None = None  # for the log line only
    raw: str | None = None  # `body` as the database wrote it: the answer sent
    path: str | None = None  # which call answered: direct | worker | coordinator


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
    rcv = app[RECEIVER] = Receiver(
        config=config,
        verifier=Verifier(config.secrets, config.timestamp_tolerance),
        metrics=Metrics(),
        large_parses=asyncio.Semaphore(config.large_body_parses),
        freshness=Freshness(),
        gate=Gate(config.pool_max, config.pool_timeout),
        expected_revision=expected_revision,
    )
    if config.group_commit > 1:

        async def work(conn: Connection, group: Sequence[Queued]) -> list[str]:
            return await _apply_group(rcv, conn, group)

        rcv.group = GroupCommit(
            rcv.gate, config.group_commit, config.pool_timeout, work, _rolled_back
        )
        rcv.group.on_group = rcv.metrics.group_size.observe
        rcv.group.on_ungrouped = rcv.metrics.groups_ungrouped.inc
    app.cleanup_ctx.append(_pool_context)
    app.router.add_post(WEBHOOK_PATH, handle_webhook)
    app.router.add_get("/healthz", handle_healthz)
    app.router.add_get("/readyz", handle_readyz)
    app.router.add_get("/metrics", handle_metrics)
    return app


async def _pool_context(app: web.Application) -> AsyncIterator[None]:
    rcv = app[RECEIVER]
    config = rcv.config
    pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
        config.database_url or "",
        connection_class=Connection,
        min_size=config.pool_min,
        max_size=config.pool_max,
        timeout=config.pool_timeout,
        # one statement per delivery, committed when it returns; $1 placeholders
        kwargs={
            "autocommit": True,
            "cursor_factory": psycopg.AsyncRawCursor,
            "context": ADAPTERS,
            "client_encoding": "UTF8",
            "application_name": "optiqoflow-receiver",
        },
        check=rcv.freshness.check,  # a restarted server: no stale sockets
        # Citus: whether deliveries on a new connection take the two-step path
        configure=(
            None
            if config.citus_delegation == "off"
            else _delegation_check(rcv, config.citus_delegation)
        ),
        reconnect_timeout=RECONNECT_TIMEOUT,
        name="optiqoflow",
        open=False,
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


def _pool_stats(pool: AsyncConnectionPool[Connection], rcv: Receiver) -> dict[str, int]:
    """The pool's statistics, deliveries waiting at the gate or for a group counted as
    waiting."""
    stats = pool.get_stats()
    waiting = rcv.gate.waiting
    if rcv.group is not None:  # queued deliveries, not the drainers waiting for them
        waiting += rcv.group.waiting - rcv.group.drainers_at_gate
    stats["requests_waiting"] = stats.get("requests_waiting", 0) + waiting
    return stats


def _delegation_check(rcv: Receiver, mode: str) -> Callable[[Connection], Awaitable[None]]:
    """The pool's `configure`: decide once per new connection whether its deliveries take
    the Citus two-step path (`auto`: apply_tenant_webhook is registered as a Citus
    distributed function there; `on`: always)."""

    async def configure(conn: Connection) -> None:
        if mode == "on":
            conn.delegated = True
            return
        try:
            conn.delegated = await citus.delegation_registered(conn)
        except psycopg.OperationalError:
            raise  # the connection is unusable: the pool discards it and tries again
        except psycopg.Error as e:  # e.g. no right to read Citus's catalog
            conn.delegated = False
            if rcv.delegation_logged is not False:
                log.warning(
                    "cannot tell whether Citus delegates apply_tenant_webhook (%s): "
                    "one apply_webhook call per delivery",
                    _first_line(e),
                )
        if rcv.delegation_logged is not conn.delegated:
            rcv.delegation_logged = conn.delegated
            if conn.delegated:
                log.info(
                    "Citus: apply_tenant_webhook is delegated; deliveries go to the "
                    "tenant's worker first",
                    extra={"fields": {"citus_delegation": True}},
                )

    return configure


# --- POST /api/optiqo-webhook ---------------------------------------------------------


async def handle_webhook(request: web.Request) -> web.Response:
    rcv = request.app[RECEIVER]
    started = time.perf_counter()
    try:
        outcome = await _deliver(request, rcv)
    except Exception:
        log.exception("unexpected error while handling a delivery")
        outcome = Outcome(500, {"error": "internal error"}, "error")
    duration = time.perf_counter() - started
    _account(rcv, request, outcome, duration)
    if outcome.raw is not None:
        response = web.Response(
            text=outcome.raw, status=outcome.http_status, content_type="application/json"
        )
    else:
        headers = {}
        if outcome.http_status == 503:
            headers[hdrs.RETRY_AFTER] = str(rcv.config.retry_after)
        response = web.json_response(outcome.body, status=outcome.http_status, headers=headers)
    if outcome.close:
        response.force_close()
    return response


async def _deliver(request: web.Request, rcv: Receiver) -> Outcome:
    config = rcv.config
    encoding = _coding(request)
    if encoding is not None:
        return Outcome(
            415,
            {"error": f"{encoding} is not accepted: send the body as signed, uncompressed"},
            "unsupported_encoding",
            close=True,
        )
    too_large = Outcome(
        413, {"error": f"body larger than {config.max_body_bytes} bytes"}, "too_large", close=True
    )
    if (request.content_length or 0) > config.max_body_bytes:
        return too_large
    try:
        if request.content.is_eof():  # all of it has arrived: reading it cannot wait
            body = await _read_at_most(request, config.max_body_bytes)
        else:
            async with asyncio.timeout(config.read_timeout):
                body = await _read_at_most(request, config.max_body_bytes)
    except TimeoutError:
        return Outcome(
            408,
            {"error": f"body not received within {config.read_timeout:g} s"},
            "timeout",
            close=True,
        )
    except (ConnectionError, HttpProcessingError):  # the sender hung up, or broke the framing
        return Outcome(400, {"error": "request body incomplete"}, "incomplete", close=True)
    if body is None:
        return too_large

    verdict = rcv.verifier.verify(request.headers, body)
    if not verdict.ok:
        rcv.metrics.signature_failures.labels(verdict.scheme, verdict.reason).inc()
        why = f"{verdict.scheme} scheme: {verdict.reason}"  # logged, never answered
        return Outcome(401, {"error": "invalid signature"}, "invalid_signature", detail=why)

    # signed: from here on every answer is backed by a row in webhook_logs
    try:
        delivery_id = _delivery_id(request.headers)
    except Unusable as unusable:
        return await _record_unusable(request, body, None, unusable)
    if len(body) <= PARSE_IN_THREAD_BYTES:
        try:
            checked = _done(_checked(body))
        except Unusable as unusable:
            return await _record_unusable(request, body, delivery_id, unusable)
        return await _apply(request, body, checked, delivery_id)
    # A large body (a FULL_SYNC batch): the strict check runs in a thread while the
    # database applies the body in an open transaction, which commits only once the
    # check has passed (_apply). Its parsed tree takes ~4x its size: a few at a time.
    async with rcv.large_parses:
        check = _ThreadCheck(body)
        try:
            return await _apply(request, body, check.future, delivery_id, check.start)
        except Unusable as unusable:
            return await _record_unusable(request, body, delivery_id, unusable)
        finally:
            check.start()  # not started when no connection came: the answer still needs it
            await check.finished()  # the tree is gone before the next parse


class _ThreadCheck:
    """The strict check of a large body in a worker thread, started when `start` is first
    called: by _apply once its transaction is open, just before the body is sent. A
    thread started earlier holds the GIL while the event loop takes a connection, opens
    the transaction and sends the body, and delays each of those steps by up to the
    interpreter's switch interval: measured while developing, a 5,000-record work_orders
    batch over HTTP took ~60 ms longer with the thread started first (BENCHMARKS.md)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self._task: asyncio.Future[tuple[dict[str, Any], str | None]] | None = None
        self.future: asyncio.Future[tuple[dict[str, Any], str | None]] = (
            asyncio.get_running_loop().create_future()
        )

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(asyncio.to_thread(_checked, self._body))
            self._task.add_done_callback(self._settle)

    async def finished(self) -> None:
        """Wait for the thread (not only for the future, which a cancelled delivery may
        have cancelled): its parsed tree is then gone."""
        if self._task is not None:
            await asyncio.wait([self._task])
        if self.future.done() and not self.future.cancelled():
            self.future.exception()  # retrieved: no asyncio warning for a refusal seen above

    def _settle(self, task: asyncio.Future[tuple[dict[str, Any], str | None]]) -> None:
        if self.future.done():  # cancelled with its delivery
            if not task.cancelled():
                task.exception()  # retrieved
        elif task.cancelled():
            self.future.cancel()
        elif (error := task.exception()) is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(task.result())


def _done(value: T) -> asyncio.Future[T]:
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


def _checked(body: bytes) -> tuple[dict[str, Any], str | None]:
    """Strict JSON check of the body; what the log line needs of the payload, and the
    tenant it names (canonical; the Citus path routes by it). The database gets the
    body's bytes, so the parsed tree is dropped right here."""
    payload = parse_payload(body)
    labels = {key: _label(payload.get(key)) for key in ("type", "tenant_id")}
    return labels, citus.payload_tenant(payload)


def _coding(request: web.Request) -> str | None:
    """A content or transfer coding that compresses the body, if the request has one."""
    for header, plain in (
        (hdrs.CONTENT_ENCODING, ("identity",)),
        (hdrs.TRANSFER_ENCODING, ("identity", "chunked")),
    ):
        for value in request.headers.getall(header, []):
            for token in (t.strip() for t in value.lower().split(",")):
                if token and token not in plain:
                    return f"{header} {token!r}"
    return None


async def _read_at_most(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it grows past `limit` bytes."""
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _delivery_id(headers: MultiMapping[str]) -> str | None:
    """`webhook-id`, else `x-webhook-id`, else None; a malformed one is Unusable (400)."""
    name, values = _delivery_id_header(headers)
    if not values:
        return None
    value = values[0]
    # isprintable() also refuses the surrogates aiohttp makes of non-UTF-8 bytes
    if len(values) > 1 or not 0 < len(value) <= MAX_DELIVERY_ID_CHARS or not value.isprintable():
        raise Unusable(
            f"malformed {name} header (once, 1 to {MAX_DELIVERY_ID_CHARS} printable characters)"
        )
    return value


def _delivery_id_header(headers: MultiMapping[str]) -> tuple[str, list[str]]:
    """The header that names the delivery, and its values (none when no header does)."""
    for name in DELIVERY_ID_HEADERS:
        if values := headers.getall(name, []):
            return name, values
    return DELIVERY_ID_HEADERS[-1], []


async def _apply(
    request: web.Request,
    body: bytes,
    check: asyncio.Future[tuple[dict[str, Any], str | None]],
    delivery_id: str | None,
    start_check: Callable[[], None] = lambda: None,
) -> Outcome:
    """Apply a signed body whose strict JSON check (`check`: payload labels and tenant,
    or Unusable) has finished, or runs in a thread once `start_check` is called. Raises
    Unusable when the check refuses the body; then nothing of it was committed."""
    rcv = request.app[RECEIVER]
    jsonb = _JsonBody(body)

    async def apply(conn: Connection) -> tuple[Any, str]:
        if not check.done() and not conn.delegated:
            # being checked: the one call inside a transaction that commits only when
            # the check passed; an Unusable raised here rolls it back
            async with conn.transaction():
                start_check()  # now, so that the thread does not slow the steps before
                text = await _first_value(conn, APPLY_SQL, (jsonb, delivery_id))
                await check
            return text, "direct"
        start_check()
        _, tenant = await check
        if conn.delegated and tenant is not None:
            return await _apply_delegated(conn, tenant, jsonb, delivery_id)
        # the one call (CONTRACT section 1); on Citus also a payload without a tenant
        text = await _first_value(conn, APPLY_SQL, (jsonb, delivery_id))
        return text, ("coordinator" if conn.delegated else "direct")

    try:
        grouped = await _grouped(rcv, body, check, delivery_id)
        if grouped is not None:
            text, path = grouped
        else:
            text, path = await _call(request.app[POOL], rcv, apply)
    except psycopg.Error as e:
        start_check()
        await check  # a body the check refuses is answered as such, whatever the database said
        if e.sqlstate in UNSTORABLE_STATES:
            reason = f"PostgreSQL cannot store the body as jsonb: {e.diag.message_primary}"
            return await _record_unusable(request, body, delivery_id, Unusable(reason, 422))
        return _database_fault(e)
    payload, _ = await check
    try:
        answer = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        answer = text
    if not isinstance(answer, dict) or answer.get("status") not in HTTP_STATUS:
        detail = f"apply_webhook answered something unexpected: {answer!r:.300}"
        return Outcome(500, {"error": "internal error"}, "error", payload, detail=detail, path=path)
    status = answer["status"]
    return Outcome(HTTP_STATUS[status], answer, status, payload, raw=text, path=path)


async def _grouped(
    rcv: Receiver,
    body: bytes,
    check: asyncio.Future[tuple[dict[str, Any], str | None]],
    delivery_id: str | None,
) -> tuple[str, str] | None:
    """Group commit: a checked real-time delivery is queued, and applied with the others
    queued beside it, or alone when none are (receiver.groupcommit); its answer and
    "grouped". None: apply it on its own (no group commit, not a real-time event, or its
    group could not be applied as one)."""
    group = rcv.group
    if group is None or not check.done():
        return None
    labels, _ = check.result()
    if str(labels.get("type") or "").upper() not in REAL_TIME:
        return None
    try:
        return await group.apply(body, delivery_id), "grouped"
    except Ungrouped:
        return None


async def _apply_group(rcv: Receiver, conn: Connection, group: Sequence[Queued]) -> list[str]:
    """The answers (as text, in order) of queued deliveries applied on `conn` in one
    call and one commit: one alone is the contract's apply_webhook call, more are one
    apply_webhook_group call. Raises on any error: the group then goes one by one when
    nothing of it can have committed (_rolled_back), else the error is every member's."""
    if conn.delegated:
        raise Ungrouped("Citus: a delegated connection applies one delivery at a time")

    async def call(conn: Connection) -> list[str]:
        if len(group) == 1:
            alone = group[0]
            return [await _first_value(conn, APPLY_SQL, (_JsonBody(alone.body), alone.delivery_id))]
        bodies = _JsonBody(b"[" + b",".join(q.body for q in group) + b"]")
        cursor = await conn.execute(GROUP_SQL, (bodies, [q.delivery_id for q in group]))
        return [answer for _, answer in sorted(await cursor.fetchall())]

    return await rcv.freshness.run(conn, call)


def _rolled_back(e: BaseException) -> bool:
    """Whether a failed group call certainly committed nothing: PostgreSQL reported an
    error (a SQLSTATE), so its one autocommit statement was rolled back; or it was never
    sent. A lost connection leaves it open: no member is applied again then."""
    return isinstance(e, Ungrouped) or (isinstance(e, psycopg.Error) and e.sqlstate is not None)


async def _apply_delegated(
    conn: Connection, tenant: str, jsonb: _JsonBody, delivery_id: str | None
) -> tuple[Any, str]:
    """Citus: apply_tenant_webhook, run by the worker that owns `tenant` in one round
    trip (autocommit: Citus delegates only a call made outside a transaction block);
    when it answers coordinator_required (it wrote nothing), apply_webhook on the
    coordinator. Returns (the answer as text, "worker" | "coordinator")."""
    text = await _first_value(conn, APPLY_TENANT_SQL, (tenant, jsonb, delivery_id))
    if not citus.is_coordinator_required(text):
        return text, "worker"
    return await _first_value(conn, APPLY_SQL, (jsonb, delivery_id)), "coordinator"


async def _record_unusable(
    request: web.Request,
    body: bytes,
    delivery_id: str | None,
    unusable: Unusable,
) -> Outcome:
    try:
        log_id = await _call(
            request.app[POOL],
            request.app[RECEIVER],
            _one_value(UNUSABLE_SQL, (body, delivery_id, unusable.reason)),
        )
    except psycopg.Error as e:
        return _database_fault(e)
    return Outcome(unusable.status, {"error": unusable.reason, "log_id": log_id}, "unusable")


async def _first_value(conn: Connection, query: str, params: tuple[Any, ...]) -> Any:
    """One statement on `conn`: the first value of its first row (None without a row)."""
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return row[0] if row else None


def _one_value(query: str, params: tuple[Any, ...]) -> Callable[[Connection], Awaitable[Any]]:
    """A single-statement call for _call: its first value."""

    async def run(conn: Connection) -> Any:
        return await _first_value(conn, query, params)

    return run


async def _call(
    pool: AsyncConnectionPool[Connection],
    rcv: Receiver,
    work: Callable[[Connection], Awaitable[T]],
) -> T:
    """Run `work` (autocommit statements, each committed when it returns) on a pooled
    connection, taken through the gate; its value.

    A serialization failure or deadlock rolled the statement back: retried a few times
    after a short jittered pause, without holding a connection meanwhile."""
    attempt = 0
    while True:
        try:
            await rcv.gate.acquire()
            try:
                async with pool.connection() as conn:
                    value = await rcv.freshness.run(conn, work)
            finally:
                rcv.gate.release()
            return value
        except psycopg.Error as e:
            if e.sqlstate not in RETRY_STATES or attempt >= RETRIES:
                raise
        attempt += 1
        await asyncio.sleep(0.01 * 2**attempt * random.uniform(0.5, 1.5))


def _database_fault(e: psycopg.Error) -> Outcome:
    detail = f"{e.sqlstate or e.__class__.__name__}: {_first_line(e)}"
    if is_transient(e):
        return Outcome(
            503, {"error": "database unavailable, retry later"}, "unavailable", detail=detail
        )
    log.error("database error %s", detail, exc_info=e)
    return Outcome(500, {"error": "internal error"}, "error", detail=detail)


def is_transient(e: psycopg.Error) -> bool:
    """A fault that a later retry of the same delivery can get past."""
    state = e.sqlstate
    if state is None:  # no answer from a server: connect failed, pool timeout, lost socket
        return isinstance(e, psycopg.OperationalError)
    return state[:2] in TRANSIENT_CLASSES or state in TRANSIENT_STATES


def _first_line(e: BaseException) -> str:
    return str(e).split("\n", 1)[0][:300]


def _account(rcv: Receiver, request: web.Request, outcome: Outcome, duration: float) -> None:
    """One metrics update and one structured log line per delivery (never the body)."""
    answer, payload = outcome.body, outcome.payload or {}
    table = _label(answer.get("table"))
    operation = payload.get("type") if payload.get("type") in OPERATIONS else None
    rcv.metrics.delivered(table or "", operation or "", outcome.status, duration)
    if outcome.path is not None:
        rcv.metrics.routed(outcome.path)
    fields: dict[str, Any] = {
        "event": "delivery",
        "status": outcome.status,
        "http_status": outcome.http_status,
        "table": table,
        "operation": operation,
        "tenant": _label(answer.get("tenant_id")) or _label(payload.get("tenant_id")),
        "rows": answer.get("rows"),
        "log_id": answer.get("log_id"),
        "sqlstate": answer.get("sqlstate"),
        "path": outcome.path,
        "delivery_id": _label(next(iter(_delivery_id_header(request.headers)[1]), None)),
        "bytes": request.content_length,
        "duration_ms": round(duration * 1000, 2),
    }
    if outcome.http_status >= 400:
        fields["error"] = outcome.detail or str(answer.get("error", ""))[:300]
    if outcome.http_status == 503:
        level = logging.WARNING
    else:
        level = logging.ERROR if outcome.http_status >= 500 else logging.INFO
    log.log(level, "delivery %s", outcome.status, extra={"fields": fields})


def _label(value: Any) -> str | None:
    """A short printable string from a payload or answer, else None (logs, metrics)."""
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


# --- GET /healthz, /readyz, /metrics --------------------------------------------------


async def handle_healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def handle_readyz(request: web.Request) -> web.Response:
    rcv = request.app[RECEIVER]
    try:
        expected = rcv.expected_revision or _head_revision()
    except Exception:
        log.exception("cannot determine the migrations' head revision")
        return web.json_response({"status": "not ready", "reason": "no head revision"}, status=503)
    rcv.expected_revision = expected
    try:
        async with request.app[POOL].connection(
            timeout=min(READY_TIMEOUT, rcv.config.pool_timeout)
        ) as conn:
            cursor = await conn.execute(READY_SQL)
            found = sorted(str(row[0]) for row in await cursor.fetchall())
            conn.answered_at = time.monotonic()
    except psycopg.errors.UndefinedTable:
        found = []
    except psycopg.Error as e:
        reason = f"database unreachable: {e.sqlstate or e.__class__.__name__}"
        return web.json_response({"status": "not ready", "reason": reason}, status=503)
    if found != [expected]:
        return web.json_response(
            {
                "status": "not ready",
                "reason": "database not migrated to head",
                "database_revision": found,
                "expected_revision": expected,
            },
            status=503,
        )
    return web.json_response({"status": "ready", "revision": expected})


def _head_revision() -> str:
    from receiver.migrate import head_revision  # alembic: loaded on first use only

    return head_revision()


async def handle_metrics(request: web.Request) -> web.Response:
    data = generate_latest(request.app[RECEIVER].metrics.registry)
    return web.Response(body=data, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE_LATEST})


# --- optiqoflow serve -----------------------------------------------------------------


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; a record's `fields` (extra=) are merged in."""

    _encode = json.JSONEncoder(default=str).encode  # json.dumps(..., default=str), built once

    def __init__(self) -> None:
        super().__init__()
        self._second = -1  # the whole second whose text is in _second_text
        self._second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`,
        the date and time formatted once a second."""
        second = int(record.created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return self._encode(line)


def redacted(dsn: str) -> str:
    """A connection string fit for a log: the password replaced."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "(unparsable connection string)"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **params)


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def serve(config: Config, host: str, port: int) -> None:
    """Run the receiver until SIGTERM/SIGINT.

    Without DATABASE_URL: start the embedded PostgreSQL (data in OPTIQOFLOW_DATA_DIR,
    kept across restarts), migrate it to head, and stop it again on the way out. With
    DATABASE_URL the database is served as it is: migrating it is `optiqoflow migrate`'s
    job, with a role that may run DDL; /readyz says 503 until it is at head."""
    from receiver.embedded import EmbeddedPostgres, start_embedded

    # before aiohttp installs its own handlers: SIGTERM must still run the finally below
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    embedded: EmbeddedPostgres | None = None
    try:
        dsn = config.database_url
        if dsn is None:
            from receiver import migrate  # alembic is only needed here

            pgdata = (config.data_dir / "pgdata").resolve()
            already_running = EmbeddedPostgres(pgdata, 0).is_running()
            server = start_embedded(pgdata)
            embedded = None if already_running else server  # not ours to stop otherwise
            dsn = server.dsn
            log.info(
                "embedded PostgreSQL ready at %s (psql '%s'), data in %s",
                dsn,
                dsn,
                pgdata,
                extra={"fields": {"dsn": dsn, "data_dir": str(pgdata)}},
            )
            migrate.upgrade(dsn)
            log.info("embedded PostgreSQL migrated to head")
        else:
            log.info("database %s", redacted(dsn), extra={"fields": {"dsn": redacted(dsn)}})
        log.info("receiver listening on http://%s:%d%s", host, port, WEBHOOK_PATH)
        web.run_app(
            make_app(replace(config, database_url=dsn)),
            host=host,
            port=port,
            print=None,
            handle_signals=True,
            **runner_options(config),
        )
        log.info("receiver stopped")
    finally:
        if embedded is not None:
            embedded.stop()
            log.info("embedded PostgreSQL stopped")


def _serve_command(args: argparse.Namespace) -> int:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    try:
        config = Config.from_env(os.environ)
    except ConfigError as e:
        print(f"optiqoflow serve: {e}", file=sys.stderr)
        return 2
    serve(config, args.host, args.port)
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the webhook receiver",
        description="Run the webhook receiver (POST /api/optiqo-webhook).",
        epilog="environment:\n"
        + "\n".join(
            f"  {v.name} (default {v.default})\n      {v.description}" for v in ENVIRONMENT
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    p.set_defaults(func=_serve_command)
