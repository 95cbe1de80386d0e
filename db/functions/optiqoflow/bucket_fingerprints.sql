CREATE OR REPLACE FUNCTION optiqoflow.bucket_fingerprints(
    p_tenant_id uuid,
    p_table     text,
    p_digits    integer DEFAULT 2,
    p_within    text[] DEFAULT NULL
)
RETURNS TABLE (bucket text, row_count bigint, checksum numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
-- 65,536 sub-buckets are ~10 MB of hash table: at the default 4MB the aggregate spilled to
-- temporary files and took twice as long on 1M rows (bench/results, repair)
SET work_mem = '32MB'
AS $$
-- Per bucket of a tenant's rows in a target (or source-named) table: the row count and
-- the order-independent checksum of (id, updated_at), by the one definition in
-- optiqoflow.fingerprint_query. A bucket is the first p_digits (2: 256 buckets; 4:
-- 65,536 sub-buckets) hex digits of md5(id::text); p_within keeps the rows of those
-- 2-digit buckets only (NULL: all). Buckets without rows are not listed. A source
-- computes the same figures on its own table with the text that
--   SELECT optiqoflow.fingerprint_query('optiqo', '<source_table>', 2)
-- returns, run with $1 = ARRAY['<tenant>']::uuid[] and $2 = NULL (README, Repair
-- without peering). Cost: one read of the tenant's rows of the table (its primary key
-- range), whatever p_digits and p_within.
DECLARE
    v_table text := (optiqoflow._target_table(p_table)).target_table;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_digits IS NULL OR p_digits NOT IN (2, 4) THEN
        RAISE EXCEPTION 'buckets have 2 or 4 hex digits, not %', p_digits
            USING ERRCODE = 'OF025', HINT = 'p_digits is 2 (256 buckets) or 4 (65,536 sub-buckets).';
    END IF;
    IF p_within IS NOT NULL AND (cardinality(p_within) > 256
       OR EXISTS (SELECT FROM unnest(p_within) b WHERE b IS NULL OR b !~ '^[0-9a-f]{2}$')) THEN
        RAISE EXCEPTION 'p_within is a list of at most 256 buckets of 2 hex digits'
            USING ERRCODE = 'OF025', HINT = 'e.g. ARRAY[''0a'', ''ff''] (lower case).';
    END IF;
    IF to_regclass(format('optiqoflow.%I', v_table)) IS NULL THEN
        RETURN;   -- no row was ever pushed to it
    END IF;
    RETURN QUERY EXECUTE format('SELECT f.bucket, f.row_count, f.checksum FROM (%s) f ORDER BY f.bucket',
                                optiqoflow.fingerprint_query('optiqoflow', v_table, p_digits))
    USING ARRAY[p_tenant_id], p_within;
END
$$;

COMMENT ON FUNCTION optiqoflow.bucket_fingerprints(uuid, text, integer, text[]) IS
    'Per bucket (the first p_digits, 2 or 4, hex digits of md5(id::text)) of a tenant''s rows in a table: row count and order-independent checksum of (id, updated_at), by optiqoflow.fingerprint_query, for the 2-digit buckets in p_within (NULL: all). Buckets without rows are not listed. What a RECONCILE delivery compares.';
REVOKE ALL ON FUNCTION optiqoflow.bucket_fingerprints(uuid, text, integer, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.bucket_fingerprints(uuid, text, integer, text[]) TO service_role;
