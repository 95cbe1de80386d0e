-- Row lineage: every target table gets _of_log_id, the webhook_logs id of the delivery
-- that last wrote the row (NULL for rows written before this revision, or by hand).
-- A nullable column without a default: no table rewrite. Tables created later get it
-- from optiqoflow._ensure_target_table.
DO $$
DECLARE
    v_table text;
BEGIN
    FOR v_table IN
        SELECT c.relname::text FROM pg_catalog.pg_class c
          JOIN optiqoflow.table_mappings m ON m.target_table = c.relname
         WHERE c.relnamespace = 'optiqoflow'::regnamespace AND c.relkind IN ('r', 'p')
         ORDER BY 1
    LOOP
        EXECUTE format('ALTER TABLE optiqoflow.%I ADD COLUMN IF NOT EXISTS _of_log_id bigint', v_table);
    END LOOP;
END
$$;
