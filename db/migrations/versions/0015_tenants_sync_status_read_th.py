"""tenants.sync_status read through optiqoflow._sync_status(): router queries a Citus coordinator can plan

Frozen function copies: optiqoflow/_sync_status.sql

Revision ID: 0015_tenants_sync_status_read_th
Revises: 0014_locks_only_the_owner_can_ta
Create Date: 2026-12-07T18:25:00+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0015_tenants_sync_status_read_th'
down_revision = '0014_locks_only_the_owner_can_ta'
branch_labels = None
depends_on = None


_HERE = Path(__file__).parent


def upgrade() -> None:
    apply_revision(op, revision)
    # tenants.sync_status as SELECT * FROM optiqoflow._sync_status(): a Citus
    # coordinator can plan it
    run_sql(op, (_HERE / "0015_tenants_sync_status_read_th.sql").read_text())
    own_everything(op)


def downgrade() -> None:
    # first the view as it was, so that dropping _sync_status takes nothing with it
    run_sql(op, (_HERE / "0015_tenants_sync_status_read_th_down.sql").read_text())
    revert_revision(op, revision)
