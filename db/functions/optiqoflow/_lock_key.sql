CREATE OR REPLACE FUNCTION optiqoflow._lock_key(p_name text)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- One 64-bit advisory-lock key per named thing ('ddl/work_orders', 'views/<tenant>', ...):
    -- the named locks of _lock on a Citus cluster (elsewhere rows of optiqoflow.lock_slots).
    SELECT pg_catalog.hashtextextended('optiqoflow/' || p_name, 0);
$$;

COMMENT ON FUNCTION optiqoflow._lock_key(text) IS
    'Internal: the advisory-lock key of a named resource on Citus (_lock). Lock order in a delivery: sync/<tenant>/<table>, row buckets (_lock_rows), ddl/<table>, views/<tenant>.';
REVOKE ALL ON FUNCTION optiqoflow._lock_key(text) FROM PUBLIC;
