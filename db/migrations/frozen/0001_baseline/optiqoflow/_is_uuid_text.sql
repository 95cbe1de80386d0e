CREATE OR REPLACE FUNCTION optiqoflow._is_uuid_text(p_value text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE
    -- the canonical spelling (8-4-4-4-12, lower case), tested cheaply: a regex with only
    -- unbounded repeats and the four hyphens' positions
    WHEN length(p_value) = 36 AND p_value ~ '^[0-9a-f]*-[0-9a-f]*-[0-9a-f]*-[0-9a-f]*-[0-9a-f]*$'
         AND substr(p_value, 9, 1) = '-' AND substr(p_value, 14, 1) = '-'
         AND substr(p_value, 19, 1) = '-' AND substr(p_value, 24, 1) = '-' THEN true
    -- every other spelling uuid_in accepts: braces, upper case, a hyphen after any group of four
    ELSE p_value ~* '^\{?[0-9a-f]{4}(-?[0-9a-f]{4}){7}\}?$'
END;

COMMENT ON FUNCTION optiqoflow._is_uuid_text(text) IS
    'Internal: true when the text is a UUID in a spelling PostgreSQL''s uuid input accepts (canonical form tested first, cheaply); never raises. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._is_uuid_text(text) FROM PUBLIC;
