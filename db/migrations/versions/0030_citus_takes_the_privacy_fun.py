"""citus takes the privacy functions

Frozen function copies: optiqoflow/_array_without.sql, optiqoflow/_hmac_hex.sql, optiqoflow/_keyed_hash.sql, optiqoflow/apply_column_policies.sql, optiqoflow/apply_webhook.sql, optiqoflow/erase_record.sql, optiqoflow/erase_tenant.sql, optiqoflow/readmit_tenant.sql, optiqoflow/record_unusable_delivery.sql, optiqoflow/set_column_policy.sql

Revision ID: 0030_citus_takes_the_privacy_fun
Revises: 0029_merged_privacy_and_repair
Create Date: 2026-12-07T19:57:48+00:00
"""

from __future__ import annotations

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision

revision = '0030_citus_takes_the_privacy_fun'
down_revision = '0029_merged_privacy_and_repair'
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_revision(op, revision)
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
