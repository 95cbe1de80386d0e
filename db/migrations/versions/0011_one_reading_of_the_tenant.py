"""one reading of the tenant

Frozen function copies: optiqoflow/_payload_tenant.sql, optiqoflow/apply_tenant_webhook.sql, optiqoflow/apply_webhook.sql

Revision ID: 0011_one_reading_of_the_tenant
Revises: 0010_tidy_node_check_and_writer
Create Date: 2026-11-27T05:45:14+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0011_one_reading_of_the_tenant'
down_revision = '0010_tidy_node_check_and_writer'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
