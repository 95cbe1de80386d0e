-- 0002, after the function files: every role gets only what its job needs (the README's
-- privilege table; tests/isolation/test_privileges.py compares the database with it).

-- Target tables: row-level security and grants again (authenticated now writes data
-- columns only; nobody but the owner has TRIGGER, TRUNCATE or REFERENCES), the version
-- defaulting to now() and always finite.
SELECT optiqoflow._secure_target_table(c.relname)
  FROM optiqoflow.table_mappings m
  JOIN pg_catalog.pg_class c ON c.relname = m.target_table
                            AND c.relnamespace = 'optiqoflow'::regnamespace
 ORDER BY c.relname;

-- Versions stored before this revision are checked where they can be; a table holding a
-- non-finite one keeps its constraint NOT VALID (new rows are checked all the same).
DO $validate$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN SELECT c.conrelid::regclass::text FROM pg_catalog.pg_constraint c
                    WHERE c.conname = 'updated_at_is_finite' AND NOT c.convalidated
                      AND c.connamespace = 'optiqoflow'::regnamespace LOOP
        BEGIN
            EXECUTE format('ALTER TABLE %s VALIDATE CONSTRAINT updated_at_is_finite', v_table);
        EXCEPTION WHEN check_violation THEN
            RAISE WARNING 'table % holds a non-finite updated_at: its check stays NOT VALID', v_table
                USING HINT = 'Find the rows with NOT isfinite(updated_at), fix them, then VALIDATE CONSTRAINT updated_at_is_finite.';
        END;
    END LOOP;
END
$validate$;

-- Bookkeeping: service_role reads it, and writes only what the README shows a DBA
-- writing by hand (mappings; repairing or dismissing a refused delivery; resetting a
-- tenant's column tracking). The deliveries themselves are written by the functions,
-- as the owner.
REVOKE ALL ON optiqoflow.table_mappings, optiqoflow.webhook_logs, optiqoflow.tombstones,
              optiqoflow.delivery_keys, optiqoflow.sync_runs, optiqoflow.sync_run_batches,
              optiqoflow.refused_deliveries, optiqoflow.sync_health,
              tenants.tenant_column_access, tenants.tenant_data_push_log, tenants.role_tenants,
              public.charts, public.chart_data_cache, public.chart_table_dependencies
       FROM PUBLIC, anon, authenticated, service_role, optiqoflow_tenant_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA optiqoflow, tenants FROM PUBLIC, service_role;
GRANT SELECT ON optiqoflow.webhook_logs, optiqoflow.tombstones, optiqoflow.delivery_keys,
                optiqoflow.sync_runs, optiqoflow.sync_run_batches, optiqoflow.sync_health,
                tenants.tenant_data_push_log, tenants.role_tenants
      TO service_role;
GRANT SELECT, INSERT, UPDATE, DELETE ON optiqoflow.table_mappings TO service_role;
GRANT SELECT, UPDATE ON optiqoflow.refused_deliveries, tenants.tenant_column_access TO service_role;
-- a role reads its own row of role_tenants (tenants.role_tenant_id)
GRANT SELECT ON tenants.role_tenants TO authenticated, optiqoflow_tenant_reader;
-- the dashboard's own tables: its backend (service_role) reads and writes them
GRANT SELECT, INSERT, UPDATE, DELETE ON public.charts, public.chart_data_cache,
      public.chart_table_dependencies TO service_role;
-- /readyz of a receiver running as (a member of) service_role reads the revision
GRANT SELECT ON public.alembic_version TO service_role;
