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
--   {"records": n, "keys": [every key, sorted], "pushed": [the keys with a non-null value
--    in some record, sorted], "uniform": every record has the same keys, "unique": no id
--    twice, "versioned": every record has its own updated_at}
-- Refuses (OF00x) records that are not objects, lack an id that is a UUID, name another
-- tenant, have no version (updated_at, else the envelope's occurred_at), or carry a key
-- that cannot be a column name: each record's fault is _record_fault's, the one
-- definition of a valid record; this function adds the key names and the report. No subtransaction: ids and versions are checked by
-- pattern (a UUID in any spelling PostgreSQL accepts; an ISO 8601 date-time, so never
-- 'now' or 'infinity'), and what passes the pattern but not the cast (a 13th month) is
-- refused with PostgreSQL's own SQLSTATE.
--
-- Cost: one record (every real-time change) is checked by one expression and one read
-- of its fields. A batch takes two passes, and neither reads every key/value pair:
-- pass 1 checks each record's shape and that it has every key of the first record
-- (jsonb ?&, in C); pass 2 reads, per record, only what the first record's non-null keys
-- do not already account for (e - keys, in C): its null values and any extra keys. The
-- JSON types of values, which only schema evolution needs, are read by _key_types for
-- the keys a table lacks.
DECLARE
    v_record     jsonb;
    v_fault      text;
    v_count      bigint;
    v_not_object bigint;
    v_no_id      bigint;
    v_no_version bigint;
    v_bad_version bigint;
    v_other      bigint;
    v_unversioned bigint;
    v_ids        bigint;
    v_lacking    bigint;
    v_keys0      text[];
    v_pushed0    text[];
    v_keys       text[];
    v_pushed     text[];
    v_uniform    boolean;
    v_names_ok   boolean := false;
    v_by_cast    boolean := true;
    v_reserved   text;
    v_invalid    text;
BEGIN
    IF p_records IS NULL OR jsonb_typeof(p_records) <> 'array' THEN
        RAISE EXCEPTION 'records must be a JSON array of objects'
            USING ERRCODE = 'OF004', HINT = 'Send "records": [{...}, ...] (FULL_SYNC) or "record": {...}.';
    END IF;
    v_count := jsonb_array_length(p_records);

    IF v_count = 1 THEN
        -- one record: its fault (_record_fault, as in pass 1 below) and one read of its fields
        v_record := p_records -> 0;
        v_fault := optiqoflow._record_fault(v_record, p_tenant_id, p_occurred_at);
        v_not_object := CASE WHEN v_fault = 'not_object' THEN 1 END;
        IF v_not_object IS NULL THEN
            v_no_id := CASE WHEN v_fault IN ('no_id', 'bad_id') THEN 1 END;
            v_no_version := CASE WHEN v_fault = 'no_version' THEN 1 END;
            v_bad_version := CASE WHEN v_fault = 'bad_version' THEN 1 END;
            v_other := CASE WHEN v_fault = 'other_tenant' THEN 1 END;
            v_unversioned := CASE WHEN jsonb_typeof(v_record -> 'updated_at') IS DISTINCT FROM 'string' THEN 1 ELSE 0 END;
            v_ids := 1;
            SELECT array_agg(kv.key ORDER BY kv.key),
                   coalesce(array_agg(kv.key ORDER BY kv.key) FILTER (WHERE jsonb_typeof(kv.value) <> 'null'), '{}'),
                   coalesce(bool_and(optiqoflow._is_column_name(kv.key)), true)
              INTO v_keys, v_pushed, v_names_ok
              FROM jsonb_each(v_record) AS kv;
            v_keys := coalesce(v_keys, '{}');
        END IF;
        v_uniform := true;
    ELSIF v_count > 1 THEN
        IF jsonb_typeof(p_records -> 0) = 'object' THEN
            SELECT coalesce(array_agg(kv.key), '{}'),
                   coalesce(array_agg(kv.key) FILTER (WHERE jsonb_typeof(kv.value) <> 'null'), '{}')
              INTO v_keys0, v_pushed0
              FROM jsonb_each(p_records -> 0) AS kv;
        END IF;

        -- pass 1: the shape of every record (the position of the first offender of each
        -- kind); each field is read once, in the inner query. The ids are first read by
        -- uuid's own input function (C, no pattern); only when one of them is not a UUID
        -- (22P02) does the pass run again with the pattern, to name the first offender.
        LOOP
            BEGIN
                SELECT min(o) FILTER (WHERE f = 'not_object'),
                       min(o) FILTER (WHERE f IN ('no_id', 'bad_id')),
                       min(o) FILTER (WHERE f = 'no_version'),
                       min(o) FILTER (WHERE f = 'bad_version'),
                       min(o) FILTER (WHERE f = 'other_tenant'),
                       count(*) FILTER (WHERE v_type IS DISTINCT FROM 'string'),
                       count(DISTINCT CASE WHEN f IS NULL OR f NOT IN ('not_object', 'no_id', 'bad_id')
                                           THEN (e ->> 'id')::uuid END),
                       count(*) FILTER (WHERE NOT has_keys0)
                  INTO v_not_object, v_no_id, v_no_version, v_bad_version, v_other,
                       v_unversioned, v_ids, v_lacking
                  FROM (SELECT o, e, optiqoflow._record_fault(e, p_tenant_id, p_occurred_at, v_by_cast) AS f,
                               jsonb_typeof(e -> 'updated_at') AS v_type,
                               jsonb_typeof(e) = 'object' AND e ?& v_keys0 AS has_keys0
                          FROM jsonb_array_elements(p_records) WITH ORDINALITY AS r(e, o)
                        OFFSET 0) x;
                EXIT;
            EXCEPTION WHEN invalid_text_representation THEN
                IF NOT v_by_cast THEN
                    RAISE;
                END IF;
                v_by_cast := false;   -- an id is not a UUID: again, with the pattern
            END;
        END LOOP;

        IF v_not_object IS NULL THEN
            -- pass 2: what the first record's non-null keys leave of each record (its null
            -- values and any keys the first record lacks)
            SELECT coalesce(array_agg(DISTINCT kv.key), '{}'),
                   coalesce(array_agg(DISTINCT kv.key) FILTER (WHERE jsonb_typeof(kv.value) <> 'null'), '{}')
              INTO v_keys, v_pushed
              FROM jsonb_array_elements(p_records) AS r(e), jsonb_each(r.e - v_pushed0) AS kv;
            v_uniform := v_lacking = 0 AND v_keys <@ v_keys0;
            v_keys := ARRAY(SELECT DISTINCT k FROM unnest(v_keys0 || v_keys) k ORDER BY k);
            v_pushed := ARRAY(SELECT DISTINCT k FROM unnest(v_pushed0 || v_pushed) k ORDER BY k);
        END IF;
    ELSE
        v_keys := '{}';
        v_pushed := '{}';
        v_uniform := true;
        v_ids := 0;
        v_unversioned := 0;
    END IF;

    IF v_not_object IS NOT NULL THEN
        RAISE EXCEPTION 'record % is not a JSON object', v_not_object
            USING ERRCODE = 'OF004', HINT = 'Every record is an object of column -> value.';
    END IF;

    -- the names, once per key (a single record's were tested as they were read)
    IF NOT v_names_ok THEN
        SELECT string_agg(quote_ident(k), ', ' ORDER BY k) FILTER (WHERE k ~ '^_of_'),
               string_agg(quote_literal(left(k, 80)), ', ' ORDER BY k) FILTER (WHERE k !~ '^_of_')
          INTO v_reserved, v_invalid
          FROM unnest(v_keys) AS k
         WHERE NOT optiqoflow._is_column_name(k);
    END IF;
    IF v_reserved IS NOT NULL THEN
        RAISE EXCEPTION 'reserved column name(s): %', v_reserved
            USING ERRCODE = 'OF013',
                  DETAIL = 'Keys starting with _of_ are optiqoflow''s bookkeeping columns.',
                  HINT = 'Rename the field at the sender.';
    END IF;
    IF v_invalid IS NOT NULL THEN
        RAISE EXCEPTION 'invalid column name(s): %', left(v_invalid, 500)
            USING ERRCODE = 'OF007',
                  DETAIL = 'Column names must match ^[a-z_][a-z0-9_]{0,62}$, and may not start with _of_ or be a system column name (xmin, xmax, cmin, cmax, ctid, tableoid).',
                  HINT = 'Use lower-case snake_case field names of at most 63 characters.';
    END IF;

    IF v_no_id IS NOT NULL THEN
        RAISE EXCEPTION 'record % has no id that is a UUID', v_no_id
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

    RETURN jsonb_build_object('records', v_count, 'keys', to_jsonb(v_keys), 'pushed', to_jsonb(v_pushed),
                              'uniform', v_uniform, 'unique', v_ids = v_count, 'versioned', v_unversioned = 0);
END
$$;

COMMENT ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) IS
    'Internal: validates the records of a delivery (objects, UUID ids, same tenant, a version, valid key names) and returns {"records": n, "keys": [every key], "pushed": [keys with a non-null value], "uniform", "unique", "versioned"}; a batch in two passes that read only what its first record does not account for.';
REVOKE ALL ON FUNCTION optiqoflow._analyse_records(uuid, jsonb, timestamptz) FROM PUBLIC;
