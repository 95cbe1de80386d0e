CREATE OR REPLACE FUNCTION optiqoflow.replay_webhook(p_log_id bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- Re-apply a logged delivery through apply_webhook, with its original delivery id (so a
-- delivery the sender has since retried successfully is a duplicate, not applied twice).
-- The delivery is read from refused_deliveries (kept until resolved, whatever happened to
-- the log partition), else from webhook_logs. The payload is the kept jsonb of a refused
-- delivery, or one a DBA wrote to repair a delivery refused for its bytes (UPDATE
-- optiqoflow.refused_deliveries SET payload = '...' WHERE log_id = N); such bytes are
-- never replayed as they are. The new
-- log row names the original in replay_of; when the replay is applied, duplicate or
-- stale, the original is marked resolved (in webhook_logs while its partition exists, and
-- in refused_deliveries); a replay refused again is counted there (replays).
-- Returns apply_webhook's answer.
DECLARE
    v_log      optiqoflow.webhook_logs;
    v_ref      optiqoflow.refused_deliveries;
    v_payload  jsonb;
    v_raw      bytea;
    v_delivery text;
    v_new_log  bigint;
    v_result   jsonb;
    v_now      timestamptz := now();   -- a value, not now() in the UPDATEs: Citus refuses
                                       -- non-IMMUTABLE functions in CASE / COALESCE there
BEGIN
    SELECT * INTO v_ref FROM optiqoflow.refused_deliveries r WHERE r.log_id = p_log_id FOR UPDATE;
    IF FOUND THEN
        v_payload := v_ref.payload;
        v_raw := v_ref.raw_body;
        v_delivery := v_ref.delivery_id;
    ELSE
        SELECT * INTO v_log FROM optiqoflow.webhook_logs l WHERE l.id = p_log_id FOR UPDATE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'no delivery with log id %', p_log_id
                USING ERRCODE = 'OF012',
                      HINT = 'SELECT log_id, outcome, error FROM optiqoflow.refused_deliveries WHERE resolved_at IS NULL ORDER BY log_id;';
        END IF;
        v_payload := v_log.payload;
        v_raw := v_log.raw_body;
        v_delivery := v_log.delivery_id;
    END IF;
    IF v_payload IS NULL AND v_raw IS NOT NULL THEN
        -- refused for its bytes (a key twice, too deep, not UTF-8 ...): read through jsonb it
        -- would no longer show what the receiver refused (jsonb keeps the last of two equal
        -- keys), so it is never applied as is
        RAISE EXCEPTION 'delivery % was refused for its bytes and is never replayed as is', p_log_id
            USING ERRCODE = 'OF012',
                  DETAIL = 'It is kept in optiqoflow.refused_deliveries.raw_body for inspection.',
                  HINT = format('Repair it (UPDATE optiqoflow.refused_deliveries SET payload = ''{...}'' WHERE log_id = %s) '
                                'and replay it, or dismiss it (UPDATE optiqoflow.refused_deliveries SET resolved_at = now() WHERE log_id = %s).',
                                p_log_id, p_log_id);
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'delivery % has no stored payload to replay', p_log_id
            USING ERRCODE = 'OF012',
                  DETAIL = 'Payloads are kept for refused and unusable deliveries only.';
    END IF;

    PERFORM set_config('optiqoflow.replay_of', p_log_id::text, true);
    v_result := optiqoflow.apply_webhook(v_payload, v_delivery);
    PERFORM set_config('optiqoflow.replay_of', '', true);
    v_new_log := (v_result ->> 'log_id')::bigint;

    IF v_result ->> 'status' IN ('applied', 'duplicate', 'stale') THEN
        UPDATE optiqoflow.webhook_logs l
           SET resolved_at = coalesce(l.resolved_at, v_now), resolved_by = coalesce(l.resolved_by, v_new_log)
         WHERE l.id = p_log_id AND l.received_at = coalesce(v_ref.received_at, v_log.received_at);
    END IF;
    UPDATE optiqoflow.refused_deliveries r
       SET replays = r.replays + 1, last_replay_at = v_now, last_replay_log_id = v_new_log,
           resolved_at = CASE WHEN v_result ->> 'status' IN ('applied', 'duplicate', 'stale')
                              THEN coalesce(r.resolved_at, v_now) ELSE r.resolved_at END,
           resolved_by = CASE WHEN v_result ->> 'status' IN ('applied', 'duplicate', 'stale')
                              THEN coalesce(r.resolved_by, v_new_log) ELSE r.resolved_by END
     WHERE r.log_id = p_log_id;
    RETURN v_result || jsonb_build_object('replay_of', p_log_id);
END
$$;

COMMENT ON FUNCTION optiqoflow.replay_webhook(bigint) IS
    'Re-applies a logged (refused or unusable) delivery through apply_webhook with its original delivery id; links the new log row (replay_of) and marks the original resolved (webhook_logs and refused_deliveries) when it now applies; reads refused_deliveries, so a delivery can be replayed after its log partition was dropped. Returns apply_webhook''s answer.';
REVOKE ALL ON FUNCTION optiqoflow.replay_webhook(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.replay_webhook(bigint) TO service_role;
