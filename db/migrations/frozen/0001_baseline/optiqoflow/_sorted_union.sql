CREATE OR REPLACE FUNCTION optiqoflow._sorted_union(p_a text[], p_b text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The sorted set union of two text arrays (NULL elements dropped). IMMUTABLE, so it
    -- may stand in ON CONFLICT DO UPDATE SET on Citus, where neither a subquery nor a
    -- non-IMMUTABLE function may.
    SELECT coalesce(array_agg(DISTINCT e ORDER BY e), ARRAY[]::text[])
      FROM unnest(coalesce(p_a, ARRAY[]::text[]) || coalesce(p_b, ARRAY[]::text[])) e
     WHERE e IS NOT NULL;
$$;

COMMENT ON FUNCTION optiqoflow._sorted_union(text[], text[]) IS
    'Internal: sorted distinct union of two text arrays; IMMUTABLE, for ON CONFLICT DO UPDATE SET on Citus.';
REVOKE ALL ON FUNCTION optiqoflow._sorted_union(text[], text[]) FROM PUBLIC;
