-- 0014's downgrade: tenants.sync_status as 0007 defined it (before _sync_status is dropped).
CREATE OR REPLACE VIEW tenants.sync_status WITH (security_barrier = true) AS
WITH me AS (
    SELECT x.tenant_id
      FROM (SELECT coalesce(tenants.claims_tenant_id(), tenants.role_tenant_id()) AS tenant_id) x
     WHERE x.tenant_id IS NOT NULL
), pairs AS (
    SELECT a.tenant_id, a.table_name FROM tenants.tenant_column_access a JOIN me USING (tenant_id)
    UNION
    SELECT r.tenant_id, r.target_table FROM optiqoflow.sync_runs r JOIN me USING (tenant_id)
    UNION
    SELECT d.tenant_id, d.target_table FROM optiqoflow.refused_deliveries d JOIN me USING (tenant_id)
     WHERE d.resolved_at IS NULL AND d.target_table IS NOT NULL
)
SELECT p.tenant_id,
       p.table_name,
       m.source_table,
       last.received_at - last.lag_ms * interval '1 millisecond' AS as_of,
       round(last.lag_ms / 1000.0, 3) AS lag_seconds,
       last.received_at AS last_change_at,
       run.finished_at AS last_full_sync_at,
       run.state AS full_sync_state,
       (SELECT count(*) FROM optiqoflow.refused_deliveries d
         WHERE d.tenant_id = p.tenant_id AND d.target_table = p.table_name
           AND d.resolved_at IS NULL) AS refusals_waiting
  FROM pairs p
  LEFT JOIN optiqoflow.table_mappings m ON m.target_table = p.table_name
  LEFT JOIN LATERAL (SELECT l.received_at, l.lag_ms FROM optiqoflow.webhook_logs l
                      WHERE l.tenant_id = p.tenant_id AND l.target_table = p.table_name
                        AND l.outcome = 'applied' AND l.lag_ms IS NOT NULL
                      ORDER BY l.received_at DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT r.state, r.finished_at FROM optiqoflow.sync_runs r
                      WHERE r.tenant_id = p.tenant_id AND r.target_table = p.table_name
                      ORDER BY r.id DESC LIMIT 1) run ON true;
