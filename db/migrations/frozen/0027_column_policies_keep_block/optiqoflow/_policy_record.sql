CREATE OR REPLACE FUNCTION optiqoflow._policy_record(p_table text, p_record jsonb)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- A record as its target table's column policies (optiqoflow.column_policies) let it
    -- be stored: keys with policy `block` left out, values of keys with policy `hash`
    -- replaced by their keyed hash (optiqoflow._keyed_hash; null stays null), the others
    -- as sent. Anything but an object is returned as it is (the caller refuses it).
    SELECT CASE WHEN pg_catalog.jsonb_typeof(p_record) IS DISTINCT FROM 'object' THEN p_record
                ELSE coalesce((
        SELECT pg_catalog.jsonb_object_agg(e.k,
                   CASE WHEN cp.policy = 'hash' AND pg_catalog.jsonb_typeof(e.v) <> 'null'
                        THEN pg_catalog.to_jsonb(optiqoflow._keyed_hash(e.v #>> '{}'))
                        ELSE e.v END)
          FROM pg_catalog.jsonb_each(p_record) AS e(k, v)
          LEFT JOIN optiqoflow.column_policies cp ON cp.target_table = p_table AND cp.column_name = e.k
         WHERE cp.policy IS DISTINCT FROM 'block'), '{}'::jsonb) END;
$$;

COMMENT ON FUNCTION optiqoflow._policy_record(text, jsonb) IS
    'Internal: a record as the column policies of its target table let it be stored: blocked keys left out, hashed values replaced by optiqoflow._keyed_hash.';
REVOKE ALL ON FUNCTION optiqoflow._policy_record(text, jsonb) FROM PUBLIC;
