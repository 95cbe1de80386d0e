"""tenant erasure: erase_tenant, readmit_tenant, closed tenants refused (OF028)

Frozen function copies: optiqoflow/_lock_rows.sql, optiqoflow/apply_webhook.sql, optiqoflow/erase_tenant.sql, optiqoflow/readmit_tenant.sql, optiqoflow/record_unusable_delivery.sql, optiqoflow/upsert_record.sql

Revision ID: 0025_tenant_erasure_erase_tenant
Revises: 0024_merged_target_table_creatio
Create Date: 2026-12-07T18:54:25+00:00

1. 0025_tenant_erasure_erase_tenant_before.sql: optiqoflow.tenant_erasures;
2. the function files;
3. ownership.sql.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0025_tenant_erasure_erase_tenant'
down_revision = '0024_merged_target_table_creatio'
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0025_tenant_erasure_erase_tenant_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(op, "DROP TABLE IF EXISTS optiqoflow.tenant_erasures")
