CREATE OR REPLACE FUNCTION optiqoflow._payload_flag(p_payload jsonb, p_key text, p_hint text)
RETURNS boolean
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A RECONCILE's true/false option p_key ("pairs", "sub_buckets", "ours"): its value,
-- false when absent or null, else OF026 with p_hint.
BEGIN
    IF jsonb_typeof(p_payload -> p_key) = 'boolean' THEN
        RETURN (p_payload ->> p_key)::boolean;
    ELSIF p_payload ? p_key AND jsonb_typeof(p_payload -> p_key) <> 'null' THEN
        RAISE EXCEPTION 'RECONCILE % is true or false', p_key USING ERRCODE = 'OF026', HINT = p_hint;
    END IF;
    RETURN false;
END
$$;

COMMENT ON FUNCTION optiqoflow._payload_flag(jsonb, text, text) IS
    'Internal: a RECONCILE''s true/false option (false when absent or null); OF026 with the given hint for any other value.';
REVOKE ALL ON FUNCTION optiqoflow._payload_flag(jsonb, text, text) FROM PUBLIC;
