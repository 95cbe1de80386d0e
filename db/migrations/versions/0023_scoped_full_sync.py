"""scoped full sync

1. 0023_scoped_full_sync_before.sql: sync_runs.buckets; drops the seven-argument
   full_sync_batch, which becomes full_sync_batch(..., p_buckets text[] DEFAULT NULL);
2. the function files: a FULL_SYNC run limited to buckets removes only their rows;
3. ownership.sql.

Frozen function copies: optiqoflow/apply_webhook.sql, optiqoflow/full_sync_batch.sql

Revision ID: 0023_scoped_full_sync
Revises: 0022_reconcile_delivery
Create Date: 2026-12-07T19:03:05+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0023_scoped_full_sync'
down_revision = '0022_reconcile_delivery'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0023_scoped_full_sync_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow.full_sync_batch"
                "(uuid, text, jsonb, bigint, bigint, text, timestamptz, text[])")
    revert_revision(op, revision)
    run_sql(op, "ALTER TABLE optiqoflow.sync_runs DROP COLUMN IF EXISTS buckets")
