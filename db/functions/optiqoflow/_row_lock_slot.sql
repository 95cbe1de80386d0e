CREATE OR REPLACE FUNCTION optiqoflow._row_lock_slot(p_space integer, p_bucket integer)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The optiqoflow.lock_slots row (0-65,535) of row bucket p_bucket (_row_lock_bucket, 0-63)
-- of a tenant x target table (_row_lock_space): a table's 64 buckets are 1,024 rows
-- apart, so two tenant x table pairs share a row only by chance (one in 65,536 per
-- bucket), and then only wait for each other. A SQL-standard body: inlined.
RETURN ((p_space & 65535) + p_bucket * 1024) & 65535;

COMMENT ON FUNCTION optiqoflow._row_lock_slot(integer, integer) IS
    'Internal: the optiqoflow.lock_slots row (0-65,535) of a row bucket of a tenant x table, see _lock_rows. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._row_lock_slot(integer, integer) FROM PUBLIC;
