CREATE OR REPLACE FUNCTION optiqoflow.full_sync_batch(
    p_tenant_id   uuid,
    p_table       text,
    p_records     jsonb,
    p_offset      bigint DEFAULT 0,
    p_total       bigint DEFAULT NULL,
    p_sync_id     text DEFAULT NULL,
    p_occurred_at timestamptz DEFAULT NULL,
    p_buckets     text[] DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
-- jsonb_array_elements and jsonb_populate_recordset hold a batch's records in a tuplestore
-- of up to work_mem before spilling it to a temporary file: at the default 4MB a batch of
-- 5,000 work_orders records (3.7 MiB) wrote two temporary files, 8.9 MB, and took ~10%
-- longer (BENCHMARKS.md). 32MB holds the largest records array a 16 MiB body can carry;
-- large deliveries come a few at a time (OPTIQO_LARGE_BODY_PARSES).
SET work_mem = '32MB'
AS $$
-- One FULL_SYNC batch: the records at positions [p_offset, p_offset + n) of a run.
--
-- Runs. A batch with a sync_id belongs to that run (tenant x table x sync_id) whatever its
-- offset; the run starts with its first batch to arrive. Without a sync_id a batch joins
-- the tenant x table's current run (the newest running one without a sync_id); offset 0
-- starts a new run unless the current one has not received offset 0 yet. Starting a run
-- abandons any unfinished run of the same tenant x table. A batch (run, offset) that
-- arrives again is a duplicate.
--
-- Without a total: offset 0 removes the tenant's rows of the table (except those in the
-- batch or already written by this run), then every batch inserts its records.
-- With a total: nothing is removed until batches covering every offset in [0, total) have
-- arrived, in any order; then the tenant's rows of the table that were neither in the
-- run nor written after it started are removed and tombstoned. An abandoned run removes
-- nothing. Records obey the version rules throughout.
--
-- Scoped runs (a repair): p_buckets limits the run to those buckets (2 or 4 hex digits
-- of md5(id::text), see optiqoflow.bucket_fingerprints; 1 to 256 of them). Its removals
-- (offset 0 without a total, or completion with one) touch only rows of those buckets,
-- under the same rules; every record must be of one of them; the run keeps the buckets
-- of its first batch, and a batch of it naming others is refused (OF027). Like any run,
-- it abandons the tenant x table's unfinished run.
--
-- Returns {"status": "applied" | "duplicate", "table", "rows", "stale", "duplicates",
--          "removed" (on the batch that completes or wipes), "sync_run_id", "run_state"}.
DECLARE
    v_mapping   optiqoflow.table_mappings := optiqoflow._target_table(p_table);
    v_table     text := v_mapping.target_table;
    v_offset    bigint := coalesce(p_offset, 0);
    v_info      jsonb;
    v_evolved   jsonb;
    v_columns   text[];
    v_run       optiqoflow.sync_runs;
    v_count     bigint;
    v_cover     int8multirange;
    v_total     bigint;
    v_completes boolean := false;
    v_wipes     boolean := false;
    v_seen      boolean;
    v_snapshot_at timestamptz;
    v_result    jsonb;
    v_removed   bigint;
    v_now       timestamptz := now();   -- Citus: no now() inside CASE in a distributed UPDATE
    v_buckets   text[];
    v_digits    integer;   -- the digits of every bucket of a scoped run (0: mixed)
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF v_offset < 0 OR (p_total IS NOT NULL AND p_total < 0) THEN
        RAISE EXCEPTION 'invalid FULL_SYNC position: offset %, total %', p_offset, p_total
            USING ERRCODE = 'OF010', HINT = 'offset and total are whole numbers >= 0.';
    END IF;
    IF p_sync_id IS NOT NULL AND (length(p_sync_id) > 200 OR p_sync_id = '') THEN
        RAISE EXCEPTION 'invalid sync_id'
            USING ERRCODE = 'OF010', HINT = 'sync_id is a non-empty string of at most 200 characters.';
    END IF;

    IF p_buckets IS NOT NULL THEN
        IF cardinality(p_buckets) NOT BETWEEN 1 AND 256
           OR EXISTS (SELECT FROM unnest(p_buckets) b WHERE b IS NULL OR b !~ '^([0-9a-f]{2}|[0-9a-f]{4})$') THEN
            RAISE EXCEPTION 'a FULL_SYNC''s buckets are 1 to 256 buckets of 2 or 4 lower-case hex digits'
                USING ERRCODE = 'OF027', HINT = 'e.g. "buckets": ["3f", "a0c1"] (README, Repair without peering).';
        END IF;
        v_buckets := ARRAY(SELECT DISTINCT b FROM unnest(p_buckets) b ORDER BY 1);
    END IF;

    -- column policies (optiqoflow.column_policies): blocked keys out, hashed values hashed
    IF jsonb_typeof(p_records) = 'array' AND EXISTS (SELECT FROM optiqoflow.column_policies cp
                                                      WHERE cp.target_table = v_table AND cp.policy <> 'keep') THEN
        p_records := optiqoflow._policy_records(v_table, p_records);
    END IF;
    v_info := optiqoflow._analyse_records(p_tenant_id, p_records, p_occurred_at);
    IF v_buckets IS NOT NULL AND EXISTS (
           SELECT FROM jsonb_array_elements(p_records) AS r(e)
            WHERE NOT optiqoflow._in_buckets((r.e ->> 'id')::uuid, v_buckets)) THEN
        RAISE EXCEPTION 'a record of this FULL_SYNC is in none of its buckets'
            USING ERRCODE = 'OF027',
                  HINT = 'A scoped FULL_SYNC carries only rows whose left(md5(id::text), 2 or 4) is one of its buckets.';
    END IF;
    v_count := (v_info ->> 'records')::bigint;

    -- Runs of one tenant x table are managed one batch at a time. Lock order (see
    -- _lock_rows): this lock, then the row buckets, then DDL, then views.
    PERFORM optiqoflow._lock('sync/' || p_tenant_id::text || '/' || v_table);

    IF p_sync_id IS NOT NULL THEN
        SELECT * INTO v_run FROM optiqoflow.sync_runs r
         WHERE r.tenant_id = p_tenant_id AND r.target_table = v_table AND r.sync_id = p_sync_id
           FOR UPDATE;
    ELSE
        -- the newest run without a sync_id, whatever its state: a retried batch of a run
        -- that has completed is a duplicate, not the start of an orphan run
        SELECT * INTO v_run FROM optiqoflow.sync_runs r
         WHERE r.tenant_id = p_tenant_id AND r.target_table = v_table AND r.sync_id IS NULL
         ORDER BY r.id DESC LIMIT 1
           FOR UPDATE;
        IF v_run.id IS NOT NULL THEN
            v_seen := EXISTS (SELECT FROM optiqoflow.sync_run_batches b
                               WHERE b.tenant_id = p_tenant_id AND b.run_id = v_run.id
                                 AND b.batch_offset = v_offset);
            IF v_offset = 0 AND (v_seen OR v_run.state <> 'running') THEN
                v_run := NULL;   -- offset 0 again: a new run
            ELSIF v_run.state <> 'running' AND NOT v_seen THEN
                v_run := NULL;   -- a new offset after the run ended: the next run's batch
            END IF;
        END IF;
    END IF;

    IF v_run.id IS NULL THEN
        UPDATE optiqoflow.sync_runs r SET state = 'abandoned', finished_at = now()
         WHERE r.tenant_id = p_tenant_id AND r.target_table = v_table AND r.state = 'running';
        INSERT INTO optiqoflow.sync_runs (tenant_id, target_table, sync_id, total, start_snapshot, buckets)
        VALUES (p_tenant_id, v_table, p_sync_id, p_total, optiqoflow._tenant_snapshot(p_tenant_id),   -- Citus: the tenant's node
                v_buckets)
        RETURNING * INTO v_run;
    ELSIF v_run.buckets IS DISTINCT FROM v_buckets THEN
        RAISE EXCEPTION 'this FULL_SYNC batch names other buckets than its run'
            USING ERRCODE = 'OF027',
                  DETAIL = format('The run %s has buckets %s.', v_run.id, coalesce(array_to_string(v_run.buckets, ', '), '(none: the whole table)')),
                  HINT = 'Every batch of a run carries the buckets of its first batch (or none, for a whole-table run).';
    ELSIF EXISTS (SELECT FROM optiqoflow.sync_run_batches b
                   WHERE b.tenant_id = p_tenant_id AND b.run_id = v_run.id AND b.batch_offset = v_offset) THEN
        RETURN jsonb_build_object('status', 'duplicate', 'table', v_table, 'rows', 0, 'upserted', 0,
                                  'removed', 0, 'stale', 0, 'duplicates', v_count,
                                  'reason', 'this batch of the run arrived before',
                                  'sync_run_id', v_run.id, 'run_state', v_run.state);
    END IF;

    INSERT INTO optiqoflow.sync_run_batches (tenant_id, run_id, batch_offset, records, webhook_log_id)
    VALUES (p_tenant_id, v_run.id, v_offset, v_count,
            nullif(current_setting('optiqoflow.log_id', true), '')::bigint);

    v_total := coalesce(v_run.total, p_total);
    -- The source's snapshot time, when the sender says it (occurred_at of the batches; the
    -- earliest wins). A row whose version is newer than that snapshot cannot be missing
    -- from it because it was deleted: it changed after the read, and its own INSERT /
    -- UPDATE / DELETE event carries that change. Such a row is never removed by the run,
    -- even if its event arrived before the run's first batch.
    v_snapshot_at := least(v_run.source_snapshot_at, p_occurred_at);
    v_cover := v_run.covered + int8multirange(int8range(v_offset, v_offset + v_count));
    IF v_run.state = 'running' THEN
        v_completes := v_total IS NOT NULL AND v_cover @> int8range(0, v_total);
        v_wipes := v_total IS NULL AND v_offset = 0;
    END IF;

    -- removal touches any key of the tenant x table: then every row bucket
    PERFORM optiqoflow._lock_rows(p_tenant_id, v_table,
                                  CASE WHEN v_completes OR v_wipes THEN NULL ELSE p_records END);

    -- evolve before anything touches the table (no lock upgrade, see _push_columns)
    v_evolved := optiqoflow._push_columns(v_mapping, p_records, v_info -> 'keys');
    v_columns := ARRAY(SELECT jsonb_array_elements_text(v_evolved -> 'columns'));

    v_removed := NULL;
    -- a run's buckets of one length are matched with one md5 per row (the removal reads
    -- every row of the tenant: a second md5 took ~0.25 s per 1M rows, bench/results)
    v_digits := (SELECT CASE WHEN min(length(b)) = max(length(b)) THEN min(length(b)) ELSE 0 END
                   FROM unnest(v_run.buckets) b);
    IF v_wipes THEN
        EXECUTE format(
            'WITH gone AS (DELETE FROM optiqoflow.%I t'
            '  WHERE t.tenant_id = $1 AND t._of_sync_run IS DISTINCT FROM $2'
            '    AND t.id <> ALL (SELECT (e ->> ''id'')::uuid FROM jsonb_array_elements($3) e)'
            '    AND ($4::timestamptz IS NULL OR t.updated_at <= $4)'
            '    AND optiqoflow._in_buckets(t.id, $5, $6)'
            '  RETURNING 1) SELECT count(*) FROM gone', v_table)
        INTO v_removed USING p_tenant_id, v_run.id, p_records, v_snapshot_at, v_run.buckets, v_digits;
    END IF;

    v_result := optiqoflow._write_records(p_tenant_id, v_table, p_records, p_occurred_at, v_columns,
                                          CASE WHEN v_run.state = 'running' THEN v_run.id END, v_info);

    IF v_completes THEN
        EXECUTE format(
            'WITH gone AS (DELETE FROM optiqoflow.%I t'
            '  WHERE t.tenant_id = $1 AND t._of_sync_run IS DISTINCT FROM $2'
            '    AND coalesce(pg_visible_in_snapshot(t._of_xid, $3), true)'
            '    AND ($6::timestamptz IS NULL OR t.updated_at <= $6)'
            '    AND optiqoflow._in_buckets(t.id, $7, $8)'
            '  RETURNING t.id, t.updated_at),'
            ' tomb AS (INSERT INTO optiqoflow.tombstones AS x (tenant_id, target_table, id, version, webhook_log_id)'
            '  SELECT $1, $4, g.id, g.updated_at, $5 FROM gone g'
            '  ON CONFLICT (tenant_id, target_table, id) DO UPDATE'
            '     SET version = EXCLUDED.version, deleted_at = EXCLUDED.deleted_at, webhook_log_id = EXCLUDED.webhook_log_id'
            '   WHERE optiqoflow._verdict(EXCLUDED.version, x.version) = ''w'' RETURNING 1)'
            ' SELECT count(*) + 0 * (SELECT count(*) FROM tomb) FROM gone', v_table)
        INTO v_removed
        USING p_tenant_id, v_run.id, v_run.start_snapshot, v_table,
              nullif(current_setting('optiqoflow.log_id', true), '')::bigint, v_snapshot_at, v_run.buckets,
              v_digits;
    END IF;

    UPDATE optiqoflow.sync_runs r
       SET covered = v_cover,
           total = v_total,
           source_snapshot_at = v_snapshot_at,
           batches = r.batches + 1,
           records = r.records + v_count,
           stale = r.stale + (v_result ->> 'stale')::bigint,
           last_batch_at = v_now,
           state = CASE WHEN v_completes THEN 'complete' ELSE r.state END,
           finished_at = CASE WHEN v_completes THEN v_now ELSE r.finished_at END,
           removed = CASE WHEN v_removed IS NOT NULL THEN coalesce(r.removed, 0) + v_removed ELSE r.removed END
     WHERE r.tenant_id = p_tenant_id AND r.id = v_run.id   -- tenant: one shard on Citus
    RETURNING * INTO v_run;

    IF (v_result ->> 'written')::bigint > 0 THEN
        PERFORM optiqoflow._track_columns(p_tenant_id, v_table, v_info -> 'pushed', v_columns);
    END IF;

    RETURN jsonb_build_object(
        'status', 'applied',
        'table', v_table,
        'rows', (v_result ->> 'written')::bigint + coalesce(v_removed, 0),
        'upserted', (v_result ->> 'written')::bigint,
        'removed', coalesce(v_removed, 0),
        'stale', (v_result ->> 'stale')::bigint,
        'duplicates', (v_result ->> 'duplicate')::bigint,
        'sync_run_id', v_run.id,
        'run_state', v_run.state,
        'added_columns', v_evolved -> 'added',
        'ignored_columns', v_evolved -> 'ignored');
END
$$;

COMMENT ON FUNCTION optiqoflow.full_sync_batch(uuid, text, jsonb, bigint, bigint, text, timestamptz, text[]) IS
    'Applies one FULL_SYNC batch (records at [p_offset, p_offset + n) of a run named by p_sync_id, or of the tenant x table''s current run). Without p_total, offset 0 removes the tenant''s other rows first; with p_total, the batch that completes coverage of [0, total) removes and tombstones the rows neither in the run nor written after it started. With p_buckets (a repair), removals touch only rows of those buckets of md5(id::text). Returns {status, table, rows, stale, duplicates, removed, sync_run_id, run_state}. Not logged: use apply_webhook for a logged delivery.';
REVOKE ALL ON FUNCTION optiqoflow.full_sync_batch(uuid, text, jsonb, bigint, bigint, text, timestamptz, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.full_sync_batch(uuid, text, jsonb, bigint, bigint, text, timestamptz, text[]) TO service_role;
