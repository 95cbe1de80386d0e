CREATE OR REPLACE FUNCTION optiqoflow._tenant_uuid(p_value jsonb, p_where text)
RETURNS uuid
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A tenant id from a payload: a JSON string holding a UUID in any spelling PostgreSQL
-- accepts (upper case, braces, no hyphens). Returns the uuid, whose text form is the
-- canonical lower-case hyphenated spelling every name is built from (so one tenant never
-- gets names in several spellings).
BEGIN
    IF p_value IS NULL OR jsonb_typeof(p_value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_value) <> 'string' THEN
        RAISE EXCEPTION 'tenant_id in % is not a string', p_where
            USING ERRCODE = 'OF002',
                  HINT = 'tenant_id must be a UUID string, e.g. "5b0c7f9e-1d2e-4f3a-9b8c-7d6e5f4a3b2c".';
    END IF;
    RETURN (p_value #>> '{}')::uuid;
EXCEPTION WHEN invalid_text_representation THEN
    RAISE EXCEPTION 'tenant_id in % is not a UUID: %', p_where, left(p_value #>> '{}', 100)
        USING ERRCODE = 'OF002',
              HINT = 'tenant_id must be a UUID string, e.g. "5b0c7f9e-1d2e-4f3a-9b8c-7d6e5f4a3b2c".';
END
$$;

COMMENT ON FUNCTION optiqoflow._tenant_uuid(jsonb, text) IS
    'Internal: a payload''s tenant_id (JSON string) as uuid, or NULL when absent; raises OF002 when it is not a UUID.';
REVOKE ALL ON FUNCTION optiqoflow._tenant_uuid(jsonb, text) FROM PUBLIC;
