-- 0014, after the function files: tenants.sync_status computed by
-- optiqoflow._sync_status(), whose queries each read the caller's tenant only. The
-- single query it was (0007) is refused by a Citus coordinator with 0A000 "complex joins
-- are only supported when all distributed tables are co-located". Same columns, same
-- rows; the comment and the grants stay.
CREATE OR REPLACE VIEW tenants.sync_status WITH (security_barrier = true) AS
SELECT s.tenant_id, s.table_name, s.source_table, s.as_of, s.lag_seconds, s.last_change_at,
       s.last_full_sync_at, s.full_sync_state, s.refusals_waiting
  FROM optiqoflow._sync_status() s;
