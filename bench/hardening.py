"""Issue #18's points 2, 3 and 4, before and after the hardening, in one run.

    python -m bench.hardening [--dsn DSN] [--out FILE.md] [--before 2c53348] [--after HEAD]

Both commits are resolved once, at the start, and measured one after the other on the
same PostgreSQL server (an embedded PostgreSQL 18 unless --dsn names a superuser DSN):
each in a clean `git archive` export with this bench/ in it, as `python -m bench --at REV`
does, so the receiver and the migrations are that commit's. Every point gets a fresh
database; the receiver runs with a pool of 8 and every other setting at its commit's
default (lock timeout 5 s and 64 MiB of unauthenticated bytes where those exist).

Point 2, payloads that could exhaust the server: one signed INSERT whose record has
100,000 new keys (~2 MiB), and one FULL_SYNC of 20,000 records each with another new key.
Each runs alone, under temp_file_limit = 64MB and statement_timeout = 240s on the
database, so the old commit cannot fill a disk: the HTTP status, the seconds to it, the
PostgreSQL CPU and the temp files written (pg_stat_database, read after the receiver
stopped) are reported.

Point 3, unauthenticated bytes: 40 connections each announce a 16 MiB body with a
signature that cannot match, send 15.9 MiB of it and stall. The receiver's RSS before,
its peak during (sampled every 0.1 s) and after every connection ended; what the 40 were
answered; and three small signed deliveries sent during the attack.

Point 4, one stuck lock: while a session holds (i) advisory locks on the 64 row buckets
of one tenant's work_orders, taken by a login role with no grants, (ii) `LOCK TABLE
optiqoflow.work_orders IN ACCESS EXCLUSIVE MODE` as authenticated, (iii) `SELECT ... FOR
UPDATE` on one work_orders row as authenticated, signed deliveries arrive at fixed rates
for 12 s: those that need the held lock, other tenants' work_orders, and other tables.
Each has a client timeout of 10 s; the lock is released when all have been answered or
timed out. Reported per group: HTTP statuses and p50/p99 latency (a timeout counts as
longer than 10 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from bench import common
from bench.common import Cluster, Request, ServerProcess, machine, ours, percentile, signed, table

MIB = 1024 * 1024
SOURCE, TARGET = "adhoc_work_orders", "work_orders"
BASE = datetime(2026, 1, 1, tzinfo=UTC)
# the receiver's settings: the benchmark's pool, the product's default pool timeout
SETTINGS = {"OPTIQO_POOL_TIMEOUT_SECONDS": "5"}

# point 2
TEMP_FILE_LIMIT, STATEMENT_TIMEOUT = "64MB", "240s"
# point 3
STALLED, ANNOUNCED, SENT = 40, 16 * MIB, int(15.9 * MIB)
FILLER = memoryview(b" " * MIB)
# point 4
HOLD, CLIENT_TIMEOUT = 12.0, 10.0
LOCKED = "work_orders, locked tenant"
RATES = {LOCKED: 1.0, "work_orders, other tenants": 3.0, "other tables": 3.0}
OTHER_TENANTS = 8


def version(n: int) -> str:
    """The n-th version (n seconds after BASE), as the ISO 8601 text a sender writes."""
    return (BASE + timedelta(seconds=n)).isoformat().replace("+00:00", "Z")


def insert(tenant: str, record: dict[str, Any], op: str = "INSERT",
           source: str = SOURCE) -> dict[str, Any]:
    return {"type": op, "table": source, "tenant_id": tenant, "record": record}


def work_order(tenant: str, n: int, rid: str | None = None, op: str = "INSERT") -> Request:
    """A signed real-time work order (a new id unless `rid`), version n."""
    return signed(insert(tenant, {"id": rid or str(uuid.uuid4()), "updated_at": version(n),
                                  "title": f"w{n}"}, op))


def zone(tenant: str, n: int) -> Request:
    """A signed INSERT of a new zone category (another table than work_orders)."""
    return signed(insert(tenant, {"id": str(uuid.uuid4()), "updated_at": version(n),
                                  "tenant_id": tenant, "name": f"z{n}", "active": True,
                                  "created_at": version(0)}, source="zone_categories"))


def dbname(dsn: str) -> str:
    return str(conninfo_to_dict(dsn)["dbname"])


async def post(session: aiohttp.ClientSession, url: str, req: Request,
               timeout: float) -> dict[str, Any]:
    """One POST: status (or "timeout"), seconds, Retry-After and the answer's JSON fields."""
    t0 = time.perf_counter()
    try:
        async with session.post(url, data=req.body, headers=req.headers,
                                timeout=aiohttp.ClientTimeout(total=timeout)) as r:
            raw = await r.read()
            status: int | str = r.status
            retry_after = r.headers.get("Retry-After")
    except TimeoutError:
        return {"status": "timeout", "seconds": time.perf_counter() - t0}
    except aiohttp.ClientError as e:
        return {"status": f"error: {type(e).__name__}", "seconds": time.perf_counter() - t0}
    answer: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            answer = {k: parsed[k] for k in ("status", "sqlstate", "error", "reason") if k in parsed}
    return {"status": status, "seconds": time.perf_counter() - t0,
            "retry_after": retry_after, "answer": answer}


