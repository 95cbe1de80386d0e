CREATE OR REPLACE FUNCTION optiqoflow._keyed_hash(p_value text)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The value a column with policy `hash` stores (optiqoflow.column_policies):
    -- 'h:' || hex(HMAC-SHA-256(key, value)), the key being the database's own random
    -- 64 bytes in optiqoflow.column_hash_key, which only the owner may read (kept there
    -- as key XOR ipad and key XOR opad, so HMAC is two built-in sha256 calls). Equal
    -- values hash equally, so they still group and join; without the key a value cannot
    -- be confirmed by hashing guesses.
    SELECT optiqoflow._hmac_hex(k.ikey, k.okey, p_value) FROM optiqoflow.column_hash_key k;
$$;

COMMENT ON FUNCTION optiqoflow._keyed_hash(text) IS
    'Internal: the keyed hash a column with policy hash stores, ''h:'' || hex(HMAC-SHA-256(key, value)); the key is in optiqoflow.column_hash_key, readable by the owner only.';
REVOKE ALL ON FUNCTION optiqoflow._keyed_hash(text) FROM PUBLIC;
