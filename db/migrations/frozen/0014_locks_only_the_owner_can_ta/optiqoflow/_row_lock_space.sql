CREATE OR REPLACE FUNCTION optiqoflow._row_lock_space(p_tenant_id uuid, p_table text)
RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The first key of a row-bucket lock: one space per tenant x target table
-- (_lock_rows). A SQL-standard body: inlined into the expression that calls it, so the
-- one formula costs no function call on the real-time path.
RETURN pg_catalog.hashtext(p_tenant_id::text || '/' || p_table);

COMMENT ON FUNCTION optiqoflow._row_lock_space(uuid, text) IS
    'Internal: the first key of a row-bucket lock (one per tenant x target table), see _lock_rows. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._row_lock_space(uuid, text) FROM PUBLIC;
