"""reconcile delivery

Frozen function copies: optiqoflow/_reconcile.sql, optiqoflow/apply_webhook.sql, optiqoflow/apply_webhook_batch.sql, optiqoflow/apply_webhook_group.sql

Revision ID: 0022_reconcile_delivery
Revises: 0021_row_lineage
Create Date: 2026-12-07T19:00:07+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0022_reconcile_delivery'
down_revision = '0021_row_lineage'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
