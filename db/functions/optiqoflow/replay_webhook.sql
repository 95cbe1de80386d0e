CREATE OR REPLACE FUNCTION optiqoflow.replay_webhook(p_log_id bigint)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Re-apply a logged delivery through apply_webhook, with its original delivery id (so a
-- delivery the sender has since retried successfully is a duplicate, not applied twice).
-- The payload is the logged jsonb (refused deliveries), else the raw body if it can now
-- be read as jsonb (a DBA may also repair it: UPDATE optiqoflow.webhook_logs SET payload =
-- '...' WHERE id = N). The new log row names the original in replay_of; when the replay
-- is applied, duplicate or stale, the original is marked resolved.
-- Returns apply_webhook's answer.
DECLARE
    v_log     optiqoflow.webhook_logs;
    v_payload jsonb;
    v_result  jsonb;
BEGIN
    SELECT * INTO v_log FROM optiqoflow.webhook_logs l WHERE l.id = p_log_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no delivery with log id %', p_log_id
            USING ERRCODE = 'OF012', HINT = 'SELECT id, outcome, error FROM optiqoflow.webhook_logs ORDER BY id DESC;';
    END IF;
    v_payload := v_log.payload;
    IF v_payload IS NULL AND v_log.raw_body IS NOT NULL THEN
        BEGIN
            v_payload := convert_from(v_log.raw_body, 'UTF8')::jsonb;
        EXCEPTION WHEN OTHERS THEN
            RAISE EXCEPTION 'delivery % is still unusable: %', p_log_id, SQLERRM
                USING ERRCODE = 'OF012',
                      HINT = format('Repair it first: UPDATE optiqoflow.webhook_logs SET payload = ''{...}'' WHERE id = %s;', p_log_id);
        END;
    END IF;
    IF v_payload IS NULL THEN
        RAISE EXCEPTION 'delivery % has no stored payload to replay', p_log_id
            USING ERRCODE = 'OF012',
                  DETAIL = 'Payloads are kept for refused and unusable deliveries only.';
    END IF;

    PERFORM set_config('optiqoflow.replay_of', p_log_id::text, true);
    v_result := optiqoflow.apply_webhook(v_payload, v_log.delivery_id);
    PERFORM set_config('optiqoflow.replay_of', '', true);

    IF v_result ->> 'status' IN ('applied', 'duplicate', 'stale') THEN
        UPDATE optiqoflow.webhook_logs l
           SET resolved_at = now(), resolved_by = (v_result ->> 'log_id')::bigint
         WHERE l.id = p_log_id;
    END IF;
    RETURN v_result || jsonb_build_object('replay_of', p_log_id);
END
$$;

COMMENT ON FUNCTION optiqoflow.replay_webhook(bigint) IS
    'Re-applies a logged (refused or unusable) delivery through apply_webhook with its original delivery id; links the new log row (replay_of) and marks the original resolved when it now applies. Returns apply_webhook''s answer.';
REVOKE ALL ON FUNCTION optiqoflow.replay_webhook(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.replay_webhook(bigint) TO service_role;
