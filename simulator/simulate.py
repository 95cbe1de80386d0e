"""`optiqoflow simulate`: prove that the destination converges.

A seeded workload runs on a real PostgreSQL source holding the 21 Optiqo tables
(simulator.source): inserts, updates, deletes, FULL_SYNC runs with and without a
total, schema evolution. Its outbox is then signed and POSTed to a receiver like
Optiqo's sender does, retrying 5xx, 408, timeouts and refused connections with
exponential backoff. Chaos (seeded, reproducible schedule) adds duplicate deliveries,
reordering within a window, late re-deliveries of deliveries already applied, first
attempts that time out (the receiver may still commit them), concurrent senders,
FULL_SYNC batches interleaved with real-time changes, a FULL_SYNC abandoned halfway,
lost real-time deliveries that a later FULL_SYNC must repair, and restarts of the
destination PostgreSQL (only one the run owns). Then `simulator.converge` compares.

What the sender keeps in order, because the contract needs it: a change made after a
FULL_SYNC run's snapshot is not delivered before the run's first batch has been
answered (otherwise completion would remove a row the target cannot know is newer, and
a run without total would wipe it). Everything else may arrive in any order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from operations.embedded import stop_command
from receiver.signatures import sign_plain
from simulator import source as simsource

CHAOS = ("duplicate", "reorder", "late", "timeout", "interleave", "abandon", "restart", "lose")
# not in "all": deliveries lost silently (never sent, never retried, and no FULL_SYNC of
# the workload is there to repair them); after sending, the reconcile loop
# (simulator.repair: RECONCILE, then scoped FULL_SYNC) must find and repair them
REPAIR_CHAOS = ("vanish",)
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass
class SimOptions:
    url: str
    secret: str
    tenants: int = 3
    events: int = 300
    seed: int = 1
    batch_size: int = 50
    concurrency: int = 4
    chaos: frozenset[str] = frozenset()
    full_syncs: int = 2
    window: int = 16
    # keep a FULL_SYNC run's first batch ahead of the changes made after its snapshot;
    # False shows what happens when a sender does not (see the module's docstring)
    snapshot_barrier: bool = True
    restarts: int = 1
    run_id: str = ""
    duplicate_rate: float = 0.08
    late_rate: float = 0.03
    timeout_rate: float = 0.03
    lose_rate: float = 0.05
    vanish_rate: float = 0.05
    request_timeout: float = 30.0
    max_backoff: float = 2.0
    max_attempts: int = 60

    def __post_init__(self) -> None:
        if not self.run_id:
            self.run_id = f"sim-{self.seed}-{uuid.uuid4().hex[:8]}"
        unknown = set(self.chaos) - set(CHAOS) - set(REPAIR_CHAOS)
        if unknown:
            raise ValueError(
                f"unknown chaos: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(CHAOS + REPAIR_CHAOS)})"
            )


@dataclass
class Item:
    outbox_id: int
    body: bytes
    delivery_id: str
    role: str = (
        "original"  # original | copy (near duplicate) | late (re-delivery of an applied one)
    )
    short_timeout: bool = False


@dataclass
class Step:
    items: list[Item]
    barrier: bool = False  # delivered alone, after everything before it was answered


@dataclass
class Schedule:
    steps: list[Step]
    dropped: list[int] = field(default_factory=list)  # outbox ids never sent (lost)

    @property
    def items(self) -> int:
        return sum(len(s.items) for s in self.steps)


@dataclass
class Attempt:
    outbox_id: int
    delivery_id: str
    attempt: int
    http_status: int | None
    answer: dict[str, Any] | None
    error: str | None
    sent_at: datetime
    seconds: float


@dataclass
class SendStats:
    attempts: list[Attempt] = field(default_factory=list)
    deliveries: int = 0
    retries: int = 0
    undelivered: list[str] = field(default_factory=list)
    restarts: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        http = Counter(
            str(a.http_status) if a.http_status else (a.error or "error").split(":")[0]
            for a in self.attempts
        )
        answers = Counter(
            str((a.answer or {}).get("status"))
            for a in self.attempts
            if a.http_status is not None and 200 <= a.http_status < 300
        )
        return {
            "deliveries": self.deliveries,
            "attempts": len(self.attempts),
            "retries": self.retries,
            "http": dict(sorted(http.items())),
            "answers": dict(sorted(answers.items())),
            "undelivered": len(self.undelivered),
            "destination_restarts": self.restarts,
            "seconds": round(self.seconds, 2),
            "deliveries_per_second": round(self.deliveries / self.seconds, 1)
            if self.seconds
            else None,
        }


# --- the schedule ----------------------------------------------------------------------


def build_schedule(conn: psycopg.Connection[Any], opts: SimOptions) -> Schedule:
    """The order in which the outbox is sent: seeded, so the same seed gives the same plan."""
    rng = random.Random(f"{opts.seed}/schedule")
    rows = conn.execute(
        "SELECT id, payload ->> 'type', payload ->> 'tenant_id', payload ->> 'table', payload::text "
        "FROM optiqo.outbox ORDER BY id"
    ).fetchall()
    runs = conn.execute(
        "SELECT tenant_id::text, table_name, kind, first_outbox_id FROM optiqo.full_sync_runs "
        "WHERE first_outbox_id IS NOT NULL ORDER BY first_outbox_id"
    ).fetchall()
    barriers = {int(r[3]) for r in runs} if opts.snapshot_barrier else set()
    # lose: real-time changes before the snapshot of a pair's last run, when that run is
    # one that completes (so the run must repair what was lost)
    repairable: dict[tuple[str, str], int] = {}
    for tenant, table, kind, first in runs:
        if kind == "abandoned":
            repairable.pop((tenant, table), None)
        else:
            repairable[(tenant, table)] = int(first)

    steps: list[Step] = []
    current: list[Item] = []
    dropped: list[int] = []
    vanish = random.Random(
        f"{opts.seed}/vanish"
    )  # its own: the other chaos plans stay as they were
    for oid, op, tenant, table, body in rows:
        item = Item(int(oid), body.encode(), f"{opts.run_id}:d{oid}")
        if "vanish" in opts.chaos and op != "FULL_SYNC" and vanish.random() < opts.vanish_rate:
            dropped.append(int(oid))
            continue
        if (
            "lose" in opts.chaos
            and op != "FULL_SYNC"
            and oid < repairable.get((tenant, table), 0)
            and rng.random() < opts.lose_rate
        ):
            dropped.append(int(oid))
            continue
        if "timeout" in opts.chaos and rng.random() < opts.timeout_rate:
            item.short_timeout = True
        if oid in barriers:
            if current:
                steps.append(Step(current))
            steps.append(Step([item], barrier=True))
            current = []
        else:
            current.append(item)
    if current:
        steps.append(Step(current))

    if "reorder" in opts.chaos:
        for step in steps:
            if not step.barrier:
                keyed = [(i + rng.uniform(0, opts.window), it) for i, it in enumerate(step.items)]
                step.items = [it for _, it in sorted(keyed, key=lambda k: k[0])]

    late_step = Step([])
    originals = [(si, it) for si, s in enumerate(steps) for it in s.items]
    for si, it in originals:
        if "duplicate" in opts.chaos and rng.random() < opts.duplicate_rate:
            copy = Item(it.outbox_id, it.body, _copy_id(it, rng), "copy")
            target = steps[si] if not steps[si].barrier else steps[min(si + 1, len(steps) - 1)]
            if target.barrier:
                target = late_step
            pos = min(len(target.items), _index(target.items, it) + 1 + rng.randint(0, opts.window))
            target.items.insert(pos, copy)  # near the original: often concurrent with it
        if "late" in opts.chaos and rng.random() < opts.late_rate:
            copy = Item(it.outbox_id, it.body, _copy_id(it, rng), "late")
            later = [s for s in steps[si + 1 :] if not s.barrier]
            target = rng.choice(later) if later and rng.random() < 0.7 else late_step
            target.items.insert(rng.randint(0, len(target.items)), copy)
    if late_step.items:
        steps.append(late_step)
    return Schedule(steps, dropped)


def _copy_id(item: Item, rng: random.Random) -> str:
    # the same delivery id (a sender retry), or another one with the same event_id
    # (a second sender instance): both must be duplicates
    return (
        item.delivery_id
        if rng.random() < 0.5
        else f"{item.delivery_id}:again{rng.randint(1, 10**6)}"
    )


def _index(items: list[Item], item: Item) -> int:
    for i, it in enumerate(items):
        if it is item:
            return i
    return -1  # in another step: near the start of this one


# --- the sender ------------------------------------------------------------------------


class Sender:
    def __init__(self, session: aiohttp.ClientSession, opts: SimOptions, stats: SendStats) -> None:
        self.session = session
        self.opts = opts
        self.stats = stats

    async def deliver(self, item: Item) -> None:
        opts = self.opts
        rng = random.Random(f"{opts.seed}/{item.delivery_id}/{item.role}")
        headers = {
            "content-type": "application/json",
            "x-webhook-signature": sign_plain(opts.secret, item.body),
            "x-webhook-id": item.delivery_id,
        }
        for attempt in range(1, opts.max_attempts + 1):
            if attempt > 1:
                self.stats.retries += 1
            short = item.short_timeout and attempt == 1
            # a short timeout is shorter than any delivery here takes (loopback, a commit with
            # a WAL flush): the sender gives up while the receiver may still commit
            timeout = aiohttp.ClientTimeout(
                total=rng.uniform(0.0002, 0.002) if short else opts.request_timeout
            )
            sent_at = datetime.now(UTC)
            t0 = time.perf_counter()
            status: int | None = None
            answer: dict[str, Any] | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                async with self.session.post(
                    opts.url, data=item.body, headers=headers, timeout=timeout
                ) as r:
                    status = r.status
                    text = await r.text()
                    try:
                        parsed = json.loads(text)
                        answer = parsed if isinstance(parsed, dict) else {"body": parsed}
                    except ValueError:
                        answer = {"body": text[:500]}
                    if "Retry-After" in r.headers:
                        try:
                            retry_after = float(r.headers["Retry-After"])
                        except ValueError:
                            retry_after = None
            except TimeoutError:
                error = "timeout"
            except aiohttp.ClientError as e:
                error = f"{e.__class__.__name__}: {e}"[:300]
            self.stats.attempts.append(
                Attempt(
                    item.outbox_id,
                    item.delivery_id,
                    attempt,
                    status,
                    answer,
                    error,
                    sent_at,
                    time.perf_counter() - t0,
                )
            )
            if status is not None and status not in RETRY_STATUSES:
                self.stats.deliveries += 1
                if not 200 <= status < 300:
                    self.stats.undelivered.append(f"{item.delivery_id}: HTTP {status} {answer}")
                return
            pause = min(opts.max_backoff, 0.02 * 2 ** min(attempt, 12)) * rng.uniform(0.5, 1.0)
            if retry_after is not None:
                pause = max(pause, min(retry_after, opts.max_backoff))
            await asyncio.sleep(pause)
        self.stats.undelivered.append(
            f"{item.delivery_id}: gave up after {opts.max_attempts} attempts"
        )


async def send(
    schedule: Schedule,
    opts: SimOptions,
    restart: Callable[[], Awaitable[None]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SendStats:
    """Deliver the schedule with `concurrency` senders; restart the destination (when a
    restart callable is given and "restart" chaos is on) at evenly spaced points."""
    stats = SendStats()
    total = schedule.items
    restart_at: set[int] = set()
    if restart is not None and "restart" in opts.chaos and opts.restarts > 0:
        restart_at = {total * (i + 1) // (opts.restarts + 1) for i in range(opts.restarts)}
    tasks: list[asyncio.Task[None]] = []
    dispatched = 0

    async def restart_now() -> None:
        assert restart is not None
        if progress:
            progress(f"restarting the destination PostgreSQL (delivery {dispatched} of {total})")
        await restart()
        stats.restarts += 1

    def next_dispatch() -> None:
        nonlocal dispatched
        dispatched += 1
        if dispatched in restart_at:
            tasks.append(asyncio.create_task(restart_now()))
        if progress and dispatched % 2000 == 0:
            progress(f"{dispatched} of {total} deliveries dispatched")

    connector = aiohttp.TCPConnector(limit=max(opts.concurrency * 2, 8), force_close=False)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector) as session:
        sender = Sender(session, opts, stats)
        for step in schedule.steps:
            queue = iter(step.items)

            async def worker(queue: Iterator[Item]) -> None:
                for item in queue:  # shared: each item is taken by exactly one worker
                    next_dispatch()
                    await sender.deliver(item)

            n = 1 if step.barrier else max(1, opts.concurrency)
            await asyncio.gather(*(worker(queue) for _ in range(n)))
        await asyncio.gather(*tasks)
    stats.seconds = time.perf_counter() - started
    return stats


def save_attempts(conn: psycopg.Connection[Any], stats: SendStats) -> None:
    """The sender's log, in the source (optiqo.deliveries), for converge-check."""
    with (
        conn.transaction(),
        conn.cursor() as cur,
        cur.copy(
            "COPY optiqo.deliveries (outbox_id, delivery_id, attempt, http_status, answer, error, sent_at, seconds) "
            "FROM STDIN"
        ) as copy,
    ):
        for a in stats.attempts:
            copy.write_row(
                (
                    a.outbox_id,
                    a.delivery_id,
                    a.attempt,
                    a.http_status,
                    json.dumps(a.answer) if a.answer is not None else None,
                    a.error,
                    a.sent_at,
                    a.seconds,
                )
            )


