CREATE OR REPLACE FUNCTION optiqoflow._tenant_locks(p_tenant_id uuid, p_space integer, p_keys integer[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The row-bucket locks (p_space, k) for every k of p_keys, in one global order.
-- On PostgreSQL: row locks on optiqoflow.lock_slots (_row_lock_slot), which only the
-- owner may lock, taken in slot order. On Citus: pg_advisory_xact_lock(p_space, k) in
-- ascending k, on the node that holds p_tenant_id's rows: here on a worker running
-- apply_tenant_webhook; from the coordinator by a router query on the tenant's shard,
-- whose functions run on that worker in this distributed transaction. So a delivery on
-- the coordinator path and one on the worker path wait for each other.
DECLARE
    v_n bigint;
BEGIN
    IF NOT optiqoflow._on_citus() THEN
        IF cardinality(p_keys) = 1 THEN                          -- a real-time change: one bucket
            PERFORM FROM optiqoflow.lock_slots s
              WHERE s.slot = optiqoflow._row_lock_slot(p_space, p_keys[1]) FOR UPDATE;
        ELSE
            PERFORM FROM optiqoflow.lock_slots s
              WHERE s.slot = ANY (ARRAY(SELECT optiqoflow._row_lock_slot(p_space, k) FROM unnest(p_keys) k))
              ORDER BY s.slot FOR UPDATE;
        END IF;
    ELSIF optiqoflow._rows_are_here() THEN
        IF cardinality(p_keys) = 1 THEN
            PERFORM pg_advisory_xact_lock(p_space, p_keys[1]);   -- a real-time change: one bucket
        ELSE
            PERFORM optiqoflow._advisory_xact_locks(p_space, p_keys);
        END IF;
    ELSE
        SELECT optiqoflow._advisory_xact_locks(p_space, p_keys), count(*) INTO v_n, v_n
          FROM optiqoflow.tombstones t WHERE t.tenant_id = p_tenant_id;
    END IF;
END
$$;

COMMENT ON FUNCTION optiqoflow._tenant_locks(uuid, integer, integer[]) IS
    'Internal: the row-bucket locks (p_space, k) for the keys, in one global order: rows of optiqoflow.lock_slots on PostgreSQL; on Citus advisory locks on the node that holds the tenant''s rows (from the coordinator: its worker, by a router query).';
REVOKE ALL ON FUNCTION optiqoflow._tenant_locks(uuid, integer, integer[]) FROM PUBLIC;
