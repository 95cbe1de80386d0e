"""column policies: keep, block, hash

Frozen function copies: optiqoflow/_keyed_hash.sql, optiqoflow/_policy_payload.sql, optiqoflow/_policy_record.sql, optiqoflow/apply_column_policies.sql, optiqoflow/apply_webhook.sql, optiqoflow/full_sync_batch.sql, optiqoflow/set_column_policy.sql, optiqoflow/upsert_record.sql

Revision ID: 0027_column_policies_keep_block
Revises: 0026_record_erasure_erase_record
Create Date: 2026-12-07T19:07:05+00:00

1. 0027_column_policies_before.sql: optiqoflow.column_policies, optiqoflow.column_hash_key;
2. the function files;
3. ownership.sql.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0027_column_policies_keep_block'
down_revision = '0026_record_erasure_erase_record'
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0027_column_policies_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(op, "DROP TABLE IF EXISTS optiqoflow.column_policies, optiqoflow.column_hash_key")
