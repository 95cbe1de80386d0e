CREATE OR REPLACE FUNCTION optiqoflow._key_types(
    p_records jsonb,
    p_keys    text[]
)
RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
-- The JSON types of the non-null values of the given keys over a delivery's records
-- (a JSON array of objects): {"<key>": ["string" | "number" | "boolean" | "object" |
-- "array", ...], ...}, [] for a key that is only ever null or absent. Schema evolution
-- (_evolve_columns) types a new column from it; it is only called for the keys a table
-- lacks, so a batch whose keys are all columns never reads its values' types.
    SELECT coalesce(jsonb_object_agg(m.k, coalesce(
               (SELECT jsonb_agg(t.name ORDER BY t.bit)
                  FROM (VALUES (1, 'string'), (2, 'number'), (4, 'boolean'),
                               (8, 'object'), (16, 'array')) AS t(bit, name)
                 WHERE m.mask & t.bit <> 0), '[]'::jsonb)), '{}'::jsonb)
      FROM (SELECT k.k, coalesce(found.mask, 0) AS mask
              FROM unnest(p_keys) AS k(k)
              LEFT JOIN (
                  -- each key/value pair of the records read once: O(size of the payload),
                  -- never keys x records (and never a whole record carried per key)
                  SELECT kv.key,
                         bit_or(CASE jsonb_typeof(kv.value) WHEN 'string' THEN 1 WHEN 'number' THEN 2
                                     WHEN 'boolean' THEN 4 WHEN 'object' THEN 8 WHEN 'array' THEN 16
                                     ELSE 0 END) AS mask
                    FROM jsonb_array_elements(p_records) AS r(e), jsonb_each(r.e) AS kv
                   WHERE kv.key = ANY (p_keys)
                   GROUP BY kv.key) found ON found.key = k.k) m;
$$;

COMMENT ON FUNCTION optiqoflow._key_types(jsonb, text[]) IS
    'Internal: {key: [JSON types of its non-null values]} over a delivery''s records, for the given keys only (the keys a table lacks, for schema evolution).';
REVOKE ALL ON FUNCTION optiqoflow._key_types(jsonb, text[]) FROM PUBLIC;
