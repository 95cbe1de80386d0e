"""The gate where deliveries wait for a connection (receiver.database.Gate): first come
first served, a wait past the pool timeout is PoolTimeout (503), and no slot is ever lost
to a timeout or a cancellation."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from receiver.database import Gate


async def _holds(gate: Gate, order: list[int], n: int, hold: asyncio.Event) -> None:
    await gate.acquire()
    order.append(n)
    await hold.wait()
    gate.release()


async def test_waiters_are_served_in_arrival_order() -> None:
    gate = Gate(1, timeout=5)
    order: list[int] = []
    hold = asyncio.Event()
    tasks = [asyncio.ensure_future(_holds(gate, order, n, hold)) for n in range(5)]
    await asyncio.sleep(0.01)
    assert order == [0] and gate.waiting == 4
    hold.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4] and gate.waiting == 0
    assert gate.try_acquire() and not gate.try_acquire()  # the one slot is back


async def test_a_wait_past_the_timeout_is_a_pool_timeout_and_leaves_no_trace() -> None:
    gate = Gate(1, timeout=0.05)
    await gate.acquire()
    with pytest.raises(PoolTimeout):
        await gate.acquire()
    assert gate.waiting == 0
    gate.release()
    assert gate.try_acquire()


async def test_a_slot_handed_to_a_cancelled_waiter_is_passed_on() -> None:
    gate = Gate(1, timeout=5)
    await gate.acquire()
    first = asyncio.ensure_future(gate.acquire())
    second = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.01)
    gate.release()  # handed to `first` ...
    first.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)  # the slot went on to `second`
    gate.release()
    assert gate.try_acquire() and not gate.try_acquire()


async def test_a_freed_slot_is_announced_only_when_nobody_waits() -> None:
    gate = Gate(1, timeout=5)
    announced: list[int] = []
    gate.on_free = lambda: announced.append(1)
    await gate.acquire()
    waiter = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.01)
    gate.release()  # to the waiter: not free
    await waiter
    assert announced == []
    gate.release()
    assert announced == [1]
