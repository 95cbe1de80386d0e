CREATE OR REPLACE FUNCTION optiqoflow.upsert_record(
    p_tenant_id   uuid,
    p_table       text,
    p_record      jsonb,
    p_occurred_at timestamptz DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- INSERT/UPDATE of one record of a source (or target) table for a tenant, by version
-- (updated_at, else p_occurred_at): schema evolution, the version-checked write, column
-- tracking and view regeneration. No delivery log, push log or cache invalidation:
-- apply_webhook adds those. Returns
--   {"status": "applied" | "duplicate" | "stale", "table": target, "rows": n, ...}.
DECLARE
    v_mapping  optiqoflow.table_mappings := optiqoflow._target_table(p_table);
    v_records  jsonb;
    v_info     jsonb;
    v_evolved  jsonb;
    v_columns  text[];
    v_result   jsonb;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_record IS NULL OR jsonb_typeof(p_record) <> 'object' THEN
        RAISE EXCEPTION 'record must be a JSON object'
            USING ERRCODE = 'OF004', HINT = 'INSERT and UPDATE carry "record": {...}.';
    END IF;
    v_records := jsonb_build_array(p_record);
    v_info := optiqoflow._analyse_records(p_tenant_id, v_records, p_occurred_at);
    PERFORM optiqoflow._lock_rows(p_tenant_id, v_mapping.target_table, v_records);
    v_columns := optiqoflow._columns(v_mapping.target_table);
    IF v_columns IS NOT NULL AND to_jsonb(v_columns) @> (v_info -> 'keys') THEN
        v_evolved := '{"added": [], "ignored": []}';   -- every key is a column: nothing to evolve
    ELSE
        PERFORM optiqoflow._ensure_target_table(v_mapping.target_table);
        v_evolved := optiqoflow._evolve_columns(v_mapping, optiqoflow._key_types(v_records,
                         ARRAY(SELECT k FROM jsonb_array_elements_text(v_info -> 'keys') k
                                WHERE k <> ALL (coalesce(v_columns, '{}')))));
        v_columns := ARRAY(SELECT jsonb_array_elements_text(v_evolved -> 'columns'));
    END IF;
    v_result := optiqoflow._write_records(p_tenant_id, v_mapping.target_table, v_records,
                                          p_occurred_at, v_columns, NULL, v_info);
    IF (v_result ->> 'written')::bigint > 0 THEN
        PERFORM optiqoflow._track_columns(p_tenant_id, v_mapping.target_table, v_info -> 'pushed', v_columns);
    END IF;
    RETURN jsonb_build_object(
        'status', CASE WHEN (v_result ->> 'written')::bigint > 0 THEN 'applied'
                       WHEN (v_result ->> 'duplicate')::bigint > 0 THEN 'duplicate'
                       ELSE 'stale' END,
        'table', v_mapping.target_table,
        'rows', (v_result ->> 'written')::bigint,
        'added_columns', v_evolved -> 'added',
        'ignored_columns', v_evolved -> 'ignored');
END
$$;

COMMENT ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) IS
    'Applies one INSERT/UPDATE record for a tenant by version (updated_at, else p_occurred_at): evolution, version-checked upsert, column tracking, views. Returns {status: applied|duplicate|stale, table, rows, added_columns, ignored_columns}. Not logged: use apply_webhook for a logged delivery.';
REVOKE ALL ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) TO service_role;
