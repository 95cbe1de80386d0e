CREATE OR REPLACE FUNCTION tenants.regenerate_tenant_views(
    p_tenant_id uuid,
    p_table     text DEFAULT NULL
)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- (Re)build the views tenants."{tenant_uuid}_{target_table}" of one tenant: its rows
-- only, and only id, tenant_id and the columns it has pushed (tenants.tenant_column_access),
-- typed and ordered as in the base table. p_table: one target (or source) table, or NULL
-- for every table the tenant has pushed. A view that already has exactly those columns
-- is left alone. Returns the number of views created or replaced.
--
-- Safe against the traps of request-time view DDL: the name is built from the canonical
-- uuid and a target name of at most 26 bytes, so it never reaches the 63-byte limit;
-- a per-tenant lock (optiqoflow._lock) serialises concurrent regeneration; a short lock_timeout
-- turns a wait behind a long reader into a retryable 55P03; a view whose columns were
-- removed or reordered is dropped and recreated, then re-granted, in this transaction;
-- every view is security_invoker (row-level security of the reader applies) and
-- security_barrier (no leaky function sees filtered-out rows).
DECLARE
    v_previous text;
    v_item     record;
    v_view     text;
    v_want     text[];
    v_have     text[];
    v_count    integer := 0;
    v_role     name;
