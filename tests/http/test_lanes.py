"""The per-table lanes of the receiver (receiver.lanes): a share of the pool per table,
first come first served, and no memory left behind by the table names senders use."""

from __future__ import annotations

import asyncio

import pytest
from psycopg_pool import PoolTimeout

from receiver.lanes import Lanes


async def test_a_full_lane_makes_its_table_wait_not_the_others() -> None:
    lanes = Lanes(2, timeout=0.2)
    async with lanes.lane("work_orders"), lanes.lane("work_orders"):
        async with lanes.lane("zones"):  # another table: a lane of its own
            assert len(lanes) == 2
        with pytest.raises(PoolTimeout, match="work_orders"):
            async with lanes.lane("work_orders"):
                pass
        assert lanes.waiting == 0


async def test_a_place_passes_to_the_first_waiter() -> None:
    lanes = Lanes(1, timeout=5.0)
    order: list[str] = []

    async def deliver(name: str, hold: float) -> None:
        async with lanes.lane("work_orders"):
            order.append(name)
            await asyncio.sleep(hold)

    first = asyncio.ensure_future(deliver("first", 0.1))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(deliver("second", 0))
    third = asyncio.ensure_future(deliver("third", 0))
    await asyncio.sleep(0.02)
    assert lanes.waiting == 2
    await asyncio.gather(first, second, third)
    assert order == ["first", "second", "third"]


async def test_lanes_are_forgotten_when_unused() -> None:
    lanes = Lanes(1, timeout=0.05)
    for i in range(1000):  # a sender naming a new table each time
        async with lanes.lane(f"t{i}"):
            pass
    with pytest.raises(PoolTimeout):
        async with lanes.lane(None), lanes.lane(None):
            pass
    assert len(lanes) == 0


async def test_one_deadline_for_every_wait() -> None:
    """The lanes and the gate share one budget: a delivery that waited in a lane has only
    what is left of it at the next."""
    lanes = Lanes(1, timeout=10.0)
    loop = asyncio.get_running_loop()
    async with lanes.lane("work_orders"):
        started = loop.time()
        with pytest.raises(PoolTimeout):
            async with lanes.lane("work_orders", deadline=started + 0.1):
                pass
        assert loop.time() - started < 1
