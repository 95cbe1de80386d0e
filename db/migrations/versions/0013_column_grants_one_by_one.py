"""column grants one by one

Frozen function copies: optiqoflow/_secure_target_table.sql

Revision ID: 0013_column_grants_one_by_one
Revises: 0012_citus_status_prune_replay
Create Date: 2026-12-07T17:44:35+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0013_column_grants_one_by_one'
down_revision = '0012_citus_status_prune_replay'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
