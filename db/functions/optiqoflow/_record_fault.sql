CREATE OR REPLACE FUNCTION optiqoflow._record_fault(
    p_record      jsonb,
    p_tenant_id   uuid,
    p_occurred_at timestamptz,
    p_id_by_cast  boolean DEFAULT false
)
RETURNS text
LANGUAGE sql IMMUTABLE
-- The validation of one record of a delivery for tenant p_tenant_id, the one definition
-- that _analyse_records (every record of every path) and upsert_record's fast path use:
-- NULL when the record is fine, else its first fault, in the order they are reported:
--   'not_object'   the record is not a JSON object;
--   'no_id'        it has no "id" string;              'bad_id'      the id is not a UUID;
--   'no_version'   no "updated_at" string and no p_occurred_at (the envelope's version);
--   'bad_version'  updated_at is not an ISO 8601 date-time (never 'now' or 'infinity');
--   'other_tenant' it names another tenant than the payload's (any spelling of a UUID).
-- The id is tested by pattern (any spelling uuid_in accepts), or, with p_id_by_cast, by
-- the cast itself, which is cheaper but raises 22P02 for a bad one (a caller that wants
-- to name the record then tests again by pattern). A tenant_id that is not a UUID string
-- raises OF002 (_tenant_uuid). Key names are checked per key, not here
-- (_is_column_name). A SQL-standard body: inlined into the queries that call it.
RETURN CASE
    WHEN jsonb_typeof(p_record) IS DISTINCT FROM 'object' THEN 'not_object'
    WHEN jsonb_typeof(p_record -> 'id') IS DISTINCT FROM 'string' THEN 'no_id'
    WHEN NOT CASE WHEN p_id_by_cast THEN (p_record ->> 'id')::uuid IS NOT NULL
                  ELSE optiqoflow._is_uuid_text(p_record ->> 'id') END THEN 'bad_id'
    WHEN jsonb_typeof(p_record -> 'updated_at') IS DISTINCT FROM 'string' AND p_occurred_at IS NULL
         THEN 'no_version'
    WHEN jsonb_typeof(p_record -> 'updated_at') = 'string'
         AND NOT optiqoflow._is_iso_timestamp_text(p_record ->> 'updated_at') THEN 'bad_version'
    WHEN coalesce(jsonb_typeof(p_record -> 'tenant_id'), 'null') <> 'null'
         AND (p_record ->> 'tenant_id') IS DISTINCT FROM p_tenant_id::text
         AND optiqoflow._tenant_uuid(p_record -> 'tenant_id', 'record') IS DISTINCT FROM p_tenant_id
         THEN 'other_tenant'
END;

COMMENT ON FUNCTION optiqoflow._record_fault(jsonb, uuid, timestamptz, boolean) IS
    'Internal: the validation of one record, defined once: NULL when fine, else its first fault (not_object, no_id, bad_id, no_version, bad_version, other_tenant). Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._record_fault(jsonb, uuid, timestamptz, boolean) FROM PUBLIC;
