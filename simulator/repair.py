"""The source's side of repair without peering (docs/payloads.md, "Repair without
peering"), for each tenant x table:

1. the 256 buckets' figures of both sides, read side by side: a RECONCILE with "ours":
   true reads ours while the source reads its rows, and the source compares;
2. the same for the sub-buckets of the differing buckets ("digits": 4, "within", 16
   buckets per request): a read of the rows of those buckets on each side;
3. a FULL_SYNC limited to the differing sub-buckets, with every source row of them;
   meanwhile the source reads its figures of the buckets being repaired;
4. a RECONCILE of those buckets ("within") with the source's figures: we compare (and
   log it); equal, done; otherwise steps 2 to 4 for the buckets that still differ.

Repeated until a RECONCILE finds nothing (or `rounds` times: a bucket can differ while
deliveries are in flight, and repairing it again is harmless). More than 16 differing
buckets are looked at again from step 1.

The figures are computed on the source with the query optiqoflow.fingerprint_query
defines (the README's "exact query"); the simulator asks the destination for its text,
as `optiqoflow reconcile` does, so there is one formula. Everything else goes over the
webhook channel, signed like any delivery.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp
import psycopg
from psycopg import sql

from receiver.signatures import sign_plain

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class RepairStats:
    pairs_checked: int = 0
    reconciles: int = 0
    buckets_differing: int = 0
    sub_buckets_differing: int = 0
    scoped_runs: int = 0
    rows_sent: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    rounds: int = 0
    still_differing: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in vars(self).items()}


class Channel:
    """Signed POSTs to the receiver, retried on 5xx / 408 / 429 and timeouts."""

    def __init__(
        self, session: aiohttp.ClientSession, url: str, secret: str, stats: RepairStats
    ) -> None:
        self.session, self.url, self.secret, self.stats = session, url, secret, stats
        self.last_full_sync_at: float | None = (
            None  # perf_counter when the last FULL_SYNC was answered
        )

    async def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "content-type": "application/json",
            "x-webhook-signature": sign_plain(self.secret, body),
            "x-webhook-id": f"repair-{uuid.uuid4().hex}",
        }
        for attempt in range(30):
            self.stats.bytes_sent += len(body)
            try:
                async with self.session.post(self.url, data=body, headers=headers) as r:
                    text = await r.read()
                    self.stats.bytes_received += len(text)
                    if r.status not in RETRY_STATUSES:
                        answer: dict[str, Any] = json.loads(text)
                        if r.status != 200:
                            raise RuntimeError(f"repair delivery answered {r.status}: {answer}")
                        if payload.get("type") == "FULL_SYNC":
                            self.last_full_sync_at = time.perf_counter()
                        return answer
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(min(2.0, 0.05 * 2**attempt))
        raise RuntimeError("repair delivery: no answer after 30 attempts")


def _figures(
    src: psycopg.Connection[Any], query: str, tenant: str, within: list[str] | None
) -> dict[str, Any]:
    with src.transaction():
        # 65,536 sub-buckets do not fit the default 4MB: the aggregate would spill to disk
        src.execute("SET LOCAL work_mem = '32MB'")
        cursor = psycopg.RawCursor(src)  # the query's parameters are $1 and $2
        return {
            bucket: {"rows": int(n), "checksum": str(s)}
            for _, bucket, n, s in cursor.execute(query, ([tenant], within))
        }


def _same(f: dict[str, Any] | None) -> tuple[int, Decimal]:
    """Figures as numbers: (rows, checksum), (0, 0) for none."""
    return (int(f["rows"]), Decimal(str(f["checksum"]))) if f else (0, Decimal(0))


def _rows(src: psycopg.Connection[Any], table: str, tenant: str, subs: list[str]) -> list[Any]:
    row = src.execute(
        sql.SQL(
            "SELECT coalesce(jsonb_agg(optiqo._pushed(%s, to_jsonb(x)) ORDER BY x.id), '[]')::text "
            "FROM optiqo.{} x WHERE x.tenant_id = %s AND left(md5(x.id::text), 4) = ANY (%s)"
        ).format(sql.Identifier(table)),
        (table, tenant, subs),
    ).fetchone()
    assert row is not None
    rows: list[Any] = json.loads(row[0])
    return rows


def _read_at(src: psycopg.Connection[Any]) -> str:
    row = src.execute(
        "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    ).fetchone()
    assert row is not None
    return str(row[0])


def _look(
    src: psycopg.Connection[Any], query: str, tenant: str, within: list[str] | None
) -> tuple[str, dict[str, Any]]:
    """When the source read, and its figures (by `query`) of the rows of the 2-digit
    buckets in `within` (None: all)."""
    read_at = _read_at(src)
    return read_at, _figures(src, query, tenant, within)


async def _compare(
    channel: Channel,
    src: psycopg.Connection[Any],
    query: str,
    tenant: str,
    table: str,
    within: list[str] | None,
) -> list[str]:
    """The buckets (or, with `within`, the sub-buckets of those buckets) whose figures
    differ: the source reads its rows while a RECONCILE with "ours" reads ours, then
    compares the two sets of figures."""
    read_at = await asyncio.to_thread(_read_at, src)
    payload: dict[str, Any] = {"type": "RECONCILE", "table": table, "tenant_id": tenant,
                               "read_at": read_at, "ours": True}  # fmt: skip
    if within is not None:
        payload.update(digits=4, within=within)
    theirs, answer = await asyncio.gather(
        asyncio.to_thread(_figures, src, query, tenant, within), channel.post(payload)
    )
    channel.stats.reconciles += 1
    ours = {b["bucket"]: b for b in answer["buckets"]}
    return sorted(k for k in set(theirs) | set(ours) if _same(theirs.get(k)) != _same(ours.get(k)))


async def _scoped_full_syncs(
    channel: Channel,
    table: str,
    tenant: str,
    subs: list[str],
    records: list[Any],
    read_at: str,
    batch_size: int,
) -> None:
    """FULL_SYNCs limited to the sub-buckets `subs`, with every source row of them: one
    run per 256 sub-buckets (a run names at most 256 buckets), one after the other."""
    by_sub: dict[str, list[Any]] = {}
    for r in records:
        by_sub.setdefault(
            hashlib.md5(str(r["id"]).encode(), usedforsecurity=False).hexdigest()[:4], []
        ).append(r)
    for i in range(0, len(subs), 256):
        part = subs[i : i + 256]
        rows = [r for sub in part for r in by_sub.get(sub, [])]
        sync_id = f"repair-{uuid.uuid4().hex[:12]}"
        for offset in range(0, max(len(rows), 1), batch_size):
            batch = rows[offset : offset + batch_size]
            await channel.post({"type": "FULL_SYNC", "table": table, "tenant_id": tenant,
                                "sync_id": sync_id, "buckets": part, "offset": offset,
                                "total": len(rows), "occurred_at": read_at,
                                "records": batch})  # fmt: skip
            channel.stats.rows_sent += len(batch)
        channel.stats.scoped_runs += 1


async def repair_pair(
    channel: Channel,
    src: psycopg.Connection[Any],
    queries: tuple[str, str],
    tenant: str,
    table: str,
    *,
    batch_size: int = 1000,
    rounds: int = 3,
) -> bool:
    """Reconcile and repair one tenant x table; True when a RECONCILE found it equal."""
    stats = channel.stats
    query2, query4 = queries
    scope: list[str] | None = None  # the buckets to look at: all, then those repaired
    ahead: tuple[str, dict[str, Any]] | None = None  # their figures, read during the FULL_SYNC
    for attempt in range(rounds + 1):
        if scope is None:
            # the 256 buckets: one read of the rows on each side, side by side
            read_at = await asyncio.to_thread(_read_at, src)
            differing = await _compare(channel, src, query2, tenant, table, None)
        else:
            # the buckets just repaired: their figures against ours (we compare, and log it)
            if ahead is None:
                ahead = await asyncio.to_thread(_look, src, query2, tenant, scope)
            read_at, theirs = ahead
            answer = await channel.post({"type": "RECONCILE", "table": table, "tenant_id": tenant,
                                         "read_at": read_at, "within": scope,
                                         "buckets": theirs})  # fmt: skip
            stats.reconciles += 1
            differing = [b["bucket"] for b in answer["buckets"]]
        ahead = None
        if not differing:
            return True
        if attempt == rounds:
            break
        stats.rounds += 1
        stats.buckets_differing += len(differing)
        # their sub-buckets, 16 buckets at a time: a read of the rows of those buckets
        subs: list[str] = []
        for i in range(0, len(differing), 16):
            subs += await _compare(channel, src, query4, tenant, table, differing[i : i + 16])
        stats.sub_buckets_differing += len(subs)
        scope = differing if len(differing) <= 16 else None
        if not subs:
            continue  # changed meanwhile: look again
        records = await asyncio.to_thread(_rows, src, table, tenant, subs)
        send = _scoped_full_syncs(channel, table, tenant, subs, records, read_at, batch_size)
        if scope is None:
            await send
        else:  # the source's figures of the buckets being repaired, read meanwhile
            ahead, _ = await asyncio.gather(
                asyncio.to_thread(_look, src, query2, tenant, scope), send
            )
    return False


async def repair(
    url: str,
    secret: str,
    source_dsn: str,
    target_dsn: str,
    *,
    tenants: Sequence[str] | None = None,
    tables: Sequence[str] | None = None,
    rounds: int = 3,
    batch_size: int = 1000,
    progress: Callable[[str], None] | None = None,
) -> RepairStats:
    """Reconcile every tenant x source table (or those given) and repair what differs."""
    stats = RepairStats()
    started = time.perf_counter()
    with (
        psycopg.connect(target_dsn, autocommit=True) as tgt,
        psycopg.connect(source_dsn, autocommit=True) as src,
    ):
        mapped = [
            t
            for (t,) in tgt.execute("SELECT source_table FROM optiqoflow.table_mappings ORDER BY 1")
        ]
        present = {
            t
            for (t,) in src.execute(
                "SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'optiqo'::regnamespace "
                "AND c.relkind = 'r'"
            )
        }
        names = [t for t in mapped if t in present and (not tables or t in tables)]
        queries: dict[str, tuple[str, str]] = {}
        for t in names:
            texts = [
                tgt.execute(
                    "SELECT optiqoflow.fingerprint_query('optiqo', %s, %s)", (t, d)
                ).fetchone()
                for d in (2, 4)
            ]
            assert texts[0] is not None and texts[1] is not None
            queries[t] = (str(texts[0][0]), str(texts[1][0]))
        if tenants is None:
            tenants = [
                str(t)
                for (t,) in src.execute("SELECT tenant_id FROM optiqo.tenant_modules ORDER BY 1")
            ]
        timeout = aiohttp.ClientTimeout(total=300)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            channel = Channel(session, url, secret, stats)
            for table in names:
                for tenant in tenants:
                    stats.pairs_checked += 1
                    ok = await repair_pair(
                        channel, src, queries[table], tenant, table,
                        batch_size=batch_size, rounds=rounds,
                    )  # fmt: skip
                    if not ok:
                        stats.still_differing.append(f"{tenant}/{table}")
            if progress:
                progress(f"repair: {stats.summary()}")
    stats.seconds = time.perf_counter() - started
    return stats
