CREATE OR REPLACE FUNCTION optiqoflow.delete_record(
    p_tenant_id   uuid,
    p_table       text,
    p_old_record  jsonb,
    p_occurred_at timestamptz DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- DELETE of one record (p_old_record carries at least its id). Its version is
-- old_record.updated_at, else p_occurred_at, else the stored row's current version. By
-- the version rule (_verdict):
--   version >= stored row: the row is removed and a tombstone kept at that version;
--   no row stored:         a tombstone is kept (it blocks a late older write), rows 0;
--   older than the row:    stale, nothing changes.
-- Returns {"status": "applied" | "stale", "table": target, "rows": 0 | 1}.
DECLARE
    v_mapping optiqoflow.table_mappings := optiqoflow._target_table(p_table);
    v_table   text := v_mapping.target_table;
    v_id      uuid;
    v_version timestamptz;
    v_stored  timestamptz;
    v_rows    integer := 0;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_old_record IS NULL OR jsonb_typeof(p_old_record) <> 'object' THEN
        RAISE EXCEPTION 'old_record must be a JSON object'
            USING ERRCODE = 'OF004', HINT = 'DELETE carries "old_record": {"id": "...", ...}.';
    END IF;
    PERFORM optiqoflow._analyse_records(p_tenant_id, jsonb_build_array(p_old_record), '-infinity');
    v_id := (p_old_record ->> 'id')::uuid;
    v_version := coalesce((p_old_record ->> 'updated_at')::timestamptz, p_occurred_at);
    PERFORM optiqoflow._lock_rows(p_tenant_id, v_table, jsonb_build_array(p_old_record));
    PERFORM optiqoflow._ensure_target_table(v_table);

    EXECUTE format('SELECT updated_at FROM optiqoflow.%I WHERE tenant_id = $1 AND id = $2 FOR UPDATE', v_table)
       INTO v_stored USING p_tenant_id, v_id;
    IF v_stored IS NOT NULL THEN
        v_version := coalesce(v_version, v_stored);
        IF optiqoflow._verdict(v_version, v_stored) = 's' THEN   -- the version rule
            RETURN jsonb_build_object('status', 'stale', 'table', v_table, 'rows', 0);
        END IF;
        EXECUTE format('DELETE FROM optiqoflow.%I WHERE tenant_id = $1 AND id = $2', v_table)
          USING p_tenant_id, v_id;
        v_rows := 1;
    END IF;

    IF v_version IS NOT NULL THEN
        INSERT INTO optiqoflow.tombstones AS t (tenant_id, target_table, id, version, deleted_at, webhook_log_id)
        VALUES (p_tenant_id, v_table, v_id, v_version, now(),
                nullif(current_setting('optiqoflow.log_id', true), '')::bigint)
        ON CONFLICT (tenant_id, target_table, id) DO UPDATE
           SET version = EXCLUDED.version, deleted_at = EXCLUDED.deleted_at,
               webhook_log_id = EXCLUDED.webhook_log_id
         WHERE optiqoflow._verdict(EXCLUDED.version, t.version) = 'w';   -- a newer tombstone wins
    END IF;
    RETURN jsonb_build_object('status', 'applied', 'table', v_table, 'rows', v_rows);
END
$$;

COMMENT ON FUNCTION optiqoflow.delete_record(uuid, text, jsonb, timestamptz) IS
    'Applies one DELETE for a tenant by version (old_record.updated_at, else p_occurred_at, else the stored version): removes the row and keeps a tombstone, or keeps a tombstone alone when no row is stored. Returns {status: applied|stale, table, rows}. Not logged: use apply_webhook for a logged delivery.';
REVOKE ALL ON FUNCTION optiqoflow.delete_record(uuid, text, jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.delete_record(uuid, text, jsonb, timestamptz) TO service_role;
