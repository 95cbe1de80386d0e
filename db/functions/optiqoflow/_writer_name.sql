CREATE OR REPLACE FUNCTION optiqoflow._writer_name(p_table text, p_columns text[])
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
-- The name (schema optiqoflow_gen) of the generated writer of a target table with
-- exactly these columns (every column, in attnum order), see _writer. The hash covers
-- the columns and the generator's version (the "w5:" prefix), so a database upgraded to
-- a new generator makes new writers instead of reusing old ones. A SQL-standard body:
-- inlined into the expression that calls it.
RETURN p_table || '_' || pg_catalog.left(pg_catalog.md5('w5:' || pg_catalog.array_to_string(p_columns, ',')), 12);

COMMENT ON FUNCTION optiqoflow._writer_name(text, text[]) IS
    'Internal: the name of the generated writer (schema optiqoflow_gen) of a target table with exactly these columns, see _writer. Inlined into the queries that call it.';
REVOKE ALL ON FUNCTION optiqoflow._writer_name(text, text[]) FROM PUBLIC;
