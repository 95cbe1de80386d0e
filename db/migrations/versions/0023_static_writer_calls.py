"""static writer calls

Frozen function copies: optiqoflow/_generate_call_writer.sql, optiqoflow/_write_records.sql, optiqoflow/_writer.sql, optiqoflow/distribute.sql, optiqoflow/upsert_record.sql

Revision ID: 0023_static_writer_calls
Revises: 0022_one_reading_of_event_keys
Create Date: 2026-11-27T09:41:31+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0023_static_writer_calls'
down_revision = '0022_one_reading_of_event_keys'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    # the switch over the writers this database already has (later ones: _writer)
    op.execute("SELECT optiqoflow._generate_call_writer()")


def downgrade() -> None:
    revert_revision(op, revision)   # the callers go back to EXECUTE
    op.execute(
        "DROP FUNCTION IF EXISTS optiqoflow_gen.call_writer"
        "(text, uuid, text, jsonb, text[], timestamptz, xid8, bigint)"
    )
