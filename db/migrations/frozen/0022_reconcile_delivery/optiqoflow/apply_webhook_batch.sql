CREATE OR REPLACE FUNCTION optiqoflow.apply_webhook_batch(
    p_payload     jsonb,
    p_delivery_id text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- The batch envelope (our extension; docs/payloads.md, BATCH): many real-time events in
-- one signed request and one commit.
--     {"type": "BATCH", "tenant_id": "<optional default>", "events": [<payload>, ...]}
-- Each event is an ordinary real-time payload (INSERT | UPDATE | DELETE) applied by
-- apply_webhook in order, with its own outcome, log row, push log and invalidation; the
-- delivery id of event i is "<delivery id>/<i>" (1-based), so a retried envelope is a
-- duplicate event by event. An event without tenant_id takes the envelope's. A refused
-- event (a FULL_SYNC, RECONCILE or nested BATCH among them) does not stop the others; a transient
-- error rolls the whole envelope back. The row locks of all events are taken first, in
-- the global order, so concurrent envelopes cannot deadlock on them.
-- Answers {"status": "applied", "rows": total, "events": [<each answer>], "counts":
-- {"applied": n, ...}, "log_id": the envelope's log row}; "refused" only when the
-- envelope itself is malformed, or holds more than 10,000 events (OF024, apply_webhook).
-- Cost is linear in the events: the answers are gathered in an array (appended in
-- place) and turned into JSON once.
DECLARE
    v_log_id  bigint := nextval('optiqoflow.webhook_logs_id_seq'::regclass);
    v_t0      timestamptz := clock_timestamp();
    v_event   jsonb;
    v_index   bigint;
    v_answer  jsonb;
    v_answers jsonb[] := ARRAY[]::jsonb[];
    v_rows    bigint := 0;
    v_counts  jsonb := '{}'::jsonb;
    v_tenant  jsonb := p_payload -> 'tenant_id';
BEGIN
    IF jsonb_typeof(p_payload -> 'events') IS DISTINCT FROM 'array' THEN
        RETURN optiqoflow.apply_webhook(p_payload, p_delivery_id);   -- refused there, and logged
    END IF;
    -- Every row lock of the envelope first, in the one global order (_lock_events).
    PERFORM optiqoflow._lock_events(p_payload -> 'events', p_payload ->> 'tenant_id');

    FOR v_event, v_index IN SELECT e, o FROM jsonb_array_elements(p_payload -> 'events') WITH ORDINALITY AS x(e, o) LOOP
        IF jsonb_typeof(v_event) = 'object' AND upper(v_event ->> 'type') IN ('BATCH', 'FULL_SYNC', 'RECONCILE') THEN
            -- real-time events only: a FULL_SYNC batch takes its run's lock before row locks;
            -- a RECONCILE reads a whole table (one per request, not 10,000 per envelope)
            v_event := jsonb_build_object('type', upper(v_event ->> 'type') || ' (inside a BATCH)',
                                          'table', v_event -> 'table');
        ELSIF jsonb_typeof(v_event) = 'object' AND NOT v_event ? 'tenant_id' AND v_tenant IS NOT NULL THEN
            v_event := v_event || jsonb_build_object('tenant_id', v_tenant);
        END IF;
        v_answer := optiqoflow.apply_webhook(v_event, CASE WHEN p_delivery_id IS NOT NULL
                                                         THEN p_delivery_id || '/' || v_index END);
        v_answers := v_answers || v_answer;
        v_rows := v_rows + coalesce((v_answer ->> 'rows')::bigint, 0);
        v_counts := v_counts || jsonb_build_object(v_answer ->> 'status',
                                                   coalesce((v_counts ->> (v_answer ->> 'status'))::bigint, 0) + 1);
    END LOOP;

    INSERT INTO optiqoflow.webhook_logs (id, operation, outcome, rows, duration_ms, detail, delivery_id)
    VALUES (v_log_id, 'BATCH', 'applied', v_rows, extract(epoch FROM clock_timestamp() - v_t0) * 1000,
            jsonb_build_object('events', jsonb_array_length(p_payload -> 'events'), 'counts', v_counts),
            p_delivery_id);
    RETURN jsonb_build_object('status', 'applied', 'table', NULL, 'rows', v_rows, 'operation', 'BATCH',
                              'events', to_jsonb(v_answers), 'counts', v_counts, 'log_id', v_log_id);
END
$$;

COMMENT ON FUNCTION optiqoflow.apply_webhook_batch(jsonb, text) IS
    'Applies a batch envelope {"type": "BATCH", "events": [...]} in one transaction: each event through apply_webhook (own outcome, log row, push log, invalidation; delivery id "<id>/<i>"). Returns {status: applied, rows, events: [answers], counts, log_id}. Called by apply_webhook for type BATCH.';
REVOKE ALL ON FUNCTION optiqoflow.apply_webhook_batch(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.apply_webhook_batch(jsonb, text) TO service_role;
