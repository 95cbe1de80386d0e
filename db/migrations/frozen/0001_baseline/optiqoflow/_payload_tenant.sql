CREATE OR REPLACE FUNCTION optiqoflow._payload_tenant(p_payload jsonb)
RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The tenant a payload is for, as apply_webhook reads it: the envelope's tenant_id, else
-- record's, old_record's, the first of records'; NULL when none names one. A tenant id
-- that is not a UUID string raises OF002 (_tenant_uuid names where it was). The common
-- case, a UUID string in the envelope, is read without a call. A SQL-standard body:
-- inlined into the expression that calls it (apply_webhook, apply_tenant_webhook).
RETURN CASE
    WHEN pg_catalog.jsonb_typeof(p_payload -> 'tenant_id') = 'string'
         AND optiqoflow._is_uuid_text(p_payload ->> 'tenant_id')
        THEN (p_payload ->> 'tenant_id')::uuid
    ELSE coalesce(optiqoflow._tenant_uuid(p_payload -> 'tenant_id', 'the envelope'),
                  optiqoflow._tenant_uuid(p_payload -> 'record' -> 'tenant_id', 'record'),
                  optiqoflow._tenant_uuid(p_payload -> 'old_record' -> 'tenant_id', 'old_record'),
                  optiqoflow._tenant_uuid(p_payload -> 'records' -> 0 -> 'tenant_id', 'records'))
END;

COMMENT ON FUNCTION optiqoflow._payload_tenant(jsonb) IS
    'Internal: the tenant a payload is for (envelope, record, old_record, first of records), as apply_webhook reads it; raises OF002 for a tenant id that is not a UUID string. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._payload_tenant(jsonb) FROM PUBLIC;
