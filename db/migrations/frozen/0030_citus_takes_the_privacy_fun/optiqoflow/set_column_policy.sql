CREATE OR REPLACE FUNCTION optiqoflow.set_column_policy(
    p_table  text,
    p_column text,
    p_policy text
)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Sets the policy of a column (README, "Privacy"): `keep` (the default), `block` or
-- `hash` (text columns only; never id, tenant_id or updated_at). p_table is a source or
-- target name; the column need not exist yet. It applies from the next delivery (a
-- delivery in flight finishes with the policy it read); the data stored before stays
-- as it is until optiqoflow.apply_column_policies(table) rewrites it.
--     SELECT optiqoflow.set_column_policy('staff_members', 'email', 'block');
DECLARE
    v_target text;
    v_type   regtype;
    v_old    text;
BEGIN
    v_target := (optiqoflow._target_table(p_table)).target_table;   -- OF001 when unknown
    IF p_policy IS NULL OR p_policy NOT IN ('keep', 'block', 'hash') THEN
        RAISE EXCEPTION 'unknown column policy: %', coalesce(left(p_policy, 50), '(none)') USING ERRCODE = 'OF031',
            HINT = 'A policy is keep, block or hash.';
    END IF;
    IF p_column IS NULL OR NOT optiqoflow._is_column_name(p_column)
       OR p_column IN ('id', 'tenant_id', 'updated_at') OR p_column LIKE '\_of\_%' THEN
        RAISE EXCEPTION 'column % cannot have a policy', coalesce(left(p_column, 70), '(none)') USING ERRCODE = 'OF031',
            HINT = 'A policy is for a data column: not id, tenant_id, updated_at or a bookkeeping column (_of_...).';
    END IF;
    SELECT a.atttypid::regtype INTO v_type FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = pg_catalog.to_regclass(format('optiqoflow.%I', v_target))
       AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF p_policy = 'hash' AND v_type IS NOT NULL AND v_type NOT IN ('text'::regtype, 'character varying'::regtype) THEN
        RAISE EXCEPTION 'column %.% is %, and only text columns can be hashed', v_target, p_column, v_type
            USING ERRCODE = 'OF031', HINT = 'Block it instead: SELECT optiqoflow.set_column_policy(table, column, ''block'');';
    END IF;
    SELECT cp.policy INTO v_old FROM optiqoflow.column_policies cp
     WHERE cp.target_table = v_target AND cp.column_name = p_column FOR UPDATE;
    IF p_policy = 'keep' THEN
        DELETE FROM optiqoflow.column_policies cp WHERE cp.target_table = v_target AND cp.column_name = p_column;
    ELSE
        -- now() in VALUES, not in DO UPDATE: Citus evaluates it once, on the coordinator
        INSERT INTO optiqoflow.column_policies AS cp (target_table, column_name, policy, updated_at)
        VALUES (v_target, p_column, p_policy, now())
        ON CONFLICT (target_table, column_name)
        DO UPDATE SET policy = EXCLUDED.policy, updated_at = EXCLUDED.updated_at;
    END IF;
    RETURN jsonb_build_object('table', v_target, 'column', p_column, 'policy', p_policy,
                              'was', coalesce(v_old, 'keep'),
                              'rewrite', format('SELECT optiqoflow.apply_column_policies(%L);', v_target));
END
$$;

COMMENT ON FUNCTION optiqoflow.set_column_policy(text, text, text) IS
    'Sets a column''s policy for personal data: keep (default) | block (never stored, not tracked, not in views) | hash (a keyed hash; text columns only; never id, tenant_id, updated_at). Applies from the next delivery; optiqoflow.apply_column_policies(table) rewrites the data stored before. OF031 for a policy that cannot be. optiqoflow_admin only.';
REVOKE ALL ON FUNCTION optiqoflow.set_column_policy(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION optiqoflow.set_column_policy(text, text, text) TO optiqoflow_admin;
