"""Alembic environment: raw SQL migrations on PostgreSQL through psycopg 3.

The URL comes from the caller (`optiqoflow migrate`, tests) or from DATABASE_URL when
`alembic upgrade head` is run in a checkout.
"""

from __future__ import annotations

import os

from alembic import context
from optiqoflow_db.migrate import sqlalchemy_url
from sqlalchemy import create_engine, pool

config = context.config


def _dsn() -> str:
    dsn = config.attributes.get("dsn") or os.environ.get("DATABASE_URL")
    if not dsn:
        raise SystemExit("DATABASE_URL is not set: export DATABASE_URL=postgresql://...")
    return str(dsn)


def run_migrations_online() -> None:
    engine = create_engine(sqlalchemy_url(_dsn()), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # every revision in its own transaction: DDL is transactional in PostgreSQL
        context.configure(
            connection=connection,
            transaction_per_migration=True,
            version_table_schema="public",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against a database")
run_migrations_online()
