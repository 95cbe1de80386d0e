"""distribute keeps sync_status

Frozen function copies: optiqoflow/distribute.sql

Revision ID: 0010_distribute_keeps_sync_statu
Revises: 0009_batch_envelopes_linear_and
Create Date: 2026-12-07T17:00:55+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0010_distribute_keeps_sync_statu'
down_revision = '0009_batch_envelopes_linear_and'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
