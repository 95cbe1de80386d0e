CREATE OR REPLACE FUNCTION optiqoflow.apply_tenant_webhook(
    p_tenant_id   uuid,
    p_payload     jsonb,
    p_delivery_id text DEFAULT NULL
)
RETURNS jsonb
LANGUAGE sql VOLATILE
-- The write entry point for a Citus cluster: optiqoflow.apply_webhook with the tenant as
-- a plain argument. Called on its own (autocommit), Citus runs an ordinary delivery as
-- one round trip to the one worker that owns the tenant:
--     SELECT optiqoflow.apply_tenant_webhook($1::uuid, $2::jsonb, $3);
-- p_tenant_id only routes the call; the payload decides, exactly as in apply_webhook. On
-- a worker, a delivery that would need DDL (a new target table, a new column, a tenant
-- view to create or change), whose payload does not name p_tenant_id, or a batch envelope
-- with an event of another tenant writes nothing and answers
--     {"status": "coordinator_required", "reason": "...", "tenant_id": ...}
-- The caller then repeats it on the coordinator: SELECT optiqoflow.apply_webhook($2::jsonb, $3);
-- On the coordinator and on plain PostgreSQL this function is apply_webhook.
--
-- A SQL-standard body, no SET, not SECURITY DEFINER: the planner inlines it and, with
-- the arguments known (a call on its own; parameters in a custom plan), folds the CASE.
-- Citus then sees either optiqoflow._apply_tenant_webhook(tenant, ...), which
-- optiqoflow.distribute() registers as delegated by p_tenant_id (the worker does the
-- rest), or, for a NULL tenant, optiqoflow._apply_without_tenant(...): apply_webhook on
-- this node (refused and logged, under the nil UUID on Citus). That function's COST keeps
-- a prepared call off a generic plan (where the CASE stays and Citus delegates nothing). A NULL tenant never reaches Citus's
-- function-call delegation, where Citus 13.0.5 hashes the NULL and the coordinator
-- backend crashes (segfault; every session restarted). optiqoflow.distribute()
-- registers this function as delegated too: that is how the receiver tells that
-- deliveries go to the workers first.
RETURN CASE WHEN p_tenant_id IS NULL THEN optiqoflow._apply_without_tenant(p_payload, p_delivery_id)
            ELSE optiqoflow._apply_tenant_webhook(p_tenant_id, p_payload, p_delivery_id) END;

COMMENT ON FUNCTION optiqoflow.apply_tenant_webhook(uuid, jsonb, text) IS
    'apply_webhook with the tenant as a plain argument, delegated on Citus to the worker that owns p_tenant_id (through optiqoflow._apply_tenant_webhook, which the planner calls once it has inlined this function). On a worker, a delivery that needs DDL or does not name p_tenant_id writes nothing and answers {status: coordinator_required}: repeat it with apply_webhook on the coordinator. A NULL tenant is apply_webhook on this node, never delegated (Citus 13.0.5 crashes on a NULL distribution argument). Elsewhere it is apply_webhook.';
REVOKE ALL ON FUNCTION optiqoflow.apply_tenant_webhook(uuid, jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.apply_tenant_webhook(uuid, jsonb, text) TO service_role;
