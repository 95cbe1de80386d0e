CREATE OR REPLACE FUNCTION optiqoflow._is_refusal(p_sqlstate text)
RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- Errors that say "this payload can never be applied": our own OFxxx, data exceptions
    -- (22: a value that does not fit its column), integrity violations (23) and the
    -- limits a payload can hit (54: too many columns, ...). Everything else (40 serialization,
    -- 55P03 lock timeout, 57 cancel/shutdown, 53 resources, 08 connection, XX internal) is
    -- transient or a bug and is raised to the caller, which retries or reports it.
    SELECT left(p_sqlstate, 2) IN ('OF', '22', '23', '54');
$$;

COMMENT ON FUNCTION optiqoflow._is_refusal(text) IS
    'Internal: true for SQLSTATEs that refuse a payload for good (OF, 22, 23, 54); false for transient errors and bugs, which apply_webhook re-raises.';
REVOKE ALL ON FUNCTION optiqoflow._is_refusal(text) FROM PUBLIC;
