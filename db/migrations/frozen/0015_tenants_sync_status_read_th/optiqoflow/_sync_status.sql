CREATE OR REPLACE FUNCTION optiqoflow._sync_status()
RETURNS TABLE (
    tenant_id         uuid,
    table_name        text,
    source_table      text,
    as_of             timestamptz,
    lag_seconds       numeric,
    last_change_at    timestamptz,
    last_full_sync_at timestamptz,
    full_sync_state   text,
    refusals_waiting  bigint
)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- The rows of the view tenants.sync_status (SELECT * FROM this function): per table of
-- the caller's tenant, the source time of the newest applied real-time change (as_of)
-- and its lag, the last FULL_SYNC, the refusals waiting.
--
-- The caller's tenant, as tenants.claims_tenant_id() / role_tenant_id() decide it for
-- the session's role: the JWT claims' tenant when that role is `authenticated`, else
-- the tenant tenants.grant_tenant gave that role, else none (no rows). Definer's rights
-- hide the caller from current_user, so the role is the one the session acts as: the
-- `role` setting (SET ROLE, or PostgREST's set_config('role', ...)), or the login role
-- when none is set. Only the session's own role and claims can be named this way, so a
-- caller learns nothing a direct query of its own could not.
--
-- Why a function: as a view (0007) its single query joined three distributed tables,
-- a reference table and a UNION, which a Citus coordinator refuses (0A000 "complex joins
-- are only supported when all distributed tables are co-located"); and a view that is
-- not security_invoker reads distributed tables on the workers as the caller, who may
-- not read them. Here every query names the tenant (a router query on its shard on
-- Citus) and runs as the owner; on PostgreSQL the same index reads as the view's.
DECLARE
    v_role   text := coalesce(nullif(current_setting('role'), 'none'), session_user);
    v_tenant uuid;
    v_table  text;
    v_last   record;
BEGIN
    IF v_role = 'authenticated' THEN
        BEGIN
            v_tenant := (nullif(current_setting('request.jwt.claims', true), '')::jsonb
                         #>> optiqoflow_gen.tenant_claim_path())::uuid;
        EXCEPTION WHEN invalid_text_representation OR invalid_parameter_value THEN
            v_tenant := NULL;
        END;
    END IF;
    IF v_tenant IS NULL THEN
        SELECT rt.tenant_id INTO v_tenant FROM tenants.role_tenants rt WHERE rt.role_name = v_role;
    END IF;
    IF v_tenant IS NULL THEN
        RETURN;
    END IF;

    FOR v_table IN
        SELECT p.table_name
          FROM (SELECT a.table_name FROM tenants.tenant_column_access a WHERE a.tenant_id = v_tenant
                UNION
                SELECT r.target_table FROM optiqoflow.sync_runs r WHERE r.tenant_id = v_tenant
                UNION
                SELECT d.target_table FROM optiqoflow.refused_deliveries d
                 WHERE d.tenant_id = v_tenant AND d.resolved_at IS NULL AND d.target_table IS NOT NULL) p
         ORDER BY p.table_name
    LOOP
        tenant_id := v_tenant;
        table_name := v_table;
        source_table := (SELECT m.source_table FROM optiqoflow.table_mappings m WHERE m.target_table = v_table);
        -- the newest applied change with a lag, through webhook_logs_tenant_table
        SELECT l.received_at, l.lag_ms INTO v_last
          FROM optiqoflow.webhook_logs l
         WHERE l.tenant_id = v_tenant AND l.target_table = v_table
           AND l.outcome = 'applied' AND l.lag_ms IS NOT NULL
         ORDER BY l.received_at DESC
         LIMIT 1;
        as_of := v_last.received_at - v_last.lag_ms * interval '1 millisecond';
        lag_seconds := round(v_last.lag_ms / 1000.0, 3);
        last_change_at := v_last.received_at;
        -- the newest FULL_SYNC run: sync_runs_current (tenant_id, target_table, id DESC)
        last_full_sync_at := NULL;
        full_sync_state := NULL;
        SELECT r.finished_at, r.state INTO last_full_sync_at, full_sync_state
          FROM optiqoflow.sync_runs r
         WHERE r.tenant_id = v_tenant AND r.target_table = v_table
         ORDER BY r.id DESC
         LIMIT 1;
        SELECT count(*) INTO refusals_waiting
          FROM optiqoflow.refused_deliveries d
         WHERE d.tenant_id = v_tenant AND d.target_table = v_table AND d.resolved_at IS NULL;
        RETURN NEXT;
    END LOOP;
END
$$;

COMMENT ON FUNCTION optiqoflow._sync_status() IS
    'Internal: the rows of the view tenants.sync_status, for the tenant of the role the session acts as (its JWT claims when that role is authenticated, else its tenants.grant_tenant tenant; none: no rows), with queries that each read that tenant only (Citus router queries). Definer''s rights.';
REVOKE ALL ON FUNCTION optiqoflow._sync_status() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow._sync_status() TO authenticated, service_role, optiqoflow_tenant_reader;
