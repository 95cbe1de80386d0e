CREATE OR REPLACE FUNCTION optiqoflow._tenant_xid(p_tenant_id uuid)
RETURNS xid8
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The current transaction's xid on the node that holds p_tenant_id's rows, stored as
-- their _of_xid (FULL_SYNC completion compares it with sync_runs.start_snapshot, taken
-- by _tenant_snapshot). Plain PostgreSQL, or a Citus worker running
-- apply_tenant_webhook: this node's own. On a Citus coordinator: the worker's, read by a
-- router query on the tenant's shard of tombstones, which Citus runs on that worker
-- inside this distributed transaction (a SELECT's functions are evaluated where the
-- query runs). So a tenant's row xids and run snapshots all come from one counter,
-- whichever path wrote them.
DECLARE
    v_xid  xid8;
    v_rows bigint;
BEGIN
    IF optiqoflow._rows_are_here() THEN
        RETURN pg_current_xact_id();
    END IF;
    SELECT pg_current_xact_id(), count(*) INTO v_xid, v_rows
      FROM optiqoflow.tombstones t WHERE t.tenant_id = p_tenant_id;
    RETURN v_xid;
END
$$;

COMMENT ON FUNCTION optiqoflow._tenant_xid(uuid) IS
    'Internal: the current transaction''s xid on the node that holds the tenant''s rows (Citus coordinator: its worker''s; elsewhere this node''s), for _of_xid.';
REVOKE ALL ON FUNCTION optiqoflow._tenant_xid(uuid) FROM PUBLIC;
