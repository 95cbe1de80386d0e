"""The receiver's pool hands out the most recently returned idle connection first
(receiver.database.NewestFirst), so deliveries that arrive one at a time meet the same
warm backend rather than each pooled connection in turn."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from receiver.database import Connection, Freshness, make_pool


async def _pool(dsn: str, size: int) -> AsyncConnectionPool[Connection]:
    pool = make_pool(dsn, min_size=size, max_size=size, timeout=5, freshness=Freshness(),
                     configure=None)
    await pool.open(wait=True)
    return pool


async def test_one_delivery_at_a_time_meets_the_same_backend(db_dsn: str) -> None:
    pool = await _pool(db_dsn, 4)
    try:
        pids = []
        for _ in range(8):
            async with pool.connection() as conn:
                pids.append(conn.info.backend_pid)
        assert len(set(pids)) == 1, pids  # taking turns would have used all four
    finally:
        await pool.close()


async def test_the_connection_returned_last_is_handed_out_first(db_dsn: str) -> None:
    pool = await _pool(db_dsn, 3)
    try:
        a = await pool.getconn()
        b = await pool.getconn()
        await pool.putconn(a)
        await pool.putconn(b)
        c = await pool.getconn()
        assert c is b
        d = await pool.getconn()
        assert d is a
        await pool.putconn(c)
        await pool.putconn(d)
        assert pool.get_stats()["pool_available"] == 3  # none lost
    finally:
        await pool.close()
