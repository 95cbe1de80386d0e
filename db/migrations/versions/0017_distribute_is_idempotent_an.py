"""distribute() is idempotent and cheap: a second run changes nothing (no view re-created, no function altered), and the coordinator's local copy of distributed rows is truncated

Frozen function copies: optiqoflow/distribute.sql

Revision ID: 0017_distribute_is_idempotent_an
Revises: 0016_a_target_table_created_by_i
Create Date: 2026-12-07T18:31:05+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0017_distribute_is_idempotent_an'
down_revision = '0016_a_target_table_created_by_i'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
