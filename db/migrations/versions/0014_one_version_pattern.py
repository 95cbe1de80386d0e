"""one version pattern

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_is_iso_timestamp_text.sql, optiqoflow/apply_webhook.sql, optiqoflow/upsert_record.sql

Revision ID: 0014_one_version_pattern
Revises: 0013_one_lock_call
Create Date: 2026-11-27T05:54:05+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0014_one_version_pattern'
down_revision = '0013_one_lock_call'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
