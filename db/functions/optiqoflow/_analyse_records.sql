CREATE OR REPLACE FUNCTION optiqoflow._analyse_records(
    p_tenant_id   uuid,
    p_records     jsonb,
    p_occurred_at timestamptz
)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Validate the records of one delivery before anything is written, and describe them:
--   {"records": n, "keys": {"<key>": ["<json type of its non-null values>", ...], ...},
--    "uniform": every record has the same keys, "unique": no id twice,
--    "versioned": every record has its own updated_at}
-- Refuses (OF00x) records that are not objects, lack an id that is a UUID, name another
-- tenant, have no version (updated_at, else the envelope's occurred_at), or carry a key
-- that cannot be a column name. Two passes over the records, whatever their number,
-- and no subtransaction: ids and versions are checked by pattern (a UUID in any
-- spelling PostgreSQL accepts; an ISO 8601 date-time, so never 'now' or 'infinity'),
-- and what passes the pattern but not the cast (a 13th month) is refused with
-- PostgreSQL's own SQLSTATE.
DECLARE
    v_count      bigint;
    v_not_object bigint;
    v_no_id      bigint;
    v_bad_id     bigint;
    v_no_version bigint;
    v_bad_version bigint;
    v_other      bigint;
    v_unversioned bigint;
    v_ids        bigint;
    v_keys       jsonb;
    v_uniform    boolean;
    v_reserved   text;
    v_invalid    text;
BEGIN
    IF p_records IS NULL OR jsonb_typeof(p_records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of objects'
            USING ERRCODE = 'OF004', HINT = 'Send "records": [{...}, ...] (FULL_SYNC) or "record": {...}.';
    END IF;

    -- pass 1: the shape of every record (the position of the first offender of each kind);
    -- each field is read once, in the inner query
    SELECT count(*),
           min(o) FILTER (WHERE t <> 'object'),
           min(o) FILTER (WHERE id_type IS DISTINCT FROM 'string'),
           min(o) FILTER (WHERE id_type = 'string' AND NOT id_ok),
           min(o) FILTER (WHERE p_occurred_at IS NULL AND v_type IS DISTINCT FROM 'string'),
           min(o) FILTER (WHERE v_type = 'string' AND NOT v_ok),
           min(o) FILTER (WHERE other_tenant),
           count(*) FILTER (WHERE v_type IS DISTINCT FROM 'string'),
           count(DISTINCT CASE WHEN id_ok THEN id::uuid END)
      INTO v_count, v_not_object, v_no_id, v_bad_id, v_no_version, v_bad_version, v_other,
           v_unversioned, v_ids
      FROM (SELECT o, jsonb_typeof(e) AS t,
                   jsonb_typeof(e -> 'id') AS id_type, e ->> 'id' AS id,
                   (e ->> 'id') ~* '^\{?[0-9a-f]{4}(-?[0-9a-f]{4}){7}\}?$' AS id_ok,
                   jsonb_typeof(e -> 'updated_at') AS v_type,
                   (e ->> 'updated_at') ~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}|$)' AS v_ok,
                   (jsonb_typeof(e) = 'object' AND e ? 'tenant_id'
                    AND jsonb_typeof(e -> 'tenant_id') <> 'null'
                    AND optiqoflow._tenant_uuid(e -> 'tenant_id', 'record') IS DISTINCT FROM p_tenant_id)
                       AS other_tenant
              FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
            OFFSET 0) x;
    IF v_not_object IS NOT NULL THEN
        RAISE EXCEPTION 'record % is not a JSON object', v_not_object
            USING ERRCODE = 'OF004', HINT = 'Every record is an object of column -> value.';
    END IF;

    -- pass 2: every key, with the JSON types of its non-null values and how many records
    -- carry it; then the names
    SELECT coalesce(jsonb_object_agg(k, types), '{}'),
           coalesce(bool_and(n = v_count), true),
           string_agg(quote_ident(k), ', ' ORDER BY k) FILTER (WHERE k ~ '^_of_'),
           string_agg(quote_literal(left(k, 80)), ', ' ORDER BY k)
               FILTER (WHERE k !~ '^[a-z_][a-z0-9_]{0,62}$' AND k !~ '^_of_')
      INTO v_keys, v_uniform, v_reserved, v_invalid
      FROM (SELECT b.k, b.n,
                   -- the JSON types seen, from a bit mask: no per-key sort of DISTINCT values
                   coalesce((SELECT jsonb_agg(t.name ORDER BY t.bit)
                               FROM (VALUES (1, 'string'), (2, 'number'), (4, 'boolean'),
                                            (8, 'object'), (16, 'array')) AS t(bit, name)
                              WHERE b.mask & t.bit <> 0), '[]') AS types
              FROM (SELECT kv.key AS k, count(*) AS n,
                           bit_or(CASE jsonb_typeof(kv.value) WHEN 'string' THEN 1 WHEN 'number' THEN 2
                                       WHEN 'boolean' THEN 4 WHEN 'object' THEN 8 WHEN 'array' THEN 16
                                       ELSE 0 END) AS mask
                      FROM jsonb_array_elements(p_records) AS r(e), jsonb_each(r.e) AS kv
                     GROUP BY kv.key) b) s;
    IF v_reserved IS NOT NULL THEN
        RAISE EXCEPTION 'reserved column name(s): %', v_reserved
            USING ERRCODE = 'OF013',
                  DETAIL = 'Keys starting with _of_ are optiqoflow''s bookkeeping columns.',
                  HINT = 'Rename the field at the sender.';
    END IF;
    IF v_invalid IS NOT NULL THEN
        RAISE EXCEPTION 'invalid column name(s): %', left(v_invalid, 500)
            USING ERRCODE = 'OF007',
                  DETAIL = 'Column names must match ^[a-z_][a-z0-9_]{0,62}$.',
                  HINT = 'Use lower-case snake_case field names of at most 63 characters.';
    END IF;

    IF v_no_id IS NOT NULL OR v_bad_id IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no id that is a UUID', least(v_no_id, v_bad_id)
            USING ERRCODE = 'OF005', HINT = 'Every record carries its primary key "id" (a UUID string).';
    END IF;
    IF v_no_version IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no version', v_no_version
            USING ERRCODE = 'OF006',
                  HINT = 'Send updated_at in the record or occurred_at in the envelope (ISO 8601).';
    END IF;
    IF v_bad_version IS NOT NULL THEN
        RAISE EXCEPTION 'record %: updated_at is not an ISO 8601 timestamp', v_bad_version
            USING ERRCODE = 'OF006',
                  HINT = 'updated_at is the row''s version, e.g. "2026-11-26T10:00:00Z" (never ''now'' or ''infinity'').';
    END IF;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'record % belongs to another tenant than the payload', v_other
            USING ERRCODE = 'OF003',
                  DETAIL = format('The payload is for tenant %s.', p_tenant_id),
                  HINT = 'Every record of a payload must name the envelope''s tenant_id (or none).';
    END IF;

    RETURN jsonb_build_object('records', v_count, 'keys', v_keys, 'uniform', v_uniform,
                              'unique', v_ids = v_count, 'versioned', v_unversioned = 0);
END
$$;

COMMENT ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) IS
    'Internal: validates the records of a delivery (objects, UUID ids, same tenant, a version, valid key names) in two passes and returns {"records": n, "keys": {key: [json types of its non-null values]}, "uniform", "unique", "versioned"}.';
REVOKE ALL ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) FROM PUBLIC;
