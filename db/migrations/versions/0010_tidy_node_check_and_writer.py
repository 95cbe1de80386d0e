"""tidy node check and writer

Frozen function copies: optiqoflow/_rows_are_here.sql, optiqoflow/_tenant_locks.sql, optiqoflow/_tenant_snapshot.sql, optiqoflow/_tenant_xid.sql, optiqoflow/_writer.sql, optiqoflow/upsert_record.sql

Revision ID: 0010_tidy_node_check_and_writer
Revises: 0009_tenant_id_without_a_call
Create Date: 2026-11-27T05:21:48+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0010_tidy_node_check_and_writer'
down_revision = '0009_tenant_id_without_a_call'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
