CREATE OR REPLACE FUNCTION optiqoflow._ddl_lock(p_name text)
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Take the transaction-scoped lock (_lock) for request-time DDL on `p_name`, under a
-- short lock_timeout (setting optiqoflow.ddl_lock_timeout, default 2s) that stays in
-- force for the DDL that follows: a push waiting behind a long dashboard query fails
-- with a retryable 55P03 instead of freezing every reader queued behind it.
-- Returns the previous lock_timeout, for the caller to restore after its DDL.
-- Where DDL is not possible (a Citus worker running optiqoflow.apply_tenant_webhook sets
-- optiqoflow.ddl_forbidden), it raises 55OF1 instead, before any DDL starts.
DECLARE
    v_previous text := current_setting('lock_timeout');
BEGIN
    IF current_setting('optiqoflow.ddl_forbidden', true) = 'on' THEN
        RAISE EXCEPTION 'this delivery needs a schema change (%), which only the coordinator can make', p_name
            USING ERRCODE = '55OF1',
                  HINT = 'Repeat it on the coordinator: SELECT optiqoflow.apply_webhook(payload, delivery_id);';
    END IF;
    -- Citus: DDL in a delivery's transaction (which also writes reference tables) has to
    -- run over one connection per node; a no-op on plain PostgreSQL (setting unknown)
    IF current_setting('citus.multi_shard_modify_mode', true) = 'parallel' THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    PERFORM set_config('lock_timeout', optiqoflow._ddl_lock_timeout(), true);
    PERFORM optiqoflow._lock(p_name);
    RETURN v_previous;
END
$$;

COMMENT ON FUNCTION optiqoflow._ddl_lock(text) IS
    'Internal: the lock (_lock) for request-time DDL on a named resource, with a short lock_timeout (optiqoflow.ddl_lock_timeout, default 2s); returns the previous lock_timeout.';
REVOKE ALL ON FUNCTION optiqoflow._ddl_lock(text) FROM PUBLIC;
