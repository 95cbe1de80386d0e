CREATE OR REPLACE FUNCTION optiqoflow._in_buckets(p_id uuid, p_buckets text[], p_digits integer DEFAULT 0)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Whether a record id is in one of p_buckets (NULL: every id is), a bucket being the
-- first 2 or 4 hex digits of md5 of the id's canonical text, as optiqoflow.fingerprint_query
-- defines it. p_digits: the length of every bucket of p_buckets when they all have one
-- (then one md5 per id), else 0 (2 and 4 both tried). The one test of a scoped FULL_SYNC
-- (its records and its removals). A SQL-standard body: inlined into the queries that call it.
RETURN p_buckets IS NULL
    OR CASE WHEN p_digits > 0 THEN pg_catalog.left(pg_catalog.md5(p_id::text), p_digits) = ANY (p_buckets)
            ELSE pg_catalog.left(pg_catalog.md5(p_id::text), 2) = ANY (p_buckets)
                 OR pg_catalog.left(pg_catalog.md5(p_id::text), 4) = ANY (p_buckets) END;

COMMENT ON FUNCTION optiqoflow._in_buckets(uuid, text[], integer) IS
    'Internal: whether an id is in one of the buckets (2 or 4 hex digits of md5(id::text); NULL: all), p_digits their common length or 0. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._in_buckets(uuid, text[], integer) FROM PUBLIC;