async def post_one(url: str, req: Request, timeout: float) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        return await post(session, url, req, timeout)


def receiver(cl: Cluster, dsn: str, tag: str) -> ServerProcess:
    """A receiver of the code measured, with a log file of its own."""
    return ours(dsn, cl.workdir, f"{tag}-{uuid.uuid4().hex[:8]}", SETTINGS)


def logged_errors(srv: ServerProcess) -> list[tuple[int, str]]:
    """(HTTP status, cause) of each delivery the receiver answered with an error, from its
    JSON log: the cause is what the answer does not say (a SQLSTATE, PoolTimeout ...)."""
    out = []
    for line in srv.log_path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and int(entry.get("http_status") or 0) >= 400:
                out.append((int(entry["http_status"]), str(entry.get("error", "?"))))
    return out


# --- point 2: payloads that could exhaust the server ------------------------------------------


def wide_insert(tenant: str) -> dict[str, Any]:
    """One INSERT whose record has 100,000 new keys (~2 MiB)."""
    record = {"id": str(uuid.uuid4()), "updated_at": version(1)}
    record.update({f"k{n:06d}": "x" * 8 for n in range(100_000)})
    return insert(tenant, record)


def full_sync_new_keys(tenant: str) -> dict[str, Any]:
    """A FULL_SYNC of 20,000 records, each with a key no other record has."""
    records = [{"id": str(uuid.uuid4()), "updated_at": version(1), f"new_{n}": n}
               for n in range(20_000)]
    return {"type": "FULL_SYNC", "table": SOURCE, "tenant_id": tenant, "records": records,
            "offset": 0, "total": len(records)}


def bound_database(cl: Cluster, dsn: str) -> None:
    """temp_file_limit and statement_timeout for every session of the database."""
    with psycopg.connect(cl.admin_dsn, autocommit=True) as c:
        for name, value in (("temp_file_limit", TEMP_FILE_LIMIT),
                            ("statement_timeout", STATEMENT_TIMEOUT)):
            c.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(dbname(dsn)), sql.Identifier(name), sql.Literal(value)))


