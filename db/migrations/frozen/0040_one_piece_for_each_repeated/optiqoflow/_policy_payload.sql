CREATE OR REPLACE FUNCTION optiqoflow._policy_payload(p_payload jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A payload as it may be kept (a refused delivery's, in optiqoflow.refused_deliveries):
-- its record, old_record and records, and those of the events of a BATCH envelope,
-- filtered by the column policies of the table each names (optiqoflow._policy_record).
-- A payload naming no known table is returned as it is.
DECLARE
    v_target text;
    v_out    jsonb := p_payload;
BEGIN
    IF jsonb_typeof(p_payload) IS DISTINCT FROM 'object' THEN
        RETURN p_payload;
    END IF;
    IF jsonb_typeof(p_payload -> 'events') = 'array' THEN
        RETURN jsonb_set(p_payload, '{events}',
                         coalesce((SELECT jsonb_agg(optiqoflow._policy_payload(e) ORDER BY n)
                                     FROM jsonb_array_elements(p_payload -> 'events') WITH ORDINALITY AS x(e, n)),
                                  '[]'::jsonb));
    END IF;
    SELECT m.target_table INTO v_target FROM optiqoflow.table_mappings m
     WHERE m.source_table = p_payload ->> 'table' OR m.target_table = p_payload ->> 'table'
     ORDER BY m.source_table = p_payload ->> 'table' DESC LIMIT 1;
    IF v_target IS NULL OR NOT EXISTS (SELECT FROM optiqoflow.column_policies cp
                                        WHERE cp.target_table = v_target AND cp.policy <> 'keep') THEN
        RETURN p_payload;
    END IF;
    IF p_payload ? 'record' THEN
        v_out := jsonb_set(v_out, '{record}', optiqoflow._policy_record(v_target, p_payload -> 'record'));
    END IF;
    IF p_payload ? 'old_record' THEN
        v_out := jsonb_set(v_out, '{old_record}', optiqoflow._policy_record(v_target, p_payload -> 'old_record'));
    END IF;
    IF jsonb_typeof(p_payload -> 'records') = 'array' THEN
        v_out := jsonb_set(v_out, '{records}', optiqoflow._policy_records(v_target, p_payload -> 'records'));
    END IF;
    RETURN v_out;
END
$$;

COMMENT ON FUNCTION optiqoflow._policy_payload(jsonb) IS
    'Internal: a payload (or BATCH envelope) with its records filtered by the column policies of the tables they name, as a refused delivery is kept.';
REVOKE ALL ON FUNCTION optiqoflow._policy_payload(jsonb) FROM PUBLIC;
