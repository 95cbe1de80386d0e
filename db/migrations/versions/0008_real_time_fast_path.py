"""real-time fast path

Frozen function copies: optiqoflow/_lock_rows.sql, optiqoflow/_row_lock_bucket.sql, optiqoflow/_row_lock_space.sql, optiqoflow/_writer.sql, optiqoflow/_writer_name.sql, optiqoflow/apply_webhook.sql, optiqoflow/apply_webhook_batch.sql, optiqoflow/upsert_record.sql

Revision ID: 0008_real_time_fast_path
Revises: 0007_citus_tenant_node_xids_and
Create Date: 2026-11-27T04:45:49+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0008_real_time_fast_path'
down_revision = '0007_citus_tenant_node_xids_and'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
