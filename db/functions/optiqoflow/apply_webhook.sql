CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook(
    p_payload     jsonb,
    p_delivery_id text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- The one call the receiver makes per delivery (docs/payloads.md), and what a DBA calls
-- from psql to apply a payload by hand:
--     SELECT optiqoflow.apply_webhook('{"type": "DELETE", "table": "...", ...}');
-- Validates the envelope, de-duplicates by delivery id / event_id, applies the change
-- (upsert_record, delete_record or full_sync_batch: evolution, versions, tracking, views;
-- a RECONCILE, _reconcile: compares bucket figures, writes only its log row, claims no key),
-- then writes one tenant_data_push_log row, invalidates the tenant's chart caches for the
-- tables it changed and writes one webhook_logs row, all in the caller's transaction.
--
-- Answers {"status": "applied" | "duplicate" | "stale" | "refused", "table", "rows",
-- "log_id", ...}. A payload that can never be applied is not raised: it is logged with
-- its payload and answered "refused" with "error", "sqlstate" (OFxxx, 22xxx, 23xxx) and
-- "hint". Transient errors (lock timeout, serialization, shutdown) are raised, so the
-- sender retries and nothing is half-applied.
DECLARE
    v_t0        timestamptz := clock_timestamp();
    v_log_id    bigint;
    v_type      text;
    v_source    text;
    v_target    text;
    v_tenant    uuid;
    v_event_id  text;
    v_occurred  timestamptz;
    v_keys      text[] := ARRAY[]::text[];
    v_new_keys  integer;
    v_seen      text[];
    v_result    jsonb;
    v_status    text;
    v_rows      bigint := 0;
    v_inval     jsonb;
    v_state     text;
    v_error     text;
    v_detail    text;
    v_hint      text;
    v_version   timestamptz;   -- the change's version, for lag_ms (INSERT / UPDATE / DELETE)
    v_closed    boolean := false;   -- for a tenant erased and closed (optiqoflow.erase_tenant)
BEGIN
    IF jsonb_typeof(p_payload) = 'object' AND upper(p_payload ->> 'type') = 'BATCH'
       AND jsonb_typeof(p_payload -> 'events') = 'array'
       AND jsonb_array_length(p_payload -> 'events') <= 10000 THEN   -- more: refused below
        RETURN optiqoflow.apply_webhook_batch(p_payload, p_delivery_id);   -- our batch envelope
    END IF;
    v_log_id := nextval('optiqoflow.webhook_logs_id_seq'::regclass);
    -- the log row this delivery will write, known before any row is: every row it writes
    -- records it (_of_log_id, lineage), as do its tombstones and FULL_SYNC batches
    PERFORM set_config('optiqoflow.log_id', v_log_id::text, true);

    BEGIN
        IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
            RAISE EXCEPTION 'the payload is not a JSON object'
                USING ERRCODE = 'OF004', HINT = 'Send {"type": ..., "table": ..., "tenant_id": ..., ...}.';
        END IF;
        v_type := p_payload ->> 'type';
        IF upper(v_type) = 'BATCH' AND jsonb_typeof(p_payload -> 'events') = 'array' THEN
            RAISE EXCEPTION 'a BATCH envelope holds at most 10,000 events; this one has %',
                            jsonb_array_length(p_payload -> 'events')
                USING ERRCODE = 'OF024',
                      HINT = 'Send the events in several envelopes (a few hundred each is plenty).';
        END IF;
        IF v_type IS NULL OR upper(v_type) NOT IN ('INSERT', 'UPDATE', 'DELETE', 'FULL_SYNC', 'RECONCILE') THEN
            RAISE EXCEPTION 'unknown operation type: %', coalesce(left(v_type, 50), '(none)')
                USING ERRCODE = 'OF004', HINT = 'type is one of INSERT, UPDATE, DELETE, FULL_SYNC, RECONCILE (or BATCH).';
        END IF;
        v_type := upper(v_type);
        IF jsonb_typeof(p_payload -> 'table') IS DISTINCT FROM 'string' THEN
            RAISE EXCEPTION 'the payload names no table'
                USING ERRCODE = 'OF004', HINT = 'table is the Optiqo source table name, e.g. "adhoc_work_orders".';
        END IF;
        v_source := p_payload ->> 'table';
        SELECT m.target_table INTO v_target FROM optiqoflow.table_mappings m WHERE m.source_table = v_source;
        IF NOT FOUND THEN
            v_target := (optiqoflow._target_table(v_source)).target_table;   -- a target name, or OF001
        END IF;

        v_tenant := optiqoflow._payload_tenant(p_payload);
        IF v_tenant IS NULL THEN
            RAISE EXCEPTION 'the payload names no tenant'
                USING ERRCODE = 'OF002', HINT = 'Send tenant_id in the envelope (or in record / old_record).';
        END IF;
        -- record and old_record are checked here, records by _analyse_records; a tenant id
        -- spelled exactly as v_tenant's text (the usual case) needs no parsing
        IF ((p_payload -> 'record' -> 'tenant_id') IS NOT NULL
            AND (p_payload -> 'record' ->> 'tenant_id') IS DISTINCT FROM v_tenant::text
            AND optiqoflow._tenant_uuid(p_payload -> 'record' -> 'tenant_id', 'record') <> v_tenant)
           OR ((p_payload -> 'old_record' -> 'tenant_id') IS NOT NULL
            AND (p_payload -> 'old_record' ->> 'tenant_id') IS DISTINCT FROM v_tenant::text
            AND optiqoflow._tenant_uuid(p_payload -> 'old_record' -> 'tenant_id', 'old_record') <> v_tenant) THEN
            RAISE EXCEPTION 'record or old_record belongs to another tenant than the payload'
                USING ERRCODE = 'OF003',
                      DETAIL = format('The payload is for tenant %s.', v_tenant),
                      HINT = 'Every record of a payload must name the envelope''s tenant_id (or none).';
        END IF;

        IF jsonb_typeof(p_payload -> 'occurred_at') = 'string' THEN
            -- ISO 8601 only (no 'now', 'epoch' or 'infinity'); a well-formed but impossible
            -- date (month 13) is refused with PostgreSQL's own 22008 by the cast
            IF NOT optiqoflow._is_iso_timestamp_text(p_payload ->> 'occurred_at') THEN
                RAISE EXCEPTION 'occurred_at is not an ISO 8601 timestamp: %', left(p_payload ->> 'occurred_at', 60)
                    USING ERRCODE = 'OF006', HINT = 'occurred_at is ISO 8601, e.g. "2026-11-26T10:00:00Z".';
            END IF;
            v_occurred := (p_payload ->> 'occurred_at')::timestamptz;
        ELSIF jsonb_typeof(p_payload -> 'occurred_at') IS DISTINCT FROM 'null' AND p_payload ? 'occurred_at' THEN
            RAISE EXCEPTION 'occurred_at is not a timestamp string'
                USING ERRCODE = 'OF006', HINT = 'occurred_at is ISO 8601, e.g. "2026-11-26T10:00:00Z".';
        END IF;

        IF jsonb_typeof(p_payload -> 'event_id') IN ('string', 'number') THEN
            v_event_id := p_payload ->> 'event_id';
            IF v_type <> 'RECONCILE' THEN
                v_keys := v_keys || ('e:' || v_event_id);
            END IF;
        END IF;
        -- a RECONCILE claims no key: each answer is computed afresh, never a duplicate
        IF p_delivery_id IS NOT NULL AND p_delivery_id <> '' AND v_type <> 'RECONCILE' THEN
            v_keys := v_keys || ('d:' || p_delivery_id);
        END IF;

        -- De-duplication: the key is claimed first, so a concurrent copy of this delivery
        -- waits for our commit and then sees it (or takes over if we roll back).
        IF cardinality(v_keys) = 1 THEN
            INSERT INTO optiqoflow.delivery_keys (key, webhook_log_id) VALUES (v_keys[1], v_log_id)
            ON CONFLICT (key) DO NOTHING;
            GET DIAGNOSTICS v_new_keys = ROW_COUNT;
            v_seen := CASE WHEN v_new_keys = 0 THEN v_keys END;
        ELSIF cardinality(v_keys) > 1 THEN
            WITH claimed AS (
                INSERT INTO optiqoflow.delivery_keys (key, webhook_log_id)
                SELECT k, v_log_id FROM unnest(v_keys) k
                ON CONFLICT (key) DO NOTHING
                RETURNING key
            ) SELECT count(*), coalesce(array_agg(c.key), '{}') INTO v_new_keys, v_seen FROM claimed c;
            IF v_new_keys < cardinality(v_keys) THEN
                v_seen := ARRAY(SELECT k FROM unnest(v_keys) k WHERE k <> ALL (v_seen));   -- seen before
            END IF;
        END IF;

        IF cardinality(v_keys) > 0 AND v_new_keys < cardinality(v_keys) THEN
            -- which key was seen: the answer says why nothing was written
            v_result := jsonb_build_object('status', 'duplicate', 'table', v_target, 'rows', 0,
                'reason', CASE
                    WHEN EXISTS (SELECT FROM unnest(v_seen) k WHERE k LIKE 'd:%')
                     AND EXISTS (SELECT FROM unnest(v_seen) k WHERE k LIKE 'e:%')
                        THEN 'delivery id and event_id seen before'
                    WHEN EXISTS (SELECT FROM unnest(v_seen) k WHERE k LIKE 'd:%')
                        THEN 'delivery id seen before'
                    ELSE 'event_id seen before' END);
        ELSIF v_type IN ('INSERT', 'UPDATE') THEN
            IF jsonb_typeof(p_payload -> 'record') IS DISTINCT FROM 'object' THEN
                RAISE EXCEPTION '% without a record', v_type
                    USING ERRCODE = 'OF004', HINT = 'INSERT and UPDATE carry "record": {...} (the new row).';
            END IF;
            v_result := optiqoflow.upsert_record(v_tenant, v_source, p_payload -> 'record', v_occurred);
            v_version := coalesce(CASE WHEN jsonb_typeof(p_payload -> 'record' -> 'updated_at') = 'string'
                                       THEN (p_payload -> 'record' ->> 'updated_at')::timestamptz END, v_occurred);
        ELSIF v_type = 'RECONCILE' THEN
            -- compares the source's bucket figures with ours; writes nothing but its log row
            v_result := optiqoflow._reconcile(v_tenant, v_source, p_payload);
        ELSIF v_type = 'DELETE' THEN
            IF jsonb_typeof(p_payload -> 'old_record') IS DISTINCT FROM 'object' THEN
                RAISE EXCEPTION 'DELETE without an old_record'
                    USING ERRCODE = 'OF004', HINT = 'DELETE carries "old_record": {"id": ...} (at least the id).';
            END IF;
            v_result := optiqoflow.delete_record(v_tenant, v_source, p_payload -> 'old_record', v_occurred);
            v_version := coalesce(CASE WHEN jsonb_typeof(p_payload -> 'old_record' -> 'updated_at') = 'string'
                                       THEN (p_payload -> 'old_record' ->> 'updated_at')::timestamptz END, v_occurred);
        ELSE
            IF jsonb_typeof(p_payload -> 'records') IS DISTINCT FROM 'array' THEN
                RAISE EXCEPTION 'FULL_SYNC without records'
                    USING ERRCODE = 'OF004', HINT = 'FULL_SYNC carries "records": [...] and "offset".';
            END IF;
            IF (p_payload ? 'offset' AND jsonb_typeof(p_payload -> 'offset') NOT IN ('number', 'null'))
               OR (p_payload ? 'total' AND jsonb_typeof(p_payload -> 'total') NOT IN ('number', 'null'))
               OR (p_payload ? 'sync_id' AND jsonb_typeof(p_payload -> 'sync_id') NOT IN ('string', 'number', 'null')) THEN
                RAISE EXCEPTION 'FULL_SYNC offset and total must be numbers, sync_id a string'
                    USING ERRCODE = 'OF010', HINT = 'e.g. "offset": 5000, "total": 12000, "sync_id": "run-42".';
            END IF;
            IF jsonb_typeof(p_payload -> 'buckets') NOT IN ('array', 'null') THEN
                RAISE EXCEPTION 'FULL_SYNC buckets is a list of buckets'
                    USING ERRCODE = 'OF027', HINT = 'e.g. "buckets": ["3f", "a0c1"] (README, Repair without peering).';
            END IF;
            v_result := optiqoflow.full_sync_batch(
                v_tenant, v_source, p_payload -> 'records',
                (p_payload ->> 'offset')::bigint, (p_payload ->> 'total')::bigint,
                p_payload ->> 'sync_id', v_occurred,
                CASE WHEN jsonb_typeof(p_payload -> 'buckets') = 'array'
                     THEN ARRAY(SELECT jsonb_array_elements_text(p_payload -> 'buckets')) END);
        END IF;
        v_status := v_result ->> 'status';
        v_rows := coalesce((v_result ->> 'rows')::bigint, 0);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_error = MESSAGE_TEXT,
                                v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT;
        IF NOT optiqoflow._is_refusal(v_state) THEN
            RAISE;   -- transient or a bug: nothing is written, the caller decides
        END IF;
        v_status := 'refused';
        v_rows := 0;
        -- a delivery for a closed (erased) tenant, whatever else is wrong with it: refused
        -- with OF028 and kept nowhere; its log row names neither the tenant nor its ids
        IF v_state = 'OF028' OR EXISTS (
               SELECT FROM optiqoflow.tenant_erasures e
                WHERE e.tenant_id = coalesce(v_tenant, optiqoflow._claimed_tenant(p_payload))
                  AND e.readmitted_at IS NULL) THEN
            v_closed := true;
            v_state := 'OF028';
            v_error := 'the tenant of this delivery was erased and is closed';
            v_detail := NULL;
            v_hint := 'Its deliveries are refused and kept nowhere until a DBA readmits it (optiqoflow.readmit_tenant).';
            v_tenant := NULL;
            v_event_id := NULL;
        END IF;
        IF coalesce(v_hint, '') = '' AND left(v_state, 2) IN ('22', '23', '54') THEN
            v_hint := 'A value does not fit its column (see error). Fix it at the sender, or change the column, '
                      || 'then replay: SELECT optiqoflow.replay_webhook(' || v_log_id || ');';
        END IF;
        v_result := jsonb_build_object('status', 'refused', 'table', v_target, 'rows', 0,
                                       'error', v_error, 'sqlstate', v_state)
                    || jsonb_strip_nulls(jsonb_build_object('detail', nullif(v_detail, ''),
                                                            'hint', nullif(v_hint, '')));
    END;

    IF v_status = 'applied' AND v_type <> 'RECONCILE' THEN
        INSERT INTO tenants.tenant_data_push_log (tenant_id, tables, operation, rows, webhook_log_id)
        VALUES (v_tenant, ARRAY[v_target], v_type, v_rows, v_log_id);
        IF v_rows > 0 AND EXISTS (SELECT FROM public.chart_table_dependencies d WHERE d.table_name = v_target) THEN
            v_inval := public.invalidate_chart_cache_for_tables(v_tenant, ARRAY[v_target]);
            v_result := v_result || jsonb_build_object('charts_invalidated', v_inval -> 'charts');
        ELSIF v_rows > 0 THEN
            v_result := v_result || '{"charts_invalidated": []}'::jsonb;   -- no chart reads the table
        END IF;
    END IF;

    INSERT INTO optiqoflow.webhook_logs
        (id, tenant_id, source_table, target_table, operation, outcome, rows, duration_ms,
         error, sqlstate, detail, payload, delivery_id, event_id, sync_run_id, replay_of, lag_ms)
    VALUES
        -- refused before (or for) its tenant: filed under the tenant the payload names,
        -- else under none (NULL; on Citus the nil UUID, see _log_tenant)
        (v_log_id, CASE WHEN v_closed THEN optiqoflow._log_tenant('{}'::jsonb)
                        ELSE coalesce(v_tenant, optiqoflow._log_tenant(p_payload)) END, left(v_source, 200),
         v_target, v_type, v_status, v_rows,
         extract(epoch FROM clock_timestamp() - v_t0) * 1000,
         v_error, v_state,
         nullif(jsonb_strip_nulls(jsonb_build_object(
             'stale', v_result -> 'stale', 'duplicates', v_result -> 'duplicates',
             'removed', v_result -> 'removed', 'run_state', v_result -> 'run_state',
             'read_at', v_result -> 'read_at', 'digits', v_result -> 'digits',
             'compared', v_result -> 'compared', 'differing', v_result -> 'differing',
             'added_columns', nullif(v_result -> 'added_columns', '[]'),
             'ignored_columns', nullif(v_result -> 'ignored_columns', '[]'),
             'hint', to_jsonb(nullif(v_hint, '')), 'detail', to_jsonb(nullif(v_detail, '')))), '{}'),
         NULL,   -- a refused payload is kept once, in refused_deliveries (by log_id)
         CASE WHEN NOT v_closed THEN p_delivery_id END, v_event_id, (v_result ->> 'sync_run_id')::bigint,
         nullif(current_setting('optiqoflow.replay_of', true), '')::bigint,
         CASE WHEN isfinite(v_version) THEN round(extract(epoch FROM v_t0 - v_version) * 1000)::bigint END);

    -- a refusal is kept until resolved, whatever happens to the log partition; a replay
    -- that is refused again counts on the original's row (replay_webhook)
    IF v_status = 'refused' AND NOT v_closed AND nullif(current_setting('optiqoflow.replay_of', true), '') IS NULL THEN
        -- kept as the column policies of its table let it be (blocked keys out, ...);
        -- decided before the INSERT: Citus takes no subquery in an INSERT's VALUES
        IF EXISTS (SELECT 1 FROM optiqoflow.column_policies cp WHERE cp.policy <> 'keep') THEN
            p_payload := optiqoflow._policy_payload(p_payload);
        END IF;
        INSERT INTO optiqoflow.refused_deliveries
            (log_id, received_at, tenant_id, source_table, target_table, operation, outcome,
             error, sqlstate, payload, delivery_id, event_id)
        VALUES (v_log_id, now(), coalesce(v_tenant, optiqoflow._claimed_tenant(p_payload)),
                left(v_source, 200), v_target, v_type, 'refused',
                v_error, v_state, p_payload, p_delivery_id, v_event_id);
    END IF;

    -- a write after this one in the same transaction (upsert_record by hand) is not ours
    PERFORM set_config('optiqoflow.log_id', '', true);

    RETURN v_result || jsonb_build_object('log_id', v_log_id, 'operation', v_type)
                    || CASE WHEN v_tenant IS NOT NULL THEN jsonb_build_object('tenant_id', v_tenant)
                            -- refused before its tenant was settled: the tenant it names, if readable
                            WHEN v_status = 'refused' AND NOT v_closed THEN coalesce(jsonb_build_object(
                                'tenant_id', optiqoflow._claimed_tenant(p_payload)), '{}')
                            ELSE '{}' END;
END
$$;

COMMENT ON FUNCTION optiqoflow.apply_webhook(jsonb, text) IS
    'Applies one Optiqo webhook payload (INSERT | UPDATE | DELETE | FULL_SYNC; RECONCILE compares bucket figures and changes no data) in the caller''s transaction: de-duplication by delivery id / event_id, versions, evolution, column tracking, views, push log, chart cache invalidation, webhook_logs. Returns {status: applied|duplicate|stale|refused, table, rows, log_id, ...}; a payload that can never be applied is logged with its payload and answered refused (error, sqlstate, hint); transient errors are raised.';
REVOKE ALL ON FUNCTION optiqoflow.apply_webhook(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.apply_webhook(jsonb, text) TO service_role;
