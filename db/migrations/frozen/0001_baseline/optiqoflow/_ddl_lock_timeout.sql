CREATE OR REPLACE FUNCTION optiqoflow._ddl_lock_timeout()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- How long request-time DDL waits for a lock: optiqoflow.ddl_lock_timeout, default 2s.
    SELECT coalesce(nullif(pg_catalog.current_setting('optiqoflow.ddl_lock_timeout', true), ''), '2s');
$$;

COMMENT ON FUNCTION optiqoflow._ddl_lock_timeout() IS
    'Internal: the lock_timeout of request-time DDL (setting optiqoflow.ddl_lock_timeout, default 2s).';
REVOKE ALL ON FUNCTION optiqoflow._ddl_lock_timeout() FROM PUBLIC;
