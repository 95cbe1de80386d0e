"""Room for bodies received before their signature is checked (receiver.admission,
OPTIQO_UNAUTHENTICATED_BYTES, OPTIQO_UNAUTHENTICATED_SMALL_BODIES; docs/payloads.md):
stalled bodies of senders without the secret hold a bounded number of bytes, a request
that finds no room is answered 503 with Retry-After unread, small signed deliveries
are still served, and the room comes back when a stalled body times out or ends.

The stalled requests are raw sockets on loopback that send their headers and then
nothing; which are admitted is read from the receiver's gauges, never from timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable

import pytest

from receiver.admission import SMALL_BODY_BYTES, Admission, NoRoom
from receiver.app import WEBHOOK_PATH
from receiver.figures import DatabaseFigures
from tests.helpers import zone_payload
from tests.http_helpers import (
    Endpoint,
    Reply,
    Stalled,
    counting_listener,
    http_post,
    metric,
    raw_request,
    receiver_config,
    serving,
    stall,
)

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def no_database_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gauges read here come from /metrics, whose scrape would also ask the database
    for its figures (receiver.figures, tests/http/test_monitoring.py): left out, so that
    the connections counted are the deliveries' alone."""

    async def nothing(*args: object) -> None:
        return None

    monkeypatch.setattr(DatabaseFigures, "refresh", nothing)


BYTES = "optiqoflow_unauthenticated_body_bytes"
SMALL = "optiqoflow_unauthenticated_small_bodies"


async def gauge(ep: Endpoint, name: str) -> float:
    return metric((await ep.get("/metrics")).body, name)


