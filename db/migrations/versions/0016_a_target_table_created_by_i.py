"""a target table created by its first push on a distributed Citus cluster is distributed at once (colocated by tenant_id)

Frozen function copies: optiqoflow/_ensure_target_table.sql

Revision ID: 0016_a_target_table_created_by_i
Revises: 0015_tenants_sync_status_read_th
Create Date: 2026-12-07T18:27:30+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0016_a_target_table_created_by_i'
down_revision = '0015_tenants_sync_status_read_th'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
