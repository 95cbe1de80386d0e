"""group commit

Frozen function copies: optiqoflow/_lock_events.sql, optiqoflow/apply_webhook_batch.sql, optiqoflow/apply_webhook_group.sql

Revision ID: 0017_group_commit
Revises: 0016_one_column_name_rule
Create Date: 2026-11-27T06:41:09+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0017_group_commit'
down_revision = '0016_one_column_name_rule'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
