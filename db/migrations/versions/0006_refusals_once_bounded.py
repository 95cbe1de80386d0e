"""refusals once, bounded: one copy of a refused payload, a retention for waiting refusals, replay never of bytes as is

Frozen function copies: optiqoflow/apply_webhook.sql, optiqoflow/prune_logs.sql, optiqoflow/record_unusable_delivery.sql, optiqoflow/replay_webhook.sql

Revision ID: 0006_refusals_once_bounded
Revises: 0005_supabase_fit
Create Date: 2026-12-07T16:33:35+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0006_refusals_once_bounded'
down_revision = '0005_supabase_fit'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # prune_logs gains the refusals' retention: a new signature, so the old one goes
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow.prune_logs(interval)")
    apply_revision(op, revision)
    # the log keeps a refusal's reason, refused_deliveries its payload or bytes: one copy
    run_sql(
        op,
        """
        UPDATE optiqoflow.webhook_logs l SET payload = NULL, raw_body = NULL
         WHERE (l.payload IS NOT NULL OR l.raw_body IS NOT NULL)
           AND EXISTS (SELECT FROM optiqoflow.refused_deliveries r WHERE r.log_id = l.id);
        COMMENT ON TABLE optiqoflow.webhook_logs IS
            'One row per delivery, partitioned by day (received_at, UTC); optiqoflow.prune_logs() drops partitions past the retention. A refused or unusable delivery''s payload or bytes are kept once, in refused_deliveries (by log_id), until resolved or past the refusals'' retention; replay them with optiqoflow.replay_webhook.';
        """,
    )
    own_everything(op)


def downgrade() -> None:
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow.prune_logs(interval, interval)")
    revert_revision(op, revision)
