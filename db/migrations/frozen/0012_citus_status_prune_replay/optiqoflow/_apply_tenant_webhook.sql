CREATE OR REPLACE FUNCTION optiqoflow._apply_tenant_webhook(
    p_tenant_id   uuid,
    p_payload     jsonb,
    p_delivery_id text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- What optiqoflow.apply_tenant_webhook (the write entry point for a Citus cluster) runs
-- for a delivery with a tenant: that SQL function is inlined by the planner into a call
-- of this one, which distribute() (optiqoflow schema) registers with
--     create_distributed_function(..., distribution_arg_name => 'p_tenant_id',
--                                 colocate_with => 'optiqoflow.tombstones')
-- so Citus runs an ordinary delivery, called on its own (autocommit), as one round trip
-- to the one worker that owns the tenant. Never called with a NULL p_tenant_id (Citus
-- 13.0.5 crashes planning the delegation of a NULL distribution argument;
-- apply_tenant_webhook sends those to apply_webhook).
--
-- p_tenant_id only routes the call; the payload decides, exactly as in apply_webhook.
-- On a worker, a delivery that would need DDL (a new target table, a new column, a tenant
-- view to create or change), whose payload does not name p_tenant_id (none, invalid,
-- another), or a batch envelope with an event of another tenant cannot be applied there: nothing is written and the answer is
--     {"status": "coordinator_required", "reason": "...", "tenant_id": ...}
-- The caller then repeats the delivery on the coordinator, where it is applied (or
-- refused and logged) in full:
--     SELECT optiqoflow.apply_webhook($2::jsonb, $3);
-- On the coordinator and on plain PostgreSQL this function is apply_webhook.
DECLARE
    v_tenant uuid;
    v_worker boolean := false;
    v_result jsonb;
    v_reason text;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension e WHERE e.extname = 'citus') THEN
        EXECUTE format('SELECT NOT pg_catalog.%I()', 'citus_is_coordinator') INTO v_worker;   -- Citus's, so dynamic
    END IF;
    IF NOT v_worker THEN
        RETURN optiqoflow.apply_webhook(p_payload, p_delivery_id);
    END IF;

    -- a batch envelope (apply_webhook_batch) stays on this worker only when every event
    -- is of p_tenant_id (its own tenant, else the envelope's, as the batch reads it)
    IF jsonb_typeof(p_payload) = 'object' AND upper(p_payload ->> 'type') = 'BATCH' THEN
        IF jsonb_typeof(p_payload -> 'events') IS DISTINCT FROM 'array'
           OR EXISTS (SELECT FROM jsonb_array_elements(p_payload -> 'events') AS x(e)
                       WHERE jsonb_typeof(x.e) IS DISTINCT FROM 'object'
                          OR optiqoflow._claimed_tenant(
                                 CASE WHEN x.e ? 'tenant_id' THEN x.e
                                      ELSE x.e || jsonb_build_object('tenant_id', p_payload -> 'tenant_id') END)
                             IS DISTINCT FROM p_tenant_id) THEN
            RETURN jsonb_build_object('status', 'coordinator_required', 'tenant_id', p_tenant_id,
                                      'reason', 'the batch has events that are not of this tenant');
        END IF;
        v_tenant := p_tenant_id;
    ELSE
        -- the payload's tenant as apply_webhook finds it; an unreadable one counts as none
        BEGIN
            v_tenant := optiqoflow._payload_tenant(p_payload);
        EXCEPTION WHEN SQLSTATE 'OF002' OR invalid_parameter_value THEN
            v_tenant := NULL;
        END;
    END IF;
    IF v_tenant IS NULL OR v_tenant <> p_tenant_id THEN
        RETURN jsonb_build_object('status', 'coordinator_required', 'tenant_id', p_tenant_id,
                                  'reason', 'the payload does not name this tenant');
    END IF;

    -- no DDL on a worker: optiqoflow._ddl_lock raises 55OF1 where DDL would start
    PERFORM set_config('optiqoflow.ddl_forbidden', 'on', true);
    BEGIN
        v_result := optiqoflow.apply_webhook(p_payload, p_delivery_id);
    EXCEPTION WHEN SQLSTATE '55OF1' THEN
        GET STACKED DIAGNOSTICS v_reason = MESSAGE_TEXT;
        v_result := jsonb_build_object('status', 'coordinator_required', 'tenant_id', p_tenant_id,
                                       'reason', v_reason);
    END;
    PERFORM set_config('optiqoflow.ddl_forbidden', '', true);
    RETURN v_result;
END
$$;

COMMENT ON FUNCTION optiqoflow._apply_tenant_webhook(uuid, jsonb, text) IS
    'Internal: what apply_tenant_webhook runs for a non-NULL tenant; delegated on Citus to the worker that owns p_tenant_id (optiqoflow.distribute). On a worker, a delivery that needs DDL or does not name p_tenant_id writes nothing and answers {status: coordinator_required}: repeat it with apply_webhook on the coordinator. Elsewhere it is apply_webhook.';
REVOKE ALL ON FUNCTION optiqoflow._apply_tenant_webhook(uuid, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow._apply_tenant_webhook(uuid, jsonb, text) TO service_role;
