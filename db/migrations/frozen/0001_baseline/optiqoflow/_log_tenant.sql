CREATE OR REPLACE FUNCTION optiqoflow._log_tenant(p_payload jsonb)
RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The tenant a delivery whose tenant apply_webhook did not read (refused before, or
    -- for, its tenant) is logged under in webhook_logs: the tenant the payload names
    -- (_claimed_tenant), else the nil UUID where webhook_logs.tenant_id is NOT NULL (a
    -- Citus cluster after optiqoflow.distribute(): it is the distribution column, and
    -- the nil UUID is its default), else NULL (plain PostgreSQL). apply_webhook calls it
    -- only when it has no tenant of its own, so a delivery that is applied never does.
    SELECT coalesce(optiqoflow._claimed_tenant(p_payload),
                    (SELECT '00000000-0000-0000-0000-000000000000'::uuid
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = 'optiqoflow.webhook_logs'::regclass
                        AND a.attname = 'tenant_id' AND a.attnotnull));
$$;

COMMENT ON FUNCTION optiqoflow._log_tenant(jsonb) IS
    'Internal: the webhook_logs tenant of a delivery apply_webhook read no tenant for: the one the payload names, else the nil UUID where the column is NOT NULL (Citus), else NULL.';
REVOKE ALL ON FUNCTION optiqoflow._log_tenant(jsonb) FROM PUBLIC;
