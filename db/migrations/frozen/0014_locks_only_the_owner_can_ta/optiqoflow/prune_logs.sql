CREATE OR REPLACE FUNCTION optiqoflow.prune_logs(
    p_retention         interval DEFAULT '7 days',
    p_refused_retention interval DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET lock_timeout = '2s'
AS $$
-- Keep the logs small; schedule it daily (pg_cron or `optiqoflow prune`, see the README):
--     SELECT optiqoflow.prune_logs();            -- retention 7 days
--     SELECT optiqoflow.prune_logs('30 days');
--     SELECT optiqoflow.prune_logs('7 days', '90 days');   -- unresolved refusals: 90 days
-- 1. delivery_keys (de-duplication keys) older than the retention: deleted in chunks of
--    10,000 through the seen_at index. So the duplicate window equals the retention.
-- 2. tenants.tenant_data_push_log older than the retention: deleted per tenant in chunks
--    through its (tenant_id, pushed_at) index (tenants found by a skip scan of it; on
--    Citus, where a recursive CTE needs a tenant filter, by one query on every shard).
-- 3. refused_deliveries resolved before the cut-off, and those still waiting (never
--    resolved) received before the refusals' cut-off (p_refused_retention, at least the
--    log retention; NULL: 30 days, or the log retention when that is longer), in chunks:
--    a refusal costs its payload once and for a bounded time.
-- 4. webhook_logs: deletes the DEFAULT partition's rows older than the retention, drops
--    the daily partitions whose whole day is older than the retention, and makes sure a
--    partition exists for every UTC day from the cut-off to three days ahead (rows of
--    such a day waiting in the DEFAULT partition move into it). New partitions are
--    attached, not created as PARTITION OF, so the parent is not locked exclusively for
--    them. A partition whose lock is not granted within lock_timeout (2 s) is skipped and
--    named in "partitions_locked" (the next run catches up) rather than queueing every
--    insert behind our waiting DDL. This runs last, so its exclusive locks are held only
--    until the commit that follows.
-- Steps 1 and 2 stop after 100 chunks each (one transaction stays bounded); then "more"
-- is true and calling again continues (`optiqoflow prune` does).
-- Returns what it did: {"cutoff", "partitions_created", "partitions_dropped",
-- "partitions_locked", "default_rows_moved", "default_rows_deleted",
-- "delivery_keys_deleted", "push_log_deleted", "refused_deleted", "refused_expired",
-- "more"}.
DECLARE
    c_days_ahead CONSTANT integer := 3;
    c_chunk      CONSTANT integer := 10000;
    c_max_chunks CONSTANT integer := 100;
    v_cutoff     timestamptz;
    v_day        timestamptz;
    v_last_day   timestamptz;
    v_name       text;
    v_part       record;
    v_upper      timestamptz;
    v_tenant     uuid;
    v_created    text[] := ARRAY[]::text[];
    v_dropped    text[] := ARRAY[]::text[];
    v_locked     text[] := ARRAY[]::text[];
    v_moved      bigint := 0;
    v_default    bigint := 0;
    v_keys       bigint := 0;
    v_push       bigint := 0;
    v_refused    bigint := 0;
    v_expired    bigint := 0;
    v_refused_retention interval;
    v_chunks     integer;
    v_n          bigint;
    v_more       boolean := false;
    v_citus      boolean;
    v_tenants    uuid[];
