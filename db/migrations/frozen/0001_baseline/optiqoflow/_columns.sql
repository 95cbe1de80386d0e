CREATE OR REPLACE FUNCTION optiqoflow._columns(p_table text)
RETURNS text[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Every column of the target table optiqoflow.<p_table>, in attnum order, or NULL when
-- the table does not exist. Read on every delivery (the columns decide the writer and
-- whether evolution has anything to do): the relation is resolved through the syscache
-- and the catalog read is a statement with a cached plan on its oid.
DECLARE
    v_oid oid := to_regclass(format('optiqoflow.%I', p_table));
BEGIN
    IF v_oid IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN ARRAY(SELECT a.attname::text FROM pg_attribute a
                  WHERE a.attrelid = v_oid AND a.attnum > 0 AND NOT a.attisdropped
                  ORDER BY a.attnum);
END
$$;

COMMENT ON FUNCTION optiqoflow._columns(text) IS
    'Internal: the columns of target table optiqoflow.<p_table> in attnum order (NULL when it does not exist).';
REVOKE ALL ON FUNCTION optiqoflow._columns(text) FROM PUBLIC;
