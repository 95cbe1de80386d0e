CREATE OR REPLACE FUNCTION optiqoflow._writer(p_table text, p_columns text[])
RETURNS text
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The writer function of a target table with exactly these columns (p_columns: every
-- column, in attnum order): optiqoflow_gen."{table}_{hash of the columns}", generated
-- on first use. It holds the version-checked upsert of _write_records as static SQL, so
-- PostgreSQL plans it once per session instead of once per delivery. A table whose
-- columns change gets a new writer under a new name; old ones are left in place (a
-- session may still be calling one) and cost nothing. Any of them may be dropped by
-- hand: the next delivery that needs one makes it again.
--
-- What it runs, for records of one key set (p_present: the columns they carry):
--   one record: read the stored version (and, when none, the tombstone), then UPDATE or
--   INSERT that one row: three small statements with cheap plans;
--   a batch, when the tenant has no tombstone in this table: INSERT ... ON CONFLICT
--   (tenant_id, id) DO UPDATE SET col = CASE WHEN 'col' = ANY (present) THEN
--   EXCLUDED.col ELSE t.col END ... WHERE the version rule says write, and only the
--   records it did not write are classified (duplicate | stale) and marked as seen by
--   the run;
--   any other batch: classify each record against the stored row and tombstone (write |
--   duplicate | stale), the same upsert of the writes, clear the tombstones of written
--   keys, mark duplicate/stale rows as seen by the run.
-- Every one of those decisions is optiqoflow._verdict's, the one version rule.
-- Parameters and outputs are named _of_*: no column can have such a name, so none can
-- shadow them. Callers run it through optiqoflow._run_writer. Returns the writer's name
-- (schema optiqoflow_gen).
DECLARE
    v_name     text := optiqoflow._writer_name(p_table, p_columns);   -- columns + generator version
    v_data     text[];
    v_previous text;
    v_template text;
BEGIN
    IF to_regproc(format('optiqoflow_gen.%I', v_name)) IS NOT NULL THEN
        RETURN v_name;
    END IF;
    PERFORM optiqoflow._valid_target(p_table);
    v_previous := optiqoflow._ddl_lock('ddl/' || p_table);
    -- re-check with a query, not the syscache: a writer another session generated while
    -- we waited for the lock is visible to a new snapshot, not necessarily to the cache
    IF NOT EXISTS (SELECT FROM pg_proc p
                    WHERE p.pronamespace = 'optiqoflow_gen'::regnamespace AND p.proname = v_name) THEN
        SELECT array_agg(c ORDER BY o) INTO v_data
          FROM unnest(p_columns) WITH ORDINALITY AS u(c, o)
         WHERE c NOT IN ('id', 'tenant_id') AND c !~ '^_of_';
        -- The one template of every writer. Its holes, filled below from catalog names
        -- each quoted by format('%I'): {{writer}} its name; {{table}} the target table;
        -- {{columns}} its data columns; {{from_c}} the same as c.col; {{from_r}} as
        -- _of_r.col; {{set_r}} col = (_of_r.col if present, else t.col), one record's
        -- UPDATE; {{conflict}} the batch upsert's ON CONFLICT clause. Every decision of
        -- write, duplicate or stale is optiqoflow._verdict's (the version rule); the
        -- output is a function like any other: documented, not executable by PUBLIC, and
        -- checked by plpgsql_check in the tests.
        v_template := $template$
