"""Schemas, roles, bookkeeping tables, the 21 target tables, the dashboard's tables.

Revision ID: 0001_schema
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from pathlib import Path

from alembic import op

revision = "0001_schema"
down_revision = None
branch_labels = None
depends_on = None

_SQL = Path(__file__).with_suffix(".sql")


def _run(sql: str) -> None:
    # the raw psycopg connection: no SQLAlchemy bind-parameter parsing
    op.get_bind().connection.driver_connection.execute(sql)


def upgrade() -> None:
    _run(_SQL.read_text())


def downgrade() -> None:
    # Roles are cluster-wide and may be shared (Supabase): they stay.
    _run(
        """
        DROP TABLE IF EXISTS public.chart_table_dependencies, public.chart_data_cache,
                             public.charts;
        DROP SCHEMA IF EXISTS tenants CASCADE;
        DROP SCHEMA IF EXISTS optiqoflow CASCADE;
        DROP SCHEMA IF EXISTS optiqoflow_gen CASCADE;
        """
    )
