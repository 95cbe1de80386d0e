"""RECONCILE ours: our figures, compared by the source

Frozen function copies: optiqoflow/_reconcile.sql

Revision ID: 0035_reconcile_ours_our_figures
Revises: 0034_one_test_for_citus_optiqofl
Create Date: 2026-12-07T21:26:00+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0035_reconcile_ours_our_figures'
down_revision = '0034_one_test_for_citus_optiqofl'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
