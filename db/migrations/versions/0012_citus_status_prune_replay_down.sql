-- 0012's downgrade: optiqoflow.sync_health as 0001 defined it.
CREATE OR REPLACE VIEW optiqoflow.sync_health AS
WITH waiting AS (
    -- refused / unusable deliveries not resolved yet (a small partial index)
    SELECT d.tenant_id, d.target_table, count(*) AS refused_waiting,
           min(d.received_at) AS oldest_refused_at
      FROM optiqoflow.refused_deliveries d
     WHERE d.resolved_at IS NULL
     GROUP BY d.tenant_id, d.target_table
), pairs AS (
    -- every tenant x table that has pushed, run a FULL_SYNC, or has refusals waiting
    -- (tenant or table NULL: refusals that name no valid tenant or table)
    SELECT a.tenant_id, a.table_name AS target_table FROM tenants.tenant_column_access a
    UNION
    SELECT r.tenant_id, r.target_table FROM optiqoflow.sync_runs r
    UNION
    SELECT w.tenant_id, w.target_table FROM waiting w
)
SELECT p.tenant_id,
       p.target_table,
       m.source_table,
       optiqoflow._tenant_row_count(p.tenant_id, p.target_table) AS rows,
       push.pushed_at AS last_push_at,
       run.id AS full_sync_run_id,
       run.sync_id AS full_sync_id,
       run.state AS full_sync_state,
       run.started_at AS full_sync_started_at,
       run.last_batch_at AS full_sync_last_batch_at,
       run.finished_at AS full_sync_finished_at,
       run.records AS full_sync_records,
       run.total AS full_sync_total,
       coalesce(logs.deliveries, 0) AS deliveries_1h,
       coalesce(logs.applied, 0) AS applied_1h,
       coalesce(logs.stale, 0) AS stale_1h,
       coalesce(logs.duplicate, 0) AS duplicate_1h,
       coalesce(logs.refused, 0) AS refused_1h,
       logs.lag_ms_p50 AS lag_ms_p50_1h,
       logs.lag_ms_max AS lag_ms_max_1h,
       coalesce(w.refused_waiting, 0) AS refused_waiting,
       w.oldest_refused_at
  FROM pairs p
  LEFT JOIN optiqoflow.table_mappings m ON m.target_table = p.target_table
  -- newest push of that table: backwards along (tenant_id, pushed_at)
  LEFT JOIN LATERAL (
        SELECT l.pushed_at
          FROM tenants.tenant_data_push_log l
         WHERE l.tenant_id = p.tenant_id AND p.target_table = ANY (l.tables)
         ORDER BY l.pushed_at DESC
         LIMIT 1) push ON true
  -- newest FULL_SYNC run: sync_runs_current (tenant_id, target_table, id DESC)
  LEFT JOIN LATERAL (
        SELECT r.id, r.sync_id, r.state, r.started_at, r.last_batch_at, r.finished_at,
               r.records, r.total
          FROM optiqoflow.sync_runs r
         WHERE r.tenant_id = p.tenant_id AND r.target_table = p.target_table
         ORDER BY r.id DESC
         LIMIT 1) run ON true
  -- the last hour of deliveries: today's (and maybe yesterday's) partition, through
  -- webhook_logs_tenant_table (tenant_id, target_table, received_at)
  LEFT JOIN LATERAL (
        SELECT count(*) AS deliveries,
               count(*) FILTER (WHERE g.outcome = 'applied') AS applied,
               count(*) FILTER (WHERE g.outcome = 'stale') AS stale,
               count(*) FILTER (WHERE g.outcome = 'duplicate') AS duplicate,
               count(*) FILTER (WHERE g.outcome = 'refused') AS refused,
               round(percentile_cont(0.5) WITHIN GROUP (ORDER BY g.lag_ms))::bigint AS lag_ms_p50,
               max(g.lag_ms) AS lag_ms_max
          FROM optiqoflow.webhook_logs g
         WHERE g.tenant_id = p.tenant_id AND g.target_table = p.target_table
           AND g.received_at > now() - interval '1 hour') logs ON true
  LEFT JOIN waiting w
         ON w.tenant_id IS NOT DISTINCT FROM p.tenant_id
        AND w.target_table IS NOT DISTINCT FROM p.target_table;
