"""bucketed fingerprints

1. 0020_bucketed_fingerprints_before.sql: drops fingerprint_query(text, text), which
   becomes fingerprint_query(text, text, integer DEFAULT 0);
2. the function files: the per-bucket figures (bucket_fingerprints);
3. ownership.sql.

Frozen function copies: optiqoflow/bucket_fingerprints.sql, optiqoflow/fingerprint_query.sql

Revision ID: 0020_bucketed_fingerprints
Revises: 0019_first_push_index_scan_repla
Create Date: 2026-12-07T18:49:23+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0020_bucketed_fingerprints'
down_revision = '0019_first_push_index_scan_repla'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0020_bucketed_fingerprints_before.sql").read_text())
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow.fingerprint_query(text, text, integer)")
    revert_revision(op, revision)
