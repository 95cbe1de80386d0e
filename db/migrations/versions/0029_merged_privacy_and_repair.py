"""merged privacy and repair

Frozen function copies: optiqoflow/_push_columns.sql, optiqoflow/_reconcile.sql, optiqoflow/apply_webhook.sql, optiqoflow/full_sync_batch.sql

Revision ID: 0029_merged_privacy_and_repair
Revises: 0028_apply_column_policies_one_u
Create Date: 2026-12-07T19:51:51+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0029_merged_privacy_and_repair'
down_revision = '0028_apply_column_policies_one_u'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
