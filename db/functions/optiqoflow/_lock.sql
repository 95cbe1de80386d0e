CREATE OR REPLACE FUNCTION optiqoflow._lock(p_name text, p_wait boolean DEFAULT true)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Take the transaction-scoped lock named p_name ('sync/<tenant>/<table>', 'ddl/<table>',
-- 'views/<tenant>', 'prune_logs', ...): waiting for it under the session's lock_timeout,
-- or, with p_wait false, only if it is free (true when taken).
--
-- On PostgreSQL it is a row lock on optiqoflow.lock_slots (_lock_slot), a table that
-- only the owner may read or lock: no other role can take, and so hold, one of these
-- locks. Advisory locks, which any role may take with any key (and pg_locks shows
-- every key in use), would let a login role without grants stall deliveries. On a
-- Citus cluster the locks stay advisory (docs/citus.md says what that means).
BEGIN
    IF NOT optiqoflow._on_citus() THEN
        IF p_wait THEN
            PERFORM FROM optiqoflow.lock_slots s WHERE s.slot = optiqoflow._lock_slot(p_name) FOR UPDATE;
        ELSE
            PERFORM FROM optiqoflow.lock_slots s WHERE s.slot = optiqoflow._lock_slot(p_name)
                FOR UPDATE SKIP LOCKED;
        END IF;
        RETURN FOUND;
    ELSIF p_wait THEN
        PERFORM pg_advisory_xact_lock(optiqoflow._lock_key(p_name));
        RETURN true;
    END IF;
    RETURN pg_try_advisory_xact_lock(optiqoflow._lock_key(p_name));
END
$$;

COMMENT ON FUNCTION optiqoflow._lock(text, boolean) IS
    'Internal: the transaction lock named p_name, waited for (p_wait) or taken only if free (returns whether taken): a row of optiqoflow.lock_slots, which only the owner can lock (advisory locks on Citus).';
REVOKE ALL ON FUNCTION optiqoflow._lock(text, boolean) FROM PUBLIC;
