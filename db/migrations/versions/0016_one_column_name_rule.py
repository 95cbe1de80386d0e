"""one column name rule

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_is_column_name.sql

Revision ID: 0016_one_column_name_rule
Revises: 0015_batch_ids_by_is_uuid_text
Create Date: 2026-11-27T05:59:05+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0016_one_column_name_rule'
down_revision = '0015_batch_ids_by_is_uuid_text'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
