CREATE OR REPLACE FUNCTION optiqoflow.table_fingerprint(p_tenant_id uuid, p_table text)
RETURNS TABLE (row_count bigint, checksum numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Row count and an order-independent checksum of (id, updated_at) of a tenant's rows in a
-- target (or source-named) table. A source computes the same on its own table with:
--   SELECT count(*) AS row_count,
--          coalesce(sum(('x' || left(md5(id::text || '|' ||
--              to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')), 16))::bit(64)::bigint), 0) AS checksum
--     FROM optiqo.<source_table> WHERE tenant_id = '<tenant>';
-- Equal pairs mean the same set of (id, version); the sum is exact (numeric).
DECLARE
    v_table text := (optiqoflow._target_table(p_table)).target_table;
BEGIN
    IF to_regclass(format('optiqoflow.%I', v_table)) IS NULL THEN
        RETURN QUERY SELECT 0::bigint, 0::numeric;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE format(
        'SELECT count(*)::bigint, coalesce(sum((''x'' || left(md5(id::text || ''|'' || '
        'to_char(updated_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US'')), 16))::bit(64)::bigint), 0)::numeric '
        'FROM optiqoflow.%I WHERE tenant_id = $1', v_table)
    USING p_tenant_id;
END
$$;

COMMENT ON FUNCTION optiqoflow.table_fingerprint(uuid, text) IS
    'Row count and order-independent checksum of (id, updated_at) of a tenant''s rows in a table, computed as a source can compute it on its own table (SQL in the function body and the README), for reconciliation.';
REVOKE ALL ON FUNCTION optiqoflow.table_fingerprint(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.table_fingerprint(uuid, text) TO service_role;
