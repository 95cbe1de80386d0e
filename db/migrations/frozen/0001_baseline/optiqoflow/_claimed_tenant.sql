CREATE OR REPLACE FUNCTION optiqoflow._claimed_tenant(p_payload jsonb)
RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The tenant a payload names (envelope, record, old_record, first of records), read
    -- without ever raising: it files a refusal under its tenant when the payload was
    -- refused before its tenant was read (an unknown table, ...), so `optiqoflow replay
    -- --tenant` finds it. NULL when none is a UUID. Not a validation: apply_webhook
    -- decides with optiqoflow._tenant_uuid.
    SELECT pg_catalog.translate(v, '{}-', '')::uuid
      FROM unnest(ARRAY[p_payload ->> 'tenant_id',
                        p_payload -> 'record' ->> 'tenant_id',
                        p_payload -> 'old_record' ->> 'tenant_id',
                        p_payload -> 'records' -> 0 ->> 'tenant_id']) WITH ORDINALITY AS c(v, n)
     WHERE pg_catalog.translate(v, '{}-', '') ~ '^[0-9a-fA-F]{32}$'
     ORDER BY n
     LIMIT 1;
$$;

COMMENT ON FUNCTION optiqoflow._claimed_tenant(jsonb) IS
    'Internal: the tenant a payload names (envelope, record, old_record, records[0]) or NULL, never raising; files refused deliveries by tenant.';
REVOKE ALL ON FUNCTION optiqoflow._claimed_tenant(jsonb) FROM PUBLIC;
