-- 0012, after the function files: optiqoflow.sync_health computed by
-- optiqoflow._sync_health(), pair by pair with queries that each read one tenant. The
-- single query it was (0001) is refused by a Citus coordinator with 0A000 "complex joins
-- are only supported when all distributed tables are co-located". Same columns, same
-- rows; the comment and the grants stay.
CREATE OR REPLACE VIEW optiqoflow.sync_health AS
SELECT h.tenant_id, h.target_table, h.source_table, h."rows", h.last_push_at,
       h.full_sync_run_id, h.full_sync_id, h.full_sync_state, h.full_sync_started_at,
       h.full_sync_last_batch_at, h.full_sync_finished_at, h.full_sync_records,
       h.full_sync_total, h.deliveries_1h, h.applied_1h, h.stale_1h, h.duplicate_1h,
       h.refused_1h, h.lag_ms_p50_1h, h.lag_ms_max_1h, h.refused_waiting, h.oldest_refused_at
  FROM optiqoflow._sync_health() h;
