CREATE OR REPLACE FUNCTION optiqoflow.fingerprint_query(p_schema text, p_table text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $$
-- The one definition of a table's fingerprint: the query, per tenant, of the row count
-- and an order-independent checksum of (id, updated_at) over p_schema.p_table, for the
-- tenants in $1 (a uuid[]; NULL: every tenant). optiqoflow.table_fingerprint runs it on
-- our tables; `optiqoflow reconcile` and the convergence check ask for it here and run
-- it on the source database, which needs nothing of ours. The checksum sums the first 64
-- bits of md5(id || '|' || updated_at in UTC, microseconds) as numeric: exact, so equal
-- pairs mean the same set of (id, version).
BEGIN
    IF p_schema IS NULL OR p_table IS NULL
       OR p_schema !~ '^[a-z_][a-z0-9_]{0,62}$' OR p_table !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'not a table name: %.%', p_schema, p_table
            USING ERRCODE = 'OF001',
                  HINT = 'Schema and table are lower-case identifiers, e.g. optiqo and work_orders.';
    END IF;
    RETURN pg_catalog.format(
        'SELECT tenant_id, count(*)::bigint AS row_count, '
        'coalesce(sum((''x'' || left(md5(id::text || ''|'' || '
        'to_char(updated_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US'')), 16))'
        '::bit(64)::bigint), 0)::numeric AS checksum '
        'FROM %I.%I WHERE $1::uuid[] IS NULL OR tenant_id = ANY ($1::uuid[]) '
        'GROUP BY tenant_id',
        p_schema, p_table);
END
$$;

COMMENT ON FUNCTION optiqoflow.fingerprint_query(text, text) IS
    'The fingerprint query (per tenant: row count and order-independent checksum of (id, updated_at)) of schema.table, for the tenants in $1 (uuid[], NULL for all). Run it on a source database to compare with optiqoflow.table_fingerprint.';
REVOKE ALL ON FUNCTION optiqoflow.fingerprint_query(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.fingerprint_query(text, text) TO service_role;
