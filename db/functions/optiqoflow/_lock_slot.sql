CREATE OR REPLACE FUNCTION optiqoflow._lock_slot(p_name text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The optiqoflow.lock_slots row of a named lock ('sync/<tenant>/<table>', 'ddl/<table>',
-- 'views/<tenant>', 'prune_logs', ...): 4,096 slots from 65,536 on for each kind (sync,
-- ddl, views, the rest), so names of different kinds never share a row and a delivery,
-- which takes them in the order sync, row buckets, ddl, views, cannot deadlock on a
-- shared row. A SQL-standard body: inlined into the expression that calls it.
RETURN 65536
       + 4096 * CASE pg_catalog.split_part(p_name, '/', 1)
                    WHEN 'sync' THEN 0 WHEN 'ddl' THEN 1 WHEN 'views' THEN 2 ELSE 3 END
       + (pg_catalog.hashtext(p_name) & 4095);

COMMENT ON FUNCTION optiqoflow._lock_slot(text) IS
    'Internal: the optiqoflow.lock_slots row (65,536-81,919) of a named lock, by kind (sync, ddl, views, other), see _lock. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._lock_slot(text) FROM PUBLIC;
