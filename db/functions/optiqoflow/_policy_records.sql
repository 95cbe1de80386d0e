CREATE OR REPLACE FUNCTION optiqoflow._policy_records(p_table text, p_records jsonb)
RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    -- A JSON array of records, each as its target table's column policies let it be
    -- stored (optiqoflow._policy_record), in their order: a FULL_SYNC batch's records
    -- (full_sync_batch) and a kept payload's (_policy_payload).
    SELECT coalesce((SELECT pg_catalog.jsonb_agg(optiqoflow._policy_record(p_table, x.r) ORDER BY x.n)
                       FROM pg_catalog.jsonb_array_elements(p_records) WITH ORDINALITY AS x(r, n)),
                    '[]'::jsonb);
$$;

COMMENT ON FUNCTION optiqoflow._policy_records(text, jsonb) IS
    'Internal: a JSON array of records, each filtered by the column policies of its target table (_policy_record), in order.';
REVOKE ALL ON FUNCTION optiqoflow._policy_records(text, jsonb) FROM PUBLIC;
