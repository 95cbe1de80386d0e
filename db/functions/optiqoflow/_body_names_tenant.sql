CREATE OR REPLACE FUNCTION optiqoflow._body_names_tenant(p_body bytea, p_tenant_id uuid)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- Whether raw bytes (an unusable delivery's body) name a tenant, in any of the spellings
-- a sender uses: canonical, upper case, or without hyphens. The test by which bodies of a
-- closed tenant are kept nowhere (record_unusable_delivery) and erased with it
-- (erase_tenant). A SQL-standard body: inlined into the queries that call it.
RETURN position(pg_catalog.convert_to(p_tenant_id::text, 'UTF8') IN p_body) > 0
    OR position(pg_catalog.convert_to(pg_catalog.upper(p_tenant_id::text), 'UTF8') IN p_body) > 0
    OR position(pg_catalog.convert_to(pg_catalog.replace(p_tenant_id::text, '-', ''), 'UTF8') IN p_body) > 0;

COMMENT ON FUNCTION optiqoflow._body_names_tenant(bytea, uuid) IS
    'Internal: whether raw bytes name the tenant (canonical, upper case or hyphenless spelling). Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._body_names_tenant(bytea, uuid) FROM PUBLIC;
