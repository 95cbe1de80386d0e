CREATE OR REPLACE FUNCTION optiqoflow._write_records(
    p_tenant_id    uuid,
    p_table        text,
    p_records      jsonb,
    p_occurred_at  timestamptz,
    p_columns      text[],
    p_sync_run     bigint,
    p_info         jsonb DEFAULT NULL
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Write validated records (see _analyse_records) into a target table, obeying versions:
-- a record is written when nothing is stored and no tombstone is as new, or when it is
-- newer than the stored row; equal is a duplicate; older is stale. Keys absent from a
-- record keep their stored value; keys present with null become null.
--
-- Set-based: one statement per distinct key set (usually one per batch), each an
-- INSERT ... SELECT FROM jsonb_populate_recordset ... ON CONFLICT DO UPDATE, run by the
-- table's generated writer (optiqoflow._writer: static SQL, plans cached per session, run
-- by optiqoflow._run_writer).
-- Within the batch a key present twice keeps its newest version (ON CONFLICT cannot
-- affect one row twice in a statement).
--
-- Concurrency: the caller holds the row-bucket locks of these keys (optiqoflow._lock_rows),
-- so an INSERT and a DELETE of one key cannot interleave between reading the tombstone
-- and writing the row.
--
-- p_info: what _analyse_records said of these records; when they share one key set, have
-- no id twice and all carry updated_at, they go to the writer as they are.
-- p_sync_run: the FULL_SYNC run these records belong to (NULL for real-time changes).
-- Rows of the run that were not written (duplicate, stale) are marked as seen by it, so
-- its completion does not remove them.
--
-- Returns {"written": n, "duplicate": n, "stale": n}.
DECLARE
    v_records   jsonb;
    v_keys      text[];
    v_group     jsonb;
    v_writer    text := optiqoflow._writer(p_table, p_columns);
    v_now       timestamptz := now();
    v_xid       xid8 := optiqoflow._tenant_xid(p_tenant_id);   -- Citus: the xid of the tenant's node
    v_written   bigint := 0;
    v_duplicate bigint := 0;
    v_stale     bigint := 0;
    v_previous_mode text;
    w bigint; d bigint; s bigint;
    v_out       record;
BEGIN
    IF jsonb_array_length(p_records) = 1 THEN
        -- one record (every real-time change): no de-duplication or grouping to do
        v_records := p_records;
        IF jsonb_typeof(v_records -> 0 -> 'updated_at') IS DISTINCT FROM 'string' THEN
            v_records := jsonb_build_array((v_records -> 0) || jsonb_build_object('updated_at', p_occurred_at));
        END IF;
        v_keys := ARRAY(SELECT jsonb_object_keys(v_records -> 0));
        v_out := optiqoflow._run_writer(v_writer, p_tenant_id, p_table, v_records, v_keys,
                                        v_now, v_xid, p_sync_run);
        w := v_out._of_o_written; d := v_out._of_o_duplicate; s := v_out._of_o_stale;
        RETURN jsonb_build_object('written', w, 'duplicate', d, 'stale', s);
    END IF;

    -- A batch is planned for its own size: the writer's cached generic plan is made for the
    -- one-record calls of real-time traffic and runs a 5,000-record batch ~3x slower.
    v_previous_mode := current_setting('plan_cache_mode');
    PERFORM set_config('plan_cache_mode', 'force_custom_plan', true);

    IF (p_info ->> 'uniform')::boolean AND (p_info ->> 'unique')::boolean
       AND (p_info ->> 'versioned')::boolean THEN
        -- what _analyse_records saw (p_info): one key set, no id twice, every record
        -- versioned - a FULL_SYNC batch as a source sends it: one statement, no passes
        v_out := optiqoflow._run_writer(v_writer, p_tenant_id, p_table, p_records,
                                        ARRAY(SELECT jsonb_array_elements_text(p_info -> 'keys')),
                                        v_now, v_xid, p_sync_run);
        w := v_out._of_o_written; d := v_out._of_o_duplicate; s := v_out._of_o_stale;
        PERFORM set_config('plan_cache_mode', v_previous_mode, true);
        RETURN jsonb_build_object('written', w, 'duplicate', d, 'stale', s);
    END IF;

    -- version into updated_at, then the newest version of each key
    SELECT coalesce(jsonb_agg(e), '[]') INTO v_records
      FROM (SELECT DISTINCT ON ((e ->> 'id')::uuid) e
              FROM (SELECT CASE WHEN jsonb_typeof(r.e -> 'updated_at') = 'string' THEN r.e
                                ELSE r.e || jsonb_build_object('updated_at', p_occurred_at) END AS e
                      FROM jsonb_array_elements(p_records) AS r(e)) v
             ORDER BY (e ->> 'id')::uuid, (e ->> 'updated_at')::timestamptz DESC) d;

    -- one statement per key set: a key absent from a record keeps its stored value
    FOR v_keys, v_group IN
        SELECT ks, jsonb_agg(e)
          FROM (SELECT e, ARRAY(SELECT k FROM jsonb_object_keys(e) k ORDER BY k) AS ks
                  FROM jsonb_array_elements(v_records) AS r(e)) g
         GROUP BY ks
    LOOP
        v_out := optiqoflow._run_writer(v_writer, p_tenant_id, p_table, v_group, v_keys,
                                        v_now, v_xid, p_sync_run);
        w := v_out._of_o_written; d := v_out._of_o_duplicate; s := v_out._of_o_stale;
        v_written := v_written + w;
        v_duplicate := v_duplicate + d;
        v_stale := v_stale + s;
    END LOOP;

    PERFORM set_config('plan_cache_mode', v_previous_mode, true);
    RETURN jsonb_build_object('written', v_written, 'duplicate', v_duplicate, 'stale', v_stale);
END
$$;

COMMENT ON FUNCTION optiqoflow._write_records(uuid, text, jsonb, timestamptz, text[], bigint, jsonb) IS
    'Internal: set-based, version-checked upsert of validated records into a target table (one statement per key set); returns {"written", "duplicate", "stale"}.';
REVOKE ALL ON FUNCTION optiqoflow._write_records(uuid, text, jsonb, timestamptz, text[], bigint, jsonb) FROM PUBLIC;
