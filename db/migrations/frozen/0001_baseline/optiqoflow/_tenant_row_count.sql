CREATE OR REPLACE FUNCTION optiqoflow._tenant_row_count(p_tenant_id uuid, p_table text)
RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Exact number of a tenant's rows in a target table, for optiqoflow.sync_health. Counted
-- through the (tenant_id, id) primary key: an index-only scan of that tenant's range when
-- the visibility map is current, so it reads no other tenant's entries and no heap pages.
-- (tenant_data_push_log cannot give it: it records changes, not what is stored.)
-- NULL for a name that is not the target table of a mapping, or whose table does not
-- exist yet. Definer's rights: the count ignores row-level security, like the owner.
DECLARE
    v_count bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM optiqoflow.table_mappings m WHERE m.target_table = p_table)
       OR pg_catalog.to_regclass(pg_catalog.format('optiqoflow.%I', p_table)) IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE pg_catalog.format('SELECT count(*) FROM optiqoflow.%I t WHERE t.tenant_id = $1', p_table)
       INTO v_count USING p_tenant_id;
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION optiqoflow._tenant_row_count(uuid, text) IS
    'Internal: exact count of a tenant''s rows in a target table through its (tenant_id, id) primary key (NULL for an unknown or not yet created table); used by optiqoflow.sync_health.';
REVOKE ALL ON FUNCTION optiqoflow._tenant_row_count(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow._tenant_row_count(uuid, text) TO service_role;
