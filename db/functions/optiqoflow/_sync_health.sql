CREATE OR REPLACE FUNCTION optiqoflow._sync_health()
RETURNS TABLE (
    tenant_id               uuid,
    target_table            text,
    source_table            text,
    "rows"                  bigint,
    last_push_at            timestamptz,
    full_sync_run_id        bigint,
    full_sync_id            text,
    full_sync_state         text,
    full_sync_started_at    timestamptz,
    full_sync_last_batch_at timestamptz,
    full_sync_finished_at   timestamptz,
    full_sync_records       bigint,
    full_sync_total         bigint,
    deliveries_1h           bigint,
    applied_1h              bigint,
    stale_1h                bigint,
    duplicate_1h            bigint,
    refused_1h              bigint,
    lag_ms_p50_1h           bigint,
    lag_ms_max_1h           bigint,
    refused_waiting         bigint,
    oldest_refused_at       timestamptz
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- The rows of the view optiqoflow.sync_health (which is SELECT * FROM this function).
-- Every tenant x target table that has pushed, run a FULL_SYNC, or has refusals waiting
-- (tenant or table NULL: refusals that name no valid tenant or table); then, per pair,
-- queries that each read one tenant (WHERE tenant_id = that tenant): its row count, its
-- newest push, its newest FULL_SYNC run, its last hour of deliveries, and the refusals
-- waiting. On Citus each of them is a router query on the tenant's shard; the single
-- query this view used to be (laterals joining three distributed tables, a reference
-- table and a UNION) is refused there with 0A000 "complex joins are only supported when
-- all distributed tables are co-located".
DECLARE
    v_pair record;
BEGIN
    FOR v_pair IN
        SELECT DISTINCT p.tenant_id, p.target_table
          FROM (SELECT a.tenant_id, a.table_name AS target_table FROM tenants.tenant_column_access a
                UNION
                SELECT r.tenant_id, r.target_table FROM optiqoflow.sync_runs r
                UNION
                SELECT d.tenant_id, d.target_table FROM optiqoflow.refused_deliveries d
                 WHERE d.resolved_at IS NULL) p
         ORDER BY p.tenant_id, p.target_table
    LOOP
        tenant_id := v_pair.tenant_id;
        target_table := v_pair.target_table;
        SELECT m.source_table INTO source_table
          FROM optiqoflow.table_mappings m WHERE m.target_table = v_pair.target_table;
        IF NOT FOUND THEN
            source_table := NULL;
        END IF;
        "rows" := NULL;
        last_push_at := NULL;
        full_sync_run_id := NULL; full_sync_id := NULL; full_sync_state := NULL;
        full_sync_started_at := NULL; full_sync_last_batch_at := NULL; full_sync_finished_at := NULL;
        full_sync_records := NULL; full_sync_total := NULL;
        deliveries_1h := 0; applied_1h := 0; stale_1h := 0; duplicate_1h := 0; refused_1h := 0;
        lag_ms_p50_1h := NULL; lag_ms_max_1h := NULL;
        IF v_pair.tenant_id IS NOT NULL THEN
            IF v_pair.target_table IS NOT NULL THEN
                "rows" := optiqoflow._tenant_row_count(v_pair.tenant_id, v_pair.target_table);
            END IF;
            -- newest push of that table: backwards along (tenant_id, pushed_at)
            SELECT l.pushed_at INTO last_push_at
              FROM tenants.tenant_data_push_log l
             WHERE l.tenant_id = v_pair.tenant_id AND v_pair.target_table = ANY (l.tables)
             ORDER BY l.pushed_at DESC
             LIMIT 1;
            -- newest FULL_SYNC run: sync_runs_current (tenant_id, target_table, id DESC)
            SELECT r.id, r.sync_id, r.state, r.started_at, r.last_batch_at, r.finished_at,
                   r.records, r.total
              INTO full_sync_run_id, full_sync_id, full_sync_state, full_sync_started_at,
                   full_sync_last_batch_at, full_sync_finished_at, full_sync_records, full_sync_total
              FROM optiqoflow.sync_runs r
             WHERE r.tenant_id = v_pair.tenant_id AND r.target_table = v_pair.target_table
             ORDER BY r.id DESC
             LIMIT 1;
            -- the last hour of deliveries, through webhook_logs_tenant_table
            SELECT count(*),
                   count(*) FILTER (WHERE g.outcome = 'applied'),
                   count(*) FILTER (WHERE g.outcome = 'stale'),
                   count(*) FILTER (WHERE g.outcome = 'duplicate'),
                   count(*) FILTER (WHERE g.outcome = 'refused'),
                   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY g.lag_ms))::bigint,
                   max(g.lag_ms)
              INTO deliveries_1h, applied_1h, stale_1h, duplicate_1h, refused_1h,
                   lag_ms_p50_1h, lag_ms_max_1h
              FROM optiqoflow.webhook_logs g
             WHERE g.tenant_id = v_pair.tenant_id AND g.target_table = v_pair.target_table
               AND g.received_at > now() - interval '1 hour';
        END IF;
        -- refused / unusable deliveries not resolved yet (a small partial index)
        SELECT count(*), min(d.received_at) INTO refused_waiting, oldest_refused_at
          FROM optiqoflow.refused_deliveries d
         WHERE d.resolved_at IS NULL
           AND d.tenant_id IS NOT DISTINCT FROM v_pair.tenant_id
           AND d.target_table IS NOT DISTINCT FROM v_pair.target_table;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION optiqoflow._sync_health() IS
    'Internal: the rows of the view optiqoflow.sync_health (one per tenant x target table), computed pair by pair with queries that each read one tenant, so a Citus coordinator can run them (router queries). Definer''s rights, like the view.';
REVOKE ALL ON FUNCTION optiqoflow._sync_health() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow._sync_health() TO service_role;
