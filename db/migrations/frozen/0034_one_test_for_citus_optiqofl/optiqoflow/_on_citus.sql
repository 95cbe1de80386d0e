CREATE OR REPLACE FUNCTION optiqoflow._on_citus()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
-- True when this database runs Citus (its catalog pg_dist_partition exists): the one
-- test every function that acts otherwise on a Citus cluster makes (advisory locks
-- instead of optiqoflow.lock_slots, the tenant's worker for xids and snapshots, ...).
-- A syscache lookup; a SQL-standard body: inlined into the expression that calls it.
RETURN pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL;

COMMENT ON FUNCTION optiqoflow._on_citus() IS
    'Internal: true when this database runs Citus (pg_catalog.pg_dist_partition exists). Inlined into the expressions that call it.';
REVOKE ALL ON FUNCTION optiqoflow._on_citus() FROM PUBLIC;
