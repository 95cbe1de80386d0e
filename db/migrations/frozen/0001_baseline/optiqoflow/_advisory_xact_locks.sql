CREATE OR REPLACE FUNCTION optiqoflow._advisory_xact_locks(p_space integer, p_keys integer[])
RETURNS integer
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    -- pg_advisory_xact_lock(p_space, k) for each k of p_keys, in ascending order; how many.
    -- Called in a router query's target list (see _lock_rows) it runs on the worker.
    SELECT count(*)::integer FROM (SELECT pg_advisory_xact_lock(p_space, k)
                                     FROM (SELECT DISTINCT k FROM unnest(p_keys) k ORDER BY 1) s) l;
$$;

COMMENT ON FUNCTION optiqoflow._advisory_xact_locks(integer, integer[]) IS
    'Internal: transaction advisory locks (p_space, k) for the keys, in order; run on the tenant''s node by _lock_rows on a Citus coordinator.';
REVOKE ALL ON FUNCTION optiqoflow._advisory_xact_locks(integer, integer[]) FROM PUBLIC;
