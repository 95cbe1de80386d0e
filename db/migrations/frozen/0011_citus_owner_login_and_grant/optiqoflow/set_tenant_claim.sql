CREATE OR REPLACE FUNCTION optiqoflow.set_tenant_claim(p_path text)
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Where in the JWT claims the tenant is, for the row-level security of every table and
-- view at once: 'tenant_id' (a top-level claim, the default; a Supabase Custom Access
-- Token hook can add one), or a path under app_metadata such as 'app_metadata.tenant_id'
-- (set with Supabase's Admin API; users cannot change it). Never under user_metadata,
-- which a user edits: such a path is refused (OF023).
-- The path is kept in optiqoflow.settings and compiled into the constant function
-- optiqoflow_gen.tenant_claim_path(), which tenants.claims_tenant_id() reads: no session
-- setting, nothing a protected session can change, no table read per row.
DECLARE
    v_path text := lower(btrim(p_path));
BEGIN
    IF v_path IS NULL OR v_path !~ '^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62}){0,3}$' THEN
        RAISE EXCEPTION 'not a claim path: %', left(coalesce(p_path, '(null)'), 100)
            USING ERRCODE = 'OF023',
                  HINT = 'A dotted path of claim names: tenant_id, or app_metadata.tenant_id.';
    END IF;
    IF v_path <> 'tenant_id' AND v_path !~ '^app_metadata\.' THEN
        RAISE EXCEPTION 'the tenant claim must be tenant_id or under app_metadata, not %', v_path
            USING ERRCODE = 'OF023',
                  DETAIL = CASE WHEN v_path ~ '^user_metadata(\.|$)'
                                THEN 'user_metadata is editable by the user: it must never decide a tenant.'
                                ELSE 'Only a top-level tenant_id claim or app_metadata (set by the server) are trusted.' END,
                  HINT = 'SELECT optiqoflow.set_tenant_claim(''app_metadata.tenant_id'');';
    END IF;
    INSERT INTO optiqoflow.settings AS s (key, value) VALUES ('tenant_claim', v_path)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at;   -- Citus: no now() here
    EXECUTE format('CREATE OR REPLACE FUNCTION optiqoflow_gen.tenant_claim_path() RETURNS text[] '
                   'LANGUAGE sql IMMUTABLE PARALLEL SAFE RETURN %L::text[]',
                   '{' || replace(v_path, '.', ',') || '}');
    RETURN v_path;
END
$$;

COMMENT ON FUNCTION optiqoflow.set_tenant_claim(text) IS
    'Chooses where the tenant is in the JWT claims for every row-level security policy: tenant_id (default) or a path under app_metadata (e.g. app_metadata.tenant_id); user_metadata is refused (OF023). Kept in optiqoflow.settings; returns the path.';
REVOKE ALL ON FUNCTION optiqoflow.set_tenant_claim(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.set_tenant_claim(text) TO optiqoflow_admin;
