CREATE OR REPLACE FUNCTION optiqoflow._row_lock_bucket(p_id uuid)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The second key of a row-bucket lock: the bucket (0-63) of a record's id
-- (_lock_rows). A SQL-standard body: inlined into the expression that calls it.
RETURN pg_catalog.hashtext(p_id::text) & 63;

COMMENT ON FUNCTION optiqoflow._row_lock_bucket(uuid) IS
    'Internal: the bucket (0-63) of a record id, the second key of a row-bucket lock, see _lock_rows. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._row_lock_bucket(uuid) FROM PUBLIC;