CREATE FUNCTION optiqoflow_gen.{{writer}}(
    _of_a_tenant uuid, _of_a_table text, _of_a_records jsonb, _of_a_present text[],
    _of_a_now timestamptz, _of_a_xid xid8, _of_a_run bigint,
    OUT _of_o_written bigint, OUT _of_o_duplicate bigint, OUT _of_o_stale bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $w$
DECLARE
    _of_r      optiqoflow.{{table}};
    _of_found  boolean;
    _of_stored timestamptz;
    _of_tomb   timestamptz;
    _of_n      bigint;
    -- lineage: the webhook_logs id of the delivery writing (apply_webhook sets it first)
    _of_log    bigint := nullif(current_setting('optiqoflow.log_id', true), '')::bigint;
BEGIN
    _of_o_written := 0; _of_o_duplicate := 0; _of_o_stale := 0;
    IF jsonb_array_length(_of_a_records) = 1 THEN
        -- one record (every real-time change): small statements with cached plans instead
        -- of the batch statement below, whose plan is ten times the work to start
        _of_r := jsonb_populate_record(NULL::optiqoflow.{{table}}, _of_a_records -> 0);
        SELECT t.updated_at INTO _of_stored
          FROM optiqoflow.{{table}} t WHERE t.tenant_id = _of_a_tenant AND t.id = _of_r.id;
        _of_found := FOUND;
        IF NOT _of_found THEN
            SELECT tb.version INTO _of_tomb
              FROM optiqoflow.tombstones tb
             WHERE tb.tenant_id = _of_a_tenant AND tb.target_table = _of_a_table AND tb.id = _of_r.id;
        END IF;
        CASE optiqoflow._verdict(_of_r.updated_at, _of_stored, _of_tomb)
        WHEN 'w' THEN
            IF _of_found THEN
                UPDATE optiqoflow.{{table}} t
                   SET {{set_r}}, _of_written_at = _of_a_now, _of_xid = _of_a_xid, _of_sync_run = _of_a_run,
                       _of_log_id = _of_log
                 WHERE t.tenant_id = _of_a_tenant AND t.id = _of_r.id;
                _of_o_written := 1;
                RETURN;
            END IF;
            INSERT INTO optiqoflow.{{table}} (tenant_id, id, {{columns}}, _of_written_at, _of_xid, _of_sync_run, _of_log_id)
            VALUES (_of_a_tenant, _of_r.id, {{from_r}}, _of_a_now, _of_a_xid, _of_a_run, _of_log)
            ON CONFLICT (tenant_id, id) DO NOTHING;
            GET DIAGNOSTICS _of_n = ROW_COUNT;
            IF _of_n = 1 THEN
                IF _of_tomb IS NOT NULL THEN
                    DELETE FROM optiqoflow.tombstones tb
                     WHERE tb.tenant_id = _of_a_tenant AND tb.target_table = _of_a_table AND tb.id = _of_r.id;
                END IF;
                _of_o_written := 1;
                RETURN;
            END IF;
            -- written meanwhile by a writer that does not take our row locks: the
            -- statement at the end decides
        WHEN 'd' THEN
            _of_o_duplicate := 1;
        ELSE
            _of_o_stale := 1;
        END CASE;
        IF _of_o_duplicate + _of_o_stale > 0 THEN
            IF _of_found AND _of_a_run IS NOT NULL THEN
                UPDATE optiqoflow.{{table}} t SET _of_sync_run = _of_a_run
                 WHERE t.tenant_id = _of_a_tenant AND t.id = _of_r.id AND t._of_sync_run IS DISTINCT FROM _of_a_run;
            END IF;
            RETURN;
        END IF;
    ELSIF NOT EXISTS (SELECT FROM optiqoflow.tombstones tb
                       WHERE tb.tenant_id = _of_a_tenant AND tb.target_table = _of_a_table) THEN
        -- a batch of a tenant with no deletion remembered in this table (an initial import,
        -- most FULL_SYNC runs): the upsert's own conflict check decides; only the records
        -- it did not write are read back, from the snapshot before it, to tell duplicates
        -- from stale ones and mark them for the run
        WITH src AS (
            SELECT r.* FROM jsonb_populate_recordset(NULL::optiqoflow.{{table}}, _of_a_records) r
        ), w AS (
            INSERT INTO optiqoflow.{{table}} AS t (tenant_id, id, {{columns}}, _of_written_at, _of_xid, _of_sync_run, _of_log_id)
            SELECT _of_a_tenant, c.id, {{from_c}}, _of_a_now, _of_a_xid, _of_a_run, _of_log FROM src c
            {{conflict}}
        ), cls AS (
            SELECT s.id, optiqoflow._verdict(s.updated_at, t.updated_at) AS _of_action
              FROM src s
              JOIN optiqoflow.{{table}} t ON t.tenant_id = _of_a_tenant AND t.id = s.id
             WHERE NOT EXISTS (SELECT FROM w WHERE w.id = s.id)
        ), marked AS (
            UPDATE optiqoflow.{{table}} t SET _of_sync_run = _of_a_run
              FROM cls c
             WHERE _of_a_run IS NOT NULL
               AND t.tenant_id = _of_a_tenant AND t.id = c.id AND t._of_sync_run IS DISTINCT FROM _of_a_run
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM w),
               (SELECT count(*) FROM cls WHERE _of_action = 'd'),
               (SELECT count(*) FROM cls WHERE _of_action <> 'd') + 0 * (SELECT count(*) FROM marked)
          INTO _of_o_written, _of_o_duplicate, _of_o_stale;
        RETURN;
    END IF;

    -- any other batch: each record's verdict against the stored row and the tombstone
    WITH src AS (
        SELECT r.* FROM jsonb_populate_recordset(NULL::optiqoflow.{{table}}, _of_a_records) r
    ), cls AS (
        SELECT s.*, optiqoflow._verdict(s.updated_at, t.updated_at, tb.version) AS _of_action
          FROM src s
          LEFT JOIN optiqoflow.{{table}} t ON t.tenant_id = _of_a_tenant AND t.id = s.id
          LEFT JOIN optiqoflow.tombstones tb
                 ON tb.tenant_id = _of_a_tenant AND tb.target_table = _of_a_table AND tb.id = s.id
    ), w AS (
        INSERT INTO optiqoflow.{{table}} AS t (tenant_id, id, {{columns}}, _of_written_at, _of_xid, _of_sync_run, _of_log_id)
        SELECT _of_a_tenant, c.id, {{from_c}}, _of_a_now, _of_a_xid, _of_a_run, _of_log FROM cls c WHERE c._of_action = 'w'
        {{conflict}}
    ), cleared AS (
        DELETE FROM optiqoflow.tombstones x USING w
         WHERE x.tenant_id = _of_a_tenant AND x.target_table = _of_a_table AND x.id = w.id
        RETURNING 1
    ), marked AS (
        UPDATE optiqoflow.{{table}} t SET _of_sync_run = _of_a_run
          FROM cls c
         WHERE _of_a_run IS NOT NULL AND c._of_action IN ('d', 's')
           AND t.tenant_id = _of_a_tenant AND t.id = c.id AND t._of_sync_run IS DISTINCT FROM _of_a_run
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM w),
           (SELECT count(*) FROM cls WHERE _of_action = 'd'),
           (SELECT count(*) FROM cls WHERE _of_action = 's')
           + 0 * (SELECT count(*) FROM cleared) + 0 * (SELECT count(*) FROM marked)
      INTO _of_o_written, _of_o_duplicate, _of_o_stale;
END
$w$
$template$;
        EXECUTE replace(replace(replace(replace(replace(replace(replace(v_template,
            '{{writer}}', quote_ident(v_name)),
            '{{table}}', quote_ident(p_table)),
            '{{columns}}', (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_data) c)),
            '{{from_c}}', (SELECT string_agg(format('c.%I', c), ', ') FROM unnest(v_data) c)),
            '{{from_r}}', (SELECT string_agg(format('_of_r.%I', c), ', ') FROM unnest(v_data) c)),
            '{{set_r}}', (SELECT string_agg(format('%1$I = CASE WHEN %2$L = ANY (_of_a_present) THEN _of_r.%1$I ELSE t.%1$I END', c, c), ', ')
                            FROM unnest(v_data) c)),
            '{{conflict}}',
            format('ON CONFLICT (tenant_id, id) DO UPDATE SET %s, _of_written_at = EXCLUDED._of_written_at, '
                   '_of_xid = EXCLUDED._of_xid, _of_sync_run = EXCLUDED._of_sync_run, _of_log_id = EXCLUDED._of_log_id '
                   'WHERE optiqoflow._verdict(EXCLUDED.updated_at, t.updated_at) = ''w'' RETURNING t.id',
                   (SELECT string_agg(format('%1$I = CASE WHEN %2$L = ANY (_of_a_present) THEN EXCLUDED.%1$I ELSE t.%1$I END', c, c), ', ')
                      FROM unnest(v_data) c)));
        EXECUTE format('COMMENT ON FUNCTION optiqoflow_gen.%I IS %L', v_name,
                       format('Generated by optiqoflow._writer for optiqoflow.%s (%s): do not edit.',
                              p_table, array_to_string(p_columns, ', ')));
        EXECUTE format('REVOKE ALL ON FUNCTION optiqoflow_gen.%I FROM PUBLIC', v_name);
    END IF;
    PERFORM set_config('lock_timeout', v_previous, true);
    RETURN v_name;
END
$$;

COMMENT ON FUNCTION optiqoflow._writer(text, text[]) IS
    'Internal: name of the generated writer function (schema optiqoflow_gen) of a target table with the given columns, generating it on first use: the version-checked upsert of _write_records as static SQL with cached plans.';
REVOKE ALL ON FUNCTION optiqoflow._writer(text, text[]) FROM PUBLIC;
