CREATE OR REPLACE FUNCTION optiqoflow._valid_target(p_table text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A target table name that request-time DDL may build identifiers from: the pattern of
-- table_mappings' check constraint, so "{tenant_uuid}_{target}" fits in 63 bytes (a
-- longer name would be cut silently, and two tables could share a view name).
-- Returns the name, or raises OF011.
BEGIN
    IF p_table IS NULL OR p_table !~ '^[a-z_][a-z0-9_]{0,25}$' THEN
        RAISE EXCEPTION 'invalid target table name: %', left(coalesce(p_table, '(null)'), 100)
            USING ERRCODE = 'OF011', HINT = 'Target names match ^[a-z_][a-z0-9_]{0,25}$.';
    END IF;
    RETURN p_table;
END
$$;

COMMENT ON FUNCTION optiqoflow._valid_target(text) IS
    'Internal: returns a target table name that matches ^[a-z_][a-z0-9_]{0,25}$, or raises OF011.';
REVOKE ALL ON FUNCTION optiqoflow._valid_target(text) FROM PUBLIC;
