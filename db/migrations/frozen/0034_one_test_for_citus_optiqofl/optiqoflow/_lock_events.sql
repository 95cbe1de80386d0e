CREATE OR REPLACE FUNCTION optiqoflow._lock_events(
    p_events jsonb,
    p_tenant text DEFAULT NULL
)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The row locks of many real-time events applied in one transaction (a BATCH envelope,
-- a group commit of concurrent deliveries), all taken first and in the one global order
-- of _lock_rows (slot order; on Citus space, then bucket): two transactions touching the same keys in
-- different orders would otherwise deadlock. p_events: a jsonb array of payloads;
-- p_tenant: the tenant of an event that names none (the envelope's). An event whose
-- tenant, id or table cannot be read takes no lock here: apply_webhook refuses it, or
-- takes what it needs when it applies it.
BEGIN
    IF NOT optiqoflow._on_citus() THEN
        -- PostgreSQL: the rows of optiqoflow.lock_slots, in slot order (see _tenant_locks)
        PERFORM FROM optiqoflow.lock_slots s
          WHERE s.slot = ANY (ARRAY(
                    SELECT optiqoflow._row_lock_slot(optiqoflow._row_lock_space(k.tenant, k.target),
                                                     optiqoflow._row_lock_bucket(k.id))
                      FROM optiqoflow._event_keys(p_events, p_tenant) k
                     WHERE k.tenant IS NOT NULL AND k.id IS NOT NULL AND k.target IS NOT NULL))
          ORDER BY s.slot FOR UPDATE;
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(l.space, l.bucket)
       FROM (SELECT DISTINCT optiqoflow._row_lock_space(k.tenant, k.target) AS space,
                             optiqoflow._row_lock_bucket(k.id) AS bucket
               FROM optiqoflow._event_keys(p_events, p_tenant) k
              WHERE k.tenant IS NOT NULL AND k.id IS NOT NULL AND k.target IS NOT NULL) l
      ORDER BY l.space, l.bucket;
END
$$;

COMMENT ON FUNCTION optiqoflow._lock_events(jsonb, text) IS
    'Internal: the row-bucket locks of every event of a jsonb array of real-time payloads (p_tenant: the tenant of events that name none), taken first and in the global order, so that transactions applying many events cannot deadlock on them.';
REVOKE ALL ON FUNCTION optiqoflow._lock_events(jsonb, text) FROM PUBLIC;
