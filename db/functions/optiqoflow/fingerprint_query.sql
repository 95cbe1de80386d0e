CREATE OR REPLACE FUNCTION optiqoflow.fingerprint_query(p_schema text, p_table text, p_digits integer DEFAULT 0)
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
--
-- Buckets (p_digits 2 or 4): the same figures per tenant and bucket, a bucket being the
-- first p_digits hex digits of md5 of the id's canonical text (lower case, with hyphens):
-- 256 buckets of 2 digits, each split into 256 sub-buckets of 4 digits. The query then
-- has a second parameter, $2 (a text[] of 2-digit buckets; NULL: all), which keeps
-- only the rows of those buckets. Columns: tenant_id, bucket, row_count, checksum; a
-- bucket without rows is not listed. optiqoflow.bucket_fingerprints runs it on our
-- tables, and a RECONCILE delivery carries a source's figures by it (docs/payloads.md).
DECLARE
    v_checksum constant text :=
        'coalesce(sum((''x'' || left(md5(id::text || ''|'' || '
        'to_char(updated_at AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.US'')), 16))'
        '::bit(64)::bigint), 0)::numeric AS checksum ';
BEGIN
    IF p_schema IS NULL OR p_table IS NULL
       OR p_schema !~ '^[a-z_][a-z0-9_]{0,62}$' OR p_table !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'not a table name: %.%', p_schema, p_table
            USING ERRCODE = 'OF001',
                  HINT = 'Schema and table are lower-case identifiers, e.g. optiqo and work_orders.';
    END IF;
    IF p_digits IS NULL OR p_digits NOT IN (0, 2, 4) THEN
        RAISE EXCEPTION 'buckets have 2 or 4 hex digits, not %', p_digits
            USING ERRCODE = 'OF025',
                  HINT = 'p_digits is 0 (one figure per tenant), 2 (256 buckets) or 4 (65,536 sub-buckets).';
    END IF;
    IF p_digits = 0 THEN
        RETURN pg_catalog.format(
            'SELECT tenant_id, count(*)::bigint AS row_count, ' || v_checksum ||
            'FROM %I.%I WHERE $1::uuid[] IS NULL OR tenant_id = ANY ($1::uuid[]) '
            'GROUP BY tenant_id',
            p_schema, p_table);
    END IF;
    RETURN pg_catalog.format(
        'SELECT tenant_id, left(md5(id::text), %s) AS bucket, count(*)::bigint AS row_count, ' || v_checksum ||
        'FROM %I.%I WHERE ($1::uuid[] IS NULL OR tenant_id = ANY ($1::uuid[])) '
        'AND ($2::text[] IS NULL OR left(md5(id::text), 2) = ANY ($2::text[])) '
        'GROUP BY tenant_id, left(md5(id::text), %s)',
        p_digits, p_schema, p_table, p_digits);
END
$$;

COMMENT ON FUNCTION optiqoflow.fingerprint_query(text, text, integer) IS
    'The fingerprint query (per tenant: row count and order-independent checksum of (id, updated_at)) of schema.table, for the tenants in $1 (uuid[], NULL for all); with p_digits 2 or 4, per tenant and bucket (the first p_digits hex digits of md5(id::text)), for the 2-digit buckets in $2 (text[], NULL for all). Run it on a source database to compare with optiqoflow.table_fingerprint or optiqoflow.bucket_fingerprints.';
REVOKE ALL ON FUNCTION optiqoflow.fingerprint_query(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.fingerprint_query(text, text, integer) TO service_role;
