-- The owner role owns every object of ours: the schemas optiqoflow, tenants and
-- optiqoflow_gen with everything in them, and the dashboard's tables and function in
-- public. Run at the end of every revision from 0002 on (freeze.own_everything), so
-- whatever a revision created, as whichever role ran it, ends with the owner.
-- A migrating role that is not a superuser (hosted Supabase) is a member of the owner
-- role (0002 grants it); PostgreSQL then also wants the new owner to be able to create
-- in the object's schema (and, for a schema, in the database): granted for the moment
-- of the change, and taken back.
DO $own$
DECLARE
    v_owner oid := to_regrole('optiqoflow_owner');
    v_super boolean := (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user);
    v_item  record;
BEGIN
    IF v_owner IS NULL THEN
        RETURN;
    END IF;
    IF NOT v_super THEN
        EXECUTE format('GRANT CREATE ON DATABASE %I TO optiqoflow_owner', current_database());
        GRANT CREATE ON SCHEMA public TO optiqoflow_owner;
    END IF;
    FOR v_item IN SELECT n.nspname FROM pg_catalog.pg_namespace n
                   WHERE n.nspname IN ('optiqoflow', 'tenants', 'optiqoflow_gen')
                     AND n.nspowner <> v_owner LOOP
        EXECUTE format('ALTER SCHEMA %I OWNER TO optiqoflow_owner', v_item.nspname);
    END LOOP;
    FOR v_item IN
        SELECT c.oid::regclass AS rel,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE (n.nspname IN ('optiqoflow', 'tenants', 'optiqoflow_gen')
                OR (n.nspname = 'public'
                    AND c.relname IN ('charts', 'chart_data_cache', 'chart_table_dependencies')))
           AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND c.relowner <> v_owner
           AND NOT c.relispartition                      -- partitions follow below
           -- an identity or serial sequence follows its table
           AND NOT (c.relkind = 'S'
                    AND EXISTS (SELECT FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass
                                   AND d.objid = c.oid AND d.deptype IN ('a', 'i')))
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                            WHERE d.objid = c.oid AND d.deptype = 'e')
         ORDER BY c.relkind, c.oid
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO optiqoflow_owner', v_item.kind, v_item.rel);
    END LOOP;
    FOR v_item IN
        SELECT c.oid::regclass AS rel
          FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'optiqoflow' AND c.relispartition AND c.relowner <> v_owner
    LOOP
        EXECUTE format('ALTER TABLE %s OWNER TO optiqoflow_owner', v_item.rel);
    END LOOP;
    FOR v_item IN
        SELECT p.oid::regprocedure AS func
          FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname IN ('optiqoflow', 'tenants', 'optiqoflow_gen')
                OR (n.nspname = 'public' AND p.proname = 'invalidate_chart_cache_for_tables'))
           AND p.proowner <> v_owner
           AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                            WHERE d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO optiqoflow_owner', v_item.func);
    END LOOP;
    IF NOT v_super THEN
        REVOKE CREATE ON SCHEMA public FROM optiqoflow_owner;
        EXECUTE format('REVOKE CREATE ON DATABASE %I FROM optiqoflow_owner', current_database());
    END IF;
END
$own$;
