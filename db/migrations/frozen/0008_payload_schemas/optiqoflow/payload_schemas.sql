CREATE OR REPLACE FUNCTION optiqoflow.payload_schemas()
RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    -- A JSON Schema (draft 2020-12, as OpenAPI 3.1 uses) of a record of every mapped
    -- source table, from the current mappings and columns: {"<source_table>": {...}}.
    -- The published contract (GET /openapi.json, `optiqoflow openapi`) embeds them. Every
    -- data column is optional and nullable (an UPDATE carries what changed; keys a table
    -- lacks are added by schema evolution, so additionalProperties stays open); id is a
    -- UUID and required; tenant_id, when present, a UUID; updated_at an RFC 3339 time.
    -- Bookkeeping (_of_...) is never part of a payload. No tenant is named.
    SELECT coalesce(pg_catalog.jsonb_object_agg(m.source_table, pg_catalog.jsonb_build_object(
               'type', 'object',
               'title', m.source_table || ' (stored in optiqoflow.' || m.target_table || ')',
               'required', pg_catalog.jsonb_build_array('id'),
               'additionalProperties', true,
               'properties', coalesce(cols.properties, '{}'::jsonb))
               ORDER BY m.source_table), '{}'::jsonb)
      FROM optiqoflow.table_mappings m
      LEFT JOIN LATERAL (
          SELECT pg_catalog.jsonb_object_agg(a.attname,
                     CASE WHEN a.attname IN ('id', 'tenant_id')
                              THEN pg_catalog.jsonb_build_object('type', 'string', 'format', 'uuid')
                          WHEN t.typcategory = 'N' AND t.typname IN ('int2', 'int4', 'int8')
                              THEN '{"type": ["integer", "null"]}'::jsonb
                          WHEN t.typcategory = 'N' THEN '{"type": ["number", "null"]}'::jsonb
                          WHEN t.typname = 'bool' THEN '{"type": ["boolean", "null"]}'::jsonb
                          WHEN t.typname IN ('json', 'jsonb') THEN '{}'::jsonb
                          WHEN t.typname = 'uuid' THEN '{"type": ["string", "null"], "format": "uuid"}'::jsonb
                          WHEN t.typname IN ('timestamptz', 'timestamp')
                              THEN '{"type": ["string", "null"], "format": "date-time"}'::jsonb
                          WHEN t.typname = 'date' THEN '{"type": ["string", "null"], "format": "date"}'::jsonb
                          WHEN a.attndims > 0 OR t.typcategory = 'A' THEN '{"type": ["array", "null"]}'::jsonb
                          ELSE '{"type": ["string", "null"]}'::jsonb END
                     ORDER BY a.attnum) AS properties
            FROM pg_catalog.pg_attribute a
            JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = pg_catalog.to_regclass('optiqoflow.' || pg_catalog.quote_ident(m.target_table))
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attname !~ '^_of_'
      ) cols ON true;
$$;

COMMENT ON FUNCTION optiqoflow.payload_schemas() IS
    'JSON Schemas (draft 2020-12) of a record of every mapped source table, from the current mappings and columns, for the published OpenAPI contract; names no tenant.';
REVOKE ALL ON FUNCTION optiqoflow.payload_schemas() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.payload_schemas() TO service_role;
