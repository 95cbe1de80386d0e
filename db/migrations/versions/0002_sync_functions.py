"""sync functions

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_citus_table_kind.sql, optiqoflow/_claimed_tenant.sql, optiqoflow/_ddl_lock.sql, optiqoflow/_ddl_lock_timeout.sql, optiqoflow/_ensure_target_table.sql, optiqoflow/_evolve_columns.sql, optiqoflow/_is_refusal.sql, optiqoflow/_lock_key.sql, optiqoflow/_lock_rows.sql, optiqoflow/_secure_target_table.sql, optiqoflow/_sorted_union.sql, optiqoflow/_target_table.sql, optiqoflow/_tenant_row_count.sql, optiqoflow/_tenant_uuid.sql, optiqoflow/_track_columns.sql, optiqoflow/_valid_target.sql, optiqoflow/_write_records.sql, optiqoflow/_writer.sql, optiqoflow/apply_tenant_webhook.sql, optiqoflow/apply_webhook.sql, optiqoflow/apply_webhook_batch.sql, optiqoflow/delete_record.sql, optiqoflow/distribute.sql, optiqoflow/full_sync_batch.sql, optiqoflow/prune_logs.sql, optiqoflow/record_unusable_delivery.sql, optiqoflow/replay_webhook.sql, optiqoflow/table_fingerprint.sql, optiqoflow/upsert_record.sql, public/invalidate_chart_cache_for_tables.sql, tenants/claims_tenant_id.sql, tenants/grant_tenant.sql, tenants/regenerate_tenant_views.sql, tenants/role_tenant_id.sql

Revision ID: 0002_sync_functions
Revises: 0001_schema
Create Date: 2026-11-26T23:18:45+00:00
"""

from __future__ import annotations

from alembic import op

from receiver.freeze import apply_revision, revert_revision

revision = '0002_sync_functions'
down_revision = '0001_schema'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)


def downgrade() -> None:
    revert_revision(op, revision)
