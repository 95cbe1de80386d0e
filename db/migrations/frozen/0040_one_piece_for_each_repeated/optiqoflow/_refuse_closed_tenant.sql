CREATE OR REPLACE FUNCTION optiqoflow._refuse_closed_tenant(p_tenant_id uuid)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Refuses (OF028) a delivery for a tenant that optiqoflow.erase_tenant closed and no DBA
-- readmitted: the one check every path that would write or answer for a tenant makes
-- (_lock_rows and upsert_record's fast path, under the row-bucket lock, so a delivery
-- that waited for erase_tenant's first call sees its commit; _reconcile). apply_webhook
-- then logs the refusal without the tenant, its ids or its payload.
BEGIN
    IF EXISTS (SELECT FROM optiqoflow.tenant_erasures e
                WHERE e.tenant_id = p_tenant_id AND e.readmitted_at IS NULL) THEN
        RAISE EXCEPTION 'the tenant of this delivery was erased and is closed'
            USING ERRCODE = 'OF028',
                  HINT = 'Its deliveries are refused and kept nowhere until a DBA readmits it (optiqoflow.readmit_tenant).';
    END IF;
END
$$;

COMMENT ON FUNCTION optiqoflow._refuse_closed_tenant(uuid) IS
    'Internal: raises OF028 when the tenant is closed (erased by optiqoflow.erase_tenant, not readmitted); the one check of every delivery path.';
REVOKE ALL ON FUNCTION optiqoflow._refuse_closed_tenant(uuid) FROM PUBLIC;
