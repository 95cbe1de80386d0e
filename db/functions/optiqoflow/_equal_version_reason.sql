CREATE OR REPLACE FUNCTION optiqoflow._equal_version_reason(
    p_tenant_id uuid,
    p_table     text,
    p_record    jsonb
)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Why a record whose version equals the stored row's was a duplicate: whether its values
-- are the stored ones (each read as its column's type, so 2.50 = 2.5 and two spellings of
-- one instant are equal) or differ. An equal version never overwrites: the answer says
-- which, so a sender that changed a row without changing updated_at learns it. Only the
-- duplicate path calls this; p_table is a target table that exists.
DECLARE
    v_same boolean;
BEGIN
    EXECUTE format('SELECT jsonb_populate_record(t, $1) IS NOT DISTINCT FROM t '
                   'FROM optiqoflow.%I t WHERE t.tenant_id = $2 AND t.id = $3',
                   optiqoflow._valid_target(p_table))
       INTO v_same
      USING p_record, p_tenant_id, (p_record ->> 'id')::uuid;
    RETURN CASE WHEN v_same THEN 'same version, same content'
                WHEN NOT v_same THEN 'same version, different content: the stored row stays (an equal version never overwrites; send a newer updated_at)'
                ELSE 'same version as the stored row' END;
END
$$;

COMMENT ON FUNCTION optiqoflow._equal_version_reason(uuid, text, jsonb) IS
    'Internal: the reason of a duplicate by equal version: whether the record''s values equal the stored row''s (typed) or differ.';
REVOKE ALL ON FUNCTION optiqoflow._equal_version_reason(uuid, text, jsonb) FROM PUBLIC;
