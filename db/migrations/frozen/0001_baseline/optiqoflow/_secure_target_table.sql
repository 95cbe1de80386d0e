CREATE OR REPLACE FUNCTION optiqoflow._secure_target_table(p_table text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row-level security and grants of one target table (docs/semantics.md, Tenant safety):
--   authenticated: its own tenant's rows, named by the JWT claims a trusted gateway set
--                  (PostgREST / Supabase convention), read and write;
--   a role given one tenant by tenants.grant_tenant: that tenant's rows, read only,
--                  from a mapping it cannot write (never from claims it could set);
--   service_role:  everything (BYPASSRLS).
-- The policies call the STABLE functions directly, not as (SELECT f()): Citus refuses
-- subqueries in policies on distributed tables (optiqoflow.distribute).
BEGIN
    PERFORM optiqoflow._valid_target(p_table);
    EXECUTE format('ALTER TABLE optiqoflow.%I ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('DROP POLICY IF EXISTS tenant_by_claims ON optiqoflow.%I', p_table);
    EXECUTE format('CREATE POLICY tenant_by_claims ON optiqoflow.%I FOR ALL TO authenticated '
                   'USING (tenant_id = tenants.claims_tenant_id()) '
                   'WITH CHECK (tenant_id = tenants.claims_tenant_id())', p_table);
    EXECUTE format('DROP POLICY IF EXISTS tenant_by_role ON optiqoflow.%I', p_table);
    EXECUTE format('CREATE POLICY tenant_by_role ON optiqoflow.%I FOR SELECT TO PUBLIC '
                   'USING (tenant_id = tenants.role_tenant_id())', p_table);
    EXECUTE format('REVOKE ALL ON optiqoflow.%I FROM PUBLIC, anon', p_table);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON optiqoflow.%I TO authenticated', p_table);
    EXECUTE format('GRANT ALL ON optiqoflow.%I TO service_role', p_table);
    EXECUTE format('GRANT SELECT ON optiqoflow.%I TO optiqoflow_tenant_reader', p_table);
END
$$;

COMMENT ON FUNCTION optiqoflow._secure_target_table(text) IS
    'Internal: enables row-level security on a target table, (re)creates its two tenant policies and sets its grants.';
REVOKE ALL ON FUNCTION optiqoflow._secure_target_table(text) FROM PUBLIC;
