"""drop the seven-argument full_sync_batch that a merged revision brought back

0023 replaced optiqoflow.full_sync_batch(uuid, text, jsonb, bigint, bigint, text,
timestamptz) with the eight-argument function (p_buckets). 0027, written beside it, froze
the seven-argument function again, so a database migrated through both holds the two
overloads and a call by the first seven arguments is ambiguous. This revision drops the
seven-argument one. No function file changes.

Revision ID: 0031_drop_stale_full_sync_batch
Revises: 0030_citus_takes_the_privacy_fun
Create Date: 2026-12-07T20:16:00+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import own_everything, run_sql

revision = '0031_drop_stale_full_sync_batch'
down_revision = '0030_citus_takes_the_privacy_fun'
branch_labels = None
depends_on = None


def upgrade() -> None:
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow.full_sync_batch"
                "(uuid, text, jsonb, bigint, bigint, text, timestamptz)")
    own_everything(op)


def downgrade() -> None:
    pass  # the overload was a mistake of the merge: nothing to bring back
