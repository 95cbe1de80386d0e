CREATE OR REPLACE FUNCTION optiqoflow._write_records(
    p_tenant_id    uuid,
    p_table        text,
    p_records      jsonb,
    p_occurred_at  timestamptz,
    p_columns      text[],
    p_sync_run     bigint
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
-- INSERT ... SELECT FROM jsonb_populate_recordset ... ON CONFLICT DO UPDATE. Within the
-- batch a key present twice keeps its newest version (PITFALLS 9).
--
-- Concurrency: the caller holds the row-bucket locks of these keys (optiqoflow._lock_rows),
-- so an INSERT and a DELETE of one key cannot interleave between reading the tombstone
-- and writing the row.
--
-- p_sync_run: the FULL_SYNC run these records belong to (NULL for real-time changes).
-- Rows of the run that were not written (duplicate, stale) are marked as seen by it, so
-- its completion does not remove them.
--
-- Returns {"written": n, "duplicate": n, "stale": n}.
DECLARE
    v_records   jsonb;
    v_keys      text[];
    v_group     jsonb;
    v_cols      text[];
    v_now       timestamptz := now();
    v_xid       xid8 := pg_current_xact_id();
    v_written   bigint := 0;
    v_duplicate bigint := 0;
    v_stale     bigint := 0;
    w bigint; d bigint; s bigint;
BEGIN
    -- version into updated_at, then the newest version of each key
    SELECT coalesce(jsonb_agg(e), '[]') INTO v_records
      FROM (SELECT DISTINCT ON ((e ->> 'id')::uuid) e
              FROM (SELECT CASE WHEN jsonb_typeof(r.e -> 'updated_at') = 'string' THEN r.e
                                ELSE r.e || jsonb_build_object('updated_at', p_occurred_at) END AS e
                      FROM jsonb_array_elements(p_records) AS r(e)) v
             ORDER BY (e ->> 'id')::uuid, (e ->> 'updated_at')::timestamptz DESC) d;

    FOR v_keys, v_group IN
        SELECT ks, jsonb_agg(e)
          FROM (SELECT e, ARRAY(SELECT k FROM jsonb_object_keys(e) k ORDER BY k) AS ks
                  FROM jsonb_array_elements(v_records) AS r(e)) g
         GROUP BY ks
    LOOP
        -- the columns this group writes: its keys that are columns (ignored keys drop out)
        SELECT array_agg(k ORDER BY k) INTO v_cols
          FROM unnest(v_keys) k
         WHERE k = ANY (p_columns) AND k NOT IN ('id', 'tenant_id');

        EXECUTE format($sql$
            WITH src AS (
                SELECT r.* FROM jsonb_populate_recordset(NULL::optiqoflow.%1$I, $1) r
            ), cls AS (
                SELECT s.*,
                       CASE WHEN t.id IS NULL AND (tb.version IS NULL OR s.updated_at > tb.version) THEN 'w'
                            WHEN t.id IS NULL THEN 's'
                            WHEN s.updated_at > t.updated_at THEN 'w'
                            WHEN s.updated_at = t.updated_at THEN 'd'
                            ELSE 's' END AS _of_action
                  FROM src s
                  LEFT JOIN optiqoflow.%1$I t ON t.tenant_id = $2 AND t.id = s.id
                  LEFT JOIN optiqoflow.tombstones tb
                         ON tb.tenant_id = $2 AND tb.target_table = $3 AND tb.id = s.id
            ), w AS (
                INSERT INTO optiqoflow.%1$I AS t (tenant_id, id, %2$s, _of_written_at, _of_xid, _of_sync_run)
                SELECT $2, c.id, %3$s, $4, $5, $6 FROM cls c WHERE c._of_action = 'w'
                ON CONFLICT (tenant_id, id) DO UPDATE
                   SET %4$s, _of_written_at = EXCLUDED._of_written_at,
                       _of_xid = EXCLUDED._of_xid, _of_sync_run = EXCLUDED._of_sync_run
                 WHERE t.updated_at < EXCLUDED.updated_at
                RETURNING t.id
            ), cleared AS (
                DELETE FROM optiqoflow.tombstones x USING w
                 WHERE x.tenant_id = $2 AND x.target_table = $3 AND x.id = w.id
                RETURNING 1
            ), marked AS (
                UPDATE optiqoflow.%1$I t SET _of_sync_run = $6
                  FROM cls c
                 WHERE $6 IS NOT NULL AND c._of_action IN ('d', 's')
                   AND t.tenant_id = $2 AND t.id = c.id AND t._of_sync_run IS DISTINCT FROM $6
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM w),
                   (SELECT count(*) FROM cls WHERE _of_action = 'd'),
                   (SELECT count(*) FROM cls WHERE _of_action = 's')
                   + 0 * (SELECT count(*) FROM cleared) + 0 * (SELECT count(*) FROM marked)
            $sql$,
            p_table,
            (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_cols) c),
            (SELECT string_agg(format('c.%I', c), ', ') FROM unnest(v_cols) c),
            (SELECT string_agg(format('%1$I = EXCLUDED.%1$I', c), ', ') FROM unnest(v_cols) c))
        INTO w, d, s
        USING v_group, p_tenant_id, p_table, v_now, v_xid, p_sync_run;

        v_written := v_written + w;
        v_duplicate := v_duplicate + d;
        v_stale := v_stale + s;
    END LOOP;

    RETURN jsonb_build_object('written', v_written, 'duplicate', v_duplicate, 'stale', v_stale);
END
$$;

COMMENT ON FUNCTION optiqoflow._write_records(uuid, text, jsonb, timestamptz, text[], bigint) IS
    'Internal: set-based, version-checked upsert of validated records into a target table (one statement per key set); returns {"written", "duplicate", "stale"}.';
REVOKE ALL ON FUNCTION optiqoflow._write_records(uuid, text, jsonb, timestamptz, text[], bigint) FROM PUBLIC;
