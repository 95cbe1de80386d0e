CREATE OR REPLACE FUNCTION optiqoflow.distribute(p_shard_count integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Scale-out on Citus. Run on the coordinator, as the owner of the tables, after
-- `optiqoflow migrate` (and again after every later migration: it is idempotent and
-- only handles what is not distributed yet):
--     SELECT optiqoflow.distribute();
-- Without the citus extension in this database it changes nothing and says so (NOTICE).
--
--   reference tables (a copy on every node, read locally):
--       optiqoflow.table_mappings, tenants.role_tenants, public.charts,
--       public.chart_table_dependencies, optiqoflow.refused_deliveries (rare writes; may
--       have no tenant), and any other table of ours without a NOT NULL tenant_id;
--   distributed by tenant_id, all in one colocation group (a tenant's rows of every
--   table live on one node): optiqoflow.tombstones (the anchor), every target table,
--       sync_runs, sync_run_batches, webhook_logs, tenants.tenant_column_access,
--       tenants.tenant_data_push_log, public.chart_data_cache;
--   optiqoflow.delivery_keys: distributed by key (de-duplication stays global: a key
--       seen before is a duplicate whatever tenant it comes with).
-- A primary key that lacks tenant_id (sync_runs, tenant_data_push_log, webhook_logs,
-- chart_data_cache; Citus wants the distribution column in every unique key) is rebuilt
-- with tenant_id in front. webhook_logs rows without a tenant (refused deliveries that
-- name none, unusable bodies) are kept under the nil UUID
-- 00000000-0000-0000-0000-000000000000, its column default here.
--
-- Every function of ours is made a distributed object (so it exists on every node and
-- CREATE OR REPLACE in later migrations reaches the workers; apply_webhook runs with
-- citus.multi_shard_modify_mode = sequential, see step 4), and
-- optiqoflow.apply_tenant_webhook is delegated by its p_tenant_id to the node that owns
-- that tenant (through optiqoflow._apply_tenant_webhook, which the planner inlines it
-- into). Tenant views made before distribution are re-created so the workers have them.
-- The rows a table held before it was distributed are copied into its shards, and the
-- coordinator's own copy of them (still on disk, invisible) is truncated.
-- A second run changes nothing: it distributes, registers, re-creates and truncates only
-- what is not done yet (no view is re-created, no function altered, twice).
-- p_shard_count: shards per distributed table (default: citus.shard_count), used only
-- when the colocation group is created.
-- Returns {"citus": true|false, "reference": [...], "distributed": [...], "functions": n,
--          "views": n, "truncated": [...]} (what this run did).
DECLARE
    c_anchor    CONSTANT text := 'optiqoflow.tombstones';
    c_no_tenant CONSTANT uuid := '00000000-0000-0000-0000-000000000000'::uuid;
    v_is_coord  boolean;
    v_rel       regclass;
    v_pk        record;
    v_reference text[] := ARRAY[]::text[];
    v_distrib   text[] := ARRAY[]::text[];
    v_functions integer := 0;
    v_views     integer := 0;
    v_fn        regprocedure;
    v_view      record;
    v_acl       record;
    v_fk        record;
    v_fks       text[] := ARRAY[]::text[];
    v_name      text;
    v_known     boolean;
    v_truncated text[] := ARRAY[]::text[];
    v_new_oids  oid[] := ARRAY[]::oid[];
    v_oids      oid[];
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RAISE NOTICE 'optiqoflow.distribute: the citus extension is not installed in this database; nothing changed';
        RETURN jsonb_build_object('citus', false);
    END IF;
    EXECUTE format('SELECT pg_catalog.%I()', 'citus_is_coordinator') INTO v_is_coord;
    IF NOT v_is_coord THEN
        RAISE EXCEPTION 'optiqoflow.distribute runs on the Citus coordinator'
            USING ERRCODE = 'OF019',
                  HINT = 'Connect to the coordinator (and add the workers with citus_add_node first).';
    END IF;
    -- Citus runs a distributed statement over connections to the other nodes as the
    -- current user; inside our SECURITY DEFINER functions that is optiqoflow_owner, so on
    -- a cluster the owner may log in (restrict it to the nodes' addresses in pg_hba.conf:
    -- docs/citus.md). Elsewhere it stays NOLOGIN.
    IF NOT (SELECT r.rolcanlogin FROM pg_catalog.pg_roles r WHERE r.rolname = 'optiqoflow_owner') THEN
        ALTER ROLE optiqoflow_owner LOGIN;
    END IF;
    PERFORM set_config('lock_timeout', '0', true);
    -- one transaction creates shards, functions and views: Citus needs it sequential
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);

    -- 0. foreign keys between tables not distributed yet are set aside and put back at
    --    the end (Citus would otherwise turn the referencing table into a Citus local
    --    table inside this transaction, which it then cannot convert)
    FOR v_fk IN
        SELECT con.conrelid::regclass AS rel, con.conname, pg_get_constraintdef(con.oid) AS def
          FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
         WHERE con.contype = 'f' AND n.nspname IN ('optiqoflow', 'tenants', 'public')
           AND (optiqoflow._citus_table_kind(con.conrelid::regclass) = 'none'
                OR optiqoflow._citus_table_kind(con.confrelid::regclass) = 'none')
         ORDER BY 1, 2
    LOOP
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_fk.rel, v_fk.conname);
        v_fks := v_fks || format('ALTER TABLE %s ADD CONSTRAINT %I %s', v_fk.rel, v_fk.conname, v_fk.def);
    END LOOP;

    -- 1. reference tables: small, shared, read by every delivery
    FOR v_rel IN
        SELECT c.oid::regclass
          FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND ((n.nspname, c.relname) IN (('optiqoflow', 'table_mappings'), ('tenants', 'role_tenants'),
                                          ('public', 'charts'), ('public', 'chart_table_dependencies'),
                                          ('optiqoflow', 'refused_deliveries'))
                OR (n.nspname IN ('optiqoflow', 'tenants')
                    AND c.relname NOT IN ('delivery_keys')
                    AND NOT EXISTS (SELECT FROM pg_attribute a
                                     WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                       AND a.attnotnull AND NOT a.attisdropped)
                    AND NOT EXISTS (SELECT FROM optiqoflow.table_mappings m
                                     WHERE m.target_table = c.relname AND n.nspname = 'optiqoflow')
                    AND c.relname <> 'webhook_logs'))
         ORDER BY (c.relname <> 'charts'), 1
    LOOP
        -- (a table Citus added to its metadata by itself, for a foreign key to a
        -- reference table, is a Citus local table: Citus converts it in place)
        CONTINUE WHEN optiqoflow._citus_table_kind(v_rel) IN ('reference', 'distributed');
        EXECUTE format('SELECT pg_catalog.%I($1)', 'create_reference_table') USING v_rel;
        v_reference := v_reference || v_rel::text;
    END LOOP;

    -- 2. webhook_logs: rows without a tenant go under the nil UUID
    IF optiqoflow._citus_table_kind('optiqoflow.webhook_logs') = 'none' THEN
        UPDATE optiqoflow.webhook_logs SET tenant_id = c_no_tenant WHERE tenant_id IS NULL;
        ALTER TABLE optiqoflow.webhook_logs ALTER COLUMN tenant_id SET DEFAULT '00000000-0000-0000-0000-000000000000';
        ALTER TABLE optiqoflow.webhook_logs ALTER COLUMN tenant_id SET NOT NULL;
    END IF;

    -- 3. distributed by tenant_id, colocated with the anchor
    FOR v_rel IN
        SELECT x.rel FROM (
            SELECT c_anchor::regclass AS rel, 0 AS ord
            UNION ALL
            SELECT c.oid::regclass, 1
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
               AND c.oid <> c_anchor::regclass
               AND (n.nspname IN ('optiqoflow', 'tenants')
                    OR (n.nspname = 'public' AND c.relname = 'chart_data_cache'))
               AND c.relname <> 'delivery_keys'
               AND EXISTS (SELECT FROM pg_attribute a
                            WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                              AND a.attnotnull AND NOT a.attisdropped)
               AND optiqoflow._citus_table_kind(c.oid::regclass) <> 'reference') x
         ORDER BY x.ord, x.rel::text
    LOOP
        CONTINUE WHEN optiqoflow._citus_table_kind(v_rel) = 'distributed';
        -- a primary key must contain the distribution column
        SELECT con.conname,
               (SELECT string_agg(format('%I', a.attname), ', ' ORDER BY k.ord)
                  FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                 WHERE a.attname <> 'tenant_id') AS cols,
               EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = con.conrelid
                          AND a.attnum = ANY (con.conkey) AND a.attname = 'tenant_id') AS has_tenant
          INTO v_pk
          FROM pg_constraint con
         WHERE con.conrelid = v_rel AND con.contype = 'p';
        IF v_pk.conname IS NOT NULL AND NOT v_pk.has_tenant THEN
            EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', v_rel, v_pk.conname);
            EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (tenant_id, %s)',
                           v_rel, v_pk.conname, v_pk.cols);
        END IF;
        IF v_rel = c_anchor::regclass THEN
            EXECUTE format('SELECT pg_catalog.%I($1, ''tenant_id'', colocate_with => ''none''', 'create_distributed_table')
                    || CASE WHEN p_shard_count IS NOT NULL THEN ', shard_count => $2' ELSE '' END || ')'
              USING v_rel, p_shard_count;
        ELSE
            EXECUTE format('SELECT pg_catalog.%I($1, ''tenant_id'', colocate_with => $2)', 'create_distributed_table')
              USING v_rel, c_anchor;
        END IF;
        v_distrib := v_distrib || v_rel::text;
        v_new_oids := v_new_oids || v_rel::oid;
    END LOOP;

    -- 4. every function of ours exists on every node (the policies and the delegated
    --    entry point need them there; some take a reference table's row type)
    FOR v_fn IN
        SELECT p.oid::regprocedure
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname IN ('optiqoflow', 'tenants')
                OR (n.nspname = 'public' AND p.proname = 'invalidate_chart_cache_for_tables'))
           AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
         ORDER BY (p.proname NOT LIKE '\_%'), p.oid
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM pg_catalog.%I o WHERE o.classid = ''pg_proc''::regclass AND o.objid = $1)',
                       'pg_dist_object')
           INTO v_known USING v_fn::oid;
        CONTINUE WHEN v_known;
        EXECUTE format('SELECT pg_catalog.%I($1)', 'create_distributed_function') USING v_fn;
        v_functions := v_functions + 1;
    END LOOP;

    -- The policies call tenants.role_tenant_id(), which reads the reference table
    -- role_tenants from inside a query on a shard. Citus allows that only when told; the
    -- read is local (every node holds the reference table). Again after each migration.
    IF NOT EXISTS (SELECT FROM pg_proc p, unnest(p.proconfig) g
                    WHERE p.oid = 'tenants.role_tenant_id()'::regprocedure
                      AND g = 'citus.allow_nested_distributed_execution=on') THEN
        ALTER FUNCTION tenants.role_tenant_id() SET citus.allow_nested_distributed_execution = on;
    END IF;
    -- A delivery may make DDL (a new column, a generated writer, a view: distributed
    -- objects) after a write that reached several nodes in parallel (a delivery id and
    -- an event_id: two de-duplication keys, two shards). Citus refuses that ("parallel
    -- operation ... in the transaction") unless the transaction works over one
    -- connection per node from the start. Again after each migration.
    IF NOT EXISTS (SELECT FROM pg_proc p, unnest(p.proconfig) g
                    WHERE p.oid = 'optiqoflow.apply_webhook(jsonb, text)'::regprocedure
                      AND g = 'citus.multi_shard_modify_mode=sequential') THEN
        ALTER FUNCTION optiqoflow.apply_webhook(jsonb, text) SET citus.multi_shard_modify_mode = 'sequential';
    END IF;

    -- 5. de-duplication keys: global, distributed by the key itself
    IF optiqoflow._citus_table_kind('optiqoflow.delivery_keys') = 'none' THEN
        EXECUTE format('SELECT pg_catalog.%I(''optiqoflow.delivery_keys'', ''key'', colocate_with => ''none''', 'create_distributed_table')
                || CASE WHEN p_shard_count IS NOT NULL THEN ', shard_count => $1' ELSE '' END || ')'
          USING p_shard_count;
        v_distrib := v_distrib || 'optiqoflow.delivery_keys'::text;
    END IF;

    -- 6. the delegated entry point: runs on the node that owns p_tenant_id. The planner
    --    inlines apply_tenant_webhook (SQL) into a call of _apply_tenant_webhook, the one
    --    Citus delegates; apply_tenant_webhook is registered too, which is what the
    --    receiver checks (pg_dist_object.distribution_argument_index)
    --    (each once: registered with its argument and the anchor's colocation group)
    FOREACH v_fn IN ARRAY ARRAY['optiqoflow._apply_tenant_webhook(uuid, jsonb, text)'::regprocedure,
                                'optiqoflow.apply_tenant_webhook(uuid, jsonb, text)'::regprocedure] LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM pg_catalog.%I o, pg_catalog.%I p
                                        WHERE o.classid = ''pg_proc''::regclass AND o.objid = $1
                                          AND o.distribution_argument_index = 0
                                          AND p.logicalrelid = $2::regclass AND o.colocationid = p.colocationid)',
                       'pg_dist_object', 'pg_dist_partition')
           INTO v_known USING v_fn::oid, c_anchor;
        CONTINUE WHEN v_known;
        EXECUTE format('SELECT pg_catalog.%I($1, ''p_tenant_id'', colocate_with => $2)', 'create_distributed_function')
          USING v_fn, c_anchor;
    END LOOP;

    -- 7. the foreign keys set aside (distributed or reference -> reference)
    FOREACH v_name IN ARRAY v_fks LOOP
        EXECUTE v_name;
    END LOOP;

    -- 8. tenant views made before distribution: re-created so that Citus creates them on
    --    the workers too, with their grants (the "{uuid}_{table}" views only: the schema's
    --    other views, such as tenants.sync_status, keep their own definition). Only the
    --    views that read a table this run distributed (Citus copies them to the workers
    --    when it distributes the table, but without their grants), and any Citus does not
    --    know (pg_dist_object); a view made after distribution reached the workers with
    --    its grants when it was made, and is left alone.
    EXECUTE format(
        'SELECT coalesce(array_agg(c.oid), ARRAY[]::oid[])
           FROM pg_class c
          WHERE c.relnamespace = ''tenants''::regnamespace AND c.relkind = ''v''
            AND c.relname ~ ''^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}_''
            AND (NOT EXISTS (SELECT FROM pg_catalog.%I o WHERE o.classid = ''pg_class''::regclass AND o.objid = c.oid)
                 OR EXISTS (SELECT FROM pg_rewrite r JOIN pg_depend d
                                 ON d.classid = ''pg_rewrite''::regclass AND d.objid = r.oid
                             WHERE r.ev_class = c.oid AND d.refclassid = ''pg_class''::regclass
                               AND d.refobjid = ANY ($1)))', 'pg_dist_object')
       INTO v_oids USING v_new_oids;
    FOR v_view IN
        SELECT c.oid, c.relname, pg_get_viewdef(c.oid) AS def, c.relacl
          FROM pg_class c
         WHERE c.oid = ANY (v_oids)
         ORDER BY c.relname
    LOOP
        EXECUTE format('CREATE OR REPLACE VIEW tenants.%I WITH (security_invoker = true, security_barrier = true) AS %s',
                       v_view.relname, v_view.def);
        FOR v_acl IN
            SELECT a.grantee::regrole AS grantee, a.privilege_type
              FROM aclexplode(v_view.relacl) a
             WHERE a.grantee <> 0 AND a.grantee <> a.grantor
        LOOP
            EXECUTE format('GRANT %s ON tenants.%I TO %s', v_acl.privilege_type, v_view.relname, v_acl.grantee);
        END LOOP;
        v_views := v_views + 1;
    END LOOP;

    -- 9. the rows a table held when it was distributed (create_distributed_table and
    --    create_reference_table copy them into the shards) are still in the coordinator's
    --    own heap of the table, invisible: truncated, for the tables of this run and any an
    --    earlier version of this function left (their heap, or a partition's, not empty)
    EXECUTE format(
        'SELECT coalesce(array_agg(c.oid ORDER BY c.oid::regclass::text), ARRAY[]::oid[])
           FROM pg_catalog.%I p JOIN pg_class c ON c.oid = p.logicalrelid
          WHERE c.relnamespace IN (''optiqoflow''::regnamespace, ''tenants''::regnamespace, ''public''::regnamespace)
            AND NOT c.relispartition AND (p.partmethod = ''h'' OR p.repmodel = ''t'')
            AND (pg_relation_size(c.oid) > 0
                 OR EXISTS (SELECT FROM pg_inherits i WHERE i.inhparent = c.oid AND pg_relation_size(i.inhrelid) > 0))',
        'pg_dist_partition')
       INTO v_oids;
    FOR v_rel IN SELECT x.oid::regclass FROM unnest(v_oids) WITH ORDINALITY x(oid, ord) ORDER BY x.ord
    LOOP
        EXECUTE format('SELECT pg_catalog.%I($1)', 'truncate_local_data_after_distributing_table') USING v_rel;
        v_truncated := v_truncated || v_rel::text;
    END LOOP;

    RETURN jsonb_build_object('citus', true, 'reference', to_jsonb(v_reference),
                              'distributed', to_jsonb(v_distrib), 'functions', v_functions,
                              'views', v_views, 'truncated', to_jsonb(v_truncated));
END
$$;

COMMENT ON FUNCTION optiqoflow.distribute(integer) IS
    'Citus scale-out (run on the coordinator as the table owner; idempotent, a second run changes nothing): target tables and per-tenant bookkeeping distributed by tenant_id in one colocation group, registry and dashboard tables as reference tables, delivery_keys by key, functions on every node, apply_tenant_webhook delegated by p_tenant_id, the coordinator''s local copy of rows distributed truncated. Without the citus extension: a NOTICE and no change. Returns what it did.';
REVOKE ALL ON FUNCTION optiqoflow.distribute(integer) FROM PUBLIC;
