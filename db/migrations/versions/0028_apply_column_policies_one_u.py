"""apply_column_policies: one UPDATE per column

Frozen function copies: optiqoflow/apply_column_policies.sql

Revision ID: 0028_apply_column_policies_one_u
Revises: 0027_column_policies_keep_block
Create Date: 2026-12-07T19:29:28+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0028_apply_column_policies_one_u'
down_revision = '0027_column_policies_keep_block'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
