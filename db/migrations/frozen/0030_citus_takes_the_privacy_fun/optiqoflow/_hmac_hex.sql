CREATE OR REPLACE FUNCTION optiqoflow._hmac_hex(p_ikey bytea, p_okey bytea, p_value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- 'h:' || hex(HMAC-SHA-256) of p_value's UTF-8 bytes, the key given as key XOR ipad
-- (p_ikey) and key XOR opad (p_okey): the one formula of a hashed column
-- (optiqoflow._keyed_hash). IMMUTABLE: the result depends on the arguments alone (the
-- database's encoding never changes), so a Citus cluster accepts it in an UPDATE over
-- a distributed table's columns. A SQL-standard body: inlined where it is called.
RETURN 'h:' || pg_catalog.encode(pg_catalog.sha256(p_okey || pg_catalog.sha256(p_ikey || pg_catalog.convert_to(p_value, 'UTF8'))), 'hex');

COMMENT ON FUNCTION optiqoflow._hmac_hex(bytea, bytea, text) IS
    'Internal: ''h:'' || hex(HMAC-SHA-256(key, value)) from the key''s inner and outer pads; the formula of optiqoflow._keyed_hash and of apply_column_policies'' rewrite.';
REVOKE ALL ON FUNCTION optiqoflow._hmac_hex(bytea, bytea, text) FROM PUBLIC;
