"""locks only the owner can take

1. 0014_locks_only_the_owner_can_ta_before.sql: optiqoflow.lock_slots, 81,920 rows;
2. the function files: the locks of deliveries as row locks on it (advisory on Citus);
3. ownership.sql.

Frozen function copies: optiqoflow/_ddl_lock.sql, optiqoflow/_evolve_columns.sql, optiqoflow/_generate_call_writer.sql, optiqoflow/_lock.sql, optiqoflow/_lock_events.sql, optiqoflow/_lock_key.sql, optiqoflow/_lock_rows.sql, optiqoflow/_lock_slot.sql, optiqoflow/_row_lock_bucket.sql, optiqoflow/_row_lock_slot.sql, optiqoflow/_row_lock_space.sql, optiqoflow/_tenant_locks.sql, optiqoflow/full_sync_batch.sql, optiqoflow/prune_logs.sql, optiqoflow/upsert_record.sql, tenants/regenerate_tenant_views.sql

Revision ID: 0014_locks_only_the_owner_can_ta
Revises: 0013_column_grants_one_by_one
Create Date: 2026-12-07T18:21:44+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0014_locks_only_the_owner_can_ta'
down_revision = '0013_column_grants_one_by_one'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0014_locks_only_the_owner_can_ta_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(op, "DROP TABLE IF EXISTS optiqoflow.lock_slots")
