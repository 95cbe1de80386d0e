"""version rule and record validation once; one writer template

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_record_fault.sql, optiqoflow/_verdict.sql, optiqoflow/_writer.sql, optiqoflow/_writer_name.sql, optiqoflow/delete_record.sql, optiqoflow/full_sync_batch.sql, optiqoflow/upsert_record.sql

Revision ID: 0032_version_rule_and_record_val
Revises: 0031_drop_stale_full_sync_batch
Create Date: 2026-12-07T21:13:09+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0032_version_rule_and_record_val'
down_revision = '0031_drop_stale_full_sync_batch'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
