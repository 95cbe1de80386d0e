CREATE OR REPLACE FUNCTION tenants.claims_tenant_id()
RETURNS uuid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The tenant named by the JWT claims of an `authenticated` session, set by a trusted
-- gateway (PostgREST / Supabase) from a verified JWT:
--     current_setting('request.jwt.claims', true)::jsonb #>> <the tenant claim path>
-- The path is 'tenant_id' (a top-level claim) unless optiqoflow.set_tenant_claim chose
-- one under app_metadata; it is a constant of optiqoflow_gen.tenant_claim_path().
-- Only for current_user = authenticated, the role such a gateway switches to: a role that
-- logs in with SQL directly could set the claims itself, so for it this is NULL.
-- Unreadable claims or a tenant_id that is not a UUID also give NULL: no rows.
BEGIN
    IF current_user <> 'authenticated' THEN
        RETURN NULL;
    END IF;
    RETURN (nullif(current_setting('request.jwt.claims', true), '')::jsonb
            #>> optiqoflow_gen.tenant_claim_path())::uuid;
EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value THEN
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION tenants.claims_tenant_id() IS
    'The tenant in request.jwt.claims (at the path optiqoflow.set_tenant_claim chose: tenant_id by default) for a session whose current_user is authenticated; NULL otherwise. Used by the row-level security policies.';
REVOKE ALL ON FUNCTION tenants.claims_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants.claims_tenant_id() TO authenticated, service_role, optiqoflow_tenant_reader;
