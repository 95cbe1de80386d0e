"""merged target table creation

Frozen function copies: optiqoflow/_ensure_target_table.sql

Revision ID: 0024_merged_target_table_creatio
Revises: 0023_scoped_full_sync
Create Date: 2026-12-07T19:43:35+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0024_merged_target_table_creatio'
down_revision = '0023_scoped_full_sync'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
