"""citus owner login and grants

Frozen function copies: optiqoflow/_evolve_columns.sql, optiqoflow/distribute.sql, optiqoflow/set_tenant_claim.sql

Revision ID: 0011_citus_owner_login_and_grant
Revises: 0010_distribute_keeps_sync_statu
Create Date: 2026-12-07T17:06:13+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0011_citus_owner_login_and_grant'
down_revision = '0010_distribute_keeps_sync_statu'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
