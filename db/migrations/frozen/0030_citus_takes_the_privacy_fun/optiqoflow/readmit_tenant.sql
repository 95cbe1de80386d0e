CREATE OR REPLACE FUNCTION optiqoflow.readmit_tenant(p_tenant_id uuid)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Reopens a tenant erased by optiqoflow.erase_tenant: its deliveries are applied again
-- from this commit on, as those of a new tenant (no rows, no views, no de-duplication
-- keys: an old event id is new again). The erasure's row and receipt stay in
-- optiqoflow.tenant_erasures, with readmitted_at set.
--     SELECT optiqoflow.readmit_tenant('<tenant>');   -- optiqoflow readmit-tenant
DECLARE
    v_row optiqoflow.tenant_erasures;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    SELECT * INTO v_row FROM optiqoflow.tenant_erasures e
     WHERE e.tenant_id = p_tenant_id AND e.readmitted_at IS NULL FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant % is not closed', p_tenant_id USING ERRCODE = 'OF030',
            HINT = 'Only a tenant erased by optiqoflow.erase_tenant is readmitted; see optiqoflow.tenant_erasures.';
    END IF;
    IF v_row.erased_at IS NULL THEN
        RAISE EXCEPTION 'the erasure of tenant % is not complete', p_tenant_id USING ERRCODE = 'OF030',
            HINT = 'Finish it first: call optiqoflow.erase_tenant(tenant, reason) until "complete" is true (optiqoflow erase-tenant).';
    END IF;
    UPDATE optiqoflow.tenant_erasures e SET readmitted_at = now()
     WHERE e.tenant_id = p_tenant_id AND e.id = v_row.id;   -- the tenant's shard only (Citus)
    RETURN jsonb_build_object('tenant_id', p_tenant_id, 'readmitted_at', now(),
                              'erased_at', v_row.erased_at, 'receipt', v_row.receipt);
END
$$;

COMMENT ON FUNCTION optiqoflow.readmit_tenant(uuid) IS
    'Reopens a tenant whose erasure is complete: its deliveries are applied again, as a new tenant''s (old event ids are new again). The receipt stays in optiqoflow.tenant_erasures (readmitted_at set). OF030 when the tenant is not closed or its erasure is not complete.';
REVOKE ALL ON FUNCTION optiqoflow.readmit_tenant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.readmit_tenant(uuid) TO optiqoflow_admin;
