"""Citus node-local locks

Frozen function copies: optiqoflow/_advisory_xact_locks.sql, optiqoflow/_tenant_locks.sql

Revision ID: 0006_citus_node_local_locks
Revises: 0005_faster_validation_and_write
Create Date: 2026-11-27T03:25:19+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0006_citus_node_local_locks'
down_revision = '0005_faster_validation_and_write'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
