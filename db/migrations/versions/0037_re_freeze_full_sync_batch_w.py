"""re-freeze full_sync_batch with both branches' changes

Frozen function copies: optiqoflow/full_sync_batch.sql

Revision ID: 0037_re_freeze_full_sync_batch_w
Revises: 0036_scoped_full_sync_removal_on
Create Date: 2026-12-07T21:48:08+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0037_re_freeze_full_sync_batch_w'
down_revision = '0036_scoped_full_sync_removal_on'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
