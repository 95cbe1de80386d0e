CREATE OR REPLACE FUNCTION optiqoflow._secure_target_table(p_table text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row-level security and grants of one target table (docs/semantics.md, Tenant safety;
-- the README's privilege table):
--   authenticated: its own tenant's rows, named by the JWT claims a trusted gateway set
--                  (PostgREST / Supabase convention): SELECT and DELETE, and INSERT and
--                  UPDATE of the data columns only, so a dashboard write never sets a
--                  version (updated_at gets the insert time) or bookkeeping (_of_...);
--                  schema evolution grants each new column (_evolve_columns);
--   a role given one tenant by tenants.grant_tenant: that tenant's rows, read only,
--                  from a mapping it cannot write (never from claims it could set);
--   service_role:  every row (BYPASSRLS): SELECT, INSERT, UPDATE, DELETE.
-- Nobody but the owner has TRIGGER, TRUNCATE or REFERENCES: a trigger would run as the
-- owner inside our SECURITY DEFINER writes.
-- Also the version's guard: updated_at defaults to now() and is always finite.
-- The policies call the STABLE functions directly, not as (SELECT f()): Citus refuses
-- subqueries in policies on distributed tables (optiqoflow.distribute).
DECLARE
    v_data text;
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
    EXECUTE format('ALTER TABLE optiqoflow.%I ALTER COLUMN updated_at SET DEFAULT now()', p_table);
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_constraint c
                    WHERE c.conrelid = format('optiqoflow.%I', p_table)::regclass
                      AND c.conname = 'updated_at_is_finite') THEN
        EXECUTE format('ALTER TABLE optiqoflow.%I ADD CONSTRAINT updated_at_is_finite '
                       'CHECK (pg_catalog.isfinite(updated_at)) NOT VALID', p_table);
    END IF;
    -- table-level revokes take the column grants with them
    EXECUTE format('REVOKE ALL ON optiqoflow.%I FROM PUBLIC, anon, authenticated, service_role, '
                   'optiqoflow_tenant_reader', p_table);
    EXECUTE format('GRANT SELECT, DELETE ON optiqoflow.%I TO authenticated', p_table);
    -- column by column, every name quoted with %I
    FOR v_data IN SELECT a.attname::text FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid = format('optiqoflow.%I', p_table)::regclass
                     AND a.attnum > 0 AND NOT a.attisdropped
                     AND a.attname <> 'updated_at' AND a.attname !~ '^_of_'
                   ORDER BY a.attnum LOOP
        EXECUTE format('GRANT INSERT (%I), UPDATE (%I) ON optiqoflow.%I TO authenticated',
                       v_data, v_data, p_table);
    END LOOP;
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON optiqoflow.%I TO service_role', p_table);
    EXECUTE format('GRANT SELECT ON optiqoflow.%I TO optiqoflow_tenant_reader', p_table);
END
$$;

COMMENT ON FUNCTION optiqoflow._secure_target_table(text) IS
    'Internal: enables row-level security on a target table, (re)creates its two tenant policies, sets its grants (authenticated writes data columns only) and guards its version (updated_at defaults to now(), always finite).';
REVOKE ALL ON FUNCTION optiqoflow._secure_target_table(text) FROM PUBLIC;
