CREATE OR REPLACE FUNCTION optiqoflow._ensure_target_table(p_table text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- Create the target table of a new mapping on its first push: tenant_id, id,
-- updated_at and the bookkeeping columns; schema evolution adds the rest. On a
-- distributed Citus cluster it is distributed by tenant_id, colocated with the others.
-- Returns true when it created the table.
DECLARE
    v_previous text;
BEGIN
    IF to_regclass(format('optiqoflow.%I', p_table)) IS NOT NULL THEN
        RETURN false;
    END IF;
    PERFORM optiqoflow._valid_target(p_table);
    v_previous := optiqoflow._ddl_lock('ddl/' || p_table);
    -- re-check with a query, not the syscache (see _writer)
    IF NOT EXISTS (SELECT FROM pg_class c
                    WHERE c.relnamespace = 'optiqoflow'::regnamespace AND c.relname = p_table) THEN
        EXECUTE format(
            'CREATE TABLE optiqoflow.%I ('
            '  tenant_id uuid NOT NULL,'
            '  id uuid NOT NULL,'
            '  updated_at timestamptz NOT NULL,'
            '  _of_written_at timestamptz NOT NULL DEFAULT now(),'
            '  _of_xid xid8 DEFAULT pg_current_xact_id(),'
            '  _of_sync_run bigint,'
            '  _of_log_id bigint,'   -- lineage: the webhook_logs id of the delivery that last wrote the row
            '  CONSTRAINT %I PRIMARY KEY (tenant_id, id))',
            p_table, p_table || '_pkey');
        EXECUTE format('COMMENT ON TABLE optiqoflow.%I IS %L', p_table,
                       'Synced by optiqoflow (created on its first push; columns added by schema evolution).');
        PERFORM optiqoflow._secure_target_table(p_table);
        -- on a Citus cluster that optiqoflow.distribute() has distributed, the new table
        -- joins its colocation group at once (as distribute() would make it): created on
        -- the coordinator, it would otherwise stay a coordinator table, and every later
        -- delivery to it would take the coordinator path
        IF optiqoflow._citus_table_kind('optiqoflow.tombstones') = 'distributed' THEN
            EXECUTE format('SELECT pg_catalog.%I($1, ''tenant_id'', colocate_with => ''optiqoflow.tombstones'')',
                           'create_distributed_table')
              USING format('optiqoflow.%I', p_table)::regclass;
        END IF;
    END IF;
    PERFORM set_config('lock_timeout', v_previous, true);
    RETURN true;
END
$$;

COMMENT ON FUNCTION optiqoflow._ensure_target_table(text) IS
    'Internal: creates the target table of a mapping on its first push (tenant_id, id, updated_at, bookkeeping), with row-level security and grants; on a distributed Citus cluster, distributed by tenant_id and colocated with the other tables.';
REVOKE ALL ON FUNCTION optiqoflow._ensure_target_table(text) FROM PUBLIC;
