CREATE OR REPLACE FUNCTION optiqoflow._run_writer(
    p_writer  text,
    p_tenant  uuid,
    p_table   text,
    p_records jsonb,
    p_present text[],
    p_now     timestamptz,
    p_xid     xid8,
    p_run     bigint,
    OUT _of_o_written bigint,
    OUT _of_o_duplicate bigint,
    OUT _of_o_stale bigint
)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Runs the generated writer p_writer (optiqoflow._writer's name, schema optiqoflow_gen)
-- on records of one key set, the one way every caller (upsert_record, _write_records)
-- runs a writer. An EXECUTE of one function call: what it parses and plans is that
-- call; the writer's own statements keep their cached plans for the session.
BEGIN
    EXECUTE format('SELECT * FROM optiqoflow_gen.%I($1, $2, $3, $4, $5, $6, $7)', p_writer)
       INTO _of_o_written, _of_o_duplicate, _of_o_stale
      USING p_tenant, p_table, p_records, p_present, p_now, p_xid, p_run;
END
$$;

COMMENT ON FUNCTION optiqoflow._run_writer(text, uuid, text, jsonb, text[], timestamptz, xid8, bigint) IS
    'Internal: runs the generated writer named p_writer (schema optiqoflow_gen, see _writer) on records of one key set; returns its written, duplicate and stale counts.';
REVOKE ALL ON FUNCTION optiqoflow._run_writer(text, uuid, text, jsonb, text[], timestamptz, xid8, bigint) FROM PUBLIC;
