"""payload schemas

Frozen function copies: optiqoflow/payload_schemas.sql

Revision ID: 0008_payload_schemas
Revises: 0007_freshness
Create Date: 2026-12-07T16:46:25+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0008_payload_schemas'
down_revision = '0007_freshness'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
