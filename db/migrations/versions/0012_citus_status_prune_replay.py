"""citus status prune replay

Frozen function copies: optiqoflow/_apply_tenant_webhook.sql, optiqoflow/_apply_without_tenant.sql, optiqoflow/_sync_health.sql, optiqoflow/apply_tenant_webhook.sql, optiqoflow/distribute.sql, optiqoflow/prune_logs.sql, optiqoflow/replay_webhook.sql

Revision ID: 0012_citus_status_prune_replay
Revises: 0011_citus_owner_login_and_grant
Create Date: 2026-12-07T17:16:14+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0012_citus_status_prune_replay'
down_revision = '0011_citus_owner_login_and_grant'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    apply_revision(op, revision)
    # optiqoflow.sync_health as SELECT * FROM optiqoflow._sync_health(): a Citus
    # coordinator can plan it
    run_sql(op, (_HERE / "0012_citus_status_prune_replay.sql").read_text())
    own_everything(op)


def downgrade() -> None:
    # first the view as it was, so that dropping _sync_health takes nothing with it
    run_sql(op, (_HERE / "0012_citus_status_prune_replay_down.sql").read_text())
    revert_revision(op, revision)
