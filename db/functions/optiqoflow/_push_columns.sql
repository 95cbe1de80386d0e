CREATE OR REPLACE FUNCTION optiqoflow._push_columns(
    p_mapping optiqoflow.table_mappings,
    p_records jsonb,
    p_keys    jsonb
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The columns a push writes, after what evolution makes of its keys, before anything
-- touches the table (an ALTER after the push read or wrote the table would be a lock
-- upgrade, and two such pushes deadlock). p_records are the push's records, p_keys is the
-- sorted array "keys" of _analyse_records. When every key is already a column, this
-- reads the columns and runs no DDL, the steady case. Otherwise it creates the target
-- table if needed and hands _evolve_columns the JSON types of the keys the table lacks
-- (_key_types), under the mapping's policy. The caller holds the push's row-bucket
-- locks (_lock_rows). Returns {"columns": [every column, in attnum order],
-- "added": [...], "ignored": [...]}.
--
-- Bounded before any per-key work: keys that could never become columns (a table holds
-- at most 1,600, dropped ones included) refuse the push (OF022) before their values are
-- typed, and typing reads each key/value pair of the records once (_key_types).
DECLARE
    v_columns text[] := optiqoflow._columns(p_mapping.target_table);
    v_missing text[];
    v_used    integer;
BEGIN
    IF v_columns IS NOT NULL AND to_jsonb(v_columns) @> p_keys THEN
        RETURN jsonb_build_object('columns', to_jsonb(v_columns), 'added', '[]'::jsonb, 'ignored', '[]'::jsonb);
    END IF;
    v_missing := ARRAY(SELECT k FROM jsonb_array_elements_text(p_keys) k
                        WHERE k <> ALL (coalesce(v_columns, '{}')));
    IF p_mapping.schema_evolution = 'add' THEN
        SELECT count(*) INTO v_used FROM pg_catalog.pg_attribute a
         WHERE a.attrelid = to_regclass(format('optiqoflow.%I', p_mapping.target_table)) AND a.attnum > 0;
        -- a table not created yet: the 7 columns _ensure_target_table creates
        IF greatest(v_used, 7) + cardinality(v_missing) > 1600 THEN
            RAISE EXCEPTION '% new keys for table %: it can never hold them', cardinality(v_missing),
                            p_mapping.target_table
                USING ERRCODE = 'OF022',
                      DETAIL = format('A table has at most 1,600 columns; %s has %s (dropped ones count).',
                                      p_mapping.target_table, v_used),
                      HINT = 'Send the fields as one object (a jsonb column), or set the mapping''s schema_evolution to ''ignore''.';
        END IF;
    END IF;
    PERFORM optiqoflow._ensure_target_table(p_mapping.target_table);
    RETURN optiqoflow._evolve_columns(p_mapping,
        CASE WHEN p_mapping.schema_evolution = 'add' THEN optiqoflow._key_types(p_records, v_missing)
             -- ignore / refuse need the names only
             ELSE coalesce((SELECT jsonb_object_agg(k, '[]'::jsonb) FROM unnest(v_missing) k), '{}') END);
END
$$;

COMMENT ON FUNCTION optiqoflow._push_columns(optiqoflow.table_mappings, jsonb, jsonb) IS
    'Internal: the columns a push writes, after schema evolution of its keys (no DDL when every key is a column already): {"columns", "added", "ignored"}.';
REVOKE ALL ON FUNCTION optiqoflow._push_columns(optiqoflow.table_mappings, jsonb, jsonb) FROM PUBLIC;
