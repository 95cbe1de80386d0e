"""one piece for each repeated check: closed tenant, buckets, receipts, bodies, policies, flags

Frozen function copies: optiqoflow/_body_names_tenant.sql, optiqoflow/_in_buckets.sql, optiqoflow/_lock_rows.sql, optiqoflow/_payload_flag.sql, optiqoflow/_policy_payload.sql, optiqoflow/_policy_records.sql, optiqoflow/_receipt_add.sql, optiqoflow/_reconcile.sql, optiqoflow/_refuse_closed_tenant.sql, optiqoflow/erase_tenant.sql, optiqoflow/full_sync_batch.sql, optiqoflow/record_unusable_delivery.sql, optiqoflow/upsert_record.sql

Revision ID: 0040_one_piece_for_each_repeated
Revises: 0039_tenant_claim_path_comment
Create Date: 2026-12-07T22:44:44+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0040_one_piece_for_each_repeated'
down_revision = '0039_tenant_claim_path_comment'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
