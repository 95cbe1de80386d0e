CREATE OR REPLACE FUNCTION optiqoflow.table_fingerprint(p_tenant_id uuid, p_table text)
RETURNS TABLE (row_count bigint, checksum numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Row count and an order-independent checksum of (id, updated_at) of a tenant's rows in a
-- target (or source-named) table, by the one definition in optiqoflow.fingerprint_query.
-- A source computes the same on its own table with the text that
--   SELECT optiqoflow.fingerprint_query('optiqo', '<source_table>')
-- returns, run with $1 = ARRAY['<tenant>']::uuid[].
DECLARE
    v_table text := (optiqoflow._target_table(p_table)).target_table;
BEGIN
    IF to_regclass(format('optiqoflow.%I', v_table)) IS NOT NULL THEN
        RETURN QUERY EXECUTE format('SELECT f.row_count, f.checksum FROM (%s) f',
                                    optiqoflow.fingerprint_query('optiqoflow', v_table))
        USING ARRAY[p_tenant_id];
        IF FOUND THEN
            RETURN;
        END IF;
    END IF;
    RETURN QUERY SELECT 0::bigint, 0::numeric;
END
$$;

COMMENT ON FUNCTION optiqoflow.table_fingerprint(uuid, text) IS
    'Row count and order-independent checksum of (id, updated_at) of a tenant''s rows in a table, computed as a source can compute it on its own table (optiqoflow.fingerprint_query), for reconciliation.';
REVOKE ALL ON FUNCTION optiqoflow.table_fingerprint(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.table_fingerprint(uuid, text) TO service_role;
