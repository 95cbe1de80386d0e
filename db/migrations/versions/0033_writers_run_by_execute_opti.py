"""writers run by EXECUTE (optiqoflow._run_writer); call_writer and its generator dropped

Frozen function copies: optiqoflow/_run_writer.sql, optiqoflow/_write_records.sql, optiqoflow/_writer.sql, optiqoflow/distribute.sql, optiqoflow/upsert_record.sql

Revision ID: 0033_writers_run_by_execute_opti
Revises: 0032_version_rule_and_record_val
Create Date: 2026-12-07T21:15:58+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import (
    apply_revision,
    latest_frozen,
    own_everything,
    revert_revision,
    run_sql,
)

revision = '0033_writers_run_by_execute_opti'
down_revision = '0032_version_rule_and_record_val'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    # the generated dispatcher and its generator: a same-run A/B showed it saves less
    # than 10% of a delivery's database time (BENCHMARKS.md), so it goes
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow_gen.call_writer"
                "(text, uuid, text, jsonb, text[], timestamptz, xid8, bigint)")
    run_sql(op, "DROP FUNCTION IF EXISTS optiqoflow._generate_call_writer(boolean)")
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)   # drops _run_writer, re-applies 0032's callers
    # 0032's _writer (re-applied above) calls _generate_call_writer: bring it back, and
    # its dispatcher, from their latest frozen copy
    run_sql(op, latest_frozen(before=revision)["optiqoflow/_generate_call_writer.sql"].read_text())
    run_sql(op, "SELECT optiqoflow._generate_call_writer()")
    own_everything(op)
