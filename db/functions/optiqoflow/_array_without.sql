CREATE OR REPLACE FUNCTION optiqoflow._array_without(p_items text[], p_out text[])
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
-- p_items without the elements of p_out, sorted. IMMUTABLE, so a Citus cluster takes it
-- over a distributed table's column in an UPDATE (a subquery over unnest(column) it does
-- not). A SQL-standard body: inlined where it is called.
RETURN ARRAY(SELECT c FROM unnest(p_items) c WHERE c <> ALL (coalesce(p_out, '{}')) ORDER BY c);

COMMENT ON FUNCTION optiqoflow._array_without(text[], text[]) IS
    'Internal: the elements of p_items not in p_out, sorted (apply_column_policies: a tenant''s tracked columns without the blocked ones).';
REVOKE ALL ON FUNCTION optiqoflow._array_without(text[], text[]) FROM PUBLIC;
