"""row lineage

1. 0021_row_lineage_before.sql: every target table gets _of_log_id (the webhook_logs id
   of the delivery that last wrote the row);
2. the function files: apply_webhook sets the log id before it writes, the writers
   (generator w4) record it, new tables have the column;
3. ownership.sql. Downgrade: the previous functions, then 0021_row_lineage_down.sql.

Frozen function copies: optiqoflow/_ensure_target_table.sql, optiqoflow/_writer.sql, optiqoflow/_writer_name.sql, optiqoflow/apply_webhook.sql

Revision ID: 0021_row_lineage
Revises: 0020_bucketed_fingerprints
Create Date: 2026-12-07T18:52:04+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0021_row_lineage'
down_revision = '0020_bucketed_fingerprints'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0021_row_lineage_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(op, (_HERE / "0021_row_lineage_down.sql").read_text())
