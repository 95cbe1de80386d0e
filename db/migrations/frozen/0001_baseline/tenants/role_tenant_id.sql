CREATE OR REPLACE FUNCTION tenants.role_tenant_id()
RETURNS uuid
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The one tenant a DBA gave the current role (tenants.grant_tenant), or NULL.
    -- SECURITY INVOKER on purpose: row-level security on tenants.role_tenants shows each
    -- role only its own row.
    SELECT rt.tenant_id FROM tenants.role_tenants rt WHERE rt.role_name = current_user;
$$;

COMMENT ON FUNCTION tenants.role_tenant_id() IS
    'The tenant given to the current role by tenants.grant_tenant, or NULL. Used by the row-level security policies.';
REVOKE ALL ON FUNCTION tenants.role_tenant_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants.role_tenant_id() TO authenticated, service_role, optiqoflow_tenant_reader;
