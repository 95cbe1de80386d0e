CREATE OR REPLACE FUNCTION optiqoflow._tenant_snapshot(p_tenant_id uuid)
RETURNS pg_snapshot
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- pg_current_snapshot() on the node that holds p_tenant_id's rows: a FULL_SYNC run's
-- start snapshot, in the same xid space as the rows' _of_xid (see _tenant_xid).
DECLARE
    v_snapshot pg_snapshot;
    v_rows     bigint;
BEGIN
    IF optiqoflow._rows_are_here() THEN
        RETURN pg_current_snapshot();
    END IF;
    SELECT pg_current_snapshot(), count(*) INTO v_snapshot, v_rows
      FROM optiqoflow.tombstones t WHERE t.tenant_id = p_tenant_id;
    RETURN v_snapshot;
END
$$;

COMMENT ON FUNCTION optiqoflow._tenant_snapshot(uuid) IS
    'Internal: pg_current_snapshot() on the node that holds the tenant''s rows (Citus coordinator: its worker''s; elsewhere this node''s), for sync_runs.start_snapshot.';
REVOKE ALL ON FUNCTION optiqoflow._tenant_snapshot(uuid) FROM PUBLIC;
