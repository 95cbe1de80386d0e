"""canonical tenant order

Frozen function copies: optiqoflow/apply_webhook_group.sql

Revision ID: 0021_canonical_tenant_order
Revises: 0020_group_order_and_citus_guard
Create Date: 2026-11-27T07:44:25+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0021_canonical_tenant_order'
down_revision = '0020_group_order_and_citus_guard'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
