"""_write_records: its calls aligned

Frozen function copies: optiqoflow/_write_records.sql

Revision ID: 0038_write_records_its_calls_al
Revises: 0037_re_freeze_full_sync_batch_w
Create Date: 2026-12-07T21:55:56+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0038_write_records_its_calls_al'
down_revision = '0037_re_freeze_full_sync_batch_w'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
