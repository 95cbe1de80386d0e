CREATE OR REPLACE FUNCTION optiqoflow.record_unusable_delivery(
    p_body        bytea,
    p_delivery_id text,
    p_reason      text
)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Keep a signed body that cannot become jsonb (invalid UTF-8 or JSON, NaN, duplicated
-- keys, too deep, a number too long, not an object, \u0000, a lone surrogate) as raw
-- bytes, so it can be inspected and, once repaired, replayed. Returns the webhook_logs id.
-- The bytes are kept once, in refused_deliveries (same id and received_at), until resolved
-- or past the refusals' retention (optiqoflow.prune_logs); the log row holds the reason.
-- Bytes cannot be filtered by column policies or erased by key: they are only ever
-- inspected, repaired into a payload, or dismissed.
DECLARE
    v_id bigint;
    v_at timestamptz;
BEGIN
    -- bytes naming a closed (erased) tenant are kept nowhere (optiqoflow.erase_tenant)
    -- SELECT 1, not SELECT: Citus cannot plan an empty target list over every shard
    IF EXISTS (SELECT 1 FROM optiqoflow.tenant_erasures e
                WHERE e.readmitted_at IS NULL AND optiqoflow._body_names_tenant(p_body, e.tenant_id)) THEN
        INSERT INTO optiqoflow.webhook_logs (outcome, error, sqlstate, rows)
        VALUES ('unusable', 'an unusable body naming a closed (erased) tenant: not kept', 'OF028', 0)
        RETURNING id INTO v_id;
        RETURN v_id;
    END IF;
    INSERT INTO optiqoflow.webhook_logs (outcome, error, sqlstate, delivery_id, rows)
    VALUES ('unusable', left(coalesce(p_reason, 'unusable body'), 1000), 'OF016',
            nullif(p_delivery_id, ''), 0)
    RETURNING id, received_at INTO v_id, v_at;
    INSERT INTO optiqoflow.refused_deliveries (log_id, received_at, outcome, error, sqlstate, raw_body, delivery_id)
    VALUES (v_id, v_at, 'unusable', left(coalesce(p_reason, 'unusable body'), 1000), 'OF016', p_body,
            nullif(p_delivery_id, ''));
    RETURN v_id;
END
$$;

COMMENT ON FUNCTION optiqoflow.record_unusable_delivery(bytea, text, text) IS
    'Logs a signed body that cannot become jsonb (outcome unusable, sqlstate OF016) with the reason; returns its webhook_logs id. The bytes are kept once, in refused_deliveries, until resolved or past the refusals'' retention: repair it with UPDATE optiqoflow.refused_deliveries SET payload = ... and replay it with optiqoflow.replay_webhook, or dismiss it (SET resolved_at = now()).';
REVOKE ALL ON FUNCTION optiqoflow.record_unusable_delivery(bytea, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.record_unusable_delivery(bytea, text, text) TO service_role;
