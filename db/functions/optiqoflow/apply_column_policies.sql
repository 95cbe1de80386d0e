CREATE OR REPLACE FUNCTION optiqoflow.apply_column_policies(p_table text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Rewrites the data a table already holds to its column policies (README, "Privacy"),
-- in bounded calls: call it until "complete" is true (each call one transaction).
--     SELECT optiqoflow.apply_column_policies('staff_members');
-- Each call: at most optiqoflow.erase_chunk_rows rows (default 10,000) of the table get
-- their blocked columns set to NULL and their hashed columns hashed (a value that
-- already looks like a hash, 'h:' and 64 hex digits, is left); the kept payloads of its
-- refused deliveries are filtered; blocked columns leave the column tracking of at most
-- 50 tenants, whose views are rebuilt; and when anything changed, the cache entries of
-- charts reading the table go (the dashboard refills them). Only row locks of the rows
-- it rewrites, for one chunk: deliveries of other rows do not wait. Rows written
-- meanwhile already follow the policy. A call finding nothing to do says complete.
DECLARE
    v_target  text;
    v_chunk   integer := coalesce(nullif(current_setting('optiqoflow.erase_chunk_rows', true), '')::integer, 10000);
    v_block   text[];
    v_hash    text[];
    v_ikey    bytea;     -- optiqoflow.column_hash_key: the pads of the hash key
    v_okey    bytea;
    v_ref     record;    -- a kept payload to rewrite
    v_new     jsonb;
    v_blocked text[];    -- every blocked column of the table
    v_now     timestamptz := now();
    v_col     text;
    v_left    integer;
    v_n       bigint;
    v_rows    bigint := 0;
    v_payload bigint := 0;
    v_views   bigint := 0;
    v_cache   bigint := 0;
    v_tenant  uuid;
BEGIN
    v_target := (optiqoflow._target_table(p_table)).target_table;   -- OF001 when unknown
    IF v_chunk IS NULL OR v_chunk < 1 THEN
        RAISE EXCEPTION 'optiqoflow.erase_chunk_rows must be a positive integer' USING ERRCODE = 'OF029',
            HINT = 'SET optiqoflow.erase_chunk_rows = 10000;';
    END IF;
    -- the policy columns the table has (names from column_policies: checked identifiers)
    SELECT coalesce(array_agg(cp.column_name ORDER BY cp.column_name) FILTER (WHERE cp.policy = 'block'), '{}'),
           coalesce(array_agg(cp.column_name ORDER BY cp.column_name) FILTER (WHERE cp.policy = 'hash'), '{}')
      INTO v_block, v_hash
      FROM optiqoflow.column_policies cp
      JOIN pg_catalog.pg_attribute a ON a.attrelid = pg_catalog.to_regclass(format('optiqoflow.%I', v_target))
                                    AND a.attname = cp.column_name AND a.attnum > 0 AND NOT a.attisdropped
     WHERE cp.target_table = v_target AND optiqoflow._is_column_name(cp.column_name);

    -- one column at a time, within the call's budget of rows
    v_left := v_chunk;
    FOREACH v_col IN ARRAY v_block LOOP
        EXIT WHEN v_left = 0;
        EXECUTE format('UPDATE optiqoflow.%1$I t SET %2$I = NULL WHERE (t.tenant_id, t.id) IN '
                       '(SELECT x.tenant_id, x.id FROM optiqoflow.%1$I x WHERE x.%2$I IS NOT NULL LIMIT $1)',
                       v_target, v_col)
          USING v_left;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_rows := v_rows + v_n;
        v_left := v_left - v_n;
    END LOOP;
    SELECT k.ikey, k.okey INTO v_ikey, v_okey FROM optiqoflow.column_hash_key k;
    FOREACH v_col IN ARRAY v_hash LOOP
        EXIT WHEN v_left = 0;
        -- the key read once and passed in: Citus takes no STABLE function (_keyed_hash)
        -- over a distributed table's columns in an UPDATE, an IMMUTABLE one it does
        EXECUTE format('UPDATE optiqoflow.%1$I t SET %2$I = optiqoflow._hmac_hex($2, $3, t.%2$I) WHERE (t.tenant_id, t.id) IN '
                       '(SELECT x.tenant_id, x.id FROM optiqoflow.%1$I x'
                       '  WHERE x.%2$I IS NOT NULL AND x.%2$I !~ ''^h:[0-9a-f]{64}$'' LIMIT $1)',
                       v_target, v_col)
          USING v_left, v_ikey, v_okey;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        v_rows := v_rows + v_n;
        v_left := v_left - v_n;
    END LOOP;

    -- kept payloads of the table's refused deliveries
    -- (row by row: Citus takes no STABLE function over a distributed table's columns in
    -- an UPDATE, and _policy_payload reads the policies)
    v_payload := 0;
    FOR v_ref IN SELECT d.log_id, d.payload FROM optiqoflow.refused_deliveries d
                  WHERE d.target_table = v_target AND d.payload IS NOT NULL LOOP
        v_new := optiqoflow._policy_payload(v_ref.payload);
        CONTINUE WHEN v_new IS NOT DISTINCT FROM v_ref.payload;
        UPDATE optiqoflow.refused_deliveries d SET payload = v_new WHERE d.log_id = v_ref.log_id;
        v_payload := v_payload + 1;
    END LOOP;

    -- blocked columns leave the tracking (so the views), 50 tenants per call
    -- (every blocked column read first, and no subquery over a.columns or now() in the
    -- UPDATE: a Citus cluster takes neither)
    v_blocked := ARRAY(SELECT cp.column_name FROM optiqoflow.column_policies cp
                        WHERE cp.target_table = v_target AND cp.policy = 'block');
    IF cardinality(v_blocked) > 0 THEN
        FOR v_tenant IN
            UPDATE tenants.tenant_column_access a
               SET columns = optiqoflow._array_without(a.columns, v_blocked),
                   updated_at = v_now
             WHERE (a.tenant_id, a.table_name) IN (
                       SELECT b.tenant_id, b.table_name FROM tenants.tenant_column_access b
                        WHERE b.table_name = v_target AND b.columns && v_blocked
                        LIMIT 50)
            RETURNING a.tenant_id
        LOOP
            PERFORM tenants.regenerate_tenant_views(v_tenant, v_target);
            v_views := v_views + 1;
        END LOOP;
    END IF;

    IF v_rows + v_payload + v_views > 0 THEN
        DELETE FROM public.chart_data_cache c
         WHERE c.chart_id IN (SELECT d.chart_id FROM public.chart_table_dependencies d WHERE d.table_name = v_target);
        GET DIAGNOSTICS v_cache = ROW_COUNT;
    END IF;

    RETURN jsonb_build_object('table', v_target, 'blocked', to_jsonb(v_block), 'hashed', to_jsonb(v_hash),
                              'rows', v_rows, 'refused_payloads', v_payload, 'tenants_views', v_views,
                              'cache_entries', v_cache, 'complete', v_rows + v_payload + v_views = 0);
END
$$;

COMMENT ON FUNCTION optiqoflow.apply_column_policies(text) IS
    'Rewrites a table''s existing data to its column policies in bounded calls (call until "complete" is true): blocked columns set to NULL and hashed ones hashed, at most optiqoflow.erase_chunk_rows rows per call; kept payloads of its refused deliveries filtered; blocked columns untracked and views rebuilt (50 tenants per call); cache entries of charts reading it removed. optiqoflow_admin only.';
REVOKE ALL ON FUNCTION optiqoflow.apply_column_policies(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.apply_column_policies(text) TO optiqoflow_admin;
