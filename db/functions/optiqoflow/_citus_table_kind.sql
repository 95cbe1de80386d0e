CREATE OR REPLACE FUNCTION optiqoflow._citus_table_kind(p_table regclass)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- How Citus holds a table: 'distributed' (hash-distributed), 'reference', 'local' (a
-- Citus local table, e.g. added to the metadata for a foreign key), or 'none' (not in
-- the Citus metadata, or no citus extension: plain PostgreSQL). Citus's catalog is read
-- with dynamic SQL, so the function exists and answers 'none' where Citus does not.
DECLARE
    v_method text;
    v_model  text;
BEGIN
    IF NOT optiqoflow._on_citus() THEN
        RETURN 'none';
    END IF;
    EXECUTE format('SELECT partmethod::text, repmodel::text FROM pg_catalog.%I WHERE logicalrelid = $1', 'pg_dist_partition')
       INTO v_method, v_model USING p_table;
    RETURN CASE WHEN v_method IS NULL THEN 'none'
                WHEN v_method = 'h' THEN 'distributed'
                WHEN v_model = 't' THEN 'reference'
                ELSE 'local' END;
END
$$;

COMMENT ON FUNCTION optiqoflow._citus_table_kind(regclass) IS
    'Internal: how Citus holds a table: distributed | reference | local | none (not in the Citus metadata, or plain PostgreSQL).';
REVOKE ALL ON FUNCTION optiqoflow._citus_table_kind(regclass) FROM PUBLIC;
