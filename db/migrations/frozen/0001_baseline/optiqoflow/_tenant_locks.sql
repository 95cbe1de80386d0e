CREATE OR REPLACE FUNCTION optiqoflow._tenant_locks(p_tenant_id uuid, p_space integer, p_keys integer[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pg_advisory_xact_lock(p_space, k) for every k of p_keys (ascending), on the node that
-- holds p_tenant_id's rows: here on plain PostgreSQL and on a Citus worker running
-- apply_tenant_webhook; from a Citus coordinator by a router query on the tenant's
-- shard, whose functions run on that worker in this distributed transaction. So a
-- delivery on the coordinator path and one on the worker path wait for each other.
DECLARE
    v_n bigint;
BEGIN
    IF optiqoflow._rows_are_here() THEN
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
    'Internal: transaction advisory locks (p_space, k) for the keys, in order, on the node that holds the tenant''s rows (Citus coordinator: its worker, by a router query; elsewhere this node).';
REVOKE ALL ON FUNCTION optiqoflow._tenant_locks(uuid, integer, integer[]) FROM PUBLIC;