BEGIN
    IF p_tenant_id IS NULL THEN
        RAISE EXCEPTION 'no tenant' USING ERRCODE = 'OF002', HINT = 'Pass the tenant''s UUID.';
    END IF;
    IF p_table IS NOT NULL THEN
        PERFORM optiqoflow._target_table(p_table);   -- an unknown name is OF001, as everywhere
    END IF;
    -- The base tables first, in name order, then the tenant's views lock: CREATE VIEW needs
    -- ACCESS SHARE on its table, and a push that is adding a column holds ACCESS EXCLUSIVE
    -- on it until it commits and then wants this tenant's views lock. Taking the table
    -- lock before the views lock, as a push does, keeps the two from deadlocking.
    v_previous := current_setting('lock_timeout');
    PERFORM set_config('lock_timeout', optiqoflow._ddl_lock_timeout(), true);
    FOR v_item IN
        SELECT t.table_name FROM tenants.tenant_column_access t
         WHERE t.tenant_id = p_tenant_id AND to_regclass(format('optiqoflow.%I', t.table_name)) IS NOT NULL
           AND (p_table IS NULL
                OR t.table_name = p_table
                OR t.table_name = (SELECT m.target_table FROM optiqoflow.table_mappings m
                                    WHERE m.source_table = p_table))
         ORDER BY t.table_name
    LOOP
        EXECUTE format('LOCK TABLE optiqoflow.%I IN ACCESS SHARE MODE', v_item.table_name);
    END LOOP;
    PERFORM optiqoflow._ddl_lock('views/' || p_tenant_id::text);

    -- every table the tenant has pushed, and every view it still has: a view whose
    -- tracking row a DBA deleted is rebuilt with id and tenant_id only
    FOR v_item IN
        SELECT t.table_name, coalesce(tca.columns, ARRAY[]::text[]) AS columns
          FROM (SELECT x.table_name FROM tenants.tenant_column_access x WHERE x.tenant_id = p_tenant_id
                UNION
                SELECT substr(c.relname, 38) FROM pg_class c
                 WHERE c.relnamespace = 'tenants'::regnamespace AND c.relkind = 'v'
                   -- a range pg_class's (relname, relnamespace) index can scan: with
                   -- thousands of tenants a LIKE alone read most of pg_class per call
                   AND c.relname >= (p_tenant_id::text || '_')::name COLLATE pg_catalog."C"
                   AND c.relname < (p_tenant_id::text || '`')::name COLLATE pg_catalog."C"
                   AND c.relname LIKE p_tenant_id::text || '\_%') t
          LEFT JOIN tenants.tenant_column_access tca
                 ON tca.tenant_id = p_tenant_id AND tca.table_name = t.table_name
         WHERE p_table IS NULL
            OR t.table_name = p_table
            OR t.table_name = (SELECT m.target_table FROM optiqoflow.table_mappings m
                                WHERE m.source_table = p_table)
         ORDER BY t.table_name
    LOOP
        IF v_item.table_name !~ '^[a-z_][a-z0-9_]{0,25}$' OR to_regclass(format('optiqoflow.%I', v_item.table_name)) IS NULL THEN
            RAISE EXCEPTION 'cannot build a view for table %', left(v_item.table_name, 100)
                USING ERRCODE = 'OF014',
                      DETAIL = 'The target table is missing, or its name does not fit "{uuid}_{table}" in 63 bytes.',
                      HINT = 'Check optiqoflow.table_mappings and tenants.tenant_column_access.';
        END IF;
        v_view := p_tenant_id::text || '_' || v_item.table_name;

        -- id, tenant_id, then the pushed columns, in the base table's order
        SELECT array_agg(a.attname::text ORDER BY (a.attname <> 'id'), (a.attname <> 'tenant_id'), a.attnum)
          INTO v_want
          FROM pg_attribute a
         WHERE a.attrelid = format('optiqoflow.%I', v_item.table_name)::regclass
           AND a.attnum > 0 AND NOT a.attisdropped
           AND (a.attname IN ('id', 'tenant_id') OR a.attname = ANY (v_item.columns))
           AND a.attname !~ '^_of_';

        SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO v_have
          FROM pg_attribute a
         WHERE a.attrelid = to_regclass(format('tenants.%I', v_view))
           AND a.attnum > 0 AND NOT a.attisdropped;

        CONTINUE WHEN v_have = v_want;

        IF v_have IS NOT NULL AND v_have <> v_want[1:cardinality(v_have)] THEN
            -- columns removed or reordered: CREATE OR REPLACE cannot do it (42P16)
            EXECUTE format('DROP VIEW tenants.%I', v_view);
        END IF;
        EXECUTE format(
            'CREATE OR REPLACE VIEW tenants.%I WITH (security_invoker = true, security_barrier = true) AS '
            'SELECT %s FROM optiqoflow.%I WHERE tenant_id = %L::uuid',
            v_view,
            (SELECT string_agg(format('%I', c), ', ') FROM unnest(v_want) c),
            v_item.table_name, p_tenant_id);
        EXECUTE format('COMMENT ON VIEW tenants.%I IS %L', v_view,
                       format('Tenant %s: its rows of optiqoflow.%s, with the columns it has pushed.',
                              p_tenant_id, v_item.table_name));
        EXECUTE format('REVOKE ALL ON tenants.%I FROM PUBLIC', v_view);
        EXECUTE format('GRANT SELECT ON tenants.%I TO authenticated, service_role', v_view);
        FOR v_role IN SELECT rt.role_name FROM tenants.role_tenants rt WHERE rt.tenant_id = p_tenant_id LOOP
            EXECUTE format('GRANT SELECT ON tenants.%I TO %I', v_view, v_role);
        END LOOP;

        UPDATE tenants.tenant_column_access tca
           SET view_regenerations = tca.view_regenerations + 1, views_regenerated_at = now()
         WHERE tca.tenant_id = p_tenant_id AND tca.table_name = v_item.table_name;
        v_count := v_count + 1;
    END LOOP;

    PERFORM set_config('lock_timeout', v_previous, true);
    RETURN v_count;
END
$$;

COMMENT ON FUNCTION tenants.regenerate_tenant_views(uuid, text) IS
    'Rebuilds a tenant''s views tenants."{tenant_uuid}_{table}" (one table, or all when p_table is NULL) from tenants.tenant_column_access: that tenant''s rows, id + tenant_id + the columns it pushed, security_invoker and security_barrier, re-granted. Views already right are left alone. Returns the number of views rebuilt.';
REVOKE ALL ON FUNCTION tenants.regenerate_tenant_views(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenants.regenerate_tenant_views(uuid, text) TO service_role;
