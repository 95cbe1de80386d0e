"""least privilege: a NOLOGIN owner role, and each role only what its job needs

Frozen function copies: optiqoflow/_analyse_records.sql, optiqoflow/_evolve_columns.sql, optiqoflow/_is_column_name.sql, optiqoflow/_secure_target_table.sql, tenants/grant_tenant.sql

1. 0002_least_privilege_before.sql: the role optiqoflow_owner (NOLOGIN, never a
   superuser); the migrating role becomes a member when it is not a superuser;
2. the function files: authenticated writes data columns only (also each column schema
   evolution adds), updated_at defaults to now() and is finite, keys named like system
   columns are refused (OF007), grant_tenant refuses roles that can act as a shared role;
3. 0002_least_privilege.sql: the grants of the README's privilege table;
4. ownership.sql: the owner role owns every object of ours.

Revision ID: 0002_least_privilege
Revises: 0001_baseline
Create Date: 2026-12-07T16:15:41+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0002_least_privilege'
down_revision = '0001_baseline'
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0002_least_privilege_before.sql").read_text())
    apply_revision(op, revision)
    run_sql(op, (_HERE / "0002_least_privilege.sql").read_text())
    own_everything(op)


def downgrade() -> None:
    # ownership back to the migrating role first: then it may change everything below
    run_sql(op, "REASSIGN OWNED BY optiqoflow_owner TO CURRENT_USER")
    revert_revision(op, revision)
    run_sql(
        op,
        """
        DO $tables$
        DECLARE v_table text;
        BEGIN
            FOR v_table IN SELECT c.relname FROM optiqoflow.table_mappings m
                             JOIN pg_catalog.pg_class c ON c.relname = m.target_table
                                  AND c.relnamespace = 'optiqoflow'::regnamespace LOOP
                EXECUTE format('ALTER TABLE optiqoflow.%I DROP CONSTRAINT IF EXISTS updated_at_is_finite', v_table);
                EXECUTE format('ALTER TABLE optiqoflow.%I ALTER COLUMN updated_at DROP DEFAULT', v_table);
                PERFORM optiqoflow._secure_target_table(v_table);
            END LOOP;
        END $tables$;
        GRANT ALL ON optiqoflow.table_mappings, optiqoflow.webhook_logs, optiqoflow.tombstones,
                     optiqoflow.delivery_keys, optiqoflow.sync_runs, optiqoflow.sync_run_batches,
                     optiqoflow.refused_deliveries, tenants.tenant_column_access,
                     tenants.tenant_data_push_log, tenants.role_tenants
              TO service_role;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA optiqoflow, tenants TO service_role;
        REVOKE SELECT ON public.alembic_version FROM service_role;
        """,
    )
