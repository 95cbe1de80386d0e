CREATE OR REPLACE FUNCTION optiqoflow._event_keys(p_events jsonb, p_tenant text DEFAULT NULL)
RETURNS TABLE (o bigint, tenant uuid, target text, id uuid)
LANGUAGE sql STABLE PARALLEL SAFE
-- What each real-time event of a jsonb array of payloads writes, as apply_webhook will
-- read it: its position o (1-based), its tenant (the event's tenant_id, else p_tenant,
-- the envelope's, else its record's or old_record's), its target table (by source name,
-- else by target name) and the id of the row it writes (a DELETE's old_record, else its
-- record). NULL where that cannot be read (not an object, not a UUID, no mapping):
-- apply_webhook refuses such an event. Shared by _lock_events (the row locks of a group or
-- an envelope) and apply_webhook_group (the order it applies a group in). A SQL-standard
-- body: inlined into the query that calls it.
BEGIN ATOMIC
    SELECT x.o,
           CASE WHEN optiqoflow._is_uuid_text(x.tenant) THEN x.tenant::uuid END,
           coalesce((SELECT m.target_table FROM optiqoflow.table_mappings m WHERE m.source_table = x.tbl),
                    (SELECT m.target_table FROM optiqoflow.table_mappings m WHERE m.target_table = x.tbl)),
           CASE WHEN optiqoflow._is_uuid_text(x.id) THEN x.id::uuid END
      FROM (SELECT ev.o,
                   CASE WHEN pg_catalog.jsonb_typeof(ev.e) = 'object'
                        THEN coalesce(ev.e ->> 'tenant_id', p_tenant, ev.e -> 'record' ->> 'tenant_id',
                                      ev.e -> 'old_record' ->> 'tenant_id') END AS tenant,
                   CASE WHEN pg_catalog.jsonb_typeof(ev.e) = 'object' THEN ev.e ->> 'table' END AS tbl,
                   CASE WHEN pg_catalog.jsonb_typeof(ev.e) <> 'object' THEN NULL
                        WHEN pg_catalog.upper(ev.e ->> 'type') = 'DELETE' THEN ev.e -> 'old_record' ->> 'id'
                        ELSE ev.e -> 'record' ->> 'id' END AS id
              FROM pg_catalog.jsonb_array_elements(p_events) WITH ORDINALITY AS ev(e, o)) x;
END;

COMMENT ON FUNCTION optiqoflow._event_keys(jsonb, text) IS
    'Internal: per real-time event of a jsonb array of payloads, its position, tenant, target table and written id (NULL where unreadable), as apply_webhook reads them; shared by _lock_events and apply_webhook_group.';
REVOKE ALL ON FUNCTION optiqoflow._event_keys(jsonb, text) FROM PUBLIC;
