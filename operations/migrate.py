"""`optiqoflow migrate` (upgrade a database to head) and `optiqoflow freeze` (developers:
freeze changed function files into a new revision)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from alembic.util import CommandError
from optiqoflow_db import migrate
from optiqoflow_db.migrations import freeze

from operations.database import target


def _run_migrate(args: argparse.Namespace) -> int:
    try:
        with target("migrate") as dsn:
            if args.revision == "head" or not args.down:
                migrate.upgrade(dsn, args.revision)
            else:
                migrate.downgrade(dsn, args.revision)
    except (migrate.MigrationError, CommandError) as e:
        print(f"optiqoflow migrate: {e}", file=sys.stderr)
        return 1
    print(f"optiqoflow migrate: database at {args.revision}")
    return 0


def _run_freeze(args: argparse.Namespace) -> int:
    revision = freeze.freeze(args.message)
    if revision is None:
        print("optiqoflow freeze: every function file matches its latest frozen copy")
    else:
        print(f"optiqoflow freeze: new revision {revision}")
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "migrate",
        help="upgrade the database (DATABASE_URL, else the embedded one) to head",
    )
    p.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    p.add_argument("--down", action="store_true", help="downgrade to REVISION instead")
    p.set_defaults(func=_run_migrate)

    p = sub.add_parser(
        "freeze", help="(developers) freeze changed db/functions files into a new migration"
    )
    p.add_argument("-m", "--message", required=True, help="why the functions changed")
    p.set_defaults(func=_run_freeze)
