"""Which database a command works on: `DATABASE_URL`, checked before any connection."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict

from operations.errors import UsageError


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
    if not dsn:
        raise UsageError(
            "DATABASE_URL is not set: export DATABASE_URL=postgresql://user@host:5432/dbname"
        )
    yield check_dsn(dsn, "DATABASE_URL")
