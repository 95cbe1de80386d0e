"""faster validation and writers

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_columns.sql, optiqoflow/_is_uuid_text.sql, optiqoflow/_key_types.sql, optiqoflow/_lock_rows.sql, optiqoflow/_log_tenant.sql, optiqoflow/_tenant_snapshot.sql, optiqoflow/_tenant_xid.sql, optiqoflow/_track_columns.sql, optiqoflow/_write_records.sql, optiqoflow/_writer.sql, optiqoflow/apply_tenant_webhook.sql, optiqoflow/apply_webhook.sql, optiqoflow/distribute.sql, optiqoflow/full_sync_batch.sql, optiqoflow/upsert_record.sql

Revision ID: 0005_faster_validation_and_write
Revises: 0004_operations
Create Date: 2026-11-27T02:23:49+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0005_faster_validation_and_write'
down_revision = '0004_operations'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
