"""supabase fit: the tenant claim where Supabase puts it, charts the dashboard can read

Frozen function copies: optiqoflow/set_tenant_claim.sql, tenants/claims_tenant_id.sql

1. 0005_supabase_fit_before.sql: the role optiqoflow_admin, optiqoflow.settings, and
   optiqoflow_gen.tenant_claim_path() (the claim path as a constant, 'tenant_id');
2. the function files: optiqoflow.set_tenant_claim, tenants.claims_tenant_id reading
   the path;
3. 0005_supabase_fit.sql: row-level security on public.charts and
   public.chart_data_cache for authenticated (read only), and public.charts in the
   supabase_realtime publication when there is one;
4. ownership.sql.

Revision ID: 0005_supabase_fit
Revises: 0004_payload_limits
Create Date: 2026-12-07T16:40:00+00:00
"""

from __future__ import annotations

from pathlib import Path

from alembic import op
from optiqoflow_db.migrations.freeze import apply_revision, own_everything, revert_revision, run_sql

revision = '0005_supabase_fit'
down_revision = '0004_payload_limits'
branch_labels = None
depends_on = None

_HERE = Path(__file__).parent


def upgrade() -> None:
    run_sql(op, (_HERE / "0005_supabase_fit_before.sql").read_text())
    apply_revision(op, revision)
    run_sql(op, (_HERE / "0005_supabase_fit.sql").read_text())
    own_everything(op)


def downgrade() -> None:
    revert_revision(op, revision)
    run_sql(
        op,
        """
        DO $realtime$
        BEGIN
            IF EXISTS (SELECT FROM pg_catalog.pg_publication_tables
                        WHERE pubname = 'supabase_realtime' AND schemaname = 'public'
                          AND tablename = 'charts') THEN
                ALTER PUBLICATION supabase_realtime DROP TABLE public.charts;
            END IF;
        END $realtime$;
        ALTER TABLE public.charts REPLICA IDENTITY DEFAULT;
        DROP POLICY IF EXISTS tenant_reads_charts ON public.charts;
        DROP POLICY IF EXISTS tenant_reads_cache ON public.chart_data_cache;
        ALTER TABLE public.charts DISABLE ROW LEVEL SECURITY;
        ALTER TABLE public.chart_data_cache DISABLE ROW LEVEL SECURITY;
        REVOKE ALL ON public.charts, public.chart_data_cache FROM authenticated;
        DROP FUNCTION IF EXISTS optiqoflow_gen.tenant_claim_path();
        REVOKE USAGE ON SCHEMA optiqoflow_gen FROM authenticated, service_role, optiqoflow_tenant_reader;
        DROP TABLE IF EXISTS optiqoflow.settings;
        REVOKE USAGE ON SCHEMA optiqoflow FROM optiqoflow_admin;
        """,
    )
