"""distribute(): its view and truncation loops read static queries over oid arrays, so plpgsql_check can check them

Frozen function copies: optiqoflow/distribute.sql

Revision ID: 0018_distribute_its_view_and_tru
Revises: 0017_distribute_is_idempotent_an
Create Date: 2026-12-07T18:51:13+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0018_distribute_its_view_and_tru'
down_revision = '0017_distribute_is_idempotent_an'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
