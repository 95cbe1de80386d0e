"""first push index scan, replays out of lag

Frozen function copies: optiqoflow/health_metrics.sql, tenants/regenerate_tenant_views.sql

Revision ID: 0019_first_push_index_scan_repla
Revises: 0018_distribute_its_view_and_tru
Create Date: 2026-12-07T19:19:36+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0019_first_push_index_scan_repla'
down_revision = '0018_distribute_its_view_and_tru'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