def temp_written(dsn: str) -> tuple[int, int]:
    """(temp files, temp bytes) the database's sessions have written so far."""
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT temp_files, temp_bytes FROM pg_stat_database WHERE datname = %s",
                        (dbname(dsn),)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def refuse_once(cl: Cluster, dsn: str, name: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST one payload to a receiver of its own; the temp files are read after it stopped
    (its sessions have exited and flushed their statistics)."""
    req = signed(payload)
    files0, bytes0 = temp_written(dsn)
    pg = common.CpuMeter(cl.postmaster(), tree=True)
    with receiver(cl, dsn, name) as srv:
        pg.start()
        out = asyncio.run(post_one(srv.url, req, 270.0))
        out["pg_cpu"] = pg.stop()
    time.sleep(1.0)
    out["logged"] = [cause[:160] for _, cause in logged_errors(srv)]
    files1, bytes1 = temp_written(dsn)
    out.update(body_bytes=len(req.body), temp_files=files1 - files0, temp_bytes=bytes1 - bytes0)
    return out


def payload_limits(cl: Cluster) -> dict[str, Any]:
    dsn = cl.create_database("payload")
    bound_database(cl, dsn)
    examples = {"100,000 new keys in one INSERT": wide_insert,
                "FULL_SYNC of 20,000 records, a new key each": full_sync_new_keys}
    out = {}
    for name, make in examples.items():
        out[name] = refuse_once(cl, dsn, "payload", make(str(uuid.uuid4())))
        print(f"  point 2: {name}: {out[name]['status']} in {out[name]['seconds']:.1f} s",
              file=sys.stderr, flush=True)
    return out


# --- point 3: unauthenticated bytes -------------------------------------------------------------


async def stalled_body(port: int, sent: asyncio.Event, counter: list[int]) -> dict[str, Any]:
    """Announce a 16 MiB body, send 15.9 MiB of it and stall: how the connection ended."""
    t0, written = time.perf_counter(), 0
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"POST {common.WEBHOOK_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {ANNOUNCED}\r\n"
            f"x-webhook-signature: {'0' * 64}\r\nx-webhook-id: {uuid.uuid4()}\r\n\r\n".encode())
        answer = asyncio.ensure_future(reader.readline())
        with contextlib.suppress(OSError):
            while written < SENT and not answer.done():
                n = min(len(FILLER), SENT - written)
                writer.write(FILLER[:n])
                await writer.drain()
                written += n
    finally:
        counter[0] += 1
        if counter[0] == STALLED:
            sent.set()
    try:
        line = await asyncio.wait_for(answer, 60.0)
        ending = line.split()[1].decode() if line.startswith(b"HTTP/") else "closed, no answer"
    except TimeoutError:
        ending = "still open after 60 s"
    except OSError:
        ending = "reset, no answer"
    writer.close()
    return {"ending": ending, "seconds": time.perf_counter() - t0, "sent_bytes": written}


async def sample_rss(srv: ServerProcess, stop: asyncio.Event, out: list[int]) -> None:
    while not stop.is_set():
        out.append(srv.status_kib("VmRSS"))
        await asyncio.sleep(0.1)


async def attack(srv: ServerProcess) -> dict[str, Any]:
    """The 40 stalled bodies, and signed deliveries once they have all been sent."""
    sent, stop = asyncio.Event(), asyncio.Event()
    samples: list[int] = []
    sampler = asyncio.ensure_future(sample_rss(srv, stop, samples))
    counter = [0]
    bodies = [asyncio.ensure_future(stalled_body(srv.port, sent, counter)) for _ in range(STALLED)]
    await sent.wait()
    during_kib = srv.status_kib("VmRSS")
    probes = []
    for i in range(3):
        probes.append(await post_one(srv.url, work_order(str(uuid.uuid4()), i), 10.0))
        await asyncio.sleep(1.0)
    endings = await asyncio.gather(*bodies)
    stop.set()
    await sampler
    return {"rss_peak_kib": max(samples), "rss_all_sent_kib": during_kib, "bodies": endings,
            "signed": probes}


def stalled_bodies(cl: Cluster) -> dict[str, Any]:
    dsn = cl.create_database("bodies")
    with receiver(cl, dsn, "bodies") as srv:
        warm = asyncio.run(post_one(srv.url, work_order(str(uuid.uuid4()), 1), 30.0))
        assert warm["status"] == 200, warm
        time.sleep(1.0)
        out = {"rss_before_kib": srv.status_kib("VmRSS"), **asyncio.run(attack(srv))}
        time.sleep(3.0)
        out["rss_after_kib"] = srv.status_kib("VmRSS")
        out["hwm_kib"] = srv.status_kib("VmHWM")
    print(f"  point 3: peak {out['rss_peak_kib'] // 1024} MiB", file=sys.stderr, flush=True)
    return out


# --- point 4: one stuck lock ----------------------------------------------------------------------


def as_authenticated(c: psycopg.Connection[Any], tenant: str) -> None:
    c.execute("SET ROLE authenticated")
    c.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps({"tenant_id": tenant}),))


def bucket_space(dsn: str, tenant: str) -> tuple[int, str]:
    """The first key of the tenant's work_orders row-bucket advisory locks: the commit's own
    _row_lock_space where it has one, else 2c53348's public formula; and what was found."""
    public = "hashtext(tenant_id || '/' || 'work_orders')"
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT hashtext(%s::text || '/' || 'work_orders'), "
                        "to_regprocedure('optiqoflow._row_lock_space(uuid,text)') IS NOT NULL, "
                        "to_regclass('optiqoflow.lock_slots') IS NOT NULL", (tenant,)).fetchone()
        assert row is not None
        space, has_function, has_slots = int(row[0]), bool(row[1]), bool(row[2])
        note = "no optiqoflow._row_lock_space: keys from 2c53348's public formula " + public
        if has_function:
            own = c.execute("SELECT optiqoflow._row_lock_space(%s, 'work_orders')",
                            (tenant,)).fetchone()
            assert own is not None
            same = "the same as" if int(own[0]) == space else "NOT the same as"
            space = int(own[0])
            note = f"keys from the commit's optiqoflow._row_lock_space, {same} the public formula {public}"
    if has_slots:
        note += "; optiqoflow.lock_slots exists: row locks are no longer advisory locks here"
    return space, note