# --- the whole run ---------------------------------------------------------------------


@dataclass
class RunResult:
    workload: simsource.WorkloadStats
    schedule_items: int
    dropped: int
    send: SendStats
    converged: bool | None = None
    repair: Any = None  # simulator.repair.RepairStats, with vanish chaos

    def summary(self) -> dict[str, Any]:
        w = self.workload
        return {
            "changes": w.changes,
            "inserts": w.inserts,
            "updates": w.updates,
            "deletes": w.deletes,
            "source_transactions": w.transactions,
            "full_sync_runs": w.full_sync_runs,
            "full_sync_batches": w.full_sync_batches,
            "workload_seconds": round(w.seconds, 2),
            "scheduled_deliveries": self.schedule_items,
            "lost_on_purpose": self.dropped,
            **self.send.summary(),
            "events_per_second": round((w.changes + w.full_sync_batches) / self.send.seconds, 1)
            if self.send.seconds
            else None,
            "converged": self.converged,
            **({"repair": self.repair.summary()} if self.repair is not None else {}),
        }


async def run(
    opts: SimOptions,
    source_dsn: str,
    restart: Callable[[], Awaitable[None]] | None = None,
    progress: Callable[[str], None] | None = None,
    target_dsn: str | None = None,
) -> RunResult:
    """Create the source, run the workload, deliver its outbox; with vanish chaos, then
    reconcile and repair over the webhook channel (simulator.repair; target_dsn gives the
    bucket query's text). The caller checks convergence (simulator.converge.check)."""
    if "vanish" in opts.chaos and not target_dsn:
        raise ValueError(
            "vanish chaos needs the destination database (the repair asks it for the bucket query)"
        )
    say = progress or (lambda _m: None)
    with psycopg.connect(source_dsn, autocommit=True) as conn:
        params = {k: v for k, v in vars(opts).items() if k not in ("secret", "chaos")}
        params["chaos"] = sorted(opts.chaos)
        simsource.create_source(conn, opts.run_id, opts.seed, params)
        wopts = simsource.WorkloadOptions(
            run_id=opts.run_id,
            tenants=opts.tenants,
            events=opts.events,
            seed=opts.seed,
            batch_size=opts.batch_size,
            full_syncs=opts.full_syncs,
            abandoned=1 if "abandon" in opts.chaos else 0,
            interleave="interleave" in opts.chaos,
        )
        say(f"run {opts.run_id}: workload of {opts.events} changes for {opts.tenants} tenants")
        wstats = await asyncio.to_thread(simsource.run_workload, conn, wopts)
        schedule = build_schedule(conn, opts)
        say(
            f"workload done in {wstats.seconds:.1f} s; sending {schedule.items} deliveries "
            f"({len(schedule.dropped)} lost on purpose) with {opts.concurrency} senders"
        )
        stats = await send(schedule, opts, restart, progress)
        save_attempts(conn, stats)
        tenants = [str(t) for t in simsource.tenant_ids(opts.run_id, opts.tenants)]
    result = RunResult(wstats, schedule.items, len(schedule.dropped), stats)
    if "vanish" in opts.chaos:
        from simulator import repair

        assert target_dsn is not None
        say(f"{len(schedule.dropped)} deliveries lost on purpose; reconciling and repairing")
        result.repair = await repair.repair(
            opts.url, opts.secret, source_dsn, target_dsn, tenants=tenants, progress=say
        )
    return result


