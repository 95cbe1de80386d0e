"""record erasure: erase_record with a receipt and a tombstone

Frozen function copies: optiqoflow/erase_record.sql, optiqoflow/erase_tenant.sql

Revision ID: 0026_record_erasure_erase_record
Revises: 0025_tenant_erasure_erase_tenant
Create Date: 2026-12-07T19:01:00+00:00

1. 0026_record_erasure_erase_record_before.sql: optiqoflow.record_erasures;
2. the function files;
3. ownership.sql.
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0026_record_erasure_erase_record'
down_revision = '0025_tenant_erasure_erase_tenant'
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0026_record_erasure_erase_record_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(op, "DROP TABLE IF EXISTS optiqoflow.record_erasures")
