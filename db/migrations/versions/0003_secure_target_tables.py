"""Row-level security, tenant policies and grants on the 21 target tables.

Revision ID: 0003_secure_target_tables
Revises: 0002_sync_functions
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0003_secure_target_tables"
down_revision = "0002_sync_functions"
branch_labels = None
depends_on = None


def _run(sql: str) -> None:
    op.get_bind().connection.driver_connection.execute(sql)


def upgrade() -> None:
    _run(
        """
        SELECT optiqoflow._secure_target_table(m.target_table)
          FROM optiqoflow.table_mappings m
         ORDER BY m.target_table;
        -- bookkeeping is for the owner and service_role only
        REVOKE ALL ON ALL TABLES IN SCHEMA optiqoflow FROM PUBLIC;
        GRANT ALL ON optiqoflow.table_mappings, optiqoflow.webhook_logs, optiqoflow.tombstones,
                     optiqoflow.delivery_keys, optiqoflow.sync_runs, optiqoflow.sync_run_batches
              TO service_role;
        GRANT ALL ON tenants.tenant_column_access, tenants.tenant_data_push_log TO service_role;
        GRANT SELECT, INSERT, UPDATE, DELETE ON public.charts, public.chart_data_cache,
              public.chart_table_dependencies TO service_role;
        GRANT USAGE ON ALL SEQUENCES IN SCHEMA optiqoflow, tenants TO service_role;
        """
    )


def downgrade() -> None:
    _run(
        """
        DO $$
        DECLARE t text;
        BEGIN
            FOR t IN SELECT target_table FROM optiqoflow.table_mappings LOOP
                IF to_regclass(format('optiqoflow.%I', t)) IS NOT NULL THEN
                    EXECUTE format('DROP POLICY IF EXISTS tenant_by_claims ON optiqoflow.%I', t);
                    EXECUTE format('DROP POLICY IF EXISTS tenant_by_role ON optiqoflow.%I', t);
                    EXECUTE format('ALTER TABLE optiqoflow.%I DISABLE ROW LEVEL SECURITY', t);
                    EXECUTE format('REVOKE ALL ON optiqoflow.%I FROM authenticated, service_role, optiqoflow_tenant_reader', t);
                END IF;
            END LOOP;
        END $$;
        """
    )
