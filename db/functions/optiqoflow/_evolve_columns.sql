CREATE OR REPLACE FUNCTION optiqoflow._evolve_columns(
    p_mapping optiqoflow.table_mappings,
    p_keys    jsonb
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Schema evolution, before the push touches the table (see _push_columns). p_keys is the
-- "keys" object of _analyse_records. Keys the table lacks follow the mapping's policy:
--   add    (default) ADD COLUMN with a type inferred from the values: string -> text,
--          number -> numeric, boolean -> boolean, object/array -> jsonb, mixed -> jsonb;
--          a key that has only ever been null is not added yet;
--   ignore the keys are dropped from the push, and reported;
--   refuse the delivery is refused (OF008).
-- Returns {"added": [...], "ignored": [...], "columns": [every column of the table]}.
DECLARE
    v_table    text := p_mapping.target_table;
    v_missing  text[];
    v_previous text;
    v_key      text;
    v_types    jsonb;
    v_type     text;
    v_added    text[] := ARRAY[]::text[];
    v_ignored  text[] := ARRAY[]::text[];
    v_columns  text[];
BEGIN
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO v_columns
      FROM pg_attribute a
     WHERE a.attrelid = format('optiqoflow.%I', v_table)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped;

    SELECT array_agg(k ORDER BY k) INTO v_missing
      FROM jsonb_object_keys(p_keys) k
     WHERE k <> ALL (v_columns);
    IF v_missing IS NULL THEN
        RETURN jsonb_build_object('added', '[]'::jsonb, 'ignored', '[]'::jsonb, 'columns', to_jsonb(v_columns));
    END IF;

    IF p_mapping.schema_evolution = 'refuse' THEN
        RAISE EXCEPTION 'new column(s) % for table % refused by its schema-evolution policy',
                        array_to_string(v_missing, ', '), v_table
            USING ERRCODE = 'OF008',
                  HINT = format('Add the columns by hand, or: UPDATE optiqoflow.table_mappings SET schema_evolution = ''add'' WHERE source_table = %L;',
                                p_mapping.source_table);
    ELSIF p_mapping.schema_evolution = 'ignore' THEN
        RETURN jsonb_build_object('added', '[]'::jsonb, 'ignored', to_jsonb(v_missing), 'columns', to_jsonb(v_columns));
    END IF;

    -- only keys with a non-null value somewhere can be typed
    SELECT array_agg(k ORDER BY k) INTO v_missing
      FROM unnest(v_missing) k
     WHERE jsonb_array_length(p_keys -> k) > 0;
    IF v_missing IS NULL THEN
        RETURN jsonb_build_object('added', '[]'::jsonb, 'ignored', '[]'::jsonb, 'columns', to_jsonb(v_columns));
    END IF;

    v_previous := optiqoflow._ddl_lock('ddl/' || v_table);
    FOREACH v_key IN ARRAY v_missing LOOP
        v_types := p_keys -> v_key;
        v_type := CASE
            WHEN v_types = '["string"]' THEN 'text'
            WHEN v_types = '["number"]' THEN 'numeric'
            WHEN v_types = '["boolean"]' THEN 'boolean'
            ELSE 'jsonb'
        END;
        -- another push may have added it while we waited for the lock
        IF NOT EXISTS (SELECT FROM pg_attribute a
                        WHERE a.attrelid = format('optiqoflow.%I', v_table)::regclass
                          AND a.attname = v_key AND NOT a.attisdropped) THEN
            EXECUTE format('ALTER TABLE optiqoflow.%I ADD COLUMN %I %s', v_table, v_key, v_type);
            -- a data column: the dashboard may write it too (see _secure_target_table).
            -- Citus 13.0 cannot propagate a column grant of a distributed table: there the
            -- new column stays read-only for authenticated (docs/citus.md)
            IF optiqoflow._citus_table_kind(format('optiqoflow.%I', v_table)::regclass) = 'none' THEN
                EXECUTE format('GRANT INSERT (%I), UPDATE (%I) ON optiqoflow.%I TO authenticated',
                               v_key, v_key, v_table);
            END IF;
            v_added := v_added || v_key;
        END IF;
    END LOOP;
    PERFORM set_config('lock_timeout', v_previous, true);

    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO v_columns
      FROM pg_attribute a
     WHERE a.attrelid = format('optiqoflow.%I', v_table)::regclass
       AND a.attnum > 0 AND NOT a.attisdropped;
    RETURN jsonb_build_object('added', to_jsonb(v_added), 'ignored', to_jsonb(v_ignored), 'columns', to_jsonb(v_columns));
END
$$;

COMMENT ON FUNCTION optiqoflow._evolve_columns(optiqoflow.table_mappings, jsonb) IS
    'Internal: schema evolution of a target table for the keys of a push, by the mapping''s policy (add | ignore | refuse), under a per-table lock (_lock) and a short lock_timeout.';
REVOKE ALL ON FUNCTION optiqoflow._evolve_columns(optiqoflow.table_mappings, jsonb) FROM PUBLIC;
