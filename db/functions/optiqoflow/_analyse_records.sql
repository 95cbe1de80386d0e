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
    v_count      bigint;
    v_not_object bigint;
    v_no_id      bigint;
    v_no_version bigint;
    v_other      bigint;
    v_infinite   boolean;
    v_keys       jsonb;
    v_reserved   text;
    v_invalid    text;
BEGIN
    IF p_records IS NULL OR jsonb_typeof(p_records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of objects'
            USING ERRCODE = 'OF004', HINT = 'Send "records": [{...}, ...] (FULL_SYNC) or "record": {...}.';
    END IF;

    -- one pass for the shape of every record (the position of the first offender of each kind)
    SELECT count(*),
           min(o) FILTER (WHERE jsonb_typeof(e) <> 'object'),
           min(o) FILTER (WHERE jsonb_typeof(e -> 'id') IS DISTINCT FROM 'string'),
           min(o) FILTER (WHERE p_occurred_at IS NULL
                            AND jsonb_typeof(e -> 'updated_at') IS DISTINCT FROM 'string')
      INTO v_count, v_not_object, v_no_id, v_no_version
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o);
    IF v_not_object IS NOT NULL THEN
        RAISE EXCEPTION 'record % is not a JSON object', v_not_object
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

    SELECT string_agg(quote_ident(k), ', ' ORDER BY k) FILTER (WHERE k ~ '^_of_'),
           string_agg(quote_literal(left(k, 80)), ', ' ORDER BY k)
               FILTER (WHERE k !~ '^[a-z_][a-z0-9_]{0,62}$' AND k !~ '^_of_')
      INTO v_reserved, v_invalid
      FROM jsonb_object_keys(v_keys) k;
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

    IF v_no_id IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no id', v_no_id
            USING ERRCODE = 'OF005', HINT = 'Every record carries its primary key "id" (a UUID string).';
    END IF;
    IF v_no_version IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no version', v_no_version
            USING ERRCODE = 'OF006',
                  HINT = 'Send updated_at in the record or occurred_at in the envelope (ISO 8601).';
    END IF;

    -- ids and versions must read as uuid and timestamptz (one subtransaction for both;
    -- the error path tells them apart), and a version must be finite
    BEGIN
        SELECT bool_or(NOT isfinite((e ->> 'updated_at')::timestamptz)) INTO v_infinite
          FROM jsonb_array_elements(p_records) AS r(e)
         WHERE (e ->> 'id')::uuid IS NOT NULL;
    EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow THEN
        BEGIN
            PERFORM (e ->> 'id')::uuid FROM jsonb_array_elements(p_records) AS r(e);
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'a record''s id is not a UUID'
                USING ERRCODE = 'OF005', HINT = 'Every record carries its primary key "id" (a UUID string).';
        END;
        RAISE EXCEPTION 'a record''s updated_at is not a timestamp'
            USING ERRCODE = 'OF006', HINT = 'updated_at is an ISO 8601 timestamp, e.g. "2026-11-26T10:00:00Z".';
    END;
    IF v_infinite THEN
        RAISE EXCEPTION 'a record''s updated_at is not a finite timestamp'
            USING ERRCODE = 'OF006',
                  HINT = 'updated_at is the row''s version: a real time, never infinity (a row at infinity could never change again).';
    END IF;

    -- tenant: a record that names a tenant names the envelope's
    SELECT min(o) INTO v_other
      FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
     WHERE jsonb_typeof(e -> 'tenant_id') IS DISTINCT FROM 'null'
       AND e ? 'tenant_id'
       AND optiqoflow._tenant_uuid(e -> 'tenant_id', 'record') IS DISTINCT FROM p_tenant_id;
    IF v_other IS NOT NULL THEN
        RAISE EXCEPTION 'record % belongs to another tenant than the payload', v_other
            USING ERRCODE = 'OF003',
                  DETAIL = format('The payload is for tenant %s.', p_tenant_id),
                  HINT = 'Every record of a payload must name the envelope''s tenant_id (or none).';
    END IF;

    RETURN jsonb_build_object('records', v_count, 'keys', v_keys);
END
$$;

COMMENT ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) IS
    'Internal: validates the records of a delivery (objects, UUID ids, same tenant, a version, valid key names) and returns {"records": n, "keys": {key: [json types of its non-null values]}}.';
REVOKE ALL ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) FROM PUBLIC;
