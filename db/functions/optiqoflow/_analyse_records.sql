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
--   {"records": n, "keys": {"<key>": ["<json type of its non-null values>", ...], ...}}
-- Refuses (OF00x) records that are not objects, lack an id that is a UUID, name another
-- tenant, have no version (updated_at, else the envelope's occurred_at), or carry a key
-- that cannot be a column name.
DECLARE
    v_count   bigint;
    v_bad     text;
    v_keys    jsonb;
BEGIN
    IF p_records IS NULL OR jsonb_typeof(p_records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of objects'
            USING ERRCODE = 'OF004', HINT = 'Send "records": [{...}, ...] (FULL_SYNC) or "record": {...}.';
    END IF;

    SELECT count(*), min(o) FILTER (WHERE jsonb_typeof(e) <> 'object')
      INTO v_count, v_bad
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o);
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'record % is not a JSON object', v_bad
            USING ERRCODE = 'OF004', HINT = 'Every record is an object of column -> value.';
    END IF;

    -- every key, with the JSON types of its non-null values
    SELECT coalesce(jsonb_object_agg(k, types), '{}')
      INTO v_keys
      FROM (SELECT kv.key AS k,
                   coalesce(jsonb_agg(DISTINCT jsonb_typeof(kv.value))
                                FILTER (WHERE jsonb_typeof(kv.value) <> 'null'), '[]') AS types
              FROM jsonb_array_elements(p_records) AS r(e), jsonb_each(r.e) AS kv
             GROUP BY kv.key) s;

    SELECT string_agg(quote_ident(k), ', ' ORDER BY k) INTO v_bad
      FROM (SELECT k FROM jsonb_object_keys(v_keys) k
             WHERE k ~ '^_of_' LIMIT 5) s;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'reserved column name(s): %', v_bad
            USING ERRCODE = 'OF013',
                  DETAIL = 'Keys starting with _of_ are optiqoflow''s bookkeeping columns.',
                  HINT = 'Rename the field at the sender.';
    END IF;
    SELECT string_agg(quote_literal(left(k, 80)), ', ' ORDER BY k) INTO v_bad
      FROM (SELECT k FROM jsonb_object_keys(v_keys) k
             WHERE k !~ '^[a-z_][a-z0-9_]{0,62}$' LIMIT 5) s;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'invalid column name(s): %', v_bad
            USING ERRCODE = 'OF007',
                  DETAIL = 'Column names must match ^[a-z_][a-z0-9_]{0,62}$.',
                  HINT = 'Use lower-case snake_case field names of at most 63 characters.';
    END IF;

    -- primary key
    SELECT min(o) INTO v_bad
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
     WHERE jsonb_typeof(e -> 'id') IS DISTINCT FROM 'string';
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no id', v_bad
            USING ERRCODE = 'OF005', HINT = 'Every record carries its primary key "id" (a UUID string).';
    END IF;
    BEGIN
        PERFORM (e ->> 'id')::uuid FROM jsonb_array_elements(p_records) AS r(e);
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'a record''s id is not a UUID'
            USING ERRCODE = 'OF005', HINT = 'Every record carries its primary key "id" (a UUID string).';
    END;

    -- tenant: a record that names a tenant names the envelope's
    SELECT min(o) INTO v_bad
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
     WHERE jsonb_typeof(e -> 'tenant_id') IS DISTINCT FROM 'null'
       AND e ? 'tenant_id'
       AND optiqoflow._tenant_uuid(e -> 'tenant_id', 'record') IS DISTINCT FROM p_tenant_id;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'record % belongs to another tenant than the payload', v_bad
            USING ERRCODE = 'OF003',
                  DETAIL = format('The payload is for tenant %s.', p_tenant_id),
                  HINT = 'Every record of a payload must name the envelope''s tenant_id (or none).';
    END IF;

    -- version
    IF p_occurred_at IS NULL THEN
        SELECT min(o) INTO v_bad
          FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
         WHERE jsonb_typeof(e -> 'updated_at') IS DISTINCT FROM 'string';
        IF v_bad IS NOT NULL THEN
            RAISE EXCEPTION 'record % has no version', v_bad
                USING ERRCODE = 'OF006',
                      HINT = 'Send updated_at in the record or occurred_at in the envelope (ISO 8601).';
        END IF;
    END IF;
    BEGIN
        PERFORM (e ->> 'updated_at')::timestamptz FROM jsonb_array_elements(p_records) AS r(e);
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR invalid_text_representation THEN
        RAISE EXCEPTION 'a record''s updated_at is not a timestamp'
            USING ERRCODE = 'OF006', HINT = 'updated_at is an ISO 8601 timestamp, e.g. "2026-11-26T10:00:00Z".';
    END;

    RETURN jsonb_build_object('records', v_count, 'keys', v_keys);
END
$$;

COMMENT ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) IS
    'Internal: validates the records of a delivery (objects, UUID ids, same tenant, a version, valid key names) and returns {"records": n, "keys": {key: [json types of its non-null values]}}.';
REVOKE ALL ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) FROM PUBLIC;
