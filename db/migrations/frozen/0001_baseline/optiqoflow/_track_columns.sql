CREATE OR REPLACE FUNCTION optiqoflow._track_columns(
    p_tenant_id uuid,
    p_table     text,
    p_keys      jsonb,
    p_columns   text[]
)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Column tracking: a key present with a non-null value counts as pushed by the tenant
-- (p_keys: the JSON array "pushed" of _analyse_records; only keys that are columns of the
-- table count: ignored keys are not). The tracked set is the sorted union over time. Read
-- first and write only when the set grows, so steady traffic never queues on the
-- tracking row (an upsert per delivery would serialise all concurrent deliveries of a
-- tenant x table on its row lock): the steady case is one index read and a containment
-- test.
-- When it grows, the tenant's view of the table is regenerated in the same transaction.
-- Returns true when it grew.
DECLARE
    v_pushed  text[];
    v_current text[];
BEGIN
    SELECT tca.columns INTO v_current
      FROM tenants.tenant_column_access tca
     WHERE tca.tenant_id = p_tenant_id AND tca.table_name = p_table;
    IF v_current IS NOT NULL AND to_jsonb(v_current) @> p_keys THEN
        RETURN false;
    END IF;

    SELECT array_agg(k ORDER BY k) INTO v_pushed
      FROM jsonb_array_elements_text(p_keys) k
     WHERE k = ANY (p_columns);
    IF v_pushed IS NULL OR (v_current IS NOT NULL AND v_current @> v_pushed) THEN
        RETURN false;
    END IF;

    INSERT INTO tenants.tenant_column_access AS t (tenant_id, table_name, columns, updated_at)
    VALUES (p_tenant_id, p_table, v_pushed, now())
    ON CONFLICT (tenant_id, table_name) DO UPDATE
       SET columns = optiqoflow._sorted_union(t.columns, EXCLUDED.columns),   -- no subquery here: Citus
           updated_at = EXCLUDED.updated_at;

    PERFORM tenants.regenerate_tenant_views(p_tenant_id, p_table);
    RETURN true;
END
$$;

COMMENT ON FUNCTION optiqoflow._track_columns(uuid, text, jsonb, text[]) IS
    'Internal: adds the columns a push carried with non-null values to tenants.tenant_column_access (sorted union) and regenerates the tenant''s view when the set grew; writes nothing otherwise.';
REVOKE ALL ON FUNCTION optiqoflow._track_columns(uuid, text, jsonb, text[]) FROM PUBLIC;
