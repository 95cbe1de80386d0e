"""Group commit: several real-time deliveries in one database call and one commit.

GroupCommit (OPTIQO_GROUP_COMMIT > 1, docs/group-commit.md): real-time deliveries join
a queue instead of each waiting for a connection of its own. A drainer holding one
connection takes up to OPTIQO_GROUP_COMMIT queued deliveries, in arrival order, and
applies them in one call, optiqoflow.apply_webhook_group, and one commit (one alone: the
contract's apply_webhook call); it repeats while deliveries are queued. A new drainer
starts only for deliveries that the drainers already starting will not take, so
deliveries that arrive while the database is busy wait together and go in one group.
With no connection free, that drainer waits at the gate in arrival order like any other
call, so the queue keeps its turn beside FULL_SYNC batches and envelopes. Each delivery still gets exactly the answer, and leaves exactly the rows, that
its own apply_webhook call would have, and is answered only after its group's commit.
Under load this shares the per-call and per-commit cost (a round trip that wakes a
backend, a transaction, a WAL flush) among the group, as PostgreSQL's own group commit
shares a flush. A group that the database refused as a whole (any error PostgreSQL
reported: its statement was rolled back), a Citus-delegated connection, or no connection
is answered Ungrouped: each of its deliveries is then applied on its own, with the usual
retries and answers. An error that leaves open whether the group committed (the
connection lost during the call) is every member's answer, as it would be alone: 503.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from receiver.database import APPLY_SQL, Connection, Freshness, Gate, JsonBody, first_value

# queued deliveries, $1 a JSON array of their bodies
GROUP_SQL = "SELECT n, answer FROM optiqoflow.apply_webhook_group($1::jsonb, $2::text[])"
REAL_TIME = ("INSERT", "UPDATE", "DELETE")  # the types a group may hold


class Ungrouped(Exception):
    """This delivery was not applied in a group: apply it alone."""


@dataclass(eq=False, slots=True)
class Queued:
    """A delivery waiting for a group: its checked body and delivery id."""

    body: bytes
    delivery_id: str | None
    future: asyncio.Future[str]
    timer: asyncio.TimerHandle | None = field(default=None)


# (a connection, the group) -> each delivery's answer as text, in the group's order
GroupWork = Callable[[Any, Sequence[Queued]], Awaitable[list[str]]]


class GroupCommit:
    """The queue of real-time deliveries waiting for a connection, drained in groups."""

    def __init__(
        self,
        gate: Gate,
        limit: int,
        timeout: float,
        work: GroupWork,
        rolled_back: Callable[[BaseException], bool],
    ) -> None:
        self._gate = gate
        self._limit = limit
        self._timeout = timeout
        self._work = work
        self._rolled_back = rolled_back  # whether an error of `work` proves nothing committed
        self._queue: deque[Queued] = deque()
        self._starting = 0  # drainers started that have not taken their first group yet
        self._at_gate = 0  # drainers waiting at the gate for a slot
        self._drainers: set[asyncio.Task[None]] = set()
        self.pool: AsyncConnectionPool[Any] | None = None  # set when the pool opens
        self.on_group: Callable[[int], None] | None = None  # a group of n was applied
        self.on_ungrouped: Callable[[], None] | None = None  # a group went one by one
        gate.on_free = self._kick

    @property
    def waiting(self) -> int:
        """Deliveries in the queue."""
        return len(self._queue)

    @property
    def drainers_at_gate(self) -> int:
        """Drainers (not deliveries) waiting at the gate for a slot."""
        return self._at_gate

    async def apply(self, body: bytes, delivery_id: str | None) -> str:
        """Queue the delivery; its answer (as text) once its group has committed.
        Raises Ungrouped (apply it alone), PoolTimeout (queued past the pool timeout,
        503), or the error that left open whether its group committed."""
        loop = asyncio.get_running_loop()
        queued = Queued(body, delivery_id, loop.create_future())
        queued.timer = loop.call_later(self._timeout, self._expire, queued)
        self._queue.append(queued)
        self._kick()
        return await queued.future

    def _expire(self, queued: Queued) -> None:
        if queued.future.done():
            return
        try:
            self._queue.remove(queued)
        except ValueError:
            return  # taken into a group meanwhile: its answer comes with the commit
        queued.future.set_exception(PoolTimeout(f"no connection free within {self._timeout:g} s"))

    def _kick(self) -> None:
        """Start a drainer for queued deliveries that the starting ones will not take: on a
        free slot, else waiting at the gate for one, in turn with every other call."""
        while self._queue and self._starting * self._limit < len(self._queue):
            self._starting += 1
            task = asyncio.ensure_future(self._drain(self._gate.try_acquire()))
            self._drainers.add(task)
            task.add_done_callback(self._drainers.discard)

    def _take(self, limit: int | None = None) -> list[Queued]:
        """Up to `limit` (default: a group's size) queued deliveries, oldest first."""
        limit = self._limit if limit is None else limit
        group: list[Queued] = []
        while self._queue and len(group) < limit:
            queued = self._queue.popleft()
            if queued.future.done():
                continue
            if queued.timer is not None:
                queued.timer.cancel()
            group.append(queued)
        return group

    async def _drain(self, slot: bool) -> None:
        """Hold one slot (taken, or waited for when `slot` is false) and one connection
        while groups are queued: take up to `limit` deliveries, apply them as one group,
        repeat; then give both back."""
        started = True
        if not slot:
            self._at_gate += 1
            try:
                await self._gate.acquire()
            except PoolTimeout:
                self._starting -= 1  # the queued deliveries expire on their own timers
                return
            except BaseException:
                self._starting -= 1
                raise
            finally:
                self._at_gate -= 1
        try:
            if self.pool is None:
                raise PoolTimeout("the receiver's pool is not open")
            async with self.pool.connection() as conn:
                while True:
                    group = self._take()
                    if started:
                        self._starting -= 1
                        started = False
                        self._kick()  # more queued than this group holds: another drainer
                    if not group:
                        break
                    await self._apply(conn, group)
                    if conn.broken or self._gate.waiting > self._at_gate:
                        break  # a lost connection; or another call waits: its turn
        except Exception:
            # no connection: each queued delivery tries on its own (and gets its own 503)
            if self._queue and self.on_ungrouped is not None:
                self.on_ungrouped()
            for queued in self._take(len(self._queue)):
                queued.future.set_exception(Ungrouped())
        finally:
            if started:
                self._starting -= 1
            self._gate.release()

    async def _apply(self, conn: Any, group: list[Queued]) -> None:
        try:
            answers = await self._work(conn, group)
            if len(answers) != len(group):
                raise ValueError(f"{len(answers)} answers for a group of {len(group)}")
        except asyncio.CancelledError:  # the receiver stops: whether it committed is unknown
            self._fail(group, PoolTimeout("the receiver stopped while the group was applied"))
            raise
        except Exception as e:
            if self._rolled_back(e):  # nothing committed: each goes on alone
                if self.on_ungrouped is not None:
                    self.on_ungrouped()
                self._fail(group, Ungrouped())
            else:
                self._fail(group, e)
            return
        if self.on_group is not None:
            self.on_group(len(group))
        for queued, answer in zip(group, answers, strict=True):
            if not queued.future.done():
                queued.future.set_result(answer)

    @staticmethod
    def _fail(group: list[Queued], error: BaseException) -> None:
        for queued in group:
            if not queued.future.done():
                queued.future.set_exception(error)


def joins(group: GroupCommit | None, operation: str | None) -> bool:
    """Whether a delivery of this `type` goes through group commit."""
    return group is not None and str(operation or "").upper() in REAL_TIME


def rolled_back(e: BaseException) -> bool:
    """Whether a failed group call certainly committed nothing: PostgreSQL reported an
    error (a SQLSTATE), so its one autocommit statement was rolled back; or it was never
    sent. A lost connection leaves it open: no member is applied again then."""
    return isinstance(e, Ungrouped) or (isinstance(e, psycopg.Error) and e.sqlstate is not None)


def apply_group(freshness: Freshness) -> GroupWork:
    """The work of a drainer: the answers (as text, in order) of queued deliveries
    applied on one connection in one call and one commit: one alone is the plain
    apply_webhook call, more are one apply_webhook_group call. Raises on any error: the
    group then goes one by one when nothing of it can have committed (`rolled_back`),
    else the error is every member's."""

    async def work(conn: Connection, group: Sequence[Queued]) -> list[str]:
        if conn.delegated:
            raise Ungrouped("Citus: a delegated connection applies one delivery at a time")

        async def call(conn: Connection) -> list[str]:
            if len(group) == 1:
                alone = group[0]
                return [await first_value(conn, APPLY_SQL, (JsonBody(alone.body), alone.delivery_id))]
            bodies = JsonBody(b"[" + b",".join(q.body for q in group) + b"]")
            cursor = await conn.execute(GROUP_SQL, (bodies, [q.delivery_id for q in group]))
            return [answer for _, answer in sorted(await cursor.fetchall())]

        return await freshness.run(conn, call)

    return work
