CREATE OR REPLACE FUNCTION optiqoflow._is_iso_timestamp_text(p_value text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- True when the text starts as an ISO 8601 date or date-time (YYYY-MM-DD, then the end or
-- T/space and HH:MM), the only spelling a version (updated_at, occurred_at) may have, so
-- never 'now', 'epoch' or 'infinity'. A well-formed but impossible date (month 13)
-- passes, and the timestamptz cast then refuses it with PostgreSQL's own 22008. NULL for
-- NULL. A SQL-standard body: inlined into the expression that calls it.
RETURN p_value ~ '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}|$)';

COMMENT ON FUNCTION optiqoflow._is_iso_timestamp_text(text) IS
    'Internal: true when the text is an ISO 8601 date or date-time as a version must be spelled (never now/epoch/infinity); NULL for NULL. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._is_iso_timestamp_text(text) FROM PUBLIC;
