-- 0002, before the function files: the owner role.
-- optiqoflow_owner owns our schemas, tables, views and functions (ownership.sql, at the
-- end of this revision). NOLOGIN, and never a superuser: the SECURITY DEFINER functions
-- run as it, so what they can do is what it can do. It administers the membership of
-- optiqoflow_tenant_reader (tenants.grant_tenant gives a role that membership).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'optiqoflow_owner') THEN
        CREATE ROLE optiqoflow_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
    END IF;
    -- LOGIN only where Citus needs it (optiqoflow.distribute grants it on a cluster)
    IF (SELECT r.rolsuper OR r.rolbypassrls OR r.rolcreaterole
               OR (r.rolcanlogin AND NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions e
                                                  WHERE e.name = 'citus' AND e.installed_version IS NOT NULL))
          FROM pg_catalog.pg_roles r WHERE r.rolname = 'optiqoflow_owner') THEN
        RAISE EXCEPTION 'role optiqoflow_owner must be NOLOGIN, NOSUPERUSER, NOBYPASSRLS and NOCREATEROLE'
            USING ERRCODE = 'OF021',
                  HINT = 'ALTER ROLE optiqoflow_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE; then migrate again.';
    END IF;
    -- the migrating role acts as the owner from now on (CREATE OR REPLACE of a function
    -- the owner owns, ALTER ... OWNER TO it); a superuser needs no membership
    IF NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user)
       AND NOT pg_has_role(current_user, 'optiqoflow_owner', 'MEMBER') THEN
        EXECUTE format('GRANT optiqoflow_owner TO %I', current_user);
    END IF;
    IF NOT pg_has_role('optiqoflow_owner', 'optiqoflow_tenant_reader', 'MEMBER') THEN
        GRANT optiqoflow_tenant_reader TO optiqoflow_owner WITH ADMIN OPTION;
    END IF;
END
$roles$;
