"""Citus tenant node xids and locks

Frozen function copies: optiqoflow/_lock_rows.sql, optiqoflow/_tenant_locks.sql, optiqoflow/_write_records.sql, optiqoflow/full_sync_batch.sql

Revision ID: 0007_citus_tenant_node_xids_and
Revises: 0006_citus_node_local_locks
Create Date: 2026-11-27T03:31:03+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0007_citus_tenant_node_xids_and'
down_revision = '0006_citus_node_local_locks'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
