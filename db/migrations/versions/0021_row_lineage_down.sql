DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN
        SELECT c.relname::text FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attname = '_of_log_id' AND NOT a.attisdropped
         WHERE c.relnamespace = 'optiqoflow'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE optiqoflow.%I DROP COLUMN IF EXISTS _of_log_id', v_table);
    END LOOP;
END
$$;
