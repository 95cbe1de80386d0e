"""payload limits

Frozen function copies: optiqoflow/_key_types.sql, optiqoflow/_push_columns.sql

Revision ID: 0004_payload_limits
Revises: 0003_answers_say_why
Create Date: 2026-12-07T16:28:20+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0004_payload_limits'
down_revision = '0003_answers_say_why'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
