CREATE OR REPLACE FUNCTION tenants.grant_tenant(p_role name, p_tenant_id uuid)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Give a role that connects with SQL directly (a BI tool, a dashboard service) exactly
-- one tenant: it then reads that tenant's views (and, through row-level security, that
-- tenant's rows of the base tables the views read) and nothing else. Its tenant comes
-- from tenants.role_tenants, which it cannot write, never from anything it can set
-- itself (any session can set request.jwt.claims, so claims identify a tenant only behind
-- a trusted gateway). Granting another tenant moves the role. Returns the number of
-- views it can now read.
DECLARE
    v_old   uuid;
    v_view  text;
    v_count integer := 0;
    v_previous text;
BEGIN
    IF p_role IS NULL OR NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = p_role) THEN
        RAISE EXCEPTION 'no such role: %', p_role
            USING ERRCODE = 'OF015', HINT = 'CREATE ROLE ... LOGIN first.';
    END IF;
    -- a role that is, or can act as (SET ROLE), one of the shared roles or the owner
    -- would read other tenants through that role: it cannot be limited
    IF p_role IN ('authenticated', 'anon', 'service_role', 'optiqoflow_tenant_reader', 'optiqoflow_owner')
       OR (SELECT r.rolsuper OR r.rolbypassrls FROM pg_roles r WHERE r.rolname = p_role)
       OR EXISTS (SELECT FROM unnest(ARRAY['authenticated', 'service_role', 'optiqoflow_owner']) s(name)
                   WHERE to_regrole(s.name) IS NOT NULL AND pg_has_role(p_role, s.name, 'MEMBER')) THEN
        RAISE EXCEPTION 'role % cannot be limited to one tenant', p_role
            USING ERRCODE = 'OF015',
                  HINT = 'Use a dedicated role without SUPERUSER or BYPASSRLS that is not a member of authenticated, service_role or optiqoflow_owner.';
    END IF;
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;

    SELECT rt.tenant_id INTO v_old FROM tenants.role_tenants rt WHERE rt.role_name = p_role FOR UPDATE;
    -- the views locks of both tenants, in key order: a view being created at this moment
    -- is then either seen here or sees our role_tenants row (and grants itself)
    v_previous := current_setting('lock_timeout');
    PERFORM optiqoflow._ddl_lock(n)
       FROM (SELECT DISTINCT 'views/' || t::text AS n FROM unnest(ARRAY[v_old, p_tenant_id]) t
              WHERE t IS NOT NULL ORDER BY 1) locks;
    IF v_old IS NOT NULL AND v_old <> p_tenant_id THEN
        FOR v_view IN SELECT c.relname FROM pg_class c
                       WHERE c.relnamespace = 'tenants'::regnamespace AND c.relkind = 'v'
                         AND c.relname LIKE v_old::text || '\_%' LOOP
            EXECUTE format('REVOKE SELECT ON tenants.%I FROM %I', v_view, p_role);
        END LOOP;
    END IF;

    INSERT INTO tenants.role_tenants AS rt (role_name, tenant_id) VALUES (p_role, p_tenant_id)
    ON CONFLICT (role_name) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, granted_at = EXCLUDED.granted_at;
    EXECUTE format('GRANT optiqoflow_tenant_reader TO %I', p_role);

    FOR v_view IN SELECT c.relname FROM pg_class c
                   WHERE c.relnamespace = 'tenants'::regnamespace AND c.relkind = 'v'
                     AND c.relname LIKE p_tenant_id::text || '\_%' LOOP
        EXECUTE format('GRANT SELECT ON tenants.%I TO %I', v_view, p_role);
        v_count := v_count + 1;
    END LOOP;
    PERFORM set_config('lock_timeout', v_previous, true);
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION tenants.grant_tenant(name, uuid) IS
    'Limits a directly-connecting role to exactly one tenant: records it in tenants.role_tenants, makes it a member of optiqoflow_tenant_reader and grants it SELECT on that tenant''s views. Returns the number of views granted.';
REVOKE ALL ON FUNCTION tenants.grant_tenant(name, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants.grant_tenant(name, uuid) TO service_role;
