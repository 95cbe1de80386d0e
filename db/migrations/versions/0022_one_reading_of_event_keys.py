"""one reading of event keys

Frozen function copies: optiqoflow/_event_keys.sql, optiqoflow/_lock_events.sql, optiqoflow/apply_webhook_group.sql

Revision ID: 0022_one_reading_of_event_keys
Revises: 0021_canonical_tenant_order
Create Date: 2026-11-27T08:06:27+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0022_one_reading_of_event_keys'
down_revision = '0021_canonical_tenant_order'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
