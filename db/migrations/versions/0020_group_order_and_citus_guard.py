"""group order and citus guard

Frozen function copies: optiqoflow/_lock_events.sql, optiqoflow/apply_webhook_group.sql

Revision ID: 0020_group_order_and_citus_guard
Revises: 0019_no_temp_files_for_batches
Create Date: 2026-11-27T07:30:49+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0020_group_order_and_citus_guard'
down_revision = '0019_no_temp_files_for_batches'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
