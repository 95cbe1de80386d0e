"""one test for Citus, optiqoflow._on_citus

Frozen function copies: optiqoflow/_citus_table_kind.sql, optiqoflow/_lock.sql, optiqoflow/_lock_events.sql, optiqoflow/_on_citus.sql, optiqoflow/_rows_are_here.sql, optiqoflow/_tenant_locks.sql, optiqoflow/erase_tenant.sql, optiqoflow/upsert_record.sql

Revision ID: 0034_one_test_for_citus_optiqofl
Revises: 0033_writers_run_by_execute_opti
Create Date: 2026-12-07T21:26:03+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0034_one_test_for_citus_optiqofl'
down_revision = '0033_writers_run_by_execute_opti'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
