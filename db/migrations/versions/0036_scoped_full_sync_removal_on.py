"""scoped FULL_SYNC removal: one md5 per row

Frozen function copies: optiqoflow/full_sync_batch.sql

Revision ID: 0036_scoped_full_sync_removal_on
Revises: 0035_reconcile_ours_our_figures
Create Date: 2026-12-07T21:26:16+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0036_scoped_full_sync_removal_on'
down_revision = '0035_reconcile_ours_our_figures'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
