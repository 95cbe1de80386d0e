CREATE OR REPLACE FUNCTION optiqoflow._lock_rows(
    p_tenant_id uuid,
    p_table     text,
    p_records   jsonb
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Take the row locks of a delivery: 64 advisory-lock buckets per tenant x target table,
-- a key's bucket being hashtext(id) & 63, taken in bucket order. p_records: the records
-- (validated: each has a UUID id) whose keys are written, or NULL for all 64 buckets
-- (a FULL_SYNC batch that removes rows). An INSERT and a DELETE of one key then cannot
-- interleave between reading the tombstone and writing the row.
--
-- Lock order of a delivery, everywhere: sync/<tenant>/<table>, these row buckets,
-- ddl/<table> (with the ALTER it guards), views/<tenant>. Buckets come before any DDL:
-- a push holding ACCESS EXCLUSIVE from an ALTER must never wait for a bucket.
BEGIN
    IF jsonb_array_length(p_records) = 1 THEN
        -- one record (every real-time change): the same lock, without a query
        PERFORM pg_advisory_xact_lock(hashtext(p_tenant_id::text || '/' || p_table),
                                      hashtext(((p_records -> 0 ->> 'id')::uuid)::text) & 63);
    ELSIF p_records IS NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext(p_tenant_id::text || '/' || p_table), b)
           FROM generate_series(0, 63) b ORDER BY b;
    ELSE
        PERFORM pg_advisory_xact_lock(hashtext(p_tenant_id::text || '/' || p_table), b)
           FROM (SELECT DISTINCT hashtext(((r.e ->> 'id')::uuid)::text) & 63 AS b
                   FROM jsonb_array_elements(p_records) AS r(e)
                  ORDER BY 1) buckets;
    END IF;
END
$$;

COMMENT ON FUNCTION optiqoflow._lock_rows(uuid, text, jsonb) IS
    'Internal: the row-bucket advisory locks (64 per tenant x table, in order) of the keys a delivery writes, or all of them when p_records is NULL. Taken before any DDL of the delivery.';
REVOKE ALL ON FUNCTION optiqoflow._lock_rows(uuid, text, jsonb) FROM PUBLIC;