# --- an own destination: embedded PostgreSQL + `optiqoflow serve` -------------------------


class OwnDestination:
    """A throwaway embedded PostgreSQL (migrated) and a receiver subprocess in front of it.
    Only a destination the run owns is ever restarted."""

    def __init__(self, secret: str) -> None:
        from optiqoflow_db import migrate

        from operations.embedded import free_port, start_embedded

        # not a TemporaryDirectory: --keep must be able to leave it behind
        self._tmp = _Folder(tempfile.mkdtemp(prefix="optiqoflow-sim-"))
        self.server = start_embedded(Path(self._tmp.name) / "data")
        migrate.upgrade(self.server.dsn)
        self.port = free_port()
        env = dict(
            os.environ,
            DATABASE_URL=self.server.dsn,
            OPTIQO_WEBHOOK_SECRET=secret,
            OPTIQO_RETRY_AFTER_SECONDS="1",
            # shorter than a restart's downtime, so deliveries meet 503s, not only waits
            OPTIQO_POOL_TIMEOUT_SECONDS="1",
            OPTIQO_POOL_MAX="16",
        )
        self.log = open(Path(self._tmp.name) / "receiver.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "operations.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}/api/optiqo-webhook"

    @property
    def dsn(self) -> str:
        return self.server.dsn

    async def wait_ready(self, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession() as s:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the receiver exited with {self.proc.returncode}")
                try:
                    async with s.get(f"http://127.0.0.1:{self.port}/readyz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError("the receiver did not become ready")

    async def restart_database(self, mode: str = "fast", down: float = 2.5) -> None:
        await asyncio.to_thread(self.server.stop, mode)
        await asyncio.sleep(down)
        await asyncio.to_thread(self.server.start)

    def close(self, keep_database: bool = False) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        if not keep_database:
            self.server.destroy()
            self._tmp.cleanup()


@dataclass
class _Folder:
    name: str

    def cleanup(self) -> None:
        import shutil

        shutil.rmtree(self.name, ignore_errors=True)


class OwnSource:
    """A throwaway embedded PostgreSQL for the source, when no --source-dsn is given."""

    def __init__(self) -> None:
        from operations.embedded import start_embedded

        self.folder = Path(tempfile.mkdtemp(prefix="optiqoflow-src-"))
        self.server = start_embedded(self.folder / "data")

    def close(self) -> None:
        import shutil

        self.server.destroy()
        shutil.rmtree(self.folder, ignore_errors=True)


# --- command line ----------------------------------------------------------------------


def parse_chaos(text: str) -> frozenset[str]:
    words = {w.strip() for w in text.replace(" ", ",").split(",") if w.strip()}
    if "all" in words:
        return frozenset(CHAOS)
    if words <= {"none"}:
        return frozenset()
    return frozenset(words)


async def _main(args: argparse.Namespace) -> int:
    from simulator import converge

    def say(message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)

    secret = args.secret or os.environ.get("OPTIQO_WEBHOOK_SECRET", "")
    own: OwnDestination | None = None
    own_source: OwnSource | None = None
    try:
        if args.own_destination:
            secret = secret or uuid.uuid4().hex
            own = OwnDestination(secret)
            await own.wait_ready()
            say(f"own destination: {own.url}, database {own.dsn}")
        url = own.url if own else args.url
        if not url:
            print(
                "optiqoflow simulate: give --url (and --secret), or --own-destination",
                file=sys.stderr,
            )
            return 2
        if not secret:
            print(
                "optiqoflow simulate: give --secret or set OPTIQO_WEBHOOK_SECRET", file=sys.stderr
            )
            return 2
        source_dsn = args.source_dsn
        if not source_dsn:
            own_source = OwnSource()
            source_dsn = own_source.server.dsn
            say(f"own source database {source_dsn}")
        opts = SimOptions(
            url=url,
            secret=secret,
            tenants=args.tenants,
            events=args.events,
            seed=args.seed,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            chaos=parse_chaos(args.chaos),
            full_syncs=args.full_syncs,
            window=args.window,
            restarts=args.restarts,
            run_id=args.run_id or "",
            snapshot_barrier=not args.no_snapshot_barrier,
        )
        restart: Callable[[], Awaitable[None]] | None = None
        if own is not None:
            dest = own

            async def restart_own() -> None:
                await dest.restart_database(args.restart_mode)

            restart = restart_own
        elif "restart" in opts.chaos:
            say(
                "restart chaos skipped: the destination is not owned by this run (use --own-destination)"
            )
        target_dsn = own.dsn if own else args.target_dsn
        result = await run(opts, source_dsn, restart, say, target_dsn)
        if target_dsn:
            say("checking convergence")
            report = await asyncio.to_thread(converge.check, source_dsn, target_dsn)
            print(report.render())
            result.converged = report.ok
        summary = result.summary()
        print(
            json.dumps(
                {
                    "run_id": opts.run_id,
                    "seed": opts.seed,
                    "chaos": sorted(opts.chaos),
                    "tenants": opts.tenants,
                    "concurrency": opts.concurrency,
                    **summary,
                },
                indent=2,
            )
        )
        if result.send.undelivered:
            print("undelivered:\n  " + "\n  ".join(result.send.undelivered[:20]), file=sys.stderr)
        internal = [a for a in result.send.attempts if a.http_status == 500]
        if internal:
            # retried like any 5xx, but a 500 is never a planned answer: a receiver or SQL bug
            print(
                f"{len(internal)} attempt(s) answered 500 (internal error), e.g. "
                f"{internal[0].delivery_id}; see the receiver's log",
                file=sys.stderr,
            )
        ok = result.converged is not False and not result.send.undelivered and not internal
        return 0 if ok else 1
    finally:
        if own is not None:
            own.close(keep_database=args.keep)
            if args.keep:
                say(
                    f"kept the destination database: {own.dsn}; stop it with: "
                    + shlex.join(stop_command(own.server.data_dir))
                )
        if own_source is not None:
            if args.keep:
                say(
                    f"kept the source database: {own_source.server.dsn}; stop it with: "
                    + shlex.join(stop_command(own_source.server.data_dir))
                )
            else:
                own_source.close()


def _simulate_command(args: argparse.Namespace) -> int:
    return asyncio.run(_main(args))


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate",
        help="drive a simulated Optiqo source through the receiver and check convergence",
        description="Run a seeded workload on a real PostgreSQL source holding the 21 Optiqo "
        "tables, capture it in an outbox, sign and POST it to the receiver (with chaos), "
        "then check that the destination converged.",
    )
    p.add_argument(
        "--url", help="the receiver's webhook URL, e.g. http://127.0.0.1:8080/api/optiqo-webhook"
    )
    p.add_argument("--secret", help="signing secret (default: $OPTIQO_WEBHOOK_SECRET)")
    p.add_argument(
        "--source-dsn",
        help="source PostgreSQL (schema optiqo is recreated); default: a throwaway embedded server",
    )
    p.add_argument("--target-dsn", help="destination database: check convergence after the run")
    p.add_argument(
        "--own-destination",
        action="store_true",
        help="start a throwaway embedded destination and `optiqoflow serve` in front of it "
        "(needed for restart chaos)",
    )
    p.add_argument("--tenants", type=int, default=3)
    p.add_argument(
        "--events", type=int, default=300, help="source changes (inserts, updates, deletes)"
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=50, help="FULL_SYNC records per batch")
    p.add_argument(
        "--full-syncs",
        type=int,
        default=3,
        help="FULL_SYNC runs that complete (abandon chaos adds one left halfway)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="concurrent senders")
    p.add_argument(
        "--chaos",
        default="none",
        help=f"comma-separated: {', '.join(CHAOS)}; or all / none (default none); and "
        "vanish (not in all): deliveries lost silently, then found and repaired by RECONCILE "
        "and scoped FULL_SYNC (needs --own-destination or --target-dsn)",
    )
    p.add_argument("--window", type=int, default=16, help="reordering window (deliveries)")
    p.add_argument("--restarts", type=int, default=1, help="destination restarts (restart chaos)")
    p.add_argument(
        "--restart-mode",
        default="fast",
        choices=("smart", "fast", "immediate"),
        help="pg_ctl stop mode of a restart (immediate: a crash)",
    )
    p.add_argument(
        "--no-snapshot-barrier",
        action="store_true",
        help="let changes made after a FULL_SYNC snapshot overtake the run's first batch "
        "(shows the drift the contract allows then)",
    )
    p.add_argument("--run-id", help="names this run's tenants, event ids and delivery ids")
    p.add_argument(
        "--keep",
        action="store_true",
        help="leave the embedded source and destination servers running (for converge-check, psql)",
    )
    p.set_defaults(func=_simulate_command)


def main(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience
    parser = argparse.ArgumentParser(prog="optiqoflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result
