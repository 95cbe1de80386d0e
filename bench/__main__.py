"""python -m bench COMMAND [--quick] [--reps N] [--dsn DSN] [--out FILE.md] [--json FILE]

Commands:
  all        full-sync, realtime, growth, profile, pool, repair, in that order
  full-sync  target 1 (FULL_SYNC through HTTP vs SQL ceiling vs COPY) and 5 (peak RSS)
  realtime   target 2 (events through HTTP vs HTTP ceiling vs naive, c = 1/8/32) and 4 (DDL)
  growth     target 3 (latency at 10k/100k/1M rows, FULL_SYNC sweep cost, 1,000 x 21 views)
  profile    where the time goes: pg_stat_user_functions and py-spy of the receiver
  pool       the receiver's gate against waiting in psycopg_pool's queue (CPU per call)
  repair     repairing 10 lost changes in a 1M-row table (RECONCILE + scoped FULL_SYNC)
             against a full re-sync: bytes and time
  erasure    issue 23 point 5: others' p99 while a 1M-row tenant is erased (not in `all`)

--at REV: benchmark the committed code of REV (a clean `git archive` export in a
temporary folder, with this bench/), not the working tree.
--quick: smaller sizes (a few minutes for `all`). Without --dsn an embedded PostgreSQL 18
is started in a temporary folder (fsync on, synchronous_commit on) and removed afterwards.
Each command prints Markdown; --out also writes it (with the machine) to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common, erasure, full_sync, growth, pool, profile, realtime, repair

Runner = Callable[[common.Cluster, bool, int], tuple[str, dict[str, Any]]]
COMMANDS: dict[str, Runner] = {
    "full-sync": full_sync.run,
    "realtime": realtime.run,
    "growth": growth.run,
    "profile": profile.run,
    "pool": pool.run,
    "repair": repair.run,
    "erasure": erasure.run,
}


def source() -> str:
    """Which code is measured: a commit, and whether db/ or receiver/ had local changes."""
    if os.environ.get("BENCH_SOURCE"):
        return os.environ["BENCH_SOURCE"]
    try:
        rev = subprocess.run(["git", "-C", str(common.REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(common.REPO), "status", "--porcelain", "--",
                                "db", "receiver"], capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"working tree of {rev}" + (" WITH uncommitted changes in db/ or receiver/" if dirty else
                                       " (db/ and receiver/ as committed)")


def run_at(rev: str, argv: list[str]) -> int:
    """Export `rev` (git archive) to a temporary folder, put this bench/ in it, and run
    the same command there: the receiver and migrations come from that export."""
    full = subprocess.run(["git", "-C", str(common.REPO), "rev-parse", "--short", rev],
                          capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix=f"optiqoflow-src-{full}-") as tmp:
        src = Path(tmp)
        archive = subprocess.run(["git", "-C", str(common.REPO), "archive", full],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
        (src / "optiqoflow_db").symlink_to("db")  # the package name of db/, as installed
        shutil.rmtree(src / "bench", ignore_errors=True)
        shutil.copytree(Path(__file__).resolve().parent, src / "bench",
                        ignore=shutil.ignore_patterns("__pycache__"))
        env = {**os.environ, "PYTHONPATH": str(src),
               "BENCH_SOURCE": f"commit {full} (clean export of {rev})",
               "BENCH_ARGV": " ".join(sys.argv[1:])}
        return subprocess.run([sys.executable, "-m", "bench", *argv], cwd=src, env=env).returncode


def header(cl: common.Cluster, argv: list[str]) -> str:
    m = common.machine()
    settings = cl.settings()
    server = "embedded PostgreSQL (operations.embedded)" if cl.embedded else "the server named by --dsn"
    return "\n".join([
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: `python -m bench {os.environ.get('BENCH_ARGV') or ' '.join(argv)}`\n",
        f"- code measured: {source()}",
        f"- machine: {m['cores']} cores ({m['cpu']}), {m['memory']} memory, {m['os']}, Python {m['python']}",
        f"- PostgreSQL {cl.version()}, {server}: "
        + ", ".join(f"{k}={v}" for k, v in sorted(settings.items()))
        + ", track_functions=all (benchmark databases)",
        f"- every server process: pool of {common.POOL_MAX} connections (min = max); client: "
        "one aiohttp process, keep-alive connections = concurrency; all on 127.0.0.1",
        f"- column policy (BENCH_COLUMN_POLICY): {os.environ.get('BENCH_COLUMN_POLICY') or 'none'}",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("all", *COMMANDS))
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3 quick, 5 full)")
    ap.add_argument("--dsn", default=None, help="superuser DSN of an existing server")
    ap.add_argument("--out", type=Path, default=None, help="write the Markdown here too")
    ap.add_argument("--json", type=Path, default=None, help="write the raw figures here")
    ap.add_argument("--keep", action="store_true", help="keep the server and databases")
    ap.add_argument("--at", default=None, metavar="REV",
                    help="measure the committed code of REV (clean export), not the working tree")
    a = ap.parse_args(argv)
    if a.at:
        i = argv.index("--at")
        rest = argv[:i] + argv[i + 2:]
        if a.out:
            rest = [x if x != str(a.out) else str(a.out.resolve()) for x in rest]
        if a.json:
            rest = [x if x != str(a.json) else str(a.json.resolve()) for x in rest]
        return run_at(a.at, rest)
    reps = a.reps or (3 if a.quick else 5)
    names = [c for c in COMMANDS if c != "erasure"] if a.command == "all" else [a.command]
    sections: list[str] = []
    data: dict[str, Any] = {}
    with common.cluster(a.dsn, keep=a.keep) as cl:
        head = header(cl, argv)
        print(head, flush=True)
        for name in names:
            t0 = time.perf_counter()
            print(f"== {name} ...", file=sys.stderr, flush=True)
            md, d = COMMANDS[name](cl, a.quick, reps)
            took = time.perf_counter() - t0
            md += f"\n_({name}: {took:.0f} s)_\n"
            print(md, flush=True)
            sections.append(md)
            data[name] = d
            if a.out:  # written as it goes: a long run keeps what it has
                a.out.write_text(head + "\n" + "\n".join(sections))
            if a.json:
                a.json.write_text(json.dumps(data, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
