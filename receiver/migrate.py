"""Alembic, driven from Python: `optiqoflow migrate` and the helpers tests use.

There is no alembic.ini: the configuration lives in pyproject.toml (`[tool.alembic]`)
for the `alembic` command in a checkout, and is built here for the installed package.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from receiver.paths import migrations_dir


def sqlalchemy_url(dsn: str) -> str:
    """A libpq URL (postgresql://...) as SQLAlchemy's psycopg 3 dialect wants it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    if "=" in dsn:  # key=value conninfo: hand it over untouched
        from urllib.parse import quote

        return "postgresql+psycopg:///?" + "&".join(
            f"{k}={quote(v)}" for k, v in (kv.split("=", 1) for kv in dsn.split())
        )
    raise ValueError(f"not a PostgreSQL connection string: {dsn!r}")


def alembic_config(dsn: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.attributes["dsn"] = dsn
    return cfg


def upgrade(dsn: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(dsn), revision)


def downgrade(dsn: str, revision: str) -> None:
    command.downgrade(alembic_config(dsn), revision)


def head_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://unused"))
    head = script.get_current_head()
    assert head is not None
    return head


def _run(args: argparse.Namespace) -> int:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print(
            "optiqoflow migrate: DATABASE_URL is not set.\n"
            "  export DATABASE_URL=postgresql://user@host:5432/dbname",
            file=sys.stderr,
        )
        return 2
    if args.revision == "head" or not args.down:
        upgrade(dsn, args.revision)
    else:
        downgrade(dsn, args.revision)
    print(f"optiqoflow migrate: database at {args.revision}")
    return 0


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "migrate", help="upgrade the database named by DATABASE_URL to head"
    )
    p.add_argument("revision", nargs="?", default="head", help="target revision (default head)")
    p.add_argument("--down", action="store_true", help="downgrade to REVISION instead")
    p.set_defaults(func=_run)
