CREATE OR REPLACE FUNCTION optiqoflow._verdict(
    p_version   timestamptz,
    p_stored    timestamptz,
    p_tombstone timestamptz DEFAULT NULL
)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- The version rule, the one definition every path uses (the generated writers' single
-- record and batch statements, delete_record, the tombstones of deletes and of FULL_SYNC
-- completions): what a change of version p_version does to a key whose stored row has
-- version p_stored (NULL: no row stored) and whose tombstone has version p_tombstone
-- (NULL: none).
--   'w' (write):     newer than the stored row; or no row, and newer than any tombstone;
--   'd' (duplicate): the stored row's own version: an equal version never overwrites;
--   's' (stale):     older than the stored row, or no row and not newer than the tombstone.
-- A delete removes the row unless its verdict is 's' (a delete at the row's own version
-- removes it); a tombstone is replaced only by a 'w' of the newer version. A SQL-standard
-- body: inlined into the statements and expressions that call it, so it costs no call.
RETURN CASE
    WHEN p_stored IS NOT NULL THEN
        CASE WHEN p_version > p_stored THEN 'w'
             WHEN p_version = p_stored THEN 'd'
             ELSE 's' END
    WHEN p_tombstone IS NULL OR p_version > p_tombstone THEN 'w'
    ELSE 's'
END;

COMMENT ON FUNCTION optiqoflow._verdict(timestamptz, timestamptz, timestamptz) IS
    'Internal: the version rule, defined once: ''w'' (write: newer than the stored row, or no row and newer than any tombstone), ''d'' (duplicate: the stored row''s own version) or ''s'' (stale). Inlined into the statements that call it.';
REVOKE ALL ON FUNCTION optiqoflow._verdict(timestamptz, timestamptz, timestamptz) FROM PUBLIC;
