"""batch ids by is_uuid_text

Frozen function copies: optiqoflow/apply_webhook_batch.sql

Revision ID: 0015_batch_ids_by_is_uuid_text
Revises: 0014_one_version_pattern
Create Date: 2026-11-27T05:58:39+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0015_batch_ids_by_is_uuid_text'
down_revision = '0014_one_version_pattern'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
