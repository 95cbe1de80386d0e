"""Where the time goes, for the optimiser: PostgreSQL per function and per statement, and
the receiver's Python, during a real-time run (concurrency 32) and a FULL_SYNC run.

    python -m bench profile [--quick] [--dsn DSN]

- pg_stat_user_functions (track_functions = all): calls, self and total time per function,
  per event / per 1,000 records. Read after the receiver stopped (backends flush their
  statistics when they exit).
- pg_stat_statements (track = all, track_planning = on), when the server has it loaded:
  the statements inside the functions, by total (planning + execution) time. The embedded
  server is restarted once with shared_preload_libraries = pg_stat_statements for this.
- py-spy (when installed) attached to the receiver process: share of the receiver's busy
  samples by component, and the hottest leaf functions. Not used for the timed figures of
  the other benchmarks.
- webhook_logs.duration_ms: time inside apply_webhook, beside the client's latency (the
  rest is HTTP, the pool, and the commit's WAL flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from bench import records
from bench.common import (
    Cluster,
    LoadResult,
    Request,
    ServerProcess,
    Spread,
    function_delta,
    function_stats,
    ours,
    run_load,
    signed,
    table,
)
from bench.full_sync import sync_payloads, warm_tenant
from bench.realtime import EventSource

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# (label, test on one frame's function name and file): inclusive share of busy samples
COMPONENTS: tuple[tuple[str, str, str], ...] = (
    ("whole delivery (handle_webhook)", "handle_webhook", "receiver/server.py"),
    ("read body", "_read_at_most", "receiver/server.py"),
    ("signature (receiver/signatures.py)", "", "receiver/signatures.py"),
    ("strict JSON parse (receiver/jsonguard.py)", "", "receiver/jsonguard.py"),
    ("database call (_call, psycopg, pool)", "_call", "receiver/server.py"),
    ("  of which pool checkout/return (psycopg_pool)", "", "psycopg_pool/"),
    ("log line + metrics (_account)", "_account", "receiver/server.py"),
    ("  of which logging", "", "logging/"),
    ("JSON response (web.json_response)", "json_response", "aiohttp/"),
    ("aiohttp HTTP protocol (web_protocol)", "", "aiohttp/web_protocol.py"),
    ("asyncio event loop (base_events, selectors)", "", "asyncio/base_events.py"),
)


def _start_pyspy(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    # on PATH, or beside this interpreter (a virtualenv that is not activated)
    exe = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if exe is None:
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                             "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_pyspy(p: subprocess.Popen[bytes] | None) -> None:
    if p is None:
        return
    p.send_signal(signal.SIGINT)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()


def pyspy_summary(path: Path) -> str:
    if not path.exists():
        return "_py-spy is not installed (`pip install py-spy`): no receiver profile._\n"
    total = 0
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        total += n
        frames = []
        for f in stack.split(";"):
            m = FRAME.match(f)
            frames.append((m.group("func"), m.group("file")) if m else (f, ""))
        for label, func, file in COMPONENTS:
            if any((not func or fn == func) and file in fl for fn, fl in frames):
                inclusive[label] += n
        fn, fl = frames[-1]
        leaves[f"{fn} ({'/'.join(fl.split('/')[-2:])})"] += n
    if total == 0:
        return "_py-spy recorded no samples._\n"
    out = [f"Receiver (py-spy, {total:,} busy samples at 200 Hz; share of busy time, inclusive):\n",
           table(["component", "share"],
                 [[label, f"{inclusive[label] / total * 100:.0f}%"] for label, _, _ in COMPONENTS]),
           "\nHottest leaf functions (self time):\n",
           table(["function", "share"], [[k, f"{v / total * 100:.1f}%"]
                                          for k, v in leaves.most_common(12)])]
    return "\n".join(out) + "\n"


def _statements_available(cl: Cluster, dsn: str) -> bool:
    """pg_stat_statements loaded (restarting the embedded server once to load it)."""
    with psycopg.connect(cl.admin_dsn, autocommit=True) as c:
        row = c.execute("SHOW shared_preload_libraries").fetchone()
        loaded = row is not None and "pg_stat_statements" in str(row[0])
        if not loaded and cl.embedded is not None:
            c.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
    if not loaded and cl.embedded is not None:
        cl.embedded.stop()
        cl.embedded.start()
        loaded = True
    if not loaded:
        return False
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with psycopg.connect(cl.admin_dsn, autocommit=True) as c:
        name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        for setting in ("pg_stat_statements.track = 'all'", "pg_stat_statements.track_planning = on"):
            c.execute(f'ALTER DATABASE "{name}" SET {setting}')
    return True


def _statements(dsn: str, per: int, unit: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT query, calls, total_plan_time, total_exec_time, rows FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY total_plan_time + total_exec_time DESC LIMIT 16").fetchall()
    out = []
    for q, calls, plan, ex, nrows in rows:
        text = " ".join(str(q).split())
        out.append([f"`{text[:110]}{'…' if len(text) > 110 else ''}`", f"{int(calls) / per:.2f}",
                    f"{float(plan) / per:.3f}", f"{float(ex) / per:.3f}", f"{int(nrows) / per:.1f}"])
    return table(["statement (nested ones included, track = all)", f"calls per {unit}",
                  f"plan ms per {unit}", f"exec ms per {unit}", f"rows per {unit}"], out)


def _phase(cl: Cluster, dsn: str, label: str, unit: str, per_unit: int, reqs: list[Request],
           concurrency: int, statements: bool) -> tuple[str, dict[str, Any]]:
    """Run `reqs` against a freshly started receiver with profilers on; report."""
    before = function_stats(dsn)
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT coalesce(max(id), 0) FROM optiqoflow.webhook_logs").fetchone()
        first_log = int(row[0]) if row else 0
        if statements:
            c.execute("SELECT pg_stat_statements_reset()")
    spy_out = cl.workdir / f"pyspy-{label.replace(' ', '_')}.txt"
    server: ServerProcess = ours(dsn, cl.workdir, f"profile-{label.replace(' ', '_')}")
    with server:
        spy = _start_pyspy(server.pid, spy_out)
        try:
            lr: LoadResult = asyncio.run(run_load(server.url, reqs, concurrency, 600))
        finally:
            _stop_pyspy(spy)
    if lr.ok != len(reqs):
        raise RuntimeError(f"profile {label}: {lr.statuses} {lr.first_error}")
    after = function_stats(dsn)  # the receiver's backends have exited: flushed
    n_units = lr.ok * per_unit
    scale = n_units if unit == "event" else n_units / 1000
    fn_rows = [[f"`{name}`", f"{calls / scale:.2f}", f"{self_ms / scale:.3f}", f"{total_ms / scale:.3f}"]
               for name, calls, self_ms, total_ms in function_delta(after, before, 1)]
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute(
            "SELECT avg(duration_ms), percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), "
            "count(*) FROM optiqoflow.webhook_logs WHERE id > %s", (first_log,)).fetchone()
    assert row is not None
    lat = Spread([x * 1000 for x in lr.latencies])
    out = [f"#### {label}: {lr.ok:,} deliveries at concurrency {concurrency}, "
           f"{lr.rate:,.0f} deliveries/s under the profilers\n",
           f"Inside `apply_webhook` (webhook_logs.duration_ms): mean {float(row[0]):.2f} ms, "
           f"median {float(row[1]):.2f} ms per delivery; client latency median {lat.median:.2f} ms "
           "(the difference: HTTP, pool wait, commit and WAL flush, receiver).\n",
           f"PostgreSQL functions (pg_stat_user_functions), per {unit}, by self time:\n",
           table(["function", f"calls per {unit}", f"self ms per {unit}", f"total ms per {unit}"],
                 fn_rows[:14]), ""]
    if statements:
        out += [f"Statements (pg_stat_statements), per {unit}:\n", _statements(dsn, int(scale), unit), ""]
    out.append(pyspy_summary(spy_out))
    return "\n".join(out), {"functions": fn_rows, "rate": lr.rate}


def receiver_micro(reps: int) -> str:
    """The receiver's per-body Python work on a FULL_SYNC body of 5,000 work_orders
    records, in this process: the strict check against plain json.loads, and the HMAC."""
    import hashlib
    import hmac
    import json
    import statistics
    import time

    from receiver.jsonguard import nesting_depth, parse_payload

    body = signed({"type": "FULL_SYNC", "table": "adhoc_work_orders", "tenant_id": str(uuid.uuid4()),
                   "offset": 0, "records": records.rows("adhoc_work_orders", str(uuid.uuid4()), 5000,
                                                        seed=3)}).body

    def ms(f: Any) -> float:
        times = []
        for _ in range(max(reps, 5)):
            t0 = time.perf_counter()
            f()
            times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    rows = [
        ["`receiver.jsonguard.parse_payload` (what the receiver runs)", f"{ms(lambda: parse_payload(body)):.1f}"],
        ["  of which `nesting_depth`", f"{ms(lambda: nesting_depth(body)):.1f}"],
        ["plain `json.loads`", f"{ms(lambda: json.loads(body)):.1f}"],
        ["HMAC-SHA256 of the body", f"{ms(lambda: hmac.new(b'k', body, hashlib.sha256).digest()):.1f}"],
    ]
    return (f"Receiver, per FULL_SYNC body of 5,000 work_orders records ({len(body) / 2**20:.1f} MiB), "
            "median ms in one process:\n\n" + table(["step", "ms per body"], rows) + "\n")


def run(cl: Cluster, quick: bool, reps: int) -> tuple[str, dict[str, Any]]:
    dsn = cl.create_database("profile")
    statements = _statements_available(cl, dsn)
    tenants = [str(uuid.uuid4()) for _ in range(16)]
    src = EventSource(tenants, seed=99)
    fs_source = "adhoc_work_orders"
    n_fs = 5000 if quick else 20000
    fs_tenants = [str(uuid.uuid4()) for _ in range(2)]
    data_rows = records.rows(fs_source, fs_tenants[0], n_fs, seed=5)
    with ours(dsn, cl.workdir, "profile-warm") as warm:  # views, tracking, caches
        wr = asyncio.run(run_load(warm.url, src.make(300) + [
            warm_tenant(fs_source, t, data_rows[0]) for t in fs_tenants], 8, 120))
        assert wr.ok == wr.sent, wr.first_error
    sections = ["### Profile: where the time goes\n"]
    if not statements:
        sections.append("_pg_stat_statements is not loaded on this server: statement figures skipped._\n")
    md, d1 = _phase(cl, dsn, "real-time INSERT events", "event", 1,
                    src.make(1000 if quick else 4000), 32, statements)
    sections.append(md)
    fs_reqs = [signed(p) for t in fs_tenants
               for p in sync_payloads(fs_source, t, records.with_tenant(data_rows, t))]
    md, d2 = _phase(cl, dsn, "FULL_SYNC work_orders, batches of 5,000", "1,000 records", 5000,
                    fs_reqs, 1, statements)
    sections.append(md)
    sections.append(receiver_micro(reps))
    with contextlib.suppress(psycopg.Error), psycopg.connect(cl.admin_dsn, autocommit=True) as c:
        if cl.embedded is not None and statements:
            c.execute("ALTER SYSTEM RESET shared_preload_libraries")
    return "\n".join(sections), {"realtime": d1, "full_sync": d2}
