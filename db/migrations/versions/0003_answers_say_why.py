"""answers say why

Frozen function copies: optiqoflow/_equal_version_reason.sql, optiqoflow/_target_table.sql, optiqoflow/apply_tenant_webhook.sql, optiqoflow/apply_webhook.sql, optiqoflow/apply_webhook_batch.sql, optiqoflow/apply_webhook_group.sql, optiqoflow/delete_record.sql, optiqoflow/full_sync_batch.sql, optiqoflow/replay_webhook.sql, optiqoflow/upsert_record.sql, tenants/regenerate_tenant_views.sql

Revision ID: 0003_answers_say_why
Revises: 0002_least_privilege
Create Date: 2026-12-07T16:23:26+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0003_answers_say_why'
down_revision = '0002_least_privilege'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
