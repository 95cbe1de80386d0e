"""Lanes: at most a share of the pool for the deliveries to any one table.

A delivery that waits for a lock (a table a dashboard session locked in ACCESS
EXCLUSIVE mode, a row another session holds FOR UPDATE) keeps its connection until the
lock timeout. Deliveries to that table that arrive meanwhile would each take another
connection, until the pool is empty and every tenant's deliveries get 503. A lane per
table (the payload's `table`) lets at most `OPTIQO_TABLE_CONNECTIONS` deliveries to it
hold or wait for a connection at once; the others wait in the lane, first come first
served, within the pool timeout (one budget for the lanes and the gate), then get 503
with Retry-After. However long a table
stays locked, the rest of the pool keeps serving the other tables.

A lock can also hold up one tenant only (a row of its held FOR UPDATE): each tenant of a
table has a lane of half the table's share too, taken before the table's, so a stuck
tenant's deliveries hold at most that many of the table's places and its waiting ones
none; the table's other tenants keep the rest.

Lanes exist only while deliveries use them, so a sender cannot grow this map beyond the
deliveries in flight.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from psycopg_pool import PoolTimeout

from receiver.database import Gate


class Lanes:
    """One `Gate` of `size` places per table name, made on first use and dropped when
    its last delivery leaves."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self._timeout = timeout
        self._lanes: dict[str, tuple[Gate, int]] = {}  # table -> (its gate, deliveries using it)

    def __len__(self) -> int:
        return len(self._lanes)

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a place in their table's lane (metrics: requests_waiting)."""
        return sum(gate.waiting for gate, _ in self._lanes.values())

    @contextlib.asynccontextmanager
    async def lane(self, table: str | None, deadline: float | None = None) -> AsyncIterator[None]:
        """Hold a place in `table`'s lane (None: the lane of payloads that name no
        table) for the body of the `async with`; PoolTimeout when none came within the
        timeout, or by `deadline` (the event loop's time) when given."""
        key = table or ""
        gate, users = self._lanes.get(key) or (Gate(self.size, self._timeout), 0)
        self._lanes[key] = (gate, users + 1)
        try:
            try:
                await gate.acquire(deadline)
            except PoolTimeout:
                raise PoolTimeout(
                    f"{self.size} deliveries to table {key or '(none)'!r} already hold or wait "
                    f"for a connection; no place in its lane within {self._timeout:g} s"
                ) from None
            try:
                yield
            finally:
                gate.release()
        finally:
            gate, users = self._lanes[key]
            if users == 1:
                del self._lanes[key]
            else:
                self._lanes[key] = (gate, users - 1)
