CREATE OR REPLACE FUNCTION optiqoflow._lock_rows(
    p_tenant_id uuid,
    p_table     text,
    p_records   jsonb
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Take the row locks of a delivery: 64 lock buckets per tenant x target table,
-- a key's bucket being _row_lock_bucket(id), taken in bucket order. p_records: the records
-- (validated: each has a UUID id) whose keys are written, or NULL for all 64 buckets
-- (a FULL_SYNC batch that removes rows); a batch of 512 records or more takes all 64.
-- An INSERT and a DELETE of one key then cannot interleave between reading the
-- tombstone and writing the row.
--
-- Lock order of a delivery, everywhere: sync/<tenant>/<table>, these row buckets,
-- ddl/<table> (with the ALTER it guards), views/<tenant>. Buckets come before any DDL:
-- a push holding ACCESS EXCLUSIVE from an ALTER must never wait for a bucket.
BEGIN
    -- taken through _tenant_locks: on a Citus coordinator on the node that holds the
    -- tenant's rows, so a delivery on the coordinator path and one on the worker path
    -- for the same key wait for each other; on PostgreSQL rows of optiqoflow.lock_slots
    PERFORM optiqoflow._tenant_locks(
        p_tenant_id, optiqoflow._row_lock_space(p_tenant_id, p_table),
        -- 512 records or more: all 64 buckets without reading an id, as they almost
        -- surely cover every bucket anyway (expected buckets left out: 64 x (63/64)^512,
        -- about 0.02), and reading and hashing every id cost 8-20 ms for 5,000 records
        CASE WHEN p_records IS NULL OR jsonb_array_length(p_records) >= 512
                 THEN ARRAY(SELECT generate_series(0, 63))
             -- one record (every real-time change): its one bucket, without a query
             WHEN jsonb_array_length(p_records) = 1
                 THEN ARRAY[optiqoflow._row_lock_bucket((p_records -> 0 ->> 'id')::uuid)]
             ELSE ARRAY(SELECT DISTINCT optiqoflow._row_lock_bucket((r.e ->> 'id')::uuid)
                          FROM jsonb_array_elements(p_records) AS r(e)) END);
    -- a closed (erased) tenant writes nothing: checked under the lock, so a delivery
    -- that waited for optiqoflow.erase_tenant's first call sees its commit
    PERFORM optiqoflow._refuse_closed_tenant(p_tenant_id);
END
$$;

COMMENT ON FUNCTION optiqoflow._lock_rows(uuid, text, jsonb) IS
    'Internal: the row-bucket locks (64 per tenant x table, in order) of the keys a delivery writes, or all of them when p_records is NULL or holds 512 records or more. Taken before any DDL of the delivery. Then refuses a closed (erased) tenant, OF028.';
REVOKE ALL ON FUNCTION optiqoflow._lock_rows(uuid, text, jsonb) FROM PUBLIC;
