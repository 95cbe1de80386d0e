CREATE OR REPLACE FUNCTION optiqoflow.health_metrics()
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- What the receiver exports on /metrics from the database, each figure bounded in
    -- cost and with no label per tenant (however many tenants there are):
    --   refused_waiting            refusals not resolved yet (a partial index);
    --   worst_lag_seconds          the worst lag (arrival minus the change's source time)
    --                              among the newest 10,000 deliveries applied in the last
    --                              5 minutes; 0 when none;
    --   log_partitions_ahead_days  daily log partitions after today (UTC): prune_logs
    --                              keeps 3; 0 means pruning has not run for days.
    SELECT pg_catalog.jsonb_build_object(
        'refused_waiting',
            (SELECT count(*) FROM optiqoflow.refused_deliveries d WHERE d.resolved_at IS NULL),
        'worst_lag_seconds',
            (SELECT coalesce(max(x.lag_ms), 0) / 1000.0
               FROM (SELECT l.lag_ms FROM optiqoflow.webhook_logs l
                      WHERE l.received_at > now() - interval '5 minutes' AND l.outcome = 'applied'
                        AND l.replay_of IS NULL   -- a replay's lag runs from the change's first arrival
                      ORDER BY l.received_at DESC LIMIT 10000) x),
        'log_partitions_ahead_days',
            (SELECT count(*) FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'optiqoflow.webhook_logs'::regclass
                AND c.relname ~ '^webhook_logs_p[0-9]{8}$'
                AND c.relname > 'webhook_logs_p' || pg_catalog.to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD')));
$$;

COMMENT ON FUNCTION optiqoflow.health_metrics() IS
    'Database figures for the receiver''s /metrics, each bounded in cost and without per-tenant labels: refused_waiting, worst_lag_seconds (newest 10,000 applied deliveries of the last 5 minutes, replays left out), log_partitions_ahead_days.';
REVOKE ALL ON FUNCTION optiqoflow.health_metrics() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.health_metrics() TO service_role;
