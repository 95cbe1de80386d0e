"""freshness: tenants.sync_status, chart_data_cache.data_as_of, optiqoflow.health_metrics()

Frozen function copies: optiqoflow/health_metrics.sql

Revision ID: 0007_freshness
Revises: 0006_refusals_once_bounded
Create Date: 2026-12-07T16:45:13+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0007_freshness'
down_revision = '0006_refusals_once_bounded'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    run_sql(op, (Path(__file__).parent / "0007_freshness.sql").read_text())
    own_everything(op)


def downgrade() -> None:
    run_sql(op, "DROP VIEW IF EXISTS tenants.sync_status; "
                "ALTER TABLE public.chart_data_cache DROP COLUMN IF EXISTS data_as_of")
    revert_revision(op, revision)
