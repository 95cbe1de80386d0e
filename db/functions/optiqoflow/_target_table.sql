CREATE OR REPLACE FUNCTION optiqoflow._target_table(p_table text)
RETURNS optiqoflow.table_mappings
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The mapping of a source table name (as Optiqo sends it), or of a target name.
DECLARE
    v_mapping optiqoflow.table_mappings;
BEGIN
    SELECT * INTO v_mapping FROM optiqoflow.table_mappings m WHERE m.source_table = p_table;
    IF NOT FOUND THEN
        SELECT * INTO v_mapping FROM optiqoflow.table_mappings m WHERE m.target_table = p_table;
    END IF;
    IF v_mapping.source_table IS NULL THEN
        RAISE EXCEPTION 'unknown table: %', left(coalesce(p_table, '(null)'), 100)
            USING ERRCODE = 'OF001',
                  DETAIL = 'No row of optiqoflow.table_mappings has this source_table.',
                  HINT = format('Map it: INSERT INTO optiqoflow.table_mappings (source_table, target_table) VALUES (%L, %L);',
                                left(coalesce(p_table, 'source'), 63),
                                CASE WHEN p_table ~ '^[a-z_][a-z0-9_]{0,25}$' THEN p_table ELSE 'target' END);
    END IF;
    RETURN v_mapping;
END
$$;

COMMENT ON FUNCTION optiqoflow._target_table(text) IS
    'Internal: the table_mappings row for a source table name (or a target name); raises OF001 for an unknown table.';
REVOKE ALL ON FUNCTION optiqoflow._target_table(text) FROM PUBLIC;
