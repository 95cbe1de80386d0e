CREATE OR REPLACE FUNCTION optiqoflow._apply_without_tenant(p_payload jsonb, p_delivery_id text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
COST 1000000
SET search_path = pg_catalog, pg_temp
AS $$
-- apply_tenant_webhook's branch for a NULL tenant: optiqoflow.apply_webhook on this node
-- (on a Citus coordinator a refusal is logged under the nil UUID). PL/pgSQL, so never
-- inlined, and with a huge COST on purpose: a prepared apply_tenant_webhook call's
-- generic plan (the tenant still a parameter, the CASE not folded) counts this branch and
-- costs more than any custom plan, so PostgreSQL keeps planning each call with its
-- values, and Citus keeps delegating the calls with a tenant. Nothing else calls it.
BEGIN
    RETURN optiqoflow.apply_webhook(p_payload, p_delivery_id);
END
$$;

COMMENT ON FUNCTION optiqoflow._apply_without_tenant(jsonb, text) IS
    'Internal: apply_webhook, for apply_tenant_webhook called with a NULL tenant (never delegated by Citus). Its COST keeps prepared apply_tenant_webhook calls on custom plans, which Citus can delegate.';
REVOKE ALL ON FUNCTION optiqoflow._apply_without_tenant(jsonb, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow._apply_without_tenant(jsonb, text) TO service_role;
