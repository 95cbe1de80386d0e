"""What every benchmark shares: the PostgreSQL server, fresh migrated databases, server
processes (our receiver and the baselines), a signed-request load generator, counters
(DDL, function statistics, CPU, RSS) and Markdown output.

PostgreSQL: by default an embedded PostgreSQL 18 (`operations.embedded`) in a temporary
folder, fsync on, synchronous_commit on, defaults otherwise; or `--dsn` naming an
existing server (a superuser DSN: databases are created from a migrated template and
dropped afterwards). Every benchmark database has `track_functions = all`.

Servers under test run in processes of their own, never in the load generator's event
loop: `python -m operations.cli serve` (ours), `python -m bench.baselines ceiling|naive`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

try:
    from optiqoflow_db import migrate

    from operations.embedded import EmbeddedPostgres, free_port, start_embedded
except ImportError:  # a commit before release 1.0's layout, measured with --at
    from receiver.embedded import (  # type: ignore[no-redef]
        EmbeddedPostgres,
        free_port,
        start_embedded,
    )

    from receiver import migrate  # type: ignore[no-redef]

SECRET = "bench-secret-of-reasonable-length-0123456789"
WEBHOOK_PATH = "/api/optiqo-webhook"
POOL_MAX = 8  # database connections per server process: 2 cores, keep PostgreSQL sane
REPO = Path(__file__).resolve().parent.parent
# the command line of the code measured (before release 1.0 it lived in receiver/)
CLI = "operations.cli" if (REPO / "operations" / "cli.py").exists() else "receiver.cli"


# --- PostgreSQL -------------------------------------------------------------------------


def dsn_with_db(dsn: str, dbname: str) -> str:
    params = conninfo_to_dict(dsn)
    params["dbname"] = dbname
    return make_conninfo("", **params)


@dataclass
class Cluster:
    """A PostgreSQL server to benchmark on, and the databases made on it."""

    admin_dsn: str
    embedded: EmbeddedPostgres | None
    workdir: Path
    template: str | None = None
    databases: list[str] = field(default_factory=list)
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def version(self) -> str:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            row = c.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def settings(self) -> dict[str, str]:
        names = ("fsync", "synchronous_commit", "shared_buffers", "max_connections",
                 "wal_level", "full_page_writes", "max_wal_size")
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            rows = c.execute(
                "SELECT name, current_setting(name) FROM pg_settings WHERE name = ANY(%s)",
                (list(names),),
            ).fetchall()
        return {str(n): str(v) for n, v in rows}

    def postmaster(self) -> psutil.Process | None:
        """The server's postmaster, when it runs on this machine (CPU accounting)."""
        try:
            with psycopg.connect(self.admin_dsn, autocommit=True) as c:
                row = c.execute("SELECT pg_backend_pid()").fetchone()
                assert row is not None
                # while the connection is open: its backend exits when it closes
                return psutil.Process(int(row[0])).parent()
        except (psutil.Error, psycopg.Error, AssertionError):
            return None

    def create_database(self, label: str) -> str:
        """A fresh database migrated to head (copied from a migrated template), with
        track_functions = all and the DDL counter installed; returns its DSN."""
        if self.template is None:
            self.template = f"optiqoflow_bench_tpl_{os.getpid()}"
            self._create(self.template, None)
            migrate.upgrade(dsn_with_db(self.admin_dsn, self.template))
            column_policy(dsn_with_db(self.admin_dsn, self.template))
        name = f"optiqoflow_bench_{os.getpid()}_{next(self._counter)}_{label}"[:63]
        self._create(name, self.template)
        dsn = dsn_with_db(self.admin_dsn, name)
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(
                sql.SQL("ALTER DATABASE {} SET track_functions = 'all'").format(sql.Identifier(name))
            )
        install_ddl_counter(dsn)
        return dsn

    def _create(self, name: str, template: str | None) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if template:
                c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)))
            else:
                c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            for name in reversed(self.databases):
                c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))
        self.databases.clear()


