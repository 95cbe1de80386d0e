"""The database side of a delivery: the pool, its connections, and the one call.

Every statement runs on an autocommit connection, so the one call of a delivery is
committed when it returns. Deliveries wait for a connection at the `Gate`, in arrival
order, for at most the pool timeout. `call` runs a piece of work on a pooled connection
and retries it a few times when PostgreSQL rolled it back for a serialization failure or
a deadlock; every other error goes to `receiver.answers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
from psycopg.adapt import AdaptersMap, Buffer, Dumper
from psycopg.types.string import TextLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

# the answer as text: passed on to the sender unchanged, parsed once for the log line
APPLY_SQL = "SELECT optiqoflow.apply_webhook($1::jsonb, $2)::text"
UNUSABLE_SQL = "SELECT optiqoflow.record_unusable_delivery($1::bytea, $2, $3)"
READY_SQL = "SELECT version_num FROM public.alembic_version"

RETRY_STATES = ("40001", "40P01")  # rolled back: retried here first
RETRIES = 3
# psycopg_pool backs off exponentially while the database is down, up to this many
# seconds, then starts afresh on the next request: so once the database is back,
# deliveries resume within a few seconds, not after a minute of backoff
RECONNECT_TIMEOUT = 5.0
# A connection that answered less than this many seconds ago is handed out without a
# round trip to check it (a busy receiver never pays for the check); older ones, and
# every one that was idle when another connection was found broken, are checked first.
CHECK_IDLE_SECONDS = 2.0

T = TypeVar("T")


class Connection(psycopg.AsyncConnection[Any]):
    """A pooled connection that remembers when it last answered, and whether deliveries
    on it take the Citus two-step path (OPTIQO_CITUS_DELEGATION)."""

    answered_at = 0.0  # time.monotonic(); 0: not yet
    delegated = False  # apply_tenant_webhook first (set once, when the pool opens it)


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



class Gate:
    """A counting gate of the pool's size, first come first served, with a timeout."""

    def __init__(self, size: int, timeout: float) -> None:
        self._free = size
        self._timeout = timeout
        self._waiters: deque[asyncio.Future[None]] = deque()
        # called when a slot comes free and nobody waits here (group commit's queue)
        self.on_free: Callable[[], None] | None = None

    @property
    def waiting(self) -> int:
        """Deliveries waiting here (metrics: requests_waiting)."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody waits for it."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self, deadline: float | None = None) -> None:
        """Take a slot, waiting in turn until the gate's timeout from now, or until
        `deadline` (the event loop's time) when given: PoolTimeout then."""
        if self.try_acquire():  # a connection is free: no wait, no timer
            return
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(loop.time() + self._timeout if deadline is None else deadline):
                await waiter
        except BaseException as e:
            if waiter.done() and not waiter.cancelled():
                if isinstance(e, TimeoutError):
                    return  # the slot was handed over just as the time ran out: keep it
                self.release()  # handed over as this delivery was cancelled: pass it on
                raise
            waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)
            if isinstance(e, TimeoutError):
                raise PoolTimeout(f"no connection free within {self._timeout:g} s") from None
            raise

    def release(self) -> None:
        """Hand the slot to the first waiter, else free it (and tell on_free)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
        if self.on_free is not None:
            self.on_free()



class JsonBody:
    """A body that passed the strict JSON check (valid UTF-8): sent to PostgreSQL as
    the jsonb text it is, without a decode to str, an encode back, or a copy."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _JsonBodyDumper(Dumper):
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: JsonBody) -> Buffer:
        return obj.data


ADAPTERS = AdaptersMap(psycopg.adapters)
ADAPTERS.register_dumper(JsonBody, _JsonBodyDumper)
# a jsonb answer as the text PostgreSQL wrote, like `::text` (passed on unchanged)
ADAPTERS.register_loader("jsonb", TextLoader)


class NewestFirst(deque[Any]):
    """The pool's idle connections, the most recently returned handed out first.

    psycopg_pool returns a connection at the right of its deque and takes one from the
    left: its connections take turns, so a delivery usually meets a backend that has not
    run our functions for a while, or ever (a new backend's first FULL_SYNC batch of a
    table costs ~80 ms more than its next: the functions' plans and the table's catalog
    entries are not cached yet). Taken from the right instead, the few backends that
    suffice for the load serve it, warm, and the others stay idle until the pool closes
    them (max_idle), as PgBouncer serves by default (server_round_robin = 0). Under
    full load every connection is busy anyway: nothing changes there. psycopg_pool's
    shrinking takes from the same end, so the connection it closes (one per max_idle,
    ten minutes, while more than OPTIQO_POOL_MIN are open) is the newest idle one: the
    next delivery after that may meet a cold backend once."""

    def popleft(self) -> Any:
        return self.pop()


def make_pool(
    dsn: str,
    *,
    min_size: int,
    max_size: int,
    timeout: float,
    freshness: Freshness,
    configure: Callable[[Connection], Awaitable[None]] | None,
    lock_timeout: float = 5.0,
) -> AsyncConnectionPool[Connection]:
    """The receiver's pool (not open yet): autocommit connections, $1 placeholders, and
    every lock wait bounded by `lock_timeout` seconds (then 55P03: 503); an idle
    connection is handed out most recently used first (NewestFirst)."""
    bound = f"SET lock_timeout = {max(1, round(lock_timeout * 1000))}"  # milliseconds

    async def prepare(conn: Connection) -> None:
        # a statement, not a startup option: connection poolers refuse unknown options
        await conn.execute(bound)
        if configure is not None:
            await configure(conn)

    pool = AsyncConnectionPool(
        dsn,
        connection_class=Connection,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        kwargs={
            "autocommit": True,
            "cursor_factory": psycopg.AsyncRawCursor,
            "context": ADAPTERS,
            "client_encoding": "UTF8",
            "application_name": "optiqoflow-receiver",
        },
        check=freshness.check,  # a restarted server: no stale sockets
        configure=prepare,
        reconnect_timeout=RECONNECT_TIMEOUT,
        name="optiqoflow",
        open=False,
    )
    # psycopg_pool has no option for this; tests/http/test_pool_order.py proves it holds
    pool._pool = NewestFirst()
    return pool


async def first_value(conn: Connection, query: str, params: tuple[Any, ...]) -> Any:
    """One statement on `conn`: the first value of its first row (None without a row)."""
    cursor = await conn.execute(query, params)
    row = await cursor.fetchone()
    return row[0] if row else None


def one_value(query: str, params: tuple[Any, ...]) -> Callable[[Connection], Awaitable[Any]]:
    """A single-statement piece of work for `call`: its first value."""

    async def run(conn: Connection) -> Any:
        return await first_value(conn, query, params)

    return run


async def call(
    pool: AsyncConnectionPool[Connection],
    gate: Gate,
    freshness: Freshness,
    work: Callable[[Connection], Awaitable[T]],
    deadline: float | None = None,
) -> T:
    """Run `work` (autocommit statements, each committed when it returns) on a pooled
    connection, taken through the gate; its value.

    A serialization failure or deadlock rolled the statement back: retried a few times
    after a short jittered pause, without holding a connection meanwhile."""
    attempt = 0
    while True:
        try:
            await gate.acquire(deadline)
            try:
                async with pool.connection() as conn:
                    value = await freshness.run(conn, work)
            finally:
                gate.release()
            return value
        except psycopg.Error as e:
            if e.sqlstate not in RETRY_STATES or attempt >= RETRIES:
                raise
        attempt += 1
        await asyncio.sleep(0.01 * 2**attempt * random.uniform(0.5, 1.5))