async def until(probe: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait for an outcome (15 s at most: a bound on a hang, not a measured time)."""
    for _ in range(1500):
        if await probe():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def answered(stalled: list[Stalled], n: int) -> list[Reply]:
    """Wait until `n` of the stalled requests were answered; their answers."""
    pending = {s.reply for s in stalled}
    done: set[asyncio.Task[Reply]] = set()
    while len(done) < n:
        finished, pending = await asyncio.wait(
            pending, timeout=15, return_when=asyncio.FIRST_COMPLETED
        )
        assert finished, f"{len(done)} of {n} answered"
        done |= finished
    assert len(done) == n
    return [t.result() for t in done]


async def hang_up(stalled: list[Stalled]) -> None:
    """Close the senders' sockets (a request answered with its body unread would
    otherwise be drained by aiohttp for up to 10 s before its connection closes)."""
    for s in stalled:
        s.writer.close()
        s.reply.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await s.reply


def unread_503(reply: Reply) -> bool:
    return (
        reply.status == 503
        and reply.headers.get("Retry-After") == "7"
        and reply.headers.get("Connection") == "close"
        and reply.body == {"error": "too many request bodies being received, retry later"}
    )


def unsigned(length: int) -> bytes:
    """A whole request of `length` bytes with a wrong signature: once read, a 401."""
    return http_post(WEBHOOK_PATH, [(b"x-webhook-signature", b"0" * 64)], b"x" * length)


async def test_stalled_large_bodies_hold_at_most_the_budget_and_small_deliveries_pass(
    db_dsn: str,
) -> None:
    """The issue's attack with the defaults (16 MiB bodies, 64 MiB budget): of 40
    connections that announce 16 MiB and stall, 4 are admitted and 36 answered 503
    unread; a further large or chunked body too; a small signed delivery is applied."""
    config = receiver_config(
        db_dsn,
        max_body_bytes=16 * MIB,
        unauthenticated_bytes=64 * MIB,
        read_timeout=120.0,  # the stalled bodies stay stalled until they hang up
    )
    async with serving(config) as ep:
        stalled = [await stall(ep.port, 16 * MIB, sent=b'{"type": ') for _ in range(40)]
        refused = await answered(stalled, 36)
        assert all(unread_503(r) for r in refused), refused[0]
        assert await gauge(ep, BYTES) == 64 * MIB
        assert await gauge(ep, "optiqoflow_deliveries_total" + _labels("overloaded")) == 36

        further = await raw_request(ep.port, unsigned(2 * MIB))
        assert unread_503(further)
        chunked = await stall(ep.port, None, sent=b"5\r\nhello\r\n")
        assert unread_503(await chunked.reply)
        await hang_up([chunked])

        delivery = await ep.post(zone_payload(str(uuid.uuid4())), delivery_id="real-time-1")
        assert (delivery.status, delivery.body["status"]) == (200, "applied")
        assert await gauge(ep, SMALL) == 0  # its place given back after its signature

        # the stalled senders hang up: their bytes are given back
        await hang_up(stalled)

        async def released() -> bool:
            return await gauge(ep, BYTES) == 0

        await until(released, "the reservations to be given back")
        admitted = await raw_request(ep.port, unsigned(2 * MIB))
        assert admitted.status == 401  # read in full, then judged by its signature


async def test_a_stalled_body_gives_its_room_back_when_it_times_out() -> None:
    async with (
        counting_listener() as (dsn, attempts),
        serving(
            receiver_config(
                dsn, max_body_bytes=3 * MIB, unauthenticated_bytes=3 * MIB, read_timeout=3.0
            )
        ) as ep,
    ):
        holder = await stall(ep.port, 3 * MIB, sent=b"{")

        async def held() -> bool:
            return await gauge(ep, BYTES) == 3 * MIB

        await until(held, "the stalled body to be admitted")
        assert unread_503(await raw_request(ep.port, unsigned(SMALL_BODY_BYTES + 1)))
        small = await raw_request(ep.port, unsigned(1000))
        assert small.status == 401  # small bodies have places of their own

        timed_out = await holder.reply
        assert timed_out.status == 408
        await hang_up([holder])
        assert await gauge(ep, BYTES) == 0
        assert (await raw_request(ep.port, unsigned(3 * MIB))).status == 401
        chunked = await stall(ep.port, None, sent=b"5\r\nhello\r\n0\r\n\r\n")
        assert (await chunked.reply).status == 401  # a chunked body reserves the 3 MiB
        await hang_up([chunked])
        assert attempts == []  # no signature held: the database was never asked


async def test_small_bodies_have_their_own_bound() -> None:
    async with (
        counting_listener() as (dsn, _),
        serving(receiver_config(dsn, unauthenticated_small_bodies=2, read_timeout=60.0)) as ep,
    ):
        stalled = [await stall(ep.port, 1000, sent=b"{") for _ in range(2)]

        async def held() -> bool:
            return await gauge(ep, SMALL) == 2

        await until(held, "two small bodies to be admitted")
        assert unread_503(await raw_request(ep.port, unsigned(1000)))
        assert (await raw_request(ep.port, unsigned(2 * MIB))).status == 401  # large: admitted
        await hang_up(stalled)

        async def free() -> bool:
            return await gauge(ep, SMALL) == 0

        await until(free, "the small bodies' places to be given back")
        assert (await raw_request(ep.port, unsigned(1000))).status == 401


def _labels(status: str) -> str:
    return f'{{operation="",status="{status}",table=""}}'


# --- receiver.admission alone ------------------------------------------------------------------


def test_admission_counts_and_gives_back_once() -> None:
    admission = Admission(budget_bytes=10 * MIB, small_bodies=1, unknown_length_bytes=4 * MIB)
    big = admission.admit(6 * MIB, chunked=False)
    chunk = admission.admit(None, chunked=True)
    assert admission.reserved_bytes == 10 * MIB
    with pytest.raises(NoRoom, match="OPTIQO_UNAUTHENTICATED_BYTES"):
        admission.admit(SMALL_BODY_BYTES + 1, chunked=False)
    with (
        admission.admit(SMALL_BODY_BYTES, chunked=False),  # 1 MiB exactly is small
        pytest.raises(NoRoom, match="OPTIQO_UNAUTHENTICATED_SMALL_BODIES"),
    ):
        admission.admit(0, chunked=False)
    assert admission.small_admitted == 0
    big.release()
    big.release()  # once only
    assert admission.reserved_bytes == 4 * MIB
    with chunk:
        pass
    assert (admission.reserved_bytes, admission.small_admitted) == (0, 0)


async def test_refused_bodies_are_logged_with_why(caplog: pytest.LogCaptureFixture) -> None:
    """The log line of a 503 names the bound that was full (the sender is only told to
    retry)."""
    async with (
        counting_listener() as (dsn, _),
        serving(receiver_config(dsn, max_body_bytes=2 * MIB, unauthenticated_bytes=2 * MIB)) as ep,
    ):
        holder = await stall(ep.port, 2 * MIB)

        async def held() -> bool:
            return await gauge(ep, BYTES) == 2 * MIB

        await until(held, "the stalled body to be admitted")
        caplog.set_level("INFO", logger="optiqoflow.receiver")
        assert unread_503(await raw_request(ep.port, unsigned(2 * MIB)))
        await hang_up([holder])
    (line,) = [
        r.fields  # type: ignore[attr-defined]
        for r in caplog.records
        if r.getMessage() == "delivery overloaded"
    ]
    assert line["http_status"] == 503
    assert "OPTIQO_UNAUTHENTICATED_BYTES" in line["error"]
