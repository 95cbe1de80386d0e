"""all buckets for big batches

Frozen function copies: optiqoflow/_lock_rows.sql

Revision ID: 0018_all_buckets_for_big_batches
Revises: 0017_group_commit
Create Date: 2026-11-27T07:16:34+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0018_all_buckets_for_big_batches'
down_revision = '0017_group_commit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
