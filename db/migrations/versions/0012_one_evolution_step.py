"""one evolution step

Frozen function copies: optiqoflow/_push_columns.sql, optiqoflow/full_sync_batch.sql, optiqoflow/upsert_record.sql

Revision ID: 0012_one_evolution_step
Revises: 0011_one_reading_of_the_tenant
Create Date: 2026-11-27T05:47:43+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0012_one_evolution_step'
down_revision = '0011_one_reading_of_the_tenant'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
