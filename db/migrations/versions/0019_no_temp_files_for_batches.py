"""no temp files for batches

Frozen function copies: optiqoflow/full_sync_batch.sql

Revision ID: 0019_no_temp_files_for_batches
Revises: 0018_all_buckets_for_big_batches
Create Date: 2026-11-27T07:19:06+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0019_no_temp_files_for_batches'
down_revision = '0018_all_buckets_for_big_batches'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