BEGIN
    IF p_retention IS NULL OR p_retention < interval '1 day' THEN
        RAISE EXCEPTION 'log retention % is shorter than one day', coalesce(p_retention::text, '(null)')
            USING ERRCODE = 'OF017',
                  HINT = 'Logs are kept in daily partitions: pass at least ''1 day''. The default, ''7 days'', is the de-duplication window: a delivery id or event_id is recognised for at least that long.';
    END IF;
    v_refused_retention := coalesce(p_refused_retention, greatest(interval '30 days', p_retention));
    IF v_refused_retention < p_retention THEN
        RAISE EXCEPTION 'refusals'' retention % is shorter than the log retention %',
                        v_refused_retention, p_retention
            USING ERRCODE = 'OF017',
                  HINT = 'Unresolved refusals are kept at least as long as the logs (default 30 days), so they can be repaired and replayed.';
    END IF;
    IF NOT optiqoflow._lock('prune_logs', false) THEN
        RAISE EXCEPTION 'optiqoflow.prune_logs is already running in another session'
            USING ERRCODE = 'OF018',
                  HINT = 'Let it finish; schedule pruning from one place only (pg_cron or the CLI).';
    END IF;
    v_cutoff := now() - p_retention;
    -- the push log distributed by Citus (optiqoflow.distribute)?
    v_citus := optiqoflow._citus_table_kind('tenants.tenant_data_push_log') = 'distributed';

    -- 1. de-duplication keys, oldest first, through the seen_at index
    v_chunks := 0;
    LOOP
        DELETE FROM optiqoflow.delivery_keys k
         WHERE k.key IN (SELECT x.key FROM optiqoflow.delivery_keys x
                          WHERE x.seen_at < v_cutoff ORDER BY x.seen_at LIMIT c_chunk);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_keys := v_keys + v_n;
        v_chunks := v_chunks + 1;
        EXIT WHEN v_n < c_chunk;
        IF v_chunks >= c_max_chunks THEN
            v_more := true;
            EXIT;
        END IF;
    END LOOP;

    -- 2. the push log, tenant by tenant through (tenant_id, pushed_at)
    v_chunks := 0;
    IF v_citus THEN
        -- on Citus (the push log distributed by tenant_id) a recursive CTE must filter on
        -- tenant_id, so no skip scan: every shard lists its tenants with old rows, in
        -- parallel
        v_tenants := ARRAY(SELECT DISTINCT p.tenant_id FROM tenants.tenant_data_push_log p
                            WHERE p.pushed_at < v_cutoff);
    ELSE
        v_tenants := ARRAY(
            WITH RECURSIVE t AS (
                (SELECT p.tenant_id FROM tenants.tenant_data_push_log p ORDER BY p.tenant_id LIMIT 1)
                UNION ALL
                SELECT (SELECT p.tenant_id FROM tenants.tenant_data_push_log p
                         WHERE p.tenant_id > t.tenant_id ORDER BY p.tenant_id LIMIT 1)
                  FROM t WHERE t.tenant_id IS NOT NULL
            )
            SELECT t.tenant_id FROM t WHERE t.tenant_id IS NOT NULL);
    END IF;
    <<tenants>>
    FOREACH v_tenant IN ARRAY v_tenants
    LOOP
        LOOP
            -- one tenant's rows: on Citus a router DELETE on its shard
            DELETE FROM tenants.tenant_data_push_log p
             WHERE p.tenant_id = v_tenant
               AND p.id IN (SELECT x.id FROM tenants.tenant_data_push_log x
                             WHERE x.tenant_id = v_tenant AND x.pushed_at < v_cutoff LIMIT c_chunk);
            GET DIAGNOSTICS v_n = ROW_COUNT;
            v_push := v_push + v_n;
            v_chunks := v_chunks + 1;
            EXIT WHEN v_n < c_chunk;
            IF v_chunks >= c_max_chunks THEN
                v_more := true;
                EXIT tenants;
            END IF;
        END LOOP;
    END LOOP tenants;

    -- 3. refusals resolved before the cut-off (waiting ones stay until resolved)
    DELETE FROM optiqoflow.refused_deliveries r
     WHERE r.resolved_at IS NOT NULL AND r.resolved_at < v_cutoff;
    GET DIAGNOSTICS v_refused = ROW_COUNT;
    -- 3b. refusals nobody resolved within their retention, oldest first (waiting index)
    v_chunks := 0;
    LOOP
        DELETE FROM optiqoflow.refused_deliveries r
         WHERE r.log_id IN (SELECT x.log_id FROM optiqoflow.refused_deliveries x
                             WHERE x.resolved_at IS NULL AND x.received_at < now() - v_refused_retention
                             ORDER BY x.received_at LIMIT c_chunk);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_expired := v_expired + v_n;
        v_chunks := v_chunks + 1;
        EXIT WHEN v_n < c_chunk;
        IF v_chunks >= c_max_chunks THEN
            v_more := true;
            EXIT;
        END IF;
    END LOOP;

    -- 4a. rows of the DEFAULT partition past the retention
    v_chunks := 0;
    LOOP
        DELETE FROM optiqoflow.webhook_logs_default d
         WHERE (d.id, d.received_at) IN (SELECT x.id, x.received_at FROM optiqoflow.webhook_logs_default x
                                          WHERE x.received_at < v_cutoff LIMIT c_chunk);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_default := v_default + v_n;
        v_chunks := v_chunks + 1;
        EXIT WHEN v_n < c_chunk;
        IF v_chunks >= c_max_chunks THEN
            v_more := true;
            EXIT;
        END IF;
    END LOOP;

    -- 4b. drop the partitions whose upper bound is not after the cut-off
    FOR v_part IN
        SELECT c.relname, pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_catalog.pg_inherits i
          JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'optiqoflow.webhook_logs'::regclass
         ORDER BY c.relname
    LOOP
        v_upper := (pg_catalog.regexp_match(v_part.bound, 'TO \(''([^'']+)''\)'))[1]::timestamptz;
        CONTINUE WHEN v_upper IS NULL OR v_upper > v_cutoff;
        BEGIN
            EXECUTE pg_catalog.format('DROP TABLE optiqoflow.%I', v_part.relname);
            v_dropped := v_dropped || v_part.relname::text;
        EXCEPTION WHEN lock_not_available THEN
            v_locked := v_locked || v_part.relname::text;
        END;
    END LOOP;

    -- 4c. a partition for every UTC day from the cut-off's to three days ahead
    v_day := pg_catalog.date_trunc('day', v_cutoff, 'UTC');
    v_last_day := pg_catalog.date_trunc('day', now(), 'UTC') + c_days_ahead * interval '24 hours';
    WHILE v_day <= v_last_day LOOP
        v_name := 'webhook_logs_p' || pg_catalog.to_char(v_day AT TIME ZONE 'UTC', 'YYYYMMDD');
        IF pg_catalog.to_regclass(pg_catalog.format('optiqoflow.%I', v_name)) IS NULL THEN
            BEGIN
                -- rows of that day in the DEFAULT partition move in; no insert may add one
                -- before the ATTACH checks the DEFAULT partition
                LOCK TABLE optiqoflow.webhook_logs_default IN ACCESS EXCLUSIVE MODE;
                EXECUTE pg_catalog.format(
                    'CREATE TABLE optiqoflow.%I (LIKE optiqoflow.webhook_logs INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                    v_name);
                EXECUTE pg_catalog.format(
                    'WITH moved AS (DELETE FROM optiqoflow.webhook_logs_default d
                                     WHERE d.received_at >= $1 AND d.received_at < $2 RETURNING d.*)
                     INSERT INTO optiqoflow.%I SELECT * FROM moved', v_name)
                    USING v_day, v_day + interval '24 hours';
                GET DIAGNOSTICS v_n = ROW_COUNT;
                EXECUTE pg_catalog.format(
                    'ALTER TABLE optiqoflow.webhook_logs ATTACH PARTITION optiqoflow.%I FOR VALUES FROM (%L) TO (%L)',
                    v_name, v_day, v_day + interval '24 hours');
                v_created := v_created || v_name;
                v_moved := v_moved + v_n;
            EXCEPTION WHEN lock_not_available THEN
                v_locked := v_locked || v_name;
            END;
        END IF;
        v_day := v_day + interval '24 hours';
    END LOOP;

    RETURN pg_catalog.jsonb_build_object(
        'retention', p_retention::text,
        'refused_retention', v_refused_retention::text,
        'cutoff', v_cutoff,
        'partitions_created', pg_catalog.to_jsonb(v_created),
        'partitions_dropped', pg_catalog.to_jsonb(v_dropped),
        'partitions_locked', pg_catalog.to_jsonb(v_locked),
        'default_rows_moved', v_moved,
        'default_rows_deleted', v_default,
        'delivery_keys_deleted', v_keys,
        'push_log_deleted', v_push,
        'refused_deleted', v_refused,
        'refused_expired', v_expired,
        'more', v_more);
END
$$;

COMMENT ON FUNCTION optiqoflow.prune_logs(interval, interval) IS
    'Log retention (default 7 days; schedule daily): drops webhook_logs day partitions past the retention and creates those up to 3 days ahead, deletes delivery_keys (the de-duplication window), tenant_data_push_log rows and resolved refused_deliveries past it, and unresolved refused_deliveries past their own retention (default 30 days or the log retention if longer; never shorter than it), in bounded chunks. Returns what it did as jsonb; "more": true means call again.';
REVOKE ALL ON FUNCTION optiqoflow.prune_logs(interval, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.prune_logs(interval, interval) TO service_role;
