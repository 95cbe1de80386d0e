CREATE OR REPLACE FUNCTION optiqoflow.upsert_record(
    p_tenant_id   uuid,
    p_table       text,
    p_record      jsonb,
    p_occurred_at timestamptz DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'   -- a version without an offset means UTC, whatever the session says
AS $$
-- INSERT/UPDATE of one record of a source (or target) table for a tenant, by version
-- (updated_at, else p_occurred_at): schema evolution, the version-checked write, column
-- tracking and view regeneration. No delivery log, push log or cache invalidation:
-- apply_webhook adds those. Returns
--   {"status": "applied" | "duplicate" | "stale", "table": target, "rows": n, ...}.
DECLARE
    v_mapping  optiqoflow.table_mappings;
    v_records  jsonb;
    v_info     jsonb;
    v_evolved  jsonb;
    v_columns  text[];
    v_tracked  text[];
    v_keys     text[];
    v_result   jsonb;
    v_id       uuid;
    v_xid      xid8;
    v_writer   text;
    v_written  bigint;
    v_duplicate bigint;
    v_stale    bigint;
    v_out      record;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_record IS NULL OR jsonb_typeof(p_record) <> 'object' THEN
        RAISE EXCEPTION 'record must be a JSON object'
            USING ERRCODE = 'OF004', HINT = 'INSERT and UPDATE carry "record": {...}.';
    END IF;
    SELECT * INTO v_mapping FROM optiqoflow.table_mappings m WHERE m.source_table = p_table;
    IF NOT FOUND THEN
        v_mapping := optiqoflow._target_table(p_table);   -- a target name, or OF001
    END IF;
    -- column policies (optiqoflow.column_policies): blocked keys out, hashed values hashed
    IF EXISTS (SELECT FROM optiqoflow.column_policies cp
                WHERE cp.target_table = v_mapping.target_table AND cp.policy <> 'keep') THEN
        p_record := optiqoflow._policy_record(v_mapping.target_table, p_record);
    END IF;
    v_records := jsonb_build_array(p_record);
    v_columns := optiqoflow._columns(v_mapping.target_table);
    v_keys := ARRAY(SELECT jsonb_object_keys(p_record));

    -- The common case, every real-time change of a known shape: a valid record with its
    -- own version (_record_fault, the one validation, without p_occurred_at), and every
    -- key already a column that is not bookkeeping (so every name is valid and there is
    -- nothing to evolve), tested by expressions instead of _analyse_records' reading of
    -- each field. Anything else takes the general path below, which names what is wrong.
    IF v_columns IS NOT NULL
       AND optiqoflow._record_fault(p_record, p_tenant_id, NULL) IS NULL
       AND p_record - v_columns = '{}'::jsonb
       AND array_to_string(v_keys, ' ') !~ '(^| )_of_'
    THEN
        -- what _lock_rows and _write_records do for one record, without their layers:
        -- its row bucket and this node's xid (on a Citus coordinator both come from the
        -- tenant's node, through those functions), then the table's generated writer
        v_id := (p_record ->> 'id')::uuid;
        IF NOT optiqoflow._on_citus() THEN
            PERFORM FROM optiqoflow.lock_slots s
              WHERE s.slot = optiqoflow._row_lock_slot(
                                 optiqoflow._row_lock_space(p_tenant_id, v_mapping.target_table),
                                 optiqoflow._row_lock_bucket(v_id))
                FOR UPDATE;
            v_xid := pg_current_xact_id();
        ELSIF optiqoflow._rows_are_here() THEN
            PERFORM pg_advisory_xact_lock(optiqoflow._row_lock_space(p_tenant_id, v_mapping.target_table),
                                          optiqoflow._row_lock_bucket(v_id));
            v_xid := pg_current_xact_id();
        ELSE
            PERFORM optiqoflow._lock_rows(p_tenant_id, v_mapping.target_table, v_records);
            v_xid := optiqoflow._tenant_xid(p_tenant_id);
        END IF;
        -- a closed (erased) tenant writes nothing (as in _lock_rows: under the lock): the
        -- test inline, _refuse_closed_tenant called only when it holds (called on every
        -- delivery, it cost this path a few per cent of its CPU in bench.locks A/Bs)
        IF EXISTS (SELECT FROM optiqoflow.tenant_erasures e
                    WHERE e.tenant_id = p_tenant_id AND e.readmitted_at IS NULL) THEN
            PERFORM optiqoflow._refuse_closed_tenant(p_tenant_id);
        END IF;
        v_writer := optiqoflow._writer_name(v_mapping.target_table, v_columns);
        IF to_regproc(format('optiqoflow_gen.%I', v_writer)) IS NULL THEN
            v_writer := optiqoflow._writer(v_mapping.target_table, v_columns);   -- generated on first use
        END IF;
        v_out := optiqoflow._run_writer(v_writer, p_tenant_id, v_mapping.target_table, v_records,
                                        v_keys, now(), v_xid, NULL::bigint);
        v_written := v_out._of_o_written;
        v_duplicate := v_out._of_o_duplicate;
        v_stale := v_out._of_o_stale;
        IF v_written > 0 THEN
            -- tracking: one read; _track_columns only when a non-null key is not tracked yet
            SELECT tca.columns INTO v_tracked
              FROM tenants.tenant_column_access tca
             WHERE tca.tenant_id = p_tenant_id AND tca.table_name = v_mapping.target_table;
            IF v_tracked IS NULL OR jsonb_strip_nulls(p_record) - v_tracked <> '{}'::jsonb THEN
                PERFORM optiqoflow._track_columns(
                    p_tenant_id, v_mapping.target_table,
                    to_jsonb(ARRAY(SELECT k FROM jsonb_each(p_record) AS kv(k, v)
                                    WHERE jsonb_typeof(v) <> 'null' ORDER BY k)),
                    v_columns);
            END IF;
        END IF;
        IF v_written = 0 AND v_duplicate > 0 THEN
            RETURN jsonb_build_object(
                'status', 'duplicate', 'table', v_mapping.target_table, 'rows', 0,
                'reason', optiqoflow._equal_version_reason(p_tenant_id, v_mapping.target_table, p_record),
                'added_columns', '[]'::jsonb, 'ignored_columns', '[]'::jsonb);
        END IF;
        RETURN jsonb_build_object(
            'status', CASE WHEN v_written > 0 THEN 'applied' ELSE 'stale' END,
            'table', v_mapping.target_table, 'rows', v_written,
            'added_columns', '[]'::jsonb, 'ignored_columns', '[]'::jsonb);
    END IF;

    v_info := optiqoflow._analyse_records(p_tenant_id, v_records, p_occurred_at);
    PERFORM optiqoflow._lock_rows(p_tenant_id, v_mapping.target_table, v_records);
    v_evolved := optiqoflow._push_columns(v_mapping, v_records, v_info -> 'keys');   -- after the lock
    v_columns := ARRAY(SELECT jsonb_array_elements_text(v_evolved -> 'columns'));
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
        'ignored_columns', v_evolved -> 'ignored')
        || CASE WHEN (v_result ->> 'written')::bigint = 0 AND (v_result ->> 'duplicate')::bigint > 0
                THEN jsonb_build_object('reason', optiqoflow._equal_version_reason(
                         p_tenant_id, v_mapping.target_table, p_record))
                ELSE '{}' END;
END
$$;

COMMENT ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) IS
    'Applies one INSERT/UPDATE record for a tenant by version (updated_at, else p_occurred_at): evolution, version-checked upsert, column tracking, views. Returns {status: applied|duplicate|stale, table, rows, added_columns, ignored_columns}. Not logged: use apply_webhook for a logged delivery.';
REVOKE ALL ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.upsert_record(uuid, text, jsonb, timestamptz) TO service_role;
