"""tenant id without a call

Frozen function copies: optiqoflow/apply_webhook.sql

Revision ID: 0009_tenant_id_without_a_call
Revises: 0008_real_time_fast_path
Create Date: 2026-11-27T05:07:05+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0009_tenant_id_without_a_call'
down_revision = '0008_real_time_fast_path'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
