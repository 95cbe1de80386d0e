"""one lock call

Frozen function copies: optiqoflow/_lock_rows.sql

Revision ID: 0013_one_lock_call
Revises: 0012_one_evolution_step
Create Date: 2026-11-27T05:50:27+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0013_one_lock_call'
down_revision = '0012_one_evolution_step'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
