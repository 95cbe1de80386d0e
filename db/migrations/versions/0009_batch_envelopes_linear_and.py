"""batch envelopes linear and capped

Frozen function copies: optiqoflow/apply_webhook.sql, optiqoflow/apply_webhook_batch.sql

Revision ID: 0009_batch_envelopes_linear_and
Revises: 0008_payload_schemas
Create Date: 2026-12-07T16:47:40+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0009_batch_envelopes_linear_and'
down_revision = '0008_payload_schemas'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
