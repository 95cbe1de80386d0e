CREATE OR REPLACE FUNCTION optiqoflow.erase_record(
    p_tenant_id uuid,
    p_table     text,
    p_id        uuid,
    p_reason    text
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- A data subject's request: erases one record and its traces (README, "Privacy").
--     SELECT optiqoflow.erase_record('<tenant>', 'staff_members', '<id>', 'request 2026-12-07');
--     -- optiqoflow erase-record TENANT TABLE ID --reason TEXT --yes
-- p_table is a source or a target name. Under the record's row-bucket lock (as a
-- delivery of it): the row goes, and a tombstone stays (or is moved up) at the newest of
-- the row's version and now(), so that an old retry or a late FULL_SYNC batch of it is
-- stale; a newer change from the source brings it back (erase it at the source too).
-- Its traces go: refused deliveries whose kept payload or body holds its id (and the
-- error text of their log rows, which may quote a value), and the tenant's chart cache
-- entries of charts that read its table or hold its id (the dashboard refills them).
-- Records that refer to it (an employee_id elsewhere) are not changed. One transaction,
-- bounded by the refused deliveries and cache entries of the tenant. Returns the
-- receipt, also kept in optiqoflow.record_erasures.
DECLARE
    v_target   text;
    v_id       text := p_id::text;
    v_version  timestamptz;
    v_row      bigint;
    v_refused  bigint;
    v_logs     bigint;
    v_cache    bigint;
    v_log_ids  bigint[];
    v_receipt  jsonb;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_id IS NULL THEN
        RAISE EXCEPTION 'no record id' USING ERRCODE = 'OF029', HINT = 'Pass the record''s id (a UUID).';
    END IF;
    IF p_reason IS NULL OR btrim(p_reason) = '' THEN
        RAISE EXCEPTION 'an erasure needs a reason' USING ERRCODE = 'OF029',
            HINT = 'Say why, e.g. SELECT optiqoflow.erase_record(''<tenant>'', ''staff_members'', ''<id>'', ''request of 2026-12-07'');';
    END IF;
    v_target := (optiqoflow._target_table(p_table)).target_table;   -- OF001 when unknown

    -- the record's row bucket, as a delivery of it takes it (OF028 for a closed tenant:
    -- optiqoflow.erase_tenant erases it all)
    PERFORM optiqoflow._lock_rows(p_tenant_id, v_target, jsonb_build_array(jsonb_build_object('id', v_id)));

    IF pg_catalog.to_regclass(format('optiqoflow.%I', v_target)) IS NOT NULL THEN
        EXECUTE format('DELETE FROM optiqoflow.%I x WHERE x.tenant_id = $1 AND x.id = $2 RETURNING x.updated_at', v_target)
           INTO v_version USING p_tenant_id, p_id;
        GET DIAGNOSTICS v_row = ROW_COUNT;
    ELSE
        v_row := 0;
    END IF;
    v_version := greatest(v_version, now(),
                          (SELECT t.version FROM optiqoflow.tombstones t
                            WHERE t.tenant_id = p_tenant_id AND t.target_table = v_target AND t.id = p_id));
    -- now() in VALUES, not in DO UPDATE: Citus evaluates it once, on the coordinator
    INSERT INTO optiqoflow.tombstones AS t (tenant_id, target_table, id, version, deleted_at)
    VALUES (p_tenant_id, v_target, p_id, v_version, now())
    ON CONFLICT (tenant_id, target_table, id)
    DO UPDATE SET version = greatest(t.version, EXCLUDED.version), deleted_at = EXCLUDED.deleted_at;

    -- refused deliveries holding its id (filed under the tenant, or bytes naming it)
    WITH gone AS (
        DELETE FROM optiqoflow.refused_deliveries d
         WHERE (d.tenant_id = p_tenant_id AND strpos(d.payload::text, v_id) > 0)
            OR (d.raw_body IS NOT NULL AND d.tenant_id IS NULL
                AND (position(convert_to(v_id, 'UTF8') IN d.raw_body) > 0
                     OR position(convert_to(upper(v_id), 'UTF8') IN d.raw_body) > 0))
        RETURNING d.log_id
    ) SELECT count(*), coalesce(array_agg(g.log_id), '{}') INTO v_refused, v_log_ids FROM gone g;
    -- their log rows (and their replays') keep the outcome, not the error text
    IF v_refused > 0 THEN
        UPDATE optiqoflow.webhook_logs l
           SET error = NULL, detail = NULL, payload = NULL, raw_body = NULL
         WHERE (l.id = ANY (v_log_ids) OR l.replay_of = ANY (v_log_ids))
           AND (l.error IS NOT NULL OR l.detail IS NOT NULL OR l.payload IS NOT NULL OR l.raw_body IS NOT NULL);
        GET DIAGNOSTICS v_logs = ROW_COUNT;
    ELSE
        v_logs := 0;
    END IF;

    -- the tenant's cache entries of charts that read the table (invalidated first, as a
    -- delivery would: the charts go stale and the channel hears it), or that hold the id
    PERFORM public.invalidate_chart_cache_for_tables(p_tenant_id, ARRAY[v_target]);
    DELETE FROM public.chart_data_cache c
     WHERE c.tenant_id = p_tenant_id
       AND (c.chart_id IN (SELECT d.chart_id FROM public.chart_table_dependencies d WHERE d.table_name = v_target)
            OR strpos(c.data::text, v_id) > 0);
    GET DIAGNOSTICS v_cache = ROW_COUNT;

    v_receipt := jsonb_build_object(
        'tenant_id', p_tenant_id, 'table', v_target, 'id', p_id, 'reason', p_reason,
        'erased_at', now(),
        'removed', jsonb_build_object('optiqoflow.' || v_target, v_row,
                                      'optiqoflow.refused_deliveries', v_refused,
                                      'public.chart_data_cache', v_cache),
        'scrubbed', jsonb_build_object('optiqoflow.webhook_logs', v_logs),
        'tombstone', jsonb_build_object('version', v_version));
    INSERT INTO optiqoflow.record_erasures (tenant_id, target_table, record_id, reason, receipt)
    VALUES (p_tenant_id, v_target, p_id, p_reason, v_receipt);
    RETURN v_receipt;
END
$$;

COMMENT ON FUNCTION optiqoflow.erase_record(uuid, text, uuid, text) IS
    'A data subject''s request: removes one record (p_table a source or target name) and its traces (refused deliveries holding its id and their log rows'' error text, the tenant''s chart cache entries of charts reading its table); a tombstone stays at the newest of its version and now(), so an old retry cannot bring it back. Returns the receipt, also kept in optiqoflow.record_erasures. optiqoflow_admin only.';
REVOKE ALL ON FUNCTION optiqoflow.erase_record(uuid, text, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.erase_record(uuid, text, uuid, text) TO optiqoflow_admin;
