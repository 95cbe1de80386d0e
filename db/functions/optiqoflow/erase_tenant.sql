CREATE OR REPLACE FUNCTION optiqoflow.erase_tenant(
    p_tenant_id uuid,
    p_reason    text
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Offboarding: removes every trace of a tenant and keeps a receipt (README, "Privacy").
-- Called again until its answer says "complete": true, each call one bounded transaction:
--     SELECT optiqoflow.erase_tenant('<tenant>', 'contract ended');   -- optiqoflow erase-tenant
--
-- The first call closes the tenant: it takes the row-bucket locks of the tenant in every
-- mapped table (so the tenant's deliveries in flight finish first, and the next ones
-- wait for this commit), records the erasure in optiqoflow.tenant_erasures and starts
-- erasing. From its commit on, every delivery for the tenant is refused (OF028, checked
-- under the same row-bucket lock a delivery takes before it writes), logged without its
-- tenant id or payload, and kept nowhere. Each call then removes at most
-- optiqoflow.erase_chunk_rows rows (a session setting, default 10,000), in this order:
-- the rows of every target table, tombstones, FULL_SYNC runs and their batches, the push
-- log, the log rows of its deliveries (kept, but without tenant id, payload, delivery
-- id, event id, error or detail: time, table, outcome) with their de-duplication keys,
-- refused deliveries (those filed under it, and kept payloads or bodies that name it),
-- its chart cache entries and its own charts, the receipts of its erased records, its
-- column tracking, its views and the roles given it. The rows a call removes are counted into the receipt; a call that finds
-- nothing left marks the erasure complete. A call that fails or a crash rolls back that
-- call only: calling again resumes. Other tenants' deliveries are never waited for,
-- and they wait at most for the first call's row-bucket locks (one chunk).
DECLARE
    v_now       timestamptz := now();
    v_chunk    integer := coalesce(nullif(current_setting('optiqoflow.erase_chunk_rows', true), '')::integer, 10000);
    v_left     integer;
    v_row      optiqoflow.tenant_erasures;
    v_removed  jsonb;
    v_scrubbed jsonb;
    v_first    boolean := false;
    v_citus    boolean := optiqoflow._on_citus();
    v_tenant   text := p_tenant_id::text;
    v_table    text;
    v_n        bigint;
    v_keys     bigint;
    v_done     bigint := 0;
    v_previous text := current_setting('lock_timeout');
    v_role     name;
BEGIN
    -- Citus: the DML of one call over distributed and reference tables (the tenant's
    -- rows, charts) has to run over one connection per node; a no-op elsewhere
    IF current_setting('citus.multi_shard_modify_mode', true) = 'parallel' THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    END IF;
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'OF029',
            HINT = 'Say why, e.g. SELECT optiqoflow.erase_tenant(''<tenant>'', ''contract ended'');';
    END IF;
    IF v_chunk IS NULL OR v_chunk < 1 THEN
        RAISE EXCEPTION 'optiqoflow.erase_chunk_rows must be a positive integer' USING ERRCODE = 'OF029',
            HINT = 'SET optiqoflow.erase_chunk_rows = 10000;';
    END IF;
    v_left := v_chunk;

    SELECT * INTO v_row FROM optiqoflow.tenant_erasures e
     WHERE e.tenant_id = p_tenant_id AND e.readmitted_at IS NULL FOR UPDATE;
    IF FOUND AND v_row.erased_at IS NOT NULL THEN
        RETURN v_row.receipt || '{"rows_this_call": 0, "closed_now": false}'::jsonb;   -- erased already
    END IF;
    IF NOT FOUND THEN
        -- Close it. The tenant's row buckets of every mapped table, in slot order (the
        -- global order of deliveries), under a short lock_timeout: deliveries of the
        -- tenant in flight finish first; those after wait for this commit and are then
        -- refused. Only this call holds them, for one chunk.
        PERFORM set_config('lock_timeout', optiqoflow._ddl_lock_timeout(), true);
        IF NOT v_citus THEN
            PERFORM FROM optiqoflow.lock_slots s
              WHERE s.slot = ANY (ARRAY(
                        SELECT optiqoflow._row_lock_slot(optiqoflow._row_lock_space(p_tenant_id, m.target_table), b)
                          FROM optiqoflow.table_mappings m, generate_series(0, 63) b))
              ORDER BY s.slot FOR UPDATE;
        ELSE
            PERFORM optiqoflow._tenant_locks(p_tenant_id, optiqoflow._row_lock_space(p_tenant_id, m.target_table),
                                             ARRAY(SELECT generate_series(0, 63)))
               FROM optiqoflow.table_mappings m ORDER BY optiqoflow._row_lock_space(p_tenant_id, m.target_table);
        END IF;
        PERFORM set_config('lock_timeout', v_previous, true);
        INSERT INTO optiqoflow.tenant_erasures (tenant_id, reason, receipt)
        VALUES (p_tenant_id, p_reason, '{}'::jsonb)
        RETURNING * INTO v_row;
        v_first := true;
    END IF;
    v_removed := coalesce(v_row.receipt -> 'removed', '{}'::jsonb);
    v_scrubbed := coalesce(v_row.receipt -> 'scrubbed', '{}'::jsonb);

    -- 1. the rows of every target table
    FOR v_table IN SELECT m.target_table FROM optiqoflow.table_mappings m
                    WHERE m.target_table ~ '^[a-z_][a-z0-9_]{0,25}$'
                      AND pg_catalog.to_regclass(format('optiqoflow.%I', m.target_table)) IS NOT NULL
                    ORDER BY m.target_table LOOP
        EXIT WHEN v_left = 0;
        EXECUTE format('DELETE FROM optiqoflow.%1$I x WHERE x.tenant_id = $1 AND x.id IN '
                       '(SELECT y.id FROM optiqoflow.%1$I y WHERE y.tenant_id = $1 LIMIT $2)', v_table)
          USING p_tenant_id, v_left;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.' || v_table, v_n);
    END LOOP;

    -- 2. tombstones
    IF v_left > 0 THEN
        DELETE FROM optiqoflow.tombstones t
         WHERE t.tenant_id = p_tenant_id AND (t.target_table, t.id) IN
               (SELECT u.target_table, u.id FROM optiqoflow.tombstones u WHERE u.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.tombstones', v_n);
    END IF;

    -- 3. FULL_SYNC batches, then runs
    IF v_left > 0 THEN
        DELETE FROM optiqoflow.sync_run_batches b
         WHERE b.tenant_id = p_tenant_id AND (b.run_id, b.batch_offset) IN
               (SELECT c.run_id, c.batch_offset FROM optiqoflow.sync_run_batches c
                 WHERE c.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.sync_run_batches', v_n);
    END IF;
    IF v_left > 0 THEN
        DELETE FROM optiqoflow.sync_runs r
         WHERE r.tenant_id = p_tenant_id
           AND r.id IN (SELECT s.id FROM optiqoflow.sync_runs s WHERE s.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.sync_runs', v_n);
    END IF;

    -- 4. the push log
    IF v_left > 0 THEN
        DELETE FROM tenants.tenant_data_push_log p
         WHERE p.tenant_id = p_tenant_id
           AND p.id IN (SELECT q.id FROM tenants.tenant_data_push_log q WHERE q.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'tenants.tenant_data_push_log', v_n);
    END IF;

    -- 5. the log rows of its deliveries keep time, table and outcome; their
    -- de-duplication keys go (a readmitted tenant's old event ids are new again)
    IF v_left > 0 THEN
        IF v_citus THEN
            -- on Citus webhook_logs is distributed by tenant_id, which cannot be updated:
            -- the rows go
            WITH l AS (SELECT x.id, x.received_at, x.delivery_id, x.event_id FROM optiqoflow.webhook_logs x
                        WHERE x.tenant_id = p_tenant_id LIMIT v_left),
                 k AS (DELETE FROM optiqoflow.delivery_keys k USING l
                        WHERE k.key IN ('e:' || l.event_id, 'd:' || l.delivery_id) AND k.webhook_log_id = l.id
                        RETURNING 1),
                 u AS (DELETE FROM optiqoflow.webhook_logs w USING l
                        WHERE w.tenant_id = p_tenant_id AND w.id = l.id AND w.received_at = l.received_at
                        RETURNING 1)
            SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM u) INTO v_keys, v_n;
            v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.webhook_logs', v_n);
        ELSE
            WITH l AS (SELECT x.id, x.received_at, x.delivery_id, x.event_id FROM optiqoflow.webhook_logs x
                        WHERE x.tenant_id = p_tenant_id LIMIT v_left),
                 k AS (DELETE FROM optiqoflow.delivery_keys k USING l
                        WHERE k.key IN ('e:' || l.event_id, 'd:' || l.delivery_id) AND k.webhook_log_id = l.id
                        RETURNING 1),
                 u AS (UPDATE optiqoflow.webhook_logs w
                          SET tenant_id = NULL, payload = NULL, raw_body = NULL, error = NULL, detail = NULL,
                              delivery_id = NULL, event_id = NULL
                         FROM l
                        WHERE w.tenant_id = p_tenant_id AND w.id = l.id AND w.received_at = l.received_at
                        RETURNING 1)
            SELECT (SELECT count(*) FROM k), (SELECT count(*) FROM u) INTO v_keys, v_n;
            v_scrubbed := optiqoflow._receipt_add(v_scrubbed, 'optiqoflow.webhook_logs', v_n);
        END IF;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.delivery_keys', v_keys);
        v_left := v_left - v_n;
    END IF;

    -- 6. refused deliveries: filed under it, or a kept payload or body naming it
    IF v_left > 0 THEN
        DELETE FROM optiqoflow.refused_deliveries d
         WHERE d.log_id IN (SELECT r.log_id FROM optiqoflow.refused_deliveries r
                             WHERE r.tenant_id = p_tenant_id
                                OR strpos(r.payload::text, v_tenant) > 0
                                OR (r.raw_body IS NOT NULL
                                    AND optiqoflow._body_names_tenant(r.raw_body, p_tenant_id))
                             LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.refused_deliveries', v_n);
    END IF;

    -- 7. chart cache entries (of its charts and of the shared ones), then its own charts
    -- (the dashboard's definitions for this tenant alone; shared charts stay)
    IF v_left > 0 THEN
        DELETE FROM public.chart_data_cache c
         WHERE c.id IN (SELECT d.id FROM public.chart_data_cache d
                         WHERE d.tenant_id = p_tenant_id
                            OR d.chart_id IN (SELECT ch.id FROM public.charts ch WHERE ch.tenant_id = p_tenant_id)
                         LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'public.chart_data_cache', v_n);
    END IF;
    IF v_left > 0 THEN
        DELETE FROM public.charts c
         WHERE c.id IN (SELECT d.id FROM public.charts d WHERE d.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'public.charts', v_n);
    END IF;

    -- 8. receipts of its erased records, column tracking, views, roles given the tenant
    -- (a handful of rows each)
    IF v_left > 0 THEN
        DELETE FROM optiqoflow.record_erasures r
         WHERE r.id IN (SELECT q.id FROM optiqoflow.record_erasures q WHERE q.tenant_id = p_tenant_id LIMIT v_left);
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := v_left - v_n;
        v_removed := optiqoflow._receipt_add(v_removed, 'optiqoflow.record_erasures', v_n);
    END IF;
    IF v_left > 0 THEN
        DELETE FROM tenants.tenant_column_access a WHERE a.tenant_id = p_tenant_id;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_left := greatest(v_left - v_n, 0);
        v_removed := optiqoflow._receipt_add(v_removed, 'tenants.tenant_column_access', v_n);
        v_n := 0;
        FOR v_table IN SELECT c.relname FROM pg_catalog.pg_class c
                        WHERE c.relnamespace = 'tenants'::regnamespace AND c.relkind = 'v'
                          AND c.relname LIKE v_tenant || '\_%' ORDER BY c.relname LOOP
            IF v_n = 0 THEN
                v_previous := optiqoflow._ddl_lock('views/' || v_tenant);   -- as regenerate_tenant_views
            END IF;
            EXECUTE format('DROP VIEW IF EXISTS tenants.%I', v_table);
            v_n := v_n + 1;
        END LOOP;
        PERFORM set_config('lock_timeout', v_previous, true);
        v_removed := optiqoflow._receipt_add(v_removed, 'tenant views', v_n);
        v_n := 0;
        FOR v_role IN DELETE FROM tenants.role_tenants r WHERE r.tenant_id = p_tenant_id RETURNING r.role_name LOOP
            IF EXISTS (SELECT FROM pg_catalog.pg_roles x WHERE x.rolname = v_role) THEN
                EXECUTE format('REVOKE optiqoflow_tenant_reader FROM %I', v_role);
            END IF;
            v_n := v_n + 1;
        END LOOP;
        v_removed := optiqoflow._receipt_add(v_removed, 'tenants.role_tenants', v_n);
    END IF;

    v_done := v_chunk - v_left;
    v_row.receipt := jsonb_build_object(
        'tenant_id', p_tenant_id,
        'reason', v_row.reason,
        'closed_at', v_row.closed_at,
        'calls', coalesce((v_row.receipt ->> 'calls')::integer, 0) + 1,
        'removed', v_removed,
        'scrubbed', v_scrubbed,
        'complete', v_left > 0,
        'erased_at', CASE WHEN v_left > 0 THEN now() END,
        'kept', jsonb_build_object(
            'optiqoflow.tenant_erasures', 'this receipt',
            'optiqoflow.webhook_logs', 'its log rows, without tenant id or payload: time, table, outcome'));
    -- now() outside the CASE, the tenant named: Citus takes neither otherwise
    UPDATE optiqoflow.tenant_erasures e
       SET receipt = v_row.receipt,
           erased_at = CASE WHEN v_left > 0 THEN v_now END
     WHERE e.tenant_id = p_tenant_id AND e.id = v_row.id;
    RETURN v_row.receipt || jsonb_build_object('rows_this_call', v_done, 'closed_now', v_first);
END
$$;

COMMENT ON FUNCTION optiqoflow.erase_tenant(uuid, text) IS
    'Offboarding: closes the tenant (its deliveries are refused from then on, OF028) and erases it in bounded steps: call it again until "complete" is true (optiqoflow erase-tenant does). Removes its rows in every target table, tombstones, FULL_SYNC runs, push log, de-duplication keys, refused deliveries, chart cache entries and own charts, column tracking, views and role grants; its log rows keep time, table and outcome only. At most optiqoflow.erase_chunk_rows rows (default 10,000) per call. Returns the receipt, also kept in optiqoflow.tenant_erasures.';
REVOKE ALL ON FUNCTION optiqoflow.erase_tenant(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.erase_tenant(uuid, text) TO optiqoflow_admin;