@contextlib.contextmanager
def advisory_buckets(cl: Cluster, dsn: str, tenant: str, rid: str) -> Iterator[str]:
    """A login role with no grants takes pg_advisory_lock on the tenant's 64 row buckets."""
    role, password = f"bench_nogrants_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with psycopg.connect(cl.admin_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    try:
        space, note = bucket_space(dsn, tenant)
        params = {**conninfo_to_dict(dsn), "user": role, "password": password}
        with psycopg.connect(make_conninfo("", **params), autocommit=True) as c:
            c.execute("SELECT pg_advisory_lock(%s, b) FROM generate_series(0, 63) b", (space,))
            yield f"role {role} (LOGIN, no grants) holds 64 advisory locks; {note}"
    finally:
        with psycopg.connect(cl.admin_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


@contextlib.contextmanager
def table_lock(cl: Cluster, dsn: str, tenant: str, rid: str) -> Iterator[str]:
    """authenticated holds LOCK TABLE work_orders IN ACCESS EXCLUSIVE MODE."""
    with psycopg.connect(dsn) as c:
        as_authenticated(c, tenant)
        try:
            c.execute("LOCK TABLE optiqoflow.work_orders IN ACCESS EXCLUSIVE MODE")
            note = "authenticated holds ACCESS EXCLUSIVE on optiqoflow.work_orders"
        except psycopg.Error as e:
            c.rollback()
            note = f"LOCK TABLE as authenticated refused ({e.sqlstate}: {str(e).strip()}): nothing held"
        yield note
        c.rollback()


@contextlib.contextmanager
def row_lock(cl: Cluster, dsn: str, tenant: str, rid: str) -> Iterator[str]:
    """authenticated leaves SELECT ... FOR UPDATE open on one of the tenant's rows."""
    with psycopg.connect(dsn) as c:
        as_authenticated(c, tenant)
        got = c.execute("SELECT id FROM optiqoflow.work_orders WHERE id = %s FOR UPDATE",
                        (rid,)).fetchall()
        yield f"authenticated holds FOR UPDATE on {len(got)} work_orders row(s) of the tenant"
        c.rollback()


Holder = Callable[[Cluster, str, str, str], contextlib.AbstractContextManager[str]]
SCENARIOS: dict[str, Holder] = {
    "(i) advisory locks, role without grants": advisory_buckets,
    "(ii) LOCK TABLE work_orders as authenticated": table_lock,
    "(iii) SELECT ... FOR UPDATE as authenticated": row_lock,
}


class Versions:
    """Versions that only increase over the whole run (UPDATEs of the held row)."""

    def __init__(self) -> None:
        self.n = 10

    def next(self) -> int:
        self.n += 1
        return self.n


def held_request(scenario: str, tenant: str, rid: str, n: int) -> Request:
    """A delivery of the locked tenant's work_orders: in (iii) an UPDATE of the held row."""
    if scenario.startswith("(iii)"):
        return work_order(tenant, n, rid, "UPDATE")
    return work_order(tenant, n)


def streams(scenario: str, tenant: str, rid: str, others: list[str],
            versions: Versions) -> dict[str, list[Request]]:
    """The deliveries of each group, signed before the clock starts."""
    everyone = [tenant, *others]
    make: dict[str, Callable[[int], Request]] = {
        LOCKED: lambda i: held_request(scenario, tenant, rid, versions.next()),
        "work_orders, other tenants": lambda i: work_order(others[i % len(others)], versions.next()),
        "other tables": lambda i: zone(everyone[i % len(everyone)], versions.next()),
    }
    return {g: [make[g](i) for i in range(int(HOLD * rate))] for g, rate in RATES.items()}


async def send_streams(url: str, groups: dict[str, list[Request]]) -> dict[str, list[dict[str, Any]]]:
    """Each group at its fixed rate for HOLD seconds, open loop; every answer or timeout."""
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        t0 = time.perf_counter()

        async def at(when: float, req: Request) -> dict[str, Any]:
            await asyncio.sleep(max(0.0, t0 + when - time.perf_counter()))
            return await post(session, url, req, CLIENT_TIMEOUT)

        tasks = {g: [asyncio.ensure_future(at(i / RATES[g], r)) for i, r in enumerate(reqs)]
                 for g, reqs in groups.items()}
        return {g: list(await asyncio.gather(*ts)) for g, ts in tasks.items()}


def warm_up(cl: Cluster, dsn: str, tenant: str, rid: str, others: list[str]) -> None:
    """Every tenant's views and columns exist before a lock is held (no DDL later)."""
    reqs = [work_order(tenant, 1, rid)]
    reqs += [work_order(t, 1) for t in others] + [zone(t, 1) for t in [tenant, *others]]
    with receiver(cl, dsn, "warm") as srv:
        for req in reqs:
            got = asyncio.run(post_one(srv.url, req, 30.0))
            assert got["status"] == 200, got


def lock_holders(cl: Cluster) -> dict[str, Any]:
    dsn = cl.create_database("locks")
    tenant, rid = str(uuid.uuid4()), str(uuid.uuid4())
    others = [str(uuid.uuid4()) for _ in range(OTHER_TENANTS)]
    warm_up(cl, dsn, tenant, rid, others)
    versions = Versions()
    out = {}
    for scenario, holder in SCENARIOS.items():
        groups = streams(scenario, tenant, rid, others, versions)
        with receiver(cl, dsn, "locks") as srv, holder(cl, dsn, tenant, rid) as note:
            answers = asyncio.run(send_streams(srv.url, groups))
        causes = Counter(cause.split(":", 1)[0] for status, cause in logged_errors(srv)
                         if status == 503)
        out[scenario] = {"note": note, "groups": answers, "causes of 503": causes}
        print(f"  point 4: {scenario} done", file=sys.stderr, flush=True)
    return out


def measure(dsn: str, out: Path) -> None:
    """The three points for the code of this checkout (run inside an export)."""
    data: dict[str, Any] = {"source": os.environ.get("BENCH_SOURCE", "working tree")}
    with common.cluster(dsn) as cl:
        data["point 2"] = payload_limits(cl)
        data["point 3"] = stalled_bodies(cl)
        data["point 4"] = lock_holders(cl)
    out.write_text(json.dumps(data, indent=1))


# --- two commits, one run -------------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(common.REPO), *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def measure_at(rev: str, dsn: str, workdir: Path) -> dict[str, Any]:
    """`measure` in a clean export of `rev` with this bench/ (as bench/__main__.run_at
    makes one), on the server `dsn`."""
    with tempfile.TemporaryDirectory(prefix=f"optiqoflow-src-{rev}-") as tmp:
        src = Path(tmp)
        archive = subprocess.run(["git", "-C", str(common.REPO), "archive", rev],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (src / "optiqoflow_db").symlink_to("db")  # the package name of db/, as installed
        shutil.rmtree(src / "bench", ignore_errors=True)
        shutil.copytree(Path(__file__).resolve().parent, src / "bench",
                        ignore=shutil.ignore_patterns("__pycache__"))
        out = workdir / f"hardening-{rev}.json"
        env = {**os.environ, "PYTHONPATH": str(src), "BENCH_SOURCE": f"commit {rev}"}
        subprocess.run([sys.executable, "-m", "bench.hardening", "--dsn", dsn, "--measure",
                        str(out)], cwd=src, env=env, check=True)
        return dict(json.loads(out.read_text()))


# --- Markdown ------------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return "> 10 s (timeout)" if seconds == float("inf") else f"{seconds * 1000:,.0f}"


def status_counts(answers: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for a in answers:
        key = str(a["status"])
        if a.get("retry_after"):
            key += " (Retry-After)"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items()))


def answer_text(a: dict[str, Any]) -> str:
    """The answer's status, SQLSTATE and reason, else its error (shortened)."""
    fields = a.get("answer") or {}
    text = " ".join(str(fields[k]) for k in ("status", "sqlstate", "reason") if k in fields)
    return text or str(fields.get("error", "-"))[:100].replace("|", "/")


def point2(revs: list[str], data: dict[str, dict[str, Any]]) -> str:
    rows = []
    for name in data[revs[0]]["point 2"]:
        for rev in revs:
            a = data[rev]["point 2"][name]
            cause = "; ".join(a["logged"]).replace("|", "/") or "-"
            rows.append([name, rev, a["status"], answer_text(a), cause, f"{a['seconds']:.2f}",
                         f"{a['pg_cpu']:.1f}", f"{a['temp_files']} / {a['temp_bytes'] / MIB:,.0f} MiB"])
    return "\n".join([
        "## Point 2: payloads that could exhaust the server\n",
        f"One request each, alone, to a receiver of its own; the database has temp_file_limit = "
        f"{TEMP_FILE_LIMIT} and statement_timeout = {STATEMENT_TIMEOUT} for both commits (the old "
        "one filled a 77 GB disk without them). Seconds: request sent to answer read. Temp: "
        "pg_stat_database's temp_files / temp_bytes over the request.\n",
        table(["payload", "commit", "HTTP status", "answer", "cause in the receiver's log",
               "seconds", "PostgreSQL CPU s",
               "temp files / bytes"], rows), ""])


def point3(revs: list[str], data: dict[str, dict[str, Any]]) -> str:
    rows = []
    for rev in revs:
        a = data[rev]["point 3"]
        endings: dict[str, int] = {}
        for b in a["bodies"]:
            endings[b["ending"]] = endings.get(b["ending"], 0) + 1
        last = max(b["seconds"] for b in a["bodies"])
        rows.append([rev, common.mib(a["rss_before_kib"]), common.mib(a["rss_peak_kib"]),
                     common.mib(a["rss_after_kib"]),
                     ", ".join(f"{k}: {n}" for k, n in sorted(endings.items())) + f" (last at {last:.0f} s)",
                     ", ".join(f"{p['status']} in {p['seconds'] * 1000:,.0f} ms" for p in a["signed"])])
    return "\n".join([
        "## Point 3: 40 stalled unauthenticated 16 MiB bodies\n",
        f"{STALLED} connections announce Content-Length {ANNOUNCED:,} with a signature that cannot "
        f"match, send {SENT:,} bytes and stall. RSS of the receiver process: before, the peak "
        "sampled every 0.1 s, and 3 s after the last connection ended. Signed: three small signed "
        "INSERTs sent 1 s apart once all 40 had sent their bytes (client timeout 10 s).\n",
        table(["commit", "RSS before", "RSS peak", "RSS after", "the 40 were answered",
               "signed deliveries during the attack"], rows), ""])


def latencies(answers: list[dict[str, Any]]) -> list[float]:
    return [a["seconds"] if a["status"] != "timeout" else float("inf") for a in answers]


def point4(revs: list[str], data: dict[str, dict[str, Any]]) -> str:
    out = ["## Point 4: one stuck lock\n",
           f"Open loop for {HOLD:g} s: " + "; ".join(f"{g}: {r:g}/s" for g, r in RATES.items())
           + f" (other tables: zone_categories of the locked tenant and {OTHER_TENANTS} others); "
           f"client timeout {CLIENT_TIMEOUT:g} s; the lock is released once every request has "
           "been answered or has timed out. Latency over every request sent, a timeout "
           "counting as longer than 10 s. Causes of 503 (the receivers' logs): 55P03, a lock wait "
           "reached lock_timeout; PoolTimeout, no free connection within the pool timeout.\n"]
    for scenario in data[revs[0]]["point 4"]:
        rows = []
        out.append(f"### {scenario}\n")
        for rev in revs:
            s = data[rev]["point 4"][scenario]
            causes = ", ".join(f"{k}: {n}" for k, n in sorted(s["causes of 503"].items()))
            out.append(f"- {rev}: {s['note']}; causes of its 503s (receiver log): {causes or 'none'}")
            for group, answers in s["groups"].items():
                lat = latencies(answers)
                rows.append([rev, group, len(answers), status_counts(answers),
                             ms(percentile(lat, 50)), ms(percentile(lat, 99))])
        out += ["", table(["commit", "deliveries", "sent", "statuses", "p50 ms", "p99 ms"], rows), ""]
    return "\n".join(out)


def commit_line(rev: str) -> str:
    date, subject = git("log", "-1", "--format=%cs%n%s", rev).split("\n", 1)
    return f"{rev} ({date}: {subject if len(subject) <= 70 else subject[:67] + '...'})"


def header(cl: Cluster, revs: list[str], argv: list[str], started: str) -> str:
    m = machine()
    settings = ", ".join(f"{k}={v}" for k, v in sorted(cl.settings().items()))
    server = "embedded (operations.embedded)" if cl.embedded else "the server named by --dsn"
    return "\n".join([
        f"# Hardening (issue #18, points 2, 3, 4): {revs[0]} and {revs[1]}, same run\n",
        f"Run started {started}: `python -m bench.hardening {' '.join(argv)}`\n",
        "- commits, each a clean `git archive` export, in this order: "
        + "; ".join(commit_line(r) for r in revs),
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory']} memory, {m['os']}, "
        f"Python {m['python']}",
        f"- PostgreSQL {cl.version()}, {server}: {settings}",
        f"- receiver: pool of {common.POOL_MAX} connections (min = max), "
        "OPTIQO_POOL_TIMEOUT_SECONDS=5, everything else at its commit's default; client: aiohttp, "
        "same machine, 127.0.0.1", ""])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m bench.hardening", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", default=None, help="superuser DSN of an existing server")
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown here too")
    ap.add_argument("--before", default="2c53348", help="the old commit (default 2c53348)")
    ap.add_argument("--after", default="HEAD", help="the new commit (default HEAD)")
    ap.add_argument("--measure", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.measure:
        measure(a.dsn, a.measure)
        return 0
    revs = [git("rev-parse", "--short", rev) for rev in (a.before, a.after)]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with common.cluster(a.dsn) as cl:
        data = {}
        for rev in revs:
            print(f"== {rev} ...", file=sys.stderr, flush=True)
            data[rev] = measure_at(rev, cl.admin_dsn, cl.workdir)
        md = "\n".join([header(cl, revs, argv, started), point2(revs, data), point3(revs, data),
                        point4(revs, data)])
    print(md)
    if a.out:
        a.out.write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