def column_policy(dsn: str) -> str | None:
    """BENCH_COLUMN_POLICY=table:column:policy (e.g. sensor_readings:sensor_id:hash) sets
    that column policy (README, "Privacy") in the databases benchmarked; what was done,
    or None. Code without column policies (an older --at) is measured without, and the
    report says so."""
    spec = os.environ.get("BENCH_COLUMN_POLICY")
    if not spec:
        return None
    table_, column, policy = spec.split(":")
    with psycopg.connect(dsn, autocommit=True) as c:
        row = c.execute("SELECT to_regproc('optiqoflow.set_column_policy') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return f"{spec} asked, but this code has no column policies: measured without"
        c.execute("SELECT optiqoflow.set_column_policy(%s, %s, %s)", (table_, column, policy))
    return f"{table_}.{column} = {policy}"


@contextlib.contextmanager
def cluster(dsn: str | None, keep: bool = False) -> Iterator[Cluster]:
    """The server named by `dsn`, else an embedded PostgreSQL 18 in a temporary folder."""
    workdir = Path(tempfile.mkdtemp(prefix="optiqoflow-bench-"))
    embedded: EmbeddedPostgres | None = None
    try:
        if dsn is None:
            embedded = start_embedded(workdir / "pgdata")
            dsn = embedded.dsn
        c = Cluster(admin_dsn=dsn, embedded=embedded, workdir=workdir)
        try:
            yield c
        finally:
            if not keep:
                with contextlib.suppress(psycopg.Error):
                    c.drop_all()
    finally:
        if embedded is not None and not keep:
            embedded.destroy()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def machine() -> dict[str, str]:
    mem = psutil.virtual_memory().total
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": f"{mem / 2**30:.0f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
    }


# --- counters ---------------------------------------------------------------------------

DDL_COUNTER_SQL = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.ddl_log (
    at timestamptz NOT NULL DEFAULT clock_timestamp(), tag text NOT NULL, object text);
-- SECURITY DEFINER (the superuser that runs the benchmark): the DDL it counts is run by
-- optiqoflow_owner, inside the product's own SECURITY DEFINER functions
CREATE OR REPLACE FUNCTION bench.log_ddl() RETURNS event_trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO bench.ddl_log (tag, object)
    SELECT command_tag, object_identity FROM pg_event_trigger_ddl_commands();
END $$;
DROP EVENT TRIGGER IF EXISTS bench_log_ddl;
CREATE EVENT TRIGGER bench_log_ddl ON ddl_command_end EXECUTE FUNCTION bench.log_ddl();
"""


def install_ddl_counter(dsn: str) -> None:
    """Every DDL command (ALTER TABLE, CREATE VIEW, GRANT, COMMENT ...) committed in the
    database is logged in bench.ddl_log by an event trigger (needs a superuser)."""
    try:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute(DDL_COUNTER_SQL)
    except psycopg.Error as e:
        print(f"note: no DDL counter ({e.sqlstate}: {e}); counting from the catalog only",
              file=sys.stderr)


@dataclass
class DdlSnapshot:
    commands: dict[str, int]
    view_regenerations: int
    views: int
    columns: int
    function_calls: dict[str, int]

    def minus(self, before: DdlSnapshot) -> DdlSnapshot:
        return DdlSnapshot(
            commands={k: v - before.commands.get(k, 0) for k, v in self.commands.items()
                      if v - before.commands.get(k, 0)},
            view_regenerations=self.view_regenerations - before.view_regenerations,
            views=self.views - before.views,
            columns=self.columns - before.columns,
            function_calls={k: v - before.function_calls.get(k, 0)
                            for k, v in self.function_calls.items()},
        )

    def alters(self) -> int:
        return self.commands.get("ALTER TABLE", 0)


def ddl_snapshot(dsn: str) -> DdlSnapshot:
    with psycopg.connect(dsn, autocommit=True) as c:
        commands: dict[str, int] = {}
        with contextlib.suppress(psycopg.errors.UndefinedTable):
            for tag, n in c.execute("SELECT tag, count(*) FROM bench.ddl_log GROUP BY tag"):
                commands[str(tag)] = int(n)
        row = c.execute(
            "SELECT coalesce(sum(view_regenerations), 0) FROM tenants.tenant_column_access"
        ).fetchone()
        regen = int(row[0]) if row else 0
        row = c.execute(
            "SELECT count(*) FROM pg_class WHERE relnamespace = 'tenants'::regnamespace "
            "AND relkind = 'v'").fetchone()
        views = int(row[0]) if row else 0
        row = c.execute(
            "SELECT count(*) FROM pg_attribute a JOIN pg_class k ON k.oid = a.attrelid "
            "WHERE k.relnamespace = 'optiqoflow'::regnamespace AND k.relkind IN ('r', 'p') "
            "AND a.attnum > 0 AND NOT a.attisdropped").fetchone()
        columns = int(row[0]) if row else 0
        calls = {
            f"{s}.{f}": int(n)
            for s, f, n in c.execute(
                "SELECT schemaname, funcname, calls FROM pg_stat_user_functions "
                "WHERE funcname IN ('regenerate_tenant_views', '_evolve_columns', "
                "'_track_columns', '_ensure_target_table')")
        }
    return DdlSnapshot(commands, regen, views, columns, calls)


@dataclass
class FunctionStat:
    name: str
    calls: int
    total_ms: float
    self_ms: float


def function_stats(dsn: str) -> dict[str, FunctionStat]:
    """pg_stat_user_functions of the database (flushed by backends that have exited or
    have been idle for a while: read it after the server under test has stopped)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return {
            f"{s}.{f}": FunctionStat(f"{s}.{f}", int(n), float(t), float(st))
            for s, f, n, t, st in c.execute(
                "SELECT schemaname, funcname, calls, total_time, self_time "
                "FROM pg_stat_user_functions")
        }


def function_delta(after: dict[str, FunctionStat], before: dict[str, FunctionStat],
                   per: int) -> list[tuple[str, int, float, float]]:
    """(function, calls, self ms per unit, total ms per unit), by self time, largest first."""
    out = []
    for name, a in after.items():
        b = before.get(name, FunctionStat(name, 0, 0.0, 0.0))
        calls = a.calls - b.calls
        if calls <= 0:
            continue
        out.append((name, calls, (a.self_ms - b.self_ms) / per, (a.total_ms - b.total_ms) / per))
    return sorted(out, key=lambda r: -r[2])


class CpuMeter:
    """CPU seconds (user + system) used by processes between start() and stop():
    a process tree (the postmaster and its children) or a single process."""

    def __init__(self, root: psutil.Process | None, tree: bool) -> None:
        self.root, self.tree = root, tree
        self.before: dict[int, float] = {}
        self.used = 0.0

    def _sample(self) -> dict[int, float]:
        if self.root is None:
            return {}
        procs = [self.root]
        if self.tree:
            with contextlib.suppress(psutil.Error):
                procs += self.root.children(recursive=True)
        out = {}
        for p in procs:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                out[p.pid] = t.user + t.system
        return out

    def start(self) -> None:
        self.before = self._sample()

    def stop(self) -> float:
        after = self._sample()
        self.used = sum(v - self.before.get(pid, 0.0) for pid, v in after.items())
        return self.used


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


# --- server processes ---------------------------------------------------------------------


class ServerProcess:
    """A receiver (ours or a baseline) in a process of its own, on 127.0.0.1:port."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path,
                 ready_path: str = "/readyz") -> None:
        self.name, self.argv, self.env, self.log_path = name, argv, env, log
        self.ready_path = ready_path
        self.port = int(env["BENCH_PORT"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.rss_samples: list[int] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log, cwd=REPO)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready within {timeout:g} s; see {self.log_path}")

    def process(self) -> psutil.Process:
        return psutil.Process(self.pid)

    def status_kib(self, field_name: str) -> int:
        """A field of /proc/PID/status in KiB (VmRSS now, VmHWM the peak so far)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        return 0

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _env(dsn: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPTIQO", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": dsn,
        "OPTIQO_WEBHOOK_SECRET": SECRET,
        "OPTIQO_POOL_MIN": str(POOL_MAX),
        "OPTIQO_POOL_MAX": str(POOL_MAX),
        "OPTIQO_POOL_TIMEOUT_SECONDS": "30",
        "BENCH_PORT": str(port),
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra or {})
    return env


def ours(dsn: str, workdir: Path, tag: str = "ours", env: dict[str, str] | None = None,
         name: str = "ours") -> ServerProcess:
    """The receiver under test: `python -m operations.cli serve`, its JSON log to a file;
    `env`: settings beside the benchmark's (e.g. OPTIQO_GROUP_COMMIT)."""
    port = free_port()
    return ServerProcess(
        name,
        [sys.executable, "-m", CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
        _env(dsn, port, env),
        workdir / f"{tag}-{port}.log",
    )


def baseline(kind: str, dsn: str, workdir: Path, table: str) -> ServerProcess:
    """`python -m bench.baselines ceiling|naive`: see bench/baselines.py."""
    port = free_port()
    return ServerProcess(
        kind,
        [sys.executable, "-m", "bench.baselines", kind, "--port", str(port), "--table", table],
        _env(dsn, port),
        workdir / f"{kind}-{port}.log",
    )


# --- requests and load ----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    body: bytes
    headers: dict[str, str]


def signed(payload: dict[str, Any] | bytes, delivery_id: str | None = None) -> Request:
    """A request as Optiqo sends it: JSON body, hex HMAC-SHA256 of the raw bytes in
    x-webhook-signature, and a delivery id in x-webhook-id."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "content-type": "application/json",
        "x-webhook-signature": hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
        "x-webhook-id": delivery_id or str(uuid.uuid4()),
    }
    return Request(body, headers)


@dataclass
class LoadResult:
    sent: int = 0
    ok: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)  # seconds, of the 2xx answers
    elapsed: float = 0.0
    first_error: str | None = None
    answers: dict[str, int] = field(default_factory=dict)  # the JSON "status" of 2xx answers

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


async def run_load(url: str, requests: Sequence[Request], concurrency: int,
                   max_seconds: float, check: bool = True) -> LoadResult:
    """POST `requests` in order with `concurrency` workers over keep-alive connections;
    stops when they are all sent or after `max_seconds`. Latency per request, client side."""
    result = LoadResult()
    counter = itertools.count()
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        deadline = t0 + max_seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                i = next(counter)
                if i >= len(requests):
                    return
                req = requests[i]
                s = time.perf_counter()
                async with session.post(url, data=req.body, headers=req.headers) as resp:
                    data = await resp.read()
                    status = resp.status
                lat = time.perf_counter() - s
                result.sent += 1
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.ok += 1
                    result.latencies.append(lat)
                    if check:
                        answer = str(json.loads(data).get("status"))
                        result.answers[answer] = result.answers.get(answer, 0) + 1
                elif result.first_error is None:
                    result.first_error = f"{status}: {data[:300]!r}"

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - t0
    return result


# --- statistics and output -------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


@dataclass
class Spread:
    values: list[float]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def fmt(self, digits: int = 0, unit: str = "") -> str:
        f = f"{{:,.{digits}f}}"
        return (f"{f.format(self.median)}{unit} ({f.format(self.min)}-{f.format(self.max)})")


def ratio_spread(ours_values: Sequence[float], base_values: Sequence[float]) -> Spread:
    """Per-repetition ratios (ours / baseline measured in the same repetition)."""
    return Spread([a / b for a, b in zip(ours_values, base_values, strict=True) if b])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "**pass**" if ok else "**MISS**"


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"
