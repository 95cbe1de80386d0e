CREATE OR REPLACE FUNCTION optiqoflow._rows_are_here()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
-- True when this node holds the rows its deliveries write: plain PostgreSQL, or a Citus
-- worker running apply_tenant_webhook (optiqoflow.ddl_forbidden = on). False on a Citus
-- coordinator, whose row locks, xids and snapshots must come from the tenant's worker
-- (_tenant_locks, _tenant_xid, _tenant_snapshot). A SQL-standard body: inlined into the
-- expression that calls it.
RETURN NOT optiqoflow._on_citus()
       OR pg_catalog.current_setting('optiqoflow.ddl_forbidden', true) = 'on';

COMMENT ON FUNCTION optiqoflow._rows_are_here() IS
    'Internal: true on plain PostgreSQL and on a Citus worker running apply_tenant_webhook (row locks, xids and snapshots are this node''s own); false on a Citus coordinator. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._rows_are_here() FROM PUBLIC;
